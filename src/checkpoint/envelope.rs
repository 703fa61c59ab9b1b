//! Reading a checkpoint from bytes: the safetensors envelope (length prefix, UTF-8 JSON header, tensor entries and
//! their offsets, checked with overflow-checked arithmetic before the safetensors crate sees them), then the
//! metadata (see `meta.rs`) and every tensor's dtype and values.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde_json::Value;

use super::error::q;
use super::json::json_type;
use super::meta::{check_finite, parse_metadata};
use super::{Checkpoint, CheckpointError, MAX_HEADER_BYTES, ModelKind, PREFIX, TensorData};

/// Bits per element of a safetensors dtype name, `None` for unknown names.
fn dtype_bits(name: &str) -> Option<usize> {
    Some(match name {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// Shape of a tensor entry as the header spells it (checked before the
/// safetensors crate sees the header, see [`prescan_tensors`]).
#[derive(serde::Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// Checks the 8-byte prefix and returns the header text and its length.
fn check_envelope(bytes: &[u8]) -> Result<(&str, usize), CheckpointError> {
    let Some(prefix) = bytes.first_chunk::<PREFIX>() else {
        return Err(if bytes.is_empty() {
            CheckpointError::Empty
        } else {
            CheckpointError::TooShort { len: bytes.len() }
        });
    };
    let claimed = u64::from_le_bytes(*prefix);
    let available = bytes.len() - PREFIX;
    // Compare in u64 before converting: a claim of terabytes is rejected here,
    // and nothing is ever allocated from it.
    if claimed > available as u64 {
        return Err(CheckpointError::HeaderPastEnd { claimed, available });
    }
    let n = claimed as usize;
    if n > MAX_HEADER_BYTES {
        return Err(CheckpointError::HeaderTooLarge {
            len: claimed,
            max: MAX_HEADER_BYTES,
        });
    }
    let header = bytes
        .get(PREFIX..PREFIX + n)
        .ok_or(CheckpointError::HeaderPastEnd { claimed, available })?;
    let text = std::str::from_utf8(header).map_err(|e| CheckpointError::HeaderNotUtf8 {
        offset: e.valid_up_to(),
    })?;
    Ok((text, n))
}

/// Validates every tensor entry of the header against the data section with
/// overflow-checked arithmetic and named errors.
///
/// This runs before `SafeTensors::read_metadata`, which (in 0.8) reports size
/// mismatches without the tensor name and computes `buffer_end + 8 + n`
/// unchecked: offsets summing to nearly 2^64 make it panic with an arithmetic
/// overflow in debug builds. After this scan every end offset is <= the data
/// length, so that sum cannot overflow.
fn prescan_tensors(
    obj: &serde_json::Map<String, Value>,
    data_len: usize,
) -> Result<(), CheckpointError> {
    use serde::Deserialize;
    let mut ranges: Vec<(usize, usize, &str)> = Vec::with_capacity(obj.len());
    for (name, entry) in obj {
        if name == "__metadata__" {
            continue;
        }
        let info =
            RawInfo::deserialize(entry).map_err(|e| CheckpointError::TensorEntryMalformed {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        let (start, end) = info.data_offsets;
        if end < start {
            return Err(CheckpointError::TensorOffsets {
                name: name.clone(),
                reason: format!("end offset {end} is before start offset {start}"),
            });
        }
        if end > data_len {
            return Err(CheckpointError::TensorOutOfBounds {
                name: name.clone(),
                end,
                available: data_len,
            });
        }
        let Some(bits) = dtype_bits(&info.dtype) else {
            return Err(CheckpointError::UnsupportedDtype {
                name: name.clone(),
                dtype: info.dtype,
            });
        };
        let nbits = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(bits))
            .ok_or_else(|| CheckpointError::TensorTooLarge { name: name.clone() })?;
        if nbits % 8 != 0 {
            // Only sub-byte dtypes (F4, F6) can get here; they are not
            // supported anyway.
            return Err(CheckpointError::UnsupportedDtype {
                name: name.clone(),
                dtype: info.dtype,
            });
        }
        let expected = nbits / 8;
        let actual = end - start;
        if expected != actual {
            return Err(CheckpointError::TensorSizeMismatch {
                name: name.clone(),
                dtype: info.dtype,
                shape: info.shape,
                expected,
                actual,
            });
        }
        ranges.push((start, end, name.as_str()));
    }
    ranges.sort();
    let mut pos = 0usize;
    for (start, end, name) in ranges {
        if start != pos {
            let reason = if start < pos {
                format!(
                    "data starts at byte {start}, inside the previous tensor which ends at byte {pos}"
                )
            } else {
                format!("data starts at byte {start}, leaving a gap after byte {pos}")
            };
            return Err(CheckpointError::TensorOffsets {
                name: name.to_string(),
                reason,
            });
        }
        pos = end;
    }
    if pos != data_len {
        return Err(CheckpointError::DataLengthMismatch {
            covered: pos,
            available: data_len,
        });
    }
    Ok(())
}

/// Checks that `__metadata__` exists and is an object of strings.
fn prescan_metadata(obj: &serde_json::Map<String, Value>) -> Result<(), CheckpointError> {
    match obj.get("__metadata__") {
        None | Some(Value::Null) => Err(CheckpointError::NoMetadata),
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if !v.is_string() {
                    return Err(CheckpointError::MetadataMalformed {
                        reason: format!(
                            "the value of {} is a JSON {}, not a string",
                            q(k),
                            json_type(v)
                        ),
                    });
                }
            }
            Ok(())
        }
        Some(other) => Err(CheckpointError::MetadataMalformed {
            reason: format!(
                "it is a JSON {}, not an object of strings",
                json_type(other)
            ),
        }),
    }
}

/// Maps an error of the safetensors crate onto our variants.
fn map_st_error(e: SafeTensorError, claimed: u64, available: usize) -> CheckpointError {
    match e {
        SafeTensorError::HeaderTooSmall => CheckpointError::TooShort { len: available },
        SafeTensorError::HeaderTooLarge => CheckpointError::HeaderTooLarge {
            len: claimed,
            max: MAX_HEADER_BYTES,
        },
        SafeTensorError::InvalidHeaderLength => {
            CheckpointError::HeaderPastEnd { claimed, available }
        }
        SafeTensorError::InvalidHeader(u) => CheckpointError::HeaderNotUtf8 {
            offset: u.valid_up_to(),
        },
        SafeTensorError::InvalidHeaderDeserialization(j) => CheckpointError::HeaderMalformed {
            reason: j.to_string(),
        },
        SafeTensorError::InvalidOffset(name) => CheckpointError::TensorOffsets {
            name,
            reason: "offsets are not contiguous from the start of the data section".to_string(),
        },
        other => CheckpointError::Safetensors {
            reason: other.to_string(),
        },
    }
}

/// Decodes one tensor's bytes to f32, checking dtype and finiteness.
fn decode_tensor(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, CheckpointError> {
    let data: Vec<f32> = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => {
            let wide: Vec<f64> = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            let (mut nan, mut inf, mut out_of_range) = (0usize, 0usize, 0usize);
            for v in &wide {
                if v.is_nan() {
                    nan += 1;
                } else if v.is_infinite() {
                    inf += 1;
                } else if v.abs() > f64::from(f32::MAX) {
                    out_of_range += 1;
                }
            }
            if nan + inf > 0 {
                return Err(CheckpointError::NonFinite {
                    name: name.to_string(),
                    nan,
                    inf,
                    total: wide.len(),
                });
            }
            if out_of_range > 0 {
                return Err(CheckpointError::F64OutOfRange {
                    name: name.to_string(),
                    count: out_of_range,
                });
            }
            wide.into_iter().map(|v| v as f32).collect()
        }
        other => {
            return Err(CheckpointError::UnsupportedDtype {
                name: name.to_string(),
                dtype: other.to_string(),
            });
        }
    };
    check_finite(name, &data)?;
    Ok(data)
}

/// A parsed checkpoint plus the dtype each tensor had in the file.
pub(super) struct Parsed {
    pub(super) checkpoint: Checkpoint,
    pub(super) dtypes: BTreeMap<String, String>,
}

/// Parses and fully validates `bytes`, whose `kind` must be one of `kinds` (see [`Checkpoint::from_bytes_in`]).
pub(super) fn parse(bytes: &[u8], kinds: &[ModelKind]) -> Result<Parsed, CheckpointError> {
    let (header, n) = check_envelope(bytes)?;
    let value: Value =
        serde_json::from_str(header).map_err(|e| CheckpointError::HeaderNotJson {
            reason: e.to_string(),
        })?;
    let Value::Object(obj) = &value else {
        return Err(CheckpointError::HeaderMalformed {
            reason: format!("the header is a JSON {}, not an object", json_type(&value)),
        });
    };
    let data_start = PREFIX + n;
    let data_len = bytes.len() - data_start;
    prescan_tensors(obj, data_len)?;
    prescan_metadata(obj)?;

    // The safetensors crate has the final word on the envelope.
    let (st_n, st_meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| map_st_error(e, n as u64, bytes.len() - PREFIX))?;
    if st_n != n {
        return Err(CheckpointError::Safetensors {
            reason: format!("header length {st_n} disagrees with the prefix {n}"),
        });
    }
    let strings = st_meta
        .metadata()
        .as_ref()
        .ok_or(CheckpointError::NoMetadata)?;
    let meta = parse_metadata(strings, kinds)?;

    let infos: BTreeMap<String, &safetensors::tensor::TensorInfo> =
        st_meta.tensors().into_iter().collect();
    if infos.is_empty() {
        return Err(CheckpointError::NoTensors);
    }
    let data = bytes.get(data_start..).unwrap_or_default();
    let mut tensors = BTreeMap::new();
    let mut dtypes = BTreeMap::new();
    for (name, info) in infos {
        let (start, end) = info.data_offsets;
        let raw = data
            .get(start..end)
            .ok_or_else(|| CheckpointError::TensorOutOfBounds {
                name: name.clone(),
                end,
                available: data.len(),
            })?;
        let values = decode_tensor(&name, info.dtype, raw)?;
        let numel = info.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(values.len()) {
            return Err(CheckpointError::TensorSizeMismatch {
                name,
                dtype: info.dtype.to_string(),
                shape: info.shape.clone(),
                expected: numel.unwrap_or(usize::MAX),
                actual: raw.len(),
            });
        }
        dtypes.insert(name.clone(), info.dtype.to_string());
        tensors.insert(
            name,
            TensorData {
                shape: info.shape.clone(),
                data: values,
            },
        );
    }
    Ok(Parsed {
        checkpoint: Checkpoint { meta, tensors },
        dtypes,
    })
}
