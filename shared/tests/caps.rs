//! Builds that carry fewer decoders and kernels (`caps`): what a model uses is found, such a
//! build runs its blob bit for bit as the full one and refuses a blob that needs more, and the
//! firmware's generated `Caps` impl names every switch.

use shared::caps::{Caps, Used};
use shared::kernels::{Capped, DotKernel, PortableDot};
use shared::run::run_fused_with;
use shared::testkit::example::{ENCS, Enc};
use shared::testkit::squeezenet;
use shared::{Error, Model};

/// A build for the SqueezeNet-shaped test network with sparse codebook rows, without the
/// optional stem kernels (as the size-first firmware builds).
#[derive(Debug)]
struct SparseCodebookNet;

impl Caps for SparseCodebookNet {
    const DENSE: bool = false;
    const CODEBOOK: bool = false;
    const HUFF_SPARSE: bool = false;
    const HUFF_CODEBOOK: bool = false;
    const AVG_POOL: bool = false;
    const BYPASS: bool = false;
    const MAXPOOL_ANY_CHANNELS: bool = false;
    const STEM_DENSE: bool = false;
    const STEM_SPARSE: bool = false;
}

fn logits<K: DotKernel>(model: &Model<'_>) -> Vec<i8> {
    let input: Vec<i8> = (0..model.input_len())
        .map(|i| (i * 37 % 251) as i8)
        .collect();
    let mut arena = vec![0u8; model.arena_len()];
    let mut out = vec![0i8; model.num_classes()];
    run_fused_with::<K>(model, &input, &mut arena, &mut out);
    out
}

#[test]
fn each_encoding_is_found_and_nothing_else() {
    let names = [
        "DENSE",
        "CODEBOOK",
        "SPARSE",
        "SPARSE",
        "HUFF_SPARSE",
        "HUFF_SPARSE",
        "HUFF_CODEBOOK",
    ];
    for (enc, name) in ENCS.iter().zip(names) {
        let blob = squeezenet::blob(3, 10, *enc);
        let used = Model::from_bytes(&blob).unwrap().uses();
        let on: Vec<_> = used
            .switches()
            .iter()
            .filter(|s| s.1)
            .map(|s| s.0)
            .collect();
        assert!(
            on.contains(&name) && on.contains(&"GLOBAL_AVG_POOL"),
            "{enc:?}: {on:?}"
        );
        let encodings = [
            "DENSE",
            "CODEBOOK",
            "SPARSE",
            "HUFF_SPARSE",
            "HUFF_CODEBOOK",
        ];
        assert_eq!(
            on.iter().filter(|s| encodings.contains(s)).count(),
            1,
            "{enc:?}: {on:?}"
        );
    }
}

#[test]
fn a_build_with_fewer_switches_runs_its_blob_bit_for_bit() {
    let blob = squeezenet::blob(3, 10, Enc::SparseCodebook);
    let everything = Model::from_bytes(&blob).unwrap();
    assert!(
        everything
            .uses()
            .within(&Used::of_caps::<SparseCodebookNet>())
    );
    let narrow = Model::from_bytes_for::<SparseCodebookNet>(&blob).unwrap();
    assert_eq!(
        logits::<Capped<PortableDot, SparseCodebookNet>>(&narrow),
        logits::<PortableDot>(&everything)
    );
}

#[test]
fn the_stem_kernels_are_optional() {
    let blob = squeezenet::blob(3, 10, Enc::SparseCodebook);
    let everything = Model::from_bytes(&blob).unwrap();
    let used = everything.uses();
    assert!(
        used.stem_dense || used.stem_sparse,
        "the test net has a 1-channel 3x3 stem"
    );
    assert!(used.within(&Used::of_caps::<SparseCodebookNet>()));
    let narrow = Model::from_bytes_for::<SparseCodebookNet>(&blob).unwrap();
    assert_eq!(
        logits::<Capped<PortableDot, SparseCodebookNet>>(&narrow),
        logits::<PortableDot>(&everything)
    );
    // A decoder is never optional.
    assert!(!Used::is_optional("SPARSE") && Used::is_optional("STEM_SPARSE"));
}

#[test]
fn a_blob_needing_more_is_refused() {
    for enc in [
        Enc::Dense,
        Enc::Codebook,
        Enc::HuffSparseRaw,
        Enc::HuffCodebook,
    ] {
        let blob = squeezenet::blob(3, 10, enc);
        assert_eq!(
            Model::from_bytes_for::<SparseCodebookNet>(&blob).err(),
            Some(Error::NotBuiltIn),
            "{enc:?}"
        );
    }
    // The example network has average pools and bypass adds.
    let blob = shared::testkit::example::blob(5);
    let used = Model::from_bytes(&blob).unwrap().uses();
    assert!(used.avg_pool && used.bypass);
    assert_eq!(
        Model::from_bytes_for::<SparseCodebookNet>(&blob).err(),
        Some(Error::NotBuiltIn)
    );
}

#[test]
fn the_generated_impl_names_every_switch() {
    let used = Used {
        sparse: true,
        stem_sparse: true,
        ..Used::default()
    };
    let src = used.rust_impl("BlobCaps");
    assert!(src.contains("impl shared::caps::Caps for BlobCaps {"));
    for (name, on) in used.switches() {
        assert!(
            src.contains(&format!("    const {name}: bool = {on};\n")),
            "{name}"
        );
    }
}
