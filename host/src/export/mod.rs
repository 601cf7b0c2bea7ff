//! What leaves the toolkit: the deployable files of a model ([`files`]: the blob, the float
//! ONNX, the quantised ONNX in QLinearConv and QDQ form, and the outputs of a compression run),
//! the ONNX graphs themselves ([`onnx`]), tract as the engine that runs them ([`tract`]), the
//! golden vectors for `shared`'s tests ([`golden`]), and `MANIFEST.json` ([`manifest`]).

pub mod files;
pub mod golden;
pub mod manifest;
pub mod onnx;
pub mod tract;

pub use files::{export, export_files, write_outputs};
pub use manifest::{
    Manifest, ManifestFacts, ManifestFile, check_manifest, write_manifest, write_manifest_with,
};
