//! `sqz pipeline` and `sqz shipped`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::data::DataArgs;

/// `sqz pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    fit: super::compress::FitArgs,
    /// Output root: train/ (the run), model/ (blob, ONNX, reports, manifest), summary.md.
    #[arg(long, default_value = "runs/pipeline")]
    out: PathBuf,
    /// Same stages on a small budget (2 epochs on 6,000 images, short fine-tuning): minutes.
    /// With or without it, a folder of pictures smaller than the recipe's images gets
    /// proportionally more epochs (up to 12 times as many).
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

/// `sqz pipeline`.
pub fn pipeline(args: PipelineArgs) -> Result<()> {
    let d = args.data.load()?;
    let opts = crate::pipeline::run::PipelineOptions {
        out: args.out.clone(),
        quick: args.quick,
        resume: args.resume,
        seed: args.seed,
        finetune_seed: args.finetune_seed,
        firmware: args.device.then(|| args.firmware.clone()),
        device_images: args.device_images,
        budget: args.fit.budget(),
    };
    crate::pipeline::run::run(&d, &opts)?;
    Ok(())
}

/// `sqz shipped`.
pub fn shipped(args: ShippedArgs) -> Result<()> {
    let d = args.data.load()?;
    crate::pipeline::shipped::run(&args.models, &d, args.qemu.as_deref(), args.device_images)
}
