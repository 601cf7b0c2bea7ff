//! Quantisation arithmetic: the single requantisation spec shared by every kernel.
//!
//! Every int8 output of every layer goes through [`requantize`] (accumulator to int8) or
//! [`requantize_f32`] (the f32 core it shares with the bypass add and the input quantiser).
//! The arithmetic reproduces what tract 0.23.9 executes for the exported ONNX graph bit for bit;
//! see `TRACT_NOTES.md` for the derivation from tract's source.

use serde::{Deserialize, Serialize};

/// Asymmetric per-tensor quantisation of an activation: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    /// Scale (positive, finite, normal f32).
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
}

/// `2^23`: adding and subtracting it rounds an f32 of magnitude `< 2^23` to the nearest integer,
/// ties to even (the IEEE default rounding mode). Same trick as `tract_data::round_ties_to_even`.
const TOINT: f32 = 8_388_608.0;

/// Round half to even, bit-identical to `tract_data::prelude::round_ties_to_even` (0.23.9).
#[inline(always)]
pub fn round_ties_to_even(x: f32) -> f32 {
    let u = x.to_bits();
    let e = (u >> 23) & 0xff;
    if e >= 0x7f + 23 {
        return x;
    }
    if u >> 31 == 1 {
        x - TOINT + TOINT
    } else {
        x + TOINT - TOINT
    }
}

/// Layer-level requantisation parameters (the per-channel part is the f32 multiplier passed to
/// [`requantize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requant {
    /// `Some((q31, shift))` selects tract's fixed-point `Scaler` path, used by tract when the
    /// multiplier is uniform over the layer's channels (derived from that multiplier by
    /// [`mult_shift`]); `None` the f32 path.
    pub fixed: Option<(i32, i32)>,
    /// Output zero point.
    pub zero_point: i32,
    /// Lower clamp: `-128`, or `max(-128, zero_point)` with a fused ReLU.
    pub lo: i32,
}

impl Requant {
    /// `uniform`: `Some(m)` when every channel of the layer has the bit-identical multiplier `m`
    /// (tract then folds the scale into its fixed-point `Scaler`, exact rounding). `relu` fuses a
    /// ReLU (`q = max(q, zero_point)`).
    #[inline]
    pub fn new(uniform: Option<f32>, zero_point: i8, relu: bool) -> Self {
        let zero_point = zero_point as i32;
        let lo = if relu { zero_point } else { -128 };
        Requant {
            fixed: uniform.map(mult_shift),
            zero_point,
            lo,
        }
    }
}

/// tract-linalg's `Scaler::convert_scale_to_mult_shift`, returning `(q31, total_shift)` where
/// `total_shift` already includes the `+31` of the Q0.31 multiplier (multiplier 0 means "no
/// multiplier", i.e. a power-of-two scale: shift only).
#[inline]
pub fn mult_shift(scale: f32) -> (i32, i32) {
    let bits = scale.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32;
    let frac = bits & 0x007f_ffff;
    if frac == 0 {
        (0, 127 - exp)
    } else {
        (((frac | 0x80_0000) << 7) as i32, 127 - exp - 1 + 31)
    }
}

/// THE requantisation function: accumulator (`i32`, bias and zero-point correction included) to
/// int8, with the channel's f32 multiplier `mult` and the layer's parameters.
///
/// * f32 path (`fixed == None`, tract's `Scale` op): `y = rne(fl(fl(acc as f32) * mult))`,
///   saturated to i32 (tract writes `rne(|acc| * m) * sign(acc)`; IEEE rounding is
///   sign-symmetric, so this is the same value).
/// * fixed path (tract's `Scaler`, `RoundingPolicy::Even`): `y = rne_exact(acc * q31 / 2^shift)`
///   in 64-bit integers, i.e. the exactly rounded product of `acc` and the f32 multiplier.
///
/// Then `q = clamp(y.wrapping_add(zero_point), lo, 127)`. The two paths are split into
/// [`requantize_f32_path`] and [`requantize_fixed_path`] only so that kernels can hoist the
/// branch out of their loops.
#[inline(always)]
pub fn requantize(acc: i32, mult: f32, rq: &Requant) -> i8 {
    match rq.fixed {
        None => requantize_f32_path(acc, mult, rq.zero_point, rq.lo),
        Some((q31, shift)) => requantize_fixed_path(acc, q31, shift, rq.zero_point, rq.lo),
    }
}

/// The f32 half of [`requantize`].
#[inline(always)]
pub fn requantize_f32_path(acc: i32, mult: f32, zero_point: i32, lo: i32) -> i8 {
    clamp_i8(mul_rne(acc, mult).wrapping_add(zero_point), lo)
}

/// The fixed-point half of [`requantize`] (`q31 == 0`: power-of-two multiplier, shift only).
#[inline(always)]
pub fn requantize_fixed_path(acc: i32, q31: i32, shift: i32, zero_point: i32, lo: i32) -> i8 {
    let val = if q31 != 0 {
        q31 as i64 * acc as i64
    } else {
        acc as i64
    };
    let y = if shift > 0 {
        let shift = shift.min(63);
        let half: i64 = 1 << (shift - 1);
        let nudge = ((val.abs() >> shift) & 1) - 1;
        (val.signum() * ((val.abs() + half + nudge) >> shift)) as i32
    } else {
        (val << (-shift).min(63)) as i32
    };
    clamp_i8(y.wrapping_add(zero_point), lo)
}

/// `rne(fl(fl(acc as f32) * m))` saturated to i32: portable version.
#[cfg(not(all(sqz_dsp, target_abi = "eabihf")))]
#[inline(always)]
fn mul_rne(acc: i32, m: f32) -> i32 {
    round_ties_to_even(acc as f32 * m) as i32
}

/// `rne(fl(fl(acc as f32) * m))` saturated to i32 on the Cortex-M4F FPU: `VCVT.F32.S32`,
/// `VMUL.F32`, `VCVTR.S32.F32`. `VCVTR` rounds with the FPSCR mode, round-to-nearest-even at reset
/// (nothing in this crate changes it), and saturates like Rust's `as`; the result equals the
/// portable version bit for bit (checked by the QEMU test runner).
#[cfg(all(sqz_dsp, target_abi = "eabihf"))]
#[inline(always)]
fn mul_rne(acc: i32, m: f32) -> i32 {
    let r: i32;
    // SAFETY: register-only FPU instructions on the named registers s14/s15 (declared).
    unsafe {
        core::arch::asm!(
            "vmov s14, {a}",
            "vcvt.f32.s32 s14, s14",
            "vmov s15, {m}",
            "vmul.f32 s14, s14, s15",
            "vcvtr.s32.f32 s14, s14",
            "vmov {r}, s14",
            a = in(reg) acc,
            m = in(reg) m.to_bits(),
            r = lateout(reg) r,
            out("s14") _,
            out("s15") _,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    r
}

/// The f32 core shared with [`requantize`]'s f32 path: `clamp(rne(fl(x * mult)) + zp, lo, 127)`.
/// Used by the bypass add (`x` = f32 sum of the two dequantised inputs, `mult = fl(1/out_scale)`)
/// and by [`quantize_input_u8`].
#[inline(always)]
pub fn requantize_f32(x: f32, mult: f32, zero_point: i32, lo: i32) -> i8 {
    let y = round_ties_to_even(x * mult) as i32;
    clamp_i8(y.wrapping_add(zero_point), lo)
}

#[inline(always)]
fn clamp_i8(v: i32, lo: i32) -> i8 {
    v.max(lo).min(127) as i8
}

/// Derives a convolution channel's multiplier exactly as tract executes `combine_scales`:
/// `fl(fl(w_scale * in_scale) * fl(1 / out_scale))`. tract wires `ab_scale / c_scale`, but its
/// float `Div` by a constant declutters into `Mul(Recip)` (`tract-core/src/ops/math/mod.rs`,
/// `declutter_div`), so the division is a multiplication by the rounded reciprocal; a true
/// division differs in the last bit for some scales (found by the host's per-layer parity check).
#[inline]
pub fn conv_multiplier(in_scale: f32, w_scale: f32, out_scale: f32) -> f32 {
    (w_scale * in_scale) * (1.0 / out_scale)
}

/// Multiplier of an average pool over `count` taps (exported to tract as a depthwise
/// `QLinearConv` of ones with weight scale `fl(1/count)`): `conv_multiplier(in, 1/count, out)`.
#[inline]
pub fn pool_multiplier(in_scale: f32, count: u32, out_scale: f32) -> f32 {
    conv_multiplier(in_scale, 1.0 / count as f32, out_scale)
}

/// Quantises raw 8-bit pixels the way the host feeds tract: `x = fl(p as f32 / 255.0)`, then
/// ONNX `QuantizeLinear` as tract evaluates it: `clamp(rne(fl(x * fl(1/scale))) + zp)`.
/// With the standard input quantisation (`scale = 1/255`, `zp = -128`) this is exactly
/// `p - 128`.
///
/// # Panics
/// Never; processes `min(pixels.len(), out.len())` values.
pub fn quantize_input_u8(q: QuantParams, pixels: &[u8], out: &mut [i8]) {
    let inv = 1.0 / q.scale;
    for (o, &p) in out.iter_mut().zip(pixels) {
        *o = requantize_f32(p as f32 / 255.0, inv, q.zero_point as i32, -128);
    }
}

/// Dequantises one value like tract's `DequantizeLinearF32`: `fl((q - zp) as f32 * scale)`.
#[inline(always)]
pub fn dequantize(q: i8, p: QuantParams) -> f32 {
    (q as i32 - p.zero_point as i32) as f32 * p.scale
}

/// [`requantize`] over a row of accumulators (branch on the path hoisted out of the loop; the f32
/// path in the branch-free form [`requantize_f32_select`], which LLVM vectorises).
#[inline]
pub fn requant_row(acc: &[i32], mults: &[f32], rq: &Requant, out: &mut [i8]) {
    requant_row_inline(acc, mults, rq, out)
}

/// [`requant_row`], always inlined (so that it is vectorised with its caller's target
/// features).
#[inline(always)]
pub(crate) fn requant_row_inline(acc: &[i32], mults: &[f32], rq: &Requant, out: &mut [i8]) {
    let n = out.len();
    let (acc, mults) = (&acc[..n], &mults[..n]);
    let (zp, lo) = (rq.zero_point, rq.lo);
    match rq.fixed {
        None => {
            for ((o, &a), &m) in out.iter_mut().zip(acc).zip(mults) {
                *o = requantize_f32_select(a, m, zp, lo);
            }
        }
        Some((q31, shift)) => {
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = requantize_fixed_path(a, q31, shift, zp, lo);
            }
        }
    }
}

/// [`requantize_f32_path`] written with selects instead of branches, so that a loop of it
/// vectorises: `y = fl(acc * m)`; for `|y| < 2^23`, `(y + s) - s` with `s = copysign(2^23, y)`
/// is exactly `round_ties_to_even(y)` (the same additions in the same order as
/// `quant::round_ties_to_even`), larger values (and NaN) are already integral; then the same
/// saturating cast, zero point and clamp. Equal to [`requantize_f32_path`] for every input
/// (tested against it, extremes included).
#[inline(always)]
pub fn requantize_f32_select(acc: i32, m: f32, zero_point: i32, lo: i32) -> i8 {
    const T: u32 = 0x4b00_0000; // 2^23
    let y = acc as f32 * m;
    let sign = y.to_bits() & 0x8000_0000;
    let s = f32::from_bits(T | sign);
    let small = (y.to_bits() & 0x7fff_ffff) < T;
    let r = if small { (y + s) - s } else { y };
    // `r as i32` (saturating, NaN to 0) spelled so that it vectorises: `r` is integral, so in
    // range the conversion is exact.
    let v = if r >= 2_147_483_648.0 {
        i32::MAX
    } else if r >= -2_147_483_648.0 {
        // SAFETY: `r` is integral and in `[-2^31, 2^31)`, so it is representable as an i32.
        unsafe { r.to_int_unchecked::<i32>() }
    } else if r.is_nan() {
        0
    } else {
        i32::MIN
    };
    v.wrapping_add(zero_point).max(lo).min(127) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_quant_is_pixel_minus_128() {
        let q = QuantParams {
            scale: 1.0 / 255.0,
            zero_point: -128,
        };
        let px: [u8; 256] = core::array::from_fn(|i| i as u8);
        let mut out = [0i8; 256];
        quantize_input_u8(q, &px, &mut out);
        for (i, &o) in out.iter().enumerate() {
            assert_eq!(o as i32, i as i32 - 128);
        }
    }

    #[test]
    fn rne_ties() {
        assert_eq!(round_ties_to_even(2.5), 2.0);
        assert_eq!(round_ties_to_even(3.5), 4.0);
        assert_eq!(round_ties_to_even(-2.5), -2.0);
        assert_eq!(round_ties_to_even(-0.4), -0.0);
    }

    #[test]
    fn fixed_path_is_exact_rounding() {
        // 0.25 is a power of two: shift only. 5 * 0.25 = 1.25 -> 1; 6 * 0.25 = 1.5 -> 2;
        // 10 * 0.25 = 2.5 -> 2 (even).
        let rq = Requant::new(Some(0.25), 0, false);
        assert_eq!(requantize(5, 0.25, &rq), 1);
        assert_eq!(requantize(6, 0.25, &rq), 2);
        assert_eq!(requantize(10, 0.25, &rq), 2);
        assert_eq!(requantize(-10, 0.25, &rq), -2);
        let m = 0.0123f32;
        let rq = Requant::new(Some(m), 3, false);
        for acc in -20000..20000 {
            let exact = acc as f64 * m as f64;
            let r = exact.round();
            let r = if (exact - exact.trunc()).abs() == 0.5 {
                2.0 * (exact / 2.0).round()
            } else {
                r
            };
            let want = (r as i32 + 3).clamp(-128, 127);
            assert_eq!(requantize(acc, m, &rq) as i32, want, "acc {acc}");
        }
    }

    #[test]
    fn select_form_equals_the_spec() {
        let mut rng = crate::testkit::Rng(0x9E37_79B9_7F4A_7C15);
        let mut next = move || (rng.next_u32() as u64) << 32 | rng.next_u32() as u64;
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
            1 << 30,
            -(1 << 30),
        ];
        let mults = [
            1e-6f32,
            0.5,
            1.0,
            1.5,
            2.0,
            3.0e8,
            f32::MAX,
            f32::MIN_POSITIVE,
            0.25,
        ];
        let zps = [-128, -1, 0, 5, 127];
        let check = |a: i32, m: f32| {
            for &zp in &zps {
                for lo in [-128, zp.max(-128)] {
                    assert_eq!(
                        requantize_f32_select(a, m, zp, lo),
                        requantize_f32_path(a, m, zp, lo),
                        "acc {a} mult {m} zp {zp} lo {lo}"
                    );
                }
            }
        };
        for &a in &accs {
            for &m in &mults {
                check(a, m);
            }
        }
        for _ in 0..200_000 {
            let r = next();
            let a = (r as i32) >> (r >> 59);
            let m = f32::from_bits(0x3000_0000 + ((r >> 32) as u32 % 0x1800_0000));
            check(a, m);
            // ties: acc * m lands on k + 0.5
            check((r >> 40) as i32 & 0xffff, 0.5);
        }
    }
}
