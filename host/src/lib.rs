//! The desktop half of the toolkit: Fashion-MNIST loading, the SqueezeNet family in burn,
//! training, reports. The `sqz` binary is a thin CLI over this library (see `cli`).

pub mod cli;
pub mod compress;
pub mod data;
pub mod device;
pub mod export;
pub mod finetune;
pub mod fold;
pub mod golden;
pub mod images;
pub mod import;
pub mod model;
pub mod onnx;
pub mod pipeline;
pub mod progress;
pub mod quantize;
pub mod recode;
pub mod report;
pub mod sensitivity;
pub mod sharing;
pub mod shipped;
pub mod sweep;
pub mod train;
pub mod verify;
