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

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::data::{FashionMnist, Split};
use crate::finetune::FinetuneConfig;
use crate::fold::FloatNet;
use crate::quantize::{calibrate, dense_plan, evaluate_blob, quantize};
use crate::sharing::{SharingConfig, share, smallest_encoding};
use crate::train::{TrainConfig, evaluate, load_weights, write_atomic};
use shared::encode::{OwnedWeights, SparseSource};

/// Settings of a compression run (written as `compress.json` beside the blob).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressConfig {
    /// Training images used to calibrate activation ranges.
    pub calib_images: usize,
    /// Model id stored in the blob header.
    pub model_id: u64,
    /// Pruning and weight sharing after training (ignored when `finetune` is set).
    pub sharing: SharingConfig,
    /// Pruning and weight sharing with fine-tuning (the paper's way); `None`: post-training only.
    #[serde(default)]
    pub finetune: Option<FinetuneConfig>,
}

impl CompressConfig {
    /// The recipe of the shipped model in `models/` (and of `sqz pipeline`).
    /// Weights are stored the way the device runs fastest (`fast-decode`: packed 4-bit codebook
    /// indices, sparse rows where zero skipping wins); `sqz recode --encoding smallest` gives
    /// the Huffman-sparse twin with the same logits.
    pub fn shipped() -> Self {
        // Pruned per layer along the measured sensitivity (models/sensitivity/): least in the
        // squeezes (every path into their fire module goes through them), most in the late 1x1
        // expands and in the 3x3 expands of fire6-9 (64 % of all weights), whose shared values
        // take 3-bit codebooks; the cubic schedule takes the large steps first.
        let layer_sparsity = [
            "fire4.*=0.8",
            "fire4.squeeze=0.65",
            "fire4.expand3x3=0.817",
            "fire5.*=0.8",
            "fire5.squeeze=0.7",
            "fire6.*=0.9",
            "fire7.*=0.9",
            "fire8.*=0.9",
            "fire9.*=0.9",
            "fire6.squeeze=0.8",
            "fire6.expand1x1=0.95",
            "fire6.expand3x3=0.96",
            "fire7.squeeze=0.85",
            "fire7.expand1x1=0.95",
            "fire7.expand3x3=0.975",
            "fire8.expand1x1=0.98",
            "fire8.expand3x3=0.9855",
            "fire9.expand1x1=0.85",
            "fire9.expand3x3=0.98",
            "classifier=0.75",
        ]
        .iter()
        .map(|s| s.parse().expect("a valid layer setting"))
        .collect();
        let layer_bits = (6..=9)
            .map(|f| {
                format!("fire{f}.expand3x3=3")
                    .parse()
                    .expect("a valid layer setting")
            })
            .collect();
        Self {
            sharing: SharingConfig {
                fast_decode: true,
                ..SharingConfig::default()
            },
            finetune: Some(FinetuneConfig {
                sparsity: 0.65,
                layer_sparsity,
                layer_bits,
                prune_schedule: crate::finetune::PruneSchedule::Cubic,
                prune_rounds: 4,
                prune_epochs: 4,
                share_epochs: 3,
                bits: 4,
                ..Default::default()
            }),
            ..Self::default()
        }
    }
}

impl Default for CompressConfig {
    fn default() -> Self {
        Self {
            calib_images: 2_000,
            model_id: 1,
            sharing: SharingConfig::default(),
            finetune: None,
        }
    }
}

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

/// Where a blob's bytes go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlobBreakdown {
    /// Weight values: dense bytes, packed indices, Huffman streams, sparse entries, codebooks,
    /// code-length tables.
    pub weights: usize,
    /// Row indexes of sparse and Huffman encodings (u32 per output channel).
    pub row_offsets: usize,
    /// Per output channel: i32 bias, f32 weight scale, f32 multiplier.
    pub per_channel: usize,
    /// Header, layer graph, quantisation parameters.
    pub other: usize,
}

impl BlobBreakdown {
    /// One sentence for reports: where the bytes go, and the compression of the `weights`
    /// weights against float32, without and with the row indexes that locate sparse rows.
    pub fn describe(&self, weights: usize) -> String {
        let f32_bytes = (4 * weights) as f64;
        let with_rows = self.weights + self.row_offsets;
        format!(
            "weights (values, indices, codes, codebooks) {} ({:.1}x below the float32 weights, \
             {:.2} bits per weight), row offsets {} (with them {}: {:.1}x), per-channel bias / \
             scale / multiplier {}, header and graph {}",
            self.weights,
            f32_bytes / self.weights.max(1) as f64,
            8.0 * self.weights as f64 / weights.max(1) as f64,
            self.row_offsets,
            with_rows,
            f32_bytes / with_rows.max(1) as f64,
            self.per_channel,
            self.other
        )
    }
}

/// Splits a blob's bytes into weights, row offsets, per-channel parameters and the rest.
pub fn blob_breakdown(blob: &[u8]) -> Result<BlobBreakdown> {
    use shared::format::{Bypass, ConvDesc, LayerDesc};
    use shared::weights::{Values, WeightsDesc};
    let model = shared::Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut b = BlobBreakdown::default();
    let mut conv = |c: &ConvDesc<'_>| {
        b.per_channel += c.bias.len() + c.w_scales.len() + c.multipliers.len();
        let cb = |v: &Values<'_>| match v {
            Values::Raw => 0,
            Values::Codebook { centroids, .. } => centroids.len(),
        };
        match &c.weights {
            WeightsDesc::Dense { data } => b.weights += data.len(),
            WeightsDesc::Codebook {
                centroids, indices, ..
            } => b.weights += centroids.len() + indices.len(),
            WeightsDesc::Sparse {
                values,
                row_ptr,
                entries,
                ..
            } => {
                b.weights += cb(values) + entries.len();
                b.row_offsets += row_ptr.len();
            }
            WeightsDesc::HuffSparse {
                values,
                gap_lengths,
                value_lengths,
                row_ptr,
                row_bits,
                stream,
            } => {
                b.weights += cb(values) + gap_lengths.len() + value_lengths.len() + stream.len();
                b.row_offsets += row_ptr.len() + row_bits.len();
            }
            WeightsDesc::HuffCodebook {
                centroids,
                lengths,
                row_bits,
                stream,
            } => {
                b.weights += centroids.len() + lengths.len() + stream.len();
                b.row_offsets += row_bits.len();
            }
        }
    };
    for info in model.layers() {
        match &info.desc {
            LayerDesc::Conv(c) => conv(c),
            LayerDesc::Fire(f) => {
                conv(&f.squeeze);
                conv(&f.expand1);
                conv(&f.expand3);
                if let Bypass::Complex { conv: c, .. } = &f.bypass {
                    conv(c);
                }
            }
            _ => {}
        }
    }
    b.other = blob.len() - b.weights - b.row_offsets - b.per_channel;
    Ok(b)
}

/// Reads a run directory's config and best weights, with errors that say what is wrong.
pub fn load_run(run: &Path) -> Result<(TrainConfig, crate::model::SqueezeNet)> {
    let cfg = read_run_config(run)?;
    let weights = run.join("best.bpk");
    let net = load_weights(&cfg.model, &weights, &burn::tensor::Device::flex())?;
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

/// Outputs of a compression run.
#[derive(Debug)]
pub struct Compressed {
    /// The report.
    pub report: CompressReport,
    /// The blob.
    pub blob: Vec<u8>,
    /// The folded float network.
    pub float: FloatNet,
}

/// Runs every stage on a trained run.
pub fn compress(run: &Path, data: &FashionMnist, cfg: &CompressConfig) -> Result<Compressed> {
    compress_resumable(run, data, cfg, None)
}

/// [`compress`], with the fine-tuning stages checkpointed into `ck` after every epoch (and
/// resumed from it when asked). The caller removes the checkpoint once the outputs are written.
pub fn compress_resumable(
    run: &Path,
    data: &FashionMnist,
    cfg: &CompressConfig,
    ck: Option<&crate::finetune::Checkpointing>,
) -> Result<Compressed> {
    // best.bpk is read once: a checkpoint is checked against these bytes' hash, and the
    // network (float and fine-tuned) loads from them.
    let read_source = || crate::train::TrainedWeights::read(&run.join("best.bpk"));
    let mut source = None;
    // A checkpoint that cannot be resumed (or would be overwritten) fails here, not after
    // the float evaluation.
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
    let net = source.load(&tcfg.model, &burn::tensor::Device::flex())?;
    let (train_split, val) = data.train_val(tcfg.val_count);
    if tcfg.normalization != crate::data::Normalization::Unit {
        bail!(
            "{}: the int8 pipeline needs [0,1] input scaling (normalization \"Unit\"); this run used {:?}",
            run.display(),
            tcfg.normalization
        );
    }
    let device = burn::tensor::Device::flex();
    let mut stages = Vec::new();
    let float_eval = evaluate(&net, &val, tcfg.normalization, &device);
    let float = FloatNet::from_burn(&net, &tcfg.model);
    let weights = float.weight_count();
    let f32_bytes = float.param_count() * 4;
    stages.push(StageReport {
        stage: "float32 (trained)".into(),
        bytes: f32_bytes,
        ratio: 1.0,
        bits_per_weight: 32.0,
        val_acc: float_eval.acc,
    });
    eprintln!("stage float: validation {:.2} %", 100.0 * float_eval.acc);

    // With fine-tuning, the training stages prune and share in float; the int8 stages then
    // find exactly their shared values (k-means on at most 2^bits distinct values is exact).
    let (work, sc, layer_bits) = match &cfg.finetune {
        Some(ft) => {
            let done = crate::finetune::finetune(
                &source,
                &tcfg.model,
                &train_split,
                &val,
                tcfg.normalization,
                ft,
                ck,
            )?;
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
                push_stage(
                    &mut stages,
                    &st.stage,
                    bytes,
                    f32_bytes,
                    weights,
                    st.val_acc,
                );
            }
            let sc = SharingConfig {
                prune: 0.0,
                bits: ft.bits,
                ..cfg.sharing
            };
            (done.float, sc, done.layer_bits)
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
    let pruned_plan = |_: usize, w: &[i8], _: usize| -> Result<OwnedWeights> {
        Ok(OwnedWeights::dense(&crate::sharing::prune(w, sc.prune)))
    };
    let shared_plan = |_: usize, w: &[i8], _: usize| -> Result<OwnedWeights> {
        Ok(OwnedWeights::dense(&share(w, &sc).0))
    };
    let final_plan = |i: usize, w: &[i8], k: usize| -> Result<OwnedWeights> {
        let sc = SharingConfig {
            bits: layer_bits.get(i).copied().unwrap_or(sc.bits),
            ..sc
        };
        let (_, idx, c) = share(w, &sc);
        if sc.fast_decode {
            // Placeholder, re-stored below by `recode` (which knows each conv's output size).
            OwnedWeights::codebook(&c, sc.bits.max(2), &idx).map_err(|e| anyhow::anyhow!("{e}"))
        } else {
            smallest_encoding(&idx, &c, sc.bits, w.len() / k, k)
        }
    };
    // How each stage stores its weights, for its size: pruned weights as sparse int8 with
    // 4-bit gaps; shared weights as packed codebook indices (sparse when pruned).
    let pruned_size = |_: usize, w: &[i8], k: usize| -> Result<OwnedWeights> {
        let p = crate::sharing::prune(w, sc.prune);
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
    type Plan<'a> = &'a crate::quantize::WeightPlan<'a>;
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
        let q = quantize(&work, &ranges, *plan)?;
        let b = q.blob(cfg.model_id)?;
        let (acc, _) = evaluate_blob(&b, &val)?;
        let bytes = quantize(&work, &ranges, *size_plan)?
            .blob(cfg.model_id)?
            .len();
        push_stage(&mut stages, name, bytes, f32_bytes, weights, acc);
        eprintln!(
            "stage {name}: validation {:.2} % on the shared kernels, {bytes} bytes",
            100.0 * acc
        );
        last_acc = acc;
        last_weights = decoded_weights(&b)?;
    }
    let q = quantize(&work, &ranges, &final_plan)?;
    let mut blob = q.blob(cfg.model_id)?;
    if sc.fast_decode {
        // The fastest encoding of a conv depends on its output size, which the blob knows.
        blob = crate::recode::recode(&blob, crate::recode::Encoding::FastDecode, [])?;
    }
    // The compressed blob must decode to exactly the weights just evaluated.
    if decoded_weights(&blob)? != last_weights {
        bail!("internal error: the compressed encodings do not decode to the shared weights");
    }
    push_stage(
        &mut stages,
        if sc.fast_decode {
            "fastest to decode (packed codebook indices, sparse rows where zero skipping wins)"
        } else {
            "Huffman / sparse coding (smallest per layer)"
        },
        blob.len(),
        f32_bytes,
        weights,
        last_acc,
    );
    eprintln!("stage coding: blob {} bytes", blob.len());

    let (test_acc, _) = evaluate_blob(&blob, &data.test)?;
    let float_test_acc = evaluate(&net, &data.test, tcfg.normalization, &device).acc;
    let model = shared::Model::from_bytes(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Compressed {
        report: CompressReport {
            config: cfg.clone(),
            stages,
            test_acc,
            float_test_acc,
            blob_bytes: blob.len(),
            weights,
            arena_bytes: model.arena_len(),
            breakdown: blob_breakdown(&blob)?,
        },
        blob,
        float,
    })
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

/// Every conv's weights as stored in a blob, decoded to dense OHWI int8.
pub fn decoded_weights(blob: &[u8]) -> Result<Vec<Vec<i8>>> {
    let model = shared::Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    let mut decode = |c: &shared::format::ConvDesc<'_>, cin: usize| -> Result<()> {
        let n = c.out_channels as usize * c.kernel[0] as usize * c.kernel[1] as usize * cin;
        let mut w = vec![0i8; n];
        c.decode_weights(cin, &mut w)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push(w);
        Ok(())
    };
    for info in model.layers() {
        let cin = info.input.c as usize;
        match &info.desc {
            shared::format::LayerDesc::Conv(c) => decode(c, cin)?,
            shared::format::LayerDesc::Fire(f) => {
                decode(&f.squeeze, cin)?;
                decode(&f.expand1, f.squeeze.out_channels as usize)?;
                decode(&f.expand3, f.squeeze.out_channels as usize)?;
                if let shared::format::Bypass::Complex { conv, .. } = &f.bypass {
                    decode(conv, cin)?;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Every `len / n`-th training image: a deterministic calibration subset covering all classes.
fn calib_subset(split: &Split, n: usize) -> Split {
    let step = (split.len() / n.max(1)).max(1);
    let idx: Vec<usize> = (0..split.len()).step_by(step).take(n).collect();
    Split {
        images: idx.iter().flat_map(|&i| split.image(i).to_vec()).collect(),
        labels: idx.iter().map(|&i| split.labels[i]).collect(),
    }
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

/// Writes the blob, ONNX files ([`crate::export::export`]), report and chart into `out`, each
/// file atomically.
pub fn write_outputs(out: &Path, c: &Compressed, name: &str) -> Result<Vec<PathBuf>> {
    let mut written = crate::export::export(out, name, &c.blob, &c.float)?;
    let files = [
        (
            format!("{name}.report.md"),
            c.report.markdown().into_bytes(),
        ),
        (
            format!("{name}.compress.json"),
            serde_json::to_vec_pretty(&c.report)?,
        ),
    ];
    for (f, bytes) in files {
        let p = out.join(f);
        write_atomic(&p, &bytes)?;
        written.push(p);
    }
    let pts: Vec<(String, f64, f64)> = c
        .report
        .stages
        .iter()
        .map(|s| (s.stage.clone(), s.bytes as f64, 100.0 * s.val_acc))
        .collect();
    let chart = out.join(format!("{name}.stages.png"));
    crate::report::scatter_png(
        &chart,
        "compression stages",
        "bytes",
        "validation accuracy (%)",
        &pts,
        true,
    )?;
    written.push(chart);
    Ok(written)
}

/// One file of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    /// File name inside the directory.
    pub name: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// `MANIFEST.json`: what the directory ships and how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The blob's file name.
    pub blob: String,
    /// Test accuracy of the blob on the `shared` kernels (10,000 images).
    pub test_accuracy: f64,
    /// Correct test images (so the test can check exactly).
    pub test_correct: usize,
    /// Test accuracy of the float network.
    pub float_test_accuracy: f64,
    /// The training seed.
    pub seed: u64,
    /// The command that trained the network.
    pub train_command: String,
    /// The command that compressed it.
    pub compress_command: String,
    /// Every file with its digest.
    pub files: Vec<ManifestFile>,
}

/// Copies the run's records next to the blob and writes `MANIFEST.json` over every file.
pub fn write_manifest(
    out: &Path,
    run: &Path,
    name: &str,
    c: &Compressed,
    test_correct: usize,
) -> Result<()> {
    let facts = ManifestFacts {
        test_accuracy: c.report.test_acc,
        test_correct,
        float_test_accuracy: c.report.float_test_acc,
        compress_command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    write_manifest_with(out, run, name, &facts)
}

/// What a manifest states beyond the files' digests.
#[derive(Debug, Clone)]
pub struct ManifestFacts {
    /// Test accuracy of the blob on the `shared` kernels.
    pub test_accuracy: f64,
    /// Correct test images.
    pub test_correct: usize,
    /// Test accuracy of the float network.
    pub float_test_accuracy: f64,
    /// The command that compressed the model.
    pub compress_command: String,
}

/// [`write_manifest`] from stated facts (used by `sqz manifest` for a directory whose compression
/// ran elsewhere).
pub fn write_manifest_with(
    out: &Path,
    run: &Path,
    name: &str,
    facts: &ManifestFacts,
) -> Result<()> {
    let tcfg = read_run_config(run)?;
    for f in [
        "config.json",
        "metrics.csv",
        "curves.png",
        "confusion.png",
        "result.json",
        "command.txt",
    ] {
        let src = run.join(f);
        if src.is_file() {
            std::fs::copy(&src, out.join(format!("{name}.train.{f}")))
                .with_context(|| format!("while copying {}", src.display()))?;
        }
    }
    // The trained weights and their config, for the float parity check (burn vs tract).
    let keep = out.join("shipped.run");
    std::fs::create_dir_all(&keep)?;
    let same = |a: &Path, b: &Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().ok() == Some(a))
    };
    for f in ["config.json", "best.bpk"] {
        // Copying a file onto itself would truncate it.
        if !same(&run.join(f), &keep.join(f)) {
            std::fs::copy(run.join(f), keep.join(f))
                .with_context(|| format!("while copying {f}"))?;
        }
    }
    // The shipped copy of the run's command.txt: copied above, or kept from an earlier copy
    // when the run directory no longer holds it.
    let train_command = std::fs::read_to_string(out.join(format!("{name}.train.command.txt")))
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "MANIFEST.json"))
        .chain([keep.join("config.json"), keep.join("best.bpk")])
        .collect();
    entries.sort();
    for p in entries {
        let bytes = std::fs::read(&p)?;
        files.push(ManifestFile {
            name: p
                .strip_prefix(out)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned(),
            sha256: crate::data::sha256_hex(&bytes),
            bytes: bytes.len() as u64,
        });
    }
    let m = Manifest {
        blob: format!("{name}.blob"),
        test_accuracy: facts.test_accuracy,
        test_correct: facts.test_correct,
        float_test_accuracy: facts.float_test_accuracy,
        seed: tcfg.seed,
        train_command,
        compress_command: facts.compress_command.clone(),
        files,
    };
    write_atomic(
        &out.join("MANIFEST.json"),
        serde_json::to_string_pretty(&m)?.as_bytes(),
    )
}
