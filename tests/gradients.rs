//! The explicit input-VJPs against candle's autograd and finite differences, and the training gradients of the
//! DEEN and UVB losses (which differentiate through those VJPs) against finite differences of the loss.
//! Everything runs in f64 so that central differences with h = 1e-5 are accurate to ~1e-9 relative.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use walkjump::models::checkpoint::ModelKind;
use walkjump::models::{Arch, Classifier, EbmVae, ScoreModel, ZMode};
use walkjump::sampling::rng::Rng;

const H: f64 = 1e-5;

fn rand_tensor(rng: &mut Rng, shape: (usize, usize), scale: f64) -> Tensor {
    let v: Vec<f64> = (0..shape.0 * shape.1)
        .map(|_| scale * rng.normal())
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
}

fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0, f64::max).max(1e-12);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0.0, f64::max)
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .expect("flat")
        .to_vec1::<f64>()
        .expect("vec")
}

/// Net VJP == autograd of <net(x), g>, for MLP and ConvNets whose strided layers need output padding (8x8) or not (9x9).
#[test]
fn net_vjp_matches_autograd() {
    for (arch, h, w) in [(mlp(&[9, 5]), 4, 4), (conv(), 8, 8), (conv(), 9, 9)] {
        let meta = meta(
            ModelKind::CLASSIFIER,
            1.0,
            1,
            &Arch {
                classes: Some(3),
                ..Arch::net(arch.clone())
            },
            h,
            w,
        );
        let (model, _) = trainable(meta, 3, DType::F64);
        let Some(c) = model.net_as::<Classifier>() else {
            panic!("classifier")
        };
        let mut rng = Rng::new(1);
        let x = rand_tensor(&mut rng, (2, h * w), 1.0);
        let xv = Var::from_tensor(&x).expect("var");
        let g = rand_tensor(&mut rng, (2, 3), 1.0);
        let (out, cache) = c.net.forward_cached(xv.as_tensor()).expect("fwd");
        let loss = (out * &g).expect("mul").sum_all().expect("sum");
        let grads = loss.backward().expect("backward");
        let auto = flat(grads.get(xv.as_tensor()).expect("grad"));
        let explicit = flat(&c.net.vjp(&cache, &g).expect("vjp"));
        let err = max_rel_err(&explicit, &auto);
        assert!(err < 1e-10, "{arch:?} {h}x{w}: relative error {err}");
    }
}

/// Central differences of a scalar function of y, one coordinate at a time.
fn fd_grad(y: &Tensor, mut f: impl FnMut(&Tensor) -> Vec<f64>) -> Vec<Vec<f64>> {
    let (n, d) = y.dims2().expect("dims");
    let base = flat(y);
    let mut out = vec![vec![0.0; d]; n];
    for j in 0..d {
        let mut plus = base.clone();
        let mut minus = base.clone();
        for i in 0..n {
            plus[i * d + j] += H;
            minus[i * d + j] -= H;
        }
        let fp = f(&Tensor::from_vec(plus, (n, d), &Device::Cpu).expect("t"));
        let fm = f(&Tensor::from_vec(minus, (n, d), &Device::Cpu).expect("t"));
        for i in 0..n {
            out[i][j] = (fp[i] - fm[i]) / (2.0 * H);
        }
    }
    out
}

#[test]
fn deen_score_is_minus_energy_gradient() {
    for (arch, h, w) in [(mlp(&[8, 6]), 3, 4), (conv(), 6, 6)] {
        let (model, _) = trainable(
            meta(ModelKind::DEEN, 0.5, 1, &Arch::net(arch.clone()), h, w),
            5,
            DType::F64,
        );
        let mut rng = Rng::new(2);
        let y = rand_tensor(&mut rng, (3, h * w), 1.0);
        let (_, score) = model.energy_and_score(&y, &mut rng).expect("score");
        let fd = fd_grad(&y, |t| {
            let (e, _) = model.energy_and_score(t, &mut Rng::new(0)).expect("energy");
            flat(&e.expect("has energy"))
        });
        let fd: Vec<f64> = fd.concat().iter().map(|g| -g).collect();
        let err = max_rel_err(&flat(&score), &fd);
        assert!(err < 1e-7, "{arch:?}: relative error {err}");
        // The jump is y + sigma^2 score.
        let jump = model.jump(&y, &mut rng).expect("jump");
        let expect = (&y + (&score * 0.25).expect("mul")).expect("add");
        assert!(max_rel_err(&flat(&jump), &flat(&expect)) < 1e-12);
    }
}

/// UVB: the gradient of the negative ELBO in y through both encoders and the decoder, for z = mean and for a fixed
/// reparametrised sample (same seed for every evaluation, so the energy is a deterministic function of y).
#[test]
fn uvb_energy_gradient_matches_finite_differences() {
    for (mode, arch) in [
        (ZMode::Mean, mlp(&[6])),
        (ZMode::Sample, mlp(&[6])),
        (ZMode::Average { k: 3 }, conv()),
    ] {
        let (mut model, _) = trainable(
            meta(ModelKind::UVB, 0.7, 1, &vae_arch(arch), 6, 6),
            7,
            DType::F64,
        );
        model.set_z_mode(mode);
        let mut rng = Rng::new(3);
        let y = rand_tensor(&mut rng, (2, 36), 1.0);
        let (_, score) = model
            .energy_and_score(&y, &mut Rng::new(11))
            .expect("score");
        let fd = fd_grad(&y, |t| {
            let (e, _) = model
                .energy_and_score(t, &mut Rng::new(11))
                .expect("energy");
            flat(&e.expect("energy"))
        });
        let fd: Vec<f64> = fd.concat().iter().map(|g| -g).collect();
        let err = max_rel_err(&flat(&score), &fd);
        assert!(err < 1e-6, "{mode:?}: relative error {err}");
    }
}

#[test]
fn grbm_gradient_matches_finite_differences() {
    let (model, _) = trainable(
        meta(ModelKind::EBM_VAE, 0.5, 1, &vae_arch(mlp(&[5])), 3, 3),
        9,
        DType::F64,
    );
    let Some(e) = model.net_as::<EbmVae>() else {
        panic!("ebm")
    };
    // Make the prior non-trivial.
    let mut rng = Rng::new(4);
    let prior = walkjump::models::Grbm {
        mu: rand_tensor(&mut rng, (1, 3), 0.5).squeeze(0).expect("s"),
        log_s: rand_tensor(&mut rng, (1, 3), 0.3).squeeze(0).expect("s"),
        w: rand_tensor(&mut rng, (3, 4), 1.0),
        b: rand_tensor(&mut rng, (1, 4), 1.0).squeeze(0).expect("s"),
    };
    let _ = e;
    let z = rand_tensor(&mut rng, (4, 3), 1.0);
    let (_, g) = prior.energy_and_grad(&z).expect("grad");
    let fd = fd_grad(&z, |t| flat(&prior.energy_and_grad(t).expect("e").0));
    let err = max_rel_err(&flat(&g), &fd.concat());
    assert!(err < 1e-8, "relative error {err}");
}

/// d(loss)/d(theta) by candle's backward through the explicit VJP == central differences of the loss, for a sample
/// of entries of every parameter tensor.
fn check_training_gradient(kind: ModelKind, arch: Arch, mode: ZMode) {
    check_training_gradient_at(kind, arch, mode, 5);
}

/// [`check_training_gradient`] on `side x side` images.
fn check_training_gradient_at(kind: ModelKind, arch: Arch, mode: ZMode, side: usize) {
    let d = side * side;
    let (mut model, varmap) = trainable(meta(kind, 0.6, 1, &arch, side, side), 13, DType::F64);
    model.set_z_mode(mode);
    let mut rng = Rng::new(5);
    let x = Tensor::from_vec(
        (0..4 * d).map(|_| rng.uniform()).collect::<Vec<f64>>(),
        (4, d),
        &Device::Cpu,
    )
    .expect("x");
    let loss_of = |model: &walkjump::models::Model| -> Tensor {
        walkjump::train::batch_loss(model, &x, None, &mut Rng::new(21)).expect("loss")
    };
    let loss = loss_of(&model);
    let grads = loss.backward().expect("backward");
    let data = varmap.data().lock().expect("lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut checked = 0;
    for name in names {
        let var = &data[name];
        let base = flat(var.as_tensor());
        // A parameter the loss does not depend on (e.g. the readout bias of an energy, which drops out of
        // grad_y f) has no gradient: finite differences must then be zero too.
        let g = grads
            .get(var.as_tensor())
            .map(flat)
            .unwrap_or_else(|| vec![0.0; base.len()]);
        let shape = var.dims().to_vec();
        for k in [0, base.len() / 2, base.len() - 1] {
            let mut p = base.clone();
            p[k] += H;
            var.set(&Tensor::from_vec(p.clone(), shape.as_slice(), &Device::Cpu).expect("t"))
                .expect("set");
            let lp = loss_of(&model).to_scalar::<f64>().expect("s");
            p[k] -= 2.0 * H;
            var.set(&Tensor::from_vec(p, shape.as_slice(), &Device::Cpu).expect("t"))
                .expect("set");
            let lm = loss_of(&model).to_scalar::<f64>().expect("s");
            var.set(&Tensor::from_vec(base.clone(), shape.as_slice(), &Device::Cpu).expect("t"))
                .expect("set");
            let fd = (lp - lm) / (2.0 * H);
            let tol = 1e-6 * (1.0 + fd.abs().max(g[k].abs()));
            assert!(
                (fd - g[k]).abs() < tol,
                "{kind:?} {name}[{k}]: backward {} vs finite difference {fd}",
                g[k]
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "checked {checked} entries");
}

#[test]
fn deen_training_gradient_matches_finite_differences() {
    check_training_gradient(ModelKind::DEEN, Arch::net(mlp(&[7, 5])), ZMode::Sample);
    check_training_gradient(ModelKind::DEEN, Arch::net(conv()), ZMode::Sample);
}

#[test]
fn uvb_training_gradient_matches_finite_differences() {
    check_training_gradient(ModelKind::UVB, vae_arch(mlp(&[6])), ZMode::Sample);
}

#[test]
fn vae_and_mdae_training_gradients_match_finite_differences() {
    check_training_gradient(ModelKind::SIGMA_VAE, vae_arch(mlp(&[6])), ZMode::Sample);
    check_training_gradient(ModelKind::VAE, vae_arch(mlp(&[6])), ZMode::Sample);
    check_training_gradient(ModelKind::MDAE, Arch::net(mlp(&[6])), ZMode::Sample);
}

/// A layer-graph architecture from its nodes.
fn graph(nodes: serde_json::Value) -> Arch {
    let net: walkjump::nn::NetConfig =
        serde_json::from_value(serde_json::json!({"type": "graph", "nodes": nodes}))
            .expect("graph");
    Arch::net(net)
}

/// Training on layer graphs: a residual GroupNorm / Softplus energy (DEEN) and a small U-Net denoiser (MDAE), the
/// gradient of each loss (through the explicit VJPs) against finite differences.
#[test]
fn graph_training_gradients_match_finite_differences() {
    let energy = graph(serde_json::json!([
        {"op": "conv2d", "in": [0], "name": "c0", "out": 4, "kernel": 3, "padding": 1},
        {"op": "group_norm", "in": [1], "name": "g0", "groups": 2},
        {"op": "softplus", "in": [2]},
        {"op": "conv2d", "in": [3], "name": "c1", "out": 4, "kernel": 3, "padding": 1},
        {"op": "add", "in": [4, 3]},
        {"op": "avg_pool", "in": [5], "kernel": 2},
        {"op": "flatten", "in": [6]},
        {"op": "linear", "in": [7], "name": "f0", "out": 6},
        {"op": "gelu", "in": [8]},
        {"op": "linear", "in": [9], "name": "f1", "out": 1}
    ]));
    check_training_gradient_at(ModelKind::DEEN, energy, ZMode::Sample, 4);
    let unet = graph(serde_json::json!([
        {"op": "conv2d", "in": [0], "name": "e", "out": 3, "kernel": 3, "padding": 1},
        {"op": "silu", "in": [1]},
        {"op": "avg_pool", "in": [2], "kernel": 2},
        {"op": "conv2d", "in": [3], "name": "m", "out": 3, "kernel": 3, "padding": 1},
        {"op": "tanh", "in": [4]},
        {"op": "upsample", "in": [5], "scale": 2},
        {"op": "concat", "in": [6, 2]},
        {"op": "conv2d", "in": [7], "name": "o", "out": 1, "kernel": 3, "padding": 1}
    ]));
    check_training_gradient_at(ModelKind::MDAE, unet, ZMode::Sample, 4);
}

/// Training through the U-Net ops of the op registry: an energy (DEEN, whose loss differentiates the explicit VJP of
/// `max_pool` and `conv_transpose2d` in the weights) and a denoiser (MDAE) down by max pooling and up by a
/// transposed convolution with output padding, then by bilinear up-sampling, each gradient against finite
/// differences.
#[test]
fn max_pool_and_conv_transpose_training_gradients_match_finite_differences() {
    let energy = graph(serde_json::json!([
        {"op": "conv2d", "in": [0], "name": "c0", "out": 3, "kernel": 3, "padding": 1},
        {"op": "softplus", "in": [1]},
        {"op": "max_pool", "in": [2], "kernel": 2},
        {"op": "conv_transpose2d", "in": [3], "name": "u0", "out": 2, "kernel": 2, "stride": 2},
        {"op": "tanh", "in": [4]},
        {"op": "flatten", "in": [5]},
        {"op": "linear", "in": [6], "name": "f0", "out": 1}
    ]));
    check_training_gradient_at(ModelKind::DEEN, energy, ZMode::Sample, 6);
    let unet = graph(serde_json::json!([
        {"op": "conv2d", "in": [0], "name": "e", "out": 3, "kernel": 3, "padding": 1},
        {"op": "relu", "in": [1]},
        {"op": "max_pool", "in": [2], "kernel": 2},
        {"op": "conv_transpose2d", "in": [3], "name": "u", "out": 3, "kernel": 3, "stride": 2,
         "padding": 1, "output_padding": 1},
        {"op": "concat", "in": [4, 2]},
        {"op": "conv2d", "in": [5], "name": "o", "out": 3, "kernel": 3, "padding": 1},
        {"op": "silu", "in": [6]},
        {"op": "avg_pool", "in": [7], "kernel": 2},
        {"op": "upsample_bilinear", "in": [8], "scale": 2},
        {"op": "conv2d", "in": [9], "name": "r", "out": 1, "kernel": 3, "padding": 1}
    ]));
    check_training_gradient_at(ModelKind::MDAE, unet, ZMode::Sample, 6);
}

/// Training through padding (reflect, edge, constant) and overlapping, padded max pooling: a DEEN, whose loss
/// differentiates their explicit VJPs (gathers and scatter-adds) in the weights, and an MDAE, against finite
/// differences.
#[test]
fn pad_and_overlapping_max_pool_training_gradients_match_finite_differences() {
    let energy = graph(serde_json::json!([
        {"op": "pad2d", "in": [0], "top": 1, "left": 2, "mode": "reflect"},
        {"op": "conv2d", "in": [1], "name": "c0", "out": 3, "kernel": 3, "padding": 1},
        {"op": "softplus", "in": [2]},
        {"op": "max_pool", "in": [3], "kernel": 3, "stride": 2, "padding": 1},
        {"op": "pad2d", "in": [4], "bottom": 1, "right": 1, "mode": "edge"},
        {"op": "conv2d", "in": [5], "name": "c1", "out": 2, "kernel": 3},
        {"op": "tanh", "in": [6]},
        {"op": "flatten", "in": [7]},
        {"op": "linear", "in": [8], "name": "f0", "out": 1}
    ]));
    check_training_gradient_at(ModelKind::DEEN, energy, ZMode::Sample, 6);
    let denoiser = graph(serde_json::json!([
        {"op": "pad2d", "in": [0], "top": 1, "bottom": 1, "left": 1, "right": 1, "mode": "reflect"},
        {"op": "conv2d", "in": [1], "name": "e", "out": 3, "kernel": 3},
        {"op": "relu", "in": [2]},
        {"op": "max_pool", "in": [3], "kernel": 2, "stride": 1},
        {"op": "pad2d", "in": [4], "bottom": 1, "right": 1, "value": 0.5},
        {"op": "conv2d", "in": [5], "name": "o", "out": 1, "kernel": 3, "padding": 1}
    ]));
    check_training_gradient_at(ModelKind::MDAE, denoiser, ZMode::Sample, 6);
}

/// Training through an attention block (1x1 convolution to queries, keys and values, split by channels, two heads,
/// projection added back): a DEEN, whose loss differentiates the attention VJP in the weights, and an MDAE, against
/// finite differences.
#[test]
fn attention_training_gradients_match_finite_differences() {
    let block = |readout: serde_json::Value| {
        let mut nodes = serde_json::json!([
            {"op": "conv2d", "in": [0], "name": "c0", "out": 4, "kernel": 3, "stride": 2, "padding": 1},
            {"op": "conv2d", "in": [1], "name": "qkv", "out": 12, "kernel": 1},
            {"op": "slice_channels", "in": [2], "start": 0, "len": 4},
            {"op": "slice_channels", "in": [2], "start": 4, "len": 4},
            {"op": "slice_channels", "in": [2], "start": 8, "len": 4},
            {"op": "attention", "in": [3, 4, 5], "heads": 2},
            {"op": "conv2d", "in": [6], "name": "proj", "out": 4, "kernel": 1},
            {"op": "add", "in": [7, 1]}
        ]);
        if let (Some(n), Some(r)) = (nodes.as_array_mut(), readout.as_array()) {
            n.extend(r.iter().cloned());
        }
        graph(nodes)
    };
    let energy = block(serde_json::json!([
        {"op": "softplus", "in": [8]},
        {"op": "flatten", "in": [9]},
        {"op": "linear", "in": [10], "name": "f0", "out": 1}
    ]));
    check_training_gradient_at(ModelKind::DEEN, energy, ZMode::Sample, 6);
    let denoiser = block(serde_json::json!([
        {"op": "upsample", "in": [8], "scale": 2},
        {"op": "conv2d", "in": [9], "name": "o", "out": 1, "kernel": 3, "padding": 1}
    ]));
    check_training_gradient_at(ModelKind::MDAE, denoiser, ZMode::Sample, 6);
}

/// Training through dilated convolutions (dilation 2 keeping the size, dilation 2 depthwise): a DEEN, whose loss
/// differentiates their VJPs (dilated transposed convolutions) in the weights, and an MDAE, against finite
/// differences.
#[test]
fn dilated_convolution_training_gradients_match_finite_differences() {
    let body = serde_json::json!([
        {"op": "conv2d", "in": [0], "name": "c0", "out": 4, "kernel": 3, "padding": 1},
        {"op": "elu", "in": [1]},
        {"op": "conv2d_grouped", "in": [2], "name": "d0", "out": 4, "kernel": 3, "padding": 2,
         "groups": 1, "dilation": 2},
        {"op": "elu", "in": [3]},
        {"op": "conv2d_grouped", "in": [4], "name": "d1", "out": 4, "kernel": 3, "padding": 2,
         "groups": 4, "dilation": 2},
        {"op": "add", "in": [5, 2]}
    ]);
    let with = |tail: serde_json::Value| {
        let mut nodes = body.clone();
        if let (Some(n), Some(t)) = (nodes.as_array_mut(), tail.as_array()) {
            n.extend(t.iter().cloned());
        }
        graph(nodes)
    };
    let energy = with(serde_json::json!([
        {"op": "flatten", "in": [6]},
        {"op": "linear", "in": [7], "name": "f0", "out": 1}
    ]));
    check_training_gradient_at(ModelKind::DEEN, energy, ZMode::Sample, 6);
    let denoiser = with(serde_json::json!([
        {"op": "conv2d", "in": [6], "name": "o", "out": 1, "kernel": 3, "padding": 1}
    ]));
    check_training_gradient_at(ModelKind::MDAE, denoiser, ZMode::Sample, 6);
}

/// Training through average pooling with overlapping, padded windows (`avg_pool2d`, counting the padding and
/// not), DEEN and MDAE, against finite differences.
#[test]
fn avg_pool2d_training_gradients_match_finite_differences() {
    let energy = graph(serde_json::json!([
        {"op": "conv2d", "in": [0], "name": "c0", "out": 3, "kernel": 3, "padding": 1},
        {"op": "softplus", "in": [1]},
        {"op": "avg_pool2d", "in": [2], "kernel": 3, "stride": 2, "padding": 1},
        {"op": "conv2d", "in": [3], "name": "c1", "out": 2, "kernel": 3, "padding": 1},
        {"op": "tanh", "in": [4]},
        {"op": "flatten", "in": [5]},
        {"op": "linear", "in": [6], "name": "f0", "out": 1}
    ]));
    check_training_gradient_at(ModelKind::DEEN, energy, ZMode::Sample, 6);
    let denoiser = graph(serde_json::json!([
        {"op": "conv2d", "in": [0], "name": "e", "out": 3, "kernel": 3, "padding": 1},
        {"op": "elu", "in": [1]},
        {"op": "avg_pool2d", "in": [2], "kernel": 5, "stride": 1, "padding": 2,
         "count_include_pad": false},
        {"op": "conv2d", "in": [3], "name": "o", "out": 1, "kernel": 3, "padding": 1}
    ]));
    check_training_gradient_at(ModelKind::MDAE, denoiser, ZMode::Sample, 6);
}

/// Training through an op of the op registry (`mish`, on an image and on a flat value): the gradient of a DEEN loss
/// (through its explicit VJP) against finite differences.
#[test]
fn registered_op_training_gradients_match_finite_differences() {
    let net: walkjump::nn::NetConfig =
        serde_json::from_value(serde_json::json!({"type": "graph", "nodes": [
            {"op": "conv2d", "in": [0], "name": "c0", "out": 3, "kernel": 3, "padding": 1},
            {"op": "mish", "in": [1]},
            {"op": "flatten", "in": [2]},
            {"op": "linear", "in": [3], "name": "f0", "out": 6},
            {"op": "mish", "in": [4]},
            {"op": "linear", "in": [5], "name": "f1", "out": 1}
        ]}))
        .expect("graph");
    check_training_gradient_at(ModelKind::DEEN, Arch::net(net), ZMode::Sample, 4);
}
