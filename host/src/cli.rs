//! The `sqz` command line: argument parsing and wiring only; each command calls one stage.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::data::{CLASS_NAMES, FashionMnist};
use crate::model::{Bypass, Version};
use crate::train::{Preset, RunOptions, TrainConfig};

/// SqueezeNet on a microcontroller: train on Fashion-MNIST, compress, run in int8 on a
/// Cortex-M4, and check every step against tract.
#[derive(Debug, Parser)]
#[command(name = "sqz", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where Fashion-MNIST comes from.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Directory with the four IDX files (gzipped or not). Default: $FASHION_MNIST_DIR,
    /// then data/fashion-mnist, then ../shared/data/fashion-mnist, then a verified download.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    fn load(&self) -> Result<FashionMnist> {
        let d = FashionMnist::load(self.data.as_deref())?;
        eprintln!("data: {} ({} train, {} test)", d.dir.display(), d.train.len(), d.test.len());
        Ok(d)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find, verify and summarise the data set.
    Data(DataArgs),
    /// Train a SqueezeNet on Fashion-MNIST (progress bar, checkpoint each epoch, --resume).
    Train(TrainArgs),
    /// The paper's SR / pct_3x3 design-space sweep on a reduced budget.
    Sweep(SweepArgs),
}

/// `sqz train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
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
    /// Use only the first N training images.
    #[arg(long, value_name = "N")]
    train_limit: Option<usize>,
    /// Validation images taken from the end of the training set.
    #[arg(long, value_name = "N")]
    val_count: Option<usize>,
    /// Stop cleanly after N epochs of this invocation (resume later with --resume).
    #[arg(long, value_name = "N")]
    stop_after: Option<usize>,
}

impl TrainArgs {
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Data(args) => {
            let d = args.load()?;
            for (name, split) in [("train", &d.train), ("test", &d.test)] {
                println!("{name}: {} images", split.len());
                for (c, n) in split.class_counts().iter().enumerate() {
                    println!("  {c} {:<12} {n}", CLASS_NAMES[c]);
                }
            }
            Ok(())
        }
        Command::Train(args) => {
            let cfg = args.config();
            cfg.validate()?;
            let d = args.data.load()?;
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
            };
            let (_, state, result) = crate::train::train(&cfg, &train_split, &val, &d.test, &args.out, &opts)
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
        Command::Sweep(args) => {
            let mut cfg = TrainConfig::preset(Preset::Default);
            cfg.epochs = args.epochs;
            cfg.train_limit = Some(args.train_limit);
            cfg.seed = args.seed;
            let d = args.data.load()?;
            let (train_split, val) = d.train_val(cfg.val_count);
            let points = crate::sweep::sweep(&cfg, &train_split, &val, &args.out, &crate::sweep::grid())?;
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
    }
}
