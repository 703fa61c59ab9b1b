//! DEEN: an energy network `f_theta(y)`, score `-grad_y f`, jump `y - sigma^2 grad_y f` (REFERENCE.md §1-2).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::nn::{Net, NetConfig};

/// Energy network with a scalar readout, built under the prefix `net`.
#[derive(Clone, Debug)]
pub struct Deen {
    /// `f: [N, d] -> [N, 1]`
    pub net: Net,
    /// Noise level the model was trained for.
    pub sigma: f64,
}

impl Deen {
    /// Builds the energy net for inputs of `shape = (c, h, w)`.
    pub fn new(
        vb: &VarBuilder,
        cfg: &NetConfig,
        shape: (usize, usize, usize),
        sigma: f64,
    ) -> Result<Self> {
        Ok(Self {
            net: Net::new(&vb.pp("net"), cfg, shape, 1)?,
            sigma,
        })
    }

    /// `y: [N, d] -> (f(y): [N], score = -grad_y f: [N, d])`.
    pub fn energy_and_score(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let (f, g) = self.net.value_and_grad(y)?;
        Ok((f, g.neg()?))
    }

    /// `y: [N, d] -> x_hat(y) = y - sigma^2 grad f: [N, d]`, differentiable in the weights (for training).
    pub fn jump(&self, y: &Tensor) -> Result<Tensor> {
        let (_, g) = self.net.value_and_grad(y)?;
        Ok((y - (g * (self.sigma * self.sigma))?)?)
    }
}
