//! The training loop of both fine-tuning stages: epochs of (optionally distilled) training that
//! keep a constraint after every optimiser step (pruning masks, or shared centroids), with a
//! cosine learning rate and a hook after every epoch (checkpoints).

use anyhow::{Result, bail};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::centroids::SharedLayer;
use super::layers::{convs, convs_mut, set_weight, values};
use super::prune::apply_masks;
use super::recipe::FinetuneConfig;
use crate::data::progress::items_bar;
use crate::data::{Normalization, Split};
use crate::eval::{epoch_order, evaluate, make_batch};
use crate::train::model::SqueezeNet;
use crate::train::nhwc::logits;

/// One row of the stage report: float validation accuracy after a training stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneStage {
    /// Stage name.
    pub stage: String,
    /// Sparsity reached (fraction of zero weights over all convs).
    pub sparsity: f64,
    /// Validation accuracy of the float network.
    pub val_acc: f64,
    /// Seconds spent.
    pub seconds: f64,
}

/// The constraint kept after every optimiser step.
pub(crate) enum Constraint<'a> {
    Masks(&'a [Vec<f32>]),
    Shared(&'a mut [SharedLayer]),
}

pub(crate) struct Loop<'a> {
    pub(crate) cfg: &'a FinetuneConfig,
    pub(crate) train: &'a Split,
    pub(crate) val: &'a Split,
    pub(crate) norm: Normalization,
    pub(crate) stage: u64,
    /// The trained network without autodiff, when distilling.
    pub(crate) teacher: Option<&'a SqueezeNet>,
}

/// `T^2 * mean over the batch of KL(softmax(teacher / T) || softmax(student / T))` (the
/// teacher's logits are constants; KL rather than cross-entropy so that the logged loss is 0
/// when the student matches).
fn distill_loss(student: Tensor<2>, teacher: Tensor<2>, temperature: f32) -> Tensor<1> {
    use burn::tensor::activation::log_softmax;
    let log_t = log_softmax(teacher.div_scalar(temperature), 1).autodiff();
    let log_s = log_softmax(student.div_scalar(temperature), 1);
    (log_t.clone().exp() * (log_t - log_s))
        .sum_dim(1)
        .mean()
        .mul_scalar(temperature * temperature)
}

/// Where a training stage starts, and what it does after each epoch.
#[derive(Default)]
pub(crate) struct StageStart<'a> {
    /// Epochs already done (from a checkpoint).
    pub(crate) epochs_done: usize,
    /// Optimiser steps already taken (the learning rate's place in its schedule).
    pub(crate) steps: usize,
    /// The optimiser restored from a checkpoint; `None`: a fresh one.
    pub(crate) optim: Option<ModuleOptimizer>,
    /// Called after every epoch with the network, the optimiser, epochs and steps done.
    pub(crate) after_epoch: Option<&'a mut EpochHook<'a>>,
}

pub(crate) type EpochHook<'h> =
    dyn FnMut(&SqueezeNet, &ModuleOptimizer, usize, usize) -> Result<()> + 'h;

pub(crate) fn fresh_optimizer(cfg: &FinetuneConfig) -> ModuleOptimizer {
    crate::train::adamw::FusedAdamW::init(cfg.weight_decay as f32, 1e-8)
}

/// Trains `net` for `epochs` keeping `constraint`; returns the network.
pub(crate) fn train_constrained(
    mut net: SqueezeNet,
    l: &Loop<'_>,
    epochs: usize,
    peak_lr: f64,
    mut constraint: Constraint<'_>,
    label: &str,
    start: StageStart<'_>,
) -> Result<SqueezeNet> {
    crate::train::memory::keep_freed_memory();
    let device = Device::flex().autodiff();
    let cfg = l.cfg;
    let mut after_epoch = start.after_epoch;
    let mut optim = start.optim.unwrap_or_else(|| fresh_optimizer(cfg));
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing((cfg.label_smoothing > 0.0).then_some(cfg.label_smoothing))
        .init(&device);
    let steps_per_epoch = l.train.len().div_ceil(cfg.batch_size);
    let total = (steps_per_epoch * epochs).max(1);
    let mut step = start.steps;
    for epoch in start.epochs_done..epochs {
        let seed = cfg.seed ^ (l.stage << 32) ^ epoch as u64;
        let (mut rng, order) = epoch_order(l.train.len(), seed, seed ^ 0x5A5A, &device);
        let bar = items_bar(
            l.train.len() as u64,
            &format!("{label} epoch {}/{epochs}", epoch + 1),
        );
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        for batch in order.chunks(cfg.batch_size) {
            let (x, y) = make_batch(
                l.train,
                batch,
                l.norm,
                cfg.augment.then_some(&mut rng),
                &device,
            );
            let loss = match l.teacher {
                None => loss_fn.forward(logits(&net, x), y),
                Some(teacher) => {
                    let a = cfg.distill;
                    let target = logits(teacher, x.clone().inner());
                    let student = logits(&net, x);
                    let kd = distill_loss(student.clone(), target, cfg.distill_temperature);
                    loss_fn.forward(student, y).mul_scalar(1.0 - a) + kd.mul_scalar(a)
                }
            };
            let lv = f64::from(loss.clone().into_scalar::<f32>());
            if !lv.is_finite() {
                bail!("{label}: fine-tuning diverged (loss = {lv}); lower the learning rate");
            }
            loss_sum += lv * batch.len() as f64;
            seen += batch.len();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            // Cosine from the peak to a tenth of it.
            let cos = 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos());
            let scale = 0.1 + 0.9 * cos;
            step += 1;
            match &mut constraint {
                Constraint::Masks(masks) => {
                    net = optim.step(peak_lr * scale, net, grads);
                    net = apply_masks(net, masks, &device);
                }
                Constraint::Shared(layers) => {
                    for (conv, layer) in convs(&net).into_iter().zip(layers.iter_mut()) {
                        if let Some(g) = grads.get::<4>(conv.weight.id) {
                            layer.step(&values(g), cfg.centroid_lr * scale, step as i32);
                        }
                    }
                    net = optim.step(cfg.bias_lr * scale, net, grads);
                    for (conv, layer) in convs_mut(&mut net).into_iter().zip(layers.iter()) {
                        set_weight(conv, layer.weights(), &device);
                    }
                }
            }
            bar.inc(batch.len() as u64);
            bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
        }
        bar.finish_and_clear();
        let val = evaluate(&net, l.val, l.norm, &Device::flex());
        eprintln!(
            "{label} epoch {}/{epochs}: train loss {:.4}, validation {:.2} %",
            epoch + 1,
            loss_sum / seen.max(1) as f64,
            100.0 * val.acc
        );
        if let Some(hook) = after_epoch.as_mut() {
            hook(&net, &optim, epoch + 1, step)?;
        }
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distillation_loss_is_zero_on_the_teacher_and_grows_away_from_it() {
        let device = Device::flex().autodiff();
        let t = [[2.0f32, -1.0, 0.5], [0.0, 3.0, -2.0]];
        let teacher = Tensor::<2>::from_data(t, &Device::flex());
        let same = Tensor::<2>::from_data(t, &device);
        let other = Tensor::<2>::from_data([[0.0f32, 0.0, 0.0], [3.0, 0.0, -2.0]], &device);
        let at = |s: Tensor<2>| distill_loss(s, teacher.clone(), 4.0).into_scalar::<f32>();
        assert!(at(same).abs() < 1e-6);
        let d = at(other);
        assert!(d > 0.01, "KL of different logits: {d}");
        let bad = FinetuneConfig {
            distill: 1.0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
