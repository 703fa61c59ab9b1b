//! The model kinds, one file each, behind one trait ([`ModelDef`]) and one registry ([`MODELS`]).
//!
//! **Adding a model kind** takes a new file `src/models/kinds/<kind>.rs` holding
//! - its networks, built on [`crate::nn::Net`], and an implementation of [`KindModel`] for them (energy and score,
//!   jump, cost, the random draws and loss of training, and optional extras for evaluation and parity);
//! - a unit struct implementing [`ModelDef`] (its [`ModelKind`], facts such as whether it has an energy or a score,
//!   how it is built from a checkpoint, its default architecture and its place among the app's denoisers);
//! - its constant `impl ModelKind { pub const <KIND>: ModelKind = ModelKind::new("<kind>"); }`, the name stored in
//!   checkpoints;
//!
//! plus one line in the `registry!` invocation below. Everything else reads the registry: reading checkpoints
//! ([`Checkpoint::from_bytes`], [`Checkpoint::load`], [`inspect`]: the `kind` must be registered), [`ModelKind`]'s
//! JSON and [`ModelKind::parse`] (`walkjump train --kind`), [`Model::build`](super::Model::build), training
//! (`train`: draws, loss, default architecture), evaluation (`run::evaluate`), `parity`/`walkjump probe` and the app's
//! choice of default denoiser.
//!
//! A definition that is not registered still builds, scores and trains through
//! [`Model::build_as`](super::Model::build_as) and `train::trainable_model_as`: only the look-ups by name (checkpoint
//! files, JSON, the CLI) need the registry.

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::{Arch, LatentVae, ZMode};
use crate::checkpoint::{Checkpoint, CheckpointError, Metadata, ModelKind};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Declares the kind files and the registry: one `file::Type` per kind, in the order of error messages and help.
macro_rules! registry {
    ($($file:ident :: $def:ident),+ $(,)?) => {
        $(
            pub mod $file;
            pub use $file::$def;
        )+
        /// Every registered model kind, in the order of error messages and help.
        pub static MODELS: &[&dyn ModelDef] = &[$(&$def),+];
    };
}

registry! {
    deen::DeenKind,
    uvb::UvbKind,
    sigma_vae::SigmaVaeKind,
    alpha_vae::AlphaVaeKind,
    vae::VaeKind,
    mdae::MdaeKind,
    ebm_vae::EbmVaeKind,
    classifier::ClassifierKind,
}

/// Everything about one model kind that does not need its networks. Implemented by a unit struct in the kind's own
/// file and listed once in the registry; see the module docs.
pub trait ModelDef: Send + Sync + 'static {
    /// Its kind: the name stored in checkpoints (`"kind": "deen"`; lower-case snake_case, unique in the registry)
    /// and whether its checkpoints may have `sigma = 0`.
    fn kind(&self) -> ModelKind;

    /// Whether it has an energy `f(y)`: [`KindModel::energy_and_score`] returns one.
    fn has_energy(&self) -> bool {
        false
    }

    /// Whether it has a score of `y`, so that chains can walk on it ([`KindModel::energy_and_score`]).
    fn has_score(&self) -> bool {
        false
    }

    /// Whether it maps a noisy `y` to a clean estimate ([`KindModel::jump`]): every kind but a classifier.
    fn is_denoiser(&self) -> bool {
        true
    }

    /// Whether it takes more than one measurement (`measurements > 1` in its checkpoint).
    fn multi_measurement(&self) -> bool {
        false
    }

    /// Whether training needs labels (a classifier).
    fn needs_labels(&self) -> bool {
        false
    }

    /// Whether it is trained on clean data with an ELBO and denoises through its latent (`run::is_vae_kind`).
    fn elbo_trained(&self) -> bool {
        false
    }

    /// Its place in the app's Denoise comparison and default denoiser choice: lower comes first. The three approaches
    /// the tool compares first are sigma-VAE 0, DEEN 1, UVB 2; then alpha-VAE 3, VAE 4, GRBM-prior VAE 5, MDAE 6,
    /// classifier 7.
    fn denoiser_rank(&self) -> u8;

    /// The architecture `walkjump train` uses without `--arch`: small enough to train on two CPU cores in minutes
    /// and to sample live.
    fn default_arch(&self) -> Arch;

    /// Builds its networks with parameters from `vb` (the names a checkpoint holds) for data of `meta.data`'s shape.
    /// [`Model::build_as`](super::Model::build_as) has already checked the measurements (one unless
    /// [`ModelDef::multi_measurement`]) and that `sigma` is positive unless the kind allows 0. Refuses an
    /// architecture it cannot build with [`Error::Architecture`] (one line).
    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>>;
}

/// The networks of one model kind, built from a checkpoint by [`ModelDef::build`]: what sampling, training,
/// evaluation and parity ask of them. Tensors are `y: [N, M*d]` (noisy, channel-major over the M measurements) and
/// `x: [N, d]` (clean).
///
/// Batches come whole: an implementation cuts them into row blocks itself where that pays
/// (`crate::parallel::per_rows`), and takes its random draws from `rng` for the whole batch first, in a fixed
/// order, so that the same seed gives the same bytes.
pub trait KindModel: fmt::Debug + Send + Sync + Any {
    /// `y: [N, M*d] -> (energy [N] where the kind [has one](ModelDef::has_energy), score [N, M*d])`. Called only for
    /// kinds that [have a score](ModelDef::has_score).
    fn energy_and_score(&self, y: &Tensor, rng: &mut Rng) -> Result<(Option<Tensor>, Tensor)> {
        let _ = (y, rng);
        Err(Error::Unsupported("this model has no score of y".into()))
    }

    /// The jump (denoised estimate) `y: [N, M*d] -> x_hat: [N, d]`. Called only for
    /// [denoisers](ModelDef::is_denoiser).
    fn jump(&self, y: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let _ = (y, rng);
        Err(Error::Unsupported("this model is not a denoiser".into()))
    }

    /// Multiply-adds of one score evaluation (or jump, for kinds without a score) for one chain.
    fn macs_per_score(&self) -> usize;

    /// How it picks its latent `z`, for kinds that draw one (`None` for the others).
    fn z_mode(&self) -> Option<ZMode> {
        None
    }

    /// Chooses how it picks `z` (no effect on kinds without a latent).
    fn set_z_mode(&mut self, mode: ZMode) {
        let _ = mode;
    }

    /// The random draws behind its training loss on a batch `x: [B, d]`, taken from `rng` in a fixed order, each
    /// row-aligned with the batch (see [`Draws`]).
    fn draws(&self, x: &Tensor, rng: &mut Rng) -> Result<Draws>;

    /// Its training objective on `x: [B, d]` (with `labels: [B]` for a kind that [needs them](ModelDef::needs_labels))
    /// with its draws given, averaged over the batch: a scalar, differentiable in the weights.
    fn loss(&self, x: &Tensor, labels: Option<&Tensor>, draws: &Draws) -> Result<Tensor>;

    /// For `run::evaluate`: the per-image error `[N]` of its own clean estimates of `y: [N, M*d]` against the tiled
    /// clean images `xt: [N, M*d]`, when it has its own measure (MDAE: the mean over its M estimates). `None`: the
    /// jump's squared error `||jump(y) - x||^2`.
    fn eval_error(&self, y: &Tensor, xt: &Tensor) -> Result<Option<Tensor>> {
        let _ = (y, xt);
        Ok(None)
    }

    /// Its encoders and decoder, for the kinds built on a [`LatentVae`] (`run::vae_statistics`).
    fn latent_vae(&self) -> Option<&LatentVae> {
        None
    }

    /// Deterministic outputs beyond energy, score and jump that `parity` and `walkjump probe` compare, on
    /// `y: [N, M*d]` (z = mean set by the caller), by name.
    fn extra_outputs(&self, y: &Tensor) -> Result<Vec<(&'static str, Tensor)>> {
        let _ = y;
        Ok(Vec::new())
    }
}

/// The random draws behind one training loss, each row-aligned with the batch (`[B, k]`), so that the loss of a block
/// of rows can be computed on its own (`train::batch_loss_and_grads`).
#[derive(Clone, Debug, Default)]
pub struct Draws {
    /// Gaussian draws `[B, k]`, in the order the loss uses them.
    pub gauss: Vec<Tensor>,
    /// Latent draws (`LatentVae::z_noise`): a list of `[B, dz]`, `None` for the posterior mean.
    pub z: Vec<Option<Tensor>>,
}

impl Draws {
    /// `width` standard normals per row of `x: [B, d]`, `[B, width]` in `x`'s dtype and device, from
    /// `rng.normal_vec(B * width)`.
    pub fn normals(x: &Tensor, width: usize, rng: &mut Rng) -> Result<Tensor> {
        let b = x.dim(0)?;
        Ok(
            Tensor::from_vec(rng.normal_vec(b * width), (b, width), x.device())?
                .to_dtype(x.dtype())?,
        )
    }

    /// Rows `start..start + len` of every draw.
    pub fn rows(&self, start: usize, len: usize) -> Result<Self> {
        Ok(Draws {
            gauss: self
                .gauss
                .iter()
                .map(|g| g.narrow(0, start, len))
                .collect::<candle_core::Result<_>>()?,
            z: LatentVae::narrow_noise(&self.z, start, len)?,
        })
    }

    /// The `i`-th Gaussian draw.
    pub fn gauss(&self, i: usize) -> Result<&Tensor> {
        self.gauss
            .get(i)
            .ok_or_else(|| Error::Param("missing noise draw".into()))
    }
}

/// The registered kinds, in registry order.
pub fn registered() -> &'static [ModelKind] {
    static KINDS: OnceLock<Vec<ModelKind>> = OnceLock::new();
    KINDS.get_or_init(|| MODELS.iter().map(|d| d.kind()).collect())
}

/// The registered definition of `kind`.
pub fn def(kind: ModelKind) -> Option<&'static dyn ModelDef> {
    MODELS.iter().copied().find(|d| d.kind() == kind)
}

/// The registered definition of `kind`, or the checkpoint layer's one-line error for an unknown kind.
pub fn def_or_err(kind: ModelKind) -> Result<&'static dyn ModelDef> {
    def(kind).ok_or_else(|| {
        Error::Checkpoint(CheckpointError::UnknownKind {
            value: kind.as_str().to_string(),
            valid: names_line(),
        })
    })
}

/// The registered names for a help or error line: `deen, uvb, sigma_vae, ...`.
pub fn names_line() -> String {
    registered()
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The registry's look-ups by name.
impl ModelKind {
    /// The registered kind named exactly `s` (snake_case, as in checkpoints); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::find(s, registered())
    }

    /// Every registered kind, in registry order.
    pub fn all() -> impl ExactSizeIterator<Item = ModelKind> {
        registered().iter().copied()
    }

    /// Its registered definition (`None` for a kind that is not registered).
    pub fn def(self) -> Option<&'static dyn ModelDef> {
        def(self)
    }
}

impl<'de> serde::Deserialize<'de> for ModelKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = ModelKind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model kind name")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<ModelKind, E> {
                ModelKind::parse(v).ok_or_else(|| E::unknown_variant(v, names()))
            }
        }
        d.deserialize_str(Name)
    }
}

/// The registered names, in registry order.
fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| registered().iter().map(|k| k.as_str()).collect())
}

/// Reading checkpoints whose `kind` must be registered.
impl Checkpoint {
    /// [`Checkpoint::from_bytes_in`] the registered kinds: parses and fully validates a checkpoint held in memory.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, CheckpointError> {
        Self::from_bytes_in(bytes, registered())
    }

    /// [`Checkpoint::load_in`] the registered kinds: reads and validates a checkpoint file (content errors wrapped in
    /// [`CheckpointError::InFile`] with the path).
    pub fn load(path: &Path) -> std::result::Result<Self, CheckpointError> {
        Self::load_in(path, registered())
    }
}

/// [`crate::checkpoint::inspect_in`] the registered kinds: a validated checkpoint as a human-readable report.
pub fn inspect(bytes: &[u8]) -> std::result::Result<String, CheckpointError> {
    crate::checkpoint::inspect_in(bytes, registered())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_in_order() {
        let mut seen = std::collections::BTreeSet::new();
        for d in MODELS {
            let n = d.kind().as_str();
            assert!(
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n:?}"
            );
            assert!(seen.insert(n), "{n} is registered twice");
            assert_eq!(ModelKind::parse(n), Some(d.kind()));
            assert_eq!(def(d.kind()).map(|x| x.kind()), Some(d.kind()));
        }
        assert_eq!(
            names_line(),
            "deen, uvb, sigma_vae, alpha_vae, vae, mdae, ebm_vae, classifier"
        );
        assert_eq!(ModelKind::parse("Deen"), None);
    }

    #[test]
    fn facts_agree_with_the_kinds() {
        for d in MODELS {
            let k = d.kind();
            // Only a kind that does not denoise has no noise level.
            assert_eq!(k.allows_zero_sigma(), !d.is_denoiser(), "{k}");
            assert_eq!(d.needs_labels(), !d.is_denoiser(), "{k}");
            assert!(
                !d.has_energy() || d.has_score(),
                "{k}: an energy without a score"
            );
            assert!(
                !d.has_score() || d.is_denoiser(),
                "{k}: a score without a jump"
            );
        }
        let ranks: std::collections::BTreeSet<u8> =
            MODELS.iter().map(|d| d.denoiser_rank()).collect();
        assert_eq!(ranks.len(), MODELS.len(), "denoiser ranks are distinct");
    }
}
