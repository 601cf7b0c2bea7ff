//! Channels-last training ops burn's CPU backend lacks, as a burn backend extension
//! ([`ChannelsLastOps`]) with hand-written backward passes: im2col for a same-size stride-1
//! window and its adjoint col2im, BatchNorm with the batch's statistics fused with ReLU, and the
//! 3x3/2 ceil-mode max pool, all on `[pixels, channels]` matrices. The kernels are plain
//! functions on slices (`*_f32`), images or row blocks in parallel, their inner loops compiled
//! for AVX2 and picked at run time.
//!
//! Reference twins: the tests here check BatchNorm+ReLU and the pool against burn's own
//! `BatchNorm` module and NCHW pool, `nhwc`'s tests check im2col against burn's slicing and the
//! whole channels-last network against burn's NCHW one (values and gradients).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use std::mem::MaybeUninit;

use burn::tensor::{DType, Tensor, TensorData};

/// Compiles `$body` twice, for AVX2 + FMA and for the baseline, and picks at run time: the
/// host build targets baseline x86-64 (SSE2), which leaves these loops at 4 lanes.
macro_rules! simd_dispatch {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has just been checked for both features.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// A stride-1 `k x k` window with `k / 2` zero padding on `[batch, side, side, channels]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Images.
    pub batch: usize,
    /// Height = width, input and output.
    pub side: usize,
    /// Channels.
    pub channels: usize,
    /// Kernel height = width (odd).
    pub k: usize,
}

impl Window {
    pub(super) fn columns(&self) -> usize {
        self.k * self.k * self.channels
    }

    fn pixels(&self) -> usize {
        self.batch * self.side * self.side
    }

    /// Calls `f(pixel, tap, source_pixel)` for every in-bounds tap of every output pixel of one
    /// image; taps are numbered (kernel row, kernel column), pixels (row, column) within the
    /// image.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (s, k, half) = (self.side as isize, self.k as isize, (self.k / 2) as isize);
        for y in 0..s {
            for x in 0..s {
                let pixel = (y * s + x) as usize;
                for dy in 0..k {
                    let sy = y + dy - half;
                    for dx in 0..k {
                        let sx = x + dx - half;
                        if (0..s).contains(&sy) && (0..s).contains(&sx) {
                            f(pixel, (dy * k + dx) as usize, (sy * s + sx) as usize);
                        }
                    }
                }
            }
        }
    }
}

simd_dispatch! {
    pub(super) fn add_into(dst: &mut [f32], src: &[f32]) {
        for (d, v) in dst.iter_mut().zip(src) {
            *d += v;
        }
    }
}

/// A `len`-element buffer of `value`, written by all of rayon's threads: a large buffer's
/// zero-fill (and its first-touch page faults) would otherwise run on the calling thread
/// alone while the others wait.
pub(super) fn filled_in_parallel<T: Copy + Send + Sync>(len: usize, value: T) -> Vec<T> {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()
        .par_chunks_mut(1 << 15)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(value)));
    // SAFETY: every element of the first `len` was just written.
    unsafe { v.set_len(len) };
    v
}

/// im2col on plain memory: `input` `[pixels, c]` to `[pixels, k * k * c]`; images in parallel.
pub fn im2col_f32(w: &Window, input: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let (c, cols, area) = (w.channels, w.columns(), w.side * w.side);
    let mut out = filled_in_parallel(w.pixels() * cols, 0.0);
    out.par_chunks_mut(area * cols)
        .enumerate()
        .for_each(|(img, out)| {
            let input = &input[img * area * c..(img + 1) * area * c];
            w.for_each_tap(|pixel, tap, src| {
                let dst = pixel * cols + tap * c;
                out[dst..dst + c].copy_from_slice(&input[src * c..src * c + c]);
            });
        });
    out
}

/// col2im on plain memory, the adjoint of [`im2col_f32`]: sums every tap back onto its pixel;
/// images in parallel.
pub fn col2im_f32(w: &Window, cols: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let (c, width, area) = (w.channels, w.columns(), w.side * w.side);
    let mut out = filled_in_parallel(w.pixels() * c, 0.0);
    out.par_chunks_mut(area * c)
        .enumerate()
        .for_each(|(img, out)| {
            let cols = &cols[img * area * width..(img + 1) * area * width];
            w.for_each_tap(|pixel, tap, src| {
                let from = &cols[pixel * width + tap * c..][..c];
                add_into(&mut out[src * c..src * c + c], from);
            });
        });
    out
}

simd_dispatch! {
    fn max_into(src: &[f32], row: i64, out: &mut [f32], from: &mut [i64]) {
        for ((o, f), v) in out.iter_mut().zip(from.iter_mut()).zip(src) {
            // `>` keeps the first maximum, as burn's pool does.
            if *v > *o {
                *o = *v;
                *f = row;
            }
        }
    }
}

/// The 3x3/2 ceil-mode max pool on plain memory: `[batch, side, side, c]` in, the output and
/// the input row of every output element's maximum out. Images in parallel.
pub fn max_pool_f32(shape: [usize; 3], x: &[f32]) -> (Vec<f32>, Vec<i64>) {
    use rayon::prelude::*;
    let [batch, side, c] = shape;
    let out_side = super::model::pool_out(side);
    let per_image = out_side * out_side * c;
    let mut out = filled_in_parallel(batch * per_image, f32::NEG_INFINITY);
    let mut from = filled_in_parallel(out.len(), 0i64);
    out.par_chunks_mut(per_image)
        .zip(from.par_chunks_mut(per_image))
        .enumerate()
        .for_each(|(img, (out, from))| {
            for oy in 0..out_side {
                for ox in 0..out_side {
                    let o = (oy * out_side + ox) * c;
                    for iy in 2 * oy..(2 * oy + 3).min(side) {
                        for ix in 2 * ox..(2 * ox + 3).min(side) {
                            let row = (img * side + iy) * side + ix;
                            let src = &x[row * c..row * c + c];
                            max_into(src, row as i64, &mut out[o..o + c], &mut from[o..o + c]);
                        }
                    }
                }
            }
        });
    (out, from)
}

/// The max pool's backward pass on plain memory; images in parallel.
pub fn max_pool_backward_f32(shape: [usize; 3], grad: &[f32], from: &[i64]) -> Vec<f32> {
    use rayon::prelude::*;
    let [batch, side, c] = shape;
    let per_image = side * side * c;
    let out_per_image = grad.len() / batch.max(1);
    let mut dx = filled_in_parallel(batch * per_image, 0.0f32);
    dx.par_chunks_mut(per_image)
        .enumerate()
        .for_each(|(img, dx)| {
            let r = img * out_per_image..(img + 1) * out_per_image;
            let base = img * side * side;
            for (o, (g, &row)) in grad[r.clone()].iter().zip(&from[r]).enumerate() {
                dx[(row as usize - base) * c + o % c] += g;
            }
        });
    dx
}

/// The extension: implemented for burn's CPU backend and for autodiff over it.
#[backend_extension(Flex, Autodiff)]
pub trait ChannelsLastOps: Backend {
    /// `[pixels, channels]` to `[pixels, k * k * channels]`.
    fn im2col(x: FloatTensor<Self>, window: [usize; 4]) -> FloatTensor<Self>;
    /// The adjoint of `im2col`.
    fn col2im(cols: FloatTensor<Self>, window: [usize; 4]) -> FloatTensor<Self>;
    /// BatchNorm of `[rows, channels]` with the batch's statistics, then ReLU if `relu`:
    /// the output, the batch mean and the biased batch variance.
    fn bn_relu_train(
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// The 3x3/2 ceil-mode max pool of `[batch * side * side, channels]`: the output and, per
    /// output element, the input row its maximum came from.
    fn max_pool_nhwc(
        x: FloatTensor<Self>,
        shape: [usize; 3],
    ) -> (FloatTensor<Self>, IntTensor<Self>);
    /// The max pool's backward pass: each output gradient added to the row it came from.
    fn max_pool_nhwc_backward(
        grad: FloatTensor<Self>,
        from: IntTensor<Self>,
        shape: [usize; 3],
    ) -> FloatTensor<Self>;
    /// Gradients of `bn_relu_train` for its input, gamma and beta, from its saved tensors.
    #[allow(clippy::too_many_arguments)]
    fn bn_relu_backward(
        dout: FloatTensor<Self>,
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        eps: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

fn window_of(w: [usize; 4]) -> Window {
    Window {
        batch: w[0],
        side: w[1],
        channels: w[2],
        k: w[3],
    }
}

/// A contiguous f32 copy of `x` when it is not one already.
pub(super) fn contiguous(x: FlexTensor) -> FlexTensor {
    assert_eq!(x.dtype(), DType::F32, "channels-last ops run in f32");
    if x.is_contiguous() && x.as_slice::<f32>().is_some() {
        x
    } else {
        x.to_contiguous()
    }
}

pub(super) fn f32s(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>().expect("contiguous f32 tensor")
}

pub(super) fn flex(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.to_vec()))
}

fn flex_map(x: FlexTensor, shape: [usize; 2], f: impl FnOnce(&[f32]) -> Vec<f32>) -> FlexTensor {
    let x = contiguous(x);
    flex(f(f32s(&x)), &shape)
}

impl ChannelsLastOps for Flex {
    fn max_pool_nhwc(
        x: FloatTensor<Self>,
        shape: [usize; 3],
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        let x = contiguous(x);
        let (out, from) = max_pool_f32(shape, f32s(&x));
        let rows = from.len() / shape[2];
        let from = FlexTensor::from_data(TensorData::new(from, vec![rows, shape[2]]));
        (flex(out, &[rows, shape[2]]), from)
    }

    fn max_pool_nhwc_backward(
        grad: FloatTensor<Self>,
        from: IntTensor<Self>,
        shape: [usize; 3],
    ) -> FloatTensor<Self> {
        let grad = contiguous(grad);
        let from = from.as_slice::<i64>().expect("contiguous i64 indices");
        let dx = max_pool_backward_f32(shape, f32s(&grad), from);
        flex(dx, &[shape[0] * shape[1] * shape[1], shape[2]])
    }

    fn im2col(x: FloatTensor<Self>, window: [usize; 4]) -> FloatTensor<Self> {
        let w = window_of(window);
        flex_map(x, [w.pixels(), w.columns()], |d| im2col_f32(&w, d))
    }

    fn col2im(cols: FloatTensor<Self>, window: [usize; 4]) -> FloatTensor<Self> {
        let w = window_of(window);
        flex_map(cols, [w.pixels(), w.channels], |d| col2im_f32(&w, d))
    }

    fn bn_relu_train(
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, gamma, beta) = (contiguous(y), contiguous(gamma), contiguous(beta));
        let c = gamma.shape()[0];
        let (out, mean, var) = bn_relu_train_f32(f32s(&y), c, f32s(&gamma), f32s(&beta), eps, relu);
        (flex(out, &y.shape()), flex(mean, &[c]), flex(var, &[c]))
    }

    fn bn_relu_backward(
        dout: FloatTensor<Self>,
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        eps: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [dout, y, gamma, beta, mean, var] = [dout, y, gamma, beta, mean, var].map(contiguous);
        let saved = BnSaved {
            y: f32s(&y),
            gamma: f32s(&gamma),
            beta: f32s(&beta),
            mean: f32s(&mean),
            var: f32s(&var),
            eps,
            relu,
        };
        let (dx, dgamma, dbeta) = bn_relu_backward_f32(&saved, f32s(&dout));
        let c = saved.gamma.len();
        (flex(dx, &y.shape()), flex(dgamma, &[c]), flex(dbeta, &[c]))
    }
}

#[derive(Debug)]
struct Im2colBackward;

impl<B: Backend + ChannelsLastOps> Backward<B, 1> for Im2colBackward {
    type State = [usize; 4];

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let window = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| B::col2im(grad, window));
    }
}

#[derive(Debug)]
struct Col2imBackward;

impl<B: Backend + ChannelsLastOps> Backward<B, 1> for Col2imBackward {
    type State = [usize; 4];

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let window = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| B::im2col(grad, window));
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl<B: Backend + ChannelsLastOps> Backward<B, 1> for MaxPoolBackward {
    type State = (IntTensor<B>, [usize; 3]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (from, shape) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::max_pool_nhwc_backward(grad, from, shape)
        });
    }
}

impl<B: Backend + ChannelsLastOps, C: CheckpointStrategy> ChannelsLastOps for Autodiff<B, C> {
    fn max_pool_nhwc(
        x: FloatTensor<Self>,
        shape: [usize; 3],
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        let node = x.node();
        let (out, from) = B::max_pool_nhwc(x.into_primitive(), shape);
        let out = match MaxPoolBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((from.clone(), shape), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (out, from)
    }

    fn max_pool_nhwc_backward(
        grad: FloatTensor<Self>,
        from: IntTensor<Self>,
        shape: [usize; 3],
    ) -> FloatTensor<Self> {
        use burn::backend::AutodiffBackend;
        Self::from_inner(B::max_pool_nhwc_backward(
            grad.into_primitive(),
            from,
            shape,
        ))
    }

    fn im2col(x: FloatTensor<Self>, window: [usize; 4]) -> FloatTensor<Self> {
        let node = x.node();
        let out = B::im2col(x.into_primitive(), window);
        match Im2colBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(window, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn col2im(cols: FloatTensor<Self>, window: [usize; 4]) -> FloatTensor<Self> {
        let node = cols.node();
        let out = B::col2im(cols.into_primitive(), window);
        match Col2imBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(window, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn bn_relu_train(
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [out, mean, var] = bn_relu_tracked::<B, C>(y, gamma, beta, eps, relu);
        (out, mean, var)
    }

    fn bn_relu_backward(
        dout: FloatTensor<Self>,
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        eps: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        use burn::backend::AutodiffBackend;
        let inner = |t: FloatTensor<Self>| t.into_primitive();
        let (dx, dgamma, dbeta) = B::bn_relu_backward(
            inner(dout),
            inner(y),
            inner(gamma),
            inner(beta),
            inner(mean),
            inner(var),
            eps,
            relu,
        );
        (
            Self::from_inner(dx),
            Self::from_inner(dgamma),
            Self::from_inner(dbeta),
        )
    }
}

/// What the BatchNorm backward pass keeps: input, gamma, beta, mean, variance, epsilon, ReLU.
type BnState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    f64,
    bool,
);

#[derive(Debug)]
struct BnReluBackward;

impl<B: Backend + ChannelsLastOps> Backward<B, 3> for BnReluBackward {
    type State = BnState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_y, node_gamma, node_beta] = ops.parents;
        let dout = grads.consume::<B>(&ops.node);
        let (y, gamma, beta, mean, var, eps, relu) = ops.state;
        let (dx, dgamma, dbeta) = B::bn_relu_backward(dout, y, gamma, beta, mean, var, eps, relu);
        for (node, grad) in [(node_y, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The autodiff side of BatchNorm + ReLU: one node with a hand-written backward.
fn bn_relu_tracked<B: Backend + ChannelsLastOps, C: CheckpointStrategy>(
    y: FloatTensor<Autodiff<B, C>>,
    gamma: FloatTensor<Autodiff<B, C>>,
    beta: FloatTensor<Autodiff<B, C>>,
    eps: f64,
    relu: bool,
) -> [FloatTensor<Autodiff<B, C>>; 3] {
    use burn::backend::AutodiffBackend;
    let nodes = [y.node(), gamma.node(), beta.node()];
    let (y, gamma, beta) = (
        y.into_primitive(),
        gamma.into_primitive(),
        beta.into_primitive(),
    );
    let (out, mean, var) = B::bn_relu_train(y.clone(), gamma.clone(), beta.clone(), eps, relu);
    let state = (y, gamma, beta, mean.clone(), var.clone(), eps, relu);
    let out = match BnReluBackward
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    [
        out,
        Autodiff::<B, C>::from_inner(mean),
        Autodiff::<B, C>::from_inner(var),
    ]
}

/// im2col of `[pixels, channels]` activations of `batch` images `side` pixels square.
pub fn im2col(x: Tensor<2>, batch: usize, side: usize, k: usize) -> Tensor<2> {
    let channels = x.dims()[1];
    let out = <burn::backend::Dispatch as ChannelsLastOps>::im2col(
        x.into_dispatch(),
        [batch, side, channels, k],
    );
    Tensor::from_dispatch(out)
}

/// Rows per parallel task in the BatchNorm kernels.
const ROWS_PER_TASK: usize = 256;

simd_dispatch! {
    fn add_shifted_moments(rows: &[f32], reference: &[f32], acc: &mut [f32]) {
        // acc = [sum of (y - reference) | sum of (y - reference)^2], per channel.
        let c = reference.len();
        let (s1, s2) = acc.split_at_mut(c);
        for row in rows.chunks_exact(c) {
            for i in 0..c {
                let d = row[i] - reference[i];
                s1[i] += d;
                s2[i] += d * d;
            }
        }
    }
}

/// A per-channel affine map `x * scale + shift`.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl Affine {
    /// BatchNorm's map from the batch statistics; forward and backward passes compute it with
    /// the same operations, so the backward pass recovers the ReLU mask bit for bit.
    fn batch_norm(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f64) -> Self {
        let scale: Vec<f32> = (0..gamma.len())
            .map(|i| gamma[i] / ((f64::from(var[i]) + eps).sqrt() as f32))
            .collect();
        let shift = (0..gamma.len())
            .map(|i| beta[i] - mean[i] * scale[i])
            .collect();
        Self { scale, shift }
    }
}

simd_dispatch! {
    fn scale_shift_rows(x: &[f32], out: &mut [MaybeUninit<f32>], map: &Affine, relu: bool) {
        let (scale, shift) = (&map.scale[..], &map.shift[..]);
        let c = scale.len();
        for (o, xr) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            for (((o, x), a), b) in o.iter_mut().zip(xr).zip(scale).zip(shift) {
                let v = x * a + b;
                o.write(if relu { v.max(0.0) } else { v });
            }
        }
    }
}

/// Per-channel sums over a `[rows, c]` matrix, `ROWS_PER_TASK` rows per task: `f` adds a
/// task's rows into its `width` f32 accumulators, and the tasks' sums are added in f64.
fn channel_sums(
    data: &[f32],
    c: usize,
    width: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Vec<f64> {
    use rayon::prelude::*;
    let partial: Vec<Vec<f32>> = data
        .par_chunks(ROWS_PER_TASK * c)
        .map(|rows| {
            let mut acc = vec![0.0f32; width];
            f(rows, &mut acc);
            acc
        })
        .collect();
    let mut total = vec![0.0f64; width];
    for p in partial {
        for (t, v) in total.iter_mut().zip(p) {
            *t += f64::from(v);
        }
    }
    total
}

/// BatchNorm with the batch's statistics, then ReLU if `relu`, on `[rows, c]`; returns the
/// output, the per-channel mean and the biased variance (what burn's BatchNorm returns).
/// Two passes over `y`: both moments at once about the first row (the shifted-data variance,
/// no cancellation while the reference is a sample of the channel), then the output.
pub fn bn_relu_train_f32(
    y: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let n = (y.len() / c) as f64;
    let reference = &y[..c];
    let moments = channel_sums(y, c, 2 * c, |rows, acc| {
        add_shifted_moments(rows, reference, acc)
    });
    let (s1, s2) = moments.split_at(c);
    let mean: Vec<f32> = (0..c)
        .map(|i| (f64::from(reference[i]) + s1[i] / n) as f32)
        .collect();
    let var: Vec<f32> = (0..c)
        .map(|i| (s2[i] / n - (s1[i] / n).powi(2)).max(0.0) as f32)
        .collect();
    let map = Affine::batch_norm(gamma, beta, &mean, &var, eps);
    let mut out = Vec::with_capacity(y.len());
    out.spare_capacity_mut()[..y.len()]
        .par_chunks_mut(ROWS_PER_TASK * c)
        .zip(y.par_chunks(ROWS_PER_TASK * c))
        .for_each(|(o, x)| scale_shift_rows(x, o, &map, relu));
    // SAFETY: scale_shift_rows wrote every element of every row.
    unsafe { out.set_len(y.len()) };
    (out, mean, var)
}

/// What [`bn_relu_train_f32`] saved for its backward pass.
#[derive(Debug)]
pub struct BnSaved<'a> {
    /// Its input.
    pub y: &'a [f32],
    /// Scale.
    pub gamma: &'a [f32],
    /// Shift (with the statistics, the ReLU mask).
    pub beta: &'a [f32],
    /// Batch mean.
    pub mean: &'a [f32],
    /// Batch (biased) variance.
    pub var: &'a [f32],
    /// Epsilon.
    pub eps: f64,
    /// Whether ReLU followed.
    pub relu: bool,
}

simd_dispatch! {
    fn masked_grad_sums(
        dout: &[f32],
        y: &[f32],
        map: &Affine,
        mean: &[f32],
        relu: bool,
        sums: &mut [f32],
    ) {
        // sums = [sum of g | sum of g * (y - mean)], g = dout where the output passed the ReLU.
        // Zipped, not indexed, and the mask without branches: the loop vectorises.
        let c = mean.len();
        let (sum_g, sum_gy) = sums.split_at_mut(c);
        for (d, yr) in dout.chunks_exact(c).zip(y.chunks_exact(c)) {
            let per_channel = map.scale.iter().zip(&map.shift).zip(mean);
            let acc = sum_g.iter_mut().zip(sum_gy.iter_mut());
            for (((d, y), ((a, b), m)), (sg, sgy)) in d.iter().zip(yr).zip(per_channel).zip(acc) {
                let g = if (y * a + b > 0.0) | !relu { *d } else { 0.0 };
                *sg += g;
                *sgy += g * (y - m);
            }
        }
    }
}

/// The input gradient's per-channel coefficients: `dx = a g + b y + k`.
struct InputGrad {
    a: Vec<f32>,
    b: Vec<f32>,
    k: Vec<f32>,
}

simd_dispatch! {
    fn input_grad_rows(
        dout: &[f32],
        y: &[f32],
        map: &Affine,
        relu: bool,
        coef: &InputGrad,
        dx: &mut [MaybeUninit<f32>],
    ) {
        let c = coef.a.len();
        let rows = dout.chunks_exact(c).zip(y.chunks_exact(c));
        for ((d, yr), xr) in rows.zip(dx.chunks_exact_mut(c)) {
            let mask = map.scale.iter().zip(&map.shift);
            let per_channel = mask.zip(coef.a.iter().zip(&coef.b).zip(&coef.k));
            for (((d, y), x), ((sa, sb), ((a, b), k))) in d.iter().zip(yr).zip(xr).zip(per_channel) {
                let g = if (y * sa + sb > 0.0) | !relu { *d } else { 0.0 };
                x.write(a * g + b * y + k);
            }
        }
    }
}

/// Gradients of [`bn_relu_train_f32`]: input, gamma and beta. Two passes, both reading only
/// `dout` and `y` (the ReLU mask is recomputed from `y`): the sums, then the input gradient.
pub fn bn_relu_backward_f32(s: &BnSaved, dout: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let c = s.gamma.len();
    let n = (s.y.len() / c) as f64;
    let map = Affine::batch_norm(s.gamma, s.beta, s.mean, s.var, s.eps);
    let inv_std: Vec<f64> = s
        .var
        .iter()
        .map(|v| 1.0 / (f64::from(*v) + s.eps).sqrt())
        .collect();
    let step = ROWS_PER_TASK * c;
    let partial: Vec<Vec<f32>> = dout
        .par_chunks(step)
        .zip(s.y.par_chunks(step))
        .map(|(d, y)| {
            let mut sums = vec![0.0f32; 2 * c];
            masked_grad_sums(d, y, &map, s.mean, s.relu, &mut sums);
            sums
        })
        .collect();
    let mut sums = vec![0.0f64; 2 * c];
    for p in partial {
        for (t, v) in sums.iter_mut().zip(p) {
            *t += f64::from(v);
        }
    }
    // dx = gamma inv_std (g - mean(g) - xhat mean(g xhat)), xhat = (y - mean) inv_std,
    // rearranged as a g + b y + k per channel.
    let mut coef = InputGrad {
        a: vec![0.0; c],
        b: vec![0.0; c],
        k: vec![0.0; c],
    };
    let mut dgamma = vec![0.0f32; c];
    for i in 0..c {
        let (sum_g, sum_gy) = (sums[i], sums[c + i]);
        let ai = f64::from(s.gamma[i]) * inv_std[i];
        let mean_gx = sum_gy * inv_std[i] / n;
        let bi = -ai * inv_std[i] * mean_gx;
        coef.a[i] = ai as f32;
        coef.b[i] = bi as f32;
        coef.k[i] = (-ai * sum_g / n - bi * f64::from(s.mean[i])) as f32;
        dgamma[i] = (sum_gy * inv_std[i]) as f32;
    }
    let mut dx = Vec::with_capacity(s.y.len());
    dx.spare_capacity_mut()[..s.y.len()]
        .par_chunks_mut(step)
        .zip(dout.par_chunks(step).zip(s.y.par_chunks(step)))
        .for_each(|(x, (d, y))| input_grad_rows(d, y, &map, s.relu, &coef, x));
    // SAFETY: input_grad_rows wrote every element of every row.
    unsafe { dx.set_len(s.y.len()) };
    let dbeta = sums[..c].iter().map(|v| *v as f32).collect();
    (dx, dgamma, dbeta)
}

/// The 3x3/2 ceil-mode max pool of `[batch * side * side, channels]` activations.
pub fn max_pool(x: Tensor<2>, batch: usize, side: usize) -> Tensor<2> {
    let channels = x.dims()[1];
    let (out, _) = <burn::backend::Dispatch as ChannelsLastOps>::max_pool_nhwc(
        x.into_dispatch(),
        [batch, side, channels],
    );
    Tensor::from_dispatch(out)
}

/// BatchNorm (training: the batch's statistics, running statistics updated as burn's
/// `BatchNorm` does) then ReLU if `relu`, on `[rows, channels]`.
pub fn batch_norm_relu(bn: &burn::nn::BatchNorm, y: Tensor<2>, relu: bool) -> Tensor<2> {
    let device = y.device();
    if !(device.is_autodiff() && bn.training.is_enabled()) {
        let out = bn.forward(y);
        return if relu {
            burn::tensor::activation::relu(out)
        } else {
            out
        };
    }
    let (out, mean, var) = <burn::backend::Dispatch as ChannelsLastOps>::bn_relu_train(
        y.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
        relu,
    );
    let (mean, var) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(var),
    );
    let m = bn.momentum;
    let blend = |running: Tensor<1>, batch: Tensor<1>| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(batch.detach().mul_scalar(m))
            .detach()
    };
    bn.running_mean
        .update(blend(bn.running_mean.value_sync(), mean));
    bn.running_var
        .update(blend(bn.running_var.value_sync(), var));
    Tensor::from_dispatch(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;
    use burn::tensor::{Device, Distribution};

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// The twin: burn's NCHW max pool on the same values.
    #[test]
    fn max_pool_and_its_gradient_match_burns_pool() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let (b, side, c) = (2, 7, 3);
        let x = Tensor::<2>::random([b * side * side, c], Distribution::Default, &device)
            .require_grad();
        let got = max_pool(x.clone(), b, side);
        let nchw = x.clone().reshape([b, side, side, c]).permute([0, 3, 1, 2]);
        let opts = MaxPoolOptions::new([3, 3])
            .with_stride([2, 2])
            .with_ceil_mode(true);
        let o = super::super::model::pool_out(side);
        let want = max_pool2d(nchw, opts)
            .permute([0, 2, 3, 1])
            .reshape([b * o * o, c]);
        assert_eq!(max_abs_diff(want.clone(), got.clone()), 0.0);
        let w = Tensor::<2>::random(want.dims(), Distribution::Default, &device);
        let (gw, gg) = (
            (want * w.clone()).sum().backward(),
            (got * w).sum().backward(),
        );
        assert!(max_abs_diff(x.grad(&gw).unwrap(), x.grad(&gg).unwrap()) <= 1e-6);
    }

    /// The twin: burn's BatchNorm module (training mode) then ReLU.
    #[test]
    fn batch_norm_relu_and_its_gradients_match_burns_batch_norm() {
        let device = Device::flex().autodiff();
        device.seed(9);
        let (rows, c) = (300, 5);
        let x =
            Tensor::<2>::random([rows, c], Distribution::Normal(0.5, 2.0), &device).require_grad();
        // Two separate modules (a clone would share its running statistics): gamma starts at
        // ones and beta at zeros in both.
        let bn = burn::nn::BatchNormConfig::new(c).init(&device);
        let twin = burn::nn::BatchNormConfig::new(c).init(&device);
        let got = batch_norm_relu(&bn, x.clone(), true);
        let want = burn::tensor::activation::relu(twin.forward(x.clone()));
        assert!(max_abs_diff(want.clone(), got.clone()) <= 1e-5);
        let w = Tensor::<2>::random([rows, c], Distribution::Default, &device);
        let gw = (want * w.clone()).sum().backward();
        let gg = (got * w).sum().backward();
        assert!(max_abs_diff(x.grad(&gw).unwrap(), x.grad(&gg).unwrap()) <= 1e-5);
        for (p, q) in [(&twin.gamma, &bn.gamma), (&twin.beta, &bn.beta)] {
            assert!(max_abs_diff(p.grad(&gw).unwrap(), q.grad(&gg).unwrap()) <= 1e-4);
        }
        let stats = |b: &burn::nn::BatchNorm| (b.running_mean.value(), b.running_var.value());
        let ((m1, v1), (m2, v2)) = (stats(&twin), stats(&bn));
        assert!(max_abs_diff(m1, m2) <= 1e-6 && max_abs_diff(v1, v2) <= 1e-5);
    }
}
