//! Tests of the checkpoint module, by room: here the shared fixtures and the [`Checkpoint`] itself (round trips,
//! files, `to_bytes`, `inspect`); `envelope.rs` the safetensors envelope and tensors; `meta.rs` the metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;

use safetensors::SafeTensors;
use serde_json::{Value, json};

use super::*;
// Reading checks `kind` against the registry of model kinds, which sits above this layer: the tests read through it.
use crate::models::inspect;

mod envelope;
mod meta;

fn sample() -> Checkpoint {
    let mut tensors = BTreeMap::new();
    tensors.insert(
        "enc.c1.weight".to_string(),
        TensorData {
            shape: vec![2, 4],
            data: vec![
                -0.0,
                0.0,
                f32::from_bits(1),       // smallest subnormal
                f32::MIN_POSITIVE / 3.0, // subnormal
                f32::MAX,
                f32::MIN,
                1e-38,
                -1.5,
            ],
        },
    );
    tensors.insert(
        "enc.c1.bias".to_string(),
        TensorData {
            shape: vec![3],
            data: vec![0.1, -0.2, 0.3],
        },
    );
    tensors.insert(
        "scale".to_string(),
        TensorData {
            shape: vec![],
            data: vec![std::f32::consts::PI],
        },
    );
    tensors.insert(
        "unused".to_string(),
        TensorData {
            shape: vec![0, 5],
            data: vec![],
        },
    );
    tensors.insert(
        "dec.ünï \"q\"".to_string(),
        TensorData {
            shape: vec![1, 1, 2],
            data: vec![1.0, -1.0],
        },
    );
    let mut extra = BTreeMap::new();
    extra.insert(
        "sampler".to_string(),
        r#"{"steps": 100, "delta": 0.5}"#.to_string(),
    );
    extra.insert("note".to_string(), "line1\nline2 \u{1}ünï".to_string());
    Checkpoint {
        meta: Metadata {
            kind: ModelKind::DEEN,
            version: VERSION,
            sigma: 1.0,
            measurements: 4,
            data: DataSpec {
                name: "mnist-10k".into(),
                channels: 1,
                height: 28,
                width: 28,
            },
            arch: json!({"type": "mlp", "hidden": [1024, 1024], "act": "silu", "eps": 1e-5}),
            train: Some(json!({"epochs": 3, "lr": 0.001, "seed": 7})),
            extra,
        },
        tensors,
    }
}

fn good_meta() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("format", "walkjump"),
        ("version", "1"),
        ("kind", "deen"),
        ("sigma", "1"),
        ("measurements", "1"),
        (
            "data",
            r#"{"name":"mnist-10k","channels":1,"height":28,"width":28}"#,
        ),
        ("arch", r#"{"type":"mlp","hidden":[8]}"#),
    ] {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// A file with the given metadata and tensors `(name, dtype, shape, bytes)`.
fn file_with(
    meta: Option<&BTreeMap<String, String>>,
    tensors: &[(&str, &str, Vec<usize>, Vec<u8>)],
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if let Some(m) = meta {
        header.insert("__metadata__".into(), json!(m));
    }
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let s = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [s, data.len()]}),
        );
    }
    raw_file(&Value::Object(header).to_string(), &data)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn one_tensor() -> Vec<(&'static str, &'static str, Vec<usize>, Vec<u8>)> {
    vec![("w", "F32", vec![2], f32_bytes(&[1.0, 2.0]))]
}

fn meta_file(edit: impl FnOnce(&mut BTreeMap<String, String>)) -> Vec<u8> {
    let mut m = good_meta();
    edit(&mut m);
    file_with(Some(&m), &one_tensor())
}

fn err(bytes: &[u8]) -> CheckpointError {
    match Checkpoint::from_bytes(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!(
        "walkjump-ckpt-test-{}-{}-{}",
        std::process::id(),
        nanos,
        tag
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn good_minimal_file_loads() {
    let c = Checkpoint::from_bytes(&meta_file(|_| {})).unwrap();
    assert_eq!(c.meta.kind, ModelKind::DEEN);
    assert_eq!(c.meta.sigma, 1.0);
    assert_eq!(c.meta.train, None);
    assert!(c.meta.extra.is_empty());
    assert_eq!(c.tensor("w").unwrap().data, vec![1.0, 2.0]);
    assert_eq!(c.param_count(), 2);
}

#[test]
fn round_trip_bit_exact_and_deterministic() {
    let c = sample();
    let b1 = c.to_bytes().unwrap();
    let b2 = c.to_bytes().unwrap();
    assert_eq!(b1, b2, "to_bytes must be deterministic");
    assert_eq!(c.clone().to_bytes().unwrap(), b1);
    // Header is 8-byte aligned, as safetensors writes it.
    let n = u64::from_le_bytes(b1[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    // The safetensors crate itself accepts the output.
    let st = SafeTensors::deserialize(&b1).unwrap();
    assert_eq!(st.len(), c.tensors.len());

    let back = Checkpoint::from_bytes(&b1).unwrap();
    assert_eq!(back, c);
    for (name, t) in &c.tensors {
        let u = back.tensor(name).unwrap();
        assert_eq!(u.shape, t.shape);
        let a: Vec<u32> = t.data.iter().map(|v| v.to_bits()).collect();
        let b: Vec<u32> = u.data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b, "tensor {name} not bit-exact");
    }
    assert_eq!(back.to_bytes().unwrap(), b1);
    assert_eq!(back.param_count(), 8 + 3 + 1 + 2);
}

#[test]
fn sigma_round_trips_exactly() {
    for s in [0.1, 1.0 / 3.0, 1e-300, 1e300, 5e-324, 2.5] {
        let mut c = sample();
        c.meta.sigma = s;
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
        assert_eq!(back.meta.sigma.to_bits(), s.to_bits());
    }
    let mut c = sample();
    c.meta.kind = ModelKind::CLASSIFIER;
    c.meta.sigma = 0.0;
    let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
    assert_eq!(back.meta.sigma, 0.0);
}

#[test]
fn save_load_round_trip() {
    let dir = temp_dir("save");
    let path = dir.join("model.safetensors");
    let c = sample();
    c.save(&path).unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap(), c);
    assert_eq!(std::fs::read(&path).unwrap(), c.to_bytes().unwrap());
    // Overwrite with a different checkpoint.
    let mut c2 = sample();
    c2.meta.sigma = 0.25;
    c2.save(&path).unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap(), c2);
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // Saving onto a directory fails cleanly.
    let e = c.save(&dir).unwrap_err();
    assert!(matches!(e, CheckpointError::NotAFile { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn save_invalid_checkpoint_writes_nothing() {
    let dir = temp_dir("saveinvalid");
    let path = dir.join("bad.safetensors");
    let mut c = sample();
    c.tensors.get_mut("scale").unwrap().data[0] = f32::NAN;
    assert!(matches!(
        c.save(&path),
        Err(CheckpointError::NonFinite { .. })
    ));
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_errors() {
    let dir = temp_dir("load");
    let e = Checkpoint::load(&dir).unwrap_err();
    assert!(matches!(e, CheckpointError::NotAFile { .. }), "{e}");
    let missing = dir.join("missing.safetensors");
    let e = Checkpoint::load(&missing).unwrap_err();
    assert!(matches!(e, CheckpointError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("missing.safetensors"));
    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let e = Checkpoint::load(&empty).unwrap_err();
    assert!(matches!(e, CheckpointError::EmptyFile { .. }), "{e}");
    let bad = dir.join("bad.safetensors");
    let mut bytes = sample().to_bytes().unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&bad, &bytes).unwrap();
    let e = Checkpoint::load(&bad).unwrap_err();
    assert!(matches!(e, CheckpointError::InFile { .. }), "{e}");
    assert!(
        matches!(e.inner(), CheckpointError::TensorOutOfBounds { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("bad.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn to_bytes_rejects_invalid() {
    let mut c = sample();
    c.tensors.get_mut("scale").unwrap().data.push(1.0);
    assert!(matches!(
        c.to_bytes(),
        Err(CheckpointError::TensorShapeMismatch { .. })
    ));
    let mut c = sample();
    c.tensors.get_mut("scale").unwrap().data[0] = f32::INFINITY;
    assert!(matches!(
        c.to_bytes(),
        Err(CheckpointError::NonFinite { .. })
    ));
    let mut c = sample();
    c.meta.extra.insert("kind".into(), "x".into());
    assert!(matches!(
        c.to_bytes(),
        Err(CheckpointError::ReservedExtraKey { .. })
    ));
    let mut c = sample();
    c.meta.sigma = f64::NAN;
    assert!(matches!(
        c.to_bytes(),
        Err(CheckpointError::SigmaNotFinite { .. })
    ));
    let mut c = sample();
    c.meta.arch = json!([1]);
    assert!(matches!(
        c.to_bytes(),
        Err(CheckpointError::ArchNotObject { .. })
    ));
    let mut c = sample();
    c.meta.version = 2;
    assert!(matches!(
        c.to_bytes(),
        Err(CheckpointError::UnsupportedVersion { .. })
    ));
    let mut c = sample();
    c.tensors.clear();
    assert!(matches!(c.to_bytes(), Err(CheckpointError::NoTensors)));
}

#[test]
fn missing_tensor() {
    let c = sample();
    assert!(matches!(
        c.tensor("nope"),
        Err(CheckpointError::MissingTensor { name }) if name == "nope"
    ));
}

#[test]
fn sha256_known_vector() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn inspect_report() {
    let b = sample().to_bytes().unwrap();
    let r = inspect(&b).unwrap();
    assert!(r.contains("deen"), "{r}");
    assert!(r.contains("14 parameters"), "{r}");
    assert!(r.contains(&sha256_hex(&b)), "{r}");
    assert!(r.contains("walkjump v1"), "{r}");
    assert!(r.contains("mnist-10k 1x28x28"), "{r}");
    assert!(r.contains("sampler"), "{r}");
    assert!(r.contains("enc.c1.weight"), "{r}");
    assert_eq!(r, inspect(&b).unwrap());
    // Multi-line extra values stay on one line.
    assert!(
        r.lines()
            .any(|l| l.starts_with("note") && l.contains("line2")),
        "{r}"
    );
    assert!(matches!(inspect(&[]), Err(CheckpointError::Empty)));
}
