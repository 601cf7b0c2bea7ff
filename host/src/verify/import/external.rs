//! ONNX external data: tensors stored in a file beside the model (`model.onnx.data`), as
//! `torch.onnx.export` writes them by default since PyTorch 2.9 and as onnx's
//! `save_as_external_data` does. [`read_model`] loads them into the model, so the importer and
//! tract see one self-contained ModelProto.
//!
//! Each external tensor names its file (`location`, relative to the model's folder), and
//! optionally an `offset` and a `length` in bytes (default: from 0, to the end of the file).
//! Only files inside the model's own folder are read: an absolute location, one with `..`, or
//! a link that leads out of the folder is refused. The byte range must lie inside the file.
//! A `checksum` entry, if present, is not checked.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use prost::Message;
use tract_onnx::pb::{ModelProto, TensorProto, tensor_proto::DataLocation};

/// Reads the ONNX model at `path` with its external data loaded into it; a model without
/// external data comes back as the file's bytes.
pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("while reading {}", path.display()))?;
    let mut model = ModelProto::decode(&bytes[..]).with_context(|| {
        format!(
            "{} is not an ONNX model (protobuf decode failed)",
            path.display()
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let loaded = inline_external_data(&mut model, dir)
        .with_context(|| format!("while reading the external data of {}", path.display()))?;
    Ok(if loaded == 0 {
        bytes
    } else {
        model.encode_to_vec()
    })
}

/// Loads every external tensor of `model` (initializers and constant attributes) from the
/// files in `dir`; returns how many were loaded.
pub fn inline_external_data(model: &mut ModelProto, dir: &Path) -> Result<usize> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(0);
    };
    let mut files = ExternalFiles::new(dir)?;
    let mut loaded = 0;
    for t in &mut graph.initializer {
        loaded += usize::from(files.load(t)?);
    }
    for node in &mut graph.node {
        for a in &mut node.attribute {
            for t in a.t.iter_mut().chain(a.tensors.iter_mut()) {
                loaded += usize::from(files.load(t)?);
            }
        }
    }
    Ok(loaded)
}

/// Whether `t` keeps its bytes in another file.
pub fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty()
}

/// The data files of one model folder, each read once.
struct ExternalFiles {
    dir: PathBuf,
    canonical_dir: PathBuf,
    files: HashMap<String, Vec<u8>>,
}

impl ExternalFiles {
    fn new(dir: &Path) -> Result<Self> {
        let canonical_dir = dir
            .canonicalize()
            .with_context(|| format!("the model's folder {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            canonical_dir,
            files: HashMap::new(),
        })
    }

    /// Moves `t`'s external bytes into `raw_data`; `false` if it had none.
    fn load(&mut self, t: &mut TensorProto) -> Result<bool> {
        if !is_external(t) {
            return Ok(false);
        }
        let name = t.name.clone();
        let entry = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.clone())
        };
        let number = |key: &str| -> Result<Option<usize>> {
            entry(key)
                .map(|v| {
                    v.trim().parse::<usize>().with_context(|| {
                        format!("tensor '{name}': external data {key} '{v}' is not a byte count")
                    })
                })
                .transpose()
        };
        let location = entry("location").with_context(|| {
            format!("tensor '{name}' is marked external but names no file (no 'location' entry)")
        })?;
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;
        let data = self.file(&location, &name)?;
        let end = match length {
            Some(n) => offset.checked_add(n),
            None => Some(data.len()),
        };
        let Some(bytes) = end.and_then(|end| data.get(offset..end)) else {
            bail!(
                "tensor '{name}': bytes {offset}..{} of '{location}' asked for, but the file holds \
                 {} bytes (a truncated or mismatched data file?)",
                end.map_or("overflow".to_string(), |e| e.to_string()),
                data.len()
            );
        };
        t.raw_data = bytes.to_vec();
        t.external_data.clear();
        t.data_location = None;
        Ok(true)
    }

    /// The bytes of `location`, a file inside the model's folder.
    fn file(&mut self, location: &str, tensor: &str) -> Result<&[u8]> {
        let rel = Path::new(location);
        ensure!(
            !location.is_empty()
                && rel
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
            "tensor '{tensor}': its external data file '{location}' is not inside the model's \
             folder (an absolute path or one with '..'); only files beside the model are read"
        );
        if !self.files.contains_key(location) {
            let path = self.dir.join(rel);
            let canonical = path.canonicalize().with_context(|| {
                format!(
                    "tensor '{tensor}': cannot open its external data file {} (it must be copied \
                     along with the .onnx file)",
                    path.display()
                )
            })?;
            ensure!(
                canonical.starts_with(&self.canonical_dir),
                "tensor '{tensor}': its external data file {} is a link out of the model's folder",
                path.display()
            );
            let bytes = std::fs::read(&canonical)
                .with_context(|| format!("while reading {}", path.display()))?;
            self.files.insert(location.to_string(), bytes);
        }
        Ok(&self.files[location])
    }
}
