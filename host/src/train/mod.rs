//! Training: the SqueezeNet family in burn ([`model`]), the recipes ([`recipe`]: the seed
//! notebook's preset and our default), the training loop ([`run`]), its run directory and
//! checkpoints ([`checkpoint`]), its reports ([`report`]), and the paper's design-space sweep
//! ([`sweep`]). On the CPU the network trains channels-last ([`nhwc`]) with ops of our own
//! ([`cpu_conv`], [`cpu_ops`], [`dropout`]), AdamW fused ([`adamw`]) and freed buffers kept
//! for reuse ([`memory`]); GPUs are picked in [`device`].
//!
//! Determinism: all randomness of epoch `e` (shuffle, augmentation, dropout) is drawn from
//! generators seeded by `(seed, e)`, so a run resumed from the checkpoint after epoch `e` replays
//! exactly what the uninterrupted run would have done.
//!
//! A run directory holds `config.json`, `checkpoint/` (model, optimiser, state; replaced
//! atomically each epoch), `best.bpk` (best weights by validation accuracy), `metrics.csv`,
//! `metrics.json`, `curves.png`, `confusion.png` and, at the end, `result.json` with the one test
//! evaluation.

pub mod adamw;
pub mod checkpoint;
pub mod cpu_conv;
pub mod cpu_ops;
pub mod device;
pub mod dropout;
pub mod memory;
pub mod model;
pub mod nhwc;
pub mod recipe;
pub mod report;
pub mod run;
pub mod sweep;

pub use checkpoint::{RunDir, load_run, load_weights, read_run_config, write_checkpoint_dir};
pub use model::{SqueezeNet, SqueezeNetConfig};
pub use recipe::{
    EpochMetrics, OptimizerKind, Preset, RunOptions, Schedule, TrainConfig, TrainResult, TrainState,
};
pub use run::{rng_for_epoch, train};
