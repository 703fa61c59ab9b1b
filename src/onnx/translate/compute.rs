//! Translations that emit graph nodes: activations, arithmetic with constants, reshapes, convolutions, dense
//! layers and reductions.

use super::*;
use crate::nn::graph::ops::{OnnxAttr, OpDef, conv_transpose, pad};

impl Translator {
    pub(super) fn act(&mut self, n: &NodeProto, op: Op) -> Result<()> {
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

    /// A node of an op of the registry (`nn::graph::ops`): every input a graph value, the parameters from the
    /// node's attributes, the output shape as the op gives it.
    pub(super) fn registered(&mut self, n: &NodeProto, def: &'static dyn OpDef) -> Result<()> {
        if def.needs_name() {
            return Err(self.fail(
                n,
                "maps to an op with weights, which the importer does not carry",
            ));
        }
        let arity = def.arity();
        if arity != usize::MAX && n.input.len() != arity || n.input.is_empty() {
            return Err(self.fail(
                n,
                format!("takes {arity} inputs here, got {}", n.input.len()),
            ));
        }
        if n.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(self.fail(
                n,
                format!(
                    "has {} outputs; walkjump reads only the first (e.g. MaxPool without indices)",
                    n.output.len()
                ),
            ));
        }
        let (mut ids, mut shapes) = (Vec::new(), Vec::new());
        for k in 0..n.input.len() {
            let (id, s) = self.dynamic(n, k)?;
            ids.push(id);
            shapes.push(s);
        }
        let attrs = onnx_attrs(n);
        let params = def
            .onnx_params(&n.op_type, &attrs)
            .map_err(|m| self.fail(n, m))?;
        let shape = def.shape(&params, &shapes).map_err(|m| self.fail(n, m))?;
        let out = self.push(Op::ext(def, params), ids, vec![]);
        self.set(n, Val::Dyn(out, shape))
    }

    /// `x op c` (or `c op x` when `const_first`) for a graph value and a constant.
    pub(super) fn with_const(
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
            let op = match (op, const_first) {
                ("Add", _) => affine(1.0, k),
                ("Mul", _) => affine(k, 0.0),
                ("Sub", false) => affine(1.0, -k),
                ("Sub", true) => affine(-1.0, k),
                ("Div", false) if k != 0.0 => affine(1.0 / k, 0.0),
                ("Div", true) => {
                    // k / x = k * (1 / x).
                    let def = &crate::nn::graph::ops::RECIPROCAL;
                    let r = self.push(Op::ext(def, Default::default()), vec![id], vec![]);
                    let out = self.push(affine(k, 0.0), vec![r], vec![]);
                    return self.set(n, Val::Dyn(out, s));
                }
                _ => return Err(self.fail(n, "divides by zero")),
            };
            // `x * 1`, `x + 0` (exporters leave them, e.g. a scale of one) are the value itself.
            if matches!(op, Op::Affine { mul, add } if mul == 1.0 && add == 0.0) {
                return self.set(n, Val::Dyn(id, s));
            }
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
                // `(gamma xhat + beta) m = (gamma m) xhat + beta m`: one node instead of two.
                if fold && let Some(&node) = self.scaled.get(&id) {
                    let name = &self.nodes[node].name;
                    let (wk, bk) = (format!("{name}.weight"), format!("{name}.bias"));
                    let fits =
                        |k: &str| self.tensors.get(k).is_some_and(|(_, t)| t.len() == m.len());
                    if fits(&wk) && fits(&bk) {
                        for k in [wk, bk] {
                            if let Some((_, t)) = self.tensors.get_mut(&k) {
                                for (t, f) in t.iter_mut().zip(&m) {
                                    *t = (*t as f64 * f) as f32;
                                }
                            }
                        }
                        return self.set(n, Val::Dyn(id, s));
                    }
                }
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

    pub(super) fn arith(&mut self, n: &NodeProto) -> Result<()> {
        let op = n.op_type.as_str();
        let (a, b) = (self.get(n, 0)?, self.get(n, 1)?);
        match (a, b) {
            (Val::Const(a), Val::Const(b)) => {
                let ints = n.input.iter().all(|i| self.int_vals.contains(i));
                let f: fn(f64, f64) -> f64 = match op {
                    "Add" => |x, y| x + y,
                    "Sub" => |x, y| x - y,
                    "Mul" => |x, y| x * y,
                    // Integer division truncates (shape arithmetic); the batch sentinel stays itself.
                    _ if ints => |x, y| {
                        if x.is_finite() && y != 0.0 {
                            (x / y).trunc()
                        } else {
                            x / y
                        }
                    },
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
                    _ => Op::ext(&crate::nn::graph::ops::Div, Default::default()),
                };
                let out = self.push(gop, vec![x, y], vec![]);
                self.set(n, Val::Dyn(out, sx))
            }
            (v @ (Val::Heads(_) | Val::Scores(_) | Val::Grouped(..)), Val::Const(c))
                if matches!(op, "Mul" | "Div")
                    && (!matches!(v, Val::Grouped(..)) || self.heads_view(&v).is_some()) =>
            {
                self.scale_view(n, v, &c, op == "Div")
            }
            (Val::Const(c), v @ (Val::Heads(_) | Val::Scores(_))) if op == "Mul" => {
                self.scale_view(n, v, &c, false)
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
    pub(super) fn reshape_target(
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
                    && t[1..]
                        .iter()
                        .flatten()
                        .try_fold(1i64, |a, &d| a.checked_mul(d))
                        == Some(numel as i64) => {}
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
        let known = checked_product(out.iter().flatten().copied())
            .ok_or_else(|| self.fail(n, format!("has a target shape {t:?} too large to hold")))?;
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
        if checked_product(dims.iter().copied()) != Some(numel) {
            return Err(self.fail(n, format!("reshapes {} values into {dims:?}", numel)));
        }
        Ok(Some(dims))
    }

    /// `Slice`: of a constant along any axes and steps (exporters build pads and shapes this way), or of a graph
    /// value along its channels (the older exporter's `chunk`) as `slice_channels`.
    pub(super) fn slice(&mut self, n: &NodeProto, opset: i64) -> Result<()> {
        let list = |k: usize, name: &str| -> Result<Option<Vec<i64>>> {
            if opset < 10 {
                return Ok(attr_ints(n, name));
            }
            match self.opt(n, k)? {
                Some(Val::Const(c)) => Ok(Some(
                    c.data
                        .iter()
                        .map(|&v| {
                            if v.is_nan() {
                                0
                            } else {
                                v.clamp(i64::MIN as f64, i64::MAX as f64) as i64
                            }
                        })
                        .collect(),
                )),
                Some(_) => Err(self.fail(n, "has slice bounds that are not constant")),
                None => Ok(None),
            }
        };
        let starts = list(1, "starts")?.unwrap_or_default();
        let ends = list(2, "ends")?.unwrap_or_default();
        let axes = list(3, "axes")?;
        let steps = if opset < 10 { None } else { list(4, "steps")? };
        let k = starts.len();
        let axes = axes.unwrap_or_else(|| (0..k as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; k]);
        if ends.len() != k || axes.len() != k || steps.len() != k {
            return Err(self.fail(n, "has starts, ends, axes and steps of different lengths"));
        }
        match self.get(n, 0)? {
            Val::Const(c) => {
                let out =
                    const_slice(&c, &starts, &ends, &axes, &steps).map_err(|m| self.fail(n, m))?;
                self.set(n, Val::Const(out))
            }
            Val::Dyn(id, s) => {
                let (rank, c) = match s {
                    ValueShape::Image(c, _, _) => (4, c),
                    ValueShape::Flat(d) => (2, d),
                };
                let (start, end) = match (axes.as_slice(), steps.as_slice()) {
                    (&[a], &[1]) if a == 1 || a == 1 - rank => (starts[0], ends[0]),
                    _ => {
                        return Err(self.fail(
                            n,
                            format!("slices axes {axes:?} with steps {steps:?}; walkjump slices a value's channels (axis 1, step 1)"),
                        ));
                    }
                };
                let clamp = |v: i64| {
                    (if v < 0 { v.saturating_add(c as i64) } else { v }).clamp(0, c as i64) as usize
                };
                let (a, b) = (clamp(start), clamp(end));
                if (a, b) == (0, c) {
                    return self.set(n, Val::Dyn(id, s));
                }
                let params = crate::nn::graph::ops::slice_channels::params(a, b.saturating_sub(a));
                let def: &'static dyn OpDef = &crate::nn::graph::ops::SliceChannels;
                let shape = def.shape(&params, &[s]).map_err(|m| self.fail(n, m))?;
                let out = self.push(Op::ext(def, params), vec![id], vec![]);
                self.set(n, Val::Dyn(out, shape))
            }
            _ => Err(self.fail(
                n,
                "reads an intermediate pattern walkjump does not recognise here",
            )),
        }
    }

    pub(super) fn reshape(&mut self, n: &NodeProto) -> Result<()> {
        let target = self.konst(n, 1, "the target shape")?;
        match self.get(n, 0)? {
            Val::Const(c) => {
                let t = ints(&target);
                let count = c.data.len();
                let known = checked_product(t.iter().map(|v| match v {
                    Some(d) if *d > 0 => *d as usize,
                    _ => 1,
                }))
                .ok_or_else(|| {
                    self.fail(n, format!("has a target shape {t:?} too large to hold"))
                })?;
                let mut dims = Vec::new();
                for (k, v) in t.iter().enumerate() {
                    dims.push(match v {
                        Some(-1) if known > 0 => count / known,
                        Some(0) => c.dims.get(k).copied().unwrap_or(0),
                        Some(d) if *d > 0 => *d as usize,
                        _ => return Err(self.fail(n, "reshapes a constant with the batch size")),
                    });
                }
                if checked_product(dims.iter().copied()) != Some(count) {
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
                if let Some(v) = self.reshape_to_heads(id, s, &dims) {
                    return self.set(n, v);
                }
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
            Val::Heads(v) => self.reshape_view(n, v, &target),
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

    pub(super) fn conv(&mut self, n: &NodeProto) -> Result<()> {
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
        let groups = match usize::try_from(group) {
            Ok(g) if g >= 1 && c % g == 0 && cin * g == c && out % g == 0 => g,
            _ => {
                return Err(self.fail(
                    n,
                    format!(
                        "has {group} groups for {c} input channels and a weight of {cin} per group"
                    ),
                ));
            }
        };
        if groups == 1 && cin != c {
            return Err(self.fail(n, format!("has {cin} input channels for an input of {c}")));
        }
        if kh != kw {
            return Err(self.fail(
                n,
                format!("has a {kh}x{kw} kernel; walkjump's convolutions are square"),
            ));
        }
        let dilations = attr_ints(n, "dilations").unwrap_or_else(|| vec![1, 1]);
        let dilation = match dilations.as_slice() {
            &[a, b] if a == b && (1..=16).contains(&a) => a as usize,
            other => {
                return Err(self.fail(
                    n,
                    format!("has dilations {other:?}; walkjump dilates both axes alike, 1 to 16"),
                ));
            }
        };
        // The span of the (dilated) kernel.
        let span = dilation * (kh - 1) + 1;
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
        // Per side: [top, bottom, left, right].
        let auto = attr_s(n, "auto_pad").unwrap_or_default();
        let sides: [usize; 4] = match auto.as_str() {
            "" | "NOTSET" => {
                let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                match pads.as_slice() {
                    &[t, l, b, r]
                        if [t, l, b, r]
                            .iter()
                            .all(|&p| (0..=pad::MAX_PAD as i64).contains(&p)) =>
                    {
                        [t as usize, b as usize, l as usize, r as usize]
                    }
                    other => {
                        return Err(self.fail(
                            n,
                            format!("has pads {other:?}; walkjump pads 2D convolutions by 0 to {} on a side", pad::MAX_PAD),
                        ));
                    }
                }
            }
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                // Output ceil(n / stride); the odd cell of an uneven total goes after (UPPER) or before (LOWER).
                let split = |len: usize| {
                    let total = ((len.div_ceil(stride) - 1) * stride + span).saturating_sub(len);
                    let less = total / 2;
                    if auto == "SAME_UPPER" {
                        (less, total - less)
                    } else {
                        (total - less, less)
                    }
                };
                let ((t, b), (l, r)) = (split(h), split(wd));
                [t, b, l, r]
            }
            other => {
                return Err(self.fail(n, format!("has auto_pad {}", crate::text::one_line(other))));
            }
        };
        let [t, b, l, r] = sides;
        // Even padding stays in the convolution; uneven padding becomes a zero `pad2d` before it.
        let (id, h, wd, padding) = if t == b && b == l && l == r {
            (id, h, wd, t)
        } else {
            let params = pad::params(sides, pad::PadMode::Constant, 0.0);
            let padded = self.push(Op::ext(&pad::Pad2d, params), vec![id], vec![]);
            (padded, h + t + b, wd + l + r, 0)
        };
        let max_pad = if dilation == 1 { 15 } else { 64 };
        if kh > 15 || padding > max_pad || stride > 8 {
            return Err(self.fail(
                n,
                format!("has kernel {kh}, padding {padding}, stride {stride}; walkjump takes kernels up to 15, padding up to {max_pad}, strides up to 8"),
            ));
        }
        if h + 2 * padding < span || wd + 2 * padding < span {
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
        let op = if groups == 1 && dilation == 1 {
            Op::Conv2d {
                out,
                kernel: kh,
                stride,
                padding,
                bias: true,
            }
        } else {
            let mut params = crate::nn::graph::ops::Params::new();
            params.insert("out".into(), serde_json::json!(out));
            params.insert("kernel".into(), serde_json::json!(kh));
            params.insert("groups".into(), serde_json::json!(groups));
            params.insert("stride".into(), serde_json::json!(stride));
            params.insert("padding".into(), serde_json::json!(padding));
            if dilation != 1 {
                params.insert("dilation".into(), serde_json::json!(dilation));
            }
            Op::ext(&crate::nn::graph::ops::Conv2dGrouped, params)
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
        let oh = (h + 2 * padding - span) / stride + 1;
        let ow = (wd + 2 * padding - span) / stride + 1;
        self.set(n, Val::Dyn(o, ValueShape::Image(out, oh, ow)))
    }

    /// `ConvTranspose` with a constant weight `[c_in, out, k, k]` and optional bias `[out]`, as the registry's
    /// `conv_transpose2d`.
    pub(super) fn conv_transpose(&mut self, n: &NodeProto) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let ValueShape::Image(c, h, wd) = s else {
            return Err(self.fail(n, format!("needs an image input, got {}", s.describe())));
        };
        let w = self.konst(n, 1, "the weight")?;
        if w.dims.first() != Some(&c) {
            return Err(self.fail(
                n,
                format!(
                    "has a weight of shape {:?} for an input of {c} channels",
                    w.dims
                ),
            ));
        }
        let attrs = onnx_attrs(n);
        let params =
            conv_transpose::onnx_params(&attrs, &w.dims, (h, wd)).map_err(|m| self.fail(n, m))?;
        let out = w.dims[1];
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
        let def: &'static dyn OpDef = &conv_transpose::ConvTranspose2d;
        let shape = def.shape(&params, &[s]).map_err(|m| self.fail(n, m))?;
        let o = self.push(
            Op::ext(def, params),
            vec![id],
            vec![
                ("weight", w.dims.clone(), f32s(&w.data)),
                ("bias", vec![out], f32s(&bias)),
            ],
        );
        self.set(n, Val::Dyn(o, shape))
    }

    /// `Pad` of an image on its spatial axes, as the registry's `pad2d`: pads (and the constant) from attributes
    /// before opset 11, from constant inputs after (with the optional `axes` of opset 18).
    pub(super) fn pad(&mut self, n: &NodeProto, opset: i64) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let ValueShape::Image(..) = s else {
            return Err(self.fail(n, format!("pads {}; walkjump pads images", s.describe())));
        };
        let (pads, value, axes) = if opset < 11 {
            let pads: Vec<f64> = attr_ints(n, "pads")
                .unwrap_or_default()
                .iter()
                .map(|&v| v as f64)
                .collect();
            (pads, attr_f(n, "value", 0.0), None)
        } else {
            let pads = self.konst(n, 1, "the pads")?.data;
            let value = match self.opt(n, 2)? {
                None => 0.0,
                Some(Val::Const(c)) if c.data.len() == 1 => c.data[0],
                Some(_) => return Err(self.fail(n, "has a padding value that is not one constant")),
            };
            let axes = match self.opt(n, 3)? {
                None => None,
                Some(Val::Const(c)) => Some(c.data),
                Some(_) => return Err(self.fail(n, "has axes that are not constant")),
            };
            (pads, value, axes)
        };
        // The pads of each of the 4 axes (N, C, H, W), begin and end.
        let axes: Vec<i64> = match axes {
            Some(a) => a
                .iter()
                .map(|&v| if v < 0.0 { v as i64 + 4 } else { v as i64 })
                .collect(),
            None => (0..4).collect(),
        };
        if pads.len() != 2 * axes.len() || axes.iter().any(|a| !(0..4).contains(a)) {
            return Err(self.fail(
                n,
                format!("has pads {pads:?} for axes {axes:?} of a 4D image"),
            ));
        }
        let mut per_axis = [[0i64; 2]; 4];
        for (k, &a) in axes.iter().enumerate() {
            per_axis[a as usize] = [pads[k] as i64, pads[k + axes.len()] as i64];
        }
        if per_axis[0] != [0, 0] || per_axis[1] != [0, 0] {
            return Err(self.fail(
                n,
                "pads the batch or channel axis; walkjump pads rows and columns",
            ));
        }
        let [[t, b], [l, r]] = [per_axis[2], per_axis[3]];
        if [t, b, l, r]
            .iter()
            .any(|&p| !(0..=pad::MAX_PAD as i64).contains(&p))
        {
            return Err(self.fail(
                n,
                format!(
                    "has pads {:?} (top, bottom, left, right); walkjump pads by 0 to {} on a side (negative pads crop)",
                    [t, b, l, r],
                    pad::MAX_PAD
                ),
            ));
        }
        let mode = match attr_s(n, "mode").as_deref().unwrap_or("constant") {
            "constant" => pad::PadMode::Constant,
            "reflect" => pad::PadMode::Reflect,
            "edge" => pad::PadMode::Edge,
            other => {
                return Err(self.fail(
                    n,
                    format!(
                        "has mode '{}'; walkjump pads with a constant, reflect or edge",
                        crate::text::one_line(other)
                    ),
                ));
            }
        };
        let sides = [t as usize, b as usize, l as usize, r as usize];
        if sides == [0; 4] {
            return self.set(n, Val::Dyn(id, s));
        }
        let params = pad::params(sides, mode, value);
        let def: &'static dyn OpDef = &pad::Pad2d;
        let shape = def.shape(&params, &[s]).map_err(|m| self.fail(n, m))?;
        let o = self.push(Op::ext(def, params), vec![id], vec![]);
        self.set(n, Val::Dyn(o, shape))
    }

    /// `Clip(x, min, max)`: bounds from attributes before opset 11, from optional constant inputs after.
    pub(super) fn clip(&mut self, n: &NodeProto, opset: i64) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let mut bounds = Vec::new();
        for (k, name) in [(1, "min"), (2, "max")] {
            let v = if opset < 11 {
                attr(n, name).map(|a| f64::from(a.f))
            } else {
                match self.opt(n, k)? {
                    Some(Val::Const(c)) => match c.scalar() {
                        Some(v) => Some(v),
                        None => {
                            return Err(
                                self.fail(n, format!("has a {name} that is not one number"))
                            );
                        }
                    },
                    Some(_) => {
                        return Err(self.fail(
                            n,
                            format!("has an input-dependent {name}; walkjump clips to constants"),
                        ));
                    }
                    None => None,
                }
            };
            if let Some(v) = v {
                if !v.is_finite() {
                    return Err(self.fail(n, format!("has {name} {v}")));
                }
                bounds.push((name, v));
            }
        }
        let def = &crate::nn::graph::ops::CLIP;
        let params = def.params(&bounds);
        def.shape(&params, &[s]).map_err(|m| self.fail(n, m))?;
        let o = self.push(Op::ext(def, params), vec![id], vec![]);
        self.set(n, Val::Dyn(o, s))
    }

    /// `PRelu(x, slope)` with a constant slope: one value, or one per channel (per feature of a flat value) in any
    /// broadcastable shape (PyTorch writes `[1, c, 1, 1]`).
    pub(super) fn prelu(&mut self, n: &NodeProto) -> Result<()> {
        let (id, s) = self.dynamic(n, 0)?;
        let slope = self.konst(n, 1, "the slope")?;
        let c = match s {
            ValueShape::Flat(d) => d,
            ValueShape::Image(c, _, _) => c,
        };
        let values = match slope.data.len() {
            1 => vec![slope.data[0]; c],
            k if k == c && slope.dims.iter().filter(|&&d| d != 1).count() <= 1 => slope.data,
            _ => {
                return Err(self.fail(
                    n,
                    format!(
                        "has a slope of shape {:?}; walkjump takes one slope or one per channel ({c})",
                        slope.dims
                    ),
                ));
            }
        };
        if values.iter().any(|v| !v.is_finite()) {
            return Err(self.fail(n, "has a slope that is not finite"));
        }
        let o = self.push(
            Op::ext(&crate::nn::graph::ops::Prelu, Default::default()),
            vec![id],
            vec![("weight", vec![c], f32s(&values))],
        );
        self.set(n, Val::Dyn(o, s))
    }

    pub(super) fn dense(&mut self, n: &NodeProto, gemm: bool) -> Result<()> {
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
    pub(super) fn axes(&self, n: &NodeProto, rank: usize) -> Result<Option<Vec<usize>>> {
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

    pub(super) fn reduce(&mut self, n: &NodeProto) -> Result<()> {
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

/// A node's attributes as the op registry reads them.
fn onnx_attrs(n: &NodeProto) -> Vec<OnnxAttr<'_>> {
    n.attribute
        .iter()
        .map(|a| OnnxAttr {
            name: &a.name,
            f: a.f,
            i: a.i,
            s: &a.s,
            ints: &a.ints,
        })
        .collect()
}
