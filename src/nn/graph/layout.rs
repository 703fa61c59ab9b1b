//! How image values are laid out in one pass (channels-last on the CPU kernels, channels-first elsewhere), and the
//! layout-aware pieces of the ops: flattening, upsampling, pooling, per-channel vectors, normalisation groups.

use candle_core::Tensor;

use super::ValueShape;
use crate::nn::Result;
use crate::nn::kernels::{
    GroupSums, avg_pool_nhwc, avg_pool_nhwc_vjp, fused_path, to_channels_first, to_channels_last,
    upsample_nhwc, upsample_nhwc_vjp,
};

/// How image values are laid out in one pass.
#[derive(Clone, Copy)]
pub(super) struct Layout {
    pub(super) n: usize,
    pub(super) nhwc: bool,
}

impl Layout {
    /// Flat channels-first `[N, c h w]` to this pass's layout for `shape` (flat stays flat).
    pub(super) fn image_of(self, x: &Tensor, shape: ValueShape) -> Result<Tensor> {
        match shape {
            ValueShape::Flat(_) => Ok(x.clone()),
            ValueShape::Image(c, h, w) if self.nhwc && fused_path(x) => {
                Ok(to_channels_last(x, (c, h, w))?)
            }
            ValueShape::Image(c, h, w) => {
                let x = x.reshape((self.n, c, h, w))?;
                if self.nhwc {
                    Ok(x.permute((0, 2, 3, 1))?.contiguous()?)
                } else {
                    Ok(x)
                }
            }
        }
    }

    /// An image value to flat channels-first `[N, c h w]`.
    pub(super) fn flat_of(self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 4 {
            return Ok(x.clone());
        }
        if self.nhwc && fused_path(x) {
            return Ok(to_channels_first(x)?);
        }
        let x = if self.nhwc {
            x.permute((0, 3, 1, 2))?
        } else {
            x.clone()
        };
        Ok(x.flatten_from(1)?)
    }

    /// The axis that holds channels (images) or features (flat).
    pub(super) fn feature_axis(&self, shape: ValueShape) -> usize {
        match (shape, self.nhwc) {
            (ValueShape::Flat(_), _) => 1,
            (ValueShape::Image(..), true) => 3,
            (ValueShape::Image(..), false) => 1,
        }
    }

    /// Spatial axes `(h, w)`.
    pub(super) fn spatial(&self) -> (usize, usize) {
        if self.nhwc { (1, 2) } else { (2, 3) }
    }

    pub(super) fn upsample(&self, x: &Tensor, s: usize) -> Result<Tensor> {
        if self.nhwc && x.rank() == 4 && fused_path(x) {
            return Ok(upsample_nhwc(x, s)?);
        }
        let dims = x.dims().to_vec();
        let (ah, aw) = self.spatial();
        let mut expanded = dims.clone();
        expanded.insert(aw + 1, 1);
        expanded.insert(ah + 1, 1);
        let mut target = expanded.clone();
        target[ah + 1] = s;
        target[aw + 2] = s;
        let mut out = dims;
        out[ah] *= s;
        out[aw] *= s;
        Ok(x.reshape(expanded)?
            .broadcast_as(target)?
            .contiguous()?
            .reshape(out)?)
    }

    pub(super) fn upsample_vjp(&self, g: &Tensor, s: usize) -> Result<Tensor> {
        if self.nhwc && g.rank() == 4 && fused_path(g) {
            return Ok(upsample_nhwc_vjp(g, s)?);
        }
        let dims = g.dims().to_vec();
        let (ah, aw) = self.spatial();
        let mut split = dims.clone();
        split[ah] /= s;
        split[aw] /= s;
        split.insert(aw + 1, s);
        split.insert(ah + 1, s);
        Ok(g.reshape(split)?.sum((ah + 1, aw + 2))?)
    }

    pub(super) fn avg_pool(&self, x: &Tensor, kh: usize, kw: usize) -> Result<Tensor> {
        if self.nhwc && x.rank() == 4 && fused_path(x) {
            return Ok(avg_pool_nhwc(x, kh, kw)?);
        }
        let (ah, aw) = self.spatial();
        let dims = x.dims().to_vec();
        let (oh, ow) = (dims[ah] / kh, dims[aw] / kw);
        let x = x.narrow(ah, 0, oh * kh)?.narrow(aw, 0, ow * kw)?;
        let mut split = dims.clone();
        split[ah] = oh;
        split[aw] = ow;
        split.insert(aw + 1, kw);
        split.insert(ah + 1, kh);
        Ok(x.contiguous()?.reshape(split)?.mean((ah + 1, aw + 2))?)
    }

    pub(super) fn avg_pool_vjp(
        &self,
        g: &Tensor,
        kh: usize,
        kw: usize,
        h: usize,
        w: usize,
    ) -> Result<Tensor> {
        if self.nhwc && g.rank() == 4 && fused_path(g) {
            return Ok(avg_pool_nhwc_vjp(g, kh, kw, h, w)?);
        }
        let (ah, aw) = self.spatial();
        let dims = g.dims().to_vec();
        let mut expanded = dims.clone();
        expanded.insert(aw + 1, 1);
        expanded.insert(ah + 1, 1);
        let mut target = expanded.clone();
        target[ah + 1] = kh;
        target[aw + 2] = kw;
        let mut out = dims.clone();
        out[ah] *= kh;
        out[aw] *= kw;
        let up = (g
            .reshape(expanded)?
            .broadcast_as(target)?
            .contiguous()?
            .reshape(out.clone())?
            / (kh * kw) as f64)?;
        Ok(up
            .pad_with_zeros(ah, 0, h - out[ah])?
            .pad_with_zeros(aw, 0, w - out[aw])?)
    }

    /// A per-channel (images) or per-feature (flat) vector `[c]` shaped to broadcast against a value of `rank`.
    pub(super) fn per_channel(&self, v: &Tensor, rank: usize) -> Result<Tensor> {
        let c = v.dim(0)?;
        Ok(match (rank, self.nhwc) {
            (4, true) => v.reshape((1, 1, 1, c))?,
            (4, false) => v.reshape((1, c, 1, 1))?,
            _ => v.reshape((1, c))?,
        })
    }

    /// The value regrouped so that each normalisation group is reduced over [`Layout::group_axes`].
    pub(super) fn group_view(&self, x: &Tensor, groups: usize) -> Result<Tensor> {
        if x.rank() != 4 {
            return Ok(x.reshape((self.n, 1, x.elem_count() / self.n.max(1)))?);
        }
        let dims = x.dims4()?;
        Ok(if self.nhwc {
            let (_, h, w, c) = dims;
            x.reshape((self.n, h * w, groups, c / groups))?
        } else {
            let (_, c, h, w) = dims;
            x.reshape((self.n, groups, c / groups * h * w))?
        })
    }

    /// Mean of a [`Layout::group_view`] over each group, keeping dims. Channels-last views on the sampling path
    /// (nothing to differentiate) take one pass of [`GroupSums`] instead of candle's strided two-axis reduction.
    pub(super) fn group_mean(
        &self,
        view: &Tensor,
        groups: usize,
        axes: &[usize],
    ) -> Result<Tensor> {
        if self.nhwc
            && view.rank() == 4
            && fused_path(view)
            && let Ok((n, m, g, per)) = view.dims4()
        {
            let sums = view
                .contiguous()?
                .reshape((n, m, g * per))?
                .apply_op1_no_bwd(&GroupSums(groups))?;
            return Ok((sums / (m * per) as f64)?.reshape((n, 1, g, 1))?);
        }
        Ok(view.mean_keepdim(axes.to_vec())?)
    }

    /// `x` as `[n, m, c]` (`m` pixels of `c` channels, or `[n, 1, d]` flat) for the fused normalisation kernels,
    /// when they apply: CPU, channels-last, nothing to differentiate.
    pub(super) fn fused_norm_view(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if !fused_path(x) {
            return Ok(None);
        }
        Ok(match x.rank() {
            4 if self.nhwc => {
                let (n, h, w, c) = x.dims4()?;
                Some(x.reshape((n, h * w, c))?)
            }
            2 => Some(x.reshape((self.n, 1, x.dim(1)?))?),
            _ => None,
        })
    }

    pub(super) fn group_axes(&self, rank: usize) -> Vec<usize> {
        if rank == 4 && self.nhwc {
            vec![1, 3]
        } else {
            vec![2]
        }
    }
}
