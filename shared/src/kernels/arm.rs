//! Cortex-M4 DSP path (`SXTB16` + `SMLAD` via `asm!`), compiled on `thumbv7em` (cfg `sqz_dsp`).

use crate::kernels::dot::{DotKernel, dot_row_portable, pack_portable, requant_row_portable};
use crate::quant::Requant;

/// One quad of the 2x2 block: 4 activation words, 2 x 2 weight words, 8 `SMLAD`.
macro_rules! QUAD {
    () => {
        concat!(
            "ldm r0!, {{r8, r9, r10, r11}}\n",
            "ldm r1!, {{r6, r12}}\n",
            "smlad r3, r8, r6, r3\n",
            "smlad r3, r9, r12, r3\n",
            "smlad r5, r10, r6, r5\n",
            "smlad r5, r11, r12, r5\n",
            "ldm r1!, {{r6, r12}}\n",
            "smlad r4, r8, r6, r4\n",
            "smlad r4, r9, r12, r4\n",
            "smlad lr, r10, r6, lr\n",
            "smlad lr, r11, r12, lr\n",
        )
    };
}

/// The block loop around `n` inlined quads per iteration (see `ArmDot::dot_block`).
macro_rules! dot_block_asm {
    ($acts:expr, $wts:expr, $kq:expr, $npairs:expr, $beff:expr, $acc:expr, $($quad:expr),+) => {
        core::arch::asm!(
            "push {{r6, r7}}",
            "mov r7, r3",
            "push {{r0, r2, r4, r5}}",
            // outer: one channel pair; accumulators start at the effective biases
            "3:",
            "ldr r0, [sp]",
            "ldr r2, [sp, #4]",
            "add r2, r0, r2",
            "ldr r5, [sp, #12]",
            "ldrd r3, r4, [r5], #8",
            "str r5, [sp, #12]",
            "mov r5, r3",
            "mov lr, r4",
            "2:",
            $($quad,)+
            "cmp r0, r2",
            "bne 2b",
            "strd r5, lr, [r7, #256]",
            "strd r3, r4, [r7], #8",
            "ldr r0, [sp, #8]",
            "subs r0, #1",
            "str r0, [sp, #8]",
            "bne 3b",
            "add sp, #16",
            "pop {{r6, r7}}",
            inout("r0") $acts.as_ptr() => _,
            inout("r1") $wts.as_ptr() => _,
            inout("r2") 16 * $kq => _,
            inout("r3") $acc.as_mut_ptr() => _,
            inout("r4") $npairs => _,
            inout("r5") $beff.as_ptr() => _,
            out("lr") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
        )
    };
}

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
    fn dot_block(
        acts: &[u32],
        wts: &[u32],
        kq: usize,
        npairs: usize,
        beff: &[i32],
        acc: &mut [i32],
    ) {
        const B: usize = crate::kernels::conv::ROW_BLOCK;
        const _: () = assert!(4 * crate::kernels::conv::ROW_BLOCK == 256, "asm offset");
        let (acts, wts) = (&acts[..4 * kq], &wts[..4 * kq * npairs]);
        let (beff, acc) = (&beff[..2 * npairs], &mut acc[..2 * B]);
        if kq == 0 || npairs == 0 || npairs > B / 2 {
            return;
        }
        // SAFETY: reads `4 * kq` words of `acts` per pair, `4 * kq * npairs` words of `wts` and
        // `2 * npairs` of `beff`; writes `acc[..2 * npairs]` and `acc[B..B + 2 * npairs]` (the
        // immediate 256 is `4 * B`); all bounds checked by the slicing above, all word aligned.
        // Every operand is pinned to a named register; r6/r7 (not nameable) are saved and
        // restored, and the four spilled parameters are popped before the block ends. The even
        // variant runs two quads per iteration (`kq` even, so `end` is hit exactly).
        unsafe {
            if kq % 2 == 0 {
                dot_block_asm!(acts, wts, kq, npairs, beff, acc, QUAD!(), QUAD!());
            } else {
                dot_block_asm!(acts, wts, kq, npairs, beff, acc, QUAD!());
            }
        }
    }

    #[inline]
    fn requant_row(acc: &[i32], mults: &[f32], rq: &Requant, out: &mut [i8]) {
        let n = out.len();
        if rq.fixed.is_some() || n == 0 {
            return requant_row_portable(acc, mults, rq, out);
        }
        let (acc, mults) = (&acc[..n], &mults[..n]);
        if n % 2 == 1 {
            requant_row_portable(&acc[n - 1..], &mults[n - 1..], rq, &mut out[n - 1..]);
            if n == 1 {
                return;
            }
        }
        let n = n / 2;
        if rq.lo == -128 {
            // SAFETY: reads `n` words of `acc` and `mults`, writes `n` bytes of `out` (bounds
            // checked above), two per iteration. s12..s15 are declared clobbers. This is `requantize_f32_path` with
            // `lo = -128`: VCVTR rounds to nearest-even (FPSCR reset mode) and saturates, SSAT
            // clamps to [-128, 127].
            unsafe {
                core::arch::asm!(
                    "2:",
                    "vldmia {a}!, {{s12, s13}}",
                    "vcvt.f32.s32 s12, s12",
                    "vcvt.f32.s32 s13, s13",
                    "vldmia {m}!, {{s14, s15}}",
                    "vmul.f32 s12, s12, s14",
                    "vmul.f32 s13, s13, s15",
                    "vcvtr.s32.f32 s12, s12",
                    "vcvtr.s32.f32 s13, s13",
                    "vmov {t}, {u}, s12, s13",
                    "add {t}, {zp}",
                    "add {u}, {zp}",
                    "ssat {t}, #8, {t}",
                    "ssat {u}, #8, {u}",
                    "strb {u}, [{o}, #1]",
                    "strb {t}, [{o}], #2",
                    "subs {n}, #1",
                    "bne 2b",
                    a = inout(reg) acc.as_ptr() => _,
                    m = inout(reg) mults.as_ptr() => _,
                    o = inout(reg) out.as_mut_ptr() => _,
                    n = inout(reg) n => _,
                    zp = in(reg) rq.zero_point,
                    t = out(reg) _,
                    u = out(reg) _,
                    out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                    options(nostack),
                );
            }
        } else {
            // SAFETY: as above, plus the ReLU lower bound `lo`.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "vldmia {a}!, {{s12, s13}}",
                    "vcvt.f32.s32 s12, s12",
                    "vcvt.f32.s32 s13, s13",
                    "vldmia {m}!, {{s14, s15}}",
                    "vmul.f32 s12, s12, s14",
                    "vmul.f32 s13, s13, s15",
                    "vcvtr.s32.f32 s12, s12",
                    "vcvtr.s32.f32 s13, s13",
                    "vmov {t}, {u}, s12, s13",
                    "add {t}, {zp}",
                    "add {u}, {zp}",
                    "ssat {t}, #8, {t}",
                    "ssat {u}, #8, {u}",
                    "cmp {t}, {lo}",
                    "it lt",
                    "movlt {t}, {lo}",
                    "cmp {u}, {lo}",
                    "it lt",
                    "movlt {u}, {lo}",
                    "strb {u}, [{o}, #1]",
                    "strb {t}, [{o}], #2",
                    "subs {n}, #1",
                    "bne 2b",
                    a = inout(reg) acc.as_ptr() => _,
                    m = inout(reg) mults.as_ptr() => _,
                    o = inout(reg) out.as_mut_ptr() => _,
                    n = inout(reg) n => _,
                    zp = in(reg) rq.zero_point,
                    lo = in(reg) rq.lo,
                    t = out(reg) _,
                    u = out(reg) _,
                    out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                    options(nostack),
                );
            }
        }
    }

    #[inline]
    fn pack(row: &[i8], k: usize, slot: usize, dst: &mut [u32]) {
        pack_arm(row, k, slot, dst, 0)
    }

    #[inline]
    fn pack_acts(row: &[i8], k: usize, slot: usize, zp: i8, dst: &mut [u32]) {
        pack_arm(row, k, slot, dst, zp)
    }

    #[inline]
    fn dot_row(acts: &[u32], row: &[i8], k: usize) -> i32 {
        let full = k / 4;
        let (acts, row) = (&acts[..4 * k.div_ceil(4)], &row[..k]);
        let mut acc = 0i32;
        if full > 0 {
            // SAFETY: reads `full` words of `row` (unaligned LDR is allowed on the Cortex-M4) and
            // `4 * full` words of `acts` (word aligned, LDRD skips the second pixel slot); all
            // within the slices above. No memory is written.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldr {w}, [{pw}], #4",
                    "ldrd {e}, {o}, [{pa}], #16",
                    "sxtb16 {x}, {w}",
                    "sxtb16 {w}, {w}, ror #8",
                    "smlad {acc}, {e}, {x}, {acc}",
                    "smlad {acc}, {o}, {w}, {acc}",
                    "cmp {pw}, {end}",
                    "bne 2b",
                    pw = inout(reg) row.as_ptr() => _,
                    pa = inout(reg) acts.as_ptr() => _,
                    end = in(reg) row.as_ptr().add(4 * full),
                    acc = inout(reg) acc,
                    w = out(reg) _, x = out(reg) _, e = out(reg) _, o = out(reg) _,
                    options(readonly, nostack),
                );
            }
        }
        if full * 4 < k {
            let tail = dot_row_portable(&acts[4 * full..], &row[4 * full..], k - 4 * full);
            acc = acc.wrapping_add(tail);
        }
        acc
    }
}

/// `SXTB16`-based packing of `row[..k] - zp` (`SSUB16` subtracts the zero point from both
/// halves); the tail quad goes through the portable packer.
#[inline]
fn pack_arm(row: &[i8], k: usize, slot: usize, dst: &mut [u32], zp: i8) {
    let full = k / 4;
    let kq = k.div_ceil(4);
    let (row, dst) = (&row[..k], &mut dst[..4 * kq]);
    let zz = (zp as i16 as u16 as u32) * 0x0001_0001;
    for q in 0..full {
        let b = &row[q * 4..q * 4 + 4];
        let w = u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]);
        let (e, o): (u32, u32);
        // SAFETY: register-only DSP instructions.
        unsafe {
            core::arch::asm!(
                "sxtb16 {e}, {w}",
                "sxtb16 {o}, {w}, ror #8",
                "ssub16 {e}, {e}, {zz}",
                "ssub16 {o}, {o}, {zz}",
                w = in(reg) w, zz = in(reg) zz, e = out(reg) e, o = out(reg) o,
                options(pure, nomem, nostack),
            );
        }
        dst[4 * q + 2 * slot] = e;
        dst[4 * q + 2 * slot + 1] = o;
    }
    if full < kq {
        pack_portable(
            &row[4 * full..],
            k - 4 * full,
            slot,
            &mut dst[4 * full..],
            zp,
        );
    }
}
