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
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod error;
pub mod lab;
pub mod mixture;
pub mod models;
pub mod nn;
pub mod onnx;
pub mod parallel;
pub mod parity;
pub mod quality;
pub mod render;
pub mod rng;
pub mod run;
pub mod sampling;
pub mod simd;
mod text;
pub mod train;

pub use error::{Error, Result};

/// File name of the bundled default model inside [`checkpoints_dir`].
pub const DEFAULT_CHECKPOINT: &str = "deen-mlp-s1.0.safetensors";
/// File name of the bundled digit classifier inside [`checkpoints_dir`].
pub const CLASSIFIER_CHECKPOINT: &str = "classifier.safetensors";
/// File name of the bundled model NEBULA opens on (checkpoints/MODELS.md: the sigma = 0.3 ConvNet DEEN trained 16
/// epochs, whose flows from uniform noise end on whole digits).
pub const NEBULA_CHECKPOINT: &str = "deen-conv-s0.3.safetensors";
/// The NEBULA step size documented for [`NEBULA_CHECKPOINT`] in checkpoints/MODELS.md (sigma^2 / 2).
pub const NEBULA_ETA: f64 = 0.045;
/// The denoisers the Denoise workspace opens with beside the default model: the sigma-VAE and the UVB, so that the
/// comparison of seed 000 (sigma-VAE, DEEN, UVB) shows at once.
pub const DENOISE_TRIO: [&str; 2] = ["sigma-vae-s0.9.safetensors", "uvb-conv-s1.0.safetensors"];

/// The bundled checkpoints folder: `./checkpoints`, else the source tree's, else the one beside the executable
/// (`./checkpoints` if none exists, so that messages name the expected place).
pub fn checkpoints_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    let candidates = [
        PathBuf::from("checkpoints"),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/checkpoints")),
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("checkpoints")))
            .unwrap_or_default(),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("checkpoints"))
}
