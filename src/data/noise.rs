//! Corruptions used to probe denoisers: Gaussian(sigma), Laplace(alpha), salt-and-pepper(p).

use serde::{Deserialize, Serialize};

use crate::data::{Error, Result};
use crate::rng::Rng;

/// A noise kind and its level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Noise {
    /// Additive `N(0, sigma^2)`.
    Gaussian {
        /// Standard deviation.
        sigma: f64,
    },
    /// Additive Laplace with scale alpha (standard deviation `sqrt(2) alpha`).
    Laplace {
        /// Scale.
        alpha: f64,
    },
    /// Each pixel independently set to 0 or 1 (half each) with probability p.
    SaltPepper {
        /// Fraction of pixels replaced.
        p: f64,
    },
}

impl Noise {
    /// Parses `gaussian:1.0`, `laplace:0.4`, `salt-pepper:0.2`.
    pub fn parse(s: &str) -> Result<Self> {
        let (kind, level) = s.split_once(':').ok_or_else(|| {
            Error::Param(format!(
                "noise '{s}' should look like gaussian:1.0, laplace:0.4 or salt-pepper:0.2"
            ))
        })?;
        let v: f64 = level
            .trim()
            .parse()
            .map_err(|_| Error::Param(format!("noise level '{level}' is not a number")))?;
        let noise = match kind.trim() {
            "gaussian" | "normal" => Noise::Gaussian { sigma: v },
            "laplace" => Noise::Laplace { alpha: v },
            "salt-pepper" | "salt-and-pepper" | "sp" => Noise::SaltPepper { p: v },
            other => {
                return Err(Error::Param(format!(
                    "unknown noise kind '{other}' (gaussian, laplace, salt-pepper)"
                )));
            }
        };
        noise.validate()?;
        Ok(noise)
    }

    /// Checks the level is finite and in range.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Noise::Gaussian { sigma: v } | Noise::Laplace { alpha: v } => v.is_finite() && v >= 0.0,
            Noise::SaltPepper { p } => (0.0..=1.0).contains(&p),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Param(format!("bad noise level in {self}")))
        }
    }

    /// Corrupts `x` (any length) with draws from `rng`.
    pub fn apply(&self, x: &[f32], rng: &mut Rng) -> Vec<f32> {
        match *self {
            Noise::Gaussian { sigma } => x
                .iter()
                .map(|&v| (v as f64 + sigma * rng.normal()) as f32)
                .collect(),
            Noise::Laplace { alpha } => x
                .iter()
                .map(|&v| (v as f64 + rng.laplace(alpha)) as f32)
                .collect(),
            Noise::SaltPepper { p } => x
                .iter()
                .map(|&v| {
                    if rng.uniform() < p {
                        if rng.uniform() < 0.5 { 0.0 } else { 1.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Noise::Gaussian { sigma } => write!(f, "gaussian:{sigma}"),
            Noise::Laplace { alpha } => write!(f, "laplace:{alpha}"),
            Noise::SaltPepper { p } => write!(f, "salt-pepper:{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_levels() {
        assert_eq!(
            Noise::parse("gaussian:1.0").ok(),
            Some(Noise::Gaussian { sigma: 1.0 })
        );
        assert!(Noise::parse("laplace:-1").is_err());
        assert!(Noise::parse("salt-pepper:1.5").is_err());
        assert!(Noise::parse("pink:0.1").is_err());
        assert!(Noise::parse("gaussian").is_err());
        assert!(Noise::parse("gaussian:nan").is_err());
    }

    #[test]
    fn salt_pepper_fraction() {
        // 100k pixels at p = 0.2: the changed fraction of mid-grey pixels is Binomial(n, 0.2)/n, sd 0.00126.
        let x = vec![0.5f32; 100_000];
        let y = Noise::SaltPepper { p: 0.2 }.apply(&x, &mut Rng::new(4));
        let changed = y.iter().filter(|&&v| v != 0.5).count() as f64 / x.len() as f64;
        assert!((changed - 0.2).abs() < 5.0 * 0.00126, "{changed}");
        assert!(y.iter().all(|&v| v == 0.0 || v == 0.5 || v == 1.0));
    }

    #[test]
    fn gaussian_residual_variance() {
        let x = vec![0.3f32; 100_000];
        let y = Noise::Gaussian { sigma: 0.7 }.apply(&x, &mut Rng::new(5));
        let var = y.iter().map(|&v| ((v - 0.3) as f64).powi(2)).sum::<f64>() / x.len() as f64;
        // sd of the variance estimate: sigma^2 sqrt(2/n) = 0.00219
        assert!((var - 0.49).abs() < 5.0 * 0.00219, "{var}");
    }
}
