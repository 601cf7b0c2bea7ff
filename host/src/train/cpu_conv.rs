//! The channels-last convolution as one op with a hand-written backward pass: a stride-1,
//! same-size `k x k` convolution of `[pixels, channels]` activations given as column blocks
//! (a fire module's two expand outputs), on burn's CPU backend ([`ChannelsLastConv`]).
//!
//! Built from burn's tensor ops, the same convolution is a permuted copy of the weight, a slice
//! of it per block, one product per block, a sum of the products and, for 3x3, an im2col node;
//! every product's output is zero-filled and then copied into an aligned buffer before the
//! product writes it, all on the calling thread. Here each product writes straight into a new,
//! unfilled buffer, the blocks' products accumulate in place, and the backward pass is two
//! products per block (the input gradient; the weight gradient, split over row ranges so both
//! cores work on its short wide products) with nothing in between. Every product is split into
//! fixed row pieces run in one parallel region.
//!
//! Reference twin: the tests check values and gradients against the same convolution composed
//! of burn's own ops (permute, slice, matmul, add), the path `nhwc` took before this op.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::cpu_ops::{Window, add_into, col2im_f32, contiguous, f32s, flex, im2col_f32};

/// A stride-1, same-size convolution: `[batch, side, k]`, the output as wide as the weight says.
type Geometry = [usize; 3];

/// A row-major matrix or the transpose of one, as gemm reads it: element `(i, j)` at
/// `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major matrix `cols` wide.
    fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of `data` as a row-major matrix `cols` wide.
    fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// Whether elements `(rows - 1, cols - 1)` and before lie inside `data`.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// Rows per piece when a product is split over threads, and at most this many pieces: a
/// fixed split (a function of the shape, not of the thread count), so every row is summed the
/// same way on any machine.
const MIN_ROWS_PER_PIECE: usize = 128;
const MAX_PIECES: usize = 8;

/// A destination pointer handed to the threads that write disjoint row ranges of it.
#[derive(Clone, Copy)]
struct Dst(*mut f32);
// SAFETY: each piece writes only its own rows.
unsafe impl Send for Dst {}
// SAFETY: as for Send: shared only to hand each piece its disjoint rows.
unsafe impl Sync for Dst {}

impl Dst {
    /// The pointer `offset` elements on (a method, so closures capture the whole `Dst`).
    ///
    /// # Safety
    /// As for `pointer::add`.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's.
        unsafe { self.0.add(offset) }
    }
}

/// `dst = lhs * rhs`, or `dst += lhs * rhs` when `accumulate`: `dst` row-major `[m, n]`, the
/// contraction `k` long. `threads`: split the rows into pieces, one single-threaded gemm each,
/// all in one parallel region (gemm's own threading opens one per block of the product, and
/// waking the threads that often cost more than the short products it splits).
///
/// # Safety
/// `dst` must be valid for writes of `m * n` elements (and initialised when `accumulate`).
unsafe fn product(
    dst: *mut f32,
    [m, n, k]: [usize; 3],
    lhs: View,
    rhs: View,
    accumulate: bool,
    threads: bool,
) {
    assert!(
        lhs.covers(m, k) && rhs.covers(k, n),
        "product operands too short"
    );
    let pieces = if threads {
        (m / MIN_ROWS_PER_PIECE).clamp(1, MAX_PIECES)
    } else {
        1
    };
    let rows = m.div_ceil(pieces);
    let dst = Dst(dst);
    let piece = |i: usize| {
        let (r0, r1) = (i * rows, ((i + 1) * rows).min(m));
        let lhs = View {
            data: &lhs.data[r0 * lhs.rs..],
            ..lhs
        };
        // SAFETY: rows r0..r1 of `dst` lie inside the caller's `m * n` elements, and the
        // operands cover them (checked above for all `m` rows).
        unsafe { gemm_one_thread(dst.at(r0 * n), [r1 - r0, n, k], lhs, rhs, accumulate) }
    };
    if pieces == 1 {
        piece(0);
    } else {
        (0..pieces).into_par_iter().for_each(piece);
    }
}

/// One gemm call on the calling thread; see [`product`].
///
/// # Safety
/// As for [`product`], with the operands covering their index ranges.
unsafe fn gemm_one_thread(
    dst: *mut f32,
    [m, n, k]: [usize; 3],
    lhs: View,
    rhs: View,
    accumulate: bool,
) {
    let i = |v: usize| v as isize;
    // SAFETY: the caller's.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            i(n),
            accumulate,
            lhs.data.as_ptr(),
            i(lhs.cs),
            i(lhs.rs),
            rhs.data.as_ptr(),
            i(rhs.cs),
            i(rhs.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A new `len`-element buffer that `fill` writes completely through the pointer it gets: no
/// zero-fill first (the products below write every element of their destination).
///
/// # Safety
/// `fill` must write all `len` elements.
unsafe fn written_by(len: usize, fill: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut v = Vec::<f32>::with_capacity(len);
    // Tests poison the buffer, so a product that reads it before writing shows.
    #[cfg(test)]
    v.spare_capacity_mut()
        .fill(std::mem::MaybeUninit::new(f32::NAN));
    fill(v.as_mut_ptr());
    // SAFETY: the caller guarantees `fill` initialised all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// `[cout, cin, k, k]` weights as the `[k * k * cin, cout]` matrix that multiplies im2col rows
/// ordered (kernel row, kernel column, input channel).
pub fn weight_matrix_f32(w: &[f32], [cout, cin, k]: [usize; 3]) -> Vec<f32> {
    // Row by row of the matrix (writes contiguous), rows in parallel.
    let mut m = vec![0.0; w.len()];
    m.par_chunks_mut(cout).enumerate().for_each(|(r, row)| {
        let (tap, ci) = (r / cin, r % cin);
        for (o, v) in row.iter_mut().enumerate() {
            *v = w[(o * cin + ci) * k * k + tap];
        }
    });
    m
}

/// The inverse of [`weight_matrix_f32`]: a `[k * k * cin, cout]` matrix back to `[cout, cin, k, k]`.
pub fn weight_from_matrix_f32(m: &[f32], [cout, cin, k]: [usize; 3]) -> Vec<f32> {
    let mut w = vec![0.0; m.len()];
    w.par_chunks_mut(cin * k * k)
        .enumerate()
        .for_each(|(o, filter)| {
            for (i, v) in filter.iter_mut().enumerate() {
                let (ci, tap) = (i / (k * k), i % (k * k));
                *v = m[(tap * cin + ci) * cout + o];
            }
        });
    w
}

/// The convolution's operands on plain memory.
#[derive(Debug)]
pub struct ConvInput<'a> {
    /// Column blocks of the input, each `[pixels, width]`.
    pub parts: Vec<&'a [f32]>,
    /// The weight matrix, `[k * k * cin, cout]` ([`weight_matrix_f32`]).
    pub weight: &'a [f32],
    /// Output channels.
    pub cout: usize,
    /// `[batch, side, k]`.
    pub geometry: Geometry,
}

impl ConvInput<'_> {
    fn pixels(&self) -> usize {
        let [batch, side, _] = self.geometry;
        batch * side * side
    }

    fn width(&self, part: usize) -> usize {
        self.parts[part].len() / self.pixels().max(1)
    }

    /// im2col's window over the (single) input block.
    fn window(&self) -> Window {
        let [batch, side, k] = self.geometry;
        Window {
            batch,
            side,
            channels: self.width(0),
            k,
        }
    }
}

/// The convolution: `[pixels, cout]` (bias not added) and, for `k > 1`, the im2col matrix the
/// backward pass reuses. A 1x1 conv sums each block times its rows of the weight matrix; a
/// larger kernel takes one block.
pub fn conv_forward_f32(x: &ConvInput) -> (Vec<f32>, Option<Vec<f32>>) {
    let (p, cout) = (x.pixels(), x.cout);
    let [_, _, k] = x.geometry;
    if k > 1 {
        assert_eq!(x.parts.len(), 1, "a {k}x{k} conv takes one input block");
        let cols = im2col_f32(&x.window(), x.parts[0]);
        let depth = x.window().columns();
        let lhs = View::rows(&cols, depth);
        // SAFETY: the product writes all `p * cout` elements.
        let y = unsafe {
            written_by(p * cout, |dst| {
                product(
                    dst,
                    [p, cout, depth],
                    lhs,
                    View::rows(x.weight, cout),
                    false,
                    true,
                )
            })
        };
        return (y, Some(cols));
    }
    let fill = |dst: *mut f32| {
        let mut row = 0;
        for (i, part) in x.parts.iter().enumerate() {
            let c = x.width(i);
            let rows = View::rows(&x.weight[row * cout..], cout);
            // SAFETY: `dst` holds `p * cout` elements, written by block 0 before any accumulate.
            unsafe { product(dst, [p, cout, c], View::rows(part, c), rows, i > 0, true) };
            row += c;
        }
    };
    // SAFETY: block 0's product writes every element.
    (unsafe { written_by(p * cout, fill) }, None)
}

/// Rows of the reduction per partial product in the weight gradient, and at most this many
/// partials: a fixed split (not one per thread), so the sum is the same on any machine.
const ROWS_PER_PARTIAL: usize = 2048;
const MAX_PARTIALS: usize = 16;

/// `a^T dy`: `a` is `[pixels, width]`, `dy` is `[pixels, cout]`, the result `[width, cout]`.
/// The short, wide products of a tall reduction: split over row ranges, partials summed in
/// order.
fn weight_grad(a: &[f32], width: usize, dy: &[f32], cout: usize) -> Vec<f32> {
    let p = dy.len() / cout;
    let partials = (p / ROWS_PER_PARTIAL).clamp(1, MAX_PARTIALS);
    let step = p.div_ceil(partials);
    let part = |r: std::ops::Range<usize>, threads: bool| {
        let lhs = View::transposed(&a[r.start * width..r.end * width], width);
        let rhs = View::rows(&dy[r.start * cout..r.end * cout], cout);
        // SAFETY: the product writes all `width * cout` elements.
        unsafe {
            written_by(width * cout, |dst| {
                product(dst, [width, cout, r.len()], lhs, rhs, false, threads)
            })
        }
    };
    if partials == 1 {
        return part(0..p, true);
    }
    let sums: Vec<Vec<f32>> = (0..partials)
        .into_par_iter()
        .map(|i| part(i * step..((i + 1) * step).min(p), false))
        .collect();
    let mut sums = sums.into_iter();
    let mut total = sums.next().expect("at least one partial");
    for s in sums {
        add_into(&mut total, &s);
    }
    total
}

/// Gradients of [`conv_forward_f32`]: per input block (when `need_input`), and for the weight
/// matrix. `cols` is the forward pass's im2col matrix (kernels larger than 1x1).
pub fn conv_backward_f32(
    x: &ConvInput,
    cols: Option<&[f32]>,
    dy: &[f32],
    need_input: bool,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let (p, cout) = (x.pixels(), x.cout);
    if let Some(cols) = cols {
        let depth = x.window().columns();
        let dweight = weight_grad(cols, depth, dy, cout);
        if !need_input {
            return (vec![], dweight);
        }
        let rhs = View::transposed(x.weight, cout);
        // SAFETY: the product writes all `p * depth` elements.
        let dcols = unsafe {
            written_by(p * depth, |dst| {
                product(
                    dst,
                    [p, depth, cout],
                    View::rows(dy, cout),
                    rhs,
                    false,
                    true,
                )
            })
        };
        return (vec![col2im_f32(&x.window(), &dcols)], dweight);
    }
    let mut dweight = Vec::with_capacity(x.weight.len());
    let mut dparts = vec![];
    let mut row = 0;
    for (i, part) in x.parts.iter().enumerate() {
        let c = x.width(i);
        dweight.extend(weight_grad(part, c, dy, cout));
        if need_input {
            let rhs = View::transposed(&x.weight[row * cout..], cout);
            // SAFETY: the product writes all `p * c` elements.
            dparts.push(unsafe {
                written_by(p * c, |dst| {
                    product(dst, [p, c, cout], View::rows(dy, cout), rhs, false, true)
                })
            });
        }
        row += c;
    }
    (dparts, dweight)
}

/// The extension: implemented for burn's CPU backend and for autodiff over it. (Its arguments
/// are plain tensors: burn's extension macro routes nothing else, hence one method per number
/// of blocks.)
#[backend_extension(Flex, Autodiff)]
pub trait ChannelsLastConv: Backend {
    /// The convolution of `[pixels, cin]` `x` by `weight` (`[cout, cin, k, k]`) over
    /// `geometry` = `[batch, side, k]`: `[pixels, cout]`.
    fn conv_nhwc(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 3],
    ) -> FloatTensor<Self>;
    /// The 1x1 convolution of the column blocks `first | second`, never joined.
    fn conv_nhwc_pair(
        first: FloatTensor<Self>,
        second: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 3],
    ) -> FloatTensor<Self>;
}

/// The kernels behind [`ChannelsLastConv`] on the backend that runs them, called directly by
/// the autodiff node (not through burn's dispatch).
pub trait ConvKernels: Backend {
    /// The convolution, the weight matrix it used (`[k * k * cin, cout]`) and, for `k > 1`,
    /// its im2col matrix: what the backward pass reuses.
    fn conv_forward(
        parts: Vec<FloatTensor<Self>>,
        weight: FloatTensor<Self>,
        geometry: Geometry,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        Option<FloatTensor<Self>>,
    );
    /// Gradients per block (none unless `need_input`) and for the weight (`[cout, cin, k, k]`).
    fn conv_backward(
        dy: FloatTensor<Self>,
        parts: Vec<FloatTensor<Self>>,
        weight_matrix: FloatTensor<Self>,
        cols: Option<FloatTensor<Self>>,
        need_input: bool,
        geometry: Geometry,
    ) -> (Vec<FloatTensor<Self>>, FloatTensor<Self>);
}

/// `[cout, cin, k]` of a `[cout, cin, k, k]` weight.
fn weight_dims(weight: &FloatTensor<Flex>) -> [usize; 3] {
    let s = weight.shape();
    [s[0], s[1], s[2]]
}

/// `[cout, cin, k]` of a `[k * k * cin, cout]` weight matrix.
fn matrix_dims(matrix: &FloatTensor<Flex>, k: usize) -> [usize; 3] {
    let s = matrix.shape();
    [s[1], s[0] / (k * k), k]
}

impl ConvKernels for Flex {
    fn conv_forward(
        parts: Vec<FloatTensor<Self>>,
        weight: FloatTensor<Self>,
        geometry: Geometry,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        Option<FloatTensor<Self>>,
    ) {
        let dims = weight_dims(&weight);
        let parts: Vec<_> = parts.into_iter().map(contiguous).collect();
        let matrix = weight_matrix_f32(f32s(&contiguous(weight)), dims);
        let x = ConvInput {
            parts: parts.iter().map(f32s).collect(),
            weight: &matrix,
            cout: dims[0],
            geometry,
        };
        let (y, cols) = conv_forward_f32(&x);
        let p = x.pixels();
        let depth = matrix.len() / dims[0];
        (
            flex(y, &[p, dims[0]]),
            flex(matrix, &[depth, dims[0]]),
            cols.map(|c| flex(c, &[p, depth])),
        )
    }

    fn conv_backward(
        dy: FloatTensor<Self>,
        parts: Vec<FloatTensor<Self>>,
        weight_matrix: FloatTensor<Self>,
        cols: Option<FloatTensor<Self>>,
        need_input: bool,
        geometry: Geometry,
    ) -> (Vec<FloatTensor<Self>>, FloatTensor<Self>) {
        let dims = matrix_dims(&weight_matrix, geometry[2]);
        let [cout, cin, k] = dims;
        let (dy, cols) = (contiguous(dy), cols.map(contiguous));
        let parts: Vec<_> = parts.into_iter().map(contiguous).collect();
        let matrix = contiguous(weight_matrix);
        let x = ConvInput {
            parts: parts.iter().map(f32s).collect(),
            weight: f32s(&matrix),
            cout: dims[0],
            geometry,
        };
        let (dparts, dweight) =
            conv_backward_f32(&x, cols.as_ref().map(f32s), f32s(&dy), need_input);
        let p = x.pixels();
        let dparts = dparts
            .into_iter()
            .map(|d| {
                let c = d.len() / p.max(1);
                flex(d, &[p, c])
            })
            .collect();
        let dweight = flex(weight_from_matrix_f32(&dweight, dims), &[cout, cin, k, k]);
        (dparts, dweight)
    }
}

impl ChannelsLastConv for Flex {
    fn conv_nhwc(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 3],
    ) -> FloatTensor<Self> {
        Self::conv_forward(vec![x], weight, geometry).0
    }

    fn conv_nhwc_pair(
        first: FloatTensor<Self>,
        second: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 3],
    ) -> FloatTensor<Self> {
        Self::conv_forward(vec![first, second], weight, geometry).0
    }
}

/// What the backward pass keeps: the blocks, the weight matrix, im2col's matrix, the geometry.
type ConvState<B> = (
    Vec<FloatTensor<B>>,
    FloatTensor<B>,
    Option<FloatTensor<B>>,
    Geometry,
);

/// The autodiff node; its `N` parents are the blocks and the weight.
#[derive(Debug)]
struct ConvBackward;

impl<B: ConvKernels, const N: usize> Backward<B, N> for ConvBackward {
    type State = ConvState<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (parts, matrix, cols, geometry) = ops.state;
        let [blocks @ .., weight_node] = ops.parents.as_slice() else {
            unreachable!("a conv node has its weight as a parent");
        };
        let need_input = blocks.iter().any(Option::is_some);
        let (dparts, dweight) = B::conv_backward(dy, parts, matrix, cols, need_input, geometry);
        for (node, grad) in blocks.iter().zip(dparts) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
        if let Some(node) = weight_node {
            grads.register::<B>(node.id, dweight);
        }
    }
}

/// The autodiff side: one node with `N - 1` blocks and the weight as parents.
fn conv_tracked<B: ConvKernels, C: CheckpointStrategy, const N: usize>(
    parts: [FloatTensor<Autodiff<B, C>>; N],
    geometry: Geometry,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes = parts.each_ref().map(|t| t.node());
    let mut inner: Vec<_> = parts.into_iter().map(|t| t.into_primitive()).collect();
    let weight = inner.pop().expect("the weight comes last");
    let (y, matrix, cols) = B::conv_forward(inner.clone(), weight, geometry);
    match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((inner, matrix, cols, geometry), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

impl<B: ConvKernels, C: CheckpointStrategy> ChannelsLastConv for Autodiff<B, C> {
    fn conv_nhwc(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 3],
    ) -> FloatTensor<Self> {
        conv_tracked::<B, C, 2>([x, weight], geometry)
    }

    fn conv_nhwc_pair(
        first: FloatTensor<Self>,
        second: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 3],
    ) -> FloatTensor<Self> {
        conv_tracked::<B, C, 3>([first, second, weight], geometry)
    }
}

/// The convolution of channels-last blocks `parts` (`[batch * side * side, width]` each, one
/// block for kernels larger than 1x1) by `weight` (`[cout, cin, k, k]`, stride 1, padding
/// `k / 2`): `[pixels, cout]`.
pub fn conv(parts: &[Tensor<2>], weight: Tensor<4>, batch: usize, side: usize) -> Tensor<2> {
    type D = burn::backend::Dispatch;
    let geometry = [batch, side, weight.dims()[2]];
    let weight = weight.into_dispatch();
    let y = match parts {
        [x] => <D as ChannelsLastConv>::conv_nhwc(x.clone().into_dispatch(), weight, geometry),
        [a, b] => <D as ChannelsLastConv>::conv_nhwc_pair(
            a.clone().into_dispatch(),
            b.clone().into_dispatch(),
            weight,
            geometry,
        ),
        _ => panic!(
            "a channels-last conv takes one or two blocks, not {}",
            parts.len()
        ),
    };
    Tensor::from_dispatch(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The reference twin: the same convolution from burn's own ops (the weight permuted and
    /// sliced per block, one matmul per block, the products summed; im2col for 3x3).
    fn conv_from_burn_ops(
        parts: &[Tensor<2>],
        weight: Tensor<4>,
        batch: usize,
        side: usize,
    ) -> Tensor<2> {
        let [cout, cin, k, _] = weight.dims();
        let w = weight.permute([2, 3, 1, 0]).reshape([k * k * cin, cout]);
        if k > 1 {
            let cols = super::super::cpu_ops::im2col(parts[0].clone(), batch, side, k);
            return cols.matmul(w);
        }
        let mut row = 0;
        let mut sum: Option<Tensor<2>> = None;
        for p in parts {
            let c = p.dims()[1];
            let y = p.clone().matmul(w.clone().slice(row..row + c));
            row += c;
            sum = Some(match sum {
                Some(s) => s + y,
                None => y,
            });
        }
        sum.expect("at least one block")
    }

    fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Values and the gradients of every block and of the weight, ours against the twin's.
    fn check(widths: &[usize], cout: usize, k: usize, batch: usize, side: usize) {
        let device = Device::flex().autodiff();
        device.seed(11);
        let pixels = batch * side * side;
        let cin: usize = widths.iter().sum();
        let rand = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Default, &device);
        let parts: Vec<Tensor<2>> = widths
            .iter()
            .map(|&c| rand([pixels, c]).require_grad())
            .collect();
        let weight =
            Tensor::<4>::random([cout, cin, k, k], Distribution::Default, &device).require_grad();
        let seed = rand([pixels, cout]);
        let want = conv_from_burn_ops(&parts, weight.clone(), batch, side);
        let got = conv(&parts, weight.clone(), batch, side);
        assert!(
            max_abs_diff(want.clone(), got.clone()) <= 1e-4,
            "values differ"
        );
        let g_want = (want * seed.clone()).sum().backward();
        let g_got = (got * seed).sum().backward();
        for p in &parts {
            let (a, b) = (p.grad(&g_want).unwrap(), p.grad(&g_got).unwrap());
            assert!(max_abs_diff(a, b) <= 1e-4, "input gradient differs");
        }
        let (a, b) = (weight.grad(&g_want).unwrap(), weight.grad(&g_got).unwrap());
        let scale = a.clone().abs().max().into_scalar::<f32>();
        let diff = (a - b).abs().max().into_scalar::<f32>();
        assert!(
            diff <= 1e-5 * scale.max(1.0),
            "weight gradient differs by {diff} (scale {scale})"
        );
    }

    #[test]
    fn one_block_1x1_matches_burns_ops() {
        check(&[5], 7, 1, 2, 4);
    }

    #[test]
    fn two_blocks_1x1_match_burns_ops_on_their_join() {
        check(&[3, 6], 4, 1, 3, 3);
    }

    #[test]
    fn a_3x3_conv_matches_burns_ops() {
        check(&[4], 6, 3, 2, 5);
    }

    #[test]
    fn the_weight_gradient_split_over_row_ranges_matches_one_product() {
        // 3 * 40 * 40 = 4,800 rows: two partial products summed.
        check(&[3], 5, 1, 3, 40);
    }

    #[test]
    fn weight_matrix_round_trips() {
        let w: Vec<f32> = (0..2 * 3 * 9).map(|i| i as f32).collect();
        let m = weight_matrix_f32(&w, [2, 3, 3]);
        assert_eq!(m[(4 * 3 + 1) * 2 + 1], w[(3 + 1) * 9 + 4]);
        assert_eq!(weight_from_matrix_f32(&m, [2, 3, 3]), w);
    }
}
