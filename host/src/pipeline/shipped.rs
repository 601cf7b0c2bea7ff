//! The main job on the embedded default: the shipped model in `models/` checked end to end.
//!
//! 1. every file's SHA-256 against `MANIFEST.json`;
//! 2. the blob on the `shared` kernels over the 10,000 test images: exactly the manifest's count;
//! 3. parity with tract (per layer, whole network, float);
//! 4. optionally the firmware in QEMU: test images over the serial link, logits bit for bit.

use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::data::Dataset;
use crate::export::manifest::check_manifest;

/// Runs the main job; `qemu_elf` adds the device check.
pub fn run(
    dir: &Path,
    data: &Dataset,
    qemu_elf: Option<&Path>,
    device_images: usize,
) -> Result<()> {
    let m = check_manifest(dir)?;
    println!("1. manifest: {} files, digests match", m.files.len());
    let blob_path = dir.join(&m.blob);
    let blob = std::fs::read(&blob_path)
        .with_context(|| format!("while reading {}", blob_path.display()))?;
    let (acc, _) = crate::eval::evaluate_blob(&blob, &data.test)?;
    let correct = (acc * data.test.len() as f64).round() as usize;
    println!(
        "2. {} on the shared kernels: {:.2} % test top-1 ({correct} / {}), manifest {} ({:.2} %), float {:.2} %",
        m.blob,
        100.0 * acc,
        data.test.len(),
        m.test_correct,
        100.0 * m.test_accuracy,
        100.0 * m.float_test_accuracy
    );
    ensure!(
        correct == m.test_correct,
        "test accuracy differs from the manifest"
    );
    let run = dir.join("shipped.run");
    let report = crate::verify::parity::run_all(
        &blob_path,
        run.is_dir().then_some(run.as_path()),
        data,
        20,
        data.test.len(),
        200,
    )?;
    println!("3. parity with tract:\n{}", report.markdown);
    ensure!(report.passed, "parity with tract failed");
    if let Some(elf) = qemu_elf {
        let mut link = crate::link::DeviceLink::qemu(elf)?;
        let info = link.info()?;
        crate::link::check_same_model(&info, &blob)?;
        let n = device_images.min(data.test.len());
        let images = (0..n).map(|i| data.test.image(i));
        let r = crate::link::eval(
            &mut link,
            images,
            Some(&data.test.labels[..n]),
            crate::link::host_reference(&blob)?,
            |_| {},
        )?;
        println!("4. firmware in QEMU (mps2-an386): {r}");
        ensure!(
            r.logits_match == r.images,
            "device logits differ from the host kernels"
        );
    }
    println!("shipped model OK");
    Ok(())
}
