//! `sqz export`, `sqz manifest` and `sqz golden`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::data::DataArgs;

/// `sqz export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The training run the blob was made from (its float network becomes NAME.float.onnx).
    #[arg(long, default_value = "runs/train")]
    run: PathBuf,
    /// The blob (becomes NAME.blob and NAME.int8.onnx).
    #[arg(long)]
    blob: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "runs/export")]
    out: PathBuf,
    /// Base name of the files.
    #[arg(long, default_value = "squeezenet")]
    name: String,
}

/// `sqz manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The model directory (NAME.blob, NAME.compress.json, ...).
    #[arg(long, default_value = "models")]
    dir: PathBuf,
    /// The training run the model came from (config.json, best.bpk, command.txt, records).
    #[arg(long)]
    run: PathBuf,
    /// Base name of the model files.
    #[arg(long, default_value = "shipped")]
    name: String,
    /// The exact `sqz compress` command that produced NAME.blob.
    #[arg(long)]
    compress_command: String,
}

/// `sqz golden`.
#[derive(Debug, Args)]
pub struct GoldenArgs {
    /// Output file.
    #[arg(long, default_value = "shared/tests/golden/example.golden")]
    out: PathBuf,
    /// Seed of shared's example network.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seed of the input image.
    #[arg(long, default_value_t = 2)]
    input_seed: u64,
}

/// `sqz export`.
pub fn export(args: ExportArgs) -> Result<()> {
    for f in crate::export::files::export_files(&args.run, &args.blob, &args.out, &args.name)? {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// `sqz manifest`.
pub fn manifest(args: ManifestArgs) -> Result<()> {
    let report_path = args.dir.join(format!("{}.compress.json", args.name));
    let report: crate::compress::run::CompressReport = serde_json::from_slice(
        &std::fs::read(&report_path)
            .with_context(|| format!("while reading {}", report_path.display()))?,
    )
    .with_context(|| format!("{}: not a compression report", report_path.display()))?;
    let blob_path = args.dir.join(format!("{}.blob", args.name));
    let blob = std::fs::read(&blob_path)
        .with_context(|| format!("while reading {}", blob_path.display()))?;
    let d = args.data.load_for_run(Some(&args.run))?;
    let (acc, _) = crate::eval::evaluate_blob(&blob, &d.test)?;
    let correct = (acc * d.test.len() as f64).round() as usize;
    let facts = crate::export::manifest::ManifestFacts {
        test_accuracy: acc,
        test_correct: correct,
        float_test_accuracy: report.float_test_acc,
        compress_command: args.compress_command.clone(),
    };
    crate::export::manifest::write_manifest_with(&args.dir, &args.run, &args.name, &facts)?;
    println!(
        "{}: test {:.2} % ({correct} / {}) on the shared kernels; wrote {}",
        blob_path.display(),
        100.0 * acc,
        d.test.len(),
        args.dir.join("MANIFEST.json").display()
    );
    Ok(())
}

/// `sqz golden`.
pub fn golden(args: GoldenArgs) -> Result<()> {
    let text = crate::export::golden::generate(args.seed, args.input_seed)?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::store::write_atomic(&args.out, text.as_bytes())?;
    println!(
        "wrote {} ({} tensors)",
        args.out.display(),
        text.lines().filter(|l| !l.starts_with('#')).count()
    );
    Ok(())
}
