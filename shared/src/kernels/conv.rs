//! Convolutions: `conv_1x1_s8`, `conv_3x3_s8`, `conv_general_s8` (one driver, [`conv_s8`]) and
//! the reference twin [`conv_ref_s8`].

use crate::bytes::{le_f32_at, le_i32_at};
use crate::dims::{Dims, Pad};
use crate::kernels::dot::{DotKernel, SparseBlock, nibble_pair_table, sparse_entry};
use crate::quant::{Requant, requantize};
use crate::weights::RowDecoder;

/// Most output channels packed per block.
pub const ROW_BLOCK: usize = 64;

/// Bytes of packed weights a block may use (the block shrinks for long rows, to >= 2 channels).
pub const WEIGHT_BUDGET: usize = 16384;

/// Channels per block for `cout` channels with rows of `kq` quads (even, 2..=ROW_BLOCK).
pub fn block_channels(cout: usize, kq: usize) -> usize {
    let by_budget = (WEIGHT_BUDGET / (8 * kq.max(1))) & !1;
    ROW_BLOCK
        .min(cout.next_multiple_of(2))
        .min(by_budget.max(2))
}

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    /// Input dims (NHWC, one image).
    pub input: Dims,
    /// Output dims; `output.c` is the number of output channels of this conv.
    pub output: Dims,
    /// `[kh, kw]`.
    pub kernel: [u8; 2],
    /// `[sh, sw]`.
    pub stride: [u8; 2],
    /// `[t, l, b, r]`.
    pub pad: Pad,
    /// Channels per pixel of the output buffer (>= `output.c`; the concat width for expands).
    pub out_channel_stride: usize,
    /// First channel of this conv inside an output pixel (concat offset).
    pub out_channel_offset: usize,
}

impl ConvParams {
    /// Weights per output channel: `kh * kw * cin`.
    pub fn k(&self) -> usize {
        self.kernel[0] as usize * self.kernel[1] as usize * self.input.c as usize
    }
    fn direct(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [0; 4]
    }
}

/// Quantisation of one convolution.
#[derive(Debug, Clone, Copy)]
pub struct ConvQuant<'a> {
    /// Input zero point (padded taps hold it, so they contribute 0).
    pub in_zp: i8,
    /// `cout` i32 LE biases.
    pub bias: &'a [u8],
    /// `cout` f32 LE multipliers.
    pub multipliers: &'a [u8],
    /// All multipliers bit-identical (tract's fixed-point path).
    pub uniform: bool,
    /// Output zero point.
    pub out_zp: i8,
    /// Fused ReLU (`q = max(q, out_zp)`).
    pub relu: bool,
}

impl ConvQuant<'_> {
    /// Layer-level requantisation parameters.
    #[inline]
    pub fn requant(&self) -> Requant {
        let m0 = le_f32_at(self.multipliers, 0);
        Requant::new(self.uniform.then_some(m0), self.out_zp, self.relu)
    }
}

/// Channels of the smallest weight block the arena plan reserves scratch for: a longer scratch
/// (free arena bytes at that layer, or a host caller's larger arena) buys larger blocks, up to
/// [`block_channels`], and fewer passes over the pixels.
pub const MIN_BLOCK: usize = 12;

/// Scratch bytes [`conv_s8`] needs, in this order: up to 3 bytes of alignment slack, the packed
/// pixel pair (`16 * kq` bytes, `kq = ceil(k / 4)`), the packed weights of one block of
/// `nb = min(block_channels(cout, kq), MIN_BLOCK)` channels (`8 * nb * kq` bytes), the two-pixel
/// im2col (`2 * k` bytes, 0 for a 1x1 stride-1 unpadded conv) and one decoded row (`k` bytes,
/// compressed weights only).
pub fn conv_scratch_len(p: &ConvParams, dense: bool) -> usize {
    let kq = p.k().div_ceil(4);
    scratch_with_block(
        p,
        dense,
        block_channels(p.output.c as usize, kq).min(MIN_BLOCK),
    )
}

/// Scratch bytes with which [`conv_s8`] takes its largest weight blocks ([`block_channels`]):
/// what a layer gets wherever the arena has room ([`conv_scratch_len`] is the minimum).
pub fn conv_scratch_full_len(p: &ConvParams, dense: bool) -> usize {
    let kq = p.k().div_ceil(4);
    scratch_with_block(p, dense, block_channels(p.output.c as usize, kq))
}

/// The packed driver's scratch with weight blocks of `nb` channels.
fn scratch_with_block(p: &ConvParams, dense: bool, nb: usize) -> usize {
    let kq = p.k().div_ceil(4);
    3 + 16 * kq + 8 * nb * kq + scratch_tail(p, dense)
}

/// The im2col pair and decoded row bytes at the end of the packed driver's scratch.
fn scratch_tail(p: &ConvParams, dense: bool) -> usize {
    let k = p.k();
    (if p.direct() { 0 } else { 2 * k }) + if dense { 0 } else { k }
}

/// Channels per block the packed driver uses with `len` scratch bytes: the largest even count
/// up to [`block_channels`] whose packed weights fit, at least the planned minimum.
fn fitting_block(p: &ConvParams, dense: bool, len: usize) -> usize {
    let kq = p.k().div_ceil(4);
    let most = block_channels(p.output.c as usize, kq);
    let room = len.saturating_sub(scratch_with_block(p, dense, 0)) / (8 * kq.max(1));
    (room & !1).clamp(most.min(MIN_BLOCK), most)
}

/// View a byte slice as int8 (same size, alignment and validity).
#[inline(always)]
pub(crate) fn as_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have identical size, alignment and every bit pattern is valid.
    unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<i8>(), b.len()) }
}

/// Splits `buf` into (word-aligned `n` words, rest).
#[inline]
fn take_words(buf: &mut [i8], n: usize) -> (&mut [u32], &mut [i8]) {
    let skip = buf.as_ptr().align_offset(4).min(3);
    let (_, buf) = buf.split_at_mut(skip);
    let (w, rest) = buf.split_at_mut(4 * n);
    // SAFETY: `w` starts 4-byte aligned (align_offset) and holds exactly `4 * n` bytes; every bit
    // pattern is a valid u32; the borrow of `w` is moved into the result.
    let words = unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u32>(), n) };
    (words, rest)
}

/// Copies the patch of output pixel `(oy, ox)` into `dst[..k]` (HWC order), padded taps set to
/// `zp`.
#[inline]
fn im2col(p: &ConvParams, input: &[i8], oy: usize, ox: usize, zp: i8, dst: &mut [i8]) {
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

/// General int8 convolution driver (any kernel, stride, padding) generic over the dot kernel.
///
/// * `input`: `p.input` NHWC int8; `out`: `p.output.h * p.output.w * p.out_channel_stride`
///   int8, channels `out_channel_offset..+output.c` of each pixel written, others untouched.
/// * `w`: `cout` rows of `k = kh * kw * cin` (OHWI), dense or compressed; rows are decoded and
///   packed per block of [`block_channels`] output channels.
/// * `acc = bias[c] + sum((x - in_zp) * w)` (padded taps hold `in_zp`), computed as
///   `bias + sum((x - in_zp) * w)` with the zero point subtracted while packing the pixels,
///   then [`requantize`] (fused ReLU).
/// * `scratch.len() >= conv_scratch_len(p, w.is_dense())`.
///
/// Preconditions (checked by `Model::from_bytes`, only `debug_assert`ed here): consistent dims,
/// buffer lengths as above.
pub fn conv_s8<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_>,
    out: &mut [i8],
    scratch: &mut [i8],
) {
    // SAFETY: `next_strip` false: no contract.
    unsafe { conv_strip::<K>(p, q, input, w, out, scratch, false) }
}

/// [`conv_s8`] on the next row strip of a layer (`p` describing the strip): the previous call
/// was `conv_s8` or this function on the same `w`, `q` and `scratch` slice, and nothing wrote
/// the scratch since, so kernels may reuse per-layer state left in it (the stem's records).
///
/// # Safety
/// That contract: the previous call on this `scratch` slice was [`conv_s8`] or this function
/// with the same kernel `K`, `w` and `q`, and the scratch was not written since (see
/// [`DotKernel::conv_next_strip`]).
pub unsafe fn conv_s8_next_strip<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_>,
    out: &mut [i8],
    scratch: &mut [i8],
) {
    // SAFETY: the caller's contract, passed on.
    unsafe { conv_strip::<K>(p, q, input, w, out, scratch, true) }
}

/// # Safety
/// With `next_strip`, the contract of [`conv_s8_next_strip`].
unsafe fn conv_strip<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_>,
    out: &mut [i8],
    scratch: &mut [i8],
    next_strip: bool,
) {
    debug_assert!(scratch.len() >= conv_scratch_len(p, w.is_dense()));
    debug_assert!(input.len() >= p.input.len());
    let hooked = if next_strip {
        // SAFETY: the caller's contract.
        unsafe { K::conv_next_strip(p, q, input, w, out, scratch) }
    } else {
        K::conv(p, q, input, w, out, scratch)
    };
    if hooked || conv_sparse_s8::<K>(p, q, input, w, out, scratch) {
        return;
    }
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
            let acc = le_i32_at(q.bias, oc).wrapping_add(K::dot_row(acts, r, k));
            out[p.out_channel_offset + oc] = requantize(acc, le_f32_at(q.multipliers, oc), &rq);
        }
        return;
    }
    let mut acc = [0i32; 2 * ROW_BLOCK];
    // 4-bit codebook rows are unpacked straight into the packed layout, a byte pair at a time.
    let t16 = w.nibble_row(0).map(|(_, lut)| nibble_pair_table(lut));
    let mut ob = 0;
    while ob < cout {
        let n = nb.min(cout - ob);
        let mut mults = [0f32; ROW_BLOCK];
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
                (Some(r), _, _) => K::pack(as_i8(r), k, j % 2, pair),
                (None, Some(t16), Some((idx, _))) => K::pack_nibbles(idx, t16, k, j % 2, pair),
                _ => {
                    w.decode_row_validated(ob + j, row);
                    K::pack(&row[..k], k, j % 2, pair);
                }
            }
            beff[j] = le_i32_at(q.bias, ob + j);
            mults[j] = le_f32_at(q.multipliers, ob + j);
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

/// Output pixels per group of the zero-skipping sparse driver.
pub const SPARSE_GROUP: usize = 4;

/// Fewest output pixels for the zero-skipping driver at up to 50 % density. With fewer pixels
/// the entries are used too few times: on a model's fires at 35 % density re-encoded as
/// byte-per-entry sparse rows (QEMU), the 3x3 layers cost 10 % more instructions with it than
/// through the packed path, the 7x7 layers 1-3 % less, the 14x14 ones 16-19 % less. Below it
/// the driver still runs rows of at most 30 % density ([`zero_skip_pays`]).
pub const ZERO_SKIP_MIN_PIXELS: usize = 16;

/// Whether the zero-skipping driver beats the packed path (which decodes each sparse row into
/// a dense one) for a conv with `npix` output pixels whose sparse rows store `stored` entries
/// of `cout * k` weights: up to one entry per two weights with at least
/// [`ZERO_SKIP_MIN_PIXELS`] pixels; below that each entry serves few pixels, and the
/// break-even is about 31 % (`shared/qemu/bench.sh`, density sweep at 3x3: 30 % gains 2-6 %,
/// 40 % loses 16-21 %), so up to 30 %.
pub fn zero_skip_pays(npix: usize, stored: usize, cout: usize, k: usize) -> bool {
    let weights = cout.saturating_mul(k);
    if npix >= ZERO_SKIP_MIN_PIXELS {
        stored.saturating_mul(2) <= weights
    } else {
        npix > 0 && stored.saturating_mul(10) <= weights.saturating_mul(3)
    }
}

/// Whether storing a conv's weights as byte-entry sparse rows (run by the zero-skipping driver)
/// costs fewer instructions than packed 4-bit codebook rows, the other fast encoding. Its
/// break-even density grows with the output pixels over which each entry's cost spreads: about
/// 22 % at 3x3, 35 % at 7x7 and 44 % at 14x14 (`shared/qemu/bench.sh`, density sweep); the
/// thresholds sit below: 20 %, 33 % and 40 %. Implies [`zero_skip_pays`].
pub fn sparse_rows_pay(npix: usize, stored: usize, cout: usize, k: usize) -> bool {
    let weights = cout.saturating_mul(k);
    let (num, den) = match npix {
        0 => return false,
        1..ZERO_SKIP_MIN_PIXELS => (1, 5),
        16..64 => (1, 3),
        _ => (2, 5),
    };
    stored.saturating_mul(den) <= weights.saturating_mul(num)
        && zero_skip_pays(npix, stored, cout, k)
}

/// Whether the Cortex-M4 stem kernel (1-channel 3x3, `cout % 8 == 0`) takes its zero-skipping
/// stream for sparse rows storing `stored` entries in all (plain or Huffman coded; other
/// encodings never do). A channel costs `3 + pairs` instructions there (`LDM`, one `SMLAD` per
/// nonzero pair of taps, `PUSH`, `LDR pc`) against 7 with dense records (`LDM`, 5 `SMLAD`,
/// `VMOV`), the requantisation being the same, so it pays below 4 nonzero pairs a channel: at
/// density `d` a channel has `4 (1 - (1 - d)^2) + d` of them on average, 4 at about 62 %.
/// Taken up to 55 %, read from the row index without decoding; `false` unless `cout % 8 == 0`.
pub fn sparse_stem_pays(stored: usize, cout: usize) -> bool {
    cout.is_multiple_of(8) && 20 * stored <= 11 * 9 * cout
}

/// Whether [`conv_s8`] takes the zero-skipping path for this conv with `scratch_len` bytes of
/// scratch: sparse-coded weights (plain or Huffman) sparse enough for [`zero_skip_pays`] (above
/// that the packed dense path costs less), `k < 8192`, and room for one packed pixel group, the
/// im2col of two pixels and the entries of the longest row.
pub fn zero_skip_applies(p: &ConvParams, w: &RowDecoder<'_>, scratch_len: usize) -> bool {
    sparse_layout(p, w, scratch_len).is_some()
}

/// `(all groups packed at once, entry words available)` when the zero-skipping path applies.
fn sparse_layout(p: &ConvParams, w: &RowDecoder<'_>, scratch_len: usize) -> Option<(bool, usize)> {
    let (k, cout) = (p.k(), p.output.c as usize);
    let npix = p.output.h as usize * p.output.w as usize;
    let total = w.stored_entries(0, cout)?;
    if k >= 8192 || !zero_skip_pays(npix, total, cout, k) {
        return None;
    }
    let longest = (0..cout)
        .map(|r| w.stored_entries(r, r + 1).unwrap_or(usize::MAX))
        .max()
        .unwrap_or(0);
    let cols = if p.direct() { 0 } else { 2 * k };
    let group = 8 * k;
    let fixed = 3 + cols;
    let ng = npix.div_ceil(SPARSE_GROUP);
    // Entries of one channel, padded to an even count >= 2 for the 2-entry loop.
    let min_entries = longest.saturating_add(2);
    let words = |acts: usize| scratch_len.checked_sub(fixed + acts).map(|b| b / 4);
    // Every group packed once, when that leaves room for all the entries of one full block.
    let block_entries = w.stored_entries(0, cout.min(ROW_BLOCK))? + 2 * ROW_BLOCK;
    if ng > 1
        && let Some(e) = words(group * ng)
        && e >= block_entries.max(min_entries)
    {
        return Some((true, e));
    }
    let e = words(group)?;
    (e >= min_entries).then_some((false, e))
}

/// The zero-skipping driver for sparse weights: per block of channels, each row's nonzero
/// weights become entries ([`sparse_entry`]); per group of [`SPARSE_GROUP`] output pixels,
/// packed as i16 pairs, [`DotKernel::dot_sparse_block`] multiplies only those. Returns `false`
/// (nothing written) when [`zero_skip_applies`] does not hold. Same contract as [`conv_s8`].
fn conv_sparse_s8<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_>,
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
        let mut mults = [0f32; ROW_BLOCK];
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
                le_i32_at(q.bias, r).wrapping_sub((q.in_zp as i32).wrapping_mul(wsum)) as u32;
            mults[n] = le_f32_at(q.multipliers, r);
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
            let zz = (crate::kernels::dot::zp_pair(zp), half & 1);
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

/// Input offset of the top-left tap of output pixel `px`'s patch when the whole patch lies
/// inside the input (no padded tap), else `None`.
#[inline]
fn patch_start(p: &ConvParams, px: usize) -> Option<usize> {
    let ow = p.output.w as usize;
    let (oy, ox) = (px / ow, px % ow);
    let y0 = (oy * p.stride[0] as usize).checked_sub(p.pad[0] as usize)?;
    let x0 = (ox * p.stride[1] as usize).checked_sub(p.pad[1] as usize)?;
    let inside = y0 + p.kernel[0] as usize <= p.input.h as usize
        && x0 + p.kernel[1] as usize <= p.input.w as usize;
    inside.then(|| (y0 * p.input.w as usize + x0) * p.input.c as usize)
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

/// 1x1 convolution (squeeze, expand 1x1, complex bypass, classifier). Same contract as
/// [`conv_s8`]; stride 1 and no padding need no scratch for dense weights.
pub fn conv_1x1_s8<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_>,
    out: &mut [i8],
    scratch: &mut [i8],
) {
    debug_assert_eq!(p.kernel, [1, 1]);
    conv_s8::<K>(p, q, input, w, out, scratch)
}

/// 3x3 convolution (expand 3x3 with pad 1, the v1.1 stem 3x3/2). Same contract as [`conv_s8`].
pub fn conv_3x3_s8<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_>,
    out: &mut [i8],
    scratch: &mut [i8],
) {
    debug_assert_eq!(p.kernel, [3, 3]);
    conv_s8::<K>(p, q, input, w, out, scratch)
}

/// Any kernel size, stride and padding (the v1.0 7x7/2 stem). Same contract as [`conv_s8`].
pub fn conv_general_s8<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_>,
    out: &mut [i8],
    scratch: &mut [i8],
) {
    conv_s8::<K>(p, q, input, w, out, scratch)
}

/// Reference twin: direct loops, `acc = bias + sum over valid taps of (x - zp) * w`.
/// `weights` are the dense OHWI int8 weights.
pub fn conv_ref_s8(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    weights: &[i8],
    out: &mut [i8],
) {
    let (h, w, c) = (p.input.h as isize, p.input.w as isize, p.input.c as usize);
    let (kh, kw) = (p.kernel[0] as usize, p.kernel[1] as usize);
    let k = kh * kw * c;
    for oy in 0..p.output.h as usize {
        for ox in 0..p.output.w as usize {
            for oc in 0..p.output.c as usize {
                let mut acc = le_i32_at(q.bias, oc);
                for dy in 0..kh {
                    for dx in 0..kw {
                        let y = (oy * p.stride[0] as usize + dy) as isize - p.pad[0] as isize;
                        let x = (ox * p.stride[1] as usize + dx) as isize - p.pad[1] as isize;
                        if y < 0 || y >= h || x < 0 || x >= w {
                            continue;
                        }
                        for ci in 0..c {
                            let xv = input[(y as usize * w as usize + x as usize) * c + ci] as i32;
                            let wv = weights[oc * k + (dy * kw + dx) * c + ci] as i32;
                            acc = acc.wrapping_add((xv - q.in_zp as i32) * wv);
                        }
                    }
                }
                let o = (oy * p.output.w as usize + ox) * p.out_channel_stride
                    + p.out_channel_offset
                    + oc;
                out[o] = requantize(acc, le_f32_at(q.multipliers, oc), &q.requant());
            }
        }
    }
}
