//! Folders of labelled pictures as a data set (`--images DIR`).
//!
//! Layout: one sub-folder per class (`DIR/<class>/...`, nested folders allowed), or
//! `DIR/train/<class>` and `DIR/test/<class>` when the user has a split. Class names are the
//! folder names, sorted. Pictures are files named `.png .jpg .jpeg .bmp .gif .tif .tiff .webp`
//! (other files are counted and ignored), decoded by the `image` crate, converted to grey
//! (BT.709 luma) or RGB and resized to `input_size` squared with the triangle (bilinear) filter:
//! exactly what `sqz classify` does to a picture. Each file is decoded once per process.
//!
//! Without a given split, a seeded stratified split takes `test_fraction` of every class for
//! test. Both splits are in stratified order: every class spreads evenly along them, so the
//! validation set (the end of the training pool) holds each class in proportion too.
//!
//! Bad data stops the read with one error naming the file or folder and what to do; with
//! `skip_bad`, unreadable files, files of the minority channel count and empty classes are left
//! out and listed in the [`FolderReport`] instead.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::dataset::{DataSource, Dataset, FolderSpec, Split};
use super::picture::{decode_picture, picture_channels, to_model_input};

/// File extensions read as pictures (lower case).
pub const PICTURE_EXTENSIONS: [&str; 8] =
    ["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"];

/// What a read found besides the pictures.
#[derive(Debug, Clone, Default)]
pub struct FolderReport {
    /// Files and folders left out (with `skip_bad`), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files ignored because their extension is not a picture's.
    pub ignored: usize,
    /// The folder had its own `train/` and `test/`.
    pub split_given: bool,
}

/// One class's picture files.
struct ClassFiles {
    name: String,
    train: Vec<PathBuf>,
    test: Vec<PathBuf>,
}

/// Reads the folder `spec` names into a data set.
pub fn load_folder(spec: &FolderSpec) -> Result<(Dataset, FolderReport)> {
    let mut report = FolderReport::default();
    let mut classes = list_classes(spec, &mut report)?;
    drop_empty_classes(&mut classes, spec, &mut report, "no pictures")?;
    let fingerprint = fingerprint(&spec.dir, &classes)?;
    if let Some(expected) = &spec.files_sha256 {
        ensure!(
            *expected == fingerprint,
            "{}: the folder's files changed since the run read it (its file list no longer \
             matches); train again on the folder as it is now",
            spec.dir.display()
        );
    }
    let decoded = decode_classes(&classes, spec.input_size, spec.channels)?;
    let channels = resolve_channels(spec, &classes, &decoded, &mut report)?;
    let (mut classes, decoded) = keep_readable(classes, decoded, channels, spec, &mut report)?;
    drop_empty_classes(&mut classes, spec, &mut report, "no readable pictures")?;
    let mut spec = spec.clone();
    spec.files_sha256 = Some(fingerprint);
    let (train, test) = split(&classes, &decoded, channels, &spec, report.split_given);
    ensure!(
        !test.is_empty(),
        "{}: no test images: give a larger --test-fraction or a test/ folder",
        spec.dir.display()
    );
    Ok((
        Dataset {
            train,
            test,
            classes: classes.into_iter().map(|c| c.name).collect(),
            dir: spec.dir.clone(),
            source: DataSource::Images(spec),
        },
        report,
    ))
}

/// The class folders, and the split when the folder gives one.
fn list_classes(spec: &FolderSpec, report: &mut FolderReport) -> Result<Vec<ClassFiles>> {
    let dir = &spec.dir;
    ensure!(
        dir.is_dir(),
        "{}: no such folder; --images takes a folder with one sub-folder of pictures per class \
         (DIR/<class>/*.png), or DIR/train/<class> and DIR/test/<class>",
        dir.display()
    );
    let top = read_folder(dir, spec.skip_bad, report)?;
    report.split_given = top.contains(&"train".to_string()) && top.contains(&"test".to_string());
    if !report.split_given {
        ensure!(
            !top.is_empty(),
            "{}: no class folders; put the pictures of each class in a sub-folder named after \
             it (DIR/<class>/*.png)",
            dir.display()
        );
        return top
            .into_iter()
            .map(|name| {
                let train = pictures_under(&dir.join(&name), report)?;
                Ok(ClassFiles {
                    name,
                    train,
                    test: Vec::new(),
                })
            })
            .collect();
    }
    let train_names = read_folder(&dir.join("train"), spec.skip_bad, report)?;
    let test_names = read_folder(&dir.join("test"), spec.skip_bad, report)?;
    if let Some(only_test) = test_names.iter().find(|n| !train_names.contains(n)) {
        bail!(
            "{}: a test class with no training folder ({}); the network cannot learn a class it \
             never sees: add {} or remove the test folder",
            dir.join("test").join(only_test).display(),
            only_test,
            dir.join("train").join(only_test).display()
        );
    }
    train_names
        .into_iter()
        .map(|name| {
            let train = pictures_under(&dir.join("train").join(&name), report)?;
            let test_dir = dir.join("test").join(&name);
            let test = if test_dir.is_dir() {
                pictures_under(&test_dir, report)?
            } else {
                Vec::new()
            };
            Ok(ClassFiles { name, train, test })
        })
        .collect()
}

/// The sub-folder names of `dir`, sorted (hidden ones left out). Pictures lying beside the class
/// folders are an error (or skipped).
fn read_folder(dir: &Path, skip_bad: bool, report: &mut FolderReport) -> Result<Vec<String>> {
    ensure!(dir.is_dir(), "{}: no such folder", dir.display());
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("while listing {}", dir.display()))?
    {
        let path = entry
            .with_context(|| format!("while listing {}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            names.push(name);
        } else if is_picture(&path) {
            let why = "a picture outside any class folder";
            ensure!(
                skip_bad,
                "{}: {why}; move it into the folder of its class (DIR/<class>/), or pass \
                 --skip-bad to leave such files out",
                path.display()
            );
            report.skipped.push((path, why.into()));
        } else {
            report.ignored += 1;
        }
    }
    names.sort();
    Ok(names)
}

fn is_picture(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| PICTURE_EXTENSIONS.contains(&e.as_str()))
}

/// Every picture file under `dir` (nested folders too), sorted by path.
fn pictures_under(dir: &Path, report: &mut FolderReport) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("while listing {}", d.display()))?
        {
            let path = entry
                .with_context(|| format!("while listing {}", d.display()))?
                .path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            } else if path.is_dir() {
                todo.push(path);
            } else if is_picture(&path) {
                out.push(path);
            } else {
                report.ignored += 1;
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Classes without a training picture are an error, or (with `skip_bad`) left out.
fn drop_empty_classes(
    classes: &mut Vec<ClassFiles>,
    spec: &FolderSpec,
    report: &mut FolderReport,
    why: &str,
) -> Result<()> {
    let part = if report.split_given { "train/" } else { "" };
    for c in classes.iter().filter(|c| c.train.is_empty()) {
        let folder = spec.dir.join(format!("{part}{}", c.name));
        ensure!(
            spec.skip_bad,
            "{}: class folder with {why} ({}); add pictures, remove the folder, or pass \
             --skip-bad to leave the class out",
            folder.display(),
            PICTURE_EXTENSIONS.join(" ")
        );
        report.skipped.push((folder, format!("class with {why}")));
    }
    classes.retain(|c| !c.train.is_empty());
    match classes.len() {
        0 => bail!(
            "{}: no pictures ({}) in any class folder",
            spec.dir.display(),
            PICTURE_EXTENSIONS.join(" ")
        ),
        1 => bail!(
            "{}: only one class ({}); a classifier needs at least two class folders",
            spec.dir.display(),
            classes[0].name
        ),
        n if n > 256 => bail!(
            "{}: {n} classes; at most 256 are supported",
            spec.dir.display()
        ),
        _ => Ok(()),
    }
}

/// SHA-256 over every file's path (relative to the folder) and size.
fn fingerprint(dir: &Path, classes: &[ClassFiles]) -> Result<String> {
    let mut list = String::new();
    for path in classes.iter().flat_map(|c| c.train.iter().chain(&c.test)) {
        let len = std::fs::metadata(path)
            .with_context(|| format!("while reading {}", path.display()))?
            .len();
        let rel = path.strip_prefix(dir).unwrap_or(path);
        list.push_str(&format!("{}\t{len}\n", rel.display()));
    }
    Ok(crate::store::sha256_hex(list.as_bytes()))
}

/// One file decoded: its own channel count and its pixels at the model's size, in the channels
/// asked for (or its own), or why it failed.
type Decoded = std::result::Result<(usize, Vec<u8>), String>;

/// Decodes every file of every class (training files first), on every core, with a bar.
fn decode_classes(
    classes: &[ClassFiles],
    side: usize,
    channels: Option<usize>,
) -> Result<Vec<Vec<Decoded>>> {
    let files: Vec<&Path> = classes
        .iter()
        .flat_map(|c| c.train.iter().chain(&c.test))
        .map(PathBuf::as_path)
        .collect();
    let bar = super::progress::items_bar(files.len() as u64, "decoding");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(workers).max(1);
    let mut flat: Vec<Decoded> = Vec::with_capacity(files.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let bar = bar.clone();
                s.spawn(move || {
                    part.iter()
                        .map(|p| {
                            bar.inc(1);
                            decode_one(p, side, channels)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            flat.extend(h.join().expect("a decoding thread panicked"));
        }
    });
    bar.finish_and_clear();
    let mut flat = flat.into_iter();
    Ok(classes
        .iter()
        .map(|c| flat.by_ref().take(c.train.len() + c.test.len()).collect())
        .collect())
}

fn decode_one(path: &Path, side: usize, channels: Option<usize>) -> Decoded {
    let img = decode_picture(path).map_err(|e| format!("{e:#}"))?;
    let own = picture_channels(&img);
    let pixels =
        to_model_input(img, side, side, channels.unwrap_or(own)).map_err(|e| format!("{e:#}"))?;
    Ok((own, pixels))
}

/// The channel count: the given one, or the pictures' own when they agree. Mixed counts are an
/// error naming one file of each; with `skip_bad` the minority is left out.
fn resolve_channels(
    spec: &FolderSpec,
    classes: &[ClassFiles],
    decoded: &[Vec<Decoded>],
    report: &mut FolderReport,
) -> Result<usize> {
    if let Some(c) = spec.channels {
        ensure!(
            c == 1 || c == 3,
            "--channels must be 1 (grey) or 3 (RGB), got {c}"
        );
        return Ok(c);
    }
    let mut first = [None::<&Path>; 2];
    let mut count = [0usize; 2];
    for (c, files) in classes.iter().zip(decoded) {
        for (path, d) in c.train.iter().chain(&c.test).zip(files) {
            if let Ok((ch, _)) = d {
                let k = usize::from(*ch == 3);
                count[k] += 1;
                first[k].get_or_insert(path);
            }
        }
    }
    let majority = if count[1] > count[0] { 3 } else { 1 };
    if let [Some(grey), Some(colour)] = first {
        ensure!(
            spec.skip_bad,
            "{}: the pictures mix grey ({} files, e.g. {}) and colour ({} files, e.g. {}); pass \
             --channels 1 or --channels 3 to convert them all, or --skip-bad to leave out the \
             fewer kind",
            spec.dir.display(),
            count[0],
            grey.display(),
            count[1],
            colour.display()
        );
        report.skipped.push((
            spec.dir.clone(),
            format!(
                "{} pictures not of the majority's {majority} channel(s)",
                count.iter().min().unwrap_or(&0)
            ),
        ));
    }
    Ok(majority)
}

/// The pixels of each kept picture of one class, in file order.
type ClassPixels = Vec<Vec<u8>>;

/// Keeps what decoded (and, with mixed channel counts under `skip_bad`, the majority kind),
/// converted to `channels`. An unreadable file is an error unless `skip_bad`.
fn keep_readable(
    classes: Vec<ClassFiles>,
    decoded: Vec<Vec<Decoded>>,
    channels: usize,
    spec: &FolderSpec,
    report: &mut FolderReport,
) -> Result<(Vec<ClassFiles>, Vec<ClassPixels>)> {
    let mixed_allowed = spec.channels.is_some();
    let mut kept_classes = Vec::new();
    let mut kept_pixels = Vec::new();
    for (class, files) in classes.into_iter().zip(decoded) {
        let n_train = class.train.len();
        let mut c = ClassFiles {
            name: class.name,
            train: Vec::new(),
            test: Vec::new(),
        };
        let mut pixels = Vec::new();
        for (i, (path, d)) in class
            .train
            .into_iter()
            .chain(class.test)
            .zip(files)
            .enumerate()
        {
            match d {
                Err(why) => {
                    ensure!(
                        spec.skip_bad,
                        "{why}\n(pass --skip-bad to leave out files that cannot be read, or \
                         replace {})",
                        path.display()
                    );
                    report.skipped.push((path, "unreadable".into()));
                    continue;
                }
                Ok((ch, _)) if !mixed_allowed && ch != channels => continue,
                Ok((_, px)) => pixels.push(px),
            }
            if i < n_train {
                c.train.push(path)
            } else {
                c.test.push(path)
            }
        }
        kept_classes.push(c);
        kept_pixels.push(pixels);
    }
    Ok((kept_classes, kept_pixels))
}

/// The training pool and test split, each in stratified order.
fn split(
    classes: &[ClassFiles],
    pixels: &[ClassPixels],
    channels: usize,
    spec: &FolderSpec,
    split_given: bool,
) -> (Split, Split) {
    let side = spec.input_size;
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (label, (c, px)) in classes.iter().zip(pixels).enumerate() {
        let label = label as u8;
        // Without a given split, the class has no test files: `te` is empty.
        let (tr, te) = px.split_at(c.train.len());
        train.extend(tr.iter().map(|p| (p, label)));
        test.extend(te.iter().map(|p| (p, label)));
    }
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let order = stratified_order(&train, classes.len(), &mut rng);
    if split_given {
        let test_order = stratified_order(&test, classes.len(), &mut rng);
        return (
            collect(&train, &order, channels, side),
            collect(&test, &test_order, channels, side),
        );
    }
    let n_test = ((train.len() as f64) * spec.test_fraction).round() as usize;
    let (pool, held) = order.split_at(order.len() - n_test.min(order.len()));
    (
        collect(&train, pool, channels, side),
        collect(&train, held, channels, side),
    )
}

/// An order in which every class spreads evenly: each class is shuffled and its `k`-th image
/// placed at `(k + u) / n_class` (`u` random in [0, 1)), so any stretch of the order holds each
/// class in proportion, within one image.
fn stratified_order(items: &[(&Vec<u8>, u8)], classes: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut by_class = vec![Vec::new(); classes];
    for (i, (_, label)) in items.iter().enumerate() {
        by_class[*label as usize].push(i);
    }
    let mut keyed = Vec::with_capacity(items.len());
    for members in &mut by_class {
        members.shuffle(rng);
        let n = members.len() as f64;
        for (k, &i) in members.iter().enumerate() {
            keyed.push(((k as f64 + rng.random::<f64>()) / n, i));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, i)| i).collect()
}

fn collect(items: &[(&Vec<u8>, u8)], order: &[usize], channels: usize, side: usize) -> Split {
    let mut out = Split::empty(channels, side);
    for &i in order {
        out.push(items[i].0, items[i].1);
    }
    out
}
