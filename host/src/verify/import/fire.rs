//! Fire matching: a conv with the BatchNorm, constant affine and ReLU after it folded in, and
//! the fire module that starts at a squeeze conv (expand 1x1 and 3x3 joined by a `Concat`),
//! with its simple or complex bypass when the fire's input branches.

use anyhow::{Result, bail, ensure};

use super::graph::Walk;
use super::lower::Kind;
use crate::compress::fold::{FloatBypass, FloatConv, FloatLayer};

/// A fire module read from the graph: the layer, its summary line, the tensor it ends at and
/// its output channels.
pub(super) struct Fire {
    pub(super) layer: FloatLayer,
    pub(super) summary: String,
    pub(super) out: String,
    pub(super) channels: usize,
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
    /// The conv at node `i` with the BatchNorm / constant affine / ReLU right after it folded
    /// in; returns the conv, the tensor it ends at and the node names used.
    pub(super) fn conv_chain(
        &self,
        i: usize,
        side: usize,
        cin: usize,
    ) -> Result<(FloatConv, String, String)> {
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

/// The fire module the tensor `x` (`side` x `side` x `ch`, read by the nodes `cs`) feeds, with
/// its bypass, if it feeds one.
pub(super) fn fire_at(
    walk: &Walk,
    cs: &[usize],
    x: &str,
    side: usize,
    ch: usize,
) -> Result<Option<Fire>> {
    let mut fire = None;
    if cs.len() <= 2 {
        for &i in cs.iter().filter(|&&i| walk.is_conv(i)) {
            if let Some(f) = walk.match_fire(i, side, ch)? {
                fire = Some(f);
                break;
            }
        }
    }
    let Some(f) = fire else {
        return Ok(None);
    };
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
        if *other == *add && operand.as_deref() == Some(x) {
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
                    bc.k == 1 && bc.stride == 1 && bc.pad == 0 && !bc.relu && bc.cout == cat_c,
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
    let summary = format!(
        "fire {}->{}+{}{kind} ({side}x{side}x{cat_c}) <- {}",
        f.squeeze.cout,
        f.expand1.cout,
        f.expand3.cout,
        names.join(", ")
    );
    Ok(Some(Fire {
        layer: FloatLayer::Fire {
            squeeze: f.squeeze,
            expand1: f.expand1,
            expand3: f.expand3,
            bypass,
        },
        summary,
        out,
        channels: cat_c,
    }))
}
