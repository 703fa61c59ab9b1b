//! NEBULA (REFERENCE.md §7): gradient flow `y <- y - eta grad f(y)` from many starts until `||grad f|| < tol`, then
//! the attractors: near-duplicates merged, basin counts, nearest training image.
//!
//! The flow is written with the score, `y <- y + eta * score(y)`, so it also runs on score-only models: for an MDAE
//! a step with `eta = sigma^2` is exactly `y <- nu(y)`, the iterated jump.

use candle_core::{D, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ScoreModel;
use super::chain::{ChainInit, initial_state};
use crate::data::Dataset;
use crate::rng::Rng;
use crate::sampling::{Error, Result};

/// Where NEBULA flows start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum NebulaInit {
    /// `Unif([0,1]^{M d})`: "creative memories".
    Uniform,
    /// Clean training images (the flow `A(X_i)`).
    Data,
    /// Training images plus `N(0, sigma^2)`.
    DataNoise,
}

/// Parameters of a NEBULA run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NebulaConfig {
    /// Step size eta.
    pub eta: f64,
    /// Stop after this many steps at most.
    pub max_steps: usize,
    /// A start has converged once `||grad f|| < tol`.
    pub tol: f64,
    /// Number of starts.
    pub starts: usize,
    /// Where they start.
    pub init: NebulaInit,
    /// Seed for the starts.
    pub seed: u64,
    /// Attractors closer than this (in chi units, `||a - b|| / (2 sqrt(d))`) are merged.
    pub merge: f64,
    /// An attractor whose nearest training image is farther than this (chi units) is a "creative memory".
    pub creative: f64,
}

impl NebulaConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Param(format!(
                    "{name} must be a positive number, got {v}"
                )))
            }
        };
        pos("eta", self.eta)?;
        pos("tol", self.tol)?;
        if !(self.merge.is_finite() && self.merge >= 0.0) {
            return Err(Error::Param(format!(
                "merge distance {} is not valid",
                self.merge
            )));
        }
        if !(self.creative.is_finite() && self.creative >= 0.0) {
            return Err(Error::Param(format!(
                "creative distance {} is not valid",
                self.creative
            )));
        }
        if self.starts == 0 || self.starts > 65_536 {
            return Err(Error::Param(format!(
                "starts must be 1..=65536, got {}",
                self.starts
            )));
        }
        Ok(())
    }
}

/// One attractor: a representative point and the starts that flowed to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attractor {
    /// The representative image `[d]` (for M > 1 the mean of the M channels).
    pub image: Vec<f32>,
    /// Indices of the starts in this basin.
    pub members: Vec<usize>,
    /// Index (into the training split) of the nearest training image, if a dataset was given.
    pub nearest: Option<usize>,
    /// Its distance in chi units.
    pub nearest_chi: Option<f64>,
    /// Far from every training image.
    pub creative: bool,
    /// Energy at the attractor, if the model has one.
    pub energy: Option<f32>,
}

/// Outcome of a NEBULA run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NebulaResult {
    /// Final points as images `[starts][d]`.
    pub finals: Vec<Vec<f32>>,
    /// Per start: converged under the tolerance.
    pub converged: Vec<bool>,
    /// Per start: steps taken until convergence (or max).
    pub steps: Vec<usize>,
    /// Per start: final `||grad f||`.
    pub grad_norm: Vec<f32>,
    /// Per step: mean energy over starts (empty if the model has no energy).
    pub energy_curve: Vec<f32>,
    /// Per step: max `||grad f||` over running starts.
    pub grad_curve: Vec<f32>,
    /// Merged attractors, largest basin first.
    pub attractors: Vec<Attractor>,
}

impl NebulaResult {
    /// Fraction of starts that converged.
    pub fn converged_fraction(&self) -> f64 {
        if self.converged.is_empty() {
            return 0.0;
        }
        self.converged.iter().filter(|&&c| c).count() as f64 / self.converged.len() as f64
    }
}

/// State of a running flow, advanced step by step (the app drives it incrementally).
#[derive(Debug)]
pub struct Nebula {
    /// `[starts, M*d]`
    pub y: Tensor,
    /// Per start: converged.
    pub converged: Vec<bool>,
    /// Per start: steps taken.
    pub steps: Vec<usize>,
    /// Per start: latest `||grad f||`.
    pub grad_norm: Vec<f32>,
    /// Per start: latest energy.
    pub energy: Option<Vec<f32>>,
    /// Steps done.
    pub step: usize,
    rng: Rng,
    /// Held coordinates: mask `[starts, M*d]` (u8, 1 = held) and their values; the flow moves only the others.
    held: Option<(Tensor, Tensor)>,
}

impl Nebula {
    /// Holds part of every start fixed: `mask` `[starts * d]` (or `[d]` for all, repeated over the M
    /// measurements), true where held, at the clean values `x` (`[starts * d]` or `[d]`). The held coordinates are
    /// set to `x` now and the flow, its gradient norm and its convergence test see only the free ones: the
    /// attractor reached is a completion of the held part.
    pub fn hold(&mut self, model: &dyn ScoreModel, mask: &[bool], x: &[f32]) -> Result<()> {
        let n = self.converged.len();
        let (m, d) = (model.measurements(), model.data_dim());
        let cond = super::condition::Condition::clean(n, d, mask, x)?;
        let obs = cond.observed().unwrap_or(&[]);
        let mut mask_y = vec![0u8; n * m * d];
        let mut vals = vec![0f32; n * m * d];
        for i in 0..n {
            for k in 0..m {
                for j in 0..d {
                    let at = (i * m + k) * d + j;
                    mask_y[at] = cond.mask()[i * d + j];
                    vals[at] = obs[i * d + j];
                }
            }
        }
        let device = self.y.device().clone();
        let mask_t = Tensor::from_vec(mask_y, (n, m * d), &device)?;
        let vals_t = Tensor::from_vec(vals, (n, m * d), &device)?;
        self.y = mask_t.where_cond(&vals_t, &self.y)?;
        self.held = Some((mask_t, vals_t));
        Ok(())
    }

    /// Starts `cfg.starts` flows.
    pub fn new(
        model: &dyn ScoreModel,
        cfg: &NebulaConfig,
        data: Option<&Dataset>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let mut rng = Rng::new(cfg.seed);
        let n = cfg.starts;
        let y = match cfg.init {
            NebulaInit::Uniform => initial_state(model, ChainInit::Uniform, n, data, &mut rng)?,
            NebulaInit::DataNoise => initial_state(model, ChainInit::DataNoise, n, data, &mut rng)?,
            NebulaInit::Data => {
                let data =
                    data.ok_or_else(|| Error::Param("the data init needs a dataset".into()))?;
                if data.dim() != model.data_dim() || data.is_empty() {
                    return Err(Error::Data("the dataset does not fit the model".into()));
                }
                let mut out = Vec::new();
                for _ in 0..n {
                    let i = rng.below(data.len());
                    let x = data.image(i).unwrap_or(&[]);
                    for _ in 0..model.measurements() {
                        out.extend_from_slice(x);
                    }
                }
                out
            }
        };
        Self::from_points(y, n, model, device, rng)
    }

    /// Starts flows from given points `[n * M * d]` (e.g. a digit drawn with the mouse).
    pub fn from_points(
        y: Vec<f32>,
        n: usize,
        model: &dyn ScoreModel,
        device: &Device,
        rng: Rng,
    ) -> Result<Self> {
        if y.len() != n * model.dim() {
            return Err(Error::Data(format!(
                "{} values do not make {n} starts of {} each",
                y.len(),
                model.dim()
            )));
        }
        Ok(Self {
            y: Tensor::from_vec(y, (n, model.dim()), device)?,
            converged: vec![false; n],
            steps: vec![0; n],
            grad_norm: vec![f32::INFINITY; n],
            energy: None,
            step: 0,
            rng,
            held: None,
        })
    }

    /// Whether every start has converged.
    pub fn done(&self) -> bool {
        self.converged.iter().all(|&c| c)
    }

    /// One flow step for every start that has not converged. Returns the mean energy over starts, if any.
    pub fn step(&mut self, model: &dyn ScoreModel, eta: f64, tol: f64) -> Result<Option<f32>> {
        let mut rng = self.rng.fork(self.step as u64);
        let (energy, score) = model.energy_and_score(&self.y, &mut rng)?;
        let score = match &self.held {
            Some((mask, _)) => mask.where_cond(&score.zeros_like()?, &score)?,
            None => score,
        };
        let norms = score.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec1::<f32>()?;
        let n = self.converged.len();
        let mut active = vec![0f32; n];
        for i in 0..n {
            self.grad_norm[i] = norms[i];
            if !self.converged[i] {
                if (norms[i] as f64) < tol {
                    self.converged[i] = true;
                } else if norms[i].is_finite() {
                    active[i] = 1.0;
                    self.steps[i] += 1;
                }
            }
        }
        let mask = Tensor::from_vec(active, (n, 1), self.y.device())?;
        self.y = (&self.y + score.broadcast_mul(&mask)?.affine(eta, 0.0)?)?;
        self.step += 1;
        let mean_e = match energy {
            Some(e) => {
                let v = e.to_vec1::<f32>()?;
                let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
                self.energy = Some(v);
                Some(m as f32)
            }
            None => None,
        };
        Ok(mean_e)
    }

    /// The current points as images `[starts][d]` (mean over the M channels).
    pub fn images(&self, model: &dyn ScoreModel) -> Result<Vec<Vec<f32>>> {
        let (n, dim) = self.y.dims2()?;
        let m = model.measurements();
        let d = dim / m;
        let x = self.y.reshape((n, m, d))?.mean(1)?;
        Ok(x.to_vec2::<f32>()?)
    }
}

/// `||a - b|| / (2 sqrt(d))`.
pub fn chi_distance(a: &[f32], b: &[f32]) -> f64 {
    let d = a.len().max(1) as f64;
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&p, &q)| ((p - q) as f64).powi(2))
        .sum();
    s.sqrt() / (2.0 * d.sqrt())
}

/// Runs NEBULA to completion and collects the attractors; `train` (if given) supplies nearest training images.
pub fn run_nebula(
    model: &dyn ScoreModel,
    cfg: &NebulaConfig,
    data: Option<&Dataset>,
    train: Option<&Dataset>,
    device: &Device,
    on_step: impl FnMut(&Nebula),
) -> Result<NebulaResult> {
    run_nebula_held(model, cfg, data, train, device, None, on_step)
}

/// [`run_nebula`] with part of every start held fixed (`(mask, x)` as in [`Nebula::hold`]).
pub fn run_nebula_held(
    model: &dyn ScoreModel,
    cfg: &NebulaConfig,
    data: Option<&Dataset>,
    train: Option<&Dataset>,
    device: &Device,
    hold: Option<(&[bool], &[f32])>,
    mut on_step: impl FnMut(&Nebula),
) -> Result<NebulaResult> {
    let mut neb = Nebula::new(model, cfg, data, device)?;
    if let Some((mask, x)) = hold {
        neb.hold(model, mask, x)?;
    }
    let mut energy_curve = Vec::new();
    let mut grad_curve = Vec::new();
    for _ in 0..cfg.max_steps {
        let e = neb.step(model, cfg.eta, cfg.tol)?;
        if let Some(e) = e {
            energy_curve.push(e);
        }
        let gmax = neb
            .grad_norm
            .iter()
            .zip(&neb.converged)
            .filter(|(_, c)| !**c)
            .map(|(g, _)| *g)
            .fold(0f32, f32::max);
        grad_curve.push(gmax);
        on_step(&neb);
        if neb.done() {
            break;
        }
    }
    // A final check so that starts which converged on the last step are counted.
    let (_, score) = model.energy_and_score(&neb.y, &mut neb.rng)?;
    let norms = score.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec1::<f32>()?;
    for (i, &g) in norms.iter().enumerate() {
        neb.grad_norm[i] = g;
        if (g as f64) < cfg.tol {
            neb.converged[i] = true;
        }
    }
    let finals = neb.images(model)?;
    let attractors = merge_attractors(&finals, neb.energy.as_deref(), cfg, train);
    Ok(NebulaResult {
        finals,
        converged: neb.converged,
        steps: neb.steps,
        grad_norm: neb.grad_norm,
        energy_curve,
        grad_curve,
        attractors,
    })
}

/// Greedy merge: each final point joins the first attractor within `cfg.merge` (chi units) of it, else founds one.
pub fn merge_attractors(
    finals: &[Vec<f32>],
    energy: Option<&[f32]>,
    cfg: &NebulaConfig,
    train: Option<&Dataset>,
) -> Vec<Attractor> {
    let mut out: Vec<Attractor> = Vec::new();
    for (i, x) in finals.iter().enumerate() {
        if x.iter().any(|v| !v.is_finite()) {
            continue;
        }
        if let Some(a) = out
            .iter_mut()
            .find(|a| chi_distance(&a.image, x) <= cfg.merge)
        {
            a.members.push(i);
            continue;
        }
        out.push(Attractor {
            image: x.clone(),
            members: vec![i],
            nearest: None,
            nearest_chi: None,
            creative: false,
            energy: energy.and_then(|e| e.get(i).copied()),
        });
    }
    if let Some(train) = train {
        for a in &mut out {
            let mut best: Option<(usize, f64)> = None;
            for j in 0..train.len() {
                if let Some(img) = train.image(j) {
                    let dist = chi_distance(&a.image, img);
                    if best.is_none_or(|(_, b)| dist < b) {
                        best = Some((j, dist));
                    }
                }
            }
            if let Some((j, dist)) = best {
                a.nearest = Some(j);
                a.nearest_chi = Some(dist);
                a.creative = dist > cfg.creative;
            }
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.members.len()));
    out
}
