//! The shape chain and the arena plan: each layer's geometry checked against its input, and the
//! exact arena the fused plan of `run` needs (see the `run` module docs).

use crate::caps::Caps;
use crate::dims::{Dims, Pad};
use crate::error::Error;
use crate::format::{Bypass, ConvDesc, LayerDesc};
use crate::kernels::{ConvParams, conv_scratch_len, zero_skip_applies};
use crate::quant::{AddRequant, BIAS_SHIFT_MAX, INPUT_QUANT, Multiplier, QuantParams, shift_ok};
use crate::weights::{RowDecoder, WeightsDesc, validate_weights};

/// A positive normal f32, tested on its bits (no float arithmetic on the device).
#[inline(never)]
pub(crate) fn scale_ok(s: f32) -> bool {
    let bits = s.to_bits();
    let exp = (bits >> 23) & 0xff;
    bits >> 31 == 0 && exp != 0 && exp != 0xff
}

/// The input quantisation every blob must use (the int8 input is `pixel - 128`).
pub(crate) fn input_quant_ok(q: &QuantParams) -> bool {
    q.scale.to_bits() == INPUT_QUANT.scale.to_bits() && q.zero_point == INPUT_QUANT.zero_point
}

/// Bit equality of two quantisations (no float compare on the device).
fn same_quant(a: &QuantParams, b: &QuantParams) -> bool {
    a.scale.to_bits() == b.scale.to_bits() && a.zero_point == b.zero_point
}

fn multiplier_ok(m: &Multiplier) -> bool {
    shift_ok(m.shift)
}

fn add_ok(a: &AddRequant) -> bool {
    (1..=16).contains(&a.shift)
}

pub(crate) fn quant_ok(q: &QuantParams) -> bool {
    scale_ok(q.scale)
}

/// Output extent of a window op along one axis, or `None` if invalid. Not inlined: its six
/// call sites would each carry the divisions (about 600 B of firmware flash).
#[inline(never)]
fn out_extent(n: u16, k: u8, s: u8, pa: u8, pb: u8, ceil: bool) -> Option<u16> {
    if k == 0 || s == 0 || pa >= k || pb >= k || n == 0 {
        return None;
    }
    let padded = n as usize + pa as usize + pb as usize;
    if padded < k as usize {
        return None;
    }
    let span = padded - k as usize;
    let mut o = if ceil {
        span.div_ceil(s as usize)
    } else {
        span / s as usize
    } + 1;
    if ceil && (o - 1) * s as usize >= n as usize + pa as usize {
        o -= 1;
    }
    u16::try_from(o).ok()
}

fn window_out(i: Dims, k: [u8; 2], s: [u8; 2], pad: Pad, ceil: bool, c: u16) -> Option<Dims> {
    Some(Dims {
        h: out_extent(i.h, k[0], s[0], pad[0], pad[2], ceil)?,
        w: out_extent(i.w, k[1], s[1], pad[1], pad[3], ceil)?,
        c,
    })
}

/// Geometry of a conv applied to `input`.
pub(crate) fn conv_params(c: &ConvDesc<'_>, input: Dims) -> Option<ConvParams> {
    if c.out_channels == 0 || input.c == 0 {
        return None;
    }
    let output = window_out(input, c.kernel, c.stride, c.pad, false, c.out_channels)?;
    Some(ConvParams {
        input,
        output,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.pad,
        out_channel_stride: c.out_channels as usize,
        out_channel_offset: 0,
    })
}

/// Validates a conv's shape and quantisation and returns its params (the weights are checked
/// apart: [`check_conv_weights`]).
fn check_conv(c: &ConvDesc<'_>, input: Dims, idx: u16) -> Result<ConvParams, Error> {
    let p = conv_params(c, input).ok_or(Error::BadShape(idx))?;
    let cout = c.out_channels as usize;
    let k = p.k();
    if k > u16::MAX as usize {
        return Err(Error::TooLarge);
    }
    if c.bias.len() != cout * 2 || c.multipliers.len() != cout * 2 {
        return Err(Error::BadShape(idx));
    }
    if !quant_ok(&c.out_quant) || !shift_ok(c.shift) || c.bias_shift > BIAS_SHIFT_MAX {
        return Err(Error::BadQuant(idx));
    }
    Ok(p)
}

/// Per-layer shape/quant step: returns `(output dims, output quant, arena need)` where the arena
/// need counts the layer's input (`in_len`, 0 for the first layer), auxiliary tensors, kernel
/// scratch and output (`out_len`, 0 for the last layer).
pub(crate) fn step(
    l: &LayerDesc<'_>,
    input: Dims,
    in_q: QuantParams,
    idx: u16,
    first: bool,
    last: bool,
) -> Result<(Dims, QuantParams, usize), Error> {
    let in_len = if first { 0 } else { input.len() };
    let dense = |c: &ConvDesc<'_>| matches!(c.weights, WeightsDesc::Dense { .. });
    let (out, oq, need_wo_out, aux) = match l {
        LayerDesc::Conv(c) => {
            let p = check_conv(c, input, idx)?;
            (
                p.output,
                c.out_quant,
                in_len + conv_scratch_len(&p, dense(c)),
                0,
            )
        }
        LayerDesc::MaxPool(m) => {
            let o = window_out(input, m.kernel, m.stride, m.pad, m.ceil_mode, input.c)
                .ok_or(Error::BadShape(idx))?;
            (o, in_q, in_len, 0)
        }
        LayerDesc::AvgPool(a) => {
            let o = window_out(input, a.kernel, a.stride, a.pad, false, input.c)
                .ok_or(Error::BadShape(idx))?;
            if !quant_ok(&a.out_quant) || !multiplier_ok(&a.multiplier) {
                return Err(Error::BadQuant(idx));
            }
            (o, a.out_quant, in_len, 0)
        }
        LayerDesc::GlobalAvgPool(g) => {
            if input.is_empty() {
                return Err(Error::BadShape(idx));
            }
            if !quant_ok(&g.out_quant) || !multiplier_ok(&g.multiplier) {
                return Err(Error::BadQuant(idx));
            }
            (
                Dims {
                    h: 1,
                    w: 1,
                    c: input.c,
                },
                g.out_quant,
                in_len,
                0,
            )
        }
        LayerDesc::Fire(f) => {
            let sq = check_conv(&f.squeeze, input, idx)?;
            if f.squeeze.kernel != [1, 1] || !f.squeeze.relu {
                return Err(Error::BadShape(idx));
            }
            let e1 = check_conv(&f.expand1, sq.output, idx)?;
            let e3 = check_conv(&f.expand3, sq.output, idx)?;
            if f.expand1.kernel != [1, 1]
                || f.expand1.stride != [1, 1]
                || f.expand3.kernel != [3, 3]
                || f.expand3.stride != [1, 1]
                || f.expand3.pad != [1; 4]
                || !f.expand1.relu
                || !f.expand3.relu
                || e1.output.h != e3.output.h
                || e1.output.w != e3.output.w
                || sq.output.h != input.h
                || sq.output.w != input.w
                || e1.output.h != input.h
                || e1.output.w != input.w
            {
                return Err(Error::BadShape(idx));
            }
            if !same_quant(&f.expand1.out_quant, &f.expand3.out_quant) {
                return Err(Error::BadQuant(idx));
            }
            let c = f
                .expand1
                .out_channels
                .checked_add(f.expand3.out_channels)
                .ok_or(Error::TooLarge)?;
            let out = Dims {
                h: input.h,
                w: input.w,
                c,
            };
            let s_len = sq.output.len();
            let d = |c: &ConvDesc<'_>, p: &ConvParams| conv_scratch_len(p, dense(c));
            let out_len = out.len() * !last as usize;
            // Without a bypass the input dies with the squeeze, so the concat may overwrite it:
            // the expands need only the squeeze output, their scratch and the concat.
            let keep_in = if matches!(f.bypass, Bypass::None) {
                0
            } else {
                in_len
            };
            let mut need = (in_len + s_len + d(&f.squeeze, &sq))
                .max(keep_in + s_len + d(&f.expand1, &e1) + out_len)
                .max(keep_in + s_len + d(&f.expand3, &e3) + out_len);
            let oq = match &f.bypass {
                Bypass::None => f.expand1.out_quant,
                Bypass::Simple { add, out_quant } => {
                    if input.c != c || !quant_ok(out_quant) || !add_ok(add) {
                        return Err(Error::BadShape(idx));
                    }
                    *out_quant
                }
                Bypass::Complex {
                    conv,
                    add,
                    out_quant,
                } => {
                    let b = check_conv(conv, input, idx)?;
                    if conv.kernel != [1, 1]
                        || conv.relu
                        || b.output != out
                        || !quant_ok(out_quant)
                        || !add_ok(add)
                    {
                        return Err(Error::BadShape(idx));
                    }
                    need = need
                        .max(in_len + b.output.len() + d(conv, &b) + out.len() * !last as usize);
                    *out_quant
                }
            };
            // The fire's need already includes its output.
            (out, oq, need, usize::MAX)
        }
    };
    let need = if aux == usize::MAX {
        need_wo_out
    } else {
        need_wo_out + if last { 0 } else { out.len() }
    };
    Ok((out, oq, need))
}

/// Arena need of a conv fused with the max pool after it (the fused plan of `run`): the conv's
/// input, a strip of at most `pool kernel height` conv output rows, the conv's scratch and the
/// pool's output. `None` if the pair cannot be fused.
pub(crate) fn fused_conv_pool_need(
    c: &ConvDesc<'_>,
    conv_in: Dims,
    first: bool,
    pool: &LayerDesc<'_>,
    pool_out: Dims,
    last: bool,
) -> Option<usize> {
    let LayerDesc::MaxPool(m) = pool else {
        return None;
    };
    let p = conv_params(c, conv_in)?;
    let rows = (m.kernel[0] as usize).min(p.output.h as usize);
    let in_len = if first { 0 } else { conv_in.len() };
    let dense = matches!(c.weights, WeightsDesc::Dense { .. });
    Some(
        in_len
            + rows * p.output.w as usize * p.output.c as usize
            + conv_scratch_len(&p, dense)
            + if last { 0 } else { pool_out.len() },
    )
}

/// Both arena plans, accumulated layer by layer: `observed` runs every layer whole (every
/// tensor can be observed); `fused` runs a conv and the max pool after it as one step, so the
/// conv's whole output never exists (see `run`).
#[derive(Debug, Default)]
struct PlanAcc {
    observed: usize,
    fused: usize,
    /// The previous layer's need when it is a conv not yet counted: whether it fuses with the
    /// next layer decides which need counts.
    pending_conv: Option<usize>,
}

impl PlanAcc {
    /// Adds layer `l` (its need `need`; `fused_need` when `l` is a max pool right after a
    /// conv that is not yet fused).
    fn add(&mut self, is_conv: bool, need: usize, fused_need: Option<usize>) {
        self.observed = self.observed.max(need);
        match (self.pending_conv.take(), fused_need) {
            (Some(_), Some(f)) => {
                self.fused = self.fused.max(f);
                return;
            }
            (Some(conv_need), None) => self.fused = self.fused.max(conv_need),
            (None, _) => {}
        }
        if is_conv {
            self.pending_conv = Some(need);
        } else {
            self.fused = self.fused.max(need);
        }
    }

    /// The two plans after the last layer: `(fused, observed)`.
    fn finish(mut self) -> (usize, usize) {
        if let Some(conv_need) = self.pending_conv.take() {
            self.fused = self.fused.max(conv_need);
        }
        (self.fused, self.observed)
    }
}

/// Checks what [`step`] leaves to the build `C`: that it carries the layer's kind and its convs'
/// decoders ([`Error::NotBuiltIn`] if not), and every weight row of its convs (layer `idx`,
/// input `input`).
fn check_built_in<C: Caps>(l: &LayerDesc<'_>, input: Dims, idx: u16) -> Result<(), Error> {
    let kind_built_in = match l {
        LayerDesc::Conv(c) => return check_conv_weights::<C>(c, input, idx),
        LayerDesc::MaxPool(_) => C::MAXPOOL_ANY_CHANNELS || input.c.is_multiple_of(4),
        LayerDesc::AvgPool(_) => C::AVG_POOL,
        LayerDesc::GlobalAvgPool(_) => C::GLOBAL_AVG_POOL,
        LayerDesc::Fire(f) => {
            // `step` checked that the squeeze keeps the input's rows and columns.
            let sq = Dims {
                c: f.squeeze.out_channels,
                ..input
            };
            check_conv_weights::<C>(&f.squeeze, input, idx)?;
            check_conv_weights::<C>(&f.expand1, sq, idx)?;
            check_conv_weights::<C>(&f.expand3, sq, idx)?;
            match &f.bypass {
                Bypass::None => true,
                Bypass::Simple { .. } => C::BYPASS,
                Bypass::Complex { conv, .. } => {
                    check_conv_weights::<C>(conv, input, idx)?;
                    C::BYPASS
                }
            }
        }
    };
    if kind_built_in {
        Ok(())
    } else {
        Err(Error::NotBuiltIn)
    }
}

/// Checks a conv's weights for `C`'s decoders and drivers (layer `idx`, input `input`, its
/// shape already checked by `step`): the encoding's structure, then every row decoded once.
fn check_conv_weights<C: Caps>(c: &ConvDesc<'_>, input: Dims, idx: u16) -> Result<(), Error> {
    let bad = |e: Error| match e {
        Error::NotBuiltIn => e,
        _ => Error::BadLayerWeights(idx),
    };
    let p = conv_params(c, input).ok_or(Error::BadShape(idx))?;
    let (cout, k) = (c.out_channels as usize, p.k());
    validate_weights::<C>(&c.weights, cout, k).map_err(bad)?;
    if matches!(c.weights, WeightsDesc::Dense { .. }) {
        return if C::PACKED {
            Ok(())
        } else {
            Err(Error::NotBuiltIn)
        };
    }
    let d = RowDecoder::<C>::with_caps(c.weights, k).map_err(bad)?;
    for r in 0..cout {
        d.check_row(r).map_err(bad)?;
    }
    d.check_stream_end(cout).map_err(bad)?;
    if !C::PACKED && !zero_skip_takes(&p, &d) {
        return Err(Error::NotBuiltIn);
    }
    Ok(())
}

/// Whether the zero-skipping driver runs these rows with the conv's planned scratch, and so
/// with any scratch `run` gives it (never less; the driver's choice only widens with more).
/// When not, the packed driver runs them.
pub(crate) fn zero_skip_takes<C: Caps>(p: &ConvParams, w: &RowDecoder<'_, C>) -> bool {
    zero_skip_applies(p, w, conv_scratch_len(p, w.is_dense()))
}

/// Walks the layers through [`step`], [`check_built_in`] (for the build `C`) and both plans;
/// returns `(fused, observed, output dims, output quant)`.
pub(crate) fn plan_layers<'a, C: Caps>(
    input: Dims,
    input_quant: QuantParams,
    n: usize,
    mut next: impl FnMut() -> Result<LayerDesc<'a>, Error>,
) -> Result<(usize, usize, Dims, QuantParams), Error> {
    let mut dims = input;
    let mut q = input_quant;
    let mut acc = PlanAcc::default();
    let mut prev: Option<(LayerDesc<'a>, Dims, bool)> = None;
    for i in 0..n {
        let l = next()?;
        let (first, last) = (i == 0, i + 1 == n);
        let (d, oq, need) = step(&l, dims, q, i as u16, first, last)?;
        check_built_in::<C>(&l, dims, i as u16)?;
        let fused = match &prev {
            Some((LayerDesc::Conv(c), conv_in, conv_first)) => {
                fused_conv_pool_need(c, *conv_in, *conv_first, &l, d, last)
            }
            _ => None,
        };
        acc.add(matches!(l, LayerDesc::Conv(_)), need, fused);
        // A fused pair is one step: the pool does not start another pair.
        prev = if fused.is_some() {
            None
        } else {
            Some((l, dims, first))
        };
        dims = d;
        q = oq;
    }
    let (fused, observed) = acc.finish();
    Ok((fused, observed, dims, q))
}

#[cfg_attr(not(feature = "std"), allow(dead_code))]
/// Computes the exact arena size of the plan (checking shapes, quantisation and weights).
pub(crate) fn plan_arena<'a>(
    input: Dims,
    input_quant: QuantParams,
    layers: impl ExactSizeIterator<Item = LayerDesc<'a>>,
) -> Result<usize, Error> {
    let n = layers.len();
    let mut layers = layers;
    let (fused, ..) = plan_layers::<crate::caps::Everything>(input, input_quant, n, || {
        layers.next().ok_or(Error::BadLayerCount)
    })?;
    Ok(fused)
}
