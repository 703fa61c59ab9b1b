//! The interface every noise-level model offers the samplers: an energy where defined, the score, the jump. It lives
//! here, below `models` (which implements it and re-exports it as `models::ScoreModel`), so that sampling needs
//! nothing from the model kinds.

use candle_core::Tensor;

use crate::rng::Rng;
use crate::sampling::Result;

/// What every noise-level model can be asked for; the samplers and the CLI only see this. `Sync`: the samplers
/// score on one rayon thread while drawing noise on another.
///
/// Errors: the methods return `sampling::Result`, so that this module needs nothing of the crate-wide `Error`. A
/// model with an error type of its own hands it over whole with [`Error::model`](super::Error::model); the crate's
/// `models` do so with the crate's `Error`, and `From<sampling::Error> for walkjump::Error` unboxes it again, so a
/// failure that went through a sampler reaches the caller as the same variant with the same message. (An associated
/// error type would have kept the box away, but every `&dyn ScoreModel` in the crate would then have to name it.)
pub trait ScoreModel: Sync {
    /// Noise level sigma of each measurement.
    fn sigma(&self) -> f64;
    /// Number of measurements M.
    fn measurements(&self) -> usize;
    /// Dimension d of one clean sample.
    fn data_dim(&self) -> usize;
    /// Dimension `M * d` of the noisy variable y.
    fn dim(&self) -> usize {
        self.measurements() * self.data_dim()
    }
    /// Whether `energy_and_score` returns an energy.
    fn has_energy(&self) -> bool;
    /// Whether this model has a score of y at all (VAEs do not).
    fn has_score(&self) -> bool;
    /// `y: [N, M*d] -> (f(y): [N] where defined, score(y) = -grad f: [N, M*d])`.
    fn energy_and_score(&self, y: &Tensor, rng: &mut Rng) -> Result<(Option<Tensor>, Tensor)>;
    /// The empirical-Bayes jump `x_hat(y): [N, d]` (for M > 1 the mean of the M per-channel estimates).
    fn jump(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor>;
}
