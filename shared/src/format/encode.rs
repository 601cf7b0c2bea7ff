//! The encoder (`std`): a [`ModelDesc`] to blob bytes, and re-planning an older blob.

extern crate std;
use std::vec::Vec;

use super::read::take_desc;
use super::{FORMAT_VERSION, HEADER_LEN, LayerDesc, MAGIC, ModelDesc, ModelHead, split_header};
use crate::crc::crc32;
use crate::error::{Error, MAX_LAYERS};
use crate::model::Model;
use crate::plan::plan_arena;

/// Serialises a model into a blob (header + postcard payload). The arena size is computed
/// and stored; the result is checked with [`Model::from_bytes`].
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
    let arena = plan_arena(desc.input, desc.input_quant, desc.layers.iter().copied())?;
    let blob = build(arena as u32)?;
    Model::from_bytes(&blob)?;
    Ok(blob)
}

/// Re-encodes a blob whose stored arena size comes from another build's plan (an older
/// exporter): the header and CRC are checked, the description is read as is and encoded
/// again, so the new blob carries this build's exact plan and passes the full validation.
/// A blob already planned by this build comes back byte for byte.
pub fn replan(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let (model_id, payload) = split_header(bytes)?;
    let (head, mut rest): (ModelHead, &[u8]) = take_desc(payload)?;
    if head.num_layers as usize > MAX_LAYERS {
        return Err(Error::BadLayerCount);
    }
    let mut layers = Vec::with_capacity(head.num_layers as usize);
    for _ in 0..head.num_layers {
        let (l, r): (LayerDesc<'_>, &[u8]) = take_desc(rest)?;
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
