//! Every op's VJP against central finite differences and candle's autograd, in both image layouts, and the
//! refusals of malformed graphs.

use std::collections::HashMap;

use candle_core::{DType, Device, Var};
use candle_nn::VarMap;

use super::*;
use crate::rng::Rng;

fn spec(json: serde_json::Value) -> GraphSpec {
    serde_json::from_value(json).expect("graph spec")
}

/// A graph with every image op: convolutions with and without stride, group norm, pooling, upsampling, a skip
/// concatenation, a residual add, batch norm, then dense ops with layer norm, products and every activation.
fn unet_like() -> GraphSpec {
    spec(serde_json::json!({
        "input": [2, 6, 6],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c0", "out": 4, "kernel": 3, "padding": 1},
            {"op": "group_norm", "in": [1], "name": "g0", "groups": 2},
            {"op": "silu", "in": [2]},
            {"op": "avg_pool", "in": [3], "kernel": 2},
            {"op": "conv2d", "in": [4], "name": "c1", "out": 4, "kernel": 3, "padding": 1, "bias": false},
            {"op": "gelu", "in": [5]},
            {"op": "upsample", "in": [6], "scale": 2},
            {"op": "concat", "in": [7, 3]},
            {"op": "conv2d", "in": [8], "name": "c2", "out": 2, "kernel": 3, "stride": 2, "padding": 1},
            {"op": "upsample", "in": [9], "scale": 2},
            {"op": "add", "in": [10, 0]},
            {"op": "elu", "in": [11]},
            {"op": "batch_norm", "in": [12], "name": "b0"},
            {"op": "flatten", "in": [13]},
            {"op": "linear", "in": [14], "name": "f0", "out": 5},
            {"op": "layer_norm", "in": [15], "name": "ln"},
            {"op": "tanh", "in": [16]},
            {"op": "mul", "in": [17, 16]},
            {"op": "leaky_relu", "in": [18], "alpha": 0.2},
            {"op": "softplus", "in": [19], "beta": 2.0},
            {"op": "sub", "in": [20, 19]},
            {"op": "sigmoid", "in": [21]},
            {"op": "affine", "in": [22], "mul": 2.0, "add": 1.0},
            {"op": "gelu", "in": [23], "tanh": true},
            {"op": "relu", "in": [24]},
            {"op": "channel_mul", "in": [25], "name": "cm"},
            {"op": "channel_add", "in": [26], "name": "ca"},
            {"op": "erf", "in": [27]}
        ]
    }))
}

/// Flat input, a value read three times, global pooling, reductions.
fn fan_out() -> GraphSpec {
    spec(serde_json::json!({
        "input": [7],
        "nodes": [
            {"op": "linear", "in": [0], "name": "a", "out": 12},
            {"op": "silu", "in": [1]},
            {"op": "unflatten", "in": [2], "shape": [3, 2, 2]},
            {"op": "global_avg_pool", "in": [3]},
            {"op": "flatten", "in": [4]},
            {"op": "concat", "in": [5, 2]},
            {"op": "reduce_mean", "in": [6]},
            {"op": "reduce_sum", "in": [2]},
            {"op": "add", "in": [7, 8]},
            {"op": "linear", "in": [2], "name": "b", "out": 1, "bias": false},
            {"op": "mul", "in": [9, 10]}
        ]
    }))
}

/// Pooling that drops a row and a column (5x5 by 2), a strided convolution needing output padding.
fn odd_sizes() -> GraphSpec {
    spec(serde_json::json!({
        "input": [2, 5, 5],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 3, "kernel": 3, "stride": 2, "padding": 1},
            {"op": "softplus", "in": [1]},
            {"op": "channel_mul", "in": [0], "name": "m"},
            {"op": "avg_pool", "in": [3], "kernel": 2},
            {"op": "flatten", "in": [4]},
            {"op": "flatten", "in": [2]},
            {"op": "concat", "in": [6, 5]},
            {"op": "linear", "in": [7], "name": "o", "out": 3}
        ]
    }))
}

/// The graph with parameters drawn from our RNG (norm scales around 1), as trainable `Var`s in f64.
fn build(spec: &GraphSpec, seed: u64) -> (Graph, VarMap) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let dims = spec.input.clone().expect("input");
    let graph = Graph::new(&vb, spec, ValueShape::from_dims(&dims).expect("dims")).expect("graph");
    let mut rng = Rng::new(seed);
    let data = varmap.data().lock().expect("lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let n = var.elem_count();
        let values: Vec<f64> = (0..n)
            .map(|_| {
                let z = rng.normal();
                if name.ends_with("running_var") {
                    0.5 + z.abs()
                } else if var.rank() == 1 && name.ends_with("weight") {
                    1.0 + 0.3 * z
                } else {
                    0.5 * z
                }
            })
            .collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).expect("t"))
            .expect("set");
    }
    drop(data);
    // Rebuild from the set values (batch norm folds its statistics when built).
    let frozen: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().copy().expect("copy")))
        .collect();
    let vb = VarBuilder::from_tensors(frozen, DType::F64, &Device::Cpu);
    let graph2 = Graph::new(&vb, spec, graph.input_shape()).expect("graph");
    (graph2, varmap)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f64>())
        .expect("values")
}

fn random(rng: &mut Rng, n: usize, d: usize) -> Tensor {
    Tensor::from_vec(rng.normal_vec(n * d), (n, d), &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F64))
        .expect("random")
}

/// `<graph(x), gout>` in both layouts agree; its gradient by the explicit VJP equals central finite differences
/// (h = 1e-5, f64: truncation error ~1e-10 relative) and candle's autograd through the forward pass.
fn check(spec: &GraphSpec, seed: u64) {
    let (graph, _vars) = build(spec, seed);
    let mut rng = Rng::new(seed + 100);
    let n = 3;
    let d = graph.input_shape().numel();
    let x = random(&mut rng, n, d);
    let gout = random(&mut rng, n, graph.output_shape().numel());
    let objective = |x: &Tensor, nhwc: bool| -> f64 {
        let (y, _) = graph.forward_layout(x, nhwc, true).expect("forward");
        (y * &gout)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("objective")
    };
    for nhwc in [true, false] {
        let (y, cache) = graph.forward_layout(&x, nhwc, true).expect("forward");
        assert_eq!(y.dims(), [n, graph.output_shape().numel()]);
        let vjp = values(&graph.vjp(&cache, &gout).expect("vjp"));
        let base = values(&x);
        let h = 1e-5;
        let mut fd = Vec::with_capacity(base.len());
        for k in 0..base.len() {
            let mut plus = base.clone();
            plus[k] += h;
            let mut minus = base.clone();
            minus[k] -= h;
            let xp = Tensor::from_vec(plus, (n, d), &Device::Cpu).expect("t");
            let xm = Tensor::from_vec(minus, (n, d), &Device::Cpu).expect("t");
            fd.push((objective(&xp, nhwc) - objective(&xm, nhwc)) / (2.0 * h));
        }
        let scale = fd.iter().map(|v| v.abs()).fold(1e-12, f64::max);
        let err = vjp
            .iter()
            .zip(&fd)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
            / scale;
        assert!(
            err < 1e-6,
            "nhwc {nhwc}: VJP vs finite differences, rel err {err}"
        );

        let xv = Var::from_tensor(&x).expect("var");
        let (y, _) = graph
            .forward_layout(xv.as_tensor(), nhwc, true)
            .expect("forward");
        let grads = (y * &gout)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .expect("backward");
        let auto = values(grads.get(xv.as_tensor()).expect("grad of x"));
        let err = vjp
            .iter()
            .zip(&auto)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
            / scale;
        assert!(err < 1e-10, "nhwc {nhwc}: VJP vs autograd, rel err {err}");
    }
    let (a, _) = graph.forward_layout(&x, true, true).expect("forward");
    let (b, _) = graph.forward_layout(&x, false, true).expect("forward");
    let diff = values(&(&a - b).expect("diff"))
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(diff < 1e-12, "layouts disagree by {diff}");
    // The forward pass that no VJP follows gives the very same values.
    let c = graph.forward(&x).expect("forward only");
    assert_eq!(values(&a), values(&c), "forward-only pass differs");
}

#[test]
fn image_ops_vjp_matches_finite_differences_and_autograd() {
    check(&unet_like(), 1);
}

#[test]
fn fan_out_and_reductions_vjp_matches_finite_differences_and_autograd() {
    check(&fan_out(), 2);
}

#[test]
fn cropping_pool_and_strided_conv_vjp_matches_finite_differences() {
    check(&odd_sizes(), 3);
}

#[test]
fn shapes_are_inferred_per_node() {
    let (graph, _) = build(&unet_like(), 1);
    let shapes: Vec<String> = graph
        .describe_nodes()
        .iter()
        .map(|(op, s)| format!("{op}{}", s.describe()))
        .collect();
    assert_eq!(shapes[3], "avg_pool[4, 3, 3]");
    assert_eq!(shapes[7], "concat[8, 6, 6]");
    assert_eq!(shapes[8], "conv2d[2, 3, 3]");
    assert_eq!(shapes[13], "flatten[72]");
    assert_eq!(graph.output_shape(), ValueShape::Flat(5));
    assert_eq!(graph.len(), 28);
}

#[test]
fn graph_json_round_trips() {
    for s in [unet_like(), fan_out(), odd_sizes()] {
        let text = serde_json::to_string(&s).expect("to json");
        let back: GraphSpec = serde_json::from_str(&text).expect("from json");
        assert_eq!(back, s);
    }
}

#[test]
fn malformed_graphs_are_refused_with_the_node_named() {
    let refuse = |json: serde_json::Value, want: &str| {
        let s = spec(json);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let err = Graph::new(&vb, &s, ValueShape::Image(1, 4, 4))
            .expect_err("must refuse")
            .to_string();
        assert!(err.contains(want), "{err:?} should say {want:?}");
        assert!(!err.contains('\n'), "one line: {err:?}");
    };
    refuse(serde_json::json!({"nodes": []}), "1 to 4096 nodes");
    refuse(
        serde_json::json!({"nodes": [{"op": "relu", "in": [1]}]}),
        "node 0 (relu): reads value 1",
    );
    refuse(
        serde_json::json!({"nodes": [{"op": "add", "in": [0]}]}),
        "node 0 (add): takes 2 inputs, got 1",
    );
    refuse(
        serde_json::json!({"nodes": [{"op": "linear", "in": [0], "name": "l", "out": 3}]}),
        "node 0 (linear): needs a flat input, got an image [1, 4, 4]",
    );
    refuse(
        serde_json::json!({"nodes": [{"op": "conv2d", "in": [0], "out": 3, "kernel": 3}]}),
        "node 0 (conv2d): needs a name",
    );
    refuse(
        serde_json::json!({"nodes": [
            {"op": "avg_pool", "in": [0], "kernel": 2},
            {"op": "concat", "in": [0, 1]}
        ]}),
        "node 1 (concat): joins images along channels",
    );
    refuse(
        serde_json::json!({"nodes": [{"op": "group_norm", "in": [0], "name": "g", "groups": 3}]}),
        "3 groups do not divide 1 channels",
    );
    refuse(
        serde_json::json!({"nodes": [{"op": "flatten", "in": [0]}, {"op": "linear", "in": [1], "name": "l", "out": 100000}]}),
        "width 100000 is out of range",
    );
    refuse(
        serde_json::json!({"nodes": [{"op": "upsample", "in": [0], "scale": 16}, {"op": "upsample", "in": [1], "scale": 16}, {"op": "upsample", "in": [2], "scale": 16}]}),
        "values per sample",
    );
    refuse(
        serde_json::json!({"input": [5], "nodes": [{"op": "relu", "in": [0]}]}),
        "does not hold the model's 16 values",
    );
    assert!(
        serde_json::from_value::<GraphSpec>(
            serde_json::json!({"nodes": [{"op": "warp", "in": [0]}]})
        )
        .is_err()
    );
}

/// A score network as `walkjump convert` writes it, `x + mul * t(x)` on an image input: the tail is found, the
/// value `t` alone equals `(out - x) / mul` of the whole graph, and graphs of other forms have no tail.
#[test]
fn residual_tail_gives_the_scaled_value_alone() {
    let tail = spec(serde_json::json!({
        "input": [1, 4, 4],
        "nodes": [
            {"op": "flatten", "in": [0]},
            {"op": "linear", "in": [1], "name": "a", "out": 16},
            {"op": "silu", "in": [2]},
            {"op": "linear", "in": [3], "name": "b", "out": 16},
            {"op": "unflatten", "in": [4], "shape": [1, 4, 4]},
            {"op": "affine", "in": [5], "mul": 0.25, "add": 0.0},
            {"op": "add", "in": [6, 0]}
        ]
    }));
    let (graph, _vars) = build(&tail, 4);
    assert_eq!(graph.residual_tail(), Some((5, 0.25)));
    let x = random(&mut Rng::new(9), 3, 16);
    let out = graph.forward(&x).expect("forward");
    let t = graph.forward_value(&x, 5).expect("value");
    let want = ((out - &x).expect("diff") / 0.25).expect("scaled");
    for (g, w) in values(&t).iter().zip(values(&want)) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
    // The linear + SiLU pair is not fused past the value asked for.
    let h = graph.forward_value(&x, 2).expect("pre-activation");
    assert_eq!(h.dims(), [3, 16]);
    assert!(
        values(&h).iter().any(|v| *v < 0.0),
        "a pre-activation has negative values"
    );
    assert!(graph.forward_value(&x, 0).is_err());
    assert!(graph.forward_value(&x, 8).is_err());
    // A residual denoiser `x + t(x)`: mul = 1.
    let residual = spec(serde_json::json!({
        "input": [1, 4, 4],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 1, "kernel": 3, "padding": 1},
            {"op": "add", "in": [0, 1]}
        ]
    }));
    let (graph, _vars) = build(&residual, 5);
    assert_eq!(graph.residual_tail(), Some((1, 1.0)));
    let out = graph.forward(&x).expect("forward");
    let t = graph.forward_value(&x, 1).expect("value");
    let want = (out - &x).expect("diff");
    for (g, w) in values(&t).iter().zip(values(&want)) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
    for other in [unet_like(), fan_out(), odd_sizes()] {
        assert_eq!(build(&other, 1).0.residual_tail(), None);
    }
}

/// The forward-only pass (activations in place over fresh layer outputs, value-only kernels) gives the values of
/// the pass that keeps its cache, and leaves its input untouched. (An in-place activation off by 1e-4 fails it.)
#[test]
fn forward_only_equals_the_cached_forward() {
    for s in [unet_like(), fan_out(), odd_sizes()] {
        // Weights that track no gradient (as loaded from a checkpoint), so that the CPU fast paths run.
        let (built, vars) = build(&s, 6);
        let frozen: HashMap<String, Tensor> = vars
            .data()
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect();
        let vb = VarBuilder::from_tensors(frozen, DType::F64, &Device::Cpu);
        let graph = Graph::new(&vb, &s, built.input_shape()).expect("frozen graph");
        let x = random(&mut Rng::new(10), 4, graph.input_shape().numel());
        let before = values(&x);
        let fast = graph.forward(&x).expect("forward");
        let (cached, _) = graph.forward_cached(&x).expect("cached");
        // The two passes round differently in places (value-only kernels, fusions): f64 rounding, nothing more.
        for (f, c) in values(&fast).iter().zip(values(&cached)) {
            assert!((f - c).abs() <= 1e-12 * c.abs().max(1.0), "{f} vs {c}");
        }
        assert_eq!(values(&x), before);
    }
}

/// The registered ops and a test-defined op through the extension point (`ops`).
mod registry;
/// Padding, overlapping pools, dilation and attention (ops of the registry over windows and pixels).
mod windows;
