//! Images of any size and channel count, for calibrating and checking imported models.
//!
//! Pixels are `u8`, stored HWC per image (the blob's input layout; one channel is plain
//! row-major). Sources: an IDX file (3-dim `n x h x w` greyscale, magic `0x0803`, or 4-dim
//! `n x h x w x c`, magic `0x0804`), raw or gzipped, with optional IDX labels; or a folder of
//! PNG files (8-bit or 16-bit grey or RGB, palettes expanded; taken in file-name order,
//! unlabelled). Images are never resized: they must have the model's size.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use super::dataset::Split;

/// A set of images a network can run on: the pixels (HWC) and optional labels of image `i`.
pub trait Images: Sync {
    /// Number of images.
    fn count(&self) -> usize;
    /// Pixels of image `i`, HWC.
    fn pixels(&self, i: usize) -> &[u8];
    /// Label of image `i`, if known.
    fn label(&self, i: usize) -> Option<usize>;
}

impl Images for Split {
    fn count(&self) -> usize {
        self.len()
    }
    fn pixels(&self, i: usize) -> &[u8] {
        self.image(i)
    }
    fn label(&self, i: usize) -> Option<usize> {
        Some(self.labels[i] as usize)
    }
}

/// Owned images of one shape.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// `len * h * w * c` pixels, HWC per image.
    pub pixels: Vec<u8>,
    /// One label per image, when known.
    pub labels: Option<Vec<u8>>,
}

impl std::fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ImageSet({} images of {}x{}x{}, {})",
            self.count(),
            self.h,
            self.w,
            self.c,
            if self.labels.is_some() {
                "labelled"
            } else {
                "unlabelled"
            }
        )
    }
}

impl Images for ImageSet {
    fn count(&self) -> usize {
        self.pixels.len() / self.image_len().max(1)
    }
    fn pixels(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }
    fn label(&self, i: usize) -> Option<usize> {
        self.labels.as_ref().map(|l| l[i] as usize)
    }
}

impl ImageSet {
    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The first `n` images (all when fewer).
    pub fn first(&self, n: usize) -> ImageSet {
        let n = n.min(self.count());
        ImageSet {
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
            ..*self
        }
    }

    /// Checks the images have shape `c x side x side`, saying what to do otherwise.
    pub fn check_shape(&self, c: usize, side: usize, source: &Path) -> Result<()> {
        ensure!(
            self.c == c && self.h == side && self.w == side,
            "{}: images are {}x{} with {} channel(s), the model takes {side}x{side} with {c}; \
             images are not resized or converted, give images of the model's size",
            source.display(),
            self.h,
            self.w,
            self.c
        );
        ensure!(self.count() > 0, "{}: no images", source.display());
        Ok(())
    }

    /// Loads an IDX images file or a folder of PNGs; `labels` (an IDX labels file) only with IDX
    /// images.
    pub fn load(path: &Path, labels: Option<&Path>) -> Result<ImageSet> {
        let mut set = if path.is_dir() {
            ensure!(
                labels.is_none(),
                "--labels goes with an IDX images file, not a folder of PNGs ({})",
                path.display()
            );
            load_png_dir(path)?
        } else {
            load_idx(path)?
        };
        if let Some(lp) = labels {
            let bytes = read_maybe_gz(lp)?;
            let l = parse_idx_labels(lp, &bytes)?;
            ensure!(
                l.len() == set.count(),
                "{} has {} labels for {} images in {}",
                lp.display(),
                l.len(),
                set.count(),
                path.display()
            );
            set.labels = Some(l);
        }
        Ok(set)
    }
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("while reading {}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .with_context(|| format!("while decompressing {}", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Reads an IDX `u8` images file: `n x h x w` (grey) or `n x h x w x c`.
pub fn load_idx(path: &Path) -> Result<ImageSet> {
    let b = read_maybe_gz(path)?;
    parse_idx_images(path, &b)
}

/// Parses IDX `u8` image bytes (see [`load_idx`]).
pub fn parse_idx_images(path: &Path, b: &[u8]) -> Result<ImageSet> {
    let p = path.display();
    ensure!(
        b.len() >= 4,
        "{p}: not an IDX file (shorter than its magic)"
    );
    let (zero, ty, dims) = (u16::from_be_bytes([b[0], b[1]]), b[2], b[3] as usize);
    ensure!(
        zero == 0 && ty == 0x08,
        "{p}: not an IDX file of unsigned bytes (magic {:02x}{:02x}{:02x}{:02x})",
        b[0],
        b[1],
        b[2],
        b[3]
    );
    ensure!(
        dims == 3 || dims == 4,
        "{p}: IDX images need 3 dims (n, h, w) or 4 (n, h, w, c), found {dims}"
    );
    let head = 4 + 4 * dims;
    ensure!(b.len() >= head, "{p}: truncated IDX header");
    let n = be_u32(b, 4);
    let (h, w) = (be_u32(b, 8), be_u32(b, 12));
    let c = if dims == 4 { be_u32(b, 16) } else { 1 };
    let len = n
        .checked_mul(h)
        .and_then(|v| v.checked_mul(w))
        .and_then(|v| v.checked_mul(c))
        .context("IDX dimensions overflow")?;
    ensure!(
        b.len() >= head + len,
        "{p}: truncated: {n} images of {h}x{w}x{c} need {} bytes, found {}",
        head + len,
        b.len()
    );
    Ok(ImageSet {
        c,
        h,
        w,
        pixels: b[head..head + len].to_vec(),
        labels: None,
    })
}

fn parse_idx_labels(path: &Path, b: &[u8]) -> Result<Vec<u8>> {
    let p = path.display();
    ensure!(
        b.len() >= 8 && b[..4] == [0, 0, 8, 1],
        "{p}: not an IDX labels file (magic 0x00000801)"
    );
    let n = be_u32(b, 4);
    ensure!(b.len() >= 8 + n, "{p}: truncated ({n} labels)");
    Ok(b[8..8 + n].to_vec())
}

/// Reads every `*.png` in `dir` (file-name order) as 8-bit grey or RGB.
pub fn load_png_dir(dir: &Path) -> Result<ImageSet> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("while listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "{}: no .png files", dir.display());
    let mut set: Option<ImageSet> = None;
    for f in &files {
        let (c, h, w, px) = read_png(f)?;
        match &mut set {
            None => {
                set = Some(ImageSet {
                    c,
                    h,
                    w,
                    pixels: px,
                    labels: None,
                })
            }
            Some(s) => {
                ensure!(
                    (s.c, s.h, s.w) == (c, h, w),
                    "{}: {h}x{w} with {c} channel(s), unlike the first image ({}x{} with {}); \
                     every image must have the model's size",
                    f.display(),
                    s.h,
                    s.w,
                    s.c
                );
                s.pixels.extend(px);
            }
        }
    }
    Ok(set.expect("at least one file"))
}

fn read_png(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("while opening {}", path.display()))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec
        .read_info()
        .with_context(|| format!("while reading the PNG header of {}", path.display()))?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG too large")?];
    let info = reader
        .next_frame(&mut buf)
        .with_context(|| format!("while decoding {}", path.display()))?;
    let c = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::Rgb => 3,
        other => bail!(
            "{}: colour type {other:?}; give 8-bit grey or RGB PNGs without alpha",
            path.display()
        ),
    };
    let (w, h) = (info.width as usize, info.height as usize);
    let mut px = Vec::with_capacity(w * h * c);
    for row in buf[..info.buffer_size()].chunks(info.line_size) {
        px.extend_from_slice(&row[..w * c]);
    }
    Ok((c, h, w, px))
}

/// Writes `set` as a PNG folder (`0000.png`, ...), grey or RGB; for tests and examples.
pub fn write_png_dir(set: &ImageSet, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("while creating {}", dir.display()))?;
    let color = match set.c {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        c => bail!("PNG needs 1 or 3 channels, not {c}"),
    };
    for i in 0..set.count() {
        let path = dir.join(format!("{i:04}.png"));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("while creating {}", path.display()))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), set.w as u32, set.h as u32);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc
            .write_header()
            .with_context(|| format!("while writing {}", path.display()))?;
        wr.write_image_data(set.pixels(i))
            .with_context(|| format!("while writing {}", path.display()))?;
    }
    Ok(())
}

/// IDX bytes of `set` (3 dims when grey, else 4) and of its labels, if any.
pub fn to_idx(set: &ImageSet) -> (Vec<u8>, Option<Vec<u8>>) {
    let n = set.count() as u32;
    let mut b = vec![0, 0, 8, if set.c == 1 { 3 } else { 4 }];
    let mut dims = vec![n, set.h as u32, set.w as u32];
    if set.c != 1 {
        dims.push(set.c as u32);
    }
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(&set.pixels);
    let labels = set.labels.as_ref().map(|l| {
        let mut v = vec![0, 0, 8, 1];
        v.extend(n.to_be_bytes());
        v.extend(l);
        v
    });
    (b, labels)
}
