//! The generic tier: the reference twins (`*_ref`, [`RefDot`]) and the portable kernels
//! ([`PortableDot`], [`PortableScalarDot`], the pools, the bypass add) that every target runs.

pub(crate) mod add;
pub(crate) mod conv;
pub(crate) mod dot;
pub(crate) mod pool;
pub(crate) mod wide;

use crate::kernels::frame::{ConvIsa, DotKernel, SparseBlock};
use crate::quant::{Requant, requant_row};
use dot::{
    dot_block_pairs, dot_row_portable, dot_sparse_block_ref, pack_group_pair_portable,
    pack_nibbles_portable, pack_portable, portable_dot_2x2, ref_dot_2x2,
};

/// The [`DotKernel`] methods every generic implementation shares: the portable packers, the
/// reference sparse block, the portable single-pixel dot and the requantisation of `quant`.
macro_rules! portable_methods {
    () => {
        #[inline]
        fn dot_sparse_block(acts: &[u32], block: &SparseBlock<'_>, acc: &mut [i32]) {
            dot_sparse_block_ref(acts, block, acc)
        }

        #[inline]
        fn dot_row(acts: &[u32], row: &[i8], k: usize) -> i32 {
            dot_row_portable(acts, row, k)
        }

        #[inline]
        fn requant_row(acc: &[i32], scaled: &[i32], rq: &Requant, out: &mut [i8]) {
            requant_row(acc, scaled, rq, out)
        }

        #[inline]
        fn pack_acts(row: &[i8], k: usize, slot: usize, zp: i8, dst: &mut [u32]) {
            pack_portable(row, k, slot, dst, zp)
        }

        #[inline]
        fn pack_nibbles(idx: &[u8], t16: &[u16; 256], k: usize, slot: usize, dst: &mut [u32]) {
            pack_nibbles_portable(idx, t16, k, slot, dst)
        }

        #[inline]
        fn pack_group_pair(a: &[i8], b: &[i8], k: usize, half: usize, dst: &mut [u32]) {
            pack_group_pair_portable(a, b, k, half, dst)
        }
    };
}

/// Plain scalar reference: unpacks every value and multiplies one at a time; no whole-conv
/// kernel of its own.
#[derive(Debug, Clone, Copy)]
pub struct RefDot;

impl DotKernel for RefDot {
    const CONV: ConvIsa = ConvIsa::Packed;
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
        dot_block_pairs(ref_dot_2x2, acts, wts, kq, npairs, beff, acc)
    }

    portable_methods!();
}

/// Portable fast path: convolutions run the wide driver (`frame::wide`, AVX2 when the CPU has
/// it); the packed micro-kernels emulate SMLAD on words.
#[derive(Debug, Clone, Copy)]
pub struct PortableDot;

impl DotKernel for PortableDot {
    const CONV: ConvIsa = ConvIsa::Wide;
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
        dot_block_pairs(portable_dot_2x2, acts, wts, kq, npairs, beff, acc)
    }

    portable_methods!();
}

/// [`PortableDot`] without the AVX2 path on every CPU (what `PortableDot` runs on x86-64 CPUs
/// without AVX2: the SSE2 micro-kernel; on other targets the same as `PortableDot`), so that
/// tests cover both.
#[derive(Debug, Clone, Copy)]
pub struct PortableScalarDot;

impl DotKernel for PortableScalarDot {
    const CONV: ConvIsa = ConvIsa::WidePortable;
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
        dot_block_pairs(portable_dot_2x2, acts, wts, kq, npairs, beff, acc)
    }

    portable_methods!();
}
