//! The 2D Lab workspace (teaching): an analytic 2D mixture whose smoothed density (rendered by
//! `shaders/density.wgsl`), score field, i-spheres, Langevin particles and their jumps are all exact and live.
//!
//! Two views: **Particles** (the editable 2D mixture seen at noise level sigma, particles of one or two samplers side
//! by side, their jumps, trails and histograms against the exact density) and **M-density** (seed 002 Fig. 1: a 1D
//! mixture seen through M = 2 measurements, the heatmap of `p(y1, y2)` and its score).
//!
//! The particles are stepped here, on the UI thread, in plain f64 under a per-frame time budget (the lab's maths is
//! in [`crate::lab`]; this module only drives it, `panel.rs` and `draw.rs` draw it and route input). Drawing code
//! reads state and records what the user asked for in a [`LabAction`] list that [`LabState::apply`] carries out after
//! the frame's widgets are drawn.

pub mod density;
mod draw;
mod panel;

pub use panel::show;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::lab::field::Field2;
use crate::lab::particles::{ParticleConfig, ParticleInit, ParticleSet, TvReport};
use crate::lab::scene::{LabPreset, Scene, fig1_mixture};
use crate::lab::spheres::{self, Overlap};
use crate::sampling::langevin::Sampler;
use crate::sampling::samplers::{Overdamped, SamplerKind};

/// The most particles the workspace runs per sampler.
pub const MAX_LAB_PARTICLES: usize = 10_000;

/// Time the particles may take per frame, so the UI keeps its frame rate.
const STEP_BUDGET: Duration = Duration::from_millis(8);

/// While the particles run, the TV distance is refreshed at most this often.
const TV_EVERY: Duration = Duration::from_millis(300);

/// Particles that keep a trail.
const TRAILS: usize = 24;

/// Which lab view is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabMode {
    /// The 2D mixture with particles.
    Particles,
    /// The M-density of a 1D mixture (seed 002 Fig. 1).
    MDensity,
}

/// One sampler's parameters (A or B).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerSettings {
    /// Which walk (a sampler of the registry; saved as its name).
    pub kind: SamplerKind,
    /// Step size.
    pub delta: f64,
    /// Friction rate.
    pub gamma: f64,
    /// Inverse mass.
    pub u: f64,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            kind: SamplerKind::new(&Overdamped),
            delta: 0.1,
            gamma: 1.0,
            u: 1.0,
        }
    }
}

impl SamplerSettings {
    /// The sampler these settings describe.
    pub fn sampler(&self) -> Sampler {
        Sampler::new(self.kind, self.delta, self.gamma, self.u)
    }

    fn set(&mut self, s: Sampler) {
        self.delta = s.delta();
        self.kind = s.kind();
        if let Some((g, u)) = s.gamma_u() {
            self.gamma = g;
            self.u = u;
        }
    }
}

/// Lab parameters that persist between sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LabSettings {
    /// Open view.
    pub mode: LabMode,
    /// The clean 2D mixture.
    pub scene: Scene,
    /// Noise level sigma.
    pub sigma: f64,
    /// Half-width of the square world window around the origin.
    pub half_width: f64,
    /// Sampler A.
    pub a: SamplerSettings,
    /// Sampler B (shown when `ab`).
    pub b: SamplerSettings,
    /// Run two samplers side by side on the same seed.
    pub ab: bool,
    /// Particles per sampler (taken at Reset).
    pub particles: usize,
    /// Seed (taken at Reset).
    pub seed: u64,
    /// Where particles start (taken at Reset).
    pub init: ParticleInit,
    /// Steps per frame while running (and per press of Step).
    pub steps_per_frame: usize,
    /// Trail length in steps.
    pub trail_len: usize,
    /// Std of a component added by clicking.
    pub new_std: f64,
    /// A click on an empty spot adds a component.
    pub click_adds: bool,
    /// Contour lines on the density.
    pub contours: bool,
    /// Logarithmic colour scale (4 decades).
    pub log_scale: bool,
    /// Score arrows on a grid.
    pub arrows: bool,
    /// i-spheres around the data points.
    pub spheres: bool,
    /// Draw them with radius sigma instead of the noise shell's sigma sqrt(2).
    pub sphere_radius_sigma: bool,
    /// Jumps `x_hat(y)` of the particles.
    pub jumps: bool,
    /// Trails of the first particles.
    pub trails: bool,
}

impl Default for LabSettings {
    fn default() -> Self {
        Self {
            mode: LabMode::Particles,
            scene: Scene::default(),
            sigma: 0.5,
            half_width: 5.0,
            a: SamplerSettings::default(),
            b: SamplerSettings {
                delta: 1.0,
                ..SamplerSettings::default()
            },
            ab: false,
            particles: 2000,
            seed: 0,
            init: ParticleInit::Uniform,
            steps_per_frame: 5,
            trail_len: 200,
            new_std: 0.3,
            click_adds: true,
            contours: true,
            log_scale: false,
            arrows: true,
            spheres: true,
            sphere_radius_sigma: false,
            jumps: true,
            trails: true,
        }
    }
}

impl LabSettings {
    /// Replaces every value the workspace cannot use (from a damaged settings file) by its default; returns the
    /// names of the fields replaced.
    pub fn sanitize(&mut self) -> Vec<&'static str> {
        let d = LabSettings::default();
        let mut fixed = Vec::new();
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(self.sigma) && self.sigma <= 100.0) {
            self.sigma = d.sigma;
            fixed.push("lab sigma");
        }
        if !(self.half_width.is_finite() && (0.5..=1000.0).contains(&self.half_width)) {
            self.half_width = d.half_width;
            fixed.push("lab view");
        }
        for (name, s, sd) in [
            ("lab sampler A", &mut self.a, d.a),
            ("lab sampler B", &mut self.b, d.b),
        ] {
            if !(positive(s.delta) && positive(s.gamma) && positive(s.u)) {
                *s = sd;
                fixed.push(name);
            }
        }
        if !(1..=MAX_LAB_PARTICLES).contains(&self.particles) {
            self.particles = d.particles;
            fixed.push("lab particles");
        }
        if !(1..=1000).contains(&self.steps_per_frame) {
            self.steps_per_frame = d.steps_per_frame;
            fixed.push("lab steps per frame");
        }
        if !(2..=5000).contains(&self.trail_len) {
            self.trail_len = d.trail_len;
            fixed.push("lab trail length");
        }
        if !(self.new_std.is_finite() && (0.0..=100.0).contains(&self.new_std)) {
            self.new_std = d.new_std;
            fixed.push("lab component std");
        }
        if self.scene.is_empty() || self.scene.mixture(1.0).is_err() {
            self.scene = d.scene;
            fixed.push("lab mixture");
        }
        fixed
    }

    fn world(&self) -> [f64; 4] {
        let h = self.half_width.clamp(0.5, 1000.0);
        [-h, h, -h, h]
    }

    fn config(&self, sampler: Sampler) -> ParticleConfig {
        ParticleConfig {
            n: self.particles.clamp(1, MAX_LAB_PARTICLES),
            seed: self.seed,
            sampler,
            init: self.init,
            bounds: self.world(),
            trails: TRAILS,
            trail_len: self.trail_len.clamp(2, 5000),
        }
    }
}

/// What drawing asked for; applied after the widgets, in [`LabState::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum LabAction {
    /// Start or pause the walk.
    RunPause,
    /// Advance `steps_per_frame` steps.
    Step,
    /// Restart the particles from the current settings.
    Reset,
    /// A sampler's parameters changed (A: false, B: true).
    SamplerChanged(bool),
    /// Load a preset mixture.
    Preset(LabPreset),
    /// Add a component at a world point.
    Add([f64; 2]),
    /// Start dragging component `k`.
    Grab(usize),
    /// Move the dragged component to a world point.
    DragTo([f64; 2]),
    /// Stop dragging.
    Release,
    /// Remove component `k`.
    Remove(usize),
}

/// Text boxes of one sampler's parameters.
#[derive(Default)]
struct ParamTexts {
    delta: String,
    gamma: String,
    u: String,
}

/// Runtime state of the workspace (not persisted).
pub struct LabState {
    /// The exact field of the current scene and sigma.
    field: Option<Field2>,
    /// What `field` was built from.
    field_key: Option<(Scene, f64)>,
    /// Top of the colour scale for `field`.
    peak: f64,
    /// The overlap rule at the current sigma.
    overlap: Option<Overlap>,
    /// The M-density field and its colour top, keyed by sigma.
    m_field: Option<(f64, Field2, f64)>,
    a: Option<ParticleSet>,
    b: Option<ParticleSet>,
    running: bool,
    dragging: Option<usize>,
    texts: [ParamTexts; 2],
    /// Last refused input or note.
    pub message: Option<String>,
    /// Wall time of the last frame's stepping, ms.
    step_ms: f32,
    /// Steps done in the last frame.
    steps_last_frame: usize,
    /// TV reports of A and B, recomputed when the particles move.
    tv: [Option<TvReport>; 2],
    tv_step: Option<u64>,
    tv_at: Option<Instant>,
    /// Pointer readout on the density.
    hover: Option<String>,
    /// Typed-entry box of sigma.
    sigma_text: String,
    /// Side of the last density view drawn, in points.
    view_side: f32,
    /// Consecutive frames in which the field (2D, M-density) changed: sigma or a component is moving, so the
    /// density is drawn at half resolution until it stops.
    streak: [u32; 2],
}

impl Default for LabState {
    fn default() -> Self {
        Self {
            field: None,
            field_key: None,
            peak: 1.0,
            overlap: None,
            m_field: None,
            a: None,
            b: None,
            running: false,
            dragging: None,
            texts: Default::default(),
            message: None,
            step_ms: 0.0,
            steps_last_frame: 0,
            tv: [None, None],
            tv_step: None,
            tv_at: None,
            hover: None,
            sigma_text: String::new(),
            view_side: 0.0,
            streak: [0, 0],
        }
    }
}

impl LabState {
    /// Whether the particles are walking (the app keeps repainting).
    pub fn running(&self) -> bool {
        self.running
    }

    /// Steps taken by sampler A's particles (0 before the first Reset).
    pub fn steps(&self) -> u64 {
        self.a.as_ref().map_or(0, ParticleSet::steps)
    }

    /// Side of the last density view drawn, in points.
    pub fn view_side(&self) -> f32 {
        self.view_side
    }

    /// Positions of sampler A's (`b = false`) or B's particles.
    pub fn positions(&self, b: bool) -> Option<&[[f64; 2]]> {
        let set = if b { self.b.as_ref() } else { self.a.as_ref() };
        set.map(ParticleSet::positions)
    }

    /// Rebuilds the field when the scene or sigma changed; returns whether it is usable.
    fn refresh_field(&mut self, settings: &LabSettings) -> bool {
        let key = (settings.scene.clone(), settings.sigma);
        let changed = self.field_key.as_ref() != Some(&key);
        self.streak[0] = if changed { self.streak[0] + 1 } else { 0 };
        if changed {
            match settings.scene.mixture(settings.sigma).and_then(Field2::new) {
                Ok(f) => {
                    self.peak = f.peak_density();
                    let pts: Vec<Vec<f64>> =
                        settings.scene.means.iter().map(|m| m.to_vec()).collect();
                    self.overlap = Some(spheres::overlap(&pts, settings.sigma));
                    self.field = Some(f);
                    self.tv_step = None;
                }
                Err(e) => {
                    self.message = Some(format!("{e}"));
                    self.field = None;
                }
            }
            self.field_key = Some(key);
        }
        self.field.is_some()
    }

    fn refresh_m_field(&mut self, sigma: f64) {
        let same = self.m_field.as_ref().is_some_and(|(s, _, _)| *s == sigma);
        self.streak[1] = if same { 0 } else { self.streak[1] + 1 };
        if same {
            return;
        }
        match fig1_mixture(sigma)
            .map_err(crate::lab::LabError::from)
            .and_then(Field2::new)
        {
            Ok(f) => {
                let top = f.peak_density();
                self.m_field = Some((sigma, f, top));
            }
            Err(e) => {
                self.message = Some(format!("{e}"));
                self.m_field = None;
            }
        }
    }

    fn reset(&mut self, settings: &LabSettings) {
        self.message = None;
        self.tv = [None, None];
        self.tv_step = None;
        let Some(field) = &self.field else {
            return;
        };
        let make = |s: &SamplerSettings| ParticleSet::new(&settings.config(s.sampler()), field);
        match make(&settings.a) {
            Ok(p) => self.a = Some(p),
            Err(e) => {
                self.message = Some(format!("A: {e}"));
                self.a = None;
            }
        }
        self.b = None;
        if settings.ab {
            match make(&settings.b) {
                Ok(p) => self.b = Some(p),
                Err(e) => self.message = Some(format!("B: {e}")),
            }
        }
    }

    /// Steps A and B in lockstep: `target` steps at most, within `budget` when one is given.
    fn advance(&mut self, target: usize, budget: Option<Duration>) {
        let Some(field) = &self.field else {
            return;
        };
        let t0 = Instant::now();
        let mut done = 0;
        while done < target {
            if let Some(a) = self.a.as_mut() {
                a.step(field, 1);
            }
            if let Some(b) = self.b.as_mut() {
                b.step(field, 1);
            }
            done += 1;
            if budget.is_some_and(|b| t0.elapsed() >= b) {
                break;
            }
        }
        self.steps_last_frame = done;
        self.step_ms = t0.elapsed().as_secs_f32() * 1000.0;
    }

    /// Carries out what the frame's drawing asked for.
    pub fn apply(&mut self, settings: &mut LabSettings, actions: Vec<LabAction>) {
        for act in actions {
            match act {
                LabAction::RunPause => {
                    if self.a.is_none() {
                        self.refresh_field(settings);
                        self.reset(settings);
                    }
                    self.running = !self.running && self.a.is_some();
                }
                LabAction::Step => {
                    if self.a.is_none() {
                        self.refresh_field(settings);
                        self.reset(settings);
                    }
                    self.running = false;
                    self.advance(settings.steps_per_frame.max(1), None);
                }
                LabAction::Reset => {
                    self.refresh_field(settings);
                    self.reset(settings);
                }
                LabAction::SamplerChanged(is_b) => {
                    let (s, set) = if is_b {
                        (settings.b.sampler(), self.b.as_mut())
                    } else {
                        (settings.a.sampler(), self.a.as_mut())
                    };
                    match s.validate() {
                        Ok(()) => {
                            if let Some(p) = set
                                && let Err(e) = p.set_sampler(s)
                            {
                                self.message = Some(format!("{e}"));
                            }
                        }
                        Err(e) => self.message = Some(format!("{e}; not applied")),
                    }
                }
                LabAction::Preset(p) => {
                    settings.scene = Scene::preset(p);
                    self.dragging = None;
                }
                LabAction::Add(at) => {
                    if let Err(e) = settings.scene.add(at, settings.new_std, 1.0) {
                        self.message = Some(format!("{e}"));
                    }
                }
                LabAction::Grab(k) => self.dragging = Some(k),
                LabAction::DragTo(at) => {
                    if let Some(k) = self.dragging {
                        settings.scene.move_to(k, at);
                    }
                }
                LabAction::Release => self.dragging = None,
                LabAction::Remove(k) => {
                    settings.scene.remove(k);
                    self.dragging = None;
                }
            }
        }
    }

    /// The frame's logic before drawing: the field follows the settings, running particles take their steps.
    fn tick(&mut self, settings: &LabSettings) {
        match settings.mode {
            LabMode::Particles => {
                if self.refresh_field(settings) && self.running {
                    self.advance(settings.steps_per_frame.max(1), Some(STEP_BUDGET));
                }
            }
            LabMode::MDensity => self.refresh_m_field(settings.sigma),
        }
        let step = self.a.as_ref().map(ParticleSet::steps);
        let due = !self.running || self.tv_at.is_none_or(|t| t.elapsed() >= TV_EVERY);
        if (self.tv_step != step || self.tv_step.is_none()) && due {
            self.tv_at = Some(Instant::now());
            if let Some(field) = &self.field {
                let bounds = settings.world();
                self.tv = [
                    self.a.as_ref().map(|p| p.tv_distance(field, bounds, 24)),
                    self.b.as_ref().map(|p| p.tv_distance(field, bounds, 24)),
                ];
            }
            self.tv_step = step;
        }
    }
}

/// The 2D Lab workspace: analytic mixtures stepped on the UI thread, its density drawn by a shader (registry entry
/// `lab::Lab`).
pub struct Lab;

impl super::workspace::Workspace for Lab {
    type Settings = LabSettings;
    type State = LabState;
    const NAME: &'static str = "lab";
    const ALIASES: &'static [&'static str] = &["2d-lab"];
    const LABEL: &'static str = "2D Lab";
    const AUTOSTART: Option<&'static str> = Some("the 2D Lab's particles");

    fn sanitize(s: &mut LabSettings) -> Vec<&'static str> {
        s.sanitize()
    }

    fn show(app: &mut super::App, ui: &mut egui::Ui, _actions: &mut super::Actions) {
        show(ui, &mut app.settings.lab, &mut app.ws.lab);
    }

    fn autostart(app: &mut super::App, _actions: &mut super::Actions) {
        if !app.ws.lab.running() {
            app.ws
                .lab
                .apply(&mut app.settings.lab, vec![LabAction::RunPause]);
        }
        app.autostart = false;
    }
}
