//! `walkjump inspect` (a checkpoint's or ONNX model's metadata, tensors, parameter count and sha256) and `walkjump
//! convert` (an ONNX model into a walkjump checkpoint).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use walkjump::models::Model;
use walkjump::models::inspect;
use walkjump::models::load::read_checkpoint_bytes;

use super::{ONNX_OPTIONS, OnnxArgs, cpu_only_command};

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// The checkpoint file (.safetensors) or ONNX model (.onnx).
    file: PathBuf,
    /// Device: cpu, cuda, cuda:N or metal (accepted for uniformity: inspect reads metadata only, on the CPU).
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    pub(crate) onnx: OnnxArgs,
}

#[derive(Args)]
pub(crate) struct ConvertArgs {
    /// The ONNX file.
    file: PathBuf,
    /// The checkpoint to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    pub(crate) onnx: OnnxArgs,
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

pub(crate) fn convert(a: ConvertArgs) -> Result<()> {
    let ConvertArgs { file, out, .. } = a;
    let opts = ONNX_OPTIONS.get().cloned().unwrap_or_default();
    let (ckpt, _) = walkjump::onnx::checkpoint_from_file(&file, &opts)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    // Building the model checks every tensor against the graph before anything is written.
    Model::from_checkpoint(&ckpt, &candle_core::Device::Cpu)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    ckpt.save(&out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} ({} {}, sigma {}, {} parameters)",
        out.display(),
        ckpt.meta.kind.as_str(),
        ckpt.meta.extra.get("onnx_role").map_or("", String::as_str),
        ckpt.meta.sigma,
        ckpt.param_count()
    );
    Ok(())
}
