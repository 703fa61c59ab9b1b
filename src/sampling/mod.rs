//! Walk-jump sampling: the seeded RNG, the Langevin samplers (REFERENCE.md §6), batched chains with asynchronous
//! jumps and divergence detection, NEBULA flows (§7), and convergence diagnostics across chains.

pub mod chain;
pub mod diagnostics;
pub mod langevin;
pub mod nebula;
pub mod rng;

pub use chain::{Chain, ChainConfig, ChainInit, StepStats};
pub use langevin::Sampler;
pub use nebula::{Attractor, NebulaConfig, NebulaInit, NebulaResult};
pub use rng::Rng;
