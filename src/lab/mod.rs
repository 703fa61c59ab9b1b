//! The 2D Lab's engine: analytic mixtures whose noisy variable `y` lives in the plane, where every quantity the
//! image models only estimate is exact and can be drawn.
//!
//! * [`field`]: the exact density, score and jump of `y` in `R^2` (a 2D mixture with `M = 1`, or a 1D mixture seen
//!   through `M = 2` measurements: the "M-density" of seed 002 Fig. 1).
//! * [`scene`]: the editable clean mixture and its presets (two Gaussians, ring of eight, grid).
//! * [`particles`]: up to 10 000 Langevin particles (any sampler of the registry, `sampling::samplers`, in plain
//!   f64), their jumps and trails, and histograms against the exact density.
//! * [`stationary`]: the exact stationary law of each discretised sampler on a Gaussian target (the bias of a large
//!   step, in closed form, from the sampler's own one-step law).
//! * [`spheres`]: i-spheres and the overlap rule of REFERENCE.md §8.
//!
//! Nothing here knows about the GUI; the app's 2D Lab workspace draws what these functions return.

pub mod field;
pub mod particles;
pub mod scene;
pub mod spheres;
pub mod stationary;

pub use field::{Field2, YComponent};
pub use particles::{ParticleConfig, ParticleInit, ParticleSet};
pub use scene::{LabPreset, Scene};

use crate::mixture::MixtureError;

/// Why a lab object could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LabError {
    /// The mixture itself is invalid.
    #[error(transparent)]
    Mixture(#[from] MixtureError),
    /// The noisy variable does not live in the plane.
    #[error(
        "the lab needs y in R^2 (D = 2 with M = 1, or D = 1 with M = 2); this mixture has M * D = {0}"
    )]
    NotPlanar(usize),
    /// A parameter is out of range.
    #[error("invalid parameter {name}: {reason}")]
    Param {
        /// Which parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}
