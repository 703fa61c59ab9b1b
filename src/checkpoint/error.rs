//! [`CheckpointError`]: everything that can go wrong reading, validating or writing a checkpoint, and the helpers
//! that keep its messages on one line (quoted names, elided shapes).

use std::path::PathBuf;

use super::{FORMAT, MAX_DATA_DIM, MAX_FILE_BYTES, MAX_MEASUREMENTS, ModelKind, VERSION};
use crate::text::one_line;

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
    /// The header is larger than [`MAX_HEADER_BYTES`](super::MAX_HEADER_BYTES).
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
    #[error("unknown model kind {}; valid kinds are {valid}", q(value))]
    UnknownKind {
        /// The value found.
        value: String,
        /// The known kinds, comma-separated.
        valid: String,
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
    /// [`Checkpoint::tensor`](super::Checkpoint::tensor) was asked for a name that is not there.
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
    /// [`Checkpoint::load_in`](super::Checkpoint::load_in) adds around content errors.
    pub fn inner(&self) -> &CheckpointError {
        match self {
            CheckpointError::InFile { error, .. } => error.inner(),
            other => other,
        }
    }
}

/// Quotes a user-supplied string for an error message: backquoted, escaped,
/// truncated to a readable length.
pub(super) fn q(s: &str) -> String {
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
pub(super) fn fmt_shape(shape: &[usize]) -> String {
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
