//! Cortex-M4 DSP path (`SXTB16` + `SMLAD` via `asm!`), compiled on `thumbv7em` (cfg `sqz_dsp`).

use crate::bytes::{le_f32_at, le_i32_at};
use crate::kernels::conv::{ConvParams, ConvQuant, as_i8};
use crate::kernels::dot::{
    DotKernel, SparseBlock, dot_row_portable, pack_nibbles_portable, pack_portable, pack_rows_each,
    requant_row_portable, zp_pair,
};
use crate::quant::Requant;
use crate::weights::RowDecoder;

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
    fn conv(
        p: &ConvParams,
        q: &ConvQuant<'_>,
        input: &[i8],
        w: &RowDecoder<'_>,
        out: &mut [i8],
        scratch: &mut [i8],
    ) -> bool {
        // SAFETY: `reuse` false: no contract.
        p.input.c == 1
            && p.kernel == [3, 3]
            && unsafe { stem_c1_3x3(p, q, input, w, out, scratch, false) }
    }

    #[inline]
    unsafe fn conv_next_strip(
        p: &ConvParams,
        q: &ConvQuant<'_>,
        input: &[i8],
        w: &RowDecoder<'_>,
        out: &mut [i8],
        scratch: &mut [i8],
    ) -> bool {
        // SAFETY: the caller's contract is `stem_c1_3x3`'s for `reuse`.
        p.input.c == 1
            && p.kernel == [3, 3]
            && unsafe { stem_c1_3x3(p, q, input, w, out, scratch, true) }
    }

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
            if kq.is_multiple_of(2) {
                dot_block_asm!(acts, wts, kq, npairs, beff, acc, QUAD!(), QUAD!());
            } else {
                dot_block_asm!(acts, wts, kq, npairs, beff, acc, QUAD!());
            }
        }
    }

    #[inline]
    fn pack_group_pair(a: &[i8], b: &[i8], k: usize, half: usize, dst: &mut [u32]) {
        let (a, b, dst) = (&a[..k], &b[..k], &mut dst[..2 * k]);
        let full = k / 4;
        if full > 0 {
            // SAFETY: reads `4 * full <= k` bytes of `a` and `b` (unaligned LDR is allowed on
            // the Cortex-M4); writes words `8q + 2j + (half & 1)` for `q < full`, `j < 4`, all
            // below `8 * full <= 2 * k` (the slice above, word aligned as `&mut [u32]`).
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldr {x}, [{pa}], #4",
                    "ldr {y}, [{pb}], #4",
                    "sxtb16 {a02}, {x}",
                    "sxtb16 {x}, {x}, ror #8",
                    "sxtb16 {b02}, {y}",
                    "sxtb16 {y}, {y}, ror #8",
                    "pkhbt {t}, {a02}, {b02}, lsl #16",
                    "str {t}, [{d}]",
                    "pkhtb {t}, {b02}, {a02}, asr #16",
                    "str {t}, [{d}, #16]",
                    "pkhbt {t}, {x}, {y}, lsl #16",
                    "str {t}, [{d}, #8]",
                    "pkhtb {t}, {y}, {x}, asr #16",
                    "str {t}, [{d}, #24]",
                    "adds {d}, #32",
                    "cmp {pa}, {end}",
                    "bne 2b",
                    pa = inout(reg) a.as_ptr() => _,
                    pb = inout(reg) b.as_ptr() => _,
                    end = in(reg) a.as_ptr().add(4 * full),
                    d = inout(reg) dst.as_mut_ptr().add(half & 1) => _,
                    x = out(reg) _, y = out(reg) _, a02 = out(reg) _, b02 = out(reg) _,
                    t = out(reg) _,
                    options(nostack),
                );
            }
        }
        if 4 * full < k {
            crate::kernels::dot::pack_group_pair_portable(
                &a[4 * full..],
                &b[4 * full..],
                k - 4 * full,
                half,
                &mut dst[8 * full..],
            );
        }
    }

    #[inline]
    fn dot_sparse_block(acts: &[u32], block: &SparseBlock<'_>, acc: &mut [i32]) {
        const B: usize = crate::kernels::conv::ROW_BLOCK;
        const _: () = assert!(4 * crate::kernels::conv::ROW_BLOCK == 256, "asm offsets");
        let (ents, heads) = block.parts();
        if !block.fits(acts.len()) || acc.len() < 4 * B {
            return;
        }
        // SAFETY: `SparseBlock::new` checked 1..=B channels, each with an even count >= 2 of
        // entries, the counts adding up to `ents.len()` (so the 2-entry loop ends exactly on each
        // channel's last entry); `fits` checked that every entry's activation offset leaves two
        // words inside `acts`. Writes `acc[j * B + c]` for j < 4, c < channels (the immediates
        // 256/512/768 are `4 * B * j`). Operands are pinned to named registers; r6/r7 (not
        // nameable) are saved and restored.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "mov r6, r1",
                "mov r7, r4",
                // per channel: (count, bias); accumulators at the bias
                "3:",
                "ldrd r1, r3, [r6], #8",
                "add r1, r0, r1, lsl #2",
                "mov r4, r3",
                "mov r5, r3",
                "mov lr, r3",
                // two entries per iteration: offset (high half) and weight (low half)
                "2:",
                "ldm r0!, {{r8, r12}}",
                "add r9, r2, r8, lsr #16",
                "ldrd r9, r10, [r9]",
                "smlabb r3, r9, r8, r3",
                "smlatb r4, r9, r8, r4",
                "smlabb r5, r10, r8, r5",
                "smlatb lr, r10, r8, lr",
                "add r9, r2, r12, lsr #16",
                "ldrd r9, r10, [r9]",
                "smlabb r3, r9, r12, r3",
                "smlatb r4, r9, r12, r4",
                "smlabb r5, r10, r12, r5",
                "smlatb lr, r10, r12, lr",
                "cmp r0, r1",
                "bne 2b",
                "str r4, [r11, #256]",
                "str r5, [r11, #512]",
                "str lr, [r11, #768]",
                "str r3, [r11], #4",
                "cmp r6, r7",
                "bne 3b",
                "pop {{r6, r7}}",
                inout("r0") ents.as_ptr() => _,
                inout("r1") heads.as_ptr() => _,
                inout("r2") acts.as_ptr() => _,
                inout("r4") heads.as_ptr().add(heads.len()) => _,
                inout("r11") acc.as_mut_ptr() => _,
                out("r3") _, out("r5") _, out("lr") _,
                out("r8") _, out("r9") _, out("r10") _, out("r12") _,
            );
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
    fn pack_acts_rows(
        src: &[i8],
        stride: usize,
        len: usize,
        rows: usize,
        slot: usize,
        zp: i8,
        dst: &mut [u32],
    ) {
        let fits = rows > 0
            && len > 0
            && len.is_multiple_of(4)
            && stride >= len
            && slot < 2
            && (rows - 1) * stride + len <= src.len()
            && rows * len <= dst.len();
        if !fits {
            // Shapes the asm does not take: the generic per-row packing.
            return pack_rows_each(src, stride, len, rows, slot, zp, dst, Self::pack_acts);
        }
        // SAFETY: the conditions `pack_rows_asm` needs, checked above.
        unsafe { pack_rows_asm(src, stride, len, rows, slot, zp_pair(zp), dst) }
    }

    #[inline]
    fn pack_nibbles(idx: &[u8], t16: &[u16; 256], k: usize, slot: usize, dst: &mut [u32]) {
        let full = k / 4;
        let kq = k.div_ceil(4);
        let (idx, dst) = (&idx[..k / 2], &mut dst[..4 * kq]);
        // Two quads per step while at least two remain (one word of 8 indices), then the rest
        // one quad at a time.
        let twos = full / 2;
        if twos > 0 && slot < 2 {
            // SAFETY: reads `4 * twos <= 2 * full <= idx.len()` index bytes (unaligned LDR is
            // allowed on the Cortex-M4) and table entries `t16[b]` for bytes `b < 256`; writes
            // words `4 q + 2 slot` and `4 q + 2 slot + 1` for `q < 2 * twos <= full`, inside
            // `dst[..4 * kq]` (`slot < 2`; STRD on the word-aligned slice). Per quad as below.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldr {i}, [{p}], #4",
                    "uxtb {a}, {i}",
                    "ubfx {b}, {i}, #8, #8",
                    "ldrh {a}, [{t}, {a}, lsl #1]",
                    "ldrh {b}, [{t}, {b}, lsl #1]",
                    "orr {a}, {a}, {b}, lsl #16",
                    "sxtb16 {b}, {a}",
                    "sxtb16 {a}, {a}, ror #8",
                    "strd {b}, {a}, [{d}], #16",
                    "ubfx {a}, {i}, #16, #8",
                    "lsrs {i}, {i}, #24",
                    "ldrh {a}, [{t}, {a}, lsl #1]",
                    "ldrh {i}, [{t}, {i}, lsl #1]",
                    "orr {a}, {a}, {i}, lsl #16",
                    "sxtb16 {i}, {a}",
                    "sxtb16 {a}, {a}, ror #8",
                    "strd {i}, {a}, [{d}], #16",
                    "cmp {p}, {end}",
                    "bne 2b",
                    p = inout(reg) idx.as_ptr() => _,
                    end = in(reg) idx.as_ptr().add(4 * twos),
                    t = in(reg) t16.as_ptr(),
                    d = inout(reg) dst.as_mut_ptr().add(2 * slot) => _,
                    i = out(reg) _, a = out(reg) _, b = out(reg) _,
                    options(nostack),
                );
            }
        }
        if full > 2 * twos && slot < 2 {
            let q0 = 2 * twos;
            let (idx, dst) = (&idx[2 * q0..], &mut dst[4 * q0..]);
            // SAFETY: reads the remaining `2 * (full - q0)` index bytes (`idx` now starts at
            // quad `q0`; LDRH may be unaligned on the Cortex-M4) and table entries `t16[b]` for
            // bytes `b < 256`; writes words `4 q + 2 slot` and `4 q + 2 slot + 1` for
            // `q < full - q0` of the shifted `dst`, i.e. inside the original `dst[..4 * kq]`
            // (`slot < 2`; STRD on the word-aligned slice). Per quad: the two index bytes, their
            // two byte pairs, then SXTB16 splits [w0, w1, w2, w3] into the even and odd pairs.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldrh {i}, [{p}], #2",
                    "uxtb {a}, {i}",
                    "lsrs {i}, {i}, #8",
                    "ldrh {a}, [{t}, {a}, lsl #1]",
                    "ldrh {i}, [{t}, {i}, lsl #1]",
                    "orr {a}, {a}, {i}, lsl #16",
                    "sxtb16 {i}, {a}",
                    "sxtb16 {a}, {a}, ror #8",
                    "strd {i}, {a}, [{d}], #16",
                    "cmp {p}, {end}",
                    "bne 2b",
                    p = inout(reg) idx.as_ptr() => _,
                    end = in(reg) idx.as_ptr().add(2 * (full - q0)),
                    t = in(reg) t16.as_ptr(),
                    d = inout(reg) dst.as_mut_ptr().add(2 * slot) => _,
                    i = out(reg) _, a = out(reg) _,
                    options(nostack),
                );
            }
        }
        if full < kq {
            pack_nibbles_portable(
                &idx[2 * full..],
                t16,
                k - 4 * full,
                slot,
                &mut dst[4 * full..],
            );
        }
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

/// The `SXTB16` packing loop of [`pack_arm`] over `rows` rows of `len` bytes, `stride` apart,
/// quads laid one after the other in slot `slot` of `dst`; `zz` is the zero point in both
/// halves (`SSUB16` subtracts it).
///
/// # Safety
/// `rows > 0`, `len > 0`, `len % 4 == 0`, `stride >= len`, `slot < 2`,
/// `(rows - 1) * stride + len <= src.len()` and `rows * len <= dst.len()`.
#[inline]
unsafe fn pack_rows_asm(
    src: &[i8],
    stride: usize,
    len: usize,
    rows: usize,
    slot: usize,
    zz: u32,
    dst: &mut [u32],
) {
    // SAFETY (caller): reads bytes `r * stride .. r * stride + len` of `src` for `r < rows`
    // (unaligned LDR is allowed on the Cortex-M4); writes words `4 q + 2 slot` and
    // `4 q + 2 slot + 1` for `q < rows * len / 4`, i.e. within `dst[..rows * len]` (STRD on the
    // word-aligned slice).
    unsafe {
        core::arch::asm!(
            "2:",
            "add {end}, {p}, {len}",
            "3:",
            "ldr {w}, [{p}], #4",
            "sxtb16 {e}, {w}",
            "sxtb16 {w}, {w}, ror #8",
            "ssub16 {e}, {e}, {zz}",
            "ssub16 {w}, {w}, {zz}",
            "strd {e}, {w}, [{d}], #16",
            "cmp {p}, {end}",
            "bne 3b",
            "add {p}, {p}, {skip}",
            "subs {n}, {n}, #1",
            "bne 2b",
            p = inout(reg) src.as_ptr() => _,
            end = out(reg) _,
            len = in(reg) len,
            skip = in(reg) stride - len,
            n = inout(reg) rows => _,
            d = inout(reg) dst.as_mut_ptr().add(2 * slot) => _,
            zz = in(reg) zz,
            w = out(reg) _, e = out(reg) _,
            options(nostack),
        );
    }
}

/// `SXTB16`-based packing of `row[..k] - zp` (`SSUB16` subtracts the zero point from both
/// halves); the tail quad goes through the portable packer.
#[inline]
fn pack_arm(row: &[i8], k: usize, slot: usize, dst: &mut [u32], zp: i8) {
    let full = k / 4;
    let kq = k.div_ceil(4);
    let (row, dst) = (&row[..k], &mut dst[..4 * kq]);
    if full > 0 && slot < 2 {
        // The one-row loop of `pack_rows_asm` without its row loop: this runs once per pixel
        // (pair) and the outer loop cost 0.2-1 % on the dense fire layers (QEMU bench).
        // SAFETY: reads `4 * full <= k` bytes of `row` (unaligned LDR is allowed on the
        // Cortex-M4); writes words `4 q + 2 slot` and `4 q + 2 slot + 1` for `q < full`, inside
        // `dst[..4 * kq]` (`slot < 2`; STRD on the word-aligned slice).
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {w}, [{p}], #4",
                "sxtb16 {e}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                "ssub16 {e}, {e}, {zz}",
                "ssub16 {w}, {w}, {zz}",
                "strd {e}, {w}, [{d}], #16",
                "cmp {p}, {end}",
                "bne 2b",
                p = inout(reg) row.as_ptr() => _,
                end = in(reg) row.as_ptr().add(4 * full),
                d = inout(reg) dst.as_mut_ptr().add(2 * slot) => _,
                zz = in(reg) zp_pair(zp),
                w = out(reg) _, e = out(reg) _,
                options(nostack),
            );
        }
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

/// Words per channel of a [`stem_c1_3x3`] record group: bias, 5 packed weight pairs, f32
/// multiplier (a group: the channels' first 6 words one after the other, then the multipliers).
const STEM_CHANNEL_WORDS: usize = 7;

/// One 4-channel step of the 1-channel stem: the pixel's 5 packed tap pairs stay in r1..r5;
/// per channel one `LDM` of (bias, 5 weight pairs) and 5 `SMLAD` (the bias is the first
/// accumulator), the 4 sums go to s0..s3, then the 4 multipliers (`VLDMIA`), `VCVT`, `VMUL`,
/// `VCVTR` (round to nearest even, FPSCR reset mode), `+ zp`, `SSAT #8`, `$relu`, 4 `STRB`.
macro_rules! stem_asm {
    ($rec:expr, $end:expr, $acts:expr, $zp:expr, $out:expr, $relu:expr) => {
        core::arch::asm!(
            "push {{r6, r7, r8}}",
            "2:",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s0, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s1, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s2, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s3, r6",
            "vldmia r0!, {{s4-s7}}",
            "vcvt.f32.s32 s0, s0",
            "vcvt.f32.s32 s1, s1",
            "vcvt.f32.s32 s2, s2",
            "vcvt.f32.s32 s3, s3",
            "vmul.f32 s0, s0, s4",
            "vmul.f32 s1, s1, s5",
            "vmul.f32 s2, s2, s6",
            "vmul.f32 s3, s3, s7",
            "vcvtr.s32.f32 s0, s0",
            "vcvtr.s32.f32 s1, s1",
            "vcvtr.s32.f32 s2, s2",
            "vcvtr.s32.f32 s3, s3",
            "vmov r6, r7, s0, s1",
            "vmov r8, r9, s2, s3",
            "add r6, r6, r12",
            "add r7, r7, r12",
            "add r8, r8, r12",
            "add r9, r9, r12",
            "ssat r6, #8, r6",
            "ssat r7, #8, r7",
            "ssat r8, #8, r8",
            "ssat r9, #8, r9",
            $relu,
            "strb r9, [lr, #3]",
            "strb r8, [lr, #2]",
            "strb r7, [lr, #1]",
            "strb r6, [lr], #4",
            "ldr r6, [sp, #8]",
            "cmp r0, r6",
            "bne 2b",
            "pop {{r6, r7, r8}}",
            inout("r0") $rec => _,
            in("r1") $acts[0],
            in("r2") $acts[1],
            in("r3") $acts[2],
            in("r4") $acts[3],
            in("r5") $acts[4],
            inout("r8") $end => _,
            in("r12") $zp,
            inout("lr") $out => _,
            out("r9") _, out("r10") _, out("r11") _,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
        )
    };
}

/// The 8-channel variant of `stem_asm!` (`cout % 8 == 0`): records of 8 x (bias, 5 weight
/// pairs) then 8 multipliers; 8 sums in s0..s7, multipliers in s8..s15, one loop test per 8
/// outputs.
macro_rules! stem8_asm {
    ($rec:expr, $end:expr, $acts:expr, $zp:expr, $out:expr, $relu:expr) => {
        core::arch::asm!(
            "push {{r6, r7, r8}}",
            "2:",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s0, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s1, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s2, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s3, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s4, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s5, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s6, r6",
            "ldm r0!, {{r6, r7, r8, r9, r10, r11}}",
            "smlad r6, r1, r7, r6",
            "smlad r6, r2, r8, r6",
            "smlad r6, r3, r9, r6",
            "smlad r6, r4, r10, r6",
            "smlad r6, r5, r11, r6",
            "vmov s7, r6",
            "vldmia r0!, {{s8-s15}}",
            "vcvt.f32.s32 s0, s0",
            "vcvt.f32.s32 s1, s1",
            "vcvt.f32.s32 s2, s2",
            "vcvt.f32.s32 s3, s3",
            "vcvt.f32.s32 s4, s4",
            "vcvt.f32.s32 s5, s5",
            "vcvt.f32.s32 s6, s6",
            "vcvt.f32.s32 s7, s7",
            "vmul.f32 s0, s0, s8",
            "vmul.f32 s1, s1, s9",
            "vmul.f32 s2, s2, s10",
            "vmul.f32 s3, s3, s11",
            "vmul.f32 s4, s4, s12",
            "vmul.f32 s5, s5, s13",
            "vmul.f32 s6, s6, s14",
            "vmul.f32 s7, s7, s15",
            "vcvtr.s32.f32 s0, s0",
            "vcvtr.s32.f32 s1, s1",
            "vcvtr.s32.f32 s2, s2",
            "vcvtr.s32.f32 s3, s3",
            "vcvtr.s32.f32 s4, s4",
            "vcvtr.s32.f32 s5, s5",
            "vcvtr.s32.f32 s6, s6",
            "vcvtr.s32.f32 s7, s7",
            "vmov r6, r7, s0, s1",
            "vmov r8, r9, s2, s3",
            "add r6, r6, r12",
            "add r7, r7, r12",
            "add r8, r8, r12",
            "add r9, r9, r12",
            "ssat r6, #8, r6",
            "ssat r7, #8, r7",
            "ssat r8, #8, r8",
            "ssat r9, #8, r9",
            $relu,
            "strb r6, [lr, #0]",
            "strb r7, [lr, #1]",
            "strb r8, [lr, #2]",
            "strb r9, [lr, #3]",
            "vmov r6, r7, s4, s5",
            "vmov r8, r9, s6, s7",
            "add r6, r6, r12",
            "add r7, r7, r12",
            "add r8, r8, r12",
            "add r9, r9, r12",
            "ssat r6, #8, r6",
            "ssat r7, #8, r7",
            "ssat r8, #8, r8",
            "ssat r9, #8, r9",
            $relu,
            "strb r6, [lr, #4]",
            "strb r7, [lr, #5]",
            "strb r8, [lr, #6]",
            "strb r9, [lr, #7]",
            "adds lr, lr, #8",
            "ldr r6, [sp, #8]",
            "cmp r0, r6",
            "bne 2b",
            "pop {{r6, r7, r8}}",
            inout("r0") $rec => _,
            in("r1") $acts[0],
            in("r2") $acts[1],
            in("r3") $acts[2],
            in("r4") $acts[3],
            in("r5") $acts[4],
            inout("r8") $end => _,
            in("r12") $zp,
            inout("lr") $out => _,
            out("r9") _, out("r10") _, out("r11") _,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            out("s8") _, out("s9") _, out("s10") _, out("s11") _,
            out("s12") _, out("s13") _, out("s14") _, out("s15") _,
        )
    };
}

/// `max(q, zp)` for the four results (fused ReLU: `lo = zp`).
macro_rules! RELU4 {
    () => {
        concat!(
            "cmp r6, r12\n",
            "it lt\n",
            "movlt r6, r12\n",
            "cmp r7, r12\n",
            "it lt\n",
            "movlt r7, r12\n",
            "cmp r8, r12\n",
            "it lt\n",
            "movlt r8, r12\n",
            "cmp r9, r12\n",
            "it lt\n",
            "movlt r9, r12\n",
        )
    };
}

/// The 1-channel 3x3 convolution (the stem, any stride and padding) on the DSP: channels are
/// processed 8 (or 4) at a time against one pixel's 9 taps held in registers as 5 packed pairs
/// (`(x - zp)` as i16, the 10th tap 0), so each output costs 5 `SMLAD` and its share of one
/// requantisation sequence (see `stem_asm!`). Per-channel records (bias, packed weight pairs,
/// multiplier) fill the scratch; when not all channels fit, the pixels are walked once per
/// block of channels. Returns `false` (nothing written) unless `cout % 4 == 0`, the layer takes
/// the f32 requantisation path and the scratch holds at least one 4-channel group; the caller
/// then runs the packed driver. `reuse`: the previous call was this layer's previous row strip
/// on the same scratch (see [`DotKernel::conv_next_strip`]), so records that all fitted at once
/// are still there and are not built again. Sparse rows under about 55 % density take the
/// zero-skipping stream instead (see [`sparse_stem_pays`]).
///
/// # Safety
/// With `reuse`, the previous call on this scratch slice was this function for the same `w`
/// and `q`, and the scratch was not written since (the zero-skipping stream holds code
/// addresses).
#[inline(never)]
unsafe fn stem_c1_3x3(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_>,
    out: &mut [i8],
    scratch: &mut [i8],
    reuse: bool,
) -> bool {
    let cout = p.output.c as usize;
    let rq = q.requant();
    if !cout.is_multiple_of(4) || rq.fixed.is_some() {
        return false;
    }
    let skip = scratch.as_ptr().align_offset(4).min(3);
    let nwords = scratch.len().saturating_sub(skip) / 4;
    // 8 channels per asm step when the channel count allows (one loop test and one
    // multiplier load per 8 outputs), else 4.
    let gs = if cout.is_multiple_of(8) { 8 } else { 4 };
    let gw = gs * STEM_CHANNEL_WORDS;
    let groups = cout / gs;
    let fit = nwords / gw;
    if fit == 0 {
        return false;
    }
    let nblocks = groups.div_ceil(fit);
    let gb = groups.div_ceil(nblocks);
    let buf = &mut scratch[skip..skip + 4 * gb * gw];
    // SAFETY: `buf` starts 4-byte aligned (align_offset) and holds exactly `4 * gb * gw` bytes;
    // every bit pattern is a valid u32.
    let rec = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u32>(), gb * gw) };
    let zp = q.in_zp as i32;
    let relu = rq.lo > -128;
    let input = &input[..p.input.h as usize * p.input.w as usize];
    // `sparse_stem_pays` implies `cout % 8 == 0`, so `gs == 8` here.
    if sparse_stem_pays(w, cout) {
        let gw = STEM_SPARSE_GROUP_WORDS;
        let fit = nwords.saturating_sub(1) / gw;
        if fit > 0 {
            let nblocks = groups.div_ceil(fit);
            let gb = groups.div_ceil(nblocks);
            let buf = &mut scratch[skip..skip + 4 * (1 + gb * gw)];
            // SAFETY: as above, `buf` is 4-byte aligned and holds exactly `1 + gb * gw` words.
            let rec = unsafe {
                core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u32>(), 1 + gb * gw)
            };
            let mut g0 = 0;
            while g0 < groups {
                let ng = gb.min(groups - g0);
                // One block holding every group is still in the scratch from the previous
                // strip (the caller's contract for `reuse`, see `DotKernel::conv_next_strip`).
                if !(reuse && nblocks == 1) {
                    stem_sparse_records(rec, w, q, g0, ng, relu);
                }
                // SAFETY: `rec` holds the stream `stem_sparse_records` built for the `8 * ng`
                // channels from `8 * g0` (just now, or for the previous strip under the
                // `reuse` contract).
                unsafe {
                    stem_pixels::<true>(p, zp, &rq, relu, input, rec, 8, 8 * g0, 8 * ng, out);
                }
                g0 += ng;
            }
            return true;
        }
    }
    let mut g0 = 0;
    while g0 < groups {
        let ng = gb.min(groups - g0);
        // One block holding every group is still in the scratch from the previous strip.
        if !(reuse && nblocks == 1) {
            stem_records(&mut rec[..ng * gw], w, q, gs, g0);
        }
        // SAFETY: dense records (`THREADED = false`) are checked for shape by the walk.
        unsafe {
            stem_pixels::<false>(
                p,
                zp,
                &rq,
                relu,
                input,
                &rec[..ng * gw],
                gs,
                gs * g0,
                gs * ng,
                out,
            );
        }
        g0 += ng;
    }
    true
}

/// The pixel walk of [`stem_c1_3x3`] for the channels `c0..c0 + nc` whose records are `recs`:
/// dense record groups (`THREADED = false`, see `stem_asm!`) or the zero-skipping stream of
/// [`stem_sparse_records`]. Out of line so that the record building does not change its
/// register allocation.
///
/// # Safety
/// With `THREADED`, `recs` must hold a stream that [`stem_sparse_records`] built for exactly
/// the `nc` channels from `c0` (the asm jumps to the addresses it names).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn stem_pixels<const THREADED: bool>(
    p: &ConvParams,
    zp: i32,
    rq: &Requant,
    relu: bool,
    input: &[i8],
    recs: &[u32],
    gs: usize,
    c0: usize,
    nc: usize,
    out: &mut [i8],
) {
    // The asm walks one record group per `gs` channels, from the start of `recs` to its end.
    if !matches!(gs, 4 | 8)
        || nc == 0
        || !nc.is_multiple_of(gs)
        || (!THREADED && recs.len() != nc * STEM_CHANNEL_WORDS)
        || (THREADED && (gs != 8 || recs.len() < 1 + nc / 8 * (8 * 2 + 9)))
    {
        return;
    }
    let (h, iw) = (p.input.h as isize, p.input.w as isize);
    let (oh, ow) = (p.output.h as usize, p.output.w as usize);
    let (sy, sx) = (p.stride[0] as isize, p.stride[1] as isize);
    let (py, px0) = (p.pad[0] as isize, p.pad[1] as isize);
    for oy in 0..oh {
        let y0 = oy as isize * sy - py;
        for ox in 0..ow {
            let x0 = ox as isize * sx - px0;
            let acts = if y0 >= 0 && y0 + 3 <= h && x0 >= 0 && x0 + 3 <= iw {
                let b = (y0 * iw + x0) as usize;
                let r = iw as usize;
                // One bounds check for the whole window (its last tap).
                let win = &input[b..b + 2 * r + 3];
                // SAFETY: every index below is at most `2 * r + 2 < win.len()`.
                let v = |i: usize| unsafe { *win.get_unchecked(i) } as i32 - zp;
                [
                    pair(v(0), v(1)),
                    pair(v(2), v(r)),
                    pair(v(r + 1), v(r + 2)),
                    pair(v(2 * r), v(2 * r + 1)),
                    pair(v(2 * r + 2), 0),
                ]
            } else {
                let mut t = [0i32; 10];
                for dy in 0..3 {
                    let y = y0 + dy as isize;
                    for dx in 0..3 {
                        let x = x0 + dx as isize;
                        if y >= 0 && y < h && x >= 0 && x < iw {
                            t[3 * dy + dx] = input[(y * iw + x) as usize] as i32 - zp;
                        }
                    }
                }
                [
                    pair(t[0], t[1]),
                    pair(t[2], t[3]),
                    pair(t[4], t[5]),
                    pair(t[6], t[7]),
                    pair(t[8], 0),
                ]
            };
            let o = (oy * ow + ox) * p.out_channel_stride + p.out_channel_offset + c0;
            let dst = &mut out[o..o + nc];
            if THREADED {
                // SAFETY: the stream (the caller's contract) steps through `nc / 8` groups of
                // 8 channels, each writing 8 bytes of `dst` (`nc` bytes, bounds checked by
                // the slicing above) and reading only its own records, then exits;
                // `acts` is 5 words; the function is `extern "C"` and saves what it uses.
                unsafe {
                    sqz_stem_sparse_pixel(
                        recs.as_ptr(),
                        acts.as_ptr(),
                        rq.zero_point,
                        dst.as_mut_ptr(),
                    );
                }
                continue;
            }
            let range = recs.as_ptr_range();
            // SAFETY: reads the `nc / gs` record groups of `recs` (`gs * STEM_CHANNEL_WORDS`
            // words each, checked on entry; word aligned) from `range.start` to `range.end`
            // exactly, one group per `gs` bytes written of the `nc` bytes of `dst`
            // (bounds checked by the slicing above). r6/r7 (not nameable) and r8 (the end
            // pointer, kept on the stack) are saved and restored; every other register used
            // is a declared operand or clobber.
            unsafe {
                let (a, b, z, d) = (range.start, range.end, rq.zero_point, dst.as_mut_ptr());
                match (gs, relu) {
                    (8, true) => stem8_asm!(a, b, acts, z, d, RELU4!()),
                    (8, false) => stem8_asm!(a, b, acts, z, d, ""),
                    (_, true) => stem_asm!(a, b, acts, z, d, RELU4!()),
                    (_, false) => stem_asm!(a, b, acts, z, d, ""),
                }
            }
        }
    }
}

core::arch::global_asm!(include_str!("arm_stem_sparse.s"), options(raw));

/// Steps of `sqz_stem_sparse_seq` after the 32 channel sequences (indexed by the mask of a
/// channel's nonzero weight pairs): requantise 8 sums, the same with the fused ReLU, return.
const STEM_SEQ_REQUANT: usize = 32;
const STEM_SEQ_REQUANT_RELU: usize = 33;
const STEM_SEQ_EXIT: usize = 34;

unsafe extern "C" {
    /// The addresses (Thumb bit set) of the steps of `sqz_stem_sparse_pixel`, written by
    /// `arm_stem_sparse.s` (generated by `arm_stem_sparse_text.rs`).
    static sqz_stem_sparse_seq: [u32; 35];
    /// One output pixel of the zero-skipping stem: `acts` are its 5 packed tap pairs, `rec` a
    /// stream from [`stem_sparse_records`], `zp` the output zero point, `out` its channels.
    fn sqz_stem_sparse_pixel(rec: *const u32, acts: *const u32, zp: i32, out: *mut i8);
}

/// Words of one 8-channel group of the zero-skipping stem's stream, at most: per channel its
/// bias, up to 5 weight pairs and the next step; the 8 multipliers and the next step.
const STEM_SPARSE_GROUP_WORDS: usize = 8 * 7 + 9;

/// [`crate::kernels::conv::sparse_stem_pays`] for these rows; dense and codebook rows keep
/// the kernel that multiplies every weight, as in the fire layers.
fn sparse_stem_pays(w: &RowDecoder<'_>, cout: usize) -> bool {
    w.stored_entries(0, cout)
        .is_some_and(|e| crate::kernels::conv::sparse_stem_pays(e, cout))
}

/// Builds the zero-skipping stem's stream for the groups `g0..g0 + ng` of 8 channels into
/// `rec` (at least `1 + ng * STEM_SPARSE_GROUP_WORDS` words): the first step's address, then
/// per group its channels last to first (so that the pushed sums pop as s0 = first channel),
/// each as (bias, its nonzero weight pairs, the next step), then the group's 8 multipliers and
/// the next step (the next group's last channel, or the exit).
#[inline(never)]
fn stem_sparse_records(
    rec: &mut [u32],
    w: &RowDecoder<'_>,
    q: &ConvQuant<'_>,
    g0: usize,
    ng: usize,
    relu: bool,
) {
    // SAFETY: a static table written by the assembly, never modified.
    let seq = unsafe { &*core::ptr::addr_of!(sqz_stem_sparse_seq) };
    let rec = &mut rec[..1 + ng * STEM_SPARSE_GROUP_WORDS];
    let requant = seq[if relu {
        STEM_SEQ_REQUANT_RELU
    } else {
        STEM_SEQ_REQUANT
    }];
    // `next` is the word that will name the step after the one just written.
    let (mut next, mut n) = (0, 1);
    for g in g0..g0 + ng {
        for j in (0..8).rev() {
            let c = 8 * g + j;
            let pairs = stem_weight_pairs::<true>(w, c);
            rec[n] = le_i32_at(q.bias, c) as u32;
            n += 1;
            let mut mask = 0;
            for (i, &x) in pairs.iter().enumerate() {
                if x != 0 {
                    mask |= 1 << i;
                    rec[n] = x;
                    n += 1;
                }
            }
            rec[next] = seq[mask];
            next = n;
            n += 1;
        }
        rec[next] = requant;
        for j in 0..8 {
            rec[n + j] = le_f32_at(q.multipliers, 8 * g + j).to_bits();
        }
        next = n + 8;
        n += 9;
    }
    rec[next] = seq[STEM_SEQ_EXIT];
}

/// Fills the records of the groups of `gs` channels from group `g0` on (one group per `gs *
/// STEM_CHANNEL_WORDS` words of `rec`). Kept out of line: inlined, it changed the register
/// allocation of the pixel loop (+7 instructions a pixel).
#[inline(never)]
fn stem_records(rec: &mut [u32], w: &RowDecoder<'_>, q: &ConvQuant<'_>, gs: usize, g0: usize) {
    for (g, r) in rec.chunks_exact_mut(gs * STEM_CHANNEL_WORDS).enumerate() {
        for j in 0..gs {
            let c = gs * (g0 + g) + j;
            let t = &mut r[6 * j..6 * j + 6];
            t[0] = le_i32_at(q.bias, c) as u32;
            t[1..].copy_from_slice(&stem_weight_pairs::<false>(w, c));
            r[6 * gs + j] = le_f32_at(q.multipliers, c).to_bits();
        }
    }
}

/// Row `c` (9 weights) of a stem as the 5 packed pairs of its record (the 10th weight 0),
/// decoded straight from each encoding's bytes: the rows are too short for the generic decoder's
/// set-up to pay off.
///
/// `SPARSE`: the rows are known to be sparse (the zero-skipping stream), so the dense and
/// codebook branches are left out of that copy.
#[inline(always)]
fn stem_weight_pairs<const SPARSE: bool>(w: &RowDecoder<'_>, c: usize) -> [u32; 5] {
    let mut row = [0i8; 9];
    let (dense, nibbles) = if SPARSE {
        (None, None)
    } else {
        (w.dense_row(c), w.nibbles())
    };
    if let Some(d) = dense {
        row.copy_from_slice(as_i8(&d[..9]));
    } else if let Some((idx, lut)) = nibbles {
        // Nibbles 9c ..= 9c + 8 lie in the 5 bytes from byte 9c / 2, the first in a high
        // nibble when 9c is odd.
        let n0 = 9 * c;
        if let Some(b) = idx.get(n0 / 2..n0 / 2 + 5) {
            let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let (first8, last) = if n0.is_multiple_of(2) {
                (lo, b[4] & 15)
            } else {
                ((lo >> 4) | ((b[4] as u32) << 28), b[4] >> 4)
            };
            for (i, x) in row[..8].iter_mut().enumerate() {
                *x = lut[((first8 >> (4 * i)) & 15) as usize];
            }
            row[8] = lut[last as usize];
        }
    } else if let Some((entries, gb, lut)) = w.byte_entries_row(c) {
        let mut pos = 0usize;
        for &e in entries {
            pos += (e as usize) & ((1 << gb) - 1);
            // A validated model stores positions below 9; others are ignored.
            if let Some(x) = row.get_mut(pos) {
                *x = lut[(e >> gb) as usize];
            }
            pos += 1;
        }
    } else {
        w.decode_row_validated(c, &mut row);
    }
    let t = |i: usize| row[i] as i32;
    [
        pair(t(0), t(1)),
        pair(t(2), t(3)),
        pair(t(4), t(5)),
        pair(t(6), t(7)),
        pair(t(8), 0),
    ]
}

/// `lo | hi << 16` as i16 halves.
#[inline(always)]
fn pair(lo: i32, hi: i32) -> u32 {
    (lo as u16 as u32) | ((hi as u16 as u32) << 16)
}
