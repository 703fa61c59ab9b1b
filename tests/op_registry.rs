//! Every op of the graph-op registry (`walkjump::nn::graph::ops`) in a checkpoint: its `arch` JSON names it, the
//! checkpoint round-trips bit-exactly, and the reloaded model scores the same.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use walkjump::models::checkpoint::{Checkpoint, ModelKind};
use walkjump::models::{Arch, Model, ScoreModel};
use walkjump::nn::NetConfig;
use walkjump::nn::graph::ops::OPS;
use walkjump::sampling::rng::Rng;

/// An energy network with the op in the middle: after a dense layer and an activation for an elementwise op (those
/// with weights get a name), or between a convolution and a dense readout for the image ops, with the fields they
/// need.
fn arch_with(op: &str, needs_name: bool) -> Arch {
    let image_fields = match op {
        "max_pool" => Some(serde_json::json!({"kernel": 3, "stride": 2, "padding": 1})),
        "avg_pool2d" => Some(
            serde_json::json!({"kernel": 3, "stride": 1, "padding": 1, "count_include_pad": false}),
        ),
        "attention" => Some(serde_json::json!({"heads": 2})),
        "slice_channels" => Some(serde_json::json!({"start": 1, "len": 2})),
        "pad2d" => Some(serde_json::json!({"top": 1, "right": 2, "mode": "reflect"})),
        "pixel_shuffle" => Some(serde_json::json!({"factor": 2})),
        "conv2d_grouped" => {
            Some(serde_json::json!({"out": 6, "kernel": 3, "padding": 1, "groups": 2}))
        }
        "upsample_bilinear" => Some(serde_json::json!({"scale": 2, "align_corners": true})),
        "conv_transpose2d" => Some(
            serde_json::json!({"out": 2, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}),
        ),
        _ => None,
    };
    let mut node = image_fields
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    node["op"] = op.into();
    // Ops of several inputs read the same value for each.
    let arity = walkjump::nn::graph::ops::find(op).map_or(1, |d| d.arity());
    node["in"] = serde_json::json!(vec![if image_fields.is_some() { 2 } else { 3 }; arity]);
    if needs_name {
        node["name"] = "x".into();
    }
    // Ops defined on positive values only (log, sqrt) read a softplus; the others a SiLU or tanh.
    let act = match op {
        "log" | "sqrt" => "softplus",
        _ => "tanh",
    };
    let nodes = match image_fields {
        Some(_) => serde_json::json!([
            {"op": "conv2d", "in": [0], "name": "a", "out": 4, "kernel": 3, "padding": 1},
            {"op": "tanh", "in": [1]},
            node,
            {"op": "flatten", "in": [3]},
            {"op": "linear", "in": [4], "name": "b", "out": 1}
        ]),
        None => serde_json::json!([
            {"op": "flatten", "in": [0]},
            {"op": "linear", "in": [1], "name": "a", "out": 8},
            {"op": act, "in": [2]},
            node,
            {"op": "linear", "in": [4], "name": "b", "out": 1}
        ]),
    };
    let net: NetConfig =
        serde_json::from_value(serde_json::json!({"type": "graph", "nodes": nodes}))
            .expect("graph");
    Arch::net(net)
}

#[test]
fn every_registered_op_round_trips_in_a_checkpoint() {
    let fixed: Vec<_> = OPS.iter().filter(|d| d.arity() != usize::MAX).collect();
    assert!(!fixed.is_empty());
    for def in fixed {
        let arch = arch_with(def.name(), def.needs_name());
        let ck = random_checkpoint(meta(ModelKind::DEEN, 0.5, 1, &arch, 6, 6), 3);
        let arch_json = serde_json::to_string(&ck.meta.arch).expect("arch json");
        assert!(
            arch_json.contains(&format!(r#""op":"{}""#, def.name())),
            "{arch_json}"
        );
        let bytes = ck.to_bytes().expect("bytes");
        let back = Checkpoint::from_bytes(&bytes).expect("parse");
        assert_eq!(
            back.to_bytes().expect("bytes again"),
            bytes,
            "{}",
            def.name()
        );
        let a = Model::from_checkpoint(&ck, &Device::Cpu).expect("model a");
        let b = Model::from_bytes(&bytes, &Device::Cpu).expect("model b");
        let y = Tensor::from_vec(Rng::new(1).normal_vec(4 * 36), (4, 36), &Device::Cpu).expect("y");
        let (ea, sa) = a.energy_and_score(&y, &mut Rng::new(9)).expect("score a");
        let (eb, sb) = b.energy_and_score(&y, &mut Rng::new(9)).expect("score b");
        let v = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("v");
        assert_eq!(v(&sa), v(&sb), "{}", def.name());
        assert_eq!(
            v(&ea.expect("energy a")),
            v(&eb.expect("energy b")),
            "{}",
            def.name()
        );
    }
}
