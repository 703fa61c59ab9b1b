//! `mish`: `x tanh(softplus(x))` (Misra 2019), elementwise on any value; ONNX `Mish` (opset 18).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::{OnnxAttr, OpDef, OpLayout, OpNode, Params};
use crate::nn::Result;
use crate::nn::graph::ValueShape;
use crate::nn::layers::sigmoid;

/// `x tanh(softplus(x))`, no parameters: JSON `{"op": "mish", "in": [v]}`, any shape to the same shape.
pub struct Mish;

impl OpDef for Mish {
    fn name(&self) -> &'static str {
        "mish"
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        super::no_params(params)?;
        Ok(inputs[0])
    }

    fn load(&self, _: &Params, _: &[ValueShape], _: &VarBuilder) -> Result<Box<dyn OpNode>> {
        Ok(Box::new(MishNode))
    }

    fn onnx_types(&self) -> &'static [&'static str] {
        &["Mish"]
    }

    fn onnx_params(
        &self,
        op_type: &str,
        attrs: &[OnnxAttr<'_>],
    ) -> std::result::Result<Params, String> {
        match attrs.first() {
            Some(a) => Err(format!(
                "has attribute '{}', which {op_type} does not take",
                crate::text::one_line(a.name)
            )),
            None => Ok(Params::new()),
        }
    }
}

#[derive(Debug)]
struct MishNode;

impl OpNode for MishNode {
    /// Saves the derivative `tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x)`, of `x`'s shape.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let x = inputs[0];
        // softplus(x) = max(x, 0) + log(1 + exp(-|x|)), without overflow.
        let sp = (x.relu()? + x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
        let t = sp.tanh()?;
        let y = (x * &t)?;
        if !layout.keep {
            return Ok((y, Vec::new()));
        }
        let sech2 = t.sqr()?.affine(-1.0, 1.0)?;
        let d = (&t + ((x * sech2)? * sigmoid(x)?)?)?;
        Ok((y, vec![d]))
    }

    fn vjp(&self, saved: &[Tensor], g: &Tensor, _: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let d = saved
            .first()
            .ok_or_else(|| crate::nn::Error::Unsupported("network cache does not match".into()))?;
        Ok(vec![Some((g * d)?)])
    }
}
