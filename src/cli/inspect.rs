//! `walkjump inspect`: a checkpoint's or ONNX model's metadata, tensors, parameter count and sha256.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use walkjump::models::inspect;
use walkjump::models::load::read_checkpoint_bytes;

use super::{ONNX_OPTIONS, OnnxArgs, cpu_only_command};

/// Print a checkpoint's metadata, tensor table, parameter count and sha256.
#[derive(Args)]
#[command(after_help = "Example:\n  walkjump inspect checkpoints/deen-mlp-s1.0.safetensors")]
pub(crate) struct InspectArgs {
    /// The checkpoint file (.safetensors) or ONNX model (.onnx).
    file: PathBuf,
    /// Device: cpu, cuda, cuda:N or metal (accepted for uniformity: inspect reads metadata only, on the CPU).
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    pub(crate) onnx: OnnxArgs,
}

impl super::CliCommand for InspectArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        Some(&self.onnx)
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: InspectArgs) -> Result<()> {
    let InspectArgs { file, device, .. } = a;
    cpu_only_command("inspect", &device)?;
    if walkjump::onnx::is_onnx_path(&file) {
        let opts = ONNX_OPTIONS.get().cloned().unwrap_or_default();
        let bytes = walkjump::onnx::read_onnx_file(&file)?;
        let imported = walkjump::onnx::import_bytes(&bytes, &opts)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        print!("{}", imported.describe(&opts));
        println!(
            "sha256       {}",
            walkjump::models::checkpoint::sha256_hex(&bytes)
        );
        return Ok(());
    }
    let bytes = read_checkpoint_bytes(&file)?;
    print!(
        "{}",
        inspect(&bytes).with_context(|| format!("{}", file.display()))?
    );
    Ok(())
}
