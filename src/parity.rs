//! Device parity behind `walkjump parity`: the same checkpoint on two devices (a GPU against the CPU, or the CPU
//! against itself in tests) must give the same numbers.
//!
//! Two checks per checkpoint:
//! - **outputs**: energy, score and jump (logits for a classifier, the prior energy for the GRBM-prior VAE) on the
//!   same inputs, z = mean, compared as `max |a - b| / max |b|` against a relative tolerance (1e-4 by default);
//! - **chains** (models with a score): the recommended sampler run for a number of steps on both devices from the same
//!   seed. Every random draw comes from the project's own RNG on the host, so both devices see identical noise and
//!   differ only by rounding, which a long chain may amplify into a different (but equally distributed) path. The
//!   mean and variance of each per-step diagnostic (energy, `||score||`, kinetic temperature) over chains and steps
//!   after a burn-in are compared within `z` standard errors, computed from the effective sample size of the draws
//!   (Geyer's initial monotone sequence over split chains): for the mean `sd / sqrt(ESS)`, for the variance
//!   `sd((x - mean)^2) / sqrt(ESS of (x - mean)^2)`, the two devices' errors added in quadrature. Common random
//!   numbers make the two estimates positively correlated, so this tolerance is conservative.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::models::{Model, ScoreModel, ZMode};
use crate::rng::Rng;
use crate::run::{default_init, recommended_sampler};
use crate::sampling::chain::{Chain, ChainConfig};
use crate::sampling::diagnostics::ess_basic;

/// What to compare.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParityConfig {
    /// Input rows for the output check.
    pub rows: usize,
    /// Relative tolerance of the output check.
    pub tol: f64,
    /// Chain steps (0 skips the chain check).
    pub steps: usize,
    /// Steps dropped from the start of each chain before the statistics.
    pub burn_in: usize,
    /// Number of chains.
    pub chains: usize,
    /// Standard errors allowed between the devices' means and variances.
    pub z: f64,
    /// Seed of inputs, chain starts and noise.
    pub seed: u64,
}

impl Default for ParityConfig {
    fn default() -> Self {
        Self {
            rows: 16,
            tol: 1e-4,
            steps: 1000,
            burn_in: 200,
            chains: 64,
            z: 4.0,
            seed: 0,
        }
    }
}

impl ParityConfig {
    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.rows == 0 {
            return Err(Error::Param("parity needs at least one input row".into()));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(Error::Param(format!(
                "the tolerance must be positive, got {}",
                self.tol
            )));
        }
        if !(self.z.is_finite() && self.z > 0.0) {
            return Err(Error::Param(format!("z must be positive, got {}", self.z)));
        }
        if self.steps > 0 {
            if self.chains < 2 {
                return Err(Error::Param(
                    "the chain check needs at least 2 chains".into(),
                ));
            }
            if self.steps < self.burn_in + 8 {
                return Err(Error::Param(format!(
                    "the chain check needs at least 8 steps after the burn-in ({} steps, burn-in {})",
                    self.steps, self.burn_in
                )));
            }
        }
        Ok(())
    }
}

/// One output of one model on both devices.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputRow {
    /// Model label.
    pub model: String,
    /// Model kind.
    pub kind: String,
    /// `energy`, `score`, `jump`, `logits` or `prior_energy`.
    pub quantity: String,
    /// Shape of the output.
    pub shape: Vec<usize>,
    /// `max |a - b|`.
    pub max_diff: f64,
    /// `max |b|` (the reference device).
    pub max_ref: f64,
    /// `max_diff / max_ref`.
    pub rel: f64,
    /// Within the tolerance (and finite on both devices).
    pub ok: bool,
}

/// One chain diagnostic on both devices.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainRow {
    /// Model label.
    pub model: String,
    /// `energy`, `score_norm` or `kinetic`.
    pub diagnostic: String,
    /// Draws per device (chains x steps after the burn-in).
    pub draws: usize,
    /// Effective sample size of the draws on the device under test and on the reference.
    pub ess: [f64; 2],
    /// Mean on the device under test and on the reference.
    pub mean: [f64; 2],
    /// Allowed |difference| of the means.
    pub mean_tol: f64,
    /// Variance on the device under test and on the reference.
    pub var: [f64; 2],
    /// Allowed |difference| of the variances.
    pub var_tol: f64,
    /// Both within tolerance.
    pub ok: bool,
}

/// The chain check of one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainCheck {
    /// Model label.
    pub model: String,
    /// Sampler used (the model's recommendation).
    pub sampler: String,
    /// Per-diagnostic comparisons.
    pub rows: Vec<ChainRow>,
    /// Chains stopped (diverged) on the device under test and on the reference.
    pub stopped: [usize; 2],
    /// `||y_a - y_b|| / ||y_b||` of the final states: how far rounding moved the paths apart (not a pass criterion).
    pub path_gap: f64,
    /// Seconds of stepping on the device under test and on the reference.
    pub seconds: [f64; 2],
}

/// Everything `walkjump parity` found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParityReport {
    /// Device under test.
    pub device: String,
    /// Reference device.
    pub reference: String,
    /// The settings.
    pub config: ParityConfig,
    /// Output comparisons.
    pub outputs: Vec<OutputRow>,
    /// Chain comparisons.
    pub chains: Vec<ChainCheck>,
}

impl ParityReport {
    /// Number of comparisons out of tolerance.
    pub fn failures(&self) -> usize {
        self.outputs.iter().filter(|r| !r.ok).count()
            + self
                .chains
                .iter()
                .map(|c| {
                    c.rows.iter().filter(|r| !r.ok).count()
                        + usize::from(c.stopped[0] != c.stopped[1])
                })
                .sum::<usize>()
    }
}

/// The deterministic outputs of `model` on `y` (z = mean must be set by the caller for the latent kinds): `logits`
/// for a classifier; otherwise `energy` and `score` where the kind defines them, and `jump`; plus the kind's
/// `KindModel::extra_outputs` (`prior_energy`, the GRBM at z = mean, for the GRBM-prior VAE). `y` is `[N, d]` for a
/// classifier, `[N, M*d]` otherwise.
pub fn probe_outputs(
    model: &Model,
    y: &Tensor,
    rng: &mut Rng,
) -> Result<Vec<(&'static str, Tensor)>> {
    let mut out = Vec::new();
    if let Some(c) = model.classifier() {
        out.push(("logits", c.logits(y)?));
        return Ok(out);
    }
    if model.has_score() {
        let (energy, score) = model.energy_and_score(y, rng)?;
        if let Some(e) = energy {
            out.push(("energy", e));
        }
        out.push(("score", score));
    }
    out.push(("jump", model.jump(y, rng)?));
    out.extend(model.net().extra_outputs(y)?);
    Ok(out)
}

/// Width of the inputs `model` takes: `d` for a classifier, `M * d` otherwise.
pub fn input_width(model: &Model) -> usize {
    match model.classifier() {
        Some(_) => model.data_dim(),
        None => model.dim(),
    }
}

/// Inputs `U[0,1] + sigma N(0,1)`, `[rows, width]`, from the project's RNG.
pub fn parity_inputs(model: &Model, rows: usize, seed: u64) -> Vec<f32> {
    let width = input_width(model);
    let sigma = if model.classifier().is_some() {
        0.0
    } else {
        model.meta.sigma as f32
    };
    let mut rng = Rng::new(seed);
    let u = rng.uniform_vec(rows * width);
    let n = rng.normal_vec(rows * width);
    u.iter().zip(&n).map(|(a, b)| a + sigma * b).collect()
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// `(max |a - b|, max |b|)`; NaN when either side has a non-finite value or the lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f64, f64) {
    if a.len() != b.len() {
        return (f64::NAN, f64::NAN);
    }
    let mut diff = 0f64;
    let mut reference = 0f64;
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        if !x.is_finite() || !y.is_finite() {
            return (f64::NAN, f64::NAN);
        }
        diff = diff.max((x - y).abs());
        reference = reference.max(y.abs());
    }
    (diff, reference)
}

/// Compares the outputs of the same checkpoint loaded as `a` (device under test) and `b` (reference).
pub fn compare_outputs(
    label: &str,
    a: &mut Model,
    b: &mut Model,
    cfg: &ParityConfig,
) -> Result<Vec<OutputRow>> {
    a.set_z_mode(ZMode::Mean);
    b.set_z_mode(ZMode::Mean);
    let width = input_width(b);
    let host = parity_inputs(b, cfg.rows, cfg.seed);
    let ya = Tensor::from_vec(host.clone(), (cfg.rows, width), a.device())?;
    let yb = Tensor::from_vec(host, (cfg.rows, width), b.device())?;
    let oa = probe_outputs(a, &ya, &mut Rng::new(cfg.seed ^ 0x5eed))?;
    let ob = probe_outputs(b, &yb, &mut Rng::new(cfg.seed ^ 0x5eed))?;
    let mut rows = Vec::new();
    for ((name, ta), (_, tb)) in oa.iter().zip(&ob) {
        let (max_diff, max_ref) = max_abs_diff(&flat(ta)?, &flat(tb)?);
        let rel = if max_ref > 0.0 {
            max_diff / max_ref
        } else {
            max_diff
        };
        rows.push(OutputRow {
            model: label.to_string(),
            kind: b.kind().as_str().to_string(),
            quantity: (*name).to_string(),
            shape: tb.dims().to_vec(),
            max_diff,
            max_ref,
            rel,
            ok: rel.is_finite() && rel <= cfg.tol,
        });
    }
    Ok(rows)
}

/// Per-chain draws `[chains][steps]` of each diagnostic.
#[derive(Default)]
struct Draws {
    energy: Vec<Vec<f64>>,
    score: Vec<Vec<f64>>,
    kinetic: Vec<Vec<f64>>,
}

fn push_rows(dst: &mut Vec<Vec<f64>>, values: &[f32]) {
    if dst.is_empty() {
        dst.resize(values.len(), Vec::new());
    }
    for (row, &v) in dst.iter_mut().zip(values) {
        row.push(v as f64);
    }
}

fn run_chain(
    model: &Model,
    cfg: &ChainConfig,
    steps: usize,
    burn_in: usize,
) -> Result<(Draws, Chain, f64)> {
    let mut chain = Chain::new(model, cfg, None, model.device())?;
    let mut draws = Draws::default();
    let start = Instant::now();
    for i in 0..steps {
        let s = chain.step(model, &cfg.sampler)?;
        if i < burn_in {
            continue;
        }
        if let Some(e) = &s.energy {
            push_rows(&mut draws.energy, e);
        }
        push_rows(&mut draws.score, &s.score_norm);
        if let Some(k) = &s.kinetic {
            push_rows(&mut draws.kinetic, k);
        }
    }
    model.device().synchronize()?;
    Ok((draws, chain, start.elapsed().as_secs_f64()))
}

/// Mean, variance, and their standard errors of pooled draws `[chains][steps]`, from the effective sample sizes.
struct Moments {
    n: usize,
    ess: f64,
    mean: f64,
    var: f64,
    se_mean: f64,
    se_var: f64,
}

fn moments(draws: &[Vec<f64>]) -> Result<Moments> {
    let all: Vec<f64> = draws.iter().flatten().copied().collect();
    let n = all.len();
    if n < 2 {
        return Err(Error::Param("too few draws for the chain check".into()));
    }
    let mean = all.iter().sum::<f64>() / n as f64;
    let var = all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    // A quantity that never moves has no ESS: treat every draw as independent (its variance is zero anyway).
    let ess = ess_basic(draws)?;
    let ess = if ess.is_finite() {
        ess.max(1.0)
    } else {
        n as f64
    };
    let sq: Vec<Vec<f64>> = draws
        .iter()
        .map(|r| r.iter().map(|x| (x - mean).powi(2)).collect())
        .collect();
    let sq_all: Vec<f64> = sq.iter().flatten().copied().collect();
    let sq_mean = sq_all.iter().sum::<f64>() / n as f64;
    let sq_var = sq_all.iter().map(|x| (x - sq_mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let ess_sq = ess_basic(&sq)?;
    let ess_sq = if ess_sq.is_finite() {
        ess_sq.max(1.0)
    } else {
        n as f64
    };
    Ok(Moments {
        n,
        ess,
        mean,
        var,
        se_mean: (var / ess).sqrt(),
        se_var: (sq_var / ess_sq).sqrt(),
    })
}

fn compare_draws(
    label: &str,
    name: &str,
    a: &[Vec<f64>],
    b: &[Vec<f64>],
    z: f64,
) -> Result<ChainRow> {
    let ma = moments(a)?;
    let mb = moments(b)?;
    // Rounding alone (two paths that never separate) is allowed at single-precision level on top of the
    // statistical error.
    let mean_tol = z * ma.se_mean.hypot(mb.se_mean) + 1e-5 * ma.mean.abs().max(mb.mean.abs());
    let var_tol = z * ma.se_var.hypot(mb.se_var) + 1e-5 * ma.var.max(mb.var);
    let ok = (ma.mean - mb.mean).abs() <= mean_tol && (ma.var - mb.var).abs() <= var_tol;
    Ok(ChainRow {
        model: label.to_string(),
        diagnostic: name.to_string(),
        draws: ma.n,
        ess: [ma.ess, mb.ess],
        mean: [ma.mean, mb.mean],
        mean_tol,
        var: [ma.var, mb.var],
        var_tol,
        ok,
    })
}

/// Runs the model's recommended sampler on both devices from the same seed and compares the diagnostics' moments.
/// `None` for a model without a score.
pub fn compare_chains(
    label: &str,
    a: &Model,
    b: &Model,
    cfg: &ParityConfig,
) -> Result<Option<ChainCheck>> {
    if !b.has_score() || cfg.steps == 0 {
        return Ok(None);
    }
    let (sampler, every) = recommended_sampler(&b.meta);
    let chain_cfg = ChainConfig {
        sampler,
        every,
        chains: cfg.chains,
        init: default_init(b.meta.sigma),
        seed: cfg.seed,
    };
    let (da, ca, sa) = run_chain(a, &chain_cfg, cfg.steps, cfg.burn_in)?;
    let (db, cb, sb) = run_chain(b, &chain_cfg, cfg.steps, cfg.burn_in)?;
    let mut rows = Vec::new();
    for (name, xa, xb) in [
        ("energy", &da.energy, &db.energy),
        ("score_norm", &da.score, &db.score),
        ("kinetic", &da.kinetic, &db.kinetic),
    ] {
        if xa.is_empty() && xb.is_empty() {
            continue;
        }
        if xa.len() != xb.len() {
            return Err(Error::Data(format!(
                "{label}: the devices report {name} for different numbers of chains"
            )));
        }
        rows.push(compare_draws(label, name, xa, xb, cfg.z)?);
    }
    let ya = flat(&ca.y)?;
    let yb = flat(&cb.y)?;
    let gap: f64 = ya
        .iter()
        .zip(&yb)
        .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = yb.iter().map(|&q| (q as f64).powi(2)).sum::<f64>().sqrt();
    Ok(Some(ChainCheck {
        model: label.to_string(),
        sampler: format!("{} (every {every})", sampler.name()),
        rows,
        stopped: [ca.len() - ca.running(), cb.len() - cb.running()],
        path_gap: if norm > 0.0 { gap / norm } else { gap },
        seconds: [sa, sb],
    }))
}

/// Loads each checkpoint on both devices and runs both checks.
pub fn run_parity(
    checkpoints: &[(String, Vec<u8>)],
    device: &Device,
    reference: &Device,
    cfg: &ParityConfig,
    mut progress: impl FnMut(&str),
) -> Result<ParityReport> {
    cfg.validate()?;
    let mut report = ParityReport {
        device: crate::device::describe(device),
        reference: crate::device::describe(reference),
        config: cfg.clone(),
        outputs: Vec::new(),
        chains: Vec::new(),
    };
    for (label, bytes) in checkpoints {
        progress(label);
        let mut a = Model::from_bytes(bytes, device)?;
        let mut b = Model::from_bytes(bytes, reference)?;
        report
            .outputs
            .extend(compare_outputs(label, &mut a, &mut b, cfg)?);
        // The chains sample z where the model does (UVB): back to one sample per call (the default) after the output check.
        a.set_z_mode(ZMode::Sample);
        b.set_z_mode(ZMode::Sample);
        if let Some(c) = compare_chains(label, &a, &b, cfg)? {
            report.chains.push(c);
        }
    }
    Ok(report)
}

/// The report as plain-text tables with a PASS / FAIL line.
pub fn format_report(r: &ParityReport) -> String {
    let c = &r.config;
    let mut s = format!(
        "outputs: {} vs {} (reference), {} inputs U[0,1] + sigma N(0,1), z = mean, rel = max|diff| / max|ref|\n",
        r.device, r.reference, c.rows
    );
    s.push_str(&format!(
        "{:<24} {:<10} {:<13} {:<12} {:>10} {:>10} {:>10}  ok\n",
        "checkpoint", "kind", "quantity", "shape", "max|diff|", "max|ref|", "rel"
    ));
    for o in &r.outputs {
        let shape = o
            .shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        s.push_str(&format!(
            "{:<24} {:<10} {:<13} {:<12} {:>10.2e} {:>10.2e} {:>10.2e}  {}\n",
            o.model,
            o.kind,
            o.quantity,
            shape,
            o.max_diff,
            o.max_ref,
            o.rel,
            if o.ok { "yes" } else { "NO" }
        ));
    }
    if c.steps > 0 {
        s.push_str(&format!(
            "\nchains: {} chains x {} steps (first {} dropped), seed {}, tolerance {} standard errors (from ESS)\n",
            c.chains, c.steps, c.burn_in, c.seed, c.z
        ));
        s.push_str(&format!(
            "{:<24} {:<11} {:>8} {:>13} {:>13} {:>10} {:>11} {:>11} {:>10}  ok\n",
            "checkpoint", "diagnostic", "ESS", "mean", "mean ref", "tol", "var", "var ref", "tol"
        ));
        for ch in &r.chains {
            for row in &ch.rows {
                s.push_str(&format!(
                    "{:<24} {:<11} {:>8.0} {:>13.6} {:>13.6} {:>10.2e} {:>11.4e} {:>11.4e} {:>10.2e}  {}\n",
                    row.model,
                    row.diagnostic,
                    row.ess[0].min(row.ess[1]),
                    row.mean[0],
                    row.mean[1],
                    row.mean_tol,
                    row.var[0],
                    row.var[1],
                    row.var_tol,
                    if row.ok { "yes" } else { "NO" }
                ));
            }
            s.push_str(&format!(
                "{:<24} sampler {}, stopped {}/{} (ref {}), final-state gap {:.2e}, {:.2}s vs {:.2}s ({:.0} vs {:.0} steps/s)\n",
                ch.model,
                ch.sampler,
                ch.stopped[0],
                c.chains,
                ch.stopped[1],
                ch.path_gap,
                ch.seconds[0],
                ch.seconds[1],
                c.steps as f64 / ch.seconds[0].max(1e-9),
                c.steps as f64 / ch.seconds[1].max(1e-9),
            ));
        }
    }
    let failures = r.failures();
    let checks = r.outputs.len() + r.chains.iter().map(|c| c.rows.len() + 1).sum::<usize>();
    s.push_str(&format!(
        "\n{}: {} of {} checks out of tolerance ({} vs {}, outputs within {} relative, chain moments within {} SE)\n",
        if failures == 0 { "PASS" } else { "FAIL" },
        failures,
        checks,
        r.device,
        r.reference,
        c.tol,
        c.z
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_abs_diff_basics() {
        assert_eq!(max_abs_diff(&[1.0, -3.0], &[1.5, -2.0]), (1.0, 2.0));
        assert!(max_abs_diff(&[1.0], &[1.0, 2.0]).0.is_nan());
        assert!(max_abs_diff(&[f32::NAN], &[1.0]).0.is_nan());
    }

    #[test]
    fn config_validation() {
        assert!(ParityConfig::default().validate().is_ok());
        let bad = [
            ParityConfig {
                rows: 0,
                ..Default::default()
            },
            ParityConfig {
                tol: f64::NAN,
                ..Default::default()
            },
            ParityConfig {
                z: 0.0,
                ..Default::default()
            },
            ParityConfig {
                chains: 1,
                ..Default::default()
            },
            ParityConfig {
                steps: 100,
                burn_in: 95,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        // No chain check: chains and burn-in do not matter.
        let no_chain = ParityConfig {
            steps: 0,
            chains: 0,
            ..Default::default()
        };
        assert!(no_chain.validate().is_ok());
    }

    /// AR(1) draws `x_t = phi x_{t-1} + e_t` from the project RNG.
    fn ar1(chains: usize, steps: usize, phi: f64, shift: f64, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = Rng::new(seed);
        (0..chains)
            .map(|_| {
                let mut x = 0.0;
                (0..steps)
                    .map(|_| {
                        x = phi * x + rng.normal();
                        x + shift
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn tolerance_accepts_independent_runs_and_rejects_shifts() {
        // Two independent runs of the same autocorrelated process pass at z = 4 ...
        let mut passed = 0;
        for seed in 0..20 {
            let a = ar1(8, 400, 0.9, 0.0, 2 * seed);
            let b = ar1(8, 400, 0.9, 0.0, 2 * seed + 1);
            if compare_draws("m", "x", &a, &b, 4.0).is_ok_and(|r| r.ok) {
                passed += 1;
            }
        }
        assert!(passed >= 19, "{passed}/20 passed");
        // ... a mean shift of a few standard errors does not. sd of the pooled mean here: sqrt(1/(1-0.81) * 19 / 3200)
        // ~ 0.18, so a shift of 1.5 is about 8 SE.
        let a = ar1(8, 400, 0.9, 0.0, 100);
        let b = ar1(8, 400, 0.9, 1.5, 101);
        assert!(compare_draws("m", "x", &a, &b, 4.0).is_ok_and(|r| !r.ok));
        // ... and neither does a doubled spread.
        let c: Vec<Vec<f64>> = ar1(8, 400, 0.9, 0.0, 102)
            .into_iter()
            .map(|r| r.into_iter().map(|x| 2.0 * x).collect())
            .collect();
        assert!(compare_draws("m", "x", &a, &c, 4.0).is_ok_and(|r| !r.ok));
    }

    #[test]
    fn identical_draws_pass_and_constant_draws_work() {
        let a = ar1(4, 100, 0.5, 3.0, 7);
        let r = compare_draws("m", "x", &a, &a, 4.0);
        assert!(r.is_ok_and(|r| r.ok));
        let flat_draws = vec![vec![2.0; 50]; 3];
        let r = compare_draws("m", "x", &flat_draws, &flat_draws, 4.0);
        assert!(r.is_ok_and(|r| r.ok));
    }
}
