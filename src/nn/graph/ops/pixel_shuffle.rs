//! `pixel_shuffle`: channels to space, `[c r^2, h, w] -> [c, r h, r w]`, the learned up-sampling of
//! super-resolution nets and some decoders; PyTorch's `PixelShuffle(r)`, ONNX `DepthToSpace` (mode `CRD`, which
//! PyTorch writes, or `DCR`). A permutation of values: its input-VJP is the inverse permutation.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::{OnnxAttr, OpDef, OpLayout, OpNode, Params};
use crate::nn::graph::ValueShape;
use crate::nn::{Error, Result};

/// JSON `{"op": "pixel_shuffle", "in": [v], "factor": r}` (optional `"mode": "dcr"`; default `"crd"`: output
/// channel `c` at offset `(i, j)` reads input channel `c r^2 + i r + j`; `dcr` reads `(i r + j) C + c`).
pub struct PixelShuffle;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShuffleParams {
    factor: usize,
    #[serde(default)]
    mode: Mode,
}

#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Crd,
    Dcr,
}

impl ShuffleParams {
    fn parse(params: &Params) -> std::result::Result<Self, String> {
        let p: Self = super::parse(params)?;
        if !(1..=16).contains(&p.factor) {
            return Err(format!("factor {} out of range 1..=16", p.factor));
        }
        Ok(p)
    }
}

impl OpDef for PixelShuffle {
    fn name(&self) -> &'static str {
        "pixel_shuffle"
    }

    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        let p = ShuffleParams::parse(params)?;
        let ValueShape::Image(c, h, w) = inputs[0] else {
            return Err(format!(
                "needs an image input, got {}",
                inputs[0].describe()
            ));
        };
        let rr = p.factor * p.factor;
        if c % rr != 0 {
            return Err(format!(
                "{c} channels do not divide into factor^2 = {rr} groups"
            ));
        }
        Ok(ValueShape::Image(c / rr, h * p.factor, w * p.factor))
    }

    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        _: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let p = ShuffleParams::parse(params).map_err(Error::Architecture)?;
        let ValueShape::Image(c, h, w) = inputs[0] else {
            return Err(Error::Architecture(
                "pixel_shuffle needs an image input".into(),
            ));
        };
        Ok(Box::new(ShuffleNode {
            r: p.factor,
            mode: p.mode,
            c: c / (p.factor * p.factor),
            h,
            w,
        }))
    }

    fn onnx_types(&self) -> &'static [&'static str] {
        &["DepthToSpace"]
    }

    fn onnx_params(
        &self,
        op_type: &str,
        attrs: &[OnnxAttr<'_>],
    ) -> std::result::Result<Params, String> {
        let mut params = Params::new();
        for a in attrs {
            match a.name {
                "blocksize" => {
                    params.insert("factor".into(), serde_json::json!(a.i));
                }
                "mode" => {
                    let mode = String::from_utf8_lossy(a.s).to_ascii_lowercase();
                    if mode != "crd" && mode != "dcr" {
                        return Err(format!(
                            "has mode {}; {op_type} has CRD and DCR",
                            crate::text::one_line(&mode)
                        ));
                    }
                    params.insert("mode".into(), serde_json::json!(mode));
                }
                other => {
                    return Err(format!(
                        "has attribute '{}', which {op_type} does not take",
                        crate::text::one_line(other)
                    ));
                }
            }
        }
        if !params.contains_key("factor") {
            return Err("has no blocksize".into());
        }
        // ONNX's default mode is DCR; PyTorch writes CRD explicitly.
        params
            .entry("mode")
            .or_insert_with(|| serde_json::json!("dcr"));
        Ok(params)
    }
}

#[derive(Debug)]
struct ShuffleNode {
    r: usize,
    mode: Mode,
    /// Output channels and input height, width.
    c: usize,
    h: usize,
    w: usize,
}

impl ShuffleNode {
    /// The input split into its rank-6 view, the permutation to the output's rank-6 view, and that view's dims,
    /// for a batch of `n` in `layout`.
    fn plan(&self, n: usize, layout: OpLayout) -> ([usize; 6], [usize; 6], [usize; 6]) {
        let (r, c, h, w) = (self.r, self.c, self.h, self.w);
        let (split, perm) = match (layout.channels_last, self.mode) {
            // [N, c, i, j, h, w] -> [N, c, h, i, w, j]
            (false, Mode::Crd) => ([n, c, r, r, h, w], [0, 1, 4, 2, 5, 3]),
            // [N, i, j, c, h, w] -> [N, c, h, i, w, j]
            (false, Mode::Dcr) => ([n, r, r, c, h, w], [0, 3, 4, 1, 5, 2]),
            // [N, h, w, c, i, j] -> [N, h, i, w, j, c]
            (true, Mode::Crd) => ([n, h, w, c, r, r], [0, 1, 4, 2, 5, 3]),
            // [N, h, w, i, j, c] -> [N, h, i, w, j, c]
            (true, Mode::Dcr) => ([n, h, w, r, r, c], [0, 1, 3, 2, 4, 5]),
        };
        let permuted = perm.map(|k| split[k]);
        (split, perm, permuted)
    }
}

impl OpNode for ShuffleNode {
    /// Saves nothing.
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let x = inputs[0];
        let n = x.dim(0)?;
        let (split, perm, _) = self.plan(n, layout);
        let (r, c) = (self.r, self.c);
        let out: Vec<usize> = match layout.channels_last {
            true => vec![n, self.h * r, self.w * r, c],
            false => vec![n, c, self.h * r, self.w * r],
        };
        let y = x
            .contiguous()?
            .reshape(split.to_vec())?
            .permute(perm.to_vec())?
            .contiguous()?
            .reshape(out)?;
        Ok((y, Vec::new()))
    }

    fn vjp(&self, _: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let n = g.dim(0)?;
        let (split, perm, permuted) = self.plan(n, layout);
        let mut inverse = [0usize; 6];
        for (k, &p) in perm.iter().enumerate() {
            inverse[p] = k;
        }
        let input: Vec<usize> = match layout.channels_last {
            true => vec![n, self.h, self.w, self.c * self.r * self.r],
            false => vec![n, self.c * self.r * self.r, self.h, self.w],
        };
        debug_assert_eq!(inverse.map(|k| permuted[k]), split);
        let gx = g
            .contiguous()?
            .reshape(permuted.to_vec())?
            .permute(inverse.to_vec())?
            .contiguous()?
            .reshape(input)?;
        Ok(vec![Some(gx)])
    }
}
