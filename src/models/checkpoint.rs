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
//! which knows the architecture.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{Read, Seek, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::one_line;

/// Value of the `format` metadata key of every walkjump checkpoint.
pub const FORMAT: &str = "walkjump";

/// Newest checkpoint format version this module reads and writes.
pub const VERSION: u32 = 1;

/// Largest allowed number of measurements (`M`).
pub const MAX_MEASUREMENTS: usize = 64;

/// Largest allowed data dimension `channels * height * width` (2^24).
pub const MAX_DATA_DIM: usize = 1 << 24;

/// Largest checkpoint file [`Checkpoint::load`] will read (2 GiB).
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

/// The kind of model a checkpoint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Deep energy estimator network (`deen`).
    Deen,
    /// Unnormalized variational Bayes model (`uvb`).
    Uvb,
    /// Sigma-VAE (`sigma_vae`).
    SigmaVae,
    /// Alpha-VAE (`alpha_vae`).
    AlphaVae,
    /// Plain VAE (`vae`).
    Vae,
    /// Multimeasurement denoising autoencoder (`mdae`).
    Mdae,
    /// Energy-based VAE (`ebm_vae`).
    EbmVae,
    /// Classifier (`classifier`); the only kind allowed `sigma = 0`.
    Classifier,
}

impl ModelKind {
    /// Every model kind, in declaration order.
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Deen,
        ModelKind::Uvb,
        ModelKind::SigmaVae,
        ModelKind::AlphaVae,
        ModelKind::Vae,
        ModelKind::Mdae,
        ModelKind::EbmVae,
        ModelKind::Classifier,
    ];

    /// The snake_case name stored in checkpoints (same as the serde name).
    pub fn as_str(&self) -> &'static str {
        match self {
            ModelKind::Deen => "deen",
            ModelKind::Uvb => "uvb",
            ModelKind::SigmaVae => "sigma_vae",
            ModelKind::AlphaVae => "alpha_vae",
            ModelKind::Vae => "vae",
            ModelKind::Mdae => "mdae",
            ModelKind::EbmVae => "ebm_vae",
            ModelKind::Classifier => "classifier",
        }
    }

    /// Parses the exact snake_case name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The data set a model was trained on, stored as the JSON `data` key.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSpec {
    /// Data set name, e.g. `mnist-10k`.
    pub name: String,
    /// Number of channels (>= 1).
    pub channels: usize,
    /// Image height (>= 1).
    pub height: usize,
    /// Image width (>= 1).
    pub width: usize,
}

impl DataSpec {
    /// Flattened data dimension `channels * height * width` (saturating, so an
    /// unvalidated spec never panics; validated specs are at most
    /// [`MAX_DATA_DIM`]).
    pub fn dim(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// Checks every dimension is >= 1 and the product is <= [`MAX_DATA_DIM`].
    pub fn validate(&self) -> Result<(), CheckpointError> {
        let dim = self
            .channels
            .checked_mul(self.height)
            .and_then(|d| d.checked_mul(self.width));
        let ok = self.channels >= 1
            && self.height >= 1
            && self.width >= 1
            && dim.is_some_and(|d| d <= MAX_DATA_DIM);
        if ok {
            Ok(())
        } else {
            Err(CheckpointError::DataDims {
                channels: self.channels,
                height: self.height,
                width: self.width,
            })
        }
    }
}

/// The walkjump metadata of a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    /// Model kind (`kind` key).
    pub kind: ModelKind,
    /// Format version (`version` key), 1..=[`VERSION`].
    pub version: u32,
    /// Noise level (`sigma` key): finite, >= 0, and > 0 unless the kind is
    /// [`ModelKind::Classifier`].
    pub sigma: f64,
    /// Number of measurements `M` (`measurements` key), 1..=[`MAX_MEASUREMENTS`].
    pub measurements: usize,
    /// Data set description (`data` key).
    pub data: DataSpec,
    /// Architecture config (`arch` key); always a JSON object.
    pub arch: Value,
    /// Training-run record (`train` key), if present.
    pub train: Option<Value>,
    /// Every other metadata key, verbatim (e.g. `sampler`).
    pub extra: BTreeMap<String, String>,
}

impl Metadata {
    /// Checks the invariants loading enforces (version, sigma, measurements,
    /// data dims, `arch` is an object, no reserved key in `extra`).
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if self.version == 0 {
            return Err(CheckpointError::InvalidVersion {
                value: self.version.to_string(),
            });
        }
        if self.version > VERSION {
            return Err(CheckpointError::UnsupportedVersion {
                found: u64::from(self.version),
            });
        }
        check_sigma(self.kind, self.sigma, &format!("{:?}", self.sigma))?;
        check_measurements(self.measurements)?;
        self.data.validate()?;
        if !self.arch.is_object() {
            return Err(CheckpointError::ArchNotObject {
                found: json_type(&self.arch),
            });
        }
        if let Some(key) = self
            .extra
            .keys()
            .find(|k| RESERVED_KEYS.contains(&k.as_str()))
        {
            return Err(CheckpointError::ReservedExtraKey { key: key.clone() });
        }
        Ok(())
    }
}

/// One tensor's shape and row-major `f32` values.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    /// Dimensions, outermost first; `[]` is a scalar.
    pub shape: Vec<usize>,
    /// Row-major values; `data.len()` equals the product of `shape`.
    pub data: Vec<f32>,
}

impl TensorData {
    /// Number of elements implied by `shape` (`None` on overflow).
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

/// A loaded (or to-be-saved) walkjump checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The walkjump metadata.
    pub meta: Metadata,
    /// Tensors by name (VarBuilder-style names such as `enc.c1.weight`).
    pub tensors: BTreeMap<String, TensorData>,
}

/// Everything that can go wrong reading, validating or writing a checkpoint.
///
/// Every message is one line: names from the file are quoted and escaped, and the text of parser errors (which quote
/// the file verbatim, e.g. serde's "unknown variant") has its control characters escaped.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The input has no bytes at all.
    #[error("checkpoint is empty (0 bytes), so it is not a safetensors file")]
    Empty,
    /// The input is shorter than the 8-byte header-length prefix.
    #[error(
        "checkpoint is only {len} bytes, too short to hold the 8-byte safetensors header length"
    )]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// The header length prefix points past the end of the input.
    #[error(
        "safetensors header claims {claimed} bytes but only {available} bytes follow the length prefix (truncated file or not a safetensors file)"
    )]
    HeaderPastEnd {
        /// Header length claimed by the prefix.
        claimed: u64,
        /// Bytes actually present after the prefix.
        available: usize,
    },
    /// The header is larger than [`MAX_HEADER_BYTES`].
    #[error("safetensors header is {len} bytes, more than the {max}-byte limit")]
    HeaderTooLarge {
        /// Claimed header length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The header bytes are not UTF-8.
    #[error("safetensors header is not valid UTF-8 (bad byte at header offset {offset})")]
    HeaderNotUtf8 {
        /// Offset of the first invalid byte within the header.
        offset: usize,
    },
    /// The header is not parseable JSON.
    #[error("safetensors header is not valid JSON: {}", one_line(reason))]
    HeaderNotJson {
        /// The JSON parser's message.
        reason: String,
    },
    /// The header is JSON but not a safetensors index (e.g. not an object).
    #[error("safetensors header is malformed: {}", one_line(reason))]
    HeaderMalformed {
        /// What is wrong.
        reason: String,
    },
    /// A tensor entry in the header is not `{dtype, shape, data_offsets}`.
    #[error(
        "tensor {} has a malformed header entry: {}",
        q(name),
        one_line(reason)
    )]
    TensorEntryMalformed {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's data range ends past the data section (typically a
    /// truncated file).
    #[error(
        "tensor {} data ends at byte {end} but the data section holds only {available} bytes (truncated file?)",
        q(name)
    )]
    TensorOutOfBounds {
        /// Tensor name.
        name: String,
        /// End offset claimed by the header.
        end: usize,
        /// Size of the data section.
        available: usize,
    },
    /// A tensor's data offsets are reversed, overlapping or leave a gap.
    #[error("tensor {} has invalid data offsets: {}", q(name), one_line(reason))]
    TensorOffsets {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's byte length does not match its dtype and shape.
    #[error(
        "tensor {} with dtype {dtype} and shape {} needs {expected} bytes but its data offsets span {actual} bytes",
        q(name),
        fmt_shape(shape)
    )]
    TensorSizeMismatch {
        /// Tensor name.
        name: String,
        /// Dtype as written in the file.
        dtype: String,
        /// Shape as written in the file.
        shape: Vec<usize>,
        /// Bytes implied by dtype and shape.
        expected: usize,
        /// Bytes covered by the data offsets.
        actual: usize,
    },
    /// A tensor's element or byte count overflows `usize`.
    #[error("tensor {} has a shape whose size overflows", q(name))]
    TensorTooLarge {
        /// Tensor name.
        name: String,
    },
    /// The tensors do not cover the data section exactly.
    #[error(
        "tensor data offsets cover {covered} bytes but the file holds {available} data bytes after the header (truncated file or trailing bytes)"
    )]
    DataLengthMismatch {
        /// Bytes covered by the tensors.
        covered: usize,
        /// Bytes present after the header.
        available: usize,
    },
    /// The safetensors crate rejected the file for a reason not caught above.
    #[error("safetensors rejected the file: {}", one_line(reason))]
    Safetensors {
        /// The safetensors error message.
        reason: String,
    },
    /// The header has no `__metadata__` section.
    #[error(
        "safetensors header has no `__metadata__` section, so this is not a walkjump checkpoint"
    )]
    NoMetadata,
    /// `__metadata__` is not a JSON object of strings.
    #[error("safetensors `__metadata__` is malformed: {}", one_line(reason))]
    MetadataMalformed {
        /// What is wrong.
        reason: String,
    },
    /// `format` is missing or not `walkjump`.
    #[error("{}", not_walkjump_msg(found.as_deref()))]
    NotWalkjump {
        /// The `format` value found, if any.
        found: Option<String>,
    },
    /// `version` is not a positive integer.
    #[error("metadata `version` is {}, not a positive integer", q(value))]
    InvalidVersion {
        /// The value found.
        value: String,
    },
    /// `version` is newer than this code understands.
    #[error("checkpoint format version {found} is newer than the supported version {VERSION}")]
    UnsupportedVersion {
        /// The version found.
        found: u64,
    },
    /// A required metadata key is absent.
    #[error("metadata key `{key}` is missing")]
    MissingKey {
        /// The missing key.
        key: &'static str,
    },
    /// `kind` names no known model kind.
    #[error("unknown model kind {}; valid kinds are {}", q(value), kinds_list())]
    UnknownKind {
        /// The value found.
        value: String,
    },
    /// `sigma` does not parse as a number.
    #[error("metadata `sigma` is {}, not a number", q(value))]
    SigmaNotNumber {
        /// The value found.
        value: String,
    },
    /// `sigma` is NaN or infinite.
    #[error("metadata `sigma` is {value}, but it must be finite")]
    SigmaNotFinite {
        /// The value found.
        value: String,
    },
    /// `sigma` is negative.
    #[error("metadata `sigma` is {value}, but it must be >= 0")]
    SigmaNegative {
        /// The value found.
        value: String,
    },
    /// `sigma` is zero for a kind other than classifier.
    #[error("metadata `sigma` is 0, which only a classifier may have, but the kind is {kind}")]
    SigmaZero {
        /// The checkpoint's kind.
        kind: ModelKind,
    },
    /// `measurements` is not an integer.
    #[error("metadata `measurements` is {}, not a non-negative integer", q(value))]
    MeasurementsInvalid {
        /// The value found.
        value: String,
    },
    /// `measurements` is outside 1..=[`MAX_MEASUREMENTS`].
    #[error("metadata `measurements` is {value}, outside the allowed range 1..={MAX_MEASUREMENTS}")]
    MeasurementsOutOfRange {
        /// The value found.
        value: u64,
    },
    /// `data` is not a JSON `{name, channels, height, width}` object.
    #[error(
        "metadata `data` is not a valid data spec JSON object: {}",
        one_line(reason)
    )]
    DataInvalid {
        /// The JSON error.
        reason: String,
    },
    /// `data` has a zero dimension or too many values.
    #[error(
        "metadata `data` has invalid dimensions {channels}x{height}x{width}: each must be >= 1 and their product <= {MAX_DATA_DIM}"
    )]
    DataDims {
        /// Channels.
        channels: usize,
        /// Height.
        height: usize,
        /// Width.
        width: usize,
    },
    /// `arch` is not valid JSON.
    #[error("metadata `arch` is not valid JSON: {}", one_line(reason))]
    ArchNotJson {
        /// The JSON error.
        reason: String,
    },
    /// `arch` is JSON but not an object.
    #[error("metadata `arch` must be a JSON object but is a JSON {found}")]
    ArchNotObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// `train` is present but not valid JSON.
    #[error("metadata `train` is not valid JSON: {}", one_line(reason))]
    TrainNotJson {
        /// The JSON error.
        reason: String,
    },
    /// An `extra` key collides with a reserved key (when saving).
    #[error("extra metadata key `{key}` is reserved and cannot be stored as an extra key")]
    ReservedExtraKey {
        /// The offending key.
        key: String,
    },
    /// The checkpoint has no tensors.
    #[error("checkpoint contains no tensors")]
    NoTensors,
    /// A tensor's dtype is neither F32 nor F64.
    #[error(
        "tensor {} has unsupported dtype {}; only F32 and F64 are accepted",
        q(name),
        one_line(dtype)
    )]
    UnsupportedDtype {
        /// Tensor name.
        name: String,
        /// The dtype as written in the file.
        dtype: String,
    },
    /// A tensor holds NaN or infinite values.
    #[error(
        "tensor {} contains {nan} NaN and {inf} infinite values out of {total}",
        q(name)
    )]
    NonFinite {
        /// Tensor name.
        name: String,
        /// Number of NaN values.
        nan: usize,
        /// Number of infinite values.
        inf: usize,
        /// Number of values in the tensor.
        total: usize,
    },
    /// An F64 tensor holds finite values beyond the f32 range.
    #[error(
        "F64 tensor {} has {count} finite values outside the f32 range",
        q(name)
    )]
    F64OutOfRange {
        /// Tensor name.
        name: String,
        /// Number of such values.
        count: usize,
    },
    /// A tensor's data length disagrees with its shape (when saving).
    #[error(
        "tensor {} has shape {} but holds {len} values",
        q(name),
        fmt_shape(shape)
    )]
    TensorShapeMismatch {
        /// Tensor name.
        name: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// Number of values present.
        len: usize,
    },
    /// [`Checkpoint::tensor`] was asked for a name that is not there.
    #[error("checkpoint has no tensor named {}", q(name))]
    MissingTensor {
        /// The requested name.
        name: String,
    },
    /// The path does not exist.
    #[error("checkpoint file {} does not exist", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// The path is a directory or another non-regular file.
    #[error("checkpoint path {} is {what}, not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// The file is empty.
    #[error("checkpoint file {} is empty (0 bytes)", path.display())]
    EmptyFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error(
        "checkpoint file {} is {size} bytes, larger than the {MAX_FILE_BYTES}-byte (2 GiB) limit",
        path.display()
    )]
    FileTooLarge {
        /// The path.
        path: PathBuf,
        /// The file size.
        size: u64,
    },
    /// The path cannot be used as a checkpoint destination.
    #[error("cannot save a checkpoint to {}: {reason}", path.display())]
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// An I/O operation failed.
    #[error("failed to {op} {}: {error}", path.display())]
    Io {
        /// The operation (`read`, `write`, `rename`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file was read but its content is invalid; `error` says why.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The validation error.
        error: Box<CheckpointError>,
    },
}

impl CheckpointError {
    /// The error without the [`CheckpointError::InFile`] path wrapper that
    /// [`Checkpoint::load`] adds around content errors.
    pub fn inner(&self) -> &CheckpointError {
        match self {
            CheckpointError::InFile { error, .. } => error.inner(),
            other => other,
        }
    }
}

/// Quotes a user-supplied string for an error message: backquoted, escaped,
/// truncated to a readable length.
fn q(s: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::from("`");
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('`');
    out
}

/// Formats a shape as `[2, 3]`, eliding the middle of very long shapes.
fn fmt_shape(shape: &[usize]) -> String {
    const MAX: usize = 8;
    let parts: Vec<String> = if shape.len() > MAX {
        let mut p: Vec<String> = shape[..MAX / 2].iter().map(|d| d.to_string()).collect();
        p.push(format!("… ({} dims) …", shape.len()));
        p.extend(shape[shape.len() - MAX / 2..].iter().map(|d| d.to_string()));
        p
    } else {
        shape.iter().map(|d| d.to_string()).collect()
    };
    format!("[{}]", parts.join(", "))
}

fn not_walkjump_msg(found: Option<&str>) -> String {
    match found {
        None => "metadata has no `format` key, so this is not a walkjump checkpoint".to_string(),
        Some(f) => format!(
            "metadata `format` is {}, not `{FORMAT}`, so this is not a walkjump checkpoint",
            q(f)
        ),
    }
}

fn kinds_list() -> String {
    ModelKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_sigma(kind: ModelKind, sigma: f64, text: &str) -> Result<(), CheckpointError> {
    if !sigma.is_finite() {
        return Err(CheckpointError::SigmaNotFinite {
            value: text.to_string(),
        });
    }
    if sigma < 0.0 {
        return Err(CheckpointError::SigmaNegative {
            value: text.to_string(),
        });
    }
    if sigma == 0.0 && kind != ModelKind::Classifier {
        return Err(CheckpointError::SigmaZero { kind });
    }
    Ok(())
}

fn check_measurements(m: usize) -> Result<(), CheckpointError> {
    if (1..=MAX_MEASUREMENTS).contains(&m) {
        Ok(())
    } else {
        Err(CheckpointError::MeasurementsOutOfRange { value: m as u64 })
    }
}

/// Bits per element of a safetensors dtype name, `None` for unknown names.
fn dtype_bits(name: &str) -> Option<usize> {
    Some(match name {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// Shape of a tensor entry as the header spells it (checked before the
/// safetensors crate sees the header, see [`prescan_tensors`]).
#[derive(serde::Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// Checks the 8-byte prefix and returns the header text and its length.
fn check_envelope(bytes: &[u8]) -> Result<(&str, usize), CheckpointError> {
    let Some(prefix) = bytes.first_chunk::<PREFIX>() else {
        return Err(if bytes.is_empty() {
            CheckpointError::Empty
        } else {
            CheckpointError::TooShort { len: bytes.len() }
        });
    };
    let claimed = u64::from_le_bytes(*prefix);
    let available = bytes.len() - PREFIX;
    // Compare in u64 before converting: a claim of terabytes is rejected here,
    // and nothing is ever allocated from it.
    if claimed > available as u64 {
        return Err(CheckpointError::HeaderPastEnd { claimed, available });
    }
    let n = claimed as usize;
    if n > MAX_HEADER_BYTES {
        return Err(CheckpointError::HeaderTooLarge {
            len: claimed,
            max: MAX_HEADER_BYTES,
        });
    }
    let header = bytes
        .get(PREFIX..PREFIX + n)
        .ok_or(CheckpointError::HeaderPastEnd { claimed, available })?;
    let text = std::str::from_utf8(header).map_err(|e| CheckpointError::HeaderNotUtf8 {
        offset: e.valid_up_to(),
    })?;
    Ok((text, n))
}

/// Validates every tensor entry of the header against the data section with
/// overflow-checked arithmetic and named errors.
///
/// This runs before `SafeTensors::read_metadata`, which (in 0.8) reports size
/// mismatches without the tensor name and computes `buffer_end + 8 + n`
/// unchecked: offsets summing to nearly 2^64 make it panic with an arithmetic
/// overflow in debug builds. After this scan every end offset is <= the data
/// length, so that sum cannot overflow.
fn prescan_tensors(
    obj: &serde_json::Map<String, Value>,
    data_len: usize,
) -> Result<(), CheckpointError> {
    use serde::Deserialize;
    let mut ranges: Vec<(usize, usize, &str)> = Vec::with_capacity(obj.len());
    for (name, entry) in obj {
        if name == "__metadata__" {
            continue;
        }
        let info =
            RawInfo::deserialize(entry).map_err(|e| CheckpointError::TensorEntryMalformed {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        let (start, end) = info.data_offsets;
        if end < start {
            return Err(CheckpointError::TensorOffsets {
                name: name.clone(),
                reason: format!("end offset {end} is before start offset {start}"),
            });
        }
        if end > data_len {
            return Err(CheckpointError::TensorOutOfBounds {
                name: name.clone(),
                end,
                available: data_len,
            });
        }
        let Some(bits) = dtype_bits(&info.dtype) else {
            return Err(CheckpointError::UnsupportedDtype {
                name: name.clone(),
                dtype: info.dtype,
            });
        };
        let nbits = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(bits))
            .ok_or_else(|| CheckpointError::TensorTooLarge { name: name.clone() })?;
        if nbits % 8 != 0 {
            // Only sub-byte dtypes (F4, F6) can get here; they are not
            // supported anyway.
            return Err(CheckpointError::UnsupportedDtype {
                name: name.clone(),
                dtype: info.dtype,
            });
        }
        let expected = nbits / 8;
        let actual = end - start;
        if expected != actual {
            return Err(CheckpointError::TensorSizeMismatch {
                name: name.clone(),
                dtype: info.dtype,
                shape: info.shape,
                expected,
                actual,
            });
        }
        ranges.push((start, end, name.as_str()));
    }
    ranges.sort();
    let mut pos = 0usize;
    for (start, end, name) in ranges {
        if start != pos {
            let reason = if start < pos {
                format!(
                    "data starts at byte {start}, inside the previous tensor which ends at byte {pos}"
                )
            } else {
                format!("data starts at byte {start}, leaving a gap after byte {pos}")
            };
            return Err(CheckpointError::TensorOffsets {
                name: name.to_string(),
                reason,
            });
        }
        pos = end;
    }
    if pos != data_len {
        return Err(CheckpointError::DataLengthMismatch {
            covered: pos,
            available: data_len,
        });
    }
    Ok(())
}

/// Checks that `__metadata__` exists and is an object of strings.
fn prescan_metadata(obj: &serde_json::Map<String, Value>) -> Result<(), CheckpointError> {
    match obj.get("__metadata__") {
        None | Some(Value::Null) => Err(CheckpointError::NoMetadata),
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if !v.is_string() {
                    return Err(CheckpointError::MetadataMalformed {
                        reason: format!(
                            "the value of {} is a JSON {}, not a string",
                            q(k),
                            json_type(v)
                        ),
                    });
                }
            }
            Ok(())
        }
        Some(other) => Err(CheckpointError::MetadataMalformed {
            reason: format!(
                "it is a JSON {}, not an object of strings",
                json_type(other)
            ),
        }),
    }
}

/// Maps an error of the safetensors crate onto our variants.
fn map_st_error(e: SafeTensorError, claimed: u64, available: usize) -> CheckpointError {
    match e {
        SafeTensorError::HeaderTooSmall => CheckpointError::TooShort { len: available },
        SafeTensorError::HeaderTooLarge => CheckpointError::HeaderTooLarge {
            len: claimed,
            max: MAX_HEADER_BYTES,
        },
        SafeTensorError::InvalidHeaderLength => {
            CheckpointError::HeaderPastEnd { claimed, available }
        }
        SafeTensorError::InvalidHeader(u) => CheckpointError::HeaderNotUtf8 {
            offset: u.valid_up_to(),
        },
        SafeTensorError::InvalidHeaderDeserialization(j) => CheckpointError::HeaderMalformed {
            reason: j.to_string(),
        },
        SafeTensorError::InvalidOffset(name) => CheckpointError::TensorOffsets {
            name,
            reason: "offsets are not contiguous from the start of the data section".to_string(),
        },
        other => CheckpointError::Safetensors {
            reason: other.to_string(),
        },
    }
}

/// Parses the metadata strings into [`Metadata`], validating each key.
fn parse_metadata(map: &HashMap<String, String>) -> Result<Metadata, CheckpointError> {
    let get = |key: &'static str| {
        map.get(key)
            .map(String::as_str)
            .ok_or(CheckpointError::MissingKey { key })
    };
    match map.get("format") {
        Some(f) if f == FORMAT => {}
        found => {
            return Err(CheckpointError::NotWalkjump {
                found: found.cloned(),
            });
        }
    }
    let vtext = get("version")?;
    let version = match vtext.trim().parse::<u64>() {
        Ok(0) | Err(_) => {
            return Err(CheckpointError::InvalidVersion {
                value: vtext.to_string(),
            });
        }
        Ok(v) if v > u64::from(VERSION) => {
            return Err(CheckpointError::UnsupportedVersion { found: v });
        }
        // v <= VERSION, so it fits in u32.
        Ok(v) => v as u32,
    };
    let ktext = get("kind")?;
    let kind = ModelKind::parse(ktext).ok_or_else(|| CheckpointError::UnknownKind {
        value: ktext.to_string(),
    })?;
    let stext = get("sigma")?;
    let sigma = stext
        .trim()
        .parse::<f64>()
        .map_err(|_| CheckpointError::SigmaNotNumber {
            value: stext.to_string(),
        })?;
    // The trimmed text parsed as a number, so it is safe to echo (the raw text may hold newlines around it).
    check_sigma(kind, sigma, stext.trim())?;
    let mtext = get("measurements")?;
    let m = mtext
        .trim()
        .parse::<u64>()
        .map_err(|_| CheckpointError::MeasurementsInvalid {
            value: mtext.to_string(),
        })?;
    if !(1..=MAX_MEASUREMENTS as u64).contains(&m) {
        return Err(CheckpointError::MeasurementsOutOfRange { value: m });
    }
    let measurements = m as usize;
    let data: DataSpec =
        serde_json::from_str(get("data")?).map_err(|e| CheckpointError::DataInvalid {
            reason: e.to_string(),
        })?;
    data.validate()?;
    let arch: Value =
        serde_json::from_str(get("arch")?).map_err(|e| CheckpointError::ArchNotJson {
            reason: e.to_string(),
        })?;
    if !arch.is_object() {
        return Err(CheckpointError::ArchNotObject {
            found: json_type(&arch),
        });
    }
    let train =
        match map.get("train") {
            None => None,
            Some(t) => Some(serde_json::from_str::<Value>(t).map_err(|e| {
                CheckpointError::TrainNotJson {
                    reason: e.to_string(),
                }
            })?),
        };
    let extra = map
        .iter()
        .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Metadata {
        kind,
        version,
        sigma,
        measurements,
        data,
        arch,
        train,
        extra,
    })
}

/// Counts NaN and infinite values.
fn count_non_finite(data: &[f32]) -> (usize, usize) {
    data.iter().fold((0, 0), |(nan, inf), v| {
        (
            nan + usize::from(v.is_nan()),
            inf + usize::from(v.is_infinite()),
        )
    })
}

fn check_finite(name: &str, data: &[f32]) -> Result<(), CheckpointError> {
    let (nan, inf) = count_non_finite(data);
    if nan + inf > 0 {
        return Err(CheckpointError::NonFinite {
            name: name.to_string(),
            nan,
            inf,
            total: data.len(),
        });
    }
    Ok(())
}

/// Decodes one tensor's bytes to f32, checking dtype and finiteness.
fn decode_tensor(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, CheckpointError> {
    let data: Vec<f32> = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => {
            let wide: Vec<f64> = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            let (mut nan, mut inf, mut out_of_range) = (0usize, 0usize, 0usize);
            for v in &wide {
                if v.is_nan() {
                    nan += 1;
                } else if v.is_infinite() {
                    inf += 1;
                } else if v.abs() > f64::from(f32::MAX) {
                    out_of_range += 1;
                }
            }
            if nan + inf > 0 {
                return Err(CheckpointError::NonFinite {
                    name: name.to_string(),
                    nan,
                    inf,
                    total: wide.len(),
                });
            }
            if out_of_range > 0 {
                return Err(CheckpointError::F64OutOfRange {
                    name: name.to_string(),
                    count: out_of_range,
                });
            }
            wide.into_iter().map(|v| v as f32).collect()
        }
        other => {
            return Err(CheckpointError::UnsupportedDtype {
                name: name.to_string(),
                dtype: other.to_string(),
            });
        }
    };
    check_finite(name, &data)?;
    Ok(data)
}

/// A parsed checkpoint plus the dtype each tensor had in the file.
struct Parsed {
    checkpoint: Checkpoint,
    dtypes: BTreeMap<String, String>,
}

fn parse(bytes: &[u8]) -> Result<Parsed, CheckpointError> {
    let (header, n) = check_envelope(bytes)?;
    let value: Value =
        serde_json::from_str(header).map_err(|e| CheckpointError::HeaderNotJson {
            reason: e.to_string(),
        })?;
    let Value::Object(obj) = &value else {
        return Err(CheckpointError::HeaderMalformed {
            reason: format!("the header is a JSON {}, not an object", json_type(&value)),
        });
    };
    let data_start = PREFIX + n;
    let data_len = bytes.len() - data_start;
    prescan_tensors(obj, data_len)?;
    prescan_metadata(obj)?;

    // The safetensors crate has the final word on the envelope.
    let (st_n, st_meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| map_st_error(e, n as u64, bytes.len() - PREFIX))?;
    if st_n != n {
        return Err(CheckpointError::Safetensors {
            reason: format!("header length {st_n} disagrees with the prefix {n}"),
        });
    }
    let strings = st_meta
        .metadata()
        .as_ref()
        .ok_or(CheckpointError::NoMetadata)?;
    let meta = parse_metadata(strings)?;

    let infos: BTreeMap<String, &safetensors::tensor::TensorInfo> =
        st_meta.tensors().into_iter().collect();
    if infos.is_empty() {
        return Err(CheckpointError::NoTensors);
    }
    let data = bytes.get(data_start..).unwrap_or_default();
    let mut tensors = BTreeMap::new();
    let mut dtypes = BTreeMap::new();
    for (name, info) in infos {
        let (start, end) = info.data_offsets;
        let raw = data
            .get(start..end)
            .ok_or_else(|| CheckpointError::TensorOutOfBounds {
                name: name.clone(),
                end,
                available: data.len(),
            })?;
        let values = decode_tensor(&name, info.dtype, raw)?;
        let numel = info.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(values.len()) {
            return Err(CheckpointError::TensorSizeMismatch {
                name,
                dtype: info.dtype.to_string(),
                shape: info.shape.clone(),
                expected: numel.unwrap_or(usize::MAX),
                actual: raw.len(),
            });
        }
        dtypes.insert(name.clone(), info.dtype.to_string());
        tensors.insert(
            name,
            TensorData {
                shape: info.shape.clone(),
                data: values,
            },
        );
    }
    Ok(Parsed {
        checkpoint: Checkpoint { meta, tensors },
        dtypes,
    })
}

/// Appends `s` as a JSON string literal.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `v` as compact JSON with object keys sorted, so the output does
/// not depend on map ordering (e.g. serde_json's `preserve_order` feature).
fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_json_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, k);
                out.push(':');
                write_json(out, x);
            }
            out.push('}');
        }
    }
}

fn canonical_json(v: &Value) -> String {
    let mut s = String::new();
    write_json(&mut s, v);
    s
}

impl Metadata {
    /// The `__metadata__` string map written by [`Checkpoint::to_bytes`].
    fn to_strings(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = self.extra.clone();
        m.insert("format".into(), FORMAT.into());
        m.insert("version".into(), self.version.to_string());
        m.insert("kind".into(), self.kind.as_str().into());
        // `{:?}` is the shortest representation that parses back to the same
        // f64, with an exponent for very large or small values.
        m.insert("sigma".into(), format!("{:?}", self.sigma));
        m.insert("measurements".into(), self.measurements.to_string());
        let mut data = String::from("{\"name\":");
        write_json_str(&mut data, &self.data.name);
        let _ = write!(
            data,
            ",\"channels\":{},\"height\":{},\"width\":{}}}",
            self.data.channels, self.data.height, self.data.width
        );
        m.insert("data".into(), data);
        m.insert("arch".into(), canonical_json(&self.arch));
        if let Some(t) = &self.train {
            m.insert("train".into(), canonical_json(t));
        }
        m
    }
}

impl Checkpoint {
    /// Parses and fully validates a checkpoint held in memory.
    ///
    /// Validates the safetensors envelope, the walkjump metadata, that every
    /// tensor is F32 or F64 (converted to f32) and finite, and that there is
    /// at least one tensor. Never allocates more than a small multiple of
    /// `bytes.len()`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        parse(bytes).map(|p| p.checkpoint)
    }

    /// Checks everything [`Checkpoint::from_bytes`] would check on the
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

    /// Reads and validates a checkpoint file.
    ///
    /// Rejects missing paths, directories and other non-regular files, empty
    /// files and files over [`MAX_FILE_BYTES`] before reading. Content errors
    /// are wrapped in [`CheckpointError::InFile`] with the path (see
    /// [`CheckpointError::inner`]).
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = read_checkpoint_file(path)?;
        Self::from_bytes(&bytes).map_err(|e| CheckpointError::InFile {
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

/// Validates `bytes` as a checkpoint and returns a human-readable report:
/// file hash and size, metadata (one `key value` line each, extra keys
/// included; JSON values in compact canonical form) and a table of tensors
/// sorted by name with shape, file dtype, min, max and mean. The text is the
/// same for the same input.
pub fn inspect(bytes: &[u8]) -> Result<String, CheckpointError> {
    let Parsed { checkpoint, dtypes } = parse(bytes)?;
    let meta = &checkpoint.meta;
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{:<12} {}", one_line(key), value);
    };
    line("file sha256", &sha256_hex(bytes));
    line("file size", &format!("{} bytes", bytes.len()));
    line("format", &format!("{FORMAT} v{}", meta.version));
    line("kind", meta.kind.as_str());
    let sigma = meta.sigma;
    let sigma_text = if sigma == 0.0 || (1e-4..1e15).contains(&sigma.abs()) {
        format!("{sigma}")
    } else {
        format!("{sigma:e}")
    };
    line("sigma", &sigma_text);
    line("measurements", &meta.measurements.to_string());
    line(
        "data",
        &format!(
            "{} {}x{}x{} ({} values)",
            one_line(&meta.data.name),
            meta.data.channels,
            meta.data.height,
            meta.data.width,
            meta.data.dim()
        ),
    );
    line("arch", &one_line(&canonical_json(&meta.arch)));
    match &meta.train {
        Some(t) => line("train", &one_line(&canonical_json(t))),
        None => line("train", "(none)"),
    }
    for (k, v) in &meta.extra {
        let shown = match serde_json::from_str::<Value>(v) {
            Ok(j) if j.is_object() || j.is_array() => canonical_json(&j),
            _ => v.clone(),
        };
        line(k, &one_line(&shown));
    }
    line(
        "tensors",
        &format!(
            "{} tensors, {} parameters",
            checkpoint.tensors.len(),
            checkpoint.param_count()
        ),
    );
    let rows: Vec<[String; 6]> = checkpoint
        .tensors
        .iter()
        .map(|(name, t)| {
            let dtype = dtypes.get(name).cloned().unwrap_or_else(|| "F32".into());
            let (min, max, mean) = if t.data.is_empty() {
                ("-".to_string(), "-".to_string(), "-".to_string())
            } else {
                let mut lo = f32::INFINITY;
                let mut hi = f32::NEG_INFINITY;
                let mut sum = 0.0f64;
                for &v in &t.data {
                    lo = lo.min(v);
                    hi = hi.max(v);
                    sum += f64::from(v);
                }
                let mean = sum / t.data.len() as f64;
                (
                    format!("{lo:.4e}"),
                    format!("{hi:.4e}"),
                    format!("{mean:.4e}"),
                )
            };
            [one_line(name), fmt_shape(&t.shape), dtype, min, max, mean]
        })
        .collect();
    let header = [
        "name".to_string(),
        "shape".to_string(),
        "dtype".to_string(),
        "min".to_string(),
        "max".to_string(),
        "mean".to_string(),
    ];
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut l = String::from(" ");
        for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
            l.push_str(if i == 0 { " " } else { "  " });
            if i < 3 {
                let _ = write!(l, "{cell:<w$}");
            } else {
                let _ = write!(l, "{cell:>w$}");
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Checkpoint {
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "enc.c1.weight".to_string(),
            TensorData {
                shape: vec![2, 4],
                data: vec![
                    -0.0,
                    0.0,
                    f32::from_bits(1),       // smallest subnormal
                    f32::MIN_POSITIVE / 3.0, // subnormal
                    f32::MAX,
                    f32::MIN,
                    1e-38,
                    -1.5,
                ],
            },
        );
        tensors.insert(
            "enc.c1.bias".to_string(),
            TensorData {
                shape: vec![3],
                data: vec![0.1, -0.2, 0.3],
            },
        );
        tensors.insert(
            "scale".to_string(),
            TensorData {
                shape: vec![],
                data: vec![std::f32::consts::PI],
            },
        );
        tensors.insert(
            "unused".to_string(),
            TensorData {
                shape: vec![0, 5],
                data: vec![],
            },
        );
        tensors.insert(
            "dec.ünï \"q\"".to_string(),
            TensorData {
                shape: vec![1, 1, 2],
                data: vec![1.0, -1.0],
            },
        );
        let mut extra = BTreeMap::new();
        extra.insert(
            "sampler".to_string(),
            r#"{"steps": 100, "delta": 0.5}"#.to_string(),
        );
        extra.insert("note".to_string(), "line1\nline2 \u{1}ünï".to_string());
        Checkpoint {
            meta: Metadata {
                kind: ModelKind::Deen,
                version: VERSION,
                sigma: 1.0,
                measurements: 4,
                data: DataSpec {
                    name: "mnist-10k".into(),
                    channels: 1,
                    height: 28,
                    width: 28,
                },
                arch: json!({"type": "mlp", "hidden": [1024, 1024], "act": "silu", "eps": 1e-5}),
                train: Some(json!({"epochs": 3, "lr": 0.001, "seed": 7})),
                extra,
            },
            tensors,
        }
    }

    fn good_meta() -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("format", "walkjump"),
            ("version", "1"),
            ("kind", "deen"),
            ("sigma", "1"),
            ("measurements", "1"),
            (
                "data",
                r#"{"name":"mnist-10k","channels":1,"height":28,"width":28}"#,
            ),
            ("arch", r#"{"type":"mlp","hidden":[8]}"#),
        ] {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    /// A file with the given metadata and tensors `(name, dtype, shape, bytes)`.
    fn file_with(
        meta: Option<&BTreeMap<String, String>>,
        tensors: &[(&str, &str, Vec<usize>, Vec<u8>)],
    ) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        if let Some(m) = meta {
            header.insert("__metadata__".into(), json!(m));
        }
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            let s = data.len();
            data.extend_from_slice(bytes);
            header.insert(
                name.to_string(),
                json!({"dtype": dtype, "shape": shape, "data_offsets": [s, data.len()]}),
            );
        }
        raw_file(&Value::Object(header).to_string(), &data)
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn one_tensor() -> Vec<(&'static str, &'static str, Vec<usize>, Vec<u8>)> {
        vec![("w", "F32", vec![2], f32_bytes(&[1.0, 2.0]))]
    }

    fn meta_file(edit: impl FnOnce(&mut BTreeMap<String, String>)) -> Vec<u8> {
        let mut m = good_meta();
        edit(&mut m);
        file_with(Some(&m), &one_tensor())
    }

    fn err(bytes: &[u8]) -> CheckpointError {
        match Checkpoint::from_bytes(bytes) {
            Ok(_) => panic!("expected an error"),
            Err(e) => {
                assert!(!e.to_string().is_empty());
                e
            }
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d = std::env::temp_dir().join(format!(
            "walkjump-ckpt-test-{}-{}-{}",
            std::process::id(),
            nanos,
            tag
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn good_minimal_file_loads() {
        let c = Checkpoint::from_bytes(&meta_file(|_| {})).unwrap();
        assert_eq!(c.meta.kind, ModelKind::Deen);
        assert_eq!(c.meta.sigma, 1.0);
        assert_eq!(c.meta.train, None);
        assert!(c.meta.extra.is_empty());
        assert_eq!(c.tensor("w").unwrap().data, vec![1.0, 2.0]);
        assert_eq!(c.param_count(), 2);
    }

    #[test]
    fn round_trip_bit_exact_and_deterministic() {
        let c = sample();
        let b1 = c.to_bytes().unwrap();
        let b2 = c.to_bytes().unwrap();
        assert_eq!(b1, b2, "to_bytes must be deterministic");
        assert_eq!(c.clone().to_bytes().unwrap(), b1);
        // Header is 8-byte aligned, as safetensors writes it.
        let n = u64::from_le_bytes(b1[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        // The safetensors crate itself accepts the output.
        let st = SafeTensors::deserialize(&b1).unwrap();
        assert_eq!(st.len(), c.tensors.len());

        let back = Checkpoint::from_bytes(&b1).unwrap();
        assert_eq!(back, c);
        for (name, t) in &c.tensors {
            let u = back.tensor(name).unwrap();
            assert_eq!(u.shape, t.shape);
            let a: Vec<u32> = t.data.iter().map(|v| v.to_bits()).collect();
            let b: Vec<u32> = u.data.iter().map(|v| v.to_bits()).collect();
            assert_eq!(a, b, "tensor {name} not bit-exact");
        }
        assert_eq!(back.to_bytes().unwrap(), b1);
        assert_eq!(back.param_count(), 8 + 3 + 1 + 2);
    }

    #[test]
    fn sigma_round_trips_exactly() {
        for s in [0.1, 1.0 / 3.0, 1e-300, 1e300, 5e-324, 2.5] {
            let mut c = sample();
            c.meta.sigma = s;
            let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
            assert_eq!(back.meta.sigma.to_bits(), s.to_bits());
        }
        let mut c = sample();
        c.meta.kind = ModelKind::Classifier;
        c.meta.sigma = 0.0;
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
        assert_eq!(back.meta.sigma, 0.0);
    }

    #[test]
    fn save_load_round_trip() {
        let dir = temp_dir("save");
        let path = dir.join("model.safetensors");
        let c = sample();
        c.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), c);
        assert_eq!(std::fs::read(&path).unwrap(), c.to_bytes().unwrap());
        // Overwrite with a different checkpoint.
        let mut c2 = sample();
        c2.meta.sigma = 0.25;
        c2.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), c2);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // Saving onto a directory fails cleanly.
        let e = c.save(&dir).unwrap_err();
        assert!(matches!(e, CheckpointError::NotAFile { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_invalid_checkpoint_writes_nothing() {
        let dir = temp_dir("saveinvalid");
        let path = dir.join("bad.safetensors");
        let mut c = sample();
        c.tensors.get_mut("scale").unwrap().data[0] = f32::NAN;
        assert!(matches!(
            c.save(&path),
            Err(CheckpointError::NonFinite { .. })
        ));
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_errors() {
        let dir = temp_dir("load");
        let e = Checkpoint::load(&dir).unwrap_err();
        assert!(matches!(e, CheckpointError::NotAFile { .. }), "{e}");
        let missing = dir.join("missing.safetensors");
        let e = Checkpoint::load(&missing).unwrap_err();
        assert!(matches!(e, CheckpointError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("missing.safetensors"));
        let empty = dir.join("empty.safetensors");
        std::fs::write(&empty, b"").unwrap();
        let e = Checkpoint::load(&empty).unwrap_err();
        assert!(matches!(e, CheckpointError::EmptyFile { .. }), "{e}");
        let bad = dir.join("bad.safetensors");
        let mut bytes = sample().to_bytes().unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&bad, &bytes).unwrap();
        let e = Checkpoint::load(&bad).unwrap_err();
        assert!(matches!(e, CheckpointError::InFile { .. }), "{e}");
        assert!(
            matches!(e.inner(), CheckpointError::TensorOutOfBounds { .. }),
            "{e}"
        );
        assert!(e.to_string().contains("bad.safetensors"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_bytes() {
        assert!(matches!(err(&[]), CheckpointError::Empty));
    }

    #[test]
    fn seven_bytes() {
        assert!(matches!(
            err(&[1u8; 7]),
            CheckpointError::TooShort { len: 7 }
        ));
    }

    #[test]
    fn header_length_past_end() {
        let mut b = 1000u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert!(matches!(
            err(&b),
            CheckpointError::HeaderPastEnd {
                claimed: 1000,
                available: 2
            }
        ));
        // Exactly 8 bytes with a zero-length header: not JSON.
        assert!(matches!(
            err(&0u64.to_le_bytes()),
            CheckpointError::HeaderNotJson { .. }
        ));
    }

    #[test]
    fn header_length_absurd() {
        for claimed in [1u64 << 63, 1u64 << 40, u64::MAX] {
            let mut b = claimed.to_le_bytes().to_vec();
            b.extend_from_slice(b"{\"__metadata__\":{}}");
            assert!(matches!(err(&b), CheckpointError::HeaderPastEnd { .. }));
        }
    }

    #[test]
    fn header_not_utf8() {
        let b = raw_file("{\"a\":1}", &[]);
        let mut b2 = b.clone();
        b2[10] = 0xff;
        assert!(matches!(
            err(&b2),
            CheckpointError::HeaderNotUtf8 { offset: 2 }
        ));
    }

    #[test]
    fn header_not_json() {
        assert!(matches!(
            err(&raw_file("{not json", &[])),
            CheckpointError::HeaderNotJson { .. }
        ));
        assert!(matches!(
            err(&raw_file("[1,2]", &[])),
            CheckpointError::HeaderMalformed { .. }
        ));
    }

    #[test]
    fn missing_metadata() {
        assert!(matches!(
            err(&file_with(None, &one_tensor())),
            CheckpointError::NoMetadata
        ));
        let h = r#"{"__metadata__":null,"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        assert!(matches!(
            err(&raw_file(h, &[0; 4])),
            CheckpointError::NoMetadata
        ));
    }

    #[test]
    fn metadata_malformed() {
        let h =
            r#"{"__metadata__":{"format":1},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        assert!(matches!(
            err(&raw_file(h, &[0; 4])),
            CheckpointError::MetadataMalformed { .. }
        ));
        let h = r#"{"__metadata__":[],"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        assert!(matches!(
            err(&raw_file(h, &[0; 4])),
            CheckpointError::MetadataMalformed { .. }
        ));
    }

    #[test]
    fn wrong_format() {
        let e = err(&meta_file(|m| {
            m.insert("format".into(), "pt".into());
        }));
        assert!(
            matches!(&e, CheckpointError::NotWalkjump { found: Some(f) } if f == "pt"),
            "{e}"
        );
        let e = err(&meta_file(|m| {
            m.remove("format");
        }));
        assert!(
            matches!(e, CheckpointError::NotWalkjump { found: None }),
            "{e}"
        );
    }

    #[test]
    fn future_version() {
        let e = err(&meta_file(|m| {
            m.insert("version".into(), "2".into());
        }));
        assert!(
            matches!(e, CheckpointError::UnsupportedVersion { found: 2 }),
            "{e}"
        );
        for bad in ["abc", "0", "-1", "1.0", ""] {
            let e = err(&meta_file(|m| {
                m.insert("version".into(), bad.into());
            }));
            assert!(
                matches!(e, CheckpointError::InvalidVersion { .. }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn each_missing_required_key() {
        for key in ["version", "kind", "sigma", "measurements", "data", "arch"] {
            let e = err(&meta_file(|m| {
                m.remove(key);
            }));
            assert!(
                matches!(e, CheckpointError::MissingKey { key: k } if k == key),
                "{key}: {e}"
            );
            assert!(e.to_string().contains(key));
        }
    }

    #[test]
    fn unknown_kind() {
        let e = err(&meta_file(|m| {
            m.insert("kind".into(), "gan".into());
        }));
        assert!(matches!(&e, CheckpointError::UnknownKind { value } if value == "gan"));
        let msg = e.to_string();
        assert!(msg.contains("gan"));
        for k in ModelKind::ALL {
            assert!(msg.contains(k.as_str()), "{msg}");
        }
    }

    #[test]
    fn bad_sigma() {
        let case = |s: &str, kind: &str| {
            err(&meta_file(|m| {
                m.insert("sigma".into(), s.into());
                m.insert("kind".into(), kind.into());
            }))
        };
        assert!(matches!(
            case("NaN", "deen"),
            CheckpointError::SigmaNotFinite { .. }
        ));
        assert!(matches!(
            case("inf", "deen"),
            CheckpointError::SigmaNotFinite { .. }
        ));
        assert!(matches!(
            case("-1", "deen"),
            CheckpointError::SigmaNegative { .. }
        ));
        assert!(matches!(
            case("abc", "deen"),
            CheckpointError::SigmaNotNumber { .. }
        ));
        assert!(matches!(
            case("", "deen"),
            CheckpointError::SigmaNotNumber { .. }
        ));
        assert!(matches!(
            case("0", "mdae"),
            CheckpointError::SigmaZero {
                kind: ModelKind::Mdae
            }
        ));
        assert!(matches!(
            case("-1", "classifier"),
            CheckpointError::SigmaNegative { .. }
        ));
        let ok = meta_file(|m| {
            m.insert("sigma".into(), "0".into());
            m.insert("kind".into(), "classifier".into());
        });
        assert_eq!(Checkpoint::from_bytes(&ok).unwrap().meta.sigma, 0.0);
    }

    #[test]
    fn bad_measurements() {
        let case = |s: &str| {
            err(&meta_file(|m| {
                m.insert("measurements".into(), s.into());
            }))
        };
        assert!(matches!(
            case("0"),
            CheckpointError::MeasurementsOutOfRange { value: 0 }
        ));
        assert!(matches!(
            case("65"),
            CheckpointError::MeasurementsOutOfRange { value: 65 }
        ));
        assert!(matches!(
            case("x"),
            CheckpointError::MeasurementsInvalid { .. }
        ));
        assert!(matches!(
            case("-3"),
            CheckpointError::MeasurementsInvalid { .. }
        ));
    }

    #[test]
    fn bad_data() {
        let case = |s: &str| {
            err(&meta_file(|m| {
                m.insert("data".into(), s.into());
            }))
        };
        assert!(matches!(
            case("not json"),
            CheckpointError::DataInvalid { .. }
        ));
        assert!(matches!(
            case(r#"{"name":"x","channels":1}"#),
            CheckpointError::DataInvalid { .. }
        ));
        assert!(matches!(
            case(r#"{"name":"x","channels":-1,"height":2,"width":2}"#),
            CheckpointError::DataInvalid { .. }
        ));
        assert!(matches!(
            case(r#"{"name":"x","channels":0,"height":28,"width":28}"#),
            CheckpointError::DataDims { .. }
        ));
        assert!(matches!(
            case(r#"{"name":"x","channels":2,"height":4096,"width":4096}"#),
            CheckpointError::DataDims { .. }
        ));
        assert!(matches!(
            case(r#"{"name":"x","channels":18446744073709551615,"height":4096,"width":4096}"#),
            CheckpointError::DataDims { .. }
        ));
    }

    #[test]
    fn bad_arch_and_train() {
        let e = err(&meta_file(|m| {
            m.insert("arch".into(), "[1,2]".into());
        }));
        assert!(
            matches!(e, CheckpointError::ArchNotObject { found: "array" }),
            "{e}"
        );
        let e = err(&meta_file(|m| {
            m.insert("arch".into(), "{".into());
        }));
        assert!(matches!(e, CheckpointError::ArchNotJson { .. }), "{e}");
        let e = err(&meta_file(|m| {
            m.insert("train".into(), "{oops".into());
        }));
        assert!(matches!(e, CheckpointError::TrainNotJson { .. }), "{e}");
    }

    #[test]
    fn extra_keys_kept_verbatim() {
        let b = meta_file(|m| {
            m.insert("sampler".into(), "{ \"steps\" : 5 }".into());
            m.insert("comment".into(), "not json".into());
            m.insert("train".into(), "[1]".into());
        });
        let c = Checkpoint::from_bytes(&b).unwrap();
        assert_eq!(c.meta.extra["sampler"], "{ \"steps\" : 5 }");
        assert_eq!(c.meta.extra["comment"], "not json");
        assert_eq!(c.meta.extra.len(), 2);
        assert_eq!(c.meta.train, Some(json!([1])));
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unsupported_dtypes() {
        let m = good_meta();
        let e = err(&file_with(Some(&m), &[("w", "I32", vec![2], vec![0; 8])]));
        assert!(
            matches!(&e, CheckpointError::UnsupportedDtype { dtype, .. } if dtype == "I32"),
            "{e}"
        );
        assert!(e.to_string().contains("I32"));
        let e = err(&file_with(Some(&m), &[("w", "F16", vec![2], vec![0; 4])]));
        assert!(
            matches!(&e, CheckpointError::UnsupportedDtype { dtype, .. } if dtype == "F16"),
            "{e}"
        );
        let e = err(&file_with(Some(&m), &[("w", "F128", vec![2], vec![0; 32])]));
        assert!(
            matches!(&e, CheckpointError::UnsupportedDtype { dtype, .. } if dtype == "F128"),
            "{e}"
        );
        let e = err(&file_with(Some(&m), &[("w", "F4", vec![3], vec![0; 2])]));
        assert!(matches!(e, CheckpointError::UnsupportedDtype { .. }), "{e}");
    }

    #[test]
    fn f64_is_converted() {
        let m = good_meta();
        let vals = [0.5f64, -2.25, 1e-3, 0.0];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let c = Checkpoint::from_bytes(&file_with(
            Some(&m),
            &[
                ("w", "F64", vec![2, 2], bytes),
                ("b", "F32", vec![1], f32_bytes(&[7.0])),
            ],
        ))
        .unwrap();
        let w = c.tensor("w").unwrap();
        assert_eq!(w.shape, vec![2, 2]);
        assert_eq!(w.data, vals.iter().map(|&v| v as f32).collect::<Vec<_>>());
        let big: Vec<u8> = [1e300f64, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let e = err(&file_with(Some(&m), &[("w", "F64", vec![2], big)]));
        assert!(
            matches!(e, CheckpointError::F64OutOfRange { count: 1, .. }),
            "{e}"
        );
        let nan: Vec<u8> = [f64::NAN, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let e = err(&file_with(Some(&m), &[("w", "F64", vec![2], nan)]));
        assert!(
            matches!(e, CheckpointError::NonFinite { nan: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn nan_weights() {
        let m = good_meta();
        let e = err(&file_with(
            Some(&m),
            &[
                ("ok", "F32", vec![1], f32_bytes(&[1.0])),
                (
                    "w",
                    "F32",
                    vec![4],
                    f32_bytes(&[1.0, f32::NAN, 2.0, -f32::NAN]),
                ),
            ],
        ));
        assert!(
            matches!(&e, CheckpointError::NonFinite { name, nan: 2, inf: 0, total: 4 } if name == "w"),
            "{e}"
        );
        assert!(e.to_string().contains("`w`"));
    }

    #[test]
    fn inf_weights() {
        let m = good_meta();
        let e = err(&file_with(
            Some(&m),
            &[(
                "w",
                "F32",
                vec![3],
                f32_bytes(&[f32::INFINITY, 0.0, f32::NEG_INFINITY]),
            )],
        ));
        assert!(
            matches!(e, CheckpointError::NonFinite { nan: 0, inf: 2, .. }),
            "{e}"
        );
    }

    #[test]
    fn zero_tensors() {
        let m = good_meta();
        assert!(matches!(
            err(&file_with(Some(&m), &[])),
            CheckpointError::NoTensors
        ));
    }

    #[test]
    fn truncated_file() {
        let b = sample().to_bytes().unwrap();
        for cut in [1, 3, 4, 40] {
            let e = err(&b[..b.len() - cut]);
            assert!(
                matches!(e, CheckpointError::TensorOutOfBounds { .. }),
                "cut {cut}: {e}"
            );
        }
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let e = err(&b[..8 + n / 2]);
        assert!(matches!(e, CheckpointError::HeaderPastEnd { .. }), "{e}");
    }

    #[test]
    fn trailing_bytes() {
        let mut b = sample().to_bytes().unwrap();
        b.extend_from_slice(b"junk");
        assert!(matches!(
            err(&b),
            CheckpointError::DataLengthMismatch { .. }
        ));
    }

    #[test]
    fn size_mismatch_is_named() {
        let m = good_meta();
        let e = err(&file_with(
            Some(&m),
            &[("w", "F32", vec![3], f32_bytes(&[1.0, 2.0]))],
        ));
        assert!(
            matches!(&e, CheckpointError::TensorSizeMismatch { name, expected: 12, actual: 8, .. } if name == "w"),
            "{e}"
        );
    }

    #[test]
    fn overlapping_and_reversed_offsets() {
        let meta = serde_json::to_string(&good_meta()).unwrap();
        let h = format!(
            r#"{{"__metadata__":{meta},"a":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}},"b":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#
        );
        assert!(matches!(
            err(&raw_file(&h, &[0; 4])),
            CheckpointError::TensorOffsets { .. }
        ));
        let h = format!(
            r#"{{"__metadata__":{meta},"a":{{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}}}"#
        );
        assert!(matches!(
            err(&raw_file(&h, &[0; 4])),
            CheckpointError::TensorOffsets { .. }
        ));
        let h = format!(
            r#"{{"__metadata__":{meta},"a":{{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}}}"#
        );
        assert!(matches!(
            err(&raw_file(&h, &[0; 8])),
            CheckpointError::TensorOffsets { .. }
        ));
    }

    #[test]
    fn malformed_tensor_entry() {
        let meta = serde_json::to_string(&good_meta()).unwrap();
        for entry in [
            "5",
            r#"{"dtype":"F32","shape":[1]}"#,
            r#"{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}"#,
            r#"{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}"#,
        ] {
            let h = format!(r#"{{"__metadata__":{meta},"w":{entry}}}"#);
            let e = err(&raw_file(&h, &[0; 4]));
            assert!(
                matches!(e, CheckpointError::TensorEntryMalformed { .. }),
                "{entry}: {e}"
            );
        }
    }

    /// Offsets summing to nearly 2^64 make safetensors 0.8's `read_metadata`
    /// overflow (a panic in debug builds); the prescan must reject them first.
    #[test]
    fn huge_offsets_do_not_panic() {
        let meta = serde_json::to_string(&good_meta()).unwrap();
        let s: u64 = (1u64 << 61) - 1;
        let mut h = format!(r#"{{"__metadata__":{meta}"#);
        for i in 0..8u64 {
            h.push_str(&format!(
                r#","t{i}":{{"dtype":"U8","shape":[{s}],"data_offsets":[{},{}]}}"#,
                i * s,
                (i + 1) * s
            ));
        }
        h.push('}');
        let e = err(&raw_file(&h, &[]));
        assert!(
            matches!(e, CheckpointError::TensorOutOfBounds { .. }),
            "{e}"
        );
        // A shape whose element count overflows.
        let h = format!(
            r#"{{"__metadata__":{meta},"w":{{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}}}"#
        );
        assert!(matches!(
            err(&raw_file(&h, &[])),
            CheckpointError::TensorTooLarge { .. }
        ));
    }

    #[test]
    fn to_bytes_rejects_invalid() {
        let mut c = sample();
        c.tensors.get_mut("scale").unwrap().data.push(1.0);
        assert!(matches!(
            c.to_bytes(),
            Err(CheckpointError::TensorShapeMismatch { .. })
        ));
        let mut c = sample();
        c.tensors.get_mut("scale").unwrap().data[0] = f32::INFINITY;
        assert!(matches!(
            c.to_bytes(),
            Err(CheckpointError::NonFinite { .. })
        ));
        let mut c = sample();
        c.meta.extra.insert("kind".into(), "x".into());
        assert!(matches!(
            c.to_bytes(),
            Err(CheckpointError::ReservedExtraKey { .. })
        ));
        let mut c = sample();
        c.meta.sigma = f64::NAN;
        assert!(matches!(
            c.to_bytes(),
            Err(CheckpointError::SigmaNotFinite { .. })
        ));
        let mut c = sample();
        c.meta.arch = json!([1]);
        assert!(matches!(
            c.to_bytes(),
            Err(CheckpointError::ArchNotObject { .. })
        ));
        let mut c = sample();
        c.meta.version = 2;
        assert!(matches!(
            c.to_bytes(),
            Err(CheckpointError::UnsupportedVersion { .. })
        ));
        let mut c = sample();
        c.tensors.clear();
        assert!(matches!(c.to_bytes(), Err(CheckpointError::NoTensors)));
    }

    #[test]
    fn missing_tensor() {
        let c = sample();
        assert!(matches!(
            c.tensor("nope"),
            Err(CheckpointError::MissingTensor { name }) if name == "nope"
        ));
    }

    #[test]
    fn kinds_parse_and_serde_agree() {
        for k in ModelKind::ALL {
            assert_eq!(ModelKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(ModelKind::parse("Deen"), None);
        assert_eq!(
            DataSpec {
                name: "x".into(),
                channels: 3,
                height: 4,
                width: 5
            }
            .dim(),
            60
        );
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn inspect_report() {
        let b = sample().to_bytes().unwrap();
        let r = inspect(&b).unwrap();
        assert!(r.contains("deen"), "{r}");
        assert!(r.contains("14 parameters"), "{r}");
        assert!(r.contains(&sha256_hex(&b)), "{r}");
        assert!(r.contains("walkjump v1"), "{r}");
        assert!(r.contains("mnist-10k 1x28x28"), "{r}");
        assert!(r.contains("sampler"), "{r}");
        assert!(r.contains("enc.c1.weight"), "{r}");
        assert_eq!(r, inspect(&b).unwrap());
        // Multi-line extra values stay on one line.
        assert!(
            r.lines()
                .any(|l| l.starts_with("note") && l.contains("line2")),
            "{r}"
        );
        assert!(matches!(inspect(&[]), Err(CheckpointError::Empty)));
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    #[test]
    fn fuzz_mutations_never_panic() {
        let base = sample().to_bytes().unwrap();
        let mut other_ck = sample();
        other_ck.meta.kind = ModelKind::Classifier;
        other_ck.meta.sigma = 0.0;
        other_ck.tensors.remove("unused");
        let other = other_ck.to_bytes().unwrap();
        let f64_file = {
            let vals: Vec<u8> = [0.5f64, 1.5].iter().flat_map(|v| v.to_le_bytes()).collect();
            file_with(Some(&good_meta()), &[("w", "F64", vec![2], vals)])
        };
        let header_end = 8 + u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut ok, mut bad) = (0usize, 0usize);
        for i in 0..3000 {
            let src = match i % 5 {
                0 => &other,
                1 => &f64_file,
                _ => &base,
            };
            let mut m = src.clone();
            let rounds = 1 + rng.below(3);
            for _ in 0..rounds {
                let len = m.len();
                match rng.below(8) {
                    0 => {
                        for _ in 0..1 + rng.below(4) {
                            let p = rng.below(len);
                            if p < m.len() {
                                m[p] ^= 1 << rng.below(8);
                            }
                        }
                    }
                    1 => m.truncate(rng.below(len + 1)),
                    2 => {
                        // splice: copy a chunk of some file over a random spot
                        let donor = if rng.below(2) == 0 { &base } else { &other };
                        let a = rng.below(donor.len());
                        let l = rng.below(64).min(donor.len() - a);
                        let p = rng.below(len + 1);
                        let chunk = donor[a..a + l].to_vec();
                        let end = (p + l).min(m.len());
                        m.splice(p..end, chunk);
                    }
                    3 => {
                        let p = rng.below(len + 1);
                        let ins: Vec<u8> =
                            (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                        m.splice(p..p, ins);
                    }
                    4 => {
                        let a = rng.below(len + 1);
                        let b = (a + rng.below(16)).min(m.len());
                        m.drain(a..b);
                    }
                    5 if m.len() >= 8 => {
                        let n = u64::from_le_bytes(m[..8].try_into().unwrap());
                        let n2 = match rng.below(4) {
                            0 => n.wrapping_add(rng.below(17) as u64).wrapping_sub(8),
                            1 => rng.next(),
                            2 => 1u64 << rng.below(64),
                            _ => rng.below(m.len() + 1) as u64,
                        };
                        m[..8].copy_from_slice(&n2.to_le_bytes());
                    }
                    6 => {
                        // JSON-significant byte inside the header
                        const CH: &[u8] = b"{}[]\",:0123456789-e.Ea ";
                        let p = 8 + rng.below(header_end.saturating_sub(8).max(1));
                        if p < m.len() {
                            m[p] = CH[rng.below(CH.len())];
                        }
                    }
                    _ => {
                        // overwrite a data byte
                        if len > header_end {
                            let p = header_end + rng.below(len - header_end);
                            m[p] = rng.next() as u8;
                        }
                    }
                }
            }
            match Checkpoint::from_bytes(&m) {
                Ok(c) => {
                    ok += 1;
                    let again = c.to_bytes().expect("a loaded checkpoint must re-serialize");
                    assert_eq!(Checkpoint::from_bytes(&again).unwrap(), c);
                    assert!(inspect(&m).is_ok());
                }
                Err(e) => {
                    bad += 1;
                    assert!(!e.to_string().is_empty());
                    assert!(inspect(&m).is_err());
                }
            }
        }
        assert_eq!(ok + bad, 3000);
        assert!(
            bad > 1000,
            "mutations should mostly be rejected ({ok} ok, {bad} bad)"
        );
        assert!(ok > 0, "some mutations (e.g. in data) should stay valid");
    }
}
