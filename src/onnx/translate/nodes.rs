//! The ONNX operator dispatch: one arm per supported operator, constant folding for shape arithmetic.

use super::*;

const SUPPORTED: &str = "Add, AveragePool, BatchNormalization, Cast, Concat, Constant, ConstantOfShape, Conv, Div, Dropout, Elu, Erf, Flatten, Gather, Gelu, Gemm, GlobalAveragePool, Greater/Where (Softplus threshold), GroupNormalization, Identity, InstanceNormalization, LayerNormalization, LeakyRelu, MatMul, Mul, Neg, Pad (spatial), Pow (2), self-attention over pixels (Reshape / Transpose / MatMul / Softmax), Split (channels), ReduceMean, ReduceSum, Relu, Reshape, Resize/Upsample (nearest or bilinear, integer scale), Clip, Shape, Sigmoid, Slice (constants, or channels), Softplus, Squeeze, Sub, Tanh, Unsqueeze";

impl Translator {
    pub(super) fn node(&mut self, n: &NodeProto, opset: i64) -> Result<()> {
        match n.op_type.as_str() {
            "Constant" => {
                let c = if let Some(a) = attr(n, "value") {
                    let t =
                        a.t.as_ref()
                            .ok_or_else(|| self.fail(n, "has no tensor value"))?;
                    tensor_values(t).map_err(|m| self.fail(n, m))?
                } else if let Some(a) = attr(n, "value_float") {
                    Const {
                        dims: vec![],
                        data: vec![f64::from(a.f)],
                    }
                } else if let Some(a) = attr(n, "value_floats") {
                    Const {
                        dims: vec![a.floats.len()],
                        data: a.floats.iter().map(|&v| f64::from(v)).collect(),
                    }
                } else if let Some(a) = attr(n, "value_int") {
                    Const {
                        dims: vec![],
                        data: vec![a.i as f64],
                    }
                } else if let Some(a) = attr(n, "value_ints") {
                    Const {
                        dims: vec![a.ints.len()],
                        data: a.ints.iter().map(|&v| v as f64).collect(),
                    }
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
                                    *x = if to == 9 {
                                        f64::from(u8::from(*x != 0.0))
                                    } else {
                                        x.trunc()
                                    };
                                }
                            }
                        }
                        self.set(n, Val::Const(c))
                    }
                    Val::Dyn(..) if matches!(to, 1 | 10 | 11 | 16) => self.set(n, v),
                    _ => Err(self.fail(
                        n,
                        format!("casts an input-dependent value to element type {to}"),
                    )),
                }
            }
            "Shape" => {
                let dims: Vec<f64> = match self.get(n, 0)? {
                    Val::Dyn(_, s) | Val::GroupNormed(_, s) => full_dims(s),
                    Val::Grouped(_, s, g) => vec![BATCH, g as f64, (s.numel() / g) as f64],
                    Val::Const(c) => c.dims.iter().map(|&d| d as f64).collect(),
                    Val::Mask(..) => return Err(self.fail(n, "takes the shape of a comparison")),
                    v @ (Val::Heads(_) | Val::Scores(_)) => {
                        self.view_dims(&v).ok_or_else(|| {
                            self.fail(n, "takes the shape of attention scores or of merged heads")
                        })?
                    }
                };
                let r = dims.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let start = clamp(attr_i(n, "start", 0));
                let end = clamp(attr_i(n, "end", r));
                let data = dims.get(start..end.max(start)).unwrap_or(&[]).to_vec();
                self.set(
                    n,
                    Val::Const(Const {
                        dims: vec![data.len()],
                        data,
                    }),
                )
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
                        return Err(
                            self.fail(n, format!("index {i} is out of range for {len} values"))
                        );
                    }
                    out.push(data.data[j as usize]);
                }
                self.set(
                    n,
                    Val::Const(Const {
                        dims: idx.dims.clone(),
                        data: out,
                    }),
                )
            }
            "Slice" => self.slice(n, opset),
            "ConstantOfShape" => {
                let shape = self.konst(n, 0, "the shape")?;
                let value = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => tensor_values(t)
                        .map_err(|m| self.fail(n, m))?
                        .scalar()
                        .ok_or_else(|| self.fail(n, "has a value that is not one number"))?,
                    None => 0.0,
                };
                let dims = shape
                    .data
                    .iter()
                    .map(|&d| as_usize(d))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| self.fail(n, "has a shape that is not known numbers"))?;
                let count = checked_product(dims.iter().copied())
                    .filter(|&c| c <= MAX_CONST_ELEMS)
                    .ok_or_else(|| {
                        self.fail(n, format!("makes a constant of shape {dims:?}, too large"))
                    })?;
                self.set(
                    n,
                    Val::Const(Const {
                        dims,
                        data: vec![value; count],
                    }),
                )
            }
            "Concat" => {
                let vals = (0..n.input.len())
                    .map(|k| self.get(n, k))
                    .collect::<Result<Vec<_>>>()?;
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
                    return self.set(
                        n,
                        Val::Const(Const {
                            dims: vec![data.len()],
                            data,
                        }),
                    );
                }
                let mut ids = Vec::new();
                let mut first: Option<ValueShape> = None;
                for v in &vals {
                    match v {
                        Val::Dyn(id, s) => {
                            ids.push(*id);
                            first.get_or_insert(*s);
                        }
                        _ => {
                            return Err(
                                self.fail(n, "joins an input-dependent value with a constant")
                            );
                        }
                    }
                }
                let s = first.ok_or_else(|| self.fail(n, "has no inputs"))?;
                let rank = full_dims(s).len() as i64;
                let axis = attr_i(n, "axis", 1);
                if axis != 1 && axis != 1 - rank {
                    return Err(self.fail(
                        n,
                        format!("joins along axis {axis}; walkjump joins channels (axis 1)"),
                    ));
                }
                let mut shape = s;
                let mut total = 0;
                for v in &vals {
                    if let Val::Dyn(_, sv) = v {
                        total += match (*sv, s) {
                            (ValueShape::Flat(d), ValueShape::Flat(_)) => d,
                            (ValueShape::Image(c, h, w), ValueShape::Image(_, h0, w0))
                                if (h, w) == (h0, w0) =>
                            {
                                c
                            }
                            _ => {
                                return Err(self.fail(
                                    n,
                                    format!("joins {} with {}", sv.describe(), s.describe()),
                                ));
                            }
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
                let c = self.konst(
                    n,
                    0,
                    "the unsqueezed tensor (walkjump adds axes only to constants)",
                )?;
                let rank = c.dims.len();
                let axes = match attr_ints(n, "axes") {
                    Some(a) => a,
                    None => self
                        .konst(n, 1, "the axes")?
                        .data
                        .iter()
                        .map(|&v| v as i64)
                        .collect(),
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
                        return Err(self.fail(
                            n,
                            format!("flattens from axis {axis}; walkjump flattens from axis 1"),
                        ));
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
            "MatMul"
                if !matches!(self.get(n, 1)?, Val::Const(_))
                    && !matches!(self.get(n, 0)?, Val::Const(_)) =>
            {
                self.attention_matmul(n)
            }
            "MatMul" => self.dense(n, false),
            "Transpose" if matches!(self.get(n, 0)?, Val::Const(_)) => {
                let c = self.konst(n, 0, "the transposed tensor")?;
                let perm = attr_ints(n, "perm")
                    .unwrap_or_else(|| (0..c.dims.len() as i64).rev().collect());
                let out = const_transpose(&c, &perm).map_err(|m| self.fail(n, m))?;
                self.set(n, Val::Const(out))
            }
            "Transpose" => self.transpose(n),
            "Softmax" => self.softmax(n),
            "Split" => self.split(n, opset),
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
                    let o = self.push(
                        Op::Affine {
                            mul: -1.0,
                            add: 0.0,
                        },
                        vec![id],
                        vec![],
                    );
                    self.set(n, Val::Dyn(o, s))
                }
                _ => Err(self.fail(n, "negates an intermediate pattern")),
            },
            "Sqrt" | "Reciprocal" if matches!(self.get(n, 0)?, Val::Dyn(..)) => {
                let (id, s) = self.dynamic(n, 0)?;
                let def = match n.op_type.as_str() {
                    "Sqrt" => &crate::nn::graph::ops::SQRT,
                    _ => &crate::nn::graph::ops::RECIPROCAL,
                };
                let o = self.push(Op::ext(def, Default::default()), vec![id], vec![]);
                self.set(n, Val::Dyn(o, s))
            }
            "Sqrt" | "Reciprocal" => {
                let mut c = self.konst(
                    n,
                    0,
                    "the operand (walkjump folds this op on constants only)",
                )?;
                let sqrt = n.op_type == "Sqrt";
                c.data
                    .iter_mut()
                    .for_each(|x| *x = if sqrt { x.sqrt() } else { 1.0 / *x });
                self.set(n, Val::Const(c))
            }
            "Relu" => self.act(n, Op::Relu),
            "Sigmoid" => self.act(n, Op::Sigmoid),
            "Tanh" => self.act(n, Op::Tanh),
            "Erf" => self.act(n, Op::Erf),
            "Softplus" => self.act(n, Op::Softplus { beta: 1.0 }),
            "Elu" => self.act(
                n,
                Op::Elu {
                    alpha: attr_f(n, "alpha", 1.0),
                },
            ),
            "LeakyRelu" => self.act(
                n,
                Op::LeakyRelu {
                    alpha: attr_f(n, "alpha", 0.01),
                },
            ),
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
                let t = t
                    .scalar()
                    .ok_or_else(|| self.fail(n, "compares with a non-scalar"))?;
                self.set(n, Val::Mask(t))
            }
            "Where" => {
                let Val::Mask(t) = self.get(n, 0)? else {
                    return Err(self.fail(n, "selects on a condition walkjump does not recognise (only Softplus's threshold)"));
                };
                let (y, s) = self.dynamic(n, 2)?;
                let softplus_like = self.softplus_of.contains_key(&y)
                    || self.nodes.get(y.wrapping_sub(1)).is_some_and(|p| {
                        matches!(p.op, Op::Affine { .. })
                            && p.inputs
                                .first()
                                .is_some_and(|i| self.softplus_of.contains_key(i))
                    });
                if !(softplus_like && t >= 15.0) {
                    return Err(self.fail(n, "selects between values in a way walkjump does not recognise (only Softplus's threshold of 15 or more)"));
                }
                // Above the threshold softplus(x) and x differ by less than exp(-15) relative.
                self.set(n, Val::Dyn(y, s))
            }
            "Conv" => self.conv(n),
            "ConvTranspose" => self.conv_transpose(n),
            "Pad" => self.pad(n, opset),
            "Clip" => self.clip(n, opset),
            "PRelu" => self.prelu(n),
            "Resize" | "Upsample" => {
                let (id, s) = self.dynamic(n, 0)?;
                let ValueShape::Image(c, h, w) = s else {
                    return Err(self.fail(n, "upsamples a flat value"));
                };
                let mode = attr_s(n, "mode").unwrap_or_else(|| "nearest".into());
                // Bilinear: PyTorch's align_corners false (half_pixel) or true. Without the attribute, Resize
                // (opset 11 on) means half_pixel, Upsample and older Resize asymmetric. (Antialiasing only acts
                // when shrinking; walkjump only enlarges.)
                let coordinates = attr_s(n, "coordinate_transformation_mode").or_else(|| {
                    (n.op_type == "Resize" && opset >= 11).then(|| "half_pixel".to_string())
                });
                let align_corners = match (mode.as_str(), coordinates) {
                    ("nearest", _) => None,
                    ("linear" | "bilinear", Some(c))
                        if c == "half_pixel" || c == "pytorch_half_pixel" =>
                    {
                        Some(false)
                    }
                    ("linear" | "bilinear", Some(c)) if c == "align_corners" => Some(true),
                    ("linear" | "bilinear", c) => {
                        return Err(self.fail(
                            n,
                            format!(
                                "interpolates with coordinates {}; walkjump reads half_pixel and align_corners (PyTorch's bilinear)",
                                c.as_deref().map(crate::text::one_line).unwrap_or_else(|| "asymmetric".into())
                            ),
                        ));
                    }
                    (other, _) => {
                        return Err(self.fail(
                            n,
                            format!(
                                "uses mode {}; walkjump upsamples nearest-neighbour or bilinear",
                                crate::text::one_line(other)
                            ),
                        ));
                    }
                };
                let (scales, sizes) = if n.op_type == "Upsample" || opset < 11 {
                    (self.opt(n, 1)?, None)
                } else {
                    (self.opt(n, 2)?, self.opt(n, 3)?)
                };
                let factor = match (scales, sizes) {
                    (Some(Val::Const(sc)), _) if sc.data.len() == 4 => {
                        let (a, b) = (sc.data[2], sc.data[3]);
                        (sc.data[0] == 1.0
                            && sc.data[1] == 1.0
                            && a == b
                            && a >= 1.0
                            && a.fract() == 0.0)
                            .then_some(a as usize)
                    }
                    (_, Some(Val::Const(sz))) if sz.data.len() == 4 => {
                        let (oh, ow) = (
                            as_usize(sz.data[2]).unwrap_or(0),
                            as_usize(sz.data[3]).unwrap_or(0),
                        );
                        (oh % h == 0
                            && ow % w == 0
                            && oh / h == ow / w
                            && oh >= h
                            && as_usize(sz.data[1]) == Some(c))
                        .then_some(oh / h)
                    }
                    _ => None,
                };
                let Some(f) = factor.filter(|f| (1..=16).contains(f)) else {
                    return Err(self.fail(n, "resizes by something other than one integer factor (1 to 16) in both directions"));
                };
                let op = match align_corners {
                    None => Op::Upsample { scale: f },
                    Some(a) => {
                        let mut params = crate::nn::graph::ops::Params::new();
                        params.insert("scale".into(), serde_json::json!(f));
                        params.insert("align_corners".into(), serde_json::json!(a));
                        Op::ext(&crate::nn::graph::ops::UpsampleBilinear, params)
                    }
                };
                let o = self.push(op, vec![id], vec![]);
                self.set(n, Val::Dyn(o, ValueShape::Image(c, h * f, w * f)))
            }
            "AveragePool" => {
                let (id, s) = self.dynamic(n, 0)?;
                let ValueShape::Image(c, h, w) = s else {
                    return Err(self.fail(n, "pools a flat value"));
                };
                let k = match attr_ints(n, "kernel_shape").as_deref() {
                    Some(&[a, b]) if a == b && a > 0 => a as usize,
                    other => {
                        return Err(self.fail(
                            n,
                            format!("has kernel {other:?}; walkjump pools with square kernels"),
                        ));
                    }
                };
                let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
                let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                if strides != [k as i64, k as i64] || pads.iter().any(|&p| p != 0) || k > h || k > w
                {
                    // Overlapping or padded windows: the registry's general average pool.
                    return self.registered(n, &crate::nn::graph::ops::AvgPool2d);
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
                    Val::Grouped(id, s, g) if n.op_type == "InstanceNormalization" => {
                        (id, s, g, false)
                    }
                    Val::Dyn(id, s @ ValueShape::Image(c, _, _)) => {
                        let g = if n.op_type == "GroupNormalization" {
                            attr_i(n, "num_groups", 0).max(0) as usize
                        } else {
                            c
                        };
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
                        l if l == groups => {
                            Some((0..c).map(|ch| v.data[ch / per] as f32).collect())
                        }
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
                self.scaled.insert(o, node);
                self.set(
                    n,
                    if back_to_image {
                        Val::Dyn(o, s)
                    } else {
                        Val::GroupNormed(o, s)
                    },
                )
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
                    Op::LayerNorm {
                        eps: attr_f(n, "epsilon", 1e-5),
                    },
                    vec![id],
                    vec![
                        ("weight", vec![d], f32s(&scale.data)),
                        ("bias", vec![d], f32s(&bias)),
                    ],
                );
                self.biased.insert(o, node);
                self.scaled.insert(o, node);
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
                for (k, name) in [
                    (1, "weight"),
                    (2, "bias"),
                    (3, "running_mean"),
                    (4, "running_var"),
                ] {
                    let v = self.konst(n, k, name)?;
                    if v.data.len() != c {
                        return Err(self.fail(
                            n,
                            format!(
                                "has {} values for {name}, the input has {c} channels",
                                v.data.len()
                            ),
                        ));
                    }
                    ps.push((name, vec![c], f32s(&v.data)));
                }
                let o = self.push(
                    Op::BatchNorm {
                        eps: attr_f(n, "epsilon", 1e-5),
                    },
                    vec![id],
                    ps,
                );
                self.set(n, Val::Dyn(o, s))
            }
            other => match crate::nn::graph::ops::find_onnx(other) {
                Some(def) => self.registered(n, def),
                None => {
                    let registered: Vec<&str> = crate::nn::graph::ops::OPS
                        .iter()
                        .flat_map(|d| d.onnx_types().iter().copied())
                        .collect();
                    Err(self.fail(
                        n,
                        format!(
                            "is not supported; walkjump reads {SUPPORTED}, {}",
                            registered.join(", ")
                        ),
                    ))
                }
            },
        }
    }
}
