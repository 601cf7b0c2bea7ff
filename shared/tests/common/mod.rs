//! Reference network executor built only from the `*_ref` kernels and dense decoded weights.
#![allow(dead_code)]

use shared::format::{Bypass, ConvDesc, Dims, LayerDesc};
use shared::kernels::{
    ConvParams, ConvQuant, PoolParams, add_requant_s8_ref, avgpool_s8_ref, conv_ref_s8,
    global_avgpool_s8_ref, maxpool_s8_ref,
};
use shared::{Model, QuantParams, SubOp};

fn conv_out(c: &ConvDesc<'_>, i: Dims) -> Dims {
    Dims {
        h: ((i.h as usize + c.pad[0] as usize + c.pad[2] as usize - c.kernel[0] as usize)
            / c.stride[0] as usize
            + 1) as u16,
        w: ((i.w as usize + c.pad[1] as usize + c.pad[3] as usize - c.kernel[1] as usize)
            / c.stride[1] as usize
            + 1) as u16,
        c: c.out_channels,
    }
}

pub fn ref_conv(
    c: &ConvDesc<'_>,
    i: Dims,
    iq: QuantParams,
    x: &[i8],
    out: &mut [i8],
    stride: usize,
    off: usize,
) {
    let o = conv_out(c, i);
    let k = c.kernel[0] as usize * c.kernel[1] as usize * i.c as usize;
    let mut w = vec![0i8; k * c.out_channels as usize];
    c.decode_weights(i.c as usize, &mut w).unwrap();
    let p = ConvParams {
        input: i,
        output: o,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.pad,
        out_channel_stride: stride,
        out_channel_offset: off,
    };
    let q = ConvQuant {
        in_zp: iq.zero_point,
        bias: c.bias,
        bias_shift: c.bias_shift,
        multipliers: c.multipliers,
        shift: c.shift,
        out_zp: c.out_quant.zero_point,
        relu: c.relu,
    };
    conv_ref_s8(&p, &q, x, &w, out);
}

/// Runs the model with reference kernels, returning every observed tensor in order.
pub fn ref_run(model: &Model<'_>, input: &[i8]) -> Vec<(u16, SubOp, Vec<i8>)> {
    let mut seen = Vec::new();
    let mut x = input.to_vec();
    for info in model.layers() {
        let (i, o, iq) = (info.input, info.output, info.in_quant);
        let mut out = vec![0i8; o.len()];
        match &info.desc {
            LayerDesc::Conv(c) => ref_conv(c, i, iq, &x, &mut out, c.out_channels as usize, 0),
            LayerDesc::MaxPool(m) => {
                let p = PoolParams {
                    input: i,
                    output: o,
                    kernel: m.kernel,
                    stride: m.stride,
                    pad: m.pad,
                };
                maxpool_s8_ref(&p, &x, &mut out);
            }
            LayerDesc::AvgPool(a) => {
                let p = PoolParams {
                    input: i,
                    output: o,
                    kernel: a.kernel,
                    stride: a.stride,
                    pad: a.pad,
                };
                avgpool_s8_ref(
                    &p,
                    iq.zero_point,
                    a.multiplier,
                    a.out_quant.zero_point,
                    &x,
                    &mut out,
                );
            }
            LayerDesc::GlobalAvgPool(g) => global_avgpool_s8_ref(
                i,
                iq.zero_point,
                g.multiplier,
                g.out_quant.zero_point,
                &x,
                &mut out,
            ),
            LayerDesc::Fire(f) => {
                let sd = Dims {
                    h: i.h,
                    w: i.w,
                    c: f.squeeze.out_channels,
                };
                let mut s = vec![0i8; sd.len()];
                ref_conv(&f.squeeze, i, iq, &x, &mut s, sd.c as usize, 0);
                seen.push((info.index, SubOp::Squeeze, s.clone()));
                let width = o.c as usize;
                ref_conv(&f.expand1, sd, f.squeeze.out_quant, &s, &mut out, width, 0);
                ref_conv(
                    &f.expand3,
                    sd,
                    f.squeeze.out_quant,
                    &s,
                    &mut out,
                    width,
                    f.expand1.out_channels as usize,
                );
                seen.push((info.index, SubOp::Expand, out.clone()));
                let cq = f.expand1.out_quant;
                match &f.bypass {
                    Bypass::None => {}
                    Bypass::Simple { add, out_quant } => {
                        let a = out.clone();
                        let (za, zb, zo) = (cq.zero_point, iq.zero_point, out_quant.zero_point);
                        add_requant_s8_ref(&a, za, &x, zb, add, zo, &mut out);
                    }
                    Bypass::Complex {
                        conv,
                        add,
                        out_quant,
                    } => {
                        let mut b = vec![0i8; o.len()];
                        ref_conv(conv, i, iq, &x, &mut b, conv.out_channels as usize, 0);
                        seen.push((info.index, SubOp::BypassConv, b.clone()));
                        let a = out.clone();
                        let (za, zb) = (cq.zero_point, conv.out_quant.zero_point);
                        add_requant_s8_ref(&a, za, &b, zb, add, out_quant.zero_point, &mut out);
                    }
                }
            }
        }
        seen.push((info.index, SubOp::Output, out.clone()));
        x = out;
    }
    seen
}

/// Panics with the first differing index and both values.
pub fn assert_exact(what: &str, want: &[i8], got: &[i8]) {
    assert_eq!(want.len(), got.len(), "{what}: length");
    if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
        panic!(
            "{what}: first difference at {i}: reference {} vs {}",
            want[i], got[i]
        );
    }
}
