//! Training: the seed notebook's recipe as a preset, and our default recipe (AdamW, one-cycle,
//! label smoothing, random crop + flip, BatchNorm).
//!
//! Determinism: all randomness of epoch `e` (shuffle, augmentation, dropout) is drawn from
//! generators seeded by `(seed, e)`, so a run resumed from the checkpoint after epoch `e` replays
//! exactly what the uninterrupted run would have done.
//!
//! A run directory holds `config.json`, `checkpoint/` (model, optimiser, state; replaced
//! atomically each epoch), `best.bpk` (best weights by validation accuracy), `metrics.csv`,
//! `metrics.json`, `curves.png`, `confusion.png` and, at the end, `result.json` with the one test
//! evaluation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::{CLASSES, Normalization, PIXELS, SIDE, Split};
use crate::model::{SqueezeNet, SqueezeNetConfig};

/// Recipes a user can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Preset {
    /// The seed notebook: no BatchNorm, Adam at 0.005, batch 64, per-image standardisation,
    /// no augmentation. Known not to learn (stays at 10 %): kept to reproduce that.
    Seed,
    /// Our recipe: BatchNorm, AdamW with a one-cycle schedule, label smoothing 0.1, random
    /// crop (pad 2) + horizontal flip, batch 128, 14 epochs.
    Default,
}

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum OptimizerKind {
    /// Adam (coupled L2 decay when weight_decay > 0).
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Schedule {
    /// `lr` throughout.
    Constant,
    /// Linear warm-up from lr/25 to lr over the first 25 % of steps, then cosine to lr/1e4.
    OneCycle,
}

/// Everything that defines a training run. Written as `config.json` beside the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network.
    pub model: SqueezeNetConfig,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Schedule.
    pub schedule: Schedule,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Label smoothing (0 = none).
    pub label_smoothing: f32,
    /// Random crop with 2-pixel zero padding and horizontal flip.
    pub augment: bool,
    /// Input normalisation.
    pub normalization: Normalization,
    /// Seed for initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Validation images, taken from the end of the training set.
    pub val_count: usize,
    /// Use only the first N training images (quick runs and tests).
    pub train_limit: Option<usize>,
}

impl TrainConfig {
    /// The preset's configuration.
    pub fn preset(p: Preset) -> Self {
        match p {
            Preset::Seed => Self {
                model: SqueezeNetConfig {
                    batch_norm: false,
                    dropout: 0.5,
                    ..SqueezeNetConfig::fashion_mnist()
                },
                optimizer: OptimizerKind::Adam,
                lr: 0.005,
                weight_decay: 0.0,
                schedule: Schedule::Constant,
                epochs: 10,
                batch_size: 64,
                label_smoothing: 0.0,
                augment: false,
                normalization: Normalization::PerImage,
                seed: 1,
                val_count: 5_000,
                train_limit: None,
            },
            Preset::Default => Self {
                model: SqueezeNetConfig::fashion_mnist(),
                optimizer: OptimizerKind::Adamw,
                lr: 0.004,
                weight_decay: 0.02,
                schedule: Schedule::OneCycle,
                epochs: 14,
                batch_size: 128,
                label_smoothing: 0.1,
                augment: true,
                normalization: Normalization::Unit,
                seed: 1,
                val_count: 5_000,
                train_limit: None,
            },
        }
    }

    /// Checks values a user may have typed; errors say which flag is wrong.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--lr must be a positive number, got {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            bail!(
                "--label-smoothing must be in [0, 1), got {}",
                self.label_smoothing
            );
        }
        if self.weight_decay < 0.0 {
            bail!("--weight-decay must be >= 0, got {}", self.weight_decay);
        }
        if self.model.input_size != SIDE || self.model.in_channels != 1 {
            bail!("Fashion-MNIST training needs in_channels 1 and input size {SIDE}");
        }
        Ok(())
    }

    /// Learning rate at optimiser step `step` of `total`.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::OneCycle => {
                let warm = (total as f64 * 0.25).max(1.0);
                let s = step as f64;
                if s < warm {
                    let start = self.lr / 25.0;
                    start + (self.lr - start) * s / warm
                } else {
                    let t = ((s - warm) / (total as f64 - warm).max(1.0)).min(1.0);
                    let end = self.lr / 1e4;
                    end + (self.lr - end) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
        }
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (on augmented batches, dropout on).
    pub train_acc: f64,
    /// Validation loss (no smoothing).
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Learning rate at the epoch's end.
    pub lr: f64,
    /// Wall seconds of the epoch (training + validation).
    pub seconds: f64,
}

/// What survives between epochs (beside the weights and optimiser state).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Best validation accuracy so far, and its epoch.
    pub best: Option<(f64, usize)>,
    /// Every completed epoch.
    pub history: Vec<EpochMetrics>,
}

/// The final result, written once at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainResult {
    /// Test accuracy of the best-by-validation weights.
    pub test_acc: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Confusion matrix, `[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Best validation accuracy and its epoch.
    pub best_val: (f64, usize),
    /// Training wall time, seconds (all sessions of a resumed run added up).
    pub train_seconds: f64,
    /// Parameters.
    pub params: usize,
}

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

/// Builds an NCHW batch from `indices` of `split`, with optional augmentation.
pub fn make_batch(
    split: &Split,
    indices: &[usize],
    norm: Normalization,
    augment: Option<&mut StdRng>,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let mut x = vec![0f32; indices.len() * PIXELS];
    let mut img = [0f32; PIXELS];
    let mut aug = augment;
    for (b, &i) in indices.iter().enumerate() {
        norm.apply(split.image(i), &mut img);
        let out = &mut x[b * PIXELS..(b + 1) * PIXELS];
        match aug.as_deref_mut() {
            None => out.copy_from_slice(&img),
            Some(rng) => {
                // Random crop of the 2-pixel zero-padded image, then a coin-flip mirror.
                let (dy, dx) = (rng.random_range(-2i32..=2), rng.random_range(-2i32..=2));
                let flip = rng.random_bool(0.5);
                let pad = if norm == Normalization::Unit {
                    0.0
                } else {
                    img.iter().cloned().fold(f32::INFINITY, f32::min)
                };
                for y in 0..SIDE as i32 {
                    for xx in 0..SIDE as i32 {
                        let sy = y + dy;
                        let sx0 = xx + dx;
                        let sx = if flip { SIDE as i32 - 1 - sx0 } else { sx0 };
                        let v = if (0..SIDE as i32).contains(&sy) && (0..SIDE as i32).contains(&sx)
                        {
                            img[(sy as usize) * SIDE + sx as usize]
                        } else {
                            pad
                        };
                        out[(y as usize) * SIDE + xx as usize] = v;
                    }
                }
            }
        }
    }
    let labels: Vec<i64> = indices
        .iter()
        .map(|&i| i64::from(split.labels[i]))
        .collect();
    (
        Tensor::from_data(TensorData::new(x, [indices.len(), 1, SIDE, SIDE]), device),
        Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
    )
}

/// Accuracy, mean loss and confusion matrix of `model` on `split`.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Top-1 accuracy.
    pub acc: f64,
    /// Mean cross-entropy (no smoothing).
    pub loss: f64,
    /// `[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// The predicted class of every image.
    pub predictions: Vec<u8>,
}

/// Evaluates without autodiff, in batches of 256.
pub fn evaluate(
    model: &SqueezeNet,
    split: &Split,
    norm: Normalization,
    device: &Device,
) -> Evaluation {
    let model = model.valid();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut confusion = vec![vec![0usize; CLASSES]; CLASSES];
    let mut predictions = Vec::with_capacity(split.len());
    let mut loss_sum = 0.0;
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(256) {
        let (x, y) = make_batch(split, chunk, norm, None, device);
        let logits = model.forward(x);
        loss_sum +=
            f64::from(loss_fn.forward(logits.clone(), y).into_scalar::<f32>()) * chunk.len() as f64;
        let pred = logits.argmax(1).into_data();
        for (&i, p) in chunk.iter().zip(pred.iter::<i64>()) {
            confusion[split.labels[i] as usize][p as usize] += 1;
            predictions.push(p as u8);
        }
    }
    let correct: usize = (0..CLASSES).map(|c| confusion[c][c]).sum();
    Evaluation {
        acc: correct as f64 / split.len().max(1) as f64,
        loss: loss_sum / split.len().max(1) as f64,
        confusion,
        predictions,
    }
}

/// Float logits of every image of `split` (no autodiff, batches of 256).
pub fn logits(
    model: &SqueezeNet,
    split: &Split,
    norm: Normalization,
    device: &Device,
) -> Vec<Vec<f32>> {
    let model = model.valid();
    let idx: Vec<usize> = (0..split.len()).collect();
    let mut out = Vec::with_capacity(split.len());
    for chunk in idx.chunks(256) {
        let (x, _) = make_batch(split, chunk, norm, None, device);
        let data: Vec<f32> = model.forward(x).into_data().iter::<f32>().collect();
        let classes = data.len() / chunk.len();
        out.extend(data.chunks(classes).map(|c| c.to_vec()));
    }
    out
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("while writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("while renaming into {}", path.display()))
}

/// Saves a network's weights (burnpack) atomically.
pub fn save_weights(model: &SqueezeNet, path: &Path) -> Result<()> {
    let tmp = path.with_extension("tmp");
    model
        .clone()
        .into_record()
        .save(&tmp)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("while writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("while renaming into {}", path.display()))
}

/// Loads weights saved by [`save_weights`] into a network of shape `cfg`.
pub fn load_weights(cfg: &SqueezeNetConfig, path: &Path, device: &Device) -> Result<SqueezeNet> {
    let bytes =
        std::fs::read(path).with_context(|| format!("while reading weights {}", path.display()))?;
    network_from_bytes(cfg, bytes, path, device)
}

/// A run's trained weights read once, so the bytes that are hashed (to tie a checkpoint to its
/// source) are the bytes that are loaded.
#[derive(Debug, Clone)]
pub struct TrainedWeights {
    /// Where they were read from (named in errors).
    pub path: PathBuf,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Their SHA-256, hex.
    pub sha256: String,
}

impl TrainedWeights {
    /// Reads and hashes the weights file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("while reading weights {}", path.display()))?;
        let sha256 = crate::data::sha256_hex(&bytes);
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            sha256,
        })
    }

    /// A network of shape `cfg` holding these weights, on `device`.
    pub fn load(&self, cfg: &SqueezeNetConfig, device: &Device) -> Result<SqueezeNet> {
        network_from_bytes(cfg, self.bytes.clone(), &self.path, device)
    }
}

/// The network of shape `cfg` that the weights file `bytes` (read from `path`, named in
/// errors) holds.
fn network_from_bytes(
    cfg: &SqueezeNetConfig,
    bytes: Vec<u8>,
    path: &Path,
    device: &Device,
) -> Result<SqueezeNet> {
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("while reading weights {}", path.display()))?;
    SqueezeNet::new(cfg, device)
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| {
            format!(
                "{} does not fit the network in its config.json (was it made with other widths?)",
                path.display()
            )
        })
}

fn new_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    match cfg.optimizer {
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay as f32)
            .with_epsilon(1e-8)
            .init(),
        OptimizerKind::Adam => {
            let mut c = AdamConfig::new().with_epsilon(1e-7);
            if cfg.weight_decay > 0.0 {
                c = c.with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
                    cfg.weight_decay as f32,
                )));
            }
            c.init()
        }
    }
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Options of one `train` invocation that are not part of the recipe.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from `dir/checkpoint` instead of starting afresh.
    pub resume: bool,
    /// Stop (cleanly, checkpoint written) after this many epochs of this invocation; for tests
    /// and for splitting a run across sessions.
    pub stop_after: Option<usize>,
    /// Skip the test evaluation and plots at the end.
    pub skip_final: bool,
}

/// Trains per `cfg` into `dir`, resuming when asked. Returns the final state.
pub fn train(
    cfg: &TrainConfig,
    train_split: &Split,
    val_split: &Split,
    test_split: &Split,
    dir: &Path,
    opts: &RunOptions,
) -> Result<(SqueezeNet, TrainState, Option<TrainResult>)> {
    cfg.validate()?;
    let run = RunDir(dir.to_path_buf());
    std::fs::create_dir_all(dir).with_context(|| format!("while creating {}", dir.display()))?;
    let device = Device::flex().autodiff();
    let train_split = match cfg.train_limit {
        Some(n) => train_split.slice(0..n.min(train_split.len())),
        None => train_split.clone(),
    };
    let (mut model, mut optim, mut state) = if opts.resume {
        let saved: TrainConfig =
            serde_json::from_slice(&std::fs::read(run.config()).with_context(|| {
                format!(
                    "--resume: no run to resume in {} (reading config.json)",
                    dir.display()
                )
            })?)
            .with_context(|| format!("while parsing {}", run.config().display()))?;
        if &saved != cfg {
            bail!(
                "--resume: the run in {} was made with a different configuration; resume with the same flags (see its config.json)",
                dir.display()
            );
        }
        let ck = run.checkpoint();
        let state: TrainState = serde_json::from_slice(
            &std::fs::read(ck.join("state.json"))
                .with_context(|| format!("while reading {}", ck.join("state.json").display()))?,
        )?;
        let model = load_weights(&cfg.model, &ck.join("model.bpk"), &device)?;
        let optim = new_optimizer(cfg)
            .load(ck.join("optim.bpk"))
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("while reading {}", ck.join("optim.bpk").display()))?;
        (model, optim, state)
    } else {
        if run.checkpoint().exists() {
            bail!(
                "{} already holds a run; pass --resume to continue it or choose another --out",
                dir.display()
            );
        }
        write_atomic(&run.config(), serde_json::to_string_pretty(cfg)?.as_bytes())?;
        let argv: Vec<String> = std::env::args().collect();
        write_atomic(
            &dir.join("command.txt"),
            format!("{}\n", argv.join(" ")).as_bytes(),
        )?;
        device.seed(cfg.seed);
        (
            SqueezeNet::new(&cfg.model, &device),
            new_optimizer(cfg),
            TrainState::default(),
        )
    };

    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing((cfg.label_smoothing > 0.0).then_some(cfg.label_smoothing))
        .init(&device);
    let steps_per_epoch = train_split.len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut epochs_this_call = 0;
    while state.epochs_done < cfg.epochs {
        if opts.stop_after.is_some_and(|n| epochs_this_call >= n) {
            return Ok((model, state, None));
        }
        let epoch = state.epochs_done;
        let started = Instant::now();
        let mut rng = StdRng::seed_from_u64(epoch_seed(cfg.seed, epoch));
        device.seed(epoch_seed(cfg.seed ^ 0xA5A5, epoch));
        let mut order: Vec<usize> = (0..train_split.len()).collect();
        order.shuffle(&mut rng);
        let bar = crate::progress::items_bar(
            train_split.len() as u64,
            &format!("epoch {}/{}", epoch + 1, cfg.epochs),
        );
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        for batch in order.chunks(cfg.batch_size) {
            let (x, y) = make_batch(
                &train_split,
                batch,
                cfg.normalization,
                cfg.augment.then_some(&mut rng),
                &device,
            );
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let pred = logits.argmax(1).reshape([batch.len()]);
            correct += pred.equal(y).int().sum().into_scalar::<i64>() as usize;
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            if !loss_value.is_finite() {
                bail!(
                    "training diverged at epoch {} (loss = {loss_value}); lower --lr",
                    epoch + 1
                );
            }
            loss_sum += loss_value * batch.len() as f64;
            seen += batch.len();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            lr = cfg.lr_at(state.steps, total_steps);
            model = optim.step(lr, model, grads);
            state.steps += 1;
            bar.inc(batch.len() as u64);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}%",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64
            ));
        }
        bar.finish_and_clear();
        let val = evaluate(
            &model,
            val_split,
            cfg.normalization,
            &device.clone().without_autodiff(),
        );
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss: val.loss,
            val_acc: val.acc,
            lr,
            seconds: started.elapsed().as_secs_f64(),
        };
        eprintln!(
            "epoch {:>3}/{}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%  lr {:.2e}  {:.0}s",
            m.epoch,
            cfg.epochs,
            m.train_loss,
            100.0 * m.train_acc,
            m.val_loss,
            100.0 * m.val_acc,
            m.lr,
            m.seconds
        );
        if state.best.is_none_or(|(b, _)| m.val_acc > b) {
            state.best = Some((m.val_acc, m.epoch));
            save_weights(&model, &run.best())?;
        }
        state.history.push(m);
        state.epochs_done += 1;
        epochs_this_call += 1;
        write_checkpoint(&run, &model, &optim, &state)?;
        crate::report::write_metrics(dir, &state.history)?;
    }

    if opts.skip_final {
        return Ok((model, state, None));
    }
    // The test set, touched once, with the best-by-validation weights.
    let eval_device = Device::flex();
    let best = load_weights(&cfg.model, &run.best(), &eval_device)?;
    let test = evaluate(&best, test_split, cfg.normalization, &eval_device);
    let result = TrainResult {
        test_acc: test.acc,
        test_loss: test.loss,
        confusion: test.confusion.clone(),
        best_val: state.best.unwrap_or((0.0, 0)),
        train_seconds: state.history.iter().map(|m| m.seconds).sum(),
        params: best.num_params(),
    };
    write_atomic(
        &run.result(),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    crate::report::confusion_png(
        &dir.join("confusion.png"),
        &test.confusion,
        "test set, best weights",
    )?;
    Ok((model, state, Some(result)))
}

/// Writes model, optimiser and state into a fresh directory, then swaps it in, so a kill at
/// any moment leaves either the previous or the new checkpoint whole.
fn write_checkpoint(
    run: &RunDir,
    model: &SqueezeNet,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    write_checkpoint_dir(&run.checkpoint(), model, optim, state)
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

/// Draws from the run's RNG, for tests that want the same stream.
pub fn rng_for_epoch(seed: u64, epoch: usize) -> StdRng {
    StdRng::seed_from_u64(epoch_seed(seed, epoch))
}
