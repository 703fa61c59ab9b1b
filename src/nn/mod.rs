//! Layers whose input-gradient (vector-Jacobian product) is an explicit candle expression.
//!
//! The energy models need `grad_y f(y)`. Instead of running candle's autograd, each layer here returns a cache
//! from its forward pass and computes `g -> g * d(out)/d(in)` with ordinary tensor ops:
//! Linear `g W`, Conv2d `conv_transpose2d(g, W)`, SiLU `g * silu'(h)`. That makes the score
//! (a) fast for sampling: no graph, no weight gradients, and (b) differentiable by candle's ordinary first-order
//! backward, which is exactly what the DEEN / UVB training loss needs (DESIGN.md "Second-order gradients").

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Fully connected layer `x W^T + b`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out, in]`
    pub weight: Tensor,
    /// `[out]`
    pub bias: Tensor,
}

impl Linear {
    /// Loads `weight [out, in]` and `bias [out]` under the builder's prefix.
    pub fn new(vb: &VarBuilder, input: usize, output: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get((output, input), "weight")?,
            bias: vb.get(output, "bias")?,
        })
    }

    /// `x: [N, in] -> [N, out]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?)
    }

    /// `g: [N, out] -> g W: [N, in]`
    pub fn vjp(&self, g: &Tensor) -> Result<Tensor> {
        Ok(g.matmul(&self.weight)?)
    }
}

/// 2D convolution with square kernel, stride and padding.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[c_out, c_in, k, k]`
    pub weight: Tensor,
    /// `[c_out]`
    pub bias: Tensor,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Input `(channels, height, width)`.
    pub in_shape: (usize, usize, usize),
    /// Output `(channels, height, width)`.
    pub out_shape: (usize, usize, usize),
}

impl Conv2d {
    /// Loads `weight [c_out, c_in, k, k]` and `bias [c_out]`; `in_shape` is `(c_in, h, w)`.
    pub fn new(
        vb: &VarBuilder,
        in_shape: (usize, usize, usize),
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let (c_in, h, w) = in_shape;
        if kernel == 0 || stride == 0 || h + 2 * padding < kernel || w + 2 * padding < kernel {
            return Err(Error::Architecture(format!(
                "convolution with kernel {kernel}, stride {stride}, padding {padding} does not fit a {h}x{w} input"
            )));
        }
        let oh = (h + 2 * padding - kernel) / stride + 1;
        let ow = (w + 2 * padding - kernel) / stride + 1;
        Ok(Self {
            weight: vb.get((c_out, c_in, kernel, kernel), "weight")?,
            bias: vb.get(c_out, "bias")?,
            stride,
            padding,
            in_shape,
            out_shape: (c_out, oh, ow),
        })
    }

    /// `x: [N, c_in, h, w] -> [N, c_out, h', w']`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        Ok(y.broadcast_add(&self.bias.reshape((1, self.out_shape.0, 1, 1))?)?)
    }

    /// `g: [N, c_out, h', w'] -> [N, c_in, h, w]`, the adjoint of the convolution.
    pub fn vjp(&self, g: &Tensor) -> Result<Tensor> {
        let k = self.weight.dim(2)?;
        let (_, h, _) = self.in_shape;
        let (_, oh, _) = self.out_shape;
        // conv_transpose2d yields (oh - 1) * stride - 2 padding + k (+ output padding) rows.
        let base = (oh - 1) * self.stride + k;
        let output_padding = (h + 2 * self.padding).saturating_sub(base);
        Ok(g.conv_transpose2d(&self.weight, self.padding, output_padding, self.stride, 1)?)
    }
}

/// Logistic sigmoid written with `tanh` so that it is stable and differentiable for any input.
pub fn sigmoid(h: &Tensor) -> Result<Tensor> {
    Ok(((h * 0.5)?.tanh()? * 0.5)?.affine(1.0, 0.5)?)
}

/// SiLU `h * sigmoid(h)` and its derivative `sigmoid(h) (1 + h (1 - sigmoid(h)))`, sharing one sigmoid.
pub fn silu_with_grad(h: &Tensor) -> Result<(Tensor, Tensor)> {
    let s = sigmoid(h)?;
    let a = (h * &s)?;
    // silu'(h) = s + h s (1 - s) = s + a (1 - s) = s + a - a s
    let d = ((&s + &a)? - (&a * &s)?)?;
    Ok((a, d))
}

/// Architecture of a feed-forward network with SiLU hidden units and a linear readout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetConfig {
    /// Fully connected: input -> hidden[0] -> ... -> output.
    Mlp {
        /// Widths of the hidden layers.
        hidden: Vec<usize>,
    },
    /// Convolutions (no pooling) then fully connected layers.
    Conv {
        /// Output channels of each convolution.
        channels: Vec<usize>,
        /// Stride of each convolution (same length as `channels`).
        strides: Vec<usize>,
        /// Square kernel size (padding is `kernel / 2`).
        kernel: usize,
        /// Widths of the fully connected hidden layers after the convolutions.
        fc: Vec<usize>,
    },
}

impl NetConfig {
    /// Largest width accepted, so that a hostile checkpoint cannot ask for absurd layers.
    const MAX_WIDTH: usize = 1 << 16;

    fn validate(&self) -> Result<()> {
        let bad = |w: &usize| *w == 0 || *w > Self::MAX_WIDTH;
        match self {
            NetConfig::Mlp { hidden } => {
                if hidden.iter().any(bad) || hidden.len() > 32 {
                    return Err(Error::Architecture(format!("bad MLP widths {hidden:?}")));
                }
            }
            NetConfig::Conv {
                channels,
                strides,
                kernel,
                fc,
            } => {
                if channels.len() != strides.len()
                    || channels.iter().any(bad)
                    || fc.iter().any(bad)
                    || strides.iter().any(|s| *s == 0 || *s > 8)
                    || *kernel == 0
                    || *kernel > 15
                    || channels.len() + fc.len() > 32
                {
                    return Err(Error::Architecture(format!(
                        "bad ConvNet config: channels {channels:?}, strides {strides:?}, kernel {kernel}, fc {fc:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Layer {
    Conv(Conv2d),
    Linear(Linear),
}

/// A SiLU network `R^{c*h*w} -> R^out` with an explicit input-VJP.
#[derive(Clone, Debug)]
pub struct Net {
    layers: Vec<Layer>,
    /// Input `(channels, height, width)`; flat inputs have `h = w = 1`.
    in_shape: (usize, usize, usize),
    out_dim: usize,
}

/// What the backward pass needs from the forward pass: `silu'(h)` of each hidden layer.
#[derive(Debug)]
pub struct NetCache {
    dact: Vec<Tensor>,
}

impl Net {
    /// Builds the network under `vb` with layer prefixes `l0`, `l1`, ... (`l{i}.weight`, `l{i}.bias`).
    /// `in_shape` is `(channels, height, width)` of one input.
    pub fn new(
        vb: &VarBuilder,
        cfg: &NetConfig,
        in_shape: (usize, usize, usize),
        out_dim: usize,
    ) -> Result<Self> {
        cfg.validate()?;
        let mut layers = Vec::new();
        let (c, h, w) = in_shape;
        let mut flat = c * h * w;
        match cfg {
            NetConfig::Mlp { hidden } => {
                for &width in hidden {
                    layers.push(Layer::Linear(Linear::new(
                        &vb.pp(format!("l{}", layers.len())),
                        flat,
                        width,
                    )?));
                    flat = width;
                }
            }
            NetConfig::Conv {
                channels,
                strides,
                kernel,
                fc,
            } => {
                let mut shape = in_shape;
                for (&ch, &st) in channels.iter().zip(strides) {
                    let conv = Conv2d::new(
                        &vb.pp(format!("l{}", layers.len())),
                        shape,
                        ch,
                        *kernel,
                        st,
                        kernel / 2,
                    )?;
                    shape = conv.out_shape;
                    layers.push(Layer::Conv(conv));
                }
                flat = shape.0 * shape.1 * shape.2;
                for &width in fc {
                    layers.push(Layer::Linear(Linear::new(
                        &vb.pp(format!("l{}", layers.len())),
                        flat,
                        width,
                    )?));
                    flat = width;
                }
            }
        }
        layers.push(Layer::Linear(Linear::new(
            &vb.pp(format!("l{}", layers.len())),
            flat,
            out_dim,
        )?));
        Ok(Self {
            layers,
            in_shape,
            out_dim,
        })
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Input `(channels, height, width)`.
    pub fn in_shape(&self) -> (usize, usize, usize) {
        self.in_shape
    }

    /// Multiply-adds of one forward pass for one input (for FLOP counts in benchmarks).
    pub fn macs(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Linear(l) => l.weight.elem_count(),
                Layer::Conv(c) => c.weight.elem_count() * c.out_shape.1 * c.out_shape.2,
            })
            .sum()
    }

    /// `x: [N, c*h*w] -> [N, out]`, keeping what the VJP needs.
    pub fn forward_cached(&self, x: &Tensor) -> Result<(Tensor, NetCache)> {
        let n = x.dim(0)?;
        let (c, h, w) = self.in_shape;
        let mut dact = Vec::with_capacity(self.layers.len());
        let mut a = x.clone();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let pre = match layer {
                Layer::Conv(conv) => {
                    if a.rank() == 2 {
                        a = a.reshape((n, c, h, w))?;
                    }
                    conv.forward(&a)?
                }
                Layer::Linear(lin) => {
                    if a.rank() != 2 {
                        a = a.flatten_from(1)?;
                    }
                    lin.forward(&a)?
                }
            };
            if i == last {
                a = pre;
            } else {
                let (act, d) = silu_with_grad(&pre)?;
                dact.push(d);
                a = act;
            }
        }
        Ok((a, NetCache { dact }))
    }

    /// `x: [N, c*h*w] -> [N, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_cached(x)?.0)
    }

    /// Vector-Jacobian product: `g: [N, out] -> g * d(out)/d(x): [N, c*h*w]`.
    pub fn vjp(&self, cache: &NetCache, g: &Tensor) -> Result<Tensor> {
        let n = g.dim(0)?;
        let mut g = g.clone();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            if i < self.layers.len() - 1 {
                let d = cache
                    .dact
                    .get(i)
                    .ok_or_else(|| Error::Unsupported("network cache does not match".into()))?;
                if g.rank() != d.rank() {
                    g = g.reshape(d.shape())?;
                }
                g = (g * d)?;
            }
            g = match layer {
                Layer::Linear(lin) => lin.vjp(&g)?,
                Layer::Conv(conv) => {
                    if g.rank() == 2 {
                        let (co, oh, ow) = conv.out_shape;
                        g = g.reshape((n, co, oh, ow))?;
                    }
                    conv.vjp(&g)?
                }
            };
        }
        Ok(g.flatten_from(1)?)
    }

    /// Scalar network (`out = 1`): `f(x): [N]` and `grad_x f: [N, c*h*w]`.
    pub fn value_and_grad(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (out, cache) = self.forward_cached(x)?;
        let ones = Tensor::ones(out.shape(), out.dtype(), out.device())?;
        let g = self.vjp(&cache, &ones)?;
        Ok((out.squeeze(D::Minus1)?, g))
    }
}
