//! N walk-jump chains batched into one tensor: the walk advances `(y, v)`, jumps `x_hat(y)` are taken every `every`
//! steps without touching the chain, and chains that diverge are frozen with a message while the rest run on.

use candle_core::{D, DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ScoreModel;
use super::condition::{Condition, HeldState};
use super::fused::row_norms;
use super::langevin::Sampler;
use crate::data::Dataset;
use crate::rng::Rng;
use crate::sampling::{Error, Result};

/// How chains start (REFERENCE.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ChainInit {
    /// `y0 ~ Unif([0,1]^{M d})`.
    Uniform,
    /// `y0 ~ Unif([0,1]^{M d}) + N(0, sigma^2)`.
    UniformNoise,
    /// `y0 = x + N(0, sigma^2)` per measurement, x a random training image.
    DataNoise,
}

/// Everything that defines a run besides the model: with the checkpoint hash, it replays a chain exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainConfig {
    /// The walk.
    pub sampler: Sampler,
    /// Steps between jumps.
    pub every: usize,
    /// Number of chains N.
    pub chains: usize,
    /// Initialisation.
    pub init: ChainInit,
    /// Seed of the run's RNG.
    pub seed: u64,
}

impl ChainConfig {
    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        self.sampler.validate()?;
        if self.every == 0 {
            return Err(Error::Param("steps per jump must be at least 1".into()));
        }
        if self.chains == 0 || self.chains > 65_536 {
            return Err(Error::Param(format!(
                "chains must be between 1 and 65536, got {}",
                self.chains
            )));
        }
        Ok(())
    }
}

/// A chain is declared divergent when `||y||` exceeds this many times `sigma sqrt(D) + sqrt(D)`.
pub const DIVERGENCE_FACTOR: f64 = 10.0;

/// Per-chain numbers from one step (all vectors have length N; stopped chains repeat their last values).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Step index after this step (1 for the first step).
    pub step: u64,
    /// `f(y)` where the score was taken, if the model has an energy.
    pub energy: Option<Vec<f32>>,
    /// `||score(y)||`.
    pub score_norm: Vec<f32>,
    /// Kinetic temperature `||v||^2 / (u D)` for underdamped samplers.
    pub kinetic: Option<Vec<f32>>,
    /// Chains that diverged at this step, with the reason.
    pub diverged: Vec<(usize, String)>,
}

/// The state of N chains: `y, v: [N, D]`.
#[derive(Debug)]
pub struct Chain {
    /// Positions `[N, D]`.
    pub y: Tensor,
    /// Velocities `[N, D]` (zero for the overdamped sampler).
    pub v: Tensor,
    /// Steps taken so far.
    pub step: u64,
    /// `None` while a chain runs, the reason once it has been stopped.
    pub stopped: Vec<Option<String>>,
    rng: Rng,
    bound: f64,
    /// Held coordinates (conditional walk-jump), if any, and the condition they came from (for reset).
    held: Option<(HeldState, Condition)>,
}

impl Chain {
    /// Starts `cfg.chains` chains for `model` from `cfg.init` (data inits draw from `data`).
    pub fn new(
        model: &dyn ScoreModel,
        cfg: &ChainConfig,
        data: Option<&Dataset>,
        device: &Device,
    ) -> Result<Self> {
        Self::start(model, cfg, data, device, None)
    }

    /// Starts `cfg.chains` chains that hold part of the data fixed, or start from chosen images
    /// ([`Condition`], REFERENCE.md §11). The free coordinates start from `cfg.init` exactly as
    /// [`Chain::new`]'s (same draws), unless the condition seeds them from images; the held values
    /// `y_o = x_o + sigma eps` come from a stream of their own, drawn once.
    pub fn conditioned(
        model: &dyn ScoreModel,
        cfg: &ChainConfig,
        data: Option<&Dataset>,
        device: &Device,
        condition: &Condition,
    ) -> Result<Self> {
        Self::start(model, cfg, data, device, Some(condition))
    }

    /// The one constructor: `y0` from `cfg.init` (drawn from the run's stream), then, with a condition, the held
    /// coordinates (from a stream of their own, so the free part's draws are those of an unconditioned chain).
    fn start(
        model: &dyn ScoreModel,
        cfg: &ChainConfig,
        data: Option<&Dataset>,
        device: &Device,
        condition: Option<&Condition>,
    ) -> Result<Self> {
        cfg.validate()?;
        if let Some(c) = condition {
            c.check(cfg.chains, model.data_dim())?;
        }
        let mut rng = Rng::new(cfg.seed);
        let n = cfg.chains;
        let dim = model.dim();
        let mut y = initial_state(model, cfg.init, n, data, &mut rng)?;
        let mut held = None;
        if let Some(c) = condition {
            let mut held_rng = Rng::new(cfg.seed ^ 0x0068_6f6c_645f_796f);
            let (y_held, state) = c.start_state(
                y,
                model.measurements(),
                model.sigma(),
                &mut held_rng,
                device,
            )?;
            y = y_held;
            held = Some((state, c.clone()));
        }
        let y = Tensor::from_vec(y, (n, dim), device)?;
        let v = Tensor::zeros((n, dim), DType::F32, device)?;
        let sd = (dim as f64).sqrt();
        Ok(Self {
            y,
            v,
            step: 0,
            stopped: vec![None; n],
            rng,
            bound: DIVERGENCE_FACTOR * (model.sigma() * sd + sd),
            held,
        })
    }

    /// The condition the chains hold, if any.
    pub fn condition(&self) -> Option<&Condition> {
        self.held.as_ref().map(|(_, c)| c)
    }

    /// Number of chains.
    pub fn len(&self) -> usize {
        self.stopped.len()
    }

    /// Whether there are no chains.
    pub fn is_empty(&self) -> bool {
        self.stopped.is_empty()
    }

    /// Number of chains still running.
    pub fn running(&self) -> usize {
        self.stopped.iter().filter(|s| s.is_none()).count()
    }

    /// The norm above which a chain counts as divergent.
    pub fn divergence_bound(&self) -> f64 {
        self.bound
    }

    /// Advances every running chain by one step of `sampler`; stopped chains keep their state.
    pub fn step(&mut self, model: &dyn ScoreModel, sampler: &Sampler) -> Result<StepStats> {
        sampler.validate()?;
        let rng = &mut self.rng;
        let mut score_rng = rng.fork(self.step);
        let (y1, v1, energy, psi) = sampler.step(&self.y, &self.v, rng, |y| {
            model.energy_and_score(y, &mut score_rng)
        })?;
        let (y1, v1) = match &self.held {
            Some((h, _)) => h.apply(y1, v1)?,
            None => (y1, v1),
        };
        self.step += 1;
        let mut stats = StepStats {
            step: self.step,
            ..Default::default()
        };
        // Divergence: NaN/Inf anywhere in the row, or a norm far beyond the noise shell.
        let y_norm = row_norms(&y1)?;
        let v_norm = row_norms(&v1)?;
        let mut keep_old = vec![0u8; self.len()];
        let mut any_stopped = false;
        for i in 0..self.len() {
            if self.stopped[i].is_some() {
                keep_old[i] = 1;
                any_stopped = true;
                continue;
            }
            let (yn, vn) = (y_norm[i] as f64, v_norm[i] as f64);
            let reason = if !yn.is_finite() || !vn.is_finite() {
                Some(format!(
                    "chain {i} diverged at step {}: non-finite values (lower delta and reset)",
                    self.step
                ))
            } else if yn > self.bound {
                Some(format!(
                    "chain {i} diverged at step {}: ||y|| = {yn:.3e} is beyond {:.0} (lower delta and reset)",
                    self.step, self.bound
                ))
            } else {
                None
            };
            if let Some(r) = reason {
                stats.diverged.push((i, r.clone()));
                self.stopped[i] = Some(r);
                keep_old[i] = 1;
                any_stopped = true;
            }
        }
        if any_stopped {
            let n = self.len();
            let mask = Tensor::from_vec(keep_old, (n, 1), self.y.device())?
                .broadcast_as(self.y.shape())?;
            self.y = mask.where_cond(&self.y, &y1)?;
            self.v = mask.where_cond(&self.v, &v1)?;
        } else {
            self.y = y1;
            self.v = v1;
        }
        stats.score_norm = sanitize(row_norms(&psi)?);
        stats.energy = energy
            .map(|e| e.to_vec1::<f32>().map(sanitize))
            .transpose()?;
        if let Some((_, u)) = sampler.gamma_u() {
            // Per free coordinate: held coordinates have no velocity, so counting them would read 1/2 for a chain
            // holding half the image.
            let dim = self.y.dim(1)? as f64;
            let free = match &self.held {
                Some((h, _)) => h.free_counts()?,
                None => None,
            };
            let v2 = self.v.sqr()?.sum(D::Minus1)?.to_vec1::<f32>()?;
            stats.kinetic = Some(
                v2.iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        let d = free.as_ref().map_or(dim, |f| f[i].max(1.0));
                        (x as f64 / (u * d)) as f32
                    })
                    .collect(),
            );
        }
        Ok(stats)
    }

    /// The jump `x_hat(y): [N, d]` of the current state; the chain itself is not touched. `model` may be another
    /// model than the one that walks (same data size, measurements and sigma; see [`check_jump_model`]). Held
    /// pixels of a conditioned chain are the clean observation exactly.
    pub fn jump(&mut self, model: &dyn ScoreModel) -> Result<Tensor> {
        let mut jump_rng = self.rng.fork(u64::MAX - self.step);
        let x = model.jump(&self.y, &mut jump_rng)?;
        match &self.held {
            Some((h, _)) => h.apply_jump(x),
            None => Ok(x),
        }
    }

    /// Restarts every chain (including stopped ones) from `init` with a fresh stream from `seed`.
    pub fn reset(
        &mut self,
        model: &dyn ScoreModel,
        cfg: &ChainConfig,
        data: Option<&Dataset>,
    ) -> Result<()> {
        let device = self.y.device().clone();
        *self = match self.held.take() {
            Some((_, c)) => Chain::conditioned(model, cfg, data, &device, &c)?,
            None => Chain::new(model, cfg, data, &device)?,
        };
        Ok(())
    }
}

/// Checks that `jumper` can jump the chains of `walker`: the same image size, number of measurements and noise
/// level (to 1e-9 relative); otherwise one line saying which differs.
pub fn check_jump_model(walker: &dyn ScoreModel, jumper: &dyn ScoreModel) -> Result<()> {
    if walker.data_dim() != jumper.data_dim() {
        return Err(Error::Param(format!(
            "the jump model takes images of {} pixels, the walk model {}",
            jumper.data_dim(),
            walker.data_dim()
        )));
    }
    if walker.measurements() != jumper.measurements() {
        return Err(Error::Param(format!(
            "the jump model takes M = {} measurements, the walk model M = {}",
            jumper.measurements(),
            walker.measurements()
        )));
    }
    let (a, b) = (walker.sigma(), jumper.sigma());
    if (a - b).abs() > 1e-9 * a.abs().max(b.abs()) {
        return Err(Error::Param(format!(
            "the jump model was trained at sigma = {b}, the walk model at sigma = {a}: a jump needs the walk's noise level"
        )));
    }
    Ok(())
}

/// Replaces NaN/Inf by NaN-free sentinels so traces stay printable: NaN stays NaN (CSV shows it), Inf becomes NaN.
fn sanitize(v: Vec<f32>) -> Vec<f32> {
    v.into_iter()
        .map(|x| if x.is_finite() { x } else { f32::NAN })
        .collect()
}

/// Initial `y0` for `n` chains, flat `[n * M * d]`.
pub fn initial_state(
    model: &dyn ScoreModel,
    init: ChainInit,
    n: usize,
    data: Option<&Dataset>,
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    let m = model.measurements();
    let d = model.data_dim();
    let sigma = model.sigma();
    Ok(match init {
        ChainInit::Uniform => rng.uniform_vec(n * m * d),
        ChainInit::UniformNoise => (0..n * m * d)
            .map(|_| (rng.uniform() + sigma * rng.normal()) as f32)
            .collect(),
        ChainInit::DataNoise => {
            let data =
                data.ok_or_else(|| Error::Param("the data-noise init needs a dataset".into()))?;
            if data.dim() != d || data.is_empty() {
                return Err(Error::Data(format!(
                    "the dataset has {} pixels per image, the model {d}",
                    data.dim()
                )));
            }
            let mut out = Vec::with_capacity(n * m * d);
            for _ in 0..n {
                let i = rng.below(data.len());
                let x = data
                    .image(i)
                    .ok_or_else(|| Error::Data(format!("image {i} out of range")))?;
                for _ in 0..m {
                    out.extend(x.iter().map(|&p| (p as f64 + sigma * rng.normal()) as f32));
                }
            }
            out
        }
    })
}

/// Repeats clean images `x: [N, d]` into M measurements `[N, M*d]` (for jumps of jumps on M > 1 models).
pub fn tile_measurements(x: &Tensor, m: usize) -> Result<Tensor> {
    if m == 1 {
        return Ok(x.clone());
    }
    let (n, d) = x.dims2()?;
    Ok(x.unsqueeze(1)?
        .broadcast_as((n, m, d))?
        .reshape((n, m * d))?)
}

/// "Poor man's NEBULA": the jump of a jump, `x_hat(x_hat(y))`: `y: [N, M*d] -> [N, d]`.
pub fn jump_of_jump(model: &dyn ScoreModel, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
    let x1 = model.jump(y, rng)?;
    let y2 = tile_measurements(&x1, model.measurements())?;
    model.jump(&y2, rng)
}
