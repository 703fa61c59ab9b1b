//! `prelu`: `x` where `x > 0`, else `a_c x` with a learned slope per channel (per feature of a flat value);
//! PyTorch's `PReLU`, ONNX `PRelu` (one slope or one per channel).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::{OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// JSON `{"op": "prelu", "in": [v], "name": "p"}` with `weight [c]` (the slopes) under the node's name; any shape
/// to the same shape.
pub struct Prelu;

impl OpDef for Prelu {
    fn name(&self) -> &'static str {
        "prelu"
    }

    fn needs_name(&self) -> bool {
        true
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        super::no_params(params)?;
        Ok(inputs[0])
    }

    fn load(&self, _: &Params, inputs: &[ValueShape], vb: &VarBuilder) -> Result<Box<dyn OpNode>> {
        let c = match inputs[0] {
            ValueShape::Flat(d) => d,
            ValueShape::Image(c, _, _) => c,
        };
        Ok(Box::new(PreluNode {
            weight: vb.get(c, "weight")?,
        }))
    }
}

#[derive(Debug)]
struct PreluNode {
    /// `[c]`
    weight: Tensor,
}

impl OpNode for PreluNode {
    /// Saves the derivative: 1 where `x > 0`, else the channel's slope.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let x = inputs[0];
        let a = layout.per_channel(&self.weight, x.rank())?;
        let pos = x.gt(0.0)?.to_dtype(x.dtype())?;
        let neg = pos.affine(-1.0, 1.0)?;
        let y = (x.relu()? + x.minimum(0.0)?.broadcast_mul(&a)?)?;
        if !layout.keep {
            return Ok((y, Vec::new()));
        }
        let d = (&pos + neg.broadcast_mul(&a)?)?;
        Ok((y, vec![d]))
    }

    fn vjp(&self, saved: &[Tensor], g: &Tensor, _: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let d = saved
            .first()
            .ok_or_else(|| Error::Unsupported("network cache does not match".into()))?;
        Ok(vec![Some((g * d)?)])
    }
}
