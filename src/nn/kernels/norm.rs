//! Group normalisation (and layer normalisation, one group of flat features) of channels-last values as two CPU
//! kernels for the sampling path: the forward pass reads the input twice for its statistics and once more to
//! write `gamma xhat + beta`, and the VJP reads the upstream gradient and the input twice. The candle expressions
//! they replace walk the tensor about eight times each way and allocate as often. Statistics are accumulated in
//! `f64`. No backward: use them only on tensors that track no gradient ([`super::fused_path`]).

use candle_core::{DType, Tensor, WithDType};

use super::{SimdKernel, with_best_simd};
use crate::simd::on_slice;

/// Per sample and group `(mean, 1 / sqrt(var + eps))` of a normalised value, kept by the forward pass for the VJP:
/// `[n * groups]` pairs, sample-major.
#[derive(Clone, Debug)]
pub struct NormStats(Vec<(f64, f64)>);

/// Checks `x: [n, m, c]` (`m` pixels of `c` channels; `[n, 1, d]` for flat features) against `groups` and the
/// per-channel vectors, returning `(n, m, c)`.
fn dims(x: &Tensor, groups: usize, gamma: &Tensor) -> candle_core::Result<(usize, usize, usize)> {
    let (n, m, c) = x.dims3()?;
    if groups == 0 || c % groups != 0 || gamma.elem_count() != c {
        candle_core::bail!(
            "group-norm kernel: {groups} groups, {} scales for {c} channels",
            gamma.elem_count()
        );
    }
    Ok((n, m, c))
}

/// `x: [n, m, c] -> (y: [n, m, c], stats)` with `y = gamma (x - mean_g) / sqrt(var_g + eps) + beta`, statistics
/// over the `m` pixels and `c / groups` channels of each group, per sample. `gamma`, `beta`: `[c]`.
pub fn group_norm_forward(
    x: &Tensor,
    groups: usize,
    eps: f64,
    gamma: &Tensor,
    beta: &Tensor,
) -> candle_core::Result<(Tensor, NormStats)> {
    let x = x.contiguous()?;
    let (n, m, c) = dims(&x, groups, gamma)?;
    let gamma = gamma.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let beta = beta.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let shape = (n, m, c);
    let (y, stats) = match x.dtype() {
        DType::F32 => {
            let (y, s) =
                on_slice::<f32, _>(&x, |xs| forward(xs, shape, groups, eps, &gamma, &beta))?;
            (Tensor::from_vec(y, shape, x.device())?, s)
        }
        DType::F64 => {
            let (y, s) =
                on_slice::<f64, _>(&x, |xs| forward(xs, shape, groups, eps, &gamma, &beta))?;
            (Tensor::from_vec(y, shape, x.device())?, s)
        }
        other => candle_core::bail!("group-norm kernel: unsupported dtype {other:?}"),
    };
    Ok((y, NormStats(stats)))
}

/// The VJP of [`group_norm_forward`] with respect to `x`: `g: [n, m, c] -> [n, m, c]`,
/// `gx = inv (g gamma - mean_g(g gamma) - xhat mean_g(g gamma xhat))`.
pub fn group_norm_vjp(
    g: &Tensor,
    x: &Tensor,
    stats: &NormStats,
    groups: usize,
    gamma: &Tensor,
) -> candle_core::Result<Tensor> {
    let (g, x) = (g.contiguous()?, x.contiguous()?);
    let (n, m, c) = dims(&x, groups, gamma)?;
    if g.dims() != x.dims() || g.dtype() != x.dtype() || stats.0.len() != n * groups {
        candle_core::bail!("group-norm kernel: gradient or statistics do not match the value");
    }
    let gamma = gamma.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let shape = (n, m, c);
    let st = &stats.0;
    match x.dtype() {
        DType::F32 => {
            let gx = on_slice::<f32, _>(&g, |gs| {
                on_slice::<f32, _>(&x, |xs| vjp(gs, xs, shape, groups, st, &gamma))
            })??;
            Tensor::from_vec(gx, shape, x.device())
        }
        DType::F64 => {
            let gx = on_slice::<f64, _>(&g, |gs| {
                on_slice::<f64, _>(&x, |xs| vjp(gs, xs, shape, groups, st, &gamma))
            })??;
            Tensor::from_vec(gx, shape, x.device())
        }
        other => candle_core::bail!("group-norm kernel: unsupported dtype {other:?}"),
    }
}

/// `out[p][k] = x[p][k] a[k] + b[k]` (+ `g[p][k] ga[k]` when given), pixel by pixel: the one pass that writes.
struct PerChannel<'a, T> {
    x: &'a [T],
    a: &'a [T],
    b: &'a [T],
    g: Option<(&'a [T], &'a [T])>,
    out: &'a mut [T],
}

impl<T: WithDType> SimdKernel for PerChannel<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let c = self.a.len();
        match self.g {
            None => {
                for (o, x) in self.out.chunks_exact_mut(c).zip(self.x.chunks_exact(c)) {
                    for (((o, &x), &a), &b) in o.iter_mut().zip(x).zip(self.a).zip(self.b) {
                        *o = x * a + b;
                    }
                }
            }
            Some((g, ga)) => {
                let rows = self.out.chunks_exact_mut(c).zip(self.x.chunks_exact(c));
                for ((o, x), g) in rows.zip(g.chunks_exact(c)) {
                    for ((((o, &x), &g), &a), (&b, &ga)) in o
                        .iter_mut()
                        .zip(x)
                        .zip(g)
                        .zip(self.a)
                        .zip(self.b.iter().zip(ga))
                    {
                        *o = g * ga + x * a + b;
                    }
                }
            }
        }
    }
}

/// Per-channel sums of `f(x)` (and of `f2(g, x)`) over the pixels of one sample, in f64.
fn channel_sums<T: WithDType>(xs: &[T], c: usize, sums: &mut [f64], f: impl Fn(usize, f64) -> f64) {
    sums.iter_mut().for_each(|s| *s = 0.0);
    for px in xs.chunks_exact(c) {
        for (k, (s, &v)) in sums.iter_mut().zip(px).enumerate() {
            *s += f(k, v.to_f64());
        }
    }
}

/// Sum of `f(x)` over a run in f64, with eight partial sums side by side (one running sum waits on the latency
/// of each add and cannot be vectorised).
#[inline(always)]
fn lane_sum<T: WithDType>(xs: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v.to_f64())).sum();
    for ch in chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += f(v.to_f64());
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Sums of consecutive runs of `per` channels.
fn group_totals(sums: &[f64], per: usize) -> impl Iterator<Item = f64> + '_ {
    sums.chunks_exact(per).map(|s| lane_sum(s, |v| v))
}

type Shape3 = (usize, usize, usize);

fn forward<T: WithDType>(
    xs: &[T],
    (n, m, c): Shape3,
    groups: usize,
    eps: f64,
    gamma: &[f64],
    beta: &[f64],
) -> (Vec<T>, Vec<(f64, f64)>) {
    let per = c / groups;
    let count = (m * per).max(1) as f64;
    let mut out = vec![T::zero(); n * m * c];
    let mut stats = Vec::with_capacity(n * groups);
    let (mut sums, mut mu) = (vec![0f64; c], vec![0f64; c]);
    let (mut a, mut b) = (vec![T::zero(); c], vec![T::zero(); c]);
    let size = (m * c).max(1);
    for (x, o) in xs
        .chunks_exact(size)
        .zip(out.chunks_exact_mut(size))
        .take(n)
    {
        // Flat features (layer norm, m = 1): each group is one run of the sample; images sum per channel first.
        let means: Vec<f64> = if m == 1 {
            x.chunks_exact(per)
                .map(|r| lane_sum(r, |v| v) / count)
                .collect()
        } else {
            channel_sums(x, c, &mut sums, |_, v| v);
            group_totals(&sums, per).map(|s| s / count).collect()
        };
        for (mu, &mean) in mu.chunks_exact_mut(per).zip(&means) {
            mu.fill(mean);
        }
        let squares: Vec<f64> = if m == 1 {
            let runs = x.chunks_exact(per).zip(&means);
            runs.map(|(r, &mean)| lane_sum(r, |v| (v - mean) * (v - mean)))
                .collect()
        } else {
            channel_sums(x, c, &mut sums, |k, v| (v - mu[k]) * (v - mu[k]));
            group_totals(&sums, per).collect()
        };
        let first = stats.len();
        for (mean, ss) in means.iter().zip(squares) {
            stats.push((*mean, 1.0 / (ss / count + eps).sqrt()));
        }
        let runs = a.chunks_exact_mut(per).zip(b.chunks_exact_mut(per));
        let params = gamma.chunks_exact(per).zip(beta.chunks_exact(per));
        for (((a, b), (gamma, beta)), &(mean, inv)) in runs.zip(params).zip(&stats[first..]) {
            for (((a, b), &gamma), &beta) in a.iter_mut().zip(b.iter_mut()).zip(gamma).zip(beta) {
                let scale = gamma * inv;
                *a = T::from_f64(scale);
                *b = T::from_f64(beta - mean * scale);
            }
        }
        let (a, b) = (a.as_slice(), b.as_slice());
        with_best_simd(PerChannel {
            x,
            a,
            b,
            g: None,
            out: o,
        });
    }
    (out, stats)
}

fn vjp<T: WithDType>(
    gs: &[T],
    xs: &[T],
    (n, m, c): Shape3,
    groups: usize,
    stats: &[(f64, f64)],
    gamma: &[f64],
) -> Vec<T> {
    let per = c / groups;
    let count = (m * per).max(1) as f64;
    let mut out = vec![T::zero(); n * m * c];
    let (mut s1, mut s2, mut mu) = (vec![0f64; c], vec![0f64; c], vec![0f64; c]);
    let (mut ga, mut a, mut b) = (vec![T::zero(); c], vec![T::zero(); c], vec![T::zero(); c]);
    let size = (m * c).max(1);
    let blocks = gs.chunks_exact(size).zip(xs.chunks_exact(size));
    for (i, ((g, x), o)) in blocks.zip(out.chunks_exact_mut(size)).take(n).enumerate() {
        let st = &stats[i * groups..(i + 1) * groups];
        // s1_k = sum_p g, s2_k = sum_p g (x - mean): one pass over both.
        s1.iter_mut().chain(s2.iter_mut()).for_each(|s| *s = 0.0);
        for (mu, &(mean, _)) in mu.chunks_exact_mut(per).zip(st) {
            mu.fill(mean);
        }
        for (gp, xp) in g.chunks_exact(c).zip(x.chunks_exact(c)) {
            let sums = s1.iter_mut().zip(s2.iter_mut()).zip(&mu);
            for (((s1, s2), &mu), (&gv, &xv)) in sums.zip(gp.iter().zip(xp)) {
                let gv = gv.to_f64();
                *s1 += gv;
                *s2 += gv * (xv.to_f64() - mu);
            }
        }
        for (j, &(mean, inv)) in st.iter().enumerate() {
            let ks = j * per..(j + 1) * per;
            let m1: f64 = ks.clone().map(|k| gamma[k] * s1[k]).sum::<f64>() / count;
            let m2: f64 = ks.clone().map(|k| gamma[k] * s2[k]).sum::<f64>() * inv / count;
            // gx = g (gamma inv) + x (-inv^2 m2) + (mean inv^2 m2 - inv m1)
            for k in ks {
                ga[k] = T::from_f64(gamma[k] * inv);
                a[k] = T::from_f64(-inv * inv * m2);
                b[k] = T::from_f64(mean * inv * inv * m2 - inv * m1);
            }
        }
        let (a, b, ga) = (a.as_slice(), b.as_slice(), ga.as_slice());
        with_best_simd(PerChannel {
            x,
            a,
            b,
            g: Some((g, ga)),
            out: o,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// A deterministic spread of values in about [-2, 2].
    fn values(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| {
                let k = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
                ((k >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
            })
            .collect()
    }

    /// `y` of the definition, in f64, for `x: [n][m][c]` flattened.
    fn reference(
        x: &[f64],
        (n, m, c): Shape3,
        groups: usize,
        eps: f64,
        gamma: &[f64],
        beta: &[f64],
    ) -> Vec<f64> {
        let per = c / groups;
        let mut y = vec![0.0; x.len()];
        for i in 0..n {
            for j in 0..groups {
                let at = |p: usize, k: usize| i * m * c + p * c + j * per + k;
                let vals: Vec<f64> = (0..m)
                    .flat_map(|p| (0..per).map(move |k| (p, k)))
                    .map(|(p, k)| x[at(p, k)])
                    .collect();
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                let var =
                    vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / vals.len() as f64;
                for p in 0..m {
                    for k in 0..per {
                        let ch = j * per + k;
                        y[at(p, k)] =
                            gamma[ch] * (x[at(p, k)] - mean) / (var + eps).sqrt() + beta[ch];
                    }
                }
            }
        }
        y
    }

    /// Forward against the definition, and the VJP against central finite differences of `<g, y(x)>`, for images
    /// with several groups and flat features with one, in f64 and f32.
    #[test]
    fn kernels_match_the_definition_and_finite_differences() {
        let dev = Device::Cpu;
        for (shape, groups) in [((3, 5, 6), 3), ((2, 4, 8), 1), ((4, 1, 7), 1)] {
            let (n, m, c) = shape;
            let len = n * m * c;
            let (x, g) = (values(len, 1), values(len, 2));
            let gamma: Vec<f64> = values(c, 3).iter().map(|v| 1.0 + 0.3 * v).collect();
            let beta = values(c, 4);
            let eps = 1e-5;
            let t = |v: &[f64], dims: &[usize]| {
                Tensor::from_vec(v.to_vec(), dims, &dev).expect("tensor")
            };
            let (gt, bt) = (t(&gamma, &[c]), t(&beta, &[c]));
            let (y, stats) =
                group_norm_forward(&t(&x, &[n, m, c]), groups, eps, &gt, &bt).expect("forward");
            let y = y.flatten_all().and_then(|y| y.to_vec1::<f64>()).expect("y");
            let want = reference(&x, shape, groups, eps, &gamma, &beta);
            let err = y
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "{shape:?}: forward differs by {err}");

            let gx = group_norm_vjp(&t(&g, &[n, m, c]), &t(&x, &[n, m, c]), &stats, groups, &gt)
                .and_then(|v| v.flatten_all())
                .and_then(|v| v.to_vec1::<f64>())
                .expect("vjp");
            let h = 1e-6;
            for idx in (0..len).step_by(5) {
                let dot = |delta: f64| {
                    let mut xp = x.clone();
                    xp[idx] += delta;
                    reference(&xp, shape, groups, eps, &gamma, &beta)
                        .iter()
                        .zip(&g)
                        .map(|(y, g)| y * g)
                        .sum::<f64>()
                };
                let fd = (dot(h) - dot(-h)) / (2.0 * h);
                assert!(
                    (gx[idx] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{shape:?}[{idx}]: {} vs {fd}",
                    gx[idx]
                );
            }

            // f32 data gives the same within f32 rounding.
            let t32 = |v: &[f64], dims: &[usize]| t(v, dims).to_dtype(DType::F32).expect("f32");
            let (y32, st32) = group_norm_forward(&t32(&x, &[n, m, c]), groups, eps, &gt, &bt)
                .expect("forward f32");
            let y32 = y32
                .to_dtype(DType::F64)
                .and_then(|y| y.flatten_all())
                .and_then(|y| y.to_vec1::<f64>())
                .expect("y32");
            let err = y32
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-5, "{shape:?}: f32 forward differs by {err}");
            let gx32 = group_norm_vjp(
                &t32(&g, &[n, m, c]),
                &t32(&x, &[n, m, c]),
                &st32,
                groups,
                &gt,
            )
            .and_then(|v| v.to_dtype(DType::F64))
            .and_then(|v| v.flatten_all())
            .and_then(|v| v.to_vec1::<f64>())
            .expect("vjp f32");
            let err = gx32
                .iter()
                .zip(&gx)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-4, "{shape:?}: f32 vjp differs by {err}");
        }
    }
}
