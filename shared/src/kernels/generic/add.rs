//! Bypass add with integer requantisation ([`crate::quant::add_requant`]).

use crate::quant::{AddRequant, add_requant};

/// `a[i] = clamp(zo + floor(((a[i] - za) * r.a + (b[i] - zb) * r.b + 2^(s-1)) / 2^s))` in
/// place. No ReLU. `b.len() >= a.len()`. No scratch.
pub fn add_requant_s8(a: &mut [i8], za: i8, b: &[i8], zb: i8, r: &AddRequant, zo: i8) {
    let (za, zb, zo) = (za as i32, zb as i32, zo as i32);
    for (x, &y) in a.iter_mut().zip(b) {
        *x = add_requant(*x as i32 - za, y as i32 - zb, r, zo);
    }
}

/// Reference twin of [`add_requant_s8`] writing to a separate output, in i64 with a division.
pub fn add_requant_s8_ref(
    a: &[i8],
    za: i8,
    b: &[i8],
    zb: i8,
    r: &AddRequant,
    zo: i8,
    out: &mut [i8],
) {
    for i in 0..out.len() {
        let num = (a[i] as i64 - za as i64) * r.a as i64
            + (b[i] as i64 - zb as i64) * r.b as i64
            + (1i64 << (r.shift - 1));
        let y = num.div_euclid(1i64 << r.shift) + zo as i64;
        out[i] = y.clamp(-128, 127) as i8;
    }
}
