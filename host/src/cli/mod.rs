//! The `sqz` command line: argument parsing and wiring only. One file per stage holds its
//! commands' argument structs (clap derive, with a `validate` method for the checks that need
//! no data) and one thin function per command that calls the stage.

pub mod classify;
pub mod compress;
pub mod data;
pub mod export;
pub mod link;
pub mod pipeline;
pub mod train;
pub mod verify;

use anyhow::Result;
use clap::{Parser, Subcommand};

use compress::{CompressArgs, RecodeArgs, SensitivityArgs};
use data::DataArgs;
use export::{ExportArgs, GoldenArgs, ManifestArgs};
use link::DeviceCommand;
use pipeline::{PipelineArgs, ShippedArgs};
use train::{SweepArgs, TrainArgs};
use verify::{ImportArgs, VerifyArgs};

/// SqueezeNet on a microcontroller: train on Fashion-MNIST or your own labelled pictures,
/// compress, run in int8 on a Cortex-M4, and check every step against tract.
#[derive(Debug, Parser)]
#[command(name = "sqz", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find, verify and summarise the data set: Fashion-MNIST, or your pictures (--images DIR).
    Data(DataArgs),
    /// Write a data set as a folder of pictures (the layout --images reads), optionally
    /// recoloured, rescaled and partly JPEG: Fashion-MNIST as your own photos would come.
    MakeFolder(data::MakeFolderArgs),
    /// Train a SqueezeNet on Fashion-MNIST or your pictures (--images DIR); progress bar,
    /// checkpoint each epoch, --resume.
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
    #[command(long_about = verify::IMPORT_ABOUT)]
    Import(ImportArgs),
    /// Write golden vectors for shared's tests, computed by tract alone.
    Golden(GoldenArgs),
    /// The main job: the shipped model in models/ evaluated, checked against tract, and run on
    /// the firmware in QEMU (with --qemu).
    Shipped(ShippedArgs),
    /// Talk to the firmware on a board's serial port or in QEMU: eval, soak.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The class of your own picture files (PNG, JPEG, ...) on the shared kernels, or on the
    /// firmware (--qemu ELF / --port TTY).
    Classify(classify::ClassifyArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Data(args) => data::data(args),
        Command::MakeFolder(args) => data::make_folder(args),
        Command::Train(args) => train::train(args),
        Command::Sweep(args) => train::sweep(args),
        Command::Compress(args) => compress::compress(args),
        Command::Sensitivity(args) => compress::sensitivity(args),
        Command::Recode(args) => compress::recode(args),
        Command::Export(args) => export::export(args),
        Command::Manifest(args) => export::manifest(args),
        Command::Golden(args) => export::golden(args),
        Command::Verify(args) => verify::verify(args),
        Command::Import(args) => verify::import(args),
        Command::Pipeline(args) => pipeline::pipeline(args),
        Command::Shipped(args) => pipeline::shipped(args),
        Command::Device(cmd) => link::device(cmd),
        Command::Classify(args) => classify::classify(args),
    }
}
