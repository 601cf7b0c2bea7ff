//! The shipped model in `models/`: hashes, exact test accuracy on the `shared` kernels, and
//! parity with tract on a subset (the full run is `sqz shipped`).

use std::path::PathBuf;

use host::data::{Dataset, FashionMnist};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn data() -> Dataset {
    FashionMnist::load(None).expect("Fashion-MNIST must be available")
}

#[test]
fn manifest_hashes_and_exact_test_accuracy() {
    let m = host::export::check_manifest(&models()).unwrap();
    let blob = std::fs::read(models().join(&m.blob)).unwrap();
    let d = data();
    let (acc, _) = host::eval::evaluate_blob(&blob, &d.test).unwrap();
    let correct = (acc * d.test.len() as f64).round() as usize;
    assert_eq!(
        correct, m.test_correct,
        "shipped blob: {correct} correct, manifest says {}",
        m.test_correct
    );
    // The manifest names the command that trained the network, as the shipped record has it.
    let trained = std::fs::read_to_string(models().join("shipped.train.command.txt")).unwrap();
    assert!(m.train_command.starts_with("sqz train "), "{m:?}");
    assert_eq!(m.train_command, trained.trim());
}

#[test]
fn shipped_blob_matches_tract_layer_by_layer_and_whole() {
    let m = host::export::check_manifest(&models()).unwrap();
    let d = data();
    let run = models().join("shipped.run");
    let r = host::verify::run_all(&models().join(&m.blob), Some(&run), &d, 3, 300, 20).unwrap();
    let bad: usize = r.layers.iter().map(|l| l.mismatches).sum();
    assert_eq!(bad, 0, "{}", r.markdown);
    assert_eq!(r.network.top1_agree, r.network.images, "{}", r.markdown);
    assert!(
        r.network.max_logit_delta <= host::verify::tolerance::LOGIT_STEPS,
        "{}",
        r.markdown
    );
    assert!(
        r.float.unwrap().max_abs_delta <= host::verify::tolerance::FLOAT_ABS,
        "{}",
        r.markdown
    );
    assert!(r.passed);
}

#[test]
fn a_corrupted_manifest_entry_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let m = host::export::check_manifest(&models()).unwrap();
    for f in &m.files {
        let dst = dir.path().join(&f.name);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(models().join(&f.name), &dst).unwrap();
    }
    std::fs::copy(
        models().join("MANIFEST.json"),
        dir.path().join("MANIFEST.json"),
    )
    .unwrap();
    host::export::check_manifest(dir.path()).unwrap();
    let blob = dir.path().join(&m.blob);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let err = host::export::check_manifest(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("SHA-256"), "{err}");
}

#[test]
fn export_reproduces_the_shipped_onnx_files() {
    let m = host::export::check_manifest(&models()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let written = host::export::export_files(
        &models().join("shipped.run"),
        &models().join(&m.blob),
        out.path(),
        "shipped",
    )
    .unwrap();
    assert_eq!(written.len(), 5);
    // The shipped files were written by the same exporter: byte for byte the same.
    for ext in ["blob", "float.onnx", "int8.onnx", "qdq.onnx", "classes.txt"] {
        let name = format!("shipped.{ext}");
        let ours = std::fs::read(out.path().join(&name)).unwrap();
        let shipped =
            std::fs::read(models().join(&name)).unwrap_or_else(|e| panic!("models/{name}: {e}"));
        assert!(ours == shipped, "{name} differs from the shipped one");
    }
    // A blob that fails validation exports nothing.
    let bad = out.path().join("bad.blob");
    let mut bytes = std::fs::read(models().join(&m.blob)).unwrap();
    bytes[40] ^= 0x10;
    std::fs::write(&bad, &bytes).unwrap();
    let fresh = out.path().join("fresh");
    let err =
        host::export::export_files(&models().join("shipped.run"), &bad, &fresh, "x").unwrap_err();
    assert!(format!("{err:#}").contains("invalid blob"), "{err:#}");
    assert!(!fresh.exists());
}

#[test]
fn blob_breakdown_accounts_for_every_weight() {
    let m = host::export::check_manifest(&models()).unwrap();
    let blob = std::fs::read(models().join(&m.blob)).unwrap();
    let b = host::compress::blob_breakdown(&blob).unwrap();
    let decoded = host::compress::decoded_weights(&blob).unwrap();
    let weights: usize = decoded.iter().map(|w| w.len()).sum();
    // Every conv's output channels: an i16 bias and a u16 multiplier each.
    let model = shared::Model::from_bytes(&blob).unwrap();
    let channels: usize = model
        .layers()
        .map(|l| match l.desc {
            shared::format::LayerDesc::Conv(c) => c.out_channels as usize,
            shared::format::LayerDesc::Fire(f) => {
                let bypass = match f.bypass {
                    shared::format::Bypass::Complex { conv, .. } => conv.out_channels as usize,
                    _ => 0,
                };
                (f.squeeze.out_channels + f.expand1.out_channels + f.expand3.out_channels) as usize
                    + bypass
            }
            _ => 0,
        })
        .sum();
    assert_eq!(channels, 2954, "the shipped network's conv channels");
    assert!(b.weights > 0 && b.per_channel == 4 * channels, "{b:?}");
    assert_eq!(
        b.weights + b.row_offsets + b.per_channel + b.other,
        blob.len()
    );
    // The graph and header are small next to the weights.
    assert!(
        b.other < blob.len() / 20,
        "{b:?} of {} bytes for {weights} weights",
        blob.len()
    );
}

#[test]
fn recode_keeps_every_logit_and_round_trips() {
    use host::compress::recode::{Encoding, recode};
    let m = host::export::check_manifest(&models()).unwrap();
    let blob = std::fs::read(models().join(&m.blob)).unwrap();
    let d = data();
    let images = || (0..200).map(|i| d.test.image(i));
    let small = recode(&blob, Encoding::Smallest, images()).unwrap();
    let fast = recode(&small, Encoding::FastDecode, images()).unwrap();
    let again = recode(&fast, Encoding::Smallest, images()).unwrap();
    let zero_skip = recode(&fast, Encoding::ZeroSkipSmallest, images()).unwrap();
    // The shipped blob is the zero-skip-smallest recoding (so `recode` of it changes nothing):
    // every conv on the zero-skipping driver, so the firmware carries no packed driver. Its
    // fast-decode twin is `shipped.fast.blob`, whose 1-channel 3x3 stem, half zeros, is stored
    // as sparse rows for the Cortex-M4 zero-skipping stem.
    assert!(
        zero_skip == blob,
        "models/ blob differs from `sqz recode --encoding zero-skip-smallest` of itself"
    );
    assert!(!shared::Model::from_bytes(&blob).unwrap().uses().packed);
    assert!(
        fast == std::fs::read(models().join("shipped.fast.blob")).unwrap(),
        "models/shipped.fast.blob differs from `sqz recode --encoding fast-decode` of the blob"
    );
    let model = shared::Model::from_bytes(&fast).unwrap();
    let stem = model.layers().next().unwrap();
    assert!(
        matches!(&stem.desc, shared::format::LayerDesc::Conv(c)
            if matches!(c.weights, shared::weights::WeightsDesc::Sparse { .. })),
        "fast-decode stem: {:?}",
        stem.desc
    );
    assert!(
        small.len() <= blob.len() && blob.len() < fast.len(),
        "smallest {} <= zero-skip-smallest {} < fast-decode {}",
        small.len(),
        blob.len(),
        fast.len()
    );
    assert!(
        again == small,
        "smallest -> fast -> smallest is not the identity"
    );
    let (a, la) = host::eval::evaluate_blob(&blob, &d.test.slice(0..500)).unwrap();
    let (b, lb) = host::eval::evaluate_blob(&fast, &d.test.slice(0..500)).unwrap();
    assert_eq!((a, la), (b, lb));
    let mut bad = blob.clone();
    bad[30] ^= 1;
    assert!(recode(&bad, Encoding::FastDecode, images()).is_err());
}

#[test]
fn pipeline_defaults_are_the_shipped_recipe() {
    // The compression config stored beside the shipped blob is the one `sqz pipeline` runs by
    // default (training seed 2, fine-tuning seed 1; the pipeline stores packed indices, the
    // compress run the smallest coding that `sqz recode` then re-encoded).
    let json = std::fs::read_to_string(models().join("shipped.compress.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let shipped: host::compress::CompressConfig =
        serde_json::from_value(v["config"].clone()).unwrap();
    let (train, pipeline) = host::pipeline::recipe(false, 2, 1);
    assert_eq!(train.seed, 2);
    assert_eq!(pipeline.finetune, shipped.finetune);
    assert_eq!(pipeline.calib_images, shipped.calib_images);
    assert_eq!(pipeline.sharing.bits, shipped.sharing.bits);
}
