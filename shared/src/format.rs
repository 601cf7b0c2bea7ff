//! The model blob: header, postcard description, zero-copy borrowing, encoder (`std`).
//!
//! See the crate documentation (README.md) for the byte-by-byte layout.

use core::fmt;

use serde::{Deserialize, Serialize};

pub use crate::quant::QuantParams;
pub use crate::weights::{Values, WeightsDesc};

/// Blob magic.
pub const MAGIC: [u8; 4] = *b"SQZB";
/// Current format version.
pub const FORMAT_VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 24;
/// Most layers a model may have.
pub const MAX_LAYERS: usize = 64;

/// Why a blob was rejected by [`crate::Model::from_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than the header, or than the header's payload length.
    Truncated,
    /// Bytes after the payload.
    TrailingBytes,
    /// Magic is not `SQZB`.
    BadMagic,
    /// Unsupported format version.
    UnsupportedVersion(u16),
    /// Reserved header field not zero.
    BadHeader,
    /// CRC-32 of model id + payload does not match.
    BadChecksum,
    /// The postcard description does not parse.
    Malformed,
    /// Layer count is 0 or above [`MAX_LAYERS`], or trailing payload bytes.
    BadLayerCount,
    /// A layer's shape parameters are invalid or do not chain (layer index).
    BadShape(u16),
    /// Quantisation parameters invalid (non-finite / non-positive scale, multiplier that does
    /// not match its derivation) at a layer.
    BadQuant(u16),
    /// Weight encoding malformed (size, width, offset, index out of range).
    BadWeights,
    /// Huffman table or stream malformed.
    BadHuffman,
    /// Weight data invalid at layer (index).
    BadLayerWeights(u16),
    /// The network's output is not `1 x 1 x num_classes`.
    BadOutput,
    /// A size computation overflowed.
    TooLarge,
    /// The stored arena size differs from this build's plan (blob from another exporter).
    BadArena,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "blob truncated"),
            Error::TrailingBytes => write!(f, "bytes after the blob payload"),
            Error::BadMagic => write!(f, "not a model blob (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported blob format version {v}"),
            Error::BadHeader => write!(f, "reserved header field not zero"),
            Error::BadChecksum => write!(f, "payload CRC-32 mismatch"),
            Error::Malformed => write!(f, "model description does not parse"),
            Error::BadLayerCount => write!(f, "bad layer count or trailing payload"),
            Error::BadShape(l) => write!(f, "layer {l}: invalid or non-chaining shape"),
            Error::BadQuant(l) => write!(f, "layer {l}: invalid quantisation parameters"),
            Error::BadWeights => write!(f, "malformed weight encoding"),
            Error::BadHuffman => write!(f, "malformed Huffman table or stream"),
            Error::BadLayerWeights(l) => write!(f, "layer {l}: malformed weights"),
            Error::BadOutput => write!(f, "network output is not 1x1xnum_classes"),
            Error::TooLarge => write!(f, "size overflow"),
            Error::BadArena => write!(
                f,
                "stored arena size differs from this build's plan (re-plan the blob: sqz recode)"
            ),
        }
    }
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut j = 0;
        while j < 8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            j += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320, init and xorout 0xFFFFFFFF), one 1 KiB
/// table in flash.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Reads the `i`-th little-endian u32 of `b`.
#[inline]
pub(crate) fn le_u32(b: &[u8], i: usize) -> Result<u32, Error> {
    let s = b.get(i * 4..i * 4 + 4).ok_or(Error::BadWeights)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads the `i`-th LE i32 of a validated slice (0 when out of range: validation rules it out).
#[inline(always)]
pub(crate) fn le_i32_at(b: &[u8], i: usize) -> i32 {
    match b.get(i * 4..i * 4 + 4) {
        Some(s) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Reads the `i`-th LE f32 of a validated slice (0.0 when out of range).
#[inline(always)]
pub(crate) fn le_f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_bits(le_i32_at(b, i) as u32)
}

/// Tensor dimensions of one image, NHWC with N = 1: `h x w x c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dims {
    /// Height.
    pub h: u16,
    /// Width.
    pub w: u16,
    /// Channels.
    pub c: u16,
}

impl Dims {
    /// `h * w * c`.
    pub fn len(&self) -> usize {
        self.h as usize * self.w as usize * self.c as usize
    }
    /// Whether the tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Padding `[top, left, bottom, right]`.
pub type Pad = [u8; 4];

/// A convolution (OHWI int8 weights, symmetric per output channel; i32 bias).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConvDesc<'a> {
    /// Output channels.
    pub out_channels: u16,
    /// Kernel `[kh, kw]`.
    pub kernel: [u8; 2],
    /// Stride `[sh, sw]`.
    pub stride: [u8; 2],
    /// Padding `[t, l, b, r]` (padded taps hold the input zero point).
    pub pad: Pad,
    /// Fused ReLU.
    pub relu: bool,
    /// Weights.
    #[serde(borrow)]
    pub weights: WeightsDesc<'a>,
    /// `out_channels` i32 LE biases, scale `in_scale * w_scale[c]`.
    #[serde(borrow)]
    pub bias: &'a [u8],
    /// `out_channels` f32 LE weight scales.
    #[serde(borrow)]
    pub w_scales: &'a [u8],
    /// `out_channels` f32 LE multipliers `fl(fl(w_scale[c] * in_scale) * fl(1 / out_scale))`.
    #[serde(borrow)]
    pub multipliers: &'a [u8],
    /// Output quantisation.
    pub out_quant: QuantParams,
}

/// Max pool (output keeps the input quantisation; padded taps are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxPoolDesc {
    /// Window `[kh, kw]`.
    pub kernel: [u8; 2],
    /// Stride `[sh, sw]`.
    pub stride: [u8; 2],
    /// Padding `[t, l, b, r]`.
    pub pad: Pad,
    /// Ceil mode (PyTorch rule: the last window must start inside the input or left padding).
    pub ceil_mode: bool,
}

/// Average pool, `count_include_pad` semantics (divisor `kh * kw`; padded taps add 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AvgPoolDesc {
    /// Window `[kh, kw]`.
    pub kernel: [u8; 2],
    /// Stride `[sh, sw]`.
    pub stride: [u8; 2],
    /// Padding `[t, l, b, r]`.
    pub pad: Pad,
    /// `pool_multiplier(in_scale, kh * kw, out_scale)`.
    pub multiplier: f32,
    /// Output quantisation.
    pub out_quant: QuantParams,
}

/// Global average pool to `1 x 1 x c`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GlobalAvgPoolDesc {
    /// `pool_multiplier(in_scale, h * w, out_scale)`.
    pub multiplier: f32,
    /// Output quantisation.
    pub out_quant: QuantParams,
}

/// A fire module's bypass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Bypass<'a> {
    /// No bypass: the output is the concat.
    None,
    /// `out = add(concat, input)` (needs `in_c == e1 + e3`).
    Simple {
        /// Quantisation of the sum.
        out_quant: QuantParams,
    },
    /// `out = add(concat, conv1x1(input))` (the conv has no ReLU).
    Complex {
        /// The 1x1 bypass convolution.
        #[serde(borrow)]
        conv: ConvDesc<'a>,
        /// Quantisation of the sum.
        out_quant: QuantParams,
    },
}

/// A fire module: squeeze 1x1 + ReLU, expand 1x1 + ReLU and expand 3x3 (pad 1) + ReLU written
/// into one concat (`e1` channels first), then the optional bypass add.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FireDesc<'a> {
    /// Squeeze 1x1.
    #[serde(borrow)]
    pub squeeze: ConvDesc<'a>,
    /// Expand 1x1 (its `out_quant` is the concat's).
    #[serde(borrow)]
    pub expand1: ConvDesc<'a>,
    /// Expand 3x3 (same `out_quant` as `expand1`).
    #[serde(borrow)]
    pub expand3: ConvDesc<'a>,
    /// Bypass.
    #[serde(borrow)]
    pub bypass: Bypass<'a>,
}

/// One layer of the sequential network.
#[allow(clippy::large_enum_variant)] // zero-copy view, never stored in bulk
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum LayerDesc<'a> {
    /// Convolution.
    Conv(#[serde(borrow)] ConvDesc<'a>),
    /// Max pool.
    MaxPool(MaxPoolDesc),
    /// Average pool.
    AvgPool(AvgPoolDesc),
    /// Global average pool.
    GlobalAvgPool(GlobalAvgPoolDesc),
    /// Fire module.
    Fire(#[serde(borrow)] FireDesc<'a>),
}

/// The fixed part of the description (first postcard value of the payload).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelHead {
    /// Input dimensions.
    pub input: Dims,
    /// Input quantisation.
    pub input_quant: QuantParams,
    /// Number of classes (logits).
    pub num_classes: u16,
    /// Number of [`LayerDesc`] values following.
    pub num_layers: u16,
    /// Arena bytes of the exporter's plan (must equal this build's plan; see
    /// `format::replan` for blobs from an older exporter).
    pub arena_len: u32,
}

/// A whole model description, for the encoder.
#[derive(Debug, Clone, Copy)]
pub struct ModelDesc<'a> {
    /// Model id stored in the header.
    pub model_id: u64,
    /// Input dimensions.
    pub input: Dims,
    /// Input quantisation.
    pub input_quant: QuantParams,
    /// Number of classes.
    pub num_classes: u16,
    /// The layers.
    pub layers: &'a [LayerDesc<'a>],
}

/// Splits a blob into `(model_id, payload)` after checking the header and the CRC.
pub(crate) fn split_header(bytes: &[u8]) -> Result<(u64, &[u8]), Error> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    if bytes[0..4] != MAGIC {
        return Err(Error::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    if bytes[6] != 0 || bytes[7] != 0 {
        return Err(Error::BadHeader);
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[16..24]);
    let rest = &bytes[HEADER_LEN..];
    if rest.len() < len {
        return Err(Error::Truncated);
    }
    if rest.len() > len {
        return Err(Error::TrailingBytes);
    }
    if crc32(&bytes[16..]) != crc {
        return Err(Error::BadChecksum);
    }
    Ok((u64::from_le_bytes(id), rest))
}

#[cfg(feature = "std")]
mod encode_impl {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// Serialises a model into a blob (header + postcard payload). The arena size is computed
    /// and stored; the result is checked with [`crate::Model::from_bytes`].
    pub fn encode(desc: &ModelDesc<'_>) -> Result<Vec<u8>, Error> {
        let build = |arena_len: u32| -> Result<Vec<u8>, Error> {
            let head = ModelHead {
                input: desc.input,
                input_quant: desc.input_quant,
                num_classes: desc.num_classes,
                num_layers: u16::try_from(desc.layers.len()).map_err(|_| Error::BadLayerCount)?,
                arena_len,
            };
            let mut payload = postcard::to_allocvec(&head).map_err(|_| Error::Malformed)?;
            for l in desc.layers {
                payload.extend(postcard::to_allocvec(l).map_err(|_| Error::Malformed)?);
            }
            let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
            out.extend_from_slice(&MAGIC);
            out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&desc.model_id.to_le_bytes());
            out.extend_from_slice(&payload);
            let crc = crc32(&out[16..]);
            out[12..16].copy_from_slice(&crc.to_le_bytes());
            Ok(out)
        };
        let arena =
            crate::model::plan_arena(desc.input, desc.input_quant, desc.layers.iter().copied())?;
        let blob = build(arena as u32)?;
        crate::Model::from_bytes(&blob)?;
        Ok(blob)
    }

    /// Re-encodes a blob whose stored arena size comes from another build's plan (an older
    /// exporter): the header and CRC are checked, the description is read as is and encoded
    /// again, so the new blob carries this build's exact plan and passes the full validation.
    /// A blob already planned by this build comes back byte for byte.
    pub fn replan(bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let (model_id, payload) = split_header(bytes)?;
        let (head, mut rest): (ModelHead, &[u8]) =
            postcard::take_from_bytes(payload).map_err(|_| Error::Malformed)?;
        if head.num_layers as usize > MAX_LAYERS {
            return Err(Error::BadLayerCount);
        }
        let mut layers = Vec::with_capacity(head.num_layers as usize);
        for _ in 0..head.num_layers {
            let (l, r): (LayerDesc<'_>, &[u8]) =
                postcard::take_from_bytes(rest).map_err(|_| Error::Malformed)?;
            layers.push(l);
            rest = r;
        }
        if !rest.is_empty() {
            return Err(Error::BadLayerCount);
        }
        encode(&ModelDesc {
            model_id,
            input: head.input,
            input_quant: head.input_quant,
            num_classes: head.num_classes,
            layers: &layers,
        })
    }
}

#[cfg(feature = "std")]
pub use encode_impl::{encode, replan};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
