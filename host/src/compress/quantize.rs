//! int8 quantisation of a [`FloatNet`] and the blob built from it with `shared`'s types.
//!
//! * Weights: symmetric per output channel, `scale_c = max|w_c| / 127`, values in [-127, 127].
//! * Activations: asymmetric per tensor from the min/max seen on calibration images (the range
//!   always contains 0), `scale = (max - min) / 255`, `zp = round(-128 - min / scale)`.
//! * Input: `scale = 1/255`, `zp = -128`, so a pixel `p` quantises exactly to `p - 128`.
//! * Biases: `round(b / (in_scale * w_scale_c))` as i32.
//!
//! Weight encodings (dense, codebook, sparse, Huffman) are chosen per conv by the caller through
//! [`WeightPlan`]; the default is dense.

use anyhow::{Context, Result, bail};
use shared::encode::{OwnedConv, OwnedWeights};
use shared::format::{
    AvgPoolDesc, Bypass, Dims, FireDesc, GlobalAvgPoolDesc, LayerDesc, MaxPoolDesc, ModelDesc,
    QuantParams,
};
use shared::quant::{AddRequant, Multiplier, add_multipliers, multiplier, pool_multiplier};

use super::fold::{Act, FloatBypass, FloatConv, FloatLayer, FloatNet, PoolGeom, forward_traced};
use crate::data::images::Images;

/// The input quantisation every model uses (the int8 input is `pixel - 128`).
pub use shared::quant::INPUT_QUANT;

/// Quantisation of an activation range (widened to contain 0).
pub fn quant_for_range(min: f32, max: f32) -> QuantParams {
    let (min, max) = (min.min(0.0), max.max(0.0));
    let scale = ((max - min) / 255.0).max(1e-8);
    let zp = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i8;
    QuantParams {
        scale,
        zero_point: zp,
    }
}

/// Min/max of every activation the quantised network stores, in [`forward_traced`] order.
#[derive(Debug, Clone, Default)]
pub struct Ranges(pub Vec<(String, usize, f32, f32)>);

impl Ranges {
    fn get(&self, name: &str, layer: usize) -> Result<QuantParams> {
        self.0
            .iter()
            .find(|(n, l, ..)| n == name && *l == layer)
            .map(|&(_, _, lo, hi)| quant_for_range(lo, hi))
            .with_context(|| format!("no calibration range for {name} of layer {layer}"))
    }
}

/// The float input of one image for `net`: HWC pixels to CHW in [0, 1], as the trainer feeds
/// it.
pub fn net_input(net: &FloatNet, pixels: &[u8]) -> Act {
    let (c, s) = (net.in_channels, net.input_size);
    let mut v = vec![0f32; c * s * s];
    for (i, &p) in pixels.iter().enumerate().take(v.len()) {
        v[(i % c) * s * s + i / c] = f32::from(p) / 255.0;
    }
    Act { c, s, v }
}

/// Runs `images` through the float network and records every activation range.
pub fn calibrate<I: Images + ?Sized>(net: &FloatNet, images: &I, count: usize) -> Ranges {
    let n = count.min(images.count());
    let per_thread = |range: std::ops::Range<usize>| {
        let mut r: Vec<(String, usize, f32, f32)> = Vec::new();
        for i in range {
            forward_traced(net, net_input(net, images.pixels(i)), |name, layer, act| {
                let (lo, hi) = act
                    .v
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                match r.iter_mut().find(|(n, l, ..)| n == name && *l == layer) {
                    Some(e) => {
                        e.2 = e.2.min(lo);
                        e.3 = e.3.max(hi);
                    }
                    None => r.push((name.to_string(), layer, lo, hi)),
                }
            });
        }
        r
    };
    let half = n / 2;
    let (a, b) = std::thread::scope(|s| {
        let h = s.spawn(|| per_thread(half..n));
        (per_thread(0..half), h.join().expect("calibration thread"))
    });
    let mut merged = a;
    for (name, layer, lo, hi) in b {
        match merged
            .iter_mut()
            .find(|(n, l, ..)| *n == name && *l == layer)
        {
            Some(e) => {
                e.2 = e.2.min(lo);
                e.3 = e.3.max(hi);
            }
            None => merged.push((name, layer, lo, hi)),
        }
    }
    Ranges(merged)
}

/// Per-channel symmetric int8 weights in OHWI order and their scales.
pub fn quantize_weights(conv: &FloatConv) -> (Vec<i8>, Vec<f32>) {
    let (k, cin) = (conv.k, conv.cin);
    let mut q = vec![0i8; conv.weight.len()];
    let mut scales = Vec::with_capacity(conv.cout);
    for o in 0..conv.cout {
        let row = conv.row(o);
        let max = row.iter().fold(0f32, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        for ci in 0..cin {
            for ky in 0..k {
                for kx in 0..k {
                    let w = row[(ci * k + ky) * k + kx];
                    q[o * cin * k * k + (ky * k + kx) * cin + ci] =
                        (w / scale).round().clamp(-127.0, 127.0) as i8;
                }
            }
        }
    }
    (q, scales)
}

/// How each conv's int8 weights are stored: called with the conv's index (in
/// [`FloatNet::convs`] order), its OHWI int8 weights and `cin * k * k`.
pub type WeightPlan<'a> = dyn Fn(usize, &[i8], usize) -> Result<OwnedWeights> + 'a;

/// Dense storage for every conv.
pub fn dense_plan(_: usize, w: &[i8], _: usize) -> Result<OwnedWeights> {
    Ok(OwnedWeights::dense(w))
}

/// A quantised network: owned convs plus the order they are used in.
#[derive(Debug, Clone)]
pub struct QuantNet {
    /// Every conv, in [`FloatNet::convs`] order.
    pub convs: Vec<OwnedConv>,
    /// The layers, referring to `convs` by index.
    pub layers: Vec<QLayer>,
    /// Input side.
    pub input_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Classes.
    pub num_classes: usize,
}

/// A layer of a [`QuantNet`].
#[derive(Debug, Clone)]
pub enum QLayer {
    /// Conv by index.
    Conv(usize),
    /// Max pool.
    MaxPool(PoolGeom),
    /// Average pool with its multiplier and output quantisation.
    AvgPool(PoolGeom, Multiplier, QuantParams),
    /// Fire: squeeze, expand1, expand3 conv indices, bypass.
    Fire(usize, usize, usize, QBypass),
    /// Global average pool with its multiplier and output quantisation.
    GlobalAvgPool(Multiplier, QuantParams),
}

/// A fire's bypass in a [`QuantNet`].
#[derive(Debug, Clone)]
pub enum QBypass {
    /// None.
    None,
    /// Identity, with the add's multipliers and the sum's quantisation.
    Simple(AddRequant, QuantParams),
    /// 1x1 conv by index, with the add's multipliers and the sum's quantisation.
    Complex(usize, AddRequant, QuantParams),
}

fn owned_conv(
    conv: &FloatConv,
    in_q: QuantParams,
    out_q: QuantParams,
    index: usize,
    plan: &WeightPlan<'_>,
) -> Result<OwnedConv> {
    let (w, scales) = quantize_weights(conv);
    let bias: Vec<i32> = conv
        .bias
        .iter()
        .zip(&scales)
        .map(|(b, s)| (f64::from(*b) / (f64::from(in_q.scale) * f64::from(*s))).round() as i32)
        .collect();
    let p = conv.pad as u8;
    let weights = plan(index, &w, conv.cin * conv.k * conv.k)?;
    OwnedConv::new(
        [conv.k as u8; 2],
        [conv.stride as u8; 2],
        [p; 4],
        conv.relu,
        weights,
        &bias,
        &scales,
        in_q.scale,
        out_q,
    )
    .map_err(|_| anyhow::anyhow!("conv {index}: a channel multiplier has no integer form"))
}

/// The integer form of a pool's real multiplier.
fn pool_int(m: f32, layer: usize) -> Result<Multiplier> {
    multiplier(m).with_context(|| format!("layer {layer}: pool multiplier {m} out of range"))
}

/// The integer multipliers of a bypass add (`a`: the concat, `b`: the other branch).
fn add_int(a: QuantParams, b: QuantParams, out: QuantParams, layer: usize) -> Result<AddRequant> {
    add_multipliers(a.scale, b.scale, out.scale)
        .with_context(|| format!("layer {layer}: the bypass add's scales have no integer form"))
}

fn pool_side(g: &PoolGeom, side: usize, layer: usize) -> Result<usize> {
    g.out_size(side).with_context(|| {
        format!(
            "layer {layer}: a {0}x{0} pool does not fit a {side}x{side} input",
            g.k
        )
    })
}

fn pool_u8(g: &PoolGeom) -> ([u8; 2], [u8; 2], [u8; 4]) {
    let p = g.pad.map(|p| p as u8);
    ([g.k as u8; 2], [g.stride as u8; 2], p)
}

/// Quantises `net` with the calibrated `ranges`, storing weights per `plan`.
pub fn quantize(net: &FloatNet, ranges: &Ranges, plan: &WeightPlan<'_>) -> Result<QuantNet> {
    let mut convs = Vec::new();
    let mut layers = Vec::new();
    let mut q = INPUT_QUANT;
    let mut side = net.input_size;
    let push = |c: &FloatConv, in_q, out_q, convs: &mut Vec<OwnedConv>| -> Result<usize> {
        let i = convs.len();
        convs.push(owned_conv(c, in_q, out_q, i, plan)?);
        Ok(i)
    };
    let mut num_classes = 0;
    for (i, l) in net.layers.iter().enumerate() {
        match l {
            FloatLayer::Conv(c) => {
                let out_q = ranges.get("output", i)?;
                layers.push(QLayer::Conv(push(c, q, out_q, &mut convs)?));
                q = out_q;
                side = c.out_size(side);
                num_classes = c.cout;
            }
            FloatLayer::MaxPool(g) => {
                layers.push(QLayer::MaxPool(*g));
                side = pool_side(g, side, i)?;
            }
            FloatLayer::AvgPool(g) => {
                let out_q = ranges.get("output", i)?;
                let count = (g.k * g.k) as u32;
                let m = pool_int(pool_multiplier(q.scale, count, out_q.scale), i)?;
                layers.push(QLayer::AvgPool(*g, m, out_q));
                q = out_q;
                side = pool_side(g, side, i)?;
            }
            FloatLayer::Fire {
                squeeze,
                expand1,
                expand3,
                bypass,
            } => {
                let sq_q = ranges.get("squeeze", i)?;
                let s = push(squeeze, q, sq_q, &mut convs)?;
                let cat_q = match bypass {
                    FloatBypass::None => ranges.get("output", i)?,
                    _ => ranges.get("expand", i)?,
                };
                let e1 = push(expand1, sq_q, cat_q, &mut convs)?;
                let e3 = push(expand3, sq_q, cat_q, &mut convs)?;
                let (b, out_q) = match bypass {
                    FloatBypass::None => (QBypass::None, cat_q),
                    FloatBypass::Identity => {
                        let o = ranges.get("output", i)?;
                        (QBypass::Simple(add_int(cat_q, q, o, i)?, o), o)
                    }
                    FloatBypass::Conv(c) => {
                        let bq = ranges.get("bypass_conv", i)?;
                        let bi = push(c, q, bq, &mut convs)?;
                        let o = ranges.get("output", i)?;
                        (QBypass::Complex(bi, add_int(cat_q, bq, o, i)?, o), o)
                    }
                };
                layers.push(QLayer::Fire(s, e1, e3, b));
                q = out_q;
            }
            FloatLayer::GlobalAvgPool => {
                let out_q = ranges.get("output", i)?;
                let count = (side * side) as u32;
                layers.push(QLayer::GlobalAvgPool(
                    pool_int(pool_multiplier(q.scale, count, out_q.scale), i)?,
                    out_q,
                ));
                q = out_q;
                side = 1;
            }
        }
    }
    if num_classes == 0 {
        bail!("network has no classifier conv");
    }
    Ok(QuantNet {
        convs,
        layers,
        input_size: net.input_size,
        in_channels: net.in_channels,
        num_classes,
    })
}

impl QuantNet {
    /// The zero-copy layer list borrowing `self`.
    pub fn layer_descs(&self) -> Vec<LayerDesc<'_>> {
        let c = |i: usize| self.convs[i].desc();
        self.layers
            .iter()
            .map(|l| match l {
                QLayer::Conv(i) => LayerDesc::Conv(c(*i)),
                QLayer::MaxPool(g) => {
                    let (kernel, stride, pad) = pool_u8(g);
                    LayerDesc::MaxPool(MaxPoolDesc {
                        kernel,
                        stride,
                        pad,
                        ceil_mode: g.ceil_mode,
                    })
                }
                QLayer::AvgPool(g, m, q) => {
                    let (kernel, stride, pad) = pool_u8(g);
                    LayerDesc::AvgPool(AvgPoolDesc {
                        kernel,
                        stride,
                        pad,
                        multiplier: *m,
                        out_quant: *q,
                    })
                }
                QLayer::Fire(s, e1, e3, b) => LayerDesc::Fire(FireDesc {
                    squeeze: c(*s),
                    expand1: c(*e1),
                    expand3: c(*e3),
                    bypass: match b {
                        QBypass::None => Bypass::None,
                        QBypass::Simple(a, q) => Bypass::Simple {
                            add: *a,
                            out_quant: *q,
                        },
                        QBypass::Complex(i, a, q) => Bypass::Complex {
                            conv: c(*i),
                            add: *a,
                            out_quant: *q,
                        },
                    },
                }),
                QLayer::GlobalAvgPool(m, q) => LayerDesc::GlobalAvgPool(GlobalAvgPoolDesc {
                    multiplier: *m,
                    out_quant: *q,
                }),
            })
            .collect()
    }

    /// The blob, in `shared`'s format.
    pub fn blob(&self, model_id: u64) -> Result<Vec<u8>> {
        let layers = self.layer_descs();
        let desc = ModelDesc {
            model_id,
            input: Dims {
                h: self.input_size as u16,
                w: self.input_size as u16,
                c: self.in_channels as u16,
            },
            input_quant: INPUT_QUANT,
            num_classes: self.num_classes as u16,
            layers: &layers,
        };
        shared::format::encode(&desc)
            .map_err(|e| anyhow::anyhow!("blob encoder refused the model: {e}"))
    }
}
