//! A frozen channels-last convolution for the sampling path in one pass per block of images: the block's patch
//! matrix goes into one buffer reused from block to block, and a single GEMM accumulates `patches wm^T` onto the
//! block's output rows, which already hold the bias. The candle path it replaces allocates (and zero-fills) a patch
//! matrix per block, writes the product to a fresh tensor, adds the bias in another pass and concatenates the
//! blocks in a third (with one image per block in a U-Net's wide layers, that concatenation copied every output).
//! `f32` only, no backward: use it only on tensors that track no gradient ([`super::fused_path`]).

use candle_core::{DType, Tensor};

use super::ConvGeom;
use crate::simd::on_slice;

/// `x: [n, h, w, c_in] -> [n, oh, ow, c_out]` for `g` (whose `n` is the batch), `wmt: [k k c_in, c_out]` (the
/// weight matrix transposed, contiguous), `bias: [c_out]`, in blocks of `block` images.
pub fn conv_nhwc_frozen(
    x: &Tensor,
    g: ConvGeom,
    wmt: &Tensor,
    bias: &Tensor,
    block: usize,
) -> candle_core::Result<Tensor> {
    let (kk, c_out) = wmt.dims2()?;
    let per_in = g.h * g.w * g.c;
    let per_out = g.oh * g.ow;
    if x.dtype() != DType::F32
        || x.elem_count() != g.n * per_in
        || kk != g.k * g.k * g.c
        || bias.elem_count() != c_out
    {
        candle_core::bail!(
            "frozen convolution: input {:?} / weight {:?} / bias {:?} do not match {g:?}",
            x.dims(),
            wmt.dims(),
            bias.dims()
        );
    }
    let x = x.contiguous()?;
    let (wmt, bias) = (
        wmt.contiguous()?,
        bias.to_dtype(DType::F32)?.to_vec1::<f32>()?,
    );
    let parallel = !crate::parallel::in_row_block() && rayon::current_num_threads() > 1;
    let out = on_slice::<f32, _>(&x, |xs| {
        on_slice::<f32, _>(&wmt, |w| {
            let mut out = Vec::with_capacity(g.n * per_out * c_out);
            for _ in 0..g.n * per_out {
                out.extend_from_slice(&bias);
            }
            let mut cols = Vec::new();
            let block = block.max(1);
            for b0 in (0..g.n).step_by(block) {
                let nb = block.min(g.n - b0);
                let gb = ConvGeom { n: nb, ..g };
                gb.im2col_into(&xs[b0 * per_in..(b0 + nb) * per_in], &mut cols);
                let rows = nb * per_out;
                let dst = &mut out[b0 * per_out * c_out..(b0 * per_out + rows) * c_out];
                if rows == 0 || c_out == 0 || kk == 0 {
                    continue;
                }
                // SAFETY: `cols` is `[rows, kk]` row-major, `w` is `[kk, c_out]` row-major and `dst` is the block's
                // `[rows, c_out]` row-major output; all three are live, sized as stated (checked above and by
                // `im2col_into`), and `dst` overlaps neither input.
                unsafe {
                    gemm::gemm(
                        rows,
                        c_out,
                        kk,
                        dst.as_mut_ptr(),
                        1,
                        c_out as isize,
                        true,
                        cols.as_ptr(),
                        1,
                        kk as isize,
                        w.as_ptr(),
                        1,
                        c_out as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        if parallel {
                            gemm::Parallelism::Rayon(rayon::current_num_threads())
                        } else {
                            gemm::Parallelism::None
                        },
                    );
                }
            }
            out
        })
    })??;
    Tensor::from_vec(out, (g.n, g.oh, g.ow, c_out), x.device())
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::rng::Rng;

    /// Equal to candle's channels-first `conv2d` (permuted), for strides 1 and 2, with and without padding, in
    /// blocks that do and do not divide the batch.
    #[test]
    fn frozen_convolution_equals_candle_conv2d() {
        let dev = Device::Cpu;
        let mut rng = Rng::new(21);
        let (n, c, h, w, c_out, k) = (5, 3, 7, 6, 4, 3);
        let x = Tensor::from_vec(rng.normal_vec(n * c * h * w), (n, c, h, w), &dev).expect("x");
        let weight =
            Tensor::from_vec(rng.normal_vec(c_out * c * k * k), (c_out, c, k, k), &dev).expect("w");
        let bias = Tensor::from_vec(rng.normal_vec(c_out), c_out, &dev).expect("b");
        // [c_out, ky, kx, c] flattened, transposed: [k k c, c_out].
        let wmt = weight
            .permute((0, 2, 3, 1))
            .and_then(|t| t.reshape((c_out, k * k * c)))
            .and_then(|t| t.t())
            .and_then(|t| t.contiguous())
            .expect("wmt");
        let x_nhwc = x
            .permute((0, 2, 3, 1))
            .and_then(|t| t.contiguous())
            .expect("nhwc");
        for (stride, pad, block) in [(1, 1, 2), (2, 1, 5), (1, 0, 3), (2, 0, 1)] {
            let want = x
                .conv2d(&weight, pad, stride, 1, 1)
                .and_then(|t| t.broadcast_add(&bias.reshape((1, c_out, 1, 1))?))
                .and_then(|t| t.permute((0, 2, 3, 1)))
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .expect("want");
            let (oh, ow) = (
                (h + 2 * pad - k) / stride + 1,
                (w + 2 * pad - k) / stride + 1,
            );
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
            let got = conv_nhwc_frozen(&x_nhwc, g, &wmt, &bias, block)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .expect("got");
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "stride {stride} pad {pad}: {a} vs {b}"
                );
            }
        }
        let bad = ConvGeom {
            n,
            h,
            w,
            c: 2,
            k,
            stride: 1,
            pad: 1,
            oh: h,
            ow: w,
        };
        assert!(conv_nhwc_frozen(&x_nhwc, bad, &wmt, &bias, 2).is_err());
    }
}
