//! The import checked and written: tract on the original ONNX against the imported network
//! (the float check), the network calibrated and quantised into a blob, the blob checked
//! against tract like `sqz verify` does, and the blob and its report written together.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use prost::Message;
use tract_onnx::pb::{ModelProto, ValueInfoProto};
use tract_onnx::prelude::*;

use super::parse::{Imported, parse};
use crate::compress::fold::forward_traced;
use crate::compress::quantize::{calibrate, dense_plan, net_input, quantize};
use crate::data::images::Images;
use crate::export::tract::{chw_unit, load_typed};
use crate::store::write_all_atomic;
use crate::verify::parity::{FloatCheck, FloatParity, VerifyReport, check_blob, tolerance};

/// tract on the original ONNX (logits tensor made the graph output) vs our [`FloatNet`]
/// forward pass, on the first `count` images. Returns the comparison and the largest |logit|.
pub fn float_parity_onnx<I: Images + ?Sized>(
    bytes: &[u8],
    imp: &Imported,
    images: &I,
    count: usize,
) -> Result<(FloatParity, f32)> {
    let mut model = ModelProto::decode(bytes).context("not an ONNX model")?;
    let graph = model.graph.as_mut().context("no graph")?;
    graph.output = vec![ValueInfoProto {
        name: imp.logits.clone(),
        ..Default::default()
    }];
    let net = &imp.net;
    let (c, s) = (net.in_channels, net.input_size);
    let shape = if imp.nhwc {
        tvec![1, s, s, c]
    } else {
        tvec![1, c, s, s]
    };
    let fact = InferenceFact::dt_shape(f32::datum_type(), shape.clone());
    let plan = load_typed(&model.encode_to_vec(), fact)
        .context("tract could not run the original model")?;
    let n = count.min(images.count());
    let (mut max, mut scale) = (0f32, 0f32);
    for i in 0..n {
        let px = images.pixels(i);
        let v: Vec<f32> = if imp.nhwc {
            px.iter().map(|&p| f32::from(p) / 255.0).collect()
        } else {
            chw_unit(px, c)
        };
        let outs = plan.run(tvec!(Tensor::from_shape(&shape, &v)?.into()))?;
        let theirs: Vec<f32> = outs[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect();
        let ours = forward_traced(net, net_input(net, px), |_, _, _| {});
        ensure!(
            theirs.len() == ours.len(),
            "tract gives {} logits, the imported network {}",
            theirs.len(),
            ours.len()
        );
        for (a, b) in ours.iter().zip(&theirs) {
            max = max.max((a - b).abs());
            scale = scale.max(b.abs());
        }
    }
    Ok((
        FloatParity {
            images: n,
            max_abs_delta: max,
        },
        scale,
    ))
}

/// Settings of `sqz import`.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Input side when the model's is symbolic (or to confirm it).
    pub input_size: Option<usize>,
    /// Images used to calibrate activation ranges.
    pub calib_images: usize,
    /// Model id written into the blob header.
    pub model_id: u64,
    /// Images for the per-layer parity check.
    pub layer_images: usize,
    /// Images for the whole-network check.
    pub images: usize,
    /// Images for the float check of the import (tract on the original ONNX vs ours).
    pub float_images: usize,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            input_size: None,
            calib_images: 1000,
            model_id: 1,
            layer_images: 10,
            images: usize::MAX,
            float_images: 50,
        }
    }
}

/// The outcome of an import: nothing is written yet (see [`write_outputs`]).
#[derive(Debug)]
pub struct ImportResult {
    /// The parsed model.
    pub imported: Imported,
    /// The blob.
    pub blob: Vec<u8>,
    /// Parity with tract (per layer, whole network, float import check).
    pub report: VerifyReport,
}

/// Imports `onnx` (its bytes, `name` for messages) calibrated and checked on `images` (HWC
/// pixels of the model's size, scaled to [0, 1]).
pub fn import<I: Images + ?Sized>(
    onnx: &[u8],
    name: &str,
    images: &I,
    cfg: &ImportConfig,
) -> Result<ImportResult> {
    let imported = parse(onnx, cfg.input_size).with_context(|| format!("importing {name}"))?;
    let net = &imported.net;
    ensure!(images.count() > 0, "no calibration images");
    let len = net.in_channels * net.input_size * net.input_size;
    ensure!(
        images.pixels(0).len() == len,
        "images have {} pixels each, the model takes {}x{}x{} = {len}",
        images.pixels(0).len(),
        net.input_size,
        net.input_size,
        net.in_channels
    );
    eprintln!(
        "import: {} layers, {} parameters, input {}x{}x{}, {} classes",
        net.layers.len(),
        net.param_count(),
        net.input_size,
        net.input_size,
        net.in_channels,
        imported.logits_count()
    );
    let (float, scale) = float_parity_onnx(onnx, &imported, images, cfg.float_images)?;
    eprintln!(
        "calibrating on {} images...",
        cfg.calib_images.min(images.count())
    );
    let ranges = calibrate(net, images, cfg.calib_images);
    let q = quantize(net, &ranges, &dense_plan)?;
    let blob = q.blob(cfg.model_id)?;
    let subset = |n: usize| Subset(images, n.min(images.count()));
    let mut report = check_blob(
        &blob,
        &format!("{name} (imported)"),
        &subset(cfg.layer_images),
        &subset(cfg.images),
        Some(FloatCheck {
            parity: float,
            what: format!(
                "tract on the original ONNX and the imported network (threshold {:.0e} x \
                 max(1, largest |logit| {scale:.3}))",
                tolerance::FLOAT_ABS
            ),
            threshold: tolerance::FLOAT_ABS * scale.max(1.0),
        }),
    )?;
    let mut head = format!(
        "# Import of {name}\n\nopset {}, input `{}` {} {}x{}x{}, logits `{}`; blob {} bytes.\n\n",
        imported.opset,
        imported.input_name,
        if imported.nhwc { "NHWC" } else { "NCHW" },
        net.input_size,
        net.input_size,
        net.in_channels,
        imported.logits,
        blob.len()
    );
    for (i, l) in imported.summary.iter().enumerate() {
        head.push_str(&format!("{i}. {l}\n"));
    }
    head.push('\n');
    report.markdown = head + &report.markdown;
    Ok(ImportResult {
        imported,
        blob,
        report,
    })
}

impl Imported {
    /// Number of classes (logits).
    pub fn logits_count(&self) -> usize {
        self.net.convs().last().map_or(0, |c| c.cout)
    }
}

/// The first `n` images of a set.
struct Subset<'a, I: ?Sized>(&'a I, usize);

impl<I: Images + ?Sized> Images for Subset<'_, I> {
    fn count(&self) -> usize {
        self.1
    }
    fn pixels(&self, i: usize) -> &[u8] {
        self.0.pixels(i)
    }
    fn label(&self, i: usize) -> Option<usize> {
        self.0.label(i)
    }
}

/// The report's path beside a blob: `NAME.report.md`.
pub fn report_path(blob: &Path) -> PathBuf {
    blob.with_extension("report.md")
}

/// Writes the blob and its report, each to a temporary file first, renamed into place only once
/// both are written.
pub fn write_outputs(out: &Path, r: &ImportResult) -> Result<Vec<PathBuf>> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
    }
    out.file_name().context("output has no file name")?;
    let report = report_path(out);
    write_all_atomic(&[(out, &r.blob[..]), (&report, r.report.markdown.as_bytes())])?;
    Ok(vec![out.to_path_buf(), report])
}
