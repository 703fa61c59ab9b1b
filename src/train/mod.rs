//! Training every model kind with Adam, losses exactly as REFERENCE.md (summed over pixels, averaged over the batch).
//! Each kind's random draws, loss and default architecture live in its own file (`models::kinds`, through
//! [`KindModel::draws`](crate::models::KindModel::draws), [`KindModel::loss`](crate::models::KindModel::loss) and
//! [`ModelDef::default_arch`]); this module batches, splits rows across threads, steps Adam, evaluates and records.
//!
//! DEEN and UVB are trained through the explicit-VJP score: `grad_y f` is an ordinary tensor expression, so the DEEN
//! loss `||x - y + sigma^2 grad_y f(y)||^2` is differentiated by candle's first-order backward.

pub mod adam;
pub mod wiener;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, FORMAT, Metadata, ModelKind, TensorData, VERSION};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::kinds::{self, MODELS};
use crate::models::{Arch, Draws, Model, ModelDef, ScoreModel};
use crate::parallel::map_row_blocks;
use crate::rng::Rng;

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Model kind.
    pub kind: ModelKind,
    /// Noise level (the imaginary noise for sigma-VAEs; the nominal evaluation level for other VAEs).
    pub sigma: f64,
    /// Number of measurements (MDAE).
    pub measurements: usize,
    /// Architecture.
    pub arch: Arch,
    /// Passes over the training split.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed for initialisation, batches and noise.
    pub seed: u64,
}

impl TrainConfig {
    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(Error::Param(format!(
                "sigma must be positive, got {}",
                self.sigma
            )));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Param(format!(
                "lr must be positive, got {}",
                self.lr
            )));
        }
        if self.batch == 0 || self.epochs == 0 {
            return Err(Error::Param("batch and epochs must be at least 1".into()));
        }
        let def = kinds::def_or_err(self.kind)?;
        if self.measurements == 0 || (self.measurements > 1 && !def.multi_measurement()) {
            let multi: Vec<&str> = MODELS
                .iter()
                .filter(|d| d.multi_measurement())
                .map(|d| d.kind().as_str())
                .collect();
            return Err(Error::Param(format!(
                "measurements = {} is only valid for {} (M >= 1)",
                self.measurements,
                multi.join(", ")
            )));
        }
        Ok(())
    }
}

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch index (1-based).
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Loss on the test split (fixed noise seed).
    pub test_loss: f64,
    /// Test accuracy (classifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Seconds since the start.
    pub seconds: f64,
}

/// The run as recorded in the checkpoint's `train` metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    /// Dataset name.
    pub dataset: String,
    /// Training images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// The configuration.
    pub config: TrainConfig,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Per-epoch losses.
    pub history: Vec<EpochRecord>,
    /// Total wall time, seconds.
    pub wall_seconds: f64,
    /// Parameter count.
    pub parameters: usize,
    /// Whether training was interrupted (a resumable checkpoint).
    pub interrupted: bool,
    /// The epoch whose parameters were saved: the one with the lowest test loss (a completed run keeps its best
    /// epoch, so a late loss spike cannot spoil it; an interrupted run keeps its latest parameters to resume from).
    #[serde(default)]
    pub best_epoch: Option<usize>,
}

/// Progress reported after every batch.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Current epoch (1-based).
    pub epoch: usize,
    /// Batches done in this epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Loss of the last batch.
    pub loss: f64,
    /// Samples per second so far.
    pub samples_per_sec: f64,
    /// Epoch just finished, if this report closes one.
    pub epoch_done: Option<EpochRecord>,
}

/// The metadata a trained model of `cfg` carries.
pub fn metadata_for(cfg: &TrainConfig, data: &Dataset) -> Result<Metadata> {
    Ok(Metadata {
        kind: cfg.kind,
        version: VERSION,
        sigma: cfg.sigma,
        measurements: cfg.measurements,
        data: data.spec.clone(),
        arch: serde_json::to_value(&cfg.arch)
            .map_err(|e| Error::Param(format!("cannot encode the architecture: {e}")))?,
        train: None,
        extra: BTreeMap::new(),
    })
}

/// Deterministic initialisation from the project's RNG (candle's CPU RNG cannot be seeded): weights uniform in
/// `+-1/sqrt(fan_in)`, biases zero, scales of normalisations (1-D weights) one, GRBM prior at `mu = 0, s = 1`,
/// small `W`.
fn init_vars(varmap: &VarMap, rng: &mut Rng) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Param("parameter store lock poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let dims = shape.dims().to_vec();
        let n = shape.elem_count();
        let values: Vec<f32> =
            if (name.ends_with(".weight") && dims.len() == 1) || name.ends_with(".running_var") {
                // Scales of normalisations and per-channel products start as the identity.
                vec![1.0; n]
            } else if name.ends_with(".weight") || name.ends_with("prior.w") {
                let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
                let bound = if name.ends_with("prior.w") {
                    0.01
                } else {
                    1.0 / (fan_in as f64).sqrt()
                };
                (0..n)
                    .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
                    .collect()
            } else {
                vec![0.0; n]
            };
        var.set(&Tensor::from_vec(values, dims.as_slice(), var.device())?)?;
    }
    Ok(())
}

/// Builds a model whose parameters are trainable `Var`s, initialised from `seed` (or copied from `resume`).
pub fn trainable_model(
    meta: Metadata,
    device: &Device,
    seed: u64,
    resume: Option<&Checkpoint>,
) -> Result<(Model, VarMap)> {
    trainable_model_as(kinds::def_or_err(meta.kind)?, meta, device, seed, resume)
}

/// [`trainable_model`] for the kind `def`, registered or not (`meta.kind` must be its kind).
pub fn trainable_model_as(
    def: &'static dyn ModelDef,
    meta: Metadata,
    device: &Device,
    seed: u64,
    resume: Option<&Checkpoint>,
) -> Result<(Model, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = Model::build_as(def, meta, &vb, device)?;
    let mut rng = Rng::new(seed ^ 0x1A17);
    init_vars(&varmap, &mut rng)?;
    if let Some(ck) = resume {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Param("parameter store lock poisoned".into()))?;
        for (name, var) in data.iter() {
            let t = ck.tensor(name)?;
            if t.shape != var.dims() {
                return Err(Error::Architecture(format!(
                    "resume: tensor '{name}' has shape {:?}, expected {:?}",
                    t.shape,
                    var.dims()
                )));
            }
            var.set(&Tensor::from_slice(&t.data, t.shape.as_slice(), device)?)?;
        }
    }
    Ok((model, varmap))
}

/// The training objective of `model` on clean images `x: [B, d]` (with labels for a classifier), averaged over
/// the batch. Noise and latent samples come from `rng`. Computed on row blocks in parallel (crate::parallel) and
/// summed; differentiable in the weights.
pub fn batch_loss(
    model: &Model,
    x: &Tensor,
    labels: Option<&Tensor>,
    rng: &mut Rng,
) -> Result<Tensor> {
    let draws = model.net().draws(x, rng)?;
    let b = x.dim(0)?;
    let parts = map_row_blocks(b, x.device(), |start, len| {
        block_loss(model, x, labels, &draws, b, start, len)
    })?;
    let mut parts = parts.into_iter();
    let first = parts
        .next()
        .ok_or_else(|| Error::Data("empty batch".into()))?;
    parts.try_fold(first, |acc, p| Ok((acc + p)?))
}

/// The loss of `model` on `x` with one backward pass per row block, run in parallel; returns the loss and the
/// summed gradients of `vars` (the gradient of the batch mean, as `batch_loss(..).backward()` would give, up to
/// float rounding).
pub fn batch_loss_and_grads(
    model: &Model,
    x: &Tensor,
    labels: Option<&Tensor>,
    rng: &mut Rng,
    vars: &[Var],
) -> Result<(f64, GradStore)> {
    let (loss, blocks) = batch_loss_and_block_grads(model, x, labels, rng)?;
    Ok((loss, adam::sum_block_grads(blocks, vars)?))
}

/// [`batch_loss_and_grads`] with the gradients left per row block (in row order), for
/// [`adam::Adam::step_blocks`], which sums them inside its update. This is how training uses more than one core.
pub fn batch_loss_and_block_grads(
    model: &Model,
    x: &Tensor,
    labels: Option<&Tensor>,
    rng: &mut Rng,
) -> Result<(f64, Vec<GradStore>)> {
    let draws = model.net().draws(x, rng)?;
    let b = x.dim(0)?;
    let parts = map_row_blocks(b, x.device(), |start, len| -> Result<_> {
        let loss = block_loss(model, x, labels, &draws, b, start, len)?;
        let grads = loss.backward()?;
        Ok((loss.to_scalar::<f32>()? as f64, grads))
    })?;
    let total = parts.iter().map(|p| p.0).sum();
    Ok((total, parts.into_iter().map(|p| p.1).collect()))
}

/// Rows `start..start + len` of the batch's loss, weighted by `len / b` so that the blocks sum to the batch mean.
fn block_loss(
    model: &Model,
    x: &Tensor,
    labels: Option<&Tensor>,
    draws: &Draws,
    b: usize,
    start: usize,
    len: usize,
) -> Result<Tensor> {
    let x = x.narrow(0, start, len)?;
    let labels = labels.map(|l| l.narrow(0, start, len)).transpose()?;
    let loss = loss_with(model, &x, labels.as_ref(), &draws.rows(start, len)?)?;
    if len == b {
        return Ok(loss);
    }
    Ok((loss * (len as f64 / b as f64))?)
}

/// The training objective on `x: [B, d]` with its random draws given, averaged over the batch (the kind's
/// [`KindModel::loss`](crate::models::KindModel::loss)).
fn loss_with(model: &Model, x: &Tensor, labels: Option<&Tensor>, draws: &Draws) -> Result<Tensor> {
    model.net().loss(x, labels, draws)
}

/// Test loss (the training objective on the test split, fixed seed) and accuracy for a classifier.
pub fn test_loss(model: &Model, test: &Dataset, seed: u64) -> Result<(f64, Option<f64>)> {
    let device = model.device();
    let mut rng = Rng::new(seed);
    let n = test.len();
    let bs = 250;
    let mut total = 0.0;
    let mut correct = 0usize;
    for start in (0..n).step_by(bs) {
        let idx: Vec<usize> = (start..(start + bs).min(n)).collect();
        let x = test.batch(&idx, device)?;
        let labels = label_tensor(test, &idx, device)?;
        let loss = batch_loss(model, &x, labels.as_ref(), &mut rng)?.to_scalar::<f32>()? as f64;
        total += loss * idx.len() as f64;
        if let (Some(c), Some(l)) = (model.classifier(), &test.labels) {
            let pred = c.predict(&x)?;
            correct += pred
                .iter()
                .zip(&idx)
                .filter(|(p, i)| l.get(**i).map(|&v| v as u32) == Some(**p))
                .count();
        }
    }
    let acc = model
        .classifier()
        .is_some()
        .then(|| correct as f64 / n.max(1) as f64);
    Ok((total / n.max(1) as f64, acc))
}

fn label_tensor(data: &Dataset, idx: &[usize], device: &Device) -> Result<Option<Tensor>> {
    Ok(match &data.labels {
        Some(l) => {
            let v: Vec<u32> = idx
                .iter()
                .map(|&i| l.get(i).copied().unwrap_or(0) as u32)
                .collect();
            Some(Tensor::from_vec(v, idx.len(), device)?)
        }
        None => None,
    })
}

/// Copies the trainable parameters into a checkpoint with `meta` and the training record.
pub fn to_checkpoint(
    varmap: &VarMap,
    mut meta: Metadata,
    record: &TrainRecord,
) -> Result<Checkpoint> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Param("parameter store lock poisoned".into()))?;
    let mut tensors = BTreeMap::new();
    for (name, var) in data.iter() {
        let t: &Tensor = var.as_tensor();
        let shape = t.dims().to_vec();
        let values = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Param(format!(
                "training diverged: parameter '{name}' is not finite (lower the learning rate)"
            )));
        }
        tensors.insert(
            name.clone(),
            TensorData {
                shape,
                data: values,
            },
        );
    }
    meta.train = Some(
        serde_json::to_value(record)
            .map_err(|e| Error::Param(format!("cannot encode the training record: {e}")))?,
    );
    let _ = FORMAT;
    Ok(Checkpoint { meta, tensors })
}

/// Test loss, epoch and a copy of every parameter at the best epoch so far.
type BestEpoch = (f64, usize, Vec<(Var, Tensor)>);

/// Trains `cfg` on `train`, evaluating on `test` after every epoch. `stop` ends training after the current batch
/// (the result is then marked interrupted and can be resumed). Returns the checkpoint and its record.
pub fn train(
    cfg: &TrainConfig,
    train: &Dataset,
    test: &Dataset,
    device: &Device,
    resume: Option<&Checkpoint>,
    stop: Arc<AtomicBool>,
    mut progress: impl FnMut(&Progress),
) -> Result<(Checkpoint, TrainRecord)> {
    cfg.validate()?;
    if train.is_empty() || test.is_empty() {
        return Err(Error::Data(
            "training needs non-empty train and test splits".into(),
        ));
    }
    if kinds::def_or_err(cfg.kind)?.needs_labels()
        && (train.labels.is_none() || test.labels.is_none())
    {
        return Err(Error::Data("a classifier needs labels (--labels)".into()));
    }
    let meta = metadata_for(cfg, train)?;
    let (model, varmap) = trainable_model(meta.clone(), device, cfg.seed, resume)?;
    let vars: Vec<Var> = varmap.all_vars();
    let parameters = vars.iter().map(|v| v.elem_count()).sum();
    let mut opt = adam::Adam::new(vars, cfg.lr)?;
    let mut history: Vec<EpochRecord> = Vec::new();
    let mut epochs_before = 0;
    if let Some(ck) = resume
        && let Some(rec) = ck
            .meta
            .train
            .as_ref()
            .and_then(|v| serde_json::from_value::<TrainRecord>(v.clone()).ok())
    {
        epochs_before = rec.epochs_done;
        history = rec.history;
    }
    let mut rng = Rng::new(cfg.seed);
    // Skip the streams of epochs already done so that a resumed run sees new batches.
    for _ in 0..epochs_before {
        let _ = rng.permutation(train.len());
    }
    let t0 = Instant::now();
    let n = train.len();
    let batches = n.div_ceil(cfg.batch);
    let mut interrupted = false;
    let mut samples = 0usize;
    let mut epoch = epochs_before;
    let mut best: Option<BestEpoch> = None;
    while epoch < cfg.epochs {
        epoch += 1;
        let perm = rng.permutation(n);
        let mut sum = 0.0;
        let mut count = 0usize;
        for (bi, chunk) in perm.chunks(cfg.batch).enumerate() {
            let x = train.batch(chunk, device)?;
            let labels = label_tensor(train, chunk, device)?;
            let (l, grads) = batch_loss_and_block_grads(&model, &x, labels.as_ref(), &mut rng)?;
            opt.step_blocks(&grads)?;
            if !l.is_finite() {
                return Err(Error::Param(format!(
                    "training diverged at epoch {epoch}, batch {bi}: loss is {l} (lower the learning rate)"
                )));
            }
            sum += l * chunk.len() as f64;
            count += chunk.len();
            samples += chunk.len();
            progress(&Progress {
                epoch,
                batch: bi + 1,
                batches,
                loss: l,
                samples_per_sec: samples as f64 / t0.elapsed().as_secs_f64().max(1e-9),
                epoch_done: None,
            });
            if stop.load(Ordering::SeqCst) {
                interrupted = true;
                break;
            }
        }
        if interrupted {
            epoch -= 1;
            break;
        }
        let (tl, acc) = test_loss(&model, test, cfg.seed ^ 0x7E57)?;
        let rec = EpochRecord {
            epoch,
            train_loss: sum / count.max(1) as f64,
            test_loss: tl,
            test_accuracy: acc,
            seconds: t0.elapsed().as_secs_f64(),
        };
        if best.as_ref().is_none_or(|(b, _, _)| tl < *b) && tl.is_finite() {
            let snapshot = varmap
                .all_vars()
                .into_iter()
                .map(|v| {
                    let t = v.as_tensor().copy()?;
                    Ok((v, t))
                })
                .collect::<Result<Vec<_>>>()?;
            best = Some((tl, epoch, snapshot));
        }
        history.push(rec.clone());
        progress(&Progress {
            epoch,
            batch: batches,
            batches,
            loss: rec.train_loss,
            samples_per_sec: samples as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            epoch_done: Some(rec),
        });
    }
    let mut best_epoch = None;
    if !interrupted && let Some((_, e, snapshot)) = best {
        for (var, t) in snapshot {
            var.set(&t)?;
        }
        best_epoch = Some(e);
    }
    let record = TrainRecord {
        dataset: train.spec.name.clone(),
        train_images: train.len(),
        test_images: test.len(),
        config: cfg.clone(),
        epochs_done: epoch,
        history,
        wall_seconds: t0.elapsed().as_secs_f64(),
        parameters,
        interrupted,
        best_epoch,
    };
    let _ = model.dim();
    let ck = to_checkpoint(&varmap, meta, &record)?;
    Ok((ck, record))
}

/// The default architecture of a registered kind ([`ModelDef::default_arch`]): small enough to train on two CPU cores
/// in minutes and to sample live.
pub fn default_arch(kind: ModelKind) -> Result<Arch> {
    Ok(kinds::def_or_err(kind)?.default_arch())
}
