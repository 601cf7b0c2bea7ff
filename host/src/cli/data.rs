//! `sqz data`, and where every command's images come from: Fashion-MNIST (`--data`) or a
//! folder of the user's own labelled pictures (`--images`).

use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use clap::Args;

use crate::data::{DataSource, Dataset, FashionMnist, FolderReport, FolderSpec, load_folder};

/// Where the images come from.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Fashion-MNIST: directory with the four IDX files (gzipped or not). Default:
    /// $FASHION_MNIST_DIR, then data/fashion-mnist, then ../shared/data/fashion-mnist, then a
    /// verified download.
    #[arg(long, value_name = "DIR", conflicts_with = "images")]
    pub data: Option<PathBuf>,
    /// Your own labelled pictures instead of Fashion-MNIST: one sub-folder per class
    /// (DIR/<class>/*.png, .jpg, .bmp, .gif, .tif, .webp), or DIR/train/<class> and
    /// DIR/test/<class> when you have a split. Commands given a training run (--run) read the
    /// run's folder by default.
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// With --images: 1 converts every picture to grey (BT.709 luma), 3 to RGB. Default: as
    /// the pictures are (grey and colour mixed is an error).
    #[arg(long, value_name = "1|3", requires = "images", value_parser = clap::value_parser!(u8).range(1..=3))]
    pub channels: Option<u8>,
    /// With --images: the side, in pixels, every picture is resized to (triangle filter,
    /// aspect not kept), and so the network's input. Up to 32 px the network starts with a
    /// 3x3 stride-1 stem, above with the paper's stride-2 stem.
    #[arg(long, value_name = "PX", requires = "images", default_value_t = 32)]
    pub input_size: usize,
    /// With --images and no train/ and test/ folders: the share of every class held out for
    /// test (a seeded, stratified split; validation is a tenth of the rest unless --val-count).
    #[arg(
        long,
        value_name = "FRACTION",
        requires = "images",
        default_value_t = 0.2
    )]
    pub test_fraction: f64,
    /// With --images: seed of the split.
    #[arg(long, value_name = "N", requires = "images", default_value_t = 1)]
    pub split_seed: u64,
    /// With --images: leave out unreadable pictures, pictures of the less common channel count,
    /// pictures outside class folders and empty classes, and say how many, instead of stopping.
    #[arg(long, requires = "images")]
    pub skip_bad: bool,
}

impl DataArgs {
    /// The images the flags name.
    pub(super) fn load(&self) -> Result<Dataset> {
        match &self.images {
            Some(dir) => self.load_folder(self.folder_spec(dir)),
            None => {
                let d = FashionMnist::load(self.data.as_deref())?;
                eprintln!(
                    "data: {} ({} train, {} test)",
                    d.dir.display(),
                    d.train.len(),
                    d.test.len()
                );
                Ok(d)
            }
        }
    }

    /// The images of the training run `run` (its recorded folder, read the same way) unless the
    /// flags name others; without a run, [`Self::load`].
    pub(super) fn load_for_run(&self, run: Option<&Path>) -> Result<Dataset> {
        let recorded = match run {
            Some(run) => crate::train::checkpoint::read_run_config(run)?.data,
            None => DataSource::FashionMnist,
        };
        match recorded {
            DataSource::Images(spec) if self.images.is_none() && self.data.is_none() => {
                self.load_folder(spec)
            }
            _ => self.load(),
        }
    }

    fn folder_spec(&self, dir: &Path) -> FolderSpec {
        FolderSpec {
            // Absolute, so later stages find it from any working directory.
            dir: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
            channels: self.channels.map(usize::from),
            input_size: self.input_size,
            test_fraction: self.test_fraction,
            seed: self.split_seed,
            skip_bad: self.skip_bad,
            files_sha256: None,
        }
    }

    fn load_folder(&self, spec: FolderSpec) -> Result<Dataset> {
        ensure!(
            spec.channels.is_none_or(|c| c == 1 || c == 3),
            "--channels must be 1 (grey) or 3 (RGB)"
        );
        ensure!(
            (4..=1024).contains(&spec.input_size),
            "--input-size must be 4..=1024 pixels, got {}",
            spec.input_size
        );
        ensure!(
            spec.test_fraction > 0.0 && spec.test_fraction < 1.0,
            "--test-fraction must be in (0, 1), got {}",
            spec.test_fraction
        );
        let (d, report) = load_folder(&spec)?;
        eprintln!("{}", describe(&d, &report));
        Ok(d)
    }
}

/// One paragraph on a folder read: sizes, classes, split, and what was left out.
fn describe(d: &Dataset, report: &FolderReport) -> String {
    let mut s = format!(
        "data: {} ({} train, {} test; {} classes; {}x{}, {} channel(s); {})",
        d.dir.display(),
        d.train.len(),
        d.test.len(),
        d.classes.len(),
        d.side(),
        d.side(),
        d.channels(),
        if report.split_given {
            "its own train/test split"
        } else {
            "seeded stratified split"
        }
    );
    if report.ignored > 0 {
        s += &format!(
            "\n  {} files ignored (not pictures by their extension)",
            report.ignored
        );
    }
    if !report.skipped.is_empty() {
        s += &format!("\n  skipped (--skip-bad): {}", report.skipped.len());
        for (path, why) in report.skipped.iter().take(10) {
            s += &format!("\n    {}: {why}", path.display());
        }
        if report.skipped.len() > 10 {
            s += &format!("\n    ... and {} more", report.skipped.len() - 10);
        }
    }
    s
}

/// `sqz data`: finds, verifies and summarises the data set.
pub fn data(args: DataArgs) -> Result<()> {
    let d = args.load()?;
    let width = d.classes.iter().map(String::len).max().unwrap_or(0).max(5);
    for (name, split) in [("train", &d.train), ("test", &d.test)] {
        println!("{name}: {} images", split.len());
        for (c, n) in split.class_counts(d.classes.len()).iter().enumerate() {
            println!("  {c} {:<width$} {n}", d.classes[c]);
        }
    }
    Ok(())
}

/// `sqz make-folder`.
#[derive(Debug, Args)]
pub struct MakeFolderArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Where to write DIR/train/<class>/*.png and DIR/test/<class>/*.png (or DIR/<class>/ with
    /// --flat).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Only the first N classes.
    #[arg(long, value_name = "N")]
    classes: Option<usize>,
    /// At most N training pictures per class (default: all).
    #[arg(long, value_name = "N")]
    train_per_class: Option<usize>,
    /// At most N test pictures per class (default: all).
    #[arg(long, value_name = "N")]
    test_per_class: Option<usize>,
    /// One folder per class, no train/ and test/ (the reader then makes its seeded split).
    #[arg(long)]
    flat: bool,
    /// Recolour every picture (a random dark background and bright foreground per picture;
    /// RGB files).
    #[arg(long)]
    colour: bool,
    /// Side of the written pictures, or a range MIN..MAX picked from at random per picture.
    #[arg(long, value_name = "PX|MIN..MAX", value_parser = parse_sides)]
    sides: Option<(u32, u32)>,
    /// Share of the pictures written as JPEG instead of PNG, in [0, 1].
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    jpeg_share: f64,
    /// Seed of the colours, sizes and formats.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn parse_sides(s: &str) -> std::result::Result<(u32, u32), String> {
    let parse = |t: &str| t.trim().parse::<u32>().map_err(|e| format!("{t:?}: {e}"));
    match s.split_once("..") {
        Some((a, b)) => Ok((parse(a)?, parse(b.trim_start_matches('='))?)),
        None => parse(s).map(|v| (v, v)),
    }
}

/// `sqz make-folder`: a data set written as a folder of pictures.
pub fn make_folder(args: MakeFolderArgs) -> Result<()> {
    ensure!(
        (0.0..=1.0).contains(&args.jpeg_share),
        "--jpeg-share must be in [0, 1], got {}",
        args.jpeg_share
    );
    ensure!(
        !args.out.exists() || std::fs::read_dir(&args.out)?.next().is_none(),
        "{} exists and is not empty; give a new folder",
        args.out.display()
    );
    let d = args.data.load()?;
    let opts = crate::data::folder_write::WriteOptions {
        classes: args.classes.unwrap_or(d.classes.len()),
        train_per_class: args.train_per_class,
        test_per_class: args.test_per_class,
        flat: args.flat,
        colour: args.colour,
        sides: args.sides.unwrap_or((d.side() as u32, d.side() as u32)),
        jpeg_share: args.jpeg_share,
        seed: args.seed,
    };
    let n = crate::data::folder_write::write_folder(&d, &args.out, &opts)?;
    println!("wrote {n} pictures in {}", args.out.display());
    Ok(())
}
