//! The alpha-VAE (`alpha_vae`, REFERENCE.md §4): a VAE whose decoder is Laplace with scale `arch.alpha`, trained on
//! the negative ELBO of clean images; it denoises through its latent. It runs as a [`LatentVae`].

use candle_nn::VarBuilder;

use super::{KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::Result;
use crate::models::{Arch, LatentVae, VaeDecoder};

impl ModelKind {
    /// Alpha-VAE (`alpha_vae`).
    pub const ALPHA_VAE: ModelKind = ModelKind::new("alpha_vae");
}

/// The alpha-VAE kind.
pub struct AlphaVaeKind;

impl ModelDef for AlphaVaeKind {
    fn kind(&self) -> ModelKind {
        ModelKind::ALPHA_VAE
    }

    fn elbo_trained(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        3
    }

    fn default_arch(&self) -> Arch {
        Arch {
            alpha: Some(0.5),
            ..LatentVae::default_arch()
        }
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        let alpha = Arch::require(arch.alpha, "alpha", meta.kind)?;
        Ok(Box::new(LatentVae::new(
            vb,
            arch,
            meta.data.shape(),
            VaeDecoder::Laplace { alpha },
            meta.kind,
        )?))
    }
}
