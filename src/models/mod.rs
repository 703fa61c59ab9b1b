//! Models built from checkpoints, and the analytic Gaussian mixture. The model kinds (DEEN, UVB, the VAE family,
//! MDAE, the GRBM-prior VAE, a classifier) are one file each under `kinds/`, listed once in its registry
//! ([`kinds::MODELS`]); a [`Model`] is a checkpoint's metadata plus the networks its kind built, and reaches them only
//! through the [`ModelDef`] and [`KindModel`] traits. All tensors are flat: a batch of noisy inputs is `y: [N, M*d]`
//! (channel-major over the M measurements), clean images are `x: [N, d]` with `d = channels * height * width`.

pub mod kinds;
pub mod load;
pub mod vae;

pub use kinds::{deen, mdae};

// The checkpoint format and the analytic mixture sit at the bottom of the crate (`src/checkpoint/`,
// `src/mixture.rs`), below `error` and `data`; they stay reachable here under their old paths.
pub use crate::{checkpoint, mixture};

use std::any::Any;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::NetConfig;
use crate::rng::Rng;
use crate::sampling;
pub use crate::sampling::ScoreModel;
pub use checkpoint::{Checkpoint, DataSpec, Metadata, ModelKind};
pub use deen::Deen;
pub use kinds::classifier::Classifier;
pub use kinds::ebm_vae::{EbmVae, Grbm};
pub use kinds::uvb::Uvb;
pub use kinds::{Draws, KindModel, ModelDef, inspect};
pub use mdae::Mdae;
pub use vae::{LatentVae, VaeDecoder, ZMode};

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
    /// DEEN training only: a quarter of each batch is noised at `s sigma` with `s` in `[1, shell_scale]` instead
    /// of `sigma`, so that the jump also learns to point back to the data from the wider shells around it, which a
    /// chain can reach but sigma-noised training data (a thin shell at radius `sigma sqrt(d)`) never shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_scale: Option<f64>,
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
            shell_scale: None,
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

    /// `v`, or the one-line error that a `kind` checkpoint needs `arch.{what}`.
    pub fn require<T: Copy>(v: Option<T>, what: &str, kind: ModelKind) -> Result<T> {
        v.ok_or_else(|| {
            Error::Architecture(format!("a {} checkpoint needs arch.{what}", kind.as_str()))
        })
    }
}

/// A model built from a checkpoint, with its metadata: the networks its kind built, reached through [`KindModel`].
pub struct Model {
    /// The checkpoint's metadata.
    pub meta: Metadata,
    /// The parsed architecture.
    pub arch: Arch,
    /// sha256 of the checkpoint file (empty for models not loaded from a file).
    pub sha256: String,
    def: &'static dyn ModelDef,
    net: Box<dyn KindModel>,
    device: Device,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("meta", &self.meta)
            .field("arch", &self.arch)
            .field("sha256", &self.sha256)
            .field("net", &self.net)
            .field("device", &self.device)
            .finish()
    }
}

impl Model {
    /// Builds a model of `meta.kind` (a registered kind) whose parameters come from `vb`.
    pub fn build(meta: Metadata, vb: &VarBuilder, device: &Device) -> Result<Self> {
        let def = kinds::def_or_err(meta.kind)?;
        Self::build_as(def, meta, vb, device)
    }

    /// Builds a model of the kind `def` (registered or not; `meta.kind` must be its kind) whose parameters come from
    /// `vb`: checks the measurements and sigma against the kind, then lets `def` build its networks.
    pub fn build_as(
        def: &'static dyn ModelDef,
        meta: Metadata,
        vb: &VarBuilder,
        device: &Device,
    ) -> Result<Self> {
        let kind = meta.kind;
        if def.kind() != kind {
            return Err(Error::Architecture(format!(
                "the metadata says kind {kind}, the definition builds {}",
                def.kind()
            )));
        }
        let arch = Arch::from_json(&meta.arch)?;
        let d = meta.data.dim();
        let m = meta.measurements;
        if m != 1 && !def.multi_measurement() {
            return Err(Error::Architecture(format!(
                "a {} model has one measurement, the checkpoint says {m}",
                kind.as_str()
            )));
        }
        let needs_sigma = !kind.allows_zero_sigma();
        if needs_sigma && !(meta.sigma > 0.0 && meta.sigma.is_finite()) {
            return Err(Error::Architecture(format!(
                "sigma must be positive for a {} model",
                kind.as_str()
            )));
        }
        let net = def.build(&meta, &arch, vb)?;
        if d == 0 {
            return Err(Error::Architecture("empty data shape".into()));
        }
        Ok(Self {
            meta,
            arch,
            sha256: String::new(),
            def,
            net,
            device: device.clone(),
        })
    }

    /// The model's kind.
    pub fn kind(&self) -> ModelKind {
        self.meta.kind
    }

    /// The definition of its kind.
    pub fn def(&self) -> &'static dyn ModelDef {
        self.def
    }

    /// Its networks.
    pub fn net(&self) -> &dyn KindModel {
        self.net.as_ref()
    }

    /// Its networks as the concrete type `T` of their kind (e.g. [`EbmVae`], [`Classifier`]), if they are one.
    pub fn net_as<T: KindModel>(&self) -> Option<&T> {
        let net: &dyn Any = self.net.as_ref();
        net.downcast_ref::<T>()
    }

    /// The device its tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Data shape `(channels, height, width)` of one clean sample.
    pub fn data_shape(&self) -> (usize, usize, usize) {
        self.meta.data.shape()
    }

    /// Whether the model maps a noisy `y` to a clean estimate (every kind but the classifier).
    pub fn is_denoiser(&self) -> bool {
        self.def.is_denoiser()
    }

    /// The classifier, if this is one.
    pub fn classifier(&self) -> Option<&Classifier> {
        self.net_as::<Classifier>()
    }

    /// Whether two jumps of the same y can differ: UVB and the VAE kinds drawing z from the posterior.
    pub fn is_stochastic(&self) -> bool {
        self.net.z_mode().is_some_and(|m| m != ZMode::Mean)
    }

    /// Chooses how UVB and the VAEs pick z (no effect on other kinds).
    pub fn set_z_mode(&mut self, mode: ZMode) {
        self.net.set_z_mode(mode);
    }

    /// Multiply-adds of one score evaluation for one chain (forward + VJP ~ 3x forward for energy nets).
    pub fn macs_per_score(&self) -> usize {
        self.net.macs_per_score()
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
        self.def.has_energy()
    }

    fn has_score(&self) -> bool {
        self.def.has_score()
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
        if !self.def.has_score() {
            return Err(Error::Unsupported(format!(
                "a {} model has no score of y; use it as a denoiser",
                self.kind().as_str()
            )));
        }
        self.net.energy_and_score(y, rng)
    }

    fn model_jump(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.check_input(y, self.dim())?;
        if !self.def.is_denoiser() {
            return Err(Error::Unsupported(format!(
                "a {} is not a denoiser",
                self.kind().as_str()
            )));
        }
        self.net.jump(y, rng)
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
