//! The translation proper: ONNX nodes, in order, to graph nodes and parameters (see the module above for what
//! is recognised).

use std::collections::{BTreeMap, HashMap};

use super::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use super::{
    ImportOptions, Imported, MAX_CONST_ELEMS, MAX_ONNX_NODES, OPSETS, OnnxError, Params, Result,
    one_line,
};
use crate::nn::{GraphSpec, NodeSpec, Op, ValueShape};

mod attention;
mod compute;
mod nodes;

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
    /// An image value seen as per-head token matrices (inside self-attention).
    Heads(attention::HeadsView),
    /// Attention scores or weights, waiting for the values.
    Scores(attention::ScoresView),
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
    /// Graph value -> index of the node that made it when that node is a normalisation whose per-channel `weight`
    /// and `bias` can absorb a following per-channel `Mul` (the exporters' GroupNorm idiom ends in one).
    scaled: HashMap<usize, usize>,
    /// Graph value -> the value a `softplus` node read (for the `Where` threshold idiom).
    softplus_of: HashMap<usize, usize>,
    /// ONNX values (constants) of an integer type, whose `Div` truncates (shape arithmetic such as the older
    /// exporter's `chunk`, `(c + 2) / 3`).
    int_vals: std::collections::HashSet<String>,
}

/// Whether an ONNX tensor data type is an integer (or boolean) type.
fn int_type(data_type: i64) -> bool {
    matches!(data_type, 2..=7 | 9 | 12 | 13)
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
    /// Records which outputs of `n` are integer constants: shapes, integer casts and constants, and what shape
    /// arithmetic makes of integer inputs.
    fn mark_ints(&mut self, n: &NodeProto) {
        let int_in = |k: usize| n.input.get(k).is_some_and(|i| self.int_vals.contains(i));
        let all_in = n
            .input
            .iter()
            .filter(|i| !i.is_empty())
            .all(|i| self.int_vals.contains(i));
        let int = match n.op_type.as_str() {
            "Shape" | "Size" => true,
            "Cast" => int_type(attr_i(n, "to", 1)),
            "Constant" => attr(n, "value").map_or_else(
                || attr(n, "value_int").is_some() || attr(n, "value_ints").is_some(),
                |a| {
                    a.t.as_ref()
                        .is_some_and(|t| int_type(i64::from(t.data_type)))
                },
            ),
            "ConstantOfShape" => attr(n, "value")
                .and_then(|a| a.t.as_ref())
                .is_some_and(|t| int_type(i64::from(t.data_type))),
            "Gather" | "Slice" | "Unsqueeze" | "Squeeze" | "Reshape" | "Transpose" | "Identity"
            | "Neg" | "Flatten" => int_in(0),
            "Concat" | "Add" | "Sub" | "Mul" | "Div" => all_in,
            _ => false,
        };
        if int
            && n.output
                .iter()
                .all(|o| matches!(self.vals.get(o), Some(Val::Const(_))))
        {
            for o in &n.output {
                self.int_vals.insert(o.clone());
            }
        }
    }

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

/// Product of sizes, `None` on overflow.
fn checked_product(it: impl IntoIterator<Item = usize>) -> Option<usize> {
    it.into_iter().try_fold(1usize, |a, d| a.checked_mul(d))
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
    let count = checked_product(dims.iter().copied())?;
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

/// Per-sample shape of the graph input from its declared type, with unknown dimensions from `opts`.
fn input_shape(v: &ValueInfoProto, opts: &ImportOptions) -> Result<ValueShape> {
    let name = one_line(&v.name);
    let m = opts.measurements.unwrap_or(1);
    let hint = opts.shape.map(|(c, h, w)| (c.saturating_mul(m), h, w));
    let dims = declared_shape(v).unwrap_or_default();
    let need = |what: &str| {
        OnnxError::Model(format!(
            "input '{name}' has {what}; pass --onnx-shape c,h,w (or export with a fixed shape)"
        ))
    };
    match dims.as_slice() {
        [_, d] => match (d, hint) {
            (Some(d), _) => Ok(ValueShape::Flat(*d)),
            (None, Some((c, h, w))) => Ok(ValueShape::Flat(ValueShape::Image(c, h, w).numel())),
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
        scaled: HashMap::new(),
        softplus_of: HashMap::new(),
        int_vals: Default::default(),
    };
    for init in &graph.initializer {
        let c = tensor_values(init).map_err(OnnxError::Model)?;
        t.vals.insert(init.name.clone(), Val::Const(c));
        if int_type(i64::from(init.data_type)) {
            t.int_vals.insert(init.name.clone());
        }
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
    if input.numel() == 0 || input.numel() > crate::checkpoint::MAX_DATA_DIM * 64 {
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
        t.mark_ints(n);
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

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut st = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        st[k] = st[k + 1] * dims[k + 1];
    }
    st
}

/// The constant gathered at the index lists `picks` (one per axis).
fn const_gather(c: &Const, picks: &[Vec<usize>]) -> Const {
    let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
    let st = strides(&c.dims);
    let count: usize = dims.iter().product();
    let mut data = Vec::with_capacity(count);
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..count {
        let offset: usize = idx
            .iter()
            .zip(picks)
            .zip(&st)
            .map(|((&i, p), &s)| p[i] * s)
            .sum();
        data.push(c.data[offset]);
        for k in (0..idx.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Const { dims, data }
}

/// `Ok` when a constant holds as many values as its dims say.
fn consistent(c: &Const) -> std::result::Result<(), String> {
    match checked_product(c.dims.iter().copied()) {
        Some(n) if n == c.data.len() => Ok(()),
        _ => Err(format!(
            "has a constant of shape {:?} holding {} values",
            c.dims,
            c.data.len()
        )),
    }
}

/// ONNX `Slice` of a constant (negative indices from the end, bounds clamped, any non-zero step).
fn const_slice(
    c: &Const,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> std::result::Result<Const, String> {
    consistent(c)?;
    let rank = c.dims.len() as i64;
    let mut picks: Vec<Vec<usize>> = c.dims.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..axes.len() {
        let axis = if axes[k] < 0 { axes[k] + rank } else { axes[k] };
        if !(0..rank).contains(&axis) {
            return Err(format!(
                "slices axis {} of a constant of rank {rank}",
                axes[k]
            ));
        }
        let d = c.dims[axis as usize] as i64;
        let step = steps[k];
        if step == 0 {
            return Err("has step 0".into());
        }
        if d == 0 {
            // Nothing to pick (and no valid index to clamp to).
            picks[axis as usize] = Vec::new();
            continue;
        }
        let at = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (mut i, end) = if step > 0 {
            (at(starts[k]).clamp(0, d), at(ends[k]).clamp(0, d))
        } else {
            (at(starts[k]).clamp(0, d - 1), at(ends[k]).clamp(-1, d - 1))
        };
        let mut pick = Vec::new();
        while (step > 0 && i < end) || (step < 0 && i > end) {
            pick.push(i as usize);
            i += step;
        }
        picks[axis as usize] = pick;
    }
    Ok(const_gather(c, &picks))
}

/// ONNX `Transpose` of a constant.
fn const_transpose(c: &Const, perm: &[i64]) -> std::result::Result<Const, String> {
    consistent(c)?;
    let rank = c.dims.len();
    let mut seen = vec![false; rank];
    for &p in perm {
        match usize::try_from(p).ok().filter(|&p| p < rank) {
            Some(p) if !seen[p] => seen[p] = true,
            _ => return Err(format!("has perm {perm:?} for a constant of rank {rank}")),
        }
    }
    if perm.len() != rank {
        return Err(format!("has perm {perm:?} for a constant of rank {rank}"));
    }
    let st = strides(&c.dims);
    let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p as usize]).collect();
    let count: usize = dims.iter().product();
    let mut data = Vec::with_capacity(count);
    let mut idx = vec![0usize; rank];
    for _ in 0..count {
        let offset: usize = idx
            .iter()
            .zip(perm)
            .map(|(&i, &p)| i * st[p as usize])
            .sum();
        data.push(c.data[offset]);
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Ok(Const { dims, data })
}
