//! `conv_transpose2d`: the transposed (fractionally strided) 2D convolution, the learned up-sampling of U-Nets and
//! convolutional decoders; PyTorch's `ConvTranspose2d` (square kernel, one group, no dilation), ONNX `ConvTranspose`.
//!
//! Output size per side: `(h - 1) stride - 2 padding + kernel + output_padding`. Its input-VJP is the ordinary
//! convolution with the same weight, stride and padding (the adjoint), written in candle ops so that training can
//! differentiate it in the weight.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::{MAX_VALUE_ELEMS, MAX_WIDTH, OnnxAttr, OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::layers::Conv2d;
use crate::nn::{Error, Result};

/// `[c_in, h, w] -> [out, h', w']` with `weight [c_in, out, k, k]` and `bias [out]` under the node's name:
/// JSON `{"op": "conv_transpose2d", "in": [v], "name": "up", "out": 32, "kernel": 2, "stride": 2}` (optional
/// `padding`, `output_padding` (below `stride`), `bias` (default true)).
pub struct ConvTranspose2d;

/// The limits of [`Conv2d`](crate::nn::layers::Conv2d)'s importer: kernels up to 15, padding up to 15, strides up to 8.
const MAX_KERNEL: usize = 15;
const MAX_PADDING: usize = 15;
const MAX_STRIDE: usize = 8;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvTransposeParams {
    out: usize,
    kernel: usize,
    #[serde(default = "super::one")]
    stride: usize,
    #[serde(default)]
    padding: usize,
    #[serde(default)]
    output_padding: usize,
    #[serde(default = "super::yes")]
    bias: bool,
}

impl ConvTransposeParams {
    /// Output height or width for an input side of `n`, or why there is none.
    fn side(&self, n: usize) -> std::result::Result<usize, String> {
        let grown = (n - 1) * self.stride + self.kernel + self.output_padding;
        match grown.checked_sub(2 * self.padding) {
            Some(o) if o > 0 => Ok(o),
            _ => Err(format!(
                "padding {} leaves no output of a side of {n} (kernel {}, stride {})",
                self.padding, self.kernel, self.stride
            )),
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        let Self {
            out,
            kernel,
            stride,
            padding,
            output_padding,
            ..
        } = *self;
        if out == 0 || out > MAX_WIDTH {
            return Err(format!(
                "has {out} output channels, out of range 1..={MAX_WIDTH}"
            ));
        }
        if !(1..=MAX_KERNEL).contains(&kernel)
            || !(1..=MAX_STRIDE).contains(&stride)
            || padding > MAX_PADDING
        {
            return Err(format!(
                "has kernel {kernel}, stride {stride}, padding {padding}; walkjump takes kernels 1..={MAX_KERNEL}, strides 1..={MAX_STRIDE}, padding up to {MAX_PADDING}"
            ));
        }
        if output_padding >= stride {
            return Err(format!(
                "has output_padding {output_padding}, which must be below the stride {stride}"
            ));
        }
        Ok(())
    }
}

impl OpDef for ConvTranspose2d {
    fn name(&self) -> &'static str {
        "conv_transpose2d"
    }

    fn needs_name(&self) -> bool {
        true
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        let p: ConvTransposeParams = super::parse(params)?;
        p.check()?;
        let ValueShape::Image(_, h, w) = inputs[0] else {
            return Err(format!(
                "needs an image input, got {}",
                inputs[0].describe()
            ));
        };
        let (oh, ow) = (p.side(h)?, p.side(w)?);
        if p.out.saturating_mul(oh).saturating_mul(ow) > MAX_VALUE_ELEMS {
            return Err(format!(
                "output [{}, {oh}, {ow}] has more than {MAX_VALUE_ELEMS} values per sample",
                p.out
            ));
        }
        Ok(ValueShape::Image(p.out, oh, ow))
    }

    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        vb: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let p: ConvTransposeParams = super::parse(params).map_err(Error::Architecture)?;
        let ValueShape::Image(c, h, w) = inputs[0] else {
            return Err(Error::Architecture(
                "conv_transpose2d needs an image input".into(),
            ));
        };
        let (oh, ow) = (
            p.side(h).map_err(Error::Architecture)?,
            p.side(w).map_err(Error::Architecture)?,
        );
        // Reads `weight [c_in, out, k, k]`: the adjoint convolution's `[c_out, c_in, k, k]`.
        let adjoint = Conv2d::new(vb, (p.out, oh, ow), c, p.kernel, p.stride, p.padding, false)?;
        let bias = match p.bias {
            true => Some(vb.get(p.out, "bias")?),
            false => None,
        };
        Ok(Box::new(ConvTransposeNode {
            adjoint,
            bias,
            macs: c * p.out * p.kernel * p.kernel * h * w,
        }))
    }

    fn onnx_types(&self) -> &'static [&'static str] {
        &["ConvTranspose"]
    }
}

/// The parameters of an ONNX `ConvTranspose` node whose weight is `[c_in, out, k, k]` and input side `(h, w)`, as
/// the op's JSON fields, or a one-line message. Reads `kernel_shape`, `strides`, `pads`, `output_padding`,
/// `dilations`, `group`, `auto_pad` and `output_shape`.
pub fn onnx_params(
    attrs: &[OnnxAttr<'_>],
    weight_dims: &[usize],
    (h, w): (usize, usize),
) -> std::result::Result<Params, String> {
    let &[_, out, kh, kw] = weight_dims else {
        return Err(format!(
            "has a weight of shape {weight_dims:?}; walkjump reads 2D transposed convolutions"
        ));
    };
    if kh != kw {
        return Err(format!(
            "has a {kh}x{kw} kernel; walkjump's convolutions are square"
        ));
    }
    let find = |name: &str| attrs.iter().find(|a| a.name == name);
    let ints = |name: &str| find(name).map(|a| a.ints);
    if let Some(k) = ints("kernel_shape")
        && k != [kh as i64, kw as i64]
    {
        return Err(format!("has kernel_shape {k:?} for a {kh}x{kw} weight"));
    }
    if find("group").is_some_and(|a| a.i != 1) {
        return Err("has several groups; walkjump's convolutions have one".into());
    }
    if ints("dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
        return Err("is dilated; walkjump's convolutions have dilation 1".into());
    }
    let same = |name: &str, default: i64, n: usize| -> std::result::Result<usize, String> {
        let v = ints(name).map(<[i64]>::to_vec).unwrap_or(vec![default; n]);
        match v.split_first() {
            Some((&a, rest)) if v.len() == n && a >= 0 && rest.iter().all(|&b| b == a) => {
                usize::try_from(a).map_err(|_| format!("has {name} {v:?}"))
            }
            _ => Err(format!(
                "has {name} {v:?}; walkjump needs the same value on every side"
            )),
        }
    };
    let stride = same("strides", 1, 2)?;
    let padding = same("pads", 0, 4)?;
    let output_padding = same("output_padding", 0, 2)?;
    let auto = find("auto_pad")
        .map(|a| String::from_utf8_lossy(a.s).into_owned())
        .unwrap_or_default();
    if !matches!(auto.as_str(), "" | "NOTSET" | "VALID") || (auto == "VALID" && padding != 0) {
        return Err(format!(
            "has auto_pad {}; walkjump reads explicit pads",
            crate::text::one_line(&auto)
        ));
    }
    let p = ConvTransposeParams {
        out,
        kernel: kh,
        stride,
        padding,
        output_padding,
        bias: true,
    };
    p.check()?;
    let (oh, ow) = (p.side(h)?, p.side(w)?);
    if let Some(s) = ints("output_shape") {
        let want = [oh as i64, ow as i64];
        if s.len() < 2 || s[s.len() - 2..] != want {
            return Err(format!(
                "asks for output_shape {s:?}; its pads give {want:?}"
            ));
        }
    }
    for a in attrs {
        if !matches!(
            a.name,
            "kernel_shape"
                | "strides"
                | "pads"
                | "output_padding"
                | "dilations"
                | "group"
                | "auto_pad"
                | "output_shape"
        ) {
            return Err(format!(
                "has attribute '{}', which ConvTranspose does not take",
                crate::text::one_line(a.name)
            ));
        }
    }
    let mut params = Params::new();
    params.insert("out".into(), serde_json::json!(out));
    params.insert("kernel".into(), serde_json::json!(kh));
    params.insert("stride".into(), serde_json::json!(stride));
    params.insert("padding".into(), serde_json::json!(padding));
    params.insert("output_padding".into(), serde_json::json!(output_padding));
    Ok(params)
}

/// A transposed convolution as the adjoint of an ordinary one: `adjoint` is the convolution from `out` to `c_in`
/// channels with the same weight `[c_in, out, k, k]`, stride and padding (no bias), whose input-VJP is this op's
/// forward and whose forward is this op's input-VJP. Both run on the CPU kernels of `Conv2d` (im2col / col2im
/// and GEMM, batch blocks, threads) in the channels-last layout.
#[derive(Debug)]
struct ConvTransposeNode {
    adjoint: Conv2d,
    /// `[out]`
    bias: Option<Tensor>,
    /// Multiply-adds per sample: `c_in * out * k^2 * h * w`.
    macs: usize,
}

impl OpNode for ConvTransposeNode {
    /// `x: [N, c_in, h, w]` (or `[N, h, w, c_in]`) to `[N, out, h', w']` (or channels-last); saves the weight
    /// matrix of the channels-last kernels for the VJP.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let x = inputs[0];
        let (mut y, saved) = if layout.channels_last {
            let wm = self.adjoint.weight_matrix()?;
            let y = self.adjoint.vjp_nhwc(x, &wm)?;
            (y, if layout.keep { vec![wm] } else { Vec::new() })
        } else {
            (self.adjoint.vjp(x)?, Vec::new())
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&layout.per_channel(b, 4)?)?;
        }
        Ok((y, saved))
    }

    /// `g: [N, out, h', w'] -> [N, c_in, h, w]` (or channels-last): the convolution with the same weight, stride
    /// and padding.
    fn vjp(&self, saved: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let gx = if layout.channels_last {
            let wm = match saved.first() {
                Some(wm) => wm.clone(),
                None => self.adjoint.weight_matrix()?,
            };
            self.adjoint.forward_nhwc(g, &wm)?
        } else {
            self.adjoint.forward(g)?
        };
        Ok(vec![Some(gx)])
    }

    fn macs(&self) -> usize {
        self.macs
    }
}
