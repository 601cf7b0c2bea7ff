//! Bypass add with requantisation: tract's `DequantizeLinear -> Add -> QuantizeLinear` in f32.

use crate::quant::{QuantParams, dequantize, requantize_f32};

/// `a[i] = q_o(deq(a[i], qa) + deq(b[i], qb))` in place: `x = fl(fl((a-za)*sa) + fl((b-zb)*sb))`,
/// `a[i] = clamp(rne(fl(x * fl(1/so))) + zo)`. No ReLU. `b.len() >= a.len()`. No scratch.
pub fn add_requant_s8(a: &mut [i8], qa: QuantParams, b: &[i8], qb: QuantParams, qo: QuantParams) {
    let inv = 1.0 / qo.scale;
    let zo = qo.zero_point as i32;
    for (x, &y) in a.iter_mut().zip(b) {
        *x = requantize_f32(dequantize(*x, qa) + dequantize(y, qb), inv, zo, -128);
    }
}

/// Reference twin of [`add_requant_s8`] writing to a separate output.
pub fn add_requant_s8_ref(
    a: &[i8],
    qa: QuantParams,
    b: &[i8],
    qb: QuantParams,
    qo: QuantParams,
    out: &mut [i8],
) {
    for i in 0..out.len() {
        let x = (a[i] as i32 - qa.zero_point as i32) as f32 * qa.scale
            + (b[i] as i32 - qb.zero_point as i32) as f32 * qb.scale;
        out[i] = requantize_f32(x, 1.0 / qo.scale, qo.zero_point as i32, -128);
    }
}
