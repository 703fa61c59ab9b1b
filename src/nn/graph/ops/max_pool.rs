//! `max_pool`: the largest value of each `k x k` window at stride `k`, no padding; rows and columns past the last
//! whole window are dropped (PyTorch's floor mode). ONNX `MaxPool` whose strides equal its kernel (PyTorch's
//! `MaxPool2d(k)`, the down-sampling of the classic U-Net).
//!
//! The input-VJP sends each window's gradient to its largest value. Where a window holds the largest value more
//! than once (a tie, e.g. a window of zeros after a ReLU) the gradient is shared equally among the ties: a
//! subgradient of the maximum, and the same as PyTorch's (which picks one) wherever the maximum is unique.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::{OnnxAttr, OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// Largest kernel accepted (the images walkjump reads are far smaller than `16 x 16` windows would need).
const MAX_KERNEL: usize = 16;

/// `[c, h, w] -> [c, h / k, w / k]`: JSON `{"op": "max_pool", "in": [v], "kernel": k}`.
pub struct MaxPool;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxPoolParams {
    kernel: usize,
}

impl OpDef for MaxPool {
    fn name(&self) -> &'static str {
        "max_pool"
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        let p: MaxPoolParams = super::parse(params)?;
        let ValueShape::Image(c, h, w) = inputs[0] else {
            return Err(format!(
                "needs an image input, got {}",
                inputs[0].describe()
            ));
        };
        let k = p.kernel;
        if k == 0 || k > MAX_KERNEL || k > h || k > w {
            return Err(format!(
                "kernel {k} does not fit a {h}x{w} image (1..={MAX_KERNEL} and at most the image)"
            ));
        }
        Ok(ValueShape::Image(c, h / k, w / k))
    }

    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        _: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let p: MaxPoolParams = super::parse(params).map_err(Error::Architecture)?;
        let ValueShape::Image(_, h, w) = inputs[0] else {
            return Err(Error::Architecture("max_pool needs an image input".into()));
        };
        Ok(Box::new(MaxPoolNode { k: p.kernel, h, w }))
    }

    fn onnx_types(&self) -> &'static [&'static str] {
        &["MaxPool"]
    }

    fn onnx_params(
        &self,
        op_type: &str,
        attrs: &[OnnxAttr<'_>],
    ) -> std::result::Result<Params, String> {
        let ints = |name: &str| attrs.iter().find(|a| a.name == name).map(|a| a.ints);
        let k = match ints("kernel_shape") {
            Some(&[a, b]) if a == b && a > 0 => a,
            other => {
                return Err(format!(
                    "has kernel {other:?}; walkjump max-pools with square 2D kernels"
                ));
            }
        };
        let strides = ints("strides").unwrap_or(&[1, 1]);
        let pads = ints("pads").unwrap_or(&[0, 0, 0, 0]);
        let dilated = ints("dilations").is_some_and(|d| d.iter().any(|&v| v != 1));
        let auto = attrs
            .iter()
            .find(|a| a.name == "auto_pad")
            .map(|a| String::from_utf8_lossy(a.s).into_owned())
            .unwrap_or_default();
        if strides != [k, k] || pads.iter().any(|&p| p != 0) || dilated {
            return Err(format!(
                "pools with kernel {k}, strides {strides:?}, pads {pads:?}; walkjump max-pools with stride = kernel, no padding and no dilation"
            ));
        }
        if !matches!(auto.as_str(), "" | "NOTSET" | "VALID") {
            return Err(format!(
                "has auto_pad {}; walkjump max-pools without padding",
                crate::text::one_line(&auto)
            ));
        }
        for a in attrs {
            match a.name {
                "kernel_shape" | "strides" | "pads" | "dilations" | "auto_pad" => {}
                // Row-major index output only matters for the second output (indices), which walkjump refuses.
                "storage_order" => {}
                "ceil_mode" if a.i == 0 => {}
                "ceil_mode" => {
                    return Err(format!(
                        "rounds the output size up (ceil_mode); walkjump drops partial windows as {op_type} does by default"
                    ));
                }
                other => {
                    return Err(format!(
                        "has attribute '{}', which {op_type} does not take",
                        crate::text::one_line(other)
                    ));
                }
            }
        }
        let mut params = Params::new();
        params.insert("kernel".into(), serde_json::json!(k));
        Ok(params)
    }
}

#[derive(Debug)]
struct MaxPoolNode {
    k: usize,
    /// Input height and width (the VJP pads the dropped rows and columns back with zeros).
    h: usize,
    w: usize,
}

impl MaxPoolNode {
    /// The spatial axes (height, width) of a rank-4 image in `layout`.
    fn axes(layout: OpLayout) -> (usize, usize) {
        if layout.channels_last { (1, 2) } else { (2, 3) }
    }
}

impl OpNode for MaxPoolNode {
    /// Saves the routing weights `[.., h/k, k, w/k, k, ..]` (the window axis after each spatial axis): one over the
    /// number of maxima at each window's maxima, zero elsewhere.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let x = inputs[0];
        let (ah, aw) = Self::axes(layout);
        let k = self.k;
        let mut split = x.dims().to_vec();
        let (oh, ow) = (split[ah] / k, split[aw] / k);
        split[ah] = oh;
        split[aw] = ow;
        split.insert(aw + 1, k);
        split.insert(ah + 1, k);
        let windows = x
            .narrow(ah, 0, oh * k)?
            .narrow(aw, 0, ow * k)?
            .contiguous()?
            .reshape(split)?;
        // Window axes sit at ah + 1 and aw + 2 of `windows`.
        let top = windows.max_keepdim(aw + 2)?.max_keepdim(ah + 1)?;
        let y = top.squeeze(aw + 2)?.squeeze(ah + 1)?;
        if !layout.keep {
            return Ok((y, Vec::new()));
        }
        let hits = windows.broadcast_eq(&top)?.to_dtype(x.dtype())?;
        let count = hits.sum_keepdim(aw + 2)?.sum_keepdim(ah + 1)?;
        // The routing is piecewise constant in x: no gradient flows through it when training differentiates the VJP.
        let route = hits.broadcast_div(&count)?.detach();
        Ok((y, vec![route]))
    }

    fn vjp(&self, saved: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let route = saved
            .first()
            .ok_or_else(|| Error::Unsupported("network cache does not match".into()))?;
        let (ah, aw) = Self::axes(layout);
        let k = self.k;
        let mut dims = g.dims().to_vec();
        let (oh, ow) = (dims[ah], dims[aw]);
        dims[ah] = oh * k;
        dims[aw] = ow * k;
        let gx = route
            .broadcast_mul(&g.unsqueeze(ah + 1)?.unsqueeze(aw + 2)?)?
            .reshape(dims)?
            .pad_with_zeros(ah, 0, self.h - oh * k)?
            .pad_with_zeros(aw, 0, self.w - ow * k)?;
        Ok(vec![Some(gx)])
    }
}
