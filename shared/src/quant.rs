#![doc = include_str!("QUANT.md")]

use serde::{Deserialize, Serialize};

/// Asymmetric per-tensor quantisation of an activation: `real = scale * (q - zero_point)`. The
/// scale is metadata for the exporters and the encoder; the kernels read only the zero point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    /// Scale (positive, finite, normal f32).
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
}

/// The input quantisation every blob uses: pixels in `[0, 1]` at scale `1/255`, zero point
/// `-128`, so the int8 input is `pixel - 128` ([`quantize_input_u8`]).
pub const INPUT_QUANT: QuantParams = QuantParams {
    scale: 1.0 / 255.0,
    zero_point: -128,
};

/// Smallest layer shift (multipliers up to `2^15`).
pub const SHIFT_MIN: u8 = 1;
/// Largest layer shift: `2^(s-1)` and every product stay far inside i64.
pub const SHIFT_MAX: u8 = 47;
/// Largest bias shift (a bias is `b << bias_shift` with `b` an i16: at most `2^31` in size).
pub const BIAS_SHIFT_MAX: u8 = 16;

/// A positive real multiplier as the integer pair `m / 2^shift`, `m < 2^16`,
/// `SHIFT_MIN <= shift <= SHIFT_MAX`: the pools' multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multiplier {
    /// Mantissa.
    pub m: u16,
    /// Right shift.
    pub shift: u8,
}

/// The bypass add `q = clamp(zo + floor((da * a + db * b + 2^(shift-1)) / 2^shift))` with
/// `da`, `db` the two inputs minus their zero points (`a` multiplies the concat, `b` the bypass
/// branch); `1 <= shift <= 16`, so every term fits an i32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddRequant {
    /// Multiplier of the concat (first operand).
    pub a: u16,
    /// Multiplier of the bypass branch (second operand).
    pub b: u16,
    /// Right shift.
    pub shift: u8,
}

/// Whether `s` is a valid layer shift.
#[inline]
pub fn shift_ok(s: u8) -> bool {
    (SHIFT_MIN..=SHIFT_MAX).contains(&s)
}

/// Layer-level requantisation, prepared for the kernels: a channel multiplier `m` becomes the
/// scaled word `m << (total - s)` ([`Requant::scaled`]) and the result is
/// `(acc * scaled + 2^(total-1)) >> total`, the same integer as
/// `floor((acc * m + 2^(s-1)) / 2^s)` (`QUANT.md`, step 2). `total` is 32 for shifts
/// `17..=32` (then `scaled < 2^31` and the result is the high word of one 32x32 product: the
/// DSP's `SMMULR`), else `s` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requant {
    /// The shift applied to the scaled product.
    pub total: u32,
    /// `total - s`: the scaled word is `m << left`.
    pub left: u32,
    /// Output zero point.
    pub zero_point: i32,
    /// Lower clamp: `-128`, or `max(-128, zero_point)` with a fused ReLU.
    pub lo: i32,
}

impl Requant {
    /// For layer shift `shift` (validated blobs hold `SHIFT_MIN..=SHIFT_MAX`; other values are
    /// clamped into that range); `relu` fuses a ReLU (`q = max(q, zero_point)`).
    #[inline]
    pub fn new(shift: u8, zero_point: i8, relu: bool) -> Self {
        let s = shift.clamp(SHIFT_MIN, SHIFT_MAX) as u32;
        let total = if (17..=32).contains(&s) { 32 } else { s };
        let zero_point = zero_point as i32;
        Requant {
            total,
            left: total - s,
            zero_point,
            lo: if relu { zero_point } else { -128 },
        }
    }

    /// The scaled word of channel multiplier `m`: `m << left` (below `2^31`).
    #[inline(always)]
    pub fn scaled(&self, m: u16) -> i32 {
        ((m as u32) << self.left) as i32
    }

    /// Whether the layer takes the one-high-word form (`total == 32`).
    #[inline(always)]
    pub fn high_word(&self) -> bool {
        self.total == 32
    }
}

/// THE requantisation: accumulator (bias and zero-point correction included) to int8, with the
/// channel's scaled multiplier `scaled = rq.scaled(m)`:
/// `q = clamp(floor((acc * m + 2^(s-1)) / 2^s) + zp, lo, 127)`, computed as
/// `(acc * scaled + 2^(total-1)) >> total` in i64 (exact: `QUANT.md`).
#[inline(always)]
pub fn requantize(acc: i32, scaled: i32, rq: &Requant) -> i8 {
    let z = acc as i64 * scaled as i64 + (1i64 << (rq.total - 1));
    // Large multipliers (`s < 17`) can exceed i32 before the clamp.
    let y = (z >> rq.total).clamp(-1 << 16, 1 << 16) as i32;
    clamp_i8(y + rq.zero_point, rq.lo)
}

/// The definition [`requantize`] implements, in the plainest arithmetic (i128, one division
/// rounded down): the reference for tests and for the proof.
pub fn requantize_spec(acc: i32, m: u16, shift: u8, zero_point: i8, lo: i32) -> i8 {
    let num = acc as i128 * m as i128 + (1i128 << (shift - 1));
    let y = num.div_euclid(1i128 << shift);
    y.clamp(-1000, 1000)
        .wrapping_add(zero_point as i128)
        .max(lo as i128)
        .min(127) as i8
}

/// The bypass add of one value: `da`, `db` are the inputs minus their zero points.
#[inline(always)]
pub fn add_requant(da: i32, db: i32, r: &AddRequant, zero_point: i32) -> i8 {
    let s = (r.shift as u32).clamp(1, 16);
    let y = (da * r.a as i32 + db * r.b as i32 + (1 << (s - 1))) >> s;
    clamp_i8(y + zero_point, -128)
}

#[inline(always)]
fn clamp_i8(v: i32, lo: i32) -> i8 {
    v.max(lo).min(127) as i8
}

/// The int8 input of raw 8-bit pixels under [`INPUT_QUANT`]: `pixel - 128` (what ONNX
/// `QuantizeLinear` gives for `pixel / 255` at that quantisation; `QUANT.md`). Processes
/// `min(pixels.len(), out.len())` values.
pub fn quantize_input_u8(pixels: &[u8], out: &mut [i8]) {
    for (o, &p) in out.iter_mut().zip(pixels) {
        *o = (p ^ 0x80) as i8;
    }
}

/// [`requantize`] over a row: `out[j] = requantize(acc[j], scaled[j], rq)`.
#[inline]
pub fn requant_row(acc: &[i32], scaled: &[i32], rq: &Requant, out: &mut [i8]) {
    requant_row_inline(acc, scaled, rq, out)
}

/// [`requant_row`], always inlined (so that it is compiled with its caller's target features).
#[inline(always)]
pub(crate) fn requant_row_inline(acc: &[i32], scaled: &[i32], rq: &Requant, out: &mut [i8]) {
    let n = out.len();
    for ((o, &a), &m) in out.iter_mut().zip(&acc[..n]).zip(&scaled[..n]) {
        *o = requantize(a, m, rq);
    }
}

/// The bias of accumulator units stored as `b << bias_shift`.
#[inline(always)]
pub fn bias_value(b: i16, bias_shift: u8) -> i32 {
    (b as i32) << bias_shift.min(BIAS_SHIFT_MAX)
}

// ---- Encode time: from the f32 scales of training to the integers above. ----

/// Derives a convolution channel's real multiplier as tract executes `combine_scales`:
/// `fl(fl(w_scale * in_scale) * fl(1 / out_scale))`. Encode time only.
#[inline]
pub fn conv_multiplier(in_scale: f32, w_scale: f32, out_scale: f32) -> f32 {
    (w_scale * in_scale) * (1.0 / out_scale)
}

/// Real multiplier of an average pool over `count` taps: `conv_multiplier(in, 1/count, out)`.
/// Encode time only.
#[inline]
pub fn pool_multiplier(in_scale: f32, count: u32, out_scale: f32) -> f32 {
    conv_multiplier(in_scale, 1.0 / count as f32, out_scale)
}

/// `floor(x + 1/2)` of a non-negative f64 below `2^52` (no libm in `no_std`).
fn round_half_up(x: f64) -> u64 {
    (x + 0.5) as u64
}

/// The u16 channel multipliers `m[c] = round(M[c] * 2^s)` of real multipliers `mults` with the
/// largest shift `s <= SHIFT_MAX` that keeps every `m[c] <= 65535`; returns `s`, or `None` when
/// a multiplier is not finite and positive or too large (`>= 32767.5`: `s` would fall below
/// `SHIFT_MIN`). `M * 2^s` and the `+ 1/2` are exact in f64, so the rounding is exact.
pub fn channel_multipliers(mults: &[f32], out: &mut [u16]) -> Option<u8> {
    let mut max = 0f64;
    for &m in mults {
        if !(m.is_finite() && m > 0.0) {
            return None;
        }
        max = max.max(m as f64);
    }
    let fits = |s: u8| round_half_up(max * (1u64 << s) as f64) <= u16::MAX as u64;
    let s = (SHIFT_MIN..=SHIFT_MAX).rev().find(|&s| fits(s))?;
    for (o, &m) in out.iter_mut().zip(mults) {
        *o = round_half_up(m as f64 * (1u64 << s) as f64) as u16;
    }
    Some(s)
}

/// [`channel_multipliers`] of one value.
pub fn multiplier(m: f32) -> Option<Multiplier> {
    let mut out = [0u16];
    let shift = channel_multipliers(&[m], &mut out)?;
    Some(Multiplier { m: out[0], shift })
}

/// The bypass add's multipliers `round(s_a / s_o * 2^shift)`, `round(s_b / s_o * 2^shift)` (ratios
/// in f64) with the largest `shift <= 16` keeping both below `2^16`; `None` when a ratio is not
/// finite and positive or `>= 2^15`.
pub fn add_multipliers(sa: f32, sb: f32, so: f32) -> Option<AddRequant> {
    let (ra, rb) = (sa as f64 / so as f64, sb as f64 / so as f64);
    if !(ra.is_finite() && rb.is_finite() && ra > 0.0 && rb > 0.0) {
        return None;
    }
    let max = ra.max(rb);
    let fits = |s: u8| round_half_up(max * (1u64 << s) as f64) <= u16::MAX as u64;
    let shift = (1..=16u8).rev().find(|&s| fits(s))?;
    let at = |r: f64| round_half_up(r * (1u64 << shift) as f64) as u16;
    Some(AddRequant {
        a: at(ra),
        b: at(rb),
        shift,
    })
}

/// i16 biases `b[c] = floor((bias[c] + 2^(k-1)) / 2^k)` (`k = 0`: unchanged) with the smallest
/// shift `k` that fits them all; returns `k` (`<= BIAS_SHIFT_MAX`, always enough for an i32).
pub fn compact_biases(bias: &[i32], out: &mut [i16]) -> u8 {
    let at = |b: i32, k: u8| -> i64 {
        if k == 0 {
            b as i64
        } else {
            (b as i64 + (1i64 << (k - 1))) >> k
        }
    };
    let fits = |k: u8| {
        bias.iter()
            .all(|&b| (i16::MIN as i64..=i16::MAX as i64).contains(&at(b, k)))
    };
    let k = (0..=BIAS_SHIFT_MAX)
        .find(|&k| fits(k))
        .unwrap_or(BIAS_SHIFT_MAX);
    for (o, &b) in out.iter_mut().zip(bias) {
        *o = at(b, k).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tract_input_quant(p: u8) -> i8 {
        // ONNX QuantizeLinear of x = fl(p / 255) at INPUT_QUANT, as tract evaluates it in f32:
        // rne(fl(x * fl(1 / scale))) + zp, saturated.
        let x = p as f32 / 255.0;
        let y = x * (1.0 / INPUT_QUANT.scale);
        let r = y.round_ties_even() as i32;
        (r + INPUT_QUANT.zero_point as i32).clamp(-128, 127) as i8
    }

    #[test]
    fn input_quant_is_pixel_minus_128_as_onnx_computes_it() {
        let px: [u8; 256] = core::array::from_fn(|i| i as u8);
        let mut out = [0i8; 256];
        quantize_input_u8(&px, &mut out);
        for (i, &o) in out.iter().enumerate() {
            assert_eq!(o as i32, i as i32 - 128);
            assert_eq!(o, tract_input_quant(i as u8));
        }
    }

    #[test]
    fn fast_form_equals_the_spec() {
        let mut rng = crate::testkit::Rng(0x9E37_79B9_7F4A_7C15);
        let accs = [
            0,
            1,
            -1,
            2,
            -2,
            i32::MAX,
            i32::MIN,
            1 << 23,
            -(1 << 23),
            12345,
            -98765,
        ];
        for shift in SHIFT_MIN..=SHIFT_MAX {
            for zp in [-128i8, -3, 0, 7, 127] {
                for relu in [false, true] {
                    let rq = Requant::new(shift, zp, relu);
                    for m in [0u16, 1, 2, 255, 32768, 65535] {
                        for &a in &accs {
                            assert_eq!(
                                requantize(a, rq.scaled(m), &rq),
                                requantize_spec(a, m, shift, zp, rq.lo),
                                "acc {a} m {m} s {shift} zp {zp} relu {relu}"
                            );
                        }
                    }
                    for _ in 0..3000 {
                        let r = rng.next_u32();
                        let a = (rng.next_u32() as i32) >> (r % 31);
                        let m = (r >> 8) as u16;
                        assert_eq!(
                            requantize(a, rq.scaled(m), &rq),
                            requantize_spec(a, m, shift, zp, rq.lo)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn ties_round_up() {
        // m / 2^s = 1/4 with s = 17: 6 * 0.25 = 1.5 -> 2; -6 * 0.25 = -1.5 -> -1; 10 -> 3.
        let rq = Requant::new(17, 0, false);
        let m = 1u16 << 15;
        assert!(rq.high_word());
        assert_eq!(requantize(6, rq.scaled(m), &rq), 2);
        assert_eq!(requantize(-6, rq.scaled(m), &rq), -1);
        assert_eq!(requantize(10, rq.scaled(m), &rq), 3);
        assert_eq!(requantize(5, rq.scaled(m), &rq), 1);
    }

    #[test]
    fn multipliers_keep_16_bits_of_the_largest() {
        let mults = [5.891e-4f32, 5.052e-3, 1e-3];
        let mut m = [0u16; 3];
        let s = channel_multipliers(&mults, &mut m).unwrap();
        assert!(m[1] >= 1 << 15, "{m:?}");
        for (i, &x) in mults.iter().enumerate() {
            let back = m[i] as f64 / (1u64 << s) as f64;
            assert!((back - x as f64).abs() <= 0.5 / (1u64 << s) as f64);
        }
        assert_eq!(channel_multipliers(&[40000.0], &mut m[..1]), None);
        assert_eq!(channel_multipliers(&[f32::NAN], &mut m[..1]), None);
        assert_eq!(multiplier(0.4999).unwrap().shift, 17);
        assert_eq!(
            multiplier(1.0).unwrap(),
            Multiplier {
                m: 1 << 15,
                shift: 15
            }
        );
        assert_eq!(multiplier(1e-20).unwrap().shift, SHIFT_MAX);
    }

    #[test]
    fn biases_compact_with_the_smallest_shift() {
        let mut b = [0i16; 3];
        assert_eq!(compact_biases(&[1, -32768, 32767], &mut b), 0);
        assert_eq!(b, [1, -32768, 32767]);
        assert_eq!(compact_biases(&[102_316, -5, 3], &mut b), 2);
        assert_eq!(b, [25579, -1, 1]);
        assert_eq!(compact_biases(&[i32::MIN, i32::MAX], &mut b[..2]), 16);
        assert_eq!(bias_value(b[0], 16), i32::MIN);
    }

    #[test]
    fn add_matches_its_definition() {
        let r = add_multipliers(0.05, 0.02, 0.06).unwrap();
        assert_eq!(r.shift, 16);
        for da in -255..=255 {
            for db in [-255, -17, 0, 3, 255] {
                let num = da as i64 * r.a as i64 + db as i64 * r.b as i64 + (1 << 15);
                let want = (num.div_euclid(1 << 16) - 5).clamp(-128, 127) as i8;
                assert_eq!(add_requant(da, db, &r, -5), want);
            }
        }
    }
}
