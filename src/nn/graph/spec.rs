//! The serialisable description of a graph: value shapes, nodes, and the ops with their parameters.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::Activation;
use super::ops::{self, ExtOp, Params};
use crate::nn::{Error, Result};

/// Shape of one sample of a value: a flat vector or an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueShape {
    /// `[d]`
    Flat(usize),
    /// `[c, h, w]`
    Image(usize, usize, usize),
}

impl ValueShape {
    /// Elements per sample (saturating: a hostile shape gives `usize::MAX`, which every size check refuses).
    pub fn numel(&self) -> usize {
        match *self {
            ValueShape::Flat(d) => d,
            ValueShape::Image(c, h, w) => c.saturating_mul(h).saturating_mul(w),
        }
    }

    /// `[d]` or `[c, h, w]`, for messages.
    pub fn describe(&self) -> String {
        match *self {
            ValueShape::Flat(d) => format!("[{d}]"),
            ValueShape::Image(c, h, w) => format!("[{c}, {h}, {w}]"),
        }
    }

    pub(super) fn from_dims(dims: &[usize]) -> Result<Self> {
        match *dims {
            [d] => Ok(ValueShape::Flat(d)),
            [c, h, w] => Ok(ValueShape::Image(c, h, w)),
            _ => Err(Error::Architecture(format!(
                "graph input shape {dims:?} must be [d] or [c, h, w]"
            ))),
        }
    }
}

/// A network as a list of nodes in evaluation order. Values are numbered: 0 is the network's input, `i + 1` the
/// output of node `i`; the output of the last node is the network's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphSpec {
    /// Shape of one input, `[d]` or `[c, h, w]`. Omitted: the model's input as an image `[c, h, w]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<usize>>,
    /// The nodes, each reading only values computed before it.
    pub nodes: Vec<NodeSpec>,
}

/// One node: an op, the values it reads, and the prefix of its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// What the node computes.
    #[serde(flatten)]
    pub op: Op,
    /// Values read (0 is the input, `i + 1` node `i`'s output).
    #[serde(rename = "in")]
    pub inputs: Vec<usize>,
    /// Parameter prefix: the node's tensors are `{name}.weight`, `{name}.bias`, ... Empty for ops without any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn is_one_f(x: &f64) -> bool {
    *x == 1.0
}
fn is_zero(x: &usize) -> bool {
    *x == 0
}
fn is_zero_f(x: &f64) -> bool {
    *x == 0.0
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn leaky_alpha() -> f64 {
    0.01
}
fn norm_eps() -> f64 {
    1e-5
}

/// The ops of the graph. Shapes are per sample; parameters live under the node's `name`.
///
/// JSON: `{"op": name, ...fields}`. The built-in variants are (de)serialised by serde's derive (`remote = "Self"`,
/// called from the impls below); [`Op::Ext`] carries the ops of the registry (`graph::ops`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `[d] -> [out]`: `x W^T + b`; `weight [out, d]`, `bias [out]`.
    Linear {
        /// Output width.
        out: usize,
        /// Whether there is a bias (else zero).
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        bias: bool,
    },
    /// `[c, h, w] -> [out, h', w']`: square kernel, stride and symmetric zero padding; `weight [out, c, k, k]`,
    /// `bias [out]`.
    Conv2d {
        /// Output channels.
        out: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride.
        #[serde(default = "one")]
        stride: usize,
        /// Zero padding on every side.
        #[serde(default, skip_serializing_if = "is_zero")]
        padding: usize,
        /// Whether there is a bias (else zero).
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        bias: bool,
    },
    /// `x sigmoid(x)`.
    Silu,
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x > 0`, else `alpha x`.
    LeakyRelu {
        /// Slope for negative inputs.
        #[serde(default = "leaky_alpha")]
        alpha: f64,
    },
    /// `x` for `x > 0`, else `alpha (exp(x) - 1)`.
    Elu {
        /// Scale of the negative part.
        #[serde(default = "one_f")]
        alpha: f64,
    },
    /// `x Phi(x)` (erf form), or its tanh approximation.
    Gelu {
        /// The tanh approximation instead of erf.
        #[serde(default, skip_serializing_if = "is_false")]
        tanh: bool,
    },
    /// `log(1 + exp(beta x)) / beta`.
    Softplus {
        /// Sharpness.
        #[serde(default = "one_f", skip_serializing_if = "is_one_f")]
        beta: f64,
    },
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// The error function (GELU as older exporters write it: `x (1 + erf(x / sqrt 2)) / 2`).
    Erf,
    /// `a + b` (same shapes).
    Add,
    /// `a - b` (same shapes).
    Sub,
    /// `a * b` elementwise (same shapes).
    Mul,
    /// Join along channels (images with equal `h, w`) or features (flat values).
    Concat,
    /// `[c, h, w] -> [c h w]`, channels first.
    Flatten,
    /// `[c h w] -> [c, h, w]`.
    Unflatten {
        /// `[c, h, w]`.
        shape: [usize; 3],
    },
    /// Nearest-neighbour upsampling by an integer factor: `[c, h, w] -> [c, s h, s w]`.
    Upsample {
        /// Factor in both directions.
        scale: usize,
    },
    /// Average pooling with stride equal to the square kernel, no padding (rows and columns past the last whole
    /// window are dropped): `[c, h, w] -> [c, h / k, w / k]`.
    AvgPool {
        /// Kernel size and stride.
        kernel: usize,
    },
    /// Mean over each channel: `[c, h, w] -> [c, 1, 1]`.
    GlobalAvgPool,
    /// Group normalisation of images (biased variance, as PyTorch); `weight [c]`, `bias [c]`.
    GroupNorm {
        /// Number of groups (divides c).
        groups: usize,
        /// Added to the variance.
        #[serde(default = "norm_eps")]
        eps: f64,
    },
    /// Layer normalisation of flat values over all features; `weight [d]`, `bias [d]`.
    LayerNorm {
        /// Added to the variance.
        #[serde(default = "norm_eps")]
        eps: f64,
    },
    /// Batch normalisation in inference form, per channel (images) or feature (flat); `weight`, `bias`,
    /// `running_mean`, `running_var`, each `[c]`.
    BatchNorm {
        /// Added to the variance.
        #[serde(default = "norm_eps")]
        eps: f64,
    },
    /// Multiply each channel (images) or feature (flat) by its own factor; `weight [c]`.
    ChannelMul,
    /// Add to each channel (images) or feature (flat) its own offset; `bias [c]`.
    ChannelAdd,
    /// `mul x + add` with constants.
    Affine {
        /// Factor.
        #[serde(default = "one_f")]
        mul: f64,
        /// Offset.
        #[serde(default, skip_serializing_if = "is_zero_f")]
        add: f64,
    },
    /// Sum over all elements of a sample: `-> [1]`.
    ReduceSum,
    /// Mean over all elements of a sample: `-> [1]`.
    ReduceMean,
    /// An op of the registry (`graph::ops`), or any [`ops::OpDef`] in a graph built in code: JSON `{"op": name,
    /// ...params}`.
    #[serde(skip)]
    Ext {
        /// Its definition.
        op: ExtOp,
        /// Its fields besides `op`, `in` and `name`.
        params: Params,
    },
}

/// The JSON keys that belong to the node, not to an op's parameters.
const NODE_KEYS: [&str; 3] = ["op", "in", "name"];

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Op::Ext { op, params } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("op", op.def().name())?;
                for (k, v) in params {
                    if !NODE_KEYS.contains(&k.as_str()) {
                        m.serialize_entry(k, v)?;
                    }
                }
                m.end()
            }
            builtin => Op::serialize(builtin, s),
        }
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = Params::deserialize(d)?;
        if let Some(Value::String(tag)) = map.get("op")
            && let Some(def) = ops::find(tag)
        {
            map.remove("op");
            return Ok(Op::Ext {
                op: ExtOp::new(def),
                params: map,
            });
        }
        Op::deserialize(Value::Object(map)).map_err(|e| {
            let msg = e.to_string();
            if msg.starts_with("unknown variant") {
                let registered: Vec<String> =
                    ops::OPS.iter().map(|d| format!("`{}`", d.name())).collect();
                D::Error::custom(format!(
                    "{msg}, or a registered op: {}",
                    registered.join(", ")
                ))
            } else {
                D::Error::custom(msg)
            }
        })
    }
}

impl Op {
    /// The op `def` (registered or not) with these parameters (its JSON fields besides `op`, `in` and `name`).
    pub fn ext(def: &'static dyn ops::OpDef, params: Params) -> Self {
        Op::Ext {
            op: ExtOp::new(def),
            params,
        }
    }

    /// The op's name as written in the `arch` JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Linear { .. } => "linear",
            Op::Conv2d { .. } => "conv2d",
            Op::Silu => "silu",
            Op::Relu => "relu",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Elu { .. } => "elu",
            Op::Gelu { .. } => "gelu",
            Op::Softplus { .. } => "softplus",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Erf => "erf",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Concat => "concat",
            Op::Flatten => "flatten",
            Op::Unflatten { .. } => "unflatten",
            Op::Upsample { .. } => "upsample",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::GroupNorm { .. } => "group_norm",
            Op::LayerNorm { .. } => "layer_norm",
            Op::BatchNorm { .. } => "batch_norm",
            Op::ChannelMul => "channel_mul",
            Op::ChannelAdd => "channel_add",
            Op::Affine { .. } => "affine",
            Op::ReduceSum => "reduce_sum",
            Op::ReduceMean => "reduce_mean",
            Op::Ext { op, .. } => op.def().name(),
        }
    }

    pub(super) fn activation(&self) -> Option<Activation> {
        Some(match *self {
            Op::Silu => Activation::Silu,
            Op::Relu => Activation::Relu,
            Op::LeakyRelu { alpha } => Activation::LeakyRelu(alpha),
            Op::Elu { alpha } => Activation::Elu(alpha),
            Op::Gelu { tanh: false } => Activation::Gelu,
            Op::Gelu { tanh: true } => Activation::GeluTanh,
            Op::Softplus { beta } => Activation::Softplus(beta),
            Op::Tanh => Activation::Tanh,
            Op::Sigmoid => Activation::Sigmoid,
            Op::Erf => Activation::Erf,
            _ => return None,
        })
    }

    pub(super) fn arity(&self) -> usize {
        match self {
            Op::Add | Op::Sub | Op::Mul => 2,
            Op::Concat => usize::MAX,
            Op::Ext { op, .. } => op.def().arity(),
            _ => 1,
        }
    }
}
