//! `pad2d`: an image grown by rows above and below and columns left and right, filled with a constant, the
//! mirror image of the border (reflect, without repeating the edge: PyTorch's `padding_mode="reflect"`,
//! `nn.ReflectionPad2d`) or copies of the edge (`nn.ReplicationPad2d`). ONNX `Pad` on the spatial axes, and the
//! uneven padding of a `Conv` (TensorFlow's `SAME` at stride 2, `nn.ZeroPad2d((0, 1, 0, 1))` before it).
//!
//! Every mode is a gather of input pixels (or a constant): the input-VJP scatters the gradient back, summing where
//! one input pixel was copied to several places; the constant cells take no gradient.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// Largest padding on one side (walkjump's images are far smaller).
pub const MAX_PAD: usize = 256;

/// `[c, h, w] -> [c, top + h + bottom, left + w + right]`: JSON `{"op": "pad2d", "in": [v], "top": t, "bottom": b,
/// "left": l, "right": r, "mode": "constant" | "reflect" | "edge", "value": v}` (sides default to 0, mode to
/// constant, value to 0).
pub struct Pad2d;

/// How the new cells are filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    /// With `value`.
    #[default]
    Constant,
    /// With the mirror image of the border, the edge row or column not repeated: `[a b c] -> b [a b c] b`.
    Reflect,
    /// With copies of the edge row or column: `[a b c] -> a [a b c] c`.
    Edge,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PadParams {
    #[serde(default)]
    top: usize,
    #[serde(default)]
    bottom: usize,
    #[serde(default)]
    left: usize,
    #[serde(default)]
    right: usize,
    #[serde(default)]
    mode: PadMode,
    #[serde(default)]
    value: f64,
}

/// The JSON parameters of a `pad2d` (for the importer): `[top, bottom, left, right]`, the mode and the constant.
pub fn params(sides: [usize; 4], mode: PadMode, value: f64) -> Params {
    let mut p = Params::new();
    for (name, v) in ["top", "bottom", "left", "right"].into_iter().zip(sides) {
        if v != 0 {
            p.insert(name.into(), serde_json::json!(v));
        }
    }
    if mode != PadMode::Constant {
        p.insert("mode".into(), serde_json::json!(mode));
    }
    if value != 0.0 {
        p.insert("value".into(), serde_json::json!(value));
    }
    p
}

fn checked(
    params: &Params,
    inputs: &[ValueShape],
) -> std::result::Result<(PadParams, usize, usize, usize), String> {
    let p: PadParams = super::parse(params)?;
    let ValueShape::Image(c, h, w) = inputs[0] else {
        return Err(format!(
            "needs an image input, got {}",
            inputs[0].describe()
        ));
    };
    let sides = [p.top, p.bottom, p.left, p.right];
    if sides.iter().any(|&s| s > MAX_PAD) {
        return Err(format!(
            "pads {sides:?}; walkjump pads at most {MAX_PAD} on a side"
        ));
    }
    if !p.value.is_finite() {
        return Err(format!(
            "pads with {}, which is not a finite number",
            p.value
        ));
    }
    if p.mode == PadMode::Reflect && (p.top.max(p.bottom) >= h || p.left.max(p.right) >= w) {
        return Err(format!(
            "reflects {sides:?} (top, bottom, left, right) of a {h}x{w} image; a reflection must be shorter than the side it mirrors"
        ));
    }
    Ok((p, c, h, w))
}

impl OpDef for Pad2d {
    fn name(&self) -> &'static str {
        "pad2d"
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        let (p, c, h, w) = checked(params, inputs)?;
        Ok(ValueShape::Image(
            c,
            p.top + h + p.bottom,
            p.left + w + p.right,
        ))
    }

    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        _: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let (p, _, h, w) = checked(params, inputs).map_err(Error::Architecture)?;
        Ok(Box::new(PadNode {
            rows: Side::new(p.top, h, p.bottom, p.mode),
            cols: Side::new(p.left, w, p.right, p.mode),
            value: p.value,
        }))
    }
}

/// The padding of one spatial axis.
#[derive(Debug)]
struct Side {
    before: usize,
    n: usize,
    after: usize,
    /// For reflect and edge: the input index each output index copies (`before + n + after` of them).
    gather: Option<Vec<u32>>,
}

impl Side {
    fn new(before: usize, n: usize, after: usize, mode: PadMode) -> Self {
        let source = |j: usize| -> u32 {
            // Output index j reads input index i = j - before, mirrored or clamped into 0..n.
            let i = j as i64 - before as i64;
            let last = n as i64 - 1;
            let i = match mode {
                PadMode::Reflect => {
                    if i < 0 {
                        -i
                    } else if i > last {
                        2 * last - i
                    } else {
                        i
                    }
                }
                _ => i.clamp(0, last),
            };
            i as u32
        };
        let gather =
            (mode != PadMode::Constant).then(|| (0..before + n + after).map(source).collect());
        Self {
            before,
            n,
            after,
            gather,
        }
    }

    fn is_empty(&self) -> bool {
        self.before == 0 && self.after == 0
    }

    /// `x` padded along `axis`.
    fn forward(&self, x: &Tensor, axis: usize, value: f64) -> Result<Tensor> {
        if self.is_empty() {
            return Ok(x.clone());
        }
        if let Some(idx) = &self.gather {
            let idx = Tensor::from_slice(idx, idx.len(), x.device())?;
            return Ok(x.contiguous()?.index_select(&idx, axis)?);
        }
        if value == 0.0 {
            return Ok(x.pad_with_zeros(axis, self.before, self.after)?);
        }
        let block = |len: usize| -> Result<Tensor> {
            let mut dims = x.dims().to_vec();
            dims[axis] = len;
            Ok(Tensor::ones(dims, x.dtype(), x.device())?.affine(value, 0.0)?)
        };
        Ok(Tensor::cat(
            &[&block(self.before)?, x, &block(self.after)?],
            axis,
        )?)
    }

    /// The gradient `g` of the padded value back on the input along `axis`.
    fn vjp(&self, g: &Tensor, axis: usize) -> Result<Tensor> {
        if self.is_empty() {
            return Ok(g.clone());
        }
        match &self.gather {
            None => Ok(g.narrow(axis, self.before, self.n)?),
            Some(idx) => {
                let idx = Tensor::from_slice(idx, idx.len(), g.device())?;
                let mut dims = g.dims().to_vec();
                dims[axis] = self.n;
                let zeros = Tensor::zeros(dims, g.dtype(), g.device())?;
                Ok(zeros.index_add(&idx, &g.contiguous()?, axis)?)
            }
        }
    }
}

#[derive(Debug)]
struct PadNode {
    rows: Side,
    cols: Side,
    value: f64,
}

impl OpNode for PadNode {
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let (ah, aw) = if layout.channels_last { (1, 2) } else { (2, 3) };
        let x = inputs[0];
        let y = self.rows.forward(x, ah, self.value)?;
        let y = self.cols.forward(&y, aw, self.value)?;
        Ok((y, Vec::new()))
    }

    fn vjp(&self, _: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let (ah, aw) = if layout.channels_last { (1, 2) } else { (2, 3) };
        let g = self.cols.vjp(g, aw)?;
        Ok(vec![Some(self.rows.vjp(&g, ah)?)])
    }
}
