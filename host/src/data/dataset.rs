//! What every stage trains and tests on: labelled images of one shape ([`Split`]), a training
//! pool and a test split with their class names ([`Dataset`]), and where they came from
//! ([`DataSource`], recorded in a run so later stages read the same data).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Labelled images of one shape: `u8` pixels, HWC per image (one channel: plain row-major).
#[derive(Clone, PartialEq, Eq)]
pub struct Split {
    /// `len * side * side * channels` pixels.
    pub images: Vec<u8>,
    /// `len` labels (class indices).
    pub labels: Vec<u8>,
    /// Channels per pixel (1 grey, 3 RGB).
    pub channels: usize,
    /// Height = width.
    pub side: usize,
}

impl fmt::Debug for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Split({} images of {}x{}x{})",
            self.len(),
            self.side,
            self.side,
            self.channels
        )
    }
}

impl Split {
    /// An empty split of `channels x side x side` images.
    pub fn empty(channels: usize, side: usize) -> Self {
        Self {
            images: Vec::new(),
            labels: Vec::new(),
            channels,
            side,
        }
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.side * self.side
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`, HWC.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Appends one image.
    pub fn push(&mut self, pixels: &[u8], label: u8) {
        debug_assert_eq!(pixels.len(), self.image_len());
        self.images.extend_from_slice(pixels);
        self.labels.push(label);
    }

    /// How many images each of `classes` classes has.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// The images `range`, as a new split.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Split {
        self.pick(range)
    }

    /// The images at `indices`, in that order.
    pub fn pick(&self, indices: impl IntoIterator<Item = usize>) -> Split {
        let mut out = Split::empty(self.channels, self.side);
        for i in indices {
            out.push(self.image(i), self.labels[i]);
        }
        out
    }

    /// Splits off the last `n` images: `(first len-n, last n)`. Deterministic by construction.
    pub fn split_last(&self, n: usize) -> (Split, Split) {
        let n = n.min(self.len());
        let cut = self.len() - n;
        (self.slice(0..cut), self.slice(cut..self.len()))
    }
}

/// How to read a folder; recorded in the run so later stages read the same images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderSpec {
    /// The folder.
    pub dir: PathBuf,
    /// 1 (grey) or 3 (RGB); `None`: as the pictures are (they must agree).
    pub channels: Option<usize>,
    /// Side the pictures are resized to.
    pub input_size: usize,
    /// Share of each class held out for test when the folder has no `train/` and `test/`.
    pub test_fraction: f64,
    /// Seed of the split and of the stratified order.
    pub seed: u64,
    /// Leave out bad files and empty classes instead of stopping.
    pub skip_bad: bool,
    /// SHA-256 of the file list (paths and sizes) when read: a later stage notices a changed
    /// folder.
    #[serde(default)]
    pub files_sha256: Option<String>,
}

/// Where a data set comes from; a run records it so compression, export and verification read
/// the same images the network was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum DataSource {
    /// The four Fashion-MNIST IDX files (`--data` or the usual places).
    #[default]
    FashionMnist,
    /// A folder of labelled pictures (`--images`).
    Images(FolderSpec),
}

impl DataSource {
    /// True for Fashion-MNIST (kept out of run configs, so older runs read the same).
    pub fn is_fashion_mnist(&self) -> bool {
        *self == DataSource::FashionMnist
    }
}

/// A training pool (validation is taken from its end) and a test split, with class names.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Training images; the last `val_count` of them validate.
    pub train: Split,
    /// Test images.
    pub test: Split,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// How to read it again.
    pub source: DataSource,
    /// Where it was read from (a directory).
    pub dir: PathBuf,
}

impl Dataset {
    /// `(train, validation)`: the validation set is the last `val_count` training images.
    pub fn train_val(&self, val_count: usize) -> (Split, Split) {
        self.train.split_last(val_count)
    }

    /// Channels per pixel.
    pub fn channels(&self) -> usize {
        self.train.channels
    }

    /// Image side.
    pub fn side(&self) -> usize {
        self.train.side
    }

    /// A validation size for this pool when none is given: Fashion-MNIST's 5,000, otherwise a
    /// tenth of the pool (at least one image per class).
    pub fn default_val_count(&self) -> usize {
        match self.source {
            DataSource::FashionMnist => 5_000,
            DataSource::Images(_) => (self.train.len() / 10).max(self.classes.len()),
        }
    }

    /// Checks a blob (or device) taking `input_len`-byte images can run on these images.
    pub fn check_input_len(&self, input_len: usize, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.test.image_len() == input_len,
            "{what} takes {input_len}-byte images; the data ({}) has {}x{}x{} = {} bytes: give \
             --images with the pictures it was made for (and the same --input-size and \
             --channels)",
            self.dir.display(),
            self.side(),
            self.side(),
            self.channels(),
            self.test.image_len()
        );
        Ok(())
    }

    /// Checks a network made for `(channels, side, classes)` can run on these images.
    pub fn check_model(&self, channels: usize, side: usize, classes: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            (channels, side, classes) == (self.channels(), self.side(), self.classes.len()),
            "the network takes {side}x{side} images with {channels} channel(s) in {classes} \
             classes; the data ({}) has {}x{} images with {} channel(s) in {} classes",
            self.dir.display(),
            self.side(),
            self.side(),
            self.channels(),
            self.classes.len()
        );
        Ok(())
    }
}
