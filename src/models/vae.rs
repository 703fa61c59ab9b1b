//! The encoders and decoder that the latent-variable kinds share ([`LatentVae`]): UVB (REFERENCE.md §3,
//! `kinds/uvb.rs`), the sigma-/alpha-/Bernoulli VAEs (§4, `kinds/sigma_vae.rs`, `kinds/alpha_vae.rs`,
//! `kinds/vae.rs`, which all three run as a [`LatentVae`] through its [`KindModel`] below) and the GRBM-prior VAE
//! (§9, `kinds/ebm_vae.rs`).
//!
//! Encoders for the mean and the log-variance `lambda = 2 log s` are separate networks (`enc_mu`, `enc_lam`, as in the
//! UVB paper); the decoder is an MLP with a logistic readout (`dec`).

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::kinds::{Draws, KindModel};
use super::{Arch, ModelKind};
use crate::error::{Error, Result};
use crate::nn::{Net, NetConfig, sigmoid};
use crate::rng::Rng;

/// How z is chosen when the model needs one z per y (UVB energy, VAE denoising).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ZMode {
    /// One reparametrised sample `z = mu + s * eps` per call (the papers' choice).
    Sample,
    /// Average over K samples (smoother UVB energy, K times the decoder cost).
    Average {
        /// Number of samples.
        k: usize,
    },
    /// `z = mu(y)`: deterministic.
    Mean,
}

impl std::fmt::Display for ZMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZMode::Sample => write!(f, "one z sample"),
            ZMode::Average { k } => write!(f, "average of {k} z samples"),
            ZMode::Mean => write!(f, "z = mean"),
        }
    }
}

/// The decoder's likelihood, which fixes the reconstruction term of the ELBO.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VaeDecoder {
    /// `N(x_hat(z), sigma^2 I)`: sigma-VAE and UVB.
    Gaussian {
        /// Imaginary noise level.
        sigma: f64,
    },
    /// Laplace with scale alpha: alpha-VAE.
    Laplace {
        /// Laplace scale.
        alpha: f64,
    },
    /// Bernoulli with logits: the vanilla VAE.
    Bernoulli,
}

/// Encoder pair and decoder.
#[derive(Clone, Debug)]
pub struct LatentVae {
    /// `mu(y): [N, d] -> [N, dz]`
    pub enc_mu: Net,
    /// `lambda(y) = log s^2: [N, d] -> [N, dz]`
    pub enc_lam: Net,
    /// `z: [N, dz] -> logits [N, d]` (mean = sigmoid(logits))
    pub dec: Net,
    /// Likelihood of the decoder.
    pub decoder: VaeDecoder,
    /// How z is picked at inference.
    pub z_mode: ZMode,
    latent: usize,
}

/// Clamp of lambda so that `exp(lambda)` stays finite for any input.
const LAMBDA_MAX: f64 = 30.0;

impl LatentVae {
    /// Builds encoders and decoder for data of `shape = (c, h, w)`.
    pub fn new(
        vb: &VarBuilder,
        arch: &Arch,
        shape: (usize, usize, usize),
        decoder: VaeDecoder,
        kind: ModelKind,
    ) -> Result<Self> {
        let latent = Arch::require(arch.latent, "latent", kind)?;
        let hidden = arch.decoder.clone().unwrap_or_default();
        if latent == 0 || latent > 4096 {
            return Err(Error::Architecture(format!("latent dimension {latent}")));
        }
        let (c, h, w) = shape;
        Ok(Self {
            enc_mu: Net::new(&vb.pp("enc_mu"), &arch.net, shape, latent)?,
            enc_lam: Net::new(&vb.pp("enc_lam"), &arch.net, shape, latent)?,
            dec: Net::new(
                &vb.pp("dec"),
                &NetConfig::Mlp { hidden },
                (latent, 1, 1),
                c * h * w,
            )?,
            decoder,
            z_mode: ZMode::Sample,
            latent,
        })
    }

    /// The default architecture of the latent kinds: MLP encoders with one hidden layer of 512, a decoder with one of
    /// 512, 32 latents.
    pub fn default_arch() -> Arch {
        Arch {
            decoder: Some(vec![512]),
            latent: Some(32),
            ..Arch::net(NetConfig::Mlp { hidden: vec![512] })
        }
    }

    /// Whether batches are best cut into row blocks (`Net::prefers_row_blocks` of all three networks).
    pub fn prefers_row_blocks(&self) -> bool {
        self.enc_mu.prefers_row_blocks()
            && self.enc_lam.prefers_row_blocks()
            && self.dec.prefers_row_blocks()
    }

    /// Latent dimension dz.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Multiply-adds of encoders + decoder for one input.
    pub fn macs(&self) -> usize {
        self.enc_mu.macs() + self.enc_lam.macs() + self.dec.macs()
    }

    /// `y: [N, d] -> (mu, lambda): ([N, dz], [N, dz])`.
    pub fn encode(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let mu = self.enc_mu.forward(y)?;
        let lam = self.enc_lam.forward(y)?.clamp(-LAMBDA_MAX, LAMBDA_MAX)?;
        Ok((mu, lam))
    }

    /// `z: [N, dz] -> decoder mean sigmoid(logits): [N, d]`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(sigmoid(&self.dec.forward(z)?)?)
    }

    /// Per-sample KL(q(z|y) || N(0, I)) from `mu, lambda: [N, dz]` -> `[N]`.
    pub fn kl(mu: &Tensor, lam: &Tensor) -> Result<Tensor> {
        // -2 KL = sum (1 + lambda - mu^2 - exp(lambda))
        let t = ((mu.sqr()? + lam.exp()?)? - lam)?;
        Ok(((t - 1.0)?.sum(D::Minus1)? * 0.5)?)
    }

    /// The sigma of a Gaussian decoder (UVB, sigma-VAE, GRBM-prior VAE); an error for the other likelihoods.
    pub fn gaussian_sigma(&self) -> Result<f64> {
        match self.decoder {
            VaeDecoder::Gaussian { sigma } => Ok(sigma),
            _ => Err(Error::Unsupported(
                "the UVB energy needs a Gaussian decoder".into(),
            )),
        }
    }

    /// Standard normal noise `[n, dz]` from the project's RNG.
    pub fn eps(&self, n: usize, rng: &mut Rng, like: &Tensor) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            rng.normal_vec(n * self.latent),
            (n, self.latent),
            like.device(),
        )?
        .to_dtype(like.dtype())?)
    }

    /// The standard normal draws behind the z samples of a batch of `y: [N, d]` under the current mode: a list of
    /// `[N, dz]` (one entry unless averaging; `None` for the posterior mean).
    pub fn z_noise(&self, y: &Tensor, rng: &mut Rng) -> Result<Vec<Option<Tensor>>> {
        let n = y.dim(0)?;
        Ok(match self.z_mode {
            ZMode::Mean => vec![None],
            ZMode::Sample => vec![Some(self.eps(n, rng, y)?)],
            ZMode::Average { k } => (0..k.clamp(1, 1024))
                .map(|_| self.eps(n, rng, y).map(Some))
                .collect::<Result<_>>()?,
        })
    }

    /// Rows `start..start + len` of every draw of [`LatentVae::z_noise`].
    pub fn narrow_noise(
        noises: &[Option<Tensor>],
        start: usize,
        len: usize,
    ) -> Result<Vec<Option<Tensor>>> {
        noises
            .iter()
            .map(|e| match e {
                Some(e) => Ok(Some(e.narrow(0, start, len)?)),
                None => Ok(None),
            })
            .collect()
    }

    /// Denoising through the latent: `y: [N, d] -> x_hat(z): [N, d]`, `z ~ q(z|y)` (or its mean / an average of
    /// decoded samples, following `z_mode`).
    pub fn reconstruct(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let noises = self.z_noise(y, rng)?;
        crate::parallel::per_rows_indexed(self.prefers_row_blocks(), y, |start, y| {
            self.reconstruct_with(y, &Self::narrow_noise(&noises, start, y.dim(0)?)?)
        })
    }

    /// [`LatentVae::reconstruct`] with the draws of [`LatentVae::z_noise`] given.
    pub fn reconstruct_with(&self, y: &Tensor, noises: &[Option<Tensor>]) -> Result<Tensor> {
        let (mu, lam) = self.encode(y)?;
        let s = (lam * 0.5)?.exp()?;
        let k = noises.len() as f64;
        let mut acc: Option<Tensor> = None;
        for eps in noises {
            let z = match eps {
                Some(e) => (&mu + (&s * e)?)?,
                None => mu.clone(),
            };
            let x = self.decode(&z)?;
            acc = Some(match acc {
                Some(a) => (a + x)?,
                None => x,
            });
        }
        let acc = acc.ok_or_else(|| Error::Param("no z samples".into()))?;
        Ok((acc / k)?)
    }

    /// UVB energy (negative ELBO of y with the Gaussian decoder, REFERENCE.md §3) and its exact gradient in y,
    /// through both encoders and the decoder. `y: [N, d] -> (f: [N], grad_y f: [N, d])`.
    /// Differentiable in the weights, so the DEEN loss can be trained through it.
    /// The draws are taken for the whole batch, then rows are scored in blocks on rayon's threads (crate::parallel)
    /// where [`LatentVae::prefers_row_blocks`].
    pub fn uvb_energy_and_grad(&self, y: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let noises = self.z_noise(y, rng)?;
        crate::parallel::per_rows2(self.prefers_row_blocks(), y, |start, y| {
            self.uvb_energy_and_grad_with(y, &Self::narrow_noise(&noises, start, y.dim(0)?)?)
        })
    }

    /// [`LatentVae::uvb_energy_and_grad`] with the draws of [`LatentVae::z_noise`] given (`[N, dz]` each).
    pub fn uvb_energy_and_grad_with(
        &self,
        y: &Tensor,
        noises: &[Option<Tensor>],
    ) -> Result<(Tensor, Tensor)> {
        let sigma = self.gaussian_sigma()?;
        let inv_s2 = 1.0 / (sigma * sigma);
        let (mu, c_mu) = self.enc_mu.forward_cached(y)?;
        let (lam_raw, c_lam) = self.enc_lam.forward_cached(y)?;
        let lam = lam_raw.clamp(-LAMBDA_MAX, LAMBDA_MAX)?;
        let s = (&lam * 0.5)?.exp()?;
        let kl = Self::kl(&mu, &lam)?;
        let k = noises.len() as f64;
        // Accumulate over z samples: reconstruction energy, dF/dy (direct), dF/dz, dF/dz * eps.
        let mut rec_sum: Option<Tensor> = None;
        let mut gy_sum: Option<Tensor> = None;
        let mut gz_sum: Option<Tensor> = None;
        let mut gze_sum: Option<Tensor> = None;
        let add = |acc: Option<Tensor>, t: Tensor| -> Result<Option<Tensor>> {
            Ok(Some(match acc {
                Some(a) => (a + t)?,
                None => t,
            }))
        };
        for eps in noises {
            let z = match &eps {
                Some(e) => (&mu + (&s * e)?)?,
                None => mu.clone(),
            };
            let (logits, c_dec) = self.dec.forward_cached(&z)?;
            let m = sigmoid(&logits)?;
            let r = (y - &m)?;
            rec_sum = add(rec_sum, (r.sqr()?.sum(D::Minus1)? * (0.5 * inv_s2))?)?;
            let g_direct = (&r * inv_s2)?;
            // dF/dlogits = -(r / sigma^2) * m (1 - m)
            let dm = (&m - m.sqr()?)?;
            let g_logits = (&g_direct * dm)?.neg()?;
            let gz = self.dec.vjp(&c_dec, &g_logits)?;
            if let Some(e) = &eps {
                gze_sum = add(gze_sum, (&gz * e)?)?;
            }
            gz_sum = add(gz_sum, gz)?;
            gy_sum = add(gy_sum, g_direct)?;
        }
        let none = || Error::Param("no z samples".into());
        let rec = (rec_sum.ok_or_else(none)? / k)?;
        let g_y = (gy_sum.ok_or_else(none)? / k)?;
        let g_z = (gz_sum.ok_or_else(none)? / k)?;
        // dF/dmu = mu + dF/dz ; dF/dlambda = (exp(lambda) - 1)/2 + dF/dz * eps * s / 2
        let g_mu = (&mu + &g_z)?;
        let mut g_lam = ((lam.exp()? - 1.0)? * 0.5)?;
        if let Some(gze) = gze_sum {
            g_lam = (g_lam + ((gze / k)? * &s)? * 0.5)?;
        }
        // The clamp passes no gradient outside its range.
        let inside = lam_raw
            .ge(-LAMBDA_MAX)?
            .mul(&lam_raw.le(LAMBDA_MAX)?)?
            .to_dtype(g_lam.dtype())?;
        let g_lam = (g_lam * inside)?;
        let grad = ((g_y + self.enc_mu.vjp(&c_mu, &g_mu)?)? + self.enc_lam.vjp(&c_lam, &g_lam)?)?;
        Ok(((rec + kl)?, grad))
    }

    /// Negative ELBO of clean `x: [N, d]` for this decoder's likelihood, per sample `[N]`, plus its two parts
    /// (reconstruction `[N]`, KL `[N]`), with one reparametrised z from `eps: [N, dz]`.
    pub fn neg_elbo(&self, x: &Tensor, eps: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (mu, lam) = self.encode(x)?;
        let z = (&mu + ((&lam * 0.5)?.exp()? * eps)?)?;
        let logits = self.dec.forward(&z)?;
        let rec = match self.decoder {
            VaeDecoder::Gaussian { sigma } => {
                let m = sigmoid(&logits)?;
                ((x - m)?.sqr()?.sum(D::Minus1)? * (0.5 / (sigma * sigma)))?
            }
            VaeDecoder::Laplace { alpha } => {
                let m = sigmoid(&logits)?;
                ((x - m)?.abs()?.sum(D::Minus1)? / alpha)?
            }
            VaeDecoder::Bernoulli => {
                // -log p(x|z) = softplus(l) - x l, summed over pixels.
                (softplus(&logits)? - (x * &logits)?)?.sum(D::Minus1)?
            }
        };
        let kl = Self::kl(&mu, &lam)?;
        Ok(((&rec + &kl)?, rec, kl))
    }
}

/// `log(1 + exp(x))` without overflow: `max(x, 0) + log(1 + exp(-|x|))`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// The sigma-, alpha- and Bernoulli VAEs: denoising through the latent, trained on the negative ELBO of clean images.
impl KindModel for LatentVae {
    fn jump(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.reconstruct(y, rng)
    }

    fn macs_per_score(&self) -> usize {
        self.macs()
    }

    fn z_mode(&self) -> Option<ZMode> {
        Some(self.z_mode)
    }

    fn set_z_mode(&mut self, mode: ZMode) {
        self.z_mode = mode;
    }

    /// One reparametrisation `eps: [B, dz]`.
    fn draws(&self, x: &Tensor, rng: &mut Rng) -> Result<Draws> {
        Ok(Draws {
            gauss: vec![Draws::normals(x, self.latent(), rng)?],
            z: Vec::new(),
        })
    }

    /// The mean negative ELBO of `x` under this decoder's likelihood.
    fn loss(&self, x: &Tensor, _labels: Option<&Tensor>, draws: &Draws) -> Result<Tensor> {
        Ok(self.neg_elbo(x, draws.gauss(0)?)?.0.mean(0)?)
    }

    fn latent_vae(&self) -> Option<&LatentVae> {
        Some(self)
    }
}
