//! `sqz classify` on picture files made from Fashion-MNIST test images: the class it prints is
//! the one the `shared` kernels give those pixels, with the names `sqz export` writes beside the
//! blob; a larger colour JPEG is converted and resized; a broken file is named and the other
//! pictures are still answered.

use std::path::PathBuf;
use std::process::Command;

use host::data::{CLASS_NAMES, FashionMnist};

#[test]
fn pictures_get_the_kernels_answer_by_name() {
    let data = FashionMnist::load(None).expect("Fashion-MNIST must be available for this test");
    let blob_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/shipped.blob");
    let blob = std::fs::read(&blob_path).unwrap();
    let mut kernels = host::link::host_reference(&blob).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for i in 0..4 {
        let px = data.test.image(i).to_vec();
        let logits = kernels(&px);
        expected.push(host::eval::argmax_i8(&logits));
        let path = dir.path().join(format!("p{i}.png"));
        image::GrayImage::from_raw(28, 28, px)
            .unwrap()
            .save(&path)
            .unwrap();
        files.push(path);
    }
    let grey = image::GrayImage::from_raw(28, 28, data.test.image(0).to_vec()).unwrap();
    let big = image::DynamicImage::ImageLuma8(grey)
        .resize_exact(56, 56, image::imageops::FilterType::Nearest)
        .into_rgb8();
    let jpg = dir.path().join("big.jpg");
    big.save(&jpg).unwrap();
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"not a picture").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_sqz"))
        .arg("classify")
        .arg(&blob_path)
        .args(&files)
        .args([&jpg, &bad])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(!o.status.success(), "a broken picture fails the command");
    assert!(
        stderr.contains("bad.png") && stderr.contains("1 of 6 pictures"),
        "{stderr}"
    );
    for (f, c) in files.iter().zip(&expected) {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{}:", f.display())))
            .unwrap_or_else(|| panic!("no answer for {}: {stdout}", f.display()));
        let best = format!("{}: {} ({c}) ", f.display(), CLASS_NAMES[*c]);
        assert!(line.starts_with(&best), "{line} (expected {best})");
    }
    assert!(stdout.contains(&format!("{}: ", jpg.display())), "{stdout}");
}
