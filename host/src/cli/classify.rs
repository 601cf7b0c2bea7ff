//! `sqz classify`: the class of your own picture files, on the `shared` kernels (the code the
//! firmware runs) or on the firmware itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Args;

use crate::data::picture::{RESIZE_FILTER, load_picture};

/// `sqz classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The model blob.
    blob: PathBuf,
    /// Picture files (PNG, JPEG, BMP, GIF, TIFF, WebP), converted to the model's channels and
    /// resized to its input (triangle filter) as needed.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Class names, one per line. Default: NAME.classes.txt beside the blob (`sqz export`
    /// writes it), else class numbers.
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,
    /// Classes listed per picture, best first.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Ask the firmware instead: this ELF (built with the same blob) booted in QEMU. Its logits
    /// are checked against the host's, bit for bit.
    #[arg(long, value_name = "ELF", conflicts_with = "port")]
    qemu: Option<PathBuf>,
    /// Ask a flashed board on this serial port instead (e.g. /dev/ttyACM0).
    #[arg(long, value_name = "TTY")]
    port: Option<PathBuf>,
    /// Baud rate of --port.
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
}

/// One picture's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Quantised logits.
    pub logits: Vec<i8>,
    /// Softmax of the dequantised logits, per class.
    pub probabilities: Vec<f64>,
}

impl Answer {
    fn new(logits: Vec<i8>, model: &shared::Model<'_>) -> Self {
        let q = model.output_quant();
        let real: Vec<f64> = logits
            .iter()
            .map(|&l| f64::from(q.scale) * (f64::from(l) - f64::from(q.zero_point)))
            .collect();
        let max = real.iter().copied().fold(f64::MIN, f64::max);
        let exp: Vec<f64> = real.iter().map(|r| (r - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        Answer {
            logits,
            probabilities: exp.iter().map(|e| e / sum).collect(),
        }
    }

    /// Classes by falling probability (ties: the lower class first, as the device's argmax).
    pub fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.logits.len()).collect();
        order.sort_by(|&a, &b| self.logits[b].cmp(&self.logits[a]).then(a.cmp(&b)));
        order
    }
}

/// The class names for `blob`: `explicit`, else `NAME.classes.txt` beside it (`NAME` the file
/// name without `.blob`, or up to its first dot: `shipped.fast.blob` finds
/// `shipped.classes.txt`), else none.
pub fn class_names(
    blob: &Path,
    explicit: Option<&Path>,
    classes: usize,
) -> Result<Option<Vec<String>>> {
    let file = blob
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let first = file.split('.').next().unwrap_or_default();
    let beside = [
        blob.with_extension("classes.txt"),
        blob.with_file_name(format!("{first}.classes.txt")),
    ];
    let path = match (explicit, beside.iter().find(|p| p.exists())) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => p.clone(),
        (None, None) => return Ok(None),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("while reading the class names {}", path.display()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    ensure!(
        names.len() == classes,
        "{} names {} classes, the model has {classes}",
        path.display(),
        names.len()
    );
    Ok(Some(names))
}

/// `sqz classify`.
pub fn classify(args: ClassifyArgs) -> Result<()> {
    let blob = std::fs::read(&args.blob)
        .with_context(|| format!("while reading the model blob {}", args.blob.display()))?;
    let model = shared::Model::from_bytes(&blob)
        .map_err(|e| anyhow!("{}: model blob refused: {e}", args.blob.display()))?;
    let d = model.input_dims();
    let names = class_names(&args.blob, args.classes.as_deref(), model.num_classes())?;
    let name = |c: usize| match &names {
        Some(n) => format!("{} ({c})", n[c]),
        None => format!("class {c}"),
    };
    let mut device = match (&args.qemu, &args.port) {
        (None, None) => None,
        (qemu, port) => {
            let timeout = std::time::Duration::from_secs(20);
            let mut link =
                crate::link::connect(qemu.as_deref(), port.as_deref(), args.baud, timeout)?;
            let info = link.info()?;
            crate::link::check_same_model(&info, &blob)?;
            let unit = match info.cost_unit {
                shared::protocol::CostUnit::Instructions => "instructions",
                shared::protocol::CostUnit::Cycles => "cycles",
            };
            Some((link, unit))
        }
    };
    let mut host = crate::link::host_reference(&blob)?;
    eprintln!(
        "model: {} ({}x{}x{} input, {} classes); pictures resized with a {RESIZE_FILTER} filter",
        args.blob.display(),
        d.h,
        d.w,
        d.c,
        model.num_classes()
    );
    let mut failed = 0;
    for path in &args.images {
        let answer = load_picture(path, d.h.into(), d.w.into(), d.c.into()).and_then(|px| {
            let logits = host(&px);
            let Some((link, unit)) = device.as_mut() else {
                return Ok((Answer::new(logits, &model), None));
            };
            let r = link.classify(&px)?;
            ensure!(
                r.logits == logits,
                "the device's logits {:?} differ from the host's {logits:?}",
                r.logits
            );
            Ok((
                Answer::new(r.logits, &model),
                Some(format!("{} {unit}", r.cost)),
            ))
        });
        match answer {
            Ok((a, cost)) => {
                let ranked = a.ranked();
                let list: Vec<String> = ranked
                    .iter()
                    .take(args.top.max(1))
                    .map(|&c| format!("{} {:.1} %", name(c), 100.0 * a.probabilities[c]))
                    .collect();
                let on = cost.map_or(String::new(), |c| {
                    format!("  [device: same logits as the host, cost {c}]")
                });
                println!("{}: {}{on}", path.display(), list.join(", "));
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e:#}", path.display());
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} pictures could not be classified (see above)",
            args.images.len()
        );
    }
    Ok(())
}
