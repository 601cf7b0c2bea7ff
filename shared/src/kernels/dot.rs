//! Packed int8 dot-product micro-kernels (2 pixels x 2 output channels).
//!
//! # Packed layout (shared by activations and weights)
//! A row of `k` int8 values is cut into `kq = ceil(k / 4)` quads (zero padded). A quad
//! `[b0, b1, b2, b3]` is stored as two words of two i16 each, exactly what `SXTB16` makes of it:
//! `even = b0 | b2 << 16`, `odd = b1 | b3 << 16` (i16 halves, little-endian within the word).
//! Two rows (two pixels, or two output channels) are interleaved per quad:
//! `[even(r0), odd(r0), even(r1), odd(r1)]`, i.e. `4 * kq` words for the pair. Then
//! `dot(r0, s0) = sum over words of SMLAD(r0.even, s0.even) + SMLAD(r0.odd, s0.odd)`.

use crate::kernels::conv::{ConvParams, ConvQuant};
use crate::quant::{Requant, requantize_fixed_path};
use crate::weights::RowDecoder;

/// A packed 2x2 dot-product micro-kernel.
pub trait DotKernel {
    /// Whole-convolution hook for kernels with a driver of their own: returns `true` when it
    /// computed [`crate::kernels::conv_s8`]'s result itself (same contract), `false` to let the
    /// packed driver run. The default declines.
    #[inline]
    fn conv(
        _p: &ConvParams,
        _q: &ConvQuant<'_>,
        _input: &[i8],
        _w: &RowDecoder<'_>,
        _out: &mut [i8],
        _scratch: &mut [i8],
    ) -> bool {
        false
    }

    /// [`DotKernel::conv`] on the next row strip of a layer whose previous strip this kernel
    /// ran (same weights, quantisation and scratch slice, the scratch untouched in between), so
    /// per-layer state the kernel left in the scratch may be reused. The default runs `conv`.
    /// A hook of its own rather than a flag on `conv`: with a run-time flag the shipped model
    /// took 22.5 k more instructions per inference in QEMU.
    ///
    /// # Safety
    /// The previous call on this scratch slice was `conv` or `conv_next_strip` of this kernel
    /// with the same `w` and `q`, and nothing wrote the scratch since: a kernel may follow
    /// code addresses it left there (the Cortex-M4 zero-skipping stem does).
    #[inline]
    unsafe fn conv_next_strip(
        p: &ConvParams,
        q: &ConvQuant<'_>,
        input: &[i8],
        w: &RowDecoder<'_>,
        out: &mut [i8],
        scratch: &mut [i8],
    ) -> bool {
        Self::conv(p, q, input, w, out, scratch)
    }

    /// `[a0.w0, a0.w1, a1.w0, a1.w1]` (i32, wrapping) where `acts` is the packed pixel pair and
    /// `wts` the packed channel pair, both `4 * kq` words.
    fn dot_2x2(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4];

    /// For each channel pair `p < npairs` (packed one after the other in `wts`, `4 * kq` words
    /// each), with `B = ROW_BLOCK`: `acc[2p + c] = beff[2p + c] + a0.w(2p + c)` and
    /// `acc[B + 2p + c] = beff[2p + c] + a1.w(2p + c)` for `c` in 0..2 (wrapping).
    /// `beff.len() >= 2 * npairs`, `acc.len() >= 2 * B`, `1 <= npairs <= B / 2`.
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
        for p in 0..npairs {
            let r = Self::dot_2x2(acts, &wts[p * 4 * kq..(p + 1) * 4 * kq], kq);
            acc[2 * p] = r[0].wrapping_add(beff[2 * p]);
            acc[2 * p + 1] = r[1].wrapping_add(beff[2 * p + 1]);
            acc[B + 2 * p] = r[2].wrapping_add(beff[2 * p]);
            acc[B + 2 * p + 1] = r[3].wrapping_add(beff[2 * p + 1]);
        }
    }

    /// Zero-skipping sparse block over a group of four pixels: with `B = ROW_BLOCK`, for each
    /// channel `c` of `block` and pixel `j` in 0..4:
    /// `acc[j * B + c] = bias(c) + sum over the channel's entries e of x_j(e) * w(e)`
    /// (wrapping), where `x_j(e)` is half `j % 2` of word `offset(e) / 4 + j / 2` of `acts` (see
    /// [`sparse_entry`]). `acc.len() >= 4 * B`; a block whose offsets do not fit `acts` leaves
    /// `acc` untouched. The default is the plain reference.
    #[inline]
    fn dot_sparse_block(acts: &[u32], block: &SparseBlock<'_>, acc: &mut [i32]) {
        dot_sparse_block_ref(acts, block, acc)
    }

    /// Packs two pixel rows into half of a sparse pixel group ([`pack_group_pair_portable`]).
    #[inline]
    fn pack_group_pair(a: &[i8], b: &[i8], k: usize, half: usize, dst: &mut [u32]) {
        pack_group_pair_portable(a, b, k, half, dst)
    }

    /// `out[j] = requantize(acc[j], mults[j], rq)` for `j < out.len()` (`acc` and `mults` at
    /// least as long).
    #[inline]
    fn requant_row(acc: &[i32], mults: &[f32], rq: &Requant, out: &mut [i8]) {
        requant_row_portable(acc, mults, rq, out)
    }

    /// Packs `row[..k]` (zero padded to `4 * kq`) into slot `slot` (0 or 1) of a packed pair
    /// `dst` (`4 * kq` words).
    #[inline]
    fn pack(row: &[i8], k: usize, slot: usize, dst: &mut [u32]) {
        pack_portable(row, k, slot, dst, 0)
    }

    /// Packs a 4-bit codebook row like [`DotKernel::pack`]: `idx` holds the `k / 2` index
    /// bytes of the row (`k` even, weight `2i` in the low nibble of byte `i`), `t16[b]` the two
    /// centroids of index byte `b` as int8 bytes (`c[b & 15] | c[b >> 4] << 8`, see
    /// [`nibble_pair_table`]).
    #[inline]
    fn pack_nibbles(idx: &[u8], t16: &[u16; 256], k: usize, slot: usize, dst: &mut [u32]) {
        pack_nibbles_portable(idx, t16, k, slot, dst)
    }

    /// [`DotKernel::pack_acts`] of `rows` segments of `len` values each (`len % 4 == 0`), segment
    /// `r` at `src[r * stride..]`, laid one after the other in slot `slot` of `dst`: a conv
    /// patch lying inside the input, packed without an im2col copy.
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
        pack_rows_each(src, stride, len, rows, slot, zp, dst, Self::pack_acts)
    }

    /// Packs activations like [`DotKernel::pack`] with the input zero point subtracted
    /// (`x - zp`, in `-255..=255`), padding values 0, so that dot products need no weight sums.
    #[inline]
    fn pack_acts(row: &[i8], k: usize, slot: usize, zp: i8, dst: &mut [u32]) {
        pack_portable(row, k, slot, dst, zp)
    }

    /// Single-pixel dot product: `sum((x - zp) * row)` over `k` values where `acts` is packed by
    /// [`DotKernel::pack_acts`] in slot 0 and `row` holds raw int8 weights (`row.len() >= k`).
    #[inline]
    fn dot_row(acts: &[u32], row: &[i8], k: usize) -> i32 {
        dot_row_portable(acts, row, k)
    }
}

/// [`DotKernel::pack_acts_rows`] as one `pack` call per row (the default, and the fallback of
/// the asm version for shapes it does not take).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn pack_rows_each(
    src: &[i8],
    stride: usize,
    len: usize,
    rows: usize,
    slot: usize,
    zp: i8,
    dst: &mut [u32],
    pack: fn(&[i8], usize, usize, i8, &mut [u32]),
) {
    for r in 0..rows {
        pack(
            &src[r * stride..r * stride + len],
            len,
            slot,
            zp,
            &mut dst[r * len..],
        );
    }
}

/// `zp` in both i16 halves of a word.
#[inline]
pub(crate) fn zp_pair(zp: i8) -> u32 {
    (zp as i16 as u16 as u32) * 0x0001_0001
}

/// Portable [`DotKernel::dot_row`].
#[inline]
pub fn dot_row_portable(acts: &[u32], row: &[i8], k: usize) -> i32 {
    let row = &row[..k];
    let mut acc = 0i32;
    for (i, &w) in row.iter().enumerate() {
        let word = acts[4 * (i / 4) + (i & 1)];
        let x = if i % 4 < 2 {
            word as i16 as i32
        } else {
            (word >> 16) as i16 as i32
        };
        acc = acc.wrapping_add(x * w as i32);
    }
    acc
}

/// Portable [`DotKernel::requant_row`] (branch on the path hoisted out of the loop; the f32
/// path in the branch-free form [`requantize_f32_select`], which LLVM vectorises).
#[inline]
pub fn requant_row_portable(acc: &[i32], mults: &[f32], rq: &Requant, out: &mut [i8]) {
    requant_row_inline(acc, mults, rq, out)
}

/// [`requant_row_portable`], always inlined (so that it is vectorised with its caller's target
/// features).
#[inline(always)]
pub(crate) fn requant_row_inline(acc: &[i32], mults: &[f32], rq: &Requant, out: &mut [i8]) {
    let n = out.len();
    let (acc, mults) = (&acc[..n], &mults[..n]);
    let (zp, lo) = (rq.zero_point, rq.lo);
    match rq.fixed {
        None => {
            for ((o, &a), &m) in out.iter_mut().zip(acc).zip(mults) {
                *o = requantize_f32_select(a, m, zp, lo);
            }
        }
        Some((q31, shift)) => {
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = requantize_fixed_path(a, q31, shift, zp, lo);
            }
        }
    }
}

/// [`crate::quant::requantize_f32_path`] written with selects instead of branches, so that a loop of it
/// vectorises: `y = fl(acc * m)`; for `|y| < 2^23`, `(y + s) - s` with `s = copysign(2^23, y)`
/// is exactly `round_ties_to_even(y)` (the same additions in the same order as
/// `quant::round_ties_to_even`), larger values (and NaN) are already integral; then the same
/// saturating cast, zero point and clamp. Equal to [`requantize_f32_path`] for every input
/// (tested against it, extremes included).
///
/// [`requantize_f32_path`]: crate::quant::requantize_f32_path
#[inline(always)]
pub fn requantize_f32_select(acc: i32, m: f32, zero_point: i32, lo: i32) -> i8 {
    const T: u32 = 0x4b00_0000; // 2^23
    let y = acc as f32 * m;
    let sign = y.to_bits() & 0x8000_0000;
    let s = f32::from_bits(T | sign);
    let small = (y.to_bits() & 0x7fff_ffff) < T;
    let r = if small { (y + s) - s } else { y };
    // `r as i32` (saturating, NaN to 0) spelled so that it vectorises: `r` is integral, so in
    // range the conversion is exact.
    let v = if r >= 2_147_483_648.0 {
        i32::MAX
    } else if r >= -2_147_483_648.0 {
        // SAFETY: `r` is integral and in `[-2^31, 2^31)`, so it is representable as an i32.
        unsafe { r.to_int_unchecked::<i32>() }
    } else if r.is_nan() {
        0
    } else {
        i32::MIN
    };
    v.wrapping_add(zero_point).max(lo).min(127) as i8
}

/// The byte-pair table of [`DotKernel::pack_nibbles`]: entry `b` holds `lut[b & 15]` in its low
/// byte and `lut[b >> 4]` in its high byte (`lut` from `RowDecoder::nibble_row`).
pub fn nibble_pair_table(lut: &[i8; 256]) -> [u16; 256] {
    core::array::from_fn(|b| (lut[b & 15] as u8 as u16) | ((lut[b >> 4] as u8 as u16) << 8))
}

/// Portable [`DotKernel::pack_nibbles`].
#[inline]
pub fn pack_nibbles_portable(idx: &[u8], t16: &[u16; 256], k: usize, slot: usize, dst: &mut [u32]) {
    let kq = k.div_ceil(4);
    let (idx, dst) = (&idx[..k / 2], &mut dst[..4 * kq]);
    let v = |b: u8| -> (i16, i16) {
        let t = t16[b as usize];
        (t as u8 as i8 as i16, (t >> 8) as u8 as i8 as i16)
    };
    for (q, b) in idx.chunks(2).enumerate() {
        let (w0, w1) = v(b[0]);
        let (w2, w3) = if b.len() > 1 { v(b[1]) } else { (0, 0) };
        dst[4 * q + 2 * slot] = pk(w0, w2);
        dst[4 * q + 2 * slot + 1] = pk(w1, w3);
    }
}

/// One entry of the zero-skipping sparse kernels: the byte offset `8 * pos` of weight `pos`'s
/// activations in a packed pixel group (2 words per position: pixels 0 and 1, then 2 and 3, as
/// i16 halves) in the high half, the weight as i16 in the low half. `pos < 8192`.
#[inline(always)]
pub fn sparse_entry(pos: usize, w: i8) -> u32 {
    ((8 * pos as u32) << 16) | (w as i16 as u16 as u32)
}

/// The entries of one block of channels for [`DotKernel::dot_sparse_block`], checked once
/// when made so that the kernels can trust them for every pixel group.
#[derive(Debug, Clone, Copy)]
pub struct SparseBlock<'a> {
    ents: &'a [u32],
    heads: &'a [u32],
    max_offset: u32,
}

impl<'a> SparseBlock<'a> {
    /// `heads` holds one `(entry count, bias as u32)` pair per channel; channel `c` owns the
    /// next `count` entries of `ents`. `None` unless there are 1..=ROW_BLOCK channels, every
    /// count is even and at least 2 (pad with entry 0: offset 0, weight 0) and the counts add up
    /// to `ents.len()`.
    pub fn new(ents: &'a [u32], heads: &'a [u32]) -> Option<Self> {
        let n = heads.len() / 2;
        if n == 0 || n > crate::kernels::conv::ROW_BLOCK || !heads.len().is_multiple_of(2) {
            return None;
        }
        let mut total = 0usize;
        for h in heads.chunks_exact(2) {
            let count = h[0] as usize;
            if count < 2 || !count.is_multiple_of(2) {
                return None;
            }
            total += count;
        }
        if total != ents.len() {
            return None;
        }
        let max_offset = ents.iter().map(|&e| e >> 16).max().unwrap_or(0);
        Some(Self {
            ents,
            heads,
            max_offset,
        })
    }
    /// Channels in the block.
    pub fn channels(&self) -> usize {
        self.heads.len() / 2
    }
    /// Whether every entry's two words lie inside a group of `words` words.
    #[inline]
    pub fn fits(&self, words: usize) -> bool {
        (self.max_offset as usize) + 8 <= 4 * words
    }
    /// The entries and the `(count, bias)` pairs.
    #[inline]
    pub fn parts(&self) -> (&'a [u32], &'a [u32]) {
        (self.ents, self.heads)
    }
}

/// Reference of [`DotKernel::dot_sparse_block`]: one multiply at a time.
pub fn dot_sparse_block_ref(acts: &[u32], block: &SparseBlock<'_>, acc: &mut [i32]) {
    const B: usize = crate::kernels::conv::ROW_BLOCK;
    if !block.fits(acts.len()) {
        return;
    }
    let (ents, heads) = block.parts();
    let mut start = 0usize;
    for (c, h) in heads.chunks_exact(2).enumerate() {
        let end = start + h[0] as usize;
        let mut a = [h[1] as i32; 4];
        for &e in &ents[start..end] {
            let w = e as u16 as i16 as i32;
            let i = (e >> 16) as usize / 4;
            let (w01, w23) = (acts[i], acts[i + 1]);
            let x = [
                w01 as i16,
                (w01 >> 16) as i16,
                w23 as i16,
                (w23 >> 16) as i16,
            ];
            for (aj, xj) in a.iter_mut().zip(x) {
                *aj = aj.wrapping_add(xj as i32 * w);
            }
        }
        for (j, aj) in a.into_iter().enumerate() {
            acc[j * B + c] = aj;
        }
        start = end;
    }
}

/// Packs two pixel rows `a[..k]`, `b[..k]` (raw int8, sign-extended; the zero-skipping driver
/// folds the zero point into the bias) into half `half` (0: pixels 0 and 1, 1: pixels 2 and 3)
/// of a group `dst` (`2 * k` words): word `2i + half` holds `a[i]` in its low i16, `b[i]` in its
/// high i16.
#[inline]
pub fn pack_group_pair_portable(a: &[i8], b: &[i8], k: usize, half: usize, dst: &mut [u32]) {
    let (a, b) = (&a[..k], &b[..k]);
    for (i, d) in dst[..2 * k].chunks_exact_mut(2).enumerate() {
        d[half & 1] = pk(a[i] as i16, b[i] as i16);
    }
}

#[inline(always)]
fn pk(lo: i16, hi: i16) -> u32 {
    (lo as u16 as u32) | ((hi as u16 as u32) << 16)
}

/// Portable packing (see the module docs) of `row[..k] - zp`; padding values are 0.
#[inline]
pub fn pack_portable(row: &[i8], k: usize, slot: usize, dst: &mut [u32], zp: i8) {
    let kq = k.div_ceil(4);
    let full = k / 4;
    let row = &row[..k];
    let dst = &mut dst[..4 * kq];
    let z = zp as i16;
    let v = |x: i8| x as i16 - z;
    for q in 0..full {
        let b = &row[q * 4..q * 4 + 4];
        dst[4 * q + 2 * slot] = pk(v(b[0]), v(b[2]));
        dst[4 * q + 2 * slot + 1] = pk(v(b[1]), v(b[3]));
    }
    if full < kq {
        let mut b = [0i16; 4];
        for (d, &x) in b.iter_mut().zip(&row[full * 4..]) {
            *d = v(x);
        }
        dst[4 * full + 2 * slot] = pk(b[0], b[2]);
        dst[4 * full + 2 * slot + 1] = pk(b[1], b[3]);
    }
}

#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let p = (a as i16 as i32) * (b as i16 as i32);
    let q = ((a >> 16) as i16 as i32) * ((b >> 16) as i16 as i32);
    acc.wrapping_add(p).wrapping_add(q)
}

/// Plain scalar reference: unpacks every value and multiplies one at a time.
#[derive(Debug, Clone, Copy)]
pub struct RefDot;

impl DotKernel for RefDot {
    fn dot_2x2(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4] {
        let val = |v: &[u32], slot: usize, i: usize| -> i32 {
            let (q, r) = (i / 4, i % 4);
            let word = v[4 * q + 2 * slot + (r & 1)];
            if r < 2 {
                word as i16 as i32
            } else {
                (word >> 16) as i16 as i32
            }
        };
        let mut r = [0i32; 4];
        for i in 0..4 * kq {
            let (x0, x1) = (val(acts, 0, i), val(acts, 1, i));
            let (w0, w1) = (val(wts, 0, i), val(wts, 1, i));
            r[0] = r[0].wrapping_add(x0 * w0);
            r[1] = r[1].wrapping_add(x0 * w1);
            r[2] = r[2].wrapping_add(x1 * w0);
            r[3] = r[3].wrapping_add(x1 * w1);
        }
        r
    }
}

/// Portable fast path: convolutions run the wide driver ([`crate::kernels::wide`], AVX2 when
/// the CPU has it); the packed micro-kernels emulate SMLAD on words.
#[derive(Debug, Clone, Copy)]
pub struct PortableDot;

impl DotKernel for PortableDot {
    #[inline]
    fn conv(
        p: &ConvParams,
        q: &ConvQuant<'_>,
        input: &[i8],
        w: &RowDecoder<'_>,
        out: &mut [i8],
        scratch: &mut [i8],
    ) -> bool {
        crate::kernels::wide::conv_wide(p, q, input, w, out, scratch)
    }

    #[inline]
    fn dot_2x2(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4] {
        portable_dot_2x2(acts, wts, kq)
    }
}

/// [`PortableDot`] without the AVX2 path on every CPU (what `PortableDot` runs on x86-64 CPUs
/// without AVX2: the SSE2 micro-kernel; on other targets the same as `PortableDot`), so that
/// tests cover both.
#[derive(Debug, Clone, Copy)]
pub struct PortableScalarDot;

impl DotKernel for PortableScalarDot {
    #[inline]
    fn conv(
        p: &ConvParams,
        q: &ConvQuant<'_>,
        input: &[i8],
        w: &RowDecoder<'_>,
        out: &mut [i8],
        scratch: &mut [i8],
    ) -> bool {
        crate::kernels::wide::conv_wide_portable(p, q, input, w, out, scratch)
    }

    #[inline]
    fn dot_2x2(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4] {
        portable_dot_2x2(acts, wts, kq)
    }
}

/// SMLAD emulated on words.
#[inline]
fn portable_dot_2x2(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4] {
    let (a, w) = (&acts[..4 * kq], &wts[..4 * kq]);
    let (mut c00, mut c01, mut c10, mut c11) = (0i32, 0i32, 0i32, 0i32);
    for (x, v) in a.chunks_exact(4).zip(w.chunks_exact(4)) {
        c00 = smlad(x[1], v[1], smlad(x[0], v[0], c00));
        c01 = smlad(x[1], v[3], smlad(x[0], v[2], c01));
        c10 = smlad(x[3], v[1], smlad(x[2], v[0], c10));
        c11 = smlad(x[3], v[3], smlad(x[2], v[2], c11));
    }
    [c00, c01, c10, c11]
}

/// The kernel `run` uses on this target: the Cortex-M4 DSP path on `thumbv7em` (cfg `sqz_dsp`,
/// set by build.rs), the portable path elsewhere.
#[cfg(sqz_dsp)]
pub type BestDot = crate::kernels::arm::ArmDot;
/// The kernel `run` uses on this target.
#[cfg(not(sqz_dsp))]
pub type BestDot = PortableDot;

#[cfg(test)]
mod tests {
    use super::requantize_f32_select;
    use crate::quant::requantize_f32_path;

    #[test]
    fn select_form_equals_the_spec() {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let accs = [
            0,
            1,
            -1,
            2,
            -2,
            i32::MAX,
            i32::MIN,
            1 << 23,
            -(1 << 23),
            1 << 30,
            -(1 << 30),
        ];
        let mults = [
            1e-6f32,
            0.5,
            1.0,
            1.5,
            2.0,
            3.0e8,
            f32::MAX,
            f32::MIN_POSITIVE,
            0.25,
        ];
        let zps = [-128, -1, 0, 5, 127];
        let check = |a: i32, m: f32| {
            for &zp in &zps {
                for lo in [-128, zp.max(-128)] {
                    assert_eq!(
                        requantize_f32_select(a, m, zp, lo),
                        requantize_f32_path(a, m, zp, lo),
                        "acc {a} mult {m} zp {zp} lo {lo}"
                    );
                }
            }
        };
        for &a in &accs {
            for &m in &mults {
                check(a, m);
            }
        }
        for _ in 0..200_000 {
            let r = next();
            let a = (r as i32) >> (r >> 59);
            let m = f32::from_bits(0x3000_0000 + ((r >> 32) as u32 % 0x1800_0000));
            check(a, m);
            // ties: acc * m lands on k + 0.5
            check((r >> 40) as i32 & 0xffff, 0.5);
        }
    }
}
