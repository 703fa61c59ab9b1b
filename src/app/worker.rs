//! The worker thread: owns the models, the chains and the flows, executes [`WorkerCommand`]s and publishes
//! [`Frame`]s. All numbers come from the engine; the worker only schedules and packages them.
//!
//! [`Worker`] itself is synchronous (tests drive it with [`Worker::handle`] and [`Worker::tick`]); [`spawn`] runs
//! it on a thread that wakes the UI after each batch of frames.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use super::messages::{
    AggregateFrame, CondImage, DenoiseFrame, DenoiseRequest, DigitChoice, Frame, ModelInfo,
    NebulaCommand, NebulaFrame, NebulaSource, Traces, WalkCommand, WalkCondition, WalkFrame,
    WorkerCommand,
};
use crate::data::geometry::{ChiStats, chi_stats};
use crate::data::{Dataset, Split};
use crate::models::checkpoint::{Checkpoint, sha256_hex};
use crate::models::load::read_model_file;
use crate::models::{Model, ScoreModel};
use crate::run::{Thinned, denoise_with, mixing, noisy_batch, recommended_sampler};
use crate::sampling::chain::{Chain, ChainConfig, jump_of_jump};
use crate::sampling::condition::Condition;
use crate::sampling::nebula::{Nebula, NebulaConfig, NebulaInit, merge_attractors};
use crate::sampling::rng::Rng;

/// Jumps kept per chain for the film strip.
pub const FILM_LEN: usize = 24;
/// Points kept per trace (thinned evenly beyond that).
const TRACE_CAP: usize = 2000;
/// Draws kept per chain for R-hat / ESS (thinned evenly beyond that).
const DRAW_CAP: usize = 1000;
/// Classes kept per chain for the timeline.
const CLASS_CAP: usize = 2000;
/// Longest stretch of computing between two looks at the command queue.
const SLICE: Duration = Duration::from_millis(25);
/// Shortest time between two published snapshots of the same workspace.
const PUBLISH_EVERY: Duration = Duration::from_millis(33);
/// How often R-hat / ESS are recomputed while running.
const MIXING_EVERY: Duration = Duration::from_millis(500);

/// A model and where it came from.
struct Loaded {
    path: PathBuf,
    label: String,
    model: Model,
    /// The checkpoint file's bytes: a change of device rebuilds the model from them, whatever became of the file.
    bytes: Arc<Vec<u8>>,
}

/// The running walk and what has been seen of it.
struct WalkRun {
    cfg: ChainConfig,
    chain: Chain,
    running: bool,
    /// Steps still to do before pausing (for Step).
    budget: Option<u64>,
    jumps: Arc<Vec<Vec<f32>>>,
    noisy: Arc<Vec<Vec<f32>>>,
    jump_step: u64,
    films: Vec<VecDeque<Vec<f32>>>,
    /// The classifier's verdict on each jump of `films` (same length, when a classifier labels the jumps).
    verdicts: Vec<VecDeque<crate::quality::JumpVerdict>>,
    classes: Option<Vec<u32>>,
    class_hist: Vec<Vec<u32>>,
    film_chain: usize,
    traces: Thinned<[f64; 4]>,
    jump_range: Thinned<[f64; 3]>,
    energy_draws: Thinned<Vec<f64>>,
    score_draws: Thinned<Vec<f64>>,
    mixing_energy: Option<crate::run::Mixing>,
    mixing_score: Option<crate::run::Mixing>,
    mixing_at: Option<Instant>,
    divergence: Option<String>,
    rate: RateMeter,
}

/// Steps per second over the last second or so.
#[derive(Default)]
struct RateMeter {
    window: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    fn record(&mut self, steps: u64) {
        let now = Instant::now();
        self.window.push_back((now, steps));
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(2))
        {
            self.window.pop_front();
        }
    }

    fn per_sec(&self) -> f64 {
        let (Some(first), Some(last)) = (self.window.front(), self.window.back()) else {
            return 0.0;
        };
        let secs = last.0.duration_since(first.0).as_secs_f64();
        if secs <= 0.0 || last.1 <= first.1 {
            return 0.0;
        }
        (last.1 - first.1) as f64 / secs
    }
}

/// A flow in progress.
struct NebulaRun {
    /// Index of the model that flows (NEBULA keeps its own model, apart from the current one).
    model: usize,
    cfg: NebulaConfig,
    flow: Nebula,
    running: bool,
    energy_curve: Vec<f64>,
    grad_curve: Vec<f64>,
    attractors: Vec<crate::sampling::nebula::Attractor>,
    nearest_images: Vec<Vec<f32>>,
    poor_man: Option<Vec<Vec<f32>>>,
}

/// A walk condition with its mask `[d]` and observations resolved (test digits looked up): `[d]` for all chains, or
/// `[k * d]` for chains 0..k (repeated beyond).
type ResolvedCondition = (WalkCondition, Arc<Vec<bool>>, Arc<Vec<f32>>);

/// Owns every model and every piece of compute state of the app.
pub struct Worker {
    device: Device,
    models: Vec<Loaded>,
    current: Option<usize>,
    classifier: Option<Model>,
    classifier_bytes: Option<Arc<Vec<u8>>>,
    data: Option<Dataset>,
    walk: Option<WalkRun>,
    /// The B side of an A/B comparison: same chains, init and seed as `walk`, its own sampler.
    walk_b: Option<WalkRun>,
    /// B's sampler while A/B is on.
    b_sampler: Option<crate::sampling::langevin::Sampler>,
    /// The condition new chains take, and its resolved form (mask and observation).
    walk_condition: Option<ResolvedCondition>,
    /// The loaded model the walk jumps with, when not the walking one.
    jump_model: Option<PathBuf>,
    nebula: Option<NebulaRun>,
    /// The digit drawn in the UI `[h * w]`.
    drawn: Option<Vec<f32>>,
    chi: Option<ChiStats>,
    outbox: Vec<Frame>,
    walk_published: Option<Instant>,
    nebula_published: Option<Instant>,
}

impl Worker {
    /// A worker computing on `device`, with no model yet.
    pub fn new(device: Device) -> Self {
        Self {
            device,
            models: Vec::new(),
            current: None,
            classifier: None,
            classifier_bytes: None,
            data: None,
            walk: None,
            walk_b: None,
            b_sampler: None,
            walk_condition: None,
            jump_model: None,
            nebula: None,
            drawn: None,
            chi: None,
            outbox: Vec::new(),
            walk_published: None,
            nebula_published: None,
        }
    }

    /// Frames produced since the last call, oldest first.
    pub fn take_frames(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.outbox)
    }

    /// Whether there is compute to do without a new command.
    pub fn busy(&self) -> bool {
        self.walk.as_ref().is_some_and(|w| w.running)
            || self.nebula.as_ref().is_some_and(|n| n.running)
    }

    /// Executes one command. Failures become [`Frame::Error`] / [`Frame::LoadFailed`]; nothing panics.
    pub fn handle(&mut self, cmd: WorkerCommand) {
        let result = match cmd {
            WorkerCommand::Load { path, select } => {
                self.load(&path, select, &crate::onnx::ImportOptions::default());
                Ok(())
            }
            WorkerCommand::LoadOnnx { path, onnx } => {
                self.load(&path, true, &onnx);
                Ok(())
            }
            WorkerCommand::Select(path) => self.select(&path),
            WorkerCommand::Walk(c) => self.walk_command(c),
            WorkerCommand::Nebula(c) => self.nebula_command(c),
            WorkerCommand::Denoise(r) => self.denoise(&r),
            WorkerCommand::DenoiseAggregate(r) => self.aggregate(&r),
            WorkerCommand::ComputeChi => self.compute_chi(),
            WorkerCommand::SetDrawn(pixels) => {
                if pixels.iter().all(|v| v.is_finite()) {
                    self.drawn = Some(pixels.iter().map(|v| v.clamp(0.0, 1.0)).collect());
                    Ok(())
                } else {
                    Err(crate::Error::Param(
                        "the drawing has non-finite pixels".into(),
                    ))
                }
            }
            WorkerCommand::SetDevice(spec) => self.set_device(&spec),
        };
        if let Err(e) = result {
            self.outbox.push(Frame::Error(format!("{e:#}")));
        }
    }

    /// Computes for at most about 25 ms: walk steps and flow steps. Returns whether anything was computed.
    pub fn tick(&mut self) -> bool {
        let mut worked = false;
        if self.walk.as_ref().is_some_and(|w| w.running) {
            worked = true;
            if let Err(e) = self.walk_slice(SLICE) {
                if let Some(w) = self.walk.as_mut() {
                    w.running = false;
                }
                self.outbox
                    .push(Frame::Error(format!("walk stopped: {e:#}")));
                self.publish_walk(true);
            }
        }
        if self.nebula.as_ref().is_some_and(|n| n.running) {
            worked = true;
            if let Err(e) = self.nebula_slice(SLICE) {
                if let Some(n) = self.nebula.as_mut() {
                    n.running = false;
                }
                self.outbox
                    .push(Frame::Error(format!("NEBULA stopped: {e:#}")));
            }
        }
        worked
    }

    // ---- models ----------------------------------------------------------------------------------------------

    fn load(&mut self, path: &Path, select: bool, onnx: &crate::onnx::ImportOptions) {
        if let Some(i) = self.models.iter().position(|m| m.path == path) {
            if select {
                self.set_current(i);
            }
            return;
        }
        match self.read_model(path, onnx) {
            Ok((model, parameters, bytes)) => {
                if model.classifier().is_some() {
                    self.classifier = Some(model);
                    self.classifier_bytes = Some(bytes);
                    self.outbox.push(Frame::ClassifierLoaded {
                        path: path.to_path_buf(),
                    });
                    return;
                }
                let label = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_else(|| "model".into());
                let info = model_info(path, &label, &model, parameters);
                self.models.push(Loaded {
                    path: path.to_path_buf(),
                    label,
                    model,
                    bytes,
                });
                self.outbox.push(Frame::Loaded {
                    info: Box::new(info),
                    selected: select,
                });
                if select {
                    self.set_current(self.models.len() - 1);
                }
            }
            Err(e) => self.outbox.push(Frame::LoadFailed {
                path: path.to_path_buf(),
                error: format!("{e:#}"),
            }),
        }
    }

    fn read_model(
        &self,
        path: &Path,
        onnx: &crate::onnx::ImportOptions,
    ) -> crate::Result<(Model, usize, Arc<Vec<u8>>)> {
        let file = read_model_file(path, onnx)?;
        let mut model = Model::from_checkpoint(&file.checkpoint, &self.device)?;
        model.sha256 = file.sha256;
        Ok((model, file.checkpoint.param_count(), Arc::new(file.bytes)))
    }

    /// The device models, chains and flows live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Moves everything to the device `spec` names (the CPU, with a note, if that GPU cannot be used). Every loaded
    /// model is read again from its file onto the new device; walks and flows stop, as they do when the model
    /// changes. A model that fails to reload is dropped with a [`Frame::LoadFailed`]. A spec that is not a device is
    /// an error and changes nothing.
    fn set_device(&mut self, spec: &str) -> crate::Result<()> {
        let (device, note) = crate::device::select(spec)?;
        if device.same_device(&self.device) {
            self.outbox.push(Frame::Device {
                label: crate::device::describe(&device),
                note,
            });
            return Ok(());
        }
        self.move_to(device, note);
        Ok(())
    }

    /// Moves everything to `device`, even the one in use: every loaded model (and the classifier) is rebuilt there
    /// from the checkpoint bytes read when it was loaded, walks and flows stop, the current model stays current, and
    /// a [`Frame::Device`] carrying `note` is published. If a model cannot be built on the new device (out of
    /// memory), everything stays where it was and the reason is published as an error.
    pub fn move_to(&mut self, device: Device, note: Option<String>) {
        let rebuild = |bytes: &[u8]| -> crate::Result<Model> {
            let mut model = Model::from_checkpoint(&Checkpoint::from_bytes(bytes)?, &device)?;
            model.sha256 = sha256_hex(bytes);
            Ok(model)
        };
        let mut moved = Vec::with_capacity(self.models.len());
        for m in &self.models {
            match rebuild(&m.bytes) {
                Ok(model) => moved.push(model),
                Err(e) => {
                    self.outbox.push(Frame::Error(format!(
                        "cannot move {} to {}: {e:#}",
                        m.label,
                        crate::device::describe(&device)
                    )));
                    return;
                }
            }
        }
        let classifier = match self.classifier_bytes.as_deref().map(|b| rebuild(b)) {
            Some(Err(e)) => {
                self.outbox.push(Frame::Error(format!(
                    "cannot move the classifier to {}: {e:#}",
                    crate::device::describe(&device)
                )));
                return;
            }
            Some(Ok(c)) => Some(c),
            None => None,
        };
        // Chains and flows hold tensors of the old device.
        self.walk = None;
        self.walk_b = None;
        self.nebula = None;
        for (m, model) in self.models.iter_mut().zip(moved) {
            m.model = model;
        }
        self.classifier = classifier;
        self.device = device;
        self.outbox.push(Frame::Device {
            label: crate::device::describe(&self.device),
            note,
        });
        if let Some(i) = self.current.take() {
            self.set_current(i);
        }
    }

    fn select(&mut self, path: &Path) -> crate::Result<()> {
        let i = self
            .models
            .iter()
            .position(|m| m.path == path)
            .ok_or_else(|| crate::Error::Param(format!("{} is not loaded", path.display())))?;
        self.set_current(i);
        Ok(())
    }

    fn set_current(&mut self, i: usize) {
        if self.current != Some(i) {
            // Chains belong to the model they started on (flows keep their own model).
            self.walk = None;
            self.walk_b = None;
        }
        self.current = Some(i);
        self.outbox
            .push(Frame::Selected(self.models[i].path.clone()));
    }

    fn current_model(&self) -> crate::Result<&Model> {
        self.current
            .and_then(|i| self.models.get(i))
            .map(|m| &m.model)
            .ok_or_else(|| crate::Error::Param("no model is loaded; open a checkpoint".into()))
    }

    fn dataset(&mut self) -> crate::Result<&Dataset> {
        if self.data.is_none() {
            self.data = Some(Dataset::bundled()?);
        }
        self.data
            .as_ref()
            .ok_or_else(|| crate::Error::Data("no dataset".into()))
    }

    /// The bundled split `split`, if its images fit the current model.
    fn split_for_model(&mut self, split: Split) -> crate::Result<Option<Dataset>> {
        let d = self.current_model()?.data_dim();
        self.split_of_dim(split, d)
    }

    /// The bundled split if its images have `d` pixels.
    fn split_of_dim(&mut self, split: Split, d: usize) -> crate::Result<Option<Dataset>> {
        let data = self.dataset()?.split(split);
        Ok((data.dim() == d).then_some(data))
    }

    /// The index of the loaded model at `path`, or of the current model when `path` is `None`.
    fn model_index(&self, path: Option<&Path>) -> crate::Result<usize> {
        match path {
            None => self
                .current
                .ok_or_else(|| crate::Error::Param("no model is loaded; open a checkpoint".into())),
            Some(p) => self.models.iter().position(|m| m.path == p).ok_or_else(|| {
                crate::Error::Param(format!("{} is not loaded yet; try again", p.display()))
            }),
        }
    }

    /// The drawn digit, if there is one and it has `d` pixels (the image size of the model that uses it).
    fn drawn_for_model(&self, d: usize) -> crate::Result<Vec<f32>> {
        match &self.drawn {
            None => Err(crate::Error::Param(
                "draw a digit first (the pad under the source choice)".into(),
            )),
            Some(x) if x.len() != d => Err(crate::Error::Data(format!(
                "the drawing has {} pixels but the model takes {d}",
                x.len()
            ))),
            Some(x) => Ok(x.clone()),
        }
    }

    fn compute_chi(&mut self) -> crate::Result<()> {
        if self.chi.is_none() {
            let data = self.dataset()?;
            self.chi = Some(chi_stats(data, 20_000, 0)?);
        }
        if let Some(c) = &self.chi {
            self.outbox.push(Frame::Chi(c.clone()));
        }
        Ok(())
    }

    // ---- walk-jump -------------------------------------------------------------------------------------------

    /// Both sides of the walk (A, then B when A/B is on).
    fn walks_mut(&mut self) -> impl Iterator<Item = &mut WalkRun> {
        self.walk.iter_mut().chain(self.walk_b.iter_mut())
    }

    fn diverged(&self) -> bool {
        self.walk
            .iter()
            .chain(self.walk_b.iter())
            .any(|w| w.divergence.is_some())
    }

    fn walk_command(&mut self, cmd: WalkCommand) -> crate::Result<()> {
        match cmd {
            WalkCommand::Run(cfg) => {
                self.ensure_walk(&cfg)?;
                if self.diverged() {
                    return Err(crate::Error::Param(
                        "chains diverged: reset before running again".into(),
                    ));
                }
                for w in self.walks_mut() {
                    w.running = true;
                    w.budget = None;
                }
            }
            WalkCommand::Pause => {
                for w in self.walks_mut() {
                    w.running = false;
                    w.budget = None;
                }
            }
            WalkCommand::Step(cfg) => {
                self.ensure_walk(&cfg)?;
                if self.diverged() {
                    return Err(crate::Error::Param(
                        "chains diverged: reset before stepping again".into(),
                    ));
                }
                for w in self.walks_mut() {
                    let every = w.cfg.every as u64;
                    // Up to the next jump.
                    w.budget = Some(every - w.chain.step % every);
                    w.running = true;
                }
            }
            WalkCommand::Reset(cfg) => {
                self.walk = None;
                self.walk_b = None;
                self.ensure_walk(&cfg)?;
            }
            WalkCommand::SetSampler(s) => {
                s.validate()?;
                if let Some(w) = self.walk.as_mut() {
                    w.cfg.sampler = s;
                }
            }
            WalkCommand::SetB(b) => {
                if let Some(s) = &b {
                    s.validate()?;
                }
                let was_on = self.b_sampler.is_some();
                self.b_sampler = b;
                match (b, self.walk_b.as_mut()) {
                    (None, _) => self.walk_b = None,
                    (Some(s), Some(wb)) => wb.cfg.sampler = s,
                    // Turning A/B on restarts A so that both sides start from the same states and noise.
                    (Some(_), None) => {
                        if let Some(cfg) = self.walk.as_ref().map(|w| w.cfg.clone())
                            && !was_on
                        {
                            self.walk = None;
                            self.ensure_walk(&cfg)?;
                        }
                    }
                }
            }
            WalkCommand::SetEvery(k) => {
                if k == 0 {
                    return Err(crate::Error::Param(
                        "steps per jump must be at least 1".into(),
                    ));
                }
                for w in self.walks_mut() {
                    w.cfg.every = k;
                }
            }
            WalkCommand::SetCondition(c) => {
                self.walk_condition = match c {
                    None => None,
                    Some(c) => Some(self.resolve_condition(c)?),
                };
            }
            WalkCommand::SetJumpModel(p) => {
                if let Some(p) = &p {
                    let i = self.model_index(Some(p))?;
                    let walker = self.current_model()?;
                    crate::sampling::check_jump_model(walker, &self.models[i].model)?;
                }
                self.jump_model = p;
            }
            WalkCommand::SelectChain(i) => {
                for w in self.walks_mut() {
                    if i < w.cfg.chains {
                        w.film_chain = i;
                    }
                }
            }
        }
        self.publish_walk(true);
        Ok(())
    }

    /// The mask and observation of a condition, checked against the current model.
    fn resolve_condition(&mut self, c: WalkCondition) -> crate::Result<ResolvedCondition> {
        let d = self.current_model()?.data_dim();
        self.resolve_condition_for(c, d)
    }

    /// [`Self::resolve_condition`] for a model of `d` pixels.
    fn resolve_condition_for(
        &mut self,
        c: WalkCondition,
        d: usize,
    ) -> crate::Result<ResolvedCondition> {
        if c.mask.len() != d {
            return Err(crate::Error::Data(format!(
                "the mask has {} pixels but the model takes {d}",
                c.mask.len()
            )));
        }
        let x = match &c.image {
            CondImage::Pixels(p) => {
                // One image for every chain, or one per chain (k images of d pixels).
                if p.is_empty() || !p.len().is_multiple_of(d) || p.iter().any(|v| !v.is_finite()) {
                    return Err(crate::Error::Data(format!(
                        "the held images need a multiple of {d} finite pixels, got {}",
                        p.len()
                    )));
                }
                p.clone()
            }
            CondImage::TestDigit(i) | CondImage::TestDigitsFrom(i) => {
                let test = self.split_of_dim(Split::Test, d)?.ok_or_else(|| {
                    crate::Error::Data("the bundled test digits do not fit this model".into())
                })?;
                if *i >= test.len() {
                    return Err(crate::Error::Param(format!(
                        "test digit {i} does not exist (there are {})",
                        test.len()
                    )));
                }
                // One digit, or up to 256 consecutive ones (one per chain).
                let last = match &c.image {
                    CondImage::TestDigitsFrom(_) => (*i + 256).min(test.len()),
                    _ => *i + 1,
                };
                (*i..last)
                    .filter_map(|k| test.image(k))
                    .flatten()
                    .copied()
                    .collect()
            }
        };
        let mask = Arc::new(c.mask.clone());
        Ok((c, mask, Arc::new(x)))
    }

    /// The condition of new chains for `cfg`, if one is set.
    fn chain_condition(&self, cfg: &ChainConfig) -> crate::Result<Option<Condition>> {
        let Some((c, mask, x)) = &self.walk_condition else {
            return Ok(None);
        };
        let d = mask.len();
        // One observation per chain, repeated when there are more chains than observations.
        let per_chain: Vec<f32> = x
            .chunks(d)
            .cycle()
            .take(cfg.chains)
            .flatten()
            .copied()
            .collect();
        let cond = Condition::clean(cfg.chains, d, mask, &per_chain)?;
        Ok(Some(if c.start_from_image {
            cond.starting_from_images()
        } else {
            cond
        }))
    }

    /// The model jumps come from: the chosen jump model if it is loaded and fits, else the walking one.
    fn jumper_index(&self) -> Option<usize> {
        let p = self.jump_model.as_ref()?;
        self.models.iter().position(|m| &m.path == p)
    }

    /// Creates the chains if there are none (both sides when A/B is on); otherwise takes the live parameters
    /// (A's sampler, every) from `cfg`.
    fn ensure_walk(&mut self, cfg: &ChainConfig) -> crate::Result<()> {
        cfg.validate()?;
        if let Some(w) = self.walk.as_mut() {
            w.cfg.sampler = cfg.sampler;
            w.cfg.every = cfg.every;
            if let Some(wb) = self.walk_b.as_mut() {
                wb.cfg.every = cfg.every;
            }
            return Ok(());
        }
        let train = self.split_for_model(Split::Train).ok().flatten();
        let condition = self.chain_condition(cfg)?;
        let model = self.current_model()?;
        let jumper = self
            .jumper_index()
            .map(|j| &self.models[j].model)
            .filter(|j| crate::sampling::check_jump_model(model, *j).is_ok())
            .unwrap_or(model);
        if !model.has_score() {
            return Err(crate::Error::Unsupported(format!(
                "a {} model has no score of y, so it cannot walk; pick a DEEN, UVB or MDAE model",
                model.kind().as_str()
            )));
        }
        let make = |cfg: &ChainConfig| -> crate::Result<WalkRun> {
            let chain = match &condition {
                Some(c) => Chain::conditioned(model, cfg, train.as_ref(), &self.device, c)?,
                None => Chain::new(model, cfg, train.as_ref(), &self.device)?,
            };
            let n = cfg.chains;
            let mut run = WalkRun {
                cfg: cfg.clone(),
                chain,
                running: false,
                budget: None,
                jumps: Arc::new(Vec::new()),
                noisy: Arc::new(Vec::new()),
                jump_step: 0,
                films: vec![VecDeque::new(); n],
                verdicts: vec![VecDeque::new(); n],
                classes: None,
                class_hist: vec![Vec::new(); n],
                film_chain: 0,
                traces: Thinned::new(TRACE_CAP),
                jump_range: Thinned::new(TRACE_CAP),
                energy_draws: Thinned::new(DRAW_CAP),
                score_draws: Thinned::new(DRAW_CAP),
                mixing_energy: None,
                mixing_score: None,
                mixing_at: None,
                divergence: None,
                rate: RateMeter::default(),
            };
            // Show where the chains start: the jump of the initial state.
            take_jump(&mut run, model, jumper, self.classifier.as_ref())?;
            Ok(run)
        };
        let a = make(cfg)?;
        let b = match self.b_sampler {
            Some(s) => Some(make(&ChainConfig {
                sampler: s,
                ..cfg.clone()
            })?),
            None => None,
        };
        self.walk = Some(a);
        self.walk_b = b;
        Ok(())
    }

    fn walk_slice(&mut self, slice: Duration) -> crate::Result<()> {
        let start = Instant::now();
        let Some(i) = self.current else {
            return Ok(());
        };
        let model = &self.models[i].model;
        let jumper = self
            .jumper_index()
            .map(|j| &self.models[j].model)
            .filter(|j| crate::sampling::check_jump_model(model, *j).is_ok())
            .unwrap_or(model);
        let classifier = self.classifier.as_ref();
        let Some(w) = self.walk.as_mut() else {
            return Ok(());
        };
        // A and B advance in lockstep, one step each, so they stay at the same step.
        while w.running && start.elapsed() < slice {
            advance(w, model, jumper, classifier)?;
            if let Some(wb) = self.walk_b.as_mut()
                && wb.running
            {
                advance(wb, model, jumper, classifier)?;
                if wb.divergence.is_some() {
                    w.running = false;
                }
            }
            if w.divergence.is_some()
                && let Some(wb) = self.walk_b.as_mut()
            {
                wb.running = false;
            }
        }
        if !w.running
            && let Some(wb) = self.walk_b.as_mut()
        {
            wb.running = false;
            wb.budget = None;
        }
        let force = !w.running;
        self.publish_walk(force);
        Ok(())
    }

    fn publish_walk(&mut self, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .walk_published
                .is_some_and(|t| now.duration_since(t) < PUBLISH_EVERY)
        {
            return;
        }
        let model_hw = self
            .current
            .map(|i| self.models[i].model.data_shape())
            .map(|(_, h, wd)| (h, wd))
            .unwrap_or((0, 0));
        let jump_model = self.current.and_then(|i| {
            let j = self.jumper_index()?;
            (j != i
                && crate::sampling::check_jump_model(&self.models[i].model, &self.models[j].model)
                    .is_ok())
            .then(|| {
                format!(
                    "{} (sigma {})",
                    self.models[j].label,
                    self.models[j].model.sigma()
                )
            })
        });
        let Some(w) = self.walk.as_mut() else {
            return;
        };
        self.walk_published = Some(now);
        let mut frame = walk_frame(w, model_hw, force, now);
        frame.jump_model = jump_model.clone();
        if let Some(wb) = self.walk_b.as_mut() {
            let mut b = walk_frame(wb, model_hw, force, now);
            b.jump_model = jump_model;
            frame.b = Some(Box::new(b));
        }
        self.outbox.push(Frame::Walk(Box::new(frame)));
    }

    // ---- NEBULA ----------------------------------------------------------------------------------------------

    fn nebula_start_points(
        &mut self,
        cfg: &NebulaConfig,
        source: NebulaSource,
        index: usize,
    ) -> crate::Result<Nebula> {
        let d = self.models[index].model.data_dim();
        let test = self.split_of_dim(Split::Test, d)?;
        let model = &self.models[index].model;
        if !model.has_score() {
            return Err(crate::Error::Unsupported(format!(
                "a {} model has no score of y, so it cannot flow",
                model.kind().as_str()
            )));
        }
        let init = match source {
            NebulaSource::Uniform => NebulaInit::Uniform,
            NebulaSource::TestDigits => NebulaInit::Data,
            NebulaSource::NoisyTestDigits => NebulaInit::DataNoise,
            NebulaSource::Drawn => {
                let x = self.drawn_for_model(d)?;
                let (n, m, sigma) = (cfg.starts, model.measurements(), model.sigma());
                let mut rng = Rng::new(cfg.seed);
                let mut y = Vec::with_capacity(n * m * x.len());
                for k in 0..n {
                    for _ in 0..m {
                        if k == 0 {
                            y.extend_from_slice(&x);
                        } else {
                            y.extend(x.iter().map(|&v| v + (sigma * rng.normal()) as f32));
                        }
                    }
                }
                return Nebula::from_points(y, n, model, &self.device, rng);
            }
        };
        if init != NebulaInit::Uniform && test.is_none() {
            return Err(crate::Error::Data(
                "the bundled test digits do not fit this model's image size".into(),
            ));
        }
        let cfg = NebulaConfig {
            init,
            ..cfg.clone()
        };
        Nebula::new(model, &cfg, test.as_ref(), &self.device)
    }

    fn nebula_command(&mut self, cmd: NebulaCommand) -> crate::Result<()> {
        match cmd {
            NebulaCommand::Start {
                cfg,
                source,
                model,
                hold,
            } => {
                self.nebula = None;
                let index = self.model_index(model.as_deref())?;
                let mut flow = self.nebula_start_points(&cfg, source, index)?;
                if let Some(c) = hold {
                    // Each start holds its observation (one per start, repeated) on the mask.
                    let d = self.models[index].model.data_dim();
                    let (_, mask, x) = self.resolve_condition_for(c, d)?;
                    let n = flow.converged.len();
                    let per_start: Vec<f32> =
                        x.chunks(d).cycle().take(n).flatten().copied().collect();
                    flow.hold(&self.models[index].model, &mask, &per_start)?;
                }
                self.nebula = Some(NebulaRun {
                    model: index,
                    cfg,
                    flow,
                    running: true,
                    energy_curve: Vec::new(),
                    grad_curve: Vec::new(),
                    attractors: Vec::new(),
                    nearest_images: Vec::new(),
                    poor_man: None,
                });
            }
            NebulaCommand::Stop => {
                if self.nebula.as_ref().is_some_and(|n| n.running) {
                    self.finish_nebula()?;
                }
            }
            NebulaCommand::PoorMan { cfg, source, model } => {
                let index = self.model_index(model.as_deref())?;
                let start = self.nebula_start_points(&cfg, source, index)?;
                let model = &self.models[index].model;
                let mut rng = Rng::new(cfg.seed ^ 0x9E37);
                let pm = jump_of_jump(model, &start.y, &mut rng)?.to_vec2::<f32>()?;
                match self.nebula.as_mut() {
                    Some(n) if n.model == index => n.poor_man = Some(pm),
                    _ => {
                        self.nebula = Some(NebulaRun {
                            model: index,
                            cfg,
                            flow: start,
                            running: false,
                            energy_curve: Vec::new(),
                            grad_curve: Vec::new(),
                            attractors: Vec::new(),
                            nearest_images: Vec::new(),
                            poor_man: Some(pm),
                        });
                    }
                }
            }
        }
        self.publish_nebula(true)
    }

    fn nebula_slice(&mut self, slice: Duration) -> crate::Result<()> {
        let start = Instant::now();
        let Some(n) = self.nebula.as_mut() else {
            return Ok(());
        };
        let Some(model) = self.models.get(n.model).map(|m| &m.model) else {
            return Ok(());
        };
        let mut finished = false;
        while start.elapsed() < slice {
            if n.flow.done() || n.flow.step >= n.cfg.max_steps {
                finished = true;
                break;
            }
            let e = n.flow.step(model, n.cfg.eta, n.cfg.tol)?;
            if let Some(e) = e {
                n.energy_curve.push(e as f64);
            }
            let gmax = n
                .flow
                .grad_norm
                .iter()
                .zip(&n.flow.converged)
                .filter(|(_, c)| !**c)
                .map(|(g, _)| *g as f64)
                .fold(0.0, f64::max);
            n.grad_curve.push(gmax);
        }
        if finished {
            self.finish_nebula()?;
            self.publish_nebula(true)
        } else {
            self.publish_nebula(false)
        }
    }

    fn finish_nebula(&mut self) -> crate::Result<()> {
        let Some(i) = self.nebula.as_ref().map(|n| n.model) else {
            return Ok(());
        };
        let Some(d) = self.models.get(i).map(|m| m.model.data_dim()) else {
            return Ok(());
        };
        let train = self.split_of_dim(Split::Train, d)?;
        let model = &self.models[i].model;
        let Some(n) = self.nebula.as_mut() else {
            return Ok(());
        };
        n.running = false;
        let finals = n.flow.images(model)?;
        n.attractors = merge_attractors(&finals, n.flow.energy.as_deref(), &n.cfg, train.as_ref());
        n.nearest_images = n
            .attractors
            .iter()
            .map(|a| match (train.as_ref(), a.nearest) {
                (Some(t), Some(j)) => t.image(j).map(<[f32]>::to_vec).unwrap_or_default(),
                _ => Vec::new(),
            })
            .collect();
        Ok(())
    }

    fn publish_nebula(&mut self, force: bool) -> crate::Result<()> {
        let now = Instant::now();
        if !force
            && self
                .nebula_published
                .is_some_and(|t| now.duration_since(t) < PUBLISH_EVERY)
        {
            return Ok(());
        }
        let Some(n) = self.nebula.as_ref() else {
            return Ok(());
        };
        let Some(model) = self.models.get(n.model).map(|m| &m.model) else {
            return Ok(());
        };
        self.nebula_published = Some(now);
        let (_, h, w) = model.data_shape();
        let frame = NebulaFrame {
            step: n.flow.step,
            running: n.running,
            image_hw: (h, w),
            images: Arc::new(n.flow.images(model)?),
            energy_curve: n.energy_curve.clone(),
            grad_curve: n.grad_curve.clone(),
            converged: n.flow.converged.iter().filter(|&&c| c).count(),
            starts: n.flow.converged.len(),
            attractors: n.attractors.clone(),
            nearest_images: n.nearest_images.clone(),
            poor_man: n.poor_man.clone(),
        };
        self.outbox.push(Frame::Nebula(Box::new(frame)));
        Ok(())
    }

    // ---- denoise ---------------------------------------------------------------------------------------------

    /// The test digits a request draws from.
    fn denoise_data(&mut self, req: &DenoiseRequest) -> crate::Result<Dataset> {
        if req.digits == DigitChoice::Drawn {
            let x = self.drawn_for_model(self.current_model()?.data_dim())?;
            return Ok(Dataset {
                spec: self.current_model()?.meta.data.clone(),
                images: x,
                labels: None,
            });
        }
        let test = self.dataset()?.split(Split::Test);
        match req.digits {
            DigitChoice::Random | DigitChoice::Drawn => Ok(test),
            DigitChoice::Class(c) => {
                let labels = test
                    .labels
                    .as_ref()
                    .ok_or_else(|| crate::Error::Data("the test digits have no labels".into()))?;
                let idx: Vec<usize> = (0..test.len()).filter(|&i| labels[i] == c).collect();
                if idx.is_empty() {
                    return Err(crate::Error::Data(format!("no test digit has class {c}")));
                }
                let d = test.dim();
                Ok(Dataset {
                    spec: test.spec.clone(),
                    images: idx
                        .iter()
                        .flat_map(|&i| test.images[i * d..(i + 1) * d].iter().copied())
                        .collect(),
                    labels: Some(idx.iter().map(|&i| labels[i]).collect()),
                })
            }
        }
    }

    /// Every loaded denoiser that fits the data, grouped by kind (the sigma-VAE / DEEN / UVB comparison first) and
    /// ordered by training sigma within a kind, and a note for each that does not fit.
    fn denoisers(&self, data: &Dataset) -> (Vec<&Loaded>, Vec<String>) {
        let mut ok = Vec::new();
        let mut skipped = Vec::new();
        for m in &self.models {
            if !m.model.is_denoiser() {
                continue;
            }
            match data.check_fits(&m.model.meta.data) {
                Ok(()) => ok.push(m),
                Err(e) => skipped.push(format!("{}: {e}", m.label)),
            }
        }
        ok.sort_by(|a, b| {
            let key = |m: &Loaded| (denoiser_rank(m.model.kind()), m.model.sigma());
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then_with(|| a.label.cmp(&b.label))
        });
        (ok, skipped)
    }

    fn denoise(&mut self, req: &DenoiseRequest) -> crate::Result<()> {
        req.noise.validate()?;
        let data = self.denoise_data(req)?;
        let (models, skipped) = self.denoisers(&data);
        let copies = models
            .iter()
            .map(|m| m.model.measurements())
            .max()
            .unwrap_or(1);
        let batch = noisy_batch(&data, req.count.max(1), &req.noise, copies, req.seed)?;
        let mut columns = Vec::new();
        for m in &models {
            columns.push(denoise_with(&m.model, &m.label, &batch, req.seed)?);
            if m.model.is_stochastic() {
                // More independent posterior draws: the same noisy digits, other z.
                for k in 1..req.draws.clamp(1, 8) {
                    let label = format!("{} · draw {}", m.label, k + 1);
                    let seed = req.seed.wrapping_add(k as u64);
                    columns.push(denoise_with(&m.model, &label, &batch, seed)?);
                }
            }
        }
        let d = data.dim();
        let noisy: Vec<Vec<f32>> = batch.noisy.iter().map(|y| y[..d].to_vec()).collect();
        let noisy_mse = noisy
            .iter()
            .zip(&batch.clean)
            .map(|(y, x)| mse(y, x))
            .collect();
        let frame = DenoiseFrame {
            image_hw: (data.spec.height, data.spec.width),
            clean: batch.clean,
            noisy,
            noisy_mse,
            columns,
            skipped,
            noise: Some(req.noise),
        };
        self.outbox.push(Frame::Denoise(Box::new(frame)));
        Ok(())
    }

    fn aggregate(&mut self, req: &DenoiseRequest) -> crate::Result<()> {
        req.noise.validate()?;
        let data = self.denoise_data(req)?;
        let (models, _) = self.denoisers(&data);
        let copies = models
            .iter()
            .map(|m| m.model.measurements())
            .max()
            .unwrap_or(1);
        let batch = noisy_batch(&data, req.aggregate.max(1), &req.noise, copies, req.seed)?;
        let d = data.dim();
        let noisy_mse = batch
            .noisy
            .iter()
            .zip(&batch.clean)
            .map(|(y, x)| mse(&y[..d], x))
            .sum::<f64>()
            / batch.clean.len().max(1) as f64;
        let mut rows = Vec::new();
        for m in &models {
            let col = denoise_with(&m.model, &m.label, &batch, req.seed)?;
            rows.push((m.label.clone(), col.mean_mse()));
        }
        self.outbox.push(Frame::Aggregate(AggregateFrame {
            count: batch.clean.len(),
            noise: Some(req.noise),
            noisy_mse,
            rows,
        }));
        Ok(())
    }
}

/// Per-pixel mean squared difference (the same measure `denoise_with` reports).
fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&p, &q)| ((p - q) as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64
}

/// Takes the jump of every chain, records it in the films, traces and class histories.
/// One walk step of `w` with its bookkeeping: traces, draws for R-hat / ESS, jumps, divergence, Step budget.
fn advance(
    w: &mut WalkRun,
    model: &Model,
    jumper: &Model,
    classifier: Option<&Model>,
) -> crate::Result<()> {
    let stats = w.chain.step(model, &w.cfg.sampler)?;
    let mean = |v: &[f32]| {
        let (s, k) = v
            .iter()
            .zip(&w.chain.stopped)
            .filter(|(x, stop)| x.is_finite() && stop.is_none())
            .fold((0.0, 0usize), |(s, k), (x, _)| (s + *x as f64, k + 1));
        if k == 0 { f64::NAN } else { s / k as f64 }
    };
    let energy = stats.energy.as_deref().map(mean).unwrap_or(f64::NAN);
    let score = mean(&stats.score_norm);
    let kinetic = stats.kinetic.as_deref().map(mean).unwrap_or(f64::NAN);
    w.traces.push([stats.step as f64, energy, score, kinetic]);
    if stats.step % w.cfg.every as u64 == 0 {
        if let Some(e) = &stats.energy {
            w.energy_draws.push(e.iter().map(|&v| v as f64).collect());
        }
        w.score_draws
            .push(stats.score_norm.iter().map(|&v| v as f64).collect());
        take_jump(w, model, jumper, classifier)?;
    }
    w.rate.record(stats.step);
    if !stats.diverged.is_empty() {
        let first = stats.diverged[0].1.clone();
        let more = stats.diverged.len() - 1;
        w.divergence = Some(if more > 0 {
            format!("{first} (and {more} more chains); the run is paused")
        } else {
            format!("{first}; the run is paused")
        });
        w.running = false;
    }
    if let Some(b) = w.budget.as_mut() {
        *b = b.saturating_sub(1);
        if *b == 0 {
            w.running = false;
            w.budget = None;
        }
    }
    Ok(())
}

/// The snapshot of one side of the walk (mixing statistics refreshed every [`MIXING_EVERY`], or when forced).
fn walk_frame(w: &mut WalkRun, model_hw: (usize, usize), force: bool, now: Instant) -> WalkFrame {
    if force
        || w.mixing_at
            .is_none_or(|t| now.duration_since(t) > MIXING_EVERY)
    {
        w.mixing_at = Some(now);
        let by_chain = |rows: &[Vec<f64>]| -> Vec<Vec<f64>> {
            let n = rows.first().map(Vec::len).unwrap_or(0);
            (0..n)
                .map(|i| rows.iter().map(|r| r[i]).collect())
                .collect()
        };
        w.mixing_energy = mixing(&by_chain(&w.energy_draws.items));
        w.mixing_score = mixing(&by_chain(&w.score_draws.items));
    }
    let t = &w.traces.items;
    let keep = |k: usize| -> Vec<f64> {
        if t.iter().all(|p| p[k].is_nan()) {
            Vec::new()
        } else {
            t.iter().map(|p| p[k]).collect()
        }
    };
    let traces = Traces {
        step: t.iter().map(|p| p[0]).collect(),
        energy: keep(1),
        score: keep(2),
        kinetic: keep(3),
        jump_min: w.jump_range.items.iter().map(|p| [p[0], p[1]]).collect(),
        jump_max: w.jump_range.items.iter().map(|p| [p[0], p[2]]).collect(),
    };
    let fc = w.film_chain.min(w.films.len().saturating_sub(1));
    let timeline = w.class_hist.get(fc).cloned().unwrap_or_default();
    let distinct = |v: &mut Vec<u32>| {
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    let classes_visited = distinct(&mut timeline.clone());
    let classes_visited_all = distinct(&mut w.class_hist.iter().flatten().copied().collect());
    WalkFrame {
        b: None,
        step: w.chain.step,
        running: w.running,
        chains: w.chain.len(),
        running_chains: w.chain.running(),
        image_hw: model_hw,
        jumps: w.jumps.clone(),
        jump_step: w.jump_step,
        noisy: w.noisy.clone(),
        film_chain: fc,
        film: w
            .films
            .get(fc)
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default(),
        traces,
        mixing_energy: w.mixing_energy.clone(),
        mixing_score: w.mixing_score.clone(),
        classes: w.classes.clone(),
        class_timeline: timeline,
        classes_visited,
        classes_visited_all,
        divergence: w.divergence.clone(),
        steps_per_sec: if w.running { w.rate.per_sec() } else { 0.0 },
        config: Some(w.cfg.clone()),
        held: held_of(&w.chain),
        quality: live_quality(w),
        observed: w.chain.condition().and_then(|c| {
            let d = c.data_dim();
            c.observed().map(|x| Arc::new(x[..d].to_vec()))
        }),
        jump_model: None,
    }
}

/// The quality figures of each chain's last [`FILM_LEN`] jumps (with a classifier): confident and junk shares,
/// trapped chains with the reason.
fn live_quality(w: &WalkRun) -> Option<crate::quality::QualityReport> {
    if w.verdicts.iter().all(VecDeque::is_empty) {
        return None;
    }
    let jumps: Vec<Vec<Vec<f32>>> = w
        .films
        .iter()
        .zip(&w.verdicts)
        .map(|(f, v)| {
            f.iter()
                .skip(f.len().saturating_sub(v.len()))
                .cloned()
                .collect()
        })
        .collect();
    let verdicts: Vec<Vec<crate::quality::JumpVerdict>> = w
        .verdicts
        .iter()
        .map(|v| v.iter().copied().collect())
        .collect();
    crate::quality::assess(
        &jumps,
        &verdicts,
        &w.chain.stopped,
        &crate::quality::QualityConfig::default(),
    )
    .ok()
}

/// The held pixels `[d]` of the first chain of a conditioned walk (the app holds the same in every chain).
fn held_of(chain: &Chain) -> Option<Arc<Vec<bool>>> {
    let c = chain.condition()?;
    (c.held_count() > 0)
        .then(|| Arc::new(c.mask()[..c.data_dim()].iter().map(|&m| m != 0).collect()))
}

fn take_jump(
    w: &mut WalkRun,
    model: &Model,
    jumper: &Model,
    classifier: Option<&Model>,
) -> crate::Result<()> {
    let x = w.chain.jump(jumper)?;
    let rows = x.to_vec2::<f32>()?;
    // A classifier only labels jumps of its own image size; its verdicts feed the quality row.
    let verdicts = match classifier
        .filter(|c| c.data_dim() == model.data_dim())
        .and_then(Model::classifier)
    {
        Some(c) => {
            let cfg = crate::quality::QualityConfig::default();
            crate::quality::verdicts(c, std::slice::from_ref(&rows), &cfg, x.device())?.pop()
        }
        None => None,
    };
    let classes: Option<Vec<u32>> = verdicts
        .as_ref()
        .map(|v| v.iter().map(|v| v.class).collect());
    let (lo, hi) = rows
        .iter()
        .zip(&w.chain.stopped)
        .filter(|(_, s)| s.is_none())
        .flat_map(|(r, _)| r.iter())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() && hi.is_finite() {
        w.jump_range
            .push([w.chain.step as f64, lo as f64, hi as f64]);
    }
    for (i, r) in rows.iter().enumerate() {
        if w.chain.stopped[i].is_some() {
            continue;
        }
        let film = &mut w.films[i];
        film.push_back(r.clone());
        while film.len() > FILM_LEN {
            film.pop_front();
        }
        let judged = &mut w.verdicts[i];
        match verdicts.as_ref().and_then(|v| v.get(i)) {
            Some(v) => judged.push_back(*v),
            None => judged.clear(),
        }
        while judged.len() > FILM_LEN {
            judged.pop_front();
        }
        if let Some(c) = &classes {
            let h = &mut w.class_hist[i];
            h.push(c[i]);
            if h.len() > CLASS_CAP {
                h.remove(0);
            }
        }
    }
    w.noisy = Arc::new(first_measurement(&w.chain.y, model)?);
    w.jumps = Arc::new(rows);
    w.classes = classes;
    w.jump_step = w.chain.step;
    Ok(())
}

/// The first measurement of each chain's y, `[N][d]`.
fn first_measurement(y: &Tensor, model: &Model) -> crate::Result<Vec<Vec<f32>>> {
    let d = model.data_dim();
    Ok(y.narrow(1, 0, d)?.to_vec2::<f32>()?)
}

fn model_info(path: &Path, label: &str, model: &Model, parameters: usize) -> ModelInfo {
    let pretty =
        |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    ModelInfo {
        path: path.to_path_buf(),
        label: label.to_string(),
        kind: model.kind().as_str().to_string(),
        sigma: model.meta.sigma,
        measurements: model.meta.measurements,
        shape: model.data_shape(),
        is_denoiser: model.is_denoiser(),
        has_score: model.has_score(),
        has_energy: model.has_energy(),
        parameters,
        sha256: model.sha256.clone(),
        arch: pretty(&model.meta.arch),
        train: model.meta.train.as_ref().map(pretty),
        extra: model.meta.extra.clone(),
        recommended: recommended_sampler(&model.meta),
    }
}

/// The worker's end of the link to a UI: commands in, frames out, and a way to wake the UI.
pub struct Link {
    /// Commands from the UI.
    pub commands: Receiver<WorkerCommand>,
    /// Frames to the UI.
    pub frames: Sender<Frame>,
    /// Called after frames were sent (requests a repaint).
    pub wake: Box<dyn Fn() + Send>,
}

/// Runs `worker` on a new thread until the UI hangs up.
pub fn spawn(mut worker: Worker, link: Link) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("walkjump-worker".into())
        .spawn(move || {
            loop {
                // Idle: block until a command arrives. Busy: only glance at the queue between slices.
                let wait = if worker.busy() {
                    Duration::ZERO
                } else {
                    Duration::from_millis(200)
                };
                match link.commands.recv_timeout(wait) {
                    Ok(cmd) => {
                        worker.handle(cmd);
                        while let Ok(cmd) = link.commands.try_recv() {
                            worker.handle(cmd);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                worker.tick();
                let frames = worker.take_frames();
                if !frames.is_empty() {
                    for f in frames {
                        if link.frames.send(f).is_err() {
                            return;
                        }
                    }
                    (link.wake)();
                }
            }
        })
}

/// Where a kind's columns go in the Denoise comparison: the three approaches the tool compares first (sigma-VAE,
/// DEEN, UVB), then the other VAEs and the multimeasurement model.
fn denoiser_rank(kind: crate::models::ModelKind) -> u8 {
    use crate::models::ModelKind as K;
    match kind {
        K::SigmaVae => 0,
        K::Deen => 1,
        K::Uvb => 2,
        K::AlphaVae => 3,
        K::Vae => 4,
        K::EbmVae => 5,
        K::Mdae => 6,
        K::Classifier => 7,
    }
}
