//! Kernel parameters: [`ConvParams`], [`ConvQuant`], [`PoolParams`], the block sizes, and each
//! kernel's `*_scratch_len` companion (the arena plan sizes the scratch from these).

use crate::bytes::{le_i16_at, le_u16_at};
use crate::dims::{Dims, Pad};
use crate::quant::{Requant, bias_value};

/// Row padding in i16 values of the wide driver (one 256-bit register).
pub const LANES: usize = 16;

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
    /// A 1x1 stride-1 unpadded conv: the input pixels are the patches.
    #[inline]
    pub(crate) fn direct(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [0; 4]
    }
}

/// Quantisation of one convolution.
#[derive(Debug, Clone, Copy)]
pub struct ConvQuant<'a> {
    /// Input zero point (padded taps hold it, so they contribute 0).
    pub in_zp: i8,
    /// `cout` i16 LE biases.
    pub bias: &'a [u8],
    /// Left shift of the biases.
    pub bias_shift: u8,
    /// `cout` u16 LE multipliers.
    pub multipliers: &'a [u8],
    /// The layer's shift.
    pub shift: u8,
    /// Output zero point.
    pub out_zp: i8,
    /// Fused ReLU (`q = max(q, out_zp)`).
    pub relu: bool,
}

impl ConvQuant<'_> {
    /// Layer-level requantisation parameters.
    #[inline]
    pub fn requant(&self) -> Requant {
        Requant::new(self.shift, self.out_zp, self.relu)
    }
    /// Channel `c`'s bias in accumulator units.
    #[inline(always)]
    pub fn bias_at(&self, c: usize) -> i32 {
        bias_value(le_i16_at(self.bias, c), self.bias_shift)
    }
    /// Channel `c`'s multiplier scaled for [`crate::quant::requantize`] with `rq`.
    #[inline(always)]
    pub fn scaled_at(&self, rq: &Requant, c: usize) -> i32 {
        rq.scaled(le_u16_at(self.multipliers, c))
    }
}

/// Channels of the smallest weight block the arena plan reserves scratch for: a longer scratch
/// (free arena bytes at that layer, or a host caller's larger arena) buys larger blocks, up to
/// [`block_channels`], and fewer passes over the pixels.
pub const MIN_BLOCK: usize = 12;

/// Scratch bytes `conv_s8` needs, in this order: up to 3 bytes of alignment slack, the packed
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

/// Scratch bytes with which `conv_s8` takes its largest weight blocks ([`block_channels`]):
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
pub(crate) fn scratch_tail(p: &ConvParams, dense: bool) -> usize {
    let k = p.k();
    (if p.direct() { 0 } else { 2 * k }) + if dense { 0 } else { k }
}

/// Channels per block the packed driver uses with `len` scratch bytes: the largest even count
/// up to [`block_channels`] whose packed weights fit, at least the planned minimum.
pub(crate) fn fitting_block(p: &ConvParams, dense: bool, len: usize) -> usize {
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
pub(crate) fn take_words(buf: &mut [i8], n: usize) -> (&mut [u32], &mut [i8]) {
    let skip = buf.as_ptr().align_offset(4).min(3);
    let (_, buf) = buf.split_at_mut(skip);
    let (w, rest) = buf.split_at_mut(4 * n);
    // SAFETY: `w` starts 4-byte aligned (align_offset) and holds exactly `4 * n` bytes; every bit
    // pattern is a valid u32; the borrow of `w` is moved into the result.
    let words = unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u32>(), n) };
    (words, rest)
}

/// Output pixels per group of the zero-skipping sparse driver.
pub const SPARSE_GROUP: usize = 4;

/// Geometry of a pool. Output dims are computed by the model (ceil mode already applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    /// Input dims.
    pub input: Dims,
    /// Output dims (`c == input.c`).
    pub output: Dims,
    /// `[kh, kw]`.
    pub kernel: [u8; 2],
    /// `[sh, sw]`.
    pub stride: [u8; 2],
    /// `[t, l, b, r]`.
    pub pad: Pad,
}

/// Scratch bytes the pools need: none (all three work in place on their output).
pub fn pool_scratch_len(_p: &PoolParams) -> usize {
    0
}

/// Clipped window `[a, b)` along one axis.
#[inline(always)]
pub(crate) fn window(o: usize, s: u8, pad: u8, k: u8, n: u16) -> (usize, usize) {
    let start = (o * s as usize) as isize - pad as isize;
    let a = start.max(0) as usize;
    let b = ((start + k as isize).max(0) as usize).min(n as usize);
    (a, b)
}

/// Scratch bytes `add_requant_s8` needs: none (in place).
pub fn add_scratch_len(_len: usize) -> usize {
    0
}
