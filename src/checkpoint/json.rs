//! Canonical JSON: compact, object keys sorted, so that checkpoint headers and metadata values come out
//! byte-identical for the same checkpoint. serde_json does it: without its `preserve_order` feature (a test below
//! fails if a dependency turns it on) a `Value`'s objects are `BTreeMap`s, serialised in key order.

use serde_json::Value;

/// Appends `s` as a JSON string literal.
pub(super) fn write_json_str(out: &mut String, s: &str) {
    out.push_str(&canonical_json(&Value::String(s.to_string())));
}

/// `v` as compact JSON with object keys sorted.
pub(super) fn canonical_json(v: &Value) -> String {
    // Serialising a `Value` into a `String` cannot fail (no I/O, keys are strings).
    serde_json::to_string(v).unwrap_or_default()
}

/// The JSON type of `v`, as error messages name it (`object`, `array` ...).
pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical form relies on serde_json sorting object keys: insertion order must not show.
    #[test]
    fn objects_come_out_with_sorted_keys_whatever_the_insertion_order() {
        let mut m = serde_json::Map::new();
        m.insert("zeta".into(), Value::from(1));
        m.insert(
            "alpha".into(),
            serde_json::json!({"y": [1.5, "t\n"], "b": null}),
        );
        assert_eq!(
            canonical_json(&Value::Object(m)),
            r#"{"alpha":{"b":null,"y":[1.5,"t\n"]},"zeta":1}"#
        );
        let mut s = String::new();
        write_json_str(&mut s, "q\"\u{1}");
        assert_eq!(s, r#""q\"\u0001""#);
    }
}
