//! `sqz pipeline`: data -> train -> compress (and export) -> verify -> device, in one command.
//!
//! Its defaults are the recipe that made the shipped model in `models/`
//! ([`TrainConfig::preset`] `default` and [`CompressConfig::shipped`]), except that training
//! now runs 20 epochs where the shipped network had 14; `--quick` runs the same stages on a
//! small budget. A small folder of pictures gets proportionally more epochs. Each stage writes
//! into its own directory under `--out`, so a killed pipeline resumes training from its last
//! checkpoint with `--resume`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};

use crate::compress::fit::{Budget, Footprint, precheck};
use crate::compress::recipe::{CompressConfig, FinetuneConfig};
use crate::compress::resume::Checkpointing;
use crate::compress::run::compress_resumable;
use crate::data::Dataset;
use crate::export::files::write_outputs;
use crate::export::manifest::write_manifest;
use crate::link::{DeviceLink, check_same_model, eval, host_reference};
use crate::store::write_atomic;
use crate::train::recipe::{Preset, RunOptions, TrainConfig, TrainResult};
use crate::train::run::train;
use crate::verify::parity::run_all;

/// What to run.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Output root: `train/`, `model/`, `summary.md`.
    pub out: PathBuf,
    /// Small budget (minutes) instead of the shipped recipe.
    pub quick: bool,
    /// Continue training from `out/train`'s checkpoint.
    pub resume: bool,
    /// Seed of training.
    pub seed: u64,
    /// Seed of the compression's fine-tuning.
    pub finetune_seed: u64,
    /// The firmware crate: build it with the new blob and run it in QEMU.
    pub firmware: Option<PathBuf>,
    /// Test images sent to the device.
    pub device_images: usize,
    /// The part the model must fit: checked before training and after compression.
    pub budget: Budget,
}

/// The training and compression recipe the pipeline runs on Fashion-MNIST.
pub fn recipe(quick: bool, seed: u64, finetune_seed: u64) -> (TrainConfig, CompressConfig) {
    recipe_for(quick, seed, finetune_seed, FASHION_MNIST_POOL)
}

/// Fashion-MNIST's training pool: 60,000 images less 5,000 for validation.
const FASHION_MNIST_POOL: usize = 55_000;
/// Training images `--quick` takes at most.
const QUICK_IMAGES: usize = 6_000;
/// The most a small pool multiplies the recipe's epochs.
const MAX_STRETCH: usize = 12;

/// [`recipe`] for a training pool of `pool` images. A pool smaller than the recipe's images
/// (55,000, or 6,000 with `--quick`) gets proportionally more epochs, training and fine-tuning
/// (up to 12 times as many): a small folder of pictures gets about the optimiser steps the
/// recipe gives Fashion-MNIST, in far less time per epoch.
pub fn recipe_for(
    quick: bool,
    seed: u64,
    finetune_seed: u64,
    pool: usize,
) -> (TrainConfig, CompressConfig) {
    let mut t = TrainConfig::preset(Preset::Default);
    let mut c = CompressConfig::shipped();
    t.seed = seed;
    let full = if quick {
        QUICK_IMAGES
    } else {
        FASHION_MNIST_POOL
    };
    let stretch = (full / pool.max(1)).clamp(1, MAX_STRETCH);
    if quick {
        t.epochs = 2;
        t.train_limit = Some(QUICK_IMAGES);
        c.calib_images = 500;
        c.finetune = Some(FinetuneConfig {
            prune_rounds: 2,
            prune_epochs: 1,
            share_epochs: 1,
            train_limit: Some(3_000),
            ..c.finetune.unwrap_or_default()
        });
    }
    t.epochs *= stretch;
    if let Some(ft) = &mut c.finetune {
        ft.seed = finetune_seed;
        ft.prune_epochs *= stretch;
        ft.share_epochs *= stretch;
    }
    (t, c)
}

/// One line of the summary.
#[derive(Debug, Clone)]
pub struct StageLine {
    /// Stage.
    pub stage: &'static str,
    /// What it found.
    pub result: String,
    /// Wall seconds.
    pub seconds: f64,
}

fn summary_table(lines: &[StageLine]) -> String {
    let mut s = String::from("| stage | result | seconds |\n|---|---|---:|\n");
    for l in lines {
        s.push_str(&format!(
            "| {} | {} | {:.0} |\n",
            l.stage, l.result, l.seconds
        ));
    }
    s
}

/// Builds the mps2-an386 firmware embedding `blob`; returns the ELF.
pub fn build_firmware(firmware: &Path, blob: &Path) -> Result<PathBuf> {
    let blob = blob
        .canonicalize()
        .with_context(|| format!("while resolving {}", blob.display()))?;
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(firmware)
        .env("SQZ_BLOB", &blob)
        .status()
        .with_context(|| format!("while running cargo in {}", firmware.display()))?;
    ensure!(
        status.success(),
        "building the firmware in {} failed (is the thumbv7em-none-eabihf target installed? \
         `bash .ci/setup` installs it)",
        firmware.display()
    );
    let elf = firmware.join("target/thumbv7em-none-eabihf/release/sqz-firmware");
    ensure!(
        elf.is_file(),
        "firmware built, but {} is missing",
        elf.display()
    );
    Ok(elf)
}

/// Runs every stage; returns the summary (also written to `out/summary.md`).
pub fn run(data: &Dataset, opts: &PipelineOptions) -> Result<Vec<StageLine>> {
    let val_count = data.default_val_count();
    let pool = data.train.len().saturating_sub(val_count);
    let (mut tcfg, ccfg) = recipe_for(opts.quick, opts.seed, opts.finetune_seed, pool);
    tcfg.fit_to(data, false);
    tcfg.val_count = val_count;
    eprintln!("{}", precheck(&tcfg.model, &data.train, &opts.budget)?);
    let train_dir = opts.out.join("train");
    let model_dir = opts.out.join("model");
    let stages = if opts.firmware.is_some() { 4 } else { 3 };
    let banner = |i: usize, what: &str| eprintln!("\n== {i}/{stages} {what} ==");

    banner(1, "train");
    let mut lines = vec![train_stage(data, opts, &tcfg, &train_dir)?];
    banner(2, "compress and export");
    lines.push(compress_stage(data, opts, &ccfg, &train_dir, &model_dir)?);
    lines.push(fit_stage(&model_dir.join("model.blob"), &opts.budget)?);
    banner(3, "verify against tract");
    let blob_path = model_dir.join("model.blob");
    lines.push(verify_stage(
        data, opts, &train_dir, &model_dir, &blob_path,
    )?);
    if let Some(fw) = &opts.firmware {
        banner(4, "device (firmware in QEMU)");
        lines.push(device_stage(data, opts, fw, &blob_path)?);
    }

    let md = format!(
        "# Pipeline summary{}\n\n{}\nModel files: {}\n",
        if opts.quick { " (--quick)" } else { "" },
        summary_table(&lines),
        model_dir.display()
    );
    write_atomic(&opts.out.join("summary.md"), md.as_bytes())?;
    println!("{md}");
    Ok(lines)
}

/// Trains into `train_dir`, or reuses the finished run there (unless resuming).
fn train_stage(
    data: &Dataset,
    opts: &PipelineOptions,
    tcfg: &TrainConfig,
    train_dir: &Path,
) -> Result<StageLine> {
    let started = Instant::now();
    let result_path = train_dir.join("result.json");
    let result: TrainResult = if result_path.is_file() && !opts.resume {
        eprintln!("{} is already trained; reusing it", train_dir.display());
        serde_json::from_slice(&std::fs::read(&result_path)?)
            .with_context(|| format!("while reading {}", result_path.display()))?
    } else {
        let (tr, val) = data.train_val(tcfg.val_count);
        let run_opts = RunOptions {
            resume: opts.resume && train_dir.join("checkpoint").exists(),
            ..Default::default()
        };
        let (_, _, r) = train(tcfg, &tr, &val, &data.test, train_dir, &run_opts)?;
        r.context("training ended without a result")?
    };
    Ok(StageLine {
        stage: "train",
        result: format!(
            "{} epochs, test {:.2} %, validation {:.2} % (epoch {}), {} parameters",
            tcfg.epochs,
            100.0 * result.test_acc,
            100.0 * result.best_val.0,
            result.best_val.1,
            result.params
        ),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Compresses the run into `model_dir` (blob, ONNX, reports, manifest).
fn compress_stage(
    data: &Dataset,
    opts: &PipelineOptions,
    ccfg: &CompressConfig,
    train_dir: &Path,
    model_dir: &Path,
) -> Result<StageLine> {
    let started = Instant::now();
    // The fine-tuning checkpoints after every epoch; --resume continues it when one is there.
    let ck_dir = model_dir.join("model.checkpoint");
    let ck = Checkpointing {
        resume: opts.resume && ck_dir.exists(),
        dir: ck_dir,
        stop_after: None,
    };
    let c = compress_resumable(train_dir, data, ccfg, Some(&ck))?;
    write_outputs(model_dir, &c, "model")?;
    let correct = (c.report.test_acc * data.test.len() as f64).round() as usize;
    write_manifest(model_dir, train_dir, "model", &c, correct)?;
    ck.remove()?;
    Ok(StageLine {
        stage: "compress",
        result: format!(
            "blob {} bytes ({:.1}x below float32 weights), test {:.2} % on the shared kernels (float {:.2} %)",
            c.report.blob_bytes,
            c.report.stages[0].bytes as f64 / c.report.blob_bytes as f64,
            100.0 * c.report.test_acc,
            100.0 * c.report.float_test_acc
        ),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The blob's flash and RAM against the budget; stops the pipeline when it does not fit.
fn fit_stage(blob_path: &Path, budget: &Budget) -> Result<StageLine> {
    let blob = std::fs::read(blob_path)
        .with_context(|| format!("while reading {}", blob_path.display()))?;
    let fp = Footprint::of_blob(&blob)?;
    eprintln!("{}", fp.table(budget));
    fp.check(budget)?;
    Ok(StageLine {
        stage: "fit",
        result: format!(
            "fits {}: flash {:.1} of {} KB, RAM {:.1} of {} KB (arena {} B){}",
            budget.name,
            fp.flash() as f64 / 1024.0,
            budget.flash / 1024,
            fp.ram() as f64 / 1024.0,
            budget.ram / 1024,
            fp.arena,
            if fp.servable() {
                ""
            } else {
                "; too large for the serial link"
            }
        ),
        seconds: 0.0,
    })
}

/// Parity of the blob with tract, written to `model.parity.md`; fails when it does not pass.
fn verify_stage(
    data: &Dataset,
    opts: &PipelineOptions,
    train_dir: &Path,
    model_dir: &Path,
    blob_path: &Path,
) -> Result<StageLine> {
    let started = Instant::now();
    let images = if opts.quick { 1_000 } else { data.test.len() };
    let report = run_all(blob_path, Some(train_dir), data, 20, images, 200)?;
    write_atomic(
        &model_dir.join("model.parity.md"),
        report.markdown.as_bytes(),
    )?;
    let layer_bad: usize = report.layers.iter().map(|l| l.mismatches).sum();
    let line = StageLine {
        stage: "verify",
        result: format!(
            "{}: per layer {layer_bad} mismatches; whole network {} / {} top-1 agree, max delta {} steps; float max abs delta {}",
            if report.passed { "PASS" } else { "FAIL" },
            report.network.top1_agree,
            report.network.images,
            report.network.max_logit_delta,
            report
                .float
                .as_ref()
                .map_or("n/a".into(), |f| format!("{:.1e}", f.max_abs_delta))
        ),
        seconds: started.elapsed().as_secs_f64(),
    };
    ensure!(
        report.passed,
        "parity with tract failed: see {}",
        model_dir.join("model.parity.md").display()
    );
    Ok(line)
}

/// The firmware in `fw` built with the blob, booted in QEMU, and test images run on it.
fn device_stage(
    data: &Dataset,
    opts: &PipelineOptions,
    fw: &Path,
    blob_path: &Path,
) -> Result<StageLine> {
    let started = Instant::now();
    let blob = std::fs::read(blob_path)?;
    ensure!(
        Footprint::of_blob(&blob)?.servable(),
        "the model has more classes than the serial link's result frame carries (see the fit \
         table); its blob runs on the host kernels, but the device stage cannot serve it"
    );
    let elf = build_firmware(fw, blob_path)?;
    let mut link = DeviceLink::qemu(&elf)?;
    let info = link.info()?;
    check_same_model(&info, &blob)?;
    let n = opts.device_images.min(data.test.len());
    let r = eval(
        &mut link,
        (0..n).map(|i| data.test.image(i)),
        Some(&data.test.labels[..n]),
        host_reference(&blob)?,
        |_| {},
    )?;
    let line = StageLine {
        stage: "device",
        result: format!("{r}"),
        seconds: started.elapsed().as_secs_f64(),
    };
    ensure!(
        r.logits_match == r.images,
        "device logits differ from the host kernels"
    );
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_pool_gets_more_epochs_up_to_twelve_times() {
        let epochs = |quick, pool| {
            let (t, c) = recipe_for(quick, 2, 1, pool);
            let ft = c.finetune.unwrap();
            (t.epochs, ft.prune_epochs, ft.share_epochs)
        };
        assert_eq!(epochs(false, 55_000), (20, 4, 3));
        assert_eq!(epochs(false, 20_000), (40, 8, 6));
        assert_eq!(epochs(false, 500), (240, 48, 36));
        assert_eq!(epochs(true, 55_000), (2, 1, 1));
        assert_eq!(epochs(true, 519), (22, 11, 11));
        assert_eq!(recipe(false, 2, 1), recipe_for(false, 2, 1, 55_000));
    }
}
