//! The walkjump metadata of a checkpoint ([`Metadata`], [`ModelKind`], [`DataSpec`]), its tensors
//! ([`TensorData`]), and their validation: the string map read from `__metadata__` to [`Metadata`] and back, and the
//! invariants loading and saving both enforce.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::Value;

use super::json::{canonical_json, json_type, write_json_str};
use super::{CheckpointError, FORMAT, MAX_DATA_DIM, MAX_MEASUREMENTS, RESERVED_KEYS, VERSION};

/// The kind of model a checkpoint holds: its name (the `kind` metadata key, e.g. `"deen"`) and the one fact about it
/// that checkpoint validation needs (whether `sigma` may be 0).
///
/// The kinds themselves are defined above this layer, one file each, and listed once in the registry of model kinds
/// (`models::kinds`), which also gives every kind its constant (`ModelKind::DEEN`, ...). This layer never lists
/// them: reading a checkpoint takes the kinds it may name as an argument ([`Checkpoint::from_bytes_in`]), and
/// `Checkpoint::from_bytes` / `Checkpoint::load` (defined with the registry) pass the registered ones.
///
/// Kinds compare field by field, so that a constant can be matched in a pattern; the registry holds one kind per name.
///
/// [`Checkpoint::from_bytes_in`]: super::Checkpoint::from_bytes_in
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelKind {
    name: &'static str,
    zero_sigma: bool,
}

impl ModelKind {
    /// The kind called `name` (lower-case snake_case, as stored in checkpoints) whose checkpoints need `sigma > 0`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            zero_sigma: false,
        }
    }

    /// The same kind, allowed `sigma = 0` (a kind that does not denoise, such as the classifier).
    pub const fn with_zero_sigma(self) -> Self {
        Self {
            zero_sigma: true,
            ..self
        }
    }

    /// The snake_case name stored in checkpoints (same as the serde name).
    pub const fn as_str(&self) -> &'static str {
        self.name
    }

    /// Whether its checkpoints may have `sigma = 0`.
    pub const fn allows_zero_sigma(&self) -> bool {
        self.zero_sigma
    }

    /// The kind of `kinds` named exactly `s`; `None` for anything else.
    pub fn find(s: &str, kinds: &[ModelKind]) -> Option<Self> {
        kinds.iter().copied().find(|k| k.name == s)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ModelKind").field(&self.name).finish()
    }
}

impl serde::Serialize for ModelKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

/// The data set a model was trained on, stored as the JSON `data` key.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSpec {
    /// Data set name, e.g. `mnist-10k`.
    pub name: String,
    /// Number of channels (>= 1).
    pub channels: usize,
    /// Image height (>= 1).
    pub height: usize,
    /// Image width (>= 1).
    pub width: usize,
}

impl DataSpec {
    /// `(channels, height, width)` of one sample.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Flattened data dimension `channels * height * width` (saturating, so an
    /// unvalidated spec never panics; validated specs are at most
    /// [`MAX_DATA_DIM`]).
    pub fn dim(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// Checks every dimension is >= 1 and the product is <= [`MAX_DATA_DIM`].
    pub fn validate(&self) -> Result<(), CheckpointError> {
        let dim = self
            .channels
            .checked_mul(self.height)
            .and_then(|d| d.checked_mul(self.width));
        let ok = self.channels >= 1
            && self.height >= 1
            && self.width >= 1
            && dim.is_some_and(|d| d <= MAX_DATA_DIM);
        if ok {
            Ok(())
        } else {
            Err(CheckpointError::DataDims {
                channels: self.channels,
                height: self.height,
                width: self.width,
            })
        }
    }
}

/// The walkjump metadata of a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    /// Model kind (`kind` key).
    pub kind: ModelKind,
    /// Format version (`version` key), 1..=[`VERSION`].
    pub version: u32,
    /// Noise level (`sigma` key): finite, >= 0, and > 0 unless the kind
    /// [allows 0](ModelKind::allows_zero_sigma).
    pub sigma: f64,
    /// Number of measurements `M` (`measurements` key), 1..=[`MAX_MEASUREMENTS`].
    pub measurements: usize,
    /// Data set description (`data` key).
    pub data: DataSpec,
    /// Architecture config (`arch` key); always a JSON object.
    pub arch: Value,
    /// Training-run record (`train` key), if present.
    pub train: Option<Value>,
    /// Every other metadata key, verbatim (e.g. `sampler`).
    pub extra: BTreeMap<String, String>,
}

impl Metadata {
    /// Checks the invariants loading enforces (version, sigma, measurements,
    /// data dims, `arch` is an object, no reserved key in `extra`).
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if self.version == 0 {
            return Err(CheckpointError::InvalidVersion {
                value: self.version.to_string(),
            });
        }
        if self.version > VERSION {
            return Err(CheckpointError::UnsupportedVersion {
                found: u64::from(self.version),
            });
        }
        check_sigma(self.kind, self.sigma, &format!("{:?}", self.sigma))?;
        check_measurements(self.measurements)?;
        self.data.validate()?;
        if !self.arch.is_object() {
            return Err(CheckpointError::ArchNotObject {
                found: json_type(&self.arch),
            });
        }
        if let Some(key) = self
            .extra
            .keys()
            .find(|k| RESERVED_KEYS.contains(&k.as_str()))
        {
            return Err(CheckpointError::ReservedExtraKey { key: key.clone() });
        }
        Ok(())
    }
}

impl Metadata {
    /// The `__metadata__` string map written by [`Checkpoint::to_bytes`](super::Checkpoint::to_bytes).
    pub(super) fn to_strings(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = self.extra.clone();
        m.insert("format".into(), FORMAT.into());
        m.insert("version".into(), self.version.to_string());
        m.insert("kind".into(), self.kind.as_str().into());
        // `{:?}` is the shortest representation that parses back to the same
        // f64, with an exponent for very large or small values.
        m.insert("sigma".into(), format!("{:?}", self.sigma));
        m.insert("measurements".into(), self.measurements.to_string());
        let mut data = String::from("{\"name\":");
        write_json_str(&mut data, &self.data.name);
        let _ = write!(
            data,
            ",\"channels\":{},\"height\":{},\"width\":{}}}",
            self.data.channels, self.data.height, self.data.width
        );
        m.insert("data".into(), data);
        m.insert("arch".into(), canonical_json(&self.arch));
        if let Some(t) = &self.train {
            m.insert("train".into(), canonical_json(t));
        }
        m
    }
}

/// One tensor's shape and row-major `f32` values.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    /// Dimensions, outermost first; `[]` is a scalar.
    pub shape: Vec<usize>,
    /// Row-major values; `data.len()` equals the product of `shape`.
    pub data: Vec<f32>,
}

impl TensorData {
    /// Number of elements implied by `shape` (`None` on overflow).
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

fn check_sigma(kind: ModelKind, sigma: f64, text: &str) -> Result<(), CheckpointError> {
    if !sigma.is_finite() {
        return Err(CheckpointError::SigmaNotFinite {
            value: text.to_string(),
        });
    }
    if sigma < 0.0 {
        return Err(CheckpointError::SigmaNegative {
            value: text.to_string(),
        });
    }
    if sigma == 0.0 && !kind.allows_zero_sigma() {
        return Err(CheckpointError::SigmaZero { kind });
    }
    Ok(())
}

fn check_measurements(m: usize) -> Result<(), CheckpointError> {
    if (1..=MAX_MEASUREMENTS).contains(&m) {
        Ok(())
    } else {
        Err(CheckpointError::MeasurementsOutOfRange { value: m as u64 })
    }
}

/// Parses the metadata strings into [`Metadata`], validating each key; `kind` must name one of `kinds`.
pub(super) fn parse_metadata(
    map: &HashMap<String, String>,
    kinds: &[ModelKind],
) -> Result<Metadata, CheckpointError> {
    let get = |key: &'static str| {
        map.get(key)
            .map(String::as_str)
            .ok_or(CheckpointError::MissingKey { key })
    };
    match map.get("format") {
        Some(f) if f == FORMAT => {}
        found => {
            return Err(CheckpointError::NotWalkjump {
                found: found.cloned(),
            });
        }
    }
    let vtext = get("version")?;
    let version = match vtext.trim().parse::<u64>() {
        Ok(0) | Err(_) => {
            return Err(CheckpointError::InvalidVersion {
                value: vtext.to_string(),
            });
        }
        Ok(v) if v > u64::from(VERSION) => {
            return Err(CheckpointError::UnsupportedVersion { found: v });
        }
        // v <= VERSION, so it fits in u32.
        Ok(v) => v as u32,
    };
    let ktext = get("kind")?;
    let kind = ModelKind::find(ktext, kinds).ok_or_else(|| CheckpointError::UnknownKind {
        value: ktext.to_string(),
        valid: kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let stext = get("sigma")?;
    let sigma = stext
        .trim()
        .parse::<f64>()
        .map_err(|_| CheckpointError::SigmaNotNumber {
            value: stext.to_string(),
        })?;
    // The trimmed text parsed as a number, so it is safe to echo (the raw text may hold newlines around it).
    check_sigma(kind, sigma, stext.trim())?;
    let mtext = get("measurements")?;
    let m = mtext
        .trim()
        .parse::<u64>()
        .map_err(|_| CheckpointError::MeasurementsInvalid {
            value: mtext.to_string(),
        })?;
    if !(1..=MAX_MEASUREMENTS as u64).contains(&m) {
        return Err(CheckpointError::MeasurementsOutOfRange { value: m });
    }
    let measurements = m as usize;
    let data: DataSpec =
        serde_json::from_str(get("data")?).map_err(|e| CheckpointError::DataInvalid {
            reason: e.to_string(),
        })?;
    data.validate()?;
    let arch: Value =
        serde_json::from_str(get("arch")?).map_err(|e| CheckpointError::ArchNotJson {
            reason: e.to_string(),
        })?;
    if !arch.is_object() {
        return Err(CheckpointError::ArchNotObject {
            found: json_type(&arch),
        });
    }
    let train =
        match map.get("train") {
            None => None,
            Some(t) => Some(serde_json::from_str::<Value>(t).map_err(|e| {
                CheckpointError::TrainNotJson {
                    reason: e.to_string(),
                }
            })?),
        };
    let extra = map
        .iter()
        .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Metadata {
        kind,
        version,
        sigma,
        measurements,
        data,
        arch,
        train,
        extra,
    })
}

/// Counts NaN and infinite values.
fn count_non_finite(data: &[f32]) -> (usize, usize) {
    data.iter().fold((0, 0), |(nan, inf), v| {
        (
            nan + usize::from(v.is_nan()),
            inf + usize::from(v.is_infinite()),
        )
    })
}

/// Refuses a tensor holding NaN or infinite values, counting both.
pub(super) fn check_finite(name: &str, data: &[f32]) -> Result<(), CheckpointError> {
    let (nan, inf) = count_non_finite(data);
    if nan + inf > 0 {
        return Err(CheckpointError::NonFinite {
            name: name.to_string(),
            nan,
            inf,
            total: data.len(),
        });
    }
    Ok(())
}
