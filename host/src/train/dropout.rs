//! Dropout for the channels-last path, its mask drawn on all threads.
//!
//! burn's `Dropout` draws a Bernoulli tensor from the device's generator element by element on
//! the calling thread, then multiplies twice (mask, scale): at batch 64 about 4 % of a
//! training step's CPU time, all of it while the other threads wait. Here one seed is drawn
//! from the same generator per call, every element's keep/drop comes from a counter-based hash
//! of (seed, index), and the mask already holds the scale: the same mask on any number of
//! threads, and a run resumed from a checkpoint draws what the uninterrupted run drew.

use burn::nn::Dropout;
use burn::tensor::{Distribution, Tensor, TensorData};
use rayon::prelude::*;

/// SplitMix64's output function: a bijection of u64 with full avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` mask values: `1 / keep` with probability `keep`, else 0, element `i` decided by
/// `mix(seed + i * golden ratio)` alone.
pub fn mask_f32(len: usize, keep: f64, seed: u64) -> Vec<f32> {
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    // Keep when the hash's top 53 bits, as a fraction of 2^53, fall below `keep`.
    let threshold = (keep * (1u64 << 53) as f64) as u64;
    let scale = (1.0 / keep) as f32;
    let mut mask = vec![0.0f32; len];
    mask.par_chunks_mut(1 << 14)
        .enumerate()
        .for_each(|(chunk, out)| {
            let start = (chunk << 14) as u64;
            for (i, m) in out.iter_mut().enumerate() {
                let h = mix(seed.wrapping_add((start + i as u64).wrapping_mul(GOLDEN)));
                *m = if (h >> 11) < threshold { scale } else { 0.0 };
            }
        });
    mask
}

/// What `d.forward(x)` does, with the mask from [`mask_f32`]: active only while training on an
/// autodiff device with a non-zero probability.
pub fn dropout(d: &Dropout, x: Tensor<2>) -> Tensor<2> {
    let device = x.device();
    if !d.training.is_enabled() || !device.is_autodiff() || d.prob == 0.0 {
        return x;
    }
    // Two uniform draws (24 random bits each) from the device's generator make the seed.
    let draws = Tensor::<1>::random([2], Distribution::Default, &device).into_data();
    let bits = draws
        .iter::<f32>()
        .fold(0u64, |acc, u| (acc << 24) | (u * (1 << 24) as f32) as u64);
    let mask = mask_f32(x.dims().iter().product(), 1.0 - d.prob, mix(bits));
    let mask = Tensor::<2>::from_data(TensorData::new(mask, x.dims().to_vec()), &device);
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_keeps_the_asked_share_scaled() {
        let keep = 0.8;
        let mask = mask_f32(200_000, keep, 42);
        let kept = mask.iter().filter(|m| **m != 0.0).count() as f64 / mask.len() as f64;
        assert!((kept - keep).abs() < 0.005, "kept {kept}");
        assert!(mask.iter().all(|m| *m == 0.0 || *m == (1.0 / keep) as f32));
    }

    #[test]
    fn the_mask_depends_on_the_seed_alone() {
        assert_eq!(mask_f32(50_000, 0.5, 7), mask_f32(50_000, 0.5, 7));
        assert_ne!(mask_f32(50_000, 0.5, 7), mask_f32(50_000, 0.5, 8));
        // A prefix of a longer mask is the shorter mask: elements do not depend on the length.
        assert_eq!(
            mask_f32(70_000, 0.5, 7)[..50_000],
            mask_f32(50_000, 0.5, 7)[..]
        );
    }
}
