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
        eprintln!(
            "data: {} ({} train, {} test)",
            d.dir.display(),
            d.train.len(),
            d.test.len()
        );
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
    /// Compress a trained run into a blob (stages evaluated), and export ONNX files; the
    /// fine-tuning checkpoints each epoch (--resume).
    Compress(CompressArgs),
    /// How much each layer can be pruned alone before validation accuracy falls (the Deep
    /// Compression paper's sensitivity analysis): a guide for `compress --layer-sparsity`.
    Sensitivity(SensitivityArgs),
    /// Write a model's deployable files: the blob, the float ONNX and the quantised ONNX.
    Export(ExportArgs),
    /// Data -> train -> compress -> export -> verify (-> device), one command with the shipped
    /// model's recipe; --quick runs the same stages on a small budget in minutes.
    Pipeline(PipelineArgs),
    /// Write MANIFEST.json for a model directory whose compression ran elsewhere: every file's
    /// digest, the blob re-evaluated on the test set, the commands that made it.
    Manifest(ManifestArgs),
    /// Store a blob's weights another way (smallest, or fastest to decode): same values, same
    /// logits (checked on test images), different flash size and device cost.
    Recode(RecodeArgs),
    /// Check a blob against tract: per layer (bit-exact), whole network, and float.
    Verify(VerifyArgs),
    /// Import a SqueezeNet-family ONNX model (PyTorch, burn, tf2onnx), calibrate it on your
    /// images, write a blob and check it against tract.
    #[command(long_about = IMPORT_ABOUT)]
    Import(ImportArgs),
    /// Write golden vectors for shared's tests, computed by tract alone.
    Golden(GoldenArgs),
    /// The main job: the shipped model in models/ evaluated, checked against tract, and run on
    /// the firmware in QEMU (with --qemu).
    Shipped(ShippedArgs),
    /// Talk to the firmware on a board's serial port or in QEMU: eval, soak.
    #[command(subcommand)]
    Device(DeviceCommand),
}

/// `sqz device ...`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Stream test images through the device: accuracy, cost per inference, and logits checked
    /// bit for bit against the host's `shared` kernels.
    Eval(DeviceEvalArgs),
    /// Frames with 1 % corrupted at random: good frames answered right, bad ones refused, no hang.
    Soak(DeviceSoakArgs),
}

/// Which device: `--qemu ELF` or `--port TTY`.
#[derive(Debug, Args)]
pub struct DeviceTarget {
    /// Firmware ELF (mps2-an386 build) to boot in QEMU with its UART on a loopback port.
    #[arg(
        long,
        value_name = "ELF",
        conflicts_with = "port",
        required_unless_present = "port"
    )]
    qemu: Option<PathBuf>,
    /// Serial port of a flashed board (e.g. /dev/ttyACM0 for a Nucleo-F411RE).
    #[arg(long, value_name = "TTY")]
    port: Option<PathBuf>,
    /// Baud rate of --port.
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// Seconds to wait for any one reply.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
}

impl DeviceTarget {
    fn connect(&self) -> Result<crate::device::DeviceLink> {
        let timeout = std::time::Duration::from_secs(self.timeout);
        crate::device::connect(
            self.qemu.as_deref(),
            self.port.as_deref(),
            self.baud,
            timeout,
        )
    }
}

/// `sqz device eval`.
#[derive(Debug, Args)]
pub struct DeviceEvalArgs {
    #[command(flatten)]
    device: DeviceTarget,
    #[command(flatten)]
    data: DataArgs,
    /// The blob the firmware embeds (the host computes its reference logits from it).
    #[arg(long, default_value = "models/shipped.blob")]
    blob: PathBuf,
    /// How many test images (the first N of the test split).
    #[arg(short, long, default_value_t = 200)]
    n: usize,
}

/// `sqz device soak`.
#[derive(Debug, Args)]
pub struct DeviceSoakArgs {
    #[command(flatten)]
    device: DeviceTarget,
    #[command(flatten)]
    data: DataArgs,
    /// The blob the firmware embeds.
    #[arg(long, default_value = "models/shipped.blob")]
    blob: PathBuf,
    /// Frames to send.
    #[arg(long, default_value_t = 2000)]
    frames: usize,
    /// Corrupted or truncated frames per thousand.
    #[arg(long, default_value_t = 10)]
    corrupt_per_mille: u32,
    /// Seed of the corruption schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn read_blob(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "while reading the model blob {} (the one the firmware was built with)",
            path.display()
        )
    })
}

/// `sqz device ...` (call from `run`: `Command::Device(cmd) => device(cmd)?,`).
fn device(cmd: DeviceCommand) -> Result<()> {
    use crate::device::{check_same_model, eval, host_reference, soak};
    match cmd {
        DeviceCommand::Eval(args) => {
            let blob = read_blob(&args.blob)?;
            let data = args.data.load()?;
            let n = args.n.min(data.test.len());
            let mut link = args.device.connect()?;
            let info = link.info()?;
            check_same_model(&info, &blob)?;
            eprintln!(
                "device: {} ({}), model {:#x}",
                info.board,
                link.name(),
                info.model_id
            );
            let bar = crate::progress::items_bar(n as u64, "device eval");
            let images = (0..n).map(|i| data.test.image(i));
            let labels = Some(&data.test.labels[..n]);
            let report = eval(&mut link, images, labels, host_reference(&blob)?, |i| {
                bar.set_position(i as u64)
            })?;
            bar.finish_and_clear();
            println!("device eval: {report}");
            anyhow::ensure!(
                report.logits_match == report.images,
                "device logits differ from the host kernels on {} of {} images",
                report.images - report.logits_match,
                report.images
            );
        }
        DeviceCommand::Soak(args) => {
            let blob = read_blob(&args.blob)?;
            let data = args.data.load()?;
            let images: Vec<&[u8]> = (0..data.test.len().min(16))
                .map(|i| data.test.image(i))
                .collect();
            let mut link = args.device.connect()?;
            check_same_model(&link.info()?, &blob)?;
            let bar = crate::progress::items_bar(args.frames as u64, "device soak");
            let report = soak(
                &mut link,
                &images,
                args.frames,
                args.corrupt_per_mille,
                args.seed,
                host_reference(&blob)?,
                |i| bar.set_position(i as u64),
            )?;
            bar.finish_and_clear();
            println!("device soak: {report:?}");
            anyhow::ensure!(
                report.passed(),
                "soak failed: {}",
                report.first_problem.unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `sqz golden`.
#[derive(Debug, Args)]
pub struct GoldenArgs {
    /// Output file.
    #[arg(long, default_value = "shared/tests/golden/example.golden")]
    out: PathBuf,
    /// Seed of shared's example network.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seed of the input image.
    #[arg(long, default_value_t = 2)]
    input_seed: u64,
}

/// `sqz shipped`.
#[derive(Debug, Args)]
pub struct ShippedArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The directory with MANIFEST.json.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Firmware ELF (mps2-an386 build embedding the shipped blob) to run in QEMU.
    #[arg(long, value_name = "ELF")]
    qemu: Option<PathBuf>,
    /// Test images sent to the device.
    #[arg(long, default_value_t = 200)]
    device_images: usize,
}

const IMPORT_ABOUT: &str = "\
Import a SqueezeNet-family ONNX model, calibrate it on your images, write an int8 blob for the \
shared kernels, and check it against tract (the same parity report as `sqz verify`).

Understood on the data path: Conv (square kernel and stride, group 1, symmetric padding; \
BatchNormalization, a per-channel Mul/Add of a constant and Relu right after it are folded in), \
MaxPool (padding, ceil_mode), AveragePool, GlobalAveragePool, ReduceMean over H and W, fire \
modules (squeeze 1x1 + ReLU, expand 1x1 and 3x3 + ReLU, Concat with the 1x1 first, optional \
Add of the input or of a 1x1 conv of it), Dropout, Identity, and after the last pool Flatten, \
Reshape, Squeeze, Softmax (logits are taken before it). Exports of torchvision's \
squeezenet1_0 / squeezenet1_1 (opset 11-18), burn and tf2onnx (a leading NHWC->NCHW Transpose) \
work; any input size (square), channel count and class count. Anything else is one error naming \
the node and its op, and nothing is written.

Inputs: pixels are scaled to [0, 1] (pixel / 255), the blob's fixed input quantisation. The \
model must take such inputs: no mean/std normalisation is applied (there is no --mean/--std; \
fold a normalisation into the model before exporting, or train on [0, 1] inputs).

Images are used as given, never resized: they must have the model's size and channel count.

The float check compares tract on the original ONNX with the imported network (logits, \
before any softmax); the per-layer and whole-network checks compare the blob on the shared \
kernels with tract on a quantised ONNX built from the blob. The blob and NAME.report.md are \
written only when everything succeeded and every check passed.";

/// `sqz import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ONNX model.
    model: PathBuf,
    /// Calibration images: an IDX file (n x h x w grey, or n x h x w x c; raw or .gz) or a
    /// folder of PNGs (grey or RGB, file-name order), of the model's input size.
    #[arg(long, value_name = "PATH")]
    calib: PathBuf,
    /// IDX labels for an IDX --calib file: the report then gives accuracies.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// The blob to write; the report goes beside it as NAME.report.md.
    #[arg(long, default_value = "model.blob")]
    out: PathBuf,
    /// Input side, when the model's height and width are symbolic.
    #[arg(long, value_name = "N")]
    input_size: Option<usize>,
    /// Images used to calibrate activation ranges (the first N).
    #[arg(long, default_value_t = 1000)]
    calib_images: usize,
    /// Model id written into the blob header.
    #[arg(long, default_value_t = 1)]
    model_id: u64,
    /// Images for the per-layer parity check.
    #[arg(long, default_value_t = 10)]
    layer_images: usize,
    /// Images for the whole-network check (default: all).
    #[arg(long)]
    images: Option<usize>,
    /// Images for the float check of the import (tract on the original ONNX vs the import).
    #[arg(long, default_value_t = 50)]
    float_images: usize,
}

/// `sqz verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The blob to check.
    blob: PathBuf,
    /// The training run the blob came from (enables the float check: burn vs tract).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Test images for the per-layer check.
    #[arg(long, default_value_t = 20)]
    layer_images: usize,
    /// Test images for the whole-network check (default: all 10,000).
    #[arg(long)]
    images: Option<usize>,
    /// Test images for the float check.
    #[arg(long, default_value_t = 200)]
    float_images: usize,
    /// Write the report (Markdown) here too.
    #[arg(long)]
    report: Option<PathBuf>,
}

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
    #[arg(long, value_delimiter = ',', default_values_t = crate::sensitivity::DEFAULT_LEVELS)]
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

/// `sqz compress`.
#[derive(Debug, Args)]
pub struct CompressArgs {
    #[command(flatten)]
    data: DataArgs,
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
    #[arg(long, value_enum, default_value_t = crate::finetune::PruneSchedule::Linear, requires = "finetune")]
    prune_schedule: crate::finetune::PruneSchedule,
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
    layer_sparsity: Vec<crate::finetune::LayerSetting<f64>>,
    /// With --finetune: codebook bits for the layers LAYER names, replacing --bits there
    /// (repeatable; the last match wins). Example: --layer-bits 'fire*.expand3x3=3'.
    #[arg(long, value_name = "LAYER=BITS", requires = "finetune")]
    layer_bits: Vec<crate::finetune::LayerSetting<u8>>,
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
    /// Where the fine-tuning stages keep their progress.
    fn checkpointing(&self) -> crate::finetune::Checkpointing {
        crate::finetune::Checkpointing {
            dir: self.out.join(format!("{}.checkpoint", self.name)),
            resume: self.resume,
            stop_after: self.stop_after,
        }
    }

    fn config(&self) -> crate::compress::CompressConfig {
        crate::compress::CompressConfig {
            calib_images: self.calib_images,
            model_id: self.model_id,
            sharing: crate::sharing::SharingConfig {
                prune: self.prune,
                bits: self.bits,
                fast_decode: self.fast_decode,
                ..Default::default()
            },
            finetune: self.finetune.then(|| crate::finetune::FinetuneConfig {
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

/// `sqz export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The training run the blob was made from (its float network becomes NAME.float.onnx).
    #[arg(long, default_value = "runs/train")]
    run: PathBuf,
    /// The blob (becomes NAME.blob and NAME.int8.onnx).
    #[arg(long)]
    blob: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "runs/export")]
    out: PathBuf,
    /// Base name of the files.
    #[arg(long, default_value = "squeezenet")]
    name: String,
}

/// `sqz manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The model directory (NAME.blob, NAME.compress.json, ...).
    #[arg(long, default_value = "models")]
    dir: PathBuf,
    /// The training run the model came from (config.json, best.bpk, command.txt, records).
    #[arg(long)]
    run: PathBuf,
    /// Base name of the model files.
    #[arg(long, default_value = "shipped")]
    name: String,
    /// The exact `sqz compress` command that produced NAME.blob.
    #[arg(long)]
    compress_command: String,
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
    encoding: crate::recode::Encoding,
    /// Test images whose logits must be identical on both blobs.
    #[arg(long, default_value_t = 1000)]
    check_images: usize,
}

/// `sqz pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Output root: train/ (the run), model/ (blob, ONNX, reports, manifest), summary.md.
    #[arg(long, default_value = "runs/pipeline")]
    out: PathBuf,
    /// Same stages on a small budget (2 epochs on 6,000 images, short fine-tuning): minutes.
    #[arg(long)]
    quick: bool,
    /// Continue an interrupted training or compression stage from its checkpoint.
    #[arg(long)]
    resume: bool,
    /// Seed of training (2 made the shipped model).
    #[arg(long, default_value_t = 2)]
    seed: u64,
    /// Seed of the compression's fine-tuning (1 made the shipped model).
    #[arg(long, default_value_t = 1)]
    finetune_seed: u64,
    /// Also build the firmware with the new blob and run test images on it in QEMU.
    #[arg(long)]
    device: bool,
    /// The firmware crate (for --device).
    #[arg(long, default_value = "firmware", requires = "device")]
    firmware: PathBuf,
    /// Test images sent to the device.
    #[arg(long, default_value_t = 200, requires = "device")]
    device_images: usize,
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
    /// Stem: `small` (3x3 stride 1, for 28x28 inputs) or `paper` (the version's own stem).
    #[arg(long, value_enum)]
    stem: Option<crate::model::Stem>,
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
            let (_, state, result) =
                crate::train::train(&cfg, &train_split, &val, &d.test, &args.out, &opts)
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
        Command::Sensitivity(args) => {
            anyhow::ensure!(args.tolerance >= 0.0, "--tolerance must not be negative");
            anyhow::ensure!(args.val_limit != Some(0), "--val-limit must be at least 1");
            let d = args.data.load()?;
            let (tcfg, net) = crate::compress::load_run(&args.run)?;
            let (_, val) = d.train_val(tcfg.val_count);
            let val = match args.val_limit {
                Some(n) => val.slice(0..n.min(val.len())),
                None => val,
            };
            let names = crate::finetune::conv_names(&tcfg.model);
            let bar =
                crate::progress::items_bar((names.len() * args.levels.len()) as u64, "sensitivity");
            let s = crate::sensitivity::analyse(
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
        Command::Compress(args) => {
            anyhow::ensure!(args.calib_images > 0, "--calib-images must be at least 1");
            anyhow::ensure!(
                (0.0..1.0).contains(&args.prune),
                "--prune must be in [0, 1), got {}",
                args.prune
            );
            anyhow::ensure!(
                (2..=8).contains(&args.bits),
                "--bits must be in 2..=8, got {}",
                args.bits
            );
            let cfg = args.config();
            if let Some(ft) = &cfg.finetune {
                ft.validate()?;
            }
            anyhow::ensure!(
                args.stop_after != Some(0),
                "--stop-after must be at least 1"
            );
            let d = args.data.load()?;
            let ck = args.checkpointing();
            let c = match crate::compress::compress_resumable(
                &args.run,
                &d,
                &cfg,
                cfg.finetune.is_some().then_some(&ck),
            ) {
                Ok(c) => c,
                Err(e) => {
                    if let Some(stopped) = e.downcast_ref::<crate::finetune::Stopped>() {
                        eprintln!("{stopped}; checkpoint in {}", ck.dir.display());
                        return Ok(());
                    }
                    return Err(e.context(format!("compressing {}", args.run.display())));
                }
            };
            let files = crate::compress::write_outputs(&args.out, &c, &args.name)?;
            let correct = (c.report.test_acc * d.test.len() as f64).round() as usize;
            crate::compress::write_manifest(&args.out, &args.run, &args.name, &c, correct)?;
            ck.remove()?;
            println!("{}", c.report.markdown());
            for f in files {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Export(args) => {
            for f in crate::export::export_files(&args.run, &args.blob, &args.out, &args.name)? {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Manifest(args) => {
            let report_path = args.dir.join(format!("{}.compress.json", args.name));
            let report: crate::compress::CompressReport = serde_json::from_slice(
                &std::fs::read(&report_path)
                    .with_context(|| format!("while reading {}", report_path.display()))?,
            )
            .with_context(|| format!("{}: not a compression report", report_path.display()))?;
            let blob_path = args.dir.join(format!("{}.blob", args.name));
            let blob = std::fs::read(&blob_path)
                .with_context(|| format!("while reading {}", blob_path.display()))?;
            let d = args.data.load()?;
            let (acc, _) = crate::quantize::evaluate_blob(&blob, &d.test)?;
            let correct = (acc * d.test.len() as f64).round() as usize;
            let facts = crate::compress::ManifestFacts {
                test_accuracy: acc,
                test_correct: correct,
                float_test_accuracy: report.float_test_acc,
                compress_command: args.compress_command.clone(),
            };
            crate::compress::write_manifest_with(&args.dir, &args.run, &args.name, &facts)?;
            println!(
                "{}: test {:.2} % ({correct} / {}) on the shared kernels; wrote {}",
                blob_path.display(),
                100.0 * acc,
                d.test.len(),
                args.dir.join("MANIFEST.json").display()
            );
            Ok(())
        }
        Command::Recode(args) => {
            let blob = std::fs::read(&args.blob)
                .with_context(|| format!("while reading {}", args.blob.display()))?;
            let d = args.data.load()?;
            let n = args.check_images.min(d.test.len());
            let out = crate::recode::recode(&blob, args.encoding, (0..n).map(|i| d.test.image(i)))
                .with_context(|| format!("re-encoding {}", args.blob.display()))?;
            crate::train::write_atomic(&args.out, &out)?;
            println!(
                "{}: {} -> {} bytes, logits identical on {n} test images",
                args.out.display(),
                blob.len(),
                out.len()
            );
            let weights: usize = crate::compress::decoded_weights(&out)?
                .iter()
                .map(Vec::len)
                .sum();
            let b = crate::compress::blob_breakdown(&out)?;
            println!("  {}", b.describe(weights));
            Ok(())
        }
        Command::Pipeline(args) => {
            let d = args.data.load()?;
            let opts = crate::pipeline::PipelineOptions {
                out: args.out.clone(),
                quick: args.quick,
                resume: args.resume,
                seed: args.seed,
                finetune_seed: args.finetune_seed,
                firmware: args.device.then(|| args.firmware.clone()),
                device_images: args.device_images,
            };
            crate::pipeline::run(&d, &opts)?;
            Ok(())
        }
        Command::Verify(args) => {
            let d = args.data.load()?;
            let report = crate::verify::run_all(
                &args.blob,
                args.run.as_deref(),
                &d,
                args.layer_images,
                args.images.unwrap_or(d.test.len()),
                args.float_images,
            )?;
            println!("{}", report.markdown);
            if let Some(p) = &args.report {
                crate::train::write_atomic(p, report.markdown.as_bytes())?;
            }
            anyhow::ensure!(report.passed, "parity check failed (see the report above)");
            Ok(())
        }
        Command::Import(args) => {
            anyhow::ensure!(args.calib_images > 0, "--calib-images must be at least 1");
            let onnx = std::fs::read(&args.model)
                .with_context(|| format!("while reading {}", args.model.display()))?;
            let images = crate::images::ImageSet::load(&args.calib, args.labels.as_deref())?;
            let cfg = crate::import::ImportConfig {
                input_size: args.input_size,
                calib_images: args.calib_images,
                model_id: args.model_id,
                layer_images: args.layer_images,
                images: args.images.unwrap_or(usize::MAX),
                float_images: args.float_images,
            };
            let name = args.model.display().to_string();
            let imported = crate::import::parse(&onnx, cfg.input_size)
                .with_context(|| format!("importing {name}"))?;
            let net = &imported.net;
            images.check_shape(net.in_channels, net.input_size, &args.calib)?;
            let r = crate::import::import(&onnx, &name, &images, &cfg)?;
            println!("{}", r.report.markdown);
            anyhow::ensure!(
                r.report.passed,
                "parity check failed (see the report above); nothing written"
            );
            for f in crate::import::write_outputs(&args.out, &r)? {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Device(cmd) => device(cmd),
        Command::Golden(args) => {
            let text = crate::golden::generate(args.seed, args.input_seed)?;
            if let Some(dir) = args.out.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::train::write_atomic(&args.out, text.as_bytes())?;
            println!(
                "wrote {} ({} tensors)",
                args.out.display(),
                text.lines().filter(|l| !l.starts_with('#')).count()
            );
            Ok(())
        }
        Command::Shipped(args) => {
            let d = args.data.load()?;
            crate::shipped::run(&args.models, &d, args.qemu.as_deref(), args.device_images)
        }
        Command::Sweep(args) => {
            let mut cfg = TrainConfig::preset(Preset::Default);
            cfg.epochs = args.epochs;
            cfg.train_limit = Some(args.train_limit);
            cfg.seed = args.seed;
            let d = args.data.load()?;
            let (train_split, val) = d.train_val(cfg.val_count);
            let points =
                crate::sweep::sweep(&cfg, &train_split, &val, &args.out, &crate::sweep::grid())?;
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
