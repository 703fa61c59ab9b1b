//! This session's registry ops over windows and pixels: padding, overlapping and padded pooling (max and average),
//! dilated convolutions, attention over pixels and channel slices, each against finite differences, autograd
//! and its definition as loops.

use super::*;

/// Padding in its three modes (uneven sides) and overlapping, padded max pooling (a ResNet stem's 3 / 2 / 1, and
/// 2 / 1), held to finite differences and autograd in both layouts. A convolution sits between each reflect or edge
/// pad and the next pool: a window holding a pixel and its copy is a tie, which candle's autograd of the maximum
/// counts twice (the VJP shares it, as finite differences do).
#[test]
fn pad_and_overlapping_max_pool_vjps_match_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 7, 6],
        "nodes": [
            {"op": "pad2d", "in": [0], "top": 1, "bottom": 2, "right": 1, "mode": "reflect"},
            {"op": "conv2d", "in": [1], "name": "c", "out": 3, "kernel": 3, "padding": 1},
            {"op": "max_pool", "in": [2], "kernel": 3, "stride": 2, "padding": 1},
            {"op": "pad2d", "in": [3], "top": 2, "left": 1, "right": 1, "mode": "edge"},
            {"op": "conv2d", "in": [4], "name": "d", "out": 2, "kernel": 3, "padding": 1},
            {"op": "tanh", "in": [5]},
            {"op": "max_pool", "in": [6], "kernel": 2, "stride": 1},
            {"op": "pad2d", "in": [7], "bottom": 1, "left": 1, "value": 0.3},
            {"op": "flatten", "in": [8]},
            {"op": "linear", "in": [9], "name": "l", "out": 3}
        ]
    }));
    let (graph, _vars) = build(&s, 31);
    // 7x6 -> 10x7 -> 5x4 -> 7x6 -> 6x5 -> 7x6.
    assert_eq!(graph.output_shape(), ValueShape::Flat(3));
    check(&s, 31);
}

/// Overlapping max pooling is the maximum over each window of the input padded with minus infinity (a loop over
/// windows), for several kernels, strides and paddings, in both layouts.
#[test]
fn overlapping_max_pool_computes_window_maxima() {
    let (c, h, w) = (2, 7, 6);
    for (k, st, p) in [(3, 2, 1), (2, 1, 0), (3, 1, 1), (4, 3, 2), (3, 3, 1)] {
        let s = spec(serde_json::json!({"input": [c, h, w], "nodes": [
            {"op": "max_pool", "in": [0], "kernel": k, "stride": st, "padding": p}
        ]}));
        let (graph, _vars) = build(&s, 3);
        let (oh, ow) = ((h + 2 * p - k) / st + 1, (w + 2 * p - k) / st + 1);
        assert_eq!(graph.output_shape(), ValueShape::Image(c, oh, ow));
        let mut rng = Rng::new(5);
        let x = random(&mut rng, 2, c * h * w);
        let xs = values(&x);
        let mut want = Vec::new();
        for n in 0..2 {
            for ch in 0..c {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut m = f64::NEG_INFINITY;
                        for a in 0..k {
                            for b in 0..k {
                                let (r, q) = (
                                    (i * st + a) as i64 - p as i64,
                                    (j * st + b) as i64 - p as i64,
                                );
                                if (0..h as i64).contains(&r) && (0..w as i64).contains(&q) {
                                    m = m.max(xs[((n * c + ch) * h + r as usize) * w + q as usize]);
                                }
                            }
                        }
                        want.push(m);
                    }
                }
            }
        }
        for nhwc in [true, false] {
            let (got, _) = graph.forward_layout(&x, nhwc, false).expect("forward");
            assert_eq!(values(&got), want, "k {k} s {st} p {p} nhwc {nhwc}");
        }
    }
}

/// `pad2d` fills with the constant, the mirror image or the edge (a loop over cells), in both layouts, and its VJP
/// adds up the gradient of every copy of a pixel.
#[test]
fn pad2d_fills_each_mode_and_sums_copies() {
    let (h, w) = (3, 4);
    let (t, b, l, r) = (2, 1, 0, 3);
    for mode in ["constant", "reflect", "edge"] {
        let s = spec(serde_json::json!({"input": [1, h, w], "nodes": [
            {"op": "pad2d", "in": [0], "top": t, "bottom": b, "left": l, "right": r, "mode": mode, "value": -2.5}
        ]}));
        let (graph, _vars) = build(&s, 3);
        let x = Tensor::arange(0.0f64, (h * w) as f64, &Device::Cpu)
            .and_then(|t| t.reshape((1, h * w)))
            .expect("x");
        let source = |j: usize, before: usize, n: usize| -> Option<usize> {
            let i = j as i64 - before as i64;
            let last = n as i64 - 1;
            match mode {
                "reflect" => Some(if i < 0 {
                    -i
                } else if i > last {
                    2 * last - i
                } else {
                    i
                } as usize),
                "edge" => Some(i.clamp(0, last) as usize),
                _ => (0..=last).contains(&i).then_some(i as usize),
            }
        };
        let (ph, pw) = (t + h + b, l + w + r);
        let mut want = Vec::new();
        let mut copies = vec![0.0; h * w];
        for i in 0..ph {
            for j in 0..pw {
                match (source(i, t, h), source(j, l, w)) {
                    (Some(a), Some(c)) => {
                        want.push((a * w + c) as f64);
                        copies[a * w + c] += 1.0;
                    }
                    _ => want.push(-2.5),
                }
            }
        }
        for nhwc in [true, false] {
            let (y, cache) = graph.forward_layout(&x, nhwc, true).expect("forward");
            assert_eq!(values(&y), want, "{mode} nhwc {nhwc}");
            let ones = Tensor::ones((1, ph * pw), DType::F64, &Device::Cpu).expect("g");
            let gx = values(&graph.vjp(&cache, &ones).expect("vjp"));
            assert_eq!(gx, copies, "{mode} nhwc {nhwc}");
        }
    }
}

/// An attention block as U-Nets have it (a 1x1 convolution to queries, keys and values, split by channels, two
/// heads, a 1x1 projection added back) and a one-head self-attention of a value with itself at a given scale, held to
/// finite differences and autograd in both layouts.
#[test]
fn attention_and_slice_channels_vjps_match_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 3, 4],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 4, "kernel": 3, "padding": 1},
            {"op": "conv2d", "in": [1], "name": "qkv", "out": 12, "kernel": 1},
            {"op": "slice_channels", "in": [2], "start": 0, "len": 4},
            {"op": "slice_channels", "in": [2], "start": 4, "len": 4},
            {"op": "slice_channels", "in": [2], "start": 8, "len": 4},
            {"op": "attention", "in": [3, 4, 5], "heads": 2},
            {"op": "conv2d", "in": [6], "name": "proj", "out": 4, "kernel": 1},
            {"op": "add", "in": [7, 1]},
            {"op": "tanh", "in": [8]},
            {"op": "attention", "in": [9, 9, 9], "scale": 0.7},
            {"op": "flatten", "in": [10]},
            {"op": "slice_channels", "in": [11], "start": 5, "len": 30},
            {"op": "linear", "in": [12], "name": "l", "out": 3}
        ]
    }));
    let (graph, _vars) = build(&s, 41);
    assert_eq!(graph.output_shape(), ValueShape::Flat(3));
    check(&s, 41);
}

/// `attention` is softmax(scale q_i . k_j) over keys j, weighting the values, per head (a loop over pixels).
#[test]
fn attention_computes_its_definition() {
    let (heads, d, e, h, w) = (2, 3, 2, 2, 3);
    let l = h * w;
    let (cq, cv) = (heads * d, heads * e);
    let s = spec(serde_json::json!({"input": [2 * cq + cv, h, w], "nodes": [
        {"op": "slice_channels", "in": [0], "start": 0, "len": cq},
        {"op": "slice_channels", "in": [0], "start": cq, "len": cq},
        {"op": "slice_channels", "in": [0], "start": 2 * cq, "len": cv},
        {"op": "attention", "in": [1, 2, 3], "heads": heads}
    ]}));
    let (graph, _vars) = build(&s, 3);
    assert_eq!(graph.output_shape(), ValueShape::Image(cv, h, w));
    let mut rng = Rng::new(8);
    let x = random(&mut rng, 2, (2 * cq + cv) * l);
    let xs = values(&x);
    let per = (2 * cq + cv) * l;
    // Channel ch, pixel t of sample n (channels-first, as the graph's flat input).
    let at = |n: usize, ch: usize, t: usize| xs[n * per + ch * l + t];
    let scale = 1.0 / (d as f64).sqrt();
    let mut want = vec![0.0; 2 * cv * l];
    for n in 0..2 {
        for hd in 0..heads {
            for i in 0..l {
                let scores: Vec<f64> = (0..l)
                    .map(|j| {
                        (0..d)
                            .map(|a| at(n, hd * d + a, i) * at(n, cq + hd * d + a, j))
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
                let total: f64 = z.iter().sum();
                for b in 0..e {
                    let ch = hd * e + b;
                    want[n * cv * l + ch * l + i] =
                        (0..l).map(|j| z[j] / total * at(n, 2 * cq + ch, j)).sum();
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
fn attention_and_slice_channels_refuse_bad_inputs_in_one_line() {
    let cases = [
        (
            serde_json::json!([{"op": "attention", "in": [0, 0, 0], "heads": 3}]),
            vec![4, 2, 2],
            "node 0 (attention): 3 heads do not divide 4 query and 4 value channels",
        ),
        (
            serde_json::json!([{"op": "attention", "in": [0, 0, 0]}]),
            vec![12],
            "node 0 (attention): attends over the pixels of images, got [12]",
        ),
        (
            serde_json::json!([{"op": "attention", "in": [0, 0, 0]}]),
            vec![1, 80, 80],
            "node 0 (attention): attends over 6400 pixels (80x80); walkjump attends over at most 4096",
        ),
        (
            serde_json::json!([
                {"op": "avg_pool", "in": [0], "kernel": 2},
                {"op": "attention", "in": [0, 1, 0]}
            ]),
            vec![2, 4, 4],
            "node 1 (attention): queries [2, 4, 4], keys [2, 2, 2] and values [2, 4, 4] must have one size",
        ),
        (
            serde_json::json!([{"op": "slice_channels", "in": [0], "start": 3, "len": 2}]),
            vec![4, 2, 2],
            "node 0 (slice_channels): channels 3 .. 5 are not inside the 4 of [4, 2, 2]",
        ),
        (
            serde_json::json!([{"op": "slice_channels", "in": [0], "start": 0, "len": 0}]),
            vec![4],
            "node 0 (slice_channels): channels 0 .. 0 are not inside",
        ),
    ];
    for (nodes, dims, want) in cases {
        let s = spec(serde_json::json!({"nodes": nodes}));
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let e = Graph::new(&vb, &s, ValueShape::from_dims(&dims).expect("dims"))
            .expect_err(want)
            .to_string();
        assert!(e.contains(want), "{e:?} should say {want:?}");
        assert!(!e.contains('\n'), "{e}");
    }
}

/// Dilated convolutions (`conv2d_grouped` with `dilation`): one group with dilation 2 keeping the size (padding 2),
/// dilation 3 with stride 2 on an odd side, and a depthwise one with dilation 2, held to finite differences and
/// autograd in both layouts; the value equals the plain convolution with the kernel spread out by zeros.
#[test]
fn dilated_convolutions_match_finite_differences_autograd_and_a_spread_kernel() {
    let s = spec(serde_json::json!({
        "input": [2, 7, 7],
        "nodes": [
            {"op": "conv2d_grouped", "in": [0], "name": "d2", "out": 4, "kernel": 3, "padding": 2,
             "groups": 1, "dilation": 2},
            {"op": "tanh", "in": [1]},
            {"op": "conv2d_grouped", "in": [2], "name": "d3", "out": 4, "kernel": 2, "stride": 2,
             "padding": 1, "groups": 1, "dilation": 3},
            {"op": "conv2d_grouped", "in": [3], "name": "dw", "out": 4, "kernel": 3, "padding": 2,
             "groups": 4, "dilation": 2},
            {"op": "flatten", "in": [4]},
            {"op": "linear", "in": [5], "name": "l", "out": 3}
        ]
    }));
    let (graph, _vars) = build(&s, 91);
    assert_eq!(graph.output_shape(), ValueShape::Flat(3));
    check(&s, 91);
    // Dilation 2 of a 3x3 kernel is the 5x5 kernel with zeros between its taps.
    let dilated = spec(serde_json::json!({"input": [1, 6, 5], "nodes": [
        {"op": "conv2d_grouped", "in": [0], "name": "d", "out": 1, "kernel": 3, "padding": 1,
         "groups": 1, "dilation": 2, "bias": false}
    ]}));
    let (graph, vars) = build(&dilated, 5);
    let w = vars
        .data()
        .lock()
        .expect("vars")
        .get("d.weight")
        .expect("weight")
        .as_tensor()
        .clone();
    let wv = values(&w);
    let mut spread = vec![0.0; 25];
    for a in 0..3 {
        for b in 0..3 {
            spread[(2 * a) * 5 + 2 * b] = wv[a * 3 + b];
        }
    }
    let spread = Tensor::from_vec(spread, (1, 1, 5, 5), &Device::Cpu).expect("spread");
    let mut rng = Rng::new(6);
    let x = random(&mut rng, 2, 30);
    let want = x
        .reshape((2, 1, 6, 5))
        .and_then(|t| t.conv2d(&spread, 1, 1, 1, 1))
        .and_then(|t| t.flatten_from(1))
        .expect("reference");
    for nhwc in [true, false] {
        let (got, _) = graph.forward_layout(&x, nhwc, false).expect("forward");
        let err = values(&got)
            .iter()
            .zip(values(&want))
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-12, "nhwc {nhwc}: differs by {err}");
    }
}

/// Average pooling with overlapping and padded windows (`avg_pool2d`), counting the padding or not, held to finite
/// differences and autograd in both layouts.
#[test]
fn avg_pool2d_vjp_matches_finite_differences_and_autograd() {
    let s = spec(serde_json::json!({
        "input": [2, 7, 6],
        "nodes": [
            {"op": "conv2d", "in": [0], "name": "c", "out": 3, "kernel": 3, "padding": 1},
            {"op": "avg_pool2d", "in": [1], "kernel": 3, "stride": 2, "padding": 1},
            {"op": "tanh", "in": [2]},
            {"op": "avg_pool2d", "in": [3], "kernel": 3, "stride": 1, "padding": 1,
             "count_include_pad": false},
            {"op": "avg_pool2d", "in": [4], "kernel": 2, "stride": 1},
            {"op": "flatten", "in": [5]},
            {"op": "linear", "in": [6], "name": "l", "out": 3}
        ]
    }));
    let (graph, _vars) = build(&s, 51);
    assert_eq!(graph.output_shape(), ValueShape::Flat(3));
    check(&s, 51);
}

/// `avg_pool2d` is the window's sum over the cells it counts (a loop over windows), for several kernels, strides,
/// paddings and both counts, in both layouts.
#[test]
fn avg_pool2d_computes_window_means() {
    let (c, h, w) = (2, 7, 6);
    for (k, st, p, include) in [
        (3, 2, 1, true),
        (3, 2, 1, false),
        (5, 1, 2, true),
        (5, 1, 2, false),
        (2, 1, 0, true),
        (4, 3, 2, false),
    ] {
        let s = spec(serde_json::json!({"input": [c, h, w], "nodes": [
            {"op": "avg_pool2d", "in": [0], "kernel": k, "stride": st, "padding": p,
             "count_include_pad": include}
        ]}));
        let (graph, _vars) = build(&s, 3);
        let (oh, ow) = ((h + 2 * p - k) / st + 1, (w + 2 * p - k) / st + 1);
        assert_eq!(graph.output_shape(), ValueShape::Image(c, oh, ow));
        let mut rng = Rng::new(9);
        let x = random(&mut rng, 2, c * h * w);
        let xs = values(&x);
        let mut want = Vec::new();
        for n in 0..2 {
            for ch in 0..c {
                for i in 0..oh {
                    for j in 0..ow {
                        let (mut sum, mut cells) = (0.0, 0);
                        for a in 0..k {
                            for b in 0..k {
                                let r = (i * st + a) as i64 - p as i64;
                                let q = (j * st + b) as i64 - p as i64;
                                if (0..h as i64).contains(&r) && (0..w as i64).contains(&q) {
                                    sum += xs[((n * c + ch) * h + r as usize) * w + q as usize];
                                    cells += 1;
                                }
                            }
                        }
                        want.push(sum / if include { k * k } else { cells } as f64);
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
            assert!(
                err < 1e-12,
                "k {k} s {st} p {p} {include} nhwc {nhwc}: {err}"
            );
        }
    }
}
