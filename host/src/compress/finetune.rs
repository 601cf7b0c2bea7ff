//! Deep Compression's two training stages, in burn:
//!
//! 1. **Pruning with fine-tuning.** Per layer, the weights smallest relative to their output
//!    channel's largest are masked to zero (relative magnitude, so the mask means the same
//!    before and after BatchNorm folding and per-channel int8 scaling). Sparsity rises over
//!    `prune_rounds` rounds to the target; after each round the network trains on, and the mask
//!    is re-applied after every optimiser step, so pruned weights stay zero.
//! 2. **Weight sharing with centroid fine-tuning.** BatchNorm is folded; per output channel the
//!    weights are put in int8 units (`w / s_c`, `s_c = max |w_c| / 127`); per layer, k-means
//!    (linear initialisation) over the unpruned values gives `2^bits` shared values, three of
//!    them fixed: 0 (the pruned weights) and +-127 (each channel's largest weight, which pins
//!    the channel's int8 scale, so the int8 stage later recovers exactly these values).
//!    Each weight keeps its cluster; every step the centroids move by the gradients of their
//!    weights summed per cluster (Adam on the centroids), and the weights are rewritten as
//!    `s_c * centroid`. Biases train normally. At the end the centroids are rounded to integers.
//!
//! Both stages are deterministic per seed (shuffle, augmentation, dropout drawn from generators
//! seeded by `(seed, stage, epoch)`).

use anyhow::{Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;

use super::centroids::SharedLayer;
use super::fold::FloatNet;
use super::layers::{conv_names, convs, convs_mut, set_weight, sparsity_of, unfolded};
use super::prune::{apply_masks, relative_magnitude_masks};
use super::recipe::{FinetuneConfig, layer_targets};
use super::resume::{Checkpointing, Progress, Stopped, read_progress};
use super::retrain::{Constraint, FinetuneStage, Loop, StageStart, train_constrained};
use crate::data::{Normalization, Split};
use crate::eval::evaluate;
use crate::store::TrainedWeights;
use crate::train::checkpoint::write_checkpoint_dir;
use crate::train::model::{SqueezeNet, SqueezeNetConfig};

/// What the training stages produced.
#[derive(Debug)]
pub struct Finetuned {
    /// The folded float network whose weights are `s_c * round(centroid)`: the int8 stage
    /// recovers exactly the shared values.
    pub float: FloatNet,
    /// Float validation accuracy after each stage.
    pub stages: Vec<FinetuneStage>,
    /// Codebook sizes per layer (distinct values, 0 included).
    pub codebook_sizes: Vec<usize>,
    /// Codebook bits of every conv (at least `log2` of its codebook size).
    pub layer_bits: Vec<u8>,
}

/// `4`, or `4 (per layer: 3 for fire*.expand3x3)` when some layers differ.
fn bits_label(cfg: &FinetuneConfig) -> String {
    if cfg.layer_bits.is_empty() {
        return cfg.bits.to_string();
    }
    let per: Vec<String> = cfg
        .layer_bits
        .iter()
        .map(|l| format!("{} for {}", l.value, l.pattern))
        .collect();
    format!("{} (per layer: {})", cfg.bits, per.join(", "))
}

/// Runs pruning + fine-tuning, then weight sharing + centroid fine-tuning, on the trained
/// weights `source` (a run's `best.bpk`), checkpointing into `ck` when given.
pub fn finetune(
    source: &TrainedWeights,
    model_cfg: &SqueezeNetConfig,
    train: &Split,
    val: &Split,
    norm: Normalization,
    cfg: &FinetuneConfig,
    ck: Option<&Checkpointing>,
) -> Result<Finetuned> {
    cfg.validate()?;
    let train = match cfg.train_limit {
        Some(n) => train.slice(0..n.min(train.len())),
        None => train.clone(),
    };
    let device = Device::flex().autodiff();
    let net = source.load_into(SqueezeNet::new(model_cfg, &device))?;
    let teacher = (cfg.distill > 0.0).then(|| net.valid());
    let (net, stages, resumed) = start(net, source, model_cfg, cfg, ck, &device)?;
    let mut l = Loop {
        cfg,
        train: &train,
        val,
        norm,
        stage: 1,
        teacher: teacher.as_ref(),
    };
    let targets = layer_targets(cfg, &conv_names(model_cfg))?;
    if targets.len() != convs(&net).len() {
        bail!(
            "internal error: {} conv names for {} convs",
            targets.len(),
            convs(&net).len()
        );
    }
    let mut pruning = Pruning {
        source,
        ck,
        targets: &targets,
        stages,
        resumed,
        epochs_this_call: 0,
    };
    let net = if targets.iter().any(|&(s, _)| s > 0.0) {
        pruning.rounds(net, &mut l, &device)?
    } else {
        net
    };
    let mut stages = pruning.stages;
    let bits: Vec<u8> = targets.iter().map(|&(_, b)| b).collect();
    let (plain, layers) = share(&net, &bits, model_cfg, &mut l, &mut stages, &device)?;
    let plain_cfg = SqueezeNetConfig {
        batch_norm: false,
        ..model_cfg.clone()
    };
    let float = FloatNet::from_burn(&plain.valid(), &plain_cfg);
    Ok(Finetuned {
        float,
        stages,
        codebook_sizes: layers.iter().map(codebook_size).collect(),
        layer_bits: bits,
    })
}

/// A checkpoint's progress and optimiser, when the run resumes from one.
type Resumed = Option<(Progress, ModuleOptimizer)>;

/// Where pruning starts: the trained network at round 1, or (with `resume`) the checkpoint's
/// network, stages, round, epoch and optimiser. Without `resume`, refuses to overwrite a
/// checkpoint.
fn start(
    net: SqueezeNet,
    source: &TrainedWeights,
    model_cfg: &SqueezeNetConfig,
    cfg: &FinetuneConfig,
    ck: Option<&Checkpointing>,
    device: &Device,
) -> Result<(SqueezeNet, Vec<FinetuneStage>, Resumed)> {
    let Some(ck) = ck else {
        return Ok((net, Vec::new(), None));
    };
    if !ck.resume {
        ck.refuse_overwrite()?;
        return Ok((net, Vec::new(), None));
    }
    let (p, saved, optim) = read_progress(&ck.dir, cfg, &source.sha256, model_cfg, device)?;
    eprintln!(
        "resuming {}: round {} of {}, {} of its {} epoch(s) done",
        ck.dir.display(),
        p.round,
        cfg.prune_rounds,
        p.epochs_done,
        cfg.prune_epochs
    );
    let stages = p.stages.clone();
    Ok((saved, stages, Some((p, optim))))
}

/// The pruning rounds' state: the stages so far, the checkpoint a run resumes from, and the
/// epochs this invocation ran (for `stop_after`).
struct Pruning<'a> {
    source: &'a TrainedWeights,
    ck: Option<&'a Checkpointing>,
    /// Final pruning target and codebook bits of every conv.
    targets: &'a [(f64, u8)],
    stages: Vec<FinetuneStage>,
    resumed: Resumed,
    epochs_this_call: usize,
}

impl Pruning<'_> {
    /// Every pruning round from the first (or the resumed) one to the last.
    fn rounds(
        &mut self,
        mut net: SqueezeNet,
        l: &mut Loop<'_>,
        device: &Device,
    ) -> Result<SqueezeNet> {
        let cfg = l.cfg;
        let first_round = self.resumed.as_ref().map_or(1, |(p, _)| p.round);
        for r in first_round..=cfg.prune_rounds {
            net = self.round(net, r, l, device)?;
        }
        Ok(net)
    }

    /// Round `r`: the masks of this round's fractions applied, then `prune_epochs` of masked
    /// fine-tuning (checkpointed after every epoch), then the stage's validation accuracy.
    fn round(
        &mut self,
        net: SqueezeNet,
        r: usize,
        l: &mut Loop<'_>,
        device: &Device,
    ) -> Result<SqueezeNet> {
        let cfg = l.cfg;
        let started = std::time::Instant::now();
        let step = cfg.prune_schedule.progress(r, cfg.prune_rounds);
        let fractions: Vec<f64> = self.targets.iter().map(|&(s, _)| s * step).collect();
        // On a resumed round the checkpoint holds exactly this round's zeros, and the
        // masks (already-zero weights first) come out the same.
        let masks = relative_magnitude_masks(&net, &fractions, cfg.prune_block);
        let net = apply_masks(net, &masks, device);
        l.stage = r as u64;
        // Uniform targets are named by their fraction; per-layer ones by the share of all
        // weights now pruned.
        let fraction = if cfg.layer_sparsity.is_empty() {
            cfg.sparsity * step
        } else {
            sparsity_of(&net)
        };
        let label = format!("prune {:.0} %", 100.0 * fraction);
        let (mut start, earlier_seconds) = match self.resumed.take() {
            Some((p, optim)) => (
                StageStart {
                    epochs_done: p.epochs_done,
                    steps: p.steps,
                    optim: Some(optim),
                    after_epoch: None,
                },
                p.round_seconds,
            ),
            None => (StageStart::default(), 0.0),
        };
        let done_before = self.stages.clone();
        let (source, ck) = (self.source, self.ck);
        let epochs_this_call = &mut self.epochs_this_call;
        let mut save = |n: &SqueezeNet, o: &ModuleOptimizer, e: usize, s: usize| {
            *epochs_this_call += 1;
            let Some(ck) = ck else {
                return Ok(());
            };
            let p = Progress {
                config: cfg.clone(),
                source_sha256: source.sha256.clone(),
                round: r,
                epochs_done: e,
                steps: s,
                round_seconds: earlier_seconds + started.elapsed().as_secs_f64(),
                stages: done_before.clone(),
            };
            write_checkpoint_dir(&ck.dir, n, o, &p)?;
            if ck.stop_after.is_some_and(|n| *epochs_this_call >= n) {
                return Err(Stopped {
                    epochs: *epochs_this_call,
                    round: r,
                    rounds: cfg.prune_rounds,
                }
                .into());
            }
            Ok(())
        };
        start.after_epoch = Some(&mut save);
        let net = train_constrained(
            net,
            l,
            cfg.prune_epochs,
            cfg.lr,
            Constraint::Masks(&masks),
            &label,
            start,
        )?;
        let val_acc = evaluate(&net, l.val, l.norm, &Device::flex()).acc;
        self.stages.push(FinetuneStage {
            stage: format!(
                "pruned {:.0} % + {} epoch(s) fine-tuning",
                100.0 * fraction,
                cfg.prune_epochs
            ),
            sparsity: sparsity_of(&net),
            val_acc,
            seconds: earlier_seconds + started.elapsed().as_secs_f64(),
        });
        Ok(net)
    }
}

/// Weight sharing: BatchNorm folded, every conv clustered into its `bits[i]` shared values,
/// evaluated, then (with `share_epochs`) the centroids fine-tuned; finally the centroids
/// rounded to int8. Returns the BatchNorm-free network holding the shared weights, and the
/// layers.
fn share(
    net: &SqueezeNet,
    bits: &[u8],
    model_cfg: &SqueezeNetConfig,
    l: &mut Loop<'_>,
    stages: &mut Vec<FinetuneStage>,
    device: &Device,
) -> Result<(SqueezeNet, Vec<SharedLayer>)> {
    let cfg = l.cfg;
    let started = std::time::Instant::now();
    let folded = FloatNet::from_burn(&net.valid(), model_cfg);
    let mut layers: Vec<SharedLayer> = folded
        .convs()
        .iter()
        .zip(bits)
        .map(|(c, &bits)| {
            SharedLayer::new(&c.weight, c.cin * c.k * c.k, bits, cfg.kmeans_iterations)
        })
        .collect();
    let mut plain = unfolded(&folded, model_cfg, device);
    for (conv, layer) in convs_mut(&mut plain).into_iter().zip(&layers) {
        set_weight(conv, layer.weights(), device);
    }
    let shared_acc = evaluate(&plain, l.val, l.norm, &Device::flex()).acc;
    stages.push(FinetuneStage {
        stage: format!(
            "k-means {} bits (0 and +-127 fixed), no fine-tuning",
            bits_label(cfg)
        ),
        sparsity: sparsity_of(&plain),
        val_acc: shared_acc,
        seconds: started.elapsed().as_secs_f64(),
    });
    if cfg.share_epochs == 0 {
        round_centroids(&mut plain, &mut layers, device);
        return Ok((plain, layers));
    }
    let started = std::time::Instant::now();
    l.stage = 100;
    plain = train_constrained(
        plain,
        l,
        cfg.share_epochs,
        cfg.bias_lr,
        Constraint::Shared(&mut layers),
        "centroids",
        StageStart::default(),
    )?;
    round_centroids(&mut plain, &mut layers, device);
    let val_acc = evaluate(&plain, l.val, l.norm, &Device::flex()).acc;
    stages.push(FinetuneStage {
        stage: format!(
            "centroids fine-tuned {} epoch(s), rounded to int8",
            cfg.share_epochs
        ),
        sparsity: sparsity_of(&plain),
        val_acc,
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok((plain, layers))
}

/// Rounds every layer's centroids to int8 and writes the weights they give into `net`.
fn round_centroids(net: &mut SqueezeNet, layers: &mut [SharedLayer], device: &Device) {
    for (conv, layer) in convs_mut(net).into_iter().zip(layers.iter_mut()) {
        layer.round();
        set_weight(conv, layer.weights(), device);
    }
}

/// Distinct shared values a layer's weights take (0 included).
fn codebook_size(l: &SharedLayer) -> usize {
    let mut v: Vec<i64> = l
        .index
        .iter()
        .map(|&k| l.centroids[k as usize] as i64)
        .collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}
