//! The packed 2x2 driver ([`conv_packed_s8`]), for any geometry.

use crate::kernels::frame::{DotKernel, nibble_pair_table};
use crate::kernels::params::{
    ConvParams, ConvQuant, ROW_BLOCK, as_i8, fitting_block, scratch_tail, take_words,
};
use crate::quant::requantize;
use crate::weights::RowDecoder;

/// The packed 2x2 driver, any kernel, stride and padding: per block
/// of channels (as many as the scratch holds, see `params::fitting_block`), rows decoded and
/// packed once ([`DotKernel::pack_acts`], [`DotKernel::pack_nibbles`] for 4-bit codebooks),
/// then per pair of output pixels [`DotKernel::dot_block`] and [`DotKernel::requant_row`].
///
/// * `input`: `p.input` NHWC int8; `out`: `p.output.h * p.output.w * p.out_channel_stride`
///   int8, channels `out_channel_offset..+output.c` of each pixel written, others untouched.
/// * `w`: `cout` rows of `k = kh * kw * cin` (OHWI), dense or compressed.
/// * `acc = bias[c] + sum((x - in_zp) * w)` (padded taps hold `in_zp`), the zero point
///   subtracted while packing the pixels, then the requantisation (fused ReLU).
/// * `scratch.len() >= conv_scratch_len(p, w.is_dense())`.
///
/// Preconditions (checked by `Model::from_bytes`, only `debug_assert`ed by the dispatcher):
/// consistent dims, buffer lengths as above. One output pixel (the deepest fires at small
/// inputs, the classifier) takes no weight packing: the raw rows against the packed pixel
/// ([`DotKernel::dot_row`]).
pub fn conv_packed_s8<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, K::Caps>,
    out: &mut [i8],
    scratch: &mut [i8],
) {
    let k = p.k();
    let kq = k.div_ceil(4);
    let cout = p.output.c as usize;
    let npix = p.output.h as usize * p.output.w as usize;
    let direct = p.direct();
    let nb = fitting_block(p, w.is_dense(), scratch.len());
    // When the scratch (which may be longer than `conv_scratch_len`) holds every pixel pair's
    // packed activations next to the weight block, they are packed once instead of once per
    // block of channels (the small deep layers: many blocks, few pixels).
    let np = npix.div_ceil(2);
    let extra = scratch_tail(p, w.is_dense());
    let all = np > 1 && 3 + 16 * kq * np + 8 * nb * kq + extra <= scratch.len();
    let (acts, rest) = take_words(scratch, 4 * kq * if all { np } else { 1 });
    let (wpk, rest) = take_words(rest, (nb / 2) * 4 * kq);
    let (cols, row) = rest.split_at_mut(if direct { 0 } else { 2 * k });
    let rq = q.requant();
    if npix == 1 {
        // One output pixel (the deepest fires at small inputs): no weight packing, raw rows
        // against the packed pixel.
        if direct {
            K::pack_acts(input, k, 0, q.in_zp, acts);
        } else {
            let c0 = &mut cols[..k];
            im2col(p, input, 0, 0, q.in_zp, c0);
            K::pack_acts(c0, k, 0, q.in_zp, acts);
        }
        for oc in 0..cout {
            let r: &[i8] = match w.dense_row(oc) {
                Some(r) => as_i8(r),
                None => {
                    w.decode_row_validated(oc, row);
                    &row[..k]
                }
            };
            let acc = q.bias_at(oc).wrapping_add(K::dot_row(acts, r, k));
            out[p.out_channel_offset + oc] = requantize(acc, q.scaled_at(&rq, oc), &rq);
        }
        return;
    }
    let mut acc = [0i32; 2 * ROW_BLOCK];
    // 4-bit codebook rows are unpacked straight into the packed layout, a byte pair at a time.
    let t16 = w.nibble_row(0).map(|(_, lut)| nibble_pair_table(lut));
    let mut ob = 0;
    while ob < cout {
        let n = nb.min(cout - ob);
        let mut mults = [0i32; ROW_BLOCK];
        let mut beff = [0i32; ROW_BLOCK];
        for j in 0..n.next_multiple_of(2) {
            let pair = &mut wpk[(j / 2) * 4 * kq..(j / 2 + 1) * 4 * kq];
            if j >= n {
                // Odd channel count: zero weights in the unused slot.
                for q4 in pair.chunks_exact_mut(4) {
                    q4[2] = 0;
                    q4[3] = 0;
                }
                continue;
            }
            match (w.dense_row(ob + j), &t16, w.nibble_row(ob + j)) {
                (Some(r), _, _) => K::pack_acts(as_i8(r), k, j % 2, 0, pair),
                (None, Some(t16), Some((idx, _))) => K::pack_nibbles(idx, t16, k, j % 2, pair),
                _ => {
                    w.decode_row_validated(ob + j, row);
                    K::pack_acts(&row[..k], k, j % 2, 0, pair);
                }
            }
            beff[j] = q.bias_at(ob + j);
            mults[j] = q.scaled_at(&rq, ob + j);
        }
        if all && ob == 0 {
            for pp in 0..np {
                let a = &mut acts[pp * 4 * kq..(pp + 1) * 4 * kq];
                pack_pair::<K>(p, q.in_zp, input, direct, 2 * pp, npix, cols, a);
            }
        }
        let mut px = 0;
        while px < npix {
            let two = px + 1 < npix;
            let a: &[u32] = if all {
                &acts[(px / 2) * 4 * kq..(px / 2 + 1) * 4 * kq]
            } else {
                pack_pair::<K>(p, q.in_zp, input, direct, px, npix, cols, acts);
                acts
            };
            let npairs = n.div_ceil(2);
            K::dot_block(a, wpk, kq, npairs, &beff, &mut acc);
            let o0 = px * p.out_channel_stride + p.out_channel_offset + ob;
            K::requant_row(&acc[..n], &mults[..n], &rq, &mut out[o0..o0 + n]);
            if two {
                let o1 = o0 + p.out_channel_stride;
                K::requant_row(
                    &acc[ROW_BLOCK..ROW_BLOCK + n],
                    &mults[..n],
                    &rq,
                    &mut out[o1..o1 + n],
                );
            }
            px += 2;
        }
        ob += n;
    }
}

/// Packs output pixels `px` and `px + 1` (or `px` twice when it is the last) into the pair
/// `acts` (`4 * kq` words), through the two-pixel im2col `cols` unless the conv is direct.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pack_pair<K: DotKernel>(
    p: &ConvParams,
    zp: i8,
    input: &[i8],
    direct: bool,
    px: usize,
    npix: usize,
    cols: &mut [i8],
    acts: &mut [u32],
) {
    let k = p.k();
    let ow = p.output.w as usize;
    let two = px + 1 < npix;
    if direct {
        K::pack_acts(&input[px * k..], k, 0, zp, acts);
        let a1 = if two { px + 1 } else { px };
        K::pack_acts(&input[a1 * k..], k, 1, zp, acts);
    } else if p.input.c.is_multiple_of(4) {
        // Whole quads per tap: each patch row packs straight from the input.
        pack_patch::<K>(p, input, px / ow, px % ow, zp, 0, acts);
        let a1 = if two { px + 1 } else { px };
        pack_patch::<K>(p, input, a1 / ow, a1 % ow, zp, 1, acts);
    } else {
        let (c0, c1) = cols.split_at_mut(k);
        im2col(p, input, px / ow, px % ow, zp, c0);
        K::pack_acts(c0, k, 0, zp, acts);
        if two {
            im2col(p, input, (px + 1) / ow, (px + 1) % ow, zp, c1);
            K::pack_acts(c1, k, 1, zp, acts);
        } else {
            K::pack_acts(c0, k, 1, zp, acts);
        }
    }
}

/// Packs the patch of output pixel `(oy, ox)` into `slot` of `acts` straight from the input,
/// without an im2col copy: needs `cin % 4 == 0`, so that every tap is whole quads of the
/// packed layout; padded taps pack to 0 (`zp - zp`).
fn pack_patch<K: DotKernel>(
    p: &ConvParams,
    input: &[i8],
    oy: usize,
    ox: usize,
    zp: i8,
    slot: usize,
    acts: &mut [u32],
) {
    let (h, w, c) = (p.input.h as isize, p.input.w as isize, p.input.c as usize);
    let (kh, kw) = (p.kernel[0] as isize, p.kernel[1] as isize);
    if let Some(start) = patch_start(p, oy * p.output.w as usize + ox) {
        // No padded tap: the patch rows in one call.
        let step = w as usize * c;
        let len = kw as usize * c;
        K::pack_acts_rows(&input[start..], step, len, kh as usize, slot, zp, acts);
        return;
    }
    let y0 = (oy * p.stride[0] as usize) as isize - p.pad[0] as isize;
    let x0 = (ox * p.stride[1] as usize) as isize - p.pad[1] as isize;
    let qrow = kw as usize * c / 4;
    let zero = |acts: &mut [u32], q0: usize, q1: usize| {
        for q in q0..q1 {
            acts[4 * q + 2 * slot] = 0;
            acts[4 * q + 2 * slot + 1] = 0;
        }
    };
    for dy in 0..kh {
        let y = y0 + dy;
        let base = dy as usize * qrow;
        if y < 0 || y >= h {
            zero(acts, base, base + qrow);
            continue;
        }
        let xa = x0.max(0);
        let xb = (x0 + kw).min(w);
        let lead = ((xa - x0) as usize * c / 4).min(qrow);
        let n = (xb - xa).max(0) as usize * c;
        zero(acts, base, base + lead);
        if n > 0 {
            let src = (y as usize * w as usize + xa as usize) * c;
            K::pack_acts(
                &input[src..src + n],
                n,
                slot,
                zp,
                &mut acts[4 * (base + lead)..],
            );
        }
        zero(acts, base + lead + n / 4, base + qrow);
    }
}

/// Copies the patch of output pixel `(oy, ox)` into `dst[..k]` (HWC order), padded taps set to
/// `zp`.
#[inline]
pub(crate) fn im2col(p: &ConvParams, input: &[i8], oy: usize, ox: usize, zp: i8, dst: &mut [i8]) {
    let (h, w, c) = (p.input.h as isize, p.input.w as isize, p.input.c as usize);
    let (kh, kw) = (p.kernel[0] as isize, p.kernel[1] as isize);
    let y0 = (oy * p.stride[0] as usize) as isize - p.pad[0] as isize;
    let x0 = (ox * p.stride[1] as usize) as isize - p.pad[1] as isize;
    let row = kw as usize * c;
    for dy in 0..kh {
        let y = y0 + dy;
        let d = &mut dst[dy as usize * row..(dy as usize + 1) * row];
        if y < 0 || y >= h {
            d.fill(zp);
            continue;
        }
        let xa = x0.max(0);
        let xb = (x0 + kw).min(w);
        let lead = ((xa - x0) as usize * c).min(row);
        d[..lead].fill(zp);
        let n = (xb - xa).max(0) as usize * c;
        let src = (y as usize * w as usize + xa as usize) * c;
        d[lead..lead + n].copy_from_slice(&input[src..src + n]);
        d[lead + n..].fill(zp);
    }
}

/// Input offset of the top-left tap of output pixel `px`'s patch when the whole patch lies
/// inside the input (no padded tap), else `None`.
#[inline]
pub(crate) fn patch_start(p: &ConvParams, px: usize) -> Option<usize> {
    let ow = p.output.w as usize;
    let (oy, ox) = (px / ow, px % ow);
    let y0 = (oy * p.stride[0] as usize).checked_sub(p.pad[0] as usize)?;
    let x0 = (ox * p.stride[1] as usize).checked_sub(p.pad[1] as usize)?;
    let inside = y0 + p.kernel[0] as usize <= p.input.h as usize
        && x0 + p.kernel[1] as usize <= p.input.w as usize;
    inside.then(|| (y0 * p.input.w as usize + x0) * p.input.c as usize)
}
