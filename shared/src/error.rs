//! [`Error`]: why a blob was rejected.

use core::fmt;

/// Most layers a model may have.
pub const MAX_LAYERS: usize = 64;

/// Why a blob was rejected by `Model::from_bytes`.
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
