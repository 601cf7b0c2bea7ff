//! A data set written as a folder of picture files, the layout `--images` reads: Fashion-MNIST
//! as PNGs (to check the folder path against the IDX path), or recoloured, rescaled and mixed
//! PNG / JPEG pictures (a stand-in for a user's own photos, for tests and measurements).

use std::path::Path;

use anyhow::{Context, Result, ensure};
use image::imageops::FilterType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::dataset::{Dataset, Split};

/// How to write the pictures.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Only the first `classes` classes.
    pub classes: usize,
    /// At most this many training pictures per class (all when `None`).
    pub train_per_class: Option<usize>,
    /// At most this many test pictures per class (all when `None`).
    pub test_per_class: Option<usize>,
    /// Write `DIR/<class>/` only (the reader then splits), not `DIR/train/` and `DIR/test/`.
    pub flat: bool,
    /// Tint every picture: a random dark background and bright foreground colour per picture
    /// (RGB files).
    pub colour: bool,
    /// Side range of the written pictures (each picked at random in it), e.g. 28..=28.
    pub sides: (u32, u32),
    /// Share of the pictures written as JPEG (the `image` crate's default quality) instead of
    /// PNG.
    pub jpeg_share: f64,
    /// Seed of the colours, sizes and formats.
    pub seed: u64,
}

/// Writes `data` into `out`; returns how many files were written.
pub fn write_folder(data: &Dataset, out: &Path, opts: &WriteOptions) -> Result<usize> {
    ensure!(
        opts.classes >= 2 && opts.classes <= data.classes.len(),
        "--classes must be 2..={}",
        data.classes.len()
    );
    ensure!(
        opts.sides.0 >= 4 && opts.sides.0 <= opts.sides.1,
        "--sides must be MIN..MAX with 4 <= MIN <= MAX"
    );
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut written = 0;
    let bar = super::progress::items_bar(
        (data.train.len() + data.test.len()) as u64,
        "writing pictures",
    );
    for (part, split, limit) in [
        ("train", &data.train, opts.train_per_class),
        ("test", &data.test, opts.test_per_class),
    ] {
        let mut taken = vec![0usize; opts.classes];
        for i in 0..split.len() {
            bar.inc(1);
            let label = split.labels[i] as usize;
            if label >= opts.classes || limit.is_some_and(|n| taken[label] >= n) {
                continue;
            }
            taken[label] += 1;
            let class = folder_name(&data.classes[label]);
            let dir = if opts.flat {
                out.join(&class)
            } else {
                out.join(part).join(&class)
            };
            let jpeg = rng.random_bool(opts.jpeg_share);
            let path = dir.join(format!(
                "{part}-{i:05}.{}",
                if jpeg { "jpg" } else { "png" }
            ));
            write_picture(split, i, &path, opts, &mut rng)?;
            written += 1;
        }
    }
    bar.finish_and_clear();
    Ok(written)
}

/// A class name as a folder name: path separators and other awkward characters become `-`.
pub fn folder_name(class: &str) -> String {
    class
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == ' ' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn write_picture(
    split: &Split,
    i: usize,
    path: &Path,
    opts: &WriteOptions,
    rng: &mut StdRng,
) -> Result<()> {
    let side = split.side as u32;
    let px = split.image(i);
    let img = if opts.colour || split.channels == 3 {
        let (bg, fg) = if opts.colour {
            colour_pair(rng)
        } else {
            ([0; 3], [255; 3])
        };
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(side, side, |x, y| {
            let at = (y * side + x) as usize * split.channels;
            image::Rgb(std::array::from_fn(|c| {
                if split.channels == 3 && !opts.colour {
                    return px[at + c];
                }
                let t = f32::from(px[at]) / 255.0;
                (f32::from(bg[c]) * (1.0 - t) + f32::from(fg[c]) * t).round() as u8
            }))
        }))
    } else {
        image::DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(side, side, px.to_vec()).context("picture size")?,
        )
    };
    let s = rng.random_range(opts.sides.0..=opts.sides.1);
    let img = if s == side {
        img
    } else {
        img.resize_exact(s, s, FilterType::Triangle)
    };
    std::fs::create_dir_all(path.parent().context("no parent folder")?)
        .with_context(|| format!("while creating the folder of {}", path.display()))?;
    img.save(path)
        .with_context(|| format!("while writing {}", path.display()))
}

/// A dark background and a bright foreground colour, random hues: the garment keeps its
/// contrast (lighter than the background, as in Fashion-MNIST) in any colour.
fn colour_pair(rng: &mut StdRng) -> ([u8; 3], [u8; 3]) {
    let bg = std::array::from_fn(|_| rng.random_range(0..=64u8));
    let fg = std::array::from_fn(|_| rng.random_range(128..=255u8));
    (bg, fg)
}
