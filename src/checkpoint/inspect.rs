//! [`inspect_in`]: a validated checkpoint as a human-readable, deterministic report.

use std::fmt::Write as _;

use serde_json::Value;

use super::envelope::{Parsed, parse};
use super::error::fmt_shape;
use super::json::canonical_json;
use super::{CheckpointError, FORMAT, ModelKind, sha256_hex};
use crate::text::one_line;

/// Validates `bytes` as a checkpoint and returns a human-readable report:
/// file hash and size, metadata (one `key value` line each, extra keys
/// included; JSON values in compact canonical form) and a table of tensors
/// sorted by name with shape, file dtype, min, max and mean. The text is the
/// same for the same input. `kinds`: the model kinds the file may name (`models::inspect` passes the registered
/// ones).
pub fn inspect_in(bytes: &[u8], kinds: &[ModelKind]) -> Result<String, CheckpointError> {
    let Parsed { checkpoint, dtypes } = parse(bytes, kinds)?;
    let meta = &checkpoint.meta;
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{:<12} {}", one_line(key), value);
    };
    line("file sha256", &sha256_hex(bytes));
    line("file size", &format!("{} bytes", bytes.len()));
    line("format", &format!("{FORMAT} v{}", meta.version));
    line("kind", meta.kind.as_str());
    let sigma = meta.sigma;
    let sigma_text = if sigma == 0.0 || (1e-4..1e15).contains(&sigma.abs()) {
        format!("{sigma}")
    } else {
        format!("{sigma:e}")
    };
    line("sigma", &sigma_text);
    line("measurements", &meta.measurements.to_string());
    line(
        "data",
        &format!(
            "{} {}x{}x{} ({} values)",
            one_line(&meta.data.name),
            meta.data.channels,
            meta.data.height,
            meta.data.width,
            meta.data.dim()
        ),
    );
    line("arch", &one_line(&canonical_json(&meta.arch)));
    match &meta.train {
        Some(t) => line("train", &one_line(&canonical_json(t))),
        None => line("train", "(none)"),
    }
    for (k, v) in &meta.extra {
        let shown = match serde_json::from_str::<Value>(v) {
            Ok(j) if j.is_object() || j.is_array() => canonical_json(&j),
            _ => v.clone(),
        };
        line(k, &one_line(&shown));
    }
    line(
        "tensors",
        &format!(
            "{} tensors, {} parameters",
            checkpoint.tensors.len(),
            checkpoint.param_count()
        ),
    );
    let rows: Vec<[String; 6]> = checkpoint
        .tensors
        .iter()
        .map(|(name, t)| {
            let dtype = dtypes.get(name).cloned().unwrap_or_else(|| "F32".into());
            let (min, max, mean) = if t.data.is_empty() {
                ("-".to_string(), "-".to_string(), "-".to_string())
            } else {
                let mut lo = f32::INFINITY;
                let mut hi = f32::NEG_INFINITY;
                let mut sum = 0.0f64;
                for &v in &t.data {
                    lo = lo.min(v);
                    hi = hi.max(v);
                    sum += f64::from(v);
                }
                let mean = sum / t.data.len() as f64;
                (
                    format!("{lo:.4e}"),
                    format!("{hi:.4e}"),
                    format!("{mean:.4e}"),
                )
            };
            [one_line(name), fmt_shape(&t.shape), dtype, min, max, mean]
        })
        .collect();
    let header = [
        "name".to_string(),
        "shape".to_string(),
        "dtype".to_string(),
        "min".to_string(),
        "max".to_string(),
        "mean".to_string(),
    ];
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut l = String::from(" ");
        for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
            l.push_str(if i == 0 { " " } else { "  " });
            if i < 3 {
                let _ = write!(l, "{cell:<w$}");
            } else {
                let _ = write!(l, "{cell:>w$}");
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    }
    Ok(out)
}
