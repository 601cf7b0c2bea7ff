//! Pools: `maxpool_s8_portable` (incl. ceil mode), `avgpool_s8`, `global_avgpool_s8` and their
//! reference twins. None needs scratch.

use crate::dims::Dims;
use crate::kernels::params::{PoolParams, window};
use crate::quant::{Multiplier, Requant, requantize};

/// Max pool; padded taps are ignored (every window holds at least one valid tap, checked by the
/// model). Output quantisation equals the input's. Input `p.input`, output `p.output`, NHWC.
pub fn maxpool_s8_portable(p: &PoolParams, input: &[i8], out: &mut [i8]) {
    let c = p.input.c as usize;
    let iw = p.input.w as usize;
    for oy in 0..p.output.h as usize {
        let (ya, yb) = window(oy, p.stride[0], p.pad[0], p.kernel[0], p.input.h);
        for ox in 0..p.output.w as usize {
            let (xa, xb) = window(ox, p.stride[1], p.pad[1], p.kernel[1], p.input.w);
            let o = &mut out[(oy * p.output.w as usize + ox) * c..][..c];
            o.fill(i8::MIN);
            for y in ya..yb {
                for x in xa..xb {
                    let src = &input[(y * iw + x) * c..][..c];
                    for (d, &s) in o.iter_mut().zip(src) {
                        *d = (*d).max(s);
                    }
                }
            }
        }
    }
}

/// Reference twin of [`maxpool_s8_portable`] (per-output scalar loop).
pub fn maxpool_s8_ref(p: &PoolParams, input: &[i8], out: &mut [i8]) {
    let c = p.input.c as usize;
    for oy in 0..p.output.h as usize {
        for ox in 0..p.output.w as usize {
            for ch in 0..c {
                let mut m = i8::MIN;
                for dy in 0..p.kernel[0] as usize {
                    for dx in 0..p.kernel[1] as usize {
                        let y = (oy * p.stride[0] as usize + dy) as isize - p.pad[0] as isize;
                        let x = (ox * p.stride[1] as usize + dx) as isize - p.pad[1] as isize;
                        if y >= 0 && x >= 0 && y < p.input.h as isize && x < p.input.w as isize {
                            m = m.max(
                                input[(y as usize * p.input.w as usize + x as usize) * c + ch],
                            );
                        }
                    }
                }
                out[(oy * p.output.w as usize + ox) * c + ch] = m;
            }
        }
    }
}

/// Average pool (count_include_pad): `acc = sum over valid taps of (x - in_zp)`, requantised
/// with the layer's integer multiplier.
pub fn avgpool_s8(
    p: &PoolParams,
    in_zp: i8,
    mult: Multiplier,
    out_zp: i8,
    input: &[i8],
    out: &mut [i8],
) {
    let c = p.input.c as usize;
    let iw = p.input.w as usize;
    let rq = Requant::new(mult.shift, out_zp, false);
    let scaled = rq.scaled(mult.m);
    for oy in 0..p.output.h as usize {
        let (ya, yb) = window(oy, p.stride[0], p.pad[0], p.kernel[0], p.input.h);
        for ox in 0..p.output.w as usize {
            let (xa, xb) = window(ox, p.stride[1], p.pad[1], p.kernel[1], p.input.w);
            let n = ((yb - ya) * (xb - xa)) as i32;
            let o = &mut out[(oy * p.output.w as usize + ox) * c..][..c];
            for (ch, d) in o.iter_mut().enumerate() {
                let mut acc = 0i32;
                for y in ya..yb {
                    for x in xa..xb {
                        acc += input[(y * iw + x) * c + ch] as i32;
                    }
                }
                *d = requantize(acc - n * in_zp as i32, scaled, &rq);
            }
        }
    }
}

/// Reference twin of [`avgpool_s8`].
pub fn avgpool_s8_ref(
    p: &PoolParams,
    in_zp: i8,
    mult: Multiplier,
    out_zp: i8,
    input: &[i8],
    out: &mut [i8],
) {
    let c = p.input.c as usize;
    let rq = Requant::new(mult.shift, out_zp, false);
    let scaled = rq.scaled(mult.m);
    for oy in 0..p.output.h as usize {
        for ox in 0..p.output.w as usize {
            for ch in 0..c {
                let mut acc = 0i32;
                for dy in 0..p.kernel[0] as usize {
                    for dx in 0..p.kernel[1] as usize {
                        let y = (oy * p.stride[0] as usize + dy) as isize - p.pad[0] as isize;
                        let x = (ox * p.stride[1] as usize + dx) as isize - p.pad[1] as isize;
                        if y >= 0 && x >= 0 && y < p.input.h as isize && x < p.input.w as isize {
                            let v = input[(y as usize * p.input.w as usize + x as usize) * c + ch];
                            acc += v as i32 - in_zp as i32;
                        }
                    }
                }
                out[(oy * p.output.w as usize + ox) * c + ch] = requantize(acc, scaled, &rq);
            }
        }
    }
}

/// Global average pool `h x w x c -> 1 x 1 x c`: `acc = sum(x - in_zp)`, requantised with the
/// integer form of `pool_multiplier(in_scale, h * w, out_scale)`. `out.len() >= c`.
pub fn global_avgpool_s8(
    input: Dims,
    in_zp: i8,
    mult: Multiplier,
    out_zp: i8,
    x: &[i8],
    out: &mut [i8],
) {
    let c = input.c as usize;
    let n = input.h as usize * input.w as usize;
    let rq = Requant::new(mult.shift, out_zp, false);
    let scaled = rq.scaled(mult.m);
    let mut acc = [0i32; 64];
    let mut c0 = 0;
    while c0 < c {
        let m = 64.min(c - c0);
        acc[..m].fill(0);
        for px in 0..n {
            for (a, &v) in acc[..m].iter_mut().zip(&x[px * c + c0..px * c + c0 + m]) {
                *a += v as i32;
            }
        }
        for j in 0..m {
            out[c0 + j] = requantize(acc[j] - n as i32 * in_zp as i32, scaled, &rq);
        }
        c0 += m;
    }
}

/// Reference twin of [`global_avgpool_s8`].
pub fn global_avgpool_s8_ref(
    input: Dims,
    in_zp: i8,
    mult: Multiplier,
    out_zp: i8,
    x: &[i8],
    out: &mut [i8],
) {
    let c = input.c as usize;
    let rq = Requant::new(mult.shift, out_zp, false);
    let scaled = rq.scaled(mult.m);
    for ch in 0..c {
        let mut acc = 0i32;
        for px in 0..input.h as usize * input.w as usize {
            acc += x[px * c + ch] as i32 - in_zp as i32;
        }
        out[ch] = requantize(acc, scaled, &rq);
    }
}
