//! The convolution's reference twin, [`conv_ref_s8`]: direct loops over dense weights.

use crate::kernels::params::{ConvParams, ConvQuant};
use crate::quant::requantize;

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
                let mut acc = q.bias_at(oc);
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
                let rq = q.requant();
                out[o] = requantize(acc, q.scaled_at(&rq, oc), &rq);
            }
        }
    }
}
