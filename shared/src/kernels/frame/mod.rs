//! The micro-kernel contract ([`DotKernel`]) and the drivers written against it: the packed
//! 2x2 driver (`conv_packed_s8`), the zero-skipping sparse driver (`conv_sparse_s8`) and the
//! host's i16 driver (`conv_wide_s8`). Implementations: `generic` (reference and portable),
//! `arm` (Cortex-M4 DSP); `x86` holds the wide driver's SSE2/AVX2 micro-kernels.
//!
//! # Packed layout (shared by activations and weights)
//! A row of `k` int8 values is cut into `kq = ceil(k / 4)` quads (zero padded). A quad
//! `[b0, b1, b2, b3]` is stored as two words of two i16 each, exactly what `SXTB16` makes of it:
//! `even = b0 | b2 << 16`, `odd = b1 | b3 << 16` (i16 halves, little-endian within the word).
//! Two rows (two pixels, or two output channels) are interleaved per quad:
//! `[even(r0), odd(r0), even(r1), odd(r1)]`, i.e. `4 * kq` words for the pair. Then
//! `dot(r0, s0) = sum over words of SMLAD(r0.even, s0.even) + SMLAD(r0.odd, s0.odd)`.

mod capped;
pub(crate) mod packed;
pub(crate) mod sparse;
pub(crate) mod wide;

pub use capped::Capped;

use crate::kernels::params::ROW_BLOCK;
use crate::quant::Requant;

/// The whole-convolution kernels an implementation brings besides the drivers over its
/// micro-kernels; the dispatcher (`kernels::conv_s8`) tries them first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvIsa {
    /// None: the zero-skipping and packed drivers only.
    Packed,
    /// The i16 wide driver, with AVX2 when the CPU has it (the host path).
    Wide,
    /// The i16 wide driver without AVX2 (SSE2 on x86-64, plain Rust elsewhere).
    WidePortable,
    /// The Cortex-M4 DSP 1-channel 3x3 kernel (the stem).
    ArmDsp,
}

/// A packed 2-pixel x 2-channel dot-product micro-kernel, with the packing and requantisation
/// steps the drivers call around it. Every implementation equals `RefDot` bit for bit.
pub trait DotKernel {
    /// The whole-convolution kernels the dispatcher may run instead of the drivers.
    const CONV: ConvIsa;
    /// The decoders and kernels compiled in ([`crate::caps::Everything`] but in a firmware
    /// built for one blob, see [`Capped`]).
    type Caps: crate::caps::Caps;

    /// For each channel pair `p < npairs` (packed one after the other in `wts`, `4 * kq` words
    /// each) against the packed pixel pair `acts` (`4 * kq` words), with `B = ROW_BLOCK`:
    /// `acc[2p + c] = beff[2p + c] + a0.w(2p + c)` and `acc[B + 2p + c] = beff[2p + c] +
    /// a1.w(2p + c)` for `c` in 0..2 (wrapping). `beff.len() >= 2 * npairs`,
    /// `acc.len() >= 2 * B`, `1 <= npairs <= B / 2`.
    fn dot_block(
        acts: &[u32],
        wts: &[u32],
        kq: usize,
        npairs: usize,
        beff: &[i32],
        acc: &mut [i32],
    );

    /// Zero-skipping sparse block over a group of four pixels: with `B = ROW_BLOCK`, for each
    /// channel `c` of `block` and pixel `j` in 0..4:
    /// `acc[j * B + c] = bias(c) + sum over the channel's entries e of x_j(e) * w(e)`
    /// (wrapping), where `x_j(e)` is half `j % 2` of word `offset(e) / 4 + j / 2` of `acts` (see
    /// [`sparse_entry`]). `acc.len() >= 4 * B`; a block whose offsets do not fit `acts` leaves
    /// `acc` untouched.
    fn dot_sparse_block(acts: &[u32], block: &SparseBlock<'_>, acc: &mut [i32]);

    /// Single-pixel dot product: `sum((x - zp) * row)` over `k` values where `acts` is packed by
    /// [`DotKernel::pack_acts`] in slot 0 and `row` holds raw int8 weights (`row.len() >= k`).
    fn dot_row(acts: &[u32], row: &[i8], k: usize) -> i32;

    /// `out[j] = quant::requantize(acc[j], scaled[j], rq)` for `j < out.len()` (`acc` and
    /// `scaled` at least as long).
    fn requant_row(acc: &[i32], scaled: &[i32], rq: &Requant, out: &mut [i8]);

    /// Packs `row[..k] - zp` (in `-255..=255`; padding values 0) into slot `slot` (0 or 1) of
    /// a packed pair `dst` (`4 * kq` words). Weights pack with `zp = 0`; activations with the
    /// input zero point, so that dot products need no weight sums.
    fn pack_acts(row: &[i8], k: usize, slot: usize, zp: i8, dst: &mut [u32]);

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

    /// Packs a 4-bit codebook row like [`DotKernel::pack_acts`] with `zp = 0`: `idx` holds the
    /// `k / 2` index bytes of the row (`k` even, weight `2i` in the low nibble of byte `i`),
    /// `t16[b]` the two centroids of index byte `b` as int8 bytes (`c[b & 15] | c[b >> 4] << 8`,
    /// see [`nibble_pair_table`]).
    fn pack_nibbles(idx: &[u8], t16: &[u16; 256], k: usize, slot: usize, dst: &mut [u32]);

    /// Packs two pixel rows `a[..k]`, `b[..k]` (raw int8, sign-extended; the zero-skipping
    /// driver folds the zero point into the bias) into half `half` (0: pixels 0 and 1, 1:
    /// pixels 2 and 3) of a group `dst` (`2 * k` words): word `2i + half` holds `a[i]` in its
    /// low i16, `b[i]` in its high i16.
    fn pack_group_pair(a: &[i8], b: &[i8], k: usize, half: usize, dst: &mut [u32]);
}

/// [`DotKernel::pack_acts_rows`] as one `pack_acts` call per row (the default, and the fallback of
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

/// The byte-pair table of [`DotKernel::pack_nibbles`]: entry `b` holds `lut[b & 15]` in its low
/// byte and `lut[b >> 4]` in its high byte (`lut` from `RowDecoder::nibble_row`).
pub fn nibble_pair_table(lut: &[i8; 256]) -> [u16; 256] {
    core::array::from_fn(|b| (lut[b & 15] as u8 as u16) | ((lut[b >> 4] as u8 as u16) << 8))
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
        if n == 0 || n > ROW_BLOCK || !heads.len().is_multiple_of(2) {
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
