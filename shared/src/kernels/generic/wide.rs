//! Plain-Rust micro-kernels of the wide driver (`frame::wide`), the shape of `PMADDWD`: what
//! targets other than x86-64 run.

use crate::kernels::params::LANES;

/// Plain-Rust [`outer_pixel`] (targets other than x86-64).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(crate) fn outer_portable(a: &[i16], wt: &[i16], nb: usize, bias: &[i32], acc: &mut [i32]) {
    let th = a.len() / 2;
    let (acc, bias) = (&mut acc[..nb], &bias[..nb]);
    acc.copy_from_slice(bias);
    for t in 0..th {
        let (x0, x1) = (a[2 * t] as i32, a[2 * t + 1] as i32);
        let ws = &wt[2 * t * nb..2 * (t + 1) * nb];
        for (o, v) in acc.iter_mut().zip(ws.chunks_exact(2)) {
            *o = o.wrapping_add((x0 * v[0] as i32).wrapping_add(x1 * v[1] as i32));
        }
    }
}

#[inline(always)]
pub(crate) fn nibbles_scalar(idx: &[u8], lut: &[i8; 256], dst: &mut [i16]) {
    for (d, &b) in dst.chunks_exact_mut(2).zip(idx) {
        d[0] = lut[(b & 15) as usize] as i16;
        d[1] = lut[(b >> 4) as usize] as i16;
    }
}

/// Plain-Rust micro-kernel (targets other than x86-64): 8 lanes of pairwise products per
/// output (the shape of `PMADDWD`).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(crate) fn micro_portable(a0: &[i16], a1: &[i16], w: &[i16], kp: usize) -> [i32; 8] {
    let n = kp / LANES;
    let (a0, a1, w) = (&a0[..n * LANES], &a1[..n * LANES], &w[..4 * n * LANES]);
    let mut acc = [[0i32; 8]; 8];
    for c in 0..n {
        let xs = [&a0[c * LANES..][..LANES], &a1[c * LANES..][..LANES]];
        for (pi, x) in xs.iter().enumerate() {
            for j in 0..4 {
                let v = &w[j * kp + c * LANES..][..LANES];
                let a = &mut acc[pi * 4 + j];
                for l in 0..8 {
                    let s = (x[2 * l] as i32 * v[2 * l] as i32)
                        .wrapping_add(x[2 * l + 1] as i32 * v[2 * l + 1] as i32);
                    a[l] = a[l].wrapping_add(s);
                }
            }
        }
    }
    let mut r = [0i32; 8];
    for (o, a) in r.iter_mut().zip(&acc) {
        *o = a.iter().fold(0i32, |s, &v| s.wrapping_add(v));
    }
    r
}
