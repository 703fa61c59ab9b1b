//! Walk-jump sampling: the seeded RNG, the Langevin samplers (REFERENCE.md §6), batched chains with asynchronous
//! jumps and divergence detection, NEBULA flows (§7), and convergence diagnostics across chains.

pub mod chain;
pub mod condition;
pub mod diagnostics;
pub mod langevin;
pub mod nebula;
pub mod score;

pub use crate::rng;

pub use chain::{Chain, ChainConfig, ChainInit, StepStats, check_jump_model};
pub use condition::{Condition, Held, named_mask};
pub use langevin::Sampler;
pub use nebula::{Attractor, NebulaConfig, NebulaInit, NebulaResult};
pub use rng::Rng;
pub use score::ScoreModel;
