//! Shared helpers for the integration tests: small models with deterministic random weights.
#![allow(dead_code)]

use std::collections::BTreeMap;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use walkjump::models::checkpoint::{Checkpoint, DataSpec, Metadata, ModelKind, VERSION};
use walkjump::models::{Arch, Model};
use walkjump::nn::NetConfig;
use walkjump::train::{TrainConfig, to_checkpoint, trainable_model};

/// Metadata for a model of `kind` on 1 x h x w images.
pub fn meta(kind: ModelKind, sigma: f64, m: usize, arch: &Arch, h: usize, w: usize) -> Metadata {
    Metadata {
        kind,
        version: VERSION,
        sigma,
        measurements: m,
        data: DataSpec {
            name: "test".into(),
            channels: 1,
            height: h,
            width: w,
        },
        arch: serde_json::to_value(arch).expect("arch json"),
        train: None,
        extra: BTreeMap::new(),
    }
}

pub fn mlp(hidden: &[usize]) -> NetConfig {
    NetConfig::Mlp {
        hidden: hidden.to_vec(),
    }
}

pub fn conv() -> NetConfig {
    NetConfig::Conv {
        channels: vec![3, 4],
        strides: vec![1, 2],
        kernel: 3,
        fc: vec![6],
    }
}

pub fn vae_arch(net: NetConfig) -> Arch {
    Arch {
        decoder: Some(vec![7]),
        latent: Some(3),
        alpha: Some(0.5),
        prior_hidden: Some(4),
        ..Arch::net(net)
    }
}

/// A model with trainable (Var) parameters in `dtype`, initialised from `seed`, scaled up so that the nonlinearities
/// are exercised.
pub fn trainable(meta: Metadata, seed: u64, dtype: DType) -> (Model, VarMap) {
    let (model, varmap) = trainable_model(meta.clone(), &Device::Cpu, seed, None).expect("build");
    if dtype == DType::F32 {
        return (model, varmap);
    }
    // Rebuild in the requested dtype from the same values.
    let vm = VarMap::new();
    {
        let src = varmap.data().lock().expect("lock");
        let mut dst = vm.data().lock().expect("lock");
        for (k, v) in src.iter() {
            let t = v.as_tensor().to_dtype(dtype).expect("dtype");
            dst.insert(k.clone(), candle_core::Var::from_tensor(&t).expect("var"));
        }
    }
    let vb = candle_nn::VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
    let model = Model::build(meta, &vb, &Device::Cpu).expect("rebuild");
    (model, vm)
}

/// Saves a random model as a checkpoint (f32).
pub fn random_checkpoint(meta: Metadata, seed: u64) -> Checkpoint {
    let (_, varmap) = trainable_model(meta.clone(), &Device::Cpu, seed, None).expect("build");
    let cfg = TrainConfig {
        kind: meta.kind,
        sigma: meta.sigma,
        measurements: meta.measurements,
        arch: Arch::from_json(&meta.arch).expect("arch"),
        epochs: 1,
        batch: 1,
        lr: 1e-3,
        seed,
    };
    let rec = walkjump::train::TrainRecord {
        dataset: "test".into(),
        train_images: 0,
        test_images: 0,
        config: cfg,
        epochs_done: 0,
        history: vec![],
        wall_seconds: 0.0,
        parameters: 0,
        interrupted: false,
        best_epoch: None,
    };
    to_checkpoint(&varmap, meta, &rec).expect("checkpoint")
}

/// A unique temporary directory for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("walkjump-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A bundled checkpoint of this source tree (`checkpoints/NAME`).
pub fn bundled(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("checkpoints")
        .join(name)
}

/// Runs the `walkjump` binary in the source tree with `args`.
pub fn walkjump(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_walkjump"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run walkjump")
}
