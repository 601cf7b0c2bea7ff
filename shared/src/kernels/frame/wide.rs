//! The "wide" convolution driver behind `PortableDot` (the host path): rows of
//! i16 padded to [`LANES`], a 2-pixel x 4-channel micro-kernel (AVX2 `VPMADDWD` when the CPU
//! has it, else SSE2 `PMADDWD` on x86-64, plain Rust on other targets), 4-bit codebook rows
//! decoded straight into i16 (`PSHUFB` on AVX2 CPUs).
//!
//! # Scratch
//! The same `conv_scratch_len(p, dense)` bytes as the packed driver, used differently: the last
//! `k` bytes (compressed weights only) hold a decoded int8 row for encodings without a direct
//! i16 decoder; the rest, from its first 2-aligned byte, holds two pixel rows (`x - in_zp`, i16,
//! `kp = k` rounded up to [`LANES`]) and a block of `nb` weight rows (i16, `kp` each), with `nb`
//! the largest multiple of 4 that fits (at most `ROW_BLOCK`). Each weight is decoded once per
//! block, i.e. once per call: the block never holds more than the scratch allows, so a device
//! build never holds a decompressed layer. When not even 4 rows fit (very short rows, whose
//! padding to 16 costs more than the packed layout), [`conv_wide_s8`] returns `false` and the
//! caller runs the packed driver.
//!
//! Accumulation is `bias + sum((x - in_zp) * w)` in wrapping i32 (order-independent, so equal
//! to the reference bit for bit; `|x - in_zp| <= 255` and `|w| <= 128` keep every `PMADDWD`
//! pair sum exact), requantised by `quant::requant_row`.

//!
//! The micro-kernels: plain Rust in `generic::wide`, SSE2 and AVX2 in `x86::wide`.

use crate::caps::Caps;
use crate::kernels::generic::wide::nibbles_scalar;
#[cfg(not(target_arch = "x86_64"))]
use crate::kernels::generic::wide::{micro_portable, outer_portable};
use crate::kernels::params::{ConvParams, ConvQuant, LANES, ROW_BLOCK, as_i8};
#[cfg(all(target_arch = "x86_64", feature = "std"))]
use crate::kernels::x86::wide::{micro_avx2, nibbles_avx2, outer_avx2};
#[cfg(target_arch = "x86_64")]
use crate::kernels::x86::wide::{micro_sse2, outer_sse2};
use crate::quant::requant_row_inline;
use crate::weights::RowDecoder;

/// Runs the convolution with the best micro-kernel this CPU has (AVX2 on x86-64 when detected,
/// which needs the `std` feature; otherwise the portable one). Same contract as
/// `kernels::conv_s8`; returns `false` (having written nothing) when the scratch
/// cannot hold 4 padded weight rows.
#[inline]
pub fn conv_wide_s8<C: Caps>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, C>,
    out: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { conv_wide_avx2(p, q, input, w, out, scratch) };
    }
    conv_wide_body::<false, C>(p, q, input, w, out, scratch)
}

/// [`conv_wide_s8`] without AVX2 whatever the CPU (SSE2 micro-kernel on x86-64, plain Rust
/// elsewhere; tests run both).
#[inline]
pub fn conv_wide_portable_s8<C: Caps>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, C>,
    out: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    conv_wide_body::<false, C>(p, q, input, w, out, scratch)
}

/// The whole driver compiled with AVX2 enabled (so the loops around the intrinsics, the
/// im2col and the requantisation are vectorised for 256-bit registers as well).
#[cfg(all(target_arch = "x86_64", feature = "std"))]
#[target_feature(enable = "avx2")]
fn conv_wide_avx2<C: Caps>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, C>,
    out: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    conv_wide_body::<true, C>(p, q, input, w, out, scratch)
}

/// Splits the scratch into (pixel rows `2 * kp`, weight rows `nb * kp`, nb, int8 row `k`).
#[allow(clippy::type_complexity)]
fn layout(
    scratch: &mut [i8],
    k: usize,
    kp: usize,
    cout: usize,
    dense: bool,
) -> Option<(&mut [i16], &mut [i16], usize, &mut [i8])> {
    let row_len = if dense { 0 } else { k };
    let (sc, row) = scratch.split_at_mut(scratch.len().checked_sub(row_len)?);
    let skip = sc.as_ptr().align_offset(2).min(1);
    let n16 = sc.len().checked_sub(skip)? / 2;
    let nb = (n16.checked_sub(2 * kp)? / kp)
        .min(ROW_BLOCK)
        .min(cout.next_multiple_of(4))
        & !3;
    if nb < 4 {
        return None;
    }
    let buf = &mut sc[skip..skip + 2 * (2 + nb) * kp];
    // SAFETY: `buf` starts 2-byte aligned (align_offset) and holds exactly `2 * (2 + nb) * kp`
    // bytes; every bit pattern is a valid i16; the borrow of `buf` moves into the result.
    let v =
        unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<i16>(), (2 + nb) * kp) };
    let (a, wts) = v.split_at_mut(2 * kp);
    Some((a, wts, nb, row))
}

#[inline(always)]
fn conv_wide_body<const AVX: bool, C: Caps>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, C>,
    out: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    let k = p.k();
    let kp = k.next_multiple_of(LANES);
    let cout = p.output.c as usize;
    let npix = p.output.h as usize * p.output.w as usize;
    let Some((acts, wts, nb, row)) = layout(scratch, k, kp, cout, w.is_dense()) else {
        return false;
    };
    let (a0, a1) = acts.split_at_mut(kp);
    let rq = q.requant();
    let direct = p.kernel == [1, 1] && p.stride == [1, 1] && p.pad == [0; 4];
    let ow = p.output.w as usize;
    let mut acc = [[0i32; ROW_BLOCK]; 2];
    let mut bias = [0i32; ROW_BLOCK];
    let mut mults = [0i32; ROW_BLOCK];
    if k <= OUTER_MAX_K && nb >= 8 {
        outer::<AVX, C>(p, q, input, w, out, a0, wts, nb & !7, row);
        return true;
    }
    let mut ob = 0;
    while ob < cout {
        let n = nb.min(cout - ob);
        let n4 = n.next_multiple_of(4);
        for j in 0..n4 {
            let dst = &mut wts[j * kp..(j + 1) * kp];
            if j >= n {
                dst.fill(0);
                continue;
            }
            decode::<AVX, C>(w, ob + j, k, row, dst);
            bias[j] = q.bias_at(ob + j);
            mults[j] = q.scaled_at(&rq, ob + j);
        }
        let wb = &wts[..n4 * kp];
        let mut px = 0;
        while px < npix {
            let two = px + 1 < npix;
            fill(p, direct, input, px, ow, q.in_zp, a0);
            if two {
                fill(p, direct, input, px + 1, ow, q.in_zp, a1);
            }
            for j in (0..n4).step_by(4) {
                let r = micro::<AVX>(a0, a1, &wb[j * kp..(j + 4) * kp], kp);
                for c in 0..4 {
                    acc[0][j + c] = r[c].wrapping_add(bias[j + c]);
                    acc[1][j + c] = r[4 + c].wrapping_add(bias[j + c]);
                }
            }
            let o0 = px * p.out_channel_stride + p.out_channel_offset + ob;
            requant_row_inline(&acc[0][..n], &mults[..n], &rq, &mut out[o0..o0 + n]);
            if two {
                let o1 = o0 + p.out_channel_stride;
                requant_row_inline(&acc[1][..n], &mults[..n], &rq, &mut out[o1..o1 + n]);
            }
            px += 2;
        }
        ob += n;
    }
    true
}

/// Longest row for which `outer` (channels in vector lanes) replaces the dot-product
/// micro-kernel: short rows (the 1-channel stem, narrow 1x1 expands) would spend more on the
/// horizontal sums of the dot products than on the products.
pub const OUTER_MAX_K: usize = 32;

/// Short rows: one pixel at a time, channels in vector lanes. The weight block holds, for each
/// pair `t` of row positions, the pair `(w[c][2t], w[c][2t + 1])` of every channel `c < nb`
/// (one u32 each, `kp / 2 * nb` words: the same bytes as `nb` padded rows); a pixel's pair `t`
/// is broadcast and multiplied into all channels at once (`PMADDWD`), so the accumulators are
/// per channel and need no horizontal sums. `nb` is a multiple of 8, `a` holds `kp` i16.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn outer<const AVX: bool, C: Caps>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, C>,
    out: &mut [i8],
    a: &mut [i16],
    wts: &mut [i16],
    nb: usize,
    row: &mut [i8],
) {
    let k = p.k();
    let kp = a.len();
    let th = kp / 2;
    let cout = p.output.c as usize;
    let npix = p.output.h as usize * p.output.w as usize;
    let ow = p.output.w as usize;
    let rq = q.requant();
    let direct = p.kernel == [1, 1] && p.stride == [1, 1] && p.pad == [0; 4];
    let mut acc = [0i32; ROW_BLOCK];
    let mut bias = [0i32; ROW_BLOCK];
    let mut mults = [0i32; ROW_BLOCK];
    let wt = &mut wts[..2 * th * nb];
    let mut ob = 0;
    while ob < cout {
        let n = nb.min(cout - ob);
        for j in 0..nb {
            // Decode into the pixel row (free until the pixel loop), then scatter the pairs.
            if j < n {
                decode::<AVX, C>(w, ob + j, k, row, a);
                bias[j] = q.bias_at(ob + j);
                mults[j] = q.scaled_at(&rq, ob + j);
            } else {
                a.fill(0);
                bias[j] = 0;
            }
            for t in 0..th {
                wt[2 * (t * nb + j)] = a[2 * t];
                wt[2 * (t * nb + j) + 1] = a[2 * t + 1];
            }
        }
        for px in 0..npix {
            fill(p, direct, input, px, ow, q.in_zp, a);
            outer_pixel::<AVX>(a, wt, nb, &bias, &mut acc);
            let o = px * p.out_channel_stride + p.out_channel_offset + ob;
            requant_row_inline(&acc[..n], &mults[..n], &rq, &mut out[o..o + n]);
        }
        ob += n;
    }
}

/// `acc[c] = bias[c] + sum over t of a[2t] * w[t][c].0 + a[2t + 1] * w[t][c].1` for `c < nb`.
#[inline(always)]
fn outer_pixel<const AVX: bool>(a: &[i16], wt: &[i16], nb: usize, bias: &[i32], acc: &mut [i32]) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if AVX {
        // SAFETY: `AVX` is only true inside `conv_wide_avx2`, reached after detecting AVX2.
        unsafe {
            match nb / 8 {
                1 => outer_avx2::<1>(a, wt, bias, acc),
                2 => outer_avx2::<2>(a, wt, bias, acc),
                3 => outer_avx2::<3>(a, wt, bias, acc),
                4 => outer_avx2::<4>(a, wt, bias, acc),
                5 => outer_avx2::<5>(a, wt, bias, acc),
                6 => outer_avx2::<6>(a, wt, bias, acc),
                7 => outer_avx2::<7>(a, wt, bias, acc),
                _ => outer_avx2::<8>(a, wt, bias, acc),
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // 16 channels (4 registers) at a time, then 8.
        let mut c0 = 0;
        while c0 + 16 <= nb {
            outer_sse2::<4>(a, wt, nb, c0, bias, acc);
            c0 += 16;
        }
        if c0 < nb {
            outer_sse2::<2>(a, wt, nb, c0, bias, acc);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    outer_portable(a, wt, nb, bias, acc);
}

/// `dst[..k] = x - zp` of output pixel `px` (im2col, HWC order, padded taps 0), `dst[k..] = 0`.
#[inline(always)]
fn fill(p: &ConvParams, direct: bool, input: &[i8], px: usize, ow: usize, zp: i8, dst: &mut [i16]) {
    let z = zp as i16;
    let c = p.input.c as usize;
    if direct {
        let src = &input[px * c..(px + 1) * c];
        for (d, &x) in dst[..c].iter_mut().zip(src) {
            *d = x as i16 - z;
        }
        dst[c..].fill(0);
        return;
    }
    let (h, w) = (p.input.h as isize, p.input.w as isize);
    let (kh, kw) = (p.kernel[0] as usize, p.kernel[1] as usize);
    let y0 = ((px / ow) * p.stride[0] as usize) as isize - p.pad[0] as isize;
    let x0 = ((px % ow) * p.stride[1] as usize) as isize - p.pad[1] as isize;
    let rl = kw * c;
    let xa = x0.max(0);
    let xb = (x0 + kw as isize).min(w);
    let lead = ((xa - x0) as usize * c).min(rl);
    let len = (xb - xa).max(0) as usize * c;
    for dy in 0..kh {
        let d = &mut dst[dy * rl..(dy + 1) * rl];
        let y = y0 + dy as isize;
        if y < 0 || y >= h || len == 0 {
            d.fill(0);
            continue;
        }
        d[..lead].fill(0);
        let src = &input[(y as usize * w as usize + xa as usize) * c..][..len];
        for (dd, &x) in d[lead..lead + len].iter_mut().zip(src) {
            *dd = x as i16 - z;
        }
        d[lead + len..].fill(0);
    }
    dst[kh * rl..].fill(0);
}

/// Decodes weight row `r` into `dst[..k]` (i16), `dst[k..] = 0`.
#[inline(always)]
fn decode<const AVX: bool, C: Caps>(
    w: &RowDecoder<'_, C>,
    r: usize,
    k: usize,
    row: &mut [i8],
    dst: &mut [i16],
) {
    if let Some(d) = w.dense_row(r) {
        for (o, &v) in dst[..k].iter_mut().zip(as_i8(d)) {
            *o = v as i16;
        }
    } else if let Some((idx, lut)) = w.nibble_row(r) {
        nibbles::<AVX>(idx, lut, &mut dst[..k]);
    } else {
        // A validated model decodes without error (`Model::from_bytes` decoded every row).
        w.decode_row_validated(r, row);
        for (o, &v) in dst[..k].iter_mut().zip(&row[..k]) {
            *o = v as i16;
        }
    }
    dst[k..].fill(0);
}

/// `dst[2i] = lut[idx[i] & 15]`, `dst[2i + 1] = lut[idx[i] >> 4]` (`dst.len() == 2 * idx.len()`).
#[inline(always)]
fn nibbles<const AVX: bool>(idx: &[u8], lut: &[i8; 256], dst: &mut [i16]) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if AVX {
        // SAFETY: `AVX` is only true inside `conv_wide_avx2`, reached after detecting AVX2.
        return unsafe { nibbles_avx2(idx, lut, dst) };
    }
    nibbles_scalar(idx, lut, dst)
}

/// `[a0.w0, a0.w1, a0.w2, a0.w3, a1.w0, .., a1.w3]` over `kp` values, `w` holding 4 rows of
/// `kp` one after the other (wrapping i32).
#[inline(always)]
fn micro<const AVX: bool>(a0: &[i16], a1: &[i16], w: &[i16], kp: usize) -> [i32; 8] {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if AVX {
        // SAFETY: `AVX` is only true inside `conv_wide_avx2`, reached after detecting AVX2.
        return unsafe { micro_avx2(a0, a1, w, kp) };
    }
    #[cfg(target_arch = "x86_64")]
    return micro_sse2(a0, a1, w, kp);
    #[cfg(not(target_arch = "x86_64"))]
    micro_portable(a0, a1, w, kp)
}
