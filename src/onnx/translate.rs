//! The translation proper: ONNX nodes, in order, to graph nodes and parameters (see the module above for what
//! is recognised).

use std::collections::{BTreeMap, HashMap};

use super::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use super::{
    ImportOptions, Imported, MAX_CONST_ELEMS, MAX_ONNX_NODES, OPSETS, OnnxError, Params, Result,
    one_line,
};
use crate::nn::{GraphSpec, NodeSpec, Op, ValueShape};

/// Sentinel for the batch dimension inside folded shape tensors.
const BATCH: f64 = f64::NEG_INFINITY;

#[derive(Clone, Debug)]
struct Const {
    dims: Vec<usize>,
    data: Vec<f64>,
}

impl Const {
    fn scalar(&self) -> Option<f64> {
        (self.data.len() == 1).then(|| self.data[0])
    }
}

#[derive(Clone, Debug)]
enum Val {
    Const(Const),
    /// A graph value (per-sample shape); `batch_only` for `[N]` after squeezing `[N, 1]`.
    Dyn(usize, ValueShape),
    /// `Reshape(image, [N, G, -1])`, waiting for `InstanceNormalization`.
    Grouped(usize, ValueShape, usize),
    /// A graph value normalised by groups, waiting for the `Reshape` back.
    GroupNormed(usize, ValueShape),
    /// `Greater(x, t)` of a graph value with a constant.
    Mask(f64),
}

struct Translator {
    nodes: Vec<NodeSpec>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    vals: HashMap<String, Val>,
    /// ONNX readers of each ONNX value name.
    readers: HashMap<String, usize>,
    /// Graph value -> its input, for values that are `sigmoid(input)`.
    sigmoid_of: HashMap<usize, usize>,
    /// Graph value -> index of the node that made it when that node is a linear / conv2d with a bias to fold into.
    biased: HashMap<usize, usize>,
    /// Graph value -> the value a `softplus` node read (for the `Where` threshold idiom).
    softplus_of: HashMap<usize, usize>,
}

fn node_id(n: &NodeProto) -> String {
    if !n.name.is_empty() {
        one_line(&n.name)
    } else {
        n.output
            .first()
            .map(|o| one_line(o))
            .unwrap_or_else(|| "?".into())
    }
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_f(n: &NodeProto, name: &str, default: f64) -> f64 {
    attr(n, name).map_or(default, |a| f64::from(a.f))
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Values of a constant tensor as f64.
fn tensor_values(t: &TensorProto) -> std::result::Result<Const, String> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(format!(
            "tensor '{}' keeps its values in an external file; export with the weights inside the .onnx file",
            one_line(&t.name)
        ));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut count: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d)
            .map_err(|_| format!("tensor '{}' has a negative dimension", one_line(&t.name)))?;
        count = count
            .checked_mul(d)
            .filter(|c| *c <= MAX_CONST_ELEMS)
            .ok_or_else(|| format!("tensor '{}' is too large", one_line(&t.name)))?;
        dims.push(d);
    }
    let raw = &t.raw_data;
    let from_raw = |width: usize| -> std::result::Result<&[u8], String> {
        if raw.len() != count * width {
            return Err(format!(
                "tensor '{}' has {} bytes for {count} values of {width} bytes",
                one_line(&t.name),
                raw.len()
            ));
        }
        Ok(raw)
    };
    let data: Vec<f64> = match t.data_type {
        // float
        1 => {
            if raw.is_empty() && count > 0 {
                t.float_data.iter().map(|&v| f64::from(v)).collect()
            } else {
                from_raw(4)?
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect()
            }
        }
        // double
        11 => {
            if raw.is_empty() && count > 0 {
                t.double_data.clone()
            } else {
                from_raw(8)?
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            }
        }
        // int64
        7 => {
            if raw.is_empty() && count > 0 {
                t.int64_data.iter().map(|&v| v as f64).collect()
            } else {
                from_raw(8)?
                    .chunks_exact(8)
                    .map(|c| {
                        i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64
                    })
                    .collect()
            }
        }
        // int32, bool (as int32_data or one byte each)
        6 | 9 => {
            if raw.is_empty() && count > 0 {
                t.int32_data.iter().map(|&v| f64::from(v)).collect()
            } else if t.data_type == 9 {
                from_raw(1)?.iter().map(|&b| f64::from(b)).collect()
            } else {
                from_raw(4)?
                    .chunks_exact(4)
                    .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect()
            }
        }
        other => {
            return Err(format!(
                "tensor '{}' has element type {other} (walkjump reads float, double, int32, int64 and bool)",
                one_line(&t.name)
            ));
        }
    };
    if data.len() != count {
        return Err(format!(
            "tensor '{}' has {} values for shape {dims:?}",
            one_line(&t.name),
            data.len()
        ));
    }
    Ok(Const { dims, data })
}

/// Per-sample shape of a graph input or output from its declared type: `[N, c, h, w]`, `[N, d]`.
fn declared_shape(v: &ValueInfoProto) -> Option<Vec<Option<usize>>> {
    let shape = v.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| usize::try_from(d.dim_value).ok().filter(|v| *v > 0))
            .collect(),
    )
}

/// Full dims `[BATCH, ...]` of a graph value, as the ONNX side sees it.
fn full_dims(shape: ValueShape) -> Vec<f64> {
    match shape {
        ValueShape::Flat(d) => vec![BATCH, d as f64],
        ValueShape::Image(c, h, w) => vec![BATCH, c as f64, h as f64, w as f64],
    }
}

fn as_usize(v: f64) -> Option<usize> {
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 1e15).then_some(v as usize)
}

/// Reads a const as a list of integers (batch sentinel kept as `None`).
fn ints(c: &Const) -> Vec<Option<i64>> {
    c.data
        .iter()
        .map(|&v| (v != BATCH).then_some(v as i64))
        .collect()
}

impl Translator {
    fn fail(&self, n: &NodeProto, msg: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: node_id(n),
            op: one_line(&n.op_type),
            msg: msg.into(),
        }
    }

    fn get(&self, n: &NodeProto, k: usize) -> Result<Val> {
        let name = n
            .input
            .get(k)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.fail(n, format!("input {k} is missing")))?;
        self.vals.get(name).cloned().ok_or_else(|| {
            self.fail(
                n,
                format!(
                    "reads '{}', which no earlier node or initializer defines",
                    one_line(name)
                ),
            )
        })
    }

    fn opt(&self, n: &NodeProto, k: usize) -> Result<Option<Val>> {
        match n.input.get(k) {
            Some(s) if !s.is_empty() => self.get(n, k).map(Some),
            _ => Ok(None),
        }
    }

    fn konst(&self, n: &NodeProto, k: usize, what: &str) -> Result<Const> {
        match self.get(n, k)? {
            Val::Const(c) => Ok(c),
            _ => Err(self.fail(n, format!("{what} must be a constant"))),
        }
    }

    fn dynamic(&self, n: &NodeProto, k: usize) -> Result<(usize, ValueShape)> {
        match self.get(n, k)? {
            Val::Dyn(id, s) => Ok((id, s)),
            Val::Const(_) => Err(self.fail(
                n,
                "computes only on constants here, which walkjump folds; this use is not supported",
            )),
            _ => Err(self.fail(
                n,
                "reads an intermediate pattern walkjump does not recognise here",
            )),
        }
    }

    fn set(&mut self, n: &NodeProto, v: Val) -> Result<()> {
        let out = n
            .output
            .first()
            .ok_or_else(|| self.fail(n, "has no output"))?
            .clone();
        self.vals.insert(out, v);
        Ok(())
    }

    /// Appends a graph node; returns its value id.
    fn push(
        &mut self,
        op: Op,
        inputs: Vec<usize>,
        params: Vec<(&str, Vec<usize>, Vec<f32>)>,
    ) -> usize {
        let idx = self.nodes.len();
        let name = if params.is_empty() {
            String::new()
        } else {
            format!("n{idx}")
        };
        for (p, dims, values) in params {
            self.tensors.insert(format!("{name}.{p}"), (dims, values));
        }
        self.nodes.push(NodeSpec { op, inputs, name });
        idx + 1
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Largest constant made by folding an elementwise op on two constants.
const MAX_FOLDED_ELEMS: usize = 1 << 22;

/// Broadcast result dims of two constants (numpy rules).
fn broadcast_dims(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

fn broadcast_binary(a: &Const, b: &Const, f: impl Fn(f64, f64) -> f64) -> Option<Const> {
    let dims = broadcast_dims(&a.dims, &b.dims)?;
    let count: usize = dims.iter().product();
    // Shape arithmetic never needs large products; a hostile file must not turn two small constants into a huge one.
    if count > MAX_FOLDED_ELEMS {
        return None;
    }
    let index = |c: &Const, flat: usize| -> usize {
        let mut rem = flat;
        let mut idx = 0;
        let mut stride = 1;
        let off = dims.len() - c.dims.len();
        let mut strides = vec![0; dims.len()];
        for i in (0..dims.len()).rev() {
            if i >= off {
                let d = c.dims[i - off];
                strides[i] = if d == 1 { 0 } else { stride };
                stride *= d;
            }
        }
        for i in (0..dims.len()).rev() {
            let pos = rem % dims[i].max(1);
            rem /= dims[i].max(1);
            idx += pos * strides[i];
        }
        idx
    };
    let data = (0..count)
        .map(|k| f(a.data[index(a, k)], b.data[index(b, k)]))
        .collect();
    Some(Const { dims, data })
}

/// A constant that broadcasts against a value of `shape` (with its batch axis) and varies at most along
/// channels (images) or features (flat): its values per channel.
fn per_channel(c: &Const, shape: ValueShape) -> Option<Vec<f64>> {
    let full: Vec<usize> = match shape {
        ValueShape::Flat(d) => vec![1, d],
        ValueShape::Image(ch, h, w) => vec![1, ch, h, w],
    };
    if c.dims.len() > full.len() {
        return None;
    }
    let off = full.len() - c.dims.len();
    for (i, &d) in c.dims.iter().enumerate() {
        let axis = i + off;
        if d != 1 && (axis != 1 || d != full[axis]) {
            return None;
        }
    }
    let ch = full[1];
    match c.data.len() {
        1 => Some(vec![c.data[0]; ch]),
        n if n == ch => Some(c.data.clone()),
        _ => None,
    }
}

/// Whether a value read by a node's input `k` has no other ONNX reader (so a constant can be folded into the node
/// that made it).
fn single_reader(t: &Translator, n: &NodeProto, k: usize) -> bool {
    n.input
        .get(k)
        .is_some_and(|name| t.readers.get(name).copied() == Some(1))
}

const SUPPORTED: &str = "Add, AveragePool, BatchNormalization, Cast, Concat, Constant, Conv, Div, Dropout, Elu, Flatten, Gather, Gelu, Gemm, GlobalAveragePool, Greater/Where (Softplus threshold), GroupNormalization, Identity, InstanceNormalization, LayerNormalization, LeakyRelu, MatMul, Mul, Neg, Pow (2), ReduceMean, ReduceSum, Relu, Reshape, Resize/Upsample (nearest, integer scale), Shape, Sigmoid, Slice, Softplus, Squeeze, Sub, Tanh, Unsqueeze";

impl Translator {
    fn act(&mut self, n: &NodeProto, op: Op) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let sigmoid = matches!(op, Op::Sigmoid);
        let softplus = matches!(op, Op::Softplus { .. });
        let out = self.push(op, vec![id], vec![]);
        if sigmoid {
            self.sigmoid_of.insert(out, id);
        }
        if softplus {
            self.softplus_of.insert(out, id);
        }
        self.set(n, Val::Dyn(out, s))
    }

    /// `x op c` (or `c op x` when `const_first`) for a graph value and a constant.
    fn with_const(
        &mut self,
        n: &NodeProto,
        op: &str,
        (id, s): (usize, ValueShape),
        c: &Const,
        const_first: bool,
        dyn_input: usize,
    ) -> Result<()> {
        let affine = |m: f64, a: f64| Op::Affine { mul: m, add: a };
        if let Some(k) = c.scalar() {
            let op =
                match (op, const_first) {
                    ("Add", _) => affine(1.0, k),
                    ("Mul", _) => affine(k, 0.0),
                    ("Sub", false) => affine(1.0, -k),
                    ("Sub", true) => affine(-1.0, k),
                    ("Div", false) if k != 0.0 => affine(1.0 / k, 0.0),
                    _ => return Err(self.fail(
                        n,
                        "divides by the input-dependent value, which walkjump's graph cannot hold",
                    )),
                };
            let out = self.push(op, vec![id], vec![]);
            return self.set(n, Val::Dyn(out, s));
        }
        let Some(v) = per_channel(c, s) else {
            return Err(self.fail(
                n,
                format!(
                    "combines a value of shape {} with a constant of shape {:?}; walkjump takes scalars and per-channel constants",
                    s.describe(),
                    c.dims
                ),
            ));
        };
        let fold = single_reader(self, n, dyn_input);
        match (op, const_first) {
            ("Add", _) | ("Sub", false) => {
                let sign = if op == "Sub" { -1.0 } else { 1.0 };
                let add: Vec<f64> = v.iter().map(|x| sign * x).collect();
                if fold && let Some(&node) = self.biased.get(&id) {
                    let key = format!("{}.bias", self.nodes[node].name);
                    if let Some((_, b)) = self.tensors.get_mut(&key)
                        && b.len() == add.len()
                    {
                        for (b, a) in b.iter_mut().zip(&add) {
                            *b += *a as f32;
                        }
                        // The node's own value now stands for this Add's output.
                        return self.set(n, Val::Dyn(id, s));
                    }
                }
                let out = self.push(
                    Op::ChannelAdd,
                    vec![id],
                    vec![("bias", vec![v.len()], f32s(&add))],
                );
                self.set(n, Val::Dyn(out, s))
            }
            ("Mul", _) | ("Div", false) => {
                if op == "Div" && v.contains(&0.0) {
                    return Err(self.fail(n, "divides by a constant with zeros"));
                }
                let m: Vec<f64> = if op == "Div" {
                    v.iter().map(|x| 1.0 / x).collect()
                } else {
                    v
                };
                let out = self.push(
                    Op::ChannelMul,
                    vec![id],
                    vec![("weight", vec![m.len()], f32s(&m))],
                );
                self.set(n, Val::Dyn(out, s))
            }
            ("Sub", true) => {
                let neg = self.push(affine(-1.0, 0.0), vec![id], vec![]);
                let out = self.push(
                    Op::ChannelAdd,
                    vec![neg],
                    vec![("bias", vec![v.len()], f32s(&v))],
                );
                self.set(n, Val::Dyn(out, s))
            }
            _ => Err(self.fail(
                n,
                "divides by the input-dependent value, which walkjump's graph cannot hold",
            )),
        }
    }

    fn arith(&mut self, n: &NodeProto) -> Result<()> {
        let op = n.op_type.as_str();
        let (a, b) = (self.get(n, 0)?, self.get(n, 1)?);
        match (a, b) {
            (Val::Const(a), Val::Const(b)) => {
                let f: fn(f64, f64) -> f64 = match op {
                    "Add" => |x, y| x + y,
                    "Sub" => |x, y| x - y,
                    "Mul" => |x, y| x * y,
                    _ => |x, y| x / y,
                };
                let c = broadcast_binary(&a, &b, f).ok_or_else(|| {
                    self.fail(
                        n,
                        format!("cannot broadcast {:?} against {:?}", a.dims, b.dims),
                    )
                })?;
                self.set(n, Val::Const(c))
            }
            (Val::Dyn(x, sx), Val::Dyn(y, sy)) => {
                if op == "Mul" {
                    for (p, q) in [(x, y), (y, x)] {
                        if self.sigmoid_of.get(&q) == Some(&p) {
                            let out = self.push(Op::Silu, vec![p], vec![]);
                            return self.set(n, Val::Dyn(out, sx));
                        }
                    }
                }
                if sx != sy {
                    return Err(self.fail(
                        n,
                        format!("combines values of shapes {} and {}; walkjump's graph needs equal shapes", sx.describe(), sy.describe()),
                    ));
                }
                let gop = match op {
                    "Add" => Op::Add,
                    "Sub" => Op::Sub,
                    "Mul" => Op::Mul,
                    _ => return Err(self.fail(
                        n,
                        "divides two input-dependent values, which walkjump's graph cannot hold",
                    )),
                };
                let out = self.push(gop, vec![x, y], vec![]);
                self.set(n, Val::Dyn(out, sx))
            }
            (Val::Dyn(x, s), Val::Const(c)) => self.with_const(n, op, (x, s), &c, false, 0),
            (Val::Const(c), Val::Dyn(x, s)) => self.with_const(n, op, (x, s), &c, true, 1),
            _ => Err(self.fail(
                n,
                "reads an intermediate pattern walkjump does not recognise here",
            )),
        }
    }

    /// Per-sample target dims of a `Reshape` of a value whose full dims are `[N, sample...]`; `None` when the
    /// first target dimension is not the batch.
    fn reshape_target(
        &self,
        n: &NodeProto,
        s: ValueShape,
        target: &Const,
    ) -> Result<Option<Vec<usize>>> {
        let allowzero = attr_i(n, "allowzero", 0) != 0;
        let full = full_dims(s);
        let t = ints(target);
        let numel = s.numel();
        // [-1] or [N] for a one-value sample: the batch itself.
        if t.len() == 1 && (t[0].is_none() || t[0] == Some(-1)) && numel == 1 {
            return Ok(Some(vec![]));
        }
        match t.first() {
            Some(None) => {}
            Some(Some(0)) if !allowzero => {}
            // [-1, rest...]: the batch, when the rest is explicit and holds one sample.
            Some(Some(-1))
                if t[1..].iter().all(|v| v.is_some_and(|d| d > 0))
                    && t[1..].iter().flatten().product::<i64>() == numel as i64 => {}
            _ => return Ok(None),
        }
        let mut out: Vec<Option<usize>> = Vec::with_capacity(t.len() - 1);
        for (k, v) in t.iter().enumerate().skip(1) {
            out.push(match v {
                None => return Err(self.fail(n, "uses the batch size in a non-batch dimension")),
                Some(-1) => None,
                Some(0) if !allowzero => {
                    let d = full.get(k).copied().and_then(as_usize);
                    Some(d.ok_or_else(|| {
                        self.fail(n, "copies a dimension the input does not have")
                    })?)
                }
                Some(d) if *d > 0 => Some(*d as usize),
                Some(d) => return Err(self.fail(n, format!("has target dimension {d}"))),
            });
        }
        let known: usize = out.iter().flatten().product();
        let unknown = out.iter().filter(|d| d.is_none()).count();
        let dims: Vec<usize> = match unknown {
            0 => out.into_iter().flatten().collect(),
            1 if known > 0 && numel.is_multiple_of(known) => out
                .into_iter()
                .map(|d| d.unwrap_or(numel / known))
                .collect(),
            _ => {
                return Err(self.fail(
                    n,
                    format!("cannot infer the target shape {t:?} for {numel} values"),
                ));
            }
        };
        if dims.iter().product::<usize>() != numel {
            return Err(self.fail(n, format!("reshapes {} values into {dims:?}", numel)));
        }
        Ok(Some(dims))
    }

    fn reshape(&mut self, n: &NodeProto) -> Result<()> {
        let target = self.konst(n, 1, "the target shape")?;
        match self.get(n, 0)? {
            Val::Const(c) => {
                let t = ints(&target);
                let count = c.data.len();
                let known: usize = t
                    .iter()
                    .map(|v| match v {
                        Some(d) if *d > 0 => *d as usize,
                        _ => 1,
                    })
                    .product();
                let mut dims = Vec::new();
                for (k, v) in t.iter().enumerate() {
                    dims.push(match v {
                        Some(-1) if known > 0 => count / known,
                        Some(0) => c.dims.get(k).copied().unwrap_or(0),
                        Some(d) if *d > 0 => *d as usize,
                        _ => return Err(self.fail(n, "reshapes a constant with the batch size")),
                    });
                }
                if dims.iter().product::<usize>() != count {
                    return Err(
                        self.fail(n, format!("reshapes {count} constant values into {dims:?}"))
                    );
                }
                self.set(n, Val::Const(Const { dims, data: c.data }))
            }
            Val::Dyn(id, s) => {
                let Some(dims) = self.reshape_target(n, s, &target)? else {
                    return Err(self.fail(n, "reshapes across the batch dimension"));
                };
                let v = match (dims.as_slice(), s) {
                    ([], _) => Val::Dyn(id, s),
                    ([_], ValueShape::Flat(_)) => Val::Dyn(id, s),
                    ([d], ValueShape::Image(..)) => Val::Dyn(
                        self.push(Op::Flatten, vec![id], vec![]),
                        ValueShape::Flat(*d),
                    ),
                    (&[c, h, w], ValueShape::Image(c0, h0, w0)) if (c, h, w) == (c0, h0, w0) => {
                        Val::Dyn(id, s)
                    }
                    (&[c, h, w], ValueShape::Flat(_)) => Val::Dyn(
                        self.push(Op::Unflatten { shape: [c, h, w] }, vec![id], vec![]),
                        ValueShape::Image(c, h, w),
                    ),
                    (&[c, h, w], ValueShape::Image(..)) => {
                        let f = self.push(Op::Flatten, vec![id], vec![]);
                        Val::Dyn(
                            self.push(Op::Unflatten { shape: [c, h, w] }, vec![f], vec![]),
                            ValueShape::Image(c, h, w),
                        )
                    }
                    (&[g, _], ValueShape::Image(c, _, _)) if g > 0 && c % g == 0 => {
                        Val::Grouped(id, s, g)
                    }
                    _ => {
                        return Err(self.fail(
                            n,
                            format!(
                                "reshapes {} into {dims:?}, which walkjump's graph cannot hold",
                                s.describe()
                            ),
                        ));
                    }
                };
                self.set(n, v)
            }
            Val::GroupNormed(id, s) => {
                let dims = self.reshape_target(n, s, &target)?;
                match (dims.as_deref(), s) {
                    (Some(&[c, h, w]), ValueShape::Image(c0, h0, w0))
                        if (c, h, w) == (c0, h0, w0) =>
                    {
                        self.set(n, Val::Dyn(id, s))
                    }
                    _ => Err(self.fail(
                        n,
                        "reshapes a group-normalised value to something other than its image shape",
                    )),
                }
            }
            _ => Err(self.fail(
                n,
                "reads an intermediate pattern walkjump does not recognise here",
            )),
        }
    }

    fn conv(&mut self, n: &NodeProto) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let ValueShape::Image(c, h, wd) = s else {
            return Err(self.fail(n, format!("needs an image input, got {}", s.describe())));
        };
        let w = self.konst(n, 1, "the weight")?;
        let &[out, cin, kh, kw] = w.dims.as_slice() else {
            return Err(self.fail(
                n,
                format!(
                    "has a weight of shape {:?}; walkjump reads 2D convolutions",
                    w.dims
                ),
            ));
        };
        let group = attr_i(n, "group", 1);
        if group != 1 {
            return Err(self.fail(
                n,
                format!("has {group} groups; walkjump's convolutions have one"),
            ));
        }
        if cin != c {
            return Err(self.fail(n, format!("has {cin} input channels for an input of {c}")));
        }
        if kh != kw {
            return Err(self.fail(
                n,
                format!("has a {kh}x{kw} kernel; walkjump's convolutions are square"),
            ));
        }
        if attr_ints(n, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(self.fail(n, "is dilated; walkjump's convolutions have dilation 1"));
        }
        let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
        let stride = match strides.as_slice() {
            [a, b] if a == b && *a > 0 => *a as usize,
            other => {
                return Err(self.fail(
                    n,
                    format!("has strides {other:?}; walkjump needs equal strides"),
                ));
            }
        };
        let auto = attr_s(n, "auto_pad").unwrap_or_default();
        let padding =
            match auto.as_str() {
                "" | "NOTSET" => {
                    let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                    match pads.as_slice() {
                        [a, b, c2, d] if a == b && b == c2 && c2 == d && *a >= 0 => *a as usize,
                        other => return Err(self.fail(
                            n,
                            format!(
                                "has pads {other:?}; walkjump needs the same padding on every side"
                            ),
                        )),
                    }
                }
                "VALID" => 0,
                "SAME_UPPER" | "SAME_LOWER" if stride == 1 && kh % 2 == 1 => kh / 2,
                other => {
                    return Err(self.fail(
                        n,
                        format!("has auto_pad {other} with stride {stride} and kernel {kh}"),
                    ));
                }
            };
        if h + 2 * padding < kh || wd + 2 * padding < kh {
            return Err(self.fail(
                n,
                format!("has a {kh}x{kh} kernel larger than its padded {h}x{wd} input"),
            ));
        }
        let bias = match self.opt(n, 2)? {
            Some(Val::Const(b)) if b.data.len() == out => b.data,
            Some(_) => {
                return Err(self.fail(
                    n,
                    "has a bias that is not a constant of one value per output channel",
                ));
            }
            None => vec![0.0; out],
        };
        let op = Op::Conv2d {
            out,
            kernel: kh,
            stride,
            padding,
            bias: true,
        };
        let node = self.nodes.len();
        let o = self.push(
            op,
            vec![id],
            vec![
                ("weight", w.dims.clone(), f32s(&w.data)),
                ("bias", vec![out], f32s(&bias)),
            ],
        );
        self.biased.insert(o, node);
        let oh = (h + 2 * padding - kh) / stride + 1;
        let ow = (wd + 2 * padding - kh) / stride + 1;
        self.set(n, Val::Dyn(o, ValueShape::Image(out, oh, ow)))
    }

    fn dense(&mut self, n: &NodeProto, gemm: bool) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let ValueShape::Flat(d) = s else {
            return Err(self.fail(
                n,
                format!(
                    "needs a flat input, got {} (flatten it first)",
                    s.describe()
                ),
            ));
        };
        let b = self.konst(n, 1, "the weight")?;
        let &[r, c] = b.dims.as_slice() else {
            return Err(self.fail(
                n,
                format!(
                    "has a weight of shape {:?}; walkjump reads 2D weights",
                    b.dims
                ),
            ));
        };
        let (trans_b, alpha, beta) = if gemm {
            if attr_i(n, "transA", 0) != 0 {
                return Err(self.fail(n, "transposes its input (transA = 1)"));
            }
            (
                attr_i(n, "transB", 0) != 0,
                attr_f(n, "alpha", 1.0),
                attr_f(n, "beta", 1.0),
            )
        } else {
            (false, 1.0, 1.0)
        };
        // Weight as [out, in].
        let (out, inn) = if trans_b { (r, c) } else { (c, r) };
        if inn != d {
            return Err(self.fail(
                n,
                format!("has a weight for {inn} inputs, the input has {d}"),
            ));
        }
        let mut w = vec![0f32; out * inn];
        for o in 0..out {
            for i in 0..inn {
                let v = if trans_b {
                    b.data[o * inn + i]
                } else {
                    b.data[i * out + o]
                };
                w[o * inn + i] = (alpha * v) as f32;
            }
        }
        let bias = match if gemm { self.opt(n, 2)? } else { None } {
            Some(Val::Const(cb)) => match per_channel(&cb, ValueShape::Flat(out)) {
                Some(v) => v.iter().map(|x| beta * x).collect(),
                None => {
                    return Err(self.fail(
                        n,
                        format!("has a bias of shape {:?} for {out} outputs", cb.dims),
                    ));
                }
            },
            Some(_) => return Err(self.fail(n, "has a bias that is not a constant")),
            None => vec![0.0; out],
        };
        let node = self.nodes.len();
        let o = self.push(
            Op::Linear { out, bias: true },
            vec![id],
            vec![
                ("weight", vec![out, inn], w),
                ("bias", vec![out], f32s(&bias)),
            ],
        );
        self.biased.insert(o, node);
        self.set(n, Val::Dyn(o, ValueShape::Flat(out)))
    }

    /// Axes of a reduce node (attribute or, in newer opsets, input 1), normalised to `0..rank`.
    fn axes(&self, n: &NodeProto, rank: usize) -> Result<Option<Vec<usize>>> {
        let raw: Option<Vec<i64>> = match attr_ints(n, "axes") {
            Some(a) => Some(a),
            None => match self.opt(n, 1)? {
                Some(Val::Const(c)) => Some(c.data.iter().map(|&v| v as i64).collect()),
                Some(_) => return Err(self.fail(n, "has axes that are not constant")),
                None => None,
            },
        };
        let Some(raw) = raw else { return Ok(None) };
        let mut axes = Vec::new();
        for a in raw {
            let a = if a < 0 { a + rank as i64 } else { a };
            if a < 0 || a >= rank as i64 {
                return Err(self.fail(n, format!("has axis {a} for rank {rank}")));
            }
            axes.push(a as usize);
        }
        axes.sort_unstable();
        axes.dedup();
        Ok(Some(axes))
    }

    fn reduce(&mut self, n: &NodeProto) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let mean = n.op_type == "ReduceMean";
        let rank = full_dims(s).len();
        let keep = attr_i(n, "keepdims", 1) != 0;
        let axes = match self.axes(n, rank)? {
            Some(a) if !a.is_empty() => a,
            _ if attr_i(n, "noop_with_empty_axes", 0) != 0 => return self.set(n, Val::Dyn(id, s)),
            _ => return Err(self.fail(n, "reduces over the batch dimension too")),
        };
        if axes.contains(&0) {
            return Err(self.fail(n, "reduces over the batch dimension"));
        }
        if axes.len() == rank - 1 {
            let op = if mean { Op::ReduceMean } else { Op::ReduceSum };
            let o = self.push(op, vec![id], vec![]);
            return self.set(n, Val::Dyn(o, ValueShape::Flat(1)));
        }
        if let ValueShape::Image(c, h, w) = s
            && axes == [2, 3]
        {
            let mut o = self.push(Op::GlobalAvgPool, vec![id], vec![]);
            if !mean {
                o = self.push(
                    Op::Affine {
                        mul: (h * w) as f64,
                        add: 0.0,
                    },
                    vec![o],
                    vec![],
                );
            }
            if keep {
                return self.set(n, Val::Dyn(o, ValueShape::Image(c, 1, 1)));
            }
            let f = self.push(Op::Flatten, vec![o], vec![]);
            return self.set(n, Val::Dyn(f, ValueShape::Flat(c)));
        }
        Err(self.fail(
            n,
            format!(
                "reduces over axes {axes:?} of a value of shape {}",
                s.describe()
            ),
        ))
    }
}

impl Translator {
    fn node(&mut self, n: &NodeProto, opset: i64) -> Result<()> {
        match n.op_type.as_str() {
            "Constant" => {
                let c = if let Some(a) = attr(n, "value") {
                    let t = a.t.as_ref().ok_or_else(|| self.fail(n, "has no tensor value"))?;
                    tensor_values(t).map_err(|m| self.fail(n, m))?
                } else if let Some(a) = attr(n, "value_float") {
                    Const { dims: vec![], data: vec![f64::from(a.f)] }
                } else if let Some(a) = attr(n, "value_floats") {
                    Const { dims: vec![a.floats.len()], data: a.floats.iter().map(|&v| f64::from(v)).collect() }
                } else if let Some(a) = attr(n, "value_int") {
                    Const { dims: vec![], data: vec![a.i as f64] }
                } else if let Some(a) = attr(n, "value_ints") {
                    Const { dims: vec![a.ints.len()], data: a.ints.iter().map(|&v| v as f64).collect() }
                } else {
                    return Err(self.fail(n, "has no value walkjump can read"));
                };
                self.set(n, Val::Const(c))
            }
            "Identity" | "Dropout" => {
                let v = self.get(n, 0)?;
                self.set(n, v)
            }
            "Cast" => {
                let v = self.get(n, 0)?;
                let to = attr_i(n, "to", 1);
                match v {
                    Val::Const(mut c) => {
                        if matches!(to, 6 | 7 | 9) {
                            for x in &mut c.data {
                                if x.is_finite() {
                                    *x = if to == 9 { f64::from(u8::from(*x != 0.0)) } else { x.trunc() };
                                }
                            }
                        }
                        self.set(n, Val::Const(c))
                    }
                    Val::Dyn(..) if matches!(to, 1 | 10 | 11 | 16) => self.set(n, v),
                    _ => Err(self.fail(n, format!("casts an input-dependent value to element type {to}"))),
                }
            }
            "Shape" => {
                let dims: Vec<f64> = match self.get(n, 0)? {
                    Val::Dyn(_, s) | Val::GroupNormed(_, s) => full_dims(s),
                    Val::Grouped(_, s, g) => vec![BATCH, g as f64, (s.numel() / g) as f64],
                    Val::Const(c) => c.dims.iter().map(|&d| d as f64).collect(),
                    Val::Mask(..) => return Err(self.fail(n, "takes the shape of a comparison")),
                };
                let r = dims.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let start = clamp(attr_i(n, "start", 0));
                let end = clamp(attr_i(n, "end", r));
                let data = dims.get(start..end.max(start)).unwrap_or(&[]).to_vec();
                self.set(n, Val::Const(Const { dims: vec![data.len()], data }))
            }
            "Gather" => {
                let data = self.konst(n, 0, "the gathered tensor")?;
                let idx = self.konst(n, 1, "the indices")?;
                if data.dims.len() != 1 || attr_i(n, "axis", 0) != 0 {
                    return Err(self.fail(n, "gathers from something other than a 1-D constant"));
                }
                let len = data.data.len() as i64;
                let mut out = Vec::with_capacity(idx.data.len());
                for &i in &idx.data {
                    let i = i as i64;
                    let j = if i < 0 { i + len } else { i };
                    if j < 0 || j >= len {
                        return Err(self.fail(n, format!("index {i} is out of range for {len} values")));
                    }
                    out.push(data.data[j as usize]);
                }
                self.set(n, Val::Const(Const { dims: idx.dims.clone(), data: out }))
            }
            "Slice" => {
                let data = self.konst(n, 0, "the sliced tensor")?;
                if data.dims.len() != 1 {
                    return Err(self.fail(n, "slices something other than a 1-D constant"));
                }
                let first = |k: usize, attr_name: &str, default: i64| -> Result<i64> {
                    if opset < 10 {
                        return Ok(attr_ints(n, attr_name).and_then(|v| v.first().copied()).unwrap_or(default));
                    }
                    match self.opt(n, k)? {
                        Some(Val::Const(c)) => Ok(c.data.first().map_or(default, |&v| if v.is_finite() { v as i64 } else { default })),
                        Some(_) => Err(self.fail(n, "has slice bounds that are not constant")),
                        None => Ok(default),
                    }
                };
                let len = data.data.len() as i64;
                let (start, end, step) = (first(1, "starts", 0)?, first(2, "ends", len)?, first(4, "steps", 1)?);
                if step != 1 {
                    return Err(self.fail(n, format!("has step {step}")));
                }
                let clamp = |v: i64| (if v < 0 { v + len } else { v }).clamp(0, len) as usize;
                let (a, b) = (clamp(start), clamp(end));
                let out = data.data.get(a..b.max(a)).unwrap_or(&[]).to_vec();
                self.set(n, Val::Const(Const { dims: vec![out.len()], data: out }))
            }
            "Concat" => {
                let vals = (0..n.input.len()).map(|k| self.get(n, k)).collect::<Result<Vec<_>>>()?;
                if vals.iter().all(|v| matches!(v, Val::Const(_))) {
                    let mut data = Vec::new();
                    for v in &vals {
                        if let Val::Const(c) = v {
                            if c.dims.len() > 1 {
                                return Err(self.fail(n, "joins constants of rank above 1"));
                            }
                            data.extend_from_slice(&c.data);
                        }
                    }
                    return self.set(n, Val::Const(Const { dims: vec![data.len()], data }));
                }
                let mut ids = Vec::new();
                let mut first: Option<ValueShape> = None;
                for v in &vals {
                    match v {
                        Val::Dyn(id, s) => {
                            ids.push(*id);
                            first.get_or_insert(*s);
                        }
                        _ => return Err(self.fail(n, "joins an input-dependent value with a constant")),
                    }
                }
                let s = first.ok_or_else(|| self.fail(n, "has no inputs"))?;
                let rank = full_dims(s).len() as i64;
                let axis = attr_i(n, "axis", 1);
                if axis != 1 && axis != 1 - rank {
                    return Err(self.fail(n, format!("joins along axis {axis}; walkjump joins channels (axis 1)")));
                }
                let mut shape = s;
                let mut total = 0;
                for v in &vals {
                    if let Val::Dyn(_, sv) = v {
                        total += match (*sv, s) {
                            (ValueShape::Flat(d), ValueShape::Flat(_)) => d,
                            (ValueShape::Image(c, h, w), ValueShape::Image(_, h0, w0)) if (h, w) == (h0, w0) => c,
                            _ => return Err(self.fail(n, format!("joins {} with {}", sv.describe(), s.describe()))),
                        };
                    }
                }
                shape = match shape {
                    ValueShape::Flat(_) => ValueShape::Flat(total),
                    ValueShape::Image(_, h, w) => ValueShape::Image(total, h, w),
                };
                let o = self.push(Op::Concat, ids, vec![]);
                self.set(n, Val::Dyn(o, shape))
            }
            "Unsqueeze" => {
                let c = self.konst(n, 0, "the unsqueezed tensor (walkjump adds axes only to constants)")?;
                let rank = c.dims.len();
                let axes = match attr_ints(n, "axes") {
                    Some(a) => a,
                    None => self.konst(n, 1, "the axes")?.data.iter().map(|&v| v as i64).collect(),
                };
                let out_rank = rank + axes.len();
                let mut axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| if a < 0 { a + out_rank as i64 } else { a })
                    .filter_map(|a| usize::try_from(a).ok())
                    .collect();
                axes.sort_unstable();
                let mut dims = c.dims.clone();
                for a in axes {
                    if a > dims.len() {
                        return Err(self.fail(n, format!("has axis {a} for rank {out_rank}")));
                    }
                    dims.insert(a, 1);
                }
                self.set(n, Val::Const(Const { dims, data: c.data }))
            }
            "Squeeze" => match self.get(n, 0)? {
                Val::Const(c) => {
                    let dims = c.dims.iter().copied().filter(|&d| d != 1).collect();
                    self.set(n, Val::Const(Const { dims, data: c.data }))
                }
                Val::Dyn(id, s) if s.numel() == 1 => self.set(n, Val::Dyn(id, s)),
                Val::Dyn(id, ValueShape::Image(c, 1, 1)) => {
                    let o = self.push(Op::Flatten, vec![id], vec![]);
                    self.set(n, Val::Dyn(o, ValueShape::Flat(c)))
                }
                _ => Err(self.fail(n, "squeezes a value walkjump cannot squeeze")),
            },
            "Reshape" => self.reshape(n),
            "Flatten" => match self.get(n, 0)? {
                Val::Dyn(id, s) => {
                    let axis = attr_i(n, "axis", 1);
                    if axis != 1 && !(axis == -1 && matches!(s, ValueShape::Flat(_))) {
                        return Err(self.fail(n, format!("flattens from axis {axis}; walkjump flattens from axis 1")));
                    }
                    match s {
                        ValueShape::Flat(_) => self.set(n, Val::Dyn(id, s)),
                        ValueShape::Image(..) => {
                            let o = self.push(Op::Flatten, vec![id], vec![]);
                            self.set(n, Val::Dyn(o, ValueShape::Flat(s.numel())))
                        }
                    }
                }
                _ => Err(self.fail(n, "flattens something other than an input-dependent value")),
            },
            "Gemm" => self.dense(n, true),
            "MatMul" => self.dense(n, false),
            "Add" | "Sub" | "Mul" | "Div" => self.arith(n),
            "Pow" => {
                let (id, s) = self.dynamic(n, 0)?;
                let e = self.konst(n, 1, "the exponent")?;
                match e.scalar() {
                    Some(2.0) => {
                        let o = self.push(Op::Mul, vec![id, id], vec![]);
                        self.set(n, Val::Dyn(o, s))
                    }
                    Some(1.0) => self.set(n, Val::Dyn(id, s)),
                    _ => Err(self.fail(n, "raises to a power other than 1 or 2")),
                }
            }
            "Neg" => match self.get(n, 0)? {
                Val::Const(mut c) => {
                    c.data.iter_mut().for_each(|x| *x = -*x);
                    self.set(n, Val::Const(c))
                }
                Val::Dyn(id, s) => {
                    let o = self.push(Op::Affine { mul: -1.0, add: 0.0 }, vec![id], vec![]);
                    self.set(n, Val::Dyn(o, s))
                }
                _ => Err(self.fail(n, "negates an intermediate pattern")),
            },
            "Sqrt" | "Reciprocal" => {
                let mut c = self.konst(n, 0, "the operand (walkjump folds this op on constants only)")?;
                let sqrt = n.op_type == "Sqrt";
                c.data.iter_mut().for_each(|x| *x = if sqrt { x.sqrt() } else { 1.0 / *x });
                self.set(n, Val::Const(c))
            }
            "Relu" => self.act(n, Op::Relu),
            "Sigmoid" => self.act(n, Op::Sigmoid),
            "Tanh" => self.act(n, Op::Tanh),
            "Softplus" => self.act(n, Op::Softplus { beta: 1.0 }),
            "Elu" => self.act(n, Op::Elu { alpha: attr_f(n, "alpha", 1.0) }),
            "LeakyRelu" => self.act(n, Op::LeakyRelu { alpha: attr_f(n, "alpha", 0.01) }),
            "Gelu" => {
                let tanh = match attr_s(n, "approximate").as_deref() {
                    None | Some("none") => false,
                    Some("tanh") => true,
                    Some(other) => return Err(self.fail(n, format!("has approximate = {other}"))),
                };
                self.act(n, Op::Gelu { tanh })
            }
            "Greater" => {
                self.dynamic(n, 0)?;
                let t = self.konst(n, 1, "the threshold")?;
                let t = t.scalar().ok_or_else(|| self.fail(n, "compares with a non-scalar"))?;
                self.set(n, Val::Mask(t))
            }
            "Where" => {
                let Val::Mask(t) = self.get(n, 0)? else {
                    return Err(self.fail(n, "selects on a condition walkjump does not recognise (only Softplus's threshold)"));
                };
                let (y, s) = self.dynamic(n, 2)?;
                let softplus_like = self.softplus_of.contains_key(&y)
                    || self.nodes.get(y.wrapping_sub(1)).is_some_and(|p| {
                        matches!(p.op, Op::Affine { .. }) && p.inputs.first().is_some_and(|i| self.softplus_of.contains_key(i))
                    });
                if !(softplus_like && t >= 15.0) {
                    return Err(self.fail(n, "selects between values in a way walkjump does not recognise (only Softplus's threshold of 15 or more)"));
                }
                // Above the threshold softplus(x) and x differ by less than exp(-15) relative.
                self.set(n, Val::Dyn(y, s))
            }
            "Conv" => self.conv(n),
            "ConvTranspose" => Err(self.fail(n, "transposed convolutions are not in walkjump's graph; upsample with Resize (nearest) and convolve instead")),
            "Resize" | "Upsample" => {
                let (id, s) = self.dynamic(n, 0)?;
                let ValueShape::Image(c, h, w) = s else {
                    return Err(self.fail(n, "upsamples a flat value"));
                };
                let mode = attr_s(n, "mode").unwrap_or_else(|| "nearest".into());
                if mode != "nearest" {
                    return Err(self.fail(n, format!("uses mode {mode}; walkjump upsamples nearest-neighbour")));
                }
                let (scales, sizes) = if n.op_type == "Upsample" || opset < 11 {
                    (self.opt(n, 1)?, None)
                } else {
                    (self.opt(n, 2)?, self.opt(n, 3)?)
                };
                let factor = match (scales, sizes) {
                    (Some(Val::Const(sc)), _) if sc.data.len() == 4 => {
                        let (a, b) = (sc.data[2], sc.data[3]);
                        (sc.data[0] == 1.0 && sc.data[1] == 1.0 && a == b && a >= 1.0 && a.fract() == 0.0).then_some(a as usize)
                    }
                    (_, Some(Val::Const(sz))) if sz.data.len() == 4 => {
                        let (oh, ow) = (as_usize(sz.data[2]).unwrap_or(0), as_usize(sz.data[3]).unwrap_or(0));
                        (oh % h == 0 && ow % w == 0 && oh / h == ow / w && oh >= h && as_usize(sz.data[1]) == Some(c)).then_some(oh / h)
                    }
                    _ => None,
                };
                let Some(f) = factor.filter(|f| (1..=16).contains(f)) else {
                    return Err(self.fail(n, "resizes by something other than one integer factor (1 to 16) in both directions"));
                };
                let o = self.push(Op::Upsample { scale: f }, vec![id], vec![]);
                self.set(n, Val::Dyn(o, ValueShape::Image(c, h * f, w * f)))
            }
            "AveragePool" => {
                let (id, s) = self.dynamic(n, 0)?;
                let ValueShape::Image(c, h, w) = s else {
                    return Err(self.fail(n, "pools a flat value"));
                };
                let k = match attr_ints(n, "kernel_shape").as_deref() {
                    Some(&[a, b]) if a == b && a > 0 => a as usize,
                    other => return Err(self.fail(n, format!("has kernel {other:?}; walkjump pools with square kernels"))),
                };
                let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
                let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                if strides != [k as i64, k as i64] || pads.iter().any(|&p| p != 0) || k > h || k > w {
                    return Err(self.fail(n, format!("pools with kernel {k}, strides {strides:?}, pads {pads:?}; walkjump pools with stride = kernel and no padding")));
                }
                if attr_i(n, "ceil_mode", 0) != 0 && (h % k != 0 || w % k != 0) {
                    return Err(self.fail(n, "rounds the output size up (ceil_mode)"));
                }
                let o = self.push(Op::AvgPool { kernel: k }, vec![id], vec![]);
                self.set(n, Val::Dyn(o, ValueShape::Image(c, h / k, w / k)))
            }
            "GlobalAveragePool" => {
                let (id, s) = self.dynamic(n, 0)?;
                let ValueShape::Image(c, _, _) = s else {
                    return Err(self.fail(n, "pools a flat value"));
                };
                let o = self.push(Op::GlobalAvgPool, vec![id], vec![]);
                self.set(n, Val::Dyn(o, ValueShape::Image(c, 1, 1)))
            }
            "ReduceMean" | "ReduceSum" => self.reduce(n),
            "InstanceNormalization" | "GroupNormalization" => {
                let eps = attr_f(n, "epsilon", 1e-5);
                let scale = self.konst(n, 1, "the scale")?;
                let bias = self.konst(n, 2, "the bias")?;
                let (id, s, groups, back_to_image) = match self.get(n, 0)? {
                    Val::Grouped(id, s, g) if n.op_type == "InstanceNormalization" => (id, s, g, false),
                    Val::Dyn(id, s @ ValueShape::Image(c, _, _)) => {
                        let g = if n.op_type == "GroupNormalization" { attr_i(n, "num_groups", 0).max(0) as usize } else { c };
                        (id, s, g, true)
                    }
                    _ => return Err(self.fail(n, "normalises something other than an image")),
                };
                let ValueShape::Image(c, _, _) = s else {
                    return Err(self.fail(n, "normalises a flat value"));
                };
                if groups == 0 || c % groups != 0 {
                    return Err(self.fail(n, format!("has {groups} groups for {c} channels")));
                }
                let per = c / groups;
                let expand = |v: &Const| -> Option<Vec<f32>> {
                    match v.data.len() {
                        l if l == c => Some(f32s(&v.data)),
                        l if l == groups => Some((0..c).map(|ch| v.data[ch / per] as f32).collect()),
                        _ => None,
                    }
                };
                let (Some(wv), Some(bv)) = (expand(&scale), expand(&bias)) else {
                    return Err(self.fail(n, format!("has a scale or bias that is neither per channel ({c}) nor per group ({groups})")));
                };
                let node = self.nodes.len();
                let o = self.push(
                    Op::GroupNorm { groups, eps },
                    vec![id],
                    vec![("weight", vec![c], wv), ("bias", vec![c], bv)],
                );
                self.biased.insert(o, node);
                self.set(n, if back_to_image { Val::Dyn(o, s) } else { Val::GroupNormed(o, s) })
            }
            "LayerNormalization" => {
                let (id, s) = self.dynamic(n, 0)?;
                let ValueShape::Flat(d) = s else {
                    return Err(self.fail(n, "normalises an image; walkjump's layer norm takes flat values (use GroupNorm with one group)"));
                };
                let axis = attr_i(n, "axis", -1);
                if axis != -1 && axis != 1 {
                    return Err(self.fail(n, format!("normalises from axis {axis}")));
                }
                let scale = self.konst(n, 1, "the scale")?;
                let bias = match self.opt(n, 2)? {
                    Some(Val::Const(b)) => b.data,
                    Some(_) => return Err(self.fail(n, "has a bias that is not constant")),
                    None => vec![0.0; d],
                };
                if scale.data.len() != d || bias.len() != d {
                    return Err(self.fail(n, format!("has a scale or bias not of size {d}")));
                }
                let node = self.nodes.len();
                let o = self.push(
                    Op::LayerNorm { eps: attr_f(n, "epsilon", 1e-5) },
                    vec![id],
                    vec![("weight", vec![d], f32s(&scale.data)), ("bias", vec![d], f32s(&bias))],
                );
                self.biased.insert(o, node);
                self.set(n, Val::Dyn(o, s))
            }
            "BatchNormalization" => {
                let (id, s) = self.dynamic(n, 0)?;
                if attr_i(n, "training_mode", 0) != 0 {
                    return Err(self.fail(n, "is in training mode; export with model.eval()"));
                }
                let c = match s {
                    ValueShape::Flat(d) => d,
                    ValueShape::Image(c, _, _) => c,
                };
                let mut ps = Vec::new();
                for (k, name) in [(1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")] {
                    let v = self.konst(n, k, name)?;
                    if v.data.len() != c {
                        return Err(self.fail(n, format!("has {} values for {name}, the input has {c} channels", v.data.len())));
                    }
                    ps.push((name, vec![c], f32s(&v.data)));
                }
                let o = self.push(Op::BatchNorm { eps: attr_f(n, "epsilon", 1e-5) }, vec![id], ps);
                self.set(n, Val::Dyn(o, s))
            }
            _ => Err(self.fail(n, format!("is not supported; walkjump reads {SUPPORTED}"))),
        }
    }
}

/// Per-sample shape of the graph input from its declared type, with unknown dimensions from `opts`.
fn input_shape(v: &ValueInfoProto, opts: &ImportOptions) -> Result<ValueShape> {
    let name = one_line(&v.name);
    let m = opts.measurements.unwrap_or(1);
    let hint = opts.shape.map(|(c, h, w)| (c * m, h, w));
    let dims = declared_shape(v).unwrap_or_default();
    let need = |what: &str| {
        OnnxError::Model(format!(
            "input '{name}' has {what}; pass --onnx-shape c,h,w (or export with a fixed shape)"
        ))
    };
    match dims.as_slice() {
        [_, d] => match (d, hint) {
            (Some(d), _) => Ok(ValueShape::Flat(*d)),
            (None, Some((c, h, w))) => Ok(ValueShape::Flat(c * h * w)),
            (None, None) => Err(need("an unknown width")),
        },
        [_, c, h, w] => match (c, h, w, hint) {
            (Some(c), Some(h), Some(w), _) => Ok(ValueShape::Image(*c, *h, *w)),
            (_, _, _, Some((hc, hh, hw))) => Ok(ValueShape::Image(
                c.unwrap_or(hc),
                h.unwrap_or(hh),
                w.unwrap_or(hw),
            )),
            _ => Err(need("unknown dimensions")),
        },
        [] => match hint {
            Some((c, h, w)) => Ok(ValueShape::Image(c, h, w)),
            None => Err(need("no declared shape")),
        },
        other => Err(OnnxError::Model(format!(
            "input '{name}' has rank {}; walkjump reads [N, d] or [N, c, h, w]",
            other.len()
        ))),
    }
}

/// Translates a decoded ONNX model into walkjump's graph.
pub fn translate(model: &ModelProto, opts: &ImportOptions) -> Result<Imported> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Model("the file has no graph".into()))?;
    if let Some(f) = model.functions.first() {
        return Err(OnnxError::Model(format!(
            "the file defines local function '{}' ({} in all); re-export with functions inlined (onnx.inliner.inline_local_functions)",
            one_line(&f.name),
            model.functions.len()
        )));
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| OnnxError::Model("the file imports no standard ONNX opset".into()))?;
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::Model(format!(
            "opset {opset} is outside the versions walkjump reads ({}..={})",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    if graph.node.len() > MAX_ONNX_NODES {
        return Err(OnnxError::Model(format!(
            "the graph has {} nodes (at most {MAX_ONNX_NODES})",
            graph.node.len()
        )));
    }
    let mut t = Translator {
        nodes: Vec::new(),
        tensors: BTreeMap::new(),
        vals: HashMap::new(),
        readers: HashMap::new(),
        sigmoid_of: HashMap::new(),
        biased: HashMap::new(),
        softplus_of: HashMap::new(),
    };
    for init in &graph.initializer {
        let c = tensor_values(init).map_err(OnnxError::Model)?;
        t.vals.insert(init.name.clone(), Val::Const(c));
    }
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|v| !t.vals.contains_key(&v.name))
        .collect();
    let [input_info] = inputs.as_slice() else {
        let names: Vec<String> = inputs
            .iter()
            .map(|v| format!("'{}'", one_line(&v.name)))
            .collect();
        return Err(OnnxError::Model(format!(
            "the graph has {} inputs ({}); walkjump's networks take one, the noisy sample",
            inputs.len(),
            names.join(", ")
        )));
    };
    let input = input_shape(input_info, opts)?;
    if input.numel() == 0 || input.numel() > crate::models::checkpoint::MAX_DATA_DIM * 64 {
        return Err(OnnxError::Model(format!(
            "input shape {} is out of range",
            input.describe()
        )));
    }
    t.vals.insert(input_info.name.clone(), Val::Dyn(0, input));
    for n in &graph.node {
        for i in &n.input {
            *t.readers.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *t.readers.entry(o.name.clone()).or_default() += 1;
    }
    let mut onnx_ops: BTreeMap<String, usize> = BTreeMap::new();
    for n in &graph.node {
        *onnx_ops.entry(one_line(&n.op_type)).or_default() += 1;
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(t.fail(
                n,
                format!(
                    "is in domain '{}'; walkjump reads the standard operators",
                    one_line(&n.domain)
                ),
            ));
        }
        t.node(n, opset)?;
    }
    let out_info = graph
        .output
        .first()
        .ok_or_else(|| OnnxError::Model("the graph has no output".into()))?;
    let (out_id, output) = match t.vals.get(&out_info.name) {
        Some(Val::Dyn(id, s)) => (*id, *s),
        Some(Val::Const(_)) => {
            return Err(OnnxError::Model(format!(
                "output '{}' does not depend on the input",
                one_line(&out_info.name)
            )));
        }
        Some(_) => {
            return Err(OnnxError::Model(format!(
                "output '{}' ends in an unfinished pattern",
                one_line(&out_info.name)
            )));
        }
        None => {
            return Err(OnnxError::Model(format!(
                "output '{}' is never computed",
                one_line(&out_info.name)
            )));
        }
    };
    if out_id == 0 {
        return Err(OnnxError::Model("the output is the input itself".into()));
    }
    let (nodes, tensors) = prune(t.nodes, t.tensors, out_id);
    let props = model
        .metadata_props
        .iter()
        .map(|p| (one_line(&p.key), one_line(&p.value)))
        .collect();
    Ok(Imported {
        spec: GraphSpec {
            input: Some(dims_of(input)),
            nodes,
        },
        tensors,
        input,
        output,
        onnx_ops,
        props,
        producer: one_line(&format!(
            "{} {}",
            model.producer_name, model.producer_version
        ))
        .trim()
        .to_string(),
        opset,
    })
}

fn dims_of(s: ValueShape) -> Vec<usize> {
    match s {
        ValueShape::Flat(d) => vec![d],
        ValueShape::Image(c, h, w) => vec![c, h, w],
    }
}

/// Drops nodes the output does not depend on (e.g. the `Sigmoid` of a recognised SiLU) and makes the output the
/// last node.
fn prune(
    nodes: Vec<NodeSpec>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    out: usize,
) -> (Vec<NodeSpec>, Params) {
    let mut live = vec![false; nodes.len() + 1];
    let mut stack = vec![out];
    while let Some(v) = stack.pop() {
        if v == 0 || live[v] {
            continue;
        }
        live[v] = true;
        stack.extend(nodes[v - 1].inputs.iter().copied());
    }
    // Keep order, but nothing after the output.
    let mut new_id = vec![0usize; nodes.len() + 1];
    let mut kept = Vec::new();
    for (i, node) in nodes.into_iter().enumerate() {
        if !live[i + 1] || i + 1 > out {
            continue;
        }
        let mut node = node;
        node.inputs = node.inputs.iter().map(|&v| new_id[v]).collect();
        kept.push(node);
        new_id[i + 1] = kept.len();
    }
    let names: std::collections::BTreeSet<String> = kept.iter().map(|n| n.name.clone()).collect();
    let tensors = tensors
        .into_iter()
        .filter(|(k, _)| k.rsplit_once('.').is_some_and(|(p, _)| names.contains(p)))
        .collect();
    (kept, tensors)
}
