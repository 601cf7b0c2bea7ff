//! The desktop half of the toolkit, one folder per stage the data walks through:
//! [`data`] (Fashion-MNIST, images) -> [`train`] (the SqueezeNet family in burn, training,
//! reports, sweep) -> [`compress`] (pruning and weight sharing with fine-tuning, BatchNorm
//! folding, int8, coding) -> [`export`] (blob, ONNX, golden vectors, manifest) -> [`verify`]
//! (parity with tract, ONNX import) -> [`link`] (the serial link to a device). [`pipeline`] runs
//! them in order; [`cli`] is the `sqz` command line over all of them.
//!
//! Helpers every stage uses live below them: [`store`] (atomic writes, weight files, digests),
//! [`eval`] (batching and evaluation) and [`chart`] (PNG charts).

pub mod chart;
pub mod cli;
pub mod compress;
pub mod data;
pub mod eval;
pub mod export;
pub mod link;
pub mod pipeline;
pub mod store;
pub mod train;
pub mod verify;
