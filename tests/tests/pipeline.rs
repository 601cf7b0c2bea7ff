//! End to end on a tiny budget: train -> compress -> blob -> shared kernels -> tract, and the
//! same configuration twice gives a byte-identical blob; a corrupt checkpoint is refused.

use host::compress::{CompressConfig, compress};
use host::data::FashionMnist;
use host::sharing::SharingConfig;
use host::train::{Preset, RunOptions, TrainConfig, train};

#[test]
fn tiny_pipeline_is_deterministic_and_matches_tract() {
    let d = FashionMnist::load(None).unwrap();
    // A small world: 2,000 training images (the last 500 for validation), 200 test images.
    let small = FashionMnist {
        train: d.train.slice(0..2_000),
        test: d.test.slice(0..200),
        dir: d.dir.clone(),
    };
    let mut cfg = TrainConfig::preset(Preset::Default);
    cfg.epochs = 1;
    cfg.batch_size = 64;
    cfg.val_count = 500;
    let (tr, val) = small.train_val(cfg.val_count);
    let run = tempfile::tempdir().unwrap();
    train(
        &cfg,
        &tr,
        &val,
        &small.test,
        run.path(),
        &RunOptions {
            skip_final: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut cfg = CompressConfig {
        calib_images: 100,
        model_id: 7,
        sharing: SharingConfig {
            prune: 0.3,
            bits: 4,
            iterations: 10,
            fast_decode: false,
        },
    };
    let a = compress(run.path(), &small, &cfg).unwrap();
    let b = compress(run.path(), &small, &cfg).unwrap();
    assert!(
        a.blob == b.blob,
        "same config and seed gave different blobs"
    );
    cfg.model_id = 8;
    let c = compress(run.path(), &small, &cfg).unwrap();
    assert!(a.blob != c.blob);

    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("m.blob");
    std::fs::write(&blob, &a.blob).unwrap();
    let r = host::verify::run_all(&blob, Some(run.path()), &small, 2, 100, 5).unwrap();
    assert!(r.passed, "{}", r.markdown);
}

#[test]
fn compress_refuses_a_corrupt_checkpoint_and_writes_nothing() {
    let d = FashionMnist::load(None).unwrap();
    let run = tempfile::tempdir().unwrap();
    std::fs::write(run.path().join("config.json"), "{ not json").unwrap();
    let err = compress(run.path(), &d, &CompressConfig::default()).unwrap_err();
    assert!(
        format!("{err:#}").contains("not a training config"),
        "{err:#}"
    );
    // A valid config with weights of another shape.
    let cfg = TrainConfig::preset(Preset::Default);
    std::fs::write(
        run.path().join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    std::fs::write(run.path().join("best.bpk"), b"garbage").unwrap();
    let err = compress(run.path(), &d, &CompressConfig::default()).unwrap_err();
    assert!(format!("{err:#}").contains("best.bpk"), "{err:#}");
}
