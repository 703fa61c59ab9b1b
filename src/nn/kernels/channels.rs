//! Channels-first <-> channels-last copies of image batches for the sampling path, as one blocked transpose per
//! sample (candle's general strided copy of a 4-D permutation is several times slower). No backward: use them only
//! on tensors that track no gradient ([`super::fused_path`]).

use candle_core::{DType, Tensor, WithDType};

use crate::simd::on_slice;

/// `x: [n, c h w]` (or any shape of `n c h w` values, channels-first) `-> [n, h, w, c]`.
pub fn to_channels_last(
    x: &Tensor,
    (c, h, w): (usize, usize, usize),
) -> candle_core::Result<Tensor> {
    let x = x.contiguous()?;
    let n = x.dim(0)?;
    if x.elem_count() != n * c * h * w {
        candle_core::bail!(
            "channels-last copy: {:?} is not {n} images of {c}x{h}x{w}",
            x.dims()
        );
    }
    transposed(&x, n, c, h * w, (n, h, w, c))
}

/// `x: [n, h, w, c] -> [n, c h w]` (channels-first, flat).
pub fn to_channels_first(x: &Tensor) -> candle_core::Result<Tensor> {
    let x = x.contiguous()?;
    let (n, h, w, c) = x.dims4()?;
    transposed(&x, n, h * w, c, (n, c * h * w))
}

/// Each sample's `[rows, cols]` matrix transposed to `[cols, rows]`, shaped `out`.
fn transposed<S: candle_core::shape::ShapeWithOneHole>(
    x: &Tensor,
    n: usize,
    rows: usize,
    cols: usize,
    out: S,
) -> candle_core::Result<Tensor> {
    match x.dtype() {
        DType::F32 => {
            let v = on_slice::<f32, _>(x, |xs| transpose_each(xs, n, rows, cols))?;
            Tensor::from_vec(v, out, x.device())
        }
        DType::F64 => {
            let v = on_slice::<f64, _>(x, |xs| transpose_each(xs, n, rows, cols))?;
            Tensor::from_vec(v, out, x.device())
        }
        other => candle_core::bail!("channels copy: unsupported dtype {other:?}"),
    }
}

/// Tile edge of the blocked transpose: a 16 x 16 tile of `f32` is 1 KiB, in L1 for both the reads and the writes.
const TILE: usize = 16;

fn transpose_each<T: WithDType>(xs: &[T], n: usize, rows: usize, cols: usize) -> Vec<T> {
    let size = rows * cols;
    let mut out = vec![T::zero(); n * size];
    if size == 0 {
        return out;
    }
    for (src, dst) in xs
        .chunks_exact(size)
        .zip(out.chunks_exact_mut(size))
        .take(n)
    {
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (0..cols).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    for col in c0..(c0 + TILE).min(cols) {
                        dst[col * rows + r] = src[r * cols + col];
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

    /// Both copies equal candle's permutations, for a thin (3-channel) and a wide (40-channel) image, and undo
    /// each other.
    #[test]
    fn copies_equal_candle_permutes_and_invert_each_other() {
        for (c, h, w) in [(3, 5, 7), (40, 3, 2)] {
            let n = 2;
            let xs: Vec<f32> = (0..n * c * h * w).map(|i| i as f32 * 0.5 - 7.0).collect();
            let x = Tensor::from_vec(xs, (n, c * h * w), &Device::Cpu).expect("x");
            let last = to_channels_last(&x, (c, h, w)).expect("last");
            let want = x
                .reshape((n, c, h, w))
                .and_then(|t| t.permute((0, 2, 3, 1)))
                .and_then(|t| t.contiguous())
                .expect("want");
            assert_eq!(last.dims(), want.dims());
            let diff = (&last - &want)
                .and_then(|d| d.abs())
                .and_then(|d| d.max_all());
            assert_eq!(diff.and_then(|d| d.to_scalar::<f32>()).expect("diff"), 0.0);
            let back = to_channels_first(&last).expect("first");
            let diff = (&back - &x).and_then(|d| d.abs()).and_then(|d| d.max_all());
            assert_eq!(diff.and_then(|d| d.to_scalar::<f32>()).expect("diff"), 0.0);
        }
    }
}
