//! The editable clean mixture of the 2D Lab: isotropic Gaussian components in the plane that can be added, moved
//! and removed, with the teaching presets of [`GaussianMixture`], and the 1D mixture of the M-density view.

use serde::{Deserialize, Serialize};

use crate::mixture::{GaussianMixture, MixtureError};

use super::LabError;

/// The most components a scene may hold (the shader's uniform array has this many slots).
pub const MAX_COMPONENTS: usize = 256;

/// The teaching presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabPreset {
    /// Two equal Gaussians at `(-2, 0)` and `(2, 0)`, std 0.5.
    TwoGaussians,
    /// Eight equal Gaussians on a circle of radius 3, std 0.3.
    Ring,
    /// A 4 x 4 grid of equal Gaussians 2 apart, std 0.25.
    Grid,
}

impl LabPreset {
    /// All presets, in button order.
    pub const ALL: [LabPreset; 3] = [LabPreset::TwoGaussians, LabPreset::Ring, LabPreset::Grid];

    /// Name on the button.
    pub fn label(self) -> &'static str {
        match self {
            LabPreset::TwoGaussians => "two Gaussians",
            LabPreset::Ring => "ring of eight",
            LabPreset::Grid => "grid 4x4",
        }
    }
}

/// A clean 2D mixture `X ~ sum_k w_k N(mu_k, s_k^2 I_2)` the user edits; `[K]` entries each, `K <= 256`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scene {
    /// Component means `mu_k`, `[K][2]`.
    pub means: Vec<[f64; 2]>,
    /// Component stds `s_k >= 0`, `[K]`.
    pub stds: Vec<f64>,
    /// Unnormalised weights `> 0`, `[K]`.
    pub weights: Vec<f64>,
}

impl Default for Scene {
    fn default() -> Self {
        Self::preset(LabPreset::TwoGaussians)
    }
}

impl Scene {
    /// The scene of a preset (taken from the [`GaussianMixture`] presets).
    pub fn preset(p: LabPreset) -> Self {
        let m = match p {
            LabPreset::TwoGaussians => Ok(GaussianMixture::two_gaussians()),
            LabPreset::Ring => GaussianMixture::ring(8, 3.0, 0.3),
            LabPreset::Grid => GaussianMixture::grid(4, 2.0, 0.25),
        };
        // The presets' parameters are constants that always build; fall back to one component regardless.
        match m {
            Ok(m) => Self::from_mixture(&m),
            Err(_) => Self {
                means: vec![[0.0, 0.0]],
                stds: vec![0.5],
                weights: vec![1.0],
            },
        }
    }

    /// The scene holding a 2D mixture's components (its noise levels are dropped); other dimensions give an empty
    /// scene.
    pub fn from_mixture(m: &GaussianMixture) -> Self {
        if m.dim() != 2 {
            return Self {
                means: Vec::new(),
                stds: Vec::new(),
                weights: Vec::new(),
            };
        }
        Self {
            means: m.means().chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
            stds: m.stds().to_vec(),
            weights: m.weights().to_vec(),
        }
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.means.len()
    }

    /// Whether the scene has no component.
    pub fn is_empty(&self) -> bool {
        self.means.is_empty()
    }

    /// The mixture seen through one channel of noise level `sigma`.
    pub fn mixture(&self, sigma: f64) -> Result<GaussianMixture, LabError> {
        let k = self.len();
        if self.stds.len() != k || self.weights.len() != k {
            return Err(LabError::Param {
                name: "scene",
                reason: format!(
                    "{k} means but {} stds and {} weights",
                    self.stds.len(),
                    self.weights.len()
                ),
            });
        }
        if k > MAX_COMPONENTS {
            return Err(LabError::Param {
                name: "scene",
                reason: format!("{k} components; at most {MAX_COMPONENTS}"),
            });
        }
        Ok(GaussianMixture::new(
            self.weights.clone(),
            self.means.iter().map(|m| m.to_vec()).collect(),
            self.stds.clone(),
            vec![sigma],
        )?)
    }

    /// Adds a component of std `std` and weight `weight` at `at`; refused when the scene is full.
    pub fn add(&mut self, at: [f64; 2], std: f64, weight: f64) -> Result<usize, LabError> {
        if self.len() >= MAX_COMPONENTS {
            return Err(LabError::Param {
                name: "components",
                reason: format!("the scene is full ({MAX_COMPONENTS} components)"),
            });
        }
        if !(at[0].is_finite() && at[1].is_finite()) {
            return Err(LabError::Param {
                name: "position",
                reason: "must be finite".into(),
            });
        }
        if !(std >= 0.0 && std.is_finite() && weight > 0.0 && weight.is_finite()) {
            return Err(LabError::Param {
                name: "component",
                reason: format!("std {std} must be >= 0 and weight {weight} > 0"),
            });
        }
        self.means.push(at);
        self.stds.push(std);
        self.weights.push(weight);
        Ok(self.len() - 1)
    }

    /// Moves component `k` to `to` (ignored for a missing component or a non-finite point).
    pub fn move_to(&mut self, k: usize, to: [f64; 2]) {
        if let Some(m) = self.means.get_mut(k)
            && to[0].is_finite()
            && to[1].is_finite()
        {
            *m = to;
        }
    }

    /// Removes component `k` unless it is the last one (a mixture needs one).
    pub fn remove(&mut self, k: usize) -> bool {
        if k >= self.len() || self.len() <= 1 {
            return false;
        }
        self.means.remove(k);
        self.stds.remove(k);
        self.weights.remove(k);
        true
    }

    /// The component whose mean is nearest to `p` within `radius`.
    pub fn nearest(&self, p: [f64; 2], radius: f64) -> Option<usize> {
        self.means
            .iter()
            .enumerate()
            .map(|(k, m)| (k, (m[0] - p[0]).hypot(m[1] - p[1])))
            .filter(|&(_, d)| d <= radius)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, _)| k)
    }
}

/// The 1D clean mixture of the M-density view (three unequal Gaussians, after seed 002 Fig. 1a) seen through
/// `M = 2` channels of equal noise level `sigma`: `y = (y1, y2)`.
pub fn fig1_mixture(sigma: f64) -> Result<GaussianMixture, MixtureError> {
    GaussianMixture::new(
        vec![0.3, 0.45, 0.25],
        vec![vec![-2.0], vec![0.5], vec![2.5]],
        vec![0.4, 0.6, 0.3],
        vec![sigma, sigma],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_sizes() {
        assert_eq!(Scene::preset(LabPreset::TwoGaussians).len(), 2);
        assert_eq!(Scene::preset(LabPreset::Ring).len(), 8);
        assert_eq!(Scene::preset(LabPreset::Grid).len(), 16);
    }

    #[test]
    fn editing_keeps_a_valid_mixture() {
        let mut s = Scene::preset(LabPreset::TwoGaussians);
        assert_eq!(s.add([0.0, 1.0], 0.3, 1.0), Ok(2));
        assert!(s.add([f64::NAN, 0.0], 0.3, 1.0).is_err());
        assert!(s.add([0.0, 0.0], -1.0, 1.0).is_err());
        s.move_to(2, [1.0, 1.5]);
        assert_eq!(s.means[2], [1.0, 1.5]);
        assert_eq!(s.nearest([0.9, 1.4], 0.5), Some(2));
        assert_eq!(s.nearest([0.0, -4.0], 0.5), None);
        assert!(s.remove(0));
        assert!(s.remove(0));
        assert!(!s.remove(0), "the last component stays");
        assert!(s.mixture(0.5).is_ok());
        while s.len() < MAX_COMPONENTS {
            s.add([0.0, 0.0], 0.1, 1.0).expect("room");
        }
        assert!(s.add([0.0, 0.0], 0.1, 1.0).is_err());
        assert!(s.mixture(-1.0).is_err());
    }
}
