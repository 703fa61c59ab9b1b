//! The Walk-Jump job: the chains (both sides of an A/B comparison), their conditions and jump model, the walk in
//! time slices, and the snapshots published to the workspace.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Tensor;

use super::{PUBLISH_EVERY, Worker};
use crate::app::messages::{CondImage, Frame, Traces, WalkCommand, WalkCondition, WalkFrame};
use crate::data::Split;
use crate::models::{Model, ScoreModel};
use crate::run::{Thinned, mixing};
use crate::sampling::chain::{Chain, ChainConfig};
use crate::sampling::condition::Condition;

/// Jumps kept per chain for the film strip.
pub const FILM_LEN: usize = 24;

/// Points kept per trace (thinned evenly beyond that).
const TRACE_CAP: usize = 2000;

/// Draws kept per chain for R-hat / ESS (thinned evenly beyond that).
const DRAW_CAP: usize = 1000;

/// Classes kept per chain for the timeline.
const CLASS_CAP: usize = 2000;

/// How often R-hat / ESS are recomputed while running.
const MIXING_EVERY: Duration = Duration::from_millis(500);

/// The running walk and what has been seen of it.
pub(super) struct WalkRun {
    cfg: ChainConfig,
    chain: Chain,
    pub(super) running: bool,
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

/// A walk condition with its mask `[d]` and observations resolved (test digits looked up): `[d]` for all chains, or
/// `[k * d]` for chains 0..k (repeated beyond).
pub(super) type ResolvedCondition = (WalkCondition, Arc<Vec<bool>>, Arc<Vec<f32>>);

impl Worker {
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

    pub(super) fn walk_command(&mut self, cmd: WalkCommand) -> crate::Result<()> {
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
    pub(super) fn resolve_condition_for(
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

    pub(super) fn walk_slice(&mut self, slice: Duration) -> crate::Result<()> {
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

    pub(super) fn publish_walk(&mut self, force: bool) {
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
