//! Folders of labelled pictures (`--images`): both layouts, the stratified split, the same
//! preprocessing as `sqz classify`, and one clear error (or, with `skip_bad`, a count) for each
//! kind of bad data.

use std::path::Path;

use host::data::picture::load_picture;
use host::data::{DataSource, Dataset, FolderReport, FolderSpec, load_folder};

fn spec(dir: &Path) -> FolderSpec {
    FolderSpec {
        dir: dir.to_path_buf(),
        channels: None,
        input_size: 16,
        test_fraction: 0.2,
        seed: 1,
        skip_bad: false,
        files_sha256: None,
    }
}

/// A colour picture of `w x h` whose colour depends on `class` and `i`.
fn rgb(path: &Path, w: u32, h: u32, class: u8, i: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            class * 80,
            (x as u8).wrapping_mul(i),
            (y as u8).wrapping_add(i),
        ])
    });
    img.save(path).unwrap();
}

fn grey(path: &Path, w: u32, h: u32, v: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(w, h, image::Luma([v]))
        .save(path)
        .unwrap();
}

/// `classes` class folders of `per_class` pictures each, PNG and JPEG, of mixed sizes.
fn colour_folder(dir: &Path, classes: &[&str], per_class: u8) {
    for (c, name) in classes.iter().enumerate() {
        for i in 0..per_class {
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            let side = 12 + u32::from(i % 5) * 7;
            rgb(
                &dir.join(name).join(format!("{i:03}.{ext}")),
                side,
                side + 3,
                c as u8,
                i,
            );
        }
    }
}

fn load(s: &FolderSpec) -> (Dataset, FolderReport) {
    load_folder(s).unwrap_or_else(|e| panic!("{e:#}"))
}

fn err(s: &FolderSpec) -> String {
    format!("{:#}", load_folder(s).unwrap_err())
}

#[test]
fn class_folders_split_stratified_and_seeded() {
    let dir = tempfile::tempdir().unwrap();
    colour_folder(dir.path(), &["cat", "bird", "ant"], 20);
    std::fs::write(dir.path().join("bird/notes.txt"), "not a picture").unwrap();
    let (d, report) = load(&spec(dir.path()));
    assert_eq!(d.classes, ["ant", "bird", "cat"]);
    assert_eq!((d.channels(), d.side()), (3, 16));
    assert_eq!((d.train.len(), d.test.len()), (48, 12));
    assert_eq!(d.test.class_counts(3), [4, 4, 4]);
    assert_eq!(report.ignored, 1);
    assert!(!report.split_given);
    // Stratified order: the validation tail holds every class in proportion too.
    assert_eq!(d.default_val_count(), 4);
    let (_, val) = d.train_val(6);
    assert!(
        val.class_counts(3).iter().all(|&n| n == 2),
        "{:?}",
        val.class_counts(3)
    );
    // The same seed reads the same; another seed splits differently.
    let (again, _) = load(&spec(dir.path()));
    assert_eq!(
        (again.train.images, again.test.labels),
        (d.train.images.clone(), d.test.labels.clone())
    );
    let (other, _) = load(&FolderSpec {
        seed: 2,
        ..spec(dir.path())
    });
    assert_ne!(other.train.images, d.train.images);
    // The run records the folder with its file list's digest.
    match &d.source {
        DataSource::Images(s) => assert!(s.files_sha256.is_some()),
        other => panic!("recorded {other:?}"),
    }
}

#[test]
fn a_given_split_is_kept_and_preprocessed_as_classify_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (c, name) in ["no", "yes"].iter().enumerate() {
        for i in 0..3u8 {
            rgb(
                &root.join("train").join(name).join(format!("{i}.png")),
                30,
                20,
                c as u8,
                i,
            );
        }
        rgb(
            &root.join("test").join(name).join("t.jpg"),
            17,
            40,
            c as u8,
            9,
        );
    }
    let (d, report) = load(&FolderSpec {
        channels: Some(1),
        ..spec(root)
    });
    assert!(report.split_given);
    assert_eq!((d.train.len(), d.test.len(), d.channels()), (6, 2, 1));
    for i in 0..2 {
        let class = &d.classes[d.test.labels[i] as usize];
        let file = root.join("test").join(class).join("t.jpg");
        assert_eq!(
            d.test.image(i),
            load_picture(&file, 16, 16, 1).unwrap().as_slice()
        );
    }
    // A test class the training set lacks cannot be learned.
    rgb(&root.join("test/maybe/x.png"), 8, 8, 2, 0);
    let e = err(&spec(root));
    assert!(
        e.contains("maybe") && e.contains("no training folder"),
        "{e}"
    );
}

#[test]
fn unreadable_pictures_are_named_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    colour_folder(dir.path(), &["a", "b"], 6);
    let bad = dir.path().join("b/002.png");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let e = err(&spec(dir.path()));
    assert!(e.contains("002.png") && e.contains("--skip-bad"), "{e}");
    let (d, report) = load(&FolderSpec {
        skip_bad: true,
        ..spec(dir.path())
    });
    assert_eq!(d.train.len() + d.test.len(), 11);
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].0.ends_with("b/002.png"),
        "{:?}",
        report.skipped
    );
}

#[test]
fn empty_and_single_classes_and_empty_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    colour_folder(dir.path(), &["a", "b"], 5);
    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    std::fs::write(dir.path().join("c/readme.md"), "nothing here").unwrap();
    let e = err(&spec(dir.path()));
    assert!(
        e.contains("c") && e.contains("no pictures") && e.contains("--skip-bad"),
        "{e}"
    );
    let (d, report) = load(&FolderSpec {
        skip_bad: true,
        ..spec(dir.path())
    });
    assert_eq!(d.classes, ["a", "b"]);
    assert!(
        report
            .skipped
            .iter()
            .any(|(p, why)| p.ends_with("c") && why.contains("class"))
    );

    let one = tempfile::tempdir().unwrap();
    colour_folder(one.path(), &["only"], 4);
    let e = err(&spec(one.path()));
    assert!(e.contains("only one class") && e.contains("only"), "{e}");

    let empty = tempfile::tempdir().unwrap();
    let e = err(&spec(empty.path()));
    assert!(e.contains("no class folders"), "{e}");
    std::fs::create_dir_all(empty.path().join("x")).unwrap();
    std::fs::create_dir_all(empty.path().join("y")).unwrap();
    let e = err(&FolderSpec {
        skip_bad: true,
        ..spec(empty.path())
    });
    assert!(e.contains("no pictures"), "{e}");
    let e = err(&spec(&empty.path().join("missing")));
    assert!(e.contains("no such folder") && e.contains("missing"), "{e}");
}

#[test]
fn mixed_channel_counts_need_a_choice() {
    let dir = tempfile::tempdir().unwrap();
    colour_folder(dir.path(), &["a", "b"], 5);
    grey(&dir.path().join("a/grey.png"), 10, 10, 77);
    let e = err(&spec(dir.path()));
    assert!(e.contains("grey.png") && e.contains("--channels"), "{e}");
    let (d, _) = load(&FolderSpec {
        channels: Some(3),
        ..spec(dir.path())
    });
    assert_eq!((d.channels(), d.train.len() + d.test.len()), (3, 11));
    let (d, report) = load(&FolderSpec {
        skip_bad: true,
        ..spec(dir.path())
    });
    assert_eq!((d.channels(), d.train.len() + d.test.len()), (3, 10));
    assert_eq!(report.skipped.len(), 1);
}

#[test]
fn pictures_outside_class_folders_and_changed_folders() {
    let dir = tempfile::tempdir().unwrap();
    colour_folder(dir.path(), &["a", "b"], 5);
    rgb(&dir.path().join("stray.png"), 8, 8, 0, 0);
    let e = err(&spec(dir.path()));
    assert!(e.contains("stray.png") && e.contains("class folder"), "{e}");
    let (d, report) = load(&FolderSpec {
        skip_bad: true,
        ..spec(dir.path())
    });
    assert_eq!(report.skipped.len(), 1);
    // A later stage reading the recorded folder notices a file added since.
    let recorded = match d.source {
        DataSource::Images(s) => s,
        other => panic!("recorded {other:?}"),
    };
    rgb(&dir.path().join("a/new.png"), 8, 8, 0, 1);
    let e = err(&recorded);
    assert!(e.contains("changed"), "{e}");
}
