//! The model blob: header, postcard description, zero-copy borrowing, encoder (`std`).
//!
//! See the crate documentation (README.md) for the byte-by-byte layout.

use serde::{Deserialize, Serialize};

pub use crate::crc::crc32;
pub use crate::dims::{Dims, Pad};
pub use crate::error::{Error, MAX_LAYERS};
pub use crate::quant::{AddRequant, Multiplier, QuantParams};
pub use crate::weights::{Values, WeightsDesc};

/// Blob magic.
pub const MAGIC: [u8; 4] = *b"SQZB";
/// Current format version.
pub const FORMAT_VERSION: u16 = 2;
/// Header length in bytes.
pub const HEADER_LEN: usize = 24;

/// A convolution (OHWI int8 weights, symmetric per output channel; compact bias and integer
/// requantisation).
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
    /// `out_channels` i16 LE biases: channel `c` adds `bias[c] << bias_shift` to its
    /// accumulator (units of `in_scale * w_scale[c]`).
    #[serde(borrow)]
    pub bias: &'a [u8],
    /// Left shift of the biases (`0..=quant::BIAS_SHIFT_MAX`).
    pub bias_shift: u8,
    /// `out_channels` u16 LE multipliers `m[c]`: `q = zp + floor((acc * m[c] + 2^(shift-1)) /
    /// 2^shift)`, clamped (see `quant`).
    #[serde(borrow)]
    pub multipliers: &'a [u8],
    /// The layer's shift (`quant::SHIFT_MIN..=quant::SHIFT_MAX`).
    pub shift: u8,
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
    /// `pool_multiplier(in_scale, kh * kw, out_scale)` as integers.
    pub multiplier: Multiplier,
    /// Output quantisation.
    pub out_quant: QuantParams,
}

/// Global average pool to `1 x 1 x c`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GlobalAvgPoolDesc {
    /// `pool_multiplier(in_scale, h * w, out_scale)` as integers.
    pub multiplier: Multiplier,
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
        /// The add's integer multipliers (concat, input).
        add: AddRequant,
        /// Quantisation of the sum.
        out_quant: QuantParams,
    },
    /// `out = add(concat, conv1x1(input))` (the conv has no ReLU).
    Complex {
        /// The 1x1 bypass convolution.
        #[serde(borrow)]
        conv: ConvDesc<'a>,
        /// The add's integer multipliers (concat, bypass conv).
        add: AddRequant,
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

pub(crate) mod read;

#[cfg(feature = "std")]
mod encode;
#[cfg(feature = "std")]
pub use encode::{encode, replan};
