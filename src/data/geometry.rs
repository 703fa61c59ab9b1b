//! The geometry of the noise (REFERENCE.md §8): `chi = ||X_i - X_j|| / (2 sqrt(d))` over random pairs, and sigma_c.

use serde::Serialize;

use super::Dataset;
use crate::data::{Error, Result};
use crate::rng::Rng;

/// Summary of chi over sampled pairs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChiStats {
    /// Number of pairs sampled.
    pub pairs: usize,
    /// Smallest chi.
    pub min: f64,
    /// Median chi.
    pub median: f64,
    /// Mean chi.
    pub mean: f64,
    /// Largest chi; taken as sigma_c, the critical noise level (i-spheres of every pair overlap above it).
    pub max: f64,
}

impl ChiStats {
    /// sigma_c: the largest chi seen.
    pub fn sigma_c(&self) -> f64 {
        self.max
    }

    /// Where a noise level sits: "i-spheres mostly disjoint", "overlapping", "extreme noise", ...
    pub fn regime(&self, sigma: f64) -> &'static str {
        if sigma < self.min {
            "below every chi: i-spheres of all pairs are disjoint"
        } else if sigma < self.median {
            "below the median chi: most i-spheres are disjoint"
        } else if sigma <= self.max {
            "above the median chi: most i-spheres overlap"
        } else if sigma <= 2.0 * self.max {
            "above sigma_c: extreme noise"
        } else {
            "above 2 sigma_c: the whole dataset lies inside every i-sphere"
        }
    }
}

/// chi over `pairs` random pairs of distinct images drawn with `seed`.
pub fn chi_stats(data: &Dataset, pairs: usize, seed: u64) -> Result<ChiStats> {
    let n = data.len();
    if n < 2 {
        return Err(Error::Data("chi needs at least two images".into()));
    }
    if pairs == 0 {
        return Err(Error::Param("chi needs at least one pair".into()));
    }
    let d = data.dim();
    let scale = 1.0 / (2.0 * (d as f64).sqrt());
    let mut rng = Rng::new(seed);
    let mut chis = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let i = rng.below(n);
        let mut j = rng.below(n - 1);
        if j >= i {
            j += 1;
        }
        let (Some(a), Some(b)) = (data.image(i), data.image(j)) else {
            continue;
        };
        let dist2: f64 = a
            .iter()
            .zip(b)
            .map(|(&p, &q)| ((p - q) as f64).powi(2))
            .sum();
        chis.push(dist2.sqrt() * scale);
    }
    chis.sort_by(f64::total_cmp);
    let m = chis.len();
    let median = if m % 2 == 1 {
        chis[m / 2]
    } else {
        0.5 * (chis[m / 2 - 1] + chis[m / 2])
    };
    Ok(ChiStats {
        pairs: m,
        min: chis[0],
        median,
        mean: chis.iter().sum::<f64>() / m as f64,
        max: chis[m - 1],
    })
}
