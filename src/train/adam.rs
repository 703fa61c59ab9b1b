//! Adam with the moments updated in place: on the CPU (`f32`, `f64`) each parameter costs three fused passes and no
//! allocation, where candle-nn's `AdamW` (the fallback on other devices) allocates about a dozen parameter-sized
//! temporaries per step. Same update rule as `AdamW` with weight decay 0:
//! `m <- b1 m + (1 - b1) g`, `v <- b2 v + (1 - b2) g^2`,
//! `theta <- theta - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rayon::prelude::*;

use crate::error::Result;
use crate::nn::kernels::cpu_fast_path;

/// The optimiser used for training: in-place fused Adam on the CPU, candle-nn's `AdamW` elsewhere.
pub enum Adam {
    /// CPU `f32` / `f64` parameters: `(parameter, first moment, second moment)`.
    Fused {
        /// Parameters and their moments (same shape each).
        state: Vec<(Var, Tensor, Tensor)>,
        /// Learning rate, betas, eps (weight decay is not used).
        params: ParamsAdamW,
        /// Steps taken.
        t: i32,
    },
    /// Any other device or dtype.
    Generic(Box<AdamW>, Vec<Var>),
}

impl Adam {
    /// Adam over `vars` with learning rate `lr` (default betas and eps, no weight decay).
    pub fn new(vars: Vec<Var>, lr: f64) -> Result<Self> {
        let params = ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..Default::default()
        };
        if vars.iter().all(|v| cpu_fast_path(v.as_tensor())) {
            let state = vars
                .into_iter()
                .map(|v| {
                    let m = v.as_tensor().zeros_like()?;
                    let s = v.as_tensor().zeros_like()?;
                    Ok((v, m, s))
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Adam::Fused {
                state,
                params,
                t: 0,
            });
        }
        Ok(Adam::Generic(
            Box::new(AdamW::new(vars.clone(), params)?),
            vars,
        ))
    }

    /// Backward pass of `loss` (a scalar) and one update of every parameter.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// One update from precomputed gradients; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_blocks(std::slice::from_ref(grads))
    }

    /// One update from the gradients of several row blocks, summed per parameter (in block order). On the CPU
    /// the parameters are updated in parallel, one rayon task each: the sum and the three fused passes of a large
    /// weight cost milliseconds that would otherwise run on one core.
    pub fn step_blocks(&mut self, blocks: &[GradStore]) -> Result<()> {
        match self {
            Adam::Generic(opt, vars) => {
                let grads = sum_block_grads(blocks.iter().map(clone_grads).collect(), vars)?;
                Ok(opt.step(&grads)?)
            }
            Adam::Fused { state, params, t } => {
                *t += 1;
                let b1 = params.beta1;
                let b2 = params.beta2;
                let update = ParamUpdate {
                    lr: params.lr,
                    eps: params.eps,
                    scale_m: 1.0 / (1.0 - b1.powi(*t)),
                    scale_v: 1.0 / (1.0 - b2.powi(*t)),
                };
                state
                    .par_iter()
                    .with_max_len(1)
                    .try_for_each(|(var, m, v)| -> Result<()> {
                        let mut parts = blocks.iter().filter_map(|b| b.get(var.as_tensor()));
                        let Some(first) = parts.next() else {
                            return Ok(());
                        };
                        let mut g = first.clone();
                        for p in parts {
                            g = (g + p)?;
                        }
                        let g = g.contiguous()?;
                        m.inplace_op2(
                            &g,
                            &Moment {
                                beta: b1,
                                square: false,
                            },
                        )?;
                        v.inplace_op2(
                            &g,
                            &Moment {
                                beta: b2,
                                square: true,
                            },
                        )?;
                        var.as_tensor().inplace_op3(m, v, &update)?;
                        Ok(())
                    })
            }
        }
    }
}

/// The gradients of `vars` summed over row blocks (in block order), in the first block's store.
pub fn sum_block_grads(blocks: Vec<GradStore>, vars: &[Var]) -> Result<GradStore> {
    let mut blocks = blocks.into_iter();
    let mut acc = blocks
        .next()
        .ok_or_else(|| crate::Error::Data("no gradients (empty batch)".into()))?;
    for mut grads in blocks {
        for v in vars {
            let t = v.as_tensor();
            if let Some(g) = grads.remove(t) {
                let sum = match acc.get(t) {
                    Some(a) => (a + g)?,
                    None => g,
                };
                acc.insert(t, sum);
            }
        }
    }
    Ok(acc)
}

/// A store holding the same gradient tensors as `g` (tensors are shared, not copied).
fn clone_grads(g: &GradStore) -> GradStore {
    let mut out = GradStore::default();
    for id in g.get_ids() {
        if let Some(t) = g.get_id(*id) {
            out.insert_id(*id, t.clone());
        }
    }
    out
}

fn slice<'a, T>(v: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("adam: tensors must be contiguous"),
    }
}

fn slice_mut<'a, T>(v: &'a mut [T], l: &Layout) -> candle_core::Result<&'a mut [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => candle_core::bail!("adam: tensors must be contiguous"),
    }
}

/// `acc <- beta acc + (1 - beta) g` (or `g^2`), in place.
struct Moment {
    beta: f64,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "walkjump-adam-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> candle_core::Result<()> {
        macro_rules! run {
            ($acc:expr, $g:expr, $t:ty) => {{
                let acc = slice_mut($acc, dst_l)?;
                let g = slice($g, src_l)?;
                if acc.len() != g.len() {
                    candle_core::bail!("adam: gradient size {} for {}", g.len(), acc.len());
                }
                let (beta, rest) = (self.beta as $t, (1.0 - self.beta) as $t);
                if self.square {
                    for (a, &g) in acc.iter_mut().zip(g) {
                        *a = *a * beta + g * g * rest;
                    }
                } else {
                    for (a, &g) in acc.iter_mut().zip(g) {
                        *a = *a * beta + g * rest;
                    }
                }
            }};
        }
        match (dst, src) {
            (CpuStorage::F32(a), CpuStorage::F32(g)) => run!(a, g, f32),
            (CpuStorage::F64(a), CpuStorage::F64(g)) => run!(a, g, f64),
            _ => candle_core::bail!("adam: unsupported dtypes"),
        }
        Ok(())
    }
}

/// `theta <- theta - lr (m scale_m) / (sqrt(v scale_v) + eps)`, in place.
struct ParamUpdate {
    lr: f64,
    eps: f64,
    scale_m: f64,
    scale_v: f64,
}

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "walkjump-adam-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        m_l: &Layout,
        v: &CpuStorage,
        v_l: &Layout,
    ) -> candle_core::Result<()> {
        macro_rules! run {
            ($p:expr, $m:expr, $v:expr, $t:ty) => {{
                let p = slice_mut($p, dst_l)?;
                let (m, v) = (slice($m, m_l)?, slice($v, v_l)?);
                if p.len() != m.len() || p.len() != v.len() {
                    candle_core::bail!("adam: moment sizes do not match the parameter");
                }
                let (lr, eps) = (self.lr as $t, self.eps as $t);
                let (sm, sv) = (self.scale_m as $t, self.scale_v as $t);
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    *p -= lr * (m * sm) / ((v * sv).sqrt() + eps);
                }
            }};
        }
        match (dst, m, v) {
            (CpuStorage::F32(p), CpuStorage::F32(m), CpuStorage::F32(v)) => run!(p, m, v, f32),
            (CpuStorage::F64(p), CpuStorage::F64(m), CpuStorage::F64(v)) => run!(p, m, v, f64),
            _ => candle_core::bail!("adam: unsupported dtypes"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// A few steps of the fused update equal candle-nn's AdamW (weight decay 0) on the same gradients.
    #[test]
    fn fused_adam_matches_candle_adamw() {
        for dtype in [DType::F64, DType::F32] {
            let init: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
            let mk = || {
                Var::from_tensor(
                    &Tensor::from_vec(init.clone(), (3, 4), &Device::Cpu)
                        .and_then(|t| t.to_dtype(dtype))
                        .expect("tensor"),
                )
                .expect("var")
            };
            let (a, b) = (mk(), mk());
            let mut ours = Adam::new(vec![a.clone()], 0.05).expect("adam");
            assert!(matches!(ours, Adam::Fused { .. }));
            let mut theirs = AdamW::new(
                vec![b.clone()],
                ParamsAdamW {
                    lr: 0.05,
                    weight_decay: 0.0,
                    ..Default::default()
                },
            )
            .expect("adamw");
            for _ in 0..5 {
                // loss = sum(w^3): gradient 3 w^2, different at every step.
                let cube =
                    |w: &Tensor| (w.sqr().expect("sq") * w).expect("m").sum_all().expect("s");
                ours.backward_step(&cube(a.as_tensor())).expect("step");
                let lb = cube(b.as_tensor());
                theirs.backward_step(&lb).expect("step");
            }
            let diff = (a.as_tensor() - b.as_tensor())
                .and_then(|d| d.abs())
                .and_then(|d| d.max_all())
                .and_then(|d| d.to_dtype(DType::F64))
                .and_then(|d| d.to_scalar::<f64>())
                .expect("diff");
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            assert!(diff < tol, "{dtype:?}: {diff}");
        }
    }

    /// Gradients of several row blocks give the update of their sum, for the fused and the generic optimiser,
    /// and parameters are updated independently of each other (several tasks).
    #[test]
    fn block_gradients_update_like_their_sum() -> Result<()> {
        let dev = Device::Cpu;
        let mk = |seed: f64| -> Result<Vec<Var>> {
            Ok(vec![
                Var::from_tensor(&Tensor::from_vec(vec![seed, 0.5, -1.0], 3, &dev)?)?,
                Var::from_tensor(&Tensor::from_vec(vec![2.0f64, -0.25], 2, &dev)?)?,
            ])
        };
        let grads_for = |vars: &[Var], scale: f64| -> Result<GradStore> {
            // loss = scale * sum(w^2) over both parameters
            let loss =
                (vars[0].as_tensor().sqr()?.sum_all()? + vars[1].as_tensor().sqr()?.sum_all()?)?;
            Ok((loss * scale)?.backward()?)
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .map_err(|e| crate::Error::Param(e.to_string()))?;
        for generic in [false, true] {
            let (a, b) = (mk(0.3)?, mk(0.3)?);
            let mut blocks = Adam::new(a.clone(), 0.1)?;
            let mut summed = Adam::new(b.clone(), 0.1)?;
            if generic {
                let params = ParamsAdamW {
                    lr: 0.1,
                    weight_decay: 0.0,
                    ..Default::default()
                };
                blocks = Adam::Generic(Box::new(AdamW::new(a.clone(), params.clone())?), a.clone());
                summed = Adam::Generic(Box::new(AdamW::new(b.clone(), params)?), b.clone());
            }
            for _ in 0..3 {
                let parts = vec![grads_for(&a, 0.25)?, grads_for(&a, 0.75)?];
                pool.install(|| blocks.step_blocks(&parts))?;
                summed.step(&grads_for(&b, 1.0)?)?;
            }
            for (x, y) in a.iter().zip(&b) {
                let (x, y) = (
                    x.as_tensor().to_vec1::<f64>()?,
                    y.as_tensor().to_vec1::<f64>()?,
                );
                for (p, q) in x.iter().zip(&y) {
                    assert!((p - q).abs() < 1e-12, "generic {generic}: {x:?} vs {y:?}");
                }
            }
        }
        Ok(())
    }
}
