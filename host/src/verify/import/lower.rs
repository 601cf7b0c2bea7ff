//! Lowering: each ONNX node read into the few op kinds the importer knows ([`Kind`]), its
//! constants decoded and its attributes checked (square kernels and strides, padding, no
//! dilation); anything else on the data path becomes [`Kind::Other`].

use std::collections::HashMap;

use anyhow::{Context, Result, bail, ensure};
use tract_onnx::pb::{self, AttributeProto, NodeProto, TensorProto};

#[derive(Debug, Clone)]
pub(super) struct Const {
    pub(super) dims: Vec<i64>,
    pub(super) v: Vec<f64>,
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

pub(super) fn tensor_values(t: &TensorProto) -> Result<Const> {
    use pb::tensor_proto::DataType as D;
    if super::external::is_external(t) {
        bail!(
            "tensor '{}' is stored outside the .onnx file (external data): read the model with \
             `read_model`, which loads it from the model's folder",
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
pub(super) enum Pads {
    Explicit([usize; 4]),
    Same { upper: bool },
}

impl Pads {
    pub(super) fn resolve(self, side: usize, k: usize, stride: usize) -> [usize; 4] {
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
pub(super) enum Kind {
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
pub(super) struct INode {
    pub(super) name: String,
    pub(super) op: String,
    pub(super) inputs: Vec<String>,
    pub(super) output: String,
    pub(super) kind: Kind,
}

impl INode {
    pub(super) fn label(&self) -> String {
        format!("node '{}' ({})", self.name, self.op)
    }
}

pub(super) const SUPPORTED: &str = "Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, \
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
pub(super) fn lower(
    n: &NodeProto,
    consts: &HashMap<String, Const>,
    resolve: &dyn Fn(&str) -> String,
    opset: i64,
) -> Result<Kind> {
    let label = || format!("node '{}' ({})", n.name, n.op_type);
    let node = Node { n, consts, resolve };
    let cst = |i: usize, what: &str| node.cst(i, what);
    let is_const = |i: usize| node.is_const(i);
    if !(n.domain.is_empty() || n.domain == "ai.onnx") {
        return Ok(Kind::Other);
    }
    Ok(match n.op_type.as_str() {
        "Conv" => lower_conv(&node)?,
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
        "MaxPool" | "AveragePool" => lower_pool(n)?,
        "GlobalAveragePool" => Kind::Global,
        "ReduceMean" => lower_reduce_mean(&node, opset)?,
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

/// A node with the graph's constants at hand.
struct Node<'a> {
    n: &'a NodeProto,
    consts: &'a HashMap<String, Const>,
    resolve: &'a dyn Fn(&str) -> String,
}

impl Node<'_> {
    fn label(&self) -> String {
        format!("node '{}' ({})", self.n.name, self.n.op_type)
    }

    /// Input `i` (`what` in messages), which must be a constant.
    fn cst(&self, i: usize, what: &str) -> Result<Const> {
        let n = self.n;
        let name = n
            .input
            .get(i)
            .filter(|s| !s.is_empty())
            .with_context(|| format!("{}: missing {what} input", self.label()))?;
        self.consts
            .get(&(self.resolve)(name))
            .cloned()
            .with_context(|| {
                format!(
                    "{}: {what} '{name}' must be a constant (an initializer or Constant node)",
                    self.label()
                )
            })
    }

    /// Input `i` exists and is a constant.
    fn is_const(&self, i: usize) -> bool {
        self.n
            .input
            .get(i)
            .is_some_and(|s| self.consts.contains_key(&(self.resolve)(s)))
    }
}

/// A `Conv`: group 1, no dilation, square kernel, constant weights and bias.
fn lower_conv(node: &Node<'_>) -> Result<Kind> {
    let n = node.n;
    let label = || node.label();
    let cst = |i: usize, what: &str| node.cst(i, what);
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
    Ok(Kind::Conv {
        stride: spatial2(n, "strides", "stride", 1)?,
        pads: pads_of(n)?,
        w,
        b,
    })
}

/// A `MaxPool` or `AveragePool`: square window and stride, no dilation, no indices output.
fn lower_pool(n: &NodeProto) -> Result<Kind> {
    let label = || format!("node '{}' ({})", n.name, n.op_type);
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
    Ok(Kind::Pool {
        avg,
        k,
        stride: spatial2(n, "strides", "stride", 1)?,
        pads: pads_of(n)?,
        ceil: attr_int(n, "ceil_mode", 0) != 0,
        count_include_pad: attr_int(n, "count_include_pad", 0) != 0,
    })
}

/// A `ReduceMean`, which must be over H and W (a global average pool).
fn lower_reduce_mean(node: &Node<'_>, opset: i64) -> Result<Kind> {
    let n = node.n;
    let label = || node.label();
    let cst = |i: usize, what: &str| node.cst(i, what);
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
    Ok(Kind::Global)
}
