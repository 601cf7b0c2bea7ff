//! Pools: `maxpool_s8` (incl. ceil mode), `avgpool_s8`, `global_avgpool_s8` and their reference
//! twins. None needs scratch.

use crate::dims::{Dims, Pad};
use crate::quant::{Requant, requantize};

/// Geometry of a pool. Output dims are computed by the model (ceil mode already applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    /// Input dims.
    pub input: Dims,
    /// Output dims (`c == input.c`).
    pub output: Dims,
    /// `[kh, kw]`.
    pub kernel: [u8; 2],
    /// `[sh, sw]`.
    pub stride: [u8; 2],
    /// `[t, l, b, r]`.
    pub pad: Pad,
}

/// Scratch bytes the pools need: none (all three work in place on their output).
pub fn pool_scratch_len(_p: &PoolParams) -> usize {
    0
}

/// Clipped window `[a, b)` along one axis.
#[inline(always)]
fn window(o: usize, s: u8, pad: u8, k: u8, n: u16) -> (usize, usize) {
    let start = (o * s as usize) as isize - pad as isize;
    let a = start.max(0) as usize;
    let b = ((start + k as isize).max(0) as usize).min(n as usize);
    (a, b)
}

/// Max pool; padded taps are ignored (every window holds at least one valid tap, checked by the
/// model). Output quantisation equals the input's. Input `p.input`, output `p.output`, NHWC.
/// On the Cortex-M4 (`sqz_dsp`) channels go 4 at a time through `SSUB8` + `SEL` (a signed
/// bytewise max in two instructions) when `c % 4 == 0`.
pub fn maxpool_s8(p: &PoolParams, input: &[i8], out: &mut [i8]) {
    let c = p.input.c as usize;
    #[cfg(sqz_dsp)]
    if c.is_multiple_of(4) {
        return maxpool_s8_dsp(p, input, out);
    }
    let iw = p.input.w as usize;
    for oy in 0..p.output.h as usize {
        let (ya, yb) = window(oy, p.stride[0], p.pad[0], p.kernel[0], p.input.h);
        for ox in 0..p.output.w as usize {
            let (xa, xb) = window(ox, p.stride[1], p.pad[1], p.kernel[1], p.input.w);
            let o = &mut out[(oy * p.output.w as usize + ox) * c..][..c];
            o.fill(i8::MIN);
            for y in ya..yb {
                for x in xa..xb {
                    let src = &input[(y * iw + x) * c..][..c];
                    for (d, &s) in o.iter_mut().zip(src) {
                        *d = (*d).max(s);
                    }
                }
            }
        }
    }
}

/// [`maxpool_s8`] 4 channels per word (`c % 4 == 0`).
#[cfg(sqz_dsp)]
fn maxpool_s8_dsp(p: &PoolParams, input: &[i8], out: &mut [i8]) {
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

/// Reference twin of [`maxpool_s8`] (per-output scalar loop).
pub fn maxpool_s8_ref(p: &PoolParams, input: &[i8], out: &mut [i8]) {
    let c = p.input.c as usize;
    for oy in 0..p.output.h as usize {
        for ox in 0..p.output.w as usize {
            for ch in 0..c {
                let mut m = i8::MIN;
                for dy in 0..p.kernel[0] as usize {
                    for dx in 0..p.kernel[1] as usize {
                        let y = (oy * p.stride[0] as usize + dy) as isize - p.pad[0] as isize;
                        let x = (ox * p.stride[1] as usize + dx) as isize - p.pad[1] as isize;
                        if y >= 0 && x >= 0 && y < p.input.h as isize && x < p.input.w as isize {
                            m = m.max(
                                input[(y as usize * p.input.w as usize + x as usize) * c + ch],
                            );
                        }
                    }
                }
                out[(oy * p.output.w as usize + ox) * c + ch] = m;
            }
        }
    }
}

/// Average pool (count_include_pad): `acc = sum over valid taps of (x - in_zp)`, requantised
/// with the uniform multiplier (tract's fixed-point path, since the pool is exported as a
/// depthwise `QLinearConv` of ones with one weight scale).
pub fn avgpool_s8(p: &PoolParams, in_zp: i8, mult: f32, out_zp: i8, input: &[i8], out: &mut [i8]) {
    let c = p.input.c as usize;
    let iw = p.input.w as usize;
    let rq = Requant::new(Some(mult), out_zp, false);
    for oy in 0..p.output.h as usize {
        let (ya, yb) = window(oy, p.stride[0], p.pad[0], p.kernel[0], p.input.h);
        for ox in 0..p.output.w as usize {
            let (xa, xb) = window(ox, p.stride[1], p.pad[1], p.kernel[1], p.input.w);
            let n = ((yb - ya) * (xb - xa)) as i32;
            let o = &mut out[(oy * p.output.w as usize + ox) * c..][..c];
            for (ch, d) in o.iter_mut().enumerate() {
                let mut acc = 0i32;
                for y in ya..yb {
                    for x in xa..xb {
                        acc += input[(y * iw + x) * c + ch] as i32;
                    }
                }
                *d = requantize(acc - n * in_zp as i32, mult, &rq);
            }
        }
    }
}

/// Reference twin of [`avgpool_s8`].
pub fn avgpool_s8_ref(
    p: &PoolParams,
    in_zp: i8,
    mult: f32,
    out_zp: i8,
    input: &[i8],
    out: &mut [i8],
) {
    let c = p.input.c as usize;
    let rq = Requant::new(Some(mult), out_zp, false);
    for oy in 0..p.output.h as usize {
        for ox in 0..p.output.w as usize {
            for ch in 0..c {
                let mut acc = 0i32;
                for dy in 0..p.kernel[0] as usize {
                    for dx in 0..p.kernel[1] as usize {
                        let y = (oy * p.stride[0] as usize + dy) as isize - p.pad[0] as isize;
                        let x = (ox * p.stride[1] as usize + dx) as isize - p.pad[1] as isize;
                        if y >= 0 && x >= 0 && y < p.input.h as isize && x < p.input.w as isize {
                            let v = input[(y as usize * p.input.w as usize + x as usize) * c + ch];
                            acc += v as i32 - in_zp as i32;
                        }
                    }
                }
                out[(oy * p.output.w as usize + ox) * c + ch] = requantize(acc, mult, &rq);
            }
        }
    }
}

/// Global average pool `h x w x c -> 1 x 1 x c`: `acc = sum(x - in_zp)`, requantised with the
/// uniform multiplier `pool_multiplier(in_scale, h * w, out_scale)`. `out.len() >= c`.
pub fn global_avgpool_s8(input: Dims, in_zp: i8, mult: f32, out_zp: i8, x: &[i8], out: &mut [i8]) {
    let c = input.c as usize;
    let n = input.h as usize * input.w as usize;
    let rq = Requant::new(Some(mult), out_zp, false);
    let mut acc = [0i32; 64];
    let mut c0 = 0;
    while c0 < c {
        let m = 64.min(c - c0);
        acc[..m].fill(0);
        for px in 0..n {
            for (a, &v) in acc[..m].iter_mut().zip(&x[px * c + c0..px * c + c0 + m]) {
                *a += v as i32;
            }
        }
        for j in 0..m {
            out[c0 + j] = requantize(acc[j] - n as i32 * in_zp as i32, mult, &rq);
        }
        c0 += m;
    }
}

/// Reference twin of [`global_avgpool_s8`].
pub fn global_avgpool_s8_ref(
    input: Dims,
    in_zp: i8,
    mult: f32,
    out_zp: i8,
    x: &[i8],
    out: &mut [i8],
) {
    let c = input.c as usize;
    let rq = Requant::new(Some(mult), out_zp, false);
    for ch in 0..c {
        let mut acc = 0i32;
        for px in 0..input.h as usize * input.w as usize {
            acc += x[px * c + ch] as i32 - in_zp as i32;
        }
        out[ch] = requantize(acc, mult, &rq);
    }
}
