//! UVB (`uvb`, REFERENCE.md §3): the energy of y is a VAE's negative ELBO with a Gaussian decoder of variance
//! `sigma^2`; its exact gradient in y (through both encoders and the decoder) gives the score and the jump
//! `y - sigma^2 grad f`, and it is trained like DEEN, on `||x - jump(x + sigma eps)||^2`.

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;

use super::{Draws, KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::Result;
use crate::models::{Arch, LatentVae, VaeDecoder, ZMode};
use crate::rng::Rng;

impl ModelKind {
    /// Unnormalized variational Bayes model (`uvb`).
    pub const UVB: ModelKind = ModelKind::new("uvb");
}

/// The UVB kind.
pub struct UvbKind;

impl ModelDef for UvbKind {
    fn kind(&self) -> ModelKind {
        ModelKind::UVB
    }

    fn has_energy(&self) -> bool {
        true
    }

    fn has_score(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        2
    }

    fn default_arch(&self) -> Arch {
        LatentVae::default_arch()
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        let vae = LatentVae::new(
            vb,
            arch,
            meta.data.shape(),
            VaeDecoder::Gaussian { sigma: meta.sigma },
            meta.kind,
        )?;
        Ok(Box::new(Uvb {
            vae,
            sigma: meta.sigma,
        }))
    }
}

/// The UVB energy: a [`LatentVae`] with the Gaussian decoder `N(x_hat(z), sigma^2 I)`.
#[derive(Clone, Debug)]
pub struct Uvb {
    /// Encoders and decoder.
    pub vae: LatentVae,
    /// Noise level (the decoder's sigma).
    pub sigma: f64,
}

impl KindModel for Uvb {
    /// `(f: [N], -grad_y f: [N, d])`, with `z` drawn following the z mode.
    fn energy_and_score(&self, y: &Tensor, rng: &mut Rng) -> Result<(Option<Tensor>, Tensor)> {
        let (f, g) = self.vae.uvb_energy_and_grad(y, rng)?;
        Ok((Some(f), g.neg()?))
    }

    /// `y - sigma^2 grad_y f: [N, d]`.
    fn jump(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (_, g) = self.vae.uvb_energy_and_grad(y, rng)?;
        let s2 = self.sigma * self.sigma;
        Ok((y - (g * s2)?)?)
    }

    /// Forward + VJP through encoders and decoder, counted as 2x.
    fn macs_per_score(&self) -> usize {
        2 * self.vae.macs()
    }

    fn z_mode(&self) -> Option<ZMode> {
        Some(self.vae.z_mode)
    }

    fn set_z_mode(&mut self, mode: ZMode) {
        self.vae.z_mode = mode;
    }

    /// A Gaussian `eps: [B, d]`, then the energy's latent draws.
    fn draws(&self, x: &Tensor, rng: &mut Rng) -> Result<Draws> {
        let eps = Draws::normals(x, x.dim(1)?, rng)?;
        Ok(Draws {
            gauss: vec![eps],
            z: self.vae.z_noise(x, rng)?,
        })
    }

    /// `mean_b ||x - (y - sigma^2 grad_y f(y))||^2` at `y = x + sigma eps`.
    fn loss(&self, x: &Tensor, _labels: Option<&Tensor>, draws: &Draws) -> Result<Tensor> {
        let sigma = self.sigma;
        let y = (x + (draws.gauss(0)? * sigma)?)?;
        let (_, g) = self.vae.uvb_energy_and_grad_with(&y, &draws.z)?;
        let x_hat = (&y - (g * (sigma * sigma))?)?;
        Ok((x - x_hat)?.sqr()?.sum(D::Minus1)?.mean(0)?)
    }

    fn latent_vae(&self) -> Option<&LatentVae> {
        Some(&self.vae)
    }
}
