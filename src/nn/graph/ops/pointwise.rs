//! Elementwise ops beyond the built-in ones, each with its ONNX operator: `hard_sigmoid`, `hard_swish`, `selu`,
//! `celu`, `softsign`, `abs` and `clip` (PyTorch's Hardsigmoid, Hardswish, SELU, CELU, Softsign, `abs`, ReLU6 /
//! Hardtanh / `clamp`), and `exp`, `log`, `sqrt`, `reciprocal`. Any shape to the same shape, float fields with
//! defaults.
//!
//! Each is a [`Pointwise`]: a function giving `f(x)` and `f'(x)` in candle ops (masks from comparisons carry no
//! gradient, so the derivative stays differentiable where `f'` is smooth: training differentiates the VJP
//! `g f'(x)`).

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde_json::Value;

use super::{OnnxAttr, OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// `x, parameters (in the order of Pointwise::fields) -> (f(x), f'(x))`.
type Apply = fn(&Tensor, &[f64]) -> candle_core::Result<(Tensor, Tensor)>;

/// An elementwise op: its JSON name, ONNX operator, float fields `(name, default)` (also its ONNX attributes, or
/// for `clip` its inputs) and its function.
pub struct Pointwise {
    name: &'static str,
    onnx: &'static [&'static str],
    fields: &'static [(&'static str, f64)],
    apply: Apply,
}

impl Pointwise {
    /// The fields' values: each given one (a finite number) or its default, in order.
    fn values(&self, params: &Params) -> std::result::Result<Vec<f64>, String> {
        if let Some(k) = params
            .keys()
            .find(|k| !self.fields.iter().any(|(f, _)| f == k))
        {
            let known: Vec<&str> = self.fields.iter().map(|(f, _)| *f).collect();
            return Err(match known.is_empty() {
                true => format!("takes no parameters, got `{}`", crate::text::one_line(k)),
                false => format!(
                    "has no field `{}` (fields: {})",
                    crate::text::one_line(k),
                    known.join(", ")
                ),
            });
        }
        let mut out = Vec::with_capacity(self.fields.len());
        for (f, default) in self.fields {
            let v = match params.get(*f) {
                None => *default,
                Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
                Some(other) => return Err(format!("field `{f}` must be a number, got {other}")),
            };
            if !v.is_finite() {
                return Err(format!("field `{f}` must be finite"));
            }
            out.push(v);
        }
        Ok(out)
    }

    /// A node of this op with the given fields (e.g. from the ONNX importer).
    pub fn params(&self, values: &[(&str, f64)]) -> Params {
        values
            .iter()
            .map(|(k, v)| ((*k).to_string(), serde_json::json!(v)))
            .collect()
    }
}

impl OpDef for Pointwise {
    fn name(&self) -> &'static str {
        self.name
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        let v = self.values(params)?;
        if self.name == "clip" && v[0] > v[1] {
            return Err(format!("min {} is above max {}", v[0], v[1]));
        }
        if self.name == "celu" && v[0] == 0.0 {
            return Err("alpha must not be 0".into());
        }
        Ok(inputs[0])
    }

    fn load(&self, params: &Params, _: &[ValueShape], _: &VarBuilder) -> Result<Box<dyn OpNode>> {
        Ok(Box::new(PointwiseNode {
            values: self.values(params).map_err(Error::Architecture)?,
            apply: self.apply,
        }))
    }

    fn onnx_types(&self) -> &'static [&'static str] {
        self.onnx
    }

    fn onnx_params(
        &self,
        op_type: &str,
        attrs: &[OnnxAttr<'_>],
    ) -> std::result::Result<Params, String> {
        let mut params = Params::new();
        for a in attrs {
            if !self.fields.iter().any(|(f, _)| *f == a.name) {
                return Err(format!(
                    "has attribute '{}', which {op_type} does not take",
                    crate::text::one_line(a.name)
                ));
            }
            params.insert(a.name.to_string(), serde_json::json!(a.f));
        }
        Ok(params)
    }
}

struct PointwiseNode {
    values: Vec<f64>,
    apply: Apply,
}

impl std::fmt::Debug for PointwiseNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointwiseNode")
            .field("values", &self.values)
            .finish()
    }
}

impl OpNode for PointwiseNode {
    /// Saves `f'(x)`, of `x`'s shape.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let (y, d) = (self.apply)(inputs[0], &self.values)?;
        Ok((y, if layout.keep { vec![d] } else { Vec::new() }))
    }

    fn vjp(&self, saved: &[Tensor], g: &Tensor, _: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let d = saved
            .first()
            .ok_or_else(|| Error::Unsupported("network cache does not match".into()))?;
        Ok(vec![Some((g * d)?)])
    }
}

/// 1 where `lo < x < hi`, else 0 (a comparison mask, no gradient).
fn inside(x: &Tensor, lo: f64, hi: f64) -> candle_core::Result<Tensor> {
    x.gt(lo)?.to_dtype(x.dtype())? * x.lt(hi)?.to_dtype(x.dtype())?
}

/// `clamp(alpha x + beta, 0, 1)`; ONNX HardSigmoid (alpha 0.2, beta 0.5; PyTorch's Hardsigmoid exports 1/6, 1/2).
pub static HARD_SIGMOID: Pointwise = Pointwise {
    name: "hard_sigmoid",
    onnx: &["HardSigmoid"],
    fields: &[("alpha", 0.2), ("beta", 0.5)],
    apply: |x, p| {
        let z = x.affine(p[0], p[1])?;
        let d = (inside(&z, 0.0, 1.0)? * p[0])?;
        Ok((z.clamp(0.0, 1.0)?, d))
    },
};

/// `x clamp(x / 6 + 1/2, 0, 1)`; ONNX HardSwish, PyTorch's Hardswish.
pub static HARD_SWISH: Pointwise = Pointwise {
    name: "hard_swish",
    onnx: &["HardSwish"],
    fields: &[],
    apply: |x, _| {
        let z = x.affine(1.0 / 6.0, 0.5)?;
        let h = z.clamp(0.0, 1.0)?;
        // h + x h', with h' = 1/6 inside (-3, 3).
        let d = (&h + (x * inside(x, -3.0, 3.0)?)?.affine(1.0 / 6.0, 0.0)?)?;
        Ok(((x * &h)?, d))
    },
};

/// `gamma (x if x > 0 else alpha (e^x - 1))`; ONNX Selu, PyTorch's SELU (its constants are the defaults).
pub static SELU: Pointwise = Pointwise {
    name: "selu",
    onnx: &["Selu"],
    fields: &[
        ("alpha", 1.673_263_192_176_818_8),
        ("gamma", 1.050_701_022_148_132_3),
    ],
    apply: |x, p| {
        let pos = x.gt(0.0)?.to_dtype(x.dtype())?;
        let neg = pos.affine(-1.0, 1.0)?;
        // exp of min(x, 0): no overflow on the positive side, where it is masked out.
        let e = x.minimum(0.0)?.exp()?;
        let y = ((x.relu()? + (&neg * e.affine(p[0], -p[0])?)?)? * p[1])?;
        let d = ((&pos + (&neg * e.affine(p[0], 0.0)?)?)? * p[1])?;
        Ok((y, d))
    },
};

/// `max(0, x) + min(0, alpha (e^(x / alpha) - 1))`; ONNX Celu, PyTorch's CELU.
pub static CELU: Pointwise = Pointwise {
    name: "celu",
    onnx: &["Celu"],
    fields: &[("alpha", 1.0)],
    apply: |x, p| {
        let pos = x.gt(0.0)?.to_dtype(x.dtype())?;
        let neg = pos.affine(-1.0, 1.0)?;
        let e = x.minimum(0.0)?.affine(1.0 / p[0], 0.0)?.exp()?;
        let y = (x.relu()? + (&neg * e.affine(p[0], -p[0])?)?)?;
        let d = (&pos + (&neg * e)?)?;
        Ok((y, d))
    },
};

/// `x / (1 + |x|)`; ONNX Softsign, PyTorch's Softsign.
pub static SOFTSIGN: Pointwise = Pointwise {
    name: "softsign",
    onnx: &["Softsign"],
    fields: &[],
    apply: |x, _| {
        let q = x.abs()?.affine(1.0, 1.0)?.recip()?;
        Ok(((x * &q)?, q.sqr()?))
    },
};

/// `|x|` (derivative `sign(x)`, 0 at 0); ONNX Abs.
pub static ABS: Pointwise = Pointwise {
    name: "abs",
    onnx: &["Abs"],
    fields: &[],
    apply: |x, _| Ok((x.abs()?, x.sign()?)),
};

/// `clamp(x, min, max)`; ONNX Clip (its bounds are constant inputs from opset 11, read by the importer), PyTorch's
/// ReLU6 (0, 6), Hardtanh (-1, 1) and `clamp`.
pub static CLIP: Pointwise = Pointwise {
    name: "clip",
    onnx: &[],
    fields: &[("min", f32::MIN as f64), ("max", f32::MAX as f64)],
    apply: |x, p| {
        // Derivative 1 on [min, max], bounds included, as PyTorch's clamp backward.
        let d = (x.ge(p[0])?.to_dtype(x.dtype())? * x.le(p[1])?.to_dtype(x.dtype())?)?;
        Ok((x.clamp(p[0], p[1])?, d))
    },
};

/// `e^x`; ONNX Exp.
pub static EXP: Pointwise = Pointwise {
    name: "exp",
    onnx: &["Exp"],
    fields: &[],
    apply: |x, _| {
        let y = x.exp()?;
        Ok((y.clone(), y))
    },
};

/// `ln x` (NaN below 0, as in PyTorch: a chain that gets there is reported as diverged); ONNX Log.
pub static LOG: Pointwise = Pointwise {
    name: "log",
    onnx: &["Log"],
    fields: &[],
    apply: |x, _| Ok((x.log()?, x.recip()?)),
};

/// `sqrt x`; ONNX Sqrt of an input-dependent value (the importer folds it on constants).
pub static SQRT: Pointwise = Pointwise {
    name: "sqrt",
    onnx: &[],
    fields: &[],
    apply: |x, _| {
        let y = x.sqrt()?;
        let d = y.recip()?.affine(0.5, 0.0)?;
        Ok((y, d))
    },
};

/// `1 / x`; ONNX Reciprocal of an input-dependent value, and a constant divided by one (`k / x`).
pub static RECIPROCAL: Pointwise = Pointwise {
    name: "reciprocal",
    onnx: &[],
    fields: &[],
    apply: |x, _| {
        let y = x.recip()?;
        let d = y.sqr()?.neg()?;
        Ok((y, d))
    },
};
