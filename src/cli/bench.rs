//! `walkjump bench`: throughput of walk-jump steps at several batch sizes, NEBULA, denoising and training steps.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use walkjump::render::write_atomic;

use super::{given_or_bundled, load_model, open_device};

/// Measure throughput: walk-jump steps at several batch sizes, NEBULA, denoising and training steps.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump bench\n  walkjump bench -c checkpoints/deen-mlp-s1.0.safetensors --batches 1,64,256 --json bench.json"
)]
pub(crate) struct BenchArgs {
    /// Checkpoints to measure (repeat). Default: every bundled checkpoint.
    #[arg(long = "checkpoint", short = 'c')]
    checkpoints: Vec<PathBuf>,
    /// Chain counts for the walk-jump step, comma-separated.
    #[arg(long, default_value = "1,64,256")]
    batches: String,
    /// Seconds spent timing each measurement (after warm-up).
    #[arg(long, default_value_t = 1.0)]
    budget: f64,
    /// Skip the training-step measurement.
    #[arg(long)]
    no_train: bool,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl super::CliCommand for BenchArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        None
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: BenchArgs) -> Result<()> {
    use walkjump::bench::{BenchReport, bench_model, format_report, gemm_peak, peak_rss_mib};
    use walkjump::models::checkpoint::Checkpoint;
    let device = open_device(&a.device)?;
    let batches: Vec<usize> = a
        .batches
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .context("--batches must be comma-separated counts, e.g. 1,64,256")?;
    if batches.contains(&0) || !(a.budget.is_finite() && a.budget > 0.0) {
        bail!("batch sizes and --budget must be positive");
    }
    let paths = given_or_bundled(&a.checkpoints)?;
    let gemm = gemm_peak(&device, a.budget)?;
    let mut rows = Vec::new();
    for p in &paths {
        let model = load_model(p, &device)?;
        let label = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let (tm, vars) = if a.no_train {
            (None, Vec::new())
        } else {
            let ck = Checkpoint::load(p)?;
            let (m, vm) = walkjump::train::trainable_model(ck.meta.clone(), &device, 0, Some(&ck))?;
            (Some(m), vm.all_vars())
        };
        eprintln!("measuring {label} ...");
        rows.extend(bench_model(
            &label,
            &model,
            &batches,
            a.budget,
            tm.as_ref(),
            vars,
        )?);
    }
    let report = BenchReport {
        device: walkjump::device::describe(&device),
        threads: candle_core::utils::get_num_threads(),
        gemm_gflops: gemm,
        peak_rss_mib: peak_rss_mib(),
        rows,
    };
    print!("{}", format_report(&report));
    if let Some(j) = &a.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", j.display());
    }
    Ok(())
}
