//! ONNX export, written by hand with tract's prost types: the float network (BatchNorm folded)
//! and the quantised network built from a blob's exact parameters.
//!
//! Two quantised forms. The QDQ form states the kernels' integer requantisation exactly (integer
//! sums in an f32 Conv, then `Cast` to f64, `Mul` by the u16 multipliers, `Add 2^(s-1)`,
//! `Mul 2^-s`, `Floor`, `QuantizeLinear` with scale 1; proof in `shared/src/QUANT.md`), so tract
//! computes the same int8 values. The QLinearConv form (`shared/TRACT_NOTES.md`) states the same
//! model with f32 scales for runtimes with integer conv kernels: every conv a `QLinearConv`, the
//! fire concat on int8, bypass adds as `DequantizeLinear -> Add -> QuantizeLinear`, pools as
//! depthwise `QLinearConv`s of ones; it agrees on top-1, not bit for bit. Every intermediate the
//! kernels expose is a graph output named `l{layer}_{squeeze|expand|bypass|out}` (NCHW int8).
//!
//! Outputs: `logits` (f32, `[N, classes]`, dequantised) and `logits_q` (int8 `[N, classes, 1,
//! 1]`). Compare logits, not probabilities: tract's quantised Softmax is broken.

use anyhow::Result;
use prost::Message;
use shared::format::{Bypass, ConvDesc, LayerDesc};
use shared::quant::{AddRequant, Multiplier};
use shared::{LayerInfo, Model, QuantParams};
use tract_onnx::pb::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TypeProto, ValueInfoProto,
};

use crate::compress::fold::{FloatBypass, FloatConv, FloatLayer, FloatNet};

const OPSET: i64 = 13;

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// A tensor's name, element type and NCHW dims (`None`: a symbolic batch).
pub fn value_info(
    name: &str,
    elem: pb::tensor_proto::DataType,
    dims: &[Option<i64>],
) -> ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(v) => Value::DimValue(*v),
                                None => Value::DimParam("N".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A graph under construction.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
    /// Write convs and pools in QDQ form (DequantizeLinear -> float op -> QuantizeLinear)
    /// instead of `QLinearConv`.
    qdq: bool,
}

impl GraphBuilder {
    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    fn initializer(
        &mut self,
        hint: &str,
        dims: &[i64],
        dt: pb::tensor_proto::DataType,
        raw: Vec<u8>,
    ) -> String {
        let name = self.fresh(hint);
        self.graph.initializer.push(TensorProto {
            name: name.clone(),
            dims: dims.to_vec(),
            data_type: dt as i32,
            raw_data: raw,
            ..Default::default()
        });
        name
    }

    fn tensor_f32(&mut self, hint: &str, dims: &[i64], v: &[f32]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.initializer(hint, dims, pb::tensor_proto::DataType::Float, raw)
    }

    fn tensor_f64(&mut self, hint: &str, dims: &[i64], v: &[f64]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.initializer(hint, dims, pb::tensor_proto::DataType::Double, raw)
    }

    /// `Cast` of `x` to `to`.
    fn cast(&mut self, x: &str, to: pb::tensor_proto::DataType) -> String {
        let out = self.fresh("cast");
        self.node("Cast", &[x], &out, vec![attr_int("to", to as i64)]);
        out
    }

    /// A binary op of `a` and the constant `b`.
    fn op_const(&mut self, op: &str, a: &str, b: &str) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.node(op, &[a, b], &out, vec![]);
        out
    }

    /// The integer requantisation `quant::requantize` of an integer-valued f64 tensor `prod`
    /// (the products already summed: `acc * m` or `da * a + db * b`), written into int8 `out`:
    /// `floor((prod + 2^(shift-1)) * 2^-shift)`, clamped to +-512 (a bound that keeps every
    /// result the final saturation gives), cast to f32 and `QuantizeLinear` with scale 1 and the
    /// output zero point. Every step is exact in f64 (`shared/src/QUANT.md`).
    fn floor_shift_into(&mut self, prod: &str, shift: u8, zero_point: i8, out: &str) {
        let half = self.tensor_f64("half", &[], &[(1u64 << (shift - 1)) as f64]);
        let inv = self.tensor_f64("inv_2s", &[], &[1.0 / (1u64 << shift) as f64]);
        let biased = self.op_const("Add", prod, &half);
        let scaled = self.op_const("Mul", &biased, &inv);
        let fl = self.fresh("floor");
        self.node("Floor", &[&scaled], &fl, vec![]);
        let lo = self.tensor_f64("lo", &[], &[-512.0]);
        let hi = self.tensor_f64("hi", &[], &[512.0]);
        let clipped = self.op_const("Max", &fl, &lo);
        let clipped = self.op_const("Min", &clipped, &hi);
        let y = self.cast(&clipped, pb::tensor_proto::DataType::Float);
        self.int_quant_into(&y, zero_point, out);
    }

    /// [`GraphBuilder::floor_shift_into`] of an integer-valued f32 accumulator `acc` times the
    /// u16 multipliers `m` (one, or one per channel of NCHW `acc`).
    fn int_requant_into(&mut self, acc: &str, m: &[u16], shift: u8, zero_point: i8, out: &str) {
        let acc_d = self.cast(acc, pb::tensor_proto::DataType::Double);
        let dims: Vec<i64> = if m.len() == 1 {
            vec![]
        } else {
            vec![1, m.len() as i64, 1, 1]
        };
        let mf: Vec<f64> = m.iter().map(|&x| x as f64).collect();
        let mt = self.tensor_f64("multiplier", &dims, &mf);
        let prod = self.op_const("Mul", &acc_d, &mt);
        self.floor_shift_into(&prod, shift, zero_point, out);
    }

    fn tensor_i8(&mut self, hint: &str, dims: &[i64], v: &[i8]) -> String {
        let raw = v.iter().map(|&x| x as u8).collect();
        self.initializer(hint, dims, pb::tensor_proto::DataType::Int8, raw)
    }

    fn tensor_i32(&mut self, hint: &str, dims: &[i64], v: &[i32]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.initializer(hint, dims, pb::tensor_proto::DataType::Int32, raw)
    }

    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) {
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: format!("{op}_{output}"),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
    }

    fn quant_scalars(&mut self, q: QuantParams) -> (String, String) {
        (
            self.tensor_f32("scale", &[], &[q.scale]),
            self.tensor_i8("zp", &[], &[q.zero_point]),
        )
    }

    /// `DequantizeLinear` of `x` with `q`.
    fn dequant(&mut self, x: &str, q: QuantParams) -> String {
        let (s, z) = self.quant_scalars(q);
        let out = self.fresh("dq");
        self.node("DequantizeLinear", &[x, &s, &z], &out, vec![]);
        out
    }

    /// `DequantizeLinear` of int8 `x` with scale 1: the integers `x - zero_point` as floats.
    fn int_dequant(&mut self, x: &str, zero_point: i8) -> String {
        let s = self.tensor_f32("one", &[], &[1.0]);
        let z = self.tensor_i8("zp", &[], &[zero_point]);
        let out = self.fresh("int_f");
        self.node("DequantizeLinear", &[x, &s, &z], &out, vec![]);
        out
    }

    /// `QuantizeLinear` with scale 1: round half to even, add `zero_point`, saturate.
    fn int_quant_into(&mut self, x: &str, zero_point: i8, out: &str) {
        let s = self.tensor_f32("one", &[], &[1.0]);
        let z = self.tensor_i8("zp", &[], &[zero_point]);
        self.node("QuantizeLinear", &[x, &s, &z], out, vec![]);
    }

    /// `QuantizeLinear` of `x` into `out` with `q`.
    fn quant_into(&mut self, x: &str, q: QuantParams, out: &str) {
        let (s, z) = self.quant_scalars(q);
        self.node("QuantizeLinear", &[x, &s, &z], out, vec![]);
    }

    /// Adds a graph output.
    fn output(&mut self, name: &str, elem: pb::tensor_proto::DataType, dims: &[Option<i64>]) {
        self.graph.output.push(value_info(name, elem, dims));
    }

    /// Wraps the graph into a model.
    fn finish(mut self, name: &str, input: ValueInfoProto) -> ModelProto {
        self.graph.name = name.into();
        self.graph.input.push(input);
        ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "sqz".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(self.graph),
            ..Default::default()
        }
    }
}

/// A conv's u16 multipliers.
fn multipliers(c: &ConvDesc<'_>) -> Vec<u16> {
    (0..c.out_channels as usize)
        .map(|i| c.multiplier_at(i))
        .collect()
}

/// A conv's biases in accumulator units (`b << bias_shift`).
fn biases(c: &ConvDesc<'_>) -> Vec<i32> {
    (0..c.out_channels as usize).map(|i| c.bias_at(i)).collect()
}

/// Weight scales for QLinearConv (the approximate form): each channel's multiplier
/// `m / 2^shift` is `w * in / out`, so `w = m / 2^shift * out / in`. tract then rounds its own
/// way, so this form agrees closely rather than bit for bit.
fn weight_scales(c: &ConvDesc<'_>, in_q: QuantParams) -> Vec<f32> {
    let ratio = f64::from(c.out_quant.scale) / f64::from(in_q.scale);
    multipliers(c)
        .into_iter()
        .map(|m| (m as f64 / (1u64 << c.shift) as f64 * ratio) as f32)
        .collect()
}

/// One QLinearConv from a blob conv; `x` is the int8 NCHW input.
fn qlinear_conv(
    g: &mut GraphBuilder,
    c: &ConvDesc<'_>,
    in_channels: usize,
    x: &str,
    in_q: QuantParams,
    out: &str,
) -> Result<()> {
    let (kh, kw) = (c.kernel[0] as usize, c.kernel[1] as usize);
    let cout = c.out_channels as usize;
    let mut ohwi = vec![0i8; cout * kh * kw * in_channels];
    c.decode_weights(in_channels, &mut ohwi)
        .map_err(|e| anyhow::anyhow!("weights: {e}"))?;
    let mut oihw = vec![0i8; ohwi.len()];
    for o in 0..cout {
        for y in 0..kh {
            for xk in 0..kw {
                for i in 0..in_channels {
                    oihw[((o * in_channels + i) * kh + y) * kw + xk] =
                        ohwi[((o * kh + y) * kw + xk) * in_channels + i];
                }
            }
        }
    }
    let w = g.tensor_i8(
        "w",
        &[cout as i64, in_channels as i64, kh as i64, kw as i64],
        &oihw,
    );
    let b = g.tensor_i32("bias", &[cout as i64], &biases(c));
    let attrs = vec![
        attr_ints("kernel_shape", &[kh as i64, kw as i64]),
        attr_ints("strides", &[c.stride[0] as i64, c.stride[1] as i64]),
        attr_ints(
            "pads",
            &[
                c.pad[0] as i64,
                c.pad[1] as i64,
                c.pad[2] as i64,
                c.pad[3] as i64,
            ],
        ),
    ];
    if g.qdq {
        // Integer-exact QDQ: DequantizeLinear with scale 1 turns x - zp, w and the bias into
        // integer-valued floats, so a float Conv sums them exactly (below 2^24); then the
        // integer requantisation in f64 (`floor_shift_into`), step for step the kernels'.
        let xf = g.int_dequant(x, in_q.zero_point);
        let wf = g.int_dequant(&w, 0);
        let bias_zp = g.tensor_i32("b_zp", &[], &[0]);
        let one = g.tensor_f32("one", &[], &[1.0]);
        let bf = g.fresh("b_f");
        g.node("DequantizeLinear", &[&b, &one, &bias_zp], &bf, vec![]);
        let mut acc = g.fresh("acc_f");
        g.node("Conv", &[&xf, &wf, &bf], &acc, attrs);
        if c.relu {
            // ReLU on the accumulator, then the requantisation: the same int8 as the kernels'
            // max(q, zp) (a negative accumulator gives y <= 0).
            let r = g.fresh("relu_f");
            g.node("Relu", &[&acc], &r, vec![]);
            acc = r;
        }
        g.int_requant_into(&acc, &multipliers(c), c.shift, c.out_quant.zero_point, out);
        return Ok(());
    }
    let (xs, xz) = g.quant_scalars(in_q);
    let ws = g.tensor_f32("w_scale", &[cout as i64], &weight_scales(c, in_q));
    let wz = g.tensor_i8("w_zp", &[cout as i64], &vec![0; cout]);
    let (ys, yz) = g.quant_scalars(c.out_quant);
    let relu_needed = c.relu && c.out_quant.zero_point != -128;
    let conv_out = if relu_needed {
        g.fresh("preact")
    } else {
        out.to_string()
    };
    g.node(
        "QLinearConv",
        &[x, &xs, &xz, &w, &ws, &wz, &ys, &yz, &b],
        &conv_out,
        attrs,
    );
    if relu_needed {
        // The kernels clamp at the zero point; in ONNX that is DQ -> Relu -> Q.
        let d = g.dequant(&conv_out, c.out_quant);
        let r = g.fresh("relu");
        g.node("Relu", &[&d], &r, vec![]);
        g.quant_into(&r, c.out_quant, out);
    }
    Ok(())
}

/// An average pool as tract must see it for exact parity: a depthwise `QLinearConv` of ones
/// with weight scale `1/(kh*kw)` (count_include_pad), so the sum is integer-exact.
#[allow(clippy::too_many_arguments)]
fn avg_pool_as_conv(
    g: &mut GraphBuilder,
    x: &str,
    in_q: QuantParams,
    out_q: QuantParams,
    mult: Multiplier,
    channels: u16,
    kernel: [i64; 2],
    stride: [i64; 2],
    pads: [i64; 4],
    out: &str,
) {
    let c = i64::from(channels);
    let [kh, kw] = kernel;
    let wt = g.tensor_i8("ones", &[c, 1, kh, kw], &vec![1; (c * kh * kw) as usize]);
    let attrs = vec![
        attr_ints("kernel_shape", &kernel),
        attr_ints("strides", &stride),
        attr_ints("pads", &pads),
        attr_int("group", c),
    ];
    if g.qdq {
        // Integer-exact QDQ as for convs: the window sum of x - zp, then the integer
        // requantisation with the pool's multiplier.
        let xf = g.int_dequant(x, in_q.zero_point);
        let wf = g.int_dequant(&wt, 0);
        let sum = g.fresh("sum_f");
        g.node("Conv", &[&xf, &wf], &sum, attrs);
        g.int_requant_into(&sum, &[mult.m], mult.shift, out_q.zero_point, out);
        return;
    }
    let (xs, xz) = g.quant_scalars(in_q);
    let ws = g.tensor_f32("w_scale", &[], &[1.0 / (kh * kw) as f32]);
    let wz = g.tensor_i8("w_zp", &[], &[0]);
    let (ys, yz) = g.quant_scalars(out_q);
    g.node(
        "QLinearConv",
        &[x, &xs, &xz, &wt, &ws, &wz, &ys, &yz],
        out,
        attrs,
    );
}

/// The bypass add of int8 `a` (the concat) and `b` into `out`: in the QDQ form the kernels'
/// integer arithmetic (`(a - za) * ma + (b - zb) * mb` in f64, then `floor_shift_into`); in the
/// QLinear form `DequantizeLinear -> Add -> QuantizeLinear` with the scales.
fn bypass_add(
    g: &mut GraphBuilder,
    (a, qa): (&str, QuantParams),
    (b, qb): (&str, QuantParams),
    add: &AddRequant,
    out_q: QuantParams,
    out: &str,
) {
    if g.qdq {
        let double = pb::tensor_proto::DataType::Double;
        let mut term = |x: &str, zp: i8, m: u16| {
            let xf = g.int_dequant(x, zp);
            let xd = g.cast(&xf, double);
            let mt = g.tensor_f64("add_m", &[], &[m as f64]);
            g.op_const("Mul", &xd, &mt)
        };
        let ta = term(a, qa.zero_point, add.a);
        let tb = term(b, qb.zero_point, add.b);
        let sum = g.op_const("Add", &ta, &tb);
        g.floor_shift_into(&sum, add.shift, out_q.zero_point, out);
        return;
    }
    let da = g.dequant(a, qa);
    let db = g.dequant(b, qb);
    let sum = g.fresh("sum");
    g.node("Add", &[&da, &db], &sum, vec![]);
    g.quant_into(&sum, out_q, out);
}

/// Adds one blob layer reading int8 NCHW `x`; returns the name of its output. Intermediates
/// get the `l{i}_*` names and are exposed as outputs when `expose` is set.
pub fn quant_layer(
    g: &mut GraphBuilder,
    info: &LayerInfo<'_>,
    x: &str,
    expose: bool,
) -> Result<String> {
    let i = info.index;
    let int8 = pb::tensor_proto::DataType::Int8;
    let dims = |c: u16, h: u16, w: u16| [None, Some(c as i64), Some(h as i64), Some(w as i64)];
    let od = info.output;
    let out = format!("l{i}_out");
    let cin = info.input.c as usize;
    match &info.desc {
        LayerDesc::Conv(c) => qlinear_conv(g, c, cin, x, info.in_quant, &out)?,
        LayerDesc::MaxPool(p) => g.node(
            "MaxPool",
            &[x],
            &out,
            vec![
                attr_ints("kernel_shape", &[p.kernel[0] as i64, p.kernel[1] as i64]),
                attr_ints("strides", &[p.stride[0] as i64, p.stride[1] as i64]),
                attr_ints(
                    "pads",
                    &[
                        p.pad[0] as i64,
                        p.pad[1] as i64,
                        p.pad[2] as i64,
                        p.pad[3] as i64,
                    ],
                ),
                attr_int("ceil_mode", p.ceil_mode as i64),
            ],
        ),
        LayerDesc::AvgPool(p) => {
            let pads = p.pad.map(i64::from);
            let stride = p.stride.map(i64::from);
            let kernel = p.kernel.map(i64::from);
            avg_pool_as_conv(
                g,
                x,
                info.in_quant,
                p.out_quant,
                p.multiplier,
                info.input.c,
                kernel,
                stride,
                pads,
                &out,
            );
        }
        LayerDesc::GlobalAvgPool(p) => {
            let kernel = [i64::from(info.input.h), i64::from(info.input.w)];
            avg_pool_as_conv(
                g,
                x,
                info.in_quant,
                p.out_quant,
                p.multiplier,
                info.input.c,
                kernel,
                [1, 1],
                [0; 4],
                &out,
            );
        }
        LayerDesc::Fire(f) => {
            let s_name = format!("l{i}_squeeze");
            qlinear_conv(g, &f.squeeze, cin, x, info.in_quant, &s_name)?;
            let sc = f.squeeze.out_channels as usize;
            let (e1, e3) = (g.fresh("e1"), g.fresh("e3"));
            qlinear_conv(g, &f.expand1, sc, &s_name, f.squeeze.out_quant, &e1)?;
            qlinear_conv(g, &f.expand3, sc, &s_name, f.squeeze.out_quant, &e3)?;
            if expose {
                g.output(&s_name, int8, &dims(f.squeeze.out_channels, od.h, od.w));
            }
            let cat_q = f.expand1.out_quant;
            match &f.bypass {
                Bypass::None => g.node("Concat", &[&e1, &e3], &out, vec![attr_int("axis", 1)]),
                Bypass::Simple { add, out_quant } | Bypass::Complex { add, out_quant, .. } => {
                    let cat = format!("l{i}_expand");
                    g.node("Concat", &[&e1, &e3], &cat, vec![attr_int("axis", 1)]);
                    if expose {
                        g.output(&cat, int8, &dims(od.c, od.h, od.w));
                    }
                    let (other, other_q) = match &f.bypass {
                        Bypass::Complex { conv, .. } => {
                            let b = format!("l{i}_bypass");
                            qlinear_conv(g, conv, cin, x, info.in_quant, &b)?;
                            if expose {
                                g.output(&b, int8, &dims(od.c, od.h, od.w));
                            }
                            (b, conv.out_quant)
                        }
                        _ => (x.to_string(), info.in_quant),
                    };
                    bypass_add(g, (&cat, cat_q), (&other, other_q), add, *out_quant, &out);
                }
            }
        }
    }
    if expose {
        g.output(&out, int8, &dims(od.c, od.h, od.w));
    }
    Ok(out)
}

/// The whole quantised network of a blob as ONNX (float input `[N, c, h, w]` in [0, 1]).
pub fn quant_model(model: &Model<'_>, expose_intermediates: bool) -> Result<ModelProto> {
    quant_model_as(model, expose_intermediates, QuantFormat::QLinear)
}

/// How the quantised ONNX writes its convs and pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantFormat {
    /// `QLinearConv` (operator-oriented).
    QLinear,
    /// `DequantizeLinear` -> `Conv` -> `QuantizeLinear` (QDQ, tensor-oriented).
    Qdq,
}

/// [`quant_model`] in either format.
pub fn quant_model_as(
    model: &Model<'_>,
    expose_intermediates: bool,
    format: QuantFormat,
) -> Result<ModelProto> {
    let mut g = GraphBuilder {
        qdq: format == QuantFormat::Qdq,
        ..Default::default()
    };
    let d = model.input_dims();
    let (s, z) = g.quant_scalars(model.input_quant());
    g.node("QuantizeLinear", &["input", &s, &z], "input_q", vec![]);
    let mut x = "input_q".to_string();
    let n = model.num_layers();
    for info in model.layers() {
        let last = info.index as usize + 1 == n;
        x = quant_layer(&mut g, &info, &x, expose_intermediates && !last)?;
    }
    let classes = model.num_classes() as i64;
    g.node("Identity", &[&x], "logits_q", vec![]);
    let f = g.dequant("logits_q", model.output_quant());
    g.node("Flatten", &[&f], "logits", vec![attr_int("axis", 1)]);
    g.output(
        "logits",
        pb::tensor_proto::DataType::Float,
        &[None, Some(classes)],
    );
    g.output(
        "logits_q",
        pb::tensor_proto::DataType::Int8,
        &[None, Some(classes), Some(1), Some(1)],
    );
    let input = value_info(
        "input",
        pb::tensor_proto::DataType::Float,
        &[None, Some(d.c as i64), Some(d.h as i64), Some(d.w as i64)],
    );
    Ok(g.finish("sqz_quantised", input))
}

/// A one-layer quantised model: int8 NCHW input `x` of the layer's input shape, int8 output
/// `l{i}_out` (and the fire intermediates), for per-layer parity.
pub fn single_layer_model(info: &LayerInfo<'_>) -> Result<ModelProto> {
    single_layer_model_as(info, QuantFormat::QLinear)
}

/// [`single_layer_model`] in either format.
pub fn single_layer_model_as(info: &LayerInfo<'_>, format: QuantFormat) -> Result<ModelProto> {
    let mut g = GraphBuilder {
        qdq: format == QuantFormat::Qdq,
        ..Default::default()
    };
    let d = info.input;
    let out = quant_layer(&mut g, info, "x", true)?;
    debug_assert_eq!(out, format!("l{}_out", info.index));
    let input = value_info(
        "x",
        pb::tensor_proto::DataType::Int8,
        &[None, Some(d.c as i64), Some(d.h as i64), Some(d.w as i64)],
    );
    Ok(g.finish("sqz_layer", input))
}

fn float_conv(g: &mut GraphBuilder, c: &FloatConv, x: &str, out: &str) {
    let w = g.tensor_f32(
        "w",
        &[c.cout as i64, c.cin as i64, c.k as i64, c.k as i64],
        &c.weight,
    );
    let b = g.tensor_f32("b", &[c.cout as i64], &c.bias);
    let p = c.pad as i64;
    let conv_out = if c.relu {
        g.fresh("conv")
    } else {
        out.to_string()
    };
    g.node(
        "Conv",
        &[x, &w, &b],
        &conv_out,
        vec![
            attr_ints("kernel_shape", &[c.k as i64, c.k as i64]),
            attr_ints("strides", &[c.stride as i64, c.stride as i64]),
            attr_ints("pads", &[p, p, p, p]),
        ],
    );
    if c.relu {
        g.node("Relu", &[&conv_out], out, vec![]);
    }
}

/// The float network (BatchNorm folded) as ONNX: input `[N, c, s, s]`, output `logits`.
pub fn float_model(net: &FloatNet) -> ModelProto {
    let mut g = GraphBuilder::default();
    let mut x = "input".to_string();
    let mut classes = 0;
    for l in &net.layers {
        let out = g.fresh("act");
        match l {
            FloatLayer::Conv(c) => {
                float_conv(&mut g, c, &x, &out);
                classes = c.cout;
            }
            FloatLayer::MaxPool(p) | FloatLayer::AvgPool(p) => {
                let (k, st) = (p.k as i64, p.stride as i64);
                let mut attrs = vec![
                    attr_ints("kernel_shape", &[k, k]),
                    attr_ints("strides", &[st, st]),
                ];
                if p.pad != [0; 4] {
                    attrs.push(attr_ints("pads", &p.pad.map(|v| v as i64)));
                }
                let op = if matches!(l, FloatLayer::MaxPool(_)) {
                    "MaxPool"
                } else {
                    attrs.push(attr_int("count_include_pad", 1));
                    "AveragePool"
                };
                if p.ceil_mode {
                    attrs.push(attr_int("ceil_mode", 1));
                }
                g.node(op, &[&x], &out, attrs)
            }
            FloatLayer::GlobalAvgPool => g.node("GlobalAveragePool", &[&x], &out, vec![]),
            FloatLayer::Fire {
                squeeze,
                expand1,
                expand3,
                bypass,
            } => {
                let s = g.fresh("squeeze");
                float_conv(&mut g, squeeze, &x, &s);
                let (e1, e3) = (g.fresh("e1"), g.fresh("e3"));
                float_conv(&mut g, expand1, &s, &e1);
                float_conv(&mut g, expand3, &s, &e3);
                match bypass {
                    FloatBypass::None => {
                        g.node("Concat", &[&e1, &e3], &out, vec![attr_int("axis", 1)])
                    }
                    _ => {
                        let cat = g.fresh("cat");
                        g.node("Concat", &[&e1, &e3], &cat, vec![attr_int("axis", 1)]);
                        let other = match bypass {
                            FloatBypass::Conv(c) => {
                                let b = g.fresh("bypass");
                                float_conv(&mut g, c, &x, &b);
                                b
                            }
                            _ => x.clone(),
                        };
                        g.node("Add", &[&cat, &other], &out, vec![]);
                    }
                }
            }
        }
        x = out;
    }
    g.node("Flatten", &[&x], "logits", vec![attr_int("axis", 1)]);
    g.output(
        "logits",
        pb::tensor_proto::DataType::Float,
        &[None, Some(classes as i64)],
    );
    let s = net.input_size as i64;
    let input = value_info(
        "input",
        pb::tensor_proto::DataType::Float,
        &[None, Some(net.in_channels as i64), Some(s), Some(s)],
    );
    g.finish("sqz_float", input)
}

/// Serialises a model.
pub fn to_bytes(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}
