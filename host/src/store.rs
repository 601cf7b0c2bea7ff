//! Files every stage writes and reads: atomic writes (a temporary file, then a rename, so a kill
//! leaves the old file or the new one, never half of one), burn weight files, SHA-256 digests.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::store::ModuleRecord;
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The temporary file a write to `path` goes through: `path` with `.tmp` appended.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomic(&[(path, bytes)])
}

/// Writes every `(path, bytes)` through temporary files, renamed into place only once all are
/// written: a failed write leaves none of them (temporary files removed).
pub fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut tmps = Vec::new();
    for (path, bytes) in files {
        let tmp = tmp_path(path);
        if let Err(e) = std::fs::write(&tmp, bytes) {
            for t in &tmps {
                let _ = std::fs::remove_file(t);
            }
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("while writing {}", tmp.display()));
        }
        tmps.push(tmp);
    }
    for (tmp, (path, _)) in tmps.iter().zip(files) {
        std::fs::rename(tmp, path)
            .with_context(|| format!("while renaming into {}", path.display()))?;
    }
    Ok(())
}

/// Saves a network's weights (burnpack) atomically.
pub fn save_weights<M: Module>(model: &M, path: &Path) -> Result<()> {
    let tmp = tmp_path(path);
    model
        .clone()
        .into_record()
        .save(&tmp)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("while writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("while renaming into {}", path.display()))
}

/// A weights file read once, so the bytes that are hashed (to tie a checkpoint to its source)
/// are the bytes that are loaded.
#[derive(Debug, Clone)]
pub struct TrainedWeights {
    /// Where they were read from (named in errors).
    pub path: PathBuf,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Their SHA-256, hex.
    pub sha256: String,
}

impl TrainedWeights {
    /// Reads and hashes the weights file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("while reading weights {}", path.display()))?;
        let sha256 = sha256_hex(&bytes);
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            sha256,
        })
    }

    /// `empty` (a freshly built network of the right shape) holding these weights.
    pub fn load_into<M: Module>(&self, empty: M) -> Result<M> {
        load_bytes_into(empty, self.bytes.clone(), &self.path)
    }
}

/// Reads the weights file at `path` into `empty` (a freshly built network of the right shape).
pub fn load_weights_into<M: Module>(empty: M, path: &Path) -> Result<M> {
    let bytes =
        std::fs::read(path).with_context(|| format!("while reading weights {}", path.display()))?;
    load_bytes_into(empty, bytes, path)
}

/// `empty` holding the weights file `bytes` (read from `path`, named in errors).
fn load_bytes_into<M: Module>(empty: M, bytes: Vec<u8>, path: &Path) -> Result<M> {
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("while reading weights {}", path.display()))?;
    empty
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| {
            format!(
                "{} does not fit the network in its config.json (was it made with other widths?)",
                path.display()
            )
        })
}
