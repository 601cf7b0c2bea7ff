#![no_std]
#![warn(missing_docs)]
#![doc = include_str!("../README.md")]

#[cfg(feature = "std")]
extern crate std;

mod bytes;
pub mod caps;
pub mod crc;
pub mod dims;
pub mod error;
pub mod format;
pub mod kernels;
pub mod model;
mod plan;
pub mod protocol;
pub mod quant;
pub mod run;
pub mod weights;
pub mod wire;

#[cfg(feature = "std")]
pub mod encode;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use dims::Dims;
pub use error::Error;
pub use model::{LayerInfo, Model};
pub use quant::QuantParams;
pub use run::{SubOp, run, run_observed};

/// Index of a layer in the network.
pub type LayerIndex = u16;

/// Quantises raw 8-bit pixels (`pixels / 255.0` as the host feeds tract) into the model's input
/// (`out.len() >= model.input_len()`): every valid model uses `quant::INPUT_QUANT`, so this is
/// `pixel - 128`.
pub fn quantize_input_u8(_model: &Model<'_>, pixels: &[u8], out: &mut [i8]) {
    quant::quantize_input_u8(pixels, out)
}
