//! Walkjump checkpoints: safetensors files with walkjump metadata.
//!
//! A checkpoint is a safetensors file whose `__metadata__` section carries
//! string values describing the model (`format`, `version`, `kind`, `sigma`,
//! `measurements`, `data`, `arch`, optional `train`, and any extra keys kept
//! verbatim). Structured values are JSON-encoded strings.
//!
//! This module deals in raw `f32` data only; converting to tensors is the
//! caller's job. Loading validates everything before anything is returned:
//! the safetensors envelope (header length, UTF-8, JSON, offsets, sizes), the
//! walkjump metadata, the tensor dtypes (F32, or F64 converted to f32), and
//! that every value is finite. Nothing is ever allocated from a size claimed
//! by the file beyond the length of the bytes already in memory.
//!
//! Checking tensor shapes against the architecture is left to the caller,
//! which knows the architecture. So is the list of model kinds: reading takes
//! the kinds a file may name as an argument ([`Checkpoint::from_bytes_in`],
//! [`Checkpoint::load_in`], [`inspect_in`]). The registry of model kinds
//! (`src/models/kinds/`) passes its own through `Checkpoint::from_bytes`,
//! `Checkpoint::load` and `models::inspect`, which it defines.
//!
//! The module is a set of rooms, each one concept:
//! - this file: the [`Checkpoint`] itself, writing it (`to_bytes`, `save`), reading files ([`Checkpoint::load_in`],
//!   [`read_checkpoint_file`]), [`sha256_hex`] and the format's constants;
//! - `envelope.rs`: bytes to a validated checkpoint (the safetensors header, tensor entries, dtypes, finiteness);
//! - `meta.rs`: [`Metadata`], [`ModelKind`], [`DataSpec`], [`TensorData`] and their validation;
//! - `error.rs`: [`CheckpointError`], every message one line;
//! - `json.rs`: the canonical (sorted-key, compact) JSON writer;
//! - `inspect.rs`: [`inspect_in`], the human-readable report.
//!
//! It imports nothing from the rest of the crate but `text::one_line`, so the crate's `Error` (`src/error.rs`) can hold
//! [`CheckpointError`] without a loop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Seek, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

mod envelope;
mod error;
mod inspect;
mod json;
mod meta;
#[cfg(test)]
mod tests;

pub use error::CheckpointError;
pub use inspect::inspect_in;
pub use meta::{DataSpec, Metadata, ModelKind, TensorData};

use envelope::parse;
use json::write_json_str;
use meta::check_finite;

/// Value of the `format` metadata key of every walkjump checkpoint.
pub const FORMAT: &str = "walkjump";

/// Newest checkpoint format version this module reads and writes.
pub const VERSION: u32 = 1;

/// Largest allowed number of measurements (`M`).
pub const MAX_MEASUREMENTS: usize = 64;

/// Largest allowed data dimension `channels * height * width` (2^24).
pub const MAX_DATA_DIM: usize = 1 << 24;

/// Largest checkpoint file [`Checkpoint::load_in`] will read (2 GiB).
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Largest safetensors JSON header accepted (the same limit as the
/// safetensors crate: 100 MB).
pub const MAX_HEADER_BYTES: usize = 100_000_000;

/// Metadata keys with a fixed meaning; every other key goes to
/// [`Metadata::extra`].
pub const RESERVED_KEYS: [&str; 8] = [
    "format",
    "version",
    "kind",
    "sigma",
    "measurements",
    "data",
    "arch",
    "train",
];

/// Length of the little-endian `u64` header-length prefix.
const PREFIX: usize = 8;

/// A loaded (or to-be-saved) walkjump checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The walkjump metadata.
    pub meta: Metadata,
    /// Tensors by name (VarBuilder-style names such as `enc.c1.weight`).
    pub tensors: BTreeMap<String, TensorData>,
}

impl Checkpoint {
    /// Parses and fully validates a checkpoint held in memory, whose `kind`
    /// must be one of `kinds` (`Checkpoint::from_bytes` passes the registered
    /// model kinds).
    ///
    /// Validates the safetensors envelope, the walkjump metadata, that every
    /// tensor is F32 or F64 (converted to f32) and finite, and that there is
    /// at least one tensor. Never allocates more than a small multiple of
    /// `bytes.len()`.
    pub fn from_bytes_in(bytes: &[u8], kinds: &[ModelKind]) -> Result<Self, CheckpointError> {
        parse(bytes, kinds).map(|p| p.checkpoint)
    }

    /// Checks everything [`Checkpoint::from_bytes_in`] would check on the
    /// serialized form: metadata invariants, at least one tensor, each
    /// tensor's data length matches its shape, all values finite.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        self.meta.validate()?;
        if self.tensors.is_empty() {
            return Err(CheckpointError::NoTensors);
        }
        for (name, t) in &self.tensors {
            if t.numel() != Some(t.data.len()) {
                return Err(CheckpointError::TensorShapeMismatch {
                    name: name.clone(),
                    shape: t.shape.clone(),
                    len: t.data.len(),
                });
            }
            check_finite(name, &t.data)?;
        }
        Ok(())
    }

    /// Serializes to safetensors bytes (all tensors F32, little-endian).
    ///
    /// Validates first (see [`Checkpoint::validate`]), so whatever is written
    /// loads back. Deterministic: the same checkpoint always gives the same
    /// bytes (metadata keys and tensors sorted by name, JSON objects with
    /// sorted keys, header padded with spaces to a multiple of 8).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        self.validate()?;
        // The header is written here rather than by `safetensors::serialize`,
        // whose `__metadata__` map is a `HashMap` and so comes out in a
        // different order on every call. The layout is the one safetensors
        // writes (and `from_bytes` checks it through `read_metadata`).
        let mut header = String::from("{\"__metadata__\":{");
        for (i, (k, v)) in self.meta.to_strings().iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            write_json_str(&mut header, k);
            header.push(':');
            write_json_str(&mut header, v);
        }
        header.push('}');
        let mut offset = 0usize;
        for (name, t) in &self.tensors {
            let len = t
                .data
                .len()
                .checked_mul(4)
                .ok_or_else(|| CheckpointError::TensorTooLarge { name: name.clone() })?;
            let end = offset
                .checked_add(len)
                .ok_or_else(|| CheckpointError::TensorTooLarge { name: name.clone() })?;
            header.push(',');
            write_json_str(&mut header, name);
            header.push_str(":{\"dtype\":\"F32\",\"shape\":[");
            for (i, d) in t.shape.iter().enumerate() {
                if i > 0 {
                    header.push(',');
                }
                let _ = write!(header, "{d}");
            }
            let _ = write!(header, "],\"data_offsets\":[{offset},{end}]}}");
            offset = end;
        }
        header.push('}');
        let padded = header.len().next_multiple_of(PREFIX);
        if padded > MAX_HEADER_BYTES {
            return Err(CheckpointError::HeaderTooLarge {
                len: padded as u64,
                max: MAX_HEADER_BYTES,
            });
        }
        let total = PREFIX
            .checked_add(padded)
            .and_then(|h| h.checked_add(offset))
            .ok_or_else(|| CheckpointError::TensorTooLarge {
                name: "(all tensors together)".to_string(),
            })?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(padded as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.resize(PREFIX + padded, b' ');
        for t in self.tensors.values() {
            for v in &t.data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Reads and validates a checkpoint file, whose `kind` must be one of
    /// `kinds` (`Checkpoint::load` passes the registered model kinds).
    ///
    /// Rejects missing paths, directories and other non-regular files, empty
    /// files and files over [`MAX_FILE_BYTES`] before reading. Content errors
    /// are wrapped in [`CheckpointError::InFile`] with the path (see
    /// [`CheckpointError::inner`]).
    pub fn load_in(path: &Path, kinds: &[ModelKind]) -> Result<Self, CheckpointError> {
        let bytes = read_checkpoint_file(path)?;
        Self::from_bytes_in(&bytes, kinds).map_err(|e| CheckpointError::InFile {
            path: path.to_path_buf(),
            error: Box::new(e),
        })
    }

    /// Writes the checkpoint atomically: to a temporary file in the same
    /// directory, fsynced, then renamed over `path` (and the directory
    /// fsynced on Unix). A failure leaves any existing file at `path` intact.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_bytes()?;
        let Some(file_name) = path.file_name() else {
            return Err(CheckpointError::InvalidPath {
                path: path.to_path_buf(),
                reason: "it has no file name",
            });
        };
        if path.is_dir() {
            return Err(CheckpointError::NotAFile {
                path: path.to_path_buf(),
                what: "a directory",
            });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}-{}",
            file_name.to_string_lossy(),
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |op: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |error| CheckpointError::Io { op, path: p, error }
        };
        let write = || -> Result<(), CheckpointError> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(io("create", &tmp))?;
            f.write_all(&bytes).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("fsync", &tmp))?;
            drop(f);
            std::fs::rename(&tmp, path).map_err(io("rename into place", path))
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        #[cfg(unix)]
        {
            // Make the rename durable; best effort (some filesystems refuse
            // to fsync a directory).
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Total number of parameters (values) over all tensors.
    pub fn param_count(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }

    /// The tensor called `name`, or [`CheckpointError::MissingTensor`].
    pub fn tensor(&self, name: &str) -> Result<&TensorData, CheckpointError> {
        self.tensors
            .get(name)
            .ok_or_else(|| CheckpointError::MissingTensor {
                name: name.to_string(),
            })
    }
}

/// Reads a file of at most [`MAX_FILE_BYTES`], with clear errors for missing
/// paths, directories and empty files.
pub fn read_checkpoint_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let io = |op: &'static str| {
        move |error: std::io::Error| CheckpointError::Io {
            op,
            path: path.to_path_buf(),
            error,
        }
    };
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckpointError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io("inspect")(e)),
    };
    if md.is_dir() {
        return Err(CheckpointError::NotAFile {
            path: path.to_path_buf(),
            what: "a directory",
        });
    }
    if !md.is_file() {
        return Err(CheckpointError::NotAFile {
            path: path.to_path_buf(),
            what: "not a regular file",
        });
    }
    let too_large = |size| CheckpointError::FileTooLarge {
        path: path.to_path_buf(),
        size,
    };
    if md.len() > MAX_FILE_BYTES {
        return Err(too_large(md.len()));
    }
    if md.len() == 0 {
        return Err(CheckpointError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let mut file = std::fs::File::open(path).map_err(io("open"))?;
    // Look at the 8-byte header length before reading the rest: a file that is
    // not a checkpoint (a dropped video, a gigabyte of random bytes) is refused
    // here, and nothing the size of the file is allocated for it.
    let mut prefix = [0u8; PREFIX];
    if md.len() >= PREFIX as u64 {
        file.read_exact(&mut prefix).map_err(io("read"))?;
        let claimed = u64::from_le_bytes(prefix);
        let available = md.len() - PREFIX as u64;
        let in_file = |error| CheckpointError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        };
        if claimed > available {
            return Err(in_file(CheckpointError::HeaderPastEnd {
                claimed,
                available: available as usize,
            }));
        }
        if claimed > MAX_HEADER_BYTES as u64 {
            return Err(in_file(CheckpointError::HeaderTooLarge {
                len: claimed,
                max: MAX_HEADER_BYTES,
            }));
        }
        file.seek(std::io::SeekFrom::Start(0)).map_err(io("read"))?;
    }
    // Read through a bounded reader rather than `fs::read`, so a file that
    // grows after the size check still cannot make us read past the limit.
    let mut bytes = Vec::with_capacity(md.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io("read"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    if bytes.is_empty() {
        return Err(CheckpointError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}
