//! Average pooling and nearest upsampling of channels-last images, and their VJPs, as direct loops for the
//! sampling path (candle's strided two-axis reductions over reshaped views are several times slower). No backward:
//! use them only on tensors that track no gradient ([`super::fused_path`]).

use candle_core::{DType, Tensor, WithDType};

use crate::simd::on_slice;

/// `x: [n, h, w, c] -> [n, h / kh, w / kw, c]`, the mean of each `kh x kw` window (rows and columns past the last
/// whole window are dropped, as PyTorch's `AvgPool2d` does).
pub fn avg_pool_nhwc(x: &Tensor, kh: usize, kw: usize) -> candle_core::Result<Tensor> {
    let x = x.contiguous()?;
    let (n, h, w, c) = x.dims4()?;
    if kh == 0 || kw == 0 || kh > h || kw > w {
        candle_core::bail!("avg-pool kernel: window {kh}x{kw} on a {h}x{w} image");
    }
    pooled(&x, (n, h, w, c, kh, kw), 1.0 / (kh * kw) as f64)
}

/// The VJP of [`avg_pool_nhwc`]: `g: [n, h / kh, w / kw, c] -> [n, h, w, c]`, each window's gradient spread
/// evenly over it, zero on the dropped rows and columns.
pub fn avg_pool_nhwc_vjp(
    g: &Tensor,
    kh: usize,
    kw: usize,
    h: usize,
    w: usize,
) -> candle_core::Result<Tensor> {
    let g = g.contiguous()?;
    let (n, oh, ow, c) = g.dims4()?;
    if kh == 0 || kw == 0 || oh != h / kh || ow != w / kw {
        candle_core::bail!(
            "avg-pool kernel: gradient {oh}x{ow} does not fit window {kh}x{kw} on {h}x{w}"
        );
    }
    spread_out(&g, (n, h, w, c, kh, kw), 1.0 / (kh * kw) as f64)
}

/// Nearest-neighbour upsampling by an integer factor: `x: [n, h, w, c] -> [n, h s, w s, c]`.
pub fn upsample_nhwc(x: &Tensor, s: usize) -> candle_core::Result<Tensor> {
    let x = x.contiguous()?;
    let (n, h, w, c) = x.dims4()?;
    if s == 0 {
        candle_core::bail!("upsample kernel: factor 0");
    }
    spread_out(&x, (n, h * s, w * s, c, s, s), 1.0)
}

/// The VJP of [`upsample_nhwc`]: `g: [n, h s, w s, c] -> [n, h, w, c]`, the sum over each `s x s` block.
pub fn upsample_nhwc_vjp(g: &Tensor, s: usize) -> candle_core::Result<Tensor> {
    let g = g.contiguous()?;
    let (n, h, w, c) = g.dims4()?;
    if s == 0 || h % s != 0 || w % s != 0 {
        candle_core::bail!("upsample kernel: gradient {h}x{w} is not a multiple of {s}");
    }
    pooled(&g, (n, h, w, c, s, s), 1.0)
}

/// `scale` times the sum over each `kh x kw` window of a contiguous `[n, h, w, c]`.
fn pooled(x: &Tensor, dims: Dims, scale: f64) -> candle_core::Result<Tensor> {
    let (n, h, w, c, kh, kw) = dims;
    let out = (n, h / kh, w / kw, c);
    match x.dtype() {
        DType::F32 => {
            let v = on_slice::<f32, _>(x, |xs| pool(xs, dims, scale))?;
            Tensor::from_vec(v, out, x.device())
        }
        DType::F64 => {
            let v = on_slice::<f64, _>(x, |xs| pool(xs, dims, scale))?;
            Tensor::from_vec(v, out, x.device())
        }
        other => candle_core::bail!("pool kernel: unsupported dtype {other:?}"),
    }
}

/// Each pixel of a contiguous `[n, h / kh, w / kw, c]`, times `scale`, over its window of an `[n, h, w, c]`.
fn spread_out(g: &Tensor, dims: Dims, scale: f64) -> candle_core::Result<Tensor> {
    let (n, h, w, c, _, _) = dims;
    match g.dtype() {
        DType::F32 => {
            let v = on_slice::<f32, _>(g, |gs| spread(gs, dims, scale))?;
            Tensor::from_vec(v, (n, h, w, c), g.device())
        }
        DType::F64 => {
            let v = on_slice::<f64, _>(g, |gs| spread(gs, dims, scale))?;
            Tensor::from_vec(v, (n, h, w, c), g.device())
        }
        other => candle_core::bail!("pool kernel: unsupported dtype {other:?}"),
    }
}

type Dims = (usize, usize, usize, usize, usize, usize);

fn pool<T: WithDType>(xs: &[T], (n, h, w, c, kh, kw): Dims, scale: f64) -> Vec<T> {
    let (oh, ow) = (h / kh, w / kw);
    let scale = T::from_f64(scale);
    let mut out = vec![T::zero(); n * oh * ow * c];
    for (i, o) in out
        .chunks_exact_mut((oh * ow * c).max(1))
        .enumerate()
        .take(n)
    {
        for oy in 0..oh {
            let orow = &mut o[oy * ow * c..(oy + 1) * ow * c];
            for ky in 0..kh {
                let y = oy * kh + ky;
                let row = &xs[((i * h + y) * w) * c..((i * h + y) * w + ow * kw) * c];
                for (opx, win) in orow.chunks_exact_mut(c).zip(row.chunks_exact(kw * c)) {
                    for px in win.chunks_exact(c) {
                        for (o, &v) in opx.iter_mut().zip(px) {
                            *o += v;
                        }
                    }
                }
            }
            if scale != T::one() {
                for v in orow.iter_mut() {
                    *v *= scale;
                }
            }
        }
    }
    out
}

fn spread<T: WithDType>(gs: &[T], (n, h, w, c, kh, kw): Dims, scale: f64) -> Vec<T> {
    let (oh, ow) = (h / kh, w / kw);
    let scale = T::from_f64(scale);
    let mut out = vec![T::zero(); n * h * w * c];
    for (i, o) in out.chunks_exact_mut((h * w * c).max(1)).enumerate().take(n) {
        for oy in 0..oh {
            let grow = &gs[((i * oh + oy) * ow) * c..((i * oh + oy + 1) * ow) * c];
            for ky in 0..kh {
                let y = oy * kh + ky;
                let row = &mut o[y * w * c..(y * w + ow * kw) * c];
                for (win, gpx) in row.chunks_exact_mut(kw * c).zip(grow.chunks_exact(c)) {
                    for px in win.chunks_exact_mut(c) {
                        for (o, &g) in px.iter_mut().zip(gpx) {
                            *o = g * scale;
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// Pooling is the mean of each window and its VJP the adjoint (`<pool(x), g> = <x, vjp(g)>`), for a square, a
    /// cropping and a global window; upsampling copies pixels and its VJP is its adjoint.
    #[test]
    fn pool_is_the_window_mean_and_spread_its_adjoint() {
        let (n, h, w, c) = (2, 5, 7, 3);
        let xs: Vec<f64> = (0..n * h * w * c)
            .map(|i| ((i * 37 % 101) as f64) / 10.0 - 5.0)
            .collect();
        let x = Tensor::from_vec(xs.clone(), (n, h, w, c), &Device::Cpu).expect("x");
        for (kh, kw) in [(2, 2), (2, 3), (h, w)] {
            let y = avg_pool_nhwc(&x, kh, kw).expect("pool");
            let (oh, ow) = (h / kh, w / kw);
            assert_eq!(y.dims(), [n, oh, ow, c]);
            let yv = y.flatten_all().and_then(|t| t.to_vec1::<f64>()).expect("y");
            for i in 0..n {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for ch in 0..c {
                            let mut s = 0.0;
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    s += xs[((i * h + oy * kh + ky) * w + ox * kw + kx) * c + ch];
                                }
                            }
                            let got = yv[((i * oh + oy) * ow + ox) * c + ch];
                            assert!((got - s / (kh * kw) as f64).abs() < 1e-12, "{kh}x{kw}");
                        }
                    }
                }
            }
            let gs: Vec<f64> = (0..yv.len())
                .map(|i| ((i * 13 % 17) as f64) - 8.0)
                .collect();
            let g = Tensor::from_vec(gs.clone(), (n, oh, ow, c), &Device::Cpu).expect("g");
            let gx = avg_pool_nhwc_vjp(&g, kh, kw, h, w).expect("vjp");
            let gxv = gx
                .flatten_all()
                .and_then(|t| t.to_vec1::<f64>())
                .expect("gx");
            let lhs: f64 = yv.iter().zip(&gs).map(|(a, b)| a * b).sum();
            let rhs: f64 = xs.iter().zip(&gxv).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() < 1e-9 * (1.0 + lhs.abs()),
                "{kh}x{kw}: {lhs} vs {rhs}"
            );
        }
        // Upsampling copies each pixel over its block; its VJP sums each block back (the adjoint).
        let up = upsample_nhwc(&x, 2).expect("up");
        assert_eq!(up.dims(), [n, 2 * h, 2 * w, c]);
        let upv = up
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("up");
        for (k, v) in upv.iter().enumerate() {
            let (ch, px) = (k % c, k / c);
            let (xx, yy, i) = (px % (2 * w), (px / (2 * w)) % (2 * h), px / (4 * h * w));
            assert_eq!(*v, xs[((i * h + yy / 2) * w + xx / 2) * c + ch]);
        }
        let gs: Vec<f64> = (0..upv.len())
            .map(|i| ((i * 7 % 23) as f64) - 11.0)
            .collect();
        let g = Tensor::from_vec(gs.clone(), (n, 2 * h, 2 * w, c), &Device::Cpu).expect("g");
        let gx = upsample_nhwc_vjp(&g, 2)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .expect("gx");
        let lhs: f64 = upv.iter().zip(&gs).map(|(a, b)| a * b).sum();
        let rhs: f64 = xs.iter().zip(&gx).map(|(a, b)| a * b).sum();
        assert!(
            (lhs - rhs).abs() < 1e-9 * (1.0 + lhs.abs()),
            "upsample: {lhs} vs {rhs}"
        );
    }
}
