//! The model facade: the one place that names the `shared` model API. The kernels, decoders
//! and validation are built for what the embedded blob uses ([`BlobCaps`], from `build.rs`), so
//! the flash holds no code the blob does not need.

pub use shared::{Error, Model, quantize_input_u8};

use shared::kernels::{BestDot, Capped};

use crate::config::BlobCaps;

/// The target's kernels, restricted to what the embedded blob uses.
type Kernel = Capped<BestDot, BlobCaps>;

/// Validates `blob` for this build: everything `Model::from_bytes` checks, and that the blob
/// needs no decoder or kernel the build left out.
pub fn validate(blob: &[u8]) -> Result<Model<'_>, Error> {
    Model::from_bytes_for::<BlobCaps>(blob)
}

/// Runs the network (`shared::run` on this build's kernels).
pub fn run(model: &Model<'_>, input: &[i8], arena: &mut [u8], logits: &mut [i8]) {
    shared::run::run_fused_with::<Kernel>(model, input, arena, logits)
}

/// Input `[h, w, c]` of `model`.
pub fn input_dims(model: &Model<'_>) -> [u16; 3] {
    let d = model.input_dims();
    [d.h, d.w, d.c]
}
