//! `.onnx` bytes -> walkjump graph -> model -> one score. Never a panic; every refusal is one non-empty line;
//! a file that translates either builds into a model whose score of a small batch has the input's shape, or is
//! refused with one line (e.g. a role that does not fit its output).
#![no_main]

use candle_core::{Device, Tensor};
use libfuzzer_sys::fuzz_target;
use walkjump::models::{Model, ScoreModel};
use walkjump::onnx::{ImportOptions, Role, import_bytes};
use walkjump::sampling::rng::Rng;

fuzz_target!(|data: &[u8]| {
    let one_line = |msg: String| assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    let imported = match import_bytes(data, &ImportOptions::default()) {
        Ok(i) => i,
        Err(e) => return one_line(e.to_string()),
    };
    // Keep the forward pass small: skip graphs whose parameters or values would take long.
    let params: usize = imported.tensors.values().map(|(_, v)| v.len()).sum();
    if params > 1 << 20 || imported.input.numel() > 1 << 14 {
        return;
    }
    let role = if imported.output.numel() == 1 { Role::Energy } else { Role::Denoiser };
    let opts = ImportOptions {
        role: Some(role),
        sigma: Some(1.0),
        ..Default::default()
    };
    let ckpt = match imported.to_checkpoint(&opts, "fuzz.onnx") {
        Ok(c) => c,
        Err(e) => return one_line(e.to_string()),
    };
    let model = match Model::from_checkpoint(&ckpt, &Device::Cpu) {
        Ok(m) => m,
        Err(e) => return one_line(e.to_string()),
    };
    let d = model.dim();
    let y = Tensor::zeros((2, d), candle_core::DType::F32, &Device::Cpu).expect("zeros");
    match model.energy_and_score(&y, &mut Rng::new(0)) {
        Ok((_, s)) => assert_eq!(s.dims(), [2, d]),
        Err(e) => one_line(e.to_string()),
    }
});
