//! Throughput measurements behind `walkjump bench`: one walk-jump step (score + update) at several batch sizes, a
//! NEBULA step, a denoising pass and a training step per model, with FLOPs, achieved GFLOP/s, the machine's measured
//! f32 GEMM peak and the process's peak memory.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::error::Result;
use crate::models::{Model, ScoreModel};
use crate::rng::Rng;
use crate::run::recommended_sampler;
use crate::sampling::chain::{Chain, ChainConfig, ChainInit};

/// One measured operation.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// Model label.
    pub model: String,
    /// What was timed: `walk-jump step`, `nebula step`, `denoise`, `train step`.
    pub op: String,
    /// Batch size (chains, starts or images).
    pub batch: usize,
    /// Median milliseconds per operation.
    pub ms: f64,
    /// Operations per second.
    pub per_sec: f64,
    /// Estimated floating-point operations per operation (2 x multiply-adds).
    pub flops: f64,
    /// Achieved GFLOP/s.
    pub gflops: f64,
    /// Mean CPU time of the whole process per operation over the timed calls, milliseconds (Linux only). On a
    /// loaded machine this is closer than `ms` to what the operation costs on an idle one.
    pub cpu_ms: Option<f64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Device used.
    pub device: String,
    /// CPU threads candle uses.
    pub threads: usize,
    /// Measured f32 GEMM throughput (1024^3 matmul), GFLOP/s.
    pub gemm_gflops: f64,
    /// Peak resident memory of the process, MiB (Linux `VmHWM`).
    pub peak_rss_mib: Option<f64>,
    /// The measurements.
    pub rows: Vec<BenchRow>,
}

/// Times `f` repeatedly for about `budget` seconds after a warm-up (at least two calls and `budget / 4` seconds);
/// returns the median in seconds.
pub fn time_median(budget: f64, f: impl FnMut() -> Result<()>) -> Result<f64> {
    Ok(time_median_cpu(budget, f)?.0)
}

/// [`time_median`] and the mean process CPU seconds per call over the same timed calls (`None` where the OS does
/// not report it).
pub fn time_median_cpu(
    budget: f64,
    mut f: impl FnMut() -> Result<()>,
) -> Result<(f64, Option<f64>)> {
    // Warm-up: at least two calls and a quarter of the budget. With one row block per thread, each thread's
    // allocator has to grow to the step's working set before calls reach their steady time, which took several
    // calls of a conv training step (2 calls only: 200 ms per step instead of 100 at 1 s budget).
    let warm = Instant::now();
    let mut calls = 0;
    while calls < 2 || warm.elapsed().as_secs_f64() < budget / 4.0 {
        f()?;
        calls += 1;
    }
    let mut samples = Vec::new();
    let cpu0 = process_cpu_seconds();
    let start = Instant::now();
    while samples.len() < 3 || (start.elapsed().as_secs_f64() < budget && samples.len() < 1000) {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    let cpu = match (cpu0, process_cpu_seconds()) {
        (Some(a), Some(b)) => Some((b - a) / samples.len() as f64),
        _ => None,
    };
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], cpu))
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, in units of 1/100 s).
pub fn process_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// f32 GEMM throughput of `device` on 1024 x 1024 x 1024 products, GFLOP/s.
pub fn gemm_peak(device: &Device, budget: f64) -> Result<f64> {
    let n = 1024;
    let mut rng = Rng::new(1);
    let a = Tensor::from_vec(rng.normal_vec(n * n), (n, n), device)?;
    let b = Tensor::from_vec(rng.normal_vec(n * n), (n, n), device)?;
    let secs = time_median(budget, || {
        let c = a.matmul(&b)?;
        device.synchronize()?;
        drop(c);
        Ok(())
    })?;
    Ok(2.0 * (n * n * n) as f64 / secs / 1e9)
}

/// Peak resident set size of this process in MiB, where the OS reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn row(model: &str, op: &str, batch: usize, timing: (f64, Option<f64>), flops: f64) -> BenchRow {
    let (secs, cpu) = timing;
    BenchRow {
        cpu_ms: cpu.map(|c| c * 1e3),
        model: model.to_string(),
        op: op.to_string(),
        batch,
        ms: secs * 1e3,
        per_sec: 1.0 / secs,
        flops,
        gflops: flops / secs / 1e9,
    }
}

/// Benchmarks one model at the given batch sizes; `budget` seconds per measurement.
pub fn bench_model(
    label: &str,
    model: &Model,
    batches: &[usize],
    budget: f64,
    train_model: Option<&Model>,
    train_vars: Vec<candle_core::Var>,
) -> Result<Vec<BenchRow>> {
    let device = model.device().clone();
    let mut rows = Vec::new();
    let macs = model.macs_per_score() as f64;
    let dim = model.dim();
    if model.has_score() {
        let (sampler, every) = recommended_sampler(&model.meta);
        let config = |chains: usize| ChainConfig {
            sampler,
            every,
            chains,
            init: ChainInit::Uniform,
            seed: 1,
        };
        for &n in batches {
            let cfg = config(n);
            let mut chain = Chain::new(model, &cfg, None, &device)?;
            let secs = time_median_cpu(budget, || {
                chain.step(model, &sampler)?;
                Ok(())
            })?;
            rows.push(row(label, "walk-jump step", n, secs, 2.0 * macs * n as f64));
        }
        // Conditional walk-jump: the same step with the top half of every image held (REFERENCE.md §11). Its
        // extra cost is the reset of the held coordinates after each step.
        if let Some(&n) = batches.iter().find(|&&n| n == 64).or(batches.first()) {
            let cfg = config(n);
            let (c, h, w) = model.data_shape();
            let mask = crate::sampling::condition::named_mask("top", c, h, w, 0)?;
            let x = vec![0.5f32; model.data_dim()];
            let cond =
                crate::sampling::condition::Condition::clean(n, model.data_dim(), &mask, &x)?;
            let mut chain = Chain::conditioned(model, &cfg, None, &device, &cond)?;
            let secs = time_median_cpu(budget, || {
                chain.step(model, &sampler)?;
                Ok(())
            })?;
            rows.push(row(
                label,
                "masked walk-jump step (top half held)",
                n,
                secs,
                2.0 * macs * n as f64,
            ));
        }
        let n = 64;
        let mut rng = Rng::new(2);
        let y = Tensor::from_vec(rng.uniform_vec(n * dim), (n, dim), &device)?;
        let secs = time_median_cpu(budget, || {
            let (_, s) = model.energy_and_score(&y, &mut rng)?;
            let y2 = (&y + (s * 0.01)?)?;
            let _ = y2.sum_all()?.to_scalar::<f32>()?;
            Ok(())
        })?;
        rows.push(row(label, "nebula step", n, secs, 2.0 * macs * n as f64));
    }
    if model.is_denoiser() {
        let n = 64;
        let mut rng = Rng::new(3);
        let y = Tensor::from_vec(rng.uniform_vec(n * dim), (n, dim), &device)?;
        let secs = time_median_cpu(budget, || {
            let x = model.jump(&y, &mut rng)?;
            let _ = x.sum_all()?.to_scalar::<f32>()?;
            Ok(())
        })?;
        rows.push(row(label, "denoise", n, secs, 2.0 * macs * n as f64));
    }
    if let Some(tm) = train_model {
        let n = 64;
        let d = tm.data_dim();
        let mut rng = Rng::new(4);
        let x = Tensor::from_vec(rng.uniform_vec(n * d), (n, d), &device)?;
        let labels = Tensor::from_vec(
            (0..n).map(|i| (i % 10) as u32).collect::<Vec<u32>>(),
            n,
            &device,
        )?;
        let mut opt = crate::train::adam::Adam::new(train_vars, 1e-6)?;
        let secs = time_median_cpu(budget, || {
            let (_, grads) =
                crate::train::batch_loss_and_block_grads(tm, &x, Some(&labels), &mut rng)?;
            opt.step_blocks(&grads)
        })?;
        // Backward costs about twice the forward pass it differentiates.
        rows.push(row(
            label,
            "train step",
            n,
            secs,
            3.0 * 2.0 * macs * n as f64,
        ));
    }
    let _ = DType::F32;
    Ok(rows)
}

/// Formats the report as a plain-text table.
pub fn format_report(r: &BenchReport) -> String {
    let mut s = format!(
        "device {} ({} threads), f32 GEMM peak {:.1} GFLOP/s, peak RSS {}\n",
        r.device,
        r.threads,
        r.gemm_gflops,
        r.peak_rss_mib
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "n/a".into())
    );
    s.push_str(&format!(
        "{:<24} {:<16} {:>6} {:>10} {:>12} {:>10} {:>8} {:>10}\n",
        "model", "op", "batch", "ms", "per second", "GFLOP/s", "% peak", "cpu ms"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:<24} {:<16} {:>6} {:>10.3} {:>12.1} {:>10.1} {:>7.0}% {:>10}\n",
            row.model,
            row.op,
            row.batch,
            row.ms,
            row.per_sec,
            row.gflops,
            100.0 * row.gflops / r.gemm_gflops.max(1e-9),
            row.cpu_ms
                .map(|c| format!("{c:.3}"))
                .unwrap_or_else(|| "n/a".into())
        ));
    }
    s
}
