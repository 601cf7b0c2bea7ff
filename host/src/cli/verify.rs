//! `sqz verify` and `sqz import`.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::Args;

use super::data::DataArgs;

pub(super) const IMPORT_ABOUT: &str = "\
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
    /// The ONNX model. Weights stored beside it as external data (`model.onnx.data`, what
    /// `torch.onnx.export` writes by default since PyTorch 2.9) are read from the model's
    /// folder.
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

impl ImportArgs {
    /// Checks the flags that need no model.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.calib_images > 0, "--calib-images must be at least 1");
        Ok(())
    }
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
    /// Test images for the whole-network check (default: the whole test split).
    #[arg(long, value_name = "N")]
    test_images: Option<usize>,
    /// Test images for the float check.
    #[arg(long, default_value_t = 200)]
    float_images: usize,
    /// Write the report (Markdown) here too.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// `sqz verify`.
pub fn verify(args: VerifyArgs) -> Result<()> {
    let d = args.data.load_for_run(args.run.as_deref())?;
    let report = crate::verify::parity::run_all(
        &args.blob,
        args.run.as_deref(),
        &d,
        args.layer_images,
        args.test_images.unwrap_or(d.test.len()),
        args.float_images,
    )?;
    println!("{}", report.markdown);
    if let Some(p) = &args.report {
        crate::store::write_atomic(p, report.markdown.as_bytes())?;
    }
    anyhow::ensure!(report.passed, "parity check failed (see the report above)");
    Ok(())
}

/// `sqz import`.
pub fn import(args: ImportArgs) -> Result<()> {
    args.validate()?;
    let onnx = crate::verify::import::read_model(&args.model)?;
    let images = crate::data::images::ImageSet::load(&args.calib, args.labels.as_deref())?;
    let cfg = crate::verify::import::ImportConfig {
        input_size: args.input_size,
        calib_images: args.calib_images,
        model_id: args.model_id,
        layer_images: args.layer_images,
        images: args.images.unwrap_or(usize::MAX),
        float_images: args.float_images,
    };
    let name = args.model.display().to_string();
    let imported = crate::verify::import::parse(&onnx, cfg.input_size)
        .with_context(|| format!("importing {name}"))?;
    let net = &imported.net;
    images.check_shape(net.in_channels, net.input_size, &args.calib)?;
    let r = crate::verify::import::import(&onnx, &name, &images, &cfg)?;
    println!("{}", r.report.markdown);
    anyhow::ensure!(
        r.report.passed,
        "parity check failed (see the report above); nothing written"
    );
    for f in crate::verify::import::write_outputs(&args.out, &r)? {
        println!("wrote {}", f.display());
    }
    Ok(())
}
