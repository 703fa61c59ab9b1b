//! The engine's error type: every failure a user can cause ends here, as one clear sentence.
//!
//! The layers below (`device`, `nn`, `data`, `sampling`) have error types of their own and import nothing from here.
//! Their errors convert into this one variant for variant (`nn::Error::Architecture` into `Error::Architecture` ...),
//! with the same messages, so a match on a variant here sees the error whichever layer raised it. The format and
//! data errors (`CheckpointError`, `IdxError`, `MixtureError`, `DiagnosticsError`) are kept whole.

use crate::checkpoint::CheckpointError;
use crate::data::idx::IdxError;
use crate::mixture::MixtureError;
use crate::sampling::diagnostics::DiagnosticsError;
use crate::{data, device, nn, sampling};

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
    /// A score model implemented outside this crate failed inside a sampler: its own error, unchanged (the crate's
    /// models give back their `Error` itself, see `From<sampling::Error>`).
    #[error(transparent)]
    Model(Box<dyn std::error::Error + Send + Sync>),
}

impl From<device::Error> for Error {
    fn from(e: device::Error) -> Self {
        match e {
            device::Error::Param(m) => Error::Param(m),
        }
    }
}

impl From<nn::Error> for Error {
    fn from(e: nn::Error) -> Self {
        match e {
            nn::Error::Architecture(m) => Error::Architecture(m),
            nn::Error::Unsupported(m) => Error::Unsupported(m),
            nn::Error::Candle(c) => Error::Candle(c),
        }
    }
}

impl From<data::Error> for Error {
    fn from(e: data::Error) -> Self {
        match e {
            data::Error::Idx(i) => Error::Idx(i),
            data::Error::Param(m) => Error::Param(m),
            data::Error::Data(m) => Error::Data(m),
            data::Error::Io { path, err } => Error::Io { path, err },
            data::Error::Candle(c) => Error::Candle(c),
        }
    }
}

/// A model's error that went through a sampler comes back as the value the model returned: a `models::Model` hands
/// the samplers this crate's `Error` (boxed in `sampling::Error::Model`), and it is unboxed here, so its variant
/// and message are those it had before.
impl From<sampling::Error> for Error {
    fn from(e: sampling::Error) -> Self {
        match e {
            sampling::Error::Param(m) => Error::Param(m),
            sampling::Error::Data(m) => Error::Data(m),
            sampling::Error::Candle(c) => Error::Candle(c),
            sampling::Error::Model(b) => match b.downcast::<Error>() {
                Ok(e) => *e,
                Err(b) => Error::Model(b),
            },
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_error_comes_back_out_of_the_samplers_unchanged() {
        let through = sampling::Error::model(Error::Architecture("tensor 'w' is missing".into()));
        let message = through.to_string();
        let back = Error::from(through);
        assert!(
            matches!(&back, Error::Architecture(m) if m == "tensor 'w' is missing"),
            "{back:?}"
        );
        assert_eq!(back.to_string(), message);
        let foreign = sampling::Error::model(std::fmt::Error);
        assert!(matches!(Error::from(foreign), Error::Model(_)));
    }

    #[test]
    fn lower_errors_keep_their_variant_and_message() {
        let e = Error::from(nn::Error::Architecture("bad MLP widths []".into()));
        assert!(matches!(e, Error::Architecture(_)));
        assert_eq!(
            e.to_string(),
            "checkpoint does not match its architecture: bad MLP widths []"
        );
        let e = Error::from(sampling::Error::Param("delta must be positive".into()));
        assert_eq!(e.to_string(), "invalid parameter: delta must be positive");
        assert!(matches!(e, Error::Param(_)));
        let e = Error::from(data::Error::Data("the data has no images".into()));
        assert!(matches!(e, Error::Data(_)));
        let e = Error::from(device::Error::Param("unknown device 'x'".into()));
        assert!(matches!(e, Error::Param(_)));
    }
}
