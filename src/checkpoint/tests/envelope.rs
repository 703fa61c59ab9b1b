//! The safetensors envelope: length prefix, header, `__metadata__` shape, tensor entries, offsets, dtypes and
//! finiteness, and a mutation fuzzer.

use super::*;

#[test]
fn empty_bytes() {
    assert!(matches!(err(&[]), CheckpointError::Empty));
}

#[test]
fn seven_bytes() {
    assert!(matches!(
        err(&[1u8; 7]),
        CheckpointError::TooShort { len: 7 }
    ));
}

#[test]
fn header_length_past_end() {
    let mut b = 1000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(matches!(
        err(&b),
        CheckpointError::HeaderPastEnd {
            claimed: 1000,
            available: 2
        }
    ));
    // Exactly 8 bytes with a zero-length header: not JSON.
    assert!(matches!(
        err(&0u64.to_le_bytes()),
        CheckpointError::HeaderNotJson { .. }
    ));
}

#[test]
fn header_length_absurd() {
    for claimed in [1u64 << 63, 1u64 << 40, u64::MAX] {
        let mut b = claimed.to_le_bytes().to_vec();
        b.extend_from_slice(b"{\"__metadata__\":{}}");
        assert!(matches!(err(&b), CheckpointError::HeaderPastEnd { .. }));
    }
}

#[test]
fn header_not_utf8() {
    let b = raw_file("{\"a\":1}", &[]);
    let mut b2 = b.clone();
    b2[10] = 0xff;
    assert!(matches!(
        err(&b2),
        CheckpointError::HeaderNotUtf8 { offset: 2 }
    ));
}

#[test]
fn header_not_json() {
    assert!(matches!(
        err(&raw_file("{not json", &[])),
        CheckpointError::HeaderNotJson { .. }
    ));
    assert!(matches!(
        err(&raw_file("[1,2]", &[])),
        CheckpointError::HeaderMalformed { .. }
    ));
}

#[test]
fn missing_metadata() {
    assert!(matches!(
        err(&file_with(None, &one_tensor())),
        CheckpointError::NoMetadata
    ));
    let h = r#"{"__metadata__":null,"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert!(matches!(
        err(&raw_file(h, &[0; 4])),
        CheckpointError::NoMetadata
    ));
}

#[test]
fn metadata_malformed() {
    let h = r#"{"__metadata__":{"format":1},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert!(matches!(
        err(&raw_file(h, &[0; 4])),
        CheckpointError::MetadataMalformed { .. }
    ));
    let h = r#"{"__metadata__":[],"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert!(matches!(
        err(&raw_file(h, &[0; 4])),
        CheckpointError::MetadataMalformed { .. }
    ));
}

#[test]
fn unsupported_dtypes() {
    let m = good_meta();
    let e = err(&file_with(Some(&m), &[("w", "I32", vec![2], vec![0; 8])]));
    assert!(
        matches!(&e, CheckpointError::UnsupportedDtype { dtype, .. } if dtype == "I32"),
        "{e}"
    );
    assert!(e.to_string().contains("I32"));
    let e = err(&file_with(Some(&m), &[("w", "F16", vec![2], vec![0; 4])]));
    assert!(
        matches!(&e, CheckpointError::UnsupportedDtype { dtype, .. } if dtype == "F16"),
        "{e}"
    );
    let e = err(&file_with(Some(&m), &[("w", "F128", vec![2], vec![0; 32])]));
    assert!(
        matches!(&e, CheckpointError::UnsupportedDtype { dtype, .. } if dtype == "F128"),
        "{e}"
    );
    let e = err(&file_with(Some(&m), &[("w", "F4", vec![3], vec![0; 2])]));
    assert!(matches!(e, CheckpointError::UnsupportedDtype { .. }), "{e}");
}

#[test]
fn f64_is_converted() {
    let m = good_meta();
    let vals = [0.5f64, -2.25, 1e-3, 0.0];
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let c = Checkpoint::from_bytes(&file_with(
        Some(&m),
        &[
            ("w", "F64", vec![2, 2], bytes),
            ("b", "F32", vec![1], f32_bytes(&[7.0])),
        ],
    ))
    .unwrap();
    let w = c.tensor("w").unwrap();
    assert_eq!(w.shape, vec![2, 2]);
    assert_eq!(w.data, vals.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let big: Vec<u8> = [1e300f64, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let e = err(&file_with(Some(&m), &[("w", "F64", vec![2], big)]));
    assert!(
        matches!(e, CheckpointError::F64OutOfRange { count: 1, .. }),
        "{e}"
    );
    let nan: Vec<u8> = [f64::NAN, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let e = err(&file_with(Some(&m), &[("w", "F64", vec![2], nan)]));
    assert!(
        matches!(e, CheckpointError::NonFinite { nan: 1, .. }),
        "{e}"
    );
}

#[test]
fn nan_weights() {
    let m = good_meta();
    let e = err(&file_with(
        Some(&m),
        &[
            ("ok", "F32", vec![1], f32_bytes(&[1.0])),
            (
                "w",
                "F32",
                vec![4],
                f32_bytes(&[1.0, f32::NAN, 2.0, -f32::NAN]),
            ),
        ],
    ));
    assert!(
        matches!(&e, CheckpointError::NonFinite { name, nan: 2, inf: 0, total: 4 } if name == "w"),
        "{e}"
    );
    assert!(e.to_string().contains("`w`"));
}

#[test]
fn inf_weights() {
    let m = good_meta();
    let e = err(&file_with(
        Some(&m),
        &[(
            "w",
            "F32",
            vec![3],
            f32_bytes(&[f32::INFINITY, 0.0, f32::NEG_INFINITY]),
        )],
    ));
    assert!(
        matches!(e, CheckpointError::NonFinite { nan: 0, inf: 2, .. }),
        "{e}"
    );
}

#[test]
fn zero_tensors() {
    let m = good_meta();
    assert!(matches!(
        err(&file_with(Some(&m), &[])),
        CheckpointError::NoTensors
    ));
}

#[test]
fn truncated_file() {
    let b = sample().to_bytes().unwrap();
    for cut in [1, 3, 4, 40] {
        let e = err(&b[..b.len() - cut]);
        assert!(
            matches!(e, CheckpointError::TensorOutOfBounds { .. }),
            "cut {cut}: {e}"
        );
    }
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let e = err(&b[..8 + n / 2]);
    assert!(matches!(e, CheckpointError::HeaderPastEnd { .. }), "{e}");
}

#[test]
fn trailing_bytes() {
    let mut b = sample().to_bytes().unwrap();
    b.extend_from_slice(b"junk");
    assert!(matches!(
        err(&b),
        CheckpointError::DataLengthMismatch { .. }
    ));
}

#[test]
fn size_mismatch_is_named() {
    let m = good_meta();
    let e = err(&file_with(
        Some(&m),
        &[("w", "F32", vec![3], f32_bytes(&[1.0, 2.0]))],
    ));
    assert!(
        matches!(&e, CheckpointError::TensorSizeMismatch { name, expected: 12, actual: 8, .. } if name == "w"),
        "{e}"
    );
}

#[test]
fn overlapping_and_reversed_offsets() {
    let meta = serde_json::to_string(&good_meta()).unwrap();
    let h = format!(
        r#"{{"__metadata__":{meta},"a":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}},"b":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#
    );
    assert!(matches!(
        err(&raw_file(&h, &[0; 4])),
        CheckpointError::TensorOffsets { .. }
    ));
    let h = format!(
        r#"{{"__metadata__":{meta},"a":{{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}}}"#
    );
    assert!(matches!(
        err(&raw_file(&h, &[0; 4])),
        CheckpointError::TensorOffsets { .. }
    ));
    let h = format!(
        r#"{{"__metadata__":{meta},"a":{{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}}}"#
    );
    assert!(matches!(
        err(&raw_file(&h, &[0; 8])),
        CheckpointError::TensorOffsets { .. }
    ));
}

#[test]
fn malformed_tensor_entry() {
    let meta = serde_json::to_string(&good_meta()).unwrap();
    for entry in [
        "5",
        r#"{"dtype":"F32","shape":[1]}"#,
        r#"{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}"#,
        r#"{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}"#,
    ] {
        let h = format!(r#"{{"__metadata__":{meta},"w":{entry}}}"#);
        let e = err(&raw_file(&h, &[0; 4]));
        assert!(
            matches!(e, CheckpointError::TensorEntryMalformed { .. }),
            "{entry}: {e}"
        );
    }
}

/// Offsets summing to nearly 2^64 make safetensors 0.8's `read_metadata`
/// overflow (a panic in debug builds); the prescan must reject them first.
#[test]
fn huge_offsets_do_not_panic() {
    let meta = serde_json::to_string(&good_meta()).unwrap();
    let s: u64 = (1u64 << 61) - 1;
    let mut h = format!(r#"{{"__metadata__":{meta}"#);
    for i in 0..8u64 {
        h.push_str(&format!(
            r#","t{i}":{{"dtype":"U8","shape":[{s}],"data_offsets":[{},{}]}}"#,
            i * s,
            (i + 1) * s
        ));
    }
    h.push('}');
    let e = err(&raw_file(&h, &[]));
    assert!(
        matches!(e, CheckpointError::TensorOutOfBounds { .. }),
        "{e}"
    );
    // A shape whose element count overflows.
    let h = format!(
        r#"{{"__metadata__":{meta},"w":{{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}}}"#
    );
    assert!(matches!(
        err(&raw_file(&h, &[])),
        CheckpointError::TensorTooLarge { .. }
    ));
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

#[test]
fn fuzz_mutations_never_panic() {
    let base = sample().to_bytes().unwrap();
    let mut other_ck = sample();
    other_ck.meta.kind = ModelKind::CLASSIFIER;
    other_ck.meta.sigma = 0.0;
    other_ck.tensors.remove("unused");
    let other = other_ck.to_bytes().unwrap();
    let f64_file = {
        let vals: Vec<u8> = [0.5f64, 1.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        file_with(Some(&good_meta()), &[("w", "F64", vec![2], vals)])
    };
    let header_end = 8 + u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut bad) = (0usize, 0usize);
    for i in 0..3000 {
        let src = match i % 5 {
            0 => &other,
            1 => &f64_file,
            _ => &base,
        };
        let mut m = src.clone();
        let rounds = 1 + rng.below(3);
        for _ in 0..rounds {
            let len = m.len();
            match rng.below(8) {
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let p = rng.below(len);
                        if p < m.len() {
                            m[p] ^= 1 << rng.below(8);
                        }
                    }
                }
                1 => m.truncate(rng.below(len + 1)),
                2 => {
                    // splice: copy a chunk of some file over a random spot
                    let donor = if rng.below(2) == 0 { &base } else { &other };
                    let a = rng.below(donor.len());
                    let l = rng.below(64).min(donor.len() - a);
                    let p = rng.below(len + 1);
                    let chunk = donor[a..a + l].to_vec();
                    let end = (p + l).min(m.len());
                    m.splice(p..end, chunk);
                }
                3 => {
                    let p = rng.below(len + 1);
                    let ins: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                    m.splice(p..p, ins);
                }
                4 => {
                    let a = rng.below(len + 1);
                    let b = (a + rng.below(16)).min(m.len());
                    m.drain(a..b);
                }
                5 if m.len() >= 8 => {
                    let n = u64::from_le_bytes(m[..8].try_into().unwrap());
                    let n2 = match rng.below(4) {
                        0 => n.wrapping_add(rng.below(17) as u64).wrapping_sub(8),
                        1 => rng.next(),
                        2 => 1u64 << rng.below(64),
                        _ => rng.below(m.len() + 1) as u64,
                    };
                    m[..8].copy_from_slice(&n2.to_le_bytes());
                }
                6 => {
                    // JSON-significant byte inside the header
                    const CH: &[u8] = b"{}[]\",:0123456789-e.Ea ";
                    let p = 8 + rng.below(header_end.saturating_sub(8).max(1));
                    if p < m.len() {
                        m[p] = CH[rng.below(CH.len())];
                    }
                }
                _ => {
                    // overwrite a data byte
                    if len > header_end {
                        let p = header_end + rng.below(len - header_end);
                        m[p] = rng.next() as u8;
                    }
                }
            }
        }
        match Checkpoint::from_bytes(&m) {
            Ok(c) => {
                ok += 1;
                let again = c.to_bytes().expect("a loaded checkpoint must re-serialize");
                assert_eq!(Checkpoint::from_bytes(&again).unwrap(), c);
                assert!(inspect(&m).is_ok());
            }
            Err(e) => {
                bad += 1;
                assert!(!e.to_string().is_empty());
                assert!(inspect(&m).is_err());
            }
        }
    }
    assert_eq!(ok + bad, 3000);
    assert!(
        bad > 1000,
        "mutations should mostly be rejected ({ok} ok, {bad} bad)"
    );
    assert!(ok > 0, "some mutations (e.g. in data) should stay valid");
}
