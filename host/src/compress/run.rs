//! `sqz compress`: from a trained run to a blob, one stage at a time, each evaluated.
//!
//! Stages, in the order of the Deep Compression paper as far as they exist today:
//! 1. float: the trained network (best-by-validation weights), BatchNorm folded into the convs
//!    (`sqz verify` checks the folded ONNX against burn);
//! 2. int8: per-channel weight scales, activation ranges calibrated on training images, dense
//!    weights, run on the `shared` kernels;
//! 3. magnitude pruning per layer (post-training: no fine-tuning yet);
//! 4. k-means weight sharing per layer on the int8 values, linear initialisation (no centroid
//!    fine-tuning yet);
//! 5. the smallest of codebook, Huffman-coded codebook, sparse and Huffman-coded sparse storage,
//!    per layer. The blob decodes to exactly the weights evaluated in stage 4 (checked).
//!
//! Every stage reports bytes, ratio to float32, bits per weight and validation accuracy; the
//! final blob is also scored on the test set. Nothing in `--out` is overwritten unless every
//! stage succeeded.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use shared::encode::{OwnedWeights, SparseSource};

use super::blob::{BlobBreakdown, blob_breakdown, decoded_weights};
use super::finetune::finetune;
use super::fold::FloatNet;
use super::quantize::{Ranges, WeightPlan, calibrate, dense_plan, quantize};
use super::recipe::{CompressConfig, FinetuneConfig};
use super::recode::{Encoding, recode};
use super::resume::Checkpointing;
use super::sharing::{SharingConfig, prune, share, smallest_encoding};
use crate::data::{Dataset, Normalization, Split};
use crate::eval::{evaluate, evaluate_blob};
use crate::store::TrainedWeights;
use crate::train::checkpoint::read_run_config;
use crate::train::model::SqueezeNet;
use crate::train::recipe::TrainConfig;

/// One row of the size/accuracy report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageReport {
    /// Stage name.
    pub stage: String,
    /// Bytes of the weights (and biases) as stored at this stage.
    pub bytes: usize,
    /// float32 bytes / `bytes`.
    pub ratio: f64,
    /// Stored bits per weight.
    pub bits_per_weight: f64,
    /// Validation accuracy.
    pub val_acc: f64,
}

/// What `compress` produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompressReport {
    /// The settings.
    pub config: CompressConfig,
    /// Stage by stage.
    pub stages: Vec<StageReport>,
    /// Test accuracy of the final blob on the `shared` kernels.
    pub test_acc: f64,
    /// Test accuracy of the float network.
    pub float_test_acc: f64,
    /// Blob bytes (whole file).
    pub blob_bytes: usize,
    /// Weights in the network.
    pub weights: usize,
    /// Arena bytes for one inference.
    pub arena_bytes: usize,
    /// Where the blob's bytes go.
    #[serde(default)]
    pub breakdown: BlobBreakdown,
}

/// Outputs of a compression run.
#[derive(Debug)]
pub struct Compressed {
    /// The report.
    pub report: CompressReport,
    /// The blob.
    pub blob: Vec<u8>,
    /// The folded float network.
    pub float: FloatNet,
    /// Class names, in label order (from the training run).
    pub classes: Vec<String>,
}

/// Runs every stage on a trained run.
pub fn compress(run: &Path, data: &Dataset, cfg: &CompressConfig) -> Result<Compressed> {
    compress_resumable(run, data, cfg, None)
}

/// [`compress`], with the fine-tuning stages checkpointed into `ck` after every epoch (and
/// resumed from it when asked). The caller removes the checkpoint once the outputs are written.
pub fn compress_resumable(
    run: &Path,
    data: &Dataset,
    cfg: &CompressConfig,
    ck: Option<&Checkpointing>,
) -> Result<Compressed> {
    let (tcfg, source) = read_source(run, cfg, ck)?;
    let net = source.load_into(SqueezeNet::new(&tcfg.model, &Device::flex()))?;
    let m = &tcfg.model;
    data.check_model(m.in_channels, m.input_size, m.num_classes)
        .with_context(|| format!("compressing {}", run.display()))?;
    let (train_split, val) = data.train_val(tcfg.val_count);
    if tcfg.normalization != Normalization::Unit {
        bail!(
            "{}: the int8 pipeline needs [0,1] input scaling (normalization \"Unit\"); this run used {:?}",
            run.display(),
            tcfg.normalization
        );
    }
    let device = Device::flex();
    let float_eval = evaluate(&net, &val, tcfg.normalization, &device);
    let float = FloatNet::from_burn(&net, &tcfg.model);
    let mut stages = Stages {
        rows: Vec::new(),
        weights: float.weight_count(),
        f32_bytes: float.param_count() * 4,
    };
    stages.rows.push(StageReport {
        stage: "float32 (trained)".into(),
        bytes: stages.f32_bytes,
        ratio: 1.0,
        bits_per_weight: 32.0,
        val_acc: float_eval.acc,
    });
    eprintln!("stage float: validation {:.2} %", 100.0 * float_eval.acc);

    // With fine-tuning, the training stages prune and share in float; the int8 stages then
    // find exactly their shared values (k-means on at most 2^bits distinct values is exact).
    let (work, sc, layer_bits) = match &cfg.finetune {
        Some(ft) => {
            let split = (&train_split, &val);
            finetune_stages(&source, &tcfg, &float, split, ft, ck, cfg, &mut stages)?
        }
        None => {
            let bits = vec![cfg.sharing.bits; float.convs().len()];
            (float.clone(), cfg.sharing, bits)
        }
    };

    // int8, dense; then pruning and weight sharing (evaluated on dense twins holding exactly
    // the weights the compressed encodings decode to); then the smallest encoding per layer.
    let calib = calib_subset(&train_split, cfg.calib_images);
    let ranges = calibrate(&work, &calib, cfg.calib_images);
    let (last_acc, last_weights) = int8_stages(&work, &ranges, &val, cfg, &sc, &mut stages)?;
    let blob = final_blob(&work, &ranges, cfg.model_id, &sc, &layer_bits)?;
    // The compressed blob must decode to exactly the weights just evaluated.
    if decoded_weights(&blob)? != last_weights {
        bail!("internal error: the compressed encodings do not decode to the shared weights");
    }
    stages.push(
        if sc.fast_decode {
            "fastest to decode (packed codebook indices, sparse rows where zero skipping wins)"
        } else {
            "Huffman / sparse coding (smallest per layer)"
        },
        blob.len(),
        last_acc,
    );
    eprintln!("stage coding: blob {} bytes", blob.len());

    let (test_acc, _) = evaluate_blob(&blob, &data.test)?;
    let float_test_acc = evaluate(&net, &data.test, tcfg.normalization, &device).acc;
    let model = shared::Model::from_bytes(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Compressed {
        report: CompressReport {
            config: cfg.clone(),
            stages: stages.rows,
            test_acc,
            float_test_acc,
            blob_bytes: blob.len(),
            weights: stages.weights,
            arena_bytes: model.arena_len(),
            breakdown: blob_breakdown(&blob)?,
        },
        blob,
        float,
        classes: tcfg.classes.clone(),
    })
}

/// The run's config and its `best.bpk`, read once: a checkpoint is checked against these
/// bytes' hash, and the network (float and fine-tuned) loads from them. A checkpoint that
/// cannot be resumed (or would be overwritten) fails here, not after the float evaluation.
fn read_source(
    run: &Path,
    cfg: &CompressConfig,
    ck: Option<&Checkpointing>,
) -> Result<(TrainConfig, TrainedWeights)> {
    let read_source = || TrainedWeights::read(&run.join("best.bpk"));
    let mut source = None;
    if let (Some(ft), Some(ck)) = (&cfg.finetune, ck) {
        let weights = read_source()?;
        ck.check(ft, &weights)?;
        source = Some(weights);
    }
    let tcfg = read_run_config(run)?;
    let source = match source {
        Some(weights) => weights,
        None => read_source()?,
    };
    Ok((tcfg, source))
}

/// The report's rows so far, and what their sizes are measured against.
struct Stages {
    rows: Vec<StageReport>,
    /// Weights in the network.
    weights: usize,
    /// Bytes of the float32 weights and biases.
    f32_bytes: usize,
}

impl Stages {
    fn push(&mut self, name: &str, bytes: usize, val_acc: f64) {
        push_stage(
            &mut self.rows,
            name,
            bytes,
            self.f32_bytes,
            self.weights,
            val_acc,
        );
    }
}

/// The training stages (pruning and weight sharing with fine-tuning), one report row each.
/// Returns the network holding the shared values, the settings of the int8 stages and the
/// codebook bits of every conv.
#[allow(clippy::too_many_arguments)]
fn finetune_stages(
    source: &TrainedWeights,
    tcfg: &TrainConfig,
    float: &FloatNet,
    (train_split, val): (&Split, &Split),
    ft: &FinetuneConfig,
    ck: Option<&Checkpointing>,
    cfg: &CompressConfig,
    stages: &mut Stages,
) -> Result<(FloatNet, SharingConfig, Vec<u8>)> {
    let done = finetune(
        source,
        &tcfg.model,
        train_split,
        val,
        tcfg.normalization,
        ft,
        ck,
    )?;
    let weights = stages.weights;
    let biases = float.param_count() - weights;
    // Codebook bits averaged over the weights (per-layer bits may differ).
    let mean_bits = float
        .convs()
        .iter()
        .zip(&done.layer_bits)
        .map(|(c, &b)| c.weight.len() as f64 * f64::from(b))
        .sum::<f64>()
        / weights.max(1) as f64;
    for st in &done.stages {
        // Float stages as the paper stores them: each nonzero with a 4-bit relative
        // index, as float32 (pruned) or as a codebook index (shared).
        let nnz = (weights as f64 * (1.0 - st.sparsity)).round();
        let value_bits = if st.stage.starts_with("pruned") {
            32.0
        } else {
            mean_bits
        };
        let bytes = (nnz * (value_bits + 4.0) / 8.0).ceil() as usize + 4 * biases;
        stages.push(&st.stage, bytes, st.val_acc);
    }
    let sc = SharingConfig {
        prune: 0.0,
        bits: ft.bits,
        ..cfg.sharing
    };
    Ok((done.float, sc, done.layer_bits))
}

/// The int8 stages, each evaluated on the `shared` kernels: dense, then (post-training only)
/// pruned and k-means shared, each sized as it would be stored. Returns the last stage's
/// validation accuracy and decoded weights.
fn int8_stages(
    work: &FloatNet,
    ranges: &Ranges,
    val: &Split,
    cfg: &CompressConfig,
    sc: &SharingConfig,
    stages: &mut Stages,
) -> Result<(f64, Vec<Vec<i8>>)> {
    let sc = *sc;
    let pruned_plan = |_: usize, w: &[i8], _: usize| -> Result<OwnedWeights> {
        Ok(OwnedWeights::dense(&prune(w, sc.prune)))
    };
    let shared_plan = |_: usize, w: &[i8], _: usize| -> Result<OwnedWeights> {
        Ok(OwnedWeights::dense(&share(w, &sc).0))
    };
    // How each stage stores its weights, for its size: pruned weights as sparse int8 with
    // 4-bit gaps; shared weights as packed codebook indices (sparse when pruned).
    let pruned_size = |_: usize, w: &[i8], k: usize| -> Result<OwnedWeights> {
        let p = prune(w, sc.prune);
        OwnedWeights::sparse(SparseSource::Raw(&p), w.len() / k, k, 4)
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let shared_size = |_: usize, w: &[i8], k: usize| -> Result<OwnedWeights> {
        let (_, idx, c) = share(w, &sc);
        let bits = sc.bits.max(2);
        let r = if sc.prune > 0.0 {
            let src = SparseSource::Codebook {
                centroids: &c,
                bits,
                indices: &idx,
            };
            OwnedWeights::sparse(src, w.len() / k, k, 4)
        } else {
            OwnedWeights::codebook(&c, bits, &idx)
        };
        r.map_err(|e| anyhow::anyhow!("{e}"))
    };
    type Plan<'a> = &'a WeightPlan<'a>;
    let mut stage_plans: Vec<(String, Plan<'_>, Plan<'_>)> =
        vec![("int8 per-channel, dense".into(), &dense_plan, &dense_plan)];
    if cfg.finetune.is_some() {
        stage_plans[0].0 = "int8 per-channel (the shared values), dense".into();
    } else if sc.prune > 0.0 {
        stage_plans.push((
            format!("pruned {:.0} % (sparse, 4-bit gaps)", 100.0 * sc.prune),
            &pruned_plan,
            &pruned_size,
        ));
    }
    if cfg.finetune.is_none() {
        stage_plans.push((
            format!("k-means weight sharing, {} bits", sc.bits),
            &shared_plan,
            &shared_size,
        ));
    }
    let mut last_acc = 0.0;
    let mut last_weights: Vec<Vec<i8>> = Vec::new();
    for (name, plan, size_plan) in &stage_plans {
        let q = quantize(work, ranges, *plan)?;
        let b = q.blob(cfg.model_id)?;
        let (acc, _) = evaluate_blob(&b, val)?;
        let bytes = quantize(work, ranges, *size_plan)?
            .blob(cfg.model_id)?
            .len();
        stages.push(name, bytes, acc);
        eprintln!(
            "stage {name}: validation {:.2} % on the shared kernels, {bytes} bytes",
            100.0 * acc
        );
        last_acc = acc;
        last_weights = decoded_weights(&b)?;
    }
    Ok((last_acc, last_weights))
}

/// The final blob: every conv shared with its own codebook bits and stored the smallest way,
/// or (`fast_decode`) the way the device decodes fastest.
fn final_blob(
    work: &FloatNet,
    ranges: &Ranges,
    model_id: u64,
    sc: &SharingConfig,
    layer_bits: &[u8],
) -> Result<Vec<u8>> {
    let final_plan = |i: usize, w: &[i8], k: usize| -> Result<OwnedWeights> {
        let sc = SharingConfig {
            bits: layer_bits.get(i).copied().unwrap_or(sc.bits),
            ..*sc
        };
        let (_, idx, c) = share(w, &sc);
        if sc.fast_decode {
            // Placeholder, re-stored below by `recode` (which knows each conv's output size).
            OwnedWeights::codebook(&c, sc.bits.max(2), &idx).map_err(|e| anyhow::anyhow!("{e}"))
        } else {
            smallest_encoding(&idx, &c, sc.bits, w.len() / k, k)
        }
    };
    let q = quantize(work, ranges, &final_plan)?;
    let blob = q.blob(model_id)?;
    if sc.fast_decode {
        // The fastest encoding of a conv depends on its output size, which the blob knows.
        return recode(&blob, Encoding::FastDecode, []);
    }
    Ok(blob)
}

fn push_stage(
    stages: &mut Vec<StageReport>,
    name: &str,
    bytes: usize,
    f32_bytes: usize,
    weights: usize,
    val_acc: f64,
) {
    stages.push(StageReport {
        stage: name.into(),
        bytes,
        ratio: f32_bytes as f64 / bytes as f64,
        bits_per_weight: 8.0 * bytes as f64 / weights as f64,
        val_acc,
    });
}

/// Every `len / n`-th training image: a deterministic calibration subset covering all classes.
fn calib_subset(split: &Split, n: usize) -> Split {
    let step = (split.len() / n.max(1)).max(1);
    split.pick((0..split.len()).step_by(step).take(n))
}

impl CompressReport {
    /// The size/accuracy table as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| stage | bytes | ratio to float32 | bits/weight | validation accuracy |\n|---|---|---|---|---|\n",
        );
        for st in &self.stages {
            s.push_str(&format!(
                "| {} | {} | {:.1}x | {:.2} | {:.2} % |\n",
                st.stage,
                st.bytes,
                st.ratio,
                st.bits_per_weight,
                100.0 * st.val_acc
            ));
        }
        s.push_str(&format!(
            "\nFinal blob: {} bytes, arena {} bytes; test accuracy {:.2} % (float {:.2} %).\n",
            self.blob_bytes,
            self.arena_bytes,
            100.0 * self.test_acc,
            100.0 * self.float_test_acc
        ));
        let b = &self.breakdown;
        if b.weights > 0 {
            s.push_str(&format!("\nBlob bytes: {}.\n", b.describe(self.weights)));
        }
        s
    }
}
