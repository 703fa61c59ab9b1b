//! Elementwise activations with their derivatives.

use candle_core::Tensor;

use crate::nn::Result;
use crate::nn::kernels::{ActInPlace, ActPair, ActValue, fused_path};
use crate::nn::layers::{sigmoid, silu_with_grad};

/// Elementwise activations: each returns its value and its derivative.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// SiLU.
    Silu,
    /// ReLU.
    Relu,
    /// Leaky ReLU with this slope.
    LeakyRelu(f64),
    /// ELU with this alpha.
    Elu(f64),
    /// GELU, erf form.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// Softplus with this beta.
    Softplus(f64),
    /// tanh.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// The error function.
    Erf,
}

impl Activation {
    /// `h -> a(h)` alone, for a forward pass that no VJP follows: one pass without the derivative on the sampling
    /// path, the value of [`Activation::apply`] elsewhere.
    pub fn value(self, h: &Tensor) -> Result<Tensor> {
        if fused_path(h) {
            return Ok(h.contiguous()?.apply_op1_no_bwd(&ActValue(self))?);
        }
        Ok(self.apply(h)?.0)
    }

    /// [`Activation::value`] written over `h` itself on the CPU fast path: for a fresh value that nothing else
    /// reads or shares storage with (the caller's promise). Elsewhere the same as `value`.
    pub fn value_in_place(self, h: Tensor) -> Result<Tensor> {
        if fused_path(&h) && h.is_contiguous() {
            h.inplace_op1(&ActInPlace(self))?;
            return Ok(h);
        }
        self.value(&h)
    }

    /// `h -> (a(h), a'(h))`, both of `h`'s shape, differentiable in `h` (for training through the VJP).
    pub fn apply(self, h: &Tensor) -> Result<(Tensor, Tensor)> {
        let dt = h.dtype();
        if !matches!(self, Activation::Silu) && fused_path(h) {
            // Sampling: value and derivative in one pass (SiLU has its own SIMD kernel).
            let pair = h.contiguous()?.apply_op1_no_bwd(&ActPair(self))?;
            return Ok((pair.get(0)?, pair.get(1)?));
        }
        Ok(match self {
            Activation::Silu => silu_with_grad(h)?,
            Activation::Relu => {
                let m = h.gt(0.0)?.to_dtype(dt)?;
                ((h * &m)?, m)
            }
            Activation::LeakyRelu(alpha) => {
                let d = h.gt(0.0)?.to_dtype(dt)?.affine(1.0 - alpha, alpha)?;
                ((h * &d)?, d)
            }
            Activation::Elu(alpha) => {
                let m = h.gt(0.0)?.to_dtype(dt)?;
                let e = h.minimum(0.0)?.exp()?;
                let a = (h.relu()? + (e.affine(alpha, -alpha))?)?;
                let d = (&m + ((m.affine(-1.0, 1.0)? * e)? * alpha)?)?;
                (a, d)
            }
            Activation::Gelu => {
                let cdf = (h * std::f64::consts::FRAC_1_SQRT_2)?
                    .erf()?
                    .affine(0.5, 0.5)?;
                let pdf = (h.sqr()? * -0.5)?.exp()?
                    * (0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2);
                let a = (h * &cdf)?;
                let d = (cdf + (h * pdf?)?)?;
                (a, d)
            }
            Activation::GeluTanh => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                let h2 = h.sqr()?;
                let u = ((h * &h2)?.affine(0.044715 * c, 0.0)? + (h * c)?)?;
                let t = u.tanh()?;
                let half_one_plus_t = t.affine(0.5, 0.5)?;
                let a = (h * &half_one_plus_t)?;
                let du = h2.affine(3.0 * 0.044715 * c, c)?;
                let d = (&half_one_plus_t + ((h * t.sqr()?.affine(-0.5, 0.5)?)? * du)?)?;
                (a, d)
            }
            Activation::Softplus(beta) => {
                let bh = (h * beta)?;
                let a = ((bh.relu()? + bh.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)? / beta)?;
                (a, sigmoid(&bh)?)
            }
            Activation::Tanh => {
                let t = h.tanh()?;
                let d = t.sqr()?.affine(-1.0, 1.0)?;
                (t, d)
            }
            Activation::Sigmoid => {
                let s = sigmoid(h)?;
                let d = (&s * s.affine(-1.0, 1.0)?)?;
                (s, d)
            }
            Activation::Erf => {
                // erf'(h) = 2 / sqrt(pi) exp(-h^2)
                let d = (h.sqr()?.neg()?.exp()? * std::f64::consts::FRAC_2_SQRT_PI)?;
                (h.erf()?, d)
            }
        })
    }
}
