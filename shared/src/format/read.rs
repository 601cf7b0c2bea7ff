//! Reading the blob description without serde: each type's fields in the order its serde
//! derive writes them (see `wire`). A change to a type's fields must change its reader here;
//! the tests below compare both readers on real and damaged blobs.

use super::{
    AvgPoolDesc, Bypass, ConvDesc, FireDesc, GlobalAvgPoolDesc, LayerDesc, MaxPoolDesc, ModelHead,
};
use crate::dims::Dims;
use crate::error::Error;
use crate::quant::{AddRequant, Multiplier, QuantParams};
use crate::weights::{Values, WeightsDesc};
use crate::wire::{Decode, ReadError, Reader, take};

/// Reads one `T` from the front of a description; a description that does not read is
/// [`Error::Malformed`].
pub(crate) fn take_desc<'a, T: Decode<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8]), Error> {
    take(bytes).map_err(|_| Error::Malformed)
}

impl Decode<'_> for Dims {
    fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(Dims {
            h: r.u16()?,
            w: r.u16()?,
            c: r.u16()?,
        })
    }
}

impl Decode<'_> for QuantParams {
    fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(QuantParams {
            scale: r.f32()?,
            zero_point: r.i8()?,
        })
    }
}

impl Decode<'_> for Multiplier {
    fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(Multiplier {
            m: r.u16()?,
            shift: r.byte()?,
        })
    }
}

impl Decode<'_> for AddRequant {
    fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(AddRequant {
            a: r.u16()?,
            b: r.u16()?,
            shift: r.byte()?,
        })
    }
}

impl Decode<'_> for ModelHead {
    fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(ModelHead {
            input: Dims::decode(r)?,
            input_quant: QuantParams::decode(r)?,
            num_classes: r.u16()?,
            num_layers: r.u16()?,
            arena_len: r.u32()?,
        })
    }
}

impl<'a> Decode<'a> for Values<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ReadError> {
        match r.u32()? {
            0 => Ok(Values::Raw),
            1 => Ok(Values::Codebook {
                centroids: r.bytes()?,
                bits: r.byte()?,
            }),
            _ => Err(ReadError::Bad),
        }
    }
}

impl<'a> Decode<'a> for WeightsDesc<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ReadError> {
        Ok(match r.u32()? {
            0 => WeightsDesc::Dense { data: r.bytes()? },
            1 => WeightsDesc::Codebook {
                centroids: r.bytes()?,
                bits: r.byte()?,
                indices: r.bytes()?,
            },
            2 => WeightsDesc::Sparse {
                values: Values::decode(r)?,
                gap_bits: r.byte()?,
                row_ptr: r.bytes()?,
                entries: r.bytes()?,
            },
            3 => WeightsDesc::HuffSparse {
                values: Values::decode(r)?,
                gap_lengths: r.bytes()?,
                value_lengths: r.bytes()?,
                row_ptr: r.bytes()?,
                row_bits: r.bytes()?,
                stream: r.bytes()?,
            },
            4 => WeightsDesc::HuffCodebook {
                centroids: r.bytes()?,
                lengths: r.bytes()?,
                row_bits: r.bytes()?,
                stream: r.bytes()?,
            },
            _ => return Err(ReadError::Bad),
        })
    }
}

impl<'a> Decode<'a> for ConvDesc<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ReadError> {
        Ok(ConvDesc {
            out_channels: r.u16()?,
            kernel: r.array()?,
            stride: r.array()?,
            pad: r.array()?,
            relu: r.bool()?,
            weights: WeightsDesc::decode(r)?,
            bias: r.bytes()?,
            bias_shift: r.byte()?,
            multipliers: r.bytes()?,
            shift: r.byte()?,
            out_quant: QuantParams::decode(r)?,
        })
    }
}

impl Decode<'_> for MaxPoolDesc {
    fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(MaxPoolDesc {
            kernel: r.array()?,
            stride: r.array()?,
            pad: r.array()?,
            ceil_mode: r.bool()?,
        })
    }
}

impl Decode<'_> for AvgPoolDesc {
    fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(AvgPoolDesc {
            kernel: r.array()?,
            stride: r.array()?,
            pad: r.array()?,
            multiplier: Multiplier::decode(r)?,
            out_quant: QuantParams::decode(r)?,
        })
    }
}

impl Decode<'_> for GlobalAvgPoolDesc {
    fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(GlobalAvgPoolDesc {
            multiplier: Multiplier::decode(r)?,
            out_quant: QuantParams::decode(r)?,
        })
    }
}

impl<'a> Decode<'a> for Bypass<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ReadError> {
        Ok(match r.u32()? {
            0 => Bypass::None,
            1 => Bypass::Simple {
                add: AddRequant::decode(r)?,
                out_quant: QuantParams::decode(r)?,
            },
            2 => Bypass::Complex {
                conv: ConvDesc::decode(r)?,
                add: AddRequant::decode(r)?,
                out_quant: QuantParams::decode(r)?,
            },
            _ => return Err(ReadError::Bad),
        })
    }
}

impl<'a> Decode<'a> for FireDesc<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ReadError> {
        Ok(FireDesc {
            squeeze: ConvDesc::decode(r)?,
            expand1: ConvDesc::decode(r)?,
            expand3: ConvDesc::decode(r)?,
            bypass: Bypass::decode(r)?,
        })
    }
}

impl<'a> Decode<'a> for LayerDesc<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ReadError> {
        Ok(match r.u32()? {
            0 => LayerDesc::Conv(ConvDesc::decode(r)?),
            1 => LayerDesc::MaxPool(MaxPoolDesc::decode(r)?),
            2 => LayerDesc::AvgPool(AvgPoolDesc::decode(r)?),
            3 => LayerDesc::GlobalAvgPool(GlobalAvgPoolDesc::decode(r)?),
            4 => LayerDesc::Fire(FireDesc::decode(r)?),
            _ => return Err(ReadError::Bad),
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::format::{HEADER_LEN, split_header};
    use crate::testkit::{example, squeezenet};

    /// Both readers on the same bytes: the same value and rest, or both refuse.
    fn same_reading(payload: &[u8]) {
        let theirs = postcard::take_from_bytes::<ModelHead>(payload).ok();
        let ours = take::<ModelHead>(payload).ok();
        assert_eq!(ours, theirs);
        let Some((_, mut rest)) = ours else { return };
        while !rest.is_empty() {
            let theirs = postcard::take_from_bytes::<LayerDesc<'_>>(rest).ok();
            let ours = take::<LayerDesc<'_>>(rest).ok();
            assert_eq!(ours, theirs);
            match ours {
                Some((_, r)) => rest = r,
                None => return,
            }
        }
    }

    /// The example network (every layer kind and bypass) and the SqueezeNet-shaped one in
    /// each weight encoding; built once.
    fn example_blobs() -> &'static [Vec<u8>] {
        static BLOBS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        BLOBS.get_or_init(|| {
            let mut blobs: Vec<Vec<u8>> = example::ENCS
                .iter()
                .map(|&enc| squeezenet::blob(3, 10, enc))
                .collect();
            blobs.push(example::blob(5));
            blobs
        })
    }

    #[test]
    fn example_blobs_read_as_postcard_reads_them() {
        for blob in example_blobs() {
            let (_, payload) = split_header(blob).unwrap();
            same_reading(payload);
        }
    }

    proptest! {
        /// Heads of any field values (the examples' inputs are square) read back as written.
        #[test]
        fn any_head_reads_back(h in any::<u16>(), w in any::<u16>(), c in any::<u16>(), scale in any::<f32>(),
                               zp in any::<i8>(), classes in any::<u16>(), layers in any::<u16>(), arena in any::<u32>()) {
            let head = ModelHead {
                input: Dims { h, w, c },
                input_quant: QuantParams { scale, zero_point: zp },
                num_classes: classes,
                num_layers: layers,
                arena_len: arena,
            };
            let bytes = postcard::to_allocvec(&head).unwrap();
            let (back, rest) = take::<ModelHead>(&bytes).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!(postcard::to_allocvec(&back).unwrap(), bytes);
        }

        /// Damaged descriptions: a few bytes overwritten, or the payload cut short.
        #[test]
        fn damaged_descriptions_read_as_postcard_reads_them(
            which in any::<prop::sample::Index>(),
            hits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let blobs = example_blobs();
            let blob = &blobs[which.index(blobs.len())];
            let mut payload = blob[HEADER_LEN..].to_vec();
            for (at, b) in hits {
                let i = at.index(payload.len());
                payload[i] = b;
            }
            same_reading(&payload);
            same_reading(&payload[..cut.index(payload.len())]);
        }
    }
}
