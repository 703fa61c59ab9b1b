//! Two CPU kernels for the layer graph's sampling path (frozen weights, nothing to differentiate): any activation
//! with its derivative in one pass ([`ActPair`]), and the per-group sums of channels-last images that group
//! normalisation needs ([`GroupSums`]), in place of chains of candle ops each of which walks the whole tensor.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, InplaceOp1, Layout, Shape, Tensor};

use super::{SimdKernel, contiguous_slice, exp_f32, pair_shape, with_best_simd};
use crate::nn::graph::Activation;

/// `h: [..] -> [2, ..]`: the activation and its derivative, one pass, `f32` / `f64` CPU, no backward (use it only
/// on tensors that track no gradient).
#[derive(Clone, Copy, Debug)]
pub struct ActPair(pub Activation);

/// One `(a(h), a'(h))` function per float type, from one body.
macro_rules! act_pair_fn {
    ($name:ident, $sigmoid:ident, $t:ident, $erf:path) => {
        fn $sigmoid(x: $t) -> $t {
            if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                let e = x.exp();
                e / (1.0 + e)
            }
        }

        /// `(a(h), a'(h))` of one value, in this float type's arithmetic.
        #[allow(clippy::unnecessary_cast)]
        fn $name(act: Activation, h: $t) -> ($t, $t) {
            use std::$t::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};
            match act {
                Activation::Silu => {
                    let s = $sigmoid(h);
                    (h * s, s * (1.0 + h * (1.0 - s)))
                }
                Activation::Relu if h > 0.0 => (h, 1.0),
                Activation::Relu => (0.0, 0.0),
                Activation::LeakyRelu(_) if h > 0.0 => (h, 1.0),
                Activation::LeakyRelu(alpha) => (alpha as $t * h, alpha as $t),
                Activation::Elu(_) if h > 0.0 => (h, 1.0),
                Activation::Elu(alpha) => {
                    let (a, e) = (alpha as $t, h.exp());
                    (a * (e - 1.0), a * e)
                }
                Activation::Gelu => {
                    let cdf = 0.5 * (1.0 + $erf(h * FRAC_1_SQRT_2));
                    let pdf = (-0.5 * h * h).exp() * (0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2);
                    (h * cdf, cdf + h * pdf)
                }
                Activation::GeluTanh => {
                    let c = (2.0 / PI).sqrt();
                    let t = (c * (h + 0.044715 * h * h * h)).tanh();
                    let half = 0.5 * (1.0 + t);
                    let d = half + 0.5 * h * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * h * h);
                    (h * half, d)
                }
                Activation::Softplus(beta) => {
                    let beta = beta as $t;
                    let b = beta * h;
                    ((b.max(0.0) + (-b.abs()).exp().ln_1p()) / beta, $sigmoid(b))
                }
                Activation::Tanh => {
                    let t = h.tanh();
                    (t, 1.0 - t * t)
                }
                Activation::Sigmoid => {
                    let s = $sigmoid(h);
                    (s, s * (1.0 - s))
                }
                Activation::Erf => ($erf(h), FRAC_2_SQRT_PI * (-h * h).exp()),
            }
        }
    };
}

act_pair_fn!(act_pair, sigmoid, f64, candle_core::cpu::erf::erf_f64);
// f32 data in f32 arithmetic: f32's `exp` / `ln_1p` are several times cheaper than f64's.
act_pair_fn!(
    act_pair_f32,
    sigmoid_f32,
    f32,
    candle_core::cpu::erf::erf_f32
);

/// `ln(1 + z)` for `z` in `[0, 1]` in plain arithmetic that the compiler vectorises: `2 atanh(z / (2 + z))` by its
/// odd series, whose argument is at most 1/3, cut after the `t^13` term (relative error below 1e-7).
#[inline(always)]
fn ln_1p_unit_f32(z: f32) -> f32 {
    let t = z / (2.0 + z);
    let t2 = t * t;
    let mut p = 1.0 / 13.0_f32;
    p = p * t2 + 1.0 / 11.0;
    p = p * t2 + 1.0 / 9.0;
    p = p * t2 + 1.0 / 7.0;
    p = p * t2 + 1.0 / 5.0;
    p = p * t2 + 1.0 / 3.0;
    p = p * t2 + 1.0;
    2.0 * t * p
}

/// `tanh(x)` for `f32` in plain arithmetic that the compiler vectorises: below `|x| = 0.625` the odd polynomial of
/// Cephes' `tanhf` (no cancellation near zero), above it `1 - 2 / (exp(2 |x|) + 1)` with [`exp_f32`]; both are
/// computed and one is selected, so the loop has no branch. Error about 2 ulp; `tanh(NaN)` is NaN.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let ax = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3_f32;
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    let large = (1.0 - 2.0 / (exp_f32(2.0 * ax) + 1.0)).copysign(x);
    if ax < 0.625 { small } else { large }
}

/// `erf(x)` for `f32` in plain arithmetic that the compiler vectorises: Abramowitz and Stegun 7.1.26 (absolute
/// error below 1.5e-7), for GELU's `Phi`, where only absolute error matters (the `erf` op keeps candle's).
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    let ax = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * ax);
    let mut p = 1.061_405_4_f32;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp_f32(-ax * ax);
    y.copysign(x)
}

/// `(a(h), a'(h))` of the activations built on `exp` or `tanh`, in `f32` with [`exp_f32`], [`ln_1p_unit_f32`] and
/// [`tanh_f32`]; the others fall back to [`act_pair_f32`]. Hoisted out of the loop by matching before it, so each loop body is branch-free.
struct ActPairF32<'a> {
    act: Activation,
    /// The input; `None`: in place, the input is `a`.
    h: Option<&'a [f32]>,
    a: &'a mut [f32],
    /// The derivative's output; `None` for the value alone (the derivative's arithmetic is then dead code).
    d: Option<&'a mut [f32]>,
}

#[inline(always)]
fn each_pair(
    h: Option<&[f32]>,
    a: &mut [f32],
    d: Option<&mut [f32]>,
    f: impl Fn(f32) -> (f32, f32),
) {
    match (h, d) {
        (Some(h), Some(d)) => {
            for ((a, d), &h) in a.iter_mut().zip(d.iter_mut()).zip(h) {
                (*a, *d) = f(h);
            }
        }
        (Some(h), None) => {
            for (a, &h) in a.iter_mut().zip(h) {
                *a = f(h).0;
            }
        }
        (None, Some(d)) => {
            for (a, d) in a.iter_mut().zip(d.iter_mut()) {
                (*a, *d) = f(*a);
            }
        }
        (None, None) => {
            for a in a.iter_mut() {
                *a = f(*a).0;
            }
        }
    }
}

impl SimdKernel for ActPairF32<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self { act, h, a, d } = self;
        match act {
            Activation::Silu => each_pair(h, a, d, |h| {
                let s = 1.0 / (1.0 + exp_f32(-h));
                let y = h * s;
                (y, s + y * (1.0 - s))
            }),
            Activation::Sigmoid => each_pair(h, a, d, |h| {
                let s = 1.0 / (1.0 + exp_f32(-h));
                (s, s * (1.0 - s))
            }),
            Activation::Softplus(beta) => {
                let beta = beta as f32;
                each_pair(h, a, d, |h| {
                    // One exp serves both: e = exp(-|b|) in (0, 1].
                    let b = beta * h;
                    let e = exp_f32(-b.abs());
                    let top = if b >= 0.0 { 1.0 } else { e };
                    ((b.max(0.0) + ln_1p_unit_f32(e)) / beta, top / (1.0 + e))
                })
            }
            Activation::Elu(alpha) => {
                let alpha = alpha as f32;
                each_pair(h, a, d, |h| {
                    let e = alpha * exp_f32(h.min(0.0));
                    if h > 0.0 { (h, 1.0) } else { (e - alpha, e) }
                })
            }
            Activation::Relu => each_pair(h, a, d, |h| if h > 0.0 { (h, 1.0) } else { (0.0, 0.0) }),
            Activation::LeakyRelu(alpha) => {
                let alpha = alpha as f32;
                each_pair(h, a, d, |h| {
                    if h > 0.0 {
                        (h, 1.0)
                    } else {
                        (alpha * h, alpha)
                    }
                })
            }
            Activation::Gelu => each_pair(h, a, d, |h| {
                let cdf = 0.5 * (1.0 + erf_f32(h * std::f32::consts::FRAC_1_SQRT_2));
                // 1 / sqrt(2 pi)
                let pdf = exp_f32(-0.5 * h * h) * 0.398_942_3;
                (h * cdf, cdf + h * pdf)
            }),
            Activation::Tanh => each_pair(h, a, d, |h| {
                let t = tanh_f32(h);
                (t, 1.0 - t * t)
            }),
            Activation::GeluTanh => each_pair(h, a, d, |h| {
                const C: f32 = 0.797_884_6; // sqrt(2 / pi)
                const K: f32 = 0.044_715;
                let t = tanh_f32(C * (h + K * h * h * h));
                let half = 0.5 * (1.0 + t);
                let d = half + 0.5 * h * (1.0 - t * t) * C * (1.0 + 3.0 * K * h * h);
                (h * half, d)
            }),
            other => each_pair(h, a, d, |h| act_pair_f32(other, h)),
        }
    }
}

/// `(a(h), a'(h))` stacked as `[2, ..]` (`pair`), or `a(h)` alone, for [`ActPair`] and [`ActValue`].
fn act_cpu(
    act: Activation,
    pair: bool,
    s: &CpuStorage,
    l: &Layout,
    name: &str,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let len = l.shape().elem_count();
    let size = if pair { 2 * len } else { len };
    let out = match s {
        CpuStorage::F32(v) => {
            let h = contiguous_slice(v, l, name)?;
            let mut out = vec![0f32; size];
            let (a, d) = out.split_at_mut(len);
            let d = if pair { Some(d) } else { None };
            with_best_simd(ActPairF32 {
                act,
                h: Some(h),
                a,
                d,
            });
            CpuStorage::F32(out)
        }
        CpuStorage::F64(v) => {
            let h = contiguous_slice(v, l, name)?;
            let mut out = vec![0f64; size];
            let (a, d) = out.split_at_mut(len);
            if pair {
                for ((a, d), &h) in a.iter_mut().zip(d.iter_mut()).zip(h) {
                    (*a, *d) = act_pair(act, h);
                }
            } else {
                for (a, &h) in a.iter_mut().zip(h) {
                    *a = act_pair(act, h).0;
                }
            }
            CpuStorage::F64(out)
        }
        other => candle_core::bail!("{name}: unsupported dtype {:?}", other.dtype()),
    };
    Ok((
        out,
        if pair {
            pair_shape(l)
        } else {
            l.shape().clone()
        },
    ))
}

impl CustomOp1 for ActPair {
    fn name(&self) -> &'static str {
        "walkjump-act-pair"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        act_cpu(self.0, true, s, l, self.name())
    }
}

/// `h: [..] -> a(h): [..]`, the activation alone (a forward pass that no VJP follows), `f32` / `f64` CPU, no
/// backward.
#[derive(Clone, Copy, Debug)]
pub struct ActValue(pub Activation);

impl CustomOp1 for ActValue {
    fn name(&self) -> &'static str {
        "walkjump-act-value"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        act_cpu(self.0, false, s, l, self.name())
    }
}

/// `h <- a(h)` in place, the activation alone, `f32` / `f64` CPU, contiguous `h`. Only for a value that nothing
/// else reads or shares storage with (a fresh layer output read by this activation alone): candle does not
/// check that.
#[derive(Clone, Copy, Debug)]
pub struct ActInPlace(pub Activation);

impl InplaceOp1 for ActInPlace {
    fn name(&self) -> &'static str {
        "walkjump-act-in-place"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("{}: the input must be contiguous", self.name());
        };
        match s {
            CpuStorage::F32(v) => with_best_simd(ActPairF32 {
                act: self.0,
                h: None,
                a: &mut v[start..end],
                d: None,
            }),
            CpuStorage::F64(v) => v[start..end]
                .iter_mut()
                .for_each(|h| *h = act_pair(self.0, *h).0),
            other => candle_core::bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        }
        Ok(())
    }
}

/// `x: [n, m, c] -> [n, groups]`: sums over `m` and over each group of `c / groups` consecutive channels, `f32` /
/// `f64` CPU, accumulated in f64; no backward (use it only on tensors that track no gradient).
#[derive(Clone, Copy, Debug)]
pub struct GroupSums(pub usize);

fn group_sums<T: Copy + Into<f64>>(x: &[T], dims: (usize, usize, usize), g: usize) -> Vec<f64> {
    let (n, m, c) = dims;
    let per = c / g;
    let mut out = vec![0f64; n * g];
    let mut chan = vec![0f64; c];
    for (i, sample) in x.chunks_exact((m * c).max(1)).enumerate().take(n) {
        chan.iter_mut().for_each(|s| *s = 0.0);
        for px in sample.chunks_exact(c) {
            for (s, &v) in chan.iter_mut().zip(px) {
                *s += v.into();
            }
        }
        for (k, s) in chan.iter().enumerate() {
            out[i * g + k / per] += s;
        }
    }
    out
}

impl CustomOp1 for GroupSums {
    fn name(&self) -> &'static str {
        "walkjump-group-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let &[n, m, c] = l.dims() else {
            candle_core::bail!("group-sums: input {:?} is not [n, m, c]", l.dims());
        };
        let g = self.0;
        if g == 0 || c == 0 || c % g != 0 {
            candle_core::bail!("group-sums: {g} groups for {c} channels");
        }
        let out = match s {
            CpuStorage::F32(v) => {
                let x = contiguous_slice(v, l, self.name())?;
                let sums = group_sums(x, (n, m, c), g);
                CpuStorage::F32(sums.into_iter().map(|v| v as f32).collect())
            }
            CpuStorage::F64(v) => {
                let x = contiguous_slice(v, l, self.name())?;
                CpuStorage::F64(group_sums(x, (n, m, c), g))
            }
            other => candle_core::bail!("group-sums: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, Shape::from((n, g))))
    }
}

/// Whether the fused kernels apply to `t`: CPU `f32` / `f64` and no gradient to track through it.
pub fn fused_path(t: &Tensor) -> bool {
    super::cpu_fast_path(t) && !t.track_op()
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// The vectorisable `tanh` and `ln(1 + z)` stay within a few f32 ulp of the f64 functions, relative to the
    /// value, from 1e-8 to past where tanh saturates (including the switch at 0.625); NaN stays NaN.
    #[test]
    fn tanh_and_ln_1p_are_accurate_in_relative_terms() {
        let mut x = 1e-8_f64;
        while x < 30.0 {
            for v in [x, -x] {
                let got = tanh_f32(v as f32) as f64;
                let want = (v as f32 as f64).tanh();
                assert!(
                    (got - want).abs() <= 3e-7 * want.abs(),
                    "tanh({v}): {got} vs {want}"
                );
            }
            if x <= 1.0 {
                let got = ln_1p_unit_f32(x as f32) as f64;
                let want = (x as f32 as f64).ln_1p();
                assert!(
                    (got - want).abs() <= 3e-7 * want,
                    "ln_1p({x}): {got} vs {want}"
                );
            }
            x *= 1.013;
        }
        for v in [0.625_f32, -0.625, 1.0, 0.0] {
            let got = tanh_f32(v) as f64;
            let want = (v as f64).tanh();
            assert!(
                (got - want).abs() <= 3e-7 * want.abs(),
                "tanh({v}): {got} vs {want}"
            );
        }
        assert!(tanh_f32(f32::NAN).is_nan());
        let ln2 = ln_1p_unit_f32(1.0) as f64;
        assert!(
            (ln2 - std::f64::consts::LN_2).abs() <= 3e-7 * std::f64::consts::LN_2,
            "{ln2}"
        );
    }

    /// The fused pair equals the differentiable candle expressions (what training uses) for every activation, in
    /// f32 and f64; the group sums equal candle's reduction.
    #[test]
    fn fused_kernels_match_the_candle_expressions() {
        let xs: Vec<f32> = (0..401).map(|i| (i as f32 - 200.0) / 37.0).collect();
        for act in [
            Activation::Silu,
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::Elu(1.3),
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Softplus(2.0),
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Erf,
        ] {
            for dtype in [candle_core::DType::F32, candle_core::DType::F64] {
                let h = Tensor::new(xs.as_slice(), &Device::Cpu)
                    .and_then(|t| t.to_dtype(dtype))
                    .expect("h");
                // A variable tracks gradients, so `apply` takes the candle-expression path.
                let var = Var::from_tensor(&h).expect("var");
                let (a0, d0) = act.apply(var.as_tensor()).expect("generic");
                let pair = h.apply_op1_no_bwd(&ActPair(act)).expect("fused");
                let tol = if dtype == candle_core::DType::F32 {
                    2e-6
                } else {
                    1e-12
                };
                for (got, want) in [(pair.get(0).expect("a"), a0), (pair.get(1).expect("d"), d0)] {
                    let err = (got.to_dtype(candle_core::DType::F64).expect("g")
                        - want.to_dtype(candle_core::DType::F64).expect("w"))
                    .and_then(|e| e.abs())
                    .and_then(|e| e.max_all())
                    .and_then(|e| e.to_scalar::<f64>())
                    .expect("err");
                    assert!(err < tol, "{act:?} {dtype:?}: {err}");
                }
            }
        }
        let x = Tensor::new(xs[..2 * 5 * 6].to_vec(), &Device::Cpu)
            .and_then(|t| t.reshape((2, 5, 6)))
            .expect("x");
        let sums = x.apply_op1_no_bwd(&GroupSums(3)).expect("sums");
        let want = x
            .reshape((2, 5, 3, 2))
            .and_then(|t| t.sum((1, 3)))
            .expect("want");
        let err = (sums - want)
            .and_then(|e| e.abs())
            .and_then(|e| e.max_all())
            .and_then(|e| e.to_scalar::<f32>())
            .expect("err");
        assert!(err < 1e-5, "group sums: {err}");
    }
}
