//! The desktop half of the toolkit: Fashion-MNIST loading, the SqueezeNet family in burn,
//! training, reports. The `sqz` binary is a thin CLI over this library (see `cli`).

pub mod cli;
pub mod data;
pub mod model;
pub mod progress;
pub mod report;
pub mod sweep;
pub mod train;
