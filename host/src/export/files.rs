//! The deployable files of a model (`sqz export`, and the outputs of `sqz compress`): the blob (in `shared`'s format, checked by
//! `Model::from_bytes`), the float ONNX of the trained network (BatchNorm folded), and the
//! quantised ONNX of the compressed model, which tract 0.23.9 loads and runs, in two forms:
//! `NAME.qdq.onnx` (QDQ, integer-exact: DequantizeLinear with scale 1 gives the integers x - zp,
//! w and the bias as floats, a float Conv sums them exactly, then Mul by the channel
//! multipliers and QuantizeLinear with scale 1 requantise exactly as the kernels do) and
//! `NAME.int8.onnx` (QLinearConv). Bypasses are DequantizeLinear / Add / QuantizeLinear in
//! both. Outputs are the logits, dequantised and as
//! int8 (tract's quantised Softmax is broken, so there is none).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::onnx::{QuantFormat, float_model, quant_model, quant_model_as, to_bytes};
use crate::compress::fold::FloatNet;
use crate::compress::run::Compressed;
use crate::store::write_atomic;
use crate::train::checkpoint::load_run;

/// Writes `NAME.blob`, `NAME.float.onnx`, `NAME.int8.onnx`, `NAME.qdq.onnx` and
/// `NAME.classes.txt` (the training data's class names, one per line, read by `sqz classify`)
/// into `out`, each atomically, after all were produced (a refused blob writes nothing).
pub fn export(
    out: &Path,
    name: &str,
    blob: &[u8],
    float: &FloatNet,
    classes: &[String],
) -> Result<Vec<PathBuf>> {
    let model =
        shared::Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("invalid blob: {e}"))?;
    anyhow::ensure!(
        model.num_classes() == classes.len(),
        "the blob has {} classes, the training data {}",
        model.num_classes(),
        classes.len()
    );
    let class_names: String = classes.iter().map(|n| format!("{n}\n")).collect();
    let files = [
        (format!("{name}.blob"), blob.to_vec()),
        (format!("{name}.float.onnx"), to_bytes(&float_model(float))),
        (
            format!("{name}.int8.onnx"),
            to_bytes(&quant_model(&model, false)?),
        ),
        (
            format!("{name}.qdq.onnx"),
            to_bytes(&quant_model_as(&model, false, QuantFormat::Qdq)?),
        ),
        (format!("{name}.classes.txt"), class_names.into_bytes()),
    ];
    std::fs::create_dir_all(out).with_context(|| format!("while creating {}", out.display()))?;
    let mut written = Vec::new();
    for (f, bytes) in files {
        let p = out.join(f);
        write_atomic(&p, &bytes)?;
        written.push(p);
    }
    Ok(written)
}

/// [`export`] from files: a blob and the training run it came from.
pub fn export_files(run: &Path, blob: &Path, out: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let bytes = std::fs::read(blob).with_context(|| format!("while reading {}", blob.display()))?;
    let (cfg, net) = load_run(run)?;
    let float = FloatNet::from_burn(&net, &cfg.model);
    export(out, name, &bytes, &float, &cfg.classes)
        .with_context(|| format!("exporting {}", blob.display()))
}

/// Writes a compression run's files into `out`, each atomically: the blob and ONNX files
/// ([`export`]), the report (Markdown and JSON) and the chart of the stages.
pub fn write_outputs(out: &Path, c: &Compressed, name: &str) -> Result<Vec<PathBuf>> {
    let mut written = export(out, name, &c.blob, &c.float, &c.classes)?;
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
    crate::chart::scatter_png(
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
