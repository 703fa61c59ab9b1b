//! `walkjump denoise`: the same noisy test digits denoised by several models, side by side.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use walkjump::data::noise::Noise;
use walkjump::data::{Dataset, Split};
use walkjump::models::ScoreModel;
use walkjump::render::Grid;
use walkjump::run::{self, noisy_batch};

use super::{load_model, open_device, parse_z, resolve_checkpoint};

/// Denoise the same noisy test digits with several models, side by side.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump denoise -c a.safetensors -c b.safetensors --noise gaussian:1.0 --count 8 --out cmp.png\n  walkjump denoise --noise salt-pepper:0.2 --out sp.png"
)]
pub(crate) struct DenoiseArgs {
    /// Checkpoints to compare (repeat the flag). Default: the bundled default model.
    #[arg(long = "checkpoint", short = 'c')]
    checkpoints: Vec<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Seed for the choice of digits, the noise, and latent samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Noise: gaussian:S, laplace:A or salt-pepper:P.
    #[arg(long, default_value = "gaussian:1.0")]
    noise: String,
    /// Number of test digits.
    #[arg(long, default_value_t = 8)]
    count: usize,
    /// Only digits of this class.
    #[arg(long)]
    class: Option<u8>,
    /// How VAEs pick z: sample, mean, or average:K.
    #[arg(long, default_value = "sample")]
    z: String,
    /// Images: IDX, a folder of PNGs or a .npy [N, c, h, w] (default: the bundled test split).
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX labels for --data.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// PNG: one row per digit; columns clean, noisy, then one per model.
    #[arg(long)]
    out: PathBuf,
}

impl super::CliCommand for DenoiseArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        None
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: DenoiseArgs) -> Result<()> {
    let device = open_device(&a.device)?;
    let noise = Noise::parse(&a.noise)?;
    let paths = if a.checkpoints.is_empty() {
        vec![resolve_checkpoint(None)]
    } else {
        a.checkpoints.clone()
    };
    let z = parse_z(&a.z)?;
    let mut models = Vec::new();
    for p in &paths {
        let mut m = load_model(p, &device)?;
        if !m.is_denoiser() {
            bail!("{} is a classifier, not a denoiser", p.display());
        }
        m.set_z_mode(z);
        models.push(m);
    }
    let data = match &a.data {
        Some(p) => Dataset::from_files(p, a.labels.as_deref())?,
        None => Dataset::bundled()?.split(Split::Test),
    };
    let data = match a.class {
        Some(c) => {
            let labels = data.labels.as_ref().context("--class needs labels")?;
            let idx: Vec<usize> = (0..data.len()).filter(|&i| labels[i] == c).collect();
            if idx.is_empty() {
                bail!("no test digit has class {c}");
            }
            let d = data.dim();
            Dataset {
                spec: data.spec.clone(),
                images: idx
                    .iter()
                    .flat_map(|&i| data.images[i * d..(i + 1) * d].to_vec())
                    .collect(),
                labels: Some(idx.iter().map(|&i| labels[i]).collect()),
            }
        }
        None => data,
    };
    for m in &models {
        data.check_fits(&m.meta.data)?;
    }
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let copies = models.iter().map(|m| m.measurements()).max().unwrap_or(1);
    let batch = noisy_batch(&data, a.count, &noise, copies, a.seed)?;
    let mut cols = Vec::new();
    for (m, p) in models.iter().zip(&paths) {
        let label = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        cols.push(run::denoise_with(m, &label, &batch, a.seed)?);
    }
    let spec = &data.spec;
    let mut grid = Grid::with_channels(spec.channels, spec.height, spec.width, 2 + cols.len());
    for i in 0..batch.clean.len() {
        grid.push(&batch.clean[i]);
        grid.push(&batch.noisy[i][..data.dim()]);
        for c in &cols {
            grid.push(&c.outputs[i]);
        }
    }
    grid.save_png(&a.out)?;
    let d = data.dim() as f64;
    println!(
        "noise     {noise}, {} digits, seed {}",
        batch.clean.len(),
        a.seed
    );
    let noisy_mse = batch
        .noisy
        .iter()
        .zip(&batch.clean)
        .map(|(y, x)| {
            y.iter()
                .zip(x)
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / d
        })
        .sum::<f64>()
        / batch.clean.len() as f64;
    println!(
        "{:<28} {:>10} {:>12} {:>18}",
        "column", "mse/pixel", "sum/image", "pixel range"
    );
    println!(
        "{:<28} {:>10.5} {:>12.3} {:>18}",
        "noisy input",
        noisy_mse,
        noisy_mse * d,
        ""
    );
    for c in &cols {
        let lo = c.range.iter().map(|r| r.0).fold(f32::INFINITY, f32::min);
        let hi = c
            .range
            .iter()
            .map(|r| r.1)
            .fold(f32::NEG_INFINITY, f32::max);
        println!(
            "{:<28} {:>10.5} {:>12.3} {:>18}",
            c.label,
            c.mean_mse(),
            c.mean_mse() * d,
            format!("[{lo:.3}, {hi:.3}]")
        );
    }
    println!("wrote     {}", a.out.display());
    Ok(())
}
