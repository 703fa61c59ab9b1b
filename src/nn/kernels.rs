//! CPU kernels behind the layers' fast paths, as candle custom ops with their own backward passes:
//!
//! - [`Im2Col`] / [`Col2Im`]: patch extraction for a convolution on channels-last (NHWC) images and its adjoint
//!   (scatter-add of patches). A convolution is then `im2col(x) W^T` and its input-VJP `col2im(g W)`, two GEMMs and
//!   two memory passes, instead of candle's direct-loop `conv_transpose2d`. Each op's backward is the other op, so
//!   the graph stays differentiable to any order (the DEEN / UVB training loss differentiates through the VJP).
//! - [`SiluPair`]: `h -> [silu(h), silu'(h)]` in one pass with a vectorisable `exp`, backward by [`SiluPairBwd`].
//! - [`AddBias`]: `y + b` for `y: [R, C]`, `b: [C]`, whose backward sums the gradient over rows with [`SumRows`]
//!   in one contiguous pass (candle reduces a broadcast over dim 0 with a strided loop: a tenth of a conv
//!   training step).
//!
//! The ops run on the CPU for `f32` and `f64` only; [`cpu_fast_path`] tells the layers whether to use them, and
//! the layers keep their generic tensor-op path for every other device and dtype.

mod channels;
mod conv;
mod fused;
mod norm;
mod pool;

pub use channels::{to_channels_first, to_channels_last};
pub use conv::conv_nhwc_frozen;
pub use fused::{ActInPlace, ActPair, ActValue, GroupSums, fused_path};
pub use norm::{NormStats, group_norm_forward, group_norm_vjp};
pub use pool::{avg_pool_nhwc, avg_pool_nhwc_vjp, upsample_nhwc, upsample_nhwc_vjp};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};

pub use crate::simd::{SimdKernel, with_best_simd};

/// Whether the custom CPU kernels apply to tensors like `t` (CPU storage, `f32` or `f64`).
pub fn cpu_fast_path(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

fn contiguous_slice<'a, T>(v: &'a [T], l: &Layout, op: &str) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

/// Geometry of a square-kernel convolution on a batch of channels-last images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub c: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl ConvGeom {
    /// `[n, h, w, c]` element count.
    fn image_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// `[n * oh * ow, k * k * c]` element count.
    fn cols_len(&self) -> usize {
        self.n * self.oh * self.ow * self.k * self.k * self.c
    }

    /// Input row/column hit by output index `o` and kernel offset `kk`, if inside the image.
    #[inline]
    fn source(&self, o: usize, kk: usize, size: usize) -> Option<usize> {
        (o * self.stride + kk)
            .checked_sub(self.pad)
            .filter(|&i| i < size)
    }

    /// The kernel columns `kx` in `lo..hi` whose source column `ox + kx - pad` lies inside the image, for stride 1
    /// (where they are one contiguous run of the image row).
    #[inline]
    fn inside_columns(&self, ox: usize) -> (usize, usize) {
        let k = self.k;
        let lo = self.pad.saturating_sub(ox).min(k);
        let hi = (self.w + self.pad).saturating_sub(ox).min(k).max(lo);
        (lo, hi)
    }

    /// Calls `f(image_offset, cols_offset, len)` for every in-image run of `len` values, in increasing
    /// `cols_offset` order; the runs that fall on the padding are left to the caller (zeros in `cols`, nothing in
    /// the image). With stride 1 the `k` kernel columns of a patch row are one run (`len` up to `k c`), else `c`.
    #[inline]
    fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (k, c) = (self.k, self.c);
        let row_len = k * k * c;
        for b in 0..self.n {
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let row = ((b * self.oh + oy) * self.ow + ox) * row_len;
                    for ky in 0..k {
                        let Some(iy) = self.source(oy, ky, self.h) else {
                            continue;
                        };
                        let line = (b * self.h + iy) * self.w;
                        if self.stride == 1 {
                            let (lo, hi) = self.inside_columns(ox);
                            if hi > lo {
                                let ix = ox + lo - self.pad;
                                f((line + ix) * c, row + (ky * k + lo) * c, (hi - lo) * c);
                            }
                            continue;
                        }
                        for kx in 0..k {
                            let Some(ix) = self.source(ox, kx, self.w) else {
                                continue;
                            };
                            f((line + ix) * c, row + (ky * k + kx) * c, c);
                        }
                    }
                }
            }
        }
    }

    /// The patch matrix, written front to back (no zero-fill pass first: the padding runs are written as zeros).
    fn im2col<T: Copy + Default>(&self, x: &[T]) -> Vec<T> {
        let mut cols = Vec::with_capacity(self.cols_len());
        self.im2col_into(x, &mut cols);
        cols
    }

    /// [`ConvGeom::im2col`] into `cols`, reusing its allocation.
    fn im2col_into<T: Copy + Default>(&self, x: &[T], cols: &mut Vec<T>) {
        let len = self.cols_len();
        cols.clear();
        cols.reserve(len);
        self.for_each_run(|src, dst, run| {
            cols.resize(dst, T::default());
            cols.extend_from_slice(&x[src..src + run]);
        });
        cols.resize(len, T::default());
    }

    fn col2im<T: Copy + Default + std::ops::AddAssign>(&self, cols: &[T]) -> Vec<T> {
        let mut x = vec![T::default(); self.image_len()];
        self.for_each_run(|dst, src, run| {
            for (o, i) in x[dst..dst + run].iter_mut().zip(&cols[src..src + run]) {
                *o += *i;
            }
        });
        x
    }
}

/// `x: [n, h, w, c] -> cols: [n * oh * ow, k * k * c]`, row `(b, oy, ox)` holding the patch in `(ky, kx, c)`
/// order, zeros where the patch overlaps the padding.
#[derive(Clone, Copy, Debug)]
pub struct Im2Col(pub ConvGeom);

/// `cols: [n * oh * ow, k * k * c] -> x: [n, h, w, c]`, the adjoint of [`Im2Col`]: every patch entry is added to
/// the pixel it came from.
#[derive(Clone, Copy, Debug)]
pub struct Col2Im(pub ConvGeom);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "walkjump-im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        if l.shape().elem_count() != g.image_len() {
            candle_core::bail!("im2col: input shape {:?} does not match {g:?}", l.shape());
        }
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(g.im2col(contiguous_slice(v, l, self.name())?)),
            CpuStorage::F64(v) => CpuStorage::F64(g.im2col(contiguous_slice(v, l, self.name())?)),
            other => candle_core::bail!("im2col: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, Shape::from((g.n * g.oh * g.ow, g.k * g.k * g.c))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "walkjump-col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        if l.shape().elem_count() != g.cols_len() {
            candle_core::bail!("col2im: input shape {:?} does not match {g:?}", l.shape());
        }
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(g.col2im(contiguous_slice(v, l, self.name())?)),
            CpuStorage::F64(v) => CpuStorage::F64(g.col2im(contiguous_slice(v, l, self.name())?)),
            other => candle_core::bail!("col2im: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, Shape::from((g.n, g.h, g.w, g.c))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col(self.0))?))
    }
}

/// `exp(x)` for `f32` in plain arithmetic that the compiler vectorises: range reduction by `ln 2`, a degree-7
/// polynomial on `[-ln 2 / 2, ln 2 / 2]` (the classic Cephes `expf` coefficients), and the power of two assembled
/// in the exponent bits. Relative error about 2e-7; arguments are clamped to `[-87, 88]` so that the result stays
/// a normal finite number; NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const HI: f32 = 88.0;
    const LO: f32 = -87.0;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part with few mantissa bits (exact products n * LN2_HI) and the rest.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer and leaves that integer in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(LO, HI); // NaN stays NaN
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let p = p * (r * r) + r + 1.0;
    // 2^n with n = bits(t) - bits(MAGIC), in [-126, 127] after the clamp.
    let e = t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(e)
}

/// `silu(h)` and `silu'(h)` of one `f32`, sharing one sigmoid.
#[inline(always)]
fn silu_pair_f32(h: f32) -> (f32, f32) {
    let s = 1.0 / (1.0 + exp_f32(-h));
    let a = h * s;
    (a, s + a * (1.0 - s))
}

/// `silu(h)` and `silu'(h)` of one `f64`.
#[inline(always)]
fn silu_pair_f64(h: f64) -> (f64, f64) {
    let s = 1.0 / (1.0 + (-h).exp());
    let a = h * s;
    (a, s + a * (1.0 - s))
}

/// `ga silu'(h) + gd silu''(h)`, with `silu'' = s (1 - s) (2 + h (1 - 2 s))`.
macro_rules! silu_bwd {
    ($s:expr, $h:expr, $ga:expr, $gd:expr) => {{
        let (s, h) = ($s, $h);
        let d1 = s + h * s * (1.0 - s);
        let d2 = s * (1.0 - s) * (2.0 + h * (1.0 - 2.0 * s));
        $ga * d1 + $gd * d2
    }};
}

struct SigmoidF32<'a> {
    h: &'a [f32],
    out: &'a mut [f32],
}

impl SimdKernel for SigmoidF32<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        for (o, &h) in self.out.iter_mut().zip(self.h) {
            *o = 1.0 / (1.0 + exp_f32(-h));
        }
    }
}

struct SiluPairF32<'a> {
    h: &'a [f32],
    a: &'a mut [f32],
    d: &'a mut [f32],
}

impl SimdKernel for SiluPairF32<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        for ((a, d), &h) in self.a.iter_mut().zip(self.d.iter_mut()).zip(self.h) {
            (*a, *d) = silu_pair_f32(h);
        }
    }
}

struct SiluPairBwdF32<'a> {
    h: &'a [f32],
    ga: &'a [f32],
    gd: &'a [f32],
    out: &'a mut [f32],
}

impl SimdKernel for SiluPairBwdF32<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        for (o, (&h, (&ga, &gd))) in self
            .out
            .iter_mut()
            .zip(self.h.iter().zip(self.ga.iter().zip(self.gd)))
        {
            let s = 1.0 / (1.0 + exp_f32(-h));
            *o = silu_bwd!(s, h, ga, gd);
        }
    }
}

/// `(y: [R, C], b: [C]) -> y + b: [R, C]` (every row plus the bias), backward `(g, sum_rows(g))`.
#[derive(Clone, Copy, Debug)]
pub struct AddBias;

/// `g: [R, C] -> [C]`, the sum of the rows, accumulated row by row; backward broadcasts back to `[R, C]`.
#[derive(Clone, Copy, Debug)]
pub struct SumRows;

fn rows_cols(l: &Layout, op: &str) -> candle_core::Result<(usize, usize)> {
    match l.dims() {
        [r, c] => Ok((*r, *c)),
        d => candle_core::bail!("{op}: expected a matrix, got shape {d:?}"),
    }
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "walkjump-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, c) = rows_cols(l1, self.name())?;
        if l2.dims() != [c] {
            candle_core::bail!("add-bias: bias {:?} for rows of {c}", l2.dims());
        }
        fn add<T: Copy + std::ops::Add<Output = T>>(y: &[T], b: &[T]) -> Vec<T> {
            let mut out = Vec::with_capacity(y.len());
            for row in y.chunks_exact(b.len()) {
                out.extend(row.iter().zip(b).map(|(&y, &b)| y + b));
            }
            out
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(b)) => CpuStorage::F32(add(
                contiguous_slice(y, l1, self.name())?,
                contiguous_slice(b, l2, self.name())?,
            )),
            (CpuStorage::F64(y), CpuStorage::F64(b)) => CpuStorage::F64(add(
                contiguous_slice(y, l1, self.name())?,
                contiguous_slice(b, l2, self.name())?,
            )),
            _ => candle_core::bail!("add-bias: unsupported dtypes"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let gb = g.apply_op1(SumRows)?;
        Ok((Some(g), Some(gb)))
    }
}

struct SumRowsF32<'a> {
    g: &'a [f32],
    out: &'a mut [f32],
}

impl SimdKernel for SumRowsF32<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        add_rows(self.g, self.out);
    }
}

/// `out += ` every `out.len()`-long row of `g`.
#[inline(always)]
fn add_rows<T: Copy + std::ops::AddAssign>(g: &[T], out: &mut [T]) {
    for row in g.chunks_exact(out.len()) {
        for (o, &g) in out.iter_mut().zip(row) {
            *o += g;
        }
    }
}

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "walkjump-sum-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, c) = rows_cols(l, self.name())?;
        let out = match s {
            CpuStorage::F32(g) => {
                let mut out = vec![0f32; c];
                if c > 0 {
                    let g = contiguous_slice(g, l, self.name())?;
                    with_best_simd(SumRowsF32 { g, out: &mut out });
                }
                CpuStorage::F32(out)
            }
            CpuStorage::F64(g) => {
                let mut out = vec![0f64; c];
                if c > 0 {
                    add_rows(contiguous_slice(g, l, self.name())?, &mut out);
                }
                CpuStorage::F64(out)
            }
            other => candle_core::bail!("sum-rows: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, Shape::from(c)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.broadcast_as(arg.shape())?.contiguous()?))
    }
}

/// `h: [..] -> sigmoid(h): [..]` in one pass (the same vectorisable `exp` as [`SiluPair`]); backward
/// `grad s (1 - s)` from the result.
#[derive(Clone, Copy, Debug)]
pub struct Sigmoid;

impl CustomOp1 for Sigmoid {
    fn name(&self) -> &'static str {
        "walkjump-sigmoid"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => {
                let h = contiguous_slice(v, l, self.name())?;
                let mut out = vec![0f32; h.len()];
                with_best_simd(SigmoidF32 { h, out: &mut out });
                CpuStorage::F32(out)
            }
            CpuStorage::F64(v) => CpuStorage::F64(
                contiguous_slice(v, l, self.name())?
                    .iter()
                    .map(|&h| 1.0 / (1.0 + (-h).exp()))
                    .collect(),
            ),
            other => candle_core::bail!("sigmoid: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _h: &Tensor, s: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some((grad * (s * s.affine(-1.0, 1.0)?)?)?))
    }
}

/// `h: [..] -> [2, ..]`: `silu(h)` then `silu'(h)`, in one pass over `h`.
#[derive(Clone, Copy, Debug)]
pub struct SiluPair;

/// `(h: [..], grad: [2, ..]) -> grad[0] silu'(h) + grad[1] silu''(h): [..]`, the backward of [`SiluPair`].
#[derive(Clone, Copy, Debug)]
pub struct SiluPairBwd;

fn pair_shape(l: &Layout) -> Shape {
    let mut dims = vec![2];
    dims.extend_from_slice(l.dims());
    Shape::from(dims)
}

impl CustomOp1 for SiluPair {
    fn name(&self) -> &'static str {
        "walkjump-silu-pair"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => {
                let h = contiguous_slice(v, l, self.name())?;
                let mut out = vec![0f32; 2 * h.len()];
                let (a, d) = out.split_at_mut(h.len());
                with_best_simd(SiluPairF32 { h, a, d });
                CpuStorage::F32(out)
            }
            CpuStorage::F64(v) => {
                let h = contiguous_slice(v, l, self.name())?;
                let mut out = vec![0f64; 2 * h.len()];
                let (a, d) = out.split_at_mut(h.len());
                for ((a, d), &h) in a.iter_mut().zip(d.iter_mut()).zip(h) {
                    (*a, *d) = silu_pair_f64(h);
                }
                CpuStorage::F64(out)
            }
            other => candle_core::bail!("silu-pair: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, pair_shape(l)))
    }

    fn bwd(&self, h: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(h.apply_op2_no_bwd(&grad.contiguous()?, &SiluPairBwd)?))
    }
}

impl CustomOp2 for SiluPairBwd {
    fn name(&self) -> &'static str {
        "walkjump-silu-pair-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let len = l1.shape().elem_count();
        if l2.shape().elem_count() != 2 * len {
            candle_core::bail!(
                "silu-pair-bwd: gradient {:?} for input {:?}",
                l2.shape(),
                l1.shape()
            );
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(h), CpuStorage::F32(g)) => {
                let h = contiguous_slice(h, l1, self.name())?;
                let (ga, gd) = contiguous_slice(g, l2, self.name())?.split_at(len);
                let mut out = vec![0f32; len];
                with_best_simd(SiluPairBwdF32 {
                    h,
                    ga,
                    gd,
                    out: &mut out,
                });
                CpuStorage::F32(out)
            }
            (CpuStorage::F64(h), CpuStorage::F64(g)) => {
                let h = contiguous_slice(h, l1, self.name())?;
                let (ga, gd) = contiguous_slice(g, l2, self.name())?.split_at(len);
                let out = h
                    .iter()
                    .zip(ga.iter().zip(gd))
                    .map(|(&h, (&ga, &gd))| {
                        let s = 1.0 / (1.0 + (-h).exp());
                        silu_bwd!(s, h, ga, gd)
                    })
                    .collect();
                CpuStorage::F64(out)
            }
            _ => candle_core::bail!("silu-pair-bwd: unsupported dtypes"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// A frozen `f32` weight `B: [k, n]` stored as column panels `B[:, c0..c1]`, each contiguous, for
/// [`PanelMatmul`].
#[derive(Debug)]
pub struct Panels {
    k: usize,
    n: usize,
    /// `(first column, width, row-major [k, width] values)`
    panels: Vec<(usize, usize, Vec<f32>)>,
}

impl Panels {
    /// Splits `b: [k, n]` (any layout, `f32`) into `count` panels of about equal width (at least 16 columns each,
    /// a multiple of 16 except the last).
    pub fn new(b: &Tensor, count: usize) -> candle_core::Result<Self> {
        let (k, n) = b.dims2()?;
        let values = b.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let count = count.clamp(1, n.div_ceil(16).max(1));
        let width = n.div_ceil(count).div_ceil(16) * 16;
        let mut panels = Vec::with_capacity(count);
        let mut c0 = 0;
        while c0 < n {
            let w = width.min(n - c0);
            let mut p = Vec::with_capacity(k * w);
            for row in &values {
                p.extend_from_slice(&row[c0..c0 + w]);
            }
            panels.push((c0, w, p));
            c0 += w;
        }
        Ok(Self { k, n, panels })
    }

    /// Number of panels.
    pub fn len(&self) -> usize {
        self.panels.len()
    }

    /// Whether there are no panels (a weight with no columns).
    pub fn is_empty(&self) -> bool {
        self.panels.is_empty()
    }
}

/// What a panel product does to its own columns of the result right after its GEMM, on the same thread.
#[derive(Clone, Debug)]
pub enum Epilogue {
    /// Nothing: `x B`.
    None,
    /// `x B + b` with `b: [n]`.
    Bias(std::sync::Arc<Vec<f32>>),
    /// `h = x B + b`, then the pair `[silu(h), silu'(h)]` stacked as `[2, m, n]` (the layout of [`SiluPair`]).
    BiasSiluPair(std::sync::Arc<Vec<f32>>),
    /// `(x B) * d` elementwise with the op's second input `d: [m, n]` ([`PanelMatmulMul`]).
    Mul,
}

/// `x: [m, k] -> x B: [m, n]` (then its [`Epilogue`]) for a frozen `f32` weight held as [`Panels`]: the panels are
/// multiplied on rayon's threads at once, each by one single-threaded GEMM writing its own columns of the result,
/// followed by the epilogue on those columns. With few rows (64 chains) this is how the product scales over
/// cores: every thread streams only its share of the weight, where splitting the rows (or leaving it to the GEMM
/// library) made every thread stream all of it. Measured on `[64, 1024] x [1024, 1024]` at 2 threads: 214
/// GFLOP/s, against 128 for two row blocks and 149 for the GEMM library's own split. Forward only (the weights are
/// frozen; there is no autograd through it).
#[derive(Clone, Debug)]
pub struct PanelMatmul(pub std::sync::Arc<Panels>, pub Epilogue);

/// [`PanelMatmul`] with [`Epilogue::Mul`]: `(x, d) -> (x B) * d`.
#[derive(Clone, Debug)]
pub struct PanelMatmulMul(pub std::sync::Arc<Panels>);

/// The panel products of `x: [m, k]` (row-major) into `out` (`[m, n]`, or `[2, m, n]` for the SiLU pair), with
/// `epi` applied per panel; `mul` is the `[m, n]` factor of [`Epilogue::Mul`].
fn panel_products(
    p: &Panels,
    x: &[f32],
    m: usize,
    epi: &Epilogue,
    mul: Option<&[f32]>,
) -> candle_core::Result<Vec<f32>> {
    use rayon::prelude::*;
    let (k, n) = (p.k, p.n);
    if x.len() != m * k {
        candle_core::bail!(
            "panel matmul: input has {} values, expected {m} x {k}",
            x.len()
        );
    }
    let pair = matches!(epi, Epilogue::BiasSiluPair(_));
    let bias = match epi {
        Epilogue::Bias(b) | Epilogue::BiasSiluPair(b) => {
            if b.len() != n {
                candle_core::bail!("panel matmul: bias of {} for {n} columns", b.len());
            }
            Some(b.as_slice())
        }
        _ => None,
    };
    let mul = match (epi, mul) {
        (Epilogue::Mul, Some(d)) if d.len() == m * n => Some(d),
        (Epilogue::Mul, _) => candle_core::bail!("panel matmul: the factor must be {m} x {n}"),
        _ => None,
    };
    let mut out = vec![0f32; if pair { 2 * m * n } else { m * n }];
    if m == 0 || n == 0 {
        return Ok(out);
    }
    let dst = out.as_mut_ptr() as usize;
    let panel = |(c0, w, b): &(usize, usize, Vec<f32>)| {
        let (c0, w) = (*c0, *w);
        // SAFETY: `x` is `[m, k]` row-major, `b` is `[k, w]` row-major, and the destination block is columns
        // `c0..c0 + w` of the row-major `[m, n]` buffer `out` (and of its second half for the pair), which
        // outlives this loop; the panels' column ranges are disjoint, so no two threads touch the same element.
        unsafe {
            let dst = dst as *mut f32;
            if k > 0 {
                gemm::gemm(
                    m,
                    w,
                    k,
                    dst.add(c0),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    w as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            let mut h = vec![0f32; if pair { w } else { 0 }];
            for r in 0..m {
                let row = std::slice::from_raw_parts_mut(dst.add(r * n + c0), w);
                if let Some(bias) = bias {
                    for (y, &bj) in row.iter_mut().zip(&bias[c0..c0 + w]) {
                        *y += bj;
                    }
                }
                if let Some(d) = mul {
                    for (y, &dj) in row.iter_mut().zip(&d[r * n + c0..r * n + c0 + w]) {
                        *y *= dj;
                    }
                }
                if pair {
                    h.copy_from_slice(row);
                    let drow = std::slice::from_raw_parts_mut(dst.add(m * n + r * n + c0), w);
                    with_best_simd(SiluPairF32 {
                        h: &h,
                        a: row,
                        d: drow,
                    });
                }
            }
        }
    };
    // Inside a row block the other threads have their own blocks: the panels run here, one after another.
    if crate::parallel::in_row_block() {
        p.panels.iter().for_each(panel);
    } else {
        p.panels.par_iter().for_each(panel);
    }
    Ok(out)
}

impl CustomOp1 for PanelMatmul {
    fn name(&self) -> &'static str {
        "walkjump-panel-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l.shape().dims2()?;
        if k != self.0.k {
            candle_core::bail!(
                "panel matmul: input has {k} columns, the weight {} rows",
                self.0.k
            );
        }
        let x = match s {
            CpuStorage::F32(v) => contiguous_slice(v, l, self.name())?,
            other => candle_core::bail!("panel matmul: unsupported dtype {:?}", other.dtype()),
        };
        let out = panel_products(&self.0, x, m, &self.1, None)?;
        let shape = match self.1 {
            Epilogue::BiasSiluPair(_) => Shape::from((2, m, self.0.n)),
            _ => Shape::from((m, self.0.n)),
        };
        Ok((CpuStorage::F32(out), shape))
    }
}

impl CustomOp2 for PanelMatmulMul {
    fn name(&self) -> &'static str {
        "walkjump-panel-matmul-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        if k != self.0.k || l2.shape().dims2()? != (m, self.0.n) {
            candle_core::bail!(
                "panel matmul: shapes {:?} and {:?} do not fit a {} x {} weight",
                l1.shape(),
                l2.shape(),
                self.0.k,
                self.0.n
            );
        }
        let (x, d) = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(d)) => (
                contiguous_slice(x, l1, self.name())?,
                contiguous_slice(d, l2, self.name())?,
            ),
            _ => candle_core::bail!("panel matmul: f32 inputs only"),
        };
        let out = panel_products(&self.0, x, m, &Epilogue::Mul, Some(d))?;
        Ok((CpuStorage::F32(out), Shape::from((m, self.0.n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn exp_f32_is_accurate_and_safe() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let rel = ((exp_f32(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(1e30).is_finite() && exp_f32(-1e30) > 0.0);
        assert!(exp_f32(f32::INFINITY).is_finite() && exp_f32(f32::NEG_INFINITY) >= 0.0);
    }

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = crate::rng::Rng::new(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    /// `<im2col(x), y> == <x, col2im(y)>` and the convolution built on them equals candle's `conv2d`.
    #[test]
    fn im2col_col2im_are_adjoint_and_match_conv2d() {
        for (h, w, c, k, stride, pad, co) in [
            (8, 8, 2, 3, 2, 1, 3),
            (9, 7, 1, 3, 2, 1, 2),
            (5, 5, 3, 3, 1, 1, 4),
        ] {
            let oh = (h + 2 * pad - k) / stride + 1;
            let ow = (w + 2 * pad - k) / stride + 1;
            let n = 2;
            let g = ConvGeom {
                n,
                h,
                w,
                c,
                k,
                stride,
                pad,
                oh,
                ow,
            };
            let x = randn(&[n, h, w, c], 1);
            let y = randn(&[n * oh * ow, k * k * c], 2);
            let lhs = (x.apply_op1(Im2Col(g)).expect("im2col") * &y)
                .expect("mul")
                .sum_all()
                .expect("sum")
                .to_scalar::<f64>()
                .expect("scalar");
            let rhs = (y.apply_op1(Col2Im(g)).expect("col2im") * &x)
                .expect("mul")
                .sum_all()
                .expect("sum")
                .to_scalar::<f64>()
                .expect("scalar");
            assert!(
                (lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );

            let wt = randn(&[co, c, k, k], 3);
            let wm = wt
                .permute((0, 2, 3, 1))
                .expect("p")
                .reshape((co, k * k * c))
                .expect("r");
            let ours = x
                .apply_op1(Im2Col(g))
                .expect("im2col")
                .matmul(&wm.t().expect("t"))
                .expect("mm")
                .reshape((n, oh, ow, co))
                .expect("r")
                .permute((0, 3, 1, 2))
                .expect("p");
            let theirs = x
                .permute((0, 3, 1, 2))
                .expect("p")
                .contiguous()
                .expect("c")
                .conv2d(&wt, pad, stride, 1, 1)
                .expect("conv");
            let err = (ours - theirs)
                .expect("sub")
                .abs()
                .expect("abs")
                .max_all()
                .expect("max")
                .to_scalar::<f64>()
                .expect("scalar");
            assert!(err < 1e-12, "{g:?}: conv mismatch {err}");
        }
    }

    #[test]
    fn silu_pair_matches_formula_and_differentiates() {
        let h = Var::from_tensor(&(randn(&[3, 5], 4) * 3.0).expect("mul")).expect("var");
        let pair = h.as_tensor().apply_op1(SiluPair).expect("pair");
        let (a, d) = (pair.get(0).expect("a"), pair.get(1).expect("d"));
        let (a_ref, d_ref) = crate::nn::silu_with_grad_generic(h.as_tensor()).expect("generic");
        for (x, y) in [(&a, &a_ref), (&d, &d_ref)] {
            let err = (x - y)
                .expect("sub")
                .abs()
                .expect("abs")
                .max_all()
                .expect("m");
            assert!(err.to_scalar::<f64>().expect("s") < 1e-12);
        }
        // d/dh sum(w1 a + w2 d) by the custom backward vs. by autograd of the generic formula.
        let w1 = randn(&[3, 5], 5);
        let w2 = randn(&[3, 5], 6);
        let loss = |a: &Tensor, d: &Tensor| {
            ((a * &w1).expect("m") + (d * &w2).expect("m"))
                .expect("a")
                .sum_all()
                .expect("s")
        };
        let g1 = loss(&a, &d).backward().expect("bwd");
        let g2 = loss(&a_ref, &d_ref).backward().expect("bwd");
        let (g1, g2) = (
            g1.get(h.as_tensor()).expect("g1"),
            g2.get(h.as_tensor()).expect("g2"),
        );
        let err = (g1 - g2)
            .expect("sub")
            .abs()
            .expect("abs")
            .max_all()
            .expect("m");
        assert!(err.to_scalar::<f64>().expect("s") < 1e-10);
    }

    #[test]
    fn sigmoid_matches_generic_and_differentiates() {
        let h = Var::from_tensor(&(randn(&[3, 7], 8) * 4.0).expect("mul")).expect("var");
        let ours = h.as_tensor().apply_op1(Sigmoid).expect("sigmoid");
        let generic = (h.as_tensor().neg().expect("neg").exp().expect("exp") + 1.0)
            .expect("add")
            .recip()
            .expect("recip");
        let err = (&ours - &generic)
            .expect("sub")
            .abs()
            .expect("abs")
            .max_all()
            .expect("m");
        assert!(err.to_scalar::<f64>().expect("s") < 1e-14);
        let w = randn(&[3, 7], 9);
        let g1 = (ours * &w)
            .expect("m")
            .sum_all()
            .expect("s")
            .backward()
            .expect("b");
        let g2 = (generic * &w)
            .expect("m")
            .sum_all()
            .expect("s")
            .backward()
            .expect("b");
        let (g1, g2) = (
            g1.get(h.as_tensor()).expect("g"),
            g2.get(h.as_tensor()).expect("g"),
        );
        let err = (g1 - g2)
            .expect("sub")
            .abs()
            .expect("abs")
            .max_all()
            .expect("m");
        assert!(err.to_scalar::<f64>().expect("s") < 1e-12);
    }

    #[test]
    fn add_bias_matches_broadcast_add_and_differentiates() {
        // f64 and f32 (the vectorised row sum), against candle's broadcast_add and its autograd.
        for dtype in [DType::F64, DType::F32] {
            let y =
                Var::from_tensor(&randn(&[37, 5], 10).to_dtype(dtype).expect("dt")).expect("var");
            let b = Var::from_tensor(&randn(&[5], 11).to_dtype(dtype).expect("dt")).expect("var");
            let w = randn(&[37, 5], 12).to_dtype(dtype).expect("dt");
            let ours = y
                .as_tensor()
                .apply_op2(b.as_tensor(), AddBias)
                .expect("add");
            let generic = y.as_tensor().broadcast_add(b.as_tensor()).expect("add");
            let diff = |a: &Tensor, b: &Tensor| -> f64 {
                (a - b)
                    .expect("sub")
                    .abs()
                    .expect("abs")
                    .max_all()
                    .expect("m")
                    .to_dtype(DType::F64)
                    .expect("dt")
                    .to_scalar::<f64>()
                    .expect("s")
            };
            assert_eq!(diff(&ours, &generic), 0.0, "{dtype:?}");
            let g1 = (ours * &w)
                .expect("m")
                .sum_all()
                .expect("s")
                .backward()
                .expect("b");
            let g2 = (generic * &w)
                .expect("m")
                .sum_all()
                .expect("s")
                .backward()
                .expect("b");
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            for v in [&y, &b] {
                let (a, c) = (
                    g1.get(v.as_tensor()).expect("g"),
                    g2.get(v.as_tensor()).expect("g"),
                );
                assert!(diff(a, c) < tol, "{dtype:?}: {}", diff(a, c));
            }
        }
        // Shape errors are errors, not panics.
        let y = randn(&[4, 3], 1);
        assert!(y.apply_op2(&randn(&[4], 2), AddBias).is_err());
        assert!(
            randn(&[2, 2, 3], 3)
                .apply_op2(&randn(&[3], 2), AddBias)
                .is_err()
        );
    }

    #[test]
    fn dispatched_kernels_equal_the_baseline_code_bit_for_bit() {
        // with_best_simd runs the loops as AVX-512 / AVX2 code where the CPU has it; calling `run` directly gives
        // the portable baseline build. Same arithmetic, so the same bits (wide arguments cover exp's clamping).
        let mut rng = crate::rng::Rng::new(21);
        let h: Vec<f32> = rng.normal_vec(1003).iter().map(|x| x * 30.0).collect();
        let (ga, gd) = (rng.normal_vec(1003), rng.normal_vec(1003));
        let n = h.len();
        let (mut a1, mut d1, mut a2, mut d2) =
            (vec![0f32; n], vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        with_best_simd(SiluPairF32 {
            h: &h,
            a: &mut a1,
            d: &mut d1,
        });
        SiluPairF32 {
            h: &h,
            a: &mut a2,
            d: &mut d2,
        }
        .run();
        assert_eq!((&a1, &d1), (&a2, &d2));
        let (mut b1, mut b2) = (vec![0f32; n], vec![0f32; n]);
        with_best_simd(SiluPairBwdF32 {
            h: &h,
            ga: &ga,
            gd: &gd,
            out: &mut b1,
        });
        SiluPairBwdF32 {
            h: &h,
            ga: &ga,
            gd: &gd,
            out: &mut b2,
        }
        .run();
        assert_eq!(b1, b2);
        let (mut s1, mut s2) = (vec![0f32; n], vec![0f32; n]);
        with_best_simd(SigmoidF32 {
            h: &h,
            out: &mut s1,
        });
        SigmoidF32 {
            h: &h,
            out: &mut s2,
        }
        .run();
        assert_eq!(s1, s2);
        let (mut r1, mut r2) = (vec![0f32; 17], vec![0f32; 17]);
        with_best_simd(SumRowsF32 {
            g: &h[..17 * 59],
            out: &mut r1,
        });
        SumRowsF32 {
            g: &h[..17 * 59],
            out: &mut r2,
        }
        .run();
        assert_eq!(r1, r2);
    }

    #[test]
    fn silu_pair_f32_close_to_f64() {
        let h = (randn(&[4, 257], 7) * 6.0).expect("mul");
        let p64 = h.apply_op1(SiluPair).expect("pair");
        let p32 = h
            .to_dtype(DType::F32)
            .expect("f32")
            .apply_op1(SiluPair)
            .expect("pair")
            .to_dtype(DType::F64)
            .expect("f64");
        // |f32 - f64| <= 1e-6 (1 + |f64|): the rounding of h to f32 alone moves silu(h) by about 6e-8 |h|.
        let scale = (p64.abs().expect("abs") + 1.0).expect("add");
        let err = ((p64 - p32).expect("sub").abs().expect("abs") / scale)
            .expect("div")
            .max_all()
            .expect("m");
        assert!(err.to_scalar::<f64>().expect("s") < 1e-6);
    }

    #[test]
    fn panel_matmul_matches_matmul() -> candle_core::Result<()> {
        use std::sync::Arc;
        let dev = candle_core::Device::Cpu;
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(m, k, n, count) in &[
            (5, 37, 50, 3),
            (64, 96, 130, 2),
            (1, 16, 16, 4),
            (3, 8, 200, 1),
        ] {
            let x = Tensor::from_vec((0..m * k).map(|_| next()).collect::<Vec<_>>(), (m, k), &dev)?;
            let b = Tensor::from_vec((0..k * n).map(|_| next()).collect::<Vec<_>>(), (k, n), &dev)?;
            let panels = Panels::new(&b, count)?;
            assert!(!panels.is_empty() && panels.len() <= count);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let got =
                pool.install(|| x.apply_op1(PanelMatmul(Arc::new(panels), Epilogue::None)))?;
            let want = x.matmul(&b)?;
            let diff = (got - &want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            let scale = want.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(
                diff <= 1e-5 * scale,
                "{m}x{k}x{n}, {count} panels: {diff} vs {scale}"
            );
        }
        let x = Tensor::zeros((2, 5), DType::F32, &dev)?;
        let b = Tensor::zeros((4, 3), DType::F32, &dev)?;
        assert!(
            x.apply_op1(PanelMatmul(Arc::new(Panels::new(&b, 2)?), Epilogue::None))
                .is_err(),
            "shape mismatch"
        );
        Ok(())
    }

    #[test]
    fn panel_epilogues_match_separate_ops() -> candle_core::Result<()> {
        use std::sync::Arc;
        let dev = candle_core::Device::Cpu;
        let (m, k, n) = (6, 20, 45);
        let vals = |len: usize, f: f32| (0..len).map(|i| (i as f32 * f).sin()).collect::<Vec<_>>();
        let x = Tensor::from_vec(vals(m * k, 0.37), (m, k), &dev)?;
        let b = Tensor::from_vec(vals(k * n, 0.11), (k, n), &dev)?;
        let bias = vals(n, 0.7);
        let d = Tensor::from_vec(vals(m * n, 0.23), (m, n), &dev)?;
        let panels = Arc::new(Panels::new(&b, 3)?);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (biased, pair, mul, plain) = pool.install(|| -> candle_core::Result<_> {
            let bias = Arc::new(bias.clone());
            Ok((
                x.apply_op1(PanelMatmul(panels.clone(), Epilogue::Bias(bias.clone())))?,
                x.apply_op1(PanelMatmul(panels.clone(), Epilogue::BiasSiluPair(bias)))?,
                x.apply_op2_no_bwd(&d, &PanelMatmulMul(panels.clone()))?,
                x.apply_op1(PanelMatmul(panels.clone(), Epilogue::None))?,
            ))
        })?;
        let h = plain.broadcast_add(&Tensor::from_vec(bias, n, &dev)?)?;
        assert_eq!(biased.to_vec2::<f32>()?, h.to_vec2::<f32>()?);
        let want = h.apply_op1(SiluPair)?;
        assert_eq!(pair.dims(), &[2, m, n]);
        assert_eq!(
            pair.flatten_all()?.to_vec1::<f32>()?,
            want.flatten_all()?.to_vec1::<f32>()?
        );
        assert_eq!(mul.to_vec2::<f32>()?, (plain * &d)?.to_vec2::<f32>()?);
        let wrong = Tensor::zeros((m, n + 1), DType::F32, &dev)?;
        assert!(x.apply_op2_no_bwd(&wrong, &PanelMatmulMul(panels)).is_err());
        Ok(())
    }
}
