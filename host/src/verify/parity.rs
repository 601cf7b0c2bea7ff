//! Parity with tract, the independent referee.
//!
//! * Per layer: each blob layer becomes a one-layer quantised ONNX ([`crate::export::onnx::single_layer_model`])
//!   with exactly the blob's parameters; tract runs it on the real int8 activations the `shared`
//!   kernels fed that layer, and every int8 output (fire squeeze, concat, bypass conv, output)
//!   must be equal. Mismatches are counted, with the first one printed.
//! * Whole network: the blob on `shared` vs tract on the quantised ONNX of the whole network:
//!   top-1 agreement and the largest int8 logit difference in quantisation steps.
//! * Float: tract on the float ONNX (BatchNorm folded) vs burn's forward pass of the trained
//!   network.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shared::{Model, SubOp};
use tract_onnx::prelude::*;

use crate::compress::fold::FloatNet;
use crate::data::Split;
use crate::data::images::Images;
use crate::eval::argmax_i8;
use crate::export::onnx::QuantFormat;
use crate::export::tract::{TRACT_VERSION, chw_unit, load_typed};

/// Result of comparing one layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerParity {
    /// Layer index in the blob.
    pub layer: u16,
    /// Kind of layer.
    pub kind: String,
    /// int8 values compared.
    pub values: usize,
    /// Values that differ.
    pub mismatches: usize,
    /// Largest |difference| in LSB.
    pub max_delta: i32,
    /// The first mismatch: (tensor, NCHW flat index, ours, tract's).
    pub first: Option<(String, usize, i8, i8)>,
}

/// Whole-network comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkParity {
    /// Images compared.
    pub images: usize,
    /// Images whose top-1 class agrees.
    pub top1_agree: usize,
    /// Largest |int8 logit difference| in quantisation steps.
    pub max_logit_delta: i32,
    /// Accuracy of the blob on `shared`.
    pub shared_acc: f64,
    /// Accuracy of tract on the quantised ONNX.
    pub tract_acc: f64,
}

/// Float comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloatParity {
    /// Images compared.
    pub images: usize,
    /// Largest |logit difference|.
    pub max_abs_delta: f32,
}

fn sub_name(layer: u16, op: SubOp) -> Option<String> {
    let s = match op {
        SubOp::Squeeze => "squeeze",
        SubOp::Expand => "expand",
        SubOp::BypassConv => "bypass",
        SubOp::Output => "out",
        _ => return None,
    };
    Some(format!("l{layer}_{s}"))
}

fn nhwc_to_nchw(v: &[i8], h: usize, w: usize, c: usize) -> Vec<i8> {
    let mut out = vec![0i8; v.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out[(ch * h + y) * w + x] = v[(y * w + x) * c + ch];
            }
        }
    }
    out
}

/// Every tensor the kernels produced for one image: `(name, NHWC data)`, plus each layer's input.
fn observe(model: &Model<'_>, pixels: &[u8]) -> (Vec<i8>, Vec<(String, Vec<i8>)>) {
    let mut arena = vec![0u8; model.observed_arena_len()];
    let mut input = vec![0i8; model.input_len()];
    shared::quantize_input_u8(model, pixels, &mut input);
    let mut logits = vec![0i8; model.num_classes()];
    let mut seen = Vec::new();
    shared::run_observed(
        model,
        &input,
        &mut arena,
        &mut logits,
        &mut |l, op, data| {
            if let Some(n) = sub_name(l, op) {
                seen.push((n, data.to_vec()));
            }
        },
    );
    (input, seen)
}

/// Per-layer parity on `images` (each layer fed the `shared` kernels' own activations).
pub fn per_layer<I: Images + ?Sized>(model: &Model<'_>, images: &I) -> Result<Vec<LayerParity>> {
    per_layer_as(model, images, QuantFormat::QLinear)
}

/// [`per_layer`] with the one-layer models written in `format`.
pub fn per_layer_as<I: Images + ?Sized>(
    model: &Model<'_>,
    images: &I,
    format: QuantFormat,
) -> Result<Vec<LayerParity>> {
    let traces: Vec<_> = (0..images.count())
        .map(|i| observe(model, images.pixels(i)))
        .collect();
    let mut report = Vec::new();
    for info in model.layers() {
        let proto = crate::export::onnx::single_layer_model_as(&info, format)
            .with_context(|| format!("layer {}", info.index))?;
        let names: Vec<String> = proto
            .graph
            .as_ref()
            .map(|g| g.output.iter().map(|o| o.name.clone()).collect())
            .unwrap_or_default();
        let d = info.input;
        let (h, w, c) = (d.h as usize, d.w as usize, d.c as usize);
        let fact = InferenceFact::dt_shape(i8::datum_type(), tvec![1, c, h, w]);
        let plan = load_typed(&crate::export::onnx::to_bytes(&proto), fact)
            .with_context(|| format!("layer {}", info.index))?;
        let mut lp = LayerParity {
            layer: info.index,
            kind: kind_name(&info.desc).into(),
            values: 0,
            mismatches: 0,
            max_delta: 0,
            first: None,
        };
        for (input, seen) in &traces {
            // The layer's input is the previous layer's output (or the quantised image).
            let x_nhwc: &[i8] = if info.index == 0 {
                input
            } else {
                let prev = format!("l{}_out", info.index - 1);
                &seen
                    .iter()
                    .find(|(n, _)| *n == prev)
                    .context("missing trace")?
                    .1
            };
            let x = Tensor::from_shape(&[1, c, h, w], &nhwc_to_nchw(x_nhwc, h, w, c))?;
            let outs = plan.run(tvec!(x.into()))?;
            for (name, out) in names.iter().zip(outs.iter()) {
                let Some((_, ours)) = seen.iter().find(|(n, _)| n == name) else {
                    continue;
                };
                let view = out.to_plain_array_view::<i8>()?;
                let shape = view.shape().to_vec();
                let (oc, oh, ow) = (shape[1], shape[2], shape[3]);
                let ours = nhwc_to_nchw(ours, oh, ow, oc);
                let theirs: Vec<i8> = view.iter().copied().collect();
                for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                    lp.values += 1;
                    if a != b {
                        lp.mismatches += 1;
                        lp.max_delta = lp.max_delta.max((*a as i32 - *b as i32).abs());
                        if lp.first.is_none() {
                            lp.first = Some((name.clone(), k, *a, *b));
                        }
                    }
                }
                if ours.len() != theirs.len() {
                    lp.mismatches += ours.len().abs_diff(theirs.len());
                }
            }
        }
        report.push(lp);
    }
    Ok(report)
}

fn kind_name(d: &shared::format::LayerDesc<'_>) -> &'static str {
    use shared::format::LayerDesc::*;
    match d {
        Conv(_) => "conv",
        MaxPool(_) => "maxpool",
        AvgPool(_) => "avgpool",
        GlobalAvgPool(_) => "global avgpool",
        Fire(_) => "fire",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

/// The blob on `shared` vs tract on the whole quantised ONNX, over `images` (accuracies over
/// the labelled images; NaN when none is).
pub fn whole_network<I: Images + ?Sized>(
    model: &Model<'_>,
    blob_logits: &[Vec<i8>],
    images: &I,
    batch: usize,
) -> Result<NetworkParity> {
    whole_network_as(model, blob_logits, images, batch, QuantFormat::QLinear)
}

/// [`whole_network`] on the quantised ONNX written in `format`.
pub fn whole_network_as<I: Images + ?Sized>(
    model: &Model<'_>,
    blob_logits: &[Vec<i8>],
    images: &I,
    batch: usize,
    format: QuantFormat,
) -> Result<NetworkParity> {
    let proto = crate::export::onnx::quant_model_as(model, false, format)?;
    let d = model.input_dims();
    let (c, h, w) = (d.c as usize, d.h as usize, d.w as usize);
    let n = images.count();
    let batch = batch.max(1);
    let mut plans: Vec<(usize, Arc<TypedRunnableModel>)> = Vec::new();
    let mut agree = 0;
    let mut max_delta = 0;
    let (mut ok_shared, mut ok_tract, mut labelled) = (0, 0, 0);
    let bytes = crate::export::onnx::to_bytes(&proto);
    let mut start = 0;
    while start < n {
        let b = batch.min(n - start);
        if !plans.iter().any(|(s, _)| *s == b) {
            let fact = InferenceFact::dt_shape(f32::datum_type(), tvec![b, c, h, w]);
            plans.push((b, load_typed(&bytes, fact)?));
        }
        let plan = &plans.iter().find(|(s, _)| *s == b).expect("just added").1;
        let x: Vec<f32> = (start..start + b)
            .flat_map(|i| chw_unit(images.pixels(i), c))
            .collect();
        let outs = plan.run(tvec!(Tensor::from_shape(&[b, c, h, w], &x)?.into()))?;
        let q = outs[1].to_plain_array_view::<i8>()?;
        let classes = model.num_classes();
        let q: Vec<i8> = q.iter().copied().collect();
        for j in 0..b {
            let theirs = &q[j * classes..(j + 1) * classes];
            let ours = &blob_logits[start + j];
            let (ta, oa) = (argmax_i8(theirs), argmax_i8(ours));
            agree += usize::from(ta == oa);
            if let Some(label) = images.label(start + j) {
                labelled += 1;
                ok_tract += usize::from(ta == label);
                ok_shared += usize::from(oa == label);
            }
            for (a, b) in ours.iter().zip(theirs) {
                max_delta = max_delta.max((*a as i32 - *b as i32).abs());
            }
        }
        start += b;
    }
    let acc = |ok: usize| {
        if labelled == 0 && n > 0 {
            f64::NAN
        } else {
            ok as f64 / labelled.max(1) as f64
        }
    };
    Ok(NetworkParity {
        images: n,
        top1_agree: agree,
        max_logit_delta: max_delta,
        shared_acc: acc(ok_shared),
        tract_acc: acc(ok_tract),
    })
}

/// tract on the float ONNX of the folded network vs `reference` logits (burn's forward pass
/// of the trained, unfolded network), image by image.
pub fn float_parity(net: &FloatNet, images: &Split, reference: &[Vec<f32>]) -> Result<FloatParity> {
    let proto = crate::export::onnx::float_model(net);
    let (c, s) = (net.in_channels, net.input_size);
    let fact = InferenceFact::dt_shape(f32::datum_type(), tvec![1, c, s, s]);
    let plan = load_typed(&crate::export::onnx::to_bytes(&proto), fact)?;
    let mut max = 0f32;
    for (i, reference) in reference.iter().enumerate().take(images.len()) {
        let input = crate::compress::quantize::net_input(net, images.image(i));
        let x = Tensor::from_shape(&[1, c, s, s], &input.v)?;
        let outs = plan.run(tvec!(x.into()))?;
        let theirs: Vec<f32> = outs[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect();
        for (a, b) in reference.iter().zip(&theirs) {
            max = max.max((a - b).abs());
        }
    }
    Ok(FloatParity {
        images: images.len(),
        max_abs_delta: max,
    })
}

/// A readable per-layer report.
pub fn layer_table(rows: &[LayerParity]) -> String {
    let mut s = String::from(
        "| layer | kind | int8 values | mismatches | max delta (LSB) | first mismatch |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let first = match &r.first {
            Some((t, k, a, b)) => format!("{t}[{k}]: shared {a}, tract {b}"),
            None => "-".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.layer, r.kind, r.values, r.mismatches, r.max_delta, first
        ));
    }
    s
}

/// Thresholds the checks must meet (one place, named).
pub mod tolerance {
    /// Per-layer int8 outputs: exactly equal.
    pub const LAYER_MISMATCHES: usize = 0;
    /// Whole network: top-1 agreement at least this share.
    pub const TOP1_AGREEMENT: f64 = 0.999;
    /// Whole network: int8 logits within this many quantisation steps.
    pub const LOGIT_STEPS: i32 = 2;
    /// QLinearConv form, per layer: |int8 difference| at most this.
    pub const QLINEAR_LAYER_LSB: i32 = 1;
    /// Float: |logit difference| at most this.
    pub const FLOAT_ABS: f32 = 1e-4;
}

/// The three checks and their Markdown report.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Per-layer rows (QDQ form, the reference check).
    pub layers: Vec<LayerParity>,
    /// Whole network (QDQ form, the reference check).
    pub network: NetworkParity,
    /// Whole network, QLinearConv form.
    pub qlinear: NetworkParity,
    /// Per-layer rows, QLinearConv form.
    pub qlinear_layers: Vec<LayerParity>,
    /// Float check, when a run was given.
    pub float: Option<FloatParity>,
    /// All thresholds met.
    pub passed: bool,
    /// The readable report.
    pub markdown: String,
}

/// Runs every check on a blob file (and its training run, for the float check).
pub fn run_all(
    blob_path: &std::path::Path,
    run: Option<&std::path::Path>,
    data: &crate::data::Dataset,
    layer_images: usize,
    images: usize,
    float_images: usize,
) -> Result<VerifyReport> {
    let blob = std::fs::read(blob_path)
        .with_context(|| format!("while reading {}", blob_path.display()))?;
    let model = shared::Model::from_bytes(&blob)
        .map_err(|e| anyhow::anyhow!("{}: invalid blob: {e}", blob_path.display()))?;
    data.check_input_len(model.input_len(), &blob_path.display().to_string())?;
    let test = &data.test;
    let float = match run {
        Some(run) => {
            eprintln!("float parity on {float_images} test images...");
            let (cfg, net) = crate::train::checkpoint::load_run(run)?;
            let fnet = FloatNet::from_burn(&net, &cfg.model);
            let few = test.slice(0..float_images.min(test.len()));
            let reference =
                crate::eval::logits(&net, &few, cfg.normalization, &burn::tensor::Device::flex());
            Some(FloatCheck {
                parity: float_parity(&fnet, &few, &reference)?,
                what: "burn and tract on the float ONNX".into(),
                threshold: tolerance::FLOAT_ABS,
            })
        }
        None => None,
    };
    check_blob(
        &blob,
        &blob_path.display().to_string(),
        &test.slice(0..layer_images.min(test.len())),
        &test.slice(0..images.min(test.len())),
        float,
    )
}

/// A float comparison done by the caller, for the report.
#[derive(Debug, Clone)]
pub struct FloatCheck {
    /// The comparison.
    pub parity: FloatParity,
    /// What was compared with what (for the report).
    pub what: String,
    /// Largest |logit difference| allowed.
    pub threshold: f32,
}

/// Per-layer parity on `layer_set`, whole-network parity on `net_set`, and the caller's float
/// check, with the Markdown report titled after `name`.
pub fn check_blob<I: Images + ?Sized>(
    blob: &[u8],
    name: &str,
    layer_set: &I,
    net_set: &I,
    float: Option<FloatCheck>,
) -> Result<VerifyReport> {
    let model =
        Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("{name}: invalid blob: {e}"))?;
    let layer_images = layer_set.count();
    // The reference check is the integer-exact QDQ form (the exported `NAME.qdq.onnx`); the
    // QLinearConv form runs tract's own integer conv path and is reported beside it.
    eprintln!("per-layer parity (QDQ form) on {layer_images} images...");
    let layers = per_layer_as(&model, layer_set, QuantFormat::Qdq)?;
    eprintln!("per-layer parity (QLinearConv form) on {layer_images} images...");
    let qlinear_layers = per_layer(&model, layer_set)?;
    eprintln!("whole-network parity on {} images...", net_set.count());
    let (_, blob_logits) = crate::eval::evaluate_blob(blob, net_set)?;
    let network = whole_network_as(&model, &blob_logits, net_set, 100, QuantFormat::Qdq)?;
    let qlinear = whole_network(&model, &blob_logits, net_set, 100)?;
    let layer_bad: usize = layers.iter().map(|l| l.mismatches).sum();
    let agree = network.top1_agree as f64 / network.images.max(1) as f64;
    let ql_agree = qlinear.top1_agree as f64 / qlinear.images.max(1) as f64;
    let ql_bad: usize = qlinear_layers.iter().map(|l| l.mismatches).sum();
    let ql_max = qlinear_layers
        .iter()
        .map(|l| l.max_delta)
        .max()
        .unwrap_or(0);
    let mut passed = layer_bad == tolerance::LAYER_MISMATCHES
        && agree >= tolerance::TOP1_AGREEMENT
        && network.max_logit_delta <= tolerance::LOGIT_STEPS
        && ql_max <= tolerance::QLINEAR_LAYER_LSB
        && ql_agree >= tolerance::TOP1_AGREEMENT;
    let pct = |a: f64| {
        if a.is_nan() {
            "n/a (no labels)".to_string()
        } else {
            format!("{:.2} %", 100.0 * a)
        }
    };
    let mut md = format!(
        "# Parity of {name} with tract {TRACT_VERSION}\n\n\
         The quantised network as ONNX in integer-exact QDQ form, the kernels' integer \
         requantisation step for step: each conv and pool is DequantizeLinear with scale 1 (the \
         integers x - zp, w and the bias as floats) -> Conv (exact sums) -> Cast to f64 -> Mul by \
         the u16 multipliers -> Add 2^(s-1) -> Mul 2^-s -> Floor -> QuantizeLinear with scale 1; \
         bypass adds the same chain on (a - za) * ma + (b - zb) * mb (shared/src/QUANT.md).\n\n\
         ## Per layer ({layer_images} images, each layer fed the kernels' own activations)\n\n{}\n\
         Total mismatching int8 values: {layer_bad} (threshold {}).\n\n\
         ## Whole network ({} images)\n\n\
         | top-1 agreement | max int8 logit delta | shared accuracy | tract accuracy |\n|---|---|---|---|\n\
         | {:.2} % ({} / {}) | {} steps | {} | {} |\n\n\
         Thresholds: agreement >= {:.1} %, delta <= {} steps.\n",
        layer_table(&layers),
        tolerance::LAYER_MISMATCHES,
        network.images,
        100.0 * agree,
        network.top1_agree,
        network.images,
        network.max_logit_delta,
        pct(network.shared_acc),
        pct(network.tract_acc),
        100.0 * tolerance::TOP1_AGREEMENT,
        tolerance::LOGIT_STEPS
    );
    md.push_str(&format!(
        "\n## QLinearConv form (tract's integer conv path)\n\n\
         The same network with QLinearConv for convs and pools. tract's QLinearConv \
         requantisation disagrees with the kernels (and with its own QDQ path) on rare values by \
         1 LSB (threshold {} LSB per layer); a difference in an early layer can move the logits \
         by a few steps (reported, not gated; top-1 agreement gated at {:.1} %).\n\n\
         Per layer ({layer_images} images): {ql_bad} mismatching int8 values, max {ql_max} LSB.\n\n{}\n\
         Whole network ({} images): {:.2} % top-1 agreement ({} / {}), max int8 logit delta {} steps.\n",
        tolerance::QLINEAR_LAYER_LSB,
        100.0 * tolerance::TOP1_AGREEMENT,
        layer_table(&qlinear_layers),
        qlinear.images,
        100.0 * ql_agree,
        qlinear.top1_agree,
        qlinear.images,
        qlinear.max_logit_delta
    ));
    if let Some(f) = &float {
        passed &= f.parity.max_abs_delta <= f.threshold;
        md.push_str(&format!(
            "\n## Float ({} images)\n\nmax |logit delta| between {}: {:.3e} (threshold {:.0e}).\n",
            f.parity.images, f.what, f.parity.max_abs_delta, f.threshold
        ));
    }
    md.push_str(&format!(
        "\nResult: {}\n",
        if passed { "PASS" } else { "FAIL" }
    ));
    Ok(VerifyReport {
        layers,
        network,
        qlinear,
        qlinear_layers,
        float: float.map(|f| f.parity),
        passed,
        markdown: md,
    })
}
