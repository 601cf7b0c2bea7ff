//! `shared`'s kernels against golden vectors computed by tract alone (`sqz golden` writes
//! `tests/golden/example.golden`; never edited by hand). Every implementation of the dot kernel
//! must reproduce every tensor exactly; the first differing index is printed with both values.

use shared::kernels::{DotKernel, PortableDot, RefDot};
use shared::run::run_with;
use shared::testkit::example;
use shared::{Model, SubOp};

const GOLDEN: &str = include_str!("golden/example.golden");

struct Golden {
    seed: u64,
    tensors: Vec<(String, Vec<i8>)>,
}

fn parse() -> Golden {
    let mut seed = None;
    let mut tensors = Vec::new();
    for line in GOLDEN.lines() {
        if let Some(rest) = line.strip_prefix("# model: shared::testkit::example::blob(") {
            seed = rest.split(')').next().and_then(|s| s.parse().ok());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let hex = f[4].as_bytes();
        let bytes = (0..hex.len() / 2)
            .map(|i| {
                u8::from_str_radix(core::str::from_utf8(&hex[2 * i..2 * i + 2]).unwrap(), 16)
                    .unwrap() as i8
            })
            .collect();
        tensors.push((f[0].to_string(), bytes));
    }
    Golden {
        seed: seed.expect("provenance header names the model seed"),
        tensors,
    }
}

fn name(layer: u16, op: SubOp) -> String {
    let s = match op {
        SubOp::Squeeze => "squeeze",
        SubOp::Expand => "expand",
        SubOp::BypassConv => "bypass",
        _ => "out",
    };
    format!("l{layer}_{s}")
}

fn check<K: DotKernel>() {
    let g = parse();
    let blob = example::blob(g.seed);
    let m = Model::from_bytes(&blob).unwrap();
    let input = &g
        .tensors
        .iter()
        .find(|(n, _)| n == "input")
        .expect("input")
        .1;
    let mut arena = vec![0u8; m.observed_arena_len()];
    let mut logits = vec![0i8; m.num_classes()];
    let mut seen: Vec<(String, Vec<i8>)> = Vec::new();
    run_with::<K>(&m, input, &mut arena, &mut logits, &mut |l, op, d| {
        seen.push((name(l, op), d.to_vec()))
    });
    let mut compared = 0;
    for (n, want) in g.tensors.iter().filter(|(n, _)| n != "input") {
        let got = &seen
            .iter()
            .find(|(s, _)| s == n)
            .unwrap_or_else(|| panic!("{n}: not produced"))
            .1;
        assert_eq!(got.len(), want.len(), "{n}: length");
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
            panic!(
                "{n}: first difference at NHWC index {i}: shared {} vs tract {}",
                got[i], want[i]
            );
        }
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} tensors compared");
}

#[test]
fn reference_kernels_match_tract_golden_vectors() {
    check::<RefDot>();
}

#[test]
fn portable_kernels_match_tract_golden_vectors() {
    check::<PortableDot>();
}
