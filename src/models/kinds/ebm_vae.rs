//! The GRBM-prior VAE (`ebm_vae`, REFERENCE.md §9): a VAE with a Gaussian decoder whose prior is a Gaussian-Bernoulli
//! RBM energy on the latent. It denoises through the latent like the other VAEs and samples by latent Langevin
//! ([`EbmVae::sample`]). Training: the ELBO with the energy prior for the encoder and decoder, and denoising score
//! matching on the (detached) latents for the prior.

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;

use super::{Draws, KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::{Error, Result};
use crate::models::vae::softplus;
use crate::models::{Arch, LatentVae, VaeDecoder, ZMode};
use crate::nn::sigmoid;
use crate::rng::Rng;

impl ModelKind {
    /// Energy-based (GRBM-prior) VAE (`ebm_vae`).
    pub const EBM_VAE: ModelKind = ModelKind::new("ebm_vae");
}

/// The GRBM-prior VAE kind.
pub struct EbmVaeKind;

impl ModelDef for EbmVaeKind {
    fn kind(&self) -> ModelKind {
        ModelKind::EBM_VAE
    }

    fn elbo_trained(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        5
    }

    fn default_arch(&self) -> Arch {
        Arch {
            prior_hidden: Some(64),
            ..LatentVae::default_arch()
        }
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        let vae = LatentVae::new(
            vb,
            arch,
            meta.data.shape(),
            VaeDecoder::Gaussian { sigma: meta.sigma },
            meta.kind,
        )?;
        let hidden = Arch::require(arch.prior_hidden, "prior_hidden", meta.kind)?;
        let prior = Grbm::new(&vb.pp("prior"), vae.latent(), hidden)?;
        Ok(Box::new(EbmVae { vae, prior }))
    }
}

/// Gaussian-Bernoulli RBM energy on the latent (REFERENCE.md §9):
/// `E(z) = 1/2 ||(z - mu)/s||^2 - sum_j softplus((W^T z / s^2 + b)_j)`.
#[derive(Clone, Debug)]
pub struct Grbm {
    /// `[dz]`
    pub mu: Tensor,
    /// `[dz]`, `s = exp(log_s)`
    pub log_s: Tensor,
    /// `[dz, H]`
    pub w: Tensor,
    /// `[H]`
    pub b: Tensor,
}

impl Grbm {
    /// Loads `mu`, `log_s`, `w`, `b` under the builder's prefix.
    pub fn new(vb: &VarBuilder, latent: usize, hidden: usize) -> Result<Self> {
        if hidden == 0 || hidden > 1 << 16 {
            return Err(Error::Architecture(format!(
                "GRBM with {hidden} hidden units"
            )));
        }
        Ok(Self {
            mu: vb.get(latent, "mu")?,
            log_s: vb.get(latent, "log_s")?,
            w: vb.get((latent, hidden), "w")?,
            b: vb.get(hidden, "b")?,
        })
    }

    /// `z: [N, dz] -> (E(z): [N], grad_z E: [N, dz])`.
    pub fn energy_and_grad(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let inv_s2 = (&self.log_s * -2.0)?.exp()?;
        let zs = z.broadcast_mul(&inv_s2)?;
        let h = zs.matmul(&self.w)?.broadcast_add(&self.b)?;
        let diff = z.broadcast_sub(&self.mu)?;
        let quad = (diff.sqr()?.broadcast_mul(&inv_s2)?.sum(D::Minus1)? * 0.5)?;
        let e = (quad - softplus(&h)?.sum(D::Minus1)?)?;
        let grad = (diff - sigmoid(&h)?.matmul(&self.w.t()?)?)?.broadcast_mul(&inv_s2)?;
        Ok((e, grad))
    }
}

/// A VAE whose prior is a GRBM energy instead of N(0, I).
#[derive(Clone, Debug)]
pub struct EbmVae {
    /// Encoders and decoder.
    pub vae: LatentVae,
    /// Latent energy.
    pub prior: Grbm,
}

impl EbmVae {
    /// Latent Langevin `z <- z - step grad E(z) + sqrt(2 step) eps` from `z0 ~ N(0, I)`, then decode.
    /// Returns images `[n, d]`.
    pub fn sample(
        &self,
        n: usize,
        steps: usize,
        step: f64,
        rng: &mut Rng,
        like: &Tensor,
    ) -> Result<Tensor> {
        if !(step > 0.0 && step.is_finite()) {
            return Err(Error::Param(format!(
                "latent step must be positive, got {step}"
            )));
        }
        let mut z = self.vae.eps(n, rng, like)?;
        let noise_scale = (2.0 * step).sqrt();
        for _ in 0..steps {
            let (_, g) = self.prior.energy_and_grad(&z)?;
            let e = self.vae.eps(n, rng, like)?;
            z = ((z - (g * step)?)? + (e * noise_scale)?)?;
        }
        self.vae.decode(&z)
    }
}

impl KindModel for EbmVae {
    fn jump(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.vae.reconstruct(y, rng)
    }

    fn macs_per_score(&self) -> usize {
        self.vae.macs()
    }

    fn z_mode(&self) -> Option<ZMode> {
        Some(self.vae.z_mode)
    }

    fn set_z_mode(&mut self, mode: ZMode) {
        self.vae.z_mode = mode;
    }

    /// Two Gaussians `[B, dz]`: the reparametrisation, then the latent noise of score matching.
    fn draws(&self, x: &Tensor, rng: &mut Rng) -> Result<Draws> {
        let first = Draws::normals(x, self.vae.latent(), rng)?;
        let second = Draws::normals(x, self.vae.latent(), rng)?;
        Ok(Draws {
            gauss: vec![first, second],
            z: Vec::new(),
        })
    }

    /// VAE pair: `E_q[-ln p(x|z) + E(z) + ln q(z|x)]`; prior: denoising score matching on detached latents.
    fn loss(&self, x: &Tensor, _labels: Option<&Tensor>, draws: &Draws) -> Result<Tensor> {
        let sigma = self.vae.gaussian_sigma()?;
        let vae = &self.vae;
        let eps = draws.gauss(0)?;
        let (mu, lam) = vae.encode(x)?;
        let z = (&mu + ((&lam * 0.5)?.exp()? * eps)?)?;
        let m = vae.decode(&z)?;
        let rec = ((x - m)?.sqr()?.sum(D::Minus1)? * (0.5 / (sigma * sigma)))?;
        // The prior is unnormalised: its parameters learn only from score matching below, never from the
        // ELBO (which they could lower without bound by ignoring the partition function).
        let frozen = Grbm {
            mu: self.prior.mu.detach(),
            log_s: self.prior.log_s.detach(),
            w: self.prior.w.detach(),
            b: self.prior.b.detach(),
        };
        let (energy, _) = frozen.energy_and_grad(&z)?;
        // ln q(z|x) = -1/2 sum(lambda + eps^2 + ln 2 pi)
        let log_q = ((&lam + eps.sqr()?)? + (2.0 * std::f64::consts::PI).ln())?
            .sum(D::Minus1)?
            .affine(-0.5, 0.0)?;
        let vae_loss = ((rec + energy)? + log_q)?.mean(0)?;
        let s_n = 0.1;
        let zd = z.detach();
        let noise = draws.gauss(1)?;
        let zt = (&zd + (noise * s_n)?)?;
        let (_, g) = self.prior.energy_and_grad(&zt)?;
        // score of the noisy latent is -grad E; the DSM target is -(zt - z)/s_n^2 = -noise/s_n.
        let dsm = (g - (noise / s_n)?)?.sqr()?.sum(D::Minus1)?.mean(0)?;
        Ok((vae_loss + (dsm * (s_n * s_n))?)?)
    }

    fn latent_vae(&self) -> Option<&LatentVae> {
        Some(&self.vae)
    }

    /// `prior_energy`: the GRBM energy `[N]` at `z = mu(y)`.
    fn extra_outputs(&self, y: &Tensor) -> Result<Vec<(&'static str, Tensor)>> {
        let (mu, _) = self.vae.encode(y)?;
        Ok(vec![("prior_energy", self.prior.energy_and_grad(&mu)?.0)])
    }
}
