//! `sqz compress`, `sqz sensitivity` and `sqz recode`.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::Args;

use super::data::DataArgs;

/// `sqz sensitivity`.
#[derive(Debug, Args)]
pub struct SensitivityArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The training run directory (config.json, best.bpk).
    #[arg(long, default_value = "runs/train")]
    run: PathBuf,
    /// Output directory for sensitivity.md, sensitivity.json and sensitivity.png.
    #[arg(long, default_value = "runs/sensitivity")]
    out: PathBuf,
    /// Fractions of a layer's weights to prune, comma-separated (e.g. 0.5,0.9,0.98); each is
    /// tried on every layer alone.
    #[arg(long, value_delimiter = ',', default_values_t = crate::compress::sensitivity::DEFAULT_LEVELS)]
    levels: Vec<f64>,
    /// Score on the first N validation images only (faster, noisier; the validation split
    /// holds the run's val_count images).
    #[arg(long)]
    val_limit: Option<usize>,
    /// The table's last column: the highest level within this many points of the unpruned
    /// accuracy.
    #[arg(long, default_value_t = 0.5)]
    tolerance: f64,
}

impl SensitivityArgs {
    /// Checks the flags that need no data.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.tolerance >= 0.0, "--tolerance must not be negative");
        ensure!(self.val_limit != Some(0), "--val-limit must be at least 1");
        Ok(())
    }
}

/// The part a model must fit.
#[derive(Debug, Args, Clone)]
pub struct FitArgs {
    /// Board whose flash and RAM the firmware with the model must fit (512 KB / 128 KB for all
    /// three): checked before spending time, reported after compression.
    #[arg(long, value_enum, default_value = "nucleo-f411re")]
    pub board: crate::compress::fit::Board,
    /// Flash of another part, in KB (overrides the board's).
    #[arg(long, value_name = "KB")]
    pub flash_kb: Option<usize>,
    /// RAM of another part, in KB (overrides the board's).
    #[arg(long, value_name = "KB")]
    pub ram_kb: Option<usize>,
}

impl FitArgs {
    /// The budget the flags name.
    pub fn budget(&self) -> crate::compress::fit::Budget {
        crate::compress::fit::Budget::new(Some(self.board), self.flash_kb, self.ram_kb)
    }
}

/// `sqz compress`.
#[derive(Debug, Args)]
pub struct CompressArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    fit: FitArgs,
    /// The training run directory (config.json, best.bpk).
    #[arg(long, default_value = "runs/train")]
    run: PathBuf,
    /// Output directory for NAME.blob, NAME.float.onnx, NAME.int8.onnx, the report and chart.
    #[arg(long, default_value = "runs/compressed")]
    out: PathBuf,
    /// Base name of the output files.
    #[arg(long, default_value = "squeezenet")]
    name: String,
    /// Training images used to calibrate activation ranges.
    #[arg(long, default_value_t = 2000)]
    calib_images: usize,
    /// Model id written into the blob header.
    #[arg(long, default_value_t = 1)]
    model_id: u64,
    /// Fraction of each layer's weights pruned (smallest magnitudes), in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    prune: f64,
    /// Codebook bits per layer for k-means weight sharing (2..=8).
    #[arg(long, default_value_t = 4)]
    bits: u8,
    /// Store each conv the way the device runs fastest (`sqz recode --encoding fast-decode`: packed
    /// codebook indices, or byte-entry sparse rows where zero skipping wins): larger than the
    /// smallest coding, far cheaper to decode.
    #[arg(long)]
    fast_decode: bool,
    /// Prune and share weights with fine-tuning, as the Deep Compression paper does (iterative
    /// masked training, then k-means with centroid fine-tuning); --prune is then ignored and
    /// --sparsity sets the pruning target.
    #[arg(long)]
    finetune: bool,
    /// With --finetune: fraction of each layer's weights pruned, in [0, 1).
    #[arg(long, default_value_t = 0.0, requires = "finetune")]
    sparsity: f64,
    /// With --finetune: rounds in which sparsity rises to --sparsity.
    #[arg(long, default_value_t = 3, requires = "finetune")]
    prune_rounds: usize,
    /// With --finetune: how sparsity rises over the rounds: `linear` (equal steps) or `cubic`
    /// (large steps first, the last rounds mostly fine-tune; better for high sparsity).
    #[arg(long, value_enum, default_value_t = crate::compress::recipe::PruneSchedule::Linear, requires = "finetune")]
    prune_schedule: crate::compress::recipe::PruneSchedule,
    /// With --finetune: training epochs after each pruning round.
    #[arg(long, default_value_t = 1, requires = "finetune")]
    prune_epochs: usize,
    /// With --finetune: epochs of centroid fine-tuning (0: k-means only).
    #[arg(long, default_value_t = 1, requires = "finetune")]
    share_epochs: usize,
    /// With --finetune: peak learning rate of the masked fine-tuning (AdamW, cosine).
    #[arg(long, default_value_t = 5e-4, requires = "finetune")]
    finetune_lr: f64,
    /// With --finetune: centroid learning rate, in int8 steps (Adam, cosine).
    #[arg(long, default_value_t = 0.3, requires = "finetune")]
    centroid_lr: f64,
    /// With --finetune: seed of shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 1, requires = "finetune")]
    seed: u64,
    /// With --finetune: train on only the first N training images (quick runs).
    #[arg(long, value_name = "N", requires = "finetune")]
    train_limit: Option<usize>,
    /// With --finetune: weight in [0, 1) of knowledge distillation from the trained network
    /// (its softened outputs as targets) in the fine-tuning loss; 0 trains on the labels alone.
    #[arg(long, default_value_t = 0.0, requires = "finetune")]
    distill: f32,
    /// With --finetune: softmax temperature of --distill.
    #[arg(long, default_value_t = 4.0, requires = "finetune")]
    distill_temperature: f32,
    /// With --finetune: pruning target for the layers LAYER names, replacing --sparsity there
    /// (repeatable; the last match wins). LAYER is a conv name or a `*` pattern over them:
    /// stem, fire2.squeeze, fire2.expand1x1, fire2.expand3x3, ..., fire9.*, classifier.
    /// Example: --layer-sparsity 'fire*.expand3x3=0.9'. Without it the stem is capped at 50 %.
    #[arg(long, value_name = "LAYER=FRACTION", requires = "finetune")]
    layer_sparsity: Vec<crate::compress::recipe::LayerSetting<f64>>,
    /// With --finetune: codebook bits for the layers LAYER names, replacing --bits there
    /// (repeatable; the last match wins). Example: --layer-bits 'fire*.expand3x3=3'.
    #[arg(long, value_name = "LAYER=BITS", requires = "finetune")]
    layer_bits: Vec<crate::compress::recipe::LayerSetting<u8>>,
    /// With --finetune: prune in blocks of N consecutive input channels at one kernel position
    /// (kept or pruned together; layers whose channels N does not divide, like the stem, go
    /// weight by weight). Blocks cost fewer index bits per kept weight in the Huffman blob, so
    /// the same bytes hold more weights, but on the shipped network 4 lost 1.9 pt against
    /// weight by weight at equal bytes (models/BENCHMARKS.md); 1 prunes weight by weight.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "finetune")]
    prune_block: usize,
    /// With --finetune: continue an interrupted run from OUT/NAME.checkpoint (written after
    /// every fine-tuning epoch; same flags required). The resumed run gives the same blob.
    #[arg(long, requires = "finetune")]
    resume: bool,
    /// With --finetune: stop cleanly after N fine-tuning epochs of this invocation (checkpoint
    /// written; continue later with --resume).
    #[arg(long, value_name = "N", requires = "finetune")]
    stop_after: Option<usize>,
}

impl CompressArgs {
    /// Checks the flags that need no data; errors say which flag is wrong.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.calib_images > 0, "--calib-images must be at least 1");
        ensure!(
            (0.0..1.0).contains(&self.prune),
            "--prune must be in [0, 1), got {}",
            self.prune
        );
        ensure!(
            (2..=8).contains(&self.bits),
            "--bits must be in 2..=8, got {}",
            self.bits
        );
        if let Some(ft) = &self.config().finetune {
            ft.validate()?;
        }
        ensure!(
            self.stop_after != Some(0),
            "--stop-after must be at least 1"
        );
        Ok(())
    }

    /// Where the fine-tuning stages keep their progress.
    fn checkpointing(&self) -> crate::compress::resume::Checkpointing {
        crate::compress::resume::Checkpointing {
            dir: self.out.join(format!("{}.checkpoint", self.name)),
            resume: self.resume,
            stop_after: self.stop_after,
        }
    }

    fn config(&self) -> crate::compress::recipe::CompressConfig {
        crate::compress::recipe::CompressConfig {
            calib_images: self.calib_images,
            model_id: self.model_id,
            sharing: crate::compress::sharing::SharingConfig {
                prune: self.prune,
                bits: self.bits,
                fast_decode: self.fast_decode,
                ..Default::default()
            },
            finetune: self
                .finetune
                .then(|| crate::compress::recipe::FinetuneConfig {
                    sparsity: self.sparsity,
                    prune_rounds: self.prune_rounds,
                    prune_epochs: self.prune_epochs,
                    bits: self.bits,
                    share_epochs: self.share_epochs,
                    lr: self.finetune_lr,
                    centroid_lr: self.centroid_lr,
                    seed: self.seed,
                    train_limit: self.train_limit,
                    distill: self.distill,
                    distill_temperature: self.distill_temperature,
                    prune_schedule: self.prune_schedule,
                    layer_sparsity: self.layer_sparsity.clone(),
                    layer_bits: self.layer_bits.clone(),
                    prune_block: self.prune_block,
                    ..Default::default()
                }),
        }
    }
}

/// `sqz recode`.
#[derive(Debug, Args)]
pub struct RecodeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The blob to re-encode.
    blob: PathBuf,
    /// The new blob.
    #[arg(long)]
    out: PathBuf,
    /// How to store the weights.
    #[arg(long, value_enum, default_value = "fast-decode")]
    encoding: crate::compress::recode::Encoding,
    /// Test images whose logits must be identical on both blobs.
    #[arg(long, default_value_t = 1000)]
    check_images: usize,
}

/// `sqz sensitivity`.
pub fn sensitivity(args: SensitivityArgs) -> Result<()> {
    args.validate()?;
    let d = args.data.load_for_run(Some(&args.run))?;
    let (tcfg, net) = crate::train::checkpoint::load_run(&args.run)?;
    let (_, val) = d.train_val(tcfg.val_count);
    let val = match args.val_limit {
        Some(n) => val.slice(0..n.min(val.len())),
        None => val,
    };
    let names = crate::compress::layers::conv_names(&tcfg.model);
    let bar =
        crate::data::progress::items_bar((names.len() * args.levels.len()) as u64, "sensitivity");
    let s = crate::compress::sensitivity::analyse(
        &net,
        &names,
        &val,
        tcfg.normalization,
        &args.levels,
        |layer, level, acc| {
            let line = format!("{layer} at {:.0} %: {:.2} %", 100.0 * level, 100.0 * acc);
            // Without a terminal (logs, CI) the bar is hidden: one line per point.
            if bar.is_hidden() {
                eprintln!("sensitivity: {line}");
            }
            bar.set_message(line);
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();
    let tolerance = args.tolerance / 100.0;
    s.write(&args.out, tolerance)?;
    print!("{}", s.markdown(tolerance));
    println!(
        "wrote sensitivity.md, sensitivity.json and sensitivity.png in {}",
        args.out.display()
    );
    Ok(())
}

/// `sqz compress`.
pub fn compress(args: CompressArgs) -> Result<()> {
    args.validate()?;
    let cfg = args.config();
    let d = args.data.load_for_run(Some(&args.run))?;
    let budget = args.fit.budget();
    let tcfg = crate::train::checkpoint::read_run_config(&args.run)?;
    eprintln!(
        "{}",
        crate::compress::fit::precheck(&tcfg.model, &d.train, &budget)?
    );
    let ck = args.checkpointing();
    let c = match crate::compress::run::compress_resumable(
        &args.run,
        &d,
        &cfg,
        cfg.finetune.is_some().then_some(&ck),
    ) {
        Ok(c) => c,
        Err(e) => {
            if let Some(stopped) = e.downcast_ref::<crate::compress::resume::Stopped>() {
                eprintln!("{stopped}; checkpoint in {}", ck.dir.display());
                return Ok(());
            }
            return Err(e.context(format!("compressing {}", args.run.display())));
        }
    };
    let files = crate::export::files::write_outputs(&args.out, &c, &args.name)?;
    let correct = (c.report.test_acc * d.test.len() as f64).round() as usize;
    crate::export::manifest::write_manifest(&args.out, &args.run, &args.name, &c, correct)?;
    ck.remove()?;
    println!("{}", c.report.markdown());
    for f in files {
        println!("wrote {}", f.display());
    }
    let fp = crate::compress::fit::Footprint::of_blob(&c.blob)?;
    println!("\n{}", fp.table(&budget));
    fp.check(&budget)
}

/// `sqz recode`.
pub fn recode(args: RecodeArgs) -> Result<()> {
    let blob = std::fs::read(&args.blob)
        .with_context(|| format!("while reading {}", args.blob.display()))?;
    let d = args.data.load()?;
    let model = shared::Model::from_bytes(&blob)
        .map_err(|e| anyhow::anyhow!("{}: invalid blob: {e}", args.blob.display()))?;
    d.check_input_len(model.input_len(), &args.blob.display().to_string())?;
    let n = args.check_images.min(d.test.len());
    let out =
        crate::compress::recode::recode(&blob, args.encoding, (0..n).map(|i| d.test.image(i)))
            .with_context(|| format!("re-encoding {}", args.blob.display()))?;
    crate::store::write_atomic(&args.out, &out)?;
    let upgraded = crate::compress::upgrade::format_version(&blob)
        == Some(crate::compress::upgrade::LEGACY_VERSION);
    println!(
        "{}: {} -> {} bytes, logits identical on {n} test images{}",
        args.out.display(),
        blob.len(),
        out.len(),
        if upgraded {
            " (between the format-1 blob carried over to integer requantisation and the result: \
             check the new blob with `sqz verify`)"
        } else {
            ""
        }
    );
    let weights: usize = crate::compress::blob::decoded_weights(&out)?
        .iter()
        .map(Vec::len)
        .sum();
    let b = crate::compress::blob::blob_breakdown(&out)?;
    println!("  {}", b.describe(weights));
    Ok(())
}
