//! `walkjump probe` (hidden): energy, score and jump of a checkpoint on given inputs, for parity checks against other
//! implementations.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use walkjump::models::ZMode;
use walkjump::sampling::rng::Rng;

use super::{Common, load_model, open_device, resolve_checkpoint};

/// Energy, score and jump of a checkpoint on given inputs, for parity checks against other implementations.
#[derive(Args)]
#[command(
    hide = true,
    after_help = "Reads the tensor `y` [N, M*d] from --inputs and writes to --out (safetensors): `energy` [N] and\n\
                      `score` [N, M*d] where the kind defines them, `jump` [N, d] (UVB and VAEs with z = mean),\n\
                      `logits` [N, classes] for a classifier, `prior_energy` [N] (GRBM at z = mean) for ebm_vae.\n\n\
                      Example:\n  walkjump probe -c checkpoints/deen-mlp-s1.0.safetensors --inputs y.safetensors --out probe.safetensors"
)]
pub(crate) struct ProbeArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// safetensors file with the inputs `y` [N, M*d] (F32 or F64).
    #[arg(long)]
    inputs: PathBuf,
    /// safetensors file for the outputs.
    #[arg(long)]
    out: PathBuf,
}

impl super::CliCommand for ProbeArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        Some(&self.common.onnx)
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

/// Deterministic model outputs on given inputs (z = mean for the latent-variable kinds), for parity checks.
pub(crate) fn run(a: ProbeArgs) -> Result<()> {
    use candle_core::{DType, Tensor};
    let device = open_device(&a.common.device)?;
    let path = resolve_checkpoint(a.common.checkpoint.as_deref());
    let mut model = load_model(&path, &device)?;
    model.set_z_mode(ZMode::Mean);
    let inputs = candle_core::safetensors::load(&a.inputs, &device)
        .with_context(|| format!("cannot read the inputs {}", a.inputs.display()))?;
    let y = inputs
        .get("y")
        .with_context(|| format!("{} has no tensor 'y'", a.inputs.display()))?
        .to_dtype(DType::F32)?;
    let width = walkjump::parity::input_width(&model);
    if y.dims().len() != 2 || y.dim(1)? != width {
        bail!(
            "{}: 'y' has shape {:?}, the model expects [N, {width}]",
            a.inputs.display(),
            y.dims()
        );
    }
    let mut rng = Rng::new(a.common.seed);
    let out: std::collections::HashMap<&str, Tensor> =
        walkjump::parity::probe_outputs(&model, &y, &mut rng)?
            .into_iter()
            .collect();
    candle_core::safetensors::save(&out, &a.out)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    let mut names: Vec<String> = out
        .iter()
        .map(|(k, t)| format!("{k} {:?}", t.dims()))
        .collect();
    names.sort();
    println!(
        "model   {} ({}, sigma {}, z = mean)",
        path.display(),
        model.kind().as_str(),
        model.meta.sigma
    );
    println!("inputs  {} rows", y.dim(0)?);
    println!("wrote   {}: {}", a.out.display(), names.join(", "));
    Ok(())
}
