//! Networks with explicit input-gradients (vector-Jacobian products).
//!
//! The energy models need `grad_y f(y)`. Instead of running candle's autograd, every op of a network returns
//! what its backward pass needs and computes `g -> g * d(out)/d(in)` with ordinary tensor ops: Linear `g W`,
//! Conv2d `conv_transpose2d(g, W)` (or GEMM + col2im on the CPU), an activation `g * a'(h)`. That makes the
//! score (a) fast for sampling: no autograd graph, no weight gradients, and (b) differentiable by candle's ordinary
//! first-order backward, which is exactly what the DEEN / UVB training loss needs (DESIGN.md "Second-order
//! gradients").
//!
//! - [`layers`]: Linear and Conv2d with their CPU fast paths, SiLU / sigmoid.
//! - [`graph`]: the layer graph every network runs on ([`GraphSpec`] -> [`Graph`]), with all other ops.
//! - [`kernels`]: CPU custom ops (im2col, fused SiLU, panel GEMMs, SIMD dispatch).
//! - here: [`NetConfig`], the `arch.net` of a checkpoint (`mlp`, `conv` or a whole `graph`), and [`Net`].

pub mod graph;
pub mod kernels;
pub mod layers;

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

pub use graph::{Activation, Graph, GraphCache, GraphSpec, NodeSpec, Op, ValueShape};
pub use layers::{
    Conv2d, Linear, PANEL_MIN_ELEMS, WHOLE_BATCH_MIN_ELEMS, sigmoid, silu_with_grad,
    silu_with_grad_generic,
};

/// Why a network could not be built or run. The crate-wide `Error` takes each variant in as its variant of the same
/// name, with the same message, so `nn` needs nothing from `error`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network description or its tensors do not fit together.
    #[error("checkpoint does not match its architecture: {0}")]
    Architecture(String),
    /// The network cannot do what was asked (a cache from another network ...).
    #[error("{0}")]
    Unsupported(String),
    /// A tensor operation failed (a bug or an out-of-memory condition, not a user error).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias for the networks.
pub type Result<T> = std::result::Result<T, Error>;

/// Architecture of a network: the two classic shapes (SiLU hidden units and a linear readout), or any layer graph.
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
    /// A layer graph (see [`graph`]): `{"type": "graph", "nodes": [...]}`.
    Graph(GraphSpec),
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
            NetConfig::Graph(_) => {}
        }
        Ok(())
    }

    /// The network as a layer graph for inputs of `in_shape = (c, h, w)` and `out_dim` outputs. `mlp` and
    /// `conv` keep their parameter names `l0`, `l1`, ... (one per dense or convolution layer), so old checkpoints
    /// load unchanged; a `graph` is returned as it is (its last node must give `out_dim` values).
    pub fn to_graph(&self, in_shape: (usize, usize, usize), out_dim: usize) -> Result<GraphSpec> {
        self.validate()?;
        let (c, h, w) = in_shape;
        let mut nodes: Vec<NodeSpec> = Vec::new();
        let mut layer = 0usize;
        let mut push = |nodes: &mut Vec<NodeSpec>, op: Op, named: bool| {
            let input = nodes.len();
            let name = if named {
                layer += 1;
                format!("l{}", layer - 1)
            } else {
                String::new()
            };
            nodes.push(NodeSpec {
                op,
                inputs: vec![input],
                name,
            });
        };
        let (input, hidden) = match self {
            NetConfig::Graph(spec) => return Ok(spec.clone()),
            NetConfig::Mlp { hidden } => (vec![c * h * w], hidden),
            NetConfig::Conv {
                channels,
                strides,
                kernel,
                fc,
            } => {
                for (&ch, &st) in channels.iter().zip(strides) {
                    let op = Op::Conv2d {
                        out: ch,
                        kernel: *kernel,
                        stride: st,
                        padding: kernel / 2,
                        bias: true,
                    };
                    push(&mut nodes, op, true);
                    push(&mut nodes, Op::Silu, false);
                }
                push(&mut nodes, Op::Flatten, false);
                (vec![c, h, w], fc)
            }
        };
        for &width in hidden {
            push(
                &mut nodes,
                Op::Linear {
                    out: width,
                    bias: true,
                },
                true,
            );
            push(&mut nodes, Op::Silu, false);
        }
        push(
            &mut nodes,
            Op::Linear {
                out: out_dim,
                bias: true,
            },
            true,
        );
        Ok(GraphSpec {
            input: Some(input),
            nodes,
        })
    }
}

/// A network `R^{c*h*w} -> R^out` with an explicit input-VJP, running on a [`Graph`].
#[derive(Clone, Debug)]
pub struct Net {
    graph: Graph,
    /// Input `(channels, height, width)`; flat inputs have `h = w = 1`.
    in_shape: (usize, usize, usize),
    out_dim: usize,
}

/// What the backward pass needs from the forward pass.
pub type NetCache = GraphCache;

impl Net {
    /// Whether the network has convolutions. Their GEMMs have a row per output pixel and scale over cores when a
    /// batch is cut into row blocks; a fully connected network instead splits each product by columns
    /// ([`kernels::PanelMatmul`]) and is best run on the whole batch.
    pub fn has_conv(&self) -> bool {
        self.graph.has_conv()
    }

    /// Whether a batch should be cut into row blocks, one per thread, rather than scored whole with each large
    /// product split into column panels: true for convolutional networks and for networks without a frozen
    /// weight of [`WHOLE_BATCH_MIN_ELEMS`] or more.
    pub fn prefers_row_blocks(&self) -> bool {
        self.has_conv()
            || !self
                .graph
                .linears()
                .any(|lin| lin.panels.is_some() && lin.weight.elem_count() >= WHOLE_BATCH_MIN_ELEMS)
    }

    /// Builds the network under `vb`. `in_shape` is `(channels, height, width)` of one input; the network must
    /// give `out_dim` values. `mlp` / `conv` layers are named `l0`, `l1`, ... (`l{i}.weight`, `l{i}.bias`).
    pub fn new(
        vb: &VarBuilder,
        cfg: &NetConfig,
        in_shape: (usize, usize, usize),
        out_dim: usize,
    ) -> Result<Self> {
        let spec = cfg.to_graph(in_shape, out_dim)?;
        let (c, h, w) = in_shape;
        let graph = Graph::new(vb, &spec, ValueShape::Image(c, h, w))?;
        let out = graph.output_shape();
        if out.numel() != out_dim {
            return Err(Error::Architecture(format!(
                "the network gives {} values per input ({}), the model needs {out_dim}",
                out.numel(),
                out.describe()
            )));
        }
        Ok(Self {
            graph,
            in_shape,
            out_dim,
        })
    }

    /// The layer graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
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
        self.graph.macs()
    }

    /// `x: [N, c*h*w] -> [N, out]`, keeping what the VJP needs. On the CPU images run channels-last
    /// (`[N, h, w, c]`); flattening is channels-first either way, as in the checkpoint format.
    pub fn forward_cached(&self, x: &Tensor) -> Result<(Tensor, NetCache)> {
        self.graph.forward_cached(x)
    }

    /// `x: [N, c*h*w] -> [N, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.graph.forward(x)
    }

    /// See [`Graph::residual_tail`]: `Some((t, mul))` when the network computes `x + mul * t(x)`.
    pub fn residual_tail(&self) -> Option<(usize, f64)> {
        self.graph.residual_tail()
    }

    /// `x: [N, c*h*w] -> value v: [N, numel(v)]` (see [`Graph::forward_value`]).
    pub fn forward_value(&self, x: &Tensor, v: usize) -> Result<Tensor> {
        self.graph.forward_value(x, v)
    }

    /// Vector-Jacobian product: `g: [N, out] -> g * d(out)/d(x): [N, c*h*w]`.
    pub fn vjp(&self, cache: &NetCache, g: &Tensor) -> Result<Tensor> {
        self.graph.vjp(cache, g)
    }

    /// Scalar network (`out = 1`): `f(x): [N]` and `grad_x f: [N, c*h*w]`.
    pub fn value_and_grad(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (out, cache) = self.forward_cached(x)?;
        let ones = Tensor::ones(out.shape(), out.dtype(), out.device())?;
        let g = self.vjp(&cache, &ones)?;
        Ok((out.squeeze(D::Minus1)?, g))
    }

    #[cfg(test)]
    fn first_conv(&self) -> Option<&Conv2d> {
        self.graph.convs().next()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device, IndexOp};
    use candle_nn::VarMap;

    use super::*;
    use crate::rng::Rng;

    #[test]
    fn blocked_frozen_convolutions_match_smaller_batches() {
        // Frozen weights split a batch whose patch matrix exceeds CONV_BLOCK_ELEMS into blocks (here 12x12 inputs,
        // 1 296 patch elements per image and layer: blocks of 404 images); two half batches stay unblocked. Forward
        // and VJP must agree.
        let cfg = NetConfig::Conv {
            channels: vec![4, 6],
            strides: vec![1, 2],
            kernel: 3,
            fc: vec![5],
        };
        let shape = (1, 12, 12);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        Net::new(&vb, &cfg, shape, 1).expect("init");
        let frozen: HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().copy().expect("copy")))
            .collect();
        let net = Net::new(
            &VarBuilder::from_tensors(frozen, DType::F64, &Device::Cpu),
            &cfg,
            shape,
            1,
        )
        .expect("frozen");
        let n = 450;
        let mut rng = Rng::new(3);
        let x = Tensor::from_vec(rng.uniform_vec(n * 144), (n, 144), &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F64))
            .expect("x");
        let g = Tensor::from_vec(rng.normal_vec(n), (n, 1), &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F64))
            .expect("g");
        let first = net.first_conv().expect("conv first");
        assert!(first.batch_blocks(n).is_some_and(|b| b.len() == 2));
        assert!(first.batch_blocks(n / 2).is_none());
        let run = |x: &Tensor, g: &Tensor| {
            let (out, cache) = net.forward_cached(x).expect("forward");
            (out, net.vjp(&cache, g).expect("vjp"))
        };
        let (out, vjp) = run(&x, &g);
        let h = n / 2;
        let (o1, v1) = run(&x.i(..h).expect("i"), &g.i(..h).expect("i"));
        let (o2, v2) = run(&x.i(h..).expect("i"), &g.i(h..).expect("i"));
        for (whole, a, b) in [(out, o1, o2), (vjp, v1, v2)] {
            let halves = Tensor::cat(&[a, b], 0).expect("cat");
            let err = (whole - halves)
                .and_then(|d| d.abs())
                .and_then(|d| d.max_all())
                .and_then(|d| d.to_scalar::<f64>())
                .expect("err");
            assert!(err < 1e-12, "blocked vs unblocked: {err}");
        }
    }
}
