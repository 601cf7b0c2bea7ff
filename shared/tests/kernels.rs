//! One test suite per op, run against every implementation (reference twin vs fast paths):
//! proptest over shapes/values plus named cases.

use proptest::prelude::*;
use shared::QuantParams;
use shared::encode::example::{Enc, Rng, conv_with_zeros as gen_conv};
use shared::format::Dims;
use shared::kernels::dot::{SparseBlock, sparse_entry};
use shared::kernels::*;
use shared::weights::RowDecoder;

#[derive(Debug, Clone, Copy)]
struct ConvCase {
    h: u16,
    w: u16,
    cin: u16,
    cout: u16,
    k: u8,
    stride: u8,
    pad: u8,
    relu: bool,
    enc: u8,
    uniform: bool,
    in_zp: i8,
    seed: u64,
    /// Share of zero weights, in percent.
    zero_pct: u32,
}

fn encs() -> [Enc; 7] {
    [
        Enc::Dense,
        Enc::Codebook,
        Enc::SparseRaw,
        Enc::SparseCodebook,
        Enc::HuffSparseRaw,
        Enc::HuffSparseCodebook,
        Enc::HuffCodebook,
    ]
}

/// Runs `conv_s8::<K>` and `conv_ref_s8` on one case, writing into a wider concat buffer at a
/// channel offset, and compares every byte (untouched channels included). Returns whether the
/// zero-skipping sparse path applied with the minimal scratch and with a long one.
fn check_conv<K: DotKernel>(c: ConvCase) -> [bool; 2] {
    let mut rng = Rng(c.seed | 1);
    let conv = gen_conv(
        &mut rng,
        c.cin as usize,
        c.cout as usize,
        c.k,
        c.stride,
        c.pad,
        c.relu,
        encs()[c.enc as usize % 7],
        0.03,
        c.uniform,
        c.zero_pct,
    );
    let d = conv.desc();
    let input = Dims {
        h: c.h,
        w: c.w,
        c: c.cin,
    };
    let oh = (c.h as usize + 2 * c.pad as usize - c.k as usize) / c.stride as usize + 1;
    let ow = (c.w as usize + 2 * c.pad as usize - c.k as usize) / c.stride as usize + 1;
    let output = Dims {
        h: oh as u16,
        w: ow as u16,
        c: c.cout,
    };
    let (stride, off) = (c.cout as usize + 3, 2usize);
    let p = ConvParams {
        input,
        output,
        kernel: [c.k; 2],
        stride: [c.stride; 2],
        pad: [c.pad; 4],
        out_channel_stride: stride,
        out_channel_offset: off,
    };
    let q = ConvQuant {
        in_zp: c.in_zp,
        bias: d.bias,
        multipliers: d.multipliers,
        uniform: d.multipliers.chunks(4).all(|x| x == &d.multipliers[..4]),
        out_zp: d.out_quant.zero_point,
        relu: c.relu,
    };
    let x: Vec<i8> = (0..input.len()).map(|_| rng.next_u32() as i8).collect();
    let k = p.k();
    let mut dense = vec![0i8; k * c.cout as usize];
    d.decode_weights(c.cin as usize, &mut dense).unwrap();
    let mut want = vec![7i8; oh * ow * stride];
    conv_ref_s8(&p, &q, &x, &dense, &mut want);
    let dec = RowDecoder::new(d.weights, k).unwrap();
    let mut got = vec![7i8; oh * ow * stride];
    let mut scratch = vec![0i8; conv_scratch_len(&p, dec.is_dense())];
    let zero_skip = zero_skip_applies(&p, &dec, scratch.len());
    conv_s8::<K>(&p, &q, &x, &dec, &mut got, &mut scratch);
    if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
        panic!(
            "{c:?}: first difference at {i}: reference {} vs {}",
            want[i], got[i]
        );
    }
    // A longer scratch (what `run` passes when the arena has room) lets the kernels keep every
    // pixel's packed activations: same result.
    let mut got = vec![7i8; oh * ow * stride];
    let mut scratch = vec![0i8; conv_scratch_len(&p, dec.is_dense()) + 4 * k * oh * ow + 64];
    let zero_skip_long = zero_skip_applies(&p, &dec, scratch.len());
    conv_s8::<K>(&p, &q, &x, &dec, &mut got, &mut scratch);
    if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
        panic!(
            "{c:?} (long scratch): first difference at {i}: reference {} vs {}",
            want[i], got[i]
        );
    }
    [zero_skip, zero_skip_long]
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        (1u16..9, 1u16..9, 1u16..20, 1u16..21),
        prop_oneof![
            Just((1u8, 1u8, 0u8)),
            Just((3, 1, 1)),
            Just((3, 2, 0)),
            Just((3, 2, 1)),
            (1u8..8, 1u8..4, 0u8..3)
        ],
        (
            any::<bool>(),
            0u8..7,
            any::<bool>(),
            any::<i8>(),
            any::<u64>(),
            prop_oneof![Just(55u32), 70u32..98],
        ),
    )
        .prop_filter("kernel fits", |((h, w, _, _), (k, _, p), _)| {
            *p < *k
                && (*h as usize + 2 * *p as usize) >= *k as usize
                && (*w as usize + 2 * *p as usize) >= *k as usize
        })
        .prop_map(
            |((h, w, cin, cout), (k, stride, pad), (relu, enc, uniform, in_zp, seed, zero_pct))| {
                ConvCase {
                    h,
                    w,
                    cin,
                    cout,
                    k,
                    stride,
                    pad,
                    relu,
                    enc,
                    uniform,
                    in_zp,
                    seed,
                    zero_pct,
                }
            },
        )
}

fn named_conv_cases() -> Vec<ConvCase> {
    let base = ConvCase {
        h: 5,
        w: 5,
        cin: 16,
        cout: 64,
        k: 1,
        stride: 1,
        pad: 0,
        relu: true,
        enc: 0,
        uniform: false,
        in_zp: -128,
        seed: 42,
        zero_pct: 55,
    };
    vec![
        base, // expand 1x1 16->64
        ConvCase {
            cin: 64,
            cout: 16,
            ..base
        }, // squeeze
        ConvCase {
            k: 3,
            pad: 1,
            ..base
        }, // expand 3x3
        ConvCase {
            h: 28,
            w: 28,
            cin: 1,
            cout: 64,
            k: 3,
            stride: 2,
            ..base
        }, // v1.1 stem
        ConvCase {
            h: 28,
            w: 28,
            cin: 1,
            cout: 8,
            k: 7,
            stride: 2,
            pad: 2,
            ..base
        }, // v1.0 stem
        ConvCase {
            h: 1,
            w: 1,
            cin: 3,
            cout: 1,
            ..base
        }, // odd pixel and channel
        ConvCase {
            h: 3,
            w: 3,
            cin: 5,
            cout: 17,
            k: 3,
            pad: 1,
            uniform: true,
            enc: 6,
            ..base
        },
    ]
}

macro_rules! conv_suite {
    ($name:ident, $k:ty) => {
        mod $name {
            use super::*;
            #[test]
            fn named() {
                for c in named_conv_cases() {
                    for enc in 0..7 {
                        check_conv::<$k>(ConvCase { enc, ..c });
                    }
                }
            }
            /// The fire shapes with sparse weights (45 % nonzero) take the zero-skipping path,
            /// with the minimal scratch, and equal the reference.
            #[test]
            fn zero_skip_named() {
                for c in named_conv_cases().into_iter().take(3) {
                    // SparseRaw, SparseCodebook, HuffSparseRaw, HuffSparseCodebook
                    for enc in 2..6 {
                        let c = ConvCase { enc, ..c };
                        assert!(check_conv::<$k>(c)[0], "{c:?}: zero-skip path not taken");
                    }
                }
            }
            /// On a 3x3 map (9 pixels, below `ZERO_SKIP_MIN_PIXELS`) sparse rows at 8 %
            /// density (a heavily pruned fire6-9) take the zero-skipping path when the scratch
            /// holds their entries, and equal the reference; at 45 % they do not.
            #[test]
            fn zero_skip_small_maps() {
                let small = ConvCase {
                    h: 3,
                    w: 3,
                    zero_pct: 92,
                    ..named_conv_cases()[0]
                };
                let shapes = [
                    ConvCase {
                        cin: 64,
                        cout: 32,
                        ..small
                    }, // squeeze 1x1
                    ConvCase {
                        cin: 16,
                        cout: 64,
                        ..small
                    }, // expand 1x1
                    ConvCase {
                        cin: 16,
                        cout: 64,
                        k: 3,
                        pad: 1,
                        ..small
                    }, // expand 3x3
                ];
                for c in shapes {
                    // SparseRaw (3-bit gaps), HuffSparseRaw, HuffSparseCodebook: few fillers.
                    for enc in [2, 4, 5] {
                        let c = ConvCase { enc, ..c };
                        assert!(check_conv::<$k>(c)[1], "{c:?}: zero-skip path not taken");
                        let dense = ConvCase { zero_pct: 55, ..c };
                        assert!(
                            !check_conv::<$k>(dense)[1],
                            "{dense:?}: zero-skip path taken"
                        );
                    }
                }
            }
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(200))]
                #[test]
                fn prop(c in conv_case()) {
                    let _ = check_conv::<$k>(c);
                }
            }
        }
    };
}

conv_suite!(conv_ref_dot, RefDot);
conv_suite!(conv_portable, PortableDot);
conv_suite!(conv_portable_scalar, PortableScalarDot);
conv_suite!(conv_best, BestDot);

fn rand_vec(rng: &mut Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.next_u32() as i8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn maxpool_matches_ref(h in 1u16..12, w in 1u16..12, c in 1u16..9, k in 1u8..4, s in 1u8..3, pad in 0u8..2, ceil in any::<bool>(), seed in any::<u64>()) {
        prop_assume!(pad < k && h as usize + 2 * pad as usize >= k as usize && w as usize + 2 * pad as usize >= k as usize);
        let ext = |n: u16| {
            let span = n as usize + 2 * pad as usize - k as usize;
            let mut o = if ceil { span.div_ceil(s as usize) } else { span / s as usize } + 1;
            if ceil && (o - 1) * s as usize >= n as usize + pad as usize { o -= 1; }
            o as u16
        };
        let p = PoolParams { input: Dims { h, w, c }, output: Dims { h: ext(h), w: ext(w), c }, kernel: [k; 2], stride: [s; 2], pad: [pad; 4] };
        let mut rng = Rng(seed | 1);
        let x = rand_vec(&mut rng, p.input.len());
        let mut a = vec![0i8; p.output.len()];
        let mut b = vec![1i8; p.output.len()];
        maxpool_s8_ref(&p, &x, &mut a);
        maxpool_s8(&p, &x, &mut b);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn avgpool_matches_ref(h in 2u16..12, w in 2u16..12, c in 1u16..9, k in 1u8..4, s in 1u8..3, pad in 0u8..2, zi in any::<i8>(), zo in any::<i8>(), m in 0.001f32..0.5, seed in any::<u64>()) {
        prop_assume!(pad < k && h as usize + 2 * pad as usize >= k as usize && w as usize + 2 * pad as usize >= k as usize);
        let ext = |n: u16| ((n as usize + 2 * pad as usize - k as usize) / s as usize + 1) as u16;
        let p = PoolParams { input: Dims { h, w, c }, output: Dims { h: ext(h), w: ext(w), c }, kernel: [k; 2], stride: [s; 2], pad: [pad; 4] };
        let mut rng = Rng(seed | 1);
        let x = rand_vec(&mut rng, p.input.len());
        let mut a = vec![0i8; p.output.len()];
        let mut b = vec![1i8; p.output.len()];
        avgpool_s8_ref(&p, zi, m, zo, &x, &mut a);
        avgpool_s8(&p, zi, m, zo, &x, &mut b);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn global_avgpool_matches_ref(h in 1u16..14, w in 1u16..14, c in 1u16..150, zi in any::<i8>(), zo in any::<i8>(), m in 0.0001f32..0.5, seed in any::<u64>()) {
        let d = Dims { h, w, c };
        let mut rng = Rng(seed | 1);
        let x = rand_vec(&mut rng, d.len());
        let mut a = vec![0i8; c as usize];
        let mut b = vec![1i8; c as usize];
        global_avgpool_s8_ref(d, zi, m, zo, &x, &mut a);
        global_avgpool_s8(d, zi, m, zo, &x, &mut b);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn add_matches_ref(n in 1usize..300, sa in 0.001f32..0.2, sb in 0.001f32..0.2, so in 0.001f32..0.2, za in any::<i8>(), zb in any::<i8>(), zo in any::<i8>(), seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        let a = rand_vec(&mut rng, n);
        let b = rand_vec(&mut rng, n);
        let (qa, qb, qo) = (QuantParams { scale: sa, zero_point: za }, QuantParams { scale: sb, zero_point: zb }, QuantParams { scale: so, zero_point: zo });
        let mut want = vec![0i8; n];
        add_requant_s8_ref(&a, qa, &b, qb, qo, &mut want);
        let mut got = a.clone();
        add_requant_s8(&mut got, qa, &b, qb, qo);
        prop_assert_eq!(want, got);
    }
}

macro_rules! dot_suite {
    ($name:ident, $k:ty) => {
        mod $name {
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(300))]
                #[test]
                fn micro_kernels_match_ref(k in 1usize..70, npairs in 1usize..(ROW_BLOCK / 2 + 1), zp in any::<i8>(), seed in any::<u64>()) {
                    let mut rng = Rng(seed | 1);
                    let kq = k.div_ceil(4);
                    let a0: Vec<i8> = (0..k).map(|_| rng.next_u32() as i8).collect();
                    let a1: Vec<i8> = (0..k).map(|_| rng.next_u32() as i8).collect();
                    let mut acts = vec![0u32; 4 * kq];
                    <$k>::pack_acts(&a0, k, 0, zp, &mut acts);
                    <$k>::pack_acts(&a1, k, 1, zp, &mut acts);
                    let mut racts = vec![0u32; 4 * kq];
                    RefDot::pack_acts(&a0, k, 0, zp, &mut racts);
                    RefDot::pack_acts(&a1, k, 1, zp, &mut racts);
                    prop_assert_eq!(&acts, &racts);
                    let rows: Vec<Vec<i8>> = (0..2 * npairs).map(|_| (0..k).map(|_| rng.next_u32() as i8).collect()).collect();
                    let mut wts = vec![0u32; 4 * kq * npairs];
                    for (j, r) in rows.iter().enumerate() {
                        <$k>::pack(r, k, j % 2, &mut wts[(j / 2) * 4 * kq..]);
                    }
                    let beff: Vec<i32> = (0..2 * npairs).map(|_| rng.next_u32() as i32 >> 8).collect();
                    let mut acc = vec![0i32; 2 * ROW_BLOCK];
                    <$k>::dot_block(&acts, &wts, kq, npairs, &beff, &mut acc);
                    for j in 0..2 * npairs {
                        let d = |a: &[i8]| a.iter().zip(&rows[j]).map(|(&x, &w)| (x as i32 - zp as i32) * w as i32).sum::<i32>();
                        prop_assert_eq!(acc[j], beff[j] + d(&a0));
                        prop_assert_eq!(acc[ROW_BLOCK + j], beff[j] + d(&a1));
                        if j % 2 == 0 {
                            let r = <$k>::dot_2x2(&acts, &wts[(j / 2) * 4 * kq..], kq);
                            prop_assert_eq!(r, RefDot::dot_2x2(&acts, &wts[(j / 2) * 4 * kq..], kq));
                        }
                    }
                    prop_assert_eq!(<$k>::dot_row(&acts, &rows[0], k), acc[0] - beff[0]);
                }

                /// Group packing and the zero-skipping block against direct sums.
                #[test]
                fn sparse_block_matches_direct(k in 1usize..300, n in 1usize..(ROW_BLOCK + 1), density in 0u32..101, zp in any::<i8>(), seed in any::<u64>()) {
                    let mut rng = Rng(seed | 1);
                    let px: Vec<Vec<i8>> = (0..4).map(|_| (0..k).map(|_| rng.next_u32() as i8).collect()).collect();
                    let mut acts = vec![0u32; 2 * k];
                    <$k>::pack_group_pair(&px[0], &px[1], k, 0, &mut acts);
                    <$k>::pack_group_pair(&px[2], &px[3], k, 1, &mut acts);
                    let rows: Vec<Vec<i8>> = (0..n)
                        .map(|_| (0..k).map(|_| if rng.next_u32() % 100 < density { rng.next_u32() as i8 } else { 0 }).collect())
                        .collect();
                    let bias: Vec<i32> = (0..n).map(|_| rng.next_u32() as i32 >> 8).collect();
                    let (mut ents, mut heads) = (Vec::new(), Vec::new());
                    for (r, &b) in rows.iter().zip(&bias) {
                        let start = ents.len();
                        ents.extend(r.iter().enumerate().filter(|(_, w)| **w != 0).map(|(i, &w)| sparse_entry(i, w)));
                        while ents.len() - start < 2 || (ents.len() - start) % 2 == 1 {
                            ents.push(0);
                        }
                        // The zero point folded into the bias, as the driver does.
                        let beff = b - zp as i32 * r.iter().map(|&w| w as i32).sum::<i32>();
                        heads.extend([(ents.len() - start) as u32, beff as u32]);
                    }
                    let block = SparseBlock::new(&ents, &heads).unwrap();
                    prop_assert!(block.fits(acts.len()));
                    let mut acc = vec![0i32; SPARSE_GROUP * ROW_BLOCK];
                    <$k>::dot_sparse_block(&acts, &block, &mut acc);
                    for (c, r) in rows.iter().enumerate() {
                        for (j, x) in px.iter().enumerate() {
                            let d: i32 = x.iter().zip(r).map(|(&x, &w)| (x as i32 - zp as i32) * w as i32).sum();
                            prop_assert_eq!(acc[j * ROW_BLOCK + c], bias[c] + d, "channel {} pixel {}", c, j);
                        }
                    }
                }

                #[test]
                fn pack_nibbles_matches_pack(half in 1usize..40, slot in 0usize..2, seed in any::<u64>()) {
                    let mut rng = Rng(seed | 1);
                    let k = 2 * half;
                    let kq = k.div_ceil(4);
                    let mut lut = [0i8; 256];
                    for v in lut[..16].iter_mut() {
                        *v = rng.next_u32() as i8;
                    }
                    let t16 = shared::kernels::dot::nibble_pair_table(&lut);
                    let idx: Vec<u8> = (0..half).map(|_| rng.next_u32() as u8).collect();
                    let row: Vec<i8> = (0..k).map(|i| lut[((idx[i / 2] >> (4 * (i % 2))) & 15) as usize]).collect();
                    let (mut a, mut b) = (vec![0u32; 4 * kq], vec![0u32; 4 * kq]);
                    <$k>::pack_nibbles(&idx, &t16, k, slot, &mut a);
                    RefDot::pack(&row, k, slot, &mut b);
                    prop_assert_eq!(a, b);
                }
            }
        }
    };
}

dot_suite!(dot_ref, RefDot);
dot_suite!(dot_portable, PortableDot);
dot_suite!(dot_portable_scalar, PortableScalarDot);
dot_suite!(dot_best, BestDot);
