//! The SqueezeNet family in burn: v1.0 and v1.1, each without bypass, with simple bypass, or with
//! complex bypass, generated from the paper's metaparameters.
//!
//! # Shapes
//! Input `[batch, in_channels, input_size, input_size]` (NCHW, burn's layout), output
//! `[batch, num_classes]` logits (before softmax).
//!
//! The fire sequence follows the paper (Iandola et al. 2016, section 5): fire module `i`
//! (counting from 0) expands to `e_i = base_e + incr_e * floor(i / freq)` channels, of which
//! `pct_3x3 * e_i` are 3x3, and squeezes to `SR * e_i`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, PaddingConfig2d};
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, activation::relu};
use serde::{Deserialize, Serialize};

/// Which SqueezeNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Version {
    /// The paper's network: 96-channel 7x7/2 stem, pools after conv1, fire4, fire8.
    #[value(name = "1.0")]
    V1_0,
    /// 2.4x less computation: 64-channel 3x3/2 stem, pools after conv1, fire3, fire5.
    #[value(name = "1.1")]
    V1_1,
}

/// Bypass connections (paper section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Bypass {
    /// Plain fire modules.
    None,
    /// Identity bypass around the fire modules whose input and output widths agree.
    Simple,
    /// Simple bypass plus a 1x1 conv bypass around the others.
    Complex,
}

/// The stem: the paper's for 224x224 inputs, or a 3x3/1 conv for small inputs like 28x28.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Stem {
    /// Small input (up to about 32 px): 3x3 stride 1, padding 1.
    Small,
    /// The paper's stem for the version (7x7/2 for v1.0, 3x3/2 for v1.1).
    Paper,
}

impl Stem {
    /// The stem for `side`-pixel inputs: the 3x3/1 stem up to 32 px keeps the little detail
    /// there is; above, the stride-2 stem quarters the activations (and the arena) at once.
    pub fn for_input(side: usize) -> Stem {
        if side <= 32 { Stem::Small } else { Stem::Paper }
    }
}

/// The paper's design-space metaparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metaparams {
    /// Expand width of the first fire module.
    pub base_e: usize,
    /// Width added every `freq` fire modules.
    pub incr_e: usize,
    /// How many fire modules share a width.
    pub freq: usize,
    /// Fraction of expand filters that are 3x3.
    pub pct_3x3: f64,
    /// Squeeze ratio: squeeze width / expand width.
    pub sr: f64,
}

impl Default for Metaparams {
    /// The values that give SqueezeNet v1.0/v1.1.
    fn default() -> Self {
        Self {
            base_e: 128,
            incr_e: 128,
            freq: 2,
            pct_3x3: 0.5,
            sr: 0.125,
        }
    }
}

/// Channel widths of one fire module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireWidths {
    /// Input channels.
    pub input: usize,
    /// Squeeze (1x1) channels.
    pub squeeze: usize,
    /// Expand 1x1 channels.
    pub expand1: usize,
    /// Expand 3x3 channels.
    pub expand3: usize,
}

impl FireWidths {
    /// Output channels (the concat).
    pub fn output(&self) -> usize {
        self.expand1 + self.expand3
    }
}

impl Metaparams {
    /// Widths of the 8 fire modules (fire2..fire9) after a stem of `stem_out` channels.
    pub fn fires(&self, stem_out: usize) -> Vec<FireWidths> {
        let mut input = stem_out;
        (0..8)
            .map(|i| {
                let e = self.base_e + self.incr_e * (i / self.freq.max(1));
                let expand3 = ((e as f64) * self.pct_3x3).round() as usize;
                let squeeze = (((e as f64) * self.sr).round() as usize).max(1);
                let w = FireWidths {
                    input,
                    squeeze,
                    expand1: e - expand3,
                    expand3,
                };
                input = w.output();
                w
            })
            .collect()
    }
}

/// Everything that defines a network's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqueezeNetConfig {
    /// v1.0 or v1.1.
    pub version: Version,
    /// Bypass connections.
    pub bypass: Bypass,
    /// Stem kind.
    pub stem: Stem,
    /// Input channels (1 for Fashion-MNIST, 3 for RGB).
    pub in_channels: usize,
    /// Input height = width.
    pub input_size: usize,
    /// Output classes.
    pub num_classes: usize,
    /// BatchNorm after every conv but the classifier (folded into the convs at export).
    pub batch_norm: bool,
    /// Dropout probability before the classifier (the paper uses 0.5).
    pub dropout: f64,
    /// Fire-module metaparameters.
    pub meta: Metaparams,
}

impl SqueezeNetConfig {
    /// The paper's network for 3x224x224 ImageNet.
    pub fn imagenet(version: Version) -> Self {
        Self {
            version,
            bypass: Bypass::None,
            stem: Stem::Paper,
            in_channels: 3,
            input_size: 224,
            num_classes: 1000,
            batch_norm: false,
            dropout: 0.5,
            meta: Metaparams::default(),
        }
    }

    /// Our Fashion-MNIST default: v1.1 fires, 3x3/1 stem, BatchNorm, simple bypass off.
    pub fn fashion_mnist() -> Self {
        Self {
            version: Version::V1_1,
            bypass: Bypass::None,
            stem: Stem::Small,
            in_channels: 1,
            input_size: 28,
            num_classes: 10,
            batch_norm: true,
            dropout: 0.2,
            meta: Metaparams::default(),
        }
    }

    /// The stem convolution: `(out_channels, kernel, stride, padding)`.
    pub fn stem_geometry(&self) -> (usize, usize, usize, usize) {
        match (self.version, self.stem) {
            (Version::V1_0, Stem::Paper) => (96, 7, 2, 0),
            (Version::V1_1, Stem::Paper) => (64, 3, 2, 0),
            (Version::V1_0, Stem::Small) => (96, 3, 1, 1),
            (Version::V1_1, Stem::Small) => (64, 3, 1, 1),
        }
    }

    /// Fire indices (0-based, fire2 = 0) after which a 3x3/2 max pool (ceil mode) follows.
    /// Every version also pools right after the stem.
    pub fn pools_after_fire(&self) -> &'static [usize] {
        match self.version {
            Version::V1_0 => &[2, 6],
            Version::V1_1 => &[1, 3],
        }
    }

    /// Fire-module widths.
    pub fn fires(&self) -> Vec<FireWidths> {
        self.meta.fires(self.stem_geometry().0)
    }

    /// What bypass fire `i` gets.
    pub fn fire_bypass(&self, w: &FireWidths) -> FireBypass {
        match self.bypass {
            Bypass::None => FireBypass::None,
            _ if w.input == w.output() => FireBypass::Identity,
            Bypass::Simple => FireBypass::None,
            Bypass::Complex => FireBypass::Conv,
        }
    }

    /// Checks the configuration makes a network; the error says which field is wrong.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.in_channels >= 1, "in_channels must be >= 1");
        anyhow::ensure!(self.num_classes >= 2, "num_classes must be >= 2");
        anyhow::ensure!(
            (0.0..1.0).contains(&self.dropout),
            "dropout must be in [0, 1), got {}",
            self.dropout
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.meta.pct_3x3),
            "pct_3x3 must be in [0, 1], got {}",
            self.meta.pct_3x3
        );
        anyhow::ensure!(
            self.meta.sr > 0.0 && self.meta.sr <= 1.0,
            "SR must be in (0, 1], got {}",
            self.meta.sr
        );
        anyhow::ensure!(self.meta.base_e >= 2, "base_e must be >= 2");
        let mut size = self.input_size;
        let (_, k, s, p) = self.stem_geometry();
        anyhow::ensure!(
            size + 2 * p >= k,
            "input {}x{} is smaller than the {k}x{k} stem",
            size,
            size
        );
        size = (size + 2 * p - k) / s + 1;
        for _ in 0..3 {
            anyhow::ensure!(
                size >= 3,
                "input size {} is too small for this network's three 3x3/2 max pools; use the small stem or a larger input",
                self.input_size
            );
            size = pool_out(size);
        }
        Ok(())
    }
}

/// Output size of the 3x3/2 ceil-mode max pool.
pub fn pool_out(size: usize) -> usize {
    (size - 3).div_ceil(2) + 1
}

/// The bypass one fire module has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FireBypass {
    /// None.
    None,
    /// Identity (input added to output).
    Identity,
    /// 1x1 conv of the input added to output.
    Conv,
}

/// A conv, optionally followed by BatchNorm. ReLU is applied by the caller.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution (with bias only when there is no BatchNorm).
    pub conv: Conv2d,
    /// The BatchNorm, when enabled.
    pub bn: Option<BatchNorm>,
}

impl ConvBn {
    fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bn: bool,
        device: &Device,
    ) -> Self {
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(!bn)
            .with_initializer(Initializer::KaimingUniform {
                gain: 1.0 / 3f64.sqrt(),
                fan_out_only: false,
            })
            .init(device);
        let bn = bn.then(|| BatchNormConfig::new(cout).init(device));
        Self { conv, bn }
    }

    /// conv then BatchNorm.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv.forward(x);
        match &self.bn {
            Some(bn) => bn.forward(y),
            None => y,
        }
    }
}

/// A fire module: squeeze 1x1, then expand 1x1 and 3x3 side by side, concatenated.
#[derive(Module, Debug)]
pub struct Fire {
    /// Squeeze 1x1 (+ReLU).
    pub squeeze: ConvBn,
    /// Expand 1x1 (+ReLU).
    pub expand1: ConvBn,
    /// Expand 3x3, padding 1 (+ReLU).
    pub expand3: ConvBn,
    /// The 1x1 conv bypass (complex bypass only).
    pub bypass_conv: Option<ConvBn>,
    /// Identity bypass.
    #[module(skip)]
    pub identity_bypass: bool,
}

impl Fire {
    fn new(w: &FireWidths, bypass: FireBypass, bn: bool, device: &Device) -> Self {
        Self {
            squeeze: ConvBn::new(w.input, w.squeeze, 1, 1, 0, bn, device),
            expand1: ConvBn::new(w.squeeze, w.expand1, 1, 1, 0, bn, device),
            expand3: ConvBn::new(w.squeeze, w.expand3, 3, 1, 1, bn, device),
            bypass_conv: (bypass == FireBypass::Conv)
                .then(|| ConvBn::new(w.input, w.output(), 1, 1, 0, bn, device)),
            identity_bypass: bypass == FireBypass::Identity,
        }
    }

    /// `concat(relu(e1(s)), relu(e3(s)))` with `s = relu(squeeze(x))`, plus the bypass.
    ///
    /// # Shapes
    /// `[b, input, h, w] -> [b, expand1 + expand3, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = relu(self.squeeze.forward(x.clone()));
        let e1 = relu(self.expand1.forward(s.clone()));
        let e3 = relu(self.expand3.forward(s));
        let out = Tensor::cat(vec![e1, e3], 1);
        if let Some(conv) = &self.bypass_conv {
            out + conv.forward(x)
        } else if self.identity_bypass {
            out + x
        } else {
            out
        }
    }
}

/// A SqueezeNet.
#[derive(Module, Debug)]
pub struct SqueezeNet {
    /// conv1 (+ReLU), then a 3x3/2 max pool.
    pub stem: ConvBn,
    /// fire2..fire9.
    pub fires: Vec<Fire>,
    /// Dropout before the classifier.
    pub dropout: Dropout,
    /// conv10: 1x1 to the classes (+ReLU), then global average pool.
    pub classifier: Conv2d,
    /// Indices of the fires followed by a max pool.
    #[module(skip)]
    pub pools_after: Vec<usize>,
}

/// The 3x3/2 ceil-mode max pool used between stages.
pub fn max_pool_3x3s2(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([3, 3])
            .with_stride([2, 2])
            .with_ceil_mode(true),
    )
}

impl SqueezeNet {
    /// Builds a freshly initialised network on `device`.
    pub fn new(cfg: &SqueezeNetConfig, device: &Device) -> Self {
        let (c1, k, s, p) = cfg.stem_geometry();
        let fires = cfg
            .fires()
            .iter()
            .map(|w| Fire::new(w, cfg.fire_bypass(w), cfg.batch_norm, device))
            .collect::<Vec<_>>();
        let last = cfg.fires().last().map(|w| w.output()).unwrap_or(c1);
        let classifier = Conv2dConfig::new([last, cfg.num_classes], [1, 1])
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.01,
            })
            .init(device);
        Self {
            stem: ConvBn::new(cfg.in_channels, c1, k, s, p, cfg.batch_norm, device),
            fires,
            dropout: DropoutConfig::new(cfg.dropout).init(),
            classifier,
            pools_after: cfg.pools_after_fire().to_vec(),
        }
    }

    /// Logits.
    ///
    /// # Shapes
    /// `[b, in_channels, s, s] -> [b, num_classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = max_pool_3x3s2(relu(self.stem.forward(x)));
        for (i, fire) in self.fires.iter().enumerate() {
            x = fire.forward(x);
            if self.pools_after.contains(&i) {
                x = max_pool_3x3s2(x);
            }
        }
        let x = relu(self.classifier.forward(self.dropout.forward(x)));
        let [b, c, h, w] = x.dims();
        avg_pool2d(x, AvgPoolOptions::new([h, w])).reshape([b, c])
    }
}

impl SqueezeNet {
    /// Classes the classifier scores.
    pub fn num_classes(&self) -> usize {
        self.classifier.weight.val().dims()[0]
    }

    /// Trainable parameters: burn's `num_params` also counts the BatchNorm running means and
    /// variances, which other frameworks keep as buffers; this does not.
    pub fn trainable_params(&self) -> usize {
        let stats = |c: &ConvBn| c.bn.as_ref().map_or(0, |bn| 2 * bn.gamma.val().dims()[0]);
        let mut running = stats(&self.stem);
        for f in &self.fires {
            running += stats(&f.squeeze) + stats(&f.expand1) + stats(&f.expand3);
            running += f.bypass_conv.as_ref().map_or(0, stats);
        }
        self.num_params() - running
    }
}

/// Multiply-accumulates of one inference (convs only), for reports.
pub fn macs(cfg: &SqueezeNetConfig) -> u64 {
    let (c1, k, s, p) = cfg.stem_geometry();
    let mut size = (cfg.input_size + 2 * p - k) / s + 1;
    let mut total = (size * size * c1 * cfg.in_channels * k * k) as u64;
    size = pool_out(size);
    for (i, w) in cfg.fires().iter().enumerate() {
        let px = (size * size) as u64;
        total +=
            px * (w.input * w.squeeze + w.squeeze * w.expand1 + 9 * w.squeeze * w.expand3) as u64;
        if cfg.fire_bypass(w) == FireBypass::Conv {
            total += px * (w.input * w.output()) as u64;
        }
        if cfg.pools_after_fire().contains(&i) {
            size = pool_out(size);
        }
    }
    let last = cfg.fires().last().map(|w| w.output()).unwrap_or(c1);
    total + (size * size * last * cfg.num_classes) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(cfg: &SqueezeNetConfig) -> usize {
        SqueezeNet::new(cfg, &Device::flex()).num_params()
    }

    /// The reference Caffe/torchvision models: 1,248,424 (v1.0) and 1,235,496 (v1.1) parameters.
    #[test]
    fn imagenet_parameter_counts_match_the_reference_models() {
        assert_eq!(
            params(&SqueezeNetConfig::imagenet(Version::V1_0)),
            1_248_424
        );
        assert_eq!(
            params(&SqueezeNetConfig::imagenet(Version::V1_1)),
            1_235_496
        );
    }

    #[test]
    fn trainable_parameters_leave_out_batchnorm_statistics() {
        let net = SqueezeNet::new(&SqueezeNetConfig::fashion_mnist(), &Device::flex());
        // 2,944 BatchNorm channels: running mean and variance are not trained.
        assert_eq!(net.num_params() - net.trainable_params(), 2 * 2_944);
        assert_eq!(net.trainable_params(), 729_418);
    }

    #[test]
    fn metaparameters_generate_the_paper_fires() {
        let f = Metaparams::default().fires(96);
        let squeeze: Vec<_> = f.iter().map(|w| w.squeeze).collect();
        let out: Vec<_> = f.iter().map(|w| w.output()).collect();
        assert_eq!(squeeze, [16, 16, 32, 32, 48, 48, 64, 64]);
        assert_eq!(out, [128, 128, 256, 256, 384, 384, 512, 512]);
    }

    #[test]
    fn bypass_variants_place_connections_like_the_paper() {
        let mut cfg = SqueezeNetConfig::imagenet(Version::V1_0);
        cfg.bypass = Bypass::Complex;
        let kinds: Vec<_> = cfg.fires().iter().map(|w| cfg.fire_bypass(w)).collect();
        use FireBypass::*;
        assert_eq!(
            kinds,
            [
                Conv, Identity, Conv, Identity, Conv, Identity, Conv, Identity
            ]
        );
        cfg.bypass = Bypass::Simple;
        let n = cfg
            .fires()
            .iter()
            .filter(|w| cfg.fire_bypass(w) == Identity)
            .count();
        assert_eq!(n, 4);
        // Simple bypass adds no parameters; complex adds the 1x1 convs.
        let base = params(&SqueezeNetConfig::imagenet(Version::V1_0));
        assert_eq!(params(&cfg), base);
        cfg.bypass = Bypass::Complex;
        let extra: usize = [
            96 * 128 + 128,
            128 * 256 + 256,
            256 * 384 + 384,
            384 * 512 + 512,
        ]
        .iter()
        .sum();
        assert_eq!(params(&cfg), base + extra);
    }

    #[test]
    fn forward_shapes_for_small_and_large_inputs() {
        let device = Device::flex();
        for (cfg, b) in [
            (SqueezeNetConfig::fashion_mnist(), 2),
            (
                SqueezeNetConfig {
                    in_channels: 3,
                    num_classes: 7,
                    input_size: 64,
                    version: Version::V1_0,
                    stem: Stem::Paper,
                    bypass: Bypass::Complex,
                    ..SqueezeNetConfig::fashion_mnist()
                },
                1,
            ),
        ] {
            cfg.validate().unwrap();
            let net = SqueezeNet::new(&cfg, &device);
            let x = Tensor::<4>::zeros(
                [b, cfg.in_channels, cfg.input_size, cfg.input_size],
                &device,
            );
            assert_eq!(net.forward(x).dims(), [b, cfg.num_classes]);
        }
    }

    #[test]
    fn too_small_inputs_are_refused_with_a_reason() {
        let cfg = SqueezeNetConfig {
            input_size: 28,
            ..SqueezeNetConfig::imagenet(Version::V1_0)
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("too small"), "{err}");
    }
}
