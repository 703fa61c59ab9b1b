//! Graph ops defined outside `graph.rs`: one file each, behind one trait ([`OpDef`]) and one registry ([`OPS`]).
//!
//! **Adding an op** takes a new file `src/nn/graph/ops/<name>.rs` holding a unit struct that implements [`OpDef`]
//! (its JSON name, arity, output shape from its input shapes and parameters, and [`OpDef::load`] of a built node
//! implementing [`OpNode`]: forward in both image layouts and the input-VJP in ordinary candle ops), plus one line in
//! the `registry!` invocation below (`file::{Type}`; a file may define several ops, as `pointwise.rs` does). Everything else reads the registry: the `arch` JSON (`{"op": name, ...fields}`
//! as [`Op::Ext`](super::Op::Ext)), [`Graph::new`](super::Graph::new), the forward and VJP passes, and the ONNX
//! importer (the operators of [`OpDef::onnx_types`], through [`OpDef::onnx_params`]).
//!
//! A definition that is not registered still works in a graph built in code ([`ExtOp::new`]); only reading its
//! JSON needs the registry.
//!
//! The built-in ops (the `Op` variants with their own fields) stay in `graph.rs`: they carry the fusions the dense
//! and convolutional networks are fast with (linear + SiLU, in-place activations, fused norms).

use std::fmt;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ValueShape;
use crate::nn::{Error, Result};

/// Declares the op files and the registry: `file::{Def, ...}` per file, each `Def` a unit struct or a static
/// implementing [`OpDef`].
macro_rules! registry {
    ($($file:ident :: { $($def:ident),+ $(,)? }),+ $(,)?) => {
        $(
            pub mod $file;
            $(pub use $file::$def;)+
        )+
        /// Every registered op.
        pub static OPS: &[&dyn OpDef] = &[$($(&$def),+),+];
    };
}

registry! {
    mish::{Mish},
    max_pool::{MaxPool},
    conv_transpose::{ConvTranspose2d},
    upsample_bilinear::{UpsampleBilinear},
    pointwise::{
        HARD_SIGMOID, HARD_SWISH, SELU, CELU, SOFTSIGN, ABS, CLIP, EXP, LOG, SQRT, RECIPROCAL,
    },
    div::{Div},
    pixel_shuffle::{PixelShuffle},
    prelu::{Prelu},
    conv_grouped::{Conv2dGrouped},
    pad::{Pad2d},
    attention::{Attention},
    slice_channels::{SliceChannels},
    avg_pool2d::{AvgPool2d},
}

/// An op's parameters: the fields of its JSON node besides `op`, `in` and `name`.
pub type Params = Map<String, Value>;

/// The registered op named `name` (its JSON `op` tag).
pub fn find(name: &str) -> Option<&'static dyn OpDef> {
    OPS.iter().copied().find(|d| d.name() == name)
}

/// The registered op that translates the ONNX operator `op_type`.
pub fn find_onnx(op_type: &str) -> Option<&'static dyn OpDef> {
    OPS.iter()
        .copied()
        .find(|d| d.onnx_types().contains(&op_type))
}

/// `params` as the op's typed parameters (`T: Deserialize`, with serde defaults for omitted fields); a one-line
/// message naming the bad field otherwise.
pub fn parse<T: DeserializeOwned>(params: &Params) -> std::result::Result<T, String> {
    serde_json::from_value(Value::Object(params.clone()))
        .map_err(|e| crate::text::one_line(&e.to_string()))
}

/// How the values of one pass are laid out, for an op's forward and VJP. Flat values are `[N, d]`; images are
/// `[N, h, w, c]` when `channels_last` (the CPU fast path), else `[N, c, h, w]`.
#[derive(Clone, Copy, Debug)]
pub struct OpLayout {
    /// Whether images are channels-last.
    pub channels_last: bool,
    /// Whether a VJP follows this forward pass (without it, an op may save nothing).
    pub keep: bool,
}

impl OpLayout {
    /// The axis that holds channels (a rank-4 image) or features (flat `[N, d]`).
    pub fn channel_axis(&self, rank: usize) -> usize {
        if rank == 4 && self.channels_last {
            3
        } else {
            1
        }
    }

    /// A per-channel (or per-feature) vector `v: [c]` shaped to broadcast against a value of rank `rank`.
    pub fn per_channel(&self, v: &Tensor, rank: usize) -> Result<Tensor> {
        let c = v.dim(0)?;
        Ok(match (rank, self.channels_last) {
            (4, true) => v.reshape((1, 1, 1, c))?,
            (4, false) => v.reshape((1, c, 1, 1))?,
            _ => v.reshape((1, c))?,
        })
    }
}

/// The graph's limits on a layer's width and on the values of one sample (`Graph::new` checks every node's output
/// against the second; ops with weights check both before making them).
pub(crate) const MAX_WIDTH: usize = 1 << 16;
pub(crate) const MAX_VALUE_ELEMS: usize = 1 << 24;

/// `Ok` for an op without parameters, else a one-line message naming the first one given.
pub(crate) fn no_params(params: &Params) -> std::result::Result<(), String> {
    match params.keys().next() {
        Some(k) => Err(format!(
            "takes no parameters, got `{}`",
            crate::text::one_line(k)
        )),
        None => Ok(()),
    }
}

/// Serde default for a stride: 1.
pub(crate) fn one() -> usize {
    1
}

/// Serde default for a bias flag: true.
pub(crate) fn yes() -> bool {
    true
}

impl OpLayout {
    /// A rank-4 image in this layout as channels-first `[N, c, h, w]` (for candle's convolutions).
    pub fn to_nchw(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.channels_last {
            true => x.permute((0, 3, 1, 2))?.contiguous()?,
            false => x.clone(),
        })
    }

    /// A channels-first image `[N, c, h, w]` back in this layout.
    pub fn from_nchw(&self, x: Tensor) -> Result<Tensor> {
        Ok(match self.channels_last {
            true => x.permute((0, 2, 3, 1))?.contiguous()?,
            false => x,
        })
    }
}

/// The attributes of an ONNX node, as [`OpDef::onnx_params`] reads them.
#[derive(Clone, Copy, Debug)]
pub struct OnnxAttr<'a> {
    /// Attribute name.
    pub name: &'a str,
    /// Float value.
    pub f: f32,
    /// Integer value.
    pub i: i64,
    /// String value (bytes).
    pub s: &'a [u8],
    /// Integer list value (e.g. `kernel_shape`, `strides`, `pads`).
    pub ints: &'a [i64],
}

/// Everything about one op. Implemented by a unit struct in the op's own file and listed once in the registry; see
/// the module docs. Shapes are per sample, as in [`ValueShape`].
pub trait OpDef: Send + Sync + 'static {
    /// Its name: the `op` of its JSON node. Snake case, unique among the built-in and registered ops; never rename
    /// it (checkpoints store it).
    fn name(&self) -> &'static str;

    /// How many inputs it reads (`usize::MAX`: one or more).
    fn arity(&self) -> usize {
        1
    }

    /// Whether it has parameters under the node's `name` (then the name must not be empty).
    fn needs_name(&self) -> bool {
        false
    }

    /// Its output shape from its parameters and input shapes, or a one-line message (the graph prefixes the node)
    /// for what it refuses: a bad parameter, an input shape it cannot take.
    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String>;

    /// The built node: its parameters parsed and its tensors loaded from `vb` (already under the node's name, e.g.
    /// `vb.get(c, "weight")` reads `{name}.weight`). Called after [`OpDef::shape`] accepted the same arguments.
    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        vb: &VarBuilder,
    ) -> Result<Box<dyn OpNode>>;

    /// The ONNX operators it translates (none unless overridden).
    fn onnx_types(&self) -> &'static [&'static str] {
        &[]
    }

    /// Its parameters for an ONNX node of one of [`OpDef::onnx_types`] whose inputs are all graph values (the
    /// importer refuses constant inputs and initializers for these ops), or a one-line message.
    fn onnx_params(
        &self,
        op_type: &str,
        attrs: &[OnnxAttr<'_>],
    ) -> std::result::Result<Params, String> {
        let _ = (op_type, attrs);
        Ok(Params::new())
    }
}

/// A built op node: its forward pass and input-VJP. Write both in ordinary candle ops so that the VJP stays
/// differentiable in the weights (training differentiates through it).
pub trait OpNode: fmt::Debug + Send + Sync {
    /// The inputs (in `layout`, each of its input's shape) to the output and what the VJP needs (anything, e.g. the
    /// inputs or a derivative; nothing when `!layout.keep`).
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)>;

    /// `g` (the output's gradient, in `layout`) to each input's gradient, in input order (`None`: no gradient).
    fn vjp(&self, saved: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>>;

    /// Multiply-adds of one forward pass for one sample, for throughput figures (`walkjump bench`); zero for ops
    /// whose cost is not in products (elementwise, pooling).
    fn macs(&self) -> usize {
        0
    }
}

/// The definition of an op outside the built-in ones (its parameters sit beside it in [`Op::Ext`](super::Op::Ext)).
/// Compares by name.
#[derive(Clone, Copy)]
pub struct ExtOp {
    def: &'static dyn OpDef,
}

impl ExtOp {
    /// The op `def` (registered or not).
    pub fn new(def: &'static dyn OpDef) -> Self {
        Self { def }
    }

    /// The definition.
    pub fn def(&self) -> &'static dyn OpDef {
        self.def
    }
}

impl fmt::Debug for ExtOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.def.name())
    }
}

impl PartialEq for ExtOp {
    fn eq(&self, other: &Self) -> bool {
        self.def.name() == other.def.name()
    }
}

/// A node built from an [`OpDef`]: the message of an `Architecture` error is the op's own (the graph adds the
/// node), anything else passes through.
pub(super) fn load(
    def: &dyn OpDef,
    params: &Params,
    inputs: &[ValueShape],
    vb: &VarBuilder,
) -> std::result::Result<(Box<dyn OpNode>, ValueShape), Error> {
    let shape = def.shape(params, inputs).map_err(Error::Architecture)?;
    Ok((def.load(params, inputs, vb)?, shape))
}
