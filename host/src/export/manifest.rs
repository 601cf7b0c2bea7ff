//! `MANIFEST.json`: what a model directory ships (every artifact of the model, `NAME.*`, with
//! its SHA-256 and size; not the prose beside them) and how it was made (the test accuracy, the
//! commands); written after compression, checked before the shipped model is trusted.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use crate::compress::run::Compressed;
use crate::store::{sha256_hex, write_atomic};
use crate::train::checkpoint::read_run_config;

/// One file of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    /// File name inside the directory.
    pub name: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// `MANIFEST.json`: what the directory ships and how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The blob's file name.
    pub blob: String,
    /// Test accuracy of the blob on the `shared` kernels (10,000 images).
    pub test_accuracy: f64,
    /// Correct test images (so the test can check exactly).
    pub test_correct: usize,
    /// Test accuracy of the float network.
    pub float_test_accuracy: f64,
    /// The training seed.
    pub seed: u64,
    /// The command that trained the network.
    pub train_command: String,
    /// The command that compressed it.
    pub compress_command: String,
    /// Class names in label order (absent: Fashion-MNIST's), also in `NAME.classes.txt`.
    #[serde(
        default = "crate::data::fashion_mnist_classes",
        skip_serializing_if = "crate::data::is_fashion_mnist_classes"
    )]
    pub classes: Vec<String>,
    /// Where the images came from (absent: Fashion-MNIST).
    #[serde(
        default,
        skip_serializing_if = "crate::data::DataSource::is_fashion_mnist"
    )]
    pub data: crate::data::DataSource,
    /// Every file with its digest.
    pub files: Vec<ManifestFile>,
}

/// Copies the run's records next to the blob and writes `MANIFEST.json` over every file.
pub fn write_manifest(
    out: &Path,
    run: &Path,
    name: &str,
    c: &Compressed,
    test_correct: usize,
) -> Result<()> {
    let facts = ManifestFacts {
        test_accuracy: c.report.test_acc,
        test_correct,
        float_test_accuracy: c.report.float_test_acc,
        compress_command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    write_manifest_with(out, run, name, &facts)
}

/// What a manifest states beyond the files' digests.
#[derive(Debug, Clone)]
pub struct ManifestFacts {
    /// Test accuracy of the blob on the `shared` kernels.
    pub test_accuracy: f64,
    /// Correct test images.
    pub test_correct: usize,
    /// Test accuracy of the float network.
    pub float_test_accuracy: f64,
    /// The command that compressed the model.
    pub compress_command: String,
}

/// [`write_manifest`] from stated facts (used by `sqz manifest` for a directory whose compression
/// ran elsewhere).
pub fn write_manifest_with(
    out: &Path,
    run: &Path,
    name: &str,
    facts: &ManifestFacts,
) -> Result<()> {
    let tcfg = read_run_config(run)?;
    for f in [
        "config.json",
        "metrics.csv",
        "curves.png",
        "confusion.png",
        "result.json",
        "command.txt",
    ] {
        let src = run.join(f);
        if src.is_file() {
            std::fs::copy(&src, out.join(format!("{name}.train.{f}")))
                .with_context(|| format!("while copying {}", src.display()))?;
        }
    }
    // The trained weights and their config, for the float parity check (burn vs tract).
    let keep = out.join(format!("{name}.run"));
    std::fs::create_dir_all(&keep)?;
    let same = |a: &Path, b: &Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().ok() == Some(a))
    };
    for f in ["config.json", "best.bpk"] {
        // Copying a file onto itself would truncate it.
        if !same(&run.join(f), &keep.join(f)) {
            std::fs::copy(run.join(f), keep.join(f))
                .with_context(|| format!("while copying {f}"))?;
        }
    }
    // The shipped copy of the run's command.txt: copied above, or kept from an earlier copy
    // when the run directory no longer holds it.
    let train_command = std::fs::read_to_string(out.join(format!("{name}.train.command.txt")))
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        // The model's own artifacts are named after it; prose beside them (README.md,
        // BENCHMARKS.md) changes with every measurement and is not part of the model.
        .filter(|p| p.is_file() && is_artifact_of(name, p))
        .chain([keep.join("config.json"), keep.join("best.bpk")])
        .collect();
    entries.sort();
    for p in entries {
        let bytes = std::fs::read(&p)?;
        files.push(ManifestFile {
            name: p
                .strip_prefix(out)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned(),
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
        });
    }
    let m = Manifest {
        blob: format!("{name}.blob"),
        test_accuracy: facts.test_accuracy,
        test_correct: facts.test_correct,
        float_test_accuracy: facts.float_test_accuracy,
        seed: tcfg.seed,
        train_command,
        compress_command: facts.compress_command.clone(),
        classes: tcfg.classes.clone(),
        data: tcfg.data.clone(),
        files,
    };
    write_atomic(
        &out.join("MANIFEST.json"),
        serde_json::to_string_pretty(&m)?.as_bytes(),
    )
}

/// True for `NAME.*`: the files a model directory ships for model `name`.
fn is_artifact_of(name: &str, path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(&format!("{name}.")))
}

/// Reads and checks `dir/MANIFEST.json`: every listed file present with its digest and size.
pub fn check_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("MANIFEST.json");
    let m: Manifest = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("while reading {}", path.display()))?,
    )
    .with_context(|| format!("{}: not a manifest", path.display()))?;
    for f in &m.files {
        let p = dir.join(&f.name);
        let bytes = std::fs::read(&p)
            .with_context(|| format!("{}: listed in the manifest but unreadable", p.display()))?;
        ensure!(
            bytes.len() as u64 == f.bytes,
            "{}: {} bytes, manifest says {}",
            p.display(),
            bytes.len(),
            f.bytes
        );
        let found = sha256_hex(&bytes);
        ensure!(
            found == f.sha256,
            "{}: SHA-256 {found}, manifest says {}",
            p.display(),
            f.sha256
        );
    }
    Ok(m)
}
