//! The digit classifier (`classifier`): a network `x: [N, d] -> logits [N, classes]` trained with cross-entropy on
//! labelled clean images. It does not denoise: the diagnostics (`quality`, class histograms) use it on samples, and
//! its checkpoints may have `sigma = 0`.

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;

use super::{Draws, KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::{Error, Result};
use crate::models::Arch;
use crate::nn::{Net, NetConfig};
use crate::rng::Rng;

impl ModelKind {
    /// Classifier (`classifier`); the only kind allowed `sigma = 0`.
    pub const CLASSIFIER: ModelKind = ModelKind::new("classifier").with_zero_sigma();
}

/// The classifier kind.
pub struct ClassifierKind;

impl ModelDef for ClassifierKind {
    fn kind(&self) -> ModelKind {
        ModelKind::CLASSIFIER
    }

    fn is_denoiser(&self) -> bool {
        false
    }

    fn needs_labels(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        7
    }

    fn default_arch(&self) -> Arch {
        Arch {
            classes: Some(10),
            ..Arch::net(NetConfig::Conv {
                channels: vec![32, 64],
                strides: vec![2, 2],
                kernel: 3,
                fc: vec![128],
            })
        }
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        let classes = Arch::require(arch.classes, "classes", meta.kind)?;
        if !(2..=1000).contains(&classes) {
            return Err(Error::Architecture(format!("{classes} classes")));
        }
        Ok(Box::new(Classifier {
            net: Net::new(&vb.pp("net"), &arch.net, meta.data.shape(), classes)?,
        }))
    }
}

/// A classifier `x: [N, d] -> logits [N, classes]`, built under the prefix `net`.
#[derive(Clone, Debug)]
pub struct Classifier {
    /// The network.
    pub net: Net,
}

impl Classifier {
    /// `x: [N, d] -> logits: [N, classes]`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.net.forward(x)?)
    }

    /// `x: [N, d] -> predicted class per row`.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<u32>> {
        Ok(self.logits(x)?.argmax(D::Minus1)?.to_vec1::<u32>()?)
    }
}

impl KindModel for Classifier {
    fn macs_per_score(&self) -> usize {
        self.net.macs()
    }

    /// None: the loss is deterministic.
    fn draws(&self, _x: &Tensor, _rng: &mut Rng) -> Result<Draws> {
        Ok(Draws::default())
    }

    /// Cross-entropy of the logits against `labels: [B]` (u32).
    fn loss(&self, x: &Tensor, labels: Option<&Tensor>, _draws: &Draws) -> Result<Tensor> {
        let labels = labels.ok_or_else(|| Error::Data("a classifier needs labels".into()))?;
        Ok(candle_nn::loss::cross_entropy(&self.logits(x)?, labels)?)
    }
}
