//! `avg_pool2d`: the mean of each `k x k` window at any stride up to the kernel, with zero padding on every side
//! (the built-in `avg_pool` is the side-by-side case). The mean counts the padding cells (PyTorch's default,
//! `count_include_pad=True`) or only the pixels the window covers. ONNX `AveragePool` with strides below the
//! kernel or with pads: the chained residual pooling of NCSNv2 (`AvgPool2d(5, stride=1, padding=2)`), a ResNet-D
//! shortcut (`AvgPool2d(3, 2, 1)`).
//!
//! Linear in its input: the VJP spreads each window's gradient, divided by its count, over the window.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::max_pool::{MaxPoolNode, Windows, onnx_window, window_geometry};
use super::{OnnxAttr, OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// `[c, h, w] -> [c, (h + 2p - k) / s + 1, (w + 2p - k) / s + 1]`: JSON `{"op": "avg_pool2d", "in": [v], "kernel":
/// k, "stride": s, "padding": p, "count_include_pad": true}` (stride defaults to the kernel, padding to 0, the count
/// to including the padding).
pub struct AvgPool2d;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvgParams {
    kernel: usize,
    #[serde(default)]
    stride: Option<usize>,
    #[serde(default)]
    padding: usize,
    #[serde(default = "super::yes")]
    count_include_pad: bool,
}

/// The parameters, the stride and the output shape, or a one-line message.
fn checked(
    params: &Params,
    input: ValueShape,
) -> std::result::Result<(AvgParams, usize, ValueShape), String> {
    let p: AvgParams = super::parse(params)?;
    let ValueShape::Image(c, h, w) = input else {
        return Err(format!("needs an image input, got {}", input.describe()));
    };
    let (k, s, pad) = window_geometry(p.kernel, p.stride, p.padding, h, w)?;
    let out = ValueShape::Image(c, (h + 2 * pad - k) / s + 1, (w + 2 * pad - k) / s + 1);
    Ok((p, s, out))
}

impl OpDef for AvgPool2d {
    fn name(&self) -> &'static str {
        "avg_pool2d"
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
        let (p, s, _) = checked(params, inputs[0]).map_err(Error::Architecture)?;
        let ValueShape::Image(_, h, w) = inputs[0] else {
            return Err(Error::Architecture(
                "avg_pool2d needs an image input".into(),
            ));
        };
        let windows = Windows::new(p.kernel, s, p.padding, h, w);
        // 1 / (cells counted) per output position, row-major [oh, ow].
        let covered = |i: usize, n: usize| -> usize {
            let start = (i * s) as i64 - p.padding as i64;
            let end = start + p.kernel as i64;
            (end.min(n as i64) - start.max(0)).max(0) as usize
        };
        let mut inv = Vec::with_capacity(windows.oh * windows.ow);
        for i in 0..windows.oh {
            for j in 0..windows.ow {
                let count = match p.count_include_pad {
                    true => p.kernel * p.kernel,
                    false => covered(i, h) * covered(j, w),
                };
                inv.push(1.0 / count.max(1) as f64);
            }
        }
        Ok(Box::new(AvgPoolNode { windows, inv }))
    }

    fn onnx_types(&self) -> &'static [&'static str] {
        &["AveragePool"]
    }

    fn onnx_params(&self, _: &str, attrs: &[OnnxAttr<'_>]) -> std::result::Result<Params, String> {
        let (k, stride, padding) = onnx_window(attrs, "pools")?;
        let mut include = false;
        for a in attrs {
            match a.name {
                "kernel_shape" | "strides" | "pads" => {}
                "count_include_pad" => include = a.i != 0,
                "auto_pad" if matches!(a.s, b"" | b"NOTSET" | b"VALID") => {}
                "dilations" if a.ints.iter().all(|&d| d == 1) => {}
                "ceil_mode" if a.i == 0 => {}
                other => {
                    return Err(format!(
                        "has attribute '{}' set as walkjump does not pool (auto_pad, dilations and ceil_mode are left at their defaults)",
                        crate::text::one_line(other)
                    ));
                }
            }
        }
        let mut params = Params::new();
        params.insert("kernel".into(), serde_json::json!(k));
        params.insert("stride".into(), serde_json::json!(stride));
        params.insert("padding".into(), serde_json::json!(padding));
        // ONNX's default counts only the covered pixels; PyTorch's exporter writes the attribute when it differs.
        params.insert("count_include_pad".into(), serde_json::json!(include));
        Ok(params)
    }
}

#[derive(Debug)]
struct AvgPoolNode {
    windows: Windows,
    /// One over the cells each output position averages, `[oh, ow]` row-major.
    inv: Vec<f64>,
}

impl AvgPoolNode {
    /// The `1 / count` map shaped to broadcast against an output in `layout`.
    fn inv(&self, like: &Tensor, layout: OpLayout) -> Result<Tensor> {
        let (oh, ow) = (self.windows.oh, self.windows.ow);
        let t = Tensor::from_slice(&self.inv, (oh, ow), like.device())?.to_dtype(like.dtype())?;
        Ok(match layout.channels_last {
            true => t.reshape((1, oh, ow, 1))?,
            false => t.reshape((1, 1, oh, ow))?,
        })
    }
}

impl OpNode for AvgPoolNode {
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let axes = MaxPoolNode::axes(layout);
        let sum = self.windows.taps(inputs[0], axes, 0.0)?.sum(0)?;
        Ok((sum.broadcast_mul(&self.inv(&sum, layout)?)?, Vec::new()))
    }

    fn vjp(&self, _: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let axes = MaxPoolNode::axes(layout);
        let share = g.broadcast_mul(&self.inv(g, layout)?)?.unsqueeze(0)?;
        let k2 = self.windows.count();
        let parts = share.broadcast_as(
            std::iter::once(k2)
                .chain(share.dims()[1..].iter().copied())
                .collect::<Vec<_>>(),
        )?;
        Ok(vec![Some(self.windows.scatter(&parts, axes)?)])
    }
}
