//! A SqueezeNet v1.1-shaped network for 28x28x1 inputs with random dense int8 weights (for
//! whole-network instruction counts and arena sizes; not a trained model).
extern crate std;
use std::vec;
use std::vec::Vec;

use crate::encode::owned::OwnedConv;
use crate::format::{
    Bypass, Dims, FireDesc, GlobalAvgPoolDesc, LayerDesc, MaxPoolDesc, ModelDesc, QuantParams,
};
use crate::quant::{multiplier, pool_multiplier};
use crate::testkit::example::{Enc, INPUT_QUANT, Rng, conv};

/// Fire configurations `(squeeze, expand1, expand3)` of v1.1, with max pools after the 2nd
/// and 4th fire.
pub const FIRES: [(usize, usize, usize); 8] = [
    (16, 64, 64),
    (16, 64, 64),
    (32, 128, 128),
    (32, 128, 128),
    (48, 192, 192),
    (48, 192, 192),
    (64, 256, 256),
    (64, 256, 256),
];

/// Encodes the network with `enc` weights (dense, or any compressed encoding).
pub fn blob(seed: u64, num_classes: usize, enc: Enc) -> Vec<u8> {
    blob_with_stem(seed, num_classes, enc, 2, 0)
}

/// [`blob`] with a 3x3 stem of the given stride and padding (`1, 1`: the shipped model's
/// 28x28 stem).
pub fn blob_with_stem(seed: u64, num_classes: usize, enc: Enc, stride: u8, pad: u8) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let mut convs: Vec<OwnedConv> = Vec::new();
    let stem = conv(
        &mut r,
        1,
        64,
        3,
        stride,
        pad,
        true,
        enc,
        INPUT_QUANT.scale,
        false,
    );
    let mut s = stem.out_quant.scale;
    let mut cin = 64;
    convs.push(stem);
    for &(sq, e1, e3) in FIRES.iter() {
        let q = conv(&mut r, cin, sq, 1, 1, 0, true, enc, s, false);
        let qs = q.out_quant.scale;
        let a = conv(&mut r, sq, e1, 1, 1, 0, true, enc, qs, false);
        let oq = a.out_quant;
        let b = conv(&mut r, sq, e3, 3, 1, 1, true, enc, qs, false);
        let b = crate::testkit::example::retarget_pub(b, oq, qs);
        convs.extend([q, a, b]);
        s = oq.scale;
        cin = e1 + e3;
    }
    let cls = conv(&mut r, cin, num_classes, 1, 1, 0, true, enc, s, false);
    let cs = cls.out_quant.scale;
    convs.push(cls);
    let pool = LayerDesc::MaxPool(MaxPoolDesc {
        kernel: [3, 3],
        stride: [2, 2],
        pad: [0; 4],
        ceil_mode: true,
    });
    let mut layers = vec![LayerDesc::Conv(convs[0].desc()), pool];
    for f in 0..FIRES.len() {
        layers.push(LayerDesc::Fire(FireDesc {
            squeeze: convs[1 + 3 * f].desc(),
            expand1: convs[2 + 3 * f].desc(),
            expand3: convs[3 + 3 * f].desc(),
            bypass: Bypass::None,
        }));
        if f == 1 || f == 3 {
            layers.push(pool);
        }
    }
    layers.push(LayerDesc::Conv(convs[convs.len() - 1].desc()));
    let gq = QuantParams {
        scale: 0.05,
        zero_point: -100,
    };
    // Output of the last pool (28 -> 13 -> 6 -> 3 -> 1 for the 3x3/2 stem): pools of 3/2
    // in ceil mode after the stem and after fires 3 and 5.
    let pooled = |n: usize| (n.saturating_sub(3)).div_ceil(2) + 1;
    let stem_out = (28 + 2 * pad as usize - 3) / stride as usize + 1;
    let side = pooled(pooled(pooled(stem_out))) as u32;
    layers.push(LayerDesc::GlobalAvgPool(GlobalAvgPoolDesc {
        multiplier: multiplier(pool_multiplier(cs, side * side, gq.scale)).expect("scales"),
        out_quant: gq,
    }));
    let d = ModelDesc {
        model_id: seed,
        input: Dims { h: 28, w: 28, c: 1 },
        input_quant: INPUT_QUANT,
        num_classes: num_classes as u16,
        layers: &layers,
    };
    crate::format::encode(&d).expect("squeezenet encodes")
}
