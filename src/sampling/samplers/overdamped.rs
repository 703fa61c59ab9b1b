//! Overdamped Langevin (ULA) in the project convention `y <- y + (delta^2 / 2) psi + delta eps` (seed 002 eq. 42,
//! REFERENCE.md §6): no velocity, step `delta` only.

use candle_core::Tensor;

use super::{
    Mat2, Params, Particles, Sampler, SamplerDef, SamplerKind, Score, lincomb, positive,
    score_beside_noise,
};
use crate::rng::Rng;
use crate::sampling::Result;

/// Overdamped Langevin (ULA).
#[derive(Clone, Copy, Debug, Default)]
pub struct Overdamped;

impl Sampler {
    /// Overdamped Langevin with step `delta` (not validated; see [`Sampler::validate`]).
    pub fn overdamped(delta: f64) -> Sampler {
        Sampler::new(SamplerKind::new(&Overdamped), delta, f64::NAN, f64::NAN)
    }
}

impl SamplerDef for Overdamped {
    fn name(&self) -> &'static str {
        "overdamped"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["ula"]
    }

    fn label(&self) -> &'static str {
        "overdamped"
    }

    fn help(&self) -> &'static str {
        "overdamped Langevin (ULA), y <- y + (delta^2 / 2) psi + delta eps; delta only"
    }

    fn underdamped(&self) -> bool {
        false
    }

    fn validate(&self, p: Params) -> Result<()> {
        positive("delta", p.delta)
    }

    fn step(
        &self,
        p: Params,
        y: &Tensor,
        v: &Tensor,
        rng: &mut Rng,
        score: Score<'_>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let delta = p.delta;
        let (psi, eps) = score_beside_noise(y, y, rng, score)?;
        let y1 = lincomb(&[(y, 1.0), (&psi, 0.5 * delta * delta), (&eps, delta)])?;
        Ok((y1, v.clone(), psi))
    }

    fn step_particles(
        &self,
        p: Params,
        particles: Particles<'_>,
        rng: &mut Rng,
        score: &dyn Fn([f64; 2]) -> [f64; 2],
    ) {
        let delta = p.delta;
        let h = 0.5 * delta * delta;
        for (y, &alive) in particles.y.iter_mut().zip(particles.alive) {
            if !alive {
                continue;
            }
            let psi = score(*y);
            for (yc, s) in y.iter_mut().zip(psi) {
                *yc += h * s + delta * rng.normal();
            }
        }
    }

    fn gaussian_transition(&self, p: Params, k: f64) -> Option<(Mat2, Mat2)> {
        let delta = p.delta;
        // y' = y + (delta^2 / 2)(-k y) + delta eps.
        Some((
            [[1.0 - 0.5 * delta * delta * k, 0.0], [0.0, 0.0]],
            [[delta * delta, 0.0], [0.0, 0.0]],
        ))
    }
}
