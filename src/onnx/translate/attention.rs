//! Self-attention over pixels as exporters write it, recognised value by value and emitted as the registry's
//! `attention` (and `Split` along channels as `slice_channels`).
//!
//! PyTorch's attention block (`q @ k / sqrt(d)` then softmax then `@ v`, or `scaled_dot_product_attention`)
//! arrives as: `Split` of a 1x1 convolution into q, k, v; `Reshape` of each image to `[N, heads, d, h w]` (or
//! `[N, c, h w]` for one head); `Transpose` of the last two axes; `MatMul(q^T, k)`; `Div` or `Mul` by a scalar (or
//! both factors on q and k, scaled dot-product attention's idiom, which also merges batch and heads with a
//! `Reshape` to transpose k); `Softmax` along keys; `MatMul(p, v^T)` (or `MatMul(v, p^T)`); `Transpose` back and
//! `Reshape` to the image.
//! Each intermediate is a [`HeadsView`] (a view of a graph image) or a [`ScoresView`] until the second `MatMul`
//! emits the op; anything else on these views is refused in one line naming the node.

use super::*;
use crate::nn::graph::ops::{Attention, OpDef, Params as OpParams, SliceChannels, slice_channels};

/// An image graph value `[c, h, w]` seen as per-head token matrices `[N, heads, c / heads, h w]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct HeadsView {
    id: usize,
    shape: ValueShape,
    heads: usize,
    /// The last two axes swapped: `[.., h w, c / heads]`.
    t: bool,
    /// A constant factor on the values.
    scale: f64,
    /// Batch and heads merged into the first axis (`[N heads, ., .]`).
    merged: bool,
    /// Written without a head axis (`[N, c, h w]`, one head).
    rank3: bool,
}

impl HeadsView {
    fn dims(&self) -> (usize, usize, usize, usize) {
        match self.shape {
            ValueShape::Image(c, h, w) => (c, h, w, h * w),
            ValueShape::Flat(d) => (d, 1, 1, 1),
        }
    }

    /// The last two dimensions as the view has them.
    fn last_two(&self) -> (usize, usize) {
        let (c, _, _, l) = self.dims();
        let d = c / self.heads;
        if self.t { (l, d) } else { (d, l) }
    }

    /// Full dims for `Shape` (the batch as the sentinel).
    fn full_dims(&self) -> Option<Vec<f64>> {
        if self.merged {
            return None;
        }
        let (a, b) = self.last_two();
        let mut dims = vec![BATCH];
        if !self.rank3 {
            dims.push(self.heads as f64);
        }
        dims.extend([a as f64, b as f64]);
        Some(dims)
    }
}

/// `scale q^T k` of two views (query and key images), or its softmax along keys (`probs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct ScoresView {
    q: usize,
    k: usize,
    shape: ValueShape,
    heads: usize,
    scale: f64,
    rank3: bool,
    probs: bool,
    /// Transposed (`[.., keys, queries]`), after the softmax: `v @ p^T`.
    t: bool,
}

impl Translator {
    /// A value as a heads view: a view already, or `Reshape(image, [N, c, -1])` (one head), which the importer
    /// holds as a grouped value until it sees what reads it.
    pub(super) fn heads_view(&self, v: &Val) -> Option<HeadsView> {
        match *v {
            Val::Heads(h) => Some(h),
            Val::Grouped(id, s @ ValueShape::Image(c, _, _), g) if g == c => Some(HeadsView {
                id,
                shape: s,
                heads: 1,
                t: false,
                scale: 1.0,
                merged: false,
                rank3: true,
            }),
            _ => None,
        }
    }

    /// `Shape` of a view: its dims, or `None` where it has none walkjump can give.
    pub(super) fn view_dims(&self, v: &Val) -> Option<Vec<f64>> {
        self.heads_view(v).and_then(|h| h.full_dims())
    }

    /// `Reshape(image, [N, heads, d, h w])`: the per-sample target `dims` of an image value, when it splits the
    /// channels into heads and flattens the pixels.
    pub(super) fn reshape_to_heads(&self, id: usize, s: ValueShape, dims: &[usize]) -> Option<Val> {
        let ValueShape::Image(c, h, w) = s else {
            return None;
        };
        match *dims {
            [heads, d, l]
                if heads * d == c && l == h * w && heads > 0 && (heads, d, l) != (c, h, w) =>
            {
                Some(Val::Heads(HeadsView {
                    id,
                    shape: s,
                    heads,
                    t: false,
                    scale: 1.0,
                    merged: false,
                    rank3: false,
                }))
            }
            _ => None,
        }
    }

    /// `Reshape` of a heads view: back to its image, merging or splitting batch and heads, or dropping / adding the
    /// head axis; the last two dimensions must stay as they are.
    pub(super) fn reshape_view(
        &mut self,
        n: &NodeProto,
        v: HeadsView,
        target: &Const,
    ) -> Result<()> {
        let t = ints(target);
        let (a, b) = v.last_two();
        let (c, h, w, _) = v.dims();
        let explicit = |k: usize| t.get(k).copied().flatten();
        // [-1, a, b]: batch and heads merged (scaled dot-product attention's transpose of k).
        if t.len() == 3
            && explicit(0) == Some(-1)
            && explicit(1) == Some(a as i64)
            && explicit(2) == Some(b as i64)
            && !v.rank3
        {
            return self.set(n, Val::Heads(HeadsView { merged: true, ..v }));
        }
        let batch_first = matches!(t.first(), Some(None))
            || (explicit(0) == Some(-1) && t[1..].iter().all(|d| d.is_some_and(|d| d > 0)));
        let rest: Option<Vec<usize>> = t
            .iter()
            .skip(1)
            .map(|d| match *d {
                Some(d) if d > 0 => Some(d as usize),
                _ => None,
            })
            .collect();
        let fail = |me: &Self| {
            me.fail(
                n,
                format!(
                    "reshapes an attention value ({} heads of {a}x{b}) into {t:?}; walkjump reads attention whose values go back to their image",
                    v.heads
                ),
            )
        };
        let (true, Some(rest)) = (batch_first, rest) else {
            return Err(fail(self));
        };
        let same = |heads: usize, rank3: bool| HeadsView {
            heads,
            rank3,
            merged: false,
            ..v
        };
        let out = match *rest.as_slice() {
            [c2, h2, w2] if (c2, h2, w2) == (c, h, w) && !v.t && v.scale == 1.0 => {
                Val::Dyn(v.id, v.shape)
            }
            [heads, x, y] if heads == v.heads && (x, y) == (a, b) => Val::Heads(same(heads, false)),
            [x, y] if v.heads == 1 && (x, y) == (a, b) => Val::Heads(same(1, true)),
            _ => return Err(fail(self)),
        };
        self.set(n, out)
    }

    /// `Transpose` of a heads view's (or of attention weights') last two axes.
    pub(super) fn transpose(&mut self, n: &NodeProto) -> Result<()> {
        let v = self.get(n, 0)?;
        if let Val::Scores(s) = v {
            let perm = attr_ints(n, "perm").unwrap_or_default();
            let swap_last: &[i64] = if s.rank3 { &[0, 2, 1] } else { &[0, 1, 3, 2] };
            if !s.probs || perm != swap_last {
                return Err(self.fail(
                    n,
                    format!("transposes attention scores with perm {perm:?}; walkjump reads the swap {swap_last:?} of the softmax weights"),
                ));
            }
            return self.set(n, Val::Scores(ScoresView { t: !s.t, ..s }));
        }
        let Some(view) = self.heads_view(&v) else {
            return Err(self.fail(
                n,
                "transposes a value walkjump's graph cannot hold; it reads Transpose only inside self-attention over pixels",
            ));
        };
        let perm = attr_ints(n, "perm").unwrap_or_default();
        let swap_last: &[i64] = if view.rank3 || view.merged {
            &[0, 2, 1]
        } else {
            &[0, 1, 3, 2]
        };
        if perm != swap_last {
            return Err(self.fail(
                n,
                format!(
                    "has perm {perm:?}; inside attention walkjump reads the swap of the last two axes {swap_last:?}"
                ),
            ));
        }
        self.set(n, Val::Heads(HeadsView { t: !view.t, ..view }))
    }

    /// `Mul` / `Div` of a heads view or scores by a scalar constant: the view's factor.
    pub(super) fn scale_view(
        &mut self,
        n: &NodeProto,
        v: Val,
        c: &Const,
        divide: bool,
    ) -> Result<()> {
        let Some(k) = c.scalar().filter(|k| k.is_finite() && *k != 0.0) else {
            return Err(self.fail(
                n,
                format!(
                    "scales an attention value by a constant of shape {:?}; walkjump reads one finite, non-zero factor",
                    c.dims
                ),
            ));
        };
        let k = if divide { 1.0 / k } else { k };
        let out = match v {
            Val::Scores(s) if !s.probs => Val::Scores(ScoresView {
                scale: s.scale * k,
                ..s
            }),
            other => match self.heads_view(&other) {
                Some(h) => Val::Heads(HeadsView {
                    scale: h.scale * k,
                    ..h
                }),
                None => {
                    return Err(self.fail(
                        n,
                        "scales attention weights after their softmax, which walkjump does not read",
                    ));
                }
            },
        };
        self.set(n, out)
    }

    /// `MatMul` of two input-dependent values: `q^T k` (scores) or `p v^T` (the attention's output, transposed).
    pub(super) fn attention_matmul(&mut self, n: &NodeProto) -> Result<()> {
        let (a, b) = (self.get(n, 0)?, self.get(n, 1)?);
        let refuse = |me: &Self| {
            me.fail(
                n,
                "multiplies two input-dependent values; walkjump reads that only as self-attention over pixels (q^T k, then softmax weights times v^T)",
            )
        };
        if let (Some(q), Some(k)) = (self.heads_view(&a), self.heads_view(&b)) {
            let ok = q.t
                && !k.t
                && q.merged == k.merged
                && q.heads == k.heads
                && q.rank3 == k.rank3
                && q.shape == k.shape;
            if !ok {
                return Err(refuse(self));
            }
            return self.set(
                n,
                Val::Scores(ScoresView {
                    q: q.id,
                    k: k.id,
                    shape: q.shape,
                    heads: q.heads,
                    scale: q.scale * k.scale,
                    rank3: q.rank3,
                    probs: false,
                    t: false,
                }),
            );
        }
        // p v^T (the output transposed) or v p^T (the output).
        let (p, v, out_t) = match (a, b) {
            (Val::Scores(p), other) if !p.t => match self.heads_view(&other) {
                Some(v) if v.t => (p, v, true),
                _ => return Err(refuse(self)),
            },
            (other, Val::Scores(p)) if p.t => match self.heads_view(&other) {
                Some(v) if !v.t => (p, v, false),
                _ => return Err(refuse(self)),
            },
            _ => return Err(refuse(self)),
        };
        let (ValueShape::Image(_, h, w), ValueShape::Image(e, hv, wv)) = (p.shape, v.shape) else {
            return Err(refuse(self));
        };
        if !p.probs || v.merged || v.heads != p.heads || (hv, wv) != (h, w) || v.scale != 1.0 {
            return Err(refuse(self));
        }
        let mut params = OpParams::new();
        if p.heads != 1 {
            params.insert("heads".into(), serde_json::json!(p.heads));
        }
        params.insert("scale".into(), serde_json::json!(p.scale));
        let def: &'static dyn OpDef = &Attention;
        let q_shape = p.shape;
        let shape = def
            .shape(&params, &[q_shape, q_shape, v.shape])
            .map_err(|m| self.fail(n, m))?;
        let out = self.push(Op::ext(def, params), vec![p.q, p.k, v.id], vec![]);
        debug_assert_eq!(shape, ValueShape::Image(e, h, w));
        self.set(
            n,
            Val::Heads(HeadsView {
                id: out,
                shape,
                heads: p.heads,
                t: out_t,
                scale: 1.0,
                merged: false,
                rank3: p.rank3,
            }),
        )
    }

    /// `Softmax` of attention scores along keys.
    pub(super) fn softmax(&mut self, n: &NodeProto) -> Result<()> {
        let Val::Scores(s) = self.get(n, 0)? else {
            return Err(self.fail(
                n,
                "takes the softmax of a value walkjump's graph cannot hold; it reads Softmax only inside self-attention over pixels",
            ));
        };
        let rank = if s.rank3 { 3 } else { 4 };
        let axis = attr_i(n, "axis", -1);
        if s.probs || s.t || !(axis == -1 || axis == rank - 1) {
            return Err(self.fail(
                n,
                format!("takes the softmax along axis {axis}; attention weights are normalised along keys (the last axis)"),
            ));
        }
        self.set(n, Val::Scores(ScoresView { probs: true, ..s }))
    }

    /// `Split` of a value along its channels (features) as `slice_channels` nodes, one per output.
    pub(super) fn split(&mut self, n: &NodeProto, opset: i64) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let rank = match s {
            ValueShape::Image(..) => 4,
            ValueShape::Flat(_) => 2,
        };
        let axis = attr_i(n, "axis", 0);
        if axis != 1 && axis != 1 - rank {
            return Err(self.fail(
                n,
                format!("splits along axis {axis}; walkjump splits along channels (axis 1)"),
            ));
        }
        let c = match s {
            ValueShape::Image(c, _, _) | ValueShape::Flat(c) => c,
        };
        let outputs = n.output.len();
        let sizes: Vec<usize> = {
            let given: Option<Vec<f64>> = if opset < 13 {
                attr_ints(n, "split").map(|v| v.iter().map(|&x| x as f64).collect())
            } else {
                match self.opt(n, 1)? {
                    Some(Val::Const(k)) => Some(k.data),
                    Some(_) => return Err(self.fail(n, "has split sizes that are not constant")),
                    None => None,
                }
            };
            match given {
                Some(v) => v
                    .iter()
                    .map(|&x| as_usize(x).filter(|&x| x > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| self.fail(n, format!("has split sizes {v:?}")))?,
                None => {
                    // Equal parts (the last smaller when they do not divide), as ONNX defines.
                    let parts = usize::try_from(attr_i(n, "num_outputs", outputs as i64))
                        .ok()
                        .filter(|&p| p > 0 && p == outputs)
                        .ok_or_else(|| {
                            self.fail(n, "has a num_outputs that is not its number of outputs")
                        })?;
                    let size = c.div_ceil(parts);
                    (0..parts)
                        .map(|k| size.min(c.saturating_sub(k * size)))
                        .collect()
                }
            }
        };
        if sizes.len() != outputs || sizes.iter().sum::<usize>() != c || sizes.contains(&0) {
            return Err(self.fail(
                n,
                format!("splits {c} channels into {sizes:?} for {outputs} outputs"),
            ));
        }
        let mut start = 0;
        for (k, &len) in sizes.iter().enumerate() {
            let params = slice_channels::params(start, len);
            let shape = SliceChannels
                .shape(&params, &[s])
                .map_err(|m| self.fail(n, m))?;
            let out = self.push(Op::ext(&SliceChannels, params), vec![id], vec![]);
            let name = n.output[k].clone();
            if !name.is_empty() {
                self.vals.insert(name, Val::Dyn(out, shape));
            }
            start += len;
        }
        Ok(())
    }
}
