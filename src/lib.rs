//! walkjump: a lab for empirical-Bayes generative models (DEEN, UVB, sigma-VAE, MDAE ...).
//!
//! The engine: data, checkpoints, models with explicit input-gradients, walk-jump samplers, NEBULA flows,
//! denoising, diagnostics and training. It knows nothing of the GUI. Equations follow `REFERENCE.md`; tensors are
//! f32, batched as `[N, D]`.
//!
//! The desktop app lives in [`app`] (feature `gui`); it holds no maths and only calls the engine.

#[cfg(feature = "gui")]
pub mod app;
pub mod bench;
pub mod data;
pub mod device;
pub mod error;
pub mod models;
pub mod nn;
pub mod parity;
pub mod render;
pub mod run;
pub mod sampling;
pub mod train;

pub use error::{Error, Result};
