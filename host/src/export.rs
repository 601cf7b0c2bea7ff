//! `sqz export`: the deployable files of a model: the blob (in `shared`'s format, checked by
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

use crate::fold::FloatNet;
use crate::train::write_atomic;

/// Writes `NAME.blob`, `NAME.float.onnx`, `NAME.int8.onnx` and `NAME.qdq.onnx` into `out`, each
/// atomically, after all were produced (a refused blob writes nothing).
pub fn export(out: &Path, name: &str, blob: &[u8], float: &FloatNet) -> Result<Vec<PathBuf>> {
    let model =
        shared::Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("invalid blob: {e}"))?;
    let files = [
        (format!("{name}.blob"), blob.to_vec()),
        (
            format!("{name}.float.onnx"),
            crate::onnx::to_bytes(&crate::onnx::float_model(float)),
        ),
        (
            format!("{name}.int8.onnx"),
            crate::onnx::to_bytes(&crate::onnx::quant_model(&model, false)?),
        ),
        (
            format!("{name}.qdq.onnx"),
            crate::onnx::to_bytes(&crate::onnx::quant_model_as(
                &model,
                false,
                crate::onnx::QuantFormat::Qdq,
            )?),
        ),
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
    let (cfg, net) = crate::compress::load_run(run)?;
    let float = FloatNet::from_burn(&net, &cfg.model);
    export(out, name, &bytes, &float).with_context(|| format!("exporting {}", blob.display()))
}
