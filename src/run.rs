//! Headless runs shared by the CLI and the app: walk-jump, NEBULA, denoising and evaluation, each fully described
//! by serde parameters and a seed so that the same inputs give the same outputs, byte for byte.

use std::collections::BTreeSet;
use std::io::Write;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::noise::Noise;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::models::{Classifier, Metadata, Model, ModelKind, ScoreModel};
use crate::rng::Rng;
use crate::sampling::chain::{Chain, ChainConfig, ChainInit, check_jump_model};
use crate::sampling::condition::Condition;
use crate::sampling::diagnostics::{ess_bulk, split_rhat};
use crate::sampling::langevin::Sampler;

/// The metadata key of a checkpoint's recommended walk.
pub const RECOMMENDATION_KEY: &str = "sampler";

/// A recommended walk as a checkpoint stores it under [`RECOMMENDATION_KEY`]: `{"sampler": {...}, "every": k}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The sampler with its parameters.
    pub sampler: Sampler,
    /// Walk steps between jumps, at least 1.
    pub every: usize,
}

impl Recommendation {
    /// Parses and validates the JSON a checkpoint stores (or `walkjump train --sampler` takes).
    pub fn parse(text: &str) -> Result<Self> {
        let rec: Recommendation = serde_json::from_str(text).map_err(|e| {
            Error::Param(format!(
                "a recommended walk is {{\"sampler\": {{\"kind\": ..., \"delta\": ...}}, \"every\": K}}: {e}"
            ))
        })?;
        rec.validate()?;
        Ok(rec)
    }

    /// Checks the sampler's parameters and that `every` is at least 1.
    pub fn validate(&self) -> Result<()> {
        self.sampler.validate()?;
        if self.every == 0 {
            return Err(Error::Param(
                "a recommended walk must jump every 1 or more steps, got every = 0".into(),
            ));
        }
        Ok(())
    }

    /// The JSON written into the checkpoint's metadata.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Param(format!("recommended walk: {e}")))
    }

    /// Stores this recommendation in `meta` (replacing any earlier one); validates first.
    pub fn store(&self, meta: &mut Metadata) -> Result<()> {
        self.validate()?;
        meta.extra
            .insert(RECOMMENDATION_KEY.to_string(), self.to_json()?);
        Ok(())
    }

    /// The recommendation a checkpoint stores, if it has a valid one.
    pub fn stored(meta: &Metadata) -> Option<Self> {
        meta.extra
            .get(RECOMMENDATION_KEY)
            .and_then(|s| Self::parse(s).ok())
    }
}

/// The sampler and jump interval a model recommends: the checkpoint's `sampler` metadata if present
/// (`{"sampler": {...}, "every": k}`), otherwise derived from sigma and M following REFERENCE.md §6.
pub fn recommended_sampler(meta: &Metadata) -> (Sampler, usize) {
    if let Some(rec) = Recommendation::stored(meta) {
        return (rec.sampler, rec.every);
    }
    let sigma = meta.sigma;
    if meta.measurements > 1 {
        // MEMs, MNIST 1 (x) 16: Algorithm 2, delta = sigma / 2, gamma = 1/2, u = 1, 10 steps per jump.
        (Sampler::cheng(sigma / 2.0, 0.5, 1.0), 10)
    } else {
        // UVB at sigma = 1: overdamped, paper delta 0.2 (project delta = sqrt(2) * paper delta), scaled with sigma.
        (
            Sampler::overdamped(std::f64::consts::SQRT_2 * 0.2 * sigma),
            10,
        )
    }
}

/// A complete walk-jump run: with the checkpoint's sha256, enough to replay it exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WalkJumpSpec {
    /// Sampler, jump interval, chains, init, seed.
    pub chain: ChainConfig,
    /// Number of walk steps.
    pub steps: usize,
    /// At most this many jumps are kept per chain for pictures (evenly thinned).
    pub frames: usize,
}

/// The JSON file that `walkjump sample --replay` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Program that wrote it.
    pub program: String,
    /// sha256 of the checkpoint file.
    pub checkpoint_sha256: String,
    /// The checkpoint's kind.
    pub kind: String,
    /// The run.
    pub spec: WalkJumpSpec,
    /// The model the chains jumped with, when not the walking one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_with: Option<ModelRef>,
    /// What conditioned the chains, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionRecord>,
}

/// A second model named in a run file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Where it was loaded from.
    pub path: String,
    /// sha256 of the file.
    pub sha256: String,
    /// Its kind.
    pub kind: String,
    /// Its noise level.
    pub sigma: f64,
}

/// The condition of a run, as given on the command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConditionRecord {
    /// The images (one per chain, in order).
    pub images: String,
    /// The held region (`None`: the chains only started from the images).
    pub mask: Option<String>,
}

impl RunRecord {
    /// Parses a run record, with a one-line error.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| {
            Error::Param(format!(
                "not a walkjump run file: {}",
                crate::error::one_line(&e.to_string())
            ))
        })
    }
}

/// Keeps at most `cap` evenly spaced items of a stream by doubling its stride when full.
#[derive(Clone, Debug)]
pub struct Thinned<T> {
    /// Kept items.
    pub items: Vec<T>,
    /// Index in the stream of each kept item.
    pub index: Vec<usize>,
    stride: usize,
    seen: usize,
    cap: usize,
}

impl<T> Thinned<T> {
    /// Keeps at most `cap` (>= 2) items.
    pub fn new(cap: usize) -> Self {
        Self {
            items: Vec::new(),
            index: Vec::new(),
            stride: 1,
            seen: 0,
            cap: cap.max(2),
        }
    }

    /// Whether the next item will be kept (so the caller can skip computing it).
    pub fn wants_next(&self) -> bool {
        self.seen.is_multiple_of(self.stride)
    }

    /// Offers the next item of the stream.
    pub fn push(&mut self, item: T) {
        if self.wants_next() {
            self.items.push(item);
            self.index.push(self.seen);
            if self.items.len() > self.cap {
                let mut k = 0;
                self.items.retain(|_| {
                    k += 1;
                    (k - 1) % 2 == 0
                });
                let mut k = 0;
                self.index.retain(|_| {
                    k += 1;
                    (k - 1) % 2 == 0
                });
                self.stride *= 2;
            }
        }
        self.seen += 1;
    }

    /// Advances the stream without an item (when `wants_next` was false).
    pub fn skip(&mut self) {
        self.seen += 1;
    }
}

/// Mixing diagnostics of one scalar summary across chains.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Mixing {
    /// Rank-normalised split R-hat (NaN if undefined, e.g. one chain or a constant summary).
    pub rhat: f64,
    /// Bulk effective sample size.
    pub ess: f64,
    /// Draws per chain used.
    pub draws: usize,
}

/// R-hat and ESS of draws `[chains][draws]`; `None` when there are too few draws.
pub fn mixing(draws: &[Vec<f64>]) -> Option<Mixing> {
    let n = draws.first()?.len();
    if n < 4 || draws.iter().any(|c| c.iter().any(|v| !v.is_finite())) {
        return None;
    }
    Some(Mixing {
        rhat: split_rhat(draws).ok()?,
        ess: ess_bulk(draws).ok()?,
        draws: n,
    })
}

/// Everything a walk-jump run produced.
#[derive(Clone, Debug, Default)]
pub struct WalkJumpOutput {
    /// Kept jumps: `[frame][chain][d]`.
    pub frames: Vec<Vec<Vec<f32>>>,
    /// Step index of each kept frame.
    pub frame_steps: Vec<u64>,
    /// Class of each chain's jumps `[jump][chain]` (with a classifier), thinned like the energy and score draws
    /// (at most 4096 jumps, evenly spaced) so that a long run's memory stays bounded.
    pub classes: Option<Vec<Vec<u32>>>,
    /// Per chain, the sorted classes of all of its jumps (with a classifier; not thinned).
    pub visited: Option<Vec<Vec<u32>>>,
    /// Per chain: the reason it was stopped, if it diverged.
    pub stopped: Vec<Option<String>>,
    /// Energy at each jump step, per chain `[chain][draw]` (thinned), if the model has one.
    pub energy_draws: Option<Vec<Vec<f64>>>,
    /// `||score||` at each jump step, per chain `[chain][draw]` (thinned).
    pub score_draws: Vec<Vec<f64>>,
    /// Pixel min and max over all jumps.
    pub jump_range: (f32, f32),
    /// Mean kinetic temperature over the last half of the steps (underdamped samplers).
    pub kinetic_mean: Option<f64>,
    /// Steps run.
    pub steps: usize,
    /// Every jump `[chain][jump][d]`, when the run was asked to keep them.
    pub all_jumps: Option<Vec<Vec<Vec<f32>>>>,
    /// The step of each kept jump.
    pub all_jump_steps: Vec<u64>,
}

impl WalkJumpOutput {
    /// Per chain, the set of classes its jumps visited.
    pub fn classes_visited(&self) -> Option<Vec<Vec<u32>>> {
        if let Some(v) = &self.visited {
            return Some(v.clone());
        }
        let classes = self.classes.as_ref()?;
        let n = classes.first().map(|c| c.len()).unwrap_or(0);
        Some(
            (0..n)
                .map(|i| {
                    let mut v: Vec<u32> = classes.iter().map(|row| row[i]).collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                })
                .collect(),
        )
    }

    /// R-hat / ESS of the class indicators: the worst (max R-hat, min ESS) over classes that occur.
    pub fn class_mixing(&self) -> Option<Mixing> {
        let classes = self.classes.as_ref()?;
        let n = classes.first()?.len();
        let mut all: Vec<u32> = classes.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        let mut worst: Option<Mixing> = None;
        for c in all {
            let draws: Vec<Vec<f64>> = (0..n)
                .map(|i| {
                    classes
                        .iter()
                        .map(|row| if row[i] == c { 1.0 } else { 0.0 })
                        .collect()
                })
                .collect();
            if let Some(m) = mixing(&draws) {
                worst = Some(match worst {
                    None => m,
                    Some(w) => Mixing {
                        rhat: if m.rhat.is_nan() || w.rhat >= m.rhat {
                            w.rhat
                        } else {
                            m.rhat
                        },
                        ess: w.ess.min(m.ess),
                        draws: m.draws,
                    },
                });
            }
        }
        worst
    }
}

/// Per-chain pixel minima, maxima and classes of one jump.
type JumpRows = (Vec<f32>, Vec<f32>, Option<Vec<u32>>);

fn fmt_opt(v: Option<f32>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Runs walk-jump chains: `spec.steps` walk steps, a jump every `spec.chain.every` steps.
/// Writes one CSV row per chain per step to `trace` if given.
pub fn walk_jump(
    model: &dyn ScoreModel,
    spec: &WalkJumpSpec,
    data: Option<&Dataset>,
    classifier: Option<&Classifier>,
    trace: Option<&mut dyn Write>,
    device: &Device,
) -> Result<WalkJumpOutput> {
    walk_jump_trace_every(model, spec, data, classifier, trace, 1, device)
}

/// [`walk_jump`] writing trace rows only for the steps that are multiples of `trace_every` (steps count from 1, so
/// `trace_every = 1` is every step). Same CSV columns; a step's jump columns are filled when it is also a jump step.
/// Keeps the trace of a long run small (a soak of 10^6 steps) without changing the run itself.
pub fn walk_jump_trace_every(
    model: &dyn ScoreModel,
    spec: &WalkJumpSpec,
    data: Option<&Dataset>,
    classifier: Option<&Classifier>,
    trace: Option<&mut dyn Write>,
    trace_every: usize,
    device: &Device,
) -> Result<WalkJumpOutput> {
    let opts = RunOptions::default();
    walk_jump_with(
        model,
        spec,
        data,
        classifier,
        trace,
        trace_every,
        device,
        &opts,
    )
}

/// What a walk-jump run may add to the plain chains of its spec.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Hold part of every image fixed, or start the chains from chosen images (REFERENCE.md §11).
    pub condition: Option<Condition>,
    /// Jump with this model instead of the walking one (same image size, M and sigma).
    pub jump_with: Option<&'a dyn ScoreModel>,
    /// Keep every jump (for `--jumps` and the quality report), not only the thinned frames of the strip.
    pub keep_jumps: bool,
}

/// [`walk_jump_trace_every`] with a condition and / or a second model for the jumps. Without either it is exactly
/// the plain run (same draws, same output).
#[allow(clippy::too_many_arguments)]
pub fn walk_jump_with(
    model: &dyn ScoreModel,
    spec: &WalkJumpSpec,
    data: Option<&Dataset>,
    classifier: Option<&Classifier>,
    mut trace: Option<&mut dyn Write>,
    trace_every: usize,
    device: &Device,
    opts: &RunOptions<'_>,
) -> Result<WalkJumpOutput> {
    if trace_every == 0 {
        return Err(Error::Param(
            "trace rows every 0 steps: the interval must be at least 1".into(),
        ));
    }
    if !model.has_score() {
        return Err(Error::Unsupported(
            "this model has no score of y, so it cannot walk; use an energy or score model".into(),
        ));
    }
    let cfg = &spec.chain;
    let jumper: &dyn ScoreModel = match opts.jump_with {
        Some(j) => {
            check_jump_model(model, j)?;
            j
        }
        None => model,
    };
    let mut chain = match &opts.condition {
        Some(c) => Chain::conditioned(model, cfg, data, device, c)?,
        None => Chain::new(model, cfg, data, device)?,
    };
    let n = cfg.chains;
    let io = |e: std::io::Error| Error::Io {
        path: "trace".into(),
        err: e,
    };
    if let Some(t) = trace.as_mut() {
        writeln!(
            t,
            "step,chain,energy,score_norm,kinetic,jump_min,jump_max,class"
        )
        .map_err(io)?;
    }
    let mut frames: Thinned<(u64, Vec<Vec<f32>>)> = Thinned::new(spec.frames.max(2));
    let draw_cap = 4096;
    // Class draws are thinned like the energy draws: one row per jump for 10^6 steps grew without bound (about
    // 60 bytes per jump, 6 MB per 10^6 steps). The classes each chain visited are kept exactly, in sets.
    let mut classes: Thinned<Vec<u32>> = Thinned::new(draw_cap);
    let mut visited: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
    let mut energy_draws: Thinned<Vec<f64>> = Thinned::new(draw_cap);
    let mut score_draws: Thinned<Vec<f64>> = Thinned::new(draw_cap);
    let mut jump_range = (f32::INFINITY, f32::NEG_INFINITY);
    let mut kinetic_sum = 0.0;
    let mut kinetic_count = 0usize;
    let mut has_energy = false;
    let mut all_jumps: Option<Vec<Vec<Vec<f32>>>> = opts.keep_jumps.then(|| vec![Vec::new(); n]);
    let mut all_jump_steps = Vec::new();
    for s in 0..spec.steps {
        let stats = chain.step(model, &cfg.sampler)?;
        if let Some(k) = &stats.kinetic
            && s >= spec.steps / 2
        {
            kinetic_sum += k.iter().map(|&x| x as f64).sum::<f64>() / k.len().max(1) as f64;
            kinetic_count += 1;
        }
        let is_jump = stats.step % cfg.every as u64 == 0;
        let mut jump_rows: Option<JumpRows> = None;
        if is_jump {
            let x = chain.jump(jumper)?;
            let cls = match classifier {
                Some(c) => Some(c.predict(&x)?),
                None => None,
            };
            let rows = x.to_vec2::<f32>()?;
            if let Some(all) = all_jumps.as_mut() {
                for (chain, r) in all.iter_mut().zip(&rows) {
                    chain.push(r.clone());
                }
                all_jump_steps.push(stats.step);
            }
            let mins: Vec<f32> = rows
                .iter()
                .map(|r| r.iter().copied().fold(f32::INFINITY, f32::min))
                .collect();
            let maxs: Vec<f32> = rows
                .iter()
                .map(|r| r.iter().copied().fold(f32::NEG_INFINITY, f32::max))
                .collect();
            for (i, (&lo, &hi)) in mins.iter().zip(&maxs).enumerate() {
                if chain.stopped[i].is_none() {
                    jump_range.0 = jump_range.0.min(lo);
                    jump_range.1 = jump_range.1.max(hi);
                }
            }
            if frames.wants_next() {
                frames.push((stats.step, rows));
            } else {
                frames.skip();
            }
            if let Some(c) = &cls {
                for (set, &k) in visited.iter_mut().zip(c) {
                    set.insert(k);
                }
                if classes.wants_next() {
                    classes.push(c.clone());
                } else {
                    classes.skip();
                }
            }
            if let Some(e) = &stats.energy {
                has_energy = true;
                energy_draws.push(e.iter().map(|&v| v as f64).collect());
            }
            score_draws.push(stats.score_norm.iter().map(|&v| v as f64).collect());
            jump_rows = Some((mins, maxs, cls));
        }
        if let Some(t) = trace
            .as_mut()
            .filter(|_| stats.step % trace_every as u64 == 0)
        {
            for i in 0..n {
                let e = stats.energy.as_ref().map(|e| e[i]);
                let k = stats.kinetic.as_ref().map(|k| k[i]);
                let (lo, hi, c) = match &jump_rows {
                    Some((lo, hi, c)) => (
                        Some(lo[i]),
                        Some(hi[i]),
                        c.as_ref().map(|c| c[i].to_string()).unwrap_or_default(),
                    ),
                    None => (None, None, String::new()),
                };
                writeln!(
                    t,
                    "{},{i},{},{},{},{},{},{c}",
                    stats.step,
                    fmt_opt(e),
                    stats.score_norm[i],
                    fmt_opt(k),
                    fmt_opt(lo),
                    fmt_opt(hi)
                )
                .map_err(io)?;
            }
        }
    }
    let transpose = |rows: &[Vec<f64>]| -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| rows.iter().map(|r| r[i]).collect())
            .collect()
    };
    Ok(WalkJumpOutput {
        frame_steps: frames.items.iter().map(|(s, _)| *s).collect(),
        frames: frames.items.into_iter().map(|(_, f)| f).collect(),
        classes: classifier.map(|_| classes.items),
        visited: classifier.map(|_| {
            visited
                .into_iter()
                .map(|s| s.into_iter().collect())
                .collect()
        }),
        stopped: chain.stopped.clone(),
        energy_draws: has_energy.then(|| transpose(&energy_draws.items)),
        score_draws: transpose(&score_draws.items),
        jump_range,
        kinetic_mean: (kinetic_count > 0).then(|| kinetic_sum / kinetic_count as f64),
        steps: spec.steps,
        all_jumps,
        all_jump_steps,
    })
}

/// How a model denoised a set of images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DenoiseColumn {
    /// Model label (file name or kind).
    pub label: String,
    /// The model's kind (`deen`, `uvb`, ...).
    pub kind: String,
    /// The noise level the model was trained for.
    pub sigma: f64,
    /// Outputs `[count][d]`.
    pub outputs: Vec<Vec<f32>>,
    /// Per image: mean squared error per pixel.
    pub mse: Vec<f64>,
    /// Per image: min and max pixel value of the output.
    pub range: Vec<(f32, f32)>,
}

impl DenoiseColumn {
    /// Whether `noise` differs from what the model was trained for: another kind of noise, or Gaussian noise of
    /// another level (beyond 1%).
    pub fn mismatched(&self, noise: &Noise) -> bool {
        match noise {
            Noise::Gaussian { sigma } => (sigma - self.sigma).abs() > 0.01 * self.sigma.max(1e-12),
            _ => true,
        }
    }

    /// Mean over images of the per-pixel MSE.
    pub fn mean_mse(&self) -> f64 {
        self.mse.iter().sum::<f64>() / self.mse.len().max(1) as f64
    }
}

/// Clean images and noisy versions of them, fixed by a seed.
#[derive(Clone, Debug)]
pub struct NoisyBatch {
    /// Indices into the dataset.
    pub indices: Vec<usize>,
    /// `[count][d]`
    pub clean: Vec<Vec<f32>>,
    /// `[count][M_max * d]`: M_max independent noisy copies of each image.
    pub noisy: Vec<Vec<f32>>,
}

/// Draws `count` images of `data` at random (seeded) and corrupts each `copies` times with `noise`.
pub fn noisy_batch(
    data: &Dataset,
    count: usize,
    noise: &Noise,
    copies: usize,
    seed: u64,
) -> Result<NoisyBatch> {
    if data.is_empty() {
        return Err(Error::Data("no images to denoise".into()));
    }
    let mut rng = Rng::new(seed);
    let mut idx = rng.permutation(data.len());
    idx.truncate(count.min(data.len()));
    let mut clean = Vec::new();
    let mut noisy = Vec::new();
    for &i in &idx {
        let x = data
            .image(i)
            .ok_or_else(|| Error::Data(format!("image {i} out of range")))?;
        clean.push(x.to_vec());
        let mut y = Vec::with_capacity(x.len() * copies);
        for _ in 0..copies.max(1) {
            y.extend(noise.apply(x, &mut rng));
        }
        noisy.push(y);
    }
    Ok(NoisyBatch {
        indices: idx,
        clean,
        noisy,
    })
}

/// Denoises a batch with one model (using as many noisy copies as it has measurements).
pub fn denoise_with(
    model: &Model,
    label: &str,
    batch: &NoisyBatch,
    seed: u64,
) -> Result<DenoiseColumn> {
    let d = model.data_dim();
    let m = model.measurements();
    let count = batch.clean.len();
    let mut y = Vec::with_capacity(count * m * d);
    for row in &batch.noisy {
        let part = row.get(..m * d).ok_or_else(|| {
            Error::Data(format!("the batch has too few noisy copies for M = {m}"))
        })?;
        y.extend_from_slice(part);
    }
    let y = Tensor::from_vec(y, (count, m * d), model.device())?;
    let mut rng = Rng::new(seed);
    let out = model.denoise(&y, &mut rng)?.to_vec2::<f32>()?;
    let mse = out
        .iter()
        .zip(&batch.clean)
        .map(|(o, c)| {
            o.iter()
                .zip(c)
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / d as f64
        })
        .collect();
    let range = out
        .iter()
        .map(|o| {
            (
                o.iter().copied().fold(f32::INFINITY, f32::min),
                o.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            )
        })
        .collect();
    Ok(DenoiseColumn {
        label: label.to_string(),
        kind: model.kind().as_str().to_string(),
        sigma: model.sigma(),
        outputs: out,
        mse,
        range,
    })
}

/// What `eval` measures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum EvalResult {
    /// REFERENCE.md §2 loss: `E ||x - x_hat(x + sigma eps)||^2`, summed over pixels, averaged over images
    /// (for an MDAE, averaged over the M per-channel estimates as in §5).
    Loss {
        /// The loss.
        loss: f64,
        /// Its standard error over images.
        stderr: f64,
        /// Noise level used.
        sigma: f64,
        /// Images used.
        count: usize,
    },
    /// Fraction of correctly classified images.
    Accuracy {
        /// The accuracy.
        accuracy: f64,
        /// Images used.
        count: usize,
    },
}

/// Evaluates a model on a dataset split, in batches of 250.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    sigma: Option<f64>,
    seed: u64,
) -> Result<EvalResult> {
    data.check_fits(&model.meta.data)?;
    let device = model.device();
    let n = data.len();
    let batch = 250;
    if let Some(c) = model.classifier() {
        let labels = data
            .labels
            .as_ref()
            .ok_or_else(|| Error::Data("a classifier needs labels (--labels)".into()))?;
        let mut correct = 0usize;
        for start in (0..n).step_by(batch) {
            let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
            let x = data.batch(&idx, device)?;
            let pred = c.predict(&x)?;
            correct += pred
                .iter()
                .zip(&idx)
                .filter(|(p, i)| labels.get(**i).map(|&l| l as u32) == Some(**p))
                .count();
        }
        return Ok(EvalResult::Accuracy {
            accuracy: correct as f64 / n as f64,
            count: n,
        });
    }
    let sigma = sigma.unwrap_or(model.meta.sigma);
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::Param(format!(
            "sigma must be a non-negative number, got {sigma}"
        )));
    }
    let mut rng = Rng::new(seed);
    let m = model.measurements();
    let d = data.dim();
    let mut losses = Vec::with_capacity(n);
    for start in (0..n).step_by(batch) {
        let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
        let x = data.batch(&idx, device)?;
        let xt = crate::sampling::chain::tile_measurements(&x, m)?;
        let noise = Tensor::from_vec(
            rng.normal_vec(idx.len() * m * d),
            (idx.len(), m * d),
            device,
        )?;
        let y = (&xt + (noise * sigma)?)?;
        let err = match model.net().eval_error(&y, &xt)? {
            Some(err) => err,
            None => (model.jump(&y, &mut rng)? - &x)?.sqr()?.sum(1)?,
        };
        losses.extend(err.to_vec1::<f32>()?.into_iter().map(|v| v as f64));
    }
    let mean = losses.iter().sum::<f64>() / n as f64;
    let var = losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    Ok(EvalResult::Loss {
        loss: mean,
        stderr: (var / n as f64).sqrt(),
        sigma,
        count: n,
    })
}

/// The split `eval` uses by default: the test split of the bundled digits, every image of a user's file.
pub fn default_eval_split(user_data: bool) -> Split {
    if user_data { Split::All } else { Split::Test }
}

/// Whether a kind is trained on clean data with an ELBO (and so denoises through its latent).
pub fn is_vae_kind(kind: ModelKind) -> bool {
    kind.def().is_some_and(|d| d.elbo_trained())
}

/// Default chain init for a model: uniform plus noise for large sigma (seed 002 Remark 4), uniform otherwise.
pub fn default_init(sigma: f64) -> ChainInit {
    if sigma >= 0.5 {
        ChainInit::UniformNoise
    } else {
        ChainInit::Uniform
    }
}

/// For the VAE kinds: mean KL(q(z|x) || N(0, I)) and mean `E ||x - x_hat(z)||^2` over clean images (REFERENCE.md §4
/// table), with one reparametrised z per image from `seed`.
pub fn vae_statistics(model: &Model, data: &Dataset, seed: u64) -> Result<Option<(f64, f64)>> {
    let Some(vae) = model.net().latent_vae() else {
        return Ok(None);
    };
    data.check_fits(&model.meta.data)?;
    let device = model.device();
    let mut rng = Rng::new(seed);
    let n = data.len();
    let (mut kl_sum, mut rec_sum) = (0.0, 0.0);
    for start in (0..n).step_by(250) {
        let idx: Vec<usize> = (start..(start + 250).min(n)).collect();
        let x = data.batch(&idx, device)?;
        let (mu, lam) = vae.encode(&x)?;
        let eps = vae.eps(idx.len(), &mut rng, &x)?;
        let z = (&mu + ((&lam * 0.5)?.exp()? * eps)?)?;
        let xh = vae.decode(&z)?;
        kl_sum += crate::models::LatentVae::kl(&mu, &lam)?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
        rec_sum += (xh - &x)?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(Some((kl_sum / n as f64, rec_sum / n as f64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sampler: Sampler) -> RunRecord {
        RunRecord {
            program: "walkjump test".into(),
            checkpoint_sha256: "0".repeat(64),
            kind: "deen".into(),
            spec: WalkJumpSpec {
                chain: ChainConfig {
                    sampler,
                    every: 10,
                    chains: 4,
                    init: ChainInit::UniformNoise,
                    seed: 7,
                },
                steps: 100,
                frames: 40,
            },
            jump_with: None,
            condition: None,
        }
    }

    /// Regression (fuzz: run_json): serde_json's default float parser is not exact for every 17-digit decimal, so a
    /// run saved with `--save-run` could replay with a different step size (the fuzzer's case: u = 1.8888888888888891e71
    /// came back as 1.888888888888889e71). Every f64 must survive the save/replay round trip bit for bit.
    #[test]
    fn run_records_round_trip_floats_exactly() {
        let mut values = vec![
            1.888_888_888_888_889_1e71,
            std::f64::consts::SQRT_2 * 0.2,
            std::f64::consts::SQRT_2 * 0.2 * 0.3,
            5e-324,
            f64::MAX,
            0.1,
        ];
        // A deterministic spread of mantissas and exponents.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x >> 2);
            if v.is_finite() && v > 0.0 {
                values.push(v);
            }
        }
        for v in values {
            let rec = record(Sampler::cheng(v, 0.5, 1.0));
            let text = serde_json::to_string_pretty(&rec).expect("serialize");
            let back = RunRecord::from_json(&text).expect("parse");
            assert_eq!(
                back.spec.chain.sampler.delta().to_bits(),
                v.to_bits(),
                "{v:e} did not round-trip: {text}"
            );
        }
    }
}
