//! Host throughput of the portable kernels (criterion): the fire-module conv shapes and the
//! example network. Instruction counts on the Cortex-M4 live in `qemu/bench.sh`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shared::format::Dims;
use shared::kernels::{
    ConvParams, ConvQuant, PortableDot, PortableScalarDot, RefDot, conv_s8, conv_scratch_len,
};
use shared::testkit::example::{self, Enc, Rng};
use shared::weights::RowDecoder;
use std::hint::black_box;

const SHAPES: [(&str, u16, u16, u16, u8, u8); 5] = [
    ("stem_3x3_1_64_28", 28, 1, 64, 3, 1),
    ("squeeze_1x1_64_16_14", 14, 64, 16, 1, 0),
    ("expand_1x1_16_64_14", 14, 16, 64, 1, 0),
    ("expand_3x3_16_64_14", 14, 16, 64, 3, 1),
    ("expand_3x3_32_128_7", 7, 32, 128, 3, 1),
];

fn convs(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv");
    for (name, hw, cin, cout, k, pad) in SHAPES {
        for (enc_name, enc) in [
            ("dense", Enc::Dense),
            ("codebook4", Enc::Codebook),
            ("huff_sparse_cb", Enc::HuffSparseCodebook),
        ] {
            let mut rng = Rng(7);
            let conv = example::conv(
                &mut rng,
                cin as usize,
                cout as usize,
                k,
                1,
                pad,
                true,
                enc,
                0.03,
                false,
            );
            let d = conv.desc();
            let p = ConvParams {
                input: Dims {
                    h: hw,
                    w: hw,
                    c: cin,
                },
                output: Dims {
                    h: hw,
                    w: hw,
                    c: cout,
                },
                kernel: [k; 2],
                stride: [1; 2],
                pad: [pad; 4],
                out_channel_stride: cout as usize,
                out_channel_offset: 0,
            };
            let q = ConvQuant {
                in_zp: -128,
                bias: d.bias,
                bias_shift: d.bias_shift,
                multipliers: d.multipliers,
                shift: d.shift,
                out_zp: -128,
                relu: true,
            };
            let x: Vec<i8> = (0..p.input.len()).map(|_| rng.next_u32() as i8).collect();
            let dec = RowDecoder::new(d.weights, p.k()).unwrap();
            let mut out = vec![0i8; p.output.len()];
            let mut scratch = vec![0i8; conv_scratch_len(&p, dec.is_dense())];
            let macs = p.output.len() as u64 * p.k() as u64;
            g.throughput(Throughput::Elements(macs));
            g.bench_function(format!("{name}/{enc_name}/portable"), |b| {
                b.iter(|| {
                    conv_s8::<PortableDot>(&p, &q, black_box(&x), &dec, &mut out, &mut scratch)
                })
            });
            if enc == Enc::Dense {
                g.bench_function(format!("{name}/{enc_name}/portable_scalar"), |b| {
                    b.iter(|| {
                        conv_s8::<PortableScalarDot>(
                            &p,
                            &q,
                            black_box(&x),
                            &dec,
                            &mut out,
                            &mut scratch,
                        )
                    })
                });
                g.bench_function(format!("{name}/{enc_name}/reference_dot"), |b| {
                    b.iter(|| {
                        conv_s8::<RefDot>(&p, &q, black_box(&x), &dec, &mut out, &mut scratch)
                    })
                });
            }
        }
    }
    g.finish();
}

fn network(c: &mut Criterion) {
    let blob = example::blob(1);
    let m = shared::Model::from_bytes(&blob).unwrap();
    let input = vec![3i8; m.input_len()];
    let mut arena = vec![0u8; m.arena_len()];
    let mut logits = vec![0i8; m.num_classes()];
    c.bench_function("example_network/run", |b| {
        b.iter(|| shared::run(&m, black_box(&input), &mut arena, &mut logits))
    });
    c.bench_function("example_network/from_bytes", |b| {
        b.iter(|| shared::Model::from_bytes(black_box(&blob)).unwrap())
    });
}

criterion_group!(benches, convs, network);
criterion_main!(benches);
