//! Graph reading: an ONNX model decoded into the nodes of its data path (constants folded into
//! their users, `Identity` and `Dropout` seen through), who consumes each tensor, and the one
//! image input with its layout and size.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail, ensure};
use prost::Message;
use tract_onnx::pb::{self, GraphProto, ModelProto, NodeProto, ValueInfoProto};

use super::lower::{Const, INode, Kind, lower, tensor_values};

/// The nodes of the data path and the consumers of every tensor.
pub(super) struct Walk {
    pub(super) nodes: Vec<INode>,
    pub(super) consumers: HashMap<String, Vec<usize>>,
}

impl Walk {
    /// The nodes that read tensor `t`.
    pub(super) fn cons(&self, t: &str) -> Vec<usize> {
        self.consumers.get(t).cloned().unwrap_or_default()
    }

    /// Node `i` is a conv.
    pub(super) fn is_conv(&self, i: usize) -> bool {
        matches!(self.nodes[i].kind, Kind::Conv { .. })
    }
}

/// An ONNX model as the importer walks it.
pub(super) struct Graph {
    pub(super) walk: Walk,
    /// Default-domain opset.
    pub(super) opset: i64,
    /// The graph input's name.
    pub(super) input_name: String,
    /// The input is NHWC (a leading `Transpose` makes it NCHW).
    pub(super) nhwc: bool,
    /// The tensor the data path starts at (after that `Transpose`, if any).
    pub(super) start: String,
    /// Input channels.
    pub(super) channels: usize,
    /// Input height and width.
    pub(super) side: usize,
    /// The graph output, aliases resolved.
    pub(super) output: String,
}

/// `s` with `Identity` / `Dropout` aliases followed to the tensor they pass through.
fn resolve(alias: &HashMap<String, String>, s: &str) -> String {
    let mut s = s.to_string();
    while let Some(t) = alias.get(&s) {
        s = t.clone();
    }
    s
}

/// Reads `bytes` (an ONNX model); `input_size` overrides (or supplies, when symbolic) the
/// input's height and width.
pub(super) fn read(bytes: &[u8], input_size: Option<usize>) -> Result<Graph> {
    let model = ModelProto::decode(bytes).context("not an ONNX model (protobuf decode failed)")?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version);
    let graph = model.graph.context("the ONNX model has no graph")?;
    let (nodes, alias) = read_nodes(&graph, opset)?;
    let walk = Walk {
        consumers: consumers(&nodes),
        nodes,
    };
    let (input, dims) = image_input(&graph)?;
    let mut start = input.name.clone();
    let first = walk.cons(&start);
    let nhwc = first.len() == 1
        && matches!(&walk.nodes[first[0]].kind, Kind::Transpose { perm } if perm == &[0, 3, 1, 2]);
    if nhwc {
        start = walk.nodes[first[0]].output.clone();
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
    let output = resolve(
        &alias,
        &graph
            .output
            .first()
            .context("the graph has no output")?
            .name,
    );
    Ok(Graph {
        walk,
        opset,
        input_name: input.name.clone(),
        nhwc,
        start,
        channels: c,
        side,
        output,
    })
}

/// Every node of `graph` lowered, in order, except constants (kept as values) and
/// `Identity` / `Dropout` (kept as aliases, returned).
fn read_nodes(graph: &GraphProto, opset: i64) -> Result<(Vec<INode>, HashMap<String, String>)> {
    let mut consts: HashMap<String, Const> = HashMap::new();
    for t in &graph.initializer {
        consts.insert(t.name.clone(), tensor_values(t)?);
    }
    let mut alias: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::new();
    for (idx, n) in graph.node.iter().enumerate() {
        let name = if n.name.is_empty() {
            format!("#{idx}")
        } else {
            n.name.clone()
        };
        let out = n.output.first().cloned().unwrap_or_default();
        match n.op_type.as_str() {
            "Constant" if n.domain.is_empty() => {
                consts.insert(out, constant(n, &name)?);
                continue;
            }
            "Identity" | "Dropout" if n.domain.is_empty() => {
                let src = resolve(&alias, n.input.first().map_or("", |s| s.as_str()));
                if let Some(c) = consts.get(&src).cloned() {
                    consts.insert(out.clone(), c);
                }
                alias.insert(out, src);
                continue;
            }
            _ => {}
        }
        let resolve = |s: &str| resolve(&alias, s);
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
    Ok((nodes, alias))
}

/// The value of a `Constant` node (`name` for messages).
fn constant(n: &NodeProto, name: &str) -> Result<Const> {
    let a = n
        .attribute
        .first()
        .with_context(|| format!("node '{name}' (Constant): no value attribute"))?;
    Ok(match a.name.as_str() {
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
    })
}

/// Which nodes read each tensor (a node reading a tensor twice counted once; shape arithmetic
/// left out).
fn consumers(nodes: &[INode]) -> HashMap<String, Vec<usize>> {
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
    consumers
}

/// The graph's one image input (initializers listed as inputs left out): a 4-D float tensor.
/// Returns it and its dimensions (`None`: symbolic).
fn image_input(graph: &GraphProto) -> Result<(&ValueInfoProto, Vec<Option<usize>>)> {
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
    Ok((input, dims))
}
