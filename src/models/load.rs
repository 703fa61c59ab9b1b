//! Building a [`Model`] from a validated [`Checkpoint`]: every tensor the architecture asks for must exist with the
//! right shape, and every tensor in the file must be used. A failure leaves nothing half-built.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use super::checkpoint::{Checkpoint, sha256_hex};
use super::{Model, ModelDef, tensors_on_device};
use crate::error::{Error, Result};
use crate::onnx::ImportOptions;

/// A backend over the checkpoint's tensors that remembers which names were asked for.
struct TrackingBackend {
    tensors: HashMap<String, Tensor>,
    used: Arc<Mutex<BTreeSet<String>>>,
}

impl SimpleBackend for TrackingBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &s {
            return Err(plain_error(format!(
                "tensor '{name}' has shape {:?}, the architecture needs {:?}",
                t.dims(),
                s.dims()
            )));
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some(t) = self.tensors.get(name) else {
            return Err(plain_error(format!("tensor '{name}' is missing")));
        };
        if let Ok(mut used) = self.used.lock() {
            used.insert(name.to_string());
        }
        t.to_device(dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// A candle error without a backtrace. `candle_core::bail!` captures one whenever `RUST_BACKTRACE` is set, and
/// formatting it symbolizes the whole stack (over 100 MB and 0.3 s on the first error of a process) only for
/// [`arch_error`] to keep the first line.
fn plain_error(msg: String) -> candle_core::Error {
    candle_core::Error::Msg(msg)
}

/// The error under any backtrace wrappers.
fn without_backtrace(e: &candle_core::Error) -> &candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(inner),
        other => other,
    }
}

/// Rewrites candle's errors from the builder into one-line architecture errors, never formatting a backtrace.
fn arch_error(e: Error) -> Error {
    match e {
        Error::Candle(c) => {
            let msg = without_backtrace(&c).to_string();
            let line = msg.lines().next().unwrap_or("").to_string();
            Error::Architecture(line)
        }
        other => other,
    }
}

impl Model {
    /// Builds the model described by `ckpt` on `device`, checking every tensor against the architecture.
    pub fn from_checkpoint(ckpt: &Checkpoint, device: &Device) -> Result<Self> {
        Self::from_checkpoint_as(super::kinds::def_or_err(ckpt.meta.kind)?, ckpt, device)
    }

    /// [`Model::from_checkpoint`] for the kind `def`, registered or not (`ckpt.meta.kind` must be its kind).
    pub fn from_checkpoint_as(
        def: &'static dyn ModelDef,
        ckpt: &Checkpoint,
        device: &Device,
    ) -> Result<Self> {
        let tensors = tensors_on_device(ckpt, device)?;
        let used = Arc::new(Mutex::new(BTreeSet::new()));
        let backend = TrackingBackend {
            tensors,
            used: used.clone(),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
        let model = Model::build_as(def, ckpt.meta.clone(), &vb, device).map_err(arch_error)?;
        let used = used
            .lock()
            .map_err(|_| Error::Architecture("internal lock poisoned".into()))?;
        if let Some(extra) = ckpt.tensors.keys().find(|k| !used.contains(*k)) {
            return Err(Error::Architecture(format!(
                "tensor '{}' is not part of a {} with this architecture",
                crate::error::one_line(extra),
                ckpt.meta.kind.as_str()
            )));
        }
        Ok(model)
    }

    /// Reads, validates and builds a model file (a checkpoint, or an `.onnx` file described by its own
    /// metadata); the model records the file's sha256.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::load_with(path, device, &ImportOptions::default())
    }

    /// [`Model::load`] with settings for what an `.onnx` file does not say (role, sigma, shape).
    pub fn load_with(path: &Path, device: &Device, opts: &ImportOptions) -> Result<Self> {
        let file = read_model_file(path, opts)?;
        let mut model = Self::from_checkpoint(&file.checkpoint, device)?;
        model.sha256 = file.sha256;
        Ok(model)
    }

    /// Validates and builds a checkpoint from its bytes.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let ckpt = Checkpoint::from_bytes(bytes)?;
        let mut model = Self::from_checkpoint(&ckpt, device)?;
        model.sha256 = sha256_hex(bytes);
        Ok(model)
    }
}

/// A model file as read: the checkpoint, its safetensors bytes (for an `.onnx` file, of the translated checkpoint)
/// and the sha256 of the file itself.
#[derive(Debug)]
pub struct ModelFile {
    /// The validated checkpoint.
    pub checkpoint: Checkpoint,
    /// The checkpoint as safetensors bytes.
    pub bytes: Vec<u8>,
    /// sha256 of the file on disk.
    pub sha256: String,
}

/// Reads a walkjump checkpoint, or translates an `.onnx` file (by extension) into one.
pub fn read_model_file(path: &Path, opts: &ImportOptions) -> Result<ModelFile> {
    if crate::onnx::is_onnx_path(path) {
        let (checkpoint, sha256) =
            crate::onnx::checkpoint_from_file(path, opts).map_err(|e| with_path(e, path))?;
        let bytes = checkpoint.to_bytes()?;
        return Ok(ModelFile {
            checkpoint,
            bytes,
            sha256,
        });
    }
    let bytes = read_checkpoint_bytes(path)?;
    let checkpoint = Checkpoint::from_bytes(&bytes)?;
    Ok(ModelFile {
        sha256: sha256_hex(&bytes),
        checkpoint,
        bytes,
    })
}

/// ONNX errors name a node but not the file; I/O errors already do.
fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Onnx(o) => Error::Onnx(format!("{}: {o}", path.display())),
        other => other,
    }
}

/// Reads a checkpoint file after checking that it is a regular file of sane size whose 8-byte header length fits
/// inside it (so a large file that is not a checkpoint is refused before it is read).
pub fn read_checkpoint_bytes(path: &Path) -> Result<Vec<u8>> {
    Ok(crate::checkpoint::read_checkpoint_file(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found by tests/corpus.rs under RUST_BACKTRACE=1): an architecture error formatted its captured
    /// backtrace, allocating over 100 MB, to keep one line of it. The cost itself is measured in a fresh process by
    /// `tests/corpus.rs` (`architecture_error_is_cheap_under_rust_backtrace`).
    #[test]
    fn arch_errors_never_format_a_backtrace() {
        let wrapped = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("tensor 'w' is missing".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert!(matches!(
            without_backtrace(&wrapped),
            candle_core::Error::Msg(_)
        ));
        match arch_error(Error::Candle(wrapped)) {
            Error::Architecture(m) => assert_eq!(m, "tensor 'w' is missing"),
            other => panic!("{other}"),
        }
        let backend = TrackingBackend {
            tensors: HashMap::new(),
            used: Arc::new(Mutex::new(BTreeSet::new())),
        };
        let e = backend
            .get_unchecked("w", DType::F32, &Device::Cpu)
            .expect_err("missing");
        assert!(matches!(e, candle_core::Error::Msg(_)), "{e:?}");
    }
}
