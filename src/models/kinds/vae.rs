//! The plain VAE (`vae`, REFERENCE.md §4): a VAE with a Bernoulli decoder (logits), trained on the negative ELBO of
//! clean images; it denoises through its latent. It runs as a [`LatentVae`].

use candle_nn::VarBuilder;

use super::{KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::Result;
use crate::models::{Arch, LatentVae, VaeDecoder};

impl ModelKind {
    /// Plain (Bernoulli) VAE (`vae`).
    pub const VAE: ModelKind = ModelKind::new("vae");
}

/// The plain VAE kind.
pub struct VaeKind;

impl ModelDef for VaeKind {
    fn kind(&self) -> ModelKind {
        ModelKind::VAE
    }

    fn elbo_trained(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        4
    }

    fn default_arch(&self) -> Arch {
        LatentVae::default_arch()
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        Ok(Box::new(LatentVae::new(
            vb,
            arch,
            meta.data.shape(),
            VaeDecoder::Bernoulli,
            meta.kind,
        )?))
    }
}
