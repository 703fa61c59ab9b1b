//! The engine's error type: every failure a user can cause ends here, as one clear sentence.

use crate::checkpoint::CheckpointError;
use crate::data::idx::IdxError;
use crate::mixture::MixtureError;
use crate::sampling::diagnostics::DiagnosticsError;

// `one_line` lives in `crate::text`, which imports nothing; it stays reachable as `error::one_line` for its callers.
pub(crate) use crate::text::one_line;

/// Result alias for the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A checkpoint file is malformed or inconsistent.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// An IDX data file is malformed.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// An analytic mixture was given bad parameters.
    #[error(transparent)]
    Mixture(#[from] MixtureError),
    /// A convergence diagnostic could not be computed.
    #[error(transparent)]
    Diagnostics(#[from] DiagnosticsError),
    /// An ONNX file could not be imported: the import's one-line message (`onnx::OnnxError` converts into this
    /// in `src/onnx`, so that this module, below `onnx`, does not import it).
    #[error("{0}")]
    Onnx(String),
    /// The checkpoint's tensors do not fit its architecture.
    #[error("checkpoint does not match its architecture: {0}")]
    Architecture(String),
    /// A parameter is out of its valid range (NaN, negative step, zero chains ...).
    #[error("invalid parameter: {0}")]
    Param(String),
    /// The model cannot do what was asked (e.g. energy of a score-only model).
    #[error("{0}")]
    Unsupported(String),
    /// Data does not fit the model (wrong image size, missing labels ...).
    #[error("data does not fit: {0}")]
    Data(String),
    /// Reading or writing a file failed.
    #[error("cannot access {path}: {err}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error (kept out of the error chain: the message already says it).
        err: std::io::Error,
    },
    /// Encoding an image failed.
    #[error("cannot encode image: {0}")]
    Image(String),
    /// A tensor operation failed (a bug or an out-of-memory condition, not a user error).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// An I/O error for `path`.
    pub fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            err,
        }
    }
}
