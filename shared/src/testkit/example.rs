//! A small deterministic example network exercising every layer kind and every weight encoding
//! (for tests, fuzz seeds and firmware smoke tests): 16x16x1 input, 10 classes.
extern crate std;
use std::vec;
use std::vec::Vec;

use crate::encode::owned::{OwnedConv, OwnedWeights, SparseSource};
use crate::format::{
    AvgPoolDesc, Bypass, Dims, FireDesc, GlobalAvgPoolDesc, LayerDesc, MaxPoolDesc, ModelDesc,
    QuantParams, encode,
};
use crate::quant::{add_multipliers, multiplier, pool_multiplier};
pub use crate::testkit::rng::Rng;

/// Which encoding a generated conv uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    /// Dense.
    Dense,
    /// Codebook 4-bit.
    Codebook,
    /// Sparse raw values, 3-bit gaps.
    SparseRaw,
    /// Sparse codebook 4-bit, 2-bit gaps.
    SparseCodebook,
    /// Huffman sparse over raw values.
    HuffSparseRaw,
    /// Huffman sparse over codebook.
    HuffSparseCodebook,
    /// Huffman codebook.
    HuffCodebook,
}

/// Random conv with the given encoding, 55 % of its weights zero.
#[allow(clippy::too_many_arguments)]
pub fn conv(
    rng: &mut Rng,
    cin: usize,
    cout: usize,
    kernel: u8,
    stride: u8,
    pad: u8,
    relu: bool,
    enc: Enc,
    in_scale: f32,
    uniform_scales: bool,
) -> OwnedConv {
    conv_with_zeros(
        rng,
        cin,
        cout,
        kernel,
        stride,
        pad,
        relu,
        enc,
        in_scale,
        uniform_scales,
        55,
    )
}

/// [`conv`] with about `zero_percent` % of the weights zero.
#[allow(clippy::too_many_arguments)]
pub fn conv_with_zeros(
    rng: &mut Rng,
    cin: usize,
    cout: usize,
    kernel: u8,
    stride: u8,
    pad: u8,
    relu: bool,
    enc: Enc,
    in_scale: f32,
    uniform_scales: bool,
    zero_percent: u32,
) -> OwnedConv {
    let k = kernel as usize * kernel as usize * cin;
    let centroids: Vec<i8> = (0..16)
        .map(|i| if i == 0 { 0 } else { (i * 16 - 128) as i8 })
        .collect();
    let mut idx = Vec::with_capacity(cout * k);
    let mut dense = Vec::with_capacity(cout * k);
    for _ in 0..cout * k {
        let zero = rng.range(0, 99) < zero_percent as i32;
        let i = if zero { 0 } else { rng.range(1, 15) as u8 };
        idx.push(i);
        dense.push(if zero { 0 } else { rng.range(-127, 127) as i8 });
    }
    let cb_dense: Vec<i8> = idx.iter().map(|&i| centroids[i as usize]).collect();
    let cb = SparseSource::Codebook {
        centroids: &centroids,
        bits: 4,
        indices: &idx,
    };
    let weights = match enc {
        Enc::Dense => OwnedWeights::dense(&dense),
        Enc::Codebook => OwnedWeights::codebook(&centroids, 4, &idx).unwrap(),
        Enc::SparseRaw => OwnedWeights::sparse(SparseSource::Raw(&dense), cout, k, 3).unwrap(),
        Enc::SparseCodebook => OwnedWeights::sparse(cb, cout, k, 2).unwrap(),
        Enc::HuffSparseRaw => {
            OwnedWeights::huff_sparse(SparseSource::Raw(&dense), cout, k, 7).unwrap()
        }
        Enc::HuffSparseCodebook => OwnedWeights::huff_sparse(cb, cout, k, 5).unwrap(),
        Enc::HuffCodebook => OwnedWeights::huff_codebook(&centroids, &idx, cout, k).unwrap(),
    };
    let _ = cb_dense;
    let s0 = rng.f32(0.002, 0.02);
    let w_scales: Vec<f32> = (0..cout)
        .map(|_| {
            if uniform_scales {
                s0
            } else {
                rng.f32(0.002, 0.02)
            }
        })
        .collect();
    let bias: Vec<i32> = (0..cout).map(|_| rng.range(-3000, 3000)).collect();
    let out_quant = QuantParams {
        scale: rng.f32(0.02, 0.08),
        zero_point: if relu { -128 } else { rng.range(-20, 20) as i8 },
    };
    let p = pad;
    OwnedConv::new(
        [kernel; 2],
        [stride; 2],
        [p; 4],
        relu,
        weights,
        &bias,
        &w_scales,
        in_scale,
        out_quant,
    )
    .expect("the example's multipliers lie below 0.5")
}

/// The owned parts of the example network.
#[derive(Debug)]
pub struct Example {
    /// Convs in order of use.
    pub convs: Vec<OwnedConv>,
    /// Extra quant params (fire bypass outputs, pools).
    pub quants: Vec<QuantParams>,
}

/// Input quantisation of the example.
pub const INPUT_QUANT: QuantParams = QuantParams {
    scale: 1.0 / 255.0,
    zero_point: -128,
};
/// Input dims of the example.
pub const INPUT: Dims = Dims { h: 16, w: 16, c: 1 };

/// Builds the owned parts.
pub fn build(seed: u64) -> Example {
    use Enc::*;
    let mut r = Rng(seed | 1);
    let mut convs = Vec::new();
    let mut quants = Vec::new();
    let mut s = INPUT_QUANT.scale;
    let push = |c: OwnedConv, s: &mut f32, convs: &mut Vec<OwnedConv>| {
        *s = c.out_quant.scale;
        convs.push(c);
    };
    push(
        conv(&mut r, 1, 8, 3, 1, 1, true, Dense, s, false),
        &mut s,
        &mut convs,
    ); // 0 stem
    // fire A (no bypass): 8 -> s4 -> 4 + 4
    let sq = conv(&mut r, 8, 4, 1, 1, 0, true, Codebook, s, false);
    let ss = sq.out_quant.scale;
    convs.push(sq);
    let e1 = conv(&mut r, 4, 4, 1, 1, 0, true, SparseCodebook, ss, false);
    let mut e3 = conv(&mut r, 4, 4, 3, 1, 1, true, Dense, ss, false);
    e3 = retarget(e3, e1.out_quant, ss);
    s = e1.out_quant.scale;
    convs.push(e1);
    convs.push(e3);
    // fire B (simple bypass): 8 -> s4 -> 4 + 4, sum
    let in_b = s;
    let sq = conv(&mut r, 8, 4, 1, 1, 0, true, SparseRaw, s, false);
    let ss = sq.out_quant.scale;
    convs.push(sq);
    let e1 = conv(&mut r, 4, 4, 1, 1, 0, true, HuffSparseCodebook, ss, false);
    let e3 = retarget(
        conv(&mut r, 4, 4, 3, 1, 1, true, HuffSparseRaw, ss, false),
        e1.out_quant,
        ss,
    );
    convs.push(e1);
    convs.push(e3);
    let _ = in_b;
    let qb = QuantParams {
        scale: r.f32(0.03, 0.09),
        zero_point: r.range(-10, 10) as i8,
    };
    quants.push(qb);
    s = qb.scale;
    // fire C (complex bypass): 8 -> s4 -> 8 + 8, bypass 1x1 8 -> 16
    let sq = conv(&mut r, 8, 4, 1, 1, 0, true, HuffCodebook, s, false);
    let ss = sq.out_quant.scale;
    convs.push(sq);
    let e1 = conv(&mut r, 4, 8, 1, 1, 0, true, Dense, ss, true);
    let e3 = retarget(
        conv(&mut r, 4, 8, 3, 1, 1, true, Codebook, ss, false),
        e1.out_quant,
        ss,
    );
    convs.push(e1);
    convs.push(e3);
    let bc = conv(&mut r, 8, 16, 1, 1, 0, false, SparseRaw, s, false);
    convs.push(bc);
    let qc = QuantParams {
        scale: r.f32(0.03, 0.09),
        zero_point: r.range(-10, 10) as i8,
    };
    quants.push(qc);
    // avgpool 2x2/2
    let qa = QuantParams {
        scale: r.f32(0.03, 0.09),
        zero_point: r.range(-10, 10) as i8,
    };
    quants.push(qa);
    // classifier 1x1 16 -> 10 relu
    convs.push(conv(
        &mut r,
        16,
        10,
        1,
        1,
        0,
        true,
        HuffSparseRaw,
        qa.scale,
        false,
    ));
    // GAP
    let qg = QuantParams {
        scale: r.f32(0.01, 0.03),
        zero_point: r.range(-128, -100) as i8,
    };
    quants.push(qg);
    Example { convs, quants }
}

/// Re-derives an expand conv's multipliers for the fire's shared concat quantisation.
pub fn retarget_pub(c: OwnedConv, q: QuantParams, in_scale: f32) -> OwnedConv {
    retarget(c, q, in_scale)
}

fn retarget(mut c: OwnedConv, q: QuantParams, _in_scale: f32) -> OwnedConv {
    // The real multipliers scale with 1 / out_scale: m / 2^s * old / new.
    let ratio = c.out_quant.scale as f64 / q.scale as f64;
    let d = c.desc();
    let n = c.out_channels as usize;
    let mults: Vec<f32> = (0..n)
        .map(|i| (d.multiplier_at(i) as f64 / (1u64 << c.shift) as f64 * ratio) as f32)
        .collect();
    let bias: Vec<i32> = (0..n).map(|i| d.bias_at(i)).collect();
    let w = core::mem::replace(&mut c.weights, OwnedWeights::Dense(Vec::new()));
    OwnedConv::from_multipliers(c.kernel, c.stride, c.pad, c.relu, w, &bias, &mults, q)
        .expect("the example's multipliers lie below 0.5")
}

/// The layer list borrowing `e`.
pub fn layers(e: &Example) -> Vec<LayerDesc<'_>> {
    let c = |i: usize| e.convs[i].desc();
    let qa = e.quants[2];
    let qg = e.quants[3];
    // Scales along the chain for the pool multipliers.
    let fire_c_out = e.quants[1];
    vec![
        LayerDesc::Conv(c(0)),
        LayerDesc::MaxPool(MaxPoolDesc {
            kernel: [3, 3],
            stride: [2, 2],
            pad: [0; 4],
            ceil_mode: true,
        }),
        LayerDesc::Fire(FireDesc {
            squeeze: c(1),
            expand1: c(2),
            expand3: c(3),
            bypass: Bypass::None,
        }),
        LayerDesc::Fire(FireDesc {
            squeeze: c(4),
            expand1: c(5),
            expand3: c(6),
            bypass: Bypass::Simple {
                add: add_multipliers(
                    e.convs[5].out_quant.scale,
                    e.convs[2].out_quant.scale,
                    e.quants[0].scale,
                )
                .expect("example scales"),
                out_quant: e.quants[0],
            },
        }),
        LayerDesc::Fire(FireDesc {
            squeeze: c(7),
            expand1: c(8),
            expand3: c(9),
            bypass: Bypass::Complex {
                conv: c(10),
                add: add_multipliers(
                    e.convs[8].out_quant.scale,
                    e.convs[10].out_quant.scale,
                    fire_c_out.scale,
                )
                .expect("example scales"),
                out_quant: fire_c_out,
            },
        }),
        LayerDesc::AvgPool(AvgPoolDesc {
            kernel: [2, 2],
            stride: [2, 2],
            pad: [0; 4],
            multiplier: multiplier(pool_multiplier(fire_c_out.scale, 4, qa.scale)).expect("scales"),
            out_quant: qa,
        }),
        LayerDesc::Conv(c(11)),
        LayerDesc::GlobalAvgPool(GlobalAvgPoolDesc {
            multiplier: multiplier(pool_multiplier(e.convs[11].out_quant.scale, 16, qg.scale))
                .expect("scales"),
            out_quant: qg,
        }),
    ]
}

/// Encodes the example into a blob.
pub fn blob(seed: u64) -> Vec<u8> {
    let e = build(seed);
    let l = layers(&e);
    let d = ModelDesc {
        model_id: seed,
        input: INPUT,
        input_quant: INPUT_QUANT,
        num_classes: 10,
        layers: &l,
    };
    encode(&d).expect("example encodes")
}

/// The seven encodings in [`ConvSpec::enc`](crate::testkit::suite::ConvSpec::enc) order.
pub const ENCS: [Enc; 7] = [
    Enc::Dense,
    Enc::Codebook,
    Enc::SparseRaw,
    Enc::SparseCodebook,
    Enc::HuffSparseRaw,
    Enc::HuffSparseCodebook,
    Enc::HuffCodebook,
];

/// The weights and quantisation of a suite case (input scale 0.03), from its seed.
pub fn spec_conv(s: &crate::testkit::suite::ConvSpec) -> OwnedConv {
    let mut rng = Rng(s.seed | 1);
    conv_with_zeros(
        &mut rng,
        s.cin as usize,
        s.cout as usize,
        s.k,
        s.stride,
        s.pad,
        s.relu,
        ENCS[s.enc as usize % 7],
        0.03,
        s.uniform,
        s.zero_pct,
    )
}
