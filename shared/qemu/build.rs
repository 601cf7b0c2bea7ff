//! Puts memory.x on the linker path and writes example blobs (built with the host encoder).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=../src");
    for seed in 1..=3u64 {
        let blob = shared::encode::example::blob(seed);
        fs::write(
            out.join(format!("example{seed}.expect")),
            expectations(&blob, seed),
        )
        .unwrap();
        fs::write(out.join(format!("example{seed}.blob")), blob).unwrap();
    }
}

/// FNV-1a over the observed tensors of one run, in order (written next to the blob so the thumb
/// run can be compared with the host run bit for bit).
pub fn expectations(blob: &[u8], seed: u64) -> Vec<u8> {
    let m = shared::Model::from_bytes(blob).unwrap();
    let input = example_input(m.input_len(), seed);
    let mut arena = vec![0u8; m.arena_len()];
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
    let mut s = seed * 0x9E37_79B9 + 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as i8
        })
        .collect()
}
