//! Walk-jump sampling: the seeded RNG, the Langevin samplers (REFERENCE.md §6: the [`Sampler`] value in `langevin`,
//! the samplers themselves one file each in `samplers`, listed in its registry), batched chains with asynchronous
//! jumps and divergence detection, NEBULA flows (§7), and convergence diagnostics across chains.

pub mod chain;
pub mod condition;
pub mod diagnostics;
mod fused;
pub mod langevin;
pub mod nebula;
pub mod samplers;
pub mod score;

pub use crate::rng;

/// Why a sampler, chain or flow could not run. The crate-wide `Error` takes each variant in as its variant of the
/// same name, with the same message, so `sampling` needs nothing from `error`; a model's own error comes back out
/// as the very value the model returned (see [`ScoreModel`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is out of its valid range (NaN, negative step, zero chains ...).
    #[error("invalid parameter: {0}")]
    Param(String),
    /// Data does not fit the model (wrong image size, missing dataset ...).
    #[error("data does not fit: {0}")]
    Data(String),
    /// A tensor operation failed (a bug or an out-of-memory condition, not a user error).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// The score model failed: its own error, unchanged (a `models::Model` puts the crate's `Error` here, and the
    /// crate's `From` takes it back out).
    #[error(transparent)]
    Model(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A score model's own error, passed through the samplers unchanged.
    pub fn model(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Model(Box::new(e))
    }
}

/// Result alias for sampling.
pub type Result<T> = std::result::Result<T, Error>;

pub use chain::{Chain, ChainConfig, ChainInit, StepStats, check_jump_model};
pub use condition::{Condition, Held, named_mask};
pub use langevin::Sampler;
pub use nebula::{Attractor, NebulaConfig, NebulaInit, NebulaResult};
pub use rng::Rng;
pub use samplers::{SAMPLERS, SamplerDef, SamplerKind};
pub use score::ScoreModel;
