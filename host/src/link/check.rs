//! The device checked against the host: the same model on both ends, and test images streamed
//! through the device with every logit compared bit for bit with the host's `shared` kernels.

use anyhow::{Context, Result, anyhow, ensure};
use shared::protocol::CostUnit;

use super::serial::{DeviceInfo, DeviceLink};

/// The host's answer for a blob: `shared`'s kernels, the same code the firmware runs (on the host
/// they take the portable path; results must be identical bit for bit).
pub fn host_reference(blob: &[u8]) -> Result<impl FnMut(&[u8]) -> Vec<i8> + '_> {
    let model = shared::Model::from_bytes(blob).map_err(|e| anyhow!("model blob refused: {e}"))?;
    let mut arena = vec![0u8; model.arena_len()];
    let mut input = vec![0i8; model.input_len()];
    Ok(move |pixels: &[u8]| {
        let mut logits = vec![0i8; model.num_classes()];
        shared::quantize_input_u8(&model, pixels, &mut input);
        shared::run(&model, &input, &mut arena, &mut logits);
        logits
    })
}

/// Checks that the device runs the model in `blob` (same id and shapes) before comparing logits.
pub fn check_same_model(info: &DeviceInfo, blob: &[u8]) -> Result<()> {
    let model = shared::Model::from_bytes(blob).map_err(|e| anyhow!("model blob refused: {e}"))?;
    let d = model.input_dims();
    ensure!(
        info.model_id == model.model_id()
            && info.input_dims == [d.h, d.w, d.c]
            && usize::from(info.num_classes) == model.num_classes()
            && info.blob_len as usize == blob.len(),
        "the device runs model {:#x} ({} B, input {:?}), the blob is model {:#x} ({} B, input {:?}): flash the firmware built from this blob",
        info.model_id,
        info.blob_len,
        info.input_dims,
        model.model_id(),
        blob.len(),
        [d.h, d.w, d.c]
    );
    Ok(())
}

/// What [`eval`] measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalReport {
    /// Images classified.
    pub images: usize,
    /// Images whose device logits equal the reference's, bit for bit.
    pub logits_match: usize,
    /// First mismatch: image index, device logits, reference logits.
    pub first_mismatch: Option<(usize, Vec<i8>, Vec<i8>)>,
    /// Correct top-1 predictions (when labels were given).
    pub correct: usize,
    /// Whether labels were given.
    pub labelled: bool,
    /// Mean, min and max cost per inference in `cost_unit`.
    pub cost_mean: f64,
    /// Minimum cost.
    pub cost_min: u32,
    /// Maximum cost.
    pub cost_max: u32,
    /// Unit of the costs.
    pub cost_unit: Option<CostUnit>,
    /// Stack high-water mark after the run, bytes.
    pub stack_hwm: u32,
}

impl EvalReport {
    /// Top-1 accuracy, if labelled.
    pub fn accuracy(&self) -> Option<f64> {
        (self.labelled && self.images > 0).then(|| self.correct as f64 / self.images as f64)
    }
}

/// Streams `images` (each [`DeviceInfo::input_len`] bytes) through the device and compares each
/// result with `reference(pixels)` (the host's `shared` kernels); `labels`, if given, score
/// accuracy. `progress` is called after each image.
pub fn eval<'a>(
    link: &mut DeviceLink,
    images: impl IntoIterator<Item = &'a [u8]>,
    labels: Option<&[u8]>,
    mut reference: impl FnMut(&[u8]) -> Vec<i8>,
    mut progress: impl FnMut(usize),
) -> Result<EvalReport> {
    let info = link.info()?;
    let mut report = EvalReport {
        labelled: labels.is_some(),
        cost_min: u32::MAX,
        cost_unit: Some(info.cost_unit),
        ..EvalReport::default()
    };
    let mut cost_sum = 0f64;
    for (i, pixels) in images.into_iter().enumerate() {
        ensure!(
            pixels.len() == info.input_len(),
            "image {i} has {} bytes, the device takes {}",
            pixels.len(),
            info.input_len()
        );
        let got = link
            .classify(pixels)
            .with_context(|| format!("while classifying image {i}"))?;
        let want = reference(pixels);
        if got.logits == want {
            report.logits_match += 1;
        } else if report.first_mismatch.is_none() {
            report.first_mismatch = Some((i, got.logits.clone(), want));
        }
        if let Some(label) = labels.and_then(|l| l.get(i)) {
            report.correct += usize::from(got.class == *label);
        }
        cost_sum += f64::from(got.cost);
        report.cost_min = report.cost_min.min(got.cost);
        report.cost_max = report.cost_max.max(got.cost);
        report.images += 1;
        progress(i + 1);
    }
    if report.images > 0 {
        report.cost_mean = cost_sum / report.images as f64;
    } else {
        report.cost_min = 0;
    }
    report.stack_hwm = link.info()?.stack_hwm;
    Ok(report)
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} images, logits bit-exact vs host: {}/{}",
            self.images, self.logits_match, self.images
        )?;
        if let Some(acc) = self.accuracy() {
            write!(f, ", device top-1 accuracy {:.2} %", acc * 100.0)?;
        }
        let unit = match self.cost_unit {
            Some(CostUnit::Instructions) => "instructions",
            Some(CostUnit::Cycles) => "cycles",
            None => "",
        };
        write!(
            f,
            ", cost per inference {:.0} {unit} (min {}, max {}), stack high-water mark {} B",
            self.cost_mean, self.cost_min, self.cost_max, self.stack_hwm
        )?;
        if let Some((i, got, want)) = &self.first_mismatch {
            write!(
                f,
                "; first mismatch at image {i}: device {got:?}, host {want:?}"
            )?;
        }
        Ok(())
    }
}
