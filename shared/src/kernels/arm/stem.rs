//! The 1-channel 3x3 convolution on the DSP ([`conv_3x3_c1_s8`], the stem): dense records, or
//! the zero-skipping stream walked by the generated `stem_sparse.s`.

use crate::caps::Caps;
use crate::kernels::cost::sparse_stem_applies;
use crate::kernels::params::{ConvParams, ConvQuant, as_i8};
use crate::quant::Requant;
use crate::weights::RowDecoder;

/// Words per channel of a [`conv_3x3_c1_s8`] record group: bias, 5 packed weight pairs, scaled
/// multiplier (a group: the channels' first 6 words one after the other, then the multipliers).
const STEM_CHANNEL_WORDS: usize = 7;

/// One 4-channel step of the 1-channel stem: the pixel's 5 packed tap pairs stay in r1..r5;
/// per channel one `LDM` of (bias, 5 weight pairs) and 5 `SMLAD` (the bias is the first
/// accumulator), the 4 sums wait in s0..s3 and the 4 scaled multipliers in s4..s7 (the FPU
/// registers only hold words: no float arithmetic), then per output `SMMULR` (exactly
/// `quant::requantize`'s `(acc * scaled + 2^31) >> 32` for `Requant::high_word` layers), `+ zp`,
/// `SSAT #8`, `$relu`, `STRB`.
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
            "vmov r6, r7, s0, s1",
            "vmov r8, r9, s2, s3",
            "vmov r10, r11, s4, s5",
            "smmulr r6, r6, r10",
            "smmulr r7, r7, r11",
            "vmov r10, r11, s6, s7",
            "smmulr r8, r8, r10",
            "smmulr r9, r9, r11",
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
            "vmov r6, r7, s0, s1",
            "vmov r8, r9, s2, s3",
            "vmov r10, r11, s8, s9",
            "smmulr r6, r6, r10",
            "smmulr r7, r7, r11",
            "vmov r10, r11, s10, s11",
            "smmulr r8, r8, r10",
            "smmulr r9, r9, r11",
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
            "vmov r10, r11, s12, s13",
            "smmulr r6, r6, r10",
            "smmulr r7, r7, r11",
            "vmov r10, r11, s14, s15",
            "smmulr r8, r8, r10",
            "smmulr r9, r9, r11",
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
/// block of channels. Returns `false` (nothing written) unless `cout % 4 == 0`, the layer's shift
/// is in `17..=32` (`Requant::high_word`, one `SMMULR`) and the scratch holds at least one 4-channel group; the caller
/// then runs the packed driver. `reuse`: the previous call was this layer's previous row strip
/// on the same scratch (see `kernels::conv_s8_next_strip`), so records that all fitted at once
/// are still there and are not built again. Sparse rows under about 55 % density take the
/// zero-skipping stream instead (see `cost::sparse_stem_pays`).
///
/// # Safety
/// With `reuse`, the previous call on this scratch slice was this function for the same `w`
/// and `q`, and the scratch was not written since (the zero-skipping stream holds code
/// addresses).
#[inline(never)]
pub unsafe fn conv_3x3_c1_s8<C: Caps>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, C>,
    out: &mut [i8],
    scratch: &mut [i8],
    reuse: bool,
) -> bool {
    let cout = p.output.c as usize;
    let rq = q.requant();
    if !cout.is_multiple_of(4) || !rq.high_word() {
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
    if C::STEM_SPARSE && sparse_stem_applies(w, cout) {
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
                // strip (the caller's contract for `reuse`, see `kernels::conv_s8_next_strip`).
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
    if !C::STEM_DENSE {
        return false; // the packed driver runs it
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

/// The pixel walk of [`conv_3x3_c1_s8`] for the channels `c0..c0 + nc` whose records are `recs`:
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

core::arch::global_asm!(include_str!("stem_sparse.s"), options(raw));

/// Steps of `sqz_stem_sparse_seq` after the 32 channel sequences (indexed by the mask of a
/// channel's nonzero weight pairs): requantise 8 sums, the same with the fused ReLU, return.
const STEM_SEQ_REQUANT: usize = 32;

const STEM_SEQ_REQUANT_RELU: usize = 33;

const STEM_SEQ_EXIT: usize = 34;

unsafe extern "C" {
    /// The addresses (Thumb bit set) of the steps of `sqz_stem_sparse_pixel`, written by
    /// `stem_sparse.s` (generated by `stem_sparse_text.rs`).
    static sqz_stem_sparse_seq: [u32; 35];
    /// One output pixel of the zero-skipping stem: `acts` are its 5 packed tap pairs, `rec` a
    /// stream from [`stem_sparse_records`], `zp` the output zero point, `out` its channels.
    fn sqz_stem_sparse_pixel(rec: *const u32, acts: *const u32, zp: i32, out: *mut i8);
}

/// Words of one 8-channel group of the zero-skipping stem's stream, at most: per channel its
/// bias, up to 5 weight pairs and the next step; the 8 multipliers and the next step.
const STEM_SPARSE_GROUP_WORDS: usize = 8 * 7 + 9;

/// Builds the zero-skipping stem's stream for the groups `g0..g0 + ng` of 8 channels into
/// `rec` (at least `1 + ng * STEM_SPARSE_GROUP_WORDS` words): the first step's address, then
/// per group its channels last to first (so that the pushed sums pop as s0 = first channel),
/// each as (bias, its nonzero weight pairs, the next step), then the group's 8 multipliers and
/// the next step (the next group's last channel, or the exit).
#[inline(never)]
fn stem_sparse_records<C: Caps>(
    rec: &mut [u32],
    w: &RowDecoder<'_, C>,
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
    let rq = q.requant();
    for g in g0..g0 + ng {
        for j in (0..8).rev() {
            let c = 8 * g + j;
            let pairs = stem_weight_pairs::<true, C>(w, c);
            rec[n] = q.bias_at(c) as u32;
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
            rec[n + j] = q.scaled_at(&rq, 8 * g + j) as u32;
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
fn stem_records<C: Caps>(
    rec: &mut [u32],
    w: &RowDecoder<'_, C>,
    q: &ConvQuant<'_>,
    gs: usize,
    g0: usize,
) {
    let rq = q.requant();
    for (g, r) in rec.chunks_exact_mut(gs * STEM_CHANNEL_WORDS).enumerate() {
        for j in 0..gs {
            let c = gs * (g0 + g) + j;
            let t = &mut r[6 * j..6 * j + 6];
            t[0] = q.bias_at(c) as u32;
            t[1..].copy_from_slice(&stem_weight_pairs::<false, C>(w, c));
            r[6 * gs + j] = q.scaled_at(&rq, c) as u32;
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
fn stem_weight_pairs<const SPARSE: bool, C: Caps>(w: &RowDecoder<'_, C>, c: usize) -> [u32; 5] {
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
