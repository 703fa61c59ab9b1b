//! Checkpoint bytes -> model: the safetensors envelope, the walkjump metadata and the architecture checks.
//!
//! Properties: never a panic, never an allocation the input does not justify (libFuzzer's -malloc_limit_mb), every
//! error is one non-empty line (the CLI prints it as is). A model that loads is evaluated once on a small batch
//! when it is small, so that a checkpoint which loads but cannot run is found too.
#![no_main]

use candle_core::{DType, Device, Tensor};
use libfuzzer_sys::fuzz_target;
use walkjump::models::{Model, ScoreModel};
use walkjump::sampling::rng::Rng;

fuzz_target!(|data: &[u8]| {
    let model = match Model::from_bytes(data, &Device::Cpu) {
        Ok(m) => m,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty(), "empty error message");
            assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
            return;
        }
    };
    assert_eq!(model.sha256.len(), 64);
    let d = model.dim();
    if d == 0 || d > 4096 || model.macs_per_score() > 1 << 20 {
        return;
    }
    let Ok(y) = Tensor::zeros((2, d), DType::F32, &Device::Cpu) else {
        return;
    };
    let mut rng = Rng::new(0);
    if model.has_score() {
        let (_, score) = model
            .energy_and_score(&y, &mut rng)
            .expect("a loaded model must give a score");
        assert_eq!(score.dims(), &[2, d]);
    }
    if model.is_denoiser() {
        let x = model
            .jump(&y, &mut rng)
            .expect("a loaded denoiser must jump");
        assert_eq!(x.dims(), &[2, model.data_dim()]);
    }
    if let Some(c) = model.classifier() {
        let p = c.predict(&y).expect("a loaded classifier must predict");
        assert_eq!(p.len(), 2);
    }
});
