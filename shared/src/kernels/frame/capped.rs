//! [`Capped`]: a micro-kernel with a build's switches (`caps`), what the firmware runs.

use core::marker::PhantomData;

use super::{ConvIsa, DotKernel, SparseBlock};
use crate::caps::Caps;
use crate::quant::Requant;

/// The kernel `K` with the switches `C` (`run_fused_with::<Capped<BestDot, BlobCaps>>` in the
/// firmware): every method is `K`'s; the drivers, decoders and `run` read `C` through
/// [`DotKernel::Caps`] and leave out what it switches off.
#[derive(Debug, Clone, Copy)]
pub struct Capped<K, C>(PhantomData<(K, C)>);

impl<K: DotKernel, C: Caps> DotKernel for Capped<K, C> {
    const CONV: ConvIsa = K::CONV;
    type Caps = C;

    #[inline(always)]
    fn dot_block(acts: &[u32], wts: &[u32], kq: usize, np: usize, beff: &[i32], acc: &mut [i32]) {
        K::dot_block(acts, wts, kq, np, beff, acc)
    }
    #[inline(always)]
    fn dot_sparse_block(acts: &[u32], block: &SparseBlock<'_>, acc: &mut [i32]) {
        K::dot_sparse_block(acts, block, acc)
    }
    #[inline(always)]
    fn dot_row(acts: &[u32], row: &[i8], k: usize) -> i32 {
        K::dot_row(acts, row, k)
    }
    #[inline(always)]
    fn requant_row(acc: &[i32], scaled: &[i32], rq: &Requant, out: &mut [i8]) {
        K::requant_row(acc, scaled, rq, out)
    }
    #[inline(always)]
    fn pack_acts(row: &[i8], k: usize, slot: usize, zp: i8, dst: &mut [u32]) {
        K::pack_acts(row, k, slot, zp, dst)
    }
    #[inline(always)]
    fn pack_acts_rows(
        src: &[i8],
        stride: usize,
        len: usize,
        rows: usize,
        slot: usize,
        zp: i8,
        dst: &mut [u32],
    ) {
        K::pack_acts_rows(src, stride, len, rows, slot, zp, dst)
    }
    #[inline(always)]
    fn pack_nibbles(idx: &[u8], t16: &[u16; 256], k: usize, slot: usize, dst: &mut [u32]) {
        K::pack_nibbles(idx, t16, k, slot, dst)
    }
    #[inline(always)]
    fn pack_group_pair(a: &[i8], b: &[i8], k: usize, half: usize, dst: &mut [u32]) {
        K::pack_group_pair(a, b, k, half, dst)
    }
}
