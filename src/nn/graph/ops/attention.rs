//! `attention`: multi-head dot-product self-attention over the pixels of an image, the attention block of
//! diffusion and score U-Nets (DDPM, NCSN++) and of vision transformers on feature maps. Queries, keys and values
//! are three images of one size (usually 1x1 convolutions of the same feature map); every pixel is a token.
//!
//! For each sample and head, with `Q, K: [d, L]` and `V: [e, L]` (channel slices `d = c_q / heads`,
//! `e = c_v / heads`, `L = h w` pixels, channels-first order):
//!
//! ```text
//! S = scale Q^T K        [L, L]   (query i, key j)
//! P = softmax_j(S)
//! O = V P^T              [e, L]   (O[:, i] = sum_j P[i, j] V[:, j])
//! ```
//!
//! and the heads' outputs stacked along channels. The input-VJP, for the output's gradient `G: [e, L]`:
//! `dV = G P`, `dP = G^T V`, `dS = P * (dP - rowsum(dP * P))`, `dQ = scale K dS^T`, `dK = scale Q dS`, all in
//! candle ops, so that training differentiates it in the weights.

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::{OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// Most pixels attended over (a 64x64 feature map); the `L x L` attention weights of one head are the largest
/// value the op holds.
pub const MAX_TOKENS: usize = 4096;

/// `q [c, h, w], k [c, h, w], v [e, h, w] -> [e, h, w]`: JSON `{"op": "attention", "in": [q, k, v], "heads": n,
/// "scale": s}` (heads default to 1, scale to `1 / sqrt(c / heads)`, PyTorch's `scaled_dot_product_attention`).
pub struct Attention;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttentionParams {
    #[serde(default = "super::one")]
    heads: usize,
    #[serde(default)]
    scale: Option<f64>,
}

/// Heads, query channels per head and scale of valid parameters and inputs, or a one-line message.
fn checked(
    params: &Params,
    inputs: &[ValueShape],
) -> std::result::Result<(usize, f64, ValueShape), String> {
    let p: AttentionParams = super::parse(params)?;
    let dims = |s: &ValueShape| match *s {
        ValueShape::Image(c, h, w) => Ok((c, h, w)),
        other => Err(format!(
            "attends over the pixels of images, got {}",
            other.describe()
        )),
    };
    let (cq, h, w) = dims(&inputs[0])?;
    let (ck, hk, wk) = dims(&inputs[1])?;
    let (cv, hv, wv) = dims(&inputs[2])?;
    if (hk, wk) != (h, w) || (hv, wv) != (h, w) || ck != cq {
        return Err(format!(
            "queries {}, keys {} and values {} must have one size, queries and keys one channel count",
            inputs[0].describe(),
            inputs[1].describe(),
            inputs[2].describe()
        ));
    }
    let heads = p.heads;
    if heads == 0 || cq % heads != 0 || cv % heads != 0 {
        return Err(format!(
            "{heads} heads do not divide {cq} query and {cv} value channels"
        ));
    }
    let tokens = h * w;
    if tokens > MAX_TOKENS {
        return Err(format!(
            "attends over {tokens} pixels ({h}x{w}); walkjump attends over at most {MAX_TOKENS}"
        ));
    }
    if heads.saturating_mul(tokens).saturating_mul(tokens) > super::MAX_VALUE_ELEMS {
        return Err(format!(
            "{heads} heads of {tokens}x{tokens} attention weights exceed {} values per sample",
            super::MAX_VALUE_ELEMS
        ));
    }
    let scale = p.scale.unwrap_or(1.0 / ((cq / heads) as f64).sqrt());
    if !scale.is_finite() {
        return Err(format!("scale {scale} is not a finite number"));
    }
    Ok((heads, scale, ValueShape::Image(cv, h, w)))
}

impl OpDef for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn arity(&self) -> usize {
        3
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        checked(params, inputs).map(|(_, _, s)| s)
    }

    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        _: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let (heads, scale, _) = checked(params, inputs).map_err(Error::Architecture)?;
        let ValueShape::Image(c, h, w) = inputs[0] else {
            return Err(Error::Architecture("attention needs images".into()));
        };
        let ValueShape::Image(e, _, _) = inputs[2] else {
            return Err(Error::Architecture("attention needs images".into()));
        };
        Ok(Box::new(AttentionNode {
            heads,
            scale,
            c,
            e,
            h,
            w,
        }))
    }
}

#[derive(Debug)]
struct AttentionNode {
    heads: usize,
    scale: f64,
    /// Query (and key) channels, value channels, height and width.
    c: usize,
    e: usize,
    h: usize,
    w: usize,
}

impl AttentionNode {
    /// An image of `ch` channels (in `layout`) as per-head token matrices `[N, heads, ch / heads, L]`.
    fn heads_of(&self, x: &Tensor, ch: usize, layout: OpLayout) -> Result<Tensor> {
        let n = x.dim(0)?;
        let t = layout.to_nchw(x)?;
        Ok(t.reshape((n, self.heads, ch / self.heads, self.h * self.w))?)
    }

    /// Per-head matrices `[N, heads, ch / heads, L]` back as an image of `ch` channels in `layout`.
    fn image_of(&self, t: &Tensor, ch: usize, layout: OpLayout) -> Result<Tensor> {
        let n = t.dim(0)?;
        layout.from_nchw(t.reshape((n, ch, self.h, self.w))?)
    }
}

impl OpNode for AttentionNode {
    /// Saves `Q, K, V` as per-head matrices and the attention weights `P: [N, heads, L, L]`.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let q = self.heads_of(inputs[0], self.c, layout)?;
        let k = self.heads_of(inputs[1], self.c, layout)?;
        let v = self.heads_of(inputs[2], self.e, layout)?;
        let s = (q.transpose(2, 3)?.contiguous()?.matmul(&k)? * self.scale)?;
        // Softmax along keys, shifted by each row's maximum (a constant of the row: no gradient through it).
        let top = s.max_keepdim(D::Minus1)?.detach();
        let z = s.broadcast_sub(&top)?.exp()?;
        let p = z.broadcast_div(&z.sum_keepdim(D::Minus1)?)?;
        let o = v.matmul(&p.transpose(2, 3)?.contiguous()?)?;
        let y = self.image_of(&o, self.e, layout)?;
        let saved = if layout.keep {
            vec![q, k, v, p]
        } else {
            Vec::new()
        };
        Ok((y, saved))
    }

    fn vjp(&self, saved: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let [q, k, v, p] = saved else {
            return Err(Error::Unsupported("network cache does not match".into()));
        };
        let g = self.heads_of(g, self.e, layout)?;
        let gv = g.matmul(p)?;
        let gp = g.transpose(2, 3)?.contiguous()?.matmul(v)?;
        let row = (&gp * p)?.sum_keepdim(D::Minus1)?;
        let gs = (p * gp.broadcast_sub(&row)?)?;
        let gq = (k.matmul(&gs.transpose(2, 3)?.contiguous()?)? * self.scale)?;
        let gk = (q.matmul(&gs)? * self.scale)?;
        Ok(vec![
            Some(self.image_of(&gq, self.c, layout)?),
            Some(self.image_of(&gk, self.c, layout)?),
            Some(self.image_of(&gv, self.e, layout)?),
        ])
    }

    fn macs(&self) -> usize {
        let l = self.h * self.w;
        // Q^T K and V P^T over all heads.
        l * l * (self.c + self.e)
    }
}
