//! The walk: overdamped and underdamped Langevin updates exactly as REFERENCE.md §6.
//!
//! Every update works on a batch `y, v: [N, D]` and takes the score as a closure, so the same code drives the neural
//! models, the analytic mixtures, and the tests' Gaussian targets.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::sampling::fused::lincomb;
use crate::sampling::{Error, Result};

/// A Langevin sampler and its parameters: step `delta`, friction `gamma` (a rate: the per-step friction is
/// `gamma * delta`), inverse mass `u`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampler {
    /// ULA in the project convention `y <- y + (delta^2 / 2) psi + delta eps` (seed 002 eq. 42).
    Overdamped {
        /// Step size.
        delta: f64,
    },
    /// Algorithm 1 (Sachs et al. 2017): one score call per step.
    Sachs {
        /// Step size.
        delta: f64,
        /// Friction rate.
        gamma: f64,
        /// Inverse mass.
        u: f64,
    },
    /// Algorithm 2 (Cheng et al. 2018): exact Gaussian transition with the score frozen over the step.
    Cheng {
        /// Step size.
        delta: f64,
        /// Friction rate.
        gamma: f64,
        /// Inverse mass.
        u: f64,
    },
}

/// Name of a sampler kind, as used by the CLI.
pub const SAMPLER_NAMES: [&str; 3] = ["overdamped", "sachs", "cheng"];

impl Sampler {
    /// Builds a sampler from its CLI name.
    pub fn from_name(name: &str, delta: f64, gamma: f64, u: f64) -> Result<Self> {
        let s = match name {
            "overdamped" | "ula" => Sampler::Overdamped { delta },
            "sachs" | "alg1" => Sampler::Sachs { delta, gamma, u },
            "cheng" | "alg2" => Sampler::Cheng { delta, gamma, u },
            other => {
                return Err(Error::Param(format!(
                    "unknown sampler '{other}' (overdamped, sachs, cheng)"
                )));
            }
        };
        s.validate()?;
        Ok(s)
    }

    /// CLI name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            Sampler::Overdamped { .. } => "overdamped",
            Sampler::Sachs { .. } => "sachs",
            Sampler::Cheng { .. } => "cheng",
        }
    }

    /// Step size.
    pub fn delta(&self) -> f64 {
        match *self {
            Sampler::Overdamped { delta }
            | Sampler::Sachs { delta, .. }
            | Sampler::Cheng { delta, .. } => delta,
        }
    }

    /// Friction rate and inverse mass, for the underdamped kinds.
    pub fn gamma_u(&self) -> Option<(f64, f64)> {
        match *self {
            Sampler::Overdamped { .. } => None,
            Sampler::Sachs { gamma, u, .. } | Sampler::Cheng { gamma, u, .. } => Some((gamma, u)),
        }
    }

    /// The same kind with a new delta.
    pub fn with_delta(&self, delta: f64) -> Self {
        match *self {
            Sampler::Overdamped { .. } => Sampler::Overdamped { delta },
            Sampler::Sachs { gamma, u, .. } => Sampler::Sachs { delta, gamma, u },
            Sampler::Cheng { gamma, u, .. } => Sampler::Cheng { delta, gamma, u },
        }
    }

    /// Refuses NaN, infinite, zero or negative parameters with a message naming the parameter.
    pub fn validate(&self) -> Result<()> {
        let check = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Param(format!(
                    "{name} must be a positive number, got {v}"
                )))
            }
        };
        check("delta", self.delta())?;
        if let Some((gamma, u)) = self.gamma_u() {
            check("gamma", gamma)?;
            check("u", u)?;
            if (gamma * self.delta()) > 700.0 {
                return Err(Error::Param(format!(
                    "gamma * delta = {} is too large (exp(-gamma delta) underflows)",
                    gamma * self.delta()
                )));
            }
        }
        Ok(())
    }

    /// Whether the sampler carries a velocity.
    pub fn is_underdamped(&self) -> bool {
        !matches!(self, Sampler::Overdamped { .. })
    }

    /// One step from `(y, v)`; returns the new `(y, v)` and the score evaluation's output `E` (energy or other
    /// per-chain values the closure returns) at the point where the score was taken.
    /// `score: y [N, D] -> (E, psi [N, D])`.
    ///
    /// The step's Gaussian noise does not depend on the score, so it is drawn from `rng` on another rayon thread
    /// while `score` runs (same draws, same order: the result does not depend on the thread count).
    pub fn step<E: Send>(
        &self,
        y: &Tensor,
        v: &Tensor,
        rng: &mut Rng,
        score: impl FnOnce(&Tensor) -> Result<(E, Tensor)> + Send,
    ) -> Result<(Tensor, Tensor, E, Tensor)> {
        let noise = |rng: &mut Rng| -> Result<Tensor> {
            Ok(
                Tensor::from_vec(rng.normal_vec(y.elem_count()), y.shape(), y.device())?
                    .to_dtype(y.dtype())?,
            )
        };
        match *self {
            Sampler::Overdamped { delta } => {
                let ((e, psi), eps) = score_beside_noise(y, y, rng, score)?;
                let y1 = lincomb(&[(y, 1.0), (&psi, 0.5 * delta * delta), (&eps, delta)])?;
                Ok((y1, v.clone(), e, psi))
            }
            Sampler::Sachs { delta, gamma, u } => {
                let z1 = (-gamma * delta).exp();
                let z2 = (-2.0 * gamma * delta).exp();
                let y_half = lincomb(&[(y, 1.0), (v, 0.5 * delta)])?;
                let ((e, psi), eps) = score_beside_noise(&y_half, y, rng, score)?;
                // v1 = (v + kick) z1 + kick + noise, kick = psi u delta / 2
                let kick = 0.5 * u * delta;
                let v1 = lincomb(&[
                    (v, z1),
                    (&psi, kick * (1.0 + z1)),
                    (&eps, (u * (1.0 - z2)).sqrt()),
                ])?;
                let y1 = lincomb(&[(&y_half, 1.0), (&v1, 0.5 * delta)])?;
                Ok((y1, v1, e, psi))
            }
            Sampler::Cheng { delta, gamma, u } => {
                let c = cheng_coefficients(delta, gamma, u);
                let (scored, noises) = join(
                    || score(y),
                    || -> Result<(Tensor, Tensor)> { Ok((noise(rng)?, noise(rng)?)) },
                );
                let ((e, psi), (e1, e2)) = (scored?, noises?);
                let y1 = lincomb(&[(y, 1.0), (v, c.y_v), (&psi, c.y_psi), (&e1, c.l11)])?;
                let v1 = lincomb(&[(v, c.z1), (&psi, c.v_psi), (&e1, c.l21), (&e2, c.l22)])?;
                Ok((y1, v1, e, psi))
            }
        }
    }
}

/// Fewer normals than this are drawn as one job beside the score: for a batch of one 28x28 image, splitting them
/// cost more than it saved (0.040 -> 0.048 ms per step of a small MLP).
const SPLIT_NOISE_MIN: usize = 8192;

/// `(score(at), eps)` with `eps` standard normals of `like`'s shape, exactly those of `rng.normal_vec`, drawn in two
/// halves: this thread draws the first before scoring while another takes the second, so that the other thread
/// is free again for the score's second row block when this one starts the first (with the noise as one job beside
/// the score, the thread that drew it finished its row block late: 0.60 instead of 0.43 ms for a small MLP's score
/// at 64 chains).
#[allow(clippy::type_complexity)]
fn score_beside_noise<E: Send>(
    at: &Tensor,
    like: &Tensor,
    rng: &mut Rng,
    score: impl FnOnce(&Tensor) -> Result<(E, Tensor)> + Send,
) -> Result<((E, Tensor), Tensor)> {
    if like.elem_count() < SPLIT_NOISE_MIN {
        let (scored, eps) = join(
            || score(at),
            || -> Result<Tensor> {
                let v = rng.normal_vec(like.elem_count());
                Ok(Tensor::from_vec(v, like.shape(), like.device())?.to_dtype(like.dtype())?)
            },
        );
        return Ok((scored?, eps?));
    }
    let parts = rng.split_normals(like.elem_count());
    let ((first, scored), second) = join(
        || {
            let first = parts.first();
            (first, score(at))
        },
        || parts.second(),
    );
    let scored = scored?;
    let eps = Tensor::from_vec(rng.join_normals(first, second), like.shape(), like.device())?
        .to_dtype(like.dtype())?;
    Ok((scored, eps))
}

/// `(a(), b())`, on two rayon threads when there are several, else one after the other on this thread (handing
/// the pair to a one-thread pool and waiting for it cost 4-5% of a 1-thread MLP step).
fn join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    if rayon::current_num_threads() > 1 {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// Coefficients of Algorithm 2 for one `(delta, gamma, u)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChengCoefficients {
    /// `exp(-gamma delta)`
    pub z1: f64,
    /// Coefficient of v in the y update: `g (1 - z1)`.
    pub y_v: f64,
    /// Coefficient of psi in the y update: `u g (delta - g (1 - z1))`.
    pub y_psi: f64,
    /// Coefficient of psi in the v update: `u g (1 - z1)`.
    pub v_psi: f64,
    /// Cholesky factor of the (y, v) noise covariance (Lemma 1).
    pub l11: f64,
    /// Cholesky factor, off-diagonal.
    pub l21: f64,
    /// Cholesky factor, second diagonal.
    pub l22: f64,
    /// `Var_yy`
    pub var_yy: f64,
    /// `Var_vv`
    pub var_vv: f64,
    /// `Cov_yv`
    pub cov_yv: f64,
}

/// Algorithm 2's coefficients (REFERENCE.md §6), with `g = 1 / gamma`.
pub fn cheng_coefficients(delta: f64, gamma: f64, u: f64) -> ChengCoefficients {
    let g = 1.0 / gamma;
    let z1 = (-gamma * delta).exp();
    // 1 - exp(-x) computed as -expm1(-x) keeps precision for small gamma * delta.
    let one_m_z1 = -(-gamma * delta).exp_m1();
    let one_m_z2 = -(-2.0 * gamma * delta).exp_m1();
    let var_yy = u * g * (2.0 * delta - 4.0 * g * one_m_z1 + g * one_m_z2);
    let var_vv = u * one_m_z2;
    let cov_yv = u * g * (one_m_z1 * one_m_z1);
    let l11 = var_yy.max(0.0).sqrt();
    let l21 = if l11 > 0.0 { cov_yv / l11 } else { 0.0 };
    let l22 = (var_vv - l21 * l21).max(0.0).sqrt();
    ChengCoefficients {
        z1,
        y_v: g * one_m_z1,
        y_psi: u * g * (delta - g * one_m_z1),
        v_psi: u * g * one_m_z1,
        l11,
        l21,
        l22,
        var_yy,
        var_vv,
        cov_yv,
    }
}
