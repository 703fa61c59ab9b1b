//! DEEN (`deen`): an energy network `f_theta(y)`, score `-grad_y f`, jump `y - sigma^2 grad_y f` (REFERENCE.md
//! §1-2), trained on the denoising loss `||x - jump(x + sigma eps)||^2`.

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;

use super::{Draws, KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::Result;
use crate::models::Arch;
use crate::nn::{Net, NetConfig};
use crate::parallel::{per_rows, per_rows2};
use crate::rng::Rng;

impl ModelKind {
    /// Deep energy estimator network (`deen`).
    pub const DEEN: ModelKind = ModelKind::new("deen");
}

/// The DEEN kind.
pub struct DeenKind;

impl ModelDef for DeenKind {
    fn kind(&self) -> ModelKind {
        ModelKind::DEEN
    }

    fn has_energy(&self) -> bool {
        true
    }

    fn has_score(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        1
    }

    fn default_arch(&self) -> Arch {
        Arch {
            quadratic: true,
            ..Arch::net(NetConfig::Mlp {
                hidden: vec![1024, 1024],
            })
        }
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        let s = &meta.data;
        let shape = (s.channels, s.height, s.width);
        Ok(Box::new(Deen::new(
            vb,
            &arch.net,
            shape,
            meta.sigma,
            arch.quadratic,
        )?))
    }
}

/// Energy network with a scalar readout, built under the prefix `net`.
#[derive(Clone, Debug)]
pub struct Deen {
    /// `f: [N, d] -> [N, 1]`
    pub net: Net,
    /// Noise level the model was trained for.
    pub sigma: f64,
    /// Whether the energy includes `||y||^2 / (2 sigma^2)` on top of the network.
    pub quadratic: bool,
}

impl Deen {
    /// Builds the energy net for inputs of `shape = (c, h, w)`.
    pub fn new(
        vb: &VarBuilder,
        cfg: &NetConfig,
        shape: (usize, usize, usize),
        sigma: f64,
        quadratic: bool,
    ) -> Result<Self> {
        Ok(Self {
            net: Net::new(&vb.pp("net"), cfg, shape, 1)?,
            sigma,
            quadratic,
        })
    }

    /// `y: [N, d] -> (f(y): [N], grad_y f: [N, d])`.
    pub fn energy_and_grad(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let (f, g) = self.net.value_and_grad(y)?;
        if !self.quadratic {
            return Ok((f, g));
        }
        let inv_s2 = 1.0 / (self.sigma * self.sigma);
        let f = (f + (y.sqr()?.sum(candle_core::D::Minus1)? * (0.5 * inv_s2))?)?;
        Ok((f, (g + (y * inv_s2)?)?))
    }

    /// `y: [N, d] -> (f(y): [N], score = -grad_y f: [N, d])`.
    pub fn energy_and_score(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let (f, g) = self.energy_and_grad(y)?;
        Ok((f, g.neg()?))
    }

    /// `y: [N, d] -> x_hat(y) = y - sigma^2 grad f: [N, d]`, differentiable in the weights (for training).
    pub fn jump(&self, y: &Tensor) -> Result<Tensor> {
        let s2 = self.sigma * self.sigma;
        if self.quadratic {
            // y - sigma^2 (grad net + y / sigma^2) = -sigma^2 grad net, without the cancellation.
            let (_, g) = self.net.value_and_grad(y)?;
            return Ok((g * -s2)?);
        }
        let (_, g) = self.net.value_and_grad(y)?;
        Ok((y - (g * s2)?)?)
    }
}

impl KindModel for Deen {
    /// Rows are independent: each block of chains is scored on its own thread (crate::parallel).
    fn energy_and_score(&self, y: &Tensor, _rng: &mut Rng) -> Result<(Option<Tensor>, Tensor)> {
        let (f, s) = per_rows2(self.net.prefers_row_blocks(), y, |_, y| {
            Deen::energy_and_score(self, y)
        })?;
        Ok((Some(f), s))
    }

    fn jump(&self, y: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        per_rows(self.net.prefers_row_blocks(), y, |y| Deen::jump(self, y))
    }

    /// Forward + VJP ~ 3x forward, counted as 2x.
    fn macs_per_score(&self) -> usize {
        2 * self.net.macs()
    }

    /// One Gaussian `eps: [B, d]`.
    fn draws(&self, x: &Tensor, rng: &mut Rng) -> Result<Draws> {
        Ok(Draws {
            gauss: vec![Draws::normals(x, x.dim(1)?, rng)?],
            z: Vec::new(),
        })
    }

    /// `mean_b ||x - jump(x + sigma eps)||^2`.
    fn loss(&self, x: &Tensor, _labels: Option<&Tensor>, draws: &Draws) -> Result<Tensor> {
        let y = (x + (draws.gauss(0)? * self.sigma)?)?;
        Ok((x - Deen::jump(self, &y)?)?
            .sqr()?
            .sum(D::Minus1)?
            .mean(0)?)
    }
}
