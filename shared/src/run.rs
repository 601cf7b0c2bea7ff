//! Whole-network inference over the arena plan.
//!
//! # Arena plan
//! The arena is used from both ends (ping-pong). Layer 0 reads the caller's `input` slice; the
//! last layer writes straight into the caller's `logits`. Otherwise a step reads its input at
//! one end of the arena and writes its output at the other end; the bytes between hold
//! auxiliary tensors followed by kernel scratch. Per step (in = 0 for the first layer, out = 0
//! for the last):
//!
//! * conv: `in + conv_scratch_len + out`
//! * pools: `in + out`
//! * conv followed by a max pool (fused, [`run`] only): `in + R + conv_scratch_len + out(pool)`,
//!   with `R` a strip of `min(pool kernel height, conv output height)` conv output rows: the
//!   conv's whole output never exists. Pool output row `j` needs conv rows `j * s - pad ..` (a
//!   window of the pool kernel height); rows still needed stay in the strip (moved to its
//!   front), new ones are computed by the conv kernel on the input rows they need, with the top
//!   padding adjusted.
//! * fire without bypass: `max(in + S + scratch(squeeze), S + scratch(e1 or e3) + out)`: the
//!   squeeze output `S` goes to the far end, the input dies with the squeeze, and the two expands
//!   write their channel slices of the concat over it (the output stays at the input's end).
//! * fire with bypass: `max(in + S + scratch(squeeze), in + S + scratch(e1 or e3) + out,
//!   in + B + scratch(bypass) + out)` with `B` the complex-bypass 1x1 output (reusing the bytes of
//!   `S`); the bypass sum is computed in place in the concat.
//!
//! `arena_len` is the maximum over the steps. The conv scratch reserves packed weights for
//! blocks of [`crate::kernels::MIN_BLOCK`] channels; wherever the arena has more free bytes
//! (every step but the largest), the kernels take larger blocks and pass over the pixels fewer
//! times. [`run_observed`] runs every layer whole (every tensor observable) and needs
//! [`Model::observed_arena_len`] bytes.

use crate::caps::Caps;
use crate::dims::Dims;
use crate::format::{Bypass, ConvDesc, FireDesc, LayerDesc, MaxPoolDesc};
use crate::kernels::{BestDot, DotKernel};
use crate::kernels::{ConvQuant, PoolParams, conv_s8, conv_s8_next_strip};
use crate::kernels::{add_requant_s8, avgpool_s8, global_avgpool_s8, maxpool_s8};
use crate::model::{LayerInfo, Model};
use crate::plan::conv_params;
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
    run_fused_with::<BestDot>(model, input, arena, logits)
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

/// [`run_observed`] with an explicit dot kernel (tests run every implementation): every layer
/// runs whole; `arena.len() >= model.observed_arena_len()`.
pub fn run_with<K: DotKernel>(
    model: &Model<'_>,
    input: &[i8],
    arena: &mut [u8],
    logits: &mut [i8],
    observer: &mut dyn FnMut(u16, SubOp, &[i8]),
) {
    run_plan::<K>(model, input, arena, logits, Some(observer))
}

/// [`run`] with an explicit dot kernel: a conv and the max pool after it run fused, in strips
/// of rows; `arena.len() >= model.arena_len()`.
pub fn run_fused_with<K: DotKernel>(
    model: &Model<'_>,
    input: &[i8],
    arena: &mut [u8],
    logits: &mut [i8],
) {
    run_plan::<K>(model, input, arena, logits, None)
}

/// Splits the arena into `(input, middle, output)`: the input at the high end when `high`, the
/// output at the other end.
fn split_ends(
    arena: &mut [i8],
    high: bool,
    in_len: usize,
    out_len: usize,
) -> (&[i8], &mut [i8], &mut [i8]) {
    let total = arena.len();
    if high {
        let (lo, hi) = arena.split_at_mut(total - in_len);
        let (o, mid) = lo.split_at_mut(out_len);
        (&*hi, mid, o)
    } else {
        let (lo, rest) = arena.split_at_mut(in_len);
        let (mid, o) = rest.split_at_mut(total - in_len - out_len);
        (&*lo, mid, o)
    }
}

/// Receives `(layer index, sub-op, tensor)`.
type Observer<'a> = dyn FnMut(u16, SubOp, &[i8]) + 'a;

/// The layer loop of both plans (`observer` given: every layer whole; `None`: fused pairs).
fn run_plan<K: DotKernel>(
    model: &Model<'_>,
    input: &[i8],
    arena: &mut [u8],
    logits: &mut [i8],
    mut observer: Option<&mut Observer<'_>>,
) {
    let need = if observer.is_some() {
        model.observed_arena_len()
    } else {
        model.arena_len()
    };
    let ok = input.len() >= model.input_len()
        && arena.len() >= need
        && logits.len() >= model.num_classes();
    debug_assert!(ok, "run: undersized buffer");
    if !ok {
        return;
    }
    // Bytes past the plan are extra kernel scratch (larger weight blocks, fewer passes).
    let arena = as_i8_mut(arena);
    let n = model.num_layers();
    let input = &input[..model.input_len()];
    let logits = &mut logits[..model.num_classes()];
    // Where the current activation lives: true = high end.
    let mut high = false;
    let mut noop = |_: u16, _: SubOp, _: &[i8]| {};
    let mut layers = model.layers().peekable();
    while let Some(info) = layers.next() {
        let i = info.index as usize;
        let first = i == 0;
        let in_len = if first { 0 } else { info.input.len() };
        // A conv followed by a max pool: one step, the conv's output made a strip at a time.
        if let (None, LayerDesc::Conv(c), Some(LayerDesc::MaxPool(m))) =
            (&observer, &info.desc, layers.peek().map(|l| l.desc))
        {
            let pool = layers.next().unwrap_or(info);
            let last = pool.index as usize + 1 == n;
            let out_len = if last { 0 } else { pool.output.len() };
            let (x_in, mid, out_buf) = split_ends(arena, high, in_len, out_len);
            let x = if first { input } else { x_in };
            let out: &mut [i8] = if last { &mut *logits } else { out_buf };
            conv_pool_fused::<K>(c, &info, &m, pool.output, x, mid, out);
            high = !high;
            continue;
        }
        let last = i + 1 == n;
        let out_len = if last { 0 } else { info.output.len() };
        let obs: &mut dyn FnMut(u16, SubOp, &[i8]) = match observer.as_mut() {
            Some(o) => &mut **o,
            None => &mut noop,
        };
        if let LayerDesc::Fire(f) = &info.desc
            && matches!(f.bypass, Bypass::None)
        {
            fire_in_place::<K>(f, &info, arena, high, input, logits, last, obs);
            continue;
        }
        let (x_in, mid, out_buf) = split_ends(arena, high, in_len, out_len);
        let x: &[i8] = if first { input } else { x_in };
        let out: &mut [i8] = if last { &mut *logits } else { out_buf };
        exec_layer::<K>(
            &info.desc,
            info.index,
            (info.input, info.output),
            info.in_quant,
            x,
            mid,
            out,
            obs,
        );
        obs(info.index, SubOp::Output, out);
        high = !high;
    }
}

#[allow(clippy::too_many_arguments)]
/// A fire module without bypass: its input dies with the squeeze, so the concat overwrites it
/// (the output stays at the input's end of the arena) and the squeeze output sits at the other
/// end.
fn fire_in_place<K: DotKernel>(
    f: &FireDesc<'_>,
    info: &LayerInfo<'_>,
    arena: &mut [i8],
    high: bool,
    input: &[i8],
    logits: &mut [i8],
    last: bool,
    obs: &mut dyn FnMut(u16, SubOp, &[i8]),
) {
    let first = info.index == 0;
    let in_len = if first { 0 } else { info.input.len() };
    let s_dims = Dims {
        h: info.input.h,
        w: info.input.w,
        c: f.squeeze.out_channels,
    };
    let s_len = s_dims.len();
    // Squeeze: input at its end, squeeze output at the other end.
    {
        let (x_in, scratch, s) = split_ends(arena, high, in_len, s_len);
        let x = if first { input } else { x_in };
        conv_call::<K>(
            &f.squeeze,
            info.input,
            info.in_quant,
            x,
            s,
            s_dims.c as usize,
            0,
            scratch,
        );
        obs(info.index, SubOp::Squeeze, s);
    }
    // Expands: squeeze output at its end, concat at the input's end (or in the logits).
    let out_len = if last { 0 } else { info.output.len() };
    let (s, scratch, out_buf) = split_ends(arena, !high, s_len, out_len);
    let out: &mut [i8] = if last { logits } else { out_buf };
    fire_expands::<K>(f, s_dims, s, out, scratch);
    obs(info.index, SubOp::Expand, out);
    obs(info.index, SubOp::Output, out);
}

/// The two expands of a fire, each written into its channel slice of the concat `out`.
fn fire_expands<K: DotKernel>(
    f: &FireDesc<'_>,
    s_dims: Dims,
    s: &[i8],
    out: &mut [i8],
    scratch: &mut [i8],
) {
    let sq_q = f.squeeze.out_quant;
    let width = f.expand1.out_channels as usize + f.expand3.out_channels as usize;
    conv_call::<K>(&f.expand1, s_dims, sq_q, s, out, width, 0, scratch);
    let off = f.expand1.out_channels as usize;
    conv_call::<K>(&f.expand3, s_dims, sq_q, s, out, width, off, scratch);
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
    let Ok(w) = RowDecoder::<K::Caps>::with_caps(c.weights, p.k()) else {
        return;
    };
    conv_s8::<K>(&p, &conv_quant(c, in_q), x, &w, out, scratch);
}

/// A conv and the max pool after it, one pool output row at a time: `mid` holds a strip of at
/// most `pool kernel height` conv output rows (rows still needed are kept, new ones computed
/// on the conv's input rows with the padding adjusted), then the kernel scratch.
fn conv_pool_fused<K: DotKernel>(
    c: &ConvDesc<'_>,
    conv: &LayerInfo<'_>,
    m: &MaxPoolDesc,
    pool_out: Dims,
    x: &[i8],
    mid: &mut [i8],
    out: &mut [i8],
) {
    let Some(full) = conv_params(c, conv.input) else {
        return;
    };
    let Ok(w) = RowDecoder::<K::Caps>::with_caps(c.weights, full.k()) else {
        return;
    };
    let q = conv_quant(c, conv.in_quant);
    let (oh, row) = (
        full.output.h as usize,
        full.output.w as usize * full.output.c as usize,
    );
    let cap = (m.kernel[0] as usize).min(oh);
    let (strip, scratch) = mid.split_at_mut(cap * row);
    let in_row = conv.input.w as usize * conv.input.c as usize;
    let (ih, sy, pt, kh) = (
        conv.input.h as usize,
        full.stride[0] as usize,
        full.pad[0] as usize,
        full.kernel[0] as usize,
    );
    let pool_row = pool_out.w as usize * pool_out.c as usize;
    // Conv output rows held in `strip`: `lo..hi`.
    let (mut lo, mut hi) = (0usize, 0usize);
    // `scratch` is touched by the conv alone: later strips may reuse the kernel's state.
    let mut first_strip = true;
    for j in 0..pool_out.h as usize {
        let top = j as isize * m.stride[0] as isize - m.pad[0] as isize;
        let a = top.max(0) as usize;
        let b = ((top + m.kernel[0] as isize).max(0) as usize).min(oh);
        if a > lo {
            if a < hi {
                strip.copy_within((a - lo) * row..(hi - lo) * row, 0);
            } else {
                hi = a;
            }
            lo = a;
        }
        if hi < b {
            // Conv rows `hi..b`: input rows from `y0`, the top padding what remains of `pt`.
            let first_tap = hi * sy;
            let y0 = first_tap.saturating_sub(pt);
            let y1 = ((b - 1) * sy + kh).saturating_sub(pt).min(ih);
            let mut p = full;
            p.input.h = (y1 - y0) as u16;
            p.output.h = (b - hi) as u16;
            p.pad[0] = pt.saturating_sub(first_tap) as u8;
            p.pad[2] = 0;
            let dst = &mut strip[(hi - lo) * row..(b - lo) * row];
            let x = &x[y0 * in_row..y1 * in_row];
            if first_strip {
                conv_s8::<K>(&p, &q, x, &w, dst, scratch);
            } else {
                // SAFETY: the previous strip of this layer ran `conv_s8` or this call with
                // the same kernel, weights and quantisation on this `scratch`, which only
                // this loop borrows (the max pool below takes no scratch).
                unsafe { conv_s8_next_strip::<K>(&p, &q, x, &w, dst, scratch) };
            }
            first_strip = false;
            hi = b;
        }
        let pp = PoolParams {
            input: Dims {
                h: (b - a) as u16,
                w: full.output.w,
                c: full.output.c,
            },
            output: Dims {
                h: 1,
                w: pool_out.w,
                c: pool_out.c,
            },
            kernel: m.kernel,
            stride: m.stride,
            pad: [(a as isize - top) as u8, m.pad[1], 0, m.pad[3]],
        };
        maxpool_s8::<K::Caps>(
            &pp,
            &strip[(a - lo) * row..(b - lo) * row],
            &mut out[j * pool_row..(j + 1) * pool_row],
        );
    }
}

fn conv_quant<'a>(c: &ConvDesc<'a>, in_q: QuantParams) -> ConvQuant<'a> {
    ConvQuant {
        in_zp: in_q.zero_point,
        bias: c.bias,
        bias_shift: c.bias_shift,
        multipliers: c.multipliers,
        shift: c.shift,
        out_zp: c.out_quant.zero_point,
        relu: c.relu,
    }
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
            maxpool_s8::<K::Caps>(&p, x, out);
        }
        LayerDesc::AvgPool(a) if K::Caps::AVG_POOL => {
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
        LayerDesc::GlobalAvgPool(g) if K::Caps::GLOBAL_AVG_POOL => {
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
            fire_expands::<K>(f, s_dims, s, out, scratch);
            observer(idx, SubOp::Expand, out);
            let cq = f.expand1.out_quant;
            match &f.bypass {
                Bypass::None => {}
                Bypass::Simple { .. } | Bypass::Complex { .. } if !K::Caps::BYPASS => {}
                Bypass::Simple { add, out_quant } => add_requant_s8(
                    out,
                    cq.zero_point,
                    x,
                    in_q.zero_point,
                    add,
                    out_quant.zero_point,
                ),
                Bypass::Complex {
                    conv,
                    add,
                    out_quant,
                } => {
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
                    let zb = conv.out_quant.zero_point;
                    add_requant_s8(out, cq.zero_point, b, zb, add, out_quant.zero_point);
                }
            }
        }
        // Left out of this build (`caps`): such a model is refused at boot.
        LayerDesc::AvgPool(_) | LayerDesc::GlobalAvgPool(_) => {}
    }
}
