//! A training run's directory and its checkpoints: `config.json`, `checkpoint/` (model,
//! optimiser, state; replaced atomically), `best.bpk`, `result.json`; reading a finished run
//! back (config and best weights) for the stages after training.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::Serialize;

use super::model::{SqueezeNet, SqueezeNetConfig};
use super::recipe::TrainConfig;
use crate::store::{load_weights_into, save_weights};

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    /// The checkpoint directory (replaced atomically).
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint")
    }
    /// Best weights.
    pub fn best(&self) -> PathBuf {
        self.0.join("best.bpk")
    }
    /// Final result.
    pub fn result(&self) -> PathBuf {
        self.0.join("result.json")
    }
}

/// Loads weights saved by [`save_weights`] into a network of shape `cfg`.
pub fn load_weights(cfg: &SqueezeNetConfig, path: &Path, device: &Device) -> Result<SqueezeNet> {
    load_weights_into(SqueezeNet::new(cfg, device), path)
}

/// Writes `model.bpk`, `optim.bpk` and `state.json` into `ck.tmp`, then swaps it in for `ck`
/// (the previous one briefly kept as `ck.old`): a kill at any moment leaves a whole checkpoint.
pub fn write_checkpoint_dir(
    ck: &Path,
    model: &SqueezeNet,
    optim: &ModuleOptimizer,
    state: &impl Serialize,
) -> Result<()> {
    let tmp = ck.with_extension("tmp");
    let old = ck.with_extension("old");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("while creating {}", tmp.display()))?;
    save_weights(model, &tmp.join("model.bpk"))?;
    optim
        .save(tmp.join("optim.bpk"))
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("while writing {}", tmp.join("optim.bpk").display()))?;
    std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
    let _ = std::fs::remove_dir_all(&old);
    if ck.exists() {
        std::fs::rename(ck, &old)?;
    }
    std::fs::rename(&tmp, ck).with_context(|| format!("while installing {}", ck.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Reads a run directory's config and best weights, with errors that say what is wrong.
pub fn load_run(run: &Path) -> Result<(TrainConfig, SqueezeNet)> {
    let cfg = read_run_config(run)?;
    let weights = run.join("best.bpk");
    let net = load_weights(&cfg.model, &weights, &Device::flex())?;
    Ok((cfg, net))
}

/// Reads a run directory's config.json.
pub fn read_run_config(run: &Path) -> Result<TrainConfig> {
    let cfg_path = run.join("config.json");
    serde_json::from_slice(
        &std::fs::read(&cfg_path)
            .with_context(|| format!("{}: not a training run (no config.json)", run.display()))?,
    )
    .with_context(|| format!("{}: corrupt or not a training config", cfg_path.display()))
}
