//! `walkjump convert`: an ONNX model into a walkjump checkpoint.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use walkjump::models::Model;

use super::{ONNX_OPTIONS, OnnxArgs};

/// Translate an ONNX model into a walkjump checkpoint (graph in `arch`, weights as tensors).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump convert model.onnx --out model.safetensors\n  walkjump convert unet.onnx --role denoiser --onnx-sigma 0.5 --onnx-shape 1,28,28 --out unet.safetensors"
)]
pub(crate) struct ConvertArgs {
    /// The ONNX file.
    file: PathBuf,
    /// The checkpoint to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    pub(crate) onnx: OnnxArgs,
}

impl super::CliCommand for ConvertArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        Some(&self.onnx)
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: ConvertArgs) -> Result<()> {
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
