//! Cortex-M4 DSP tier (`SXTB16` + `SMLAD` via `asm!`), compiled on `thumbv7em` (cfg `sqz_dsp`):
//! [`ArmDot`], the 1-channel 3x3 stem kernel ([`conv_3x3_c1_s8`], whose zero-skipping stream is
//! the generated `stem_sparse.s`) and the max pool ([`maxpool_s8_dsp`]).

mod pool;
mod stem;

pub use pool::maxpool_s8_dsp;
pub use stem::conv_3x3_c1_s8;

use crate::kernels::frame::{ConvIsa, DotKernel, SparseBlock, pack_rows_each, zp_pair};
use crate::kernels::generic::dot::{
    dot_row_portable, pack_group_pair_portable, pack_nibbles_portable, pack_portable,
};
use crate::kernels::params::ROW_BLOCK;
use crate::quant::{Requant, requant_row};

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

/// Cortex-M4 DSP dot kernel, and the 1-channel 3x3 stem kernel ([`conv_3x3_c1_s8`]).
#[derive(Debug, Clone, Copy)]
pub struct ArmDot;

impl DotKernel for ArmDot {
    const CONV: ConvIsa = ConvIsa::ArmDsp;
    type Caps = crate::caps::Everything;

    #[inline]
    fn dot_block(
        acts: &[u32],
        wts: &[u32],
        kq: usize,
        npairs: usize,
        beff: &[i32],
        acc: &mut [i32],
    ) {
        const B: usize = ROW_BLOCK;
        const _: () = assert!(4 * ROW_BLOCK == 256, "asm offset");
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
            pack_group_pair_portable(
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
        const B: usize = ROW_BLOCK;
        const _: () = assert!(4 * ROW_BLOCK == 256, "asm offsets");
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
    fn requant_row(acc: &[i32], scaled: &[i32], rq: &Requant, out: &mut [i8]) {
        let n = out.len();
        if !rq.high_word() || n == 0 {
            return requant_row(acc, scaled, rq, out);
        }
        let (acc, scaled) = (&acc[..n], &scaled[..n]);
        // SAFETY: reads `n` words of `acc` and `scaled`, writes `n` bytes of `out` (bounds
        // checked above), one per iteration. With `total == 32`, `SMMULR` is exactly
        // `quant::requantize`'s `(acc * scaled + 2^31) >> 32`; then `+ zp`, `SSAT #8` and the
        // lower bound `lo` (-128 without ReLU, where it never binds).
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {t}, [{a}], #4",
                "ldr {u}, [{m}], #4",
                "smmulr {t}, {t}, {u}",
                "add {t}, {zp}",
                "ssat {t}, #8, {t}",
                "cmp {t}, {lo}",
                "it lt",
                "movlt {t}, {lo}",
                "strb {t}, [{o}], #1",
                "subs {n}, #1",
                "bne 2b",
                a = inout(reg) acc.as_ptr() => _,
                m = inout(reg) scaled.as_ptr() => _,
                o = inout(reg) out.as_mut_ptr() => _,
                n = inout(reg) n => _,
                zp = in(reg) rq.zero_point,
                lo = in(reg) rq.lo,
                t = out(reg) _,
                u = out(reg) _,
                options(nostack),
            );
        }
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

/// The 2x2 block of one channel pair (`[a0.w0, a0.w1, a1.w0, a1.w1]`, wrapping) with `SMLAD`:
/// the single step of [`DotKernel::dot_block`].
#[inline]
pub fn dot_2x2_dsp(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4] {
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
    // SAFETY: under the caller's `# Safety` conditions this reads bytes
    // `r * stride .. r * stride + len` of `src` for `r < rows` (unaligned LDR is allowed on the
    // Cortex-M4) and writes words `4 q + 2 slot` and `4 q + 2 slot + 1` for
    // `q < rows * len / 4`, i.e. within `dst[..rows * len]` (STRD on the word-aligned slice).
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
        // (pair), and the outer loop's overhead showed on the dense fire layers (QEMU bench).
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
