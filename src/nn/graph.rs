//! The layer graph every network in walkjump runs on: a DAG of ops, each with a forward pass and an explicit
//! input-VJP written as candle tensor expressions (never candle's autograd, which is several times slower for a
//! score; and the VJP expressions stay differentiable in the weights, which is what training needs).
//!
//! A [`GraphSpec`] is the serialisable description (the `arch` metadata of a checkpoint, `{"type": "graph", ...}`,
//! or what the ONNX import produces); [`Graph::new`] checks it, infers the shape of every value and loads the
//! parameters; [`Graph::forward_cached`] and [`Graph::vjp`] run it. The older `mlp` / `conv` architectures are
//! lowered to the same graph ([`super::NetConfig::to_graph`]).
//!
//! Values are batches of flat vectors `[N, d]` or images. On the CPU fast path (`f32` / `f64`) images are kept
//! channels-last, `[N, h, w, c]`, because the convolutions run as im2col + GEMM there; elsewhere they are
//! `[N, c, h, w]`. Every op handles both layouts. Flattening is channels-first either way, as PyTorch's.
//! Two fusions keep the dense networks as fast as the hand-written chain they replace: a `linear` whose only
//! consumer is the next node's `silu` runs as one panel product with the activation in its epilogue, and a `linear`
//! whose input is an activation used only by it multiplies the activation's derivative into its VJP.

mod activation;
mod layout;
pub mod ops;
mod spec;

use std::sync::Arc;

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

pub use activation::Activation;
use layout::Layout;
use ops::{MAX_VALUE_ELEMS, MAX_WIDTH};
pub use spec::{GraphSpec, NodeSpec, Op, ValueShape};

use super::kernels::{NormStats, cpu_fast_path, group_norm_forward, group_norm_vjp};
use super::layers::{Conv2d, Linear};
use crate::nn::{Error, Result};

/// Largest number of nodes (with `ops::MAX_VALUE_ELEMS` and `ops::MAX_WIDTH`), so that a hostile file cannot ask for
/// absurd networks.
const MAX_NODES: usize = 4096;

#[derive(Clone, Debug)]
enum Node {
    Linear(Linear),
    Conv(Conv2d),
    Act(Activation),
    Add,
    Sub,
    Mul,
    Concat,
    Flatten,
    Unflatten,
    Upsample(usize),
    AvgPool(usize, usize),
    /// Group norm (images) or layer norm (flat, one group, per-feature `gamma`).
    Norm {
        groups: usize,
        eps: f64,
        gamma: Tensor,
        beta: Tensor,
    },
    /// `x scale + shift` per channel or feature (batch norm folded).
    ChannelAffine {
        scale: Tensor,
        shift: Tensor,
    },
    Affine(f64, f64),
    Reduce {
        mean: bool,
    },
    /// An op of the registry (`ops`).
    Ext(Arc<dyn ops::OpNode>),
}

#[derive(Clone, Debug)]
struct Step {
    node: Node,
    inputs: Vec<usize>,
    shape: ValueShape,
    op: &'static str,
}

/// A built graph with its parameters.
#[derive(Clone, Debug)]
pub struct Graph {
    steps: Vec<Step>,
    input: ValueShape,
    /// Number of readers of each value (the output counts one).
    uses: Vec<usize>,
}

/// What a node keeps from the forward pass for its VJP.
#[derive(Debug)]
enum Saved {
    None,
    /// The activation's derivative.
    Deriv(Tensor),
    /// Both operands of a product.
    Operands(Tensor, Tensor),
    /// Normalised values (in the grouped view) and `1 / std`.
    Norm(Tensor, Tensor),
    /// The input and its statistics, on the fused CPU path.
    NormFused(Tensor, NormStats),
    /// The convolution's GEMM weight on the channels-last path.
    ConvWm(Tensor),
    /// The input's dims (reductions).
    Dims(Vec<usize>),
    /// What a registered op keeps.
    Ext(Vec<Tensor>),
}

/// What [`Graph::vjp`] needs from [`Graph::forward_cached`].
#[derive(Debug)]
pub struct GraphCache {
    saved: Vec<Saved>,
    /// Whether image values are channels-last.
    nhwc: bool,
}

fn arch_err(i: usize, op: &str, msg: impl std::fmt::Display) -> Error {
    Error::Architecture(format!("node {i} ({op}): {msg}"))
}

impl Graph {
    /// Checks `spec`, infers every value's shape from `input` (used when the spec has none) and loads each
    /// node's parameters under `vb.pp(name)`.
    pub fn new(vb: &VarBuilder, spec: &GraphSpec, input: ValueShape) -> Result<Self> {
        let input = match &spec.input {
            Some(dims) => {
                let s = ValueShape::from_dims(dims)?;
                if s.numel() != input.numel() {
                    return Err(Error::Architecture(format!(
                        "the graph's input {} does not hold the model's {} values",
                        s.describe(),
                        input.numel()
                    )));
                }
                s
            }
            None => input,
        };
        if spec.nodes.is_empty() || spec.nodes.len() > MAX_NODES {
            return Err(Error::Architecture(format!(
                "a graph needs 1 to {MAX_NODES} nodes, this one has {}",
                spec.nodes.len()
            )));
        }
        let mut shapes = vec![input];
        let mut uses = vec![0usize; spec.nodes.len() + 1];
        let mut steps: Vec<Step> = Vec::with_capacity(spec.nodes.len());
        for (i, ns) in spec.nodes.iter().enumerate() {
            let op = ns.op.name();
            let err = |msg: String| arch_err(i, op, msg);
            let arity = ns.op.arity();
            let arity_ok = if arity == usize::MAX {
                !ns.inputs.is_empty()
            } else {
                ns.inputs.len() == arity
            };
            if !arity_ok {
                return Err(err(format!(
                    "takes {} inputs, got {}",
                    if arity == usize::MAX {
                        "one or more".to_string()
                    } else {
                        arity.to_string()
                    },
                    ns.inputs.len()
                )));
            }
            if let Some(&bad) = ns.inputs.iter().find(|&&v| v > i) {
                return Err(err(format!(
                    "reads value {bad}, which is not computed before it (values 0..={i})"
                )));
            }
            for &v in &ns.inputs {
                uses[v] += 1;
            }
            let ins: Vec<ValueShape> = ns.inputs.iter().map(|&v| shapes[v]).collect();
            let x = ins[0];
            let pvb = vb.pp(&ns.name);
            let needs_name = || -> Result<()> {
                if ns.name.is_empty() {
                    Err(err("needs a name for its parameters".into()))
                } else {
                    Ok(())
                }
            };
            let image = |s: ValueShape| -> Result<(usize, usize, usize)> {
                match s {
                    ValueShape::Image(c, h, w) => Ok((c, h, w)),
                    ValueShape::Flat(d) => Err(err(format!(
                        "needs an image input, got a flat [{d}] (add an unflatten node)"
                    ))),
                }
            };
            let width_ok = |w: usize| -> Result<()> {
                if w == 0 || w > MAX_WIDTH {
                    Err(err(format!("width {w} is out of range 1..={MAX_WIDTH}")))
                } else {
                    Ok(())
                }
            };
            let (node, shape) = match &ns.op {
                Op::Linear { out, bias } => {
                    needs_name()?;
                    width_ok(*out)?;
                    let d = match x {
                        ValueShape::Flat(d) => d,
                        other => {
                            return Err(err(format!(
                                "needs a flat input, got an image {} (add a flatten node)",
                                other.describe()
                            )));
                        }
                    };
                    (
                        Node::Linear(Linear::with_bias(&pvb, d, *out, *bias)?),
                        ValueShape::Flat(*out),
                    )
                }
                Op::Conv2d {
                    out,
                    kernel,
                    stride,
                    padding,
                    bias,
                } => {
                    needs_name()?;
                    width_ok(*out)?;
                    if *kernel == 0 || *kernel > 15 || *stride == 0 || *stride > 8 || *padding > 15
                    {
                        return Err(err(format!(
                            "kernel {kernel}, stride {stride}, padding {padding} out of range (kernel 1..=15, stride 1..=8, padding 0..=15)"
                        )));
                    }
                    let conv =
                        Conv2d::new(&pvb, image(x)?, *out, *kernel, *stride, *padding, *bias)?;
                    let (c, h, w) = conv.out_shape;
                    (Node::Conv(conv), ValueShape::Image(c, h, w))
                }
                Op::Add | Op::Sub | Op::Mul => {
                    if ins[0] != ins[1] {
                        return Err(err(format!(
                            "operands differ in shape: {} and {}",
                            ins[0].describe(),
                            ins[1].describe()
                        )));
                    }
                    let node = match ns.op {
                        Op::Add => Node::Add,
                        Op::Sub => Node::Sub,
                        _ => Node::Mul,
                    };
                    (node, x)
                }
                Op::Concat => match x {
                    ValueShape::Flat(_) => {
                        let mut d = 0;
                        for s in &ins {
                            match s {
                                ValueShape::Flat(k) => d += k,
                                other => {
                                    return Err(err(format!(
                                        "cannot join a flat value with an image {}",
                                        other.describe()
                                    )));
                                }
                            }
                        }
                        (Node::Concat, ValueShape::Flat(d))
                    }
                    ValueShape::Image(_, h, w) => {
                        let mut c = 0;
                        for s in &ins {
                            match *s {
                                ValueShape::Image(k, hh, ww) if hh == h && ww == w => c += k,
                                other => {
                                    return Err(err(format!(
                                        "joins images along channels, their sizes must match: [_, {h}, {w}] and {}",
                                        other.describe()
                                    )));
                                }
                            }
                        }
                        (Node::Concat, ValueShape::Image(c, h, w))
                    }
                },
                Op::Flatten => (Node::Flatten, ValueShape::Flat(x.numel())),
                Op::Unflatten { shape } => {
                    let [c, h, w] = *shape;
                    if ValueShape::Image(c, h, w).numel() != x.numel() || c == 0 {
                        return Err(err(format!(
                            "cannot view {} values as [{c}, {h}, {w}]",
                            x.numel()
                        )));
                    }
                    (Node::Unflatten, ValueShape::Image(c, h, w))
                }
                Op::Upsample { scale } => {
                    let (c, h, w) = image(x)?;
                    if *scale == 0 || *scale > 16 {
                        return Err(err(format!("scale {scale} out of range 1..=16")));
                    }
                    (
                        Node::Upsample(*scale),
                        ValueShape::Image(c, h * scale, w * scale),
                    )
                }
                Op::AvgPool { kernel } => {
                    let (c, h, w) = image(x)?;
                    if *kernel == 0 || *kernel > h || *kernel > w {
                        return Err(err(format!("kernel {kernel} does not fit a {h}x{w} image")));
                    }
                    (
                        Node::AvgPool(*kernel, *kernel),
                        ValueShape::Image(c, h / kernel, w / kernel),
                    )
                }
                Op::GlobalAvgPool => {
                    let (c, h, w) = image(x)?;
                    (Node::AvgPool(h, w), ValueShape::Image(c, 1, 1))
                }
                Op::GroupNorm { groups, eps } => {
                    needs_name()?;
                    let (c, _, _) = image(x)?;
                    if *groups == 0 || c % groups != 0 {
                        return Err(err(format!("{groups} groups do not divide {c} channels")));
                    }
                    if !(eps.is_finite() && *eps > 0.0) {
                        return Err(err(format!("eps {eps} must be positive")));
                    }
                    let gamma = pvb.get_with_hints(c, "weight", Init::Const(1.0))?;
                    let beta = pvb.get(c, "bias")?;
                    (
                        Node::Norm {
                            groups: *groups,
                            eps: *eps,
                            gamma,
                            beta,
                        },
                        x,
                    )
                }
                Op::LayerNorm { eps } => {
                    needs_name()?;
                    let d = match x {
                        ValueShape::Flat(d) => d,
                        other => {
                            return Err(err(format!(
                                "normalises flat values, got an image {} (use group_norm with one group)",
                                other.describe()
                            )));
                        }
                    };
                    if !(eps.is_finite() && *eps > 0.0) {
                        return Err(err(format!("eps {eps} must be positive")));
                    }
                    let gamma = pvb.get_with_hints(d, "weight", Init::Const(1.0))?;
                    let beta = pvb.get(d, "bias")?;
                    (
                        Node::Norm {
                            groups: 1,
                            eps: *eps,
                            gamma,
                            beta,
                        },
                        x,
                    )
                }
                Op::BatchNorm { eps } => {
                    needs_name()?;
                    let c = match x {
                        ValueShape::Flat(d) => d,
                        ValueShape::Image(c, _, _) => c,
                    };
                    if !(eps.is_finite() && *eps > 0.0) {
                        return Err(err(format!("eps {eps} must be positive")));
                    }
                    let gamma = pvb.get_with_hints(c, "weight", Init::Const(1.0))?;
                    let beta = pvb.get(c, "bias")?;
                    let mean = pvb.get(c, "running_mean")?;
                    let var = pvb.get_with_hints(c, "running_var", Init::Const(1.0))?;
                    let scale = (gamma / (var + *eps)?.sqrt()?)?;
                    let shift = (beta - (mean * &scale)?)?;
                    (Node::ChannelAffine { scale, shift }, x)
                }
                Op::ChannelMul | Op::ChannelAdd => {
                    needs_name()?;
                    let c = match x {
                        ValueShape::Flat(d) => d,
                        ValueShape::Image(c, _, _) => c,
                    };
                    let node = if matches!(ns.op, Op::ChannelMul) {
                        let scale = pvb.get_with_hints(c, "weight", Init::Const(1.0))?;
                        let shift = scale.zeros_like()?;
                        Node::ChannelAffine { scale, shift }
                    } else {
                        let shift = pvb.get(c, "bias")?;
                        let scale = shift.ones_like()?;
                        Node::ChannelAffine { scale, shift }
                    };
                    (node, x)
                }
                Op::Affine { mul, add } => {
                    if !(mul.is_finite() && add.is_finite()) {
                        return Err(err(format!("constants {mul}, {add} must be finite")));
                    }
                    (Node::Affine(*mul, *add), x)
                }
                Op::ReduceSum => (Node::Reduce { mean: false }, ValueShape::Flat(1)),
                Op::ReduceMean => (Node::Reduce { mean: true }, ValueShape::Flat(1)),
                Op::Ext { op: ext, params } => {
                    if ext.def().needs_name() {
                        needs_name()?;
                    }
                    let (built, shape) =
                        ops::load(ext.def(), params, &ins, &pvb).map_err(|e| match e {
                            Error::Architecture(msg) => err(msg),
                            other => other,
                        })?;
                    (Node::Ext(Arc::from(built)), shape)
                }
                other => match other.activation() {
                    Some(a) => {
                        if let Activation::Softplus(b) = a
                            && !(b.is_finite() && b > 0.0)
                        {
                            return Err(err(format!("beta {b} must be positive")));
                        }
                        (Node::Act(a), x)
                    }
                    None => return Err(err("is not supported here".into())),
                },
            };
            if shape.numel() == 0 || shape.numel() > MAX_VALUE_ELEMS {
                return Err(err(format!(
                    "output {} has {} values per sample (allowed 1..={MAX_VALUE_ELEMS})",
                    shape.describe(),
                    shape.numel()
                )));
            }
            shapes.push(shape);
            steps.push(Step {
                node,
                inputs: ns.inputs.clone(),
                shape,
                op,
            });
        }
        uses[spec.nodes.len()] += 1;
        Ok(Self { steps, input, uses })
    }

    /// Shape of one input.
    pub fn input_shape(&self) -> ValueShape {
        self.input
    }

    /// Shape of one output.
    pub fn output_shape(&self) -> ValueShape {
        self.steps.last().map_or(self.input, |s| s.shape)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the graph has no nodes (never true for a built graph).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// `(op name, output shape)` of each node, for `inspect`.
    pub fn describe_nodes(&self) -> Vec<(&'static str, ValueShape)> {
        self.steps.iter().map(|s| (s.op, s.shape)).collect()
    }

    /// Whether the graph has convolutions.
    pub fn has_conv(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.node, Node::Conv(_)))
    }

    /// The dense layers, for decisions about how to split a batch.
    pub fn linears(&self) -> impl Iterator<Item = &Linear> {
        self.steps.iter().filter_map(|s| match &s.node {
            Node::Linear(l) => Some(l),
            _ => None,
        })
    }

    /// The convolution layers.
    pub fn convs(&self) -> impl Iterator<Item = &Conv2d> {
        self.steps.iter().filter_map(|s| match &s.node {
            Node::Conv(c) => Some(c),
            _ => None,
        })
    }

    /// Multiply-adds of one forward pass for one input (dense and convolution layers).
    pub fn macs(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match (&s.node, s.shape) {
                (Node::Linear(l), _) => l.weight.elem_count(),
                (Node::Conv(c), ValueShape::Image(_, h, w)) => c.weight.elem_count() * h * w,
                (Node::Ext(op), _) => op.macs(),
                _ => 0,
            })
            .sum()
    }

    /// `x: [N, d_in] -> [N, d_out]` (flat, channels-first), keeping what the VJP needs.
    pub fn forward_cached(&self, x: &Tensor) -> Result<(Tensor, GraphCache)> {
        self.forward_layout(x, cpu_fast_path(x), true)
    }

    /// `x: [N, d_in] -> [N, d_out]` for a pass that no VJP follows (denoisers, score networks): activations skip
    /// their derivatives.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_layout(x, cpu_fast_path(x), false)?.0)
    }

    /// If the graph ends in `x + mul * t` (the input plus a scaled value: how `walkjump convert` writes a score
    /// network `s` as the denoiser `D(y) = y + sigma^2 s(y)`) or in `x + t` (a residual denoiser, `mul = 1`), the
    /// value `t` (its index, as in [`Graph::forward_value`]) and `mul`. `t` must have no other reader.
    pub fn residual_tail(&self) -> Option<(usize, f64)> {
        let add = self.steps.last()?;
        if !matches!(add.node, Node::Add) {
            return None;
        }
        let scaled = match add.inputs.as_slice() {
            [a, 0] | [0, a] if *a > 0 => *a,
            _ => return None,
        };
        let step = &self.steps[scaled - 1];
        // `x + t` (a residual denoiser) is the same form with `mul = 1`.
        let (t, mul, shift) = match step.node {
            Node::Affine(mul, shift) => (*step.inputs.first()?, mul, shift),
            _ => (scaled, 1.0, 0.0),
        };
        let fits = shift == 0.0
            && t > 0
            && self.uses[scaled] == 1
            && self.uses[t] == 1
            && self.steps[t - 1].shape.numel() == self.input.numel();
        fits.then_some((t, mul))
    }

    /// Whether value `v` is a linear or convolution output (a tensor of its own) with one reader.
    fn fresh_sole(&self, v: usize) -> bool {
        v > 0
            && self.uses[v] == 1
            && matches!(self.steps[v - 1].node, Node::Linear(_) | Node::Conv(_))
    }

    /// `x: [N, d_in] -> value v: [N, numel(v)]`, running only the nodes up to `v` (value 0 is the input, value `i`
    /// the output of node `i - 1`), with no VJP to follow.
    pub fn forward_value(&self, x: &Tensor, v: usize) -> Result<Tensor> {
        if v == 0 || v > self.steps.len() {
            return Err(Error::Unsupported(format!(
                "graph value {v} is not a node's output (1..={})",
                self.steps.len()
            )));
        }
        Ok(self.run(x, cpu_fast_path(x), false, v)?.0)
    }

    /// [`Graph::forward_cached`] with images channels-last (`nhwc`, the CPU kernels) or channels-first; `keep`:
    /// whether a VJP follows (without it activations give their values only, and the cache cannot serve a VJP).
    fn forward_layout(&self, x: &Tensor, nhwc: bool, keep: bool) -> Result<(Tensor, GraphCache)> {
        self.run(x, nhwc, keep, self.steps.len())
    }

    /// The nodes before value `stop` (`1..=steps`), returning that value flattened.
    fn run(&self, x: &Tensor, nhwc: bool, keep: bool, stop: usize) -> Result<(Tensor, GraphCache)> {
        let n = x.dim(0)?;
        let lay = Layout { n, nhwc };
        let mut values: Vec<Option<Tensor>> = Vec::with_capacity(self.steps.len() + 1);
        values.push(Some(lay.image_of(x, self.input)?));
        let mut saved: Vec<Saved> = Vec::with_capacity(self.steps.len());
        // Readers still to come of each value: a value is dropped after its last reader, as a hand-written chain
        // would, so that big batches keep only what the VJP needs.
        let mut pending = self.uses.clone();
        let mut i = 0;
        while i < stop {
            let step = &self.steps[i];
            let arg = |k: usize| -> Result<&Tensor> {
                values[step.inputs[k]]
                    .as_ref()
                    .ok_or_else(|| Error::Unsupported("graph value used after fusion".into()))
            };
            // Linear + SiLU as one panel product (the linear's output has no other reader).
            if let Node::Linear(lin) = &step.node
                && let Some(next) = self.steps.get(i + 1)
                && matches!(next.node, Node::Act(Activation::Silu))
                && next.inputs == [i + 1]
                && self.uses[i + 1] == 1
                && i + 2 <= stop
                && let Some((a, d)) = lin.forward_silu(arg(0)?)?
            {
                let x = step.inputs[0];
                pending[x] -= 1;
                if pending[x] == 0 {
                    values[x] = None;
                }
                values.push(None);
                saved.push(Saved::None);
                values.push(Some(a));
                saved.push(Saved::Deriv(d));
                i += 2;
                continue;
            }
            let (y, s) = match &step.node {
                Node::Linear(lin) => (lin.forward(arg(0)?)?, Saved::None),
                Node::Conv(conv) => {
                    if nhwc {
                        let wm = conv.weight_matrix()?;
                        (conv.forward_nhwc(arg(0)?, &wm)?, Saved::ConvWm(wm))
                    } else {
                        (conv.forward(arg(0)?)?, Saved::None)
                    }
                }
                // A layer's fresh output read by its activation alone is overwritten in place.
                Node::Act(a) if !keep && self.fresh_sole(step.inputs[0]) => {
                    let h = values[step.inputs[0]].take().ok_or_else(|| {
                        Error::Unsupported("graph value used after fusion".into())
                    })?;
                    (a.value_in_place(h)?, Saved::None)
                }
                Node::Act(a) if !keep => (a.value(arg(0)?)?, Saved::None),
                Node::Act(a) => {
                    let (y, d) = a.apply(arg(0)?)?;
                    (y, Saved::Deriv(d))
                }
                Node::Add => ((arg(0)? + arg(1)?)?, Saved::None),
                Node::Sub => ((arg(0)? - arg(1)?)?, Saved::None),
                Node::Mul => {
                    let (a, b) = (arg(0)?.clone(), arg(1)?.clone());
                    ((&a * &b)?, Saved::Operands(a, b))
                }
                Node::Concat => {
                    let parts = (0..step.inputs.len())
                        .map(|k| arg(k).cloned())
                        .collect::<Result<Vec<_>>>()?;
                    let axis = lay.feature_axis(step.shape);
                    (Tensor::cat(&parts, axis)?, Saved::None)
                }
                Node::Flatten => (lay.flat_of(arg(0)?)?, Saved::None),
                Node::Unflatten => (lay.image_of(arg(0)?, step.shape)?, Saved::None),
                Node::Upsample(s) => (lay.upsample(arg(0)?, *s)?, Saved::None),
                Node::AvgPool(kh, kw) => (lay.avg_pool(arg(0)?, *kh, *kw)?, Saved::None),
                Node::Norm {
                    groups,
                    eps,
                    gamma,
                    beta,
                } if let Some(v) = lay.fused_norm_view(arg(0)?)? => {
                    let (y, stats) = group_norm_forward(&v, *groups, *eps, gamma, beta)?;
                    (y.reshape(arg(0)?.shape())?, Saved::NormFused(v, stats))
                }
                Node::Norm {
                    groups,
                    eps,
                    gamma,
                    beta,
                } => {
                    let x = arg(0)?;
                    let view = lay.group_view(x, *groups)?;
                    let axes = lay.group_axes(x.rank());
                    let mean = lay.group_mean(&view, *groups, &axes)?;
                    let centred = view.broadcast_sub(&mean)?;
                    let var = lay.group_mean(&centred.sqr()?, *groups, &axes)?;
                    let inv_std = (var + *eps)?.sqrt()?.recip()?;
                    let xhat = centred.broadcast_mul(&inv_std)?;
                    let y = xhat
                        .reshape(x.shape())?
                        .broadcast_mul(&lay.per_channel(gamma, x.rank())?)?
                        .broadcast_add(&lay.per_channel(beta, x.rank())?)?;
                    (y, Saved::Norm(xhat, inv_std))
                }
                Node::ChannelAffine { scale, shift } => {
                    let x = arg(0)?;
                    let y = x
                        .broadcast_mul(&lay.per_channel(scale, x.rank())?)?
                        .broadcast_add(&lay.per_channel(shift, x.rank())?)?;
                    (y, Saved::None)
                }
                Node::Affine(m, a) => (arg(0)?.affine(*m, *a)?, Saved::None),
                Node::Reduce { mean } => {
                    let x = arg(0)?;
                    let s = x.flatten_from(1)?.sum_keepdim(1)?;
                    let count = x.elem_count() / n.max(1);
                    let y = if *mean { (s / count as f64)? } else { s };
                    (y, Saved::Dims(x.dims().to_vec()))
                }
                Node::Ext(op) => {
                    let ins = (0..step.inputs.len())
                        .map(&arg)
                        .collect::<Result<Vec<_>>>()?;
                    let (y, s) = op.forward(
                        &ins,
                        ops::OpLayout {
                            channels_last: nhwc,
                            keep,
                        },
                    )?;
                    (y, Saved::Ext(s))
                }
            };
            for &v in &step.inputs {
                pending[v] -= 1;
                if pending[v] == 0 {
                    values[v] = None;
                }
            }
            values.push(Some(y));
            saved.push(s);
            i += 1;
        }
        let out = values
            .pop()
            .flatten()
            .ok_or_else(|| Error::Unsupported("graph has no output".into()))?;
        let shape = match stop.checked_sub(1) {
            Some(last) => self.steps[last].shape,
            None => self.input,
        };
        let out = match shape {
            ValueShape::Image(..) => lay.flat_of(&out)?,
            ValueShape::Flat(_) => out,
        };
        Ok((out, GraphCache { saved, nhwc }))
    }

    /// Vector-Jacobian product: `g: [N, d_out] -> g d(out)/d(x): [N, d_in]`.
    pub fn vjp(&self, cache: &GraphCache, g: &Tensor) -> Result<Tensor> {
        let mismatch = || Error::Unsupported("network cache does not match".into());
        if cache.saved.len() != self.steps.len() {
            return Err(mismatch());
        }
        let n = g.dim(0)?;
        let lay = Layout {
            n,
            nhwc: cache.nhwc,
        };
        let mut grads: Vec<Option<Tensor>> = vec![None; self.steps.len() + 1];
        grads[self.steps.len()] = Some(lay.image_of(g, self.output_shape())?);
        let mut done = vec![false; self.steps.len()];
        let shape_of = |v: usize| {
            if v == 0 {
                self.input
            } else {
                self.steps[v - 1].shape
            }
        };
        for i in (0..self.steps.len()).rev() {
            if done[i] {
                continue;
            }
            let step = &self.steps[i];
            let Some(g) = grads[i + 1].take() else {
                continue;
            };
            let x0 = step.inputs[0];
            match (&step.node, &cache.saved[i]) {
                (Node::Linear(lin), _) => {
                    // Fold the derivative of the activation below into this VJP when it is only read here.
                    if x0 > 0
                        && self.uses[x0] == 1
                        && let Saved::Deriv(d) = &cache.saved[x0 - 1]
                        && d.rank() == 2
                        && let Some(gd) = lin.vjp_mul(&g, d)?
                    {
                        done[x0 - 1] = true;
                        let below = self.steps[x0 - 1].inputs[0];
                        accumulate(&mut grads, below, gd)?;
                        continue;
                    }
                    accumulate(&mut grads, x0, lin.vjp(&g)?)?;
                }
                (Node::Conv(conv), Saved::ConvWm(wm)) => {
                    accumulate(&mut grads, x0, conv.vjp_nhwc(&g, wm)?)?;
                }
                (Node::Conv(conv), _) => accumulate(&mut grads, x0, conv.vjp(&g)?)?,
                (Node::Act(_), Saved::Deriv(d)) => accumulate(&mut grads, x0, (g * d)?)?,
                (Node::Add, _) => {
                    accumulate(&mut grads, step.inputs[1], g.clone())?;
                    accumulate(&mut grads, x0, g)?;
                }
                (Node::Sub, _) => {
                    accumulate(&mut grads, step.inputs[1], g.neg()?)?;
                    accumulate(&mut grads, x0, g)?;
                }
                (Node::Mul, Saved::Operands(a, b)) => {
                    accumulate(&mut grads, step.inputs[1], (&g * a)?)?;
                    accumulate(&mut grads, x0, (g * b)?)?;
                }
                (Node::Concat, _) => {
                    let axis = lay.feature_axis(step.shape);
                    let mut start = 0;
                    for &v in &step.inputs {
                        let len = match shape_of(v) {
                            ValueShape::Flat(d) => d,
                            ValueShape::Image(c, _, _) => c,
                        };
                        accumulate(&mut grads, v, g.narrow(axis, start, len)?.contiguous()?)?;
                        start += len;
                    }
                }
                (Node::Flatten, _) => accumulate(&mut grads, x0, lay.image_of(&g, shape_of(x0))?)?,
                (Node::Unflatten, _) => accumulate(&mut grads, x0, lay.flat_of(&g)?)?,
                (Node::Upsample(s), _) => accumulate(&mut grads, x0, lay.upsample_vjp(&g, *s)?)?,
                (Node::AvgPool(kh, kw), _) => {
                    let ValueShape::Image(_, h, w) = shape_of(x0) else {
                        return Err(mismatch());
                    };
                    accumulate(&mut grads, x0, lay.avg_pool_vjp(&g, *kh, *kw, h, w)?)?;
                }
                (Node::Norm { groups, gamma, .. }, Saved::NormFused(x, stats)) => {
                    let gv = g.contiguous()?.reshape(x.shape())?;
                    let gx = group_norm_vjp(&gv, x, stats, *groups, gamma)?.reshape(g.shape())?;
                    accumulate(&mut grads, x0, gx)?;
                }
                (Node::Norm { groups, gamma, .. }, Saved::Norm(xhat, inv_std)) => {
                    let rank = g.rank();
                    let gx = g.broadcast_mul(&lay.per_channel(gamma, rank)?)?;
                    let gv = lay.group_view(&gx, *groups)?;
                    let axes = lay.group_axes(rank);
                    let m1 = lay.group_mean(&gv, *groups, &axes)?;
                    let m2 = lay.group_mean(&(&gv * xhat)?, *groups, &axes)?;
                    let inner = (gv.broadcast_sub(&m1)? - xhat.broadcast_mul(&m2)?)?;
                    let gx = inner.broadcast_mul(inv_std)?.reshape(g.shape())?;
                    accumulate(&mut grads, x0, gx)?;
                }
                (Node::ChannelAffine { scale, .. }, _) => {
                    let gx = g.broadcast_mul(&lay.per_channel(scale, g.rank())?)?;
                    accumulate(&mut grads, x0, gx)?;
                }
                (Node::Affine(m, _), _) => accumulate(&mut grads, x0, (g * *m)?)?,
                (Node::Reduce { mean }, Saved::Dims(dims)) => {
                    let count: usize = dims.iter().skip(1).product();
                    let g = if *mean { (g / count as f64)? } else { g };
                    let gx = g
                        .broadcast_as((n, count))?
                        .contiguous()?
                        .reshape(dims.as_slice())?;
                    accumulate(&mut grads, x0, gx)?;
                }
                (Node::Ext(op), Saved::Ext(saved)) => {
                    let layout = ops::OpLayout {
                        channels_last: cache.nhwc,
                        keep: true,
                    };
                    let gs = op.vjp(saved, &g, layout)?;
                    if gs.len() != step.inputs.len() {
                        return Err(mismatch());
                    }
                    for (&v, gv) in step.inputs.iter().zip(gs) {
                        if let Some(gv) = gv {
                            accumulate(&mut grads, v, gv)?;
                        }
                    }
                }
                _ => return Err(mismatch()),
            }
        }
        match grads[0].take() {
            Some(g) => match self.input {
                ValueShape::Image(..) => lay.flat_of(&g),
                ValueShape::Flat(_) => Ok(g),
            },
            None => Ok(Tensor::zeros(
                (n, self.input.numel()),
                g.dtype(),
                g.device(),
            )?),
        }
    }
}

fn accumulate(grads: &mut [Option<Tensor>], v: usize, g: Tensor) -> Result<()> {
    let slot = &mut grads[v];
    *slot = Some(match slot.take() {
        Some(prev) => (prev + g)?,
        None => g,
    });
    Ok(())
}

#[cfg(test)]
mod tests;
