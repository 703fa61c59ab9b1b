//! `slice_channels`: channels `start .. start + len` of an image (features of a flat value). ONNX `Split` (and
//! `Slice`) along the channel axis: PyTorch's `qkv.chunk(3, dim=1)` of an attention block, a GLU's halves.
//!
//! The input-VJP puts the gradient back in place, zeros in the other channels.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::{OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// `[c, h, w] -> [len, h, w]` (`[d] -> [len]`): JSON `{"op": "slice_channels", "in": [v], "start": s, "len": n}`.
pub struct SliceChannels;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SliceParams {
    start: usize,
    len: usize,
}

/// The JSON parameters of channels `start .. start + len` (for the importer).
pub fn params(start: usize, len: usize) -> Params {
    let mut p = Params::new();
    p.insert("start".into(), serde_json::json!(start));
    p.insert("len".into(), serde_json::json!(len));
    p
}

fn checked(
    params: &Params,
    input: ValueShape,
) -> std::result::Result<(SliceParams, usize, ValueShape), String> {
    let p: SliceParams = super::parse(params)?;
    let (c, out) = match input {
        ValueShape::Image(c, h, w) => (c, ValueShape::Image(p.len, h, w)),
        ValueShape::Flat(d) => (d, ValueShape::Flat(p.len)),
    };
    if p.len == 0 || p.start.checked_add(p.len).is_none_or(|end| end > c) {
        return Err(format!(
            "channels {} .. {} are not inside the {c} of {}",
            p.start,
            p.start.saturating_add(p.len),
            input.describe()
        ));
    }
    Ok((p, c, out))
}

impl OpDef for SliceChannels {
    fn name(&self) -> &'static str {
        "slice_channels"
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        checked(params, inputs[0]).map(|(_, _, s)| s)
    }

    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        _: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let (p, c, _) = checked(params, inputs[0]).map_err(Error::Architecture)?;
        Ok(Box::new(SliceNode {
            start: p.start,
            len: p.len,
            c,
        }))
    }
}

#[derive(Debug)]
struct SliceNode {
    start: usize,
    len: usize,
    /// Channels of the input.
    c: usize,
}

impl OpNode for SliceNode {
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let x = inputs[0];
        let axis = layout.channel_axis(x.rank());
        Ok((
            x.narrow(axis, self.start, self.len)?.contiguous()?,
            Vec::new(),
        ))
    }

    fn vjp(&self, _: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let axis = layout.channel_axis(g.rank());
        let after = self.c - self.start - self.len;
        Ok(vec![Some(g.pad_with_zeros(axis, self.start, after)?)])
    }
}
