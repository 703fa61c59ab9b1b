//! Ops outside the built-in ones: `mish` of the registry, and `scaled_square`, an op with a parameter and a weight
//! that only this test defines (never registered), each held to finite differences and autograd in both layouts.

use super::*;
use crate::nn::graph::ops::{OPS, OpDef, OpLayout, OpNode, Params};

/// `mish` on an image after a convolution, then on a flat value after a linear and read twice.
fn mish_graph() -> GraphSpec {
    spec(serde_json::json!({
        "input": [2, 4, 4],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 3, "kernel": 3, "padding": 1},
            {"op": "mish", "in": [1]},
            {"op": "flatten", "in": [2]},
            {"op": "linear", "in": [3], "name": "l", "out": 5},
            {"op": "mish", "in": [4]},
            {"op": "mul", "in": [5, 4]}
        ]
    }))
}

#[test]
fn mish_vjp_matches_finite_differences_and_autograd() {
    check(&mish_graph(), 11);
}

#[test]
fn mish_computes_its_definition() {
    let s = spec(serde_json::json!({"input": [6], "nodes": [{"op": "mish", "in": [0]}]}));
    let (graph, _vars) = build(&s, 1);
    let xs: [f64; 6] = [-30.0, -2.0, -0.5, 0.0, 0.7, 40.0];
    let x = Tensor::from_vec(xs.to_vec(), (1, 6), &Device::Cpu).expect("x");
    for (got, x) in values(&graph.forward(&x).expect("forward")).iter().zip(xs) {
        let want = x * (x.exp().ln_1p()).tanh();
        // Absolute: softplus is `log(1 + exp(-|x|))` far left, as the built-in softplus.
        assert!(
            (got - want).abs() <= 1e-14 * x.abs().max(1.0),
            "mish({x}) = {got}, want {want}"
        );
    }
}

#[test]
fn registered_op_json_round_trips_and_keeps_its_fields() {
    let s = mish_graph();
    assert!(
        matches!(&s.nodes[1].op, Op::Ext { op, params } if op.def().name() == "mish" && params.is_empty())
    );
    assert_eq!(s.nodes[1].op.name(), "mish");
    let text = serde_json::to_string(&s).expect("to json");
    assert!(text.contains(r#"{"op":"mish","in":[1]}"#), "{text}");
    // The built-in tags are written as before.
    assert!(
        text.contains(
            r#"{"op":"conv2d","out":3,"kernel":3,"stride":1,"padding":1,"in":[0],"name":"c"}"#
        ),
        "{text}"
    );
    let back: GraphSpec = serde_json::from_str(&text).expect("from json");
    assert_eq!(back, s);
}

#[test]
fn registry_names_are_unique_and_not_built_in() {
    for (k, def) in OPS.iter().enumerate() {
        assert!(
            OPS[..k].iter().all(|d| d.name() != def.name()),
            "{} twice",
            def.name()
        );
        // A built-in op of the same name would be shadowed: the registry's op must be what the name reads as.
        let node: NodeSpec =
            serde_json::from_value(serde_json::json!({"op": def.name(), "in": [0]})).expect("node");
        assert!(matches!(node.op, Op::Ext { .. }), "{}", def.name());
    }
    for builtin in ["linear", "silu", "group_norm", "reduce_mean"] {
        assert!(crate::nn::graph::ops::find(builtin).is_none());
    }
}

#[test]
fn unknown_ops_and_bad_fields_are_refused_in_one_line() {
    let e = serde_json::from_value::<GraphSpec>(
        serde_json::json!({"nodes": [{"op": "warp", "in": [0]}]}),
    )
    .expect_err("unknown op")
    .to_string();
    assert!(
        e.contains("unknown variant `warp`, expected one of `linear`"),
        "{e}"
    );
    assert!(e.contains("`mish`"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let s = spec(serde_json::json!({"nodes": [{"op": "mish", "in": [0], "alpha": 2}]}));
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let e = Graph::new(&vb, &s, ValueShape::Flat(3))
        .expect_err("field")
        .to_string();
    assert!(
        e.contains("node 0 (mish): takes no parameters, got `alpha`"),
        "{e}"
    );
    let s = spec(serde_json::json!({"nodes": [{"op": "mish", "in": [0, 0]}]}));
    let e = Graph::new(&vb, &s, ValueShape::Flat(3))
        .expect_err("arity")
        .to_string();
    assert!(e.contains("node 0 (mish): takes 1 inputs, got 2"), "{e}");
}

/// `k w_c x^2` per channel (feature): parameter `k` from the JSON, `weight [c]` under the node's name.
struct ScaledSquare;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaledSquareParams {
    k: f64,
}

#[derive(Debug)]
struct ScaledSquareNode {
    k: f64,
    weight: Tensor,
}

impl OpDef for ScaledSquare {
    fn name(&self) -> &'static str {
        "scaled_square"
    }
    fn needs_name(&self) -> bool {
        true
    }
    fn shape(
        &self,
        params: &Params,
        inputs: &[ValueShape],
    ) -> std::result::Result<ValueShape, String> {
        let p: ScaledSquareParams = crate::nn::graph::ops::parse(params)?;
        if !p.k.is_finite() {
            return Err(format!("k {} must be finite", p.k));
        }
        Ok(inputs[0])
    }
    fn load(
        &self,
        params: &Params,
        inputs: &[ValueShape],
        vb: &VarBuilder,
    ) -> Result<Box<dyn OpNode>> {
        let p: ScaledSquareParams =
            crate::nn::graph::ops::parse(params).map_err(Error::Architecture)?;
        let c = match inputs[0] {
            ValueShape::Flat(d) => d,
            ValueShape::Image(c, _, _) => c,
        };
        Ok(Box::new(ScaledSquareNode {
            k: p.k,
            weight: vb.get(c, "weight")?,
        }))
    }
}

impl OpNode for ScaledSquareNode {
    fn forward(&self, inputs: &[&Tensor], layout: OpLayout) -> Result<(Tensor, Vec<Tensor>)> {
        let x = inputs[0];
        let w = layout.per_channel(&self.weight, x.rank())?;
        let y = (x.sqr()?.broadcast_mul(&w)? * self.k)?;
        Ok((y, vec![x.clone()]))
    }
    fn vjp(&self, saved: &[Tensor], g: &Tensor, layout: OpLayout) -> Result<Vec<Option<Tensor>>> {
        let x = &saved[0];
        let w = layout.per_channel(&self.weight, x.rank())?;
        Ok(vec![Some(((g * x)?.broadcast_mul(&w)? * (2.0 * self.k))?)])
    }
}

fn scaled_square(k: f64) -> Op {
    let mut params = Params::new();
    params.insert("k".into(), serde_json::json!(k));
    Op::ext(&ScaledSquare, params)
}

/// The extension point without the registry: a graph built in code runs a test-defined op with a weight, on an
/// image (per-channel weight in both layouts) and on a flat value.
#[test]
fn an_unregistered_op_runs_through_the_extension_point() {
    let mut s = spec(serde_json::json!({
        "input": [2, 3, 3],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 3, "kernel": 3, "padding": 1},
            {"op": "relu", "in": [1]},
            {"op": "flatten", "in": [2]},
            {"op": "linear", "in": [3], "name": "l", "out": 4},
            {"op": "relu", "in": [4]}
        ]
    }));
    s.nodes[1] = NodeSpec {
        op: scaled_square(0.5),
        inputs: vec![1],
        name: "sq".into(),
    };
    s.nodes[4] = NodeSpec {
        op: scaled_square(-1.5),
        inputs: vec![4],
        name: "sq2".into(),
    };
    check(&s, 12);
    // Its JSON is written like any op's; reading it back needs the registry.
    let text = serde_json::to_string(&s.nodes[1]).expect("json");
    assert_eq!(
        text,
        r#"{"op":"scaled_square","k":0.5,"in":[1],"name":"sq"}"#
    );
    let e = serde_json::from_str::<NodeSpec>(&text)
        .expect_err("not registered")
        .to_string();
    assert!(e.contains("unknown variant `scaled_square`"), "{e}");
    // Its refusals are named like a built-in op's.
    s.nodes[1].name.clear();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let e = Graph::new(&vb, &s, ValueShape::Image(2, 3, 3))
        .expect_err("no name")
        .to_string();
    assert!(e.contains("node 1 (scaled_square): needs a name"), "{e}");
    s.nodes[1] = NodeSpec {
        op: Op::ext(&ScaledSquare, Params::new()),
        inputs: vec![1],
        name: "sq".into(),
    };
    let e = Graph::new(&vb, &s, ValueShape::Image(2, 3, 3))
        .expect_err("no k")
        .to_string();
    assert!(
        e.contains("node 1 (scaled_square): missing field `k`"),
        "{e}"
    );
}

/// The U-Net ops of the registry: max pooling (with an odd side, whose last row is dropped) and transposed
/// convolutions (stride 2 with padding and output padding, then stride 2 without bias), held to finite
/// differences and autograd in both layouts.
#[test]
fn max_pool_and_conv_transpose_vjps_match_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 7, 6],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 3, "kernel": 3, "padding": 1},
            {"op": "max_pool", "in": [1], "kernel": 2},
            {"op": "conv_transpose2d", "in": [2], "name": "u1", "out": 4, "kernel": 3, "stride": 2,
             "padding": 1, "output_padding": 1},
            {"op": "tanh", "in": [3]},
            {"op": "conv_transpose2d", "in": [4], "name": "u2", "out": 2, "kernel": 2, "stride": 2,
             "bias": false},
            {"op": "max_pool", "in": [5], "kernel": 3},
            {"op": "flatten", "in": [6]},
            {"op": "linear", "in": [7], "name": "l", "out": 3}
        ]
    }));
    let (graph, _vars) = build(&s, 21);
    assert_eq!(graph.output_shape(), ValueShape::Flat(3));
    check(&s, 21);
}

/// `max_pool` is the maximum of each window, as candle's own `max_pool2d`; a tie shares the window's gradient.
#[test]
fn max_pool_computes_window_maxima_and_shares_ties() {
    let s = spec(
        serde_json::json!({"input": [2, 5, 4], "nodes": [{"op": "max_pool", "in": [0], "kernel": 2}]}),
    );
    let (graph, _vars) = build(&s, 3);
    let mut rng = Rng::new(4);
    let x = random(&mut rng, 3, 40);
    let want = x
        .reshape((3, 2, 5, 4))
        .and_then(|t| t.max_pool2d(2))
        .and_then(|t| t.flatten_from(1))
        .expect("reference");
    for nhwc in [true, false] {
        let (got, _) = graph.forward_layout(&x, nhwc, false).expect("forward");
        assert_eq!(values(&got), values(&want), "nhwc {nhwc}");
    }
    // One channel of zeros with a 3 in the first window: the 3 takes its window's gradient; the second window is
    // four tied zeros, which take a quarter of its gradient each.
    let s = spec(
        serde_json::json!({"input": [1, 2, 4], "nodes": [{"op": "max_pool", "in": [0], "kernel": 2}]}),
    );
    let (graph, _vars) = build(&s, 3);
    let x = Tensor::from_vec(
        vec![3.0f64, 0., 0., 0., 0., 0., 0., 0.],
        (1, 8),
        &Device::Cpu,
    )
    .expect("x");
    let g = Tensor::from_vec(vec![1.0f64, 2.0], (1, 2), &Device::Cpu).expect("g");
    for nhwc in [true, false] {
        let (y, cache) = graph.forward_layout(&x, nhwc, true).expect("forward");
        assert_eq!(values(&y), [3.0, 0.0]);
        let gx = values(&graph.vjp(&cache, &g).expect("vjp"));
        assert_eq!(gx, [1.0, 0., 0.5, 0.5, 0., 0., 0.5, 0.5], "nhwc {nhwc}");
    }
}

/// `conv_transpose2d` scatters each input pixel times the kernel into the output, `(h - 1) s - 2 p + k + op`
/// per side: checked against the definition written as loops.
#[test]
fn conv_transpose_computes_its_definition() {
    let (cin, cout, h, w, k, st, p, op) = (
        2usize, 3usize, 3usize, 4usize, 3usize, 2usize, 1usize, 1usize,
    );
    let s = spec(serde_json::json!({"input": [cin, h, w], "nodes": [
        {"op": "conv_transpose2d", "in": [0], "name": "u", "out": cout, "kernel": k, "stride": st,
         "padding": p, "output_padding": op}
    ]}));
    let (graph, vars) = build(&s, 5);
    let (oh, ow) = ((h - 1) * st + k + op - 2 * p, (w - 1) * st + k + op - 2 * p);
    assert_eq!(graph.output_shape(), ValueShape::Image(cout, oh, ow));
    let data = vars.data().lock().expect("lock");
    let wt = values(data["u.weight"].as_tensor());
    let b = values(data["u.bias"].as_tensor());
    drop(data);
    let mut rng = Rng::new(6);
    let x = random(&mut rng, 1, cin * h * w);
    let xs = values(&x);
    let mut want = vec![0.0f64; cout * oh * ow];
    for o in 0..cout {
        for v in want[o * oh * ow..(o + 1) * oh * ow].iter_mut() {
            *v = b[o];
        }
    }
    for c in 0..cin {
        for i in 0..h {
            for j in 0..w {
                for o in 0..cout {
                    for a in 0..k {
                        for bb in 0..k {
                            let (r, q) = (
                                (i * st + a) as i64 - p as i64,
                                (j * st + bb) as i64 - p as i64,
                            );
                            if r < 0 || q < 0 || r >= oh as i64 || q >= ow as i64 {
                                continue;
                            }
                            want[o * oh * ow + r as usize * ow + q as usize] +=
                                xs[c * h * w + i * w + j] * wt[((c * cout + o) * k + a) * k + bb];
                        }
                    }
                }
            }
        }
    }
    for nhwc in [true, false] {
        let (got, _) = graph.forward_layout(&x, nhwc, false).expect("forward");
        let err = values(&got)
            .iter()
            .zip(&want)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-12, "nhwc {nhwc}: differs by {err}");
    }
}

#[test]
fn max_pool_and_conv_transpose_refuse_bad_fields_in_one_line() {
    let cases = [
        (
            serde_json::json!({"op": "max_pool", "in": [0], "kernel": 9}),
            vec![2, 8, 8],
            "node 0 (max_pool): kernel 9 does not fit a 8x8 image",
        ),
        (
            serde_json::json!({"op": "max_pool", "in": [0], "kernel": 2}),
            vec![12],
            "node 0 (max_pool): needs an image input",
        ),
        (
            serde_json::json!({"op": "max_pool", "in": [0], "kernel": 2, "stride": 3}),
            vec![2, 8, 8],
            "node 0 (max_pool): stride 3 with kernel 2; walkjump's pooling windows touch or overlap",
        ),
        (
            serde_json::json!({"op": "max_pool", "in": [0], "kernel": 3, "stride": 1, "padding": 2}),
            vec![2, 8, 8],
            "node 0 (max_pool): padding 2 with kernel 3; at most half the kernel",
        ),
        (
            serde_json::json!({"op": "max_pool", "in": [0], "kernel": 2, "dilation": 2}),
            vec![2, 8, 8],
            "unknown field `dilation`",
        ),
        (
            serde_json::json!({"op": "pad2d", "in": [0], "top": 1, "mode": "wrap"}),
            vec![2, 8, 8],
            "unknown variant `wrap`, expected one of `constant`, `reflect`, `edge`",
        ),
        (
            serde_json::json!({"op": "pad2d", "in": [0], "left": 3, "mode": "reflect"}),
            vec![2, 4, 3],
            "node 0 (pad2d): reflects [0, 0, 3, 0] (top, bottom, left, right) of a 4x3 image",
        ),
        (
            serde_json::json!({"op": "pad2d", "in": [0], "top": 1000}),
            vec![2, 4, 3],
            "node 0 (pad2d): pads [1000, 0, 0, 0]; walkjump pads at most 256 on a side",
        ),
        (
            serde_json::json!({"op": "pad2d", "in": [0], "top": 1}),
            vec![12],
            "node 0 (pad2d): needs an image input",
        ),
        (
            serde_json::json!({"op": "conv_transpose2d", "in": [0], "out": 2, "kernel": 2}),
            vec![2, 8, 8],
            "node 0 (conv_transpose2d): needs a name",
        ),
        (
            serde_json::json!({"op": "conv_transpose2d", "in": [0], "name": "u", "out": 2, "kernel": 2, "stride": 2, "output_padding": 2}),
            vec![2, 8, 8],
            "output_padding 2, which must be below the stride 2",
        ),
        (
            serde_json::json!({"op": "conv_transpose2d", "in": [0], "name": "u", "out": 2, "kernel": 1, "padding": 3}),
            vec![2, 2, 2],
            "padding 3 leaves no output",
        ),
        (
            serde_json::json!({"op": "conv_transpose2d", "in": [0], "name": "u", "out": 0, "kernel": 2}),
            vec![2, 8, 8],
            "has 0 output channels, out of range 1..=65536",
        ),
        (
            serde_json::json!({"op": "conv_transpose2d", "in": [0], "name": "u", "out": 2, "kernel": 40}),
            vec![2, 8, 8],
            "walkjump takes kernels 1..=15",
        ),
        // Refused before its weight is made: 65536 channels of 130x130 (the weight alone would be 9 GB).
        (
            serde_json::json!({"op": "conv_transpose2d", "in": [0], "name": "u", "out": 65536, "kernel": 3, "stride": 2, "output_padding": 1}),
            vec![8192, 64, 64],
            "output [65536, 130, 130] has more than 16777216 values per sample",
        ),
        (
            serde_json::json!({"op": "upsample_bilinear", "in": [0], "scale": 0}),
            vec![2, 8, 8],
            "node 0 (upsample_bilinear): scale 0 out of range 1..=16",
        ),
        (
            serde_json::json!({"op": "upsample_bilinear", "in": [0], "scale": 2}),
            vec![64],
            "node 0 (upsample_bilinear): needs an image input",
        ),
    ];
    for (node, dims, want) in cases {
        let s = spec(serde_json::json!({"nodes": [node]}));
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let e = Graph::new(&vb, &s, ValueShape::from_dims(&dims).expect("dims"))
            .expect_err(want)
            .to_string();
        assert!(e.contains(want), "{e:?} should say {want:?}");
        assert!(!e.contains('\n'), "{e}");
    }
}

/// `upsample_bilinear` in both coordinate conventions, on odd sides, held to finite differences and autograd in
/// both layouts.
#[test]
fn upsample_bilinear_vjp_matches_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 3, 5],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 3, "kernel": 3, "padding": 1},
            {"op": "upsample_bilinear", "in": [1], "scale": 2},
            {"op": "tanh", "in": [2]},
            {"op": "upsample_bilinear", "in": [3], "scale": 3, "align_corners": true},
            {"op": "flatten", "in": [4]},
            {"op": "linear", "in": [5], "name": "l", "out": 2}
        ]
    }));
    check(&s, 31);
}

/// PyTorch's bilinear weights on a 2x2 image enlarged twice: half-pixel rows `[a, 3a/4 + b/4, a/4 + 3b/4, b]`,
/// corner-aligned rows `[a, 2a/3 + b/3, a/3 + 2b/3, b]`, the same along columns.
#[test]
fn upsample_bilinear_computes_pytorch_weights() {
    let row = |a: f64, b: f64, align: bool| -> [f64; 4] {
        if align {
            [a, (2.0 * a + b) / 3.0, (a + 2.0 * b) / 3.0, b]
        } else {
            [a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b]
        }
    };
    let x = [1.0, 5.0, -2.0, 3.0];
    for align in [false, true] {
        let s = spec(serde_json::json!({"input": [1, 2, 2], "nodes": [
            {"op": "upsample_bilinear", "in": [0], "scale": 2, "align_corners": align}
        ]}));
        let (graph, _vars) = build(&s, 1);
        let (top, bottom) = (row(x[0], x[1], align), row(x[2], x[3], align));
        let mut want = Vec::new();
        for r in 0..4 {
            let [a, b, c, d] = [0, 1, 2, 3].map(|k| row(top[k], bottom[k], align)[r]);
            want.extend([a, b, c, d]);
        }
        let input = Tensor::from_vec(x.to_vec(), (1, 4), &Device::Cpu).expect("x");
        for nhwc in [true, false] {
            let (got, _) = graph.forward_layout(&input, nhwc, false).expect("forward");
            let err = values(&got)
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err < 1e-12,
                "align {align}, nhwc {nhwc}: {:?} vs {want:?}",
                values(&got)
            );
        }
    }
}

/// The pointwise activations of the registry, chained on an image then a flat value (clip with bounds inside the
/// values' range, so that both of its pieces are used), held to finite differences and autograd in both layouts.
#[test]
fn pointwise_vjps_match_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 3, 3],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 3, "kernel": 3, "padding": 1},
            {"op": "hard_swish", "in": [1]},
            {"op": "hard_sigmoid", "in": [1], "alpha": 0.3},
            {"op": "mul", "in": [2, 3]},
            {"op": "selu", "in": [4]},
            {"op": "clip", "in": [5], "min": -0.5, "max": 0.8},
            {"op": "flatten", "in": [6]},
            {"op": "linear", "in": [7], "name": "l", "out": 6},
            {"op": "celu", "in": [8], "alpha": 0.7},
            {"op": "softsign", "in": [9]},
            {"op": "abs", "in": [8]},
            {"op": "add", "in": [10, 11]}
        ]
    }));
    check(&s, 41);
}

/// Each pointwise op's values against its formula, on both sides of its kinks.
#[test]
fn pointwise_ops_compute_their_definitions() {
    let xs: [f64; 8] = [-7.0, -3.5, -1.2, -0.3, 0.0, 0.4, 2.5, 6.5];
    let selu = |x: f64| {
        let (a, g) = (1.6732632423543772, 1.0507009873554805);
        g * if x > 0.0 { x } else { a * x.exp_m1() }
    };
    type Formula = Box<dyn Fn(f64) -> f64>;
    let cases: Vec<(serde_json::Value, Formula)> = vec![
        (
            serde_json::json!({"op": "hard_sigmoid"}),
            Box::new(|x| (0.2 * x + 0.5).clamp(0.0, 1.0)),
        ),
        (
            serde_json::json!({"op": "hard_sigmoid", "alpha": 1.0 / 6.0}),
            Box::new(|x| (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        ),
        (
            serde_json::json!({"op": "hard_swish"}),
            Box::new(|x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        ),
        (serde_json::json!({"op": "selu"}), Box::new(selu)),
        (
            serde_json::json!({"op": "celu", "alpha": 0.5}),
            Box::new(|x| x.max(0.0) + (0.5 * (x / 0.5).exp_m1()).min(0.0)),
        ),
        (
            serde_json::json!({"op": "softsign"}),
            Box::new(|x| x / (1.0 + x.abs())),
        ),
        (serde_json::json!({"op": "abs"}), Box::new(f64::abs)),
        (
            serde_json::json!({"op": "clip", "min": 0.0, "max": 6.0}),
            Box::new(|x| x.clamp(0.0, 6.0)),
        ),
    ];
    for (mut node, f) in cases {
        node["in"] = serde_json::json!([0]);
        let s = spec(serde_json::json!({"input": [8], "nodes": [node.clone()]}));
        let (graph, _vars) = build(&s, 1);
        let x = Tensor::from_vec(xs.to_vec(), (1, 8), &Device::Cpu).expect("x");
        for (got, x) in values(&graph.forward(&x).expect("forward")).iter().zip(xs) {
            // SELU's constants are written to f64 precision in PyTorch and to f32's here (ONNX stores f32).
            assert!(
                (got - f(x)).abs() < 1e-7 * f(x).abs().max(1.0),
                "{node}: f({x}) = {got}, want {}",
                f(x)
            );
        }
    }
    let s = spec(
        serde_json::json!({"input": [4], "nodes": [{"op": "clip", "in": [0], "min": 1.0, "max": 0.0}]}),
    );
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let e = Graph::new(&vb, &s, ValueShape::Flat(4))
        .expect_err("min > max")
        .to_string();
    assert!(e.contains("node 0 (clip): min 1 is above max 0"), "{e}");
    let s =
        spec(serde_json::json!({"input": [4], "nodes": [{"op": "selu", "in": [0], "beta": 1.0}]}));
    let e = Graph::new(&vb, &s, ValueShape::Flat(4))
        .expect_err("field")
        .to_string();
    assert!(
        e.contains("node 0 (selu): has no field `beta` (fields: alpha, gamma)"),
        "{e}"
    );
}

/// `div` of two values and the pointwise `exp`, `log`, `sqrt`, `reciprocal` (on positive values, from `exp`),
/// held to finite differences and autograd in both layouts; `div` equals `a / b`.
#[test]
fn div_and_exp_log_sqrt_reciprocal_vjps_match_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 3, 3],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 2, "kernel": 3, "padding": 1},
            {"op": "exp", "in": [1]},
            {"op": "sqrt", "in": [2]},
            {"op": "reciprocal", "in": [3]},
            {"op": "div", "in": [1, 2]},
            {"op": "log", "in": [3]},
            {"op": "add", "in": [4, 5]},
            {"op": "mul", "in": [7, 6]},
            {"op": "flatten", "in": [8]},
            {"op": "linear", "in": [9], "name": "l", "out": 4}
        ]
    }));
    check(&s, 51);
    let s = spec(serde_json::json!({"input": [3], "nodes": [
        {"op": "exp", "in": [0]},
        {"op": "div", "in": [0, 1]}
    ]}));
    let (graph, _vars) = build(&s, 1);
    let x = Tensor::from_vec(vec![-1.0f64, 0.0, 2.0], (1, 3), &Device::Cpu).expect("x");
    let got = values(&graph.forward(&x).expect("forward"));
    for (got, x) in got.iter().zip([-1.0f64, 0.0, 2.0]) {
        assert!((got - x / x.exp()).abs() < 1e-15, "{x}: {got}");
    }
    let s = spec(serde_json::json!({"input": [3], "nodes": [
        {"op": "linear", "in": [0], "name": "l", "out": 2},
        {"op": "div", "in": [0, 1]}
    ]}));
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let e = Graph::new(&vb, &s, ValueShape::Flat(3))
        .expect_err("shapes")
        .to_string();
    assert!(e.contains("node 1 (div): operands differ in shape"), "{e}");
}

/// `pixel_shuffle` in both channel orders and `prelu` on an image and a flat value, held to finite differences
/// and autograd in both layouts.
#[test]
fn pixel_shuffle_and_prelu_vjps_match_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 3, 2],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 8, "kernel": 3, "padding": 1},
            {"op": "pixel_shuffle", "in": [1], "factor": 2},
            {"op": "prelu", "in": [2], "name": "p"},
            {"op": "conv2d", "in": [3], "name": "d", "out": 9, "kernel": 3, "padding": 1},
            {"op": "pixel_shuffle", "in": [4], "factor": 3, "mode": "dcr"},
            {"op": "flatten", "in": [5]},
            {"op": "linear", "in": [6], "name": "l", "out": 5},
            {"op": "prelu", "in": [7], "name": "q"}
        ]
    }));
    check(&s, 61);
}

/// `pixel_shuffle` places input channel `c r^2 + i r + j` (CRD) or `(i r + j) C + c` (DCR) at offset `(i, j)`.
#[test]
fn pixel_shuffle_places_channels_as_pytorch_and_onnx() {
    let (c, r, h, w) = (2usize, 2usize, 2usize, 3usize);
    let x: Vec<f64> = (0..c * r * r * h * w).map(|v| v as f64).collect();
    for mode in ["crd", "dcr"] {
        let s = spec(serde_json::json!({"input": [c * r * r, h, w], "nodes": [
            {"op": "pixel_shuffle", "in": [0], "factor": r, "mode": mode}
        ]}));
        let (graph, _vars) = build(&s, 1);
        let mut want = vec![0.0; x.len()];
        for ch in 0..c {
            for y in 0..h * r {
                for xx in 0..w * r {
                    let (i, j) = (y % r, xx % r);
                    let src = if mode == "crd" {
                        ch * r * r + i * r + j
                    } else {
                        (i * r + j) * c + ch
                    };
                    want[(ch * h * r + y) * w * r + xx] = x[(src * h + y / r) * w + xx / r];
                }
            }
        }
        let input = Tensor::from_vec(x.clone(), (1, x.len()), &Device::Cpu).expect("x");
        for nhwc in [true, false] {
            let (got, _) = graph.forward_layout(&input, nhwc, false).expect("forward");
            assert_eq!(values(&got), want, "{mode}, nhwc {nhwc}");
        }
    }
    let s = spec(serde_json::json!({"nodes": [{"op": "pixel_shuffle", "in": [0], "factor": 2}]}));
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let e = Graph::new(&vb, &s, ValueShape::Image(6, 4, 4))
        .expect_err("channels")
        .to_string();
    assert!(
        e.contains("node 0 (pixel_shuffle): 6 channels do not divide into factor^2 = 4 groups"),
        "{e}"
    );
}

/// Grouped convolutions, depthwise (as many groups as channels, 5x5) and two groups with stride 2 on an even side
/// (whose VJP needs output padding), held to finite differences and autograd in both layouts. (Square: candle's own
/// autograd of a strided convolution pads both axes as the first, so a non-square input has no autograd reference;
/// the explicit VJP cuts each axis itself.)
#[test]
fn conv2d_grouped_vjp_matches_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 6, 6],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 4, "kernel": 3, "padding": 1},
            {"op": "conv2d_grouped", "in": [1], "name": "dw", "out": 4, "kernel": 5, "padding": 2, "groups": 4},
            {"op": "tanh", "in": [2]},
            {"op": "conv2d_grouped", "in": [3], "name": "g2", "out": 6, "kernel": 3, "stride": 2,
             "padding": 1, "groups": 2, "bias": false},
            {"op": "flatten", "in": [4]},
            {"op": "linear", "in": [5], "name": "l", "out": 3}
        ]
    }));
    check(&s, 71);
    let s = spec(serde_json::json!({"nodes": [
        {"op": "conv2d_grouped", "in": [0], "name": "g", "out": 4, "kernel": 3, "groups": 3}
    ]}));
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let e = Graph::new(&vb, &s, ValueShape::Image(6, 4, 4))
        .expect_err("groups")
        .to_string();
    assert!(
        e.contains("node 0 (conv2d_grouped): 3 groups do not divide 6 input and 4 output channels"),
        "{e}"
    );
}

/// Strided convolutions, plain and grouped, on a non-square input whose two axes need different output padding
/// in the VJP (5 rows none, 4 columns one): the explicit VJP against central finite differences, channels-first
/// (the layout of the GPU path, which goes through `conv_transpose2d`) and channels-last.
#[test]
fn strided_convolutions_on_non_square_inputs_have_exact_vjps() {
    let s = spec(serde_json::json!({
        "input": [2, 5, 4],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 4, "kernel": 3, "stride": 2, "padding": 1},
            {"op": "tanh", "in": [1]},
            {"op": "conv2d_grouped", "in": [0], "name": "g", "out": 4, "kernel": 3, "stride": 2,
             "padding": 1, "groups": 2},
            {"op": "mul", "in": [2, 3]},
            {"op": "flatten", "in": [4]}
        ]
    }));
    let (graph, _vars) = build(&s, 81);
    let mut rng = Rng::new(82);
    let (n, d) = (2, 40);
    let x = random(&mut rng, n, d);
    let gout = random(&mut rng, n, graph.output_shape().numel());
    for nhwc in [false, true] {
        let objective = |x: &Tensor| -> f64 {
            let (y, _) = graph.forward_layout(x, nhwc, true).expect("forward");
            (y * &gout)
                .and_then(|t| t.sum_all())
                .and_then(|t| t.to_scalar::<f64>())
                .expect("objective")
        };
        let (_, cache) = graph.forward_layout(&x, nhwc, true).expect("forward");
        let vjp = values(&graph.vjp(&cache, &gout).expect("vjp"));
        let base = values(&x);
        let h = 1e-5;
        let mut worst = 0.0f64;
        for k in 0..base.len() {
            let shifted = |e: f64| {
                let mut v = base.clone();
                v[k] += e;
                Tensor::from_vec(v, (n, d), &Device::Cpu).expect("t")
            };
            let fd = (objective(&shifted(h)) - objective(&shifted(-h))) / (2.0 * h);
            worst = worst.max((fd - vjp[k]).abs() / fd.abs().max(1.0));
        }
        assert!(
            worst < 1e-6,
            "nhwc {nhwc}: VJP vs finite differences {worst}"
        );
    }
}
