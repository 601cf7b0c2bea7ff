//! Deep Compression's two training stages, in burn:
//!
//! 1. **Pruning with fine-tuning.** Per layer, the weights smallest relative to their output
//!    channel's largest are masked to zero (relative magnitude, so the mask means the same
//!    before and after BatchNorm folding and per-channel int8 scaling). Sparsity rises over
//!    `prune_rounds` rounds to the target; after each round the network trains on, and the mask
//!    is re-applied after every optimiser step, so pruned weights stay zero.
//! 2. **Weight sharing with centroid fine-tuning.** BatchNorm is folded; per output channel the
//!    weights are put in int8 units (`w / s_c`, `s_c = max |w_c| / 127`); per layer, k-means
//!    (linear initialisation) over the unpruned values gives `2^bits` shared values, three of
//!    them fixed: 0 (the pruned weights) and +-127 (each channel's largest weight, which pins
//!    the channel's int8 scale, so the int8 stage later recovers exactly these values).
//!    Each weight keeps its cluster; every step the centroids move by the gradients of their
//!    weights summed per cluster (Adam on the centroids), and the weights are rewritten as
//!    `s_c * centroid`. Biases train normally. At the end the centroids are rounded to integers.
//!
//! Both stages are deterministic per seed (shuffle, augmentation, dropout drawn from generators
//! seeded by `(seed, stage, epoch)`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{Normalization, Split};
use crate::fold::FloatNet;
use crate::model::{SqueezeNet, SqueezeNetConfig};
use crate::train::{TrainedWeights, evaluate, make_batch};

/// Settings of the two training stages of compression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// Final fraction of each layer's weights pruned (0 skips pruning).
    pub sparsity: f64,
    /// Rounds in which sparsity rises linearly to `sparsity`.
    pub prune_rounds: usize,
    /// Training epochs after each pruning round.
    pub prune_epochs: usize,
    /// Codebook index bits per layer (2..=8), three codes fixed (0, +-127).
    pub bits: u8,
    /// Epochs of centroid fine-tuning (0: k-means only).
    pub share_epochs: usize,
    /// Peak learning rate of the masked fine-tuning (AdamW, cosine to a tenth in each round).
    pub lr: f64,
    /// Learning rate of the centroids, in int8 steps (Adam, cosine to a tenth).
    pub centroid_lr: f64,
    /// Learning rate of the biases while the centroids train.
    pub bias_lr: f64,
    /// Weight decay during masked fine-tuning.
    pub weight_decay: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Label smoothing.
    pub label_smoothing: f32,
    /// Random crop + flip.
    pub augment: bool,
    /// Seed of shuffling, augmentation and dropout.
    pub seed: u64,
    /// Use only the first N training images (quick runs and tests).
    pub train_limit: Option<usize>,
    /// Lloyd iterations of k-means.
    pub kmeans_iterations: usize,
    /// Weight of knowledge distillation from the trained (unpruned) network in the loss, in
    /// [0, 1): `(1 - a) * CE(labels) + a * T^2 * KL(softmax(teacher / T) || softmax(student / T))`.
    /// 0 (the default) trains on the labels alone.
    #[serde(default)]
    pub distill: f32,
    /// Softmax temperature `T` of distillation.
    #[serde(default = "default_temperature")]
    pub distill_temperature: f32,
    /// How sparsity rises over the rounds.
    #[serde(default, skip_serializing_if = "PruneSchedule::is_linear")]
    pub prune_schedule: PruneSchedule,
    /// Per-layer pruning targets that replace `sparsity` for the layers they name (the last
    /// matching one wins). A layer named here is not held to [`STEM_SPARSITY_CAP`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_sparsity: Vec<LayerSetting<f64>>,
    /// Per-layer codebook bits that replace `bits` for the layers they name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_bits: Vec<LayerSetting<u8>>,
    /// Pruning granularity: blocks of this many consecutive input channels at one kernel
    /// position are kept or pruned together (1: weight by weight). See [`layer_mask`].
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub prune_block: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// How the pruned fraction rises to its target over the pruning rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum PruneSchedule {
    /// Equal steps: round `r` of `R` prunes `r / R` of the target.
    #[default]
    Linear,
    /// Large steps first, small ones last (Zhu and Gupta's gradual pruning):
    /// `1 - (1 - r / R)^3` of the target, so the last rounds mostly fine-tune.
    Cubic,
}

impl PruneSchedule {
    fn is_linear(&self) -> bool {
        *self == PruneSchedule::Linear
    }

    /// Share of the target reached after round `r` of `rounds`.
    pub fn progress(self, r: usize, rounds: usize) -> f64 {
        let t = r as f64 / rounds.max(1) as f64;
        match self {
            PruneSchedule::Linear => t,
            PruneSchedule::Cubic => 1.0 - (1.0 - t).powi(3),
        }
    }
}

/// A setting for the convs whose names (see [`conv_names`]) match `pattern`, where `*` stands
/// for any run of characters: `fire9.expand3x3`, `fire*.expand3x3`, `fire8.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSetting<T> {
    /// Glob over conv names.
    pub pattern: String,
    /// The value for the matching convs.
    pub value: T,
}

impl<T: std::str::FromStr> std::str::FromStr for LayerSetting<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;

    /// Parses `PATTERN=VALUE`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (pattern, value) = s
            .split_once('=')
            .ok_or_else(|| format!("expected LAYER=VALUE (e.g. fire9.expand3x3=0.9), got {s:?}"))?;
        if pattern.is_empty() {
            return Err(format!("empty layer pattern in {s:?}"));
        }
        let value = value
            .parse()
            .map_err(|e| format!("bad value in {s:?}: {e}"))?;
        Ok(Self {
            pattern: pattern.to_string(),
            value,
        })
    }
}

/// `*`-glob match of a whole name.
fn glob_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob_matches(rest, &tail[i..]))
        }
    }
}

/// The value the last matching setting gives each name (`None`: no setting matches).
/// Every pattern must match at least one name, so a typo is an error rather than a no-op.
pub fn resolve_layer_settings<T: Copy>(
    settings: &[LayerSetting<T>],
    names: &[String],
    option: &str,
) -> Result<Vec<Option<T>>> {
    for s in settings {
        if !names.iter().any(|n| glob_matches(&s.pattern, n)) {
            bail!(
                "{option} {:?} matches no layer; the layers are: {}",
                s.pattern,
                names.join(", ")
            );
        }
    }
    Ok(names
        .iter()
        .map(|n| {
            settings
                .iter()
                .rev()
                .find(|s| glob_matches(&s.pattern, n))
                .map(|s| s.value)
        })
        .collect())
}

/// Names of the convs in [`convs_mut`] order for the network `cfg` describes: `stem`,
/// `fire2.squeeze`, `fire2.expand1x1`, `fire2.expand3x3`, `fire2.bypass` (complex bypass only),
/// ..., `classifier`. Fires are numbered from 2, as in the SqueezeNet paper.
pub fn conv_names(cfg: &SqueezeNetConfig) -> Vec<String> {
    let mut v = vec!["stem".to_string()];
    for (j, w) in cfg.fires().iter().enumerate() {
        let n = j + 2;
        v.extend(["squeeze", "expand1x1", "expand3x3"].map(|p| format!("fire{n}.{p}")));
        if cfg.fire_bypass(w) == crate::model::FireBypass::Conv {
            v.push(format!("fire{n}.bypass"));
        }
    }
    v.push("classifier".to_string());
    v
}

/// Final pruning target and codebook bits of every conv (in [`conv_names`] order).
pub fn layer_targets(cfg: &FinetuneConfig, names: &[String]) -> Result<Vec<(f64, u8)>> {
    let sparsity = resolve_layer_settings(&cfg.layer_sparsity, names, "--layer-sparsity")?;
    let bits = resolve_layer_settings(&cfg.layer_bits, names, "--layer-bits")?;
    Ok(sparsity
        .into_iter()
        .zip(bits)
        .enumerate()
        .map(|(i, (s, b))| {
            let s = match s {
                Some(s) => s,
                None if i == 0 => cfg.sparsity.min(STEM_SPARSITY_CAP),
                None => cfg.sparsity,
            };
            (s, b.unwrap_or(cfg.bits))
        })
        .collect())
}

fn default_temperature() -> f32 {
    4.0
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            sparsity: 0.0,
            prune_rounds: 3,
            prune_epochs: 1,
            bits: 4,
            share_epochs: 1,
            lr: 5e-4,
            centroid_lr: 0.3,
            bias_lr: 1e-4,
            weight_decay: 0.0,
            batch_size: 128,
            label_smoothing: 0.1,
            augment: true,
            seed: 1,
            train_limit: None,
            kmeans_iterations: 30,
            distill: 0.0,
            distill_temperature: default_temperature(),
            prune_schedule: PruneSchedule::Linear,
            layer_sparsity: Vec::new(),
            layer_bits: Vec::new(),
            prune_block: 1,
        }
    }
}

impl FinetuneConfig {
    /// Checks values a user may have typed.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.sparsity) {
            bail!(
                "--sparsity must be in [0, 1), got {} (it is the fraction of each layer pruned)",
                self.sparsity
            );
        }
        if !(2..=8).contains(&self.bits) {
            bail!("--bits must be 2..=8, got {}", self.bits);
        }
        for l in &self.layer_sparsity {
            if !(0.0..1.0).contains(&l.value) {
                bail!(
                    "--layer-sparsity {}={}: the fraction must be in [0, 1)",
                    l.pattern,
                    l.value
                );
            }
        }
        for l in &self.layer_bits {
            if !(2..=8).contains(&l.value) {
                bail!("--layer-bits {}={}: bits must be 2..=8", l.pattern, l.value);
            }
        }
        if !(1..=64).contains(&self.prune_block) {
            bail!("--prune-block must be 1..=64, got {}", self.prune_block);
        }
        if self.prune_rounds == 0 {
            bail!("--prune-rounds must be at least 1");
        }
        if !(self.lr > 0.0 && self.centroid_lr > 0.0 && self.bias_lr >= 0.0) {
            bail!("learning rates must be positive");
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if !(0.0..1.0).contains(&self.distill) {
            bail!("--distill must be in [0, 1), got {}", self.distill);
        }
        if !(self.distill_temperature > 0.0 && self.distill_temperature.is_finite()) {
            bail!(
                "--distill-temperature must be positive, got {}",
                self.distill_temperature
            );
        }
        Ok(())
    }
}

/// One row of the stage report: float validation accuracy after a training stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneStage {
    /// Stage name.
    pub stage: String,
    /// Sparsity reached (fraction of zero weights over all convs).
    pub sparsity: f64,
    /// Validation accuracy of the float network.
    pub val_acc: f64,
    /// Seconds spent.
    pub seconds: f64,
}

/// Every conv of the network, in [`FloatNet::convs`] order.
pub fn convs_mut(net: &mut SqueezeNet) -> Vec<&mut Conv2d> {
    let mut v = vec![&mut net.stem.conv];
    for f in &mut net.fires {
        v.push(&mut f.squeeze.conv);
        v.push(&mut f.expand1.conv);
        v.push(&mut f.expand3.conv);
        if let Some(b) = &mut f.bypass_conv {
            v.push(&mut b.conv);
        }
    }
    v.push(&mut net.classifier);
    v
}

fn convs(net: &SqueezeNet) -> Vec<&Conv2d> {
    let mut v = vec![&net.stem.conv];
    for f in &net.fires {
        v.extend([&f.squeeze.conv, &f.expand1.conv, &f.expand3.conv]);
        if let Some(b) = &f.bypass_conv {
            v.push(&b.conv);
        }
    }
    v.push(&net.classifier);
    v
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn set_weight(conv: &mut Conv2d, w: Vec<f32>, device: &Device) {
    let dims = conv.weight.val().dims();
    let t = Tensor::<4>::from_data(TensorData::new(w, dims), device);
    // Trainable on an autodiff device; a plain one (evaluation only) has no gradients.
    let t = if device.is_autodiff() {
        t.require_grad()
    } else {
        t
    };
    let p = std::mem::replace(
        &mut conv.weight,
        Param::from_tensor(Tensor::zeros([1; 4], device)),
    );
    conv.weight = p.map(|_| t);
}

/// The folded network as a BatchNorm-free burn network of the same shape (for centroid
/// fine-tuning, which needs the folded weights to be the trained ones).
pub fn unfolded(float: &FloatNet, cfg: &SqueezeNetConfig, device: &Device) -> SqueezeNet {
    let plain = SqueezeNetConfig {
        batch_norm: false,
        ..cfg.clone()
    };
    let mut net = SqueezeNet::new(&plain, device);
    for (conv, f) in convs_mut(&mut net).into_iter().zip(float.convs()) {
        set_weight(conv, f.weight.clone(), device);
        let b = Tensor::<1>::from_data(TensorData::new(f.bias.clone(), [f.cout]), device)
            .require_grad();
        conv.bias = Some(Param::from_tensor(b));
    }
    net
}

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
pub(crate) fn prune_one_layer(
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

/// Weights of each conv of `net`, in network order.
pub(crate) fn conv_weight_counts(net: &SqueezeNet) -> Vec<usize> {
    convs(net)
        .iter()
        .map(|c| c.weight.val().dims().iter().product())
        .collect()
}

fn apply_masks(mut net: SqueezeNet, masks: &[Vec<f32>], device: &Device) -> SqueezeNet {
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

/// Fraction of zero conv weights.
pub fn sparsity_of(net: &SqueezeNet) -> f64 {
    let (mut zero, mut all) = (0usize, 0usize);
    for c in convs(net) {
        let w = values(c.weight.val());
        zero += w.iter().filter(|x| **x == 0.0).count();
        all += w.len();
    }
    zero as f64 / all.max(1) as f64
}

/// A layer's shared weights: per-channel scales, each weight's cluster, the centroids (in int8
/// units) and Adam's moments for them.
#[derive(Debug, Clone)]
pub struct SharedLayer {
    /// Per output channel `max |w| / 127`.
    pub scales: Vec<f32>,
    /// Weights per output channel.
    pub row: usize,
    /// Cluster of every weight.
    pub index: Vec<u8>,
    /// Shared values, int8 units.
    pub centroids: Vec<f64>,
    /// Centroids that never move (0, +-127).
    pub fixed: Vec<bool>,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl SharedLayer {
    /// Clusters one layer's weights (`row` per output channel) into `2^bits` shared values.
    pub fn new(w: &[f32], row: usize, bits: u8, iterations: usize) -> Self {
        let scales: Vec<f32> = w
            .chunks(row)
            .map(|r| r.iter().fold(0f32, |a, x| a.max(x.abs())) / 127.0)
            .collect();
        let q: Vec<f64> = w
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let s = scales[i / row];
                if s > 0.0 {
                    f64::from(x / s).clamp(-127.0, 127.0)
                } else {
                    0.0
                }
            })
            .collect();
        // Fixed: 0, -127, +127; the rest by 1-D k-means over the nonzero values in between.
        let mut centroids = vec![0.0, -127.0, 127.0];
        let inner: Vec<f64> = q
            .iter()
            .copied()
            .filter(|&x| x != 0.0 && x.abs() < 127.0)
            .collect();
        let free = (1usize << bits).saturating_sub(3);
        centroids.extend(kmeans_1d(&inner, free, iterations));
        let fixed = (0..centroids.len()).map(|i| i < 3).collect();
        let index = q
            .iter()
            .map(|&x| {
                if x == 0.0 {
                    0
                } else {
                    (1..centroids.len())
                        .min_by(|&a, &b| {
                            (centroids[a] - x)
                                .abs()
                                .total_cmp(&(centroids[b] - x).abs())
                        })
                        .unwrap_or(0) as u8
                }
            })
            .collect();
        let k = centroids.len();
        Self {
            scales,
            row,
            index,
            centroids,
            fixed,
            m: vec![0.0; k],
            v: vec![0.0; k],
        }
    }

    /// The float weights `s_c * centroid`.
    pub fn weights(&self) -> Vec<f32> {
        self.index
            .iter()
            .enumerate()
            .map(|(i, &k)| self.scales[i / self.row] * self.centroids[k as usize] as f32)
            .collect()
    }

    /// One Adam step on the centroids from the weights' gradient (summed per cluster, chain
    /// rule through `w = s_c * centroid`).
    pub fn step(&mut self, grad: &[f32], lr: f64, t: i32) {
        let mut g = vec![0f64; self.centroids.len()];
        for (i, (&k, &gw)) in self.index.iter().zip(grad).enumerate() {
            g[k as usize] += f64::from(gw) * f64::from(self.scales[i / self.row]);
        }
        let (b1, b2, eps) = (0.9, 0.999, 1e-12);
        for (k, &g) in g.iter().enumerate() {
            if self.fixed[k] {
                continue;
            }
            self.m[k] = b1 * self.m[k] + (1.0 - b1) * g;
            self.v[k] = b2 * self.v[k] + (1.0 - b2) * g * g;
            let mh = self.m[k] / (1.0 - b1.powi(t));
            let vh = self.v[k] / (1.0 - b2.powi(t));
            self.centroids[k] =
                (self.centroids[k] - lr * mh / (vh.sqrt() + eps)).clamp(-126.0, 126.0);
        }
    }

    /// Rounds the centroids to the int8 values the blob will store.
    pub fn round(&mut self) {
        for c in &mut self.centroids {
            *c = c.round();
        }
    }
}

/// k-means on reals, linear initialisation between min and max; empty clusters keep their
/// place. Returns at most `k` centroids.
fn kmeans_1d(values: &[f64], k: usize, iterations: usize) -> Vec<f64> {
    if values.is_empty() || k == 0 {
        return Vec::new();
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut c: Vec<f64> = (0..k)
        .map(|i| lo + (hi - lo) * (i as f64 + 0.5) / k as f64)
        .collect();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    for _ in 0..iterations {
        let mut sum = vec![0f64; k];
        let mut cnt = vec![0usize; k];
        let mut j = 0;
        for &x in &sorted {
            // Centroids stay sorted, so the nearest only moves right as x grows.
            while j + 1 < k && (c[j + 1] - x).abs() <= (c[j] - x).abs() {
                j += 1;
            }
            sum[j] += x;
            cnt[j] += 1;
        }
        let mut moved = false;
        for i in 0..k {
            if cnt[i] > 0 {
                let m = sum[i] / cnt[i] as f64;
                moved |= (m - c[i]).abs() > 1e-9;
                c[i] = m;
            }
        }
        if !moved {
            break;
        }
    }
    c
}

/// The constraint kept after every optimiser step.
enum Constraint<'a> {
    Masks(&'a [Vec<f32>]),
    Shared(&'a mut [SharedLayer]),
}

struct Loop<'a> {
    cfg: &'a FinetuneConfig,
    train: &'a Split,
    val: &'a Split,
    norm: Normalization,
    stage: u64,
    /// The trained network without autodiff, when distilling.
    teacher: Option<&'a SqueezeNet>,
}

/// `T^2 * mean over the batch of KL(softmax(teacher / T) || softmax(student / T))` (the
/// teacher's logits are constants; KL rather than cross-entropy so that the logged loss is 0
/// when the student matches).
fn distill_loss(student: Tensor<2>, teacher: Tensor<2>, temperature: f32) -> Tensor<1> {
    use burn::tensor::activation::log_softmax;
    let log_t = log_softmax(teacher.div_scalar(temperature), 1).autodiff();
    let log_s = log_softmax(student.div_scalar(temperature), 1);
    (log_t.clone().exp() * (log_t - log_s))
        .sum_dim(1)
        .mean()
        .mul_scalar(temperature * temperature)
}

/// Where a training stage starts, and what it does after each epoch.
#[derive(Default)]
struct StageStart<'a> {
    /// Epochs already done (from a checkpoint).
    epochs_done: usize,
    /// Optimiser steps already taken (the learning rate's place in its schedule).
    steps: usize,
    /// The optimiser restored from a checkpoint; `None`: a fresh one.
    optim: Option<ModuleOptimizer>,
    /// Called after every epoch with the network, the optimiser, epochs and steps done.
    after_epoch: Option<&'a mut EpochHook<'a>>,
}

type EpochHook<'h> = dyn FnMut(&SqueezeNet, &ModuleOptimizer, usize, usize) -> Result<()> + 'h;

fn fresh_optimizer(cfg: &FinetuneConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .with_epsilon(1e-8)
        .init()
}

/// Trains `net` for `epochs` keeping `constraint`; returns the network.
fn train_constrained(
    mut net: SqueezeNet,
    l: &Loop<'_>,
    epochs: usize,
    peak_lr: f64,
    mut constraint: Constraint<'_>,
    label: &str,
    start: StageStart<'_>,
) -> Result<SqueezeNet> {
    let device = Device::flex().autodiff();
    let cfg = l.cfg;
    let mut after_epoch = start.after_epoch;
    let mut optim = start.optim.unwrap_or_else(|| fresh_optimizer(cfg));
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing((cfg.label_smoothing > 0.0).then_some(cfg.label_smoothing))
        .init(&device);
    let steps_per_epoch = l.train.len().div_ceil(cfg.batch_size);
    let total = (steps_per_epoch * epochs).max(1);
    let mut step = start.steps;
    for epoch in start.epochs_done..epochs {
        let seed = cfg.seed ^ (l.stage << 32) ^ epoch as u64;
        let mut rng = StdRng::seed_from_u64(seed);
        device.seed(seed ^ 0x5A5A);
        let mut order: Vec<usize> = (0..l.train.len()).collect();
        order.shuffle(&mut rng);
        let bar = crate::progress::items_bar(
            l.train.len() as u64,
            &format!("{label} epoch {}/{epochs}", epoch + 1),
        );
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        for batch in order.chunks(cfg.batch_size) {
            let (x, y) = make_batch(
                l.train,
                batch,
                l.norm,
                cfg.augment.then_some(&mut rng),
                &device,
            );
            let loss = match l.teacher {
                None => loss_fn.forward(net.forward(x), y),
                Some(teacher) => {
                    let a = cfg.distill;
                    let target = teacher.forward(x.clone().inner());
                    let logits = net.forward(x);
                    let kd = distill_loss(logits.clone(), target, cfg.distill_temperature);
                    loss_fn.forward(logits, y).mul_scalar(1.0 - a) + kd.mul_scalar(a)
                }
            };
            let lv = f64::from(loss.clone().into_scalar::<f32>());
            if !lv.is_finite() {
                bail!("{label}: fine-tuning diverged (loss = {lv}); lower the learning rate");
            }
            loss_sum += lv * batch.len() as f64;
            seen += batch.len();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            // Cosine from the peak to a tenth of it.
            let cos = 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos());
            let scale = 0.1 + 0.9 * cos;
            step += 1;
            match &mut constraint {
                Constraint::Masks(masks) => {
                    net = optim.step(peak_lr * scale, net, grads);
                    net = apply_masks(net, masks, &device);
                }
                Constraint::Shared(layers) => {
                    for (conv, layer) in convs(&net).into_iter().zip(layers.iter_mut()) {
                        if let Some(g) = grads.get::<4>(conv.weight.id) {
                            layer.step(&values(g), cfg.centroid_lr * scale, step as i32);
                        }
                    }
                    net = optim.step(cfg.bias_lr * scale, net, grads);
                    for (conv, layer) in convs_mut(&mut net).into_iter().zip(layers.iter()) {
                        set_weight(conv, layer.weights(), &device);
                    }
                }
            }
            bar.inc(batch.len() as u64);
            bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
        }
        bar.finish_and_clear();
        let val = evaluate(&net, l.val, l.norm, &Device::flex());
        eprintln!(
            "{label} epoch {}/{epochs}: train loss {:.4}, validation {:.2} %",
            epoch + 1,
            loss_sum / seen.max(1) as f64,
            100.0 * val.acc
        );
        if let Some(hook) = after_epoch.as_mut() {
            hook(&net, &optim, epoch + 1, step)?;
        }
    }
    Ok(net)
}

/// What the training stages produced.
#[derive(Debug)]
pub struct Finetuned {
    /// The folded float network whose weights are `s_c * round(centroid)`: the int8 stage
    /// recovers exactly the shared values.
    pub float: FloatNet,
    /// Float validation accuracy after each stage.
    pub stages: Vec<FinetuneStage>,
    /// Codebook sizes per layer (distinct values, 0 included).
    pub codebook_sizes: Vec<usize>,
    /// Codebook bits of every conv (at least `log2` of its codebook size).
    pub layer_bits: Vec<u8>,
}

/// `4`, or `4 (per layer: 3 for fire*.expand3x3)` when some layers differ.
fn bits_label(cfg: &FinetuneConfig) -> String {
    if cfg.layer_bits.is_empty() {
        return cfg.bits.to_string();
    }
    let per: Vec<String> = cfg
        .layer_bits
        .iter()
        .map(|l| format!("{} for {}", l.value, l.pattern))
        .collect();
    format!("{} (per layer: {})", cfg.bits, per.join(", "))
}

/// Where [`finetune`] keeps its progress. After every epoch of masked fine-tuning it writes
/// the network, the optimiser and the stages so far to `dir` (replaced atomically), so a killed
/// run continues from its last epoch and replays exactly the steps it would have taken.
/// The centroid stage (the last `share_epochs`) is not checkpointed.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Continue from `dir`; without it, an existing `dir` is an error (nothing is overwritten).
    pub resume: bool,
    /// Stop with [`Stopped`] after this many epochs of this invocation (checkpoint written);
    /// for splitting a run across sessions, and for tests.
    pub stop_after: Option<usize>,
}

impl Checkpointing {
    /// Refuses, before any evaluation or training, a checkpoint that cannot be used as asked:
    /// with `resume`, a missing, corrupt or foreign one (other settings, other `weights`);
    /// without it, an interrupted run that would be overwritten.
    pub fn check(&self, cfg: &FinetuneConfig, weights: &TrainedWeights) -> Result<()> {
        if self.resume {
            read_state(&self.dir, cfg, &weights.sha256).map(|_| ())
        } else {
            self.refuse_overwrite()
        }
    }

    /// Removes the checkpoint once the run's outputs are written (nothing left to resume).
    pub fn remove(&self) -> Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .with_context(|| format!("while removing {}", self.dir.display()))?;
        }
        Ok(())
    }

    fn refuse_overwrite(&self) -> Result<()> {
        if self.dir.exists() {
            bail!(
                "{} holds an interrupted compression; pass --resume to continue it, or delete it to start over",
                self.dir.display()
            );
        }
        Ok(())
    }
}

/// The run stopped cleanly where [`Checkpointing::stop_after`] asked; continue with `resume`.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped after {epochs} fine-tuning epoch(s) (round {round} of {rounds}); continue with --resume"
)]
pub struct Stopped {
    /// Epochs run by this invocation.
    pub epochs: usize,
    /// The pruning round reached.
    pub round: usize,
    /// Pruning rounds in all.
    pub rounds: usize,
}

/// What a fine-tuning checkpoint records beside the network and the optimiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    /// The settings; a resume must use the same.
    config: FinetuneConfig,
    /// SHA-256 of the trained weights the run started from.
    source_sha256: String,
    /// The pruning round in progress (1-based).
    round: usize,
    /// Its epochs completed.
    epochs_done: usize,
    /// Its optimiser steps taken.
    steps: usize,
    /// Seconds spent in it so far (all invocations).
    round_seconds: f64,
    /// The stages completed before it.
    stages: Vec<FinetuneStage>,
}

/// Reads a checkpoint's state.json and checks it belongs to this run.
fn read_state(ck: &Path, cfg: &FinetuneConfig, source_sha256: &str) -> Result<Progress> {
    let state = ck.join("state.json");
    let bytes = std::fs::read(&state).with_context(|| {
        format!(
            "--resume: no interrupted compression to continue in {} (reading state.json)",
            ck.display()
        )
    })?;
    let p: Progress = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: corrupt fine-tuning checkpoint", state.display()))?;
    if &p.config != cfg {
        bail!(
            "--resume: {} was made with other fine-tuning settings; resume with the same flags",
            ck.display()
        );
    }
    if p.source_sha256 != source_sha256 {
        bail!(
            "--resume: {} started from other trained weights (the run's best.bpk changed)",
            ck.display()
        );
    }
    if p.round == 0 || p.round > cfg.prune_rounds || p.epochs_done > cfg.prune_epochs {
        bail!(
            "{}: round {} epoch {} is outside this run's {} rounds of {} epochs",
            state.display(),
            p.round,
            p.epochs_done,
            cfg.prune_rounds,
            cfg.prune_epochs
        );
    }
    Ok(p)
}

/// Reads a checkpoint written by [`finetune`]: its state, network and optimiser.
fn read_progress(
    ck: &Path,
    cfg: &FinetuneConfig,
    source_sha256: &str,
    model_cfg: &SqueezeNetConfig,
    device: &Device,
) -> Result<(Progress, SqueezeNet, ModuleOptimizer)> {
    let p = read_state(ck, cfg, source_sha256)?;
    let net = crate::train::load_weights(model_cfg, &ck.join("model.bpk"), device)?;
    let optim = fresh_optimizer(cfg)
        .load(ck.join("optim.bpk"))
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("while reading {}", ck.join("optim.bpk").display()))?;
    Ok((p, net, optim))
}

/// Runs pruning + fine-tuning, then weight sharing + centroid fine-tuning, on the trained
/// weights `source` (a run's `best.bpk`), checkpointing into `ck` when given.
pub fn finetune(
    source: &TrainedWeights,
    model_cfg: &SqueezeNetConfig,
    train: &Split,
    val: &Split,
    norm: Normalization,
    cfg: &FinetuneConfig,
    ck: Option<&Checkpointing>,
) -> Result<Finetuned> {
    cfg.validate()?;
    let train = match cfg.train_limit {
        Some(n) => train.slice(0..n.min(train.len())),
        None => train.clone(),
    };
    let device = Device::flex().autodiff();
    let mut stages = Vec::new();
    let mut net = source.load(model_cfg, &device)?;
    let teacher = (cfg.distill > 0.0).then(|| net.valid());
    // Where pruning starts: round 1, or the checkpoint's round, epoch and optimiser.
    let mut resumed: Option<(Progress, ModuleOptimizer)> = None;
    if let Some(ck) = ck {
        if ck.resume {
            let (p, saved, optim) =
                read_progress(&ck.dir, cfg, &source.sha256, model_cfg, &device)?;
            eprintln!(
                "resuming {}: round {} of {}, {} of its {} epoch(s) done",
                ck.dir.display(),
                p.round,
                cfg.prune_rounds,
                p.epochs_done,
                cfg.prune_epochs
            );
            net = saved;
            stages = p.stages.clone();
            resumed = Some((p, optim));
        } else {
            ck.refuse_overwrite()?;
        }
    }
    let first_round = resumed.as_ref().map_or(1, |(p, _)| p.round);
    let mut epochs_this_call = 0usize;
    let mut l = Loop {
        cfg,
        train: &train,
        val,
        norm,
        stage: 1,
        teacher: teacher.as_ref(),
    };
    let targets = layer_targets(cfg, &conv_names(model_cfg))?;
    if targets.len() != convs(&net).len() {
        bail!(
            "internal error: {} conv names for {} convs",
            targets.len(),
            convs(&net).len()
        );
    }
    if targets.iter().any(|&(s, _)| s > 0.0) {
        for r in first_round..=cfg.prune_rounds {
            let started = std::time::Instant::now();
            let step = cfg.prune_schedule.progress(r, cfg.prune_rounds);
            let fractions: Vec<f64> = targets.iter().map(|&(s, _)| s * step).collect();
            // On a resumed round the checkpoint holds exactly this round's zeros, and the
            // masks (already-zero weights first) come out the same.
            let masks = relative_magnitude_masks(&net, &fractions, cfg.prune_block);
            net = apply_masks(net, &masks, &device);
            l.stage = r as u64;
            // Uniform targets are named by their fraction; per-layer ones by the share of all
            // weights now pruned.
            let fraction = if cfg.layer_sparsity.is_empty() {
                cfg.sparsity * step
            } else {
                sparsity_of(&net)
            };
            let label = format!("prune {:.0} %", 100.0 * fraction);
            let (mut start, earlier_seconds) = match resumed.take() {
                Some((p, optim)) => (
                    StageStart {
                        epochs_done: p.epochs_done,
                        steps: p.steps,
                        optim: Some(optim),
                        after_epoch: None,
                    },
                    p.round_seconds,
                ),
                None => (StageStart::default(), 0.0),
            };
            let done_before = stages.clone();
            let mut save = |n: &SqueezeNet, o: &ModuleOptimizer, e: usize, s: usize| {
                epochs_this_call += 1;
                if let Some(ck) = ck {
                    let p = Progress {
                        config: cfg.clone(),
                        source_sha256: source.sha256.clone(),
                        round: r,
                        epochs_done: e,
                        steps: s,
                        round_seconds: earlier_seconds + started.elapsed().as_secs_f64(),
                        stages: done_before.clone(),
                    };
                    crate::train::write_checkpoint_dir(&ck.dir, n, o, &p)?;
                    if ck.stop_after.is_some_and(|n| epochs_this_call >= n) {
                        return Err(Stopped {
                            epochs: epochs_this_call,
                            round: r,
                            rounds: cfg.prune_rounds,
                        }
                        .into());
                    }
                }
                Ok(())
            };
            start.after_epoch = Some(&mut save);
            net = train_constrained(
                net,
                &l,
                cfg.prune_epochs,
                cfg.lr,
                Constraint::Masks(&masks),
                &label,
                start,
            )?;
            let val_acc = evaluate(&net, val, norm, &Device::flex()).acc;
            stages.push(FinetuneStage {
                stage: format!(
                    "pruned {:.0} % + {} epoch(s) fine-tuning",
                    100.0 * fraction,
                    cfg.prune_epochs
                ),
                sparsity: sparsity_of(&net),
                val_acc,
                seconds: earlier_seconds + started.elapsed().as_secs_f64(),
            });
        }
    }

    // Fold BatchNorm, then share weights in int8 units.
    let started = std::time::Instant::now();
    let folded = FloatNet::from_burn(&net.valid(), model_cfg);
    let mut layers: Vec<SharedLayer> = folded
        .convs()
        .iter()
        .zip(&targets)
        .map(|(c, &(_, bits))| {
            SharedLayer::new(&c.weight, c.cin * c.k * c.k, bits, cfg.kmeans_iterations)
        })
        .collect();
    let mut plain = unfolded(&folded, model_cfg, &device);
    for (conv, layer) in convs_mut(&mut plain).into_iter().zip(&layers) {
        set_weight(conv, layer.weights(), &device);
    }
    let shared_acc = evaluate(&plain, val, norm, &Device::flex()).acc;
    stages.push(FinetuneStage {
        stage: format!(
            "k-means {} bits (0 and +-127 fixed), no fine-tuning",
            bits_label(cfg)
        ),
        sparsity: sparsity_of(&plain),
        val_acc: shared_acc,
        seconds: started.elapsed().as_secs_f64(),
    });
    if cfg.share_epochs > 0 {
        let started = std::time::Instant::now();
        l.stage = 100;
        plain = train_constrained(
            plain,
            &l,
            cfg.share_epochs,
            cfg.bias_lr,
            Constraint::Shared(&mut layers),
            "centroids",
            StageStart::default(),
        )?;
        for (conv, layer) in convs_mut(&mut plain).into_iter().zip(layers.iter_mut()) {
            layer.round();
            set_weight(conv, layer.weights(), &device);
        }
        let val_acc = evaluate(&plain, val, norm, &Device::flex()).acc;
        stages.push(FinetuneStage {
            stage: format!(
                "centroids fine-tuned {} epoch(s), rounded to int8",
                cfg.share_epochs
            ),
            sparsity: sparsity_of(&plain),
            val_acc,
            seconds: started.elapsed().as_secs_f64(),
        });
    } else {
        for (conv, layer) in convs_mut(&mut plain).into_iter().zip(layers.iter_mut()) {
            layer.round();
            set_weight(conv, layer.weights(), &device);
        }
    }
    let plain_cfg = SqueezeNetConfig {
        batch_norm: false,
        ..model_cfg.clone()
    };
    let float = FloatNet::from_burn(&plain.valid(), &plain_cfg);
    let codebook_sizes = layers
        .iter()
        .map(|l| {
            let mut v: Vec<i64> = l
                .index
                .iter()
                .map(|&k| l.centroids[k as usize] as i64)
                .collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        })
        .collect();
    Ok(Finetuned {
        float,
        stages,
        codebook_sizes,
        layer_bits: targets.iter().map(|&(_, b)| b).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_names_follow_the_network_for_every_bypass() {
        use crate::model::Bypass;
        for bypass in [Bypass::None, Bypass::Simple, Bypass::Complex] {
            let cfg = SqueezeNetConfig {
                bypass,
                ..SqueezeNetConfig::fashion_mnist()
            };
            let names = conv_names(&cfg);
            let net = SqueezeNet::new(&cfg, &Device::flex());
            assert_eq!(names.len(), convs(&net).len(), "{bypass:?}");
            let bypasses = names.iter().filter(|n| n.ends_with(".bypass")).count();
            let convs_with = net.fires.iter().filter(|f| f.bypass_conv.is_some()).count();
            assert_eq!(bypasses, convs_with, "{bypass:?}");
        }
    }

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

    #[test]
    fn cubic_schedule_front_loads_pruning_and_ends_on_target() {
        let c = |r| PruneSchedule::Cubic.progress(r, 4);
        assert_eq!(PruneSchedule::Linear.progress(1, 4), 0.25);
        assert!((c(1) - 0.578125).abs() < 1e-12 && (c(2) - 0.875).abs() < 1e-12);
        assert_eq!(c(4), 1.0);
        assert!((1..4).all(|r| c(r) < c(r + 1)));
    }

    #[test]
    fn layer_settings_match_globs_and_the_last_match_wins() {
        let names: Vec<String> = [
            "stem",
            "fire2.squeeze",
            "fire2.expand3x3",
            "fire9.expand3x3",
        ]
        .map(String::from)
        .to_vec();
        let parse = |s: &str| s.parse::<LayerSetting<f64>>().unwrap();
        let cfg = FinetuneConfig {
            sparsity: 0.6,
            layer_sparsity: vec![parse("fire*.expand3x3=0.9"), parse("fire9.*=0.95")],
            layer_bits: vec!["fire9.expand3x3=3".parse().unwrap()],
            ..Default::default()
        };
        let t = layer_targets(&cfg, &names).unwrap();
        // The stem keeps its cap when not named; the rest take the last matching setting.
        assert_eq!(t, [(0.5, 4), (0.6, 4), (0.9, 4), (0.95, 3)]);
        let stem = FinetuneConfig {
            layer_sparsity: vec![parse("stem=0.7")],
            ..cfg.clone()
        };
        assert_eq!(layer_targets(&stem, &names).unwrap()[0].0, 0.7);

        assert!(glob_matches("*", "fire2.squeeze"));
        assert!(glob_matches("fire*.squeeze", "fire2.squeeze"));
        assert!(!glob_matches("fire*.squeeze", "fire2.expand1x1"));
        assert!(!glob_matches("fire2", "fire2.squeeze"));
        // A typo is an error that lists the names, not a silent no-op.
        let typo = FinetuneConfig {
            layer_sparsity: vec![parse("fire2.expand3=0.9")],
            ..cfg.clone()
        };
        let e = layer_targets(&typo, &names).unwrap_err().to_string();
        assert!(
            e.contains("matches no layer") && e.contains("fire2.expand3x3"),
            "{e}"
        );
        // Malformed or out-of-range values are refused.
        assert!("fire2.squeeze".parse::<LayerSetting<f64>>().is_err());
        assert!("=0.5".parse::<LayerSetting<f64>>().is_err());
        assert!("stem=x".parse::<LayerSetting<f64>>().is_err());
        let high = FinetuneConfig {
            layer_sparsity: vec![parse("stem=1.0")],
            ..cfg.clone()
        };
        assert!(high.validate().is_err());
        let bits = FinetuneConfig {
            layer_bits: vec!["stem=9".parse().unwrap()],
            ..cfg
        };
        assert!(bits.validate().is_err());
    }

    #[test]
    fn distillation_loss_is_zero_on_the_teacher_and_grows_away_from_it() {
        let device = Device::flex().autodiff();
        let t = [[2.0f32, -1.0, 0.5], [0.0, 3.0, -2.0]];
        let teacher = Tensor::<2>::from_data(t, &Device::flex());
        let same = Tensor::<2>::from_data(t, &device);
        let other = Tensor::<2>::from_data([[0.0f32, 0.0, 0.0], [3.0, 0.0, -2.0]], &device);
        let at = |s: Tensor<2>| distill_loss(s, teacher.clone(), 4.0).into_scalar::<f32>();
        assert!(at(same).abs() < 1e-6);
        let d = at(other);
        assert!(d > 0.01, "KL of different logits: {d}");
        let bad = FinetuneConfig {
            distill: 1.0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn shared_layer_pins_each_channel_scale_and_keeps_zeros() {
        let w: Vec<f32> = (0..64)
            .map(|i| {
                if i % 5 == 0 {
                    0.0
                } else {
                    ((i * 37 % 23) as f32 - 11.0) * 0.01
                }
            })
            .collect();
        let mut l = SharedLayer::new(&w, 16, 4, 20);
        assert!(l.centroids.len() <= 16);
        l.round();
        let shared = l.weights();
        for (r, row) in shared.chunks(16).enumerate() {
            let max = row.iter().fold(0f32, |a, x| a.max(x.abs()));
            assert!(
                (max / 127.0 - l.scales[r]).abs() <= l.scales[r] * 1e-6,
                "row {r}"
            );
        }
        for (a, b) in w.iter().zip(&shared) {
            assert_eq!(*a == 0.0, *b == 0.0);
        }
    }

    #[test]
    fn centroid_step_follows_the_summed_gradient() {
        let w = [0.5f32, 1.0, -1.0, 0.25];
        let mut l = SharedLayer::new(&w, 4, 2, 10);
        let k = l.index[3] as usize;
        assert!(!l.fixed[k]);
        let before = l.centroids[k];
        l.step(&[0.0, 0.0, 0.0, 1.0], 0.5, 1);
        assert!(l.centroids[k] < before);
        assert_eq!(l.centroids[1], -127.0);
        assert_eq!(l.centroids[2], 127.0);
    }
}
