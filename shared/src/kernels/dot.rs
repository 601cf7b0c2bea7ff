//! 2x2 int8 dot-product micro-kernels: two activation patches against two weight rows.
//!
//! Every implementation must return exactly `[a0.w0, a0.w1, a1.w0, a1.w1]` (i32, wrapping),
//! the reference being [`RefDot`].

/// A 2x2 dot-product micro-kernel.
pub trait DotKernel {
    /// `[a0.w0, a0.w1, a1.w0, a1.w1]` over `k = a0.len()` values. Preconditions:
    /// `a1.len() >= k`, `w0.len() >= k`, `w1.len() >= k`.
    fn dot_2x2(a0: &[i8], a1: &[i8], w0: &[i8], w1: &[i8]) -> [i32; 4];
}

/// Plain scalar reference.
#[derive(Debug, Clone, Copy)]
pub struct RefDot;

impl DotKernel for RefDot {
    fn dot_2x2(a0: &[i8], a1: &[i8], w0: &[i8], w1: &[i8]) -> [i32; 4] {
        let mut r = [0i32; 4];
        for i in 0..a0.len() {
            let (x0, x1, v0, v1) = (a0[i] as i32, a1[i] as i32, w0[i] as i32, w1[i] as i32);
            r[0] = r[0].wrapping_add(x0 * v0);
            r[1] = r[1].wrapping_add(x0 * v1);
            r[2] = r[2].wrapping_add(x1 * v0);
            r[3] = r[3].wrapping_add(x1 * v1);
        }
        r
    }
}

/// Portable fast path: 4-way unrolled, bounds checks hoisted by re-slicing.
#[derive(Debug, Clone, Copy)]
pub struct PortableDot;

impl DotKernel for PortableDot {
    #[inline]
    fn dot_2x2(a0: &[i8], a1: &[i8], w0: &[i8], w1: &[i8]) -> [i32; 4] {
        let k = a0.len();
        let (a1, w0, w1) = (&a1[..k], &w0[..k], &w1[..k]);
        let (mut s00, mut s01, mut s10, mut s11) = (0i32, 0i32, 0i32, 0i32);
        let chunks = k / 4;
        for c in 0..chunks {
            let i = c * 4;
            let x0: [i8; 4] = [a0[i], a0[i + 1], a0[i + 2], a0[i + 3]];
            let x1: [i8; 4] = [a1[i], a1[i + 1], a1[i + 2], a1[i + 3]];
            let v0: [i8; 4] = [w0[i], w0[i + 1], w0[i + 2], w0[i + 3]];
            let v1: [i8; 4] = [w1[i], w1[i + 1], w1[i + 2], w1[i + 3]];
            for j in 0..4 {
                s00 = s00.wrapping_add(x0[j] as i32 * v0[j] as i32);
                s01 = s01.wrapping_add(x0[j] as i32 * v1[j] as i32);
                s10 = s10.wrapping_add(x1[j] as i32 * v0[j] as i32);
                s11 = s11.wrapping_add(x1[j] as i32 * v1[j] as i32);
            }
        }
        for i in chunks * 4..k {
            s00 = s00.wrapping_add(a0[i] as i32 * w0[i] as i32);
            s01 = s01.wrapping_add(a0[i] as i32 * w1[i] as i32);
            s10 = s10.wrapping_add(a1[i] as i32 * w0[i] as i32);
            s11 = s11.wrapping_add(a1[i] as i32 * w1[i] as i32);
        }
        [s00, s01, s10, s11]
    }
}

/// The kernel `run` uses on this target: the Cortex-M4 DSP path on `thumbv7em` (cfg `sqz_dsp`, set by
/// build.rs), the portable path elsewhere.
#[cfg(sqz_dsp)]
pub type BestDot = crate::kernels::arm::ArmDot;
/// The kernel `run` uses on this target.
#[cfg(not(sqz_dsp))]
pub type BestDot = PortableDot;
