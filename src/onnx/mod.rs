//! ONNX import: an `.onnx` file exported by `torch.onnx.export` becomes walkjump's own layer graph
//! ([`crate::nn::GraphSpec`]) with its weights, and from there a native checkpoint (`walkjump convert`) or a model.
//!
//! The translation walks the ONNX nodes in order. Weights and everything computed only from constants (shape
//! arithmetic of a dynamic batch: `Shape`, `Gather`, `Concat`, `Unsqueeze`, ...) are folded; each node that touches
//! the network's input becomes one or more graph nodes, each with its explicit VJP. Exporter idioms are recognised:
//! `x * Sigmoid(x)` is SiLU, `Reshape -> InstanceNormalization -> Reshape -> Mul -> Add` is GroupNorm, and
//! `Where(Greater(x, 20), x, Softplus(x))` is Softplus. Anything else names the node and the op in one line.
//!
//! Three roles (`walkjump.role` in the file's `metadata_props`, or `--role`):
//! - `energy`: `f(y) -> [N]` or `[N, 1]`; score `-grad f` by the VJP, jump `y - sigma^2 grad f` (a DEEN);
//! - `denoiser`: `D(y) -> [N, d]`; score `(D(y) - y) / sigma^2`, jump `D(y)` (an MDAE without input scaling);
//! - `score`: `s(y) -> [N, d]`; jump `y + sigma^2 s(y)` (the same, with `D = y + sigma^2 s` built into the graph).

pub mod proto;
mod translate;

pub use translate::translate;

use std::collections::BTreeMap;

use prost::Message;
use serde_json::json;

use crate::checkpoint::{Checkpoint, DataSpec, Metadata, ModelKind, TensorData};
use crate::nn::{GraphSpec, NodeSpec, Op, ValueShape};
use proto::ModelProto;

/// Largest `.onnx` file read (the graph and its weights).
pub const MAX_ONNX_BYTES: u64 = 1 << 30;
/// Largest number of ONNX nodes.
pub(crate) const MAX_ONNX_NODES: usize = 100_000;
/// Largest constant folded or stored, in elements.
pub(crate) const MAX_CONST_ELEMS: usize = 1 << 28;
/// Opset versions whose operator semantics the import follows.
pub(crate) const OPSETS: std::ops::RangeInclusive<i64> = 7..=23;

/// Why an ONNX file cannot be imported; every message is one line and names the node where there is one.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OnnxError {
    /// Not a protobuf `ModelProto`.
    #[error("not an ONNX model: {0}")]
    Malformed(String),
    /// A node walkjump cannot translate.
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        /// Node name (or its first output).
        node: String,
        /// Operator.
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// A problem with the file as a whole (opset, inputs, outputs, role).
    #[error("{0}")]
    Model(String),
}

type Result<T> = std::result::Result<T, OnnxError>;

impl From<OnnxError> for crate::Error {
    fn from(e: OnnxError) -> Self {
        crate::Error::Onnx(e.to_string())
    }
}

/// What the network is, and the noise model around it; from the file's `metadata_props` or from flags.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `f(y) -> [N]`: an energy; the score is `-grad f`.
    Energy,
    /// `D(y) -> [N, d]`: a denoiser; the score is `(D(y) - y) / sigma^2`.
    Denoiser,
    /// `s(y) -> [N, d]`: a score network.
    Score,
}

impl Role {
    /// `energy`, `denoiser` or `score`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Energy => "energy",
            Role::Denoiser => "denoiser",
            Role::Score => "score",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "energy" => Some(Role::Energy),
            "denoiser" => Some(Role::Denoiser),
            "score" => Some(Role::Score),
            _ => None,
        }
    }
}

/// Settings that override (or stand in for) the file's metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportOptions {
    /// What the network computes.
    pub role: Option<Role>,
    /// Noise level sigma.
    pub sigma: Option<f64>,
    /// Data shape `(c, h, w)` of one clean sample.
    pub shape: Option<(usize, usize, usize)>,
    /// Number of measurements M (denoisers and score nets of several noisy copies).
    pub measurements: Option<usize>,
}

/// A translated ONNX file.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The graph.
    pub spec: GraphSpec,
    /// Parameters, `name -> (dims, values)`.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Shape of one input.
    pub input: ValueShape,
    /// Shape of one output.
    pub output: ValueShape,
    /// Counts of ONNX op types in the file.
    pub onnx_ops: BTreeMap<String, usize>,
    /// `metadata_props`.
    pub props: BTreeMap<String, String>,
    /// Producer and opset, for `inspect`.
    pub producer: String,
    /// Standard opset version.
    pub opset: i64,
}

/// Decodes the protobuf.
pub fn parse(bytes: &[u8]) -> Result<ModelProto> {
    if bytes.is_empty() {
        return Err(OnnxError::Malformed("the file is empty".into()));
    }
    ModelProto::decode(bytes).map_err(|e| OnnxError::Malformed(one_line(&e.to_string())))
}

pub(crate) fn one_line(s: &str) -> String {
    crate::text::one_line(s)
}

fn prop<'a>(props: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    props
        .get(&format!("walkjump.{key}"))
        .or_else(|| props.get(key))
        .map(String::as_str)
}

/// Parses `c,h,w` (or `h,w` for one channel, or `d` for a flat vector shown as a square).
pub fn parse_shape(s: &str) -> std::result::Result<(usize, usize, usize), String> {
    let parts: std::result::Result<Vec<usize>, _> = s
        .split([',', 'x'])
        .map(|p| p.trim().parse::<usize>())
        .collect();
    match parts
        .map_err(|_| format!("shape '{}' is not c,h,w", one_line(s)))?
        .as_slice()
    {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok((*c, *h, *w)),
        [h, w] if *h > 0 && *w > 0 => Ok((1, *h, *w)),
        _ => Err(format!(
            "shape '{}' is not c,h,w with positive sizes",
            one_line(s)
        )),
    }
}

impl Imported {
    /// Role, sigma, measurements and data shape: flags first, then the file's metadata, then what the shapes say.
    pub fn resolve(&self, opts: &ImportOptions) -> Result<Resolved> {
        let role = match opts.role {
            Some(r) => r,
            None => match prop(&self.props, "role") {
                Some(s) => Role::parse(s).ok_or_else(|| {
                    OnnxError::Model(format!(
                        "metadata role '{s}' is not energy, denoiser or score"
                    ))
                })?,
                None if self.output.numel() == 1 => Role::Energy,
                None => {
                    return Err(OnnxError::Model(format!(
                        "the file does not say what its {} outputs are: pass --role denoiser or --role score (or set metadata walkjump.role)",
                        self.output.describe()
                    )));
                }
            },
        };
        let sigma = match opts.sigma {
            Some(s) => s,
            None => match prop(&self.props, "sigma") {
                Some(s) => s.trim().parse::<f64>().map_err(|_| {
                    OnnxError::Model(format!("metadata sigma '{s}' is not a number"))
                })?,
                None => {
                    return Err(OnnxError::Model(
                        "the file does not say its noise level: pass --onnx-sigma (or set metadata walkjump.sigma)".into(),
                    ));
                }
            },
        };
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(OnnxError::Model(format!("sigma {sigma} must be positive")));
        }
        let m = match opts.measurements {
            Some(m) => m,
            None => match prop(&self.props, "measurements") {
                Some(s) => s.trim().parse::<usize>().map_err(|_| {
                    OnnxError::Model(format!("metadata measurements '{s}' is not a count"))
                })?,
                None => 1,
            },
        };
        if m == 0 || m > crate::checkpoint::MAX_MEASUREMENTS {
            return Err(OnnxError::Model(format!(
                "{m} measurements is out of range"
            )));
        }
        let d = self.input.numel();
        if !d.is_multiple_of(m) {
            return Err(OnnxError::Model(format!(
                "{m} measurements do not divide the input's {d} values"
            )));
        }
        let shape = match (opts.shape, prop(&self.props, "shape")) {
            (Some(s), _) => s,
            (None, Some(s)) => parse_shape(s).map_err(OnnxError::Model)?,
            (None, None) => match self.input {
                ValueShape::Image(c, h, w) if c % m == 0 => (c / m, h, w),
                _ => {
                    let side = ((d / m) as f64).sqrt().round() as usize;
                    if side * side != d / m {
                        return Err(OnnxError::Model(format!(
                            "the input is {} values, not an image: pass --onnx-shape c,h,w",
                            d
                        )));
                    }
                    (1, side, side)
                }
            },
        };
        if ValueShape::Image(shape.0, shape.1, shape.2)
            .numel()
            .checked_mul(m)
            != Some(d)
        {
            return Err(OnnxError::Model(format!(
                "shape {}x{}x{} with {m} measurement(s) does not match the input's {d} values",
                shape.0, shape.1, shape.2
            )));
        }
        let want_out = match role {
            Role::Energy => 1,
            _ => d,
        };
        if self.output.numel() != want_out {
            return Err(OnnxError::Model(format!(
                "a {} network must give {want_out} value(s) per sample, this one gives {}",
                role.as_str(),
                self.output.numel()
            )));
        }
        Ok((role, sigma, m, shape))
    }

    /// The native checkpoint: a DEEN (energy) or an MDAE without input scaling (denoiser, score) on this graph.
    pub fn to_checkpoint(&self, opts: &ImportOptions, source: &str) -> Result<Checkpoint> {
        let (role, sigma, m, (c, h, w)) = self.resolve(opts)?;
        let mut spec = self.spec.clone();
        if role == Role::Score {
            // D(y) = y + sigma^2 s(y), with the score's output brought to the input's shape.
            let mut out = spec.nodes.len();
            let mut push = |op: Op, v: usize| {
                spec.nodes.push(NodeSpec {
                    op,
                    inputs: vec![v],
                    name: String::new(),
                });
                spec.nodes.len()
            };
            if self.output != self.input {
                if matches!(self.output, ValueShape::Image(..)) {
                    out = push(Op::Flatten, out);
                }
                if let ValueShape::Image(c, h, w) = self.input {
                    out = push(Op::Unflatten { shape: [c, h, w] }, out);
                }
            }
            spec.nodes.push(NodeSpec {
                op: Op::Affine {
                    mul: sigma * sigma,
                    add: 0.0,
                },
                inputs: vec![out],
                name: String::new(),
            });
            let scaled = spec.nodes.len();
            spec.nodes.push(NodeSpec {
                op: Op::Add,
                inputs: vec![scaled, 0],
                name: String::new(),
            });
        }
        // The checkpoint formats of the `deen` and `mdae` kinds (`models::kinds`), named as a file names them.
        let kind = match role {
            Role::Energy => ModelKind::new("deen"),
            Role::Denoiser | Role::Score => ModelKind::new("mdae"),
        };
        let mut arch = json!({ "net": serde_json::to_value(crate::nn::NetConfig::Graph(spec)).map_err(|e| OnnxError::Model(one_line(&e.to_string())))? });
        if kind.as_str() == "mdae" {
            arch["raw_input"] = json!(true);
        }
        let mut extra = BTreeMap::new();
        extra.insert("onnx_role".to_string(), role.as_str().to_string());
        extra.insert("onnx_source".to_string(), one_line(source));
        let meta = Metadata {
            kind,
            version: crate::checkpoint::VERSION,
            sigma,
            measurements: m,
            data: DataSpec {
                name: format!("onnx:{}", one_line(source)),
                channels: c,
                height: h,
                width: w,
            },
            arch,
            train: None,
            extra,
        };
        let tensors = self
            .tensors
            .iter()
            .map(|(k, (dims, data))| {
                // Parameters live under the model's `net` prefix.
                (
                    format!("net.{k}"),
                    TensorData {
                        shape: dims.clone(),
                        data: data.clone(),
                    },
                )
            })
            .collect();
        Ok(Checkpoint { meta, tensors })
    }

    /// A human-readable summary: producer, opset, ONNX ops, the translated graph with shapes, parameter count.
    pub fn describe(&self, opts: &ImportOptions) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "producer     {}\nopset        {}\n",
            if self.producer.is_empty() {
                "?"
            } else {
                &self.producer
            },
            self.opset
        ));
        let ops: Vec<String> = self
            .onnx_ops
            .iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect();
        s.push_str(&format!("onnx ops     {}\n", ops.join(", ")));
        for (k, v) in &self.props {
            s.push_str(&format!("metadata     {k} = {v}\n"));
        }
        let params: usize = self.tensors.values().map(|(_, v)| v.len()).sum();
        s.push_str(&format!(
            "graph        {} nodes, {params} parameters, input {}, output {}\n",
            self.spec.nodes.len(),
            self.input.describe(),
            self.output.describe()
        ));
        match self.resolve(opts) {
            Ok((role, sigma, m, (c, h, w))) => s.push_str(&format!(
                "role         {} at sigma {sigma}, M = {m}, data {c}x{h}x{w}\n",
                role.as_str()
            )),
            Err(e) => s.push_str(&format!("missing      {e}\n")),
        }
        s
    }
}

/// Role, sigma, measurements M and data shape `(c, h, w)` of an imported network.
pub type Resolved = (Role, f64, usize, (usize, usize, usize));

/// Parameters by name: `(dims, values)`.
pub type Params = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads, decodes and translates an `.onnx` file.
pub fn import_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Imported> {
    translate(&parse(bytes)?, opts)
}

/// Whether a path names an ONNX file (by extension).
pub fn is_onnx_path(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Reads an `.onnx` file of at most [`MAX_ONNX_BYTES`].
pub fn read_onnx_file(path: &std::path::Path) -> crate::Result<Vec<u8>> {
    use std::io::Read;
    let io = |err: std::io::Error| crate::Error::Io {
        path: path.display().to_string(),
        err,
    };
    let md = std::fs::metadata(path).map_err(io)?;
    if !md.is_file() {
        return Err(OnnxError::Model(format!("{} is not a regular file", path.display())).into());
    }
    if md.len() > MAX_ONNX_BYTES {
        return Err(OnnxError::Model(format!(
            "{} is {} bytes, over the {MAX_ONNX_BYTES}-byte limit",
            path.display(),
            md.len()
        ))
        .into());
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_ONNX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_ONNX_BYTES {
        return Err(OnnxError::Model(format!(
            "{} grew past the size limit while read",
            path.display()
        ))
        .into());
    }
    Ok(bytes)
}

/// Reads an `.onnx` file and translates it into a native checkpoint.
pub fn checkpoint_from_file(
    path: &std::path::Path,
    opts: &ImportOptions,
) -> crate::Result<(Checkpoint, String)> {
    let bytes = read_onnx_file(path)?;
    let sha = crate::checkpoint::sha256_hex(&bytes);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.onnx".into());
    let imported = import_bytes(&bytes, opts)?;
    Ok((imported.to_checkpoint(opts, &name)?, sha))
}
