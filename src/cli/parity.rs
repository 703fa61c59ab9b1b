//! `walkjump parity`: compare a device with the CPU, outputs of every checkpoint and then chain statistics.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use walkjump::models::load::read_checkpoint_bytes;
use walkjump::render::write_atomic;

use super::{given_or_bundled, open_device};

/// Compare a device with the CPU: outputs of every bundled checkpoint, then chain statistics (GPU checks).
#[derive(Args)]
#[command(
    after_help = "Energy, score and jump (logits, prior energy) of each checkpoint on the same inputs must agree within
                      --tol relative; for models with a score, the mean and variance of energy, ||score|| and kinetic
                      temperature over a --steps chain (same seed, same noise) must agree within --z standard errors.
                      Exits with status 1 when a check fails, 2 when the device under test is not usable.

                      Examples:
  walkjump parity --device cuda
  walkjump parity --device cuda -c checkpoints/deen-mlp-s1.0.safetensors --steps 1000 --chains 64 --json parity.json
  walkjump parity --device cpu --steps 100 --burn-in 20 --chains 4   (CPU against itself: tests the command)"
)]
pub(crate) struct ParityArgs {
    /// Checkpoints to compare (repeat). Default: every bundled checkpoint.
    #[arg(long = "checkpoint", short = 'c')]
    checkpoints: Vec<PathBuf>,
    /// Device under test: cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Reference device.
    #[arg(long, default_value = "cpu")]
    reference: String,
    /// Go on when the device under test falls back to the CPU (then the CPU is compared with itself).
    #[arg(long)]
    allow_fallback: bool,
    /// Input rows for the output check.
    #[arg(long, default_value_t = 16)]
    rows: usize,
    /// Relative tolerance of the outputs: max |diff| / max |reference|.
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Chain steps (0: outputs only).
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Steps dropped before the chain statistics.
    #[arg(long, default_value_t = 200)]
    burn_in: usize,
    /// Chains.
    #[arg(long, default_value_t = 64)]
    chains: usize,
    /// Standard errors allowed between the devices' chain means and variances.
    #[arg(long, default_value_t = 4.0)]
    z: f64,
    /// Seed of inputs, chain starts and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl super::CliCommand for ParityArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        None
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: ParityArgs) -> Result<()> {
    use walkjump::device::DeviceSpec;
    use walkjump::parity::{ParityConfig, format_report, run_parity};
    let asked = DeviceSpec::parse(&a.device)?;
    let device = open_device(&a.device)?;
    if asked.is_gpu() && matches!(device, candle_core::Device::Cpu) && !a.allow_fallback {
        eprintln!(
            "error: {asked} is not usable here, so there is nothing to compare (--allow-fallback compares the CPU with itself)"
        );
        std::process::exit(2);
    }
    let reference = open_device(&a.reference)?;
    let cfg = ParityConfig {
        rows: a.rows,
        tol: a.tol,
        steps: a.steps,
        burn_in: a.burn_in,
        chains: a.chains,
        z: a.z,
        seed: a.seed,
    };
    cfg.validate()?;
    let paths = given_or_bundled(&a.checkpoints)?;
    if paths.is_empty() {
        bail!("no checkpoints to compare; pass --checkpoint");
    }
    let mut checkpoints = Vec::with_capacity(paths.len());
    for p in &paths {
        let bytes = read_checkpoint_bytes(p)?;
        let label = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        checkpoints.push((label, bytes));
    }
    let report = run_parity(&checkpoints, &device, &reference, &cfg, |label| {
        eprintln!("comparing {label} ...")
    })
    .context("parity")?;
    print!("{}", format_report(&report));
    if let Some(j) = &a.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", j.display());
    }
    let failures = report.failures();
    if failures > 0 {
        bail!("parity FAIL: {failures} check(s) out of tolerance");
    }
    Ok(())
}
