//! Writes fuzz seeds: example blobs (whole for `from_bytes`, without the first 16 header bytes
//! for `from_bytes_crc_fixed`; the example network and small networks of sparse rows alone, as
//! the shipped firmware's build takes them) and request frames for `frames` (a mode byte, then a stream of a
//! hello, a classify of the mock's 16 pixels, one of the wrong length, the image in two parts
//! and its classify, and a broken frame).
use shared::format::{GlobalAvgPoolDesc, LayerDesc, MaxPoolDesc, ModelDesc, encode};
use shared::protocol::{Request, encode_frame};
use shared::quant::{QuantParams, multiplier, pool_multiplier};
use shared::testkit::example::{Enc, INPUT, INPUT_QUANT, Rng, conv_with_zeros};

/// A 16x16x1 network the shipped firmware's switches accept (sparse rows the zero-skipping
/// driver runs, a max pool over 8 channels, a global average pool): stem 3x3 conv, max pool,
/// 1x1 conv, global average pool, 80 % zeros.
fn sparse_rows_only(seed: u64, enc: Enc) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let stem = conv_with_zeros(
        &mut r,
        1,
        8,
        3,
        1,
        1,
        true,
        enc,
        INPUT_QUANT.scale,
        false,
        80,
    );
    let head = conv_with_zeros(
        &mut r,
        8,
        10,
        1,
        1,
        0,
        false,
        enc,
        stem.out_quant.scale,
        false,
        80,
    );
    let out = QuantParams {
        scale: head.out_quant.scale,
        zero_point: head.out_quant.zero_point,
    };
    let gap = multiplier(pool_multiplier(head.out_quant.scale, 64, out.scale)).expect("scales");
    let layers = [
        LayerDesc::Conv(stem.desc()),
        LayerDesc::MaxPool(MaxPoolDesc {
            kernel: [2, 2],
            stride: [2, 2],
            pad: [0; 4],
            ceil_mode: false,
        }),
        LayerDesc::Conv(head.desc()),
        LayerDesc::GlobalAvgPool(GlobalAvgPoolDesc {
            multiplier: gap,
            out_quant: out,
        }),
    ];
    let d = ModelDesc {
        model_id: seed,
        input: INPUT,
        input_quant: INPUT_QUANT,
        num_classes: 10,
        layers: &layers,
    };
    let blob = encode(&d).expect("the network encodes");
    let used = shared::Model::from_bytes(&blob)
        .expect("the network validates")
        .uses();
    assert!(!used.packed && !used.avg_pool && !used.bypass, "{used:?}");
    blob
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("corpus dir"));
    for seed in 1..=4u64 {
        let blob = shared::testkit::example::blob(seed);
        std::fs::write(dir.join("from_bytes").join(format!("example{seed}")), &blob).unwrap();
        std::fs::write(
            dir.join("from_bytes_crc_fixed")
                .join(format!("example{seed}")),
            &blob[16..],
        )
        .unwrap();
    }
    for (seed, enc) in [
        (5u64, Enc::SparseCodebook),
        (6, Enc::HuffSparseCodebook),
        (7, Enc::HuffSparseRaw),
    ] {
        let blob = sparse_rows_only(seed, enc);
        std::fs::write(dir.join("from_bytes").join(format!("sparse{seed}")), &blob).unwrap();
        std::fs::write(
            dir.join("from_bytes_crc_fixed")
                .join(format!("sparse{seed}")),
            &blob[16..],
        )
        .unwrap();
    }
    let pixels: Vec<u8> = (0..16).collect();
    let requests = [
        Request::Hello,
        Request::Classify {
            seq: 1,
            pixels: &pixels,
        },
        Request::Classify {
            seq: 2,
            pixels: &pixels[..5],
        },
        Request::Part {
            offset: 0,
            pixels: &pixels[..10],
        },
        Request::Part {
            offset: 10,
            pixels: &pixels[10..],
        },
        Request::Classify {
            seq: 3,
            pixels: &[],
        },
    ];
    let mut stream = Vec::new();
    for r in &requests {
        let (mut scratch, mut out) = ([0u8; 256], [0u8; 300]);
        let n = encode_frame(r, &mut scratch, &mut out).unwrap();
        stream.extend_from_slice(&out[..n]);
    }
    stream.extend_from_slice(&[3, 1, 2, 0]);
    for mode in 0..2u8 {
        let seed: Vec<u8> = [mode].into_iter().chain(stream.iter().copied()).collect();
        std::fs::write(dir.join("frames").join(format!("stream{mode}")), seed).unwrap();
    }
}
