//! Checkpoints of the fine-tuning: after every epoch of masked fine-tuning, the network, the
//! optimiser and the progress so far, replaced atomically; what a resumed run checks before it
//! trusts one (same settings, same trained weights).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::recipe::FinetuneConfig;
use super::retrain::{FinetuneStage, fresh_optimizer};
use crate::store::TrainedWeights;
use crate::train::model::{SqueezeNet, SqueezeNetConfig};

/// Where [`finetune`] keeps its progress. After every epoch of masked fine-tuning it writes
/// the network, the optimiser and the stages so far to `dir` (replaced atomically), so a killed
/// run continues from its last epoch and replays exactly the steps it would have taken.
/// The centroid stage (the last `share_epochs`) is not checkpointed.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Continue from `dir`; without it, an existing `dir` is an error (nothing is overwritten).
    pub resume: bool,
    /// Stop with [`Stopped`] after this many epochs of this invocation (checkpoint written);
    /// for splitting a run across sessions, and for tests.
    pub stop_after: Option<usize>,
}

impl Checkpointing {
    /// Refuses, before any evaluation or training, a checkpoint that cannot be used as asked:
    /// with `resume`, a missing, corrupt or foreign one (other settings, other `weights`);
    /// without it, an interrupted run that would be overwritten.
    pub fn check(&self, cfg: &FinetuneConfig, weights: &TrainedWeights) -> Result<()> {
        if self.resume {
            read_state(&self.dir, cfg, &weights.sha256).map(|_| ())
        } else {
            self.refuse_overwrite()
        }
    }

    /// Removes the checkpoint once the run's outputs are written (nothing left to resume).
    pub fn remove(&self) -> Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .with_context(|| format!("while removing {}", self.dir.display()))?;
        }
        Ok(())
    }

    pub(crate) fn refuse_overwrite(&self) -> Result<()> {
        if self.dir.exists() {
            bail!(
                "{} holds an interrupted compression; pass --resume to continue it, or delete it to start over",
                self.dir.display()
            );
        }
        Ok(())
    }
}

/// The run stopped cleanly where [`Checkpointing::stop_after`] asked; continue with `resume`.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped after {epochs} fine-tuning epoch(s) (round {round} of {rounds}); continue with --resume"
)]
pub struct Stopped {
    /// Epochs run by this invocation.
    pub epochs: usize,
    /// The pruning round reached.
    pub round: usize,
    /// Pruning rounds in all.
    pub rounds: usize,
}

/// What a fine-tuning checkpoint records beside the network and the optimiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// The settings; a resume must use the same.
    pub(crate) config: FinetuneConfig,
    /// SHA-256 of the trained weights the run started from.
    pub(crate) source_sha256: String,
    /// The pruning round in progress (1-based).
    pub(crate) round: usize,
    /// Its epochs completed.
    pub(crate) epochs_done: usize,
    /// Its optimiser steps taken.
    pub(crate) steps: usize,
    /// Seconds spent in it so far (all invocations).
    pub(crate) round_seconds: f64,
    /// The stages completed before it.
    pub(crate) stages: Vec<FinetuneStage>,
}

/// Reads a checkpoint's state.json and checks it belongs to this run.
pub(crate) fn read_state(ck: &Path, cfg: &FinetuneConfig, source_sha256: &str) -> Result<Progress> {
    let state = ck.join("state.json");
    let bytes = std::fs::read(&state).with_context(|| {
        format!(
            "--resume: no interrupted compression to continue in {} (reading state.json)",
            ck.display()
        )
    })?;
    let p: Progress = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: corrupt fine-tuning checkpoint", state.display()))?;
    if &p.config != cfg {
        bail!(
            "--resume: {} was made with other fine-tuning settings; resume with the same flags",
            ck.display()
        );
    }
    if p.source_sha256 != source_sha256 {
        bail!(
            "--resume: {} started from other trained weights (the run's best.bpk changed)",
            ck.display()
        );
    }
    if p.round == 0 || p.round > cfg.prune_rounds || p.epochs_done > cfg.prune_epochs {
        bail!(
            "{}: round {} epoch {} is outside this run's {} rounds of {} epochs",
            state.display(),
            p.round,
            p.epochs_done,
            cfg.prune_rounds,
            cfg.prune_epochs
        );
    }
    Ok(p)
}

/// Reads a checkpoint written by [`finetune`]: its state, network and optimiser.
pub(crate) fn read_progress(
    ck: &Path,
    cfg: &FinetuneConfig,
    source_sha256: &str,
    model_cfg: &SqueezeNetConfig,
    device: &Device,
) -> Result<(Progress, SqueezeNet, ModuleOptimizer)> {
    let p = read_state(ck, cfg, source_sha256)?;
    let net = crate::train::checkpoint::load_weights(model_cfg, &ck.join("model.bpk"), device)?;
    let optim = fresh_optimizer(cfg)
        .load(ck.join("optim.bpk"))
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("while reading {}", ck.join("optim.bpk").display()))?;
    Ok((p, net, optim))
}
