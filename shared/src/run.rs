//! Whole-network inference over the arena plan.
//!
//! # Arena plan
//! The arena is used from both ends (ping-pong). Layer 0 reads the caller's `input` slice; the
//! last layer writes straight into the caller's `logits`. Otherwise layer `i` reads its input
//! at one end (low for even `i > 0`... alternating, starting with the output of layer 0 at the
//! high end) and writes its output at the other end; the bytes between hold auxiliary tensors
//! followed by kernel scratch. For a fire module the auxiliary tensor is the squeeze output
//! (live during the two expands, which write directly into their channel slices of the concat
//! output) and then, reusing the same bytes, the complex-bypass 1x1 output; the bypass sum is
//! computed in place in the concat. Hence, per layer (in = 0 for the first, out = 0 for the last):
//!
//! * conv: `in + conv_scratch_len + out`
//! * pools: `in + out`
//! * fire: `max(in + S + scratch(squeeze), in + S + scratch(e1) + out, in + S + scratch(e3) + out,
//!   in + B + scratch(bypass) + out)` with `S` the squeeze output and `B` the bypass conv output
//!
//! and `arena_len` is the maximum over the layers.

use crate::format::{Bypass, ConvDesc, Dims, LayerDesc};
use crate::kernels::add::add_requant_s8;
use crate::kernels::conv::{ConvQuant, conv_s8};
use crate::kernels::dot::{BestDot, DotKernel};
use crate::kernels::pool::{PoolParams, avgpool_s8, global_avgpool_s8, maxpool_s8};
use crate::model::{Model, conv_params, uniform};
use crate::quant::QuantParams;
use crate::weights::RowDecoder;

/// Which intermediate tensor an observer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubOp {
    /// Fire squeeze output (`h x w x s`).
    Squeeze,
    /// Fire concat of the two expands (`h x w x (e1 + e3)`).
    Expand,
    /// Fire complex-bypass 1x1 conv output.
    BypassConv,
    /// The layer's output (for a fire with bypass: the sum).
    Output,
}

/// Runs the network. `input`: `model.input_len()` int8 values (NHWC, see
/// [`crate::quantize_input_u8`]); `arena.len() >= model.arena_len()`; `logits.len() >=
/// model.num_classes()`. Undersized buffers make the call do nothing (debug builds assert).
pub fn run(model: &Model<'_>, input: &[i8], arena: &mut [u8], logits: &mut [i8]) {
    run_observed(model, input, arena, logits, &mut |_, _, _| {})
}

/// [`run`] reporting every quantised intermediate tensor as `(layer index, sub-op, data)`.
pub fn run_observed(
    model: &Model<'_>,
    input: &[i8],
    arena: &mut [u8],
    logits: &mut [i8],
    observer: &mut dyn FnMut(u16, SubOp, &[i8]),
) {
    run_with::<BestDot>(model, input, arena, logits, observer)
}

fn as_i8_mut(b: &mut [u8]) -> &mut [i8] {
    // SAFETY: u8 and i8 have identical size, alignment and every bit pattern is valid.
    unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<i8>(), b.len()) }
}

/// [`run_observed`] with an explicit dot kernel (tests run every implementation).
pub fn run_with<K: DotKernel>(
    model: &Model<'_>,
    input: &[i8],
    arena: &mut [u8],
    logits: &mut [i8],
    observer: &mut dyn FnMut(u16, SubOp, &[i8]),
) {
    let ok = input.len() >= model.input_len()
        && arena.len() >= model.arena_len()
        && logits.len() >= model.num_classes();
    debug_assert!(ok, "run: undersized buffer");
    if !ok {
        return;
    }
    let arena = as_i8_mut(&mut arena[..model.arena_len()]);
    let n = model.num_layers();
    let total = arena.len();
    // Where the current activation lives: true = high end.
    let mut high = false;
    for info in model.layers() {
        let i = info.index as usize;
        let first = i == 0;
        let last = i + 1 == n;
        let in_len = if first { 0 } else { info.input.len() };
        let out_len = if last { 0 } else { info.output.len() };
        // Split: [low | mid | high].
        let (x_in, mid, out_buf): (&[i8], &mut [i8], &mut [i8]) = if high {
            let (lo, hi) = arena.split_at_mut(total - in_len);
            let (o, mid) = lo.split_at_mut(out_len);
            (&*hi, mid, o)
        } else {
            let (lo, rest) = arena.split_at_mut(in_len);
            let (mid, o) = rest.split_at_mut(total - in_len - out_len);
            (&*lo, mid, o)
        };
        let x: &[i8] = if first {
            &input[..model.input_len()]
        } else {
            x_in
        };
        let out: &mut [i8] = if last {
            &mut logits[..model.num_classes()]
        } else {
            out_buf
        };
        exec_layer::<K>(
            &info.desc,
            info.index,
            (info.input, info.output),
            info.in_quant,
            x,
            mid,
            out,
            observer,
        );
        observer(info.index, SubOp::Output, out);
        high = !high;
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_call<K: DotKernel>(
    c: &ConvDesc<'_>,
    input: Dims,
    in_q: QuantParams,
    x: &[i8],
    out: &mut [i8],
    out_stride: usize,
    out_offset: usize,
    scratch: &mut [i8],
) {
    let Some(mut p) = conv_params(c, input) else {
        return;
    };
    p.out_channel_stride = out_stride;
    p.out_channel_offset = out_offset;
    let Ok(w) = RowDecoder::new(c.weights, p.k()) else {
        return;
    };
    let q = ConvQuant {
        in_zp: in_q.zero_point,
        bias: c.bias,
        multipliers: c.multipliers,
        uniform: uniform(c.multipliers),
        out_zp: c.out_quant.zero_point,
        relu: c.relu,
    };
    conv_s8::<K>(&p, &q, x, &w, out, scratch);
}

#[allow(clippy::too_many_arguments)]
fn exec_layer<K: DotKernel>(
    l: &LayerDesc<'_>,
    idx: u16,
    (input, output): (Dims, Dims),
    in_q: QuantParams,
    x: &[i8],
    mid: &mut [i8],
    out: &mut [i8],
    observer: &mut dyn FnMut(u16, SubOp, &[i8]),
) {
    match l {
        LayerDesc::Conv(c) => {
            conv_call::<K>(c, input, in_q, x, out, c.out_channels as usize, 0, mid);
        }
        LayerDesc::MaxPool(m) => {
            let p = PoolParams {
                input,
                output,
                kernel: m.kernel,
                stride: m.stride,
                pad: m.pad,
            };
            maxpool_s8(&p, x, out);
        }
        LayerDesc::AvgPool(a) => {
            let p = PoolParams {
                input,
                output,
                kernel: a.kernel,
                stride: a.stride,
                pad: a.pad,
            };
            avgpool_s8(
                &p,
                in_q.zero_point,
                a.multiplier,
                a.out_quant.zero_point,
                x,
                out,
            );
        }
        LayerDesc::GlobalAvgPool(g) => {
            global_avgpool_s8(
                input,
                in_q.zero_point,
                g.multiplier,
                g.out_quant.zero_point,
                x,
                out,
            );
        }
        LayerDesc::Fire(f) => {
            let s_dims = Dims {
                h: input.h,
                w: input.w,
                c: f.squeeze.out_channels,
            };
            let (s, scratch) = mid.split_at_mut(s_dims.len());
            conv_call::<K>(&f.squeeze, input, in_q, x, s, s_dims.c as usize, 0, scratch);
            observer(idx, SubOp::Squeeze, s);
            let sq_q = f.squeeze.out_quant;
            let width = f.expand1.out_channels as usize + f.expand3.out_channels as usize;
            conv_call::<K>(&f.expand1, s_dims, sq_q, s, out, width, 0, scratch);
            let off = f.expand1.out_channels as usize;
            conv_call::<K>(&f.expand3, s_dims, sq_q, s, out, width, off, scratch);
            observer(idx, SubOp::Expand, out);
            let cq = f.expand1.out_quant;
            match &f.bypass {
                Bypass::None => {}
                Bypass::Simple { out_quant } => add_requant_s8(out, cq, x, in_q, *out_quant),
                Bypass::Complex { conv, out_quant } => {
                    let (b, scratch) = mid.split_at_mut(out.len());
                    conv_call::<K>(
                        conv,
                        input,
                        in_q,
                        x,
                        b,
                        conv.out_channels as usize,
                        0,
                        scratch,
                    );
                    observer(idx, SubOp::BypassConv, b);
                    add_requant_s8(out, cq, b, conv.out_quant, *out_quant);
                }
            }
        }
    }
}
