//! `max_pool`: the largest value of each `k x k` window. By default windows sit side by side (stride `k`, no
//! padding; rows and columns past the last whole window are dropped, PyTorch's floor mode): ONNX `MaxPool` whose
//! strides equal its kernel (PyTorch's `MaxPool2d(k)`, the down-sampling of the classic U-Net). With a `stride`
//! below the kernel the windows overlap, and `padding` adds that many rows and columns of minus infinity on every
//! side (which no maximum picks): `MaxPool2d(3, 2, 1)`, a ResNet stem.
//!
//! The input-VJP sends each window's gradient to its largest value. Where a window holds the largest value more
//! than once (a tie, e.g. a window of zeros after a ReLU) the gradient is shared equally among the ties: a
//! subgradient of the maximum, and the same as PyTorch's (which picks one) wherever the maximum is unique. An input
//! in several overlapping windows gathers the gradient of each window it is the maximum of.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::{OnnxAttr, OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// Largest kernel accepted (the images walkjump reads are far smaller than `16 x 16` windows would need).
const MAX_KERNEL: usize = 16;

/// `[c, h, w] -> [c, (h + 2p - k) / s + 1, (w + 2p - k) / s + 1]`: JSON `{"op": "max_pool", "in": [v], "kernel":
/// k, "stride": s, "padding": p}` (stride defaults to the kernel, padding to 0).
pub struct MaxPool;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxPoolParams {
    kernel: usize,
    #[serde(default)]
    stride: Option<usize>,
    #[serde(default)]
    padding: usize,
}

/// Kernel, stride and padding of valid parameters for a `h x w` image, or a one-line message.
fn checked(
    p: &MaxPoolParams,
    h: usize,
    w: usize,
) -> std::result::Result<(usize, usize, usize), String> {
    window_geometry(p.kernel, p.stride, p.padding, h, w)
}

/// Kernel, stride (default: the kernel) and padding of a pool over an `h x w` image, or a one-line message (the
/// max and average pools share it).
pub(super) fn window_geometry(
    k: usize,
    stride: Option<usize>,
    pad: usize,
    h: usize,
    w: usize,
) -> std::result::Result<(usize, usize, usize), String> {
    let s = stride.unwrap_or(k);
    if k == 0 || k > MAX_KERNEL || k > h + 2 * pad || k > w + 2 * pad {
        return Err(format!(
            "kernel {k} does not fit a {h}x{w} image (1..={MAX_KERNEL} and at most the padded image)"
        ));
    }
    if s == 0 || s > k {
        return Err(format!(
            "stride {s} with kernel {k}; walkjump's pooling windows touch or overlap (1..=kernel)"
        ));
    }
    if 2 * pad > k {
        return Err(format!(
            "padding {pad} with kernel {k}; at most half the kernel, as in PyTorch, so every window holds a pixel"
        ));
    }
    Ok((k, s, pad))
}

/// The square kernel, equal strides and even padding of an ONNX `MaxPool` / `AveragePool` node (`verb`: how the
/// messages name the pooling), or a one-line message.
pub(super) fn onnx_window(
    attrs: &[OnnxAttr<'_>],
    verb: &str,
) -> std::result::Result<(i64, i64, i64), String> {
    let ints = |name: &str| attrs.iter().find(|a| a.name == name).map(|a| a.ints);
    let k = match ints("kernel_shape") {
        Some(&[a, b]) if a == b && a > 0 => a,
        other => {
            return Err(format!(
                "has kernel {other:?}; walkjump {verb} with square 2D kernels"
            ));
        }
    };
    let stride = match ints("strides").unwrap_or(&[1, 1]) {
        &[a, b] if a == b && (1..=k).contains(&a) => a,
        other => {
            return Err(format!(
                "pools with kernel {k} and strides {other:?}; walkjump {verb} with equal strides from 1 to the kernel"
            ));
        }
    };
    let padding = match ints("pads").unwrap_or(&[0, 0, 0, 0]) {
        &[a, b, c, d] if a == b && b == c && c == d && a >= 0 && 2 * a <= k => a,
        other => {
            return Err(format!(
                "pools with kernel {k} and pads {other:?}; walkjump {verb} with the same padding on every side, at most half the kernel"
            ));
        }
    };
    Ok((k, stride, padding))
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
        let (k, s, pad) = checked(&p, h, w)?;
        Ok(ValueShape::Image(
            c,
            (h + 2 * pad - k) / s + 1,
            (w + 2 * pad - k) / s + 1,
        ))
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
        let (k, s, pad) = checked(&p, h, w).map_err(Error::Architecture)?;
        if s == k && pad == 0 {
            return Ok(Box::new(MaxPoolNode { k, h, w }));
        }
        Ok(Box::new(OverlapPoolNode::new(k, s, pad, h, w)))
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
        let (k, stride, padding) = onnx_window(attrs, "max-pools")?;
        let dilated = ints("dilations").is_some_and(|d| d.iter().any(|&v| v != 1));
        let auto = attrs
            .iter()
            .find(|a| a.name == "auto_pad")
            .map(|a| String::from_utf8_lossy(a.s).into_owned())
            .unwrap_or_default();
        if dilated {
            return Err(format!(
                "pools with kernel {k} dilated; walkjump max-pools without dilation"
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
        if stride != k {
            params.insert("stride".into(), serde_json::json!(stride));
        }
        if padding != 0 {
            params.insert("padding".into(), serde_json::json!(padding));
        }
        Ok(params)
    }
}

#[derive(Debug)]
pub(super) struct MaxPoolNode {
    k: usize,
    /// Input height and width (the VJP pads the dropped rows and columns back with zeros).
    h: usize,
    w: usize,
}

impl MaxPoolNode {
    /// The spatial axes (height, width) of a rank-4 image in `layout`.
    pub(super) fn axes(layout: OpLayout) -> (usize, usize) {
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

/// The `k x k` windows of a pool at stride `s` over an input padded by `pad` on every side: each window offset is a
/// strided gather of the padded input ([`Windows::taps`]), and [`Windows::scatter`] is its adjoint.
#[derive(Debug)]
pub(super) struct Windows {
    k: usize,
    pad: usize,
    /// Output height and width.
    pub(super) oh: usize,
    pub(super) ow: usize,
    /// Padded input height and width.
    hp: usize,
    wp: usize,
    /// For window row offset `d`: the padded rows `d + s i`, `i < oh` (likewise `cols` for columns).
    rows: Vec<Vec<u32>>,
    cols: Vec<Vec<u32>>,
}

impl Windows {
    /// Windows of a valid kernel `k`, stride `s` and padding `pad` (`k <= h + 2 pad`, `k <= w + 2 pad`).
    pub(super) fn new(k: usize, s: usize, pad: usize, h: usize, w: usize) -> Self {
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        let (oh, ow) = ((hp - k) / s + 1, (wp - k) / s + 1);
        let taps = |n: usize| -> Vec<Vec<u32>> {
            (0..k)
                .map(|d| (0..n).map(|i| (d + s * i) as u32).collect())
                .collect()
        };
        Self {
            k,
            pad,
            oh,
            ow,
            hp,
            wp,
            rows: taps(oh),
            cols: taps(ow),
        }
    }

    /// The number of window offsets, `k^2`.
    pub(super) fn count(&self) -> usize {
        self.k * self.k
    }

    /// `x` with `pad` rows and columns of `fill` on every side.
    fn padded(&self, x: &Tensor, (ah, aw): (usize, usize), fill: f64) -> Result<Tensor> {
        if self.pad == 0 {
            return Ok(x.clone());
        }
        let border = |like: &Tensor, axis: usize| -> Result<Tensor> {
            let mut dims = like.dims().to_vec();
            dims[axis] = self.pad;
            Ok(Tensor::zeros(dims, like.dtype(), like.device())?.affine(1.0, fill)?)
        };
        let x = Tensor::cat(&[&border(x, ah)?, x, &border(x, ah)?], ah)?;
        Ok(Tensor::cat(&[&border(&x, aw)?, &x, &border(&x, aw)?], aw)?)
    }

    /// The `k^2` window offsets of `x` (padded with `fill`), stacked: `[k^2, ..output..]`, row offset major.
    pub(super) fn taps(&self, x: &Tensor, axes: (usize, usize), fill: f64) -> Result<Tensor> {
        let (ah, aw) = axes;
        let x = self.padded(x, axes, fill)?.contiguous()?;
        let dev = x.device();
        let mut taps = Vec::with_capacity(self.k * self.k);
        for r in &self.rows {
            let r = Tensor::from_slice(r, self.oh, dev)?;
            let xr = x.index_select(&r, ah)?;
            for c in &self.cols {
                let c = Tensor::from_slice(c, self.ow, dev)?;
                taps.push(xr.index_select(&c, aw)?);
            }
        }
        Ok(Tensor::stack(&taps, 0)?)
    }

    /// The adjoint of [`Windows::taps`]: `parts [k^2, ..output..]` added back onto the input (padding cut off).
    pub(super) fn scatter(&self, parts: &Tensor, (ah, aw): (usize, usize)) -> Result<Tensor> {
        let dev = parts.device();
        let mut dims = parts.dims()[1..].to_vec();
        dims[aw] = self.wp;
        let row_block = Tensor::zeros(dims.clone(), parts.dtype(), dev)?;
        dims[ah] = self.hp;
        let mut gx = Tensor::zeros(dims, parts.dtype(), dev)?;
        for (i, r) in self.rows.iter().enumerate() {
            // The offsets of window row i: back on the padded columns, then on the padded rows.
            let mut acc = row_block.clone();
            for (j, c) in self.cols.iter().enumerate() {
                let c = Tensor::from_slice(c, self.ow, dev)?;
                let part = parts.get(i * self.k + j)?.contiguous()?;
                acc = acc.index_add(&c, &part, aw)?;
            }
            let r = Tensor::from_slice(r, self.oh, dev)?;
            gx = gx.index_add(&r, &acc, ah)?;
        }
        let (h, w) = (self.hp - 2 * self.pad, self.wp - 2 * self.pad);
        Ok(gx.narrow(ah, self.pad, h)?.narrow(aw, self.pad, w)?)
    }
}

/// A max pool whose windows overlap (stride below the kernel) or reach past the border (padding, minus infinity,
/// which no maximum picks): the maximum across the `k^2` window offsets.
#[derive(Debug)]
struct OverlapPoolNode {
    windows: Windows,
}

impl OverlapPoolNode {
    fn new(k: usize, s: usize, pad: usize, h: usize, w: usize) -> Self {
        Self {
            windows: Windows::new(k, s, pad, h, w),
        }
    }
}

impl OpNode for OverlapPoolNode {
    /// Saves the routing weights `[k^2, ..output..]`: per window offset, one over the number of maxima of the
    /// window where that offset holds its maximum, zero elsewhere.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let axes = MaxPoolNode::axes(layout);
        let taps = self.windows.taps(inputs[0], axes, f64::NEG_INFINITY)?;
        let top = taps.max_keepdim(0)?;
        let y = top.squeeze(0)?;
        if !layout.keep {
            return Ok((y, Vec::new()));
        }
        let hits = taps.broadcast_eq(&top)?.to_dtype(taps.dtype())?;
        let count = hits.sum_keepdim(0)?;
        // Piecewise constant in x, as in the side-by-side pool.
        let route = hits.broadcast_div(&count)?.detach();
        Ok((y, vec![route]))
    }

    fn vjp(&self, saved: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let route = saved
            .first()
            .ok_or_else(|| Error::Unsupported("network cache does not match".into()))?;
        let parts = route.broadcast_mul(&g.unsqueeze(0)?)?;
        let gx = self.windows.scatter(&parts, MaxPoolNode::axes(layout))?;
        Ok(vec![Some(gx)])
    }
}
