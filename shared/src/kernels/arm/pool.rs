//! Cortex-M4 max pool.

use crate::kernels::params::{PoolParams, window};

/// Max pool 4 channels per word through `SSUB8` + `SEL` (a signed bytewise max in two
/// instructions); `c % 4 == 0`, otherwise the contract of `generic::maxpool_s8_portable`.
pub fn maxpool_s8_dsp(p: &PoolParams, input: &[i8], out: &mut [i8]) {
    let c = p.input.c as usize;
    let cw = c / 4;
    let iw = p.input.w as usize;
    let input = &input[..p.input.len()];
    let out = &mut out[..p.output.len()];
    for oy in 0..p.output.h as usize {
        let (ya, yb) = window(oy, p.stride[0], p.pad[0], p.kernel[0], p.input.h);
        for ox in 0..p.output.w as usize {
            let (xa, xb) = window(ox, p.stride[1], p.pad[1], p.kernel[1], p.input.w);
            let o = (oy * p.output.w as usize + ox) * c;
            let (rows, cols) = (yb - ya, xb - xa);
            // The window's pixels: `rows x cols` starting at `first`, rows `iw * c` apart.
            let first = (ya * iw + xa) * c;
            let span = if rows == 0 || cols == 0 {
                0
            } else {
                ((rows - 1) * iw + cols) * c
            };
            let win = &input[first..first + span];
            let dst = &mut out[o..o + c];
            for q in 0..cw {
                let mut m = 0x8080_8080u32;
                for r in 0..rows {
                    for x in 0..cols {
                        let i = (r * iw + x) * c + 4 * q;
                        // SAFETY: `i + 4 <= span = win.len()` (last row, last column, last word
                        // at most); LDR may be unaligned on the Cortex-M4.
                        let v = unsafe { win.as_ptr().add(i).cast::<u32>().read_unaligned() };
                        // SAFETY: register-only DSP instructions (they set and read the APSR.GE
                        // flags, which the asm block clobbers by default).
                        unsafe {
                            core::arch::asm!(
                                "ssub8 {t}, {m}, {v}",
                                "sel {m}, {m}, {v}",
                                m = inout(reg) m, v = in(reg) v, t = out(reg) _,
                                options(pure, nomem, nostack),
                            );
                        }
                    }
                }
                // SAFETY: `4 * q + 4 <= c == dst.len()`; unaligned STR is allowed.
                unsafe { dst.as_mut_ptr().add(4 * q).cast::<u32>().write_unaligned(m) };
            }
        }
    }
}
