//! The trained burn network as plain float layers, BatchNorm folded into the convs: the form
//! every later stage (compression, quantisation, export) works on.
//!
//! Layouts: conv weights OIHW (ONNX's), activations NCHW per image.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::train::model::{ConvBn, SqueezeNet, SqueezeNetConfig};

/// A convolution with folded BatchNorm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatConv {
    /// Output channels.
    pub cout: usize,
    /// Input channels.
    pub cin: usize,
    /// Square kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Symmetric zero padding.
    pub pad: usize,
    /// `cout * cin * k * k` weights, OIHW.
    pub weight: Vec<f32>,
    /// `cout` biases.
    pub bias: Vec<f32>,
    /// ReLU after the conv.
    pub relu: bool,
}

impl FloatConv {
    /// Weights of output channel `o`.
    pub fn row(&self, o: usize) -> &[f32] {
        let n = self.cin * self.k * self.k;
        &self.weight[o * n..(o + 1) * n]
    }

    /// Output side for an input side.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.pad - self.k) / self.stride + 1
    }
}

/// Bypass of a fire module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FloatBypass {
    /// None.
    None,
    /// Input added to the output.
    Identity,
    /// 1x1 conv of the input added to the output.
    Conv(FloatConv),
}

/// One layer of the sequential network.
#[allow(clippy::large_enum_variant)] // a dozen per network, never stored in bulk
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FloatLayer {
    /// A conv (+ReLU).
    Conv(FloatConv),
    /// Max pool (the SqueezeNet one is [`PoolGeom::SQUEEZENET`]); padded taps are ignored.
    MaxPool(PoolGeom),
    /// Average pool, `count_include_pad` (divisor `k * k`), floor mode.
    AvgPool(PoolGeom),
    /// A fire module.
    Fire {
        /// Squeeze (ReLU).
        squeeze: FloatConv,
        /// Expand 1x1 (ReLU).
        expand1: FloatConv,
        /// Expand 3x3 (ReLU).
        expand3: FloatConv,
        /// Bypass.
        bypass: FloatBypass,
    },
    /// Global average pool to the logits.
    GlobalAvgPool,
}

/// Geometry of a square pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolGeom {
    /// Square window side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding `[top, left, bottom, right]` (`top + bottom == left + right`: square output).
    pub pad: [usize; 4],
    /// Ceil mode, PyTorch's rule: the last window must start inside the input or left padding.
    pub ceil_mode: bool,
}

impl PoolGeom {
    /// SqueezeNet's max pool: 3x3, stride 2, no padding, ceil mode.
    pub const SQUEEZENET: PoolGeom = PoolGeom {
        k: 3,
        stride: 2,
        pad: [0; 4],
        ceil_mode: true,
    };

    /// Output side for an input side (the rule `shared` validates blobs with), or `None` when
    /// the window does not fit.
    pub fn out_size(&self, size: usize) -> Option<usize> {
        let (k, s) = (self.k, self.stride);
        let padded = size + self.pad[0] + self.pad[2];
        if k == 0 || s == 0 || padded < k || self.pad.iter().any(|&p| p >= k) {
            return None;
        }
        let span = padded - k;
        let mut o = if self.ceil_mode {
            span.div_ceil(s)
        } else {
            span / s
        } + 1;
        if self.ceil_mode && (o - 1) * s >= size + self.pad[0] {
            o -= 1;
        }
        Some(o)
    }
}

/// A whole network in float, BatchNorm folded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatNet {
    /// Input channels.
    pub in_channels: usize,
    /// Input side.
    pub input_size: usize,
    /// Layers in order.
    pub layers: Vec<FloatLayer>,
}

fn tensor_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Folds `bn` (if any) into the conv: `w' = w * g / sqrt(var + eps)`,
/// `b' = (b - mean) * g / sqrt(var + eps) + beta`.
pub fn fold_conv(cb: &ConvBn, relu: bool) -> FloatConv {
    let [cout, cin, kh, kw] = cb.conv.weight.val().dims();
    debug_assert_eq!(kh, kw);
    let mut weight = tensor_vec(cb.conv.weight.val());
    let mut bias = match &cb.conv.bias {
        Some(b) => tensor_vec(b.val()),
        None => vec![0.0; cout],
    };
    if let Some(bn) = &cb.bn {
        let gamma = tensor_vec(bn.gamma.val());
        let beta = tensor_vec(bn.beta.val());
        let mean = tensor_vec(bn.running_mean.value());
        let var = tensor_vec(bn.running_var.value());
        let n = cin * kh * kw;
        for o in 0..cout {
            let s = gamma[o] / (var[o] + bn.epsilon as f32).sqrt();
            for w in &mut weight[o * n..(o + 1) * n] {
                *w *= s;
            }
            bias[o] = (bias[o] - mean[o]) * s + beta[o];
        }
    }
    let stride = cb.conv.stride[0];
    let pad = match &cb.conv.padding {
        burn::nn::PaddingConfig2d::Explicit(t, ..) => *t,
        _ => 0,
    };
    FloatConv {
        cout,
        cin,
        k: kh,
        stride,
        pad,
        weight,
        bias,
        relu,
    }
}

impl FloatNet {
    /// The trained burn network with BatchNorm folded.
    pub fn from_burn(net: &SqueezeNet, cfg: &SqueezeNetConfig) -> Self {
        let mut layers = vec![
            FloatLayer::Conv(fold_conv(&net.stem, true)),
            FloatLayer::MaxPool(PoolGeom::SQUEEZENET),
        ];
        for (i, fire) in net.fires.iter().enumerate() {
            let bypass = match (&fire.bypass_conv, fire.identity_bypass) {
                (Some(c), _) => FloatBypass::Conv(fold_conv(c, false)),
                (None, true) => FloatBypass::Identity,
                (None, false) => FloatBypass::None,
            };
            layers.push(FloatLayer::Fire {
                squeeze: fold_conv(&fire.squeeze, true),
                expand1: fold_conv(&fire.expand1, true),
                expand3: fold_conv(&fire.expand3, true),
                bypass,
            });
            if net.pools_after.contains(&i) {
                layers.push(FloatLayer::MaxPool(PoolGeom::SQUEEZENET));
            }
        }
        let [cout, cin, _, _] = net.classifier.weight.val().dims();
        layers.push(FloatLayer::Conv(FloatConv {
            cout,
            cin,
            k: 1,
            stride: 1,
            pad: 0,
            weight: tensor_vec(net.classifier.weight.val()),
            bias: net
                .classifier
                .bias
                .as_ref()
                .map(|b| tensor_vec(b.val()))
                .unwrap_or_else(|| vec![0.0; cout]),
            relu: true,
        }));
        layers.push(FloatLayer::GlobalAvgPool);
        FloatNet {
            in_channels: cfg.in_channels,
            input_size: cfg.input_size,
            layers,
        }
    }

    /// Every conv, in order (stem, then per fire squeeze, expand1, expand3, bypass; classifier).
    pub fn convs(&self) -> Vec<&FloatConv> {
        let mut v = Vec::new();
        for l in &self.layers {
            match l {
                FloatLayer::Conv(c) => v.push(c),
                FloatLayer::Fire {
                    squeeze,
                    expand1,
                    expand3,
                    bypass,
                } => {
                    v.extend([squeeze, expand1, expand3]);
                    if let FloatBypass::Conv(c) = bypass {
                        v.push(c);
                    }
                }
                _ => {}
            }
        }
        v
    }

    /// Weights (not biases) of all convs.
    pub fn weight_count(&self) -> usize {
        self.convs().iter().map(|c| c.weight.len()).sum()
    }

    /// Parameters (weights and biases).
    pub fn param_count(&self) -> usize {
        self.convs()
            .iter()
            .map(|c| c.weight.len() + c.bias.len())
            .sum()
    }
}

/// A CHW float activation.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    /// Channels.
    pub c: usize,
    /// Side.
    pub s: usize,
    /// `c * s * s` values.
    pub v: Vec<f32>,
}

/// Plain float conv over one CHW image (the reference the quantiser calibrates on).
pub fn conv_f32(x: &Act, conv: &FloatConv) -> Act {
    let so = conv.out_size(x.s);
    let mut out = vec![0f32; conv.cout * so * so];
    let (k, s, p) = (conv.k as isize, conv.stride as isize, conv.pad as isize);
    for o in 0..conv.cout {
        let w = conv.row(o);
        let plane = &mut out[o * so * so..(o + 1) * so * so];
        plane.fill(conv.bias[o]);
        for ci in 0..conv.cin {
            let xin = &x.v[ci * x.s * x.s..(ci + 1) * x.s * x.s];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = w[(ci * conv.k + ky as usize) * conv.k + kx as usize];
                    if wv == 0.0 {
                        continue;
                    }
                    for oy in 0..so as isize {
                        let iy = oy * s + ky - p;
                        if iy < 0 || iy >= x.s as isize {
                            continue;
                        }
                        let row = &xin[iy as usize * x.s..(iy as usize + 1) * x.s];
                        let orow = &mut plane[oy as usize * so..(oy as usize + 1) * so];
                        for (ox, ov) in orow.iter_mut().enumerate() {
                            let ix = ox as isize * s + kx - p;
                            if ix >= 0 && ix < x.s as isize {
                                *ov += wv * row[ix as usize];
                            }
                        }
                    }
                }
            }
        }
        if conv.relu {
            for v in plane.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }
    Act {
        c: conv.cout,
        s: so,
        v: out,
    }
}

/// 3x3/2 max pool, ceil mode (windows clipped at the border).
pub fn maxpool_f32(x: &Act) -> Act {
    pool_f32(x, &PoolGeom::SQUEEZENET, false)
}

/// Max pool (padded taps ignored) or, with `avg`, average pool (padded taps count as 0, divisor
/// `k * k`). Panics when the window does not fit (import and quantisation check it first).
pub fn pool_f32(x: &Act, g: &PoolGeom, avg: bool) -> Act {
    let so = g.out_size(x.s).expect("pool window fits the input");
    let mut out = vec![0f32; x.c * so * so];
    // Clipped window [a, b) along one axis.
    let window = |o: usize, pad: usize| {
        let start = (o * g.stride) as isize - pad as isize;
        let a = start.max(0) as usize;
        let b = ((start + g.k as isize).max(0) as usize).min(x.s);
        (a, b)
    };
    let n = (g.k * g.k) as f32;
    for c in 0..x.c {
        let plane = &x.v[c * x.s * x.s..(c + 1) * x.s * x.s];
        for oy in 0..so {
            let (ya, yb) = window(oy, g.pad[0]);
            for ox in 0..so {
                let (xa, xb) = window(ox, g.pad[1]);
                let taps = (ya..yb).flat_map(|iy| plane[iy * x.s + xa..iy * x.s + xb].iter());
                out[(c * so + oy) * so + ox] = if avg {
                    taps.sum::<f32>() / n
                } else {
                    taps.fold(f32::NEG_INFINITY, |m, &v| m.max(v))
                };
            }
        }
    }
    Act {
        c: x.c,
        s: so,
        v: out,
    }
}

/// Every intermediate of one image's forward pass, for calibration: `(name, activation)`.
pub fn forward_traced(
    net: &FloatNet,
    input: Act,
    mut visit: impl FnMut(&str, usize, &Act),
) -> Vec<f32> {
    let mut x = input;
    visit("input", 0, &x);
    for (i, l) in net.layers.iter().enumerate() {
        x = match l {
            FloatLayer::Conv(c) => conv_f32(&x, c),
            FloatLayer::MaxPool(g) => pool_f32(&x, g, false),
            FloatLayer::AvgPool(g) => pool_f32(&x, g, true),
            FloatLayer::Fire {
                squeeze,
                expand1,
                expand3,
                bypass,
            } => {
                let s = conv_f32(&x, squeeze);
                visit("squeeze", i, &s);
                let mut e = conv_f32(&s, expand1);
                e.v.extend(conv_f32(&s, expand3).v);
                e.c += expand3.cout;
                match bypass {
                    FloatBypass::None => e,
                    FloatBypass::Identity | FloatBypass::Conv(_) => {
                        visit("expand", i, &e);
                        let b = match bypass {
                            FloatBypass::Conv(c) => {
                                let b = conv_f32(&x, c);
                                visit("bypass_conv", i, &b);
                                b
                            }
                            _ => x.clone(),
                        };
                        for (a, b) in e.v.iter_mut().zip(&b.v) {
                            *a += b;
                        }
                        e
                    }
                }
            }
            FloatLayer::GlobalAvgPool => {
                let n = (x.s * x.s) as f32;
                let v = (0..x.c)
                    .map(|c| x.v[c * x.s * x.s..(c + 1) * x.s * x.s].iter().sum::<f32>() / n)
                    .collect();
                Act { c: x.c, s: 1, v }
            }
        };
        visit("output", i, &x);
    }
    x.v
}
