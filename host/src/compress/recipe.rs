//! The settings of compression: [`CompressConfig`] (written as `compress.json` beside the
//! blob) with the recipe of the shipped model, and the settings of the training stages
//! ([`FinetuneConfig`]), whose per-layer targets name convs by pattern ([`LayerSetting`]).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::prune::STEM_SPARSITY_CAP;
use super::sharing::SharingConfig;

/// Settings of a compression run (written as `compress.json` beside the blob).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressConfig {
    /// Training images used to calibrate activation ranges.
    pub calib_images: usize,
    /// Model id stored in the blob header.
    pub model_id: u64,
    /// Pruning and weight sharing after training (ignored when `finetune` is set).
    pub sharing: SharingConfig,
    /// Pruning and weight sharing with fine-tuning (the paper's way); `None`: post-training only.
    #[serde(default)]
    pub finetune: Option<FinetuneConfig>,
}

impl CompressConfig {
    /// The recipe of the shipped model in `models/` (and of `sqz pipeline`).
    /// Weights are stored the way the device runs fastest (`fast-decode`: packed 4-bit codebook
    /// indices, sparse rows where zero skipping wins); `sqz recode --encoding smallest` gives
    /// the Huffman-sparse twin with the same logits.
    pub fn shipped() -> Self {
        // Pruned per layer along the measured sensitivity (models/sensitivity/): least in the
        // squeezes (every path into their fire module goes through them), most in the late 1x1
        // expands and in the 3x3 expands of fire6-9 (64 % of all weights), whose shared values
        // take 3-bit codebooks; the cubic schedule takes the large steps first.
        let layer_sparsity = [
            "fire4.*=0.8",
            "fire4.squeeze=0.65",
            "fire4.expand3x3=0.817",
            "fire5.*=0.8",
            "fire5.squeeze=0.7",
            "fire6.*=0.9",
            "fire7.*=0.9",
            "fire8.*=0.9",
            "fire9.*=0.9",
            "fire6.squeeze=0.8",
            "fire6.expand1x1=0.95",
            "fire6.expand3x3=0.96",
            "fire7.squeeze=0.85",
            "fire7.expand1x1=0.95",
            "fire7.expand3x3=0.975",
            "fire8.expand1x1=0.98",
            "fire8.expand3x3=0.9855",
            "fire9.expand1x1=0.85",
            "fire9.expand3x3=0.98",
            "classifier=0.75",
        ]
        .iter()
        .map(|s| s.parse().expect("a valid layer setting"))
        .collect();
        let layer_bits = (6..=9)
            .map(|f| {
                format!("fire{f}.expand3x3=3")
                    .parse()
                    .expect("a valid layer setting")
            })
            .collect();
        Self {
            sharing: SharingConfig {
                fast_decode: true,
                ..SharingConfig::default()
            },
            finetune: Some(FinetuneConfig {
                sparsity: 0.65,
                layer_sparsity,
                layer_bits,
                prune_schedule: PruneSchedule::Cubic,
                prune_rounds: 4,
                prune_epochs: 4,
                share_epochs: 3,
                bits: 4,
                ..Default::default()
            }),
            ..Self::default()
        }
    }
}

impl Default for CompressConfig {
    fn default() -> Self {
        Self {
            calib_images: 2_000,
            model_id: 1,
            sharing: SharingConfig::default(),
            finetune: None,
        }
    }
}

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
    /// position are kept or pruned together (1: weight by weight). See
    /// [`super::prune::layer_mask`].
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

/// A setting for the convs whose names (see [`super::layers::conv_names`]) match `pattern`, where `*` stands
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

/// Final pruning target and codebook bits of every conv (in [`super::layers::conv_names`] order).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
