//! Batching and evaluation, shared by training, fine-tuning, compression and verification:
//! NCHW batches (with the training augmentation), accuracy / loss / confusion of a burn network,
//! its float logits, and the accuracy of a blob on the `shared` kernels.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use anyhow::Result;

use crate::data::{Images, Normalization, Split};
use crate::train::model::SqueezeNet;

/// One epoch's randomness: a generator seeded with `seed` (for the shuffle, then the
/// augmentation), the device's generator (dropout) reseeded with `device_seed`, and the order
/// of the `len` images, shuffled.
pub fn epoch_order(
    len: usize,
    seed: u64,
    device_seed: u64,
    device: &Device,
) -> (StdRng, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    device.seed(device_seed);
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng);
    (rng, order)
}

/// Zero padding of the training crop: 2 pixels up to 28x28 (Fashion-MNIST's recipe), a
/// fourteenth of the side above, so the shift is the same share of the picture.
pub fn crop_pad(side: usize) -> i32 {
    (side / 14).max(2) as i32
}

/// Builds an NCHW batch from `indices` of `split`, with optional augmentation.
pub fn make_batch(
    split: &Split,
    indices: &[usize],
    norm: Normalization,
    augment: Option<&mut StdRng>,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let (c, side) = (split.channels, split.side);
    let n = split.image_len();
    let mut x = vec![0f32; indices.len() * n];
    let mut img = vec![0f32; n];
    let mut aug = augment;
    for (b, &i) in indices.iter().enumerate() {
        norm.apply(split.image(i), &mut img);
        let out = &mut x[b * n..(b + 1) * n];
        match aug.as_deref_mut() {
            None => hwc_to_chw(&img, c, side, (0, 0, false), 0.0, out),
            Some(rng) => {
                // Random crop of the zero-padded image, then a coin-flip mirror.
                let pad = crop_pad(side);
                let shift = (rng.random_range(-pad..=pad), rng.random_range(-pad..=pad));
                let flip = rng.random_bool(0.5);
                let fill = if norm == Normalization::Unit {
                    0.0
                } else {
                    img.iter().cloned().fold(f32::INFINITY, f32::min)
                };
                hwc_to_chw(&img, c, side, (shift.0, shift.1, flip), fill, out);
            }
        }
    }
    let labels: Vec<i64> = indices
        .iter()
        .map(|&i| i64::from(split.labels[i]))
        .collect();
    (
        Tensor::from_data(TensorData::new(x, [indices.len(), c, side, side]), device),
        Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
    )
}

/// Writes the HWC image `img` as CHW into `out`, shifted by `(dy, dx)` (pixels from outside
/// read `fill`) and mirrored left-right when `flip`.
fn hwc_to_chw(
    img: &[f32],
    c: usize,
    side: usize,
    (dy, dx, flip): (i32, i32, bool),
    fill: f32,
    out: &mut [f32],
) {
    let s = side as i32;
    for y in 0..s {
        for xx in 0..s {
            let sy = y + dy;
            let sx0 = xx + dx;
            let sx = if flip { s - 1 - sx0 } else { sx0 };
            let inside = (0..s).contains(&sy) && (0..s).contains(&sx);
            let at = (y * s + xx) as usize;
            for ch in 0..c {
                out[ch * side * side + at] = if inside {
                    img[(sy as usize * side + sx as usize) * c + ch]
                } else {
                    fill
                };
            }
        }
    }
}

/// Accuracy, mean loss and confusion matrix of `model` on `split`.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Top-1 accuracy.
    pub acc: f64,
    /// Mean cross-entropy (no smoothing).
    pub loss: f64,
    /// `[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// The predicted class of every image.
    pub predictions: Vec<u8>,
}

/// Evaluates without autodiff, in batches of 256.
pub fn evaluate(
    model: &SqueezeNet,
    split: &Split,
    norm: Normalization,
    device: &Device,
) -> Evaluation {
    let model = model.valid();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let classes = model.num_classes();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut predictions = Vec::with_capacity(split.len());
    let mut loss_sum = 0.0;
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(256) {
        let (x, y) = make_batch(split, chunk, norm, None, device);
        let logits = crate::train::nhwc::logits(&model, x);
        loss_sum +=
            f64::from(loss_fn.forward(logits.clone(), y).into_scalar::<f32>()) * chunk.len() as f64;
        let pred = logits.argmax(1).into_data();
        for (&i, p) in chunk.iter().zip(pred.iter::<i64>()) {
            confusion[split.labels[i] as usize][p as usize] += 1;
            predictions.push(p as u8);
        }
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    Evaluation {
        acc: correct as f64 / split.len().max(1) as f64,
        loss: loss_sum / split.len().max(1) as f64,
        confusion,
        predictions,
    }
}

/// Float logits of every image of `split` (no autodiff, batches of 256).
pub fn logits(
    model: &SqueezeNet,
    split: &Split,
    norm: Normalization,
    device: &Device,
) -> Vec<Vec<f32>> {
    let model = model.valid();
    let idx: Vec<usize> = (0..split.len()).collect();
    let mut out = Vec::with_capacity(split.len());
    for chunk in idx.chunks(256) {
        let (x, _) = make_batch(split, chunk, norm, None, device);
        let data: Vec<f32> = model.forward(x).into_data().iter::<f32>().collect();
        let classes = data.len() / chunk.len();
        out.extend(data.chunks(classes).map(|c| c.to_vec()));
    }
    out
}

/// Accuracy of a blob on `split` with the `shared` kernels (over the labelled images; NaN when
/// none is), and every image's int8 logits.
pub fn evaluate_blob<I: Images + ?Sized>(blob: &[u8], split: &I) -> Result<(f64, Vec<Vec<i8>>)> {
    let model =
        shared::Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("invalid blob: {e}"))?;
    let n = split.count();
    let classes = model.num_classes();
    let work = |range: std::ops::Range<usize>| {
        let mut arena = vec![0u8; model.arena_len()];
        let mut input = vec![0i8; model.input_len()];
        let mut out = Vec::with_capacity(range.len());
        for i in range {
            shared::quantize_input_u8(&model, split.pixels(i), &mut input);
            let mut logits = vec![0i8; classes];
            shared::run(&model, &input, &mut arena, &mut logits);
            out.push(logits);
        }
        out
    };
    let half = n / 2;
    let (mut a, b) = std::thread::scope(|s| {
        let h = s.spawn(|| work(half..n));
        (work(0..half), h.join().expect("evaluation thread"))
    });
    a.extend(b);
    let (mut correct, mut labelled) = (0usize, 0usize);
    for (i, l) in a.iter().enumerate() {
        if let Some(y) = split.label(i) {
            labelled += 1;
            correct += usize::from(argmax_i8(l) == y);
        }
    }
    let acc = if labelled == 0 && n > 0 {
        f64::NAN
    } else {
        correct as f64 / labelled.max(1) as f64
    };
    Ok((acc, a))
}

/// Index of the largest logit (first on ties).
pub fn argmax_i8(v: &[i8]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
