//! The walkjump metadata keys: format, version, kind, sigma, measurements, data, arch, train and extra keys.

use super::*;

#[test]
fn wrong_format() {
    let e = err(&meta_file(|m| {
        m.insert("format".into(), "pt".into());
    }));
    assert!(
        matches!(&e, CheckpointError::NotWalkjump { found: Some(f) } if f == "pt"),
        "{e}"
    );
    let e = err(&meta_file(|m| {
        m.remove("format");
    }));
    assert!(
        matches!(e, CheckpointError::NotWalkjump { found: None }),
        "{e}"
    );
}

#[test]
fn future_version() {
    let e = err(&meta_file(|m| {
        m.insert("version".into(), "2".into());
    }));
    assert!(
        matches!(e, CheckpointError::UnsupportedVersion { found: 2 }),
        "{e}"
    );
    for bad in ["abc", "0", "-1", "1.0", ""] {
        let e = err(&meta_file(|m| {
            m.insert("version".into(), bad.into());
        }));
        assert!(
            matches!(e, CheckpointError::InvalidVersion { .. }),
            "{bad}: {e}"
        );
    }
}

#[test]
fn each_missing_required_key() {
    for key in ["version", "kind", "sigma", "measurements", "data", "arch"] {
        let e = err(&meta_file(|m| {
            m.remove(key);
        }));
        assert!(
            matches!(e, CheckpointError::MissingKey { key: k } if k == key),
            "{key}: {e}"
        );
        assert!(e.to_string().contains(key));
    }
}

#[test]
fn unknown_kind() {
    let e = err(&meta_file(|m| {
        m.insert("kind".into(), "gan".into());
    }));
    assert!(matches!(&e, CheckpointError::UnknownKind { value, .. } if value == "gan"));
    let msg = e.to_string();
    assert!(msg.contains("gan"));
    for k in ModelKind::all() {
        assert!(msg.contains(k.as_str()), "{msg}");
    }
}

#[test]
fn bad_sigma() {
    let case = |s: &str, kind: &str| {
        err(&meta_file(|m| {
            m.insert("sigma".into(), s.into());
            m.insert("kind".into(), kind.into());
        }))
    };
    assert!(matches!(
        case("NaN", "deen"),
        CheckpointError::SigmaNotFinite { .. }
    ));
    assert!(matches!(
        case("inf", "deen"),
        CheckpointError::SigmaNotFinite { .. }
    ));
    assert!(matches!(
        case("-1", "deen"),
        CheckpointError::SigmaNegative { .. }
    ));
    assert!(matches!(
        case("abc", "deen"),
        CheckpointError::SigmaNotNumber { .. }
    ));
    assert!(matches!(
        case("", "deen"),
        CheckpointError::SigmaNotNumber { .. }
    ));
    assert!(matches!(
        case("0", "mdae"),
        CheckpointError::SigmaZero {
            kind: ModelKind::MDAE
        }
    ));
    assert!(matches!(
        case("-1", "classifier"),
        CheckpointError::SigmaNegative { .. }
    ));
    let ok = meta_file(|m| {
        m.insert("sigma".into(), "0".into());
        m.insert("kind".into(), "classifier".into());
    });
    assert_eq!(Checkpoint::from_bytes(&ok).unwrap().meta.sigma, 0.0);
}

#[test]
fn bad_measurements() {
    let case = |s: &str| {
        err(&meta_file(|m| {
            m.insert("measurements".into(), s.into());
        }))
    };
    assert!(matches!(
        case("0"),
        CheckpointError::MeasurementsOutOfRange { value: 0 }
    ));
    assert!(matches!(
        case("65"),
        CheckpointError::MeasurementsOutOfRange { value: 65 }
    ));
    assert!(matches!(
        case("x"),
        CheckpointError::MeasurementsInvalid { .. }
    ));
    assert!(matches!(
        case("-3"),
        CheckpointError::MeasurementsInvalid { .. }
    ));
}

#[test]
fn bad_data() {
    let case = |s: &str| {
        err(&meta_file(|m| {
            m.insert("data".into(), s.into());
        }))
    };
    assert!(matches!(
        case("not json"),
        CheckpointError::DataInvalid { .. }
    ));
    assert!(matches!(
        case(r#"{"name":"x","channels":1}"#),
        CheckpointError::DataInvalid { .. }
    ));
    assert!(matches!(
        case(r#"{"name":"x","channels":-1,"height":2,"width":2}"#),
        CheckpointError::DataInvalid { .. }
    ));
    assert!(matches!(
        case(r#"{"name":"x","channels":0,"height":28,"width":28}"#),
        CheckpointError::DataDims { .. }
    ));
    assert!(matches!(
        case(r#"{"name":"x","channels":2,"height":4096,"width":4096}"#),
        CheckpointError::DataDims { .. }
    ));
    assert!(matches!(
        case(r#"{"name":"x","channels":18446744073709551615,"height":4096,"width":4096}"#),
        CheckpointError::DataDims { .. }
    ));
}

#[test]
fn bad_arch_and_train() {
    let e = err(&meta_file(|m| {
        m.insert("arch".into(), "[1,2]".into());
    }));
    assert!(
        matches!(e, CheckpointError::ArchNotObject { found: "array" }),
        "{e}"
    );
    let e = err(&meta_file(|m| {
        m.insert("arch".into(), "{".into());
    }));
    assert!(matches!(e, CheckpointError::ArchNotJson { .. }), "{e}");
    let e = err(&meta_file(|m| {
        m.insert("train".into(), "{oops".into());
    }));
    assert!(matches!(e, CheckpointError::TrainNotJson { .. }), "{e}");
}

#[test]
fn extra_keys_kept_verbatim() {
    let b = meta_file(|m| {
        m.insert("sampler".into(), "{ \"steps\" : 5 }".into());
        m.insert("comment".into(), "not json".into());
        m.insert("train".into(), "[1]".into());
    });
    let c = Checkpoint::from_bytes(&b).unwrap();
    assert_eq!(c.meta.extra["sampler"], "{ \"steps\" : 5 }");
    assert_eq!(c.meta.extra["comment"], "not json");
    assert_eq!(c.meta.extra.len(), 2);
    assert_eq!(c.meta.train, Some(json!([1])));
    let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn kinds_parse_and_serde_agree() {
    for k in ModelKind::all() {
        assert_eq!(ModelKind::parse(k.as_str()), Some(k));
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            format!("\"{}\"", k.as_str())
        );
    }
    assert_eq!(ModelKind::parse("Deen"), None);
    assert_eq!(
        DataSpec {
            name: "x".into(),
            channels: 3,
            height: 4,
            width: 5
        }
        .dim(),
        60
    );
}
