//! Layers whose input-gradient (vector-Jacobian product) is an explicit candle expression, and the activations
//! with their derivatives; [`super::graph`] wires them into networks.
//!
//! The energy models need `grad_y f(y)`. Instead of running candle's autograd, each layer here returns a cache
//! from its forward pass and computes `g -> g * d(out)/d(in)` with ordinary tensor ops:
//! Linear `g W`, Conv2d `conv_transpose2d(g, W)`, SiLU `g * silu'(h)`. That makes the score
//! (a) fast for sampling: no graph, no weight gradients, and (b) differentiable by candle's ordinary first-order
//! backward, which is exactly what the DEEN / UVB training loss needs (DESIGN.md "Second-order gradients").
//!
//! On the CPU (`f32`, `f64`) the layers take a faster route built on the custom ops of [`kernels`]: convolutions
//! run on channels-last activations as im2col + GEMM, their input-VJP as GEMM + col2im, and SiLU with its
//! derivative is one fused pass. Other devices and dtypes use the plain candle expressions.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::kernels::{
    self, Col2Im, ConvGeom, Epilogue, Im2Col, PanelMatmul, PanelMatmulMul, Panels, SiluPair,
    cpu_fast_path,
};

use crate::nn::{Error, Result};

/// Fully connected layer `x W^T + b`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out, in]`
    pub weight: Tensor,
    /// `[out]`
    pub bias: Tensor,
    /// `W^T` stored contiguously, `[in, out]`, for frozen (non-`Var`) weights: with it the forward GEMM reads both
    /// operands in the layout the CPU GEMM kernel wants and skips packing `W` on every call (the VJP's `g W` already
    /// reads `W` that way).
    weight_t: Option<Tensor>,
    /// For frozen `f32` CPU weights when rayon has more than one thread: `W^T` and `W` as column panels, so that
    /// the forward product and the VJP run one panel per thread ([`kernels::PanelMatmul`]).
    pub(super) panels: Option<(Arc<Panels>, Arc<Panels>)>,
    /// The bias as plain values, for the panel products' epilogue (with `panels`).
    bias_values: Option<Arc<Vec<f32>>>,
}

impl Linear {
    /// Loads `weight [out, in]` and `bias [out]` under the builder's prefix.
    pub fn new(vb: &VarBuilder, input: usize, output: usize) -> Result<Self> {
        Self::with_bias(vb, input, output, true)
    }

    /// Loads `weight [out, in]`, and `bias [out]` when `bias` is set (else the bias is a constant zero).
    pub fn with_bias(vb: &VarBuilder, input: usize, output: usize, bias: bool) -> Result<Self> {
        let weight = vb.get((output, input), "weight")?;
        let weight_t = frozen_transpose(&weight)?;
        let threads = rayon::current_num_threads();
        let panels = match &weight_t {
            Some(wt)
                if threads > 1
                    && weight.dtype() == DType::F32
                    && weight.elem_count() >= PANEL_MIN_ELEMS =>
            {
                Some((
                    Arc::new(Panels::new(wt, PANELS_PER_THREAD * threads)?),
                    Arc::new(Panels::new(&weight, PANELS_PER_THREAD * threads)?),
                ))
            }
            _ => None,
        };
        let bias = match bias {
            true => vb.get(output, "bias")?,
            false => Tensor::zeros(output, weight.dtype(), weight.device())?,
        };
        let bias_values = match panels {
            Some(_) => Some(Arc::new(bias.to_dtype(DType::F32)?.to_vec1::<f32>()?)),
            None => None,
        };
        Ok(Self {
            weight_t,
            panels,
            bias_values,
            weight,
            bias,
        })
    }

    /// The panels to use for an input like `x`, if any: `f32` input, more than one rayon thread now, and not
    /// inside a row block (whose threads are already busy with the other blocks).
    fn panels_for(&self, x: &Tensor) -> Option<&(Arc<Panels>, Arc<Panels>)> {
        self.panels
            .as_ref()
            .filter(|_| x.dtype() == DType::F32 && rayon::current_num_threads() > 1)
    }

    /// `x: [N, in] -> [N, out]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let (Some((fwd, _)), Some(b)) = (self.panels_for(x), &self.bias_values) {
            let op = PanelMatmul(fwd.clone(), Epilogue::Bias(b.clone()));
            return Ok(x.contiguous()?.apply_op1(op)?);
        }
        let y = match &self.weight_t {
            Some(wt) => x.matmul(wt)?,
            // Trainable weights: `(W x^T)^T` rather than `x W^T`, so that backward delivers W's gradient as a
            // contiguous `[out, in]` product instead of a transposed view that candle then adds element by element
            // with a stride (that strided add was a quarter of a DEEN training step).
            None => self.weight.matmul(&x.t()?)?.t()?,
        };
        Ok(y.broadcast_add(&self.bias)?)
    }

    /// With column panels in use: `x: [N, in] -> (silu(h), silu'(h))` for `h = x W^T + b`, each thread finishing
    /// its own columns right after its product; `None` where the panels do not apply.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        let (Some((fwd, _)), Some(b)) = (self.panels_for(x), &self.bias_values) else {
            return Ok(None);
        };
        let op = PanelMatmul(fwd.clone(), Epilogue::BiasSiluPair(b.clone()));
        let pair = x.contiguous()?.apply_op1(op)?;
        Ok(Some((pair.get(0)?, pair.get(1)?)))
    }

    /// With column panels in use: `(g: [N, out], d: [N, in]) -> (g W) * d`, the VJP followed by the previous
    /// layer's activation derivative on the same threads; `None` where the panels do not apply.
    pub fn vjp_mul(&self, g: &Tensor, d: &Tensor) -> Result<Option<Tensor>> {
        let Some((_, vjp)) = self.panels_for(g) else {
            return Ok(None);
        };
        if d.dtype() != DType::F32 || d.dims2()? != (g.dim(0)?, self.weight.dim(1)?) {
            return Ok(None);
        }
        let op = PanelMatmulMul(vjp.clone());
        Ok(Some(
            g.contiguous()?.apply_op2_no_bwd(&d.contiguous()?, &op)?,
        ))
    }

    /// `g: [N, out] -> g W: [N, in]`
    pub fn vjp(&self, g: &Tensor) -> Result<Tensor> {
        if let Some((_, vjp)) = self.panels_for(g) {
            return Ok(g
                .contiguous()?
                .apply_op1(PanelMatmul(vjp.clone(), Epilogue::None))?);
        }
        Ok(g.matmul(&self.weight)?)
    }
}

/// Column panels per rayon thread: more than one, so that a thread slowed by other work on its core hands some of
/// its panels to the others (rayon's work stealing) instead of holding up the whole product.
const PANELS_PER_THREAD: usize = 4;

/// Frozen weights with at least this many elements get column panels ([`kernels::PanelMatmul`]), used when a
/// whole batch is scored at once.
pub const PANEL_MIN_ELEMS: usize = 1 << 16;

/// A fully connected network whose largest weight has at least this many elements (4 MiB of `f32`, twice the L2
/// cache of one core here) scores whole batches with column panels; smaller ones stay in each core's cache and
/// scale better with row blocks. Walk-jump step at 64 chains, 2 threads, row blocks vs panels: the UVB MLP
/// (largest weight 768 x 784) 2.5 vs 2.8 s per 600-step run; the DEEN MLP (1024 x 1024) 3.3-3.5 vs 2.9-3.0 ms
/// per step, the MDAE (512 x 3136) 5.3-6.3 vs 4.7 ms.
pub const WHOLE_BATCH_MIN_ELEMS: usize = 1 << 20;

/// A contiguous copy of `w^T` (`[a, b] -> [b, a]`) when `w` is a frozen CPU tensor, `None` for a trainable `Var`
/// (whose values change under the optimiser) and on other devices.
fn frozen_transpose(w: &Tensor) -> Result<Option<Tensor>> {
    if w.is_variable() || !cpu_fast_path(w) {
        return Ok(None);
    }
    Ok(Some(w.t()?.contiguous()?))
}

/// 2D convolution with square kernel, stride and padding.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[c_out, c_in, k, k]`
    pub weight: Tensor,
    /// `[c_out]`
    pub bias: Tensor,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Input `(channels, height, width)`.
    pub in_shape: (usize, usize, usize),
    /// Output `(channels, height, width)`.
    pub out_shape: (usize, usize, usize),
    /// For frozen CPU weights: [`Conv2d::weight_matrix`] and its contiguous transpose, computed once.
    frozen_wm: Option<(Tensor, Tensor)>,
}

impl Conv2d {
    /// Loads `weight [c_out, c_in, k, k]` and (with `bias`) `bias [c_out]`; `in_shape` is `(c_in, h, w)`.
    pub fn new(
        vb: &VarBuilder,
        in_shape: (usize, usize, usize),
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        let (c_in, h, w) = in_shape;
        if kernel == 0 || stride == 0 || h + 2 * padding < kernel || w + 2 * padding < kernel {
            return Err(Error::Architecture(format!(
                "convolution with kernel {kernel}, stride {stride}, padding {padding} does not fit a {h}x{w} input"
            )));
        }
        let oh = (h + 2 * padding - kernel) / stride + 1;
        let ow = (w + 2 * padding - kernel) / stride + 1;
        let weight = vb.get((c_out, c_in, kernel, kernel), "weight")?;
        let bias = match bias {
            true => vb.get(c_out, "bias")?,
            false => Tensor::zeros(c_out, weight.dtype(), weight.device())?,
        };
        let mut conv = Self {
            weight,
            bias,
            stride,
            padding,
            in_shape,
            out_shape: (c_out, oh, ow),
            frozen_wm: None,
        };
        if !conv.weight.is_variable() && cpu_fast_path(&conv.weight) {
            let wm = conv.weight_matrix()?;
            let wmt = wm.t()?.contiguous()?;
            conv.frozen_wm = Some((wm, wmt));
        }
        Ok(conv)
    }

    /// `x: [N, c_in, h, w] -> [N, c_out, h', w']`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        Ok(y.broadcast_add(&self.bias.reshape((1, self.out_shape.0, 1, 1))?)?)
    }

    /// `g: [N, c_out, h', w'] -> [N, c_in, h, w]`, the adjoint of the convolution.
    pub fn vjp(&self, g: &Tensor) -> Result<Tensor> {
        let k = self.weight.dim(2)?;
        let (_, h, w) = self.in_shape;
        let (_, oh, ow) = self.out_shape;
        // conv_transpose2d yields (oh - 1) * stride - 2 padding + k (+ output padding) rows, with one output
        // padding for both axes: take the larger and cut each axis to the input's side (the rows past the last
        // window have no gradient).
        let pad_h = (h + 2 * self.padding).saturating_sub((oh - 1) * self.stride + k);
        let pad_w = (w + 2 * self.padding).saturating_sub((ow - 1) * self.stride + k);
        let gx =
            g.conv_transpose2d(&self.weight, self.padding, pad_h.max(pad_w), self.stride, 1)?;
        Ok(gx.narrow(2, 0, h)?.narrow(3, 0, w)?)
    }

    pub(super) fn geom(&self, n: usize) -> ConvGeom {
        let (c, h, w) = self.in_shape;
        let (_, oh, ow) = self.out_shape;
        ConvGeom {
            n,
            h,
            w,
            c,
            k: self.kernel(),
            stride: self.stride,
            pad: self.padding,
            oh,
            ow,
        }
    }

    pub(super) fn kernel(&self) -> usize {
        self.weight.dims().get(2).copied().unwrap_or(1)
    }

    /// The weight as a GEMM operand for channels-last patches: `[c_out, k * k * c_in]` in `(ky, kx, c_in)` order.
    pub fn weight_matrix(&self) -> Result<Tensor> {
        if let Some((wm, _)) = &self.frozen_wm {
            return Ok(wm.clone());
        }
        let (c_out, c_in, k) = (self.out_shape.0, self.in_shape.0, self.kernel());
        Ok(self
            .weight
            .permute((0, 2, 3, 1))?
            .reshape((c_out, k * k * c_in))?)
    }

    /// Channels-last forward on the CPU kernels: `x: [N, h, w, c_in] -> [N, h', w', c_out]`, as
    /// `im2col(x) wm^T + b` with `wm` from [`Conv2d::weight_matrix`].
    pub fn forward_nhwc(&self, x: &Tensor, wm: &Tensor) -> Result<Tensor> {
        if self.split_batch() {
            let parts = crate::parallel::map_row_blocks(x.dim(0)?, x.device(), |s, l| {
                self.forward_nhwc_serial(&x.narrow(0, s, l)?, wm)
            })?;
            return Ok(crate::parallel::cat_rows(parts)?);
        }
        self.forward_nhwc_serial(x, wm)
    }

    /// Whether a frozen convolution should cut its batch into row blocks itself: it runs on a whole batch (a model
    /// that does not cut its batches, such as the UVB whose decoder prefers whole batches) with several threads.
    /// Its im2col and col2im are single-threaded otherwise.
    fn split_batch(&self) -> bool {
        self.frozen_wm.is_some()
            && rayon::current_num_threads() > 1
            && !crate::parallel::in_row_block()
    }

    fn forward_nhwc_serial(&self, x: &Tensor, wm: &Tensor) -> Result<Tensor> {
        // Frozen f32 weights on the sampling path: blocks, bias and GEMM in one kernel.
        if let Some((_, wmt)) = &self.frozen_wm
            && x.dtype() == DType::F32
            && kernels::fused_path(x)
        {
            let n = x.dim(0)?;
            let block = self.batch_blocks(n).map_or(n, |parts| parts[0].1);
            return Ok(kernels::conv_nhwc_frozen(
                x,
                self.geom(n),
                wmt,
                &self.bias,
                block,
            )?);
        }
        if let Some(parts) = self.batch_blocks(x.dim(0)?) {
            let outs = parts
                .into_iter()
                .map(|(start, len)| self.forward_nhwc_block(&x.narrow(0, start, len)?, wm))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(&outs, 0)?);
        }
        self.forward_nhwc_block(x, wm)
    }

    /// For frozen weights (sampling, no autograd graph), splits a batch of `n` images into blocks whose patch
    /// matrix stays near the L2 cache (and under glibc's heap-block ceiling) instead of one `n * oh * ow` by
    /// `k * k * c_in` matrix of tens of MiB; `None` when one block does.
    pub(super) fn batch_blocks(&self, n: usize) -> Option<Vec<(usize, usize)>> {
        self.frozen_wm.as_ref()?;
        let (_, oh, ow) = self.out_shape;
        let per_image = oh * ow * self.kernel() * self.kernel() * self.in_shape.0;
        let block = (CONV_BLOCK_ELEMS / per_image.max(1)).max(1);
        (n > block).then(|| {
            (0..n)
                .step_by(block)
                .map(|s| (s, block.min(n - s)))
                .collect()
        })
    }

    fn forward_nhwc_block(&self, x: &Tensor, wm: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let (c_out, oh, ow) = self.out_shape;
        let cols = x.contiguous()?.apply_op1(Im2Col(self.geom(n)))?;
        let wmt = match &self.frozen_wm {
            Some((_, wmt)) => wmt.clone(),
            None => wm.t()?,
        };
        let y = cols.matmul(&wmt)?.apply_op2(&self.bias, kernels::AddBias)?;
        Ok(y.reshape((n, oh, ow, c_out))?)
    }

    /// Channels-last input-VJP on the CPU kernels: `g: [N, h', w', c_out] -> col2im(g wm): [N, h, w, c_in]`.
    pub fn vjp_nhwc(&self, g: &Tensor, wm: &Tensor) -> Result<Tensor> {
        if self.split_batch() {
            let parts = crate::parallel::map_row_blocks(g.dim(0)?, g.device(), |s, l| {
                self.vjp_nhwc_serial(&g.narrow(0, s, l)?, wm)
            })?;
            return Ok(crate::parallel::cat_rows(parts)?);
        }
        self.vjp_nhwc_serial(g, wm)
    }

    fn vjp_nhwc_serial(&self, g: &Tensor, wm: &Tensor) -> Result<Tensor> {
        if let Some(parts) = self.batch_blocks(g.dim(0)?) {
            let outs = parts
                .into_iter()
                .map(|(start, len)| self.vjp_nhwc_block(&g.narrow(0, start, len)?, wm))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(&outs, 0)?);
        }
        self.vjp_nhwc_block(g, wm)
    }

    fn vjp_nhwc_block(&self, g: &Tensor, wm: &Tensor) -> Result<Tensor> {
        let n = g.dim(0)?;
        let (c_out, oh, ow) = self.out_shape;
        let dcols = g.reshape((n * oh * ow, c_out))?.matmul(wm)?;
        Ok(dcols.apply_op1(Col2Im(self.geom(n)))?)
    }
}

/// Patch-matrix elements per block of [`Conv2d::batch_blocks`]: 2 MiB of f32, about the L2 cache. Measured on the
/// conv DEEN (32-64-128, stride 1-2-2) at 256 chains, 1 thread: 220 ms per walk-jump step unblocked, 170 ms with
/// blocks of 2^19, 162-178 ms for 2^18 to 2^21; no change at 64 chains.
const CONV_BLOCK_ELEMS: usize = 1 << 19;

/// Logistic sigmoid, stable and differentiable for any input: one fused pass on the CPU ([`kernels::Sigmoid`]),
/// elsewhere written with `tanh`.
pub fn sigmoid(h: &Tensor) -> Result<Tensor> {
    if cpu_fast_path(h) {
        return Ok(h.contiguous()?.apply_op1(kernels::Sigmoid)?);
    }
    Ok(((h * 0.5)?.tanh()? * 0.5)?.affine(1.0, 0.5)?)
}

/// SiLU `h * sigmoid(h)` and its derivative `sigmoid(h) (1 + h (1 - sigmoid(h)))`, both of `h`'s shape. On the
/// CPU one fused pass ([`kernels::SiluPair`]); elsewhere [`silu_with_grad_generic`].
pub fn silu_with_grad(h: &Tensor) -> Result<(Tensor, Tensor)> {
    if cpu_fast_path(h) {
        let pair = h.contiguous()?.apply_op1(SiluPair)?;
        return Ok((pair.get(0)?, pair.get(1)?));
    }
    silu_with_grad_generic(h)
}

/// [`silu_with_grad`] as plain candle ops sharing one tanh-based sigmoid, for any device and dtype.
pub fn silu_with_grad_generic(h: &Tensor) -> Result<(Tensor, Tensor)> {
    let s = sigmoid(h)?;
    let a = (h * &s)?;
    // silu'(h) = s + h s (1 - s) = s + a (1 - s) = s + a - a s
    let d = ((&s + &a)? - (&a * &s)?)?;
    Ok((a, d))
}
