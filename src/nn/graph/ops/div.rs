//! `div`: `a / b` of two values of one shape, elementwise; ONNX `Div` of two input-dependent values (PyTorch's
//! Softsign exports as `x / (1 + |x|)`, normalisations as `x / sqrt(...)`).
//!
//! Where `b` is 0 the quotient is infinite or NaN, as in PyTorch: the chain that reaches it is reported as diverged.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::{OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// `a / b`, no parameters: JSON `{"op": "div", "in": [a, b]}`, two values of one shape to that shape.
pub struct Div;

impl OpDef for Div {
    fn name(&self) -> &'static str {
        "div"
    }

    fn arity(&self) -> usize {
        2
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        super::no_params(params)?;
        if inputs[0] != inputs[1] {
            return Err(format!(
                "operands differ in shape: {} and {}",
                inputs[0].describe(),
                inputs[1].describe()
            ));
        }
        Ok(inputs[0])
    }

    fn load(&self, _: &Params, _: &[ValueShape], _: &VarBuilder) -> Result<Box<dyn OpNode>> {
        Ok(Box::new(DivNode))
    }
}

#[derive(Debug)]
struct DivNode;

impl OpNode for DivNode {
    /// Saves `1 / b` and the quotient `a / b`.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let inv = inputs[1].recip()?;
        let q = (inputs[0] * &inv)?;
        Ok((
            q.clone(),
            if layout.keep {
                vec![inv, q]
            } else {
                Vec::new()
            },
        ))
    }

    /// `d/da = g / b`, `d/db = -g a / b^2 = -(g / b) (a / b)`.
    fn vjp(&self, saved: &[Tensor], g: &Tensor, _: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let [inv, q] = saved else {
            return Err(Error::Unsupported("network cache does not match".into()));
        };
        let ga = (g * inv)?;
        let gb = (&ga * q)?.neg()?;
        Ok(vec![Some(ga), Some(gb)])
    }
}
