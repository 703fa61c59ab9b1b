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
