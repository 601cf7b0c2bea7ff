//! The kernel suite (`shared::testkit::suite`, the same checks `qemu/run-tests.sh` runs on the
//! Cortex-M4) against every implementation: named cases plus proptest seeds.

use proptest::prelude::*;
use shared::kernels::*;
use shared::testkit::Rng;
use shared::testkit::example::spec_conv;
use shared::testkit::suite::{self, ConvBufs, ConvPaths, ConvSpec, Mismatch};

/// Runs [`suite::check_conv`] on one case with buffers sized for it; panics with the first
/// difference.
fn check_conv<K: DotKernel>(s: ConvSpec) -> ConvPaths {
    let conv = spec_conv(&s);
    let d = conv.desc();
    let p = s.params();
    let k = p.k();
    let mut x = vec![0i8; p.input.len()];
    s.input(&mut x);
    let npix = p.output.h as usize * p.output.w as usize;
    let dense = matches!(d.weights, shared::weights::WeightsDesc::Dense { .. });
    let long = conv_scratch_len(&p, dense) + 4 * k * npix + 64;
    let (mut dw, mut want, mut got) = (
        vec![0i8; k * s.cout as usize],
        vec![0; s.out_len()],
        vec![0; s.out_len()],
    );
    let mut scratch = vec![0i8; long];
    let mut b = ConvBufs {
        dense: &mut dw,
        want: &mut want,
        got: &mut got,
        scratch: &mut scratch,
    };
    suite::check_conv::<K>(&s, &d, &x, &mut b).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn ok(r: Result<(), Mismatch>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

macro_rules! conv_suite {
    ($name:ident, $k:ty) => {
        mod $name {
            use super::*;
            #[test]
            fn named() {
                for c in suite::named_conv_specs() {
                    for enc in 0..7 {
                        check_conv::<$k>(ConvSpec { enc, ..c });
                    }
                }
            }
            /// The fire shapes with sparse weights (45 % nonzero) take the zero-skipping path,
            /// with the minimal scratch, and equal the reference.
            #[test]
            fn zero_skip_named() {
                for c in suite::named_conv_specs().into_iter().take(3) {
                    // SparseRaw, SparseCodebook, HuffSparseRaw, HuffSparseCodebook
                    for enc in 2..6 {
                        let c = ConvSpec { enc, ..c };
                        assert!(
                            check_conv::<$k>(c).zero_skip,
                            "{c:?}: zero-skip path not taken"
                        );
                    }
                }
            }
            /// On a 3x3 map (9 pixels, below `ZERO_SKIP_MIN_PIXELS`) sparse rows at 8 %
            /// density (a heavily pruned fire6-9) take the zero-skipping path when the scratch
            /// holds their entries, and equal the reference; at 45 % they do not.
            #[test]
            fn zero_skip_small_maps() {
                let small = ConvSpec {
                    h: 3,
                    w: 3,
                    zero_pct: 92,
                    ..suite::named_conv_specs()[0]
                };
                let shapes = [
                    ConvSpec {
                        cin: 64,
                        cout: 32,
                        ..small
                    }, // squeeze 1x1
                    ConvSpec {
                        cin: 16,
                        cout: 64,
                        ..small
                    }, // expand 1x1
                    ConvSpec {
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
                        let c = ConvSpec { enc, ..c };
                        assert!(
                            check_conv::<$k>(c).zero_skip_long,
                            "{c:?}: zero-skip path not taken"
                        );
                        let dense = ConvSpec { zero_pct: 55, ..c };
                        assert!(
                            !check_conv::<$k>(dense).zero_skip_long,
                            "{dense:?}: zero-skip path taken"
                        );
                    }
                }
            }
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(200))]
                #[test]
                fn random(seed in any::<u64>()) {
                    check_conv::<$k>(ConvSpec::random(&mut Rng(seed | 1)));
                }
                #[test]
                fn random_stem(seed in any::<u64>()) {
                    check_conv::<$k>(ConvSpec::random_stem(&mut Rng(seed | 1)));
                }
            }
        }
    };
}

conv_suite!(conv_ref_dot, RefDot);
conv_suite!(conv_portable, PortableDot);
conv_suite!(conv_portable_scalar, PortableScalarDot);
conv_suite!(conv_best, BestDot);

macro_rules! dot_suite {
    ($name:ident, $k:ty) => {
        mod $name {
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(300))]
                #[test]
                fn dot_block(seed in any::<u64>()) {
                    ok(suite::check_dot_block::<$k>(&mut Rng(seed | 1)));
                }
                #[test]
                fn sparse_block(seed in any::<u64>()) {
                    ok(suite::check_sparse_block::<$k>(&mut Rng(seed | 1)));
                }
                #[test]
                fn pack_nibbles(seed in any::<u64>()) {
                    ok(suite::check_pack_nibbles::<$k>(&mut Rng(seed | 1)));
                }
                #[test]
                fn requant_row(seed in any::<u64>()) {
                    ok(suite::check_requant_row::<$k>(&mut Rng(seed | 1)));
                }
            }
        }
    };
}

dot_suite!(dot_ref, RefDot);
dot_suite!(dot_portable, PortableDot);
dot_suite!(dot_portable_scalar, PortableScalarDot);
dot_suite!(dot_best, BestDot);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn maxpool(seed in any::<u64>()) {
        ok(suite::check_maxpool(&mut Rng(seed | 1)));
    }
    #[test]
    fn avgpool(seed in any::<u64>()) {
        ok(suite::check_avgpool(&mut Rng(seed | 1)));
    }
    #[test]
    fn global_avgpool(seed in any::<u64>()) {
        ok(suite::check_global_avgpool(&mut Rng(seed | 1)));
    }
    #[test]
    fn add(seed in any::<u64>()) {
        ok(suite::check_add(&mut Rng(seed | 1)));
    }
}
