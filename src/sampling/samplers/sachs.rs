//! Algorithm 1 of REFERENCE.md §6 (Sachs et al. 2017): underdamped Langevin with one score call per step, taken at
//! the half-drifted point: `y_half = y + (delta / 2) v`, `v' = z1 (v + kick) + kick + sqrt(u (1 - z2)) eps` with
//! `kick = (u delta / 2) psi(y_half)`, `y' = y_half + (delta / 2) v'`, where `z1 = exp(-gamma delta)` and
//! `z2 = z1^2`.

use candle_core::Tensor;

use super::{
    Mat2, Params, Particles, Sampler, SamplerDef, SamplerKind, Score, lincomb, mat2_mul,
    score_beside_noise, validate_underdamped,
};
use crate::rng::Rng;
use crate::sampling::Result;

/// Algorithm 1 (Sachs et al.).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sachs;

impl Sampler {
    /// Algorithm 1 with step `delta`, friction rate `gamma` and inverse mass `u` (not validated; see
    /// [`Sampler::validate`]).
    pub fn sachs(delta: f64, gamma: f64, u: f64) -> Sampler {
        Sampler::new(SamplerKind::new(&Sachs), delta, gamma, u)
    }
}

impl SamplerDef for Sachs {
    fn name(&self) -> &'static str {
        "sachs"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["alg1"]
    }

    fn label(&self) -> &'static str {
        "sachs (Algorithm 1)"
    }

    fn help(&self) -> &'static str {
        "Algorithm 1 (Sachs et al. 2017), underdamped, one score per step; delta, gamma, u"
    }

    fn underdamped(&self) -> bool {
        true
    }

    fn validate(&self, p: Params) -> Result<()> {
        validate_underdamped(p)
    }

    fn step(
        &self,
        p: Params,
        y: &Tensor,
        v: &Tensor,
        rng: &mut Rng,
        score: Score<'_>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let Params { delta, gamma, u } = p;
        let z1 = (-gamma * delta).exp();
        let z2 = (-2.0 * gamma * delta).exp();
        let y_half = lincomb(&[(y, 1.0), (v, 0.5 * delta)])?;
        let (psi, eps) = score_beside_noise(&y_half, y, rng, score)?;
        // v1 = (v + kick) z1 + kick + noise, kick = psi u delta / 2
        let kick = 0.5 * u * delta;
        let v1 = lincomb(&[
            (v, z1),
            (&psi, kick * (1.0 + z1)),
            (&eps, (u * (1.0 - z2)).sqrt()),
        ])?;
        let y1 = lincomb(&[(&y_half, 1.0), (&v1, 0.5 * delta)])?;
        Ok((y1, v1, psi))
    }

    fn step_particles(
        &self,
        p: Params,
        particles: Particles<'_>,
        rng: &mut Rng,
        score: &dyn Fn([f64; 2]) -> [f64; 2],
    ) {
        let Params { delta, gamma, u } = p;
        let z1 = (-gamma * delta).exp();
        let c = (u * -(-2.0 * gamma * delta).exp_m1()).sqrt();
        let Particles { y, v, alive } = particles;
        for ((y, v), &alive) in y.iter_mut().zip(v.iter_mut()).zip(alive) {
            if !alive {
                continue;
            }
            for d in 0..2 {
                y[d] += 0.5 * delta * v[d];
            }
            let psi = score(*y);
            for d in 0..2 {
                let kick = 0.5 * u * delta * psi[d];
                v[d] = z1 * (v[d] + kick) + kick + c * rng.normal();
                y[d] += 0.5 * delta * v[d];
            }
        }
    }

    fn gaussian_transition(&self, p: Params, k: f64) -> Option<(Mat2, Mat2)> {
        let Params { delta, gamma, u } = p;
        let z1 = (-gamma * delta).exp();
        let z2 = (-2.0 * gamma * delta).exp();
        let c = (u * (1.0 - z2)).sqrt();
        // y1 = y + delta v / 2; psi = -k y1; v' = z1 (v + u delta psi / 2) + u delta psi / 2 + c eps;
        // y' = y1 + delta v' / 2.
        let half = [[1.0, 0.5 * delta], [0.0, 1.0]];
        let kick = [[1.0, 0.0], [-(1.0 + z1) * 0.5 * u * delta * k, z1]];
        let a = mat2_mul(half, mat2_mul(kick, half));
        let b = [0.5 * delta * c, c];
        Some((a, [[b[0] * b[0], b[0] * b[1]], [b[1] * b[0], b[1] * b[1]]]))
    }
}
