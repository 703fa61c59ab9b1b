//! ONNX import: seven architecture families exported by `torch.onnx.export` (bench/onnx_families.py) against what
//! PyTorch autograd computed for the same inputs, the native checkpoint written by `walkjump convert`, the CLI on
//! an imported model, and hostile files.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::*;
use walkjump::models::{Model, ScoreModel};
use walkjump::onnx::{ImportOptions, OnnxError, Role, import_bytes, proto};
use walkjump::sampling::rng::Rng;

/// The seven families, and two of them as the older TorchScript exporter writes them (`*_legacy`, same weights).
const FAMILIES: [&str; 14] = [
    "res_energy",
    "unet_denoiser",
    "colour_energy",
    "mlp_score",
    "unet_classic_energy",
    "bilinear_score",
    "activations_energy",
    "stem_energy",
    "attention_energy",
    "dilated_score",
    "res_energy_legacy",
    "colour_energy_legacy",
    "stem_energy_legacy",
    "attention_energy_legacy",
];

/// A file of tests/fixtures/onnx, or of `WALKJUMP_ONNX_FIXTURES` (bench/compare.sh --onnx points it at fresh exports).
fn fixture(name: &str) -> PathBuf {
    match std::env::var_os("WALKJUMP_ONNX_FIXTURES") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/onnx")
            .join(name),
    }
}

fn expected(name: &str) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixture(&format!("{name}.expected.safetensors")),
        &Device::Cpu,
    )
    .expect("expected outputs")
}

/// Largest absolute difference, relative to the largest expected magnitude (at least 1).
fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "shapes");
    let scale = want
        .abs()
        .and_then(|t| t.max_all())
        .and_then(|t| t.to_scalar::<f32>())
        .expect("scale")
        .max(1.0);
    (got - want)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("err")
        / scale
}

/// Score and jump of each imported family equal PyTorch autograd's within 1e-4 (the energy too, where there is one).
#[test]
fn exported_families_match_pytorch_autograd() {
    for name in FAMILIES {
        let model = Model::load(&fixture(&format!("{name}.onnx")), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = expected(name.trim_end_matches("_legacy"));
        let y = &want["y"];
        let mut rng = Rng::new(0);
        let (energy, score) = model.energy_and_score(y, &mut rng).expect("score");
        let jump = model.jump(y, &mut rng).expect("jump");
        let e_score = rel_err(&score, &want["score"]);
        let e_jump = rel_err(&jump, &want["jump"]);
        assert!(e_score < 1e-4, "{name}: score differs by {e_score}");
        assert!(e_jump < 1e-4, "{name}: jump differs by {e_jump}");
        if name.contains("energy") {
            let f = energy
                .expect("an energy")
                .reshape(want["out"].shape())
                .expect("f");
            let e_f = rel_err(&f, &want["out"]);
            assert!(e_f < 1e-4, "{name}: energy differs by {e_f}");
        }
        eprintln!("{name}: score {e_score:.1e}, jump {e_jump:.1e}");
    }
}

/// `walkjump convert` writes a native checkpoint that gives the same scores as the ONNX file, and the sampler
/// runs on it and on the ONNX file directly.
#[test]
fn convert_writes_a_checkpoint_that_scores_the_same_and_samples() {
    let dir = temp_dir("onnx-convert");
    let out = dir.join("unet.safetensors");
    let src = fixture("unet_denoiser.onnx");
    let o = walkjump(&[
        "convert",
        src.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = Model::load(&src, &Device::Cpu).expect("onnx");
    let b = Model::load(&out, &Device::Cpu).expect("converted");
    let y = &expected("unet_denoiser")["y"];
    let mut rng = Rng::new(1);
    let (_, sa) = a.energy_and_score(y, &mut rng).expect("a");
    let (_, sb) = b.energy_and_score(y, &mut rng).expect("b");
    assert_eq!(rel_err(&sa, &sb), 0.0);
    assert_eq!(
        b.meta.extra.get("onnx_role").map(String::as_str),
        Some("denoiser")
    );
    for model in [src.clone(), out.clone(), fixture("res_energy.onnx")] {
        let strip = dir.join("strip.png");
        let o = walkjump(&[
            "sample",
            "-c",
            model.to_str().expect("utf8"),
            "--chains",
            "4",
            "--steps",
            "20",
            "--out",
            strip.to_str().expect("utf8"),
        ]);
        assert!(
            o.status.success(),
            "{}: {}",
            model.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(strip.exists());
    }
}

/// Without metadata the flags say what the file is; without either, one line says what to pass.
#[test]
fn role_and_sigma_come_from_flags_when_the_file_has_no_metadata() {
    let bytes = std::fs::read(fixture("unet_denoiser.onnx")).expect("read");
    let mut model = walkjump::onnx::parse(&bytes).expect("parse");
    model.metadata_props.clear();
    let bare = prost::Message::encode_to_vec(&model);
    let imported = import_bytes(&bare, &ImportOptions::default()).expect("translate");
    let err = imported
        .to_checkpoint(&ImportOptions::default(), "bare.onnx")
        .expect_err("no role");
    assert!(
        err.to_string().contains("--role denoiser or --role score"),
        "{err}"
    );
    let err = imported
        .to_checkpoint(
            &ImportOptions {
                role: Some(Role::Denoiser),
                ..Default::default()
            },
            "bare.onnx",
        )
        .expect_err("no sigma");
    assert!(err.to_string().contains("pass --onnx-sigma"), "{err}");
    let ck = imported
        .to_checkpoint(
            &ImportOptions {
                role: Some(Role::Denoiser),
                sigma: Some(0.5),
                ..Default::default()
            },
            "bare.onnx",
        )
        .expect("with flags");
    assert_eq!(ck.meta.sigma, 0.5);
    assert_eq!(
        (
            ck.meta.data.channels,
            ck.meta.data.height,
            ck.meta.data.width
        ),
        (1, 28, 28)
    );

    let dir = temp_dir("onnx-flags");
    let path = dir.join("bare.onnx");
    std::fs::write(&path, &bare).expect("write");
    let o = walkjump(&["inspect", path.to_str().expect("utf8")]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("missing"),
        "inspect says what is missing"
    );
    let o = walkjump(&[
        "sample",
        "-c",
        path.to_str().expect("utf8"),
        "--role",
        "denoiser",
        "--onnx-sigma",
        "0.5",
        "--chains",
        "2",
        "--steps",
        "5",
        "--out",
        dir.join("s.png").to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A `MaxPool(3, stride 2)` padded on the bottom and right only (TensorFlow's `SAME`), which walkjump refuses.
fn uneven_max_pool() -> proto::NodeProto {
    let mut n = node("MaxPool", &["y"], "out");
    for (name, ints) in [
        ("kernel_shape", vec![3, 3]),
        ("strides", vec![2, 2]),
        ("pads", vec![0, 0, 1, 1]),
    ] {
        n.attribute.push(proto::AttributeProto {
            name: name.into(),
            ints,
            ..Default::default()
        });
    }
    n
}

fn node(op: &str, inputs: &[&str], output: &str) -> proto::NodeProto {
    proto::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: format!("{op}_0"),
        op_type: op.to_string(),
        ..Default::default()
    }
}

fn input(name: &str, dims: &[i64]) -> proto::ValueInfoProto {
    proto::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(proto::TypeProto {
            tensor_type: Some(proto::TensorTypeProto {
                elem_type: 1,
                shape: Some(proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| proto::Dimension {
                            dim_value: d,
                            dim_param: if d == 0 {
                                "batch".into()
                            } else {
                                String::new()
                            },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

fn model(nodes: Vec<proto::NodeProto>, opset: i64) -> proto::ModelProto {
    proto::ModelProto {
        ir_version: 8,
        opset_import: vec![proto::OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(proto::GraphProto {
            node: nodes,
            input: vec![input("y", &[0, 4])],
            output: vec![input("out", &[0, 4])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Unsupported ops, wrong opsets, unknown inputs and garbage give one line naming the node, never a panic.
#[test]
fn hostile_files_are_refused_in_one_line() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "the file is empty"),
        (b"\xff\xff\xff\xff garbage".to_vec(), "not an ONNX model"),
        (
            prost::Message::encode_to_vec(&model(vec![node("Cos", &["y"], "out")], 20)),
            "node 'Cos_0' (Cos): is not supported",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![node("Relu", &["y"], "out")], 3)),
            "opset 3 is outside",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![node("Add", &["y", "w"], "out")], 20)),
            "node 'Add_0' (Add): reads 'w', which no earlier node",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![node("ConvTranspose", &["y"], "out")], 20)),
            "node 'ConvTranspose_0' (ConvTranspose): needs an image input",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![node("Relu", &["y"], "z")], 20)),
            "output 'out' is never computed",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![node("MatMul", &["y", "y"], "out")], 20)),
            "node 'MatMul_0' (MatMul): multiplies two input-dependent values; walkjump reads that only as self-attention",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![node("Softmax", &["y"], "out")], 20)),
            "node 'Softmax_0' (Softmax): takes the softmax of a value walkjump's graph cannot hold",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![node("Transpose", &["y"], "out")], 20)),
            "node 'Transpose_0' (Transpose): transposes a value walkjump's graph cannot hold",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![node("Split", &["y"], "out")], 20)),
            "node 'Split_0' (Split): splits along axis 0; walkjump splits along channels",
        ),
        (
            prost::Message::encode_to_vec(&model(vec![uneven_max_pool()], 20)),
            "node 'MaxPool_0' (MaxPool): pools with kernel 3 and pads [0, 0, 1, 1]; walkjump max-pools with the same padding on every side",
        ),
    ];
    for (bytes, want) in cases {
        let err = match import_bytes(&bytes, &ImportOptions::default()) {
            Ok(_) => panic!("{want}: accepted"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(msg.contains(want), "{msg:?} should say {want:?}");
        assert!(!msg.contains('\n'), "one line: {msg:?}");
        let _: &OnnxError = &err;
    }
    // A truncated real file at many lengths: an error or (rarely) a smaller valid graph, never a panic.
    let bytes = std::fs::read(fixture("res_energy.onnx")).expect("read");
    for cut in (1..bytes.len()).step_by(997) {
        let _ = import_bytes(&bytes[..cut], &ImportOptions::default());
    }
}

/// An ONNX operator of the op registry (`Mish`, opset 18) is translated through it: the graph holds a `mish` node,
/// which computes `x tanh(softplus(x))`; with an attribute the op does not take it is refused in one line.
#[test]
fn registered_ops_translate_onnx_nodes() {
    let bytes = prost::Message::encode_to_vec(&model(vec![node("Mish", &["y"], "out")], 18));
    let imported = import_bytes(&bytes, &ImportOptions::default()).expect("translate");
    assert_eq!(imported.spec.nodes.len(), 1);
    assert_eq!(imported.spec.nodes[0].op.name(), "mish");
    let text = serde_json::to_string(&imported.spec.nodes[0]).expect("json");
    assert_eq!(text, r#"{"op":"mish","in":[0]}"#);
    let vb = candle_nn::VarBuilder::from_tensors(
        std::collections::HashMap::new(),
        candle_core::DType::F32,
        &Device::Cpu,
    );
    let graph = walkjump::nn::Graph::new(&vb, &imported.spec, imported.input).expect("graph");
    let xs = [-3.0f32, -0.5, 0.25, 2.0];
    let x = Tensor::from_vec(xs.to_vec(), (1, 4), &Device::Cpu).expect("x");
    let y = graph
        .forward(&x)
        .expect("forward")
        .to_vec2::<f32>()
        .expect("y");
    for (got, x) in y[0].iter().zip(xs) {
        let x = x as f64;
        let want = x * x.exp().ln_1p().tanh();
        assert!(
            (*got as f64 - want).abs() < 1e-6,
            "mish({x}) = {got}, want {want}"
        );
    }
    let mut bad = node("Mish", &["y"], "out");
    bad.attribute.push(proto::AttributeProto {
        name: "alpha".into(),
        f: 2.0,
        ..Default::default()
    });
    let e = import_bytes(
        &prost::Message::encode_to_vec(&model(vec![bad], 18)),
        &ImportOptions::default(),
    )
    .expect_err("unknown attribute")
    .to_string();
    assert!(
        e.contains("node 'Mish_0' (Mish): has attribute 'alpha'"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

/// `Resize` of a 1x2x2 image by 2: nearest and bilinear (half-pixel, the default of opset 11 on, and
/// align_corners) translate; cubic and asymmetric bilinear are refused in one line naming the node.
#[test]
fn resize_modes_translate_or_are_refused() {
    let resize = |attrs: &[(&str, &str)]| -> Vec<u8> {
        let scales = proto::NodeProto {
            output: vec!["scales".into()],
            name: "scales_0".into(),
            op_type: "Constant".into(),
            attribute: vec![proto::AttributeProto {
                name: "value".into(),
                t: Some(proto::TensorProto {
                    dims: vec![4],
                    data_type: 1,
                    float_data: vec![1.0, 1.0, 2.0, 2.0],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut r = node("Resize", &["y", "", "scales"], "out");
        for (name, value) in attrs {
            r.attribute.push(proto::AttributeProto {
                name: name.to_string(),
                s: value.as_bytes().to_vec(),
                ..Default::default()
            });
        }
        let mut m = model(vec![scales, r], 20);
        let g = m.graph.as_mut().expect("graph");
        g.input = vec![input("y", &[0, 1, 2, 2])];
        g.output = vec![input("out", &[0, 1, 4, 4])];
        prost::Message::encode_to_vec(&m)
    };
    let run = |bytes: &[u8]| -> Vec<f32> {
        let imported = import_bytes(bytes, &ImportOptions::default()).expect("translate");
        let vb = candle_nn::VarBuilder::from_tensors(
            std::collections::HashMap::new(),
            candle_core::DType::F32,
            &Device::Cpu,
        );
        let graph = walkjump::nn::Graph::new(&vb, &imported.spec, imported.input).expect("graph");
        let x = Tensor::from_vec(vec![0.0f32, 4.0, 8.0, 12.0], (1, 4), &Device::Cpu).expect("x");
        graph
            .forward(&x)
            .and_then(|y| Ok(y.flatten_all()?.to_vec1::<f32>()?))
            .expect("forward")
    };
    assert_eq!(
        run(&resize(&[("mode", "nearest")]))[..4],
        [0.0, 0.0, 4.0, 4.0]
    );
    // Half-pixel: first row [0, 1, 3, 4]; align_corners: [0, 4/3, 8/3, 4].
    assert_eq!(
        run(&resize(&[("mode", "linear")]))[..4],
        [0.0, 1.0, 3.0, 4.0]
    );
    let aligned = run(&resize(&[
        ("mode", "linear"),
        ("coordinate_transformation_mode", "align_corners"),
    ]));
    for (got, want) in aligned[..4].iter().zip([0.0, 4.0 / 3.0, 8.0 / 3.0, 4.0]) {
        assert!((got - want).abs() < 1e-6, "{aligned:?}");
    }
    for (attrs, want) in [
        (
            vec![("mode", "cubic")],
            "node 'Resize_0' (Resize): uses mode cubic",
        ),
        (
            vec![
                ("mode", "linear"),
                ("coordinate_transformation_mode", "asymmetric"),
            ],
            "node 'Resize_0' (Resize): interpolates with coordinates asymmetric",
        ),
    ] {
        let e = import_bytes(&resize(&attrs), &ImportOptions::default())
            .expect_err(want)
            .to_string();
        assert!(e.contains(want), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

/// `Pad` of a 1x2x3 image (top 1, left 2, right 1) with a constant, reflect and edge translates to `pad2d` and
/// gives the cells ONNX defines; padding the channels, cropping, `wrap` and a reflection longer than its side are
/// refused in one line naming the node.
#[test]
fn pad_modes_translate_or_are_refused() {
    let pad = |mode: &str, pads: &[i64], value: Option<f32>| -> Vec<u8> {
        let konst = |name: &str, t: proto::TensorProto| proto::NodeProto {
            output: vec![name.into()],
            name: format!("{name}_0"),
            op_type: "Constant".into(),
            attribute: vec![proto::AttributeProto {
                name: "value".into(),
                t: Some(t),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut nodes = vec![konst(
            "pads",
            proto::TensorProto {
                dims: vec![pads.len() as i64],
                data_type: 7,
                int64_data: pads.to_vec(),
                ..Default::default()
            },
        )];
        let mut inputs = vec!["y", "pads"];
        if let Some(v) = value {
            nodes.push(konst(
                "value",
                proto::TensorProto {
                    data_type: 1,
                    float_data: vec![v],
                    ..Default::default()
                },
            ));
            inputs.push("value");
        }
        let mut p = node("Pad", &inputs, "out");
        p.attribute.push(proto::AttributeProto {
            name: "mode".into(),
            s: mode.as_bytes().to_vec(),
            ..Default::default()
        });
        nodes.push(p);
        let mut m = model(nodes, 20);
        let g = m.graph.as_mut().expect("graph");
        g.input = vec![input("y", &[0, 1, 2, 3])];
        g.output = vec![input("out", &[0, 1, 3, 6])];
        prost::Message::encode_to_vec(&m)
    };
    let run = |bytes: &[u8]| -> Vec<f32> {
        let imported = import_bytes(bytes, &ImportOptions::default()).expect("translate");
        let vb = candle_nn::VarBuilder::from_tensors(
            std::collections::HashMap::new(),
            candle_core::DType::F32,
            &Device::Cpu,
        );
        let graph = walkjump::nn::Graph::new(&vb, &imported.spec, imported.input).expect("graph");
        let x =
            Tensor::from_vec(vec![0.0f32, 1., 2., 3., 4., 5.], (1, 6), &Device::Cpu).expect("x");
        let y = graph.forward(&x).expect("forward");
        y.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values")
    };
    // ONNX pads: [N, C, H, W] begins, then ends.
    let sides = [0, 0, 1, 2, 0, 0, 0, 1];
    #[rustfmt::skip]
    let cases: [(&str, Option<f32>, [f32; 18]); 3] = [
        ("constant", Some(7.0), [7., 7., 7., 7., 7., 7., 7., 7., 0., 1., 2., 7., 7., 7., 3., 4., 5., 7.]),
        ("reflect", None, [5., 4., 3., 4., 5., 4., 2., 1., 0., 1., 2., 1., 5., 4., 3., 4., 5., 4.]),
        ("edge", None, [0., 0., 0., 1., 2., 2., 0., 0., 0., 1., 2., 2., 3., 3., 3., 4., 5., 5.]),
    ];
    for (mode, value, want) in cases {
        assert_eq!(run(&pad(mode, &sides, value)), want, "{mode}");
    }
    for (mode, pads, want) in [
        (
            "constant",
            vec![0, 1, 0, 0, 0, 0, 0, 0],
            "node 'Pad_0' (Pad): pads the batch or channel axis",
        ),
        (
            "constant",
            vec![0, 0, -1, 0, 0, 0, 0, 0],
            "node 'Pad_0' (Pad): has pads [-1, 0, 0, 0] (top, bottom, left, right); walkjump pads by 0 to 256 on a side (negative pads crop)",
        ),
        (
            "wrap",
            sides.to_vec(),
            "node 'Pad_0' (Pad): has mode 'wrap'",
        ),
        (
            "reflect",
            vec![0, 0, 2, 0, 0, 0, 0, 0],
            "node 'Pad_0' (Pad): reflects [2, 0, 0, 0] (top, bottom, left, right) of a 2x3 image",
        ),
        (
            "constant",
            vec![0, 0, 1],
            "node 'Pad_0' (Pad): has pads [0.0, 0.0, 1.0] for axes [0, 1, 2, 3]",
        ),
    ] {
        let e = import_bytes(&pad(mode, &pads, None), &ImportOptions::default())
            .expect_err(want)
            .to_string();
        assert!(e.contains(want), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

/// Shape arithmetic on constants as the older exporter writes it for `F.pad`: `ConstantOfShape`, `Concat`,
/// `Reshape` to pairs, `Slice` with step -1 (reversing the pairs), `Transpose`, and an integer `Div` that
/// truncates; a `Slice` of an empty axis gives nothing and does not panic.
#[test]
fn constant_shape_arithmetic_folds_as_onnx_defines() {
    let konst = |name: &str, dims: Vec<i64>, data: Vec<i64>| proto::NodeProto {
        output: vec![name.into()],
        name: format!("{name}_0"),
        op_type: "Constant".into(),
        attribute: vec![proto::AttributeProto {
            name: "value".into(),
            t: Some(proto::TensorProto {
                dims,
                data_type: 7,
                int64_data: data,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut zeros = node("ConstantOfShape", &["four"], "zeros");
    zeros.attribute.push(proto::AttributeProto {
        name: "value".into(),
        t: Some(proto::TensorProto {
            dims: vec![1],
            data_type: 7,
            int64_data: vec![0],
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut transpose = node("Transpose", &["reversed"], "columns");
    transpose.attribute.push(proto::AttributeProto {
        name: "perm".into(),
        ints: vec![1, 0],
        ..Default::default()
    });
    let mut pad = node("Pad", &["y", "pads"], "out");
    pad.attribute.push(proto::AttributeProto {
        name: "mode".into(),
        s: b"constant".to_vec(),
        ..Default::default()
    });
    // F.pad(y, (left 0, right 1, top 1, bottom 1)): sides [0, 1, 1, 1] then zeros for N and C, in pairs per axis
    // from the last; reversed and transposed to ONNX's [begins..., ends...]; right is 7 - 3 (7 / 3) = 1 with
    // integer division (0 with real division).
    let mut nodes = vec![
        konst("four", vec![1], vec![4]),
        zeros,
        konst("seven", vec![1], vec![7]),
        konst("three", vec![1], vec![3]),
        node("Div", &["seven", "three"], "quotient"),
        node("Mul", &["quotient", "three"], "six"),
        node("Sub", &["seven", "six"], "remainder"),
        konst("zero", vec![1], vec![0]),
        konst("one", vec![1], vec![1]),
        node("Concat", &["zero", "remainder", "one", "one"], "sides"),
        node("Concat", &["sides", "zeros"], "flat"),
        konst("pairs", vec![2], vec![-1, 2]),
        node("Reshape", &["flat", "pairs"], "grid"),
        konst("start", vec![1], vec![-1]),
        konst("end", vec![1], vec![i64::MIN + 1]),
        konst("axis0", vec![1], vec![0]),
        konst("back", vec![1], vec![-1]),
        node(
            "Slice",
            &["grid", "start", "end", "axis0", "back"],
            "reversed",
        ),
        transpose,
        konst("flatten", vec![1], vec![-1]),
        node("Reshape", &["columns", "flatten"], "pads"),
        pad,
    ];
    for n in &mut nodes {
        if n.op_type == "Concat" {
            n.attribute.push(proto::AttributeProto {
                name: "axis".into(),
                ..Default::default()
            });
        }
    }
    let mut m = model(nodes, 17);
    let g = m.graph.as_mut().expect("graph");
    g.input = vec![input("y", &[0, 1, 2, 3])];
    g.output = vec![input("out", &[0, 1, 4, 4])];
    let imported = import_bytes(
        &prost::Message::encode_to_vec(&m),
        &ImportOptions::default(),
    )
    .expect("translate");
    let vb = candle_nn::VarBuilder::from_tensors(
        std::collections::HashMap::new(),
        candle_core::DType::F32,
        &Device::Cpu,
    );
    let graph = walkjump::nn::Graph::new(&vb, &imported.spec, imported.input).expect("graph");
    assert_eq!(
        graph.output_shape(),
        walkjump::nn::ValueShape::Image(1, 4, 4)
    );
    let x = Tensor::from_vec(vec![1.0f32, 2., 3., 4., 5., 6.], (1, 6), &Device::Cpu).expect("x");
    let y = graph
        .forward(&x)
        .and_then(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
        .expect("forward");
    #[rustfmt::skip]
    let want = [
        0., 0., 0., 0.,
        1., 2., 3., 0.,
        4., 5., 6., 0.,
        0., 0., 0., 0.,
    ];
    assert_eq!(y, want);
}
