//! Compression, from a trained run to a blob, in the order of the Deep Compression paper, each
//! stage evaluated ([`run`]: `sqz compress`):
//!
//! 1. pruning with fine-tuning ([`prune`] masks, [`retrain`] loop, [`resume`] checkpoints) and
//!    weight sharing with centroid fine-tuning ([`centroids`]), driven by [`finetune`]; or,
//!    post-training, magnitude pruning and k-means sharing of the int8 weights ([`sharing`]);
//!    both cluster with the one k-means of [`kmeans`];
//! 2. BatchNorm folded into the convs ([`fold`]);
//! 3. int8: per-channel weight scales, activation ranges calibrated on training images
//!    ([`quantize`]);
//! 4. storage: the smallest of codebook, Huffman codebook, sparse and Huffman sparse per conv, or
//!    the fastest to decode ([`sharing`], [`recode`]); [`blob`] reads a blob back; [`upgrade`]
//!    carries a blob of the f32-requantisation format over to the integer one.
//!
//! [`fit`] says whether a model fits a board's flash and RAM (before training and after
//! compression). [`recipe`] holds the settings (and the shipped model's recipe), [`layers`] the network's convs
//! as these stages see them, and [`sensitivity`] the paper's per-layer pruning sensitivity, a
//! guide for the per-layer targets.

pub mod blob;
pub mod centroids;
pub mod finetune;
pub mod fit;
pub mod fold;
pub mod kmeans;
pub mod layers;
pub mod prune;
pub mod quantize;
pub mod recipe;
pub mod recode;
pub mod resume;
pub mod retrain;
pub mod run;
pub mod sensitivity;
pub mod sharing;
pub mod upgrade;

pub use blob::{BlobBreakdown, blob_breakdown, decoded_weights};
pub use finetune::{Finetuned, finetune};
pub use fold::FloatNet;
pub use layers::conv_names;
pub use recipe::{CompressConfig, FinetuneConfig, LayerSetting, PruneSchedule, layer_targets};
pub use recode::{Encoding, recode};
pub use resume::{Checkpointing, Stopped};
pub use run::{CompressReport, Compressed, StageReport, compress, compress_resumable};
pub use sharing::SharingConfig;
