//! Fashion-MNIST: finding the four IDX files, reading them (gzipped or not), checking them, and
//! normalising pixels into network inputs (batches are built in `eval`).
//!
//! Where the files are looked for, in order: an explicit directory (`--data DIR`), the
//! `FASHION_MNIST_DIR` variable, `data/fashion-mnist` in the repository, and
//! `../shared/data/fashion-mnist` beside it. Failing all, [`locate_or_download`] fetches the
//! official files into `data/fashion-mnist`, verified against the official SHA-256 digests.
//!
//! Every defect of a file is a [`DataError`] naming the file and what is wrong; nothing panics.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::dataset::{DataSource, Dataset, Split};
use crate::store::sha256_hex;

/// Image side length of Fashion-MNIST.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Human-readable class names, in label order.
pub const CLASS_NAMES: [&str; CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Where the official files live.
pub const OFFICIAL_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com";

/// The variable that names a data directory.
pub const ENV_DIR: &str = "FASHION_MNIST_DIR";

/// One of the four canonical files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxFile {
    /// 60,000 training images.
    TrainImages,
    /// 60,000 training labels.
    TrainLabels,
    /// 10,000 test images.
    TestImages,
    /// 10,000 test labels.
    TestLabels,
}

impl IdxFile {
    /// All four, in download order.
    pub const ALL: [IdxFile; 4] = [
        IdxFile::TrainImages,
        IdxFile::TrainLabels,
        IdxFile::TestImages,
        IdxFile::TestLabels,
    ];

    /// The file's canonical name without `.gz`.
    pub fn stem(self) -> &'static str {
        match self {
            IdxFile::TrainImages => "train-images-idx3-ubyte",
            IdxFile::TrainLabels => "train-labels-idx1-ubyte",
            IdxFile::TestImages => "t10k-images-idx3-ubyte",
            IdxFile::TestLabels => "t10k-labels-idx1-ubyte",
        }
    }

    /// The official SHA-256 of the gzipped file.
    pub fn official_sha256(self) -> &'static str {
        match self {
            IdxFile::TrainImages => {
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
            }
            IdxFile::TrainLabels => {
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
            }
            IdxFile::TestImages => {
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
            }
            IdxFile::TestLabels => {
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
            }
        }
    }

    fn is_images(self) -> bool {
        matches!(self, IdxFile::TrainImages | IdxFile::TestImages)
    }
}

/// Everything that can be wrong with the data set, each naming the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// No directory held the four files and downloading was impossible.
    #[error(
        "Fashion-MNIST not found. Looked in:\n{}\nand the download from {OFFICIAL_URL} failed: {download}.\n\
         Put the four files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
         t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped or not) in data/fashion-mnist, \
         or pass --data DIR, or set {ENV_DIR}=DIR.",
        .searched.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n")
    )]
    NotFound {
        /// Directories that were tried.
        searched: Vec<PathBuf>,
        /// Why the download did not work.
        download: String,
    },
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gzip stream is corrupt.
    #[error("{path}: corrupt gzip stream: {source}")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// The IDX magic number is not the expected one.
    #[error(
        "{path}: wrong IDX magic 0x{found:08x}, expected 0x{expected:08x} (is this the right file?)"
    )]
    WrongMagic {
        /// The file.
        path: PathBuf,
        /// Magic found.
        found: u32,
        /// Magic expected.
        expected: u32,
    },
    /// The file ends before its header says it should.
    #[error("{path}: truncated: header promises {expected} bytes, file has {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises (header included).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The image shape is not 28x28.
    #[error("{path}: images are {rows}x{cols}, expected {SIDE}x{SIDE}")]
    WrongShape {
        /// The file.
        path: PathBuf,
        /// Rows per image.
        rows: u32,
        /// Columns per image.
        cols: u32,
    },
    /// Images and labels disagree on the count.
    #[error("{images_path} holds {images} images but {labels_path} holds {labels} labels")]
    CountMismatch {
        /// Image file.
        images_path: PathBuf,
        /// Image count.
        images: usize,
        /// Label file.
        labels_path: PathBuf,
        /// Label count.
        labels: usize,
    },
    /// A label is not in 0..10.
    #[error("{path}: label {label} at index {index} is out of range 0..{CLASSES}")]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Item index.
        index: usize,
        /// The bad label.
        label: u8,
    },
    /// The file's SHA-256 is not the expected one.
    #[error(
        "{path}: SHA-256 mismatch: expected {expected}, found {found} (corrupt or not the official file)"
    )]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// Digest expected.
        expected: String,
        /// Digest found.
        found: String,
    },
}

/// Fashion-MNIST's class names as owned strings.
pub fn fashion_mnist_classes() -> Vec<String> {
    CLASS_NAMES.iter().map(|s| s.to_string()).collect()
}

/// True for Fashion-MNIST's class names (runs and manifests leave them out).
pub fn is_fashion_mnist_classes(classes: &[String]) -> bool {
    classes.iter().map(String::as_str).eq(CLASS_NAMES)
}

/// Fashion-MNIST's shape: 28x28 grey.
pub fn fashion_mnist_split(images: Vec<u8>, labels: Vec<u8>) -> Split {
    Split {
        images,
        labels,
        channels: 1,
        side: SIDE,
    }
}

/// Fashion-MNIST's reader: the four files become a [`Dataset`] of 60,000 training and 10,000
/// test images.
#[derive(Debug, Clone, Copy)]
pub struct FashionMnist;

/// How pixels become network inputs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
pub enum Normalization {
    /// `pixel / 255`, in [0, 1]. Quantises exactly to int8 as `pixel - 128`.
    Unit,
    /// Per-image standardisation: `(x - mean) / max(std, 1/sqrt(N))` as the seed notebook does.
    PerImage,
}

impl Normalization {
    /// Converts one image's pixels into `out` (same length).
    pub fn apply(self, pixels: &[u8], out: &mut [f32]) {
        debug_assert_eq!(pixels.len(), out.len());
        for (o, &p) in out.iter_mut().zip(pixels) {
            *o = f32::from(p) / 255.0;
        }
        if self == Normalization::PerImage {
            let n = out.len() as f32;
            let mean = out.iter().sum::<f32>() / n;
            let var = out.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let std = var.sqrt().max(1.0 / n.sqrt());
            for o in out.iter_mut() {
                *o = (*o - mean) / std;
            }
        }
    }
}

/// The repository root this binary was built from (for `data/fashion-mnist` and
/// `../shared/data/fashion-mnist` when run from a sub-directory, as `cargo test` does).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The directories tried, in order, without downloading.
pub fn candidate_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_path_buf());
        // An explicit directory is the only candidate: a typo must not silently fall back.
        return dirs;
    }
    if let Some(d) = std::env::var_os(ENV_DIR) {
        dirs.push(PathBuf::from(d));
        return dirs;
    }
    let root = repo_root();
    for base in [PathBuf::from("."), root] {
        for rel in ["data/fashion-mnist", "../shared/data/fashion-mnist"] {
            let d = base.join(rel);
            if !dirs.iter().any(|x| same_dir(x, &d)) {
                dirs.push(d);
            }
        }
    }
    dirs
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The path of `file` in `dir`, gzipped or not, if present.
pub fn find_file(dir: &Path, file: IdxFile) -> Option<PathBuf> {
    let gz = dir.join(format!("{}.gz", file.stem()));
    if gz.is_file() {
        return Some(gz);
    }
    let raw = dir.join(file.stem());
    raw.is_file().then_some(raw)
}

fn has_all(dir: &Path) -> bool {
    IdxFile::ALL.iter().all(|&f| find_file(dir, f).is_some())
}

/// Finds a directory holding all four files; see the module docs for the order.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    let dirs = candidate_dirs(explicit);
    dirs.iter()
        .find(|d| has_all(d))
        .cloned()
        .ok_or_else(|| DataError::NotFound {
            searched: dirs,
            download: "not attempted".into(),
        })
}

/// [`locate`], and failing that (with no explicit directory) a verified download into
/// `data/fashion-mnist` of the repository, with a progress bar.
pub fn locate_or_download(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    match locate(explicit) {
        Ok(d) => Ok(d),
        Err(DataError::NotFound { searched, .. }) if explicit.is_none() => {
            let target = repo_root().join("data/fashion-mnist");
            match download(&target) {
                Ok(()) => Ok(target),
                Err(e) => Err(DataError::NotFound {
                    searched,
                    download: e,
                }),
            }
        }
        Err(e) => Err(e),
    }
}

/// Downloads the four official files into `dir`, each verified before it is renamed into place.
fn download(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for file in IdxFile::ALL {
        let name = format!("{}.gz", file.stem());
        let dest = dir.join(&name);
        if dest.is_file() {
            continue;
        }
        let url = format!("{OFFICIAL_URL}/{name}");
        let mut resp = ureq::get(&url).call().map_err(|e| format!("{url}: {e}"))?;
        let total = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let bar = super::progress::bytes_bar(total, &name);
        let mut body = Vec::new();
        let mut reader = bar.wrap_read(resp.body_mut().as_reader());
        reader
            .read_to_end(&mut body)
            .map_err(|e| format!("{url}: {e}"))?;
        bar.finish_and_clear();
        let found = sha256_hex(&body);
        if found != file.official_sha256() {
            return Err(format!(
                "{url}: SHA-256 mismatch: expected {}, found {found}",
                file.official_sha256()
            ));
        }
        crate::store::write_atomic(&dest, &body).map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}

/// Checks `path`'s SHA-256 against `expected` (lower-case hex).
pub fn verify_digest(path: &Path, bytes: &[u8], expected: &str) -> Result<(), DataError> {
    let found = sha256_hex(bytes);
    if found.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(DataError::DigestMismatch {
            path: path.to_path_buf(),
            expected: expected.trim().to_string(),
            found,
        })
    }
}

/// Digests listed in `dir/SHA256SUMS` (`<hex>  <name>` lines), if that file exists.
fn read_sha256sums(dir: &Path) -> Result<Vec<(String, String)>, DataError> {
    let path = dir.join("SHA256SUMS");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let hex = parts.next()?;
            let name = parts.next()?.trim_start_matches('*');
            Some((name.to_string(), hex.to_string()))
        })
        .collect())
}

/// Reads a file whole; a gzip stream (by its magic bytes) is decompressed. When `digests`
/// lists the file's name, the raw bytes on disk are checked against it first.
fn read_maybe_gz(path: &Path, digests: &[(String, String)]) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some((_, hex)) = digests.iter().find(|(n, _)| n == name) {
        verify_digest(path, &raw, hex)?;
    }
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses IDX image bytes (magic 0x803, 28x28). Returns the pixels and the count.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<(Vec<u8>, usize), DataError> {
    const MAGIC: u32 = 0x0000_0803;
    if bytes.len() < 4 {
        return Err(truncated(path, 16, bytes.len()));
    }
    let magic = be_u32(bytes, 0);
    if magic != MAGIC {
        return Err(DataError::WrongMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: MAGIC,
        });
    }
    if bytes.len() < 16 {
        return Err(truncated(path, 16, bytes.len()));
    }
    let (n, rows, cols) = (be_u32(bytes, 4), be_u32(bytes, 8), be_u32(bytes, 12));
    if rows as usize != SIDE || cols as usize != SIDE {
        return Err(DataError::WrongShape {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    let expected = 16 + n as u64 * PIXELS as u64;
    if (bytes.len() as u64) < expected {
        return Err(truncated(path, expected, bytes.len()));
    }
    Ok((bytes[16..expected as usize].to_vec(), n as usize))
}

/// Parses IDX label bytes (magic 0x801), checking every label is in range.
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    const MAGIC: u32 = 0x0000_0801;
    if bytes.len() < 4 {
        return Err(truncated(path, 8, bytes.len()));
    }
    let magic = be_u32(bytes, 0);
    if magic != MAGIC {
        return Err(DataError::WrongMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: MAGIC,
        });
    }
    if bytes.len() < 8 {
        return Err(truncated(path, 8, bytes.len()));
    }
    let n = be_u32(bytes, 4) as u64;
    if (bytes.len() as u64) < 8 + n {
        return Err(truncated(path, 8 + n, bytes.len()));
    }
    let labels = bytes[8..8 + n as usize].to_vec();
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= CLASSES)
    {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label,
        });
    }
    Ok(labels)
}

fn truncated(path: &Path, expected: u64, found: usize) -> DataError {
    DataError::Truncated {
        path: path.to_path_buf(),
        expected,
        found: found as u64,
    }
}

fn load_split(
    dir: &Path,
    images: IdxFile,
    labels: IdxFile,
    digests: &[(String, String)],
) -> Result<Split, DataError> {
    debug_assert!(images.is_images() && !labels.is_images());
    let missing = |f: IdxFile| DataError::Io {
        path: dir.join(f.stem()),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found (.gz or raw)"),
    };
    let ip = find_file(dir, images).ok_or_else(|| missing(images))?;
    let lp = find_file(dir, labels).ok_or_else(|| missing(labels))?;
    let (pixels, n) = parse_images(&ip, &read_maybe_gz(&ip, digests)?)?;
    let labels = parse_labels(&lp, &read_maybe_gz(&lp, digests)?)?;
    if labels.len() != n {
        return Err(DataError::CountMismatch {
            images_path: ip,
            images: n,
            labels_path: lp,
            labels: labels.len(),
        });
    }
    Ok(fashion_mnist_split(pixels, labels))
}

impl FashionMnist {
    /// Reads the four files from `dir` (checked against `dir/SHA256SUMS` when present).
    pub fn load_dir(dir: &Path) -> Result<Dataset, DataError> {
        let digests = read_sha256sums(dir)?;
        let train = load_split(dir, IdxFile::TrainImages, IdxFile::TrainLabels, &digests)?;
        let test = load_split(dir, IdxFile::TestImages, IdxFile::TestLabels, &digests)?;
        Ok(Dataset {
            train,
            test,
            classes: fashion_mnist_classes(),
            source: DataSource::FashionMnist,
            dir: dir.to_path_buf(),
        })
    }

    /// Locates (or downloads) and reads the data set.
    pub fn load(explicit: Option<&Path>) -> Result<Dataset, DataError> {
        Self::load_dir(&locate_or_download(explicit)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [0x803, n, rows, cols] {
            v.extend_from_slice(&u32::to_be_bytes(x));
        }
        v.extend_from_slice(pixels);
        v
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [0x801, labels.len() as u32] {
            v.extend_from_slice(&u32::to_be_bytes(x));
        }
        v.extend_from_slice(labels);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Writes a tiny valid data set (`n` train, `n` test), gzipped or raw.
    fn write_set(dir: &Path, n: u32, gzip: bool) {
        let pixels: Vec<u8> = (0..n as usize * PIXELS).map(|i| (i % 251) as u8).collect();
        let labels: Vec<u8> = (0..n as u8).map(|i| i % 10).collect();
        for f in IdxFile::ALL {
            let bytes = if f.is_images() {
                idx_images(n, 28, 28, &pixels)
            } else {
                idx_labels(&labels)
            };
            let (name, data) = if gzip {
                (format!("{}.gz", f.stem()), gz(&bytes))
            } else {
                (f.stem().to_string(), bytes)
            };
            std::fs::write(dir.join(name), data).unwrap();
        }
    }

    #[test]
    fn reads_small_sets_gzipped_and_raw() {
        for gzip in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            write_set(dir.path(), 20, gzip);
            let d = FashionMnist::load_dir(dir.path()).unwrap();
            assert_eq!(d.train.len(), 20);
            assert_eq!(d.test.len(), 20);
            assert_eq!(d.train.image(1)[0], (PIXELS % 251) as u8);
            assert_eq!(d.train.class_counts(10), vec![2; 10]);
            let (tr, va) = d.train_val(5);
            assert_eq!((tr.len(), va.len()), (15, 5));
            assert_eq!(va.labels, d.train.labels[15..]);
        }
    }

    #[test]
    fn explicit_dir_does_not_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate(Some(&dir.path().join("nope"))).unwrap_err();
        assert!(matches!(&err, DataError::NotFound { searched, .. } if searched.len() == 1));
        assert!(err.to_string().contains("--data DIR"), "{err}");
    }

    fn load_err(setup: impl FnOnce(&Path)) -> DataError {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 10, false);
        setup(dir.path());
        FashionMnist::load_dir(dir.path()).unwrap_err()
    }

    #[test]
    fn wrong_magic_names_the_file() {
        let err = load_err(|d| {
            // Swap: a label file where the images should be.
            std::fs::write(d.join("train-images-idx3-ubyte"), idx_labels(&[1, 2])).unwrap();
        });
        assert!(
            matches!(&err, DataError::WrongMagic { path, found: 0x801, expected: 0x803 } if path.ends_with("train-images-idx3-ubyte")),
            "{err}"
        );
    }

    #[test]
    fn truncated_file() {
        let err = load_err(|d| {
            let p = d.join("t10k-images-idx3-ubyte");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        });
        assert!(
            matches!(&err, DataError::Truncated { expected, found, .. } if *expected == *found + 1),
            "{err}"
        );
        let err = load_err(|d| std::fs::write(d.join("t10k-labels-idx1-ubyte"), [0, 0]).unwrap());
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    }

    #[test]
    fn corrupt_gzip() {
        let err = load_err(|d| {
            let mut bytes = gz(&idx_labels(&[1; 10]));
            let mid = bytes.len() / 2;
            bytes.truncate(mid);
            std::fs::remove_file(d.join("train-labels-idx1-ubyte")).unwrap();
            std::fs::write(d.join("train-labels-idx1-ubyte.gz"), bytes).unwrap();
        });
        assert!(
            matches!(&err, DataError::Gzip { path, .. } if path.ends_with("train-labels-idx1-ubyte.gz")),
            "{err}"
        );
    }

    #[test]
    fn count_mismatch() {
        let err = load_err(|d| {
            std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx_labels(&[1; 9])).unwrap()
        });
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 10,
                    labels: 9,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn label_out_of_range() {
        let err = load_err(|d| {
            let mut l = vec![3u8; 10];
            l[7] = 10;
            std::fs::write(d.join("train-labels-idx1-ubyte"), idx_labels(&l)).unwrap()
        });
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 7,
                    label: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn wrong_image_shape() {
        let err = load_err(|d| {
            std::fs::write(
                d.join("t10k-images-idx3-ubyte"),
                idx_images(10, 32, 32, &vec![0; 10 * 1024]),
            )
            .unwrap()
        });
        assert!(
            matches!(
                err,
                DataError::WrongShape {
                    rows: 32,
                    cols: 32,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn digest_mismatch_against_sha256sums() {
        let err = load_err(|d| {
            std::fs::write(
                d.join("SHA256SUMS"),
                format!("{}  train-labels-idx1-ubyte\n", "0".repeat(64)),
            )
            .unwrap()
        });
        assert!(
            matches!(&err, DataError::DigestMismatch { path, .. } if path.ends_with("train-labels-idx1-ubyte")),
            "{err}"
        );
        // And the right digest passes.
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 10, false);
        let bytes = std::fs::read(dir.path().join("train-labels-idx1-ubyte")).unwrap();
        std::fs::write(
            dir.path().join("SHA256SUMS"),
            format!("{}  train-labels-idx1-ubyte\n", sha256_hex(&bytes)),
        )
        .unwrap();
        FashionMnist::load_dir(dir.path()).unwrap();
    }

    #[test]
    fn normalisation() {
        let px = [0u8, 255, 0, 255];
        let mut out = [0f32; 4];
        Normalization::Unit.apply(&px, &mut out);
        assert_eq!(out, [0.0, 1.0, 0.0, 1.0]);
        Normalization::PerImage.apply(&px, &mut out);
        assert_eq!(out, [-1.0, 1.0, -1.0, 1.0]);
        // A constant image does not divide by zero.
        Normalization::PerImage.apply(&[7; 4], &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
    }
}
