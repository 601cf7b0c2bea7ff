//! Cortex-M4 DSP path (`SXTB16` + `SMLAD` via `asm!`), compiled on `thumbv7em` (cfg `sqz_dsp`).

use crate::kernels::dot::{DotKernel, pack_portable};

/// Cortex-M4 DSP dot kernel.
#[derive(Debug, Clone, Copy)]
pub struct ArmDot;

impl DotKernel for ArmDot {
    #[inline]
    fn dot_2x2(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4] {
        let (acts, wts) = (&acts[..4 * kq], &wts[..4 * kq]);
        if kq == 0 {
            return [0; 4];
        }
        let (c00, c01, c10, c11): (i32, i32, i32, i32);
        // SAFETY: reads exactly `4 * kq` words from each of `acts` and `wts` (bounds checked by
        // the slicing above; both are word aligned as `&[u32]`). Every operand is pinned to a
        // named register so that r6/r7 (not nameable as operands) stay free; they are saved and
        // restored around the loop. No memory is written.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "2:",
                "ldm r0!, {{r8, r9, r10, r11}}",
                "ldm r1!, {{r6, r12}}",
                "smlad r3, r8, r6, r3",
                "smlad r3, r9, r12, r3",
                "smlad r5, r10, r6, r5",
                "smlad r5, r11, r12, r5",
                "ldm r1!, {{r6, r12}}",
                "smlad r4, r8, r6, r4",
                "smlad r4, r9, r12, r4",
                "smlad lr, r10, r6, lr",
                "smlad lr, r11, r12, lr",
                "cmp r0, r2",
                "bne 2b",
                "pop {{r6, r7}}",
                inout("r0") acts.as_ptr() => _,
                inout("r1") wts.as_ptr() => _,
                in("r2") acts.as_ptr().add(4 * kq),
                inout("r3") 0i32 => c00,
                inout("r4") 0i32 => c01,
                inout("r5") 0i32 => c10,
                inout("lr") 0i32 => c11,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                options(readonly),
            );
        }
        [c00, c01, c10, c11]
    }

    #[inline]
    fn pack(row: &[i8], k: usize, slot: usize, dst: &mut [u32]) {
        let full = k / 4;
        let (row, dst) = (&row[..k], &mut dst[..4 * k.div_ceil(4)]);
        for q in 0..full {
            let b = &row[q * 4..q * 4 + 4];
            let w = u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]);
            let (e, o): (u32, u32);
            // SAFETY: register-only DSP instructions.
            unsafe {
                core::arch::asm!(
                    "sxtb16 {e}, {w}",
                    "sxtb16 {o}, {w}, ror #8",
                    w = in(reg) w, e = out(reg) e, o = out(reg) o,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
            dst[4 * q + 2 * slot] = e;
            dst[4 * q + 2 * slot + 1] = o;
        }
        if full * 4 < k {
            pack_portable(row, k, slot, dst);
        }
    }
}
