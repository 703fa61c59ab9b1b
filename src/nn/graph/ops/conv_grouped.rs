//! `conv2d_grouped`: a 2D convolution whose channels split into `groups` independent groups (PyTorch's
//! `Conv2d(..., groups=g)`; depthwise when `groups` equals the input channels, as in MobileNet and ConvNeXt
//! blocks); ONNX `Conv` with `group > 1`. Square kernel, equal strides, the same padding on every side. With a
//! `dilation` above 1 (groups may then be 1) the kernel's taps sit that many pixels apart (PyTorch's
//! `Conv2d(..., dilation=d)`, the dilated residual blocks of NCSN score networks); ONNX `Conv` with `dilations`.
//!
//! Each group is an ordinary convolution of `c_in / groups` channels to `out / groups`; the input-VJP is each
//! group's transposed convolution, joined along channels.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::{MAX_VALUE_ELEMS, MAX_WIDTH, OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// `[c_in, h, w] -> [out, h', w']` with `weight [out, c_in / groups, k, k]` and `bias [out]` under the node's
/// name: JSON `{"op": "conv2d_grouped", "in": [v], "name": "dw", "out": 64, "kernel": 7, "padding": 3,
/// "groups": 64}` (optional `stride`, `bias`, `dilation`).
pub struct Conv2dGrouped;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupedParams {
    out: usize,
    kernel: usize,
    groups: usize,
    #[serde(default = "super::one")]
    stride: usize,
    #[serde(default)]
    padding: usize,
    #[serde(default = "super::yes")]
    bias: bool,
    #[serde(default = "super::one")]
    dilation: usize,
}

impl GroupedParams {
    /// The output shape for an input of `c` channels, `h x w`, or why there is none.
    fn out_shape(
        &self,
        (c, h, w): (usize, usize, usize),
    ) -> std::result::Result<ValueShape, String> {
        let Self {
            out,
            kernel,
            groups,
            stride,
            padding,
            dilation,
            ..
        } = *self;
        if !(1..=16).contains(&dilation) {
            return Err(format!("dilation {dilation} out of range 1..=16"));
        }
        if !(1..=15).contains(&kernel) {
            return Err(format!("kernel {kernel} out of range 1..=15"));
        }
        // The span of the dilated kernel.
        let k = dilation * (kernel - 1) + 1;
        if out == 0 || out > MAX_WIDTH {
            return Err(format!(
                "has {out} output channels, out of range 1..={MAX_WIDTH}"
            ));
        }
        if !(1..=8).contains(&stride) || padding > 64 {
            return Err(format!(
                "stride {stride}, padding {padding} out of range (stride 1..=8, padding 0..=64)"
            ));
        }
        if groups == 0 || c % groups != 0 || out % groups != 0 {
            return Err(format!(
                "{groups} groups do not divide {c} input and {out} output channels"
            ));
        }
        if h + 2 * padding < k || w + 2 * padding < k {
            return Err(format!(
                "kernel {kernel} (span {k}) with padding {padding} does not fit a {h}x{w} input"
            ));
        }
        let (oh, ow) = (
            (h + 2 * padding - k) / stride + 1,
            (w + 2 * padding - k) / stride + 1,
        );
        if out.saturating_mul(oh).saturating_mul(ow) > MAX_VALUE_ELEMS {
            return Err(format!(
                "output [{out}, {oh}, {ow}] has more than {MAX_VALUE_ELEMS} values per sample"
            ));
        }
        Ok(ValueShape::Image(out, oh, ow))
    }
}

impl OpDef for Conv2dGrouped {
    fn name(&self) -> &'static str {
        "conv2d_grouped"
    }

    fn needs_name(&self) -> bool {
        true
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        let p: GroupedParams = super::parse(params)?;
        match inputs[0] {
            ValueShape::Image(c, h, w) => p.out_shape((c, h, w)),
            other => Err(format!("needs an image input, got {}", other.describe())),
        }
    }

    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        vb: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let p: GroupedParams = super::parse(params).map_err(Error::Architecture)?;
        let ValueShape::Image(c, h, w) = inputs[0] else {
            return Err(Error::Architecture(
                "conv2d_grouped needs an image input".into(),
            ));
        };
        let ValueShape::Image(_, oh, ow) = p.out_shape((c, h, w)).map_err(Error::Architecture)?
        else {
            return Err(Error::Architecture("conv2d_grouped gives an image".into()));
        };
        let weight = vb.get((p.out, c / p.groups, p.kernel, p.kernel), "weight")?;
        let bias = match p.bias {
            true => Some(vb.get(p.out, "bias")?),
            false => None,
        };
        // conv_transpose2d gives (oh - 1) stride - 2 padding + k rows; the rest of the input's are output padding,
        // one for both axes: the larger, then each axis is cut to the input's side.
        let span = p.dilation * (p.kernel - 1) + 1;
        let pad_h = (h + 2 * p.padding).saturating_sub((oh - 1) * p.stride + span);
        let pad_w = (w + 2 * p.padding).saturating_sub((ow - 1) * p.stride + span);
        let output_padding = pad_h.max(pad_w);
        Ok(Box::new(GroupedNode {
            weight,
            bias,
            groups: p.groups,
            dilation: p.dilation,
            stride: p.stride,
            padding: p.padding,
            output_padding,
            side: (h, w),
            macs: p.out * (c / p.groups) * p.kernel * p.kernel * oh * ow,
        }))
    }
}

#[derive(Debug)]
struct GroupedNode {
    /// `[out, c_in / groups, k, k]`
    weight: Tensor,
    /// `[out]`
    bias: Option<Tensor>,
    groups: usize,
    dilation: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    /// Input height and width.
    side: (usize, usize),
    macs: usize,
}

impl OpNode for GroupedNode {
    /// `x: [N, c_in, h, w]` (or channels-last) to `[N, out, h', w']`; saves nothing.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let x = layout.to_nchw(inputs[0])?;
        let mut y = x.conv2d(
            &self.weight,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
        )?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?;
        }
        Ok((layout.from_nchw(y)?, Vec::new()))
    }

    /// Each group's gradient `[N, out / groups, h', w']` through its transposed convolution, joined along channels.
    fn vjp(&self, _: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let g = layout.to_nchw(g)?;
        let gs = g.chunk(self.groups, 1)?;
        let ws = self.weight.chunk(self.groups, 0)?;
        let parts = gs
            .iter()
            .zip(&ws)
            .map(|(g, w)| {
                g.contiguous()?.conv_transpose2d(
                    w,
                    self.padding,
                    self.output_padding,
                    self.stride,
                    self.dilation,
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let gx = Tensor::cat(&parts, 1)?
            .narrow(2, 0, self.side.0)?
            .narrow(3, 0, self.side.1)?;
        Ok(vec![Some(layout.from_nchw(gx)?)])
    }

    fn macs(&self) -> usize {
        self.macs
    }
}
