//! Blobs of format 1 (f32 requantisation) to the current format: the same weights and scales,
//! with each real multiplier made integer the way the quantiser makes it for a new model
//! (`OwnedConv::from_multipliers`, `quant::multiplier`, `quant::add_multipliers`). `sqz recode`
//! runs it on a format-1 blob, so a model compressed before the integer kernels is carried over
//! without compressing it again. The logits may move by a step where the rounding differs: the
//! new blob is evaluated and checked against tract like any other.

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;
use shared::encode::{OwnedConv, OwnedWeights};
use shared::format::{
    AvgPoolDesc, Bypass, ConvDesc, FireDesc, GlobalAvgPoolDesc, LayerDesc, MaxPoolDesc, ModelDesc,
    ModelHead, Pad, QuantParams, WeightsDesc,
};
use shared::quant::{AddRequant, Multiplier, add_multipliers, multiplier};

/// The format version this module reads.
pub const LEGACY_VERSION: u16 = 1;

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
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
#[cfg_attr(test, derive(Serialize))]
struct AvgPoolV1 {
    kernel: [u8; 2],
    stride: [u8; 2],
    pad: Pad,
    multiplier: f32,
    out_quant: QuantParams,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct GlobalAvgPoolV1 {
    multiplier: f32,
    out_quant: QuantParams,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
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
#[cfg_attr(test, derive(Serialize))]
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

#[allow(clippy::large_enum_variant)] // read one at a time, never stored in bulk
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
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

#[cfg(test)]
mod tests {
    use super::*;
    use shared::format::{Dims, FORMAT_VERSION};
    use shared::testkit::example;

    fn bytes_of<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }

    /// A conv of the current format written back in format 1: each multiplier `m / 2^s` as an
    /// f32 (exact: 16 significant bits), each bias `b << k` as an i32.
    fn conv_v1<'a>(c: &ConvDesc<'a>, store: &'a mut (Vec<u8>, Vec<u8>)) -> ConvV1<'a> {
        let n = c.out_channels as usize;
        let m: Vec<f32> = (0..n)
            .map(|i| c.multiplier_at(i) as f32 / (1u64 << c.shift) as f32)
            .collect();
        let b: Vec<i32> = (0..n).map(|i| c.bias_at(i)).collect();
        *store = (
            bytes_of(&b, i32::to_le_bytes),
            bytes_of(&m, f32::to_le_bytes),
        );
        ConvV1 {
            out_channels: c.out_channels,
            kernel: c.kernel,
            stride: c.stride,
            pad: c.pad,
            relu: c.relu,
            weights: c.weights,
            bias: &store.0,
            _w_scales: &[],
            multipliers: &store.1,
            out_quant: c.out_quant,
        }
    }

    #[test]
    fn a_format_1_blob_comes_back_as_the_same_model() {
        let blob = example::blob(3);
        let model = shared::Model::from_bytes(&blob).unwrap();
        // Every conv of the example in order, stored for the borrowed format-1 views.
        let convs: Vec<ConvDesc<'_>> = model
            .layers()
            .flat_map(|l| match l.desc {
                LayerDesc::Conv(c) => vec![c],
                LayerDesc::Fire(f) => {
                    let mut v = vec![f.squeeze, f.expand1, f.expand3];
                    if let Bypass::Complex { conv, .. } = f.bypass {
                        v.push(conv);
                    }
                    v
                }
                _ => vec![],
            })
            .collect();
        let mut stores = vec![(Vec::new(), Vec::new()); convs.len()];
        let v1: Vec<ConvV1<'_>> = convs
            .iter()
            .zip(stores.iter_mut())
            .map(|(c, s)| conv_v1(c, s))
            .collect();
        let mut next = v1.into_iter();
        let mut payload = postcard::to_allocvec(&ModelHead {
            input: model.input_dims(),
            input_quant: model.input_quant(),
            num_classes: model.num_classes() as u16,
            num_layers: model.num_layers() as u16,
            arena_len: 0,
        })
        .unwrap();
        for l in model.layers() {
            let pool = |m: Multiplier| m.m as f32 / (1u64 << m.shift) as f32;
            let layer = match l.desc {
                LayerDesc::Conv(_) => LayerV1::Conv(next.next().unwrap()),
                LayerDesc::MaxPool(m) => LayerV1::MaxPool(m),
                LayerDesc::AvgPool(a) => LayerV1::AvgPool(AvgPoolV1 {
                    kernel: a.kernel,
                    stride: a.stride,
                    pad: a.pad,
                    multiplier: pool(a.multiplier),
                    out_quant: a.out_quant,
                }),
                LayerDesc::GlobalAvgPool(g) => LayerV1::GlobalAvgPool(GlobalAvgPoolV1 {
                    multiplier: pool(g.multiplier),
                    out_quant: g.out_quant,
                }),
                LayerDesc::Fire(f) => LayerV1::Fire(FireV1 {
                    squeeze: next.next().unwrap(),
                    expand1: next.next().unwrap(),
                    expand3: next.next().unwrap(),
                    bypass: match f.bypass {
                        Bypass::None => BypassV1::None,
                        Bypass::Simple { out_quant, .. } => BypassV1::Simple { out_quant },
                        Bypass::Complex { out_quant, .. } => BypassV1::Complex {
                            conv: next.next().unwrap(),
                            out_quant,
                        },
                    },
                }),
            };
            payload.extend(postcard::to_allocvec(&layer).unwrap());
        }
        let mut old = b"SQZB".to_vec();
        old.extend(LEGACY_VERSION.to_le_bytes());
        old.extend([0, 0]);
        old.extend((payload.len() as u32).to_le_bytes());
        old.extend([0; 4]);
        old.extend(model.model_id().to_le_bytes());
        old.extend(&payload);
        let crc = shared::crc::crc32(&old[16..]);
        old[12..16].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            shared::Model::from_bytes(&old),
            Err(shared::Error::UnsupportedVersion(1))
        ));

        let new = upgrade(&old).unwrap();
        assert_eq!(format_version(&new), Some(FORMAT_VERSION));
        let upgraded = shared::Model::from_bytes(&new).unwrap();
        // The same integers in every layer (the weights are stored dense, so compare the
        // descriptions field by field, not the bytes).
        for (a, b) in model.layers().zip(upgraded.layers()) {
            let key = |d: &LayerDesc<'_>| match d {
                LayerDesc::Conv(c) => {
                    format!("{:?}", (c.bias, c.bias_shift, c.multipliers, c.shift))
                }
                LayerDesc::Fire(f) => format!(
                    "{:?}",
                    (
                        f.squeeze.multipliers,
                        f.expand1.bias,
                        f.expand3.shift,
                        match f.bypass {
                            Bypass::None => None,
                            Bypass::Simple { add, .. } | Bypass::Complex { add, .. } => Some(add),
                        }
                    )
                ),
                LayerDesc::AvgPool(p) => format!("{:?}", p.multiplier),
                LayerDesc::GlobalAvgPool(p) => format!("{:?}", p.multiplier),
                LayerDesc::MaxPool(p) => format!("{p:?}"),
            };
            assert_eq!(key(&a.desc), key(&b.desc), "layer {}", a.index);
        }
        let d: Dims = model.input_dims();
        let input: Vec<i8> = (0..d.len()).map(|i| (i * 37 % 256) as u8 as i8).collect();
        let logits = |m: &shared::Model<'_>| {
            let mut arena = vec![0u8; m.arena_len()];
            let mut out = vec![0i8; m.num_classes()];
            shared::run(m, &input, &mut arena, &mut out);
            out
        };
        assert_eq!(logits(&model), logits(&upgraded));
        assert!(upgrade(&blob).is_err(), "a current blob is not format 1");
        let mut bad = old.clone();
        bad[40] ^= 1;
        assert!(upgrade(&bad).is_err(), "a corrupt format-1 blob is refused");
    }
}
