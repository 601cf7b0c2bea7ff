//! End to end on a tiny budget: train -> compress -> blob -> shared kernels -> tract, and the
//! same configuration twice gives a byte-identical blob, so does a fine-tuning run stopped and
//! resumed; a corrupt checkpoint is refused.

use host::compress::{
    Checkpointing, CompressConfig, FinetuneConfig, SharingConfig, Stopped, compress,
    compress_resumable,
};
use host::data::{Dataset, FashionMnist};
use host::train::{Preset, RunOptions, TrainConfig, train};

#[test]
fn tiny_pipeline_is_deterministic_and_matches_tract() {
    let d = FashionMnist::load(None).unwrap();
    // A small world: 2,000 training images (the last 500 for validation), 200 test images.
    let small = Dataset {
        train: d.train.slice(0..2_000),
        test: d.test.slice(0..200),
        ..d.clone()
    };
    let mut cfg = TrainConfig::preset(Preset::Default);
    cfg.epochs = 1;
    cfg.batch_size = 64;
    cfg.val_count = 500;
    let model_cfg = cfg.model.clone();
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
        finetune: None,
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

    // The paper's way: masked fine-tuning, then k-means with centroid fine-tuning. Same seed
    // twice: the same blob; every layer holds its pruned share and uses at most 2^bits values
    // (targets and bits set per layer for some).
    let ft = FinetuneConfig {
        sparsity: 0.6,
        prune_rounds: 2,
        prune_epochs: 2,
        share_epochs: 1,
        bits: 3,
        train_limit: Some(384),
        batch_size: 64,
        layer_sparsity: vec![
            "fire*.expand3x3=0.85".parse().unwrap(),
            "stem=0.2".parse().unwrap(),
        ],
        layer_bits: vec!["classifier=2".parse().unwrap()],
        ..Default::default()
    };
    let names = host::compress::conv_names(&model_cfg);
    let targets = host::compress::layer_targets(&ft, &names).unwrap();
    assert_eq!(targets[0], (0.2, 3));
    assert_eq!(*targets.last().unwrap(), (0.6, 2));
    cfg.finetune = Some(ft);
    let f1 = compress(run.path(), &small, &cfg).unwrap();
    let f2 = compress(run.path(), &small, &cfg).unwrap();
    assert!(
        f1.blob == f2.blob,
        "fine-tuned compression is not deterministic"
    );
    // Stopped after 3 fine-tuning epochs (inside round 2) and resumed: the same blob and stage
    // accuracies as the uninterrupted run. An interrupted run is neither overwritten without
    // `resume` nor resumed with other settings.
    let ck_root = tempfile::tempdir().unwrap();
    let ck = Checkpointing {
        dir: ck_root.path().join("m.checkpoint"),
        resume: false,
        stop_after: Some(3),
    };
    let err = compress_resumable(run.path(), &small, &cfg, Some(&ck)).unwrap_err();
    let stopped = err.downcast_ref::<Stopped>().expect("a clean stop");
    assert_eq!((stopped.epochs, stopped.round), (3, 2), "{err:#}");
    let ck = Checkpointing {
        stop_after: None,
        ..ck
    };
    // The refusals come before the run is loaded and evaluated: a run directory holding only
    // best.bpk (no config.json) gets the checkpoint's error, not the missing file's.
    let bare = tempfile::tempdir().unwrap();
    std::fs::copy(run.path().join("best.bpk"), bare.path().join("best.bpk")).unwrap();
    let err = compress_resumable(bare.path(), &small, &cfg, Some(&ck)).unwrap_err();
    assert!(
        format!("{err:#}").contains("interrupted compression"),
        "{err:#}"
    );
    let ck = Checkpointing { resume: true, ..ck };
    let mut other = cfg.clone();
    other.finetune.as_mut().unwrap().seed += 1;
    let err = compress_resumable(bare.path(), &small, &other, Some(&ck)).unwrap_err();
    assert!(
        format!("{err:#}").contains("other fine-tuning settings"),
        "{err:#}"
    );
    // The checkpoint is tied to the bytes of the weights it started from.
    let mut changed = std::fs::read(bare.path().join("best.bpk")).unwrap();
    changed.push(0);
    std::fs::write(bare.path().join("best.bpk"), changed).unwrap();
    let err = compress_resumable(bare.path(), &small, &cfg, Some(&ck)).unwrap_err();
    assert!(
        format!("{err:#}").contains("other trained weights"),
        "{err:#}"
    );
    let f3 = compress_resumable(run.path(), &small, &cfg, Some(&ck)).unwrap();
    assert!(
        f3.blob == f1.blob,
        "the resumed compression differs from the uninterrupted one"
    );
    let accs = |c: &host::compress::Compressed| -> Vec<(String, f64)> {
        c.report
            .stages
            .iter()
            .map(|s| (s.stage.clone(), s.val_acc))
            .collect()
    };
    assert_eq!(accs(&f3), accs(&f1));
    std::fs::write(ck.dir.join("state.json"), "{ \"round\": ").unwrap();
    let err = compress_resumable(bare.path(), &small, &cfg, Some(&ck)).unwrap_err();
    assert!(
        format!("{err:#}").contains("corrupt fine-tuning checkpoint"),
        "{err:#}"
    );
    let decoded = host::compress::decoded_weights(&f1.blob).unwrap();
    assert_eq!(decoded.len(), names.len());
    for (i, w) in decoded.iter().enumerate() {
        let target = targets[i].0;
        let zeros = w.iter().filter(|x| **x == 0).count();
        assert!(
            zeros >= (w.len() as f64 * target).floor() as usize,
            "layer {i}: {zeros} of {} weights are zero",
            w.len()
        );
    }
    for (i, w) in decoded.iter().enumerate() {
        let mut v = w.clone();
        v.sort_unstable();
        v.dedup();
        let most = 1usize << targets[i].1;
        assert!(v.len() <= most, "layer {i} uses {} values", v.len());
    }
    // Staged report: float, two pruning rounds, k-means, centroids, int8, coding.
    let names: Vec<&str> = f1.report.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names.len(), 7, "{names:?}");
    // The int8 stage stores exactly the fine-tuned shared values: only activation rounding
    // separates it from the float stage before it.
    let (float_acc, int8_acc) = (f1.report.stages[4].val_acc, f1.report.stages[5].val_acc);
    assert!(
        (float_acc - int8_acc).abs() <= 0.03,
        "{}",
        f1.report.markdown()
    );
    std::fs::write(&blob, &f1.blob).unwrap();
    let r = host::verify::run_all(&blob, None, &small, 2, 100, 5).unwrap();
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
