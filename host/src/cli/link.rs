//! `sqz device eval` and `sqz device soak`: the firmware on a board's serial port or in QEMU.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::data::DataArgs;

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
    fn connect(&self) -> Result<crate::link::DeviceLink> {
        let timeout = std::time::Duration::from_secs(self.timeout);
        crate::link::connect(
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

/// `sqz device eval` and `sqz device soak`.
pub fn device(cmd: DeviceCommand) -> Result<()> {
    use crate::link::{check_same_model, eval, host_reference, soak};
    match cmd {
        DeviceCommand::Eval(args) => {
            let blob = read_blob(&args.blob)?;
            let data = args.data.load()?;
            let n = args.n.min(data.test.len());
            let mut link = args.device.connect()?;
            let info = link.info()?;
            check_same_model(&info, &blob)?;
            let dims = info.input_dims.iter().map(|&d| usize::from(d)).product();
            data.check_input_len(dims, "the device's model")?;
            eprintln!(
                "device: {} ({}), model {:#x}",
                info.board,
                link.name(),
                info.model_id
            );
            let bar = crate::data::progress::items_bar(n as u64, "device eval");
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
            let bar = crate::data::progress::items_bar(args.frames as u64, "device soak");
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
