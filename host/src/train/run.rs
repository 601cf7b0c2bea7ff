//! The training loop: a fresh or resumed start, one epoch at a time (train, validate, keep the
//! best weights, checkpoint, redraw the curves), and the one test evaluation at the end.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::checkpoint::{RunDir, load_weights, write_checkpoint_dir};
use super::device::{ComputeDevice, check_devices, shares};
use super::model::SqueezeNet;
use super::recipe::{
    EpochMetrics, OptimizerKind, RunOptions, TrainConfig, TrainResult, TrainState,
};
use crate::data::Split;
use crate::data::progress::items_bar;
use crate::eval::{epoch_order, evaluate, make_batch};
use crate::store::{save_weights, write_atomic};

fn new_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    match cfg.optimizer {
        OptimizerKind::Adamw => super::adamw::FusedAdamW::init(cfg.weight_decay as f32, 1e-8),
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

/// The network takes the split's images and knows every label in it.
fn check_split(cfg: &TrainConfig, split: &Split) -> Result<()> {
    let m = &cfg.model;
    anyhow::ensure!(
        (split.channels, split.side) == (m.in_channels, m.input_size),
        "the network takes {}x{} images with {} channel(s), the data has {}x{} with {}",
        m.input_size,
        m.input_size,
        m.in_channels,
        split.side,
        split.side,
        split.channels
    );
    let top = split.labels.iter().max().map_or(0, |&l| l as usize + 1);
    anyhow::ensure!(
        top <= m.num_classes,
        "the data has label {} for a network of {} classes",
        top - 1,
        m.num_classes
    );
    Ok(())
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
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
    super::memory::keep_freed_memory();
    for split in [train_split, val_split, test_split] {
        check_split(cfg, split)?;
    }
    let run = RunDir(dir.to_path_buf());
    std::fs::create_dir_all(dir).with_context(|| format!("while creating {}", dir.display()))?;
    let devices = training_devices(opts, cfg.batch_size)?;
    let device = devices[0].clone();
    let train_split = match cfg.train_limit {
        Some(n) => train_split.slice(0..n.min(train_split.len())),
        None => train_split.clone(),
    };
    let (mut model, mut optim, mut state) = if opts.resume {
        resume(cfg, &run, &device)?
    } else {
        start(cfg, &run, &devices)?
    };
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing((cfg.label_smoothing > 0.0).then_some(cfg.label_smoothing))
        .init(&device);
    let total_steps = train_split.len().div_ceil(cfg.batch_size) * cfg.epochs;
    let mut epochs_this_call = 0;
    while state.epochs_done < cfg.epochs {
        if opts.stop_after.is_some_and(|n| epochs_this_call >= n) {
            return Ok((model, state, None));
        }
        let epoch = Epoch {
            cfg,
            split: &train_split,
            loss_fn: &loss_fn,
            devices: &devices,
            total_steps,
        };
        let m;
        (model, m) = epoch.run(model, &mut optim, &mut state, val_split)?;
        if state.best.is_none_or(|(b, _)| m.val_acc > b) {
            state.best = Some((m.val_acc, m.epoch));
            save_weights(&model, &run.best())?;
        }
        state.history.push(m);
        state.epochs_done += 1;
        epochs_this_call += 1;
        write_checkpoint_dir(&run.checkpoint(), &model, &optim, &state)?;
        super::report::write_metrics(dir, &state.history)?;
    }
    if opts.skip_final {
        return Ok((model, state, None));
    }
    let result = finish(cfg, &run, &state, test_split)?;
    Ok((model, state, Some(result)))
}

/// A fresh run: refuses a directory that holds one, writes `config.json` and `command.txt`,
/// seeds the device and builds the network and optimiser.
fn start(
    cfg: &TrainConfig,
    run: &RunDir,
    devices: &[Device],
) -> Result<(SqueezeNet, ModuleOptimizer, TrainState)> {
    let device = &devices[0];
    let dir = &run.0;
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
    for d in devices {
        d.seed(cfg.seed);
    }
    Ok((
        SqueezeNet::new(&cfg.model, device),
        new_optimizer(cfg),
        TrainState::default(),
    ))
}

/// The run in `run` continued: its configuration must be `cfg`; the network, optimiser and
/// state come from its checkpoint.
fn resume(
    cfg: &TrainConfig,
    run: &RunDir,
    device: &Device,
) -> Result<(SqueezeNet, ModuleOptimizer, TrainState)> {
    let dir = &run.0;
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
    let model = load_weights(&cfg.model, &ck.join("model.bpk"), device)?;
    let optim = new_optimizer(cfg)
        .load(ck.join("optim.bpk"))
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("while reading {}", ck.join("optim.bpk").display()))?;
    Ok((model, optim, state))
}

/// What one training epoch needs besides the network and optimiser.
struct Epoch<'a> {
    cfg: &'a TrainConfig,
    split: &'a Split,
    loss_fn: &'a CrossEntropyLoss,
    /// The first holds the network and the optimiser; the others help data-parallel.
    devices: &'a [Device],
    total_steps: usize,
}

/// What one batch's forward and backward passes give.
struct StepOutput {
    /// Sum of the per-image losses.
    loss_sum: f64,
    /// Images classified right.
    correct: usize,
    /// Gradients (of the batch's mean loss) on the first device.
    grads: GradientsParams,
}

impl Epoch<'_> {
    /// Epoch `state.epochs_done`: every training batch once (shuffled, augmented), then the
    /// validation. Returns the network and the epoch's metrics.
    fn run(
        &self,
        mut model: SqueezeNet,
        optim: &mut ModuleOptimizer,
        state: &mut TrainState,
        val_split: &Split,
    ) -> Result<(SqueezeNet, EpochMetrics)> {
        let (cfg, device) = (self.cfg, &self.devices[0]);
        let epoch = state.epochs_done;
        let started = Instant::now();
        let (mut rng, order) = epoch_order(
            self.split.len(),
            epoch_seed(cfg.seed, epoch),
            epoch_seed(cfg.seed ^ 0xA5A5, epoch),
            device,
        );
        let bar = items_bar(
            self.split.len() as u64,
            &format!("epoch {}/{}", epoch + 1, cfg.epochs),
        );
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        for batch in order.chunks(cfg.batch_size) {
            let (x, y) = make_batch(
                self.split,
                batch,
                cfg.normalization,
                cfg.augment.then_some(&mut rng),
                device,
            );
            let out = self.forward_backward(&model, x, y);
            if !out.loss_sum.is_finite() {
                bail!(
                    "training diverged at epoch {} (loss = {}); lower --lr",
                    epoch + 1,
                    out.loss_sum / batch.len() as f64
                );
            }
            correct += out.correct;
            loss_sum += out.loss_sum;
            seen += batch.len();
            let grads = out.grads;
            lr = cfg.lr_at(state.steps, self.total_steps);
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
        Ok((model, m))
    }
}

impl Epoch<'_> {
    /// Forward and backward passes of one batch: on the first device alone, or split in equal
    /// shares across all of them, each share's loss weighted by its size so that the summed
    /// gradients are those of the whole batch's mean loss.
    fn forward_backward(&self, model: &SqueezeNet, x: Tensor<4>, y: Tensor<1, Int>) -> StepOutput {
        let n = y.dims()[0];
        if self.devices.len() == 1 {
            return shard_step(model, self.loss_fn, x, y, 1.0);
        }
        let jobs: Vec<_> = shares(n, self.devices.len())
            .into_iter()
            .zip(self.devices)
            .map(|(rows, dev)| Shard {
                x: x.clone().slice(rows.clone()).to_device(dev),
                y: y.clone().slice(rows.clone()).to_device(dev),
                model: model.clone().fork(dev),
                loss_fn: self.loss_fn.clone().to_device(dev),
                weight: rows.len() as f32 / n as f32,
            })
            .collect();
        // Distinct devices run at once; shares of one device (a test of this path on the CPU)
        // run in turn, so that they draw their dropout masks from its generator in order.
        let distinct = self.devices.iter().skip(1).all(|d| d != &self.devices[0]);
        let outputs: Vec<StepOutput> = if distinct {
            std::thread::scope(|s| {
                let workers: Vec<_> = jobs.into_iter().map(|j| s.spawn(move || j.run())).collect();
                let outputs = workers.into_iter().map(|w| w.join());
                outputs
                    .map(|o| o.expect("a training thread panicked"))
                    .collect()
            })
        } else {
            jobs.into_iter().map(Shard::run).collect()
        };
        let main = &self.devices[0];
        let mut total = GradientsAccumulator::new();
        let (mut loss_sum, mut correct) = (0.0, 0);
        for out in outputs {
            loss_sum += out.loss_sum;
            correct += out.correct;
            total.accumulate(model, out.grads.to_device(main, model));
        }
        StepOutput {
            loss_sum,
            correct,
            grads: total.grads(),
        }
    }
}

/// One device's share of a batch, with the network and loss moved there.
struct Shard {
    x: Tensor<4>,
    y: Tensor<1, Int>,
    model: SqueezeNet,
    loss_fn: CrossEntropyLoss,
    /// The share's size over the batch's.
    weight: f32,
}

impl Shard {
    fn run(self) -> StepOutput {
        shard_step(&self.model, &self.loss_fn, self.x, self.y, self.weight)
    }
}

/// Forward and backward passes of one share of a batch on the share's device; the loss is
/// scaled by `weight` before the backward pass.
fn shard_step(
    model: &SqueezeNet,
    loss_fn: &CrossEntropyLoss,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    weight: f32,
) -> StepOutput {
    let n = y.dims()[0];
    let logits = super::nhwc::logits(model, x);
    let loss = loss_fn.forward(logits.clone(), y.clone());
    let pred = logits.argmax(1).reshape([n]);
    let correct = pred.equal(y).int().sum().into_scalar::<i64>() as usize;
    let loss_sum = f64::from(loss.clone().into_scalar::<f32>()) * n as f64;
    let grads = GradientsParams::from_grads(loss.mul_scalar(weight).backward(), model);
    StepOutput {
        loss_sum,
        correct,
        grads,
    }
}

/// The devices `opts` names (the CPU when none), as burn's autodiff devices.
fn training_devices(opts: &RunOptions, batch: usize) -> Result<Vec<Device>> {
    let named = if opts.devices.is_empty() {
        vec![ComputeDevice::Cpu]
    } else {
        opts.devices.clone()
    };
    check_devices(&named, batch)?;
    named.iter().map(|d| d.training_device()).collect()
}

/// The test set, touched once, with the best-by-validation weights: `result.json` and
/// `confusion.png`.
fn finish(
    cfg: &TrainConfig,
    run: &RunDir,
    state: &TrainState,
    test_split: &Split,
) -> Result<TrainResult> {
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
    super::report::confusion_png(
        &run.0.join("confusion.png"),
        &test.confusion,
        &cfg.classes,
        "test set, best weights",
    )?;
    Ok(result)
}

/// Draws from the run's RNG, for tests that want the same stream.
pub fn rng_for_epoch(seed: u64, epoch: usize) -> StdRng {
    StdRng::seed_from_u64(epoch_seed(seed, epoch))
}
