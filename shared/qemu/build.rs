//! Puts memory.x on the linker path and writes example blobs (built with the host encoder).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=../src");
    bench_weights(&out);
    sweep_weights(&out);
    conv_cases(&out);
    use shared::testkit::example::Enc;
    for (name, enc) in [("dense", Enc::Dense), ("hsc", Enc::HuffSparseCodebook)] {
        let blob = shared::testkit::squeezenet::blob(11, 10, enc);
        fs::write(out.join(format!("squeezenet_{name}.blob")), blob).unwrap();
    }
    // The shipped model, when the workspace has one (an empty file otherwise: the bench skips it).
    let shipped = std::path::Path::new("../../models/shipped.blob");
    println!("cargo:rerun-if-changed=../../models/shipped.blob");
    // Re-planned for this build's arena plan, so the bench runs while the kernels change.
    let bytes = fs::read(shipped).unwrap_or_default();
    let bytes = shared::format::replan(&bytes).unwrap_or_default();
    fs::write(out.join("shipped.blob"), bytes).unwrap();
    for seed in 1..=3u64 {
        let blob = shared::testkit::example::blob(seed);
        fs::write(
            out.join(format!("example{seed}.expect")),
            expectations(&blob, seed),
        )
        .unwrap();
        fs::write(out.join(format!("example{seed}.blob")), blob).unwrap();
    }
    // The shipped shape (3x3/1 stem at 28x28, sparse codebook rows): its stem and pool fuse.
    let blob = shared::testkit::squeezenet::blob_with_stem(4, 10, Enc::SparseCodebook, 1, 1);
    fs::write(out.join("stem11.expect"), expectations(&blob, 4)).unwrap();
    fs::write(out.join("stem11.blob"), blob).unwrap();
}

/// FNV-1a over the observed tensors of one run, in order (written next to the blob so the thumb
/// run can be compared with the host run bit for bit).
pub fn expectations(blob: &[u8], seed: u64) -> Vec<u8> {
    let m = shared::Model::from_bytes(blob).unwrap();
    let input = example_input(m.input_len(), seed);
    let mut arena = vec![0u8; m.observed_arena_len()];
    let mut logits = vec![0i8; m.num_classes()];
    let mut out = Vec::new();
    shared::run::run_with::<shared::kernels::RefDot>(
        &m,
        &input,
        &mut arena,
        &mut logits,
        &mut |_, _, d| out.extend_from_slice(&fnv(d).to_le_bytes()),
    );
    out
}

fn fnv(d: &[i8]) -> u32 {
    d.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u8 as u32).wrapping_mul(0x0100_0193)
    })
}

fn example_input(n: usize, seed: u64) -> Vec<i8> {
    let mut rng = shared::testkit::Rng(seed * 0x9E37_79B9 + 1);
    (0..n).map(|_| (rng.next_u32() >> 8) as i8).collect()
}

/// A bench shape: (name, h, w, cin, cout, k, stride, pad).
type Shape = (&'static str, u16, u16, u16, u16, u8, u8, u8);

/// Bench shapes (the same as `src/bin/bench.rs`).
pub const SHAPES: [Shape; 6] = [
    ("squeeze 1x1 64->16 @14x14", 14, 14, 64, 16, 1, 1, 0),
    ("expand 1x1 16->64 @14x14", 14, 14, 16, 64, 1, 1, 0),
    ("expand 3x3 16->64 @14x14", 14, 14, 16, 64, 3, 1, 1),
    ("expand 3x3 32->128 @7x7", 7, 7, 32, 128, 3, 1, 1),
    ("stem 3x3/2 1->64 @28x28", 28, 28, 1, 64, 3, 2, 0),
    ("stem 3x3/1 p1 1->64 @28x28", 28, 28, 1, 64, 3, 1, 1),
];

/// A stream of `u32`s from `seed` (the testkit's generator).
fn xorshift(seed: u64) -> impl FnMut() -> u32 {
    let mut rng = shared::testkit::Rng(seed);
    move || rng.next_u32()
}

/// The benches' 4-bit codebook: 0 and 15 values from -112 to 112.
fn bench_centroids() -> Vec<i8> {
    (0..16)
        .map(|i| if i == 0 { 0 } else { (i * 16 - 128) as i8 })
        .collect()
}

/// Writes `bench{i}_{enc}.w`: postcard `WeightsDesc` of each shape for 4 encodings at 35 %
/// density (dense stores the same pruned values).
fn bench_weights(out: &std::path::Path) {
    use shared::encode::{OwnedWeights, SparseSource};
    let mut next = xorshift(0x2545_F491_4F6C_DD1D);
    let centroids = bench_centroids();
    for (i, sh) in SHAPES.iter().enumerate() {
        let k = sh.5 as usize * sh.5 as usize * sh.3 as usize;
        let n = k * sh.4 as usize;
        let idx: Vec<u8> = (0..n)
            .map(|_| {
                if next() % 100 < 35 {
                    (1 + next() % 15) as u8
                } else {
                    0
                }
            })
            .collect();
        let dense: Vec<i8> = idx.iter().map(|&i| centroids[i as usize]).collect();
        let cb = SparseSource::Codebook {
            centroids: &centroids,
            bits: 4,
            indices: &idx,
        };
        let encs = [
            ("dense", OwnedWeights::dense(&dense)),
            (
                "codebook4",
                OwnedWeights::codebook(&centroids, 4, &idx).unwrap(),
            ),
            (
                "sparse-codebook4",
                OwnedWeights::sparse(cb, sh.4 as usize, k, 4).unwrap(),
            ),
            (
                "huffman-sparse-codebook4",
                OwnedWeights::huff_sparse(cb, sh.4 as usize, k, 15).unwrap(),
            ),
        ];
        for (j, (name, w)) in encs.iter().enumerate() {
            let bytes = postcard::to_allocvec(&w.desc()).unwrap();
            std::fs::write(out.join(format!("bench{i}_{j}.w")), bytes).unwrap();
            let _ = name;
        }
    }
}

/// Density sweep of the zero-skipping driver against packed codebook rows:
/// (name, h, w, cin, cout, k, pad).
const SWEEP_SHAPES: [(&str, u16, u16, u16, u16, u8, u8); 6] = [
    ("squeeze 1x1 384->64 @3x3", 3, 3, 384, 64, 1, 0),
    ("expand 1x1 64->256 @3x3", 3, 3, 64, 256, 1, 0),
    ("expand 3x3 64->256 @3x3", 3, 3, 64, 256, 3, 1),
    ("squeeze 1x1 256->32 @7x7", 7, 7, 256, 32, 1, 0),
    ("expand 3x3 32->128 @7x7", 7, 7, 32, 128, 3, 1),
    ("expand 3x3 16->64 @14x14", 14, 14, 16, 64, 3, 1),
];
const SWEEP_DENSITIES: [u32; 9] = [2, 5, 10, 15, 20, 25, 30, 40, 50];

/// Writes `sweep{i}_{d}.w` (byte-entry sparse codebook rows at `d` % density) and
/// `sweep{i}_cb.w` (the 50 % weights as packed codebook rows: their cost does not depend on the
/// values), and `sweep.rs`, the table that includes them.
fn sweep_weights(out: &std::path::Path) {
    use shared::encode::{OwnedWeights, SparseSource};
    use std::fmt::Write;
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    let centroids = bench_centroids();
    let mut table = String::from("static SWEEP: &[SweepCase] = &[\n");
    for (i, sh) in SWEEP_SHAPES.iter().enumerate() {
        let k = sh.5 as usize * sh.5 as usize * sh.3 as usize;
        let cout = sh.4 as usize;
        for (j, &d) in SWEEP_DENSITIES.iter().enumerate() {
            let idx: Vec<u8> = (0..k * cout)
                .map(|_| {
                    if next() % 1000 < 10 * d {
                        (1 + next() % 15) as u8
                    } else {
                        0
                    }
                })
                .collect();
            let cb = SparseSource::Codebook {
                centroids: &centroids,
                bits: 4,
                indices: &idx,
            };
            let mut write = |tag: String, pct: u32, w: OwnedWeights| {
                let bytes = postcard::to_allocvec(&w.desc()).unwrap();
                std::fs::write(out.join(format!("sweep{i}_{tag}.w")), bytes).unwrap();
                writeln!(
                    table,
                    "    ({:?}, {}, {}, {}, {}, {}, {}, {}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/sweep{}_{}.w\"))),",
                    sh.0, sh.1, sh.2, sh.3, sh.4, sh.5, sh.6, pct, i, tag
                )
                .unwrap();
            };
            if j == SWEEP_DENSITIES.len() - 1 {
                write(
                    "cb".into(),
                    0,
                    OwnedWeights::codebook(&centroids, 4, &idx).unwrap(),
                );
            }
            write(
                format!("{d}"),
                d,
                OwnedWeights::sparse(cb, cout, k, 4).unwrap(),
            );
        }
    }
    table.push_str("];\n");
    std::fs::write(out.join("sweep.rs"), table).unwrap();
}

/// The kernel suite's conv cases for the thumb run (`conv_cases.bin`): the named shapes with
/// every encoding, then random cases and random 1-channel stems, each as a little-endian
/// length and the postcard of `(ConvSpec, ConvDesc)`, weights encoded by the host encoder.
fn conv_cases(out: &std::path::Path) {
    use shared::testkit::Rng;
    use shared::testkit::suite::{ConvSpec, named_conv_specs};
    let mut specs = Vec::new();
    for s in named_conv_specs() {
        for enc in 0..7 {
            specs.push(ConvSpec { enc, ..s });
        }
    }
    let mut rng = Rng(0x1234_5678_9abc);
    specs.extend((0..RANDOM_CONV_CASES).map(|_| ConvSpec::random(&mut rng)));
    specs.extend((0..RANDOM_STEM_CASES).map(|_| ConvSpec::random_stem(&mut rng)));
    let mut bytes = Vec::new();
    for s in &specs {
        let conv = shared::testkit::example::spec_conv(s);
        let rec = postcard::to_allocvec(&(s, conv.desc())).unwrap();
        bytes.extend((rec.len() as u32).to_le_bytes());
        bytes.extend(rec);
    }
    fs::write(out.join("conv_cases.bin"), bytes).unwrap();
}

/// Random conv cases and random stems in `conv_cases.bin` (after the 77 named ones).
const RANDOM_CONV_CASES: usize = 400;
const RANDOM_STEM_CASES: usize = 150;
