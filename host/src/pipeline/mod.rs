//! The stages in order: data -> train -> compress (and export) -> verify -> device, in one
//! command ([`run`]: `sqz pipeline`), and the main job on the shipped model in `models/`
//! ([`shipped`]: `sqz shipped`).

pub mod run;
pub mod shipped;

pub use run::{PipelineOptions, StageLine, recipe};
