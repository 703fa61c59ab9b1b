//! The sigma-VAE (`sigma_vae`, REFERENCE.md §4): a VAE whose decoder is `N(x_hat(z), sigma^2 I)` with an imaginary
//! noise level sigma, trained on the negative ELBO of clean images; it denoises through its latent
//! (`x_hat(z), z ~ q(z|y)`). It runs as a [`LatentVae`].

use candle_nn::VarBuilder;

use super::{KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::Result;
use crate::models::{Arch, LatentVae, VaeDecoder};

impl ModelKind {
    /// Sigma-VAE (`sigma_vae`).
    pub const SIGMA_VAE: ModelKind = ModelKind::new("sigma_vae");
}

/// The sigma-VAE kind.
pub struct SigmaVaeKind;

impl ModelDef for SigmaVaeKind {
    fn kind(&self) -> ModelKind {
        ModelKind::SIGMA_VAE
    }

    fn elbo_trained(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        0
    }

    fn default_arch(&self) -> Arch {
        LatentVae::default_arch()
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        Ok(Box::new(LatentVae::new(
            vb,
            arch,
            meta.data.shape(),
            VaeDecoder::Gaussian { sigma: meta.sigma },
            meta.kind,
        )?))
    }
}
