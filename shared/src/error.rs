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
    /// The blob needs a weight decoder, layer kind or kernel this build left out (a firmware
    /// built for another blob: see `caps`).
    NotBuiltIn,
}

/// How the firmware's boot refusal names a blob error: this, then [`Error::code`] (then
/// ` at layer L`, ` version V`); the host adds [`Error::summary_of_code`].
pub const REFUSAL_PREFIX: &str = "invalid blob: error ";

impl Error {
    /// The layer the error names, if any.
    pub fn layer(&self) -> Option<u16> {
        match self {
            Error::BadShape(l) | Error::BadQuant(l) | Error::BadLayerWeights(l) => Some(*l),
            _ => None,
        }
    }

    /// A stable number for the kind of error (1..=17; the layer and version apart): what the
    /// firmware reports instead of the text, which [`Error::summary_of_code`] gives back on
    /// the host.
    pub fn code(&self) -> u8 {
        match self {
            Error::Truncated => 1,
            Error::TrailingBytes => 2,
            Error::BadMagic => 3,
            Error::UnsupportedVersion(_) => 4,
            Error::BadHeader => 5,
            Error::BadChecksum => 6,
            Error::Malformed => 7,
            Error::BadLayerCount => 8,
            Error::BadShape(_) => 9,
            Error::BadQuant(_) => 10,
            Error::BadWeights => 11,
            Error::BadHuffman => 12,
            Error::BadLayerWeights(_) => 13,
            Error::BadOutput => 14,
            Error::TooLarge => 15,
            Error::BadArena => 16,
            Error::NotBuiltIn => 17,
        }
    }

    /// [`Error::summary`] of the error with [`Error::code`] `code`.
    pub fn summary_of_code(code: u8) -> Option<&'static str> {
        const ALL: [Error; 17] = [
            Error::Truncated,
            Error::TrailingBytes,
            Error::BadMagic,
            Error::UnsupportedVersion(0),
            Error::BadHeader,
            Error::BadChecksum,
            Error::Malformed,
            Error::BadLayerCount,
            Error::BadShape(0),
            Error::BadQuant(0),
            Error::BadWeights,
            Error::BadHuffman,
            Error::BadLayerWeights(0),
            Error::BadOutput,
            Error::TooLarge,
            Error::BadArena,
            Error::NotBuiltIn,
        ];
        ALL.iter().find(|e| e.code() == code).map(Error::summary)
    }

    /// What went wrong, without the layer (see [`Error::layer`]) or the version number: a fixed
    /// text.
    pub fn summary(&self) -> &'static str {
        match self {
            Error::Truncated => "blob truncated",
            Error::TrailingBytes => "bytes after the blob payload",
            Error::BadMagic => "not a model blob (bad magic)",
            Error::UnsupportedVersion(_) => "unsupported blob format version",
            Error::BadHeader => "reserved header field not zero",
            Error::BadChecksum => "payload CRC-32 mismatch",
            Error::Malformed => "model description does not parse",
            Error::BadLayerCount => "bad layer count or trailing payload",
            Error::BadShape(_) => "invalid or non-chaining shape",
            Error::BadQuant(_) => "invalid quantisation parameters",
            Error::BadWeights => "malformed weight encoding",
            Error::BadHuffman => "malformed Huffman table or stream",
            Error::BadLayerWeights(_) => "malformed weights",
            Error::BadOutput => "network output is not 1x1xnum_classes",
            Error::TooLarge => "size overflow",
            Error::NotBuiltIn => {
                "needs a decoder or kernel this firmware was built without (build it for this blob)"
            }
            Error::BadArena => {
                "stored arena size differs from this build's plan (re-plan the blob: sqz recode)"
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.layer()) {
            (Error::UnsupportedVersion(v), _) => write!(f, "{} {v}", self.summary()),
            (_, Some(l)) => write!(f, "layer {l}: {}", self.summary()),
            _ => f.write_str(self.summary()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_names_its_summary() {
        let mut seen = [false; 18];
        for code in 1..=17u8 {
            let summary = Error::summary_of_code(code).expect("codes 1..=17");
            assert!(!seen[code as usize]);
            seen[code as usize] = true;
            assert!(!summary.is_empty());
        }
        assert_eq!(Error::summary_of_code(0), None);
        assert_eq!(Error::summary_of_code(18), None);
        let e = Error::BadLayerWeights(3);
        assert_eq!(Error::summary_of_code(e.code()), Some(e.summary()));
    }
}
