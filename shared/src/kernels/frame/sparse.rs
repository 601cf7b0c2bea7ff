//! The zero-skipping driver for sparse weights ([`conv_sparse_s8`]).

use super::packed::im2col;
use crate::kernels::cost::sparse_layout;
use crate::kernels::frame::{DotKernel, SparseBlock, sparse_entry, zp_pair};
use crate::kernels::params::{ConvParams, ConvQuant, ROW_BLOCK, SPARSE_GROUP, take_words};
use crate::weights::RowDecoder;

/// The zero-skipping driver for sparse weights: per block of channels, each row's nonzero
/// weights become entries ([`sparse_entry`]); per group of [`SPARSE_GROUP`] output pixels,
/// packed as i16 pairs, [`DotKernel::dot_sparse_block`] multiplies only those. Returns `false`
/// (nothing written) unless `cost::zero_skip_applies` holds for this scratch length; otherwise
/// the contract of `conv_packed_s8`.
pub fn conv_sparse_s8<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, K::Caps>,
    out: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    let Some((all, ent_words)) = sparse_layout(p, w, scratch.len()) else {
        return false;
    };
    let k = p.k();
    let cout = p.output.c as usize;
    let npix = p.output.h as usize * p.output.w as usize;
    let ng = npix.div_ceil(SPARSE_GROUP);
    // One pixel past the last whole group is computed on its own.
    let lone = npix > SPARSE_GROUP && npix % SPARSE_GROUP == 1;
    let ow = p.output.w as usize;
    let direct = p.direct();
    let gw = 2 * k;
    let (acts, rest) = take_words(scratch, gw * if all { ng } else { 1 });
    let (cols, rest) = rest.split_at_mut(if direct { 0 } else { 2 * k });
    let (ents, _) = take_words(rest, ent_words);
    let rq = q.requant();
    let mut acc = [0i32; SPARSE_GROUP * ROW_BLOCK];
    let mut ob = 0;
    while ob < cout {
        // (entry count, effective bias) per channel.
        let mut heads = [0u32; 2 * ROW_BLOCK];
        let mut mults = [0i32; ROW_BLOCK];
        let (mut n, mut used) = (0usize, 0usize);
        while ob + n < cout && n < ROW_BLOCK {
            let r = ob + n;
            let stored = w.stored_entries(r, r + 1).unwrap_or(usize::MAX);
            if stored.saturating_add(used + 2) > ent_words {
                break;
            }
            let start = used;
            let mut wsum = 0i32;
            let mut push = |pos: usize, v: i8| {
                if v != 0
                    && pos < k
                    && let Some(e) = ents.get_mut(used)
                {
                    *e = sparse_entry(pos, v);
                    wsum += v as i32;
                    used += 1;
                }
            };
            // Byte-per-entry rows walked here rather than through the generic decoder: its
            // bit-reader arms, inlined, cost this loop registers.
            if let Some((bytes, gb, lut)) = w.byte_entries_row(r) {
                let mut pos = 0usize;
                for &e in bytes {
                    pos += (e as usize) & ((1 << gb) - 1);
                    push(pos, lut[(e >> gb) as usize]);
                    pos += 1;
                }
            } else {
                w.for_each_stored_validated(r, push);
            }
            // Pad to an even count of at least 2 (the kernels' loop takes entries in pairs):
            // entry 0 (offset 0, weight 0) adds nothing.
            while used - start < 2 || (used - start) % 2 == 1 {
                ents[used] = 0;
                used += 1;
            }
            heads[2 * n] = (used - start) as u32;
            // Pixels are packed raw: sum((x - zp) * w) = sum(x * w) - zp * sum(w), padded taps
            // (x = zp) included; exact in wrapping i32 arithmetic.
            heads[2 * n + 1] =
                q.bias_at(r)
                    .wrapping_sub((q.in_zp as i32).wrapping_mul(wsum)) as u32;
            mults[n] = q.scaled_at(&rq, r);
            n += 1;
        }
        let Some(block) = SparseBlock::new(&ents[..used], &heads[..2 * n]) else {
            return false; // unreachable: the entries are made above
        };
        for g in 0..ng - lone as usize {
            let a: &[u32] = if all {
                let a = &mut acts[g * gw..(g + 1) * gw];
                if ob == 0 {
                    pack_group::<K>(p, q.in_zp, input, direct, g, npix, cols, a);
                }
                a
            } else {
                pack_group::<K>(p, q.in_zp, input, direct, g, npix, cols, acts);
                acts
            };
            K::dot_sparse_block(a, &block, &mut acc);
            for j in 0..SPARSE_GROUP.min(npix - g * SPARSE_GROUP) {
                let o = (g * SPARSE_GROUP + j) * p.out_channel_stride + p.out_channel_offset + ob;
                K::requant_row(
                    &acc[j * ROW_BLOCK..j * ROW_BLOCK + n],
                    &mults[..n],
                    &rq,
                    &mut out[o..o + n],
                );
            }
        }
        if lone {
            // The last pixel alone (e.g. 7x7 = 12 groups + 1): its patch read byte by byte
            // instead of a group of four copies of it.
            let px = npix - 1;
            let patch: &[i8] = if direct {
                &input[px * k..(px + 1) * k]
            } else {
                im2col(p, input, px / ow, px % ow, q.in_zp, &mut cols[..k]);
                &cols[..k]
            };
            let mut sums = [0i32; ROW_BLOCK];
            let mut start = 0usize;
            for (c, h) in heads[..2 * n].chunks_exact(2).enumerate() {
                let end = start + h[0] as usize;
                let mut a = h[1] as i32;
                for &e in &ents[start..end] {
                    let x = patch.get((e >> 16) as usize / 8).copied().unwrap_or(0);
                    a = a.wrapping_add(x as i32 * (e as u16 as i16 as i32));
                }
                sums[c] = a;
                start = end;
            }
            let o = px * p.out_channel_stride + p.out_channel_offset + ob;
            K::requant_row(&sums[..n], &mults[..n], &rq, &mut out[o..o + n]);
        }
        ob += n;
    }
    true
}

/// Packs the output pixels of group `g` (the last pixel repeated past `npix`) into `acts`
/// (`2 * k` words), through the two-pixel im2col `cols` unless the conv is direct.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pack_group<K: DotKernel>(
    p: &ConvParams,
    zp: i8,
    input: &[i8],
    direct: bool,
    g: usize,
    npix: usize,
    cols: &mut [i8],
    acts: &mut [u32],
) {
    let k = p.k();
    let ow = p.output.w as usize;
    for half in 0..2 {
        let pa = (g * SPARSE_GROUP + 2 * half).min(npix - 1);
        let pb = (pa + 1).min(npix - 1);
        if direct {
            K::pack_group_pair(&input[pa * k..], &input[pb * k..], k, half, acts);
        } else if let Some((ta, tb, y0)) = row_patches(p, pa, pb) {
            // Both patches in the same output row, inside the input horizontally: their rows
            // pack straight from it (taps are laid out one after the other, so each patch row
            // lands at its tap offset); rows in the top or bottom padding hold the raw zero
            // point (folded into the bias like every padded tap).
            let row = p.kernel[1] as usize * p.input.c as usize;
            let step = p.input.w as usize * p.input.c as usize;
            let zz = (zp_pair(zp), half & 1);
            for dy in 0..p.kernel[0] as usize {
                let y = y0 + dy as isize;
                let d = &mut acts[2 * dy * row..2 * (dy + 1) * row];
                if y < 0 || y >= p.input.h as isize {
                    for w2 in d.chunks_exact_mut(2) {
                        w2[zz.1] = zz.0;
                    }
                    continue;
                }
                let (ra, rb) = (ta + y as usize * step, tb + y as usize * step);
                K::pack_group_pair(&input[ra..ra + row], &input[rb..rb + row], row, half, d);
            }
        } else {
            let (c0, c1) = cols.split_at_mut(k);
            im2col(p, input, pa / ow, pa % ow, zp, c0);
            im2col(p, input, pb / ow, pb % ow, zp, c1);
            K::pack_group_pair(c0, c1, k, half, acts);
        }
    }
}

/// For output pixels `pa` and `pb` in the same output row whose patches lie inside the input
/// horizontally: `(column offset of pa's patch, of pb's, top input row)` (the rows may reach
/// into the top or bottom padding).
#[inline]
fn row_patches(p: &ConvParams, pa: usize, pb: usize) -> Option<(usize, usize, isize)> {
    let ow = p.output.w as usize;
    if pa / ow != pb / ow {
        return None;
    }
    let col = |px: usize| {
        let x0 = ((px % ow) * p.stride[1] as usize).checked_sub(p.pad[1] as usize)?;
        (x0 + p.kernel[1] as usize <= p.input.w as usize).then_some(x0 * p.input.c as usize)
    };
    let y0 = ((pa / ow) * p.stride[0] as usize) as isize - p.pad[0] as isize;
    Some((col(pa)?, col(pb)?, y0))
}
