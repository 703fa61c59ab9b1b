//! `upsample_bilinear`: bilinear up-sampling by an integer factor, as PyTorch's
//! `Upsample(scale_factor=s, mode="bilinear", align_corners=...)`; ONNX `Resize` (or `Upsample`) in `linear` mode
//! with `half_pixel`, `pytorch_half_pixel` or `align_corners` coordinates.
//!
//! Interpolation is separable and linear: per channel `y = A_h x A_w^T` with constant matrices `A_h: [s h, h]`,
//! `A_w: [s w, w]` (two non-zeros a row), so the input-VJP is `A_h^T g A_w`.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::{OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// `[c, h, w] -> [c, s h, s w]`: JSON `{"op": "upsample_bilinear", "in": [v], "scale": 2}` (optional
/// `"align_corners": true`, default false as in PyTorch).
pub struct UpsampleBilinear;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BilinearParams {
    scale: usize,
    #[serde(default)]
    align_corners: bool,
}

impl BilinearParams {
    fn parse(params: &Params) -> std::result::Result<Self, String> {
        let p: Self = super::parse(params)?;
        if !(1..=16).contains(&p.scale) {
            return Err(format!("scale {} out of range 1..=16", p.scale));
        }
        Ok(p)
    }
}

impl OpDef for UpsampleBilinear {
    fn name(&self) -> &'static str {
        "upsample_bilinear"
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        let p = BilinearParams::parse(params)?;
        match inputs[0] {
            ValueShape::Image(c, h, w) => Ok(ValueShape::Image(c, h * p.scale, w * p.scale)),
            other => Err(format!("needs an image input, got {}", other.describe())),
        }
    }

    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        vb: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let p = BilinearParams::parse(params).map_err(Error::Architecture)?;
        let ValueShape::Image(_, h, w) = inputs[0] else {
            return Err(Error::Architecture(
                "upsample_bilinear needs an image input".into(),
            ));
        };
        let (dtype, device) = (vb.dtype(), vb.device());
        let rows = interpolation(h, p.scale, p.align_corners, dtype, device)?;
        let cols = interpolation(w, p.scale, p.align_corners, dtype, device)?;
        Ok(Box::new(BilinearNode {
            rows_t: rows.t()?.contiguous()?,
            cols_t: cols.t()?.contiguous()?,
            rows,
            cols,
        }))
    }
}

/// The interpolation matrix `[s n, n]` of one axis of length `n`: row `i` weighs the two source pixels around
/// PyTorch's source coordinate, `(i + 1/2) / s - 1/2` clamped at 0 (`align_corners` false) or
/// `i (n - 1) / (s n - 1)` (`align_corners` true).
pub fn interpolation(
    n: usize,
    scale: usize,
    align_corners: bool,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let m = n * scale;
    let mut a = vec![0f64; m * n];
    for i in 0..m {
        let src = if align_corners {
            if m > 1 {
                i as f64 * (n - 1) as f64 / (m - 1) as f64
            } else {
                0.0
            }
        } else {
            ((i as f64 + 0.5) / scale as f64 - 0.5).max(0.0)
        };
        let i0 = (src.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        let l1 = src - i0 as f64;
        a[i * n + i0] += 1.0 - l1;
        a[i * n + i1] += l1;
    }
    Ok(Tensor::from_vec(a, (m, n), device)?.to_dtype(dtype)?)
}

#[derive(Debug)]
struct BilinearNode {
    /// `[s h, h]`
    rows: Tensor,
    /// `[s w, w]`
    cols: Tensor,
    /// `[h, s h]`
    rows_t: Tensor,
    /// `[w, s w]`
    cols_t: Tensor,
}

/// `A x B^T` for each image and channel, given `rows_t = A^T: [h, h']` and `cols_t = B^T: [w, w']`:
/// `x: [N, c, h, w]` (or `[N, h, w, c]`) -> `[N, c, h', w']` (or `[N, h', w', c]`), as two plain GEMMs.
fn sandwich(x: &Tensor, rows_t: &Tensor, cols_t: &Tensor, layout: OpLayout) -> Result<Tensor> {
    let x = layout.to_nchw(x)?;
    let (n, c, h, w) = x.dims4()?;
    let (h2, w2) = (rows_t.dim(1)?, cols_t.dim(1)?);
    // Along the width: [N c h, w] [w, w'].
    let t = x.contiguous()?.reshape((n * c * h, w))?.matmul(cols_t)?;
    // Along the height: [N c w', h] [h, h'].
    let t = t
        .reshape((n * c, h, w2))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n * c * w2, h))?
        .matmul(rows_t)?;
    let y = t.reshape((n, c, w2, h2))?.transpose(2, 3)?;
    layout.from_nchw(y.contiguous()?)
}

impl OpNode for BilinearNode {
    /// Saves nothing: the VJP needs only the interpolation matrices.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        Ok((
            sandwich(inputs[0], &self.rows_t, &self.cols_t, layout)?,
            Vec::new(),
        ))
    }

    fn vjp(&self, _: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        // `A_h^T g A_w`: the transposes' transposes are the matrices themselves.
        Ok(vec![Some(sandwich(g, &self.rows, &self.cols, layout)?)])
    }
}
