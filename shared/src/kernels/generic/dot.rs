//! Portable micro-kernels of the packed layout (see `frame`) and the reference of the sparse
//! block: what `RefDot` and `PortableDot` run, and the tails of the DSP path.

use crate::kernels::frame::SparseBlock;
use crate::kernels::params::ROW_BLOCK;

/// Portable [`DotKernel::dot_row`](crate::kernels::frame::DotKernel::dot_row).
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

/// Portable [`DotKernel::pack_nibbles`](crate::kernels::frame::DotKernel::pack_nibbles).
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

/// Reference of
/// [`DotKernel::dot_sparse_block`](crate::kernels::frame::DotKernel::dot_sparse_block): one
/// multiply at a time.
pub fn dot_sparse_block_ref(acts: &[u32], block: &SparseBlock<'_>, acc: &mut [i32]) {
    const B: usize = ROW_BLOCK;
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

/// SMLAD emulated on words.
#[inline]
pub(crate) fn portable_dot_2x2(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4] {
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

/// Plain scalar [`DotKernel::dot_block`](crate::kernels::frame::DotKernel::dot_block) step: unpacks
/// every value and multiplies one at a time.
pub fn ref_dot_2x2(acts: &[u32], wts: &[u32], kq: usize) -> [i32; 4] {
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

/// [`DotKernel::dot_block`](crate::kernels::frame::DotKernel::dot_block) one channel pair at a time
/// through `dot_2x2` (wrapping adds).
#[inline(always)]
pub(crate) fn dot_block_pairs(
    dot_2x2: impl Fn(&[u32], &[u32], usize) -> [i32; 4],
    acts: &[u32],
    wts: &[u32],
    kq: usize,
    npairs: usize,
    beff: &[i32],
    acc: &mut [i32],
) {
    const B: usize = ROW_BLOCK;
    for p in 0..npairs {
        let r = dot_2x2(acts, &wts[p * 4 * kq..(p + 1) * 4 * kq], kq);
        acc[2 * p] = r[0].wrapping_add(beff[2 * p]);
        acc[2 * p + 1] = r[1].wrapping_add(beff[2 * p + 1]);
        acc[B + 2 * p] = r[2].wrapping_add(beff[2 * p]);
        acc[B + 2 * p + 1] = r[3].wrapping_add(beff[2 * p + 1]);
    }
}
