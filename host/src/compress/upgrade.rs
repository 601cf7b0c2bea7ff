//! Blobs of format 1 (f32 requantisation) to the current format: the same weights and scales,
//! with each real multiplier made integer the way the quantiser makes it for a new model
//! (`OwnedConv::from_multipliers`, `quant::multiplier`, `quant::add_multipliers`). `sqz recode`
//! runs it on a format-1 blob, so a model compressed before the integer kernels is carried over
//! without compressing it again. The logits may move by a step where the rounding differs: the
//! new blob is evaluated and checked against tract like any other.

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use shared::encode::{OwnedConv, OwnedWeights};
use shared::format::{
    AvgPoolDesc, Bypass, ConvDesc, FireDesc, GlobalAvgPoolDesc, LayerDesc, MaxPoolDesc, ModelDesc,
    ModelHead, Pad, QuantParams, WeightsDesc,
};
use shared::quant::{AddRequant, Multiplier, add_multipliers, multiplier};

/// The format version this module reads.
pub const LEGACY_VERSION: u16 = 1;

#[derive(Deserialize)]
struct ConvV1<'a> {
    out_channels: u16,
    kernel: [u8; 2],
    stride: [u8; 2],
    pad: Pad,
    relu: bool,
    #[serde(borrow)]
    weights: WeightsDesc<'a>,
    #[serde(borrow)]
    bias: &'a [u8],
    #[serde(borrow)]
    _w_scales: &'a [u8],
    #[serde(borrow)]
    multipliers: &'a [u8],
    out_quant: QuantParams,
}

#[derive(Deserialize)]
struct AvgPoolV1 {
    kernel: [u8; 2],
    stride: [u8; 2],
    pad: Pad,
    multiplier: f32,
    out_quant: QuantParams,
}

#[derive(Deserialize)]
struct GlobalAvgPoolV1 {
    multiplier: f32,
    out_quant: QuantParams,
}

#[derive(Deserialize)]
enum BypassV1<'a> {
    None,
    Simple {
        out_quant: QuantParams,
    },
    Complex {
        #[serde(borrow)]
        conv: ConvV1<'a>,
        out_quant: QuantParams,
    },
}

#[derive(Deserialize)]
struct FireV1<'a> {
    #[serde(borrow)]
    squeeze: ConvV1<'a>,
    #[serde(borrow)]
    expand1: ConvV1<'a>,
    #[serde(borrow)]
    expand3: ConvV1<'a>,
    #[serde(borrow)]
    bypass: BypassV1<'a>,
}

#[derive(Deserialize)]
enum LayerV1<'a> {
    Conv(#[serde(borrow)] ConvV1<'a>),
    MaxPool(MaxPoolDesc),
    AvgPool(AvgPoolV1),
    GlobalAvgPool(GlobalAvgPoolV1),
    Fire(#[serde(borrow)] FireV1<'a>),
}

/// The blob's format version (header bytes 4..6), if it has the magic.
pub fn format_version(blob: &[u8]) -> Option<u16> {
    (blob.len() >= 6 && blob[..4] == shared::format::MAGIC)
        .then(|| u16::from_le_bytes([blob[4], blob[5]]))
}

fn le<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| c.try_into().unwrap_or([0; N]))
}

/// A format-1 conv reading `cin` channels as a current one (weights stored dense; `sqz
/// recode` stores them its way afterwards).
fn conv(c: &ConvV1<'_>, cin: usize, name: &str) -> Result<OwnedConv> {
    let view = ConvDesc {
        out_channels: c.out_channels,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.pad,
        relu: c.relu,
        weights: c.weights,
        bias: &[],
        bias_shift: 0,
        multipliers: &[],
        shift: 0,
        out_quant: c.out_quant,
    };
    let k = c.kernel[0] as usize * c.kernel[1] as usize * cin;
    let mut w = vec![0i8; c.out_channels as usize * k];
    view.decode_weights(cin, &mut w)
        .map_err(|e| anyhow!("{name}: weights: {e}"))?;
    let bias: Vec<i32> = le::<4>(c.bias).map(i32::from_le_bytes).collect();
    let mults: Vec<f32> = le::<4>(c.multipliers).map(f32::from_le_bytes).collect();
    OwnedConv::from_multipliers(
        c.kernel,
        c.stride,
        c.pad,
        c.relu,
        OwnedWeights::dense(&w),
        &bias,
        &mults,
        c.out_quant,
    )
    .map_err(|_| anyhow!("{name}: a multiplier has no integer form"))
}

fn pool_int(m: f32, name: &str) -> Result<Multiplier> {
    multiplier(m).with_context(|| format!("{name}: pool multiplier {m} out of range"))
}

fn add_int(a: QuantParams, b: QuantParams, o: QuantParams, name: &str) -> Result<AddRequant> {
    add_multipliers(a.scale, b.scale, o.scale)
        .with_context(|| format!("{name}: the bypass add's scales have no integer form"))
}

/// A layer of the new blob, its convs held by index into the owned list.
enum Upgraded {
    Conv(usize),
    MaxPool(MaxPoolDesc),
    AvgPool(AvgPoolDesc),
    Gap(GlobalAvgPoolDesc),
    Fire([usize; 3], UpBypass),
}

/// A fire's bypass in the new blob.
enum UpBypass {
    None,
    Simple(AddRequant, QuantParams),
    Complex(usize, AddRequant, QuantParams),
}

/// Reads a format-1 blob and writes the same model in the current format (weights dense).
pub fn upgrade(blob: &[u8]) -> Result<Vec<u8>> {
    if format_version(blob) != Some(LEGACY_VERSION) || blob.len() < 24 {
        bail!("not a format-{LEGACY_VERSION} blob");
    }
    let len = u32::from_le_bytes([blob[8], blob[9], blob[10], blob[11]]) as usize;
    let crc = u32::from_le_bytes([blob[12], blob[13], blob[14], blob[15]]);
    if blob.len() != 24 + len || shared::crc::crc32(&blob[16..]) != crc {
        bail!("format-{LEGACY_VERSION} blob: truncated or checksum mismatch");
    }
    let model_id = u64::from_le_bytes(blob[16..24].try_into()?);
    let (head, mut rest): (ModelHead, &[u8]) =
        postcard::take_from_bytes(&blob[24..]).context("format-1 header does not parse")?;
    let mut convs = Vec::new();
    let mut layers = Vec::new();
    let (mut c, mut q) = (head.input.c as usize, head.input_quant);
    for i in 0..head.num_layers {
        let (l, r): (LayerV1<'_>, &[u8]) =
            postcard::take_from_bytes(rest).with_context(|| format!("layer {i} does not parse"))?;
        rest = r;
        let name = format!("layer {i}");
        let mut push = |cv: &ConvV1<'_>, cin: usize| -> Result<usize> {
            convs.push(conv(cv, cin, &name)?);
            Ok(convs.len() - 1)
        };
        layers.push(match &l {
            LayerV1::Conv(cv) => {
                let at = push(cv, c)?;
                (c, q) = (cv.out_channels as usize, cv.out_quant);
                Upgraded::Conv(at)
            }
            LayerV1::MaxPool(m) => Upgraded::MaxPool(*m),
            LayerV1::AvgPool(a) => {
                let multiplier = pool_int(a.multiplier, &name)?;
                q = a.out_quant;
                Upgraded::AvgPool(AvgPoolDesc {
                    kernel: a.kernel,
                    stride: a.stride,
                    pad: a.pad,
                    multiplier,
                    out_quant: a.out_quant,
                })
            }
            LayerV1::GlobalAvgPool(g) => {
                q = g.out_quant;
                Upgraded::Gap(GlobalAvgPoolDesc {
                    multiplier: pool_int(g.multiplier, &name)?,
                    out_quant: g.out_quant,
                })
            }
            LayerV1::Fire(f) => {
                let s = f.squeeze.out_channels as usize;
                let ids = [
                    push(&f.squeeze, c)?,
                    push(&f.expand1, s)?,
                    push(&f.expand3, s)?,
                ];
                let cat = f.expand1.out_quant;
                let (bypass_conv, add) = match &f.bypass {
                    BypassV1::None => (None, None),
                    BypassV1::Simple { out_quant } => (
                        None,
                        Some((add_int(cat, q, *out_quant, &name)?, *out_quant)),
                    ),
                    BypassV1::Complex { conv, out_quant } => {
                        let at = push(conv, c)?;
                        let add = add_int(cat, conv.out_quant, *out_quant, &name)?;
                        (Some(at), Some((add, *out_quant)))
                    }
                };
                c = (f.expand1.out_channels + f.expand3.out_channels) as usize;
                q = add.map_or(cat, |(_, o)| o);
                let bypass = match (bypass_conv, add) {
                    (Some(at), Some((add, o))) => UpBypass::Complex(at, add, o),
                    (_, Some((add, o))) => UpBypass::Simple(add, o),
                    _ => UpBypass::None,
                };
                Upgraded::Fire(ids, bypass)
            }
        });
    }
    if !rest.is_empty() {
        bail!("format-1 blob: bytes after the last layer");
    }
    let descs: Vec<LayerDesc<'_>> = layers
        .iter()
        .map(|l| match l {
            Upgraded::Conv(i) => LayerDesc::Conv(convs[*i].desc()),
            Upgraded::MaxPool(m) => LayerDesc::MaxPool(*m),
            Upgraded::AvgPool(a) => LayerDesc::AvgPool(*a),
            Upgraded::Gap(g) => LayerDesc::GlobalAvgPool(*g),
            Upgraded::Fire([s, e1, e3], b) => LayerDesc::Fire(FireDesc {
                squeeze: convs[*s].desc(),
                expand1: convs[*e1].desc(),
                expand3: convs[*e3].desc(),
                bypass: match b {
                    UpBypass::None => Bypass::None,
                    UpBypass::Simple(add, out_quant) => Bypass::Simple {
                        add: *add,
                        out_quant: *out_quant,
                    },
                    UpBypass::Complex(b, add, out_quant) => Bypass::Complex {
                        conv: convs[*b].desc(),
                        add: *add,
                        out_quant: *out_quant,
                    },
                },
            }),
        })
        .collect();
    shared::format::encode(&ModelDesc {
        model_id,
        input: head.input,
        input_quant: head.input_quant,
        num_classes: head.num_classes,
        layers: &descs,
    })
    .map_err(|e| anyhow!("the upgraded model does not validate: {e}"))
}
