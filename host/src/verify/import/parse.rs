//! The data-path walk: from the graph input to the logits, each tensor's reader turned into a
//! layer (a fire module, a conv, a pool, a global pool) until the head (`Flatten`, `Reshape`,
//! `Squeeze`, `Softmax`) that ends the network.

use anyhow::{Result, bail, ensure};

use super::fire::fire_at;
use super::graph::{Walk, read};
use super::lower::{INode, Kind, SUPPORTED};
use crate::compress::fold::{FloatLayer, FloatNet, PoolGeom};

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

/// Where the walk stands: the tensor reached, its size and channels, and the layers so far.
struct At {
    x: String,
    side: usize,
    ch: usize,
    layers: Vec<FloatLayer>,
    summary: Vec<String>,
}

/// Parses an ONNX model into a [`FloatNet`]. `input_size` overrides (or supplies, when
/// symbolic) the input's height and width.
pub fn parse(bytes: &[u8], input_size: Option<usize>) -> Result<Imported> {
    let g = read(bytes, input_size)?;
    let (walk, out_name) = (&g.walk, &g.output);
    let mut at = At {
        x: g.start.clone(),
        side: g.side,
        ch: g.channels,
        layers: Vec::new(),
        summary: Vec::new(),
    };
    let logits = loop {
        let x = &at.x;
        let cs = walk.cons(x);
        if cs.is_empty() {
            ensure!(
                x == out_name,
                "tensor '{x}' ends the data path but is not the graph output '{out_name}'"
            );
            break x.clone();
        }
        if cs.len() == 1 && matches!(walk.nodes[cs[0]].kind, Kind::Tail { .. }) {
            break head(walk, cs[0], &at, out_name)?;
        }
        if let Some(f) = fire_at(walk, &cs, x, at.side, at.ch)? {
            at.summary.push(f.summary);
            at.layers.push(f.layer);
            at.ch = f.channels;
            at.x = f.out;
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
        layer(walk, cs[0], &mut at)?;
    };
    let At {
        side,
        ch,
        layers,
        summary,
        ..
    } = at;
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
            in_channels: g.channels,
            input_size: g.side,
            layers,
        },
        input_name: g.input_name.clone(),
        nhwc: g.nhwc,
        logits,
        opset: g.opset,
        summary,
    })
}
/// The head from node `first` (the one reader of the tensor reached, a `Flatten`, `Reshape`,
/// `Squeeze` or `Softmax`) to the graph output. Returns the logits tensor: the input of the
/// first softmax, else the output.
fn head(walk: &Walk, first: usize, at: &At, out_name: &str) -> Result<String> {
    let (x, side, ch) = (&at.x, at.side, at.ch);
    let n = &walk.nodes[first];
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
    Ok(logits.unwrap_or(t))
}

/// The layer node `i` (the one reader of the tensor reached, outside a fire module) makes: a
/// conv, a pool or a global pool, appended to `at`; anything else on the data path is an error
/// naming the node.
fn layer(walk: &Walk, i: usize, at: &mut At) -> Result<()> {
    let n = &walk.nodes[i];
    let (mut side, mut ch) = (at.side, at.ch);
    match &n.kind {
        Kind::Conv { .. } => {
            let (conv, out, names) = walk.conv_chain(i, side, ch)?;
            side = conv.out_size(side);
            ch = conv.cout;
            at.summary.push(format!(
                "conv {0}x{0}/{1} pad {2}{3} ({side}x{side}x{ch}) <- {names}",
                conv.k,
                conv.stride,
                conv.pad,
                if conv.relu { " + relu" } else { "" }
            ));
            at.layers.push(FloatLayer::Conv(conv));
            at.x = out;
        }
        Kind::Pool { .. } => side = pool_layer(n, side, ch, at)?,
        Kind::Global => {
            side = 1;
            at.summary
                .push(format!("global avgpool (1x1x{ch}) <- {}", n.name));
            at.layers.push(FloatLayer::GlobalAvgPool);
            at.x = n.output.clone();
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
    at.side = side;
    at.ch = ch;
    Ok(())
}

/// The pool node `n` on a `side` x `side` x `ch` map: a max pool, an average pool, or a global
/// one when the window covers the map; appended to `at`. Returns the output side.
fn pool_layer(n: &INode, side: usize, ch: usize, at: &mut At) -> Result<usize> {
    let Kind::Pool {
        avg,
        k,
        stride,
        pads,
        ceil,
        count_include_pad,
    } = &n.kind
    else {
        unreachable!("pool_layer on a pool")
    };
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
    at.summary.push(format!(
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
    at.layers.push(layer);
    at.x = n.output.clone();
    Ok(so)
}
