//! The commands of the `walkjump` binary, one file each with its clap arguments and its `run` function, and the
//! helpers they share: the common flags, the ONNX settings, the checkpoint, device and model loading.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use walkjump::models::{Model, ZMode};
use walkjump::onnx::ImportOptions;
use walkjump::{DEFAULT_CHECKPOINT, checkpoints_dir};

pub mod bench;
pub mod chi;
pub mod denoise;
pub mod eval;
pub mod gui;
pub mod inspect;
pub mod nebula;
pub mod parity;
pub mod probe;
pub mod sample;
pub mod train;

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Checkpoint (.safetensors). Default: the bundled default model.
    #[arg(long, short = 'c')]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal (falls back to cpu with a message).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Seed for every random draw.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    #[command(flatten)]
    pub(crate) onnx: OnnxArgs,
}

/// What an `.onnx` model is when its metadata does not say (`walkjump.role`, `walkjump.sigma`, `walkjump.shape`).
#[derive(Args, Clone, Default)]
pub(crate) struct OnnxArgs {
    /// ONNX only: what the network computes: energy f(y) -> [N], denoiser D(y), or score s(y).
    #[arg(long, value_enum)]
    role: Option<walkjump::onnx::Role>,
    /// ONNX only: the noise level sigma the network was trained for.
    #[arg(long = "onnx-sigma", value_name = "SIGMA")]
    onnx_sigma: Option<f64>,
    /// ONNX only: shape c,h,w of one clean sample (e.g. 3,32,32).
    #[arg(long = "onnx-shape", value_name = "C,H,W")]
    onnx_shape: Option<String>,
    /// ONNX only: number of noisy measurements M the network reads.
    #[arg(long = "onnx-measurements", value_name = "M")]
    onnx_measurements: Option<usize>,
}

impl OnnxArgs {
    pub(crate) fn options(&self) -> Result<ImportOptions> {
        let shape = match &self.onnx_shape {
            Some(s) => Some(
                walkjump::onnx::parse_shape(s).map_err(|e| anyhow::anyhow!("--onnx-shape: {e}"))?,
            ),
            None => None,
        };
        Ok(ImportOptions {
            role: self.role,
            sigma: self.onnx_sigma,
            shape,
            measurements: self.onnx_measurements,
        })
    }
}

/// The ONNX settings of this run's command line (set once in `dispatch`, read by `load_model`).
pub(crate) static ONNX_OPTIONS: std::sync::OnceLock<ImportOptions> = std::sync::OnceLock::new();

pub(crate) fn resolve_checkpoint(path: Option<&Path>) -> PathBuf {
    match path {
        Some(p) => p.to_path_buf(),
        None => checkpoints_dir().join(DEFAULT_CHECKPOINT),
    }
}

pub(crate) fn open_device(spec: &str) -> Result<candle_core::Device> {
    let (device, note) = walkjump::device::select(spec)?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(device)
}

/// Commands without tensor work accept `--device` like every other command: a bad spec is an error, a GPU gets a
/// one-line note that the command runs on the CPU.
pub(crate) fn cpu_only_command(name: &str, spec: &str) -> Result<()> {
    let spec = walkjump::device::DeviceSpec::parse(spec)?;
    if spec.is_gpu() {
        eprintln!("note: {name} does no tensor work; it runs on the CPU");
    }
    Ok(())
}

pub(crate) fn load_model(path: &Path, device: &candle_core::Device) -> Result<Model> {
    let opts = ONNX_OPTIONS.get().cloned().unwrap_or_default();
    Model::load_with(path, device, &opts).map_err(|e| match e {
        // I/O errors already name the file.
        walkjump::Error::Io { .. } => anyhow::anyhow!(e),
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

pub(crate) fn parse_z(s: &str) -> Result<ZMode> {
    Ok(match s {
        "sample" => ZMode::Sample,
        "mean" => ZMode::Mean,
        other => match other.strip_prefix("average:").map(str::parse::<usize>) {
            Some(Ok(k)) if (1..=1024).contains(&k) => ZMode::Average { k },
            _ => bail!("--z must be sample, mean or average:K with 1 <= K <= 1024, got '{other}'"),
        },
    })
}

/// The checkpoints given with `-c`, or every bundled `.safetensors` file, sorted.
pub(crate) fn given_or_bundled(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(checkpoints_dir())
        .context("no checkpoints folder; pass --checkpoint")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    Ok(v)
}
