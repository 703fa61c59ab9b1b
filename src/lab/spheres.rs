//! i-spheres and the overlap rule of REFERENCE.md §8, for data points in `R^d`.
//!
//! Noise `N(0, sigma^2 I_d)` concentrates on the sphere of radius `sigma sqrt(d)` around each data point `X_i` (its
//! i-sphere). With `chi_ii' = ||X_i - X_i'|| / (2 sqrt(d))`, two i-spheres overlap when `sigma > chi_ii'`;
//! `sigma_c = max chi` marks extreme noise (every pair overlaps) and beyond `2 sigma_c` every data point lies inside
//! every i-sphere.

/// `chi = ||a - b|| / (2 sqrt(d))` for two points of the same dimension `d = a.len()`.
pub fn chi(a: &[f64], b: &[f64]) -> f64 {
    let d = a.len().max(1) as f64;
    let dist = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    dist / (2.0 * d.sqrt())
}

/// The radius `sigma sqrt(d)` of an i-sphere in dimension `d`.
pub fn sphere_radius(sigma: f64, d: usize) -> f64 {
    sigma * (d as f64).sqrt()
}

/// Where sigma stands on the chi scale of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// Fewer than two points: nothing to compare.
    Single,
    /// `sigma <= min chi`: no two i-spheres overlap.
    Separate,
    /// Some pairs overlap.
    Partial,
    /// `sigma_c < sigma <= 2 sigma_c`: every pair overlaps (extreme noise).
    Extreme,
    /// `sigma > 2 sigma_c`: every data point lies inside every i-sphere.
    Inside,
}

/// The overlap rule applied to every pair of a data set at one sigma.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlap {
    /// Number of pairs `n (n - 1) / 2`.
    pub pairs: usize,
    /// The overlapping pairs `(i, i')`, `i < i'`.
    pub overlapping: Vec<(usize, usize)>,
    /// Smallest chi over the pairs (infinite for fewer than two points).
    pub chi_min: f64,
    /// `sigma_c`, the largest chi over the pairs (0 for fewer than two points).
    pub sigma_c: f64,
    /// The regime sigma is in.
    pub regime: Regime,
}

impl Overlap {
    /// One sentence for the UI.
    pub fn verdict(&self) -> String {
        let n = self.overlapping.len();
        match self.regime {
            Regime::Single => "one data point: no pair to compare".into(),
            Regime::Separate => format!("no i-spheres overlap (0 of {} pairs)", self.pairs),
            Regime::Partial => format!("{n} of {} pairs of i-spheres overlap", self.pairs),
            Regime::Extreme => format!(
                "all {} pairs overlap: sigma > sigma_c, extreme noise",
                self.pairs
            ),
            Regime::Inside => format!(
                "all {} pairs overlap and sigma > 2 sigma_c: every point lies inside every i-sphere",
                self.pairs
            ),
        }
    }
}

/// Applies the overlap rule to `points` (`[n][d]`, all the same length) at noise level `sigma`.
pub fn overlap(points: &[Vec<f64>], sigma: f64) -> Overlap {
    let n = points.len();
    let mut overlapping = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, 0.0_f64);
    for i in 0..n {
        for j in i + 1..n {
            let c = chi(&points[i], &points[j]);
            lo = lo.min(c);
            hi = hi.max(c);
            if sigma > c {
                overlapping.push((i, j));
            }
        }
    }
    let pairs = n * n.saturating_sub(1) / 2;
    let regime = if pairs == 0 {
        Regime::Single
    } else if overlapping.is_empty() {
        Regime::Separate
    } else if overlapping.len() < pairs {
        Regime::Partial
    } else if sigma > 2.0 * hi {
        Regime::Inside
    } else {
        Regime::Extreme
    };
    Overlap {
        pairs,
        overlapping,
        chi_min: lo,
        sigma_c: hi,
        regime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_follows_sigma_along_the_chi_scale() {
        // Three points on a line in 2D: distances 2, 4, 6 -> chi = d / (2 sqrt 2).
        let pts = vec![vec![0.0, 0.0], vec![2.0, 0.0], vec![6.0, 0.0]];
        let c = |d: f64| d / (2.0 * 2f64.sqrt());
        assert_eq!(overlap(&pts, 0.5 * c(2.0)).regime, Regime::Separate);
        let o = overlap(&pts, 1.01 * c(2.0));
        assert_eq!(
            (o.regime, o.overlapping.clone()),
            (Regime::Partial, vec![(0, 1)])
        );
        assert!((o.sigma_c - c(6.0)).abs() < 1e-12);
        assert_eq!(overlap(&pts, 1.01 * c(6.0)).regime, Regime::Extreme);
        assert_eq!(overlap(&pts, 2.01 * c(6.0)).regime, Regime::Inside);
        assert_eq!(overlap(&pts[..1], 1.0).regime, Regime::Single);
        // Circles of radius sigma sqrt(d) touch exactly when sigma = chi.
        let s = c(2.0);
        assert!((2.0 * sphere_radius(s, 2) - 2.0).abs() < 1e-12);
    }
}
