//! Pruning masks for the fine-tuning: per layer, the weights smallest relative to their output
//! channel's largest (relative magnitude, so a mask means the same before and after BatchNorm
//! folding and per-channel int8 scaling), weight by weight or in blocks of input channels.

use burn::tensor::Device;

use super::layers::{convs, convs_mut, set_weight, values};
use crate::train::model::SqueezeNet;
use burn::nn::conv::Conv2d;

/// Most the stem is pruned: its few weights per channel (9 for a 1-channel 3x3) feed everything.
pub const STEM_SPARSITY_CAP: f64 = 0.5;

/// Keep-masks (1 kept, 0 pruned) that prune `fractions[i]` of conv `i` by magnitude relative
/// to the output channel's largest, in blocks of `block` input channels (see [`layer_mask`]);
/// already-zero weights go first, ties by position.
pub fn relative_magnitude_masks(
    net: &SqueezeNet,
    fractions: &[f64],
    block: usize,
) -> Vec<Vec<f32>> {
    convs(net)
        .into_iter()
        .zip(fractions)
        .map(|(c, &fraction)| {
            let dims = c.weight.val().dims();
            layer_mask(&values(c.weight.val()), dims, fraction, block)
        })
        .collect()
}

/// The keep-mask of one conv's weights `w` (`[out, in, kh, kw]`, row-major): prunes
/// `floor(blocks * fraction)` blocks, lowest first by the sum of their magnitudes relative to
/// their output channel's largest. A block is `block` consecutive input channels at one output
/// channel and kernel position: consecutive in the blob's OHWI rows, so a kept block is a run
/// of zero gaps, the cheapest Huffman symbol (one bit). Layers whose input channels `block`
/// does not divide (the 1-channel stem) are pruned weight by weight.
pub fn layer_mask(w: &[f32], dims: [usize; 4], fraction: f64, block: usize) -> Vec<f32> {
    let [_, cin, kh, kw] = dims;
    let row = cin * kh * kw;
    let block = if block > 1 && cin % block == 0 {
        block
    } else {
        1
    };
    let rel: Vec<f32> = w
        .chunks(row)
        .flat_map(|r| {
            let m = r.iter().fold(0f32, |a, x| a.max(x.abs()));
            r.iter()
                .map(move |x| if m > 0.0 { x.abs() / m } else { 0.0 })
        })
        .collect();
    // Block `b` of row `o` covers input channels `c0..c0 + block` at kernel position `p`.
    let taps = kh * kw;
    let blocks_per_row = cin / block * taps;
    let members = |b: usize| {
        let (o, j) = (b / blocks_per_row, b % blocks_per_row);
        let (c0, p) = (j / taps * block, j % taps);
        (c0..c0 + block).map(move |c| o * row + c * taps + p)
    };
    let nb = w.len() / block;
    let score: Vec<f32> = (0..nb).map(|b| members(b).map(|i| rel[i]).sum()).collect();
    let n = ((nb as f64) * fraction).floor() as usize;
    let mut order: Vec<usize> = (0..nb).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
    let mut mask = vec![1f32; w.len()];
    for &b in &order[..n] {
        for i in members(b) {
            mask[i] = 0.0;
        }
    }
    mask
}

/// `net` with conv `index` alone pruned to `fraction` by [`layer_mask`] (weight by weight); the
/// other convs are untouched. For the sensitivity analysis, which prunes one layer at a time.
pub fn prune_one_layer(
    mut net: SqueezeNet,
    index: usize,
    fraction: f64,
    device: &Device,
) -> SqueezeNet {
    if let Some(conv) = convs_mut(&mut net).into_iter().nth(index) {
        let w = values(conv.weight.val());
        let mask = layer_mask(&w, conv.weight.val().dims(), fraction, 1);
        set_masked(conv, &w, &mask, device);
    }
    net
}

pub fn apply_masks(mut net: SqueezeNet, masks: &[Vec<f32>], device: &Device) -> SqueezeNet {
    for (conv, m) in convs_mut(&mut net).into_iter().zip(masks) {
        let w = values(conv.weight.val());
        set_masked(conv, &w, m, device);
    }
    net
}

/// Sets the weights of `conv` to `w`, zeroed where `mask` is 0.
fn set_masked(conv: &mut Conv2d, w: &[f32], mask: &[f32], device: &Device) {
    let kept = w.iter().zip(mask).map(|(w, m)| w * m).collect();
    set_weight(conv, kept, device);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[3, 8, 3, 3]` weights with no two magnitudes alike in a row.
    fn layer_weights() -> ([usize; 4], Vec<f32>) {
        let dims = [3, 8, 3, 3];
        let w = (0..3 * 72)
            .map(|i: usize| ((i * 7919) % 251) as f32 / 125.0 - 1.004)
            .collect();
        (dims, w)
    }

    fn relative(w: &[f32], row: usize) -> Vec<f32> {
        w.chunks(row)
            .flat_map(|r| {
                let m = r.iter().fold(0f32, |a, x| a.max(x.abs()));
                r.iter().map(move |x| x.abs() / m)
            })
            .collect()
    }

    #[test]
    fn weight_masks_prune_the_smallest_relative_magnitudes() {
        let (dims, w) = layer_weights();
        let rel = relative(&w, 72);
        let m = layer_mask(&w, dims, 0.4, 1);
        assert_eq!(
            m.iter().filter(|&&x| x == 0.0).count(),
            (216.0 * 0.4f64) as usize
        );
        let pruned_max = (0..216).filter(|&i| m[i] == 0.0).map(|i| rel[i]);
        let kept_min = (0..216).filter(|&i| m[i] == 1.0).map(|i| rel[i]);
        assert!(pruned_max.fold(0f32, f32::max) <= kept_min.fold(f32::MAX, f32::min));
    }

    #[test]
    fn block_masks_prune_whole_blocks_of_input_channels_lowest_first() {
        let (dims, w) = layer_weights();
        let rel = relative(&w, 72);
        let m = layer_mask(&w, dims, 0.5, 4);
        // Blocks of 4 input channels at one (output channel, kernel position): 3 * 2 * 9.
        let mut scores = Vec::new();
        for o in 0..3 {
            for c0 in [0, 4] {
                for p in 0..9 {
                    let idx: Vec<usize> = (c0..c0 + 4).map(|c| o * 72 + c * 9 + p).collect();
                    let kept = m[idx[0]];
                    assert!(
                        idx.iter().all(|&i| m[i] == kept),
                        "block {o}/{c0}/{p} split"
                    );
                    scores.push((idx.iter().map(|&i| rel[i]).sum::<f32>(), kept));
                }
            }
        }
        assert_eq!(scores.iter().filter(|s| s.1 == 0.0).count(), 27);
        let pruned_max = scores.iter().filter(|s| s.1 == 0.0).map(|s| s.0);
        let kept_min = scores.iter().filter(|s| s.1 == 1.0).map(|s| s.0);
        assert!(pruned_max.fold(0f32, f32::max) <= kept_min.fold(f32::MAX, f32::min));
        // A 1-channel stem (4 does not divide 1) goes weight by weight.
        let stem = layer_mask(&w[..27], [3, 1, 3, 3], 0.5, 4);
        assert_eq!(stem, layer_mask(&w[..27], [3, 1, 3, 3], 0.5, 1));
        assert_eq!(stem.iter().filter(|&&x| x == 0.0).count(), 13);
    }
}
