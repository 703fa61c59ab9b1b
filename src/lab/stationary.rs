//! The exact stationary law of each discretised sampler on a Gaussian target: what the chain really samples, as
//! opposed to what it aims at. On the score `psi(y) = -k (y - m)` (target `N(m, 1/k)` per coordinate) every update of
//! REFERENCE.md §6 is affine in `(y, v)` plus Gaussian noise, `s' = A s + b + xi`, `xi ~ N(0, Q)`, so the stationary
//! law is Gaussian with mean `(m, 0)` and the covariance `S = A S A^T + Q` (a discrete Lyapunov equation).
//! Each sampler gives its `(A, Q)` in its own file (`SamplerDef::gaussian_transition` under `sampling/samplers`),
//! written from the algorithm's text independently of its particle code, so that tests can hold one against the
//! other.

use crate::sampling::langevin::Sampler;
pub use crate::sampling::samplers::Mat2;
use crate::sampling::samplers::mat2_mul as mul;

fn transpose(a: Mat2) -> Mat2 {
    [[a[0][0], a[1][0]], [a[0][1], a[1][1]]]
}

fn add(a: Mat2, b: Mat2) -> Mat2 {
    [
        [a[0][0] + b[0][0], a[0][1] + b[0][1]],
        [a[1][0] + b[1][0], a[1][1] + b[1][1]],
    ]
}

/// Largest modulus of the eigenvalues of `a`.
pub fn spectral_radius(a: Mat2) -> f64 {
    let tr = a[0][0] + a[1][1];
    let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    let disc = 0.25 * tr * tr - det;
    if disc >= 0.0 {
        let r = disc.sqrt();
        (0.5 * tr + r).abs().max((0.5 * tr - r).abs())
    } else {
        det.abs().sqrt()
    }
}

/// One step of `sampler` on the score `-k y` as `(A, Q)` acting on `(y, v)` (for the overdamped chain `v` is not
/// part of the state and its row is zero); `None` for a sampler without a closed-form law.
pub fn transition(sampler: Sampler, k: f64) -> Option<(Mat2, Mat2)> {
    sampler.kind().gaussian_transition(sampler.params(), k)
}

/// The stationary covariance of `(y, v)` for one coordinate of `sampler` on a Gaussian target of precision `k`
/// (variance `1 / k`), or `None` when the discretised chain is unstable (spectral radius of `A` >= 1: the step is
/// too large and the particles fly off) or the sampler has no closed-form law ([`transition`]).
pub fn gaussian_stationary(sampler: Sampler, k: f64) -> Option<Mat2> {
    let (a, q) = transition(sampler, k)?;
    let rho = spectral_radius(a);
    if rho.is_nan() || rho >= 1.0 {
        return None;
    }
    // Doubling: after n rounds s = sum_{i < 2^n} A^i Q (A^i)^T.
    let mut s = q;
    let mut ap = a;
    for _ in 0..64 {
        let next = add(s, mul(mul(ap, s), transpose(ap)));
        let done = (next[0][0] - s[0][0]).abs() <= 1e-15 * next[0][0].abs();
        s = next;
        ap = mul(ap, ap);
        if done {
            break;
        }
    }
    s[0][0].is_finite().then_some(s)
}

/// The stationary variance of `y` (one coordinate) of `sampler` on a Gaussian target of variance `1 / k`.
pub fn gaussian_stationary_variance(sampler: Sampler, k: f64) -> Option<f64> {
    gaussian_stationary(sampler, k).map(|s| s[0][0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdamped_bias_has_its_closed_form() {
        for delta in [0.1, 0.5, 1.0, 1.9] {
            let v = gaussian_stationary_variance(Sampler::overdamped(delta), 1.0).expect("stable");
            let exact = 1.0 / (1.0 - delta * delta / 4.0);
            assert!((v - exact).abs() < 1e-9 * exact, "{delta}: {v} vs {exact}");
        }
        assert_eq!(
            gaussian_stationary_variance(Sampler::overdamped(2.0), 1.0),
            None
        );
    }

    #[test]
    fn sachs_keeps_the_gaussian_variance_and_cheng_tends_to_it() {
        for delta in [0.1, 0.5, 1.0] {
            let s =
                gaussian_stationary_variance(Sampler::sachs(delta, 0.7, 1.0), 1.0).expect("stable");
            assert!((s - 1.0).abs() < 1e-9, "{s}");
        }
        let small =
            gaussian_stationary_variance(Sampler::cheng(0.01, 1.0, 1.0), 1.0).expect("stable");
        assert!((small - 1.0).abs() < 0.01, "{small}");
    }
}
