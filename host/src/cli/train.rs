//! `sqz train` and `sqz sweep`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::data::DataArgs;
use crate::train::device::ComputeDevice;
use crate::train::model::{Bypass, Version};
use crate::train::recipe::{Preset, RunOptions, TrainConfig};

/// `sqz train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    fit: super::compress::FitArgs,
    /// Recipe to start from; the flags below override its values.
    #[arg(long, value_enum, default_value = "default")]
    preset: Preset,
    /// Run directory (config.json, checkpoint/, best.bpk, metrics, plots).
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint (same flags required).
    #[arg(long)]
    resume: bool,
    /// Seed for initialisation, shuffling, augmentation and dropout.
    #[arg(long)]
    seed: Option<u64>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Label smoothing in [0, 1).
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// SqueezeNet version.
    #[arg(long, value_enum)]
    arch: Option<Version>,
    /// Bypass connections.
    #[arg(long, value_enum)]
    bypass: Option<Bypass>,
    /// Train without BatchNorm.
    #[arg(long)]
    no_batch_norm: bool,
    /// Stem: `small` (3x3 stride 1, for 28x28 inputs) or `paper` (the version's own stem).
    #[arg(long, value_enum)]
    stem: Option<crate::train::model::Stem>,
    /// Metaparameter base_e: expand width of the first fire module (paper: 128).
    #[arg(long, value_name = "N")]
    base_e: Option<usize>,
    /// Metaparameter incr_e: width added every `freq` fire modules (paper: 128).
    #[arg(long, value_name = "N")]
    incr_e: Option<usize>,
    /// Metaparameter SR: squeeze width / expand width (paper: 0.125).
    #[arg(long, value_name = "RATIO")]
    sr: Option<f64>,
    /// Metaparameter pct_3x3: fraction of the expand filters that are 3x3 (paper: 0.5).
    #[arg(long, value_name = "FRACTION")]
    pct_3x3: Option<f64>,
    /// Use only the first N training images.
    #[arg(long, value_name = "N")]
    train_limit: Option<usize>,
    /// Validation images taken from the end of the training set.
    #[arg(long, value_name = "N")]
    val_count: Option<usize>,
    /// Stop cleanly after N epochs of this invocation (resume later with --resume).
    #[arg(long, value_name = "N")]
    stop_after: Option<usize>,
    /// Where to train: cpu (burn's CPU backend, every build), cuda[:N] (builds with
    /// `--features cuda`) or wgpu[:N] (builds with `--features wgpu`).
    #[arg(
        long,
        value_name = "DEVICE",
        default_value = "cpu",
        conflicts_with = "devices"
    )]
    device: ComputeDevice,
    /// Train data-parallel on several devices, e.g. cuda:0,cuda:1: each takes an equal share
    /// of every batch; gradients are summed on the first, which keeps the network.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    devices: Vec<ComputeDevice>,
}

impl TrainArgs {
    /// Checks the flags (the recipe they make); errors say which flag is wrong.
    pub fn validate(&self) -> Result<()> {
        self.config().validate()
    }

    /// The recipe with the flags applied.
    pub fn config(&self) -> TrainConfig {
        let mut c = TrainConfig::preset(self.preset);
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = self.epochs {
            c.epochs = v;
        }
        if let Some(v) = self.batch_size {
            c.batch_size = v;
        }
        if let Some(v) = self.lr {
            c.lr = v;
        }
        if let Some(v) = self.weight_decay {
            c.weight_decay = v;
        }
        if let Some(v) = self.label_smoothing {
            c.label_smoothing = v;
        }
        if let Some(v) = self.arch {
            c.model.version = v;
        }
        if let Some(v) = self.bypass {
            c.model.bypass = v;
        }
        if self.no_batch_norm {
            c.model.batch_norm = false;
        }
        if let Some(v) = self.stem {
            c.model.stem = v;
        }
        if let Some(v) = self.base_e {
            c.model.meta.base_e = v;
        }
        if let Some(v) = self.incr_e {
            c.model.meta.incr_e = v;
        }
        if let Some(v) = self.sr {
            c.model.meta.sr = v;
        }
        if let Some(v) = self.pct_3x3 {
            c.model.meta.pct_3x3 = v;
        }
        if let Some(v) = self.val_count {
            c.val_count = v;
        }
        c.train_limit = self.train_limit.or(c.train_limit);
        c
    }
}

/// `sqz sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Output directory (sweep.md, sweep.json, sweep.png, one run per point).
    #[arg(long, default_value = "runs/sweep")]
    out: PathBuf,
    /// Epochs per point.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Training images per point.
    #[arg(long, default_value_t = 12_000)]
    train_limit: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `sqz train`.
pub fn train(args: TrainArgs) -> Result<()> {
    args.validate()?;
    let d = args.data.load()?;
    let mut cfg = args.config();
    cfg.fit_to(&d, args.stem.is_some());
    if args.val_count.is_none() {
        cfg.val_count = d.default_val_count();
    }
    cfg.validate()?;
    let budget = args.fit.budget();
    eprintln!(
        "{}",
        crate::compress::fit::precheck(&cfg.model, &d.train, &budget)?
    );
    anyhow::ensure!(
        cfg.val_count < d.train.len(),
        "--val-count {} leaves no training images",
        cfg.val_count
    );
    let (train_split, val) = d.train_val(cfg.val_count);
    let opts = RunOptions {
        resume: args.resume,
        stop_after: args.stop_after,
        skip_final: false,
        devices: if args.devices.is_empty() {
            vec![args.device]
        } else {
            args.devices.clone()
        },
    };
    let (_, state, result) =
        crate::train::run::train(&cfg, &train_split, &val, &d.test, &args.out, &opts)
            .with_context(|| format!("training into {}", args.out.display()))?;
    match result {
        Some(r) => println!(
            "best validation {:.2} % (epoch {}), test {:.2} %, {} parameters, {:.0} s training; reports in {}",
            100.0 * r.best_val.0,
            r.best_val.1,
            100.0 * r.test_acc,
            r.params,
            r.train_seconds,
            args.out.display()
        ),
        None => println!(
            "stopped after epoch {} of {}; continue with --resume",
            state.epochs_done, cfg.epochs
        ),
    }
    Ok(())
}

/// `sqz sweep`.
pub fn sweep(args: SweepArgs) -> Result<()> {
    let mut cfg = TrainConfig::preset(Preset::Default);
    cfg.epochs = args.epochs;
    cfg.train_limit = Some(args.train_limit);
    cfg.seed = args.seed;
    let d = args.data.load()?;
    cfg.fit_to(&d, false);
    cfg.val_count = d.default_val_count();
    let (train_split, val) = d.train_val(cfg.val_count);
    let points = crate::train::sweep::sweep(
        &cfg,
        &train_split,
        &val,
        &args.out,
        &crate::train::sweep::grid(),
    )?;
    for p in points {
        println!(
            "SR {:<5} pct_3x3 {:<4} params {:>9} val {:.2} %",
            p.sr,
            p.pct_3x3,
            p.params,
            100.0 * p.val_acc
        );
    }
    println!("table and chart in {}", args.out.display());
    Ok(())
}
