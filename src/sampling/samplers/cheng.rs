//! Algorithm 2 of REFERENCE.md §6 (Cheng et al. 2018): underdamped Langevin whose step is the exact Gaussian
//! transition of the linear SDE with the score frozen at the start of the step (coefficients in
//! [`cheng_coefficients`]).

use candle_core::Tensor;

use super::{
    Mat2, Params, Particles, Sampler, SamplerDef, SamplerKind, Score, join, lincomb, normals_like,
    validate_underdamped,
};
use crate::rng::Rng;
use crate::sampling::Result;

/// Algorithm 2 (Cheng et al.).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cheng;

impl Sampler {
    /// Algorithm 2 with step `delta`, friction rate `gamma` and inverse mass `u` (not validated; see
    /// [`Sampler::validate`]).
    pub fn cheng(delta: f64, gamma: f64, u: f64) -> Sampler {
        Sampler::new(SamplerKind::new(&Cheng), delta, gamma, u)
    }
}

impl SamplerDef for Cheng {
    fn name(&self) -> &'static str {
        "cheng"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["alg2"]
    }

    fn label(&self) -> &'static str {
        "cheng (Algorithm 2)"
    }

    fn help(&self) -> &'static str {
        "Algorithm 2 (Cheng et al. 2018), underdamped, exact Gaussian step with the score frozen; delta, gamma, u"
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
        let c = cheng_coefficients(p.delta, p.gamma, p.u);
        let (scored, noises) = join(
            || score(y),
            || -> Result<(Tensor, Tensor)> { Ok((normals_like(rng, y)?, normals_like(rng, y)?)) },
        );
        let (psi, (e1, e2)) = (scored?, noises?);
        let y1 = lincomb(&[(y, 1.0), (v, c.y_v), (&psi, c.y_psi), (&e1, c.l11)])?;
        let v1 = lincomb(&[(v, c.z1), (&psi, c.v_psi), (&e1, c.l21), (&e2, c.l22)])?;
        Ok((y1, v1, psi))
    }

    fn step_particles(
        &self,
        p: Params,
        particles: Particles<'_>,
        rng: &mut Rng,
        score: &dyn Fn([f64; 2]) -> [f64; 2],
    ) {
        let k = cheng_coefficients(p.delta, p.gamma, p.u);
        let Particles { y, v, alive } = particles;
        for ((y, v), &alive) in y.iter_mut().zip(v.iter_mut()).zip(alive) {
            if !alive {
                continue;
            }
            let psi = score(*y);
            let e1 = [rng.normal(), rng.normal()];
            let e2 = [rng.normal(), rng.normal()];
            for d in 0..2 {
                // The y update uses the old v (REFERENCE.md §6, Algorithm 2).
                let ym = y[d] + k.y_v * v[d] + k.y_psi * psi[d];
                let vm = k.z1 * v[d] + k.v_psi * psi[d];
                y[d] = ym + k.l11 * e1[d];
                v[d] = vm + k.l21 * e1[d] + k.l22 * e2[d];
            }
        }
    }

    fn gaussian_transition(&self, p: Params, k: f64) -> Option<(Mat2, Mat2)> {
        let c = cheng_coefficients(p.delta, p.gamma, p.u);
        Some((
            [[1.0 - c.y_psi * k, c.y_v], [-c.v_psi * k, c.z1]],
            [[c.var_yy, c.cov_yv], [c.cov_yv, c.var_vv]],
        ))
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
