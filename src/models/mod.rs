//! Model kinds built from checkpoints: DEEN, UVB, the VAE family, MDAE, the GRBM-prior VAE, a classifier, and the
//! analytic Gaussian mixture. All tensors are flat: a batch of noisy inputs is `y: [N, M*d]` (channel-major over the
//! M measurements), clean images are `x: [N, d]` with `d = channels * height * width`.

pub mod deen;
pub mod load;
pub mod mdae;
pub mod vae;

// The checkpoint format and the analytic mixture sit at the bottom of the crate (`src/checkpoint/`,
// `src/mixture.rs`), below `error` and `data`; they stay reachable here under their old paths.
pub use crate::{checkpoint, mixture};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::{Net, NetConfig};
use crate::parallel::{per_rows, per_rows2};
use crate::rng::Rng;
use crate::sampling;
pub use crate::sampling::ScoreModel;
pub use checkpoint::{Checkpoint, DataSpec, Metadata, ModelKind};
pub use deen::Deen;
pub use mdae::Mdae;
pub use vae::{Classifier, EbmVae, Grbm, LatentVae, VaeDecoder, ZMode};

/// Architecture configuration stored in the checkpoint's `arch` metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// The energy net (DEEN), the denoising net (MDAE), the classifier net, or the encoder of the VAE kinds.
    pub net: NetConfig,
    /// Decoder hidden widths (VAE kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<Vec<usize>>,
    /// Latent dimension (VAE kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent: Option<usize>,
    /// Laplace scale of the alpha-VAE decoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Hidden units of the GRBM prior (ebm_vae).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_hidden: Option<usize>,
    /// Number of classes (classifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// DEEN only: add `||y||^2 / (2 sigma^2)` to the network's energy, so that the jump is `-sigma^2 grad net(y)`
    /// and the network only has to learn the (bounded) clean estimate instead of the identity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quadratic: bool,
    /// MDAE only: the network sees `y` as it is, without seed 002's input scaling (denoisers and score nets
    /// imported from ONNX).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_input: bool,
}

impl Arch {
    /// An architecture with only the main network set.
    pub fn net(net: NetConfig) -> Self {
        Self {
            net,
            decoder: None,
            latent: None,
            alpha: None,
            prior_hidden: None,
            classes: None,
            quadratic: false,
            raw_input: false,
        }
    }

    /// Parses the `arch` metadata value.
    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(v.clone()).map_err(|e| {
            Error::Architecture(format!(
                "cannot read the arch description: {}",
                crate::error::one_line(&e.to_string())
            ))
        })
    }

    fn require<T: Copy>(v: Option<T>, what: &str, kind: ModelKind) -> Result<T> {
        v.ok_or_else(|| {
            Error::Architecture(format!("a {} checkpoint needs arch.{what}", kind.as_str()))
        })
    }
}

/// A model built from a checkpoint, with its metadata.
#[derive(Debug)]
pub struct Model {
    /// The checkpoint's metadata.
    pub meta: Metadata,
    /// The parsed architecture.
    pub arch: Arch,
    /// sha256 of the checkpoint file (empty for models not loaded from a file).
    pub sha256: String,
    /// The network(s).
    pub inner: ModelInner,
    device: Device,
}

/// The networks of each kind.
#[derive(Debug)]
pub enum ModelInner {
    /// Energy network (DEEN).
    Deen(Deen),
    /// UVB energy: a VAE's negative ELBO of y.
    Uvb(LatentVae),
    /// sigma-VAE, alpha-VAE, Bernoulli VAE: denoisers through the encoder and decoder.
    Vae(LatentVae),
    /// Multimeasurement denoising autoencoder.
    Mdae(Mdae),
    /// VAE with a Gaussian-Bernoulli RBM prior on the latent.
    EbmVae(EbmVae),
    /// Digit classifier.
    Classifier(Classifier),
}

impl Model {
    /// Builds a model of `meta.kind` whose parameters come from `vb`.
    pub fn build(meta: Metadata, vb: &VarBuilder, device: &Device) -> Result<Self> {
        let arch = Arch::from_json(&meta.arch)?;
        let kind = meta.kind;
        let spec = &meta.data;
        let shape = (spec.channels, spec.height, spec.width);
        let d = spec.dim();
        let m = meta.measurements;
        if m != 1 && kind != ModelKind::Mdae {
            return Err(Error::Architecture(format!(
                "a {} model has one measurement, the checkpoint says {m}",
                kind.as_str()
            )));
        }
        let needs_sigma = !matches!(kind, ModelKind::Classifier);
        if needs_sigma && !(meta.sigma > 0.0 && meta.sigma.is_finite()) {
            return Err(Error::Architecture(format!(
                "sigma must be positive for a {} model",
                kind.as_str()
            )));
        }
        let inner = match kind {
            ModelKind::Deen => {
                ModelInner::Deen(Deen::new(vb, &arch.net, shape, meta.sigma, arch.quadratic)?)
            }
            ModelKind::Mdae => ModelInner::Mdae(Mdae::new(
                vb,
                &arch.net,
                shape,
                m,
                meta.sigma,
                !arch.raw_input,
            )?),
            ModelKind::Classifier => {
                let classes = Arch::require(arch.classes, "classes", kind)?;
                if !(2..=1000).contains(&classes) {
                    return Err(Error::Architecture(format!("{classes} classes")));
                }
                ModelInner::Classifier(Classifier {
                    net: Net::new(&vb.pp("net"), &arch.net, shape, classes)?,
                })
            }
            ModelKind::Uvb | ModelKind::SigmaVae | ModelKind::AlphaVae | ModelKind::Vae => {
                let decoder = match kind {
                    ModelKind::Vae => VaeDecoder::Bernoulli,
                    ModelKind::AlphaVae => VaeDecoder::Laplace {
                        alpha: Arch::require(arch.alpha, "alpha", kind)?,
                    },
                    _ => VaeDecoder::Gaussian { sigma: meta.sigma },
                };
                let vae = LatentVae::new(vb, &arch, shape, decoder, kind)?;
                if kind == ModelKind::Uvb {
                    ModelInner::Uvb(vae)
                } else {
                    ModelInner::Vae(vae)
                }
            }
            ModelKind::EbmVae => {
                let vae = LatentVae::new(
                    vb,
                    &arch,
                    shape,
                    VaeDecoder::Gaussian { sigma: meta.sigma },
                    kind,
                )?;
                let hidden = Arch::require(arch.prior_hidden, "prior_hidden", kind)?;
                let prior = Grbm::new(&vb.pp("prior"), vae.latent(), hidden)?;
                ModelInner::EbmVae(EbmVae { vae, prior })
            }
        };
        if d == 0 {
            return Err(Error::Architecture("empty data shape".into()));
        }
        Ok(Self {
            meta,
            arch,
            sha256: String::new(),
            inner,
            device: device.clone(),
        })
    }

    /// The model's kind.
    pub fn kind(&self) -> ModelKind {
        self.meta.kind
    }

    /// The device its tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Data shape `(channels, height, width)` of one clean sample.
    pub fn data_shape(&self) -> (usize, usize, usize) {
        let s = &self.meta.data;
        (s.channels, s.height, s.width)
    }

    /// Whether the model maps a noisy `y` to a clean estimate (every kind but the classifier).
    pub fn is_denoiser(&self) -> bool {
        !matches!(self.inner, ModelInner::Classifier(_))
    }

    /// The classifier, if this is one.
    pub fn classifier(&self) -> Option<&Classifier> {
        match &self.inner {
            ModelInner::Classifier(c) => Some(c),
            _ => None,
        }
    }

    /// Whether two jumps of the same y can differ: UVB and the VAE kinds drawing z from the posterior.
    pub fn is_stochastic(&self) -> bool {
        match &self.inner {
            ModelInner::Uvb(v) | ModelInner::Vae(v) => v.z_mode != ZMode::Mean,
            ModelInner::EbmVae(e) => e.vae.z_mode != ZMode::Mean,
            _ => false,
        }
    }

    /// Chooses how UVB and the VAEs pick z (no effect on other kinds).
    pub fn set_z_mode(&mut self, mode: ZMode) {
        match &mut self.inner {
            ModelInner::Uvb(v) | ModelInner::Vae(v) => v.z_mode = mode,
            ModelInner::EbmVae(e) => e.vae.z_mode = mode,
            _ => {}
        }
    }

    /// Multiply-adds of one score evaluation for one chain (forward + VJP ~ 3x forward for energy nets).
    pub fn macs_per_score(&self) -> usize {
        match &self.inner {
            ModelInner::Deen(m) => 2 * m.net.macs(),
            ModelInner::Mdae(m) => m.net.macs(),
            ModelInner::Uvb(v) => 2 * v.macs(),
            ModelInner::Vae(v) | ModelInner::EbmVae(EbmVae { vae: v, .. }) => v.macs(),
            ModelInner::Classifier(c) => c.net.macs(),
        }
    }

    fn check_input(&self, y: &Tensor, width: usize) -> Result<()> {
        let dims = y.dims();
        if dims.len() != 2 || dims[1] != width {
            return Err(Error::Data(format!(
                "expected inputs of shape [N, {width}], got {dims:?}"
            )));
        }
        Ok(())
    }

    /// The "denoise" output for any denoiser: the jump for score models, `x_hat(z), z ~ q(z|y)` for the VAEs.
    /// `y: [N, M*d] -> [N, d]`.
    pub fn denoise(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.model_jump(y, rng)
    }

    /// Whether batches are scored as row blocks on rayon's threads rather than whole, with each large fully
    /// connected product split by columns ([`Net::prefers_row_blocks`]).
    fn split_rows(&self) -> bool {
        match &self.inner {
            ModelInner::Deen(m) => m.net.prefers_row_blocks(),
            ModelInner::Mdae(m) => m.net.prefers_row_blocks(),
            ModelInner::Uvb(v) | ModelInner::Vae(v) => v.prefers_row_blocks(),
            ModelInner::EbmVae(e) => e.vae.prefers_row_blocks(),
            ModelInner::Classifier(_) => true,
        }
    }
}

impl ScoreModel for Model {
    fn sigma(&self) -> f64 {
        self.meta.sigma
    }

    fn measurements(&self) -> usize {
        self.meta.measurements
    }

    fn data_dim(&self) -> usize {
        self.meta.data.dim()
    }

    fn has_energy(&self) -> bool {
        matches!(self.inner, ModelInner::Deen(_) | ModelInner::Uvb(_))
    }

    fn has_score(&self) -> bool {
        matches!(
            self.inner,
            ModelInner::Deen(_) | ModelInner::Uvb(_) | ModelInner::Mdae(_)
        )
    }

    fn energy_and_score(
        &self,
        y: &Tensor,
        rng: &mut Rng,
    ) -> sampling::Result<(Option<Tensor>, Tensor)> {
        self.model_energy_and_score(y, rng)
            .map_err(sampling::Error::model)
    }

    fn jump(&self, y: &Tensor, rng: &mut Rng) -> sampling::Result<Tensor> {
        self.model_jump(y, rng).map_err(sampling::Error::model)
    }
}

// The bodies of `impl ScoreModel for Model`, in this crate's `Error`: the samplers carry it boxed and hand it back
// unchanged (`From<sampling::Error> for Error`).
impl Model {
    fn model_energy_and_score(
        &self,
        y: &Tensor,
        rng: &mut Rng,
    ) -> Result<(Option<Tensor>, Tensor)> {
        self.check_input(y, self.dim())?;
        // Rows are independent: each block of chains is scored on its own thread (crate::parallel).
        match &self.inner {
            ModelInner::Deen(m) => {
                let (f, s) = per_rows2(self.split_rows(), y, |_, y| m.energy_and_score(y))?;
                Ok((Some(f), s))
            }
            ModelInner::Uvb(v) => {
                let (f, g) = v.uvb_energy_and_grad(y, rng)?;
                Ok((Some(f), g.neg()?))
            }
            ModelInner::Mdae(m) => Ok((None, per_rows(self.split_rows(), y, |y| m.score(y))?)),
            _ => Err(Error::Unsupported(format!(
                "a {} model has no score of y; use it as a denoiser",
                self.kind().as_str()
            ))),
        }
    }

    fn model_jump(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.check_input(y, self.dim())?;
        match &self.inner {
            ModelInner::Deen(m) => per_rows(self.split_rows(), y, |y| m.jump(y)),
            ModelInner::Uvb(v) => {
                let (_, g) = v.uvb_energy_and_grad(y, rng)?;
                let s2 = self.meta.sigma * self.meta.sigma;
                Ok((y - (g * s2)?)?)
            }
            ModelInner::Vae(v) => v.reconstruct(y, rng),
            ModelInner::EbmVae(e) => e.vae.reconstruct(y, rng),
            ModelInner::Mdae(m) => per_rows(self.split_rows(), y, |y| m.jump(y)),
            ModelInner::Classifier(_) => {
                Err(Error::Unsupported("a classifier is not a denoiser".into()))
            }
        }
    }
}

/// Loads checkpoint tensors onto `device` as plain (non-trainable) f32 tensors, keyed by name.
pub fn tensors_on_device(
    ckpt: &Checkpoint,
    device: &Device,
) -> Result<std::collections::HashMap<String, Tensor>> {
    let mut out = std::collections::HashMap::new();
    for (name, t) in &ckpt.tensors {
        let tensor =
            Tensor::from_slice(&t.data, t.shape.as_slice(), device)?.to_dtype(DType::F32)?;
        out.insert(name.clone(), tensor);
    }
    Ok(out)
}

/// The analytic mixture as a score model: exact energy, score and jump (computed in f64 on the CPU).
impl ScoreModel for mixture::GaussianMixture {
    fn sigma(&self) -> f64 {
        self.sigmas().first().copied().unwrap_or(1.0)
    }

    fn measurements(&self) -> usize {
        mixture::GaussianMixture::measurements(self)
    }

    fn data_dim(&self) -> usize {
        self.dim()
    }

    fn has_energy(&self) -> bool {
        true
    }

    fn has_score(&self) -> bool {
        true
    }

    fn energy_and_score(
        &self,
        y: &Tensor,
        _rng: &mut Rng,
    ) -> sampling::Result<(Option<Tensor>, Tensor)> {
        mixture_energy_and_score(self, y).map_err(sampling::Error::model)
    }

    /// The exact posterior mean `E[X | y_1..y_M]`.
    fn jump(&self, y: &Tensor, _rng: &mut Rng) -> sampling::Result<Tensor> {
        mixture_jump(self, y).map_err(sampling::Error::model)
    }
}

/// [`ScoreModel::energy_and_score`] of the mixture, in this crate's `Error` (as for `Model`).
fn mixture_energy_and_score(
    mix: &mixture::GaussianMixture,
    y: &Tensor,
) -> Result<(Option<Tensor>, Tensor)> {
    let (n, dim) = y.dims2()?;
    let flat = y.flatten_all()?.to_vec1::<f32>()?;
    let e: Vec<f32> = mix
        .energy_batch(&flat, n)?
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let s = mix.score_batch(&flat, n)?;
    Ok((
        Some(Tensor::from_vec(e, n, y.device())?),
        Tensor::from_vec(s, (n, dim), y.device())?,
    ))
}

/// [`ScoreModel::jump`] of the mixture (the exact posterior mean), in this crate's `Error`.
fn mixture_jump(mix: &mixture::GaussianMixture, y: &Tensor) -> Result<Tensor> {
    let (n, _) = y.dims2()?;
    let flat = y.flatten_all()?.to_vec1::<f32>()?;
    let x = mix.posterior_mean_batch(&flat, n)?;
    Ok(Tensor::from_vec(x, (n, mix.dim()), y.device())?)
}
