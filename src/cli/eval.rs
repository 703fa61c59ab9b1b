//! `walkjump eval`: the test loss of a denoiser (with the identity and Wiener baselines) or the accuracy of a
//! classifier.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use walkjump::data::{Dataset, Split};
use walkjump::run::{self, EvalResult, evaluate};

use super::{Common, load_model, open_device, parse_z, resolve_checkpoint};

/// Print the test loss of a denoiser or the accuracy of a classifier.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump eval -c checkpoints/deen-mlp-s1.0.safetensors\n  walkjump eval -c model.safetensors --data t10k-images-idx3-ubyte.gz --sigma 0.5"
)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Images: IDX, a folder of PNGs or a .npy [N, c, h, w] (default: the bundled digits' test split).
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX labels (needed for a classifier with --data).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Split of the data: train, test or all. Default: test for the bundled digits, all for --data.
    #[arg(long, value_enum)]
    split: Option<Split>,
    /// Noise level (default: the model's sigma).
    #[arg(long)]
    sigma: Option<f64>,
    /// How UVB / VAEs pick z: sample, mean, or average:K.
    #[arg(long, default_value = "sample")]
    z: String,
    /// Also print the best linear (Wiener) denoiser's loss, fitted to the training split, on the same data.
    #[arg(long)]
    baselines: bool,
}

impl super::CliCommand for EvalArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        Some(&self.common.onnx)
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: EvalArgs) -> Result<()> {
    let device = open_device(&a.common.device)?;
    let path = resolve_checkpoint(a.common.checkpoint.as_deref());
    let mut model = load_model(&path, &device)?;
    model.set_z_mode(parse_z(&a.z)?);
    let data = Dataset::open(a.data.as_deref(), a.labels.as_deref())?;
    let split = a.split.unwrap_or(run::default_eval_split(a.data.is_some()));
    let train_split = data.split(Split::Train);
    let data = data.split(split);
    if let Some((kl, rec)) = run::vae_statistics(&model, &data, a.common.seed)? {
        println!("kl (clean inputs): {kl:.4}");
        println!("reconstruction E||x - x_hat(z)||^2 (clean inputs): {rec:.4}");
    }
    match evaluate(&model, &data, a.sigma, a.common.seed)? {
        EvalResult::Loss {
            loss,
            stderr,
            sigma,
            count,
        } => {
            println!("loss: {loss:.4}");
            println!("stderr: {stderr:.4}");
            println!("sigma: {sigma}");
            println!("images: {count} ({split:?} split)");
            println!(
                "identity baseline (x_hat = y): {:.4}",
                sigma * sigma * data.dim() as f64
            );
            if a.baselines && sigma > 0.0 {
                let w = walkjump::train::wiener::Wiener::fit(&train_split, sigma)?;
                println!(
                    "wiener baseline (linear, fitted to the training split): {:.4}",
                    w.loss(&data, a.common.seed)
                );
            }
        }
        EvalResult::Accuracy { accuracy, count } => {
            println!("accuracy: {accuracy:.4}");
            println!("images: {count} ({split:?} split)");
        }
    }
    Ok(())
}
