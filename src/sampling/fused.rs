//! The samplers' elementwise arithmetic in one pass on the CPU: a linear combination of same-shaped tensors
//! ([`lincomb`], each update of §6 is one or two of them) and per-row norms ([`row_norms`], the divergence check
//! and statistics of every step). As candle expressions each term and each norm is a pass over the whole batch with
//! its own allocation, which at 64 chains cost a small network about a quarter of its walk-jump step. Elsewhere
//! (GPU, other dtypes) both fall back to the candle expressions.

use candle_core::{D, DType, Storage, Tensor, WithDType};

use super::Result;
use crate::simd::on_slice;

/// Independent partial sums per row in [`row_norms`].
const LANES: usize = 8;

/// Elements per block of [`lincomb`]: the running sum stays in L1 while each term is added.
const BLOCK: usize = 2048;

/// Whether the one-pass kernels apply to `t`: CPU `f32` / `f64`, no gradient to track.
fn fast(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64) && !t.track_op()
}

/// `sum_k c_k t_k` for tensors of one shape and dtype (at least one term). The sum runs left to right, each
/// coefficient cast to the tensors' dtype first, so a coefficient of 1 adds its tensor exactly.
pub fn lincomb(terms: &[(&Tensor, f64)]) -> Result<Tensor> {
    let Some(&(first, _)) = terms.first() else {
        return Err(super::Error::Param(
            "a linear combination needs a term".into(),
        ));
    };
    let same = terms
        .iter()
        .all(|(t, _)| fast(t) && t.dtype() == first.dtype() && t.shape() == first.shape());
    if !same {
        let mut acc = (first * terms[0].1)?;
        for &(t, c) in &terms[1..] {
            acc = (acc + (t * c)?)?;
        }
        return Ok(acc);
    }
    let parts: Vec<Tensor> = terms
        .iter()
        .map(|(t, _)| t.contiguous())
        .collect::<candle_core::Result<_>>()?;
    let coefs: Vec<f64> = terms.iter().map(|&(_, c)| c).collect();
    let out = match first.dtype() {
        DType::F32 => Tensor::from_vec(
            combine::<f32>(&parts, &coefs)?,
            first.shape(),
            first.device(),
        ),
        _ => Tensor::from_vec(
            combine::<f64>(&parts, &coefs)?,
            first.shape(),
            first.device(),
        ),
    }?;
    Ok(out)
}

/// The data of each part (contiguous CPU tensors of `T`, all of one length) combined block by block.
fn combine<T: WithDType>(parts: &[Tensor], coefs: &[f64]) -> candle_core::Result<Vec<T>> {
    let guards: Vec<_> = parts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices: Vec<&[T]> = Vec::with_capacity(parts.len());
    for (storage, layout) in &guards {
        let Storage::Cpu(cpu) = &**storage else {
            candle_core::bail!("lincomb: a term is not on the CPU");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("lincomb: a term is not contiguous");
        };
        slices.push(&T::cpu_storage_as_slice(cpu)?[start..end]);
    }
    let len = slices[0].len();
    if slices.iter().any(|s| s.len() != len) {
        candle_core::bail!("lincomb: terms differ in length");
    }
    let coefs: Vec<T> = coefs.iter().map(|&c| T::from_f64(c)).collect();
    let mut out = vec![T::zero(); len];
    for (b, acc) in out.chunks_mut(BLOCK).enumerate() {
        let range = b * BLOCK..b * BLOCK + acc.len();
        for (o, &x) in acc.iter_mut().zip(&slices[0][range.clone()]) {
            *o = x * coefs[0];
        }
        for (s, &c) in slices.iter().zip(&coefs).skip(1) {
            for (o, &x) in acc.iter_mut().zip(&s[range.clone()]) {
                *o += x * c;
            }
        }
    }
    Ok(out)
}

/// `t: [n, d] -> ||t_i||` per row, accumulated in `f64` on the CPU path.
pub fn row_norms(t: &Tensor) -> Result<Vec<f32>> {
    if !(fast(t) && t.rank() == 2) {
        return Ok(t.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec1::<f32>()?);
    }
    let t = t.contiguous()?;
    let d = t.dim(1)?;
    fn norms<T: WithDType>(xs: &[T], d: usize) -> Vec<f32> {
        xs.chunks(d.max(1))
            .map(|row| {
                // Eight running sums, so that the adds do not wait on each other (one sum would be bound by
                // the latency of the add and cannot be vectorised).
                let mut acc = [0f64; LANES];
                let chunks = row.chunks_exact(LANES);
                let tail: f64 = chunks
                    .remainder()
                    .iter()
                    .map(|&x| x.to_f64() * x.to_f64())
                    .sum();
                for c in chunks {
                    for (a, &x) in acc.iter_mut().zip(c) {
                        let x = x.to_f64();
                        *a += x * x;
                    }
                }
                (acc.iter().sum::<f64>() + tail).sqrt() as f32
            })
            .collect()
    }
    let v = match t.dtype() {
        DType::F32 => on_slice::<f32, _>(&t, |xs| norms(xs, d))?,
        _ => on_slice::<f64, _>(&t, |xs| norms(xs, d))?,
    };
    // An empty row (d = 0) has norm 0, one per row either way.
    Ok(if d == 0 { vec![0.0; t.dim(0)?] } else { v })
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn tensor(len: usize, seed: f32) -> Tensor {
        let v: Vec<f32> = (0..len)
            .map(|i| ((i as f32 * 0.37 + seed).sin()) * 3.0)
            .collect();
        Tensor::from_vec(v, (len / 5, 5), &Device::Cpu).expect("t")
    }

    /// Equal to the candle expressions (to f32 rounding), across block edges; a coefficient of one is exact; the
    /// norms equal candle's.
    #[test]
    fn lincomb_and_norms_equal_the_candle_expressions() {
        let len = 5 * 900; // more than two blocks
        let (a, b, c) = (tensor(len, 0.0), tensor(len, 1.0), tensor(len, 2.0));
        let got = lincomb(&[(&a, 1.0), (&b, 0.25), (&c, -1.5)]).expect("fused");
        let want =
            ((&a + (&b * 0.25).expect("b")).expect("ab") + (&c * -1.5).expect("c")).expect("want");
        let err = (&got - &want)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .expect("err");
        assert!(err < 1e-5, "{err}");
        let same = lincomb(&[(&a, 1.0)]).expect("one");
        let diff = (&same - &a).and_then(|d| d.abs()).and_then(|d| d.max_all());
        assert_eq!(diff.and_then(|d| d.to_scalar::<f32>()).expect("diff"), 0.0);
        assert!(lincomb(&[]).is_err());

        let norms = row_norms(&b).expect("norms");
        let want = b
            .sqr()
            .and_then(|t| t.sum(D::Minus1))
            .and_then(|t| t.sqrt())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("want");
        assert_eq!(norms.len(), want.len());
        for (g, w) in norms.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * w.max(1.0), "{g} vs {w}");
        }
    }
}
