//! The exact density of a noisy variable `y` in the plane, as a mixture of 2D Gaussians with full covariances.
//!
//! A [`GaussianMixture`] with `M * D = 2` is either a 2D clean mixture seen through one channel (`D = 2, M = 1`:
//! the 2D Lab) or a 1D clean mixture seen through two channels (`D = 1, M = 2`: the M-density of seed 002 Fig. 1).
//! In both, component `k` of `X` (mean `mu_k`, std `s_k`) makes `y` Gaussian with mean `mu_k[d(j)]` at coordinate
//! `j` and covariance `C_k[j][j'] = s_k^2 [d(j) = d(j')] + sigma_{m(j)}^2 [j = j']`, where `j = m D + d` (the
//! layout of [`GaussianMixture`]). So `p(y) = sum_k w_k N(y; mean_k, C_k)`, evaluated here with a one-pass
//! log-sum-exp; the score is `sum_k r_k(y) (-C_k^{-1} (y - mean_k))` and the jump is Tweedie's formula per channel,
//! `E[X_d | y] = y_{md} + sigma_m^2 d/dy_{md} log p(y)` (the same for every `m`; the mean over `m` is returned).
//! This is the same law as [`GaussianMixture::log_density`], which the tests check; this form is what the shader
//! evaluates per pixel.

use crate::mixture::GaussianMixture;

use super::LabError;

/// One Gaussian component of the density of `y` in `R^2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YComponent {
    /// `ln w_k - ln 2 pi - (1/2) ln det C_k`: the log density at the mean.
    pub log_coef: f64,
    /// Mean of `y`, `[2]`.
    pub mean: [f64; 2],
    /// Covariance `C_k` as `[c00, c01, c11]`.
    pub cov: [f64; 3],
    /// Precision `C_k^{-1}` as `[p00, p01, p11]`.
    pub prec: [f64; 3],
}

impl YComponent {
    /// The exponent `log_coef - (1/2) e^T P e` with `e = y - mean`, and `P e`.
    #[inline]
    fn term(&self, y: [f64; 2]) -> (f64, [f64; 2]) {
        let e = [y[0] - self.mean[0], y[1] - self.mean[1]];
        let pe = [
            self.prec[0] * e[0] + self.prec[1] * e[1],
            self.prec[1] * e[0] + self.prec[2] * e[1],
        ];
        (self.log_coef - 0.5 * (e[0] * pe[0] + e[1] * pe[1]), pe)
    }
}

/// The exact density, score and jump of a noisy variable in the plane; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Field2 {
    mixture: GaussianMixture,
    comps: Vec<YComponent>,
    /// `[2]`: noise variance `sigma_{m(j)}^2` of each coordinate of `y`.
    noise_var: [f64; 2],
    /// `[2]`: the clean coordinate `d(j)` each coordinate of `y` measures.
    coord: [usize; 2],
}

impl Field2 {
    /// The field of `mixture`, which must have `M * D = 2`.
    pub fn new(mixture: GaussianMixture) -> Result<Self, LabError> {
        let (d, m) = (mixture.dim(), mixture.measurements());
        if d * m != 2 {
            return Err(LabError::NotPlanar(d * m));
        }
        let sig = mixture.sigmas();
        let coord = [0, 1 % d];
        let chan = [0, 1 / d];
        let noise_var = [sig[chan[0]].powi(2), sig[chan[1]].powi(2)];
        let mut comps = Vec::with_capacity(mixture.num_components());
        for ((&w, &s), mu) in mixture
            .weights()
            .iter()
            .zip(mixture.stds())
            .zip(mixture.means().chunks_exact(d))
        {
            let s2 = s * s;
            let c00 = s2 + noise_var[0];
            let c11 = s2 + noise_var[1];
            let c01 = if coord[0] == coord[1] { s2 } else { 0.0 };
            let det = c00 * c11 - c01 * c01;
            if !(det > 0.0 && det.is_finite()) {
                return Err(LabError::Param {
                    name: "sigma",
                    reason: format!("the covariance of y has determinant {det}"),
                });
            }
            comps.push(YComponent {
                log_coef: w.ln() - (2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln(),
                mean: [mu[coord[0]], mu[coord[1]]],
                cov: [c00, c01, c11],
                prec: [c11 / det, -c01 / det, c00 / det],
            });
        }
        Ok(Self {
            mixture,
            comps,
            noise_var,
            coord,
        })
    }

    /// The clean mixture and its noise channels.
    pub fn mixture(&self) -> &GaussianMixture {
        &self.mixture
    }

    /// The components of the density of `y`, `[K]`.
    pub fn components(&self) -> &[YComponent] {
        &self.comps
    }

    /// Noise level of each measurement channel, `[M]`.
    pub fn sigmas(&self) -> &[f64] {
        self.mixture.sigmas()
    }

    /// `(log p(y), score(y))` for `y`: `[2]`. One pass over the components.
    pub fn log_density_and_score(&self, y: [f64; 2]) -> (f64, [f64; 2]) {
        let mut max = f64::NEG_INFINITY;
        let mut sum = 0.0;
        let mut g = [0.0; 2];
        for c in &self.comps {
            let (t, pe) = c.term(y);
            if t > max {
                // Rescale what was accumulated to the new maximum.
                let r = (max - t).exp();
                sum *= r;
                g[0] *= r;
                g[1] *= r;
                max = t;
            }
            let e = (t - max).exp();
            sum += e;
            g[0] -= e * pe[0];
            g[1] -= e * pe[1];
        }
        // Also catches a NaN sum.
        if sum.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return (f64::NEG_INFINITY, [f64::NAN; 2]);
        }
        (max + sum.ln(), [g[0] / sum, g[1] / sum])
    }

    /// `log p(y)` for `y`: `[2]`.
    pub fn log_density(&self, y: [f64; 2]) -> f64 {
        let mut max = f64::NEG_INFINITY;
        let mut sum = 0.0;
        for c in &self.comps {
            let (t, _) = c.term(y);
            if t > max {
                sum *= (max - t).exp();
                max = t;
            }
            sum += (t - max).exp();
        }
        if sum > 0.0 {
            max + sum.ln()
        } else {
            f64::NEG_INFINITY
        }
    }

    /// `p(y)` for `y`: `[2]`.
    pub fn density(&self, y: [f64; 2]) -> f64 {
        self.log_density(y).exp()
    }

    /// `grad_y log p(y)`: `[2]`.
    pub fn score(&self, y: [f64; 2]) -> [f64; 2] {
        self.log_density_and_score(y).1
    }

    /// The jump `E[X | y]` written in the coordinates of `y`: entry `j` is `E[X_{d(j)} | y]`. For `M = 1` this is
    /// `x_hat(y)` itself; for `D = 1, M = 2` it is `(x_hat, x_hat)`, the point on the diagonal the jump lands on.
    pub fn jump(&self, y: [f64; 2]) -> [f64; 2] {
        let psi = self.score(y);
        self.jump_from_score(y, psi)
    }

    /// [`Self::jump`] from a score already computed at `y`.
    pub fn jump_from_score(&self, y: [f64; 2], psi: [f64; 2]) -> [f64; 2] {
        let est = [
            y[0] + self.noise_var[0] * psi[0],
            y[1] + self.noise_var[1] * psi[1],
        ];
        if self.coord[0] == self.coord[1] {
            // Two channels measure the same clean coordinate: their (equal) estimates, averaged.
            let x = 0.5 * (est[0] + est[1]);
            [x, x]
        } else {
            est
        }
    }

    /// The exact marginal density of coordinate `axis` (0 or 1) of `y` at `t`.
    pub fn marginal_density(&self, axis: usize, t: f64) -> f64 {
        let a = axis.min(1);
        self.comps
            .iter()
            .map(|c| {
                let var = if a == 0 { c.cov[0] } else { c.cov[2] };
                let e = t - c.mean[a];
                // w_k = exp(log_coef) * 2 pi sqrt(det C_k).
                let det = c.cov[0] * c.cov[2] - c.cov[1] * c.cov[1];
                let w = (c.log_coef + (2.0 * std::f64::consts::PI).ln() + 0.5 * det.ln()).exp();
                w * (-0.5 * e * e / var).exp() / (2.0 * std::f64::consts::PI * var).sqrt()
            })
            .sum()
    }

    /// The largest density found at the component means and on a 65 x 65 grid over [`Self::extent`]: the top of
    /// the colour scale (the true maximum can only be slightly larger).
    pub fn peak_density(&self) -> f64 {
        let mut best = self
            .comps
            .iter()
            .map(|c| self.log_density(c.mean))
            .fold(f64::NEG_INFINITY, f64::max);
        let [x0, x1, y0, y1] = self.extent(2.0);
        let n = 64;
        for i in 0..=n {
            for j in 0..=n {
                let y = [
                    x0 + (x1 - x0) * i as f64 / n as f64,
                    y0 + (y1 - y0) * j as f64 / n as f64,
                ];
                best = best.max(self.log_density(y));
            }
        }
        best.exp()
    }

    /// The bounding box `[xmin, xmax, ymin, ymax]` of the component means widened by `k` standard deviations of
    /// each component.
    pub fn extent(&self, k: f64) -> [f64; 4] {
        let mut b = [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for c in &self.comps {
            let (sx, sy) = (c.cov[0].sqrt() * k, c.cov[2].sqrt() * k);
            b[0] = b[0].min(c.mean[0] - sx);
            b[1] = b[1].max(c.mean[0] + sx);
            b[2] = b[2].min(c.mean[1] - sy);
            b[3] = b[3].max(c.mean[1] + sy);
        }
        b
    }

    /// Exact draws of `y`: `n` points.
    pub fn sample(&self, rng: &mut crate::sampling::Rng, n: usize) -> Vec<[f64; 2]> {
        self.mixture
            .sample_y(rng, n)
            .chunks_exact(2)
            .map(|r| [r[0], r[1]])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    fn fields() -> Vec<Field2> {
        let m2 = GaussianMixture::new(
            vec![0.3, 0.5, 0.2],
            vec![vec![-1.5], vec![0.5], vec![2.0]],
            vec![0.3, 0.0, 0.25],
            vec![0.6, 0.9],
        )
        .expect("m2");
        vec![
            Field2::new(GaussianMixture::two_gaussians()).expect("two"),
            Field2::new(
                GaussianMixture::ring(8, 3.0, 0.2)
                    .and_then(|m| m.with_sigma(0.4))
                    .expect("ring"),
            )
            .expect("ring field"),
            Field2::new(m2).expect("m-density"),
        ]
    }

    #[test]
    fn density_score_and_jump_equal_the_mixture_closed_forms() {
        for f in fields() {
            for y in [[0.1, -0.3], [2.5, 1.0], [-4.0, 3.0], [0.0, 0.0]] {
                let lp = f.mixture().log_density(&y).expect("lp");
                assert!(close(f.log_density(y), lp, 1e-12), "{y:?}");
                let (lp2, s) = f.log_density_and_score(y);
                assert!(close(lp2, lp, 1e-12));
                let s_ref = f.mixture().score(&y).expect("score");
                assert!(close(s[0], s_ref[0], 1e-10) && close(s[1], s_ref[1], 1e-10));
                let x = f.mixture().posterior_mean(&y).expect("jump");
                let j = f.jump(y);
                assert!(close(j[0], x[0], 1e-10), "{j:?} vs {x:?}");
                assert!(close(j[1], x[x.len() - 1], 1e-10), "{j:?} vs {x:?}");
            }
        }
    }

    #[test]
    fn marginal_integrates_the_joint_density() {
        for f in fields() {
            for t in [-1.0, 0.4, 2.2] {
                // Trapezoid over the other coordinate on a wide range.
                let (lo, hi, n) = (-15.0, 15.0, 6000);
                let h = (hi - lo) / n as f64;
                let s: f64 = (0..=n)
                    .map(|i| {
                        let u = lo + h * i as f64;
                        let w = if i == 0 || i == n { 0.5 } else { 1.0 };
                        w * f.density([t, u])
                    })
                    .sum::<f64>()
                    * h;
                assert!(close(f.marginal_density(0, t), s, 1e-6));
            }
        }
    }

    #[test]
    fn a_mixture_not_in_the_plane_is_refused() {
        let m = GaussianMixture::single_gaussian(vec![0.0; 3], 1.0, vec![1.0]).expect("3d");
        assert_eq!(Field2::new(m), Err(LabError::NotPlanar(3)));
    }
}
