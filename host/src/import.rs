//! `sqz import`: a SqueezeNet-family ONNX model exported by PyTorch (torchvision-style
//! `squeezenet1_0` / `squeezenet1_1`, opsets 11 to 18), burn or tf2onnx, turned into a
//! [`FloatNet`], calibrated on the user's images, quantised into a blob and checked against
//! tract like `sqz verify` does, plus a float check of the import itself (tract on the
//! original ONNX vs our [`FloatNet`] forward pass).
//!
//! What is understood, on the data path from the graph input to the graph output:
//!
//! * `Conv` (square kernel and stride, group 1, no dilation, symmetric padding after `auto_pad`
//!   is resolved), with `BatchNormalization`, `Add`/`Mul` of a per-channel constant and `Relu`
//!   right after it folded in;
//! * `MaxPool` (padding, `ceil_mode`), `AveragePool` (floor, or ceil when it changes nothing;
//!   padding only with `count_include_pad`), `GlobalAveragePool`, `ReduceMean` over H and W;
//!   an average pool covering the whole map becomes a global one;
//! * fire modules: squeeze 1x1 conv + ReLU feeding a 1x1 and a 3x3 (pad 1) conv, each + ReLU,
//!   `Concat` on channels with the 1x1 first, optionally `Add`ed to the fire's input (simple
//!   bypass) or to a 1x1 conv of it without ReLU (complex bypass);
//! * `Dropout` and `Identity` anywhere (inference: pass-through);
//! * after the map is 1x1: `Flatten`, `Reshape`, `Squeeze`, `Softmax`, `LogSoftmax` (logits are
//!   taken before the softmax);
//! * a leading `Transpose` NHWC -> NCHW on the graph input (tf2onnx).
//!
//! Anything else on the data path is one error naming the node and its op. Shape arithmetic
//! that only feeds a `Reshape`'s shape (`Shape`, `Gather`, `Unsqueeze`, ...) is ignored.
//!
//! Inputs are pixels scaled to [0, 1] (the blob's input quantisation, [`INPUT_QUANT`]): the
//! model must take such inputs. No mean/std normalisation is applied.
//!
//! [`INPUT_QUANT`]: crate::quantize::INPUT_QUANT

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use prost::Message;
use tract_onnx::pb::{self, AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use tract_onnx::prelude::*;

use crate::fold::{FloatBypass, FloatConv, FloatLayer, FloatNet, PoolGeom, forward_traced};
use crate::images::Images;
use crate::quantize::net_input;
use crate::verify::{FloatCheck, FloatParity, VerifyReport};

/// What the importer made of an ONNX model.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The network, BatchNorm folded.
    pub net: FloatNet,
    /// The graph input's name.
    pub input_name: String,
    /// The input is NHWC (a leading `Transpose` makes it NCHW).
    pub nhwc: bool,
    /// The tensor holding the logits (before any softmax).
    pub logits: String,
    /// Default-domain opset.
    pub opset: i64,
    /// Which ONNX nodes became which layer, one line per layer.
    pub summary: Vec<String>,
}

#[derive(Debug, Clone)]
struct Const {
    dims: Vec<i64>,
    v: Vec<f64>,
}

fn f16_to_f32(h: u16) -> f32 {
    let e = i32::from((h >> 10) & 0x1f);
    let m = f32::from(h & 0x3ff);
    let mag = match e {
        0 => m * 2f32.powi(-24),
        31 if m == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + m / 1024.0) * 2f32.powi(e - 15),
    };
    if h >> 15 == 1 { -mag } else { mag }
}

fn tensor_values(t: &TensorProto) -> Result<Const> {
    use pb::tensor_proto::DataType as D;
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
        || !t.external_data.is_empty()
    {
        bail!(
            "tensor '{}' is stored outside the .onnx file (external data); export with the \
             weights inside the file",
            t.name
        );
    }
    let raw = &t.raw_data;
    let le = |n: usize| raw.chunks_exact(n);
    let v: Vec<f64> = match D::try_from(t.data_type).ok() {
        Some(D::Float) if !raw.is_empty() => le(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Some(D::Float) => t.float_data.iter().map(|&x| f64::from(x)).collect(),
        Some(D::Double) if !raw.is_empty() => le(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        Some(D::Double) => t.double_data.clone(),
        Some(D::Float16) if !raw.is_empty() => le(2)
            .map(|c| f64::from(f16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
            .collect(),
        Some(D::Float16) => t
            .int32_data
            .iter()
            .map(|&x| f64::from(f16_to_f32(x as u16)))
            .collect(),
        Some(D::Int64) if !raw.is_empty() => le(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
            .collect(),
        Some(D::Int64) => t.int64_data.iter().map(|&x| x as f64).collect(),
        Some(D::Int32) if !raw.is_empty() => le(4)
            .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Some(D::Int32) => t.int32_data.iter().map(|&x| f64::from(x)).collect(),
        _ => bail!(
            "tensor '{}': element type {} is not supported (float, double, float16, int32, int64)",
            t.name,
            t.data_type
        ),
    };
    let n: i64 = t.dims.iter().product();
    ensure!(
        v.len() as i64 == n,
        "tensor '{}': {} values for shape {:?}",
        t.name,
        v.len(),
        t.dims
    );
    Ok(Const {
        dims: t.dims.clone(),
        v,
    })
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_int(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_str(n: &NodeProto, name: &str) -> String {
    attr(n, name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
        .unwrap_or_default()
}

/// Padding as written: explicit `[t, l, b, r]` or `auto_pad` SAME (upper or lower).
#[derive(Debug, Clone, Copy)]
enum Pads {
    Explicit([usize; 4]),
    Same { upper: bool },
}

impl Pads {
    fn resolve(self, side: usize, k: usize, stride: usize) -> [usize; 4] {
        match self {
            Pads::Explicit(p) => p,
            Pads::Same { upper } => {
                let out = side.div_ceil(stride);
                let total = ((out.max(1) - 1) * stride + k).saturating_sub(side);
                let (small, big) = (total / 2, total - total / 2);
                if upper {
                    [small, small, big, big]
                } else {
                    [big, big, small, small]
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Conv {
        w: Const,
        b: Option<Vec<f64>>,
        stride: usize,
        pads: Pads,
    },
    Bn {
        scale: Vec<f64>,
        bias: Vec<f64>,
        mean: Vec<f64>,
        var: Vec<f64>,
        eps: f64,
    },
    /// `Add` (or `Mul`) of a constant.
    Affine {
        mul: bool,
        c: Const,
    },
    Relu,
    Pool {
        avg: bool,
        k: usize,
        stride: usize,
        pads: Pads,
        ceil: bool,
        count_include_pad: bool,
    },
    Global,
    Concat {
        axis: i64,
    },
    Add,
    Transpose {
        perm: Vec<i64>,
    },
    Tail {
        softmax: bool,
    },
    Shape,
    Other,
}

#[derive(Debug, Clone)]
struct INode {
    name: String,
    op: String,
    inputs: Vec<String>,
    output: String,
    kind: Kind,
}

impl INode {
    fn label(&self) -> String {
        format!("node '{}' ({})", self.name, self.op)
    }
}

const SUPPORTED: &str = "Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, \
    ReduceMean (H, W), Concat, Add, Mul/Add of a constant after a Conv, Dropout, Identity, and \
    at the end Flatten, Reshape, Squeeze, Softmax, LogSoftmax";

fn spatial2(n: &NodeProto, name: &str, what: &str, default: usize) -> Result<usize> {
    let label = || format!("node '{}' ({})", n.name, n.op_type);
    match attr_ints(n, name) {
        None => Ok(default),
        Some(v) => {
            ensure!(
                v.len() == 2 && v[0] == v[1] && v[0] > 0,
                "{}: {what} {v:?}: only square 2-D {what}s are supported",
                label()
            );
            Ok(v[0] as usize)
        }
    }
}

fn pads_of(n: &NodeProto) -> Result<Pads> {
    let label = || format!("node '{}' ({})", n.name, n.op_type);
    match attr_str(n, "auto_pad").as_str() {
        "" | "NOTSET" => match attr_ints(n, "pads") {
            None => Ok(Pads::Explicit([0; 4])),
            Some(p) => {
                ensure!(
                    p.len() == 4 && p.iter().all(|&v| v >= 0),
                    "{}: pads {p:?}: expected 4 non-negative values for a 2-D op",
                    label()
                );
                Ok(Pads::Explicit([
                    p[0] as usize,
                    p[1] as usize,
                    p[2] as usize,
                    p[3] as usize,
                ]))
            }
        },
        "VALID" => Ok(Pads::Explicit([0; 4])),
        "SAME_UPPER" => Ok(Pads::Same { upper: true }),
        "SAME_LOWER" => Ok(Pads::Same { upper: false }),
        other => bail!("{}: auto_pad '{other}' is not understood", label()),
    }
}

fn no_dilation(n: &NodeProto) -> Result<()> {
    if let Some(d) = attr_ints(n, "dilations") {
        ensure!(
            d.iter().all(|&v| v == 1),
            "node '{}' ({}): dilations {d:?} are not supported",
            n.name,
            n.op_type
        );
    }
    Ok(())
}

/// One ONNX node as the walk sees it.
fn lower(
    n: &NodeProto,
    consts: &HashMap<String, Const>,
    resolve: &dyn Fn(&str) -> String,
    opset: i64,
) -> Result<Kind> {
    let label = || format!("node '{}' ({})", n.name, n.op_type);
    let cst = |i: usize, what: &str| -> Result<Const> {
        let name = n
            .input
            .get(i)
            .filter(|s| !s.is_empty())
            .with_context(|| format!("{}: missing {what} input", label()))?;
        consts.get(&resolve(name)).cloned().with_context(|| {
            format!(
                "{}: {what} '{name}' must be a constant (an initializer or Constant node)",
                label()
            )
        })
    };
    let is_const = |i: usize| {
        n.input
            .get(i)
            .is_some_and(|s| consts.contains_key(&resolve(s)))
    };
    if !(n.domain.is_empty() || n.domain == "ai.onnx") {
        return Ok(Kind::Other);
    }
    Ok(match n.op_type.as_str() {
        "Conv" => {
            ensure!(
                attr_int(n, "group", 1) == 1,
                "{}: grouped/depthwise convolution (group {}) is not supported",
                label(),
                attr_int(n, "group", 1)
            );
            no_dilation(n)?;
            let w = cst(1, "weight")?;
            ensure!(
                w.dims.len() == 4 && w.dims[2] == w.dims[3],
                "{}: weight shape {:?}: only square 2-D kernels are supported",
                label(),
                w.dims
            );
            if let Some(ks) = attr_ints(n, "kernel_shape") {
                ensure!(
                    ks == w.dims[2..],
                    "{}: kernel_shape {ks:?} disagrees with the weights {:?}",
                    label(),
                    w.dims
                );
            }
            let b = if n.input.get(2).is_some_and(|s| !s.is_empty()) {
                let b = cst(2, "bias")?;
                ensure!(
                    b.v.len() as i64 == w.dims[0],
                    "{}: {} biases for {} output channels",
                    label(),
                    b.v.len(),
                    w.dims[0]
                );
                Some(b.v)
            } else {
                None
            };
            Kind::Conv {
                stride: spatial2(n, "strides", "stride", 1)?,
                pads: pads_of(n)?,
                w,
                b,
            }
        }
        "BatchNormalization" => {
            ensure!(
                attr_int(n, "training_mode", 0) == 0,
                "{}: training_mode is set; export the model in eval mode",
                label()
            );
            let eps = attr(n, "epsilon").map_or(1e-5, |a| f64::from(a.f));
            Kind::Bn {
                scale: cst(1, "scale")?.v,
                bias: cst(2, "bias")?.v,
                mean: cst(3, "mean")?.v,
                var: cst(4, "var")?.v,
                eps,
            }
        }
        "Add" | "Mul" if is_const(0) || is_const(1) => {
            let ci = if is_const(1) { 1 } else { 0 };
            Kind::Affine {
                mul: n.op_type == "Mul",
                c: cst(ci, "operand")?,
            }
        }
        "Add" => Kind::Add,
        "Relu" => Kind::Relu,
        "MaxPool" | "AveragePool" => {
            no_dilation(n)?;
            let avg = n.op_type == "AveragePool";
            if !avg {
                ensure!(
                    n.output.len() < 2 || n.output[1].is_empty(),
                    "{}: the Indices output is not supported",
                    label()
                );
            }
            let k = spatial2(n, "kernel_shape", "kernel", 0)?;
            ensure!(k > 0, "{}: kernel_shape missing", label());
            Kind::Pool {
                avg,
                k,
                stride: spatial2(n, "strides", "stride", 1)?,
                pads: pads_of(n)?,
                ceil: attr_int(n, "ceil_mode", 0) != 0,
                count_include_pad: attr_int(n, "count_include_pad", 0) != 0,
            }
        }
        "GlobalAveragePool" => Kind::Global,
        "ReduceMean" => {
            let axes = if opset >= 18 && n.input.len() > 1 && !n.input[1].is_empty() {
                Some(cst(1, "axes")?.v.iter().map(|&v| v as i64).collect())
            } else {
                attr_ints(n, "axes")
            };
            let mut axes = axes.unwrap_or_default();
            for a in &mut axes {
                if *a < 0 {
                    *a += 4;
                }
            }
            axes.sort_unstable();
            ensure!(
                axes == [2, 3],
                "{}: only a mean over H and W (axes [2, 3]) is supported, found {axes:?}",
                label()
            );
            Kind::Global
        }
        "Concat" => Kind::Concat {
            axis: attr_int(n, "axis", 1),
        },
        "Transpose" => Kind::Transpose {
            perm: attr_ints(n, "perm").unwrap_or_default(),
        },
        "Flatten" | "Reshape" | "Squeeze" => Kind::Tail { softmax: false },
        "Softmax" | "LogSoftmax" => Kind::Tail { softmax: true },
        "Shape" | "Size" => Kind::Shape,
        _ => Kind::Other,
    })
}

/// The layers found so far and where the data path stands.
struct Walk {
    nodes: Vec<INode>,
    consumers: HashMap<String, Vec<usize>>,
}

struct FireMatch {
    squeeze: FloatConv,
    expand1: FloatConv,
    expand3: FloatConv,
    squeeze_node: usize,
    concat: usize,
    names: Vec<String>,
}

impl Walk {
    fn cons(&self, t: &str) -> Vec<usize> {
        self.consumers.get(t).cloned().unwrap_or_default()
    }

    fn is_conv(&self, i: usize) -> bool {
        matches!(self.nodes[i].kind, Kind::Conv { .. })
    }

    /// The conv at node `i` with the BatchNorm / constant affine / ReLU right after it folded
    /// in; returns the conv, the tensor it ends at and the node names used.
    fn conv_chain(&self, i: usize, side: usize, cin: usize) -> Result<(FloatConv, String, String)> {
        let n = &self.nodes[i];
        let Kind::Conv { w, b, stride, pads } = &n.kind else {
            unreachable!("conv_chain on a conv")
        };
        let (cout, wcin, k) = (w.dims[0] as usize, w.dims[1] as usize, w.dims[2] as usize);
        ensure!(
            wcin == cin,
            "{}: its weights take {wcin} input channels, the tensor it reads has {cin}",
            n.label()
        );
        let p = pads.resolve(side, k, *stride);
        ensure!(
            p.iter().all(|&v| v == p[0]),
            "{}: padding {p:?} (top, left, bottom, right) is asymmetric; the blob's convs pad \
             the same on every side",
            n.label()
        );
        ensure!(
            k <= 255 && *stride <= 255 && p[0] < k.max(1) && side + 2 * p[0] >= k,
            "{}: kernel {k}, stride {stride}, pad {} on a {side}x{side} input is not supported",
            n.label(),
            p[0]
        );
        let mut weight: Vec<f64> = w.v.clone();
        let mut bias = b.clone().unwrap_or_else(|| vec![0.0; cout]);
        let per = cin * k * k;
        let mut relu = false;
        let mut out = n.output.clone();
        let mut names = n.name.clone();
        loop {
            let c = self.cons(&out);
            if c.len() != 1 || relu {
                break;
            }
            let m = &self.nodes[c[0]];
            match &m.kind {
                Kind::Bn {
                    scale,
                    bias: beta,
                    mean,
                    var,
                    eps,
                } => {
                    ensure!(
                        [scale, beta, mean, var].iter().all(|v| v.len() == cout),
                        "{}: parameters are not {cout} long (the conv's channels)",
                        m.label()
                    );
                    for o in 0..cout {
                        let s = scale[o] / (var[o] + eps).sqrt();
                        for x in &mut weight[o * per..(o + 1) * per] {
                            *x *= s;
                        }
                        bias[o] = (bias[o] - mean[o]) * s + beta[o];
                    }
                }
                Kind::Affine { mul, c: cst } => {
                    let per_channel =
                        matches!(cst.dims.as_slice(), [] | [1] | [_, 1, 1] | [1, _, 1, 1])
                            && (cst.v.len() == 1 || cst.v.len() == cout);
                    if !per_channel {
                        break;
                    }
                    for o in 0..cout {
                        let v = cst.v[if cst.v.len() == 1 { 0 } else { o }];
                        if *mul {
                            for x in &mut weight[o * per..(o + 1) * per] {
                                *x *= v;
                            }
                            bias[o] *= v;
                        } else {
                            bias[o] += v;
                        }
                    }
                }
                Kind::Relu => relu = true,
                _ => break,
            }
            names.push_str(&format!(" + {}", m.name));
            out = m.output.clone();
        }
        Ok((
            FloatConv {
                cout,
                cin,
                k,
                stride: *stride,
                pad: p[0],
                weight: weight.iter().map(|&x| x as f32).collect(),
                bias: bias.iter().map(|&x| x as f32).collect(),
                relu,
            },
            out,
            names,
        ))
    }

    /// A fire module starting with the squeeze conv at node `sq`, if it is one.
    fn match_fire(&self, sq: usize, side: usize, ch: usize) -> Result<Option<FireMatch>> {
        let (squeeze, s_out, s_names) = self.conv_chain(sq, side, ch)?;
        if squeeze.k != 1 || squeeze.stride != 1 || squeeze.pad != 0 || !squeeze.relu {
            return Ok(None);
        }
        let c = self.cons(&s_out);
        if c.len() != 2 || !c.iter().all(|&i| self.is_conv(i)) {
            return Ok(None);
        }
        let (a, a_out, a_names) = self.conv_chain(c[0], side, squeeze.cout)?;
        let (b, b_out, b_names) = self.conv_chain(c[1], side, squeeze.cout)?;
        let (ca, cb) = (self.cons(&a_out), self.cons(&b_out));
        let concat = match (ca.as_slice(), cb.as_slice()) {
            ([x], [y]) if x == y && matches!(self.nodes[*x].kind, Kind::Concat { .. }) => *x,
            _ => bail!(
                "{}: the two convs after this squeeze ({} and {}) must feed one Concat, as a \
                 fire module's expand convs do",
                self.nodes[sq].label(),
                self.nodes[c[0]].name,
                self.nodes[c[1]].name
            ),
        };
        let cn = &self.nodes[concat];
        let Kind::Concat { axis } = cn.kind else {
            unreachable!()
        };
        ensure!(
            (axis == 1 || axis == -3) && cn.inputs.len() == 2,
            "{}: a fire's Concat must join the two expand convs on the channel axis (axis 1)",
            cn.label()
        );
        let ((e1, e1_out, e1n), (e3, e3n)) = if a.k == 1 {
            ((a, a_out, a_names), (b, b_names))
        } else {
            ((b, b_out, b_names), (a, a_names))
        };
        ensure!(
            e1.k == 1 && e1.stride == 1 && e1.pad == 0 && e1.relu,
            "{}: a fire's expand 1x1 must be a 1x1 conv, stride 1, no padding, with ReLU",
            cn.label()
        );
        ensure!(
            e3.k == 3 && e3.stride == 1 && e3.pad == 1 && e3.relu,
            "{}: a fire's expand 3x3 must be a 3x3 conv, stride 1, padding 1, with ReLU",
            cn.label()
        );
        ensure!(
            cn.inputs[0] == e1_out,
            "{}: the 3x3 expand comes first; the blob's fire concatenates expand 1x1 then 3x3",
            cn.label()
        );
        Ok(Some(FireMatch {
            squeeze,
            expand1: e1,
            expand3: e3,
            squeeze_node: sq,
            concat,
            names: vec![s_names, e1n, e3n, cn.name.clone()],
        }))
    }
}

/// Parses an ONNX model into a [`FloatNet`]. `input_size` overrides (or supplies, when
/// symbolic) the input's height and width.
pub fn parse(bytes: &[u8], input_size: Option<usize>) -> Result<Imported> {
    let model = ModelProto::decode(bytes).context("not an ONNX model (protobuf decode failed)")?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version);
    let graph = model.graph.context("the ONNX model has no graph")?;
    let mut consts: HashMap<String, Const> = HashMap::new();
    for t in &graph.initializer {
        consts.insert(t.name.clone(), tensor_values(t)?);
    }
    let mut alias: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::new();
    for (idx, n) in graph.node.iter().enumerate() {
        let resolve = |s: &str| {
            let mut s = s.to_string();
            while let Some(t) = alias.get(&s) {
                s = t.clone();
            }
            s
        };
        let name = if n.name.is_empty() {
            format!("#{idx}")
        } else {
            n.name.clone()
        };
        let out = n.output.first().cloned().unwrap_or_default();
        match n.op_type.as_str() {
            "Constant" if n.domain.is_empty() => {
                let a = n
                    .attribute
                    .first()
                    .with_context(|| format!("node '{name}' (Constant): no value attribute"))?;
                let c = match a.name.as_str() {
                    "value" => tensor_values(a.t.as_ref().context("Constant without tensor")?)?,
                    "value_float" => Const {
                        dims: vec![],
                        v: vec![f64::from(a.f)],
                    },
                    "value_floats" => Const {
                        dims: vec![a.floats.len() as i64],
                        v: a.floats.iter().map(|&x| f64::from(x)).collect(),
                    },
                    "value_int" => Const {
                        dims: vec![],
                        v: vec![a.i as f64],
                    },
                    "value_ints" => Const {
                        dims: vec![a.ints.len() as i64],
                        v: a.ints.iter().map(|&x| x as f64).collect(),
                    },
                    other => bail!("node '{name}' (Constant): attribute '{other}' not supported"),
                };
                consts.insert(out, c);
                continue;
            }
            "Identity" | "Dropout" if n.domain.is_empty() => {
                let src = resolve(n.input.first().map_or("", |s| s.as_str()));
                if let Some(c) = consts.get(&src).cloned() {
                    consts.insert(out.clone(), c);
                }
                alias.insert(out, src);
                continue;
            }
            _ => {}
        }
        let kind = lower(n, &consts, &resolve, opset)?;
        let data_inputs: Vec<String> = match &kind {
            Kind::Conv { .. }
            | Kind::Bn { .. }
            | Kind::Pool { .. }
            | Kind::Global
            | Kind::Tail { .. }
            | Kind::Transpose { .. }
            | Kind::Shape
            | Kind::Relu => n.input.iter().take(1).map(|s| resolve(s)).collect(),
            Kind::Affine { .. } => n
                .input
                .iter()
                .map(|s| resolve(s))
                .filter(|s| !consts.contains_key(s))
                .collect(),
            _ => n
                .input
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| resolve(s))
                .filter(|s| !consts.contains_key(s))
                .collect(),
        };
        nodes.push(INode {
            name,
            op: if n.domain.is_empty() {
                n.op_type.clone()
            } else {
                format!("{}::{}", n.domain, n.op_type)
            },
            inputs: data_inputs,
            output: out,
            kind,
        });
    }
    let resolve = |s: &str| {
        let mut s = s.to_string();
        while let Some(t) = alias.get(&s) {
            s = t.clone();
        }
        s
    };
    let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if matches!(n.kind, Kind::Shape) {
            continue;
        }
        let mut seen = HashSet::new();
        for t in &n.inputs {
            if seen.insert(t.clone()) {
                consumers.entry(t.clone()).or_default().push(i);
            }
        }
    }
    let walk = Walk { nodes, consumers };

    // The image input.
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect();
    ensure!(
        inputs.len() == 1,
        "the graph has {} inputs ({}); sqz import takes models with one image input",
        inputs.len(),
        inputs
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let input = inputs[0];
    let (elem, dims) = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => {
            use pb::tensor_shape_proto::dimension::Value;
            let dims: Vec<Option<usize>> = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(Value::DimValue(v)) if v > 0 => Some(v as usize),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            (t.elem_type, dims)
        }
        _ => bail!("input '{}' is not a tensor", input.name),
    };
    ensure!(
        elem == pb::tensor_proto::DataType::Float as i32,
        "input '{}' has element type {elem}; sqz import takes float inputs",
        input.name
    );
    ensure!(
        dims.len() == 4,
        "input '{}' has rank {}; an image input is 4-D (N, C, H, W or N, H, W, C)",
        input.name,
        dims.len()
    );
    let mut x = input.name.clone();
    let first = walk.cons(&x);
    let nhwc = first.len() == 1
        && matches!(&walk.nodes[first[0]].kind, Kind::Transpose { perm } if perm == &[0, 3, 1, 2]);
    if nhwc {
        x = walk.nodes[first[0]].output.clone();
    }
    let (c, h, w) = if nhwc {
        (dims[3], dims[1], dims[2])
    } else {
        (dims[1], dims[2], dims[3])
    };
    let c =
        c.with_context(|| format!("input '{}': the channel dimension is symbolic", input.name))?;
    let side = match (h, w, input_size) {
        (Some(h), Some(w), _) if h != w => bail!(
            "input '{}' is {h}x{w}; only square inputs are supported",
            input.name
        ),
        (Some(h), Some(_), Some(s)) if s != h => {
            bail!("--input-size {s} disagrees with the model's fixed input size {h}x{h}")
        }
        (Some(h), Some(_), _) => h,
        (_, _, Some(s)) => s,
        _ => bail!(
            "input '{}': height and width are symbolic; give --input-size",
            input.name
        ),
    };
    ensure!(
        side > 0 && side <= u16::MAX as usize && c <= u16::MAX as usize,
        "input {side}x{side}x{c} is too large for the blob"
    );

    let out_name = resolve(
        &graph
            .output
            .first()
            .context("the graph has no output")?
            .name,
    );
    let in_side = side;
    let (mut side, mut ch) = (side, c);
    let mut layers = Vec::new();
    let mut summary = Vec::new();
    let logits = loop {
        let cs = walk.cons(&x);
        if cs.is_empty() {
            ensure!(
                x == out_name,
                "tensor '{x}' ends the data path but is not the graph output '{out_name}'"
            );
            break x;
        }
        // The head: Flatten / Reshape / Squeeze / Softmax up to the output.
        if cs.len() == 1 && matches!(walk.nodes[cs[0]].kind, Kind::Tail { .. }) {
            let n = &walk.nodes[cs[0]];
            ensure!(
                side == 1,
                "{}: reached with a {side}x{side}x{ch} map; the blob's output is 1x1xclasses, \
                 so the network must end with a global average pool (or one covering the map)",
                n.label()
            );
            let mut logits = None;
            let mut t = x.clone();
            loop {
                let c = walk.cons(&t);
                if c.is_empty() {
                    ensure!(
                        t == out_name,
                        "tensor '{t}' ends the data path but is not the graph output '{out_name}'"
                    );
                    break;
                }
                let m = &walk.nodes[c[0]];
                match (c.len(), &m.kind) {
                    (1, Kind::Tail { softmax }) => {
                        if *softmax && logits.is_none() {
                            logits = Some(t.clone());
                        }
                        t = m.output.clone();
                    }
                    (1, Kind::Other) => bail!(
                        "{}: op {} is not supported by sqz import (supported: {SUPPORTED})",
                        m.label(),
                        m.op
                    ),
                    _ => bail!(
                        "{}: after the classifier only Flatten, Reshape, Squeeze and Softmax \
                         are supported",
                        m.label()
                    ),
                }
            }
            break logits.unwrap_or(t);
        }
        // A fire module (with its bypass when the input branches).
        let mut fire = None;
        if cs.len() <= 2 {
            for &i in cs.iter().filter(|&&i| walk.is_conv(i)) {
                if let Some(f) = walk.match_fire(i, side, ch)? {
                    fire = Some(f);
                    break;
                }
            }
        }
        if let Some(f) = fire {
            let cat_out = walk.nodes[f.concat].output.clone();
            let others: Vec<usize> = cs
                .iter()
                .copied()
                .filter(|&i| i != f.squeeze_node)
                .collect();
            let cat_c = f.expand1.cout + f.expand3.cout;
            let mut bypass = FloatBypass::None;
            let mut out = cat_out.clone();
            let mut names = f.names.clone();
            let cc = walk.cons(&cat_out);
            if let ([add], [other]) = (cc.as_slice(), others.as_slice())
                && matches!(walk.nodes[*add].kind, Kind::Add)
            {
                let an = &walk.nodes[*add];
                let operand = an.inputs.iter().find(|t| **t != cat_out).cloned();
                if *other == *add && operand.as_deref() == Some(x.as_str()) {
                    ensure!(
                        ch == cat_c,
                        "{}: a simple bypass adds the fire's {ch}-channel input to its \
                         {cat_c}-channel output",
                        an.label()
                    );
                    bypass = FloatBypass::Identity;
                } else if walk.is_conv(*other) {
                    let (bc, b_out, bn) = walk.conv_chain(*other, side, ch)?;
                    if operand.as_deref() == Some(b_out.as_str()) {
                        ensure!(
                            bc.k == 1
                                && bc.stride == 1
                                && bc.pad == 0
                                && !bc.relu
                                && bc.cout == cat_c,
                            "{}: a complex bypass must be a 1x1 conv (stride 1, no padding, no \
                             ReLU) with {cat_c} output channels",
                            walk.nodes[*other].label()
                        );
                        bypass = FloatBypass::Conv(bc);
                        names.push(bn);
                    }
                }
                if !matches!(bypass, FloatBypass::None) {
                    names.push(an.name.clone());
                    out = an.output.clone();
                }
            }
            if matches!(bypass, FloatBypass::None) && !others.is_empty() {
                bail!(
                    "tensor '{x}' feeds {} and {}: only a fire module's bypass (an Add of the \
                     fire's input, or of a 1x1 conv of it, to the concat) may branch",
                    walk.nodes[f.squeeze_node].label(),
                    walk.nodes[others[0]].label()
                );
            }
            let kind = match &bypass {
                FloatBypass::None => "",
                FloatBypass::Identity => ", simple bypass",
                FloatBypass::Conv(_) => ", complex bypass",
            };
            summary.push(format!(
                "fire {}->{}+{}{kind} ({side}x{side}x{cat_c}) <- {}",
                f.squeeze.cout,
                f.expand1.cout,
                f.expand3.cout,
                names.join(", ")
            ));
            layers.push(FloatLayer::Fire {
                squeeze: f.squeeze,
                expand1: f.expand1,
                expand3: f.expand3,
                bypass,
            });
            ch = cat_c;
            x = out;
            continue;
        }
        if cs.len() != 1 {
            bail!(
                "tensor '{x}' feeds {} nodes ({}); only a fire module's bypass may branch",
                cs.len(),
                cs.iter()
                    .map(|&i| walk.nodes[i].label())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let n = &walk.nodes[cs[0]];
        match &n.kind {
            Kind::Conv { .. } => {
                let (conv, out, names) = walk.conv_chain(cs[0], side, ch)?;
                side = conv.out_size(side);
                ch = conv.cout;
                summary.push(format!(
                    "conv {0}x{0}/{1} pad {2}{3} ({side}x{side}x{ch}) <- {names}",
                    conv.k,
                    conv.stride,
                    conv.pad,
                    if conv.relu { " + relu" } else { "" }
                ));
                layers.push(FloatLayer::Conv(conv));
                x = out;
            }
            Kind::Pool {
                avg,
                k,
                stride,
                pads,
                ceil,
                count_include_pad,
            } => {
                let pad = pads.resolve(side, *k, *stride);
                ensure!(
                    pad[0] + pad[2] == pad[1] + pad[3],
                    "{}: padding {pad:?} would make the output non-square",
                    n.label()
                );
                let mut g = PoolGeom {
                    k: *k,
                    stride: *stride,
                    pad,
                    ceil_mode: *ceil,
                };
                let fits = g.out_size(side).filter(|_| *k <= 255 && *stride <= 255);
                let Some(mut so) = fits else {
                    bail!(
                        "{}: a {k}x{k}/{stride} window with padding {pad:?} on a {side}x{side} \
                         map is not supported (padding must be smaller than the window)",
                        n.label()
                    );
                };
                if *avg {
                    ensure!(
                        pad == [0; 4] || *count_include_pad,
                        "{}: padded average pools must count the padding \
                         (count_include_pad = 1); the blob divides by k*k",
                        n.label()
                    );
                    if *ceil {
                        let floor = PoolGeom {
                            ceil_mode: false,
                            ..g
                        };
                        ensure!(
                            floor.out_size(side) == Some(so),
                            "{}: an average pool in ceil mode with a partial last window is not \
                             supported",
                            n.label()
                        );
                        g = floor;
                    }
                }
                let whole = *avg && pad == [0; 4] && *k == side;
                let layer = if whole {
                    so = 1;
                    FloatLayer::GlobalAvgPool
                } else if *avg {
                    FloatLayer::AvgPool(g)
                } else {
                    FloatLayer::MaxPool(g)
                };
                summary.push(format!(
                    "{} {k}x{k}/{stride} pad {pad:?}{} ({so}x{so}x{ch}) <- {}",
                    if whole {
                        "global avgpool (window covers the map)"
                    } else if *avg {
                        "avgpool"
                    } else {
                        "maxpool"
                    },
                    if g.ceil_mode { " ceil" } else { "" },
                    n.name
                ));
                layers.push(layer);
                side = so;
                x = n.output.clone();
            }
            Kind::Global => {
                side = 1;
                summary.push(format!("global avgpool (1x1x{ch}) <- {}", n.name));
                layers.push(FloatLayer::GlobalAvgPool);
                x = n.output.clone();
            }
            Kind::Bn { .. } => bail!(
                "{}: a BatchNormalization is only supported right after a Conv (it is folded \
                 into it)",
                n.label()
            ),
            Kind::Relu => bail!(
                "{}: a Relu is only supported right after a Conv (or its BatchNormalization); \
                 the blob fuses ReLU into convs (no ReLU after a pool or a bypass Add)",
                n.label()
            ),
            Kind::Affine { .. } => bail!(
                "{}: {} of a constant is only supported right after a Conv, per channel \
                 (shape [C, 1, 1] or [1, C, 1, 1]); input normalisation is not supported",
                n.label(),
                n.op
            ),
            Kind::Add | Kind::Concat { .. } => bail!(
                "{}: {} is only supported inside a fire module (expand concat, bypass add)",
                n.label(),
                n.op
            ),
            Kind::Transpose { perm } => bail!(
                "{}: Transpose (perm {perm:?}) is only supported as NHWC -> NCHW ([0, 3, 1, 2]) \
                 right on the graph input",
                n.label()
            ),
            Kind::Tail { .. } | Kind::Shape => unreachable!("handled above / not a consumer"),
            Kind::Other => bail!(
                "{}: op {} is not supported by sqz import (supported: {SUPPORTED})",
                n.label(),
                n.op
            ),
        }
    };
    ensure!(
        side == 1,
        "the network ends with a {side}x{side}x{ch} map; the blob's output is 1x1xclasses"
    );
    ensure!(
        layers.iter().any(|l| matches!(l, FloatLayer::Conv(_))),
        "the network has no conv outside fire modules (a classifier conv is required)"
    );
    let last_conv = layers.iter().rev().find_map(|l| match l {
        FloatLayer::Conv(c) => Some(c.cout),
        _ => None,
    });
    ensure!(
        last_conv == Some(ch),
        "the network's {ch} outputs do not come from a classifier conv (a conv followed only by \
         pools)"
    );
    Ok(Imported {
        net: FloatNet {
            in_channels: c,
            input_size: in_side,
            layers,
        },
        input_name: input.name.clone(),
        nhwc,
        logits,
        opset,
        summary,
    })
}

/// tract on the original ONNX (logits tensor made the graph output) vs our [`FloatNet`]
/// forward pass, on the first `count` images. Returns the comparison and the largest |logit|.
pub fn float_parity_onnx<I: Images + ?Sized>(
    bytes: &[u8],
    imp: &Imported,
    images: &I,
    count: usize,
) -> Result<(FloatParity, f32)> {
    let mut model = ModelProto::decode(bytes).context("not an ONNX model")?;
    let graph = model.graph.as_mut().context("no graph")?;
    graph.output = vec![ValueInfoProto {
        name: imp.logits.clone(),
        ..Default::default()
    }];
    let net = &imp.net;
    let (c, s) = (net.in_channels, net.input_size);
    let shape = if imp.nhwc {
        tvec![1, s, s, c]
    } else {
        tvec![1, c, s, s]
    };
    let fact = InferenceFact::dt_shape(f32::datum_type(), shape.clone());
    let plan = crate::verify::load_typed(&model.encode_to_vec(), fact)
        .context("tract could not run the original model")?;
    let n = count.min(images.count());
    let (mut max, mut scale) = (0f32, 0f32);
    for i in 0..n {
        let px = images.pixels(i);
        let v: Vec<f32> = if imp.nhwc {
            px.iter().map(|&p| f32::from(p) / 255.0).collect()
        } else {
            crate::verify::chw_unit(px, c)
        };
        let outs = plan.run(tvec!(Tensor::from_shape(&shape, &v)?.into()))?;
        let theirs: Vec<f32> = outs[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect();
        let ours = forward_traced(net, net_input(net, px), |_, _, _| {});
        ensure!(
            theirs.len() == ours.len(),
            "tract gives {} logits, the imported network {}",
            theirs.len(),
            ours.len()
        );
        for (a, b) in ours.iter().zip(&theirs) {
            max = max.max((a - b).abs());
            scale = scale.max(b.abs());
        }
    }
    Ok((
        FloatParity {
            images: n,
            max_abs_delta: max,
        },
        scale,
    ))
}

/// Settings of `sqz import`.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Input side when the model's is symbolic (or to confirm it).
    pub input_size: Option<usize>,
    /// Images used to calibrate activation ranges.
    pub calib_images: usize,
    /// Model id written into the blob header.
    pub model_id: u64,
    /// Images for the per-layer parity check.
    pub layer_images: usize,
    /// Images for the whole-network check.
    pub images: usize,
    /// Images for the float check of the import (tract on the original ONNX vs ours).
    pub float_images: usize,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            input_size: None,
            calib_images: 1000,
            model_id: 1,
            layer_images: 10,
            images: usize::MAX,
            float_images: 50,
        }
    }
}

/// The outcome of an import: nothing is written yet (see [`write_outputs`]).
#[derive(Debug)]
pub struct ImportResult {
    /// The parsed model.
    pub imported: Imported,
    /// The blob.
    pub blob: Vec<u8>,
    /// Parity with tract (per layer, whole network, float import check).
    pub report: VerifyReport,
}

/// Imports `onnx` (its bytes, `name` for messages) calibrated and checked on `images` (HWC
/// pixels of the model's size, scaled to [0, 1]).
pub fn import<I: Images + ?Sized>(
    onnx: &[u8],
    name: &str,
    images: &I,
    cfg: &ImportConfig,
) -> Result<ImportResult> {
    let imported = parse(onnx, cfg.input_size).with_context(|| format!("importing {name}"))?;
    let net = &imported.net;
    ensure!(images.count() > 0, "no calibration images");
    let len = net.in_channels * net.input_size * net.input_size;
    ensure!(
        images.pixels(0).len() == len,
        "images have {} pixels each, the model takes {}x{}x{} = {len}",
        images.pixels(0).len(),
        net.input_size,
        net.input_size,
        net.in_channels
    );
    eprintln!(
        "import: {} layers, {} parameters, input {}x{}x{}, {} classes",
        net.layers.len(),
        net.param_count(),
        net.input_size,
        net.input_size,
        net.in_channels,
        imported.logits_count()
    );
    let (float, scale) = float_parity_onnx(onnx, &imported, images, cfg.float_images)?;
    eprintln!(
        "calibrating on {} images...",
        cfg.calib_images.min(images.count())
    );
    let ranges = crate::quantize::calibrate(net, images, cfg.calib_images);
    let q = crate::quantize::quantize(net, &ranges, &crate::quantize::dense_plan)?;
    let blob = q.blob(cfg.model_id)?;
    let subset = |n: usize| Subset(images, n.min(images.count()));
    let mut report = crate::verify::check_blob(
        &blob,
        &format!("{name} (imported)"),
        &subset(cfg.layer_images),
        &subset(cfg.images),
        Some(FloatCheck {
            parity: float,
            what: format!(
                "tract on the original ONNX and the imported network (threshold {:.0e} x \
                 max(1, largest |logit| {scale:.3}))",
                crate::verify::tolerance::FLOAT_ABS
            ),
            threshold: crate::verify::tolerance::FLOAT_ABS * scale.max(1.0),
        }),
    )?;
    let mut head = format!(
        "# Import of {name}\n\nopset {}, input `{}` {} {}x{}x{}, logits `{}`; blob {} bytes.\n\n",
        imported.opset,
        imported.input_name,
        if imported.nhwc { "NHWC" } else { "NCHW" },
        net.input_size,
        net.input_size,
        net.in_channels,
        imported.logits,
        blob.len()
    );
    for (i, l) in imported.summary.iter().enumerate() {
        head.push_str(&format!("{i}. {l}\n"));
    }
    head.push('\n');
    report.markdown = head + &report.markdown;
    Ok(ImportResult {
        imported,
        blob,
        report,
    })
}

impl Imported {
    /// Number of classes (logits).
    pub fn logits_count(&self) -> usize {
        self.net.convs().last().map_or(0, |c| c.cout)
    }
}

/// The first `n` images of a set.
struct Subset<'a, I: ?Sized>(&'a I, usize);

impl<I: Images + ?Sized> Images for Subset<'_, I> {
    fn count(&self) -> usize {
        self.1
    }
    fn pixels(&self, i: usize) -> &[u8] {
        self.0.pixels(i)
    }
    fn label(&self, i: usize) -> Option<usize> {
        self.0.label(i)
    }
}

/// The report's path beside a blob: `NAME.report.md`.
pub fn report_path(blob: &Path) -> PathBuf {
    blob.with_extension("report.md")
}

/// Writes the blob and its report, each to a temporary file first, renamed into place only once
/// both are written.
pub fn write_outputs(out: &Path, r: &ImportResult) -> Result<Vec<PathBuf>> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
    }
    let report = report_path(out);
    let files = [
        (out.to_path_buf(), &r.blob[..]),
        (report, r.report.markdown.as_bytes()),
    ];
    let mut tmps = Vec::new();
    for (path, bytes) in &files {
        let mut name = path
            .file_name()
            .context("output has no file name")?
            .to_os_string();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        if let Err(e) = std::fs::write(&tmp, bytes) {
            for t in &tmps {
                let _ = std::fs::remove_file(t);
            }
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("while writing {}", tmp.display()));
        }
        tmps.push(tmp);
    }
    for (tmp, (path, _)) in tmps.iter().zip(&files) {
        std::fs::rename(tmp, path)
            .with_context(|| format!("while renaming into {}", path.display()))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}
