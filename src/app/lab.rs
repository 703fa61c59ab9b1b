//! The 2D Lab workspace (teaching): an analytic 2D mixture whose smoothed density (rendered by
//! `shaders/density.wgsl`), score field, i-spheres, Langevin particles and their jumps are all exact and live.
//!
//! Two views: **Particles** (the editable 2D mixture seen at noise level sigma, particles of one or two samplers side
//! by side, their jumps, trails and histograms against the exact density) and **M-density** (seed 002 Fig. 1: a 1D
//! mixture seen through M = 2 measurements, the heatmap of `p(y1, y2)` and its score).
//!
//! The particles are stepped here, on the UI thread, in plain f64 under a per-frame time budget (the lab's maths is
//! in [`crate::lab`]; this file only draws it and routes input). Drawing code reads state and records what the user
//! asked for in a [`LabAction`] list that [`LabState::apply`] carries out after the frame's widgets are drawn.

pub mod density;

use std::time::{Duration, Instant};

use egui::{Align2, Color32, FontId, Pos2, Rect, RichText, Sense, Shape, Stroke, Ui, Vec2};
use egui_plot::{Bar, BarChart, Legend, Line, Plot};
use serde::{Deserialize, Serialize};

use super::walk::{PRESETS, SamplerKind};
use super::widgets::{ParamEdit, format_param, log_param};
use crate::lab::field::Field2;
use crate::lab::particles::{ParticleConfig, ParticleInit, ParticleSet, TvReport};
use crate::lab::scene::{LabPreset, Scene, fig1_mixture};
use crate::lab::spheres::{self, Overlap};
use crate::lab::stationary::gaussian_stationary_variance;
use crate::sampling::langevin::Sampler;

/// The most particles the workspace runs per sampler.
pub const MAX_LAB_PARTICLES: usize = 10_000;

/// Time the particles may take per frame, so the UI keeps its frame rate.
const STEP_BUDGET: Duration = Duration::from_millis(8);

/// Particles whose jump line `y -> x_hat(y)` is drawn (jump points are drawn for all).
const JUMP_LINES: usize = 150;

/// Particles whose jump point is drawn (the jumps cost one score evaluation each per frame).
const JUMP_POINTS: usize = 3000;

/// While the particles run, the TV distance is refreshed at most this often.
const TV_EVERY: Duration = Duration::from_millis(300);

/// Particles that keep a trail.
const TRAILS: usize = 24;

/// View ids of the shader callbacks.
const VIEW_A: u64 = 1;
const VIEW_B: u64 = 2;
const VIEW_M: u64 = 3;

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
    /// Which walk.
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
            kind: SamplerKind::Overdamped,
            delta: 0.1,
            gamma: 1.0,
            u: 1.0,
        }
    }
}

impl SamplerSettings {
    /// The sampler these settings describe.
    pub fn sampler(&self) -> Sampler {
        let (delta, gamma, u) = (self.delta, self.gamma, self.u);
        match self.kind {
            SamplerKind::Overdamped => Sampler::Overdamped { delta },
            SamplerKind::Sachs => Sampler::Sachs { delta, gamma, u },
            SamplerKind::Cheng => Sampler::Cheng { delta, gamma, u },
        }
    }

    fn set(&mut self, s: Sampler) {
        self.delta = s.delta();
        self.kind = match s {
            Sampler::Overdamped { .. } => SamplerKind::Overdamped,
            Sampler::Sachs { .. } => SamplerKind::Sachs,
            Sampler::Cheng { .. } => SamplerKind::Cheng,
        };
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

/// Draws the workspace and applies what it asked for.
pub fn show(ui: &mut Ui, settings: &mut LabSettings, state: &mut LabState) {
    state.tick(settings);
    let mut actions = Vec::new();
    egui::Panel::left("lab_controls")
        .default_size(310.0)
        .resizable(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| controls(ui, settings, state, &mut actions));
        });
    egui::CentralPanel::default().show(ui, |ui| match settings.mode {
        LabMode::Particles => particles_view(ui, settings, state, &mut actions),
        LabMode::MDensity => m_density_view(ui, settings, state),
    });
    state.apply(settings, actions);
    // Running particles animate; a field that just changed gets one more frame to redraw at full resolution.
    if state.running || state.streak.iter().any(|&k| k > 0) {
        ui.ctx().request_repaint();
    }
}

fn controls(
    ui: &mut Ui,
    settings: &mut LabSettings,
    state: &mut LabState,
    actions: &mut Vec<LabAction>,
) {
    ui.heading("2D Lab");
    ui.horizontal(|ui| {
        ui.selectable_value(&mut settings.mode, LabMode::Particles, "Particles");
        ui.selectable_value(&mut settings.mode, LabMode::MDensity, "M-density (M = 2)");
    });
    if let ParamEdit::Refused(m) = log_param(
        ui,
        "sigma",
        &mut settings.sigma,
        0.02..=5.0,
        &mut state.sigma_text,
    ) {
        state.message = Some(m);
    }
    ui.label(
        RichText::new("Y = X + N(0, sigma^2 I): the density below is exact for every sigma").weak(),
    );
    if settings.mode == LabMode::Particles {
        ui.separator();
        run_controls(ui, state, actions);
    }
    ui.separator();
    ui.label(RichText::new("density").strong());
    ui.checkbox(&mut settings.contours, "contour lines");
    ui.checkbox(&mut settings.log_scale, "log colour scale (4 decades)");
    ui.checkbox(&mut settings.arrows, "score arrows");
    if settings.mode == LabMode::MDensity {
        if let Some(msg) = &state.message {
            ui.colored_label(Color32::from_rgb(230, 80, 60), msg);
        }
        return;
    }
    ui.separator();
    ui.label(RichText::new("mixture X").strong());
    ui.horizontal_wrapped(|ui| {
        for p in LabPreset::ALL {
            if ui.button(p.label()).clicked() {
                actions.push(LabAction::Preset(p));
            }
        }
    });
    ui.label(format!("components: {}", settings.scene.len()));
    ui.checkbox(&mut settings.click_adds, "click adds a component");
    ui.add(egui::Slider::new(&mut settings.new_std, 0.0..=2.0).text("new component std"));
    ui.add(
        egui::Slider::new(&mut settings.half_width, 1.0..=50.0)
            .logarithmic(true)
            .text("view half-width"),
    )
    .on_hover_text("the view shows [-w, w]^2; uniform starts fill it (at Reset)");
    ui.label(RichText::new("drag a centre to move it; right-click removes it").weak());
    ui.checkbox(&mut settings.spheres, "i-spheres");
    if settings.spheres {
        ui.checkbox(&mut settings.sphere_radius_sigma, "radius sigma (else sigma sqrt(2))")
            .on_hover_text(
                "noise N(0, sigma^2 I) in d = 2 concentrates at radius sigma sqrt(2): circles of that radius touch \
                 exactly when sigma = chi, the overlap rule; circles of radius sigma touch at sigma = sqrt(2) chi",
            );
    }
    if let Some(o) = &state.overlap {
        ui.label(format!("i-spheres: {}", o.verdict()));
        if o.pairs > 0 {
            ui.label(
                RichText::new(format!(
                    "chi min {}, sigma_c {}; overlap when sigma > chi (REFERENCE §8)",
                    format_param(o.chi_min),
                    format_param(o.sigma_c)
                ))
                .weak(),
            );
        }
    }
    ui.separator();
    ui.label(RichText::new("walk").strong());
    sampler_controls(
        ui,
        "A",
        &mut settings.a,
        &mut state.texts[0],
        false,
        settings.sigma,
        actions,
        &mut state.message,
    );
    ui.checkbox(
        &mut settings.ab,
        "A/B: a second sampler side by side (same seed)",
    );
    if settings.ab {
        if state.a.is_some() && state.b.is_none() {
            ui.label(RichText::new("press Reset to start B beside A").italics());
        }
        let sigma = settings.sigma;
        sampler_controls(
            ui,
            "B",
            &mut settings.b,
            &mut state.texts[1],
            true,
            sigma,
            actions,
            &mut state.message,
        );
    }
    ui.horizontal(|ui| {
        let label = ui.label("steps per frame");
        ui.add(egui::DragValue::new(&mut settings.steps_per_frame).range(1..=1000))
            .labelled_by(label.id);
    });
    ui.checkbox(
        &mut settings.jumps,
        "jumps x_hat(y) of the first 3000 (lines for the first 150)",
    );
    ui.checkbox(&mut settings.trails, "trails");
    ui.add(
        egui::Slider::new(&mut settings.trail_len, 2..=2000)
            .logarithmic(true)
            .text("trail length"),
    );
    ui.separator();
    ui.label(RichText::new("taken at Reset").weak());
    ui.add(
        egui::Slider::new(&mut settings.particles, 1..=MAX_LAB_PARTICLES)
            .logarithmic(true)
            .text("particles"),
    );
    egui::ComboBox::from_label("init")
        .selected_text(init_label(settings.init))
        .show_ui(ui, |ui| {
            for i in [ParticleInit::Uniform, ParticleInit::Exact] {
                ui.selectable_value(&mut settings.init, i, init_label(i));
            }
        });
    ui.horizontal(|ui| {
        let label = ui.label("seed");
        ui.add(egui::DragValue::new(&mut settings.seed))
            .labelled_by(label.id);
    });
    if let Some(msg) = &state.message {
        ui.colored_label(Color32::from_rgb(230, 80, 60), msg);
    }
}

/// Run / Step / Reset and what the particles are doing.
fn run_controls(ui: &mut Ui, state: &LabState, actions: &mut Vec<LabAction>) {
    ui.horizontal(|ui| {
        let run = if state.running { "Pause" } else { "Run" };
        if ui.button(run).clicked() {
            actions.push(LabAction::RunPause);
        }
        if ui.button("Step").clicked() {
            actions.push(LabAction::Step);
        }
        if ui.button("Reset").clicked() {
            actions.push(LabAction::Reset);
        }
    });
    if let Some(a) = &state.a {
        ui.label(format!("steps: {}", a.steps()));
        let live = |p: &ParticleSet| p.len() - p.diverged();
        let mut line = format!("particles: {}", live(a));
        if let Some(b) = &state.b {
            line.push_str(&format!(" (A), {} (B)", live(b)));
        }
        ui.label(line);
        let div = a.diverged() + state.b.as_ref().map_or(0, ParticleSet::diverged);
        if div > 0 {
            ui.colored_label(
                Color32::from_rgb(230, 80, 60),
                format!("{div} particles diverged and stopped: lower delta and press Reset"),
            );
        }
        if state.running {
            ui.label(
                RichText::new(format!(
                    "{} steps in {:.1} ms last frame",
                    state.steps_last_frame, state.step_ms
                ))
                .weak(),
            );
        }
    } else {
        ui.label("no particles yet: press Run, Step or Reset");
    }
}

fn init_label(i: ParticleInit) -> &'static str {
    match i {
        ParticleInit::Uniform => "uniform over the view",
        ParticleInit::Exact => "exact draws of Y",
    }
}

#[allow(clippy::too_many_arguments)]
fn sampler_controls(
    ui: &mut Ui,
    name: &str,
    s: &mut SamplerSettings,
    texts: &mut ParamTexts,
    is_b: bool,
    sigma: f64,
    actions: &mut Vec<LabAction>,
    message: &mut Option<String>,
) {
    let suffix = if is_b { " B" } else { "" };
    let mut changed = false;
    egui::ComboBox::from_label(format!("sampler {name}"))
        .selected_text(s.kind.label())
        .show_ui(ui, |ui| {
            for k in [
                SamplerKind::Overdamped,
                SamplerKind::Sachs,
                SamplerKind::Cheng,
            ] {
                changed |= ui.selectable_value(&mut s.kind, k, k.label()).changed();
            }
        });
    let mut edits = vec![log_param(
        ui,
        &format!("delta{suffix}"),
        &mut s.delta,
        1e-3..=5.0,
        &mut texts.delta,
    )];
    if s.kind != SamplerKind::Overdamped {
        edits.push(log_param(
            ui,
            &format!("gamma{suffix}"),
            &mut s.gamma,
            1e-2..=100.0,
            &mut texts.gamma,
        ));
        edits.push(log_param(
            ui,
            &format!("u{suffix}"),
            &mut s.u,
            1e-2..=100.0,
            &mut texts.u,
        ));
        ui.label(format!("gamma*delta = {}", format_param(s.gamma * s.delta)));
    }
    for e in edits {
        match e {
            ParamEdit::None => {}
            ParamEdit::Changed => changed = true,
            ParamEdit::Refused(m) => *message = Some(m),
        }
    }
    ui.horizontal_wrapped(|ui| {
        for p in &PRESETS {
            if ui.small_button(p.name).on_hover_text(p.note).clicked() {
                s.set((p.make)(sigma).0);
                *texts = ParamTexts::default();
                changed = true;
            }
        }
    });
    // The bias of the discretised walk, in closed form, on a unit Gaussian.
    let bias = match gaussian_stationary_variance(s.sampler(), 1.0) {
        Some(v) => format!("on N(0, 1) this walk samples variance {}", format_param(v)),
        None => "on N(0, 1) this walk is unstable: delta too large".into(),
    };
    ui.label(RichText::new(bias).weak());
    if changed {
        actions.push(LabAction::SamplerChanged(is_b));
    }
}

/// Maps between world coordinates (y up) and screen points inside `rect`.
#[derive(Clone, Copy)]
struct Frame2 {
    rect: Rect,
    world: [f64; 4],
}

impl Frame2 {
    fn to_screen(self, p: [f64; 2]) -> Pos2 {
        let [x0, x1, y0, y1] = self.world;
        let u = ((p[0] - x0) / (x1 - x0)) as f32;
        let v = ((y1 - p[1]) / (y1 - y0)) as f32;
        Pos2::new(
            self.rect.min.x + u * self.rect.width(),
            self.rect.min.y + v * self.rect.height(),
        )
    }

    fn to_world(self, p: Pos2) -> [f64; 2] {
        let [x0, x1, y0, y1] = self.world;
        let u = f64::from((p.x - self.rect.min.x) / self.rect.width());
        let v = f64::from((p.y - self.rect.min.y) / self.rect.height());
        [x0 + u * (x1 - x0), y1 - v * (y1 - y0)]
    }

    /// Screen points per world unit.
    fn scale(&self) -> f32 {
        self.rect.width() / (self.world[1] - self.world[0]) as f32
    }
}

/// The shader parameters of a view; `moving` (the field changed in the last frames) halves the resolution.
fn density_params(
    field: &Field2,
    world: [f64; 4],
    top: f64,
    settings: &LabSettings,
    moving: bool,
) -> density::DensityParams {
    let mut p = density::DensityParams::new(field, world, top);
    p.resolution = if moving { 0.5 } else { 1.0 };
    p.contours = if settings.contours { 1.0 } else { 0.0 };
    p.log_decades = if settings.log_scale { 4.0 } else { 0.0 };
    p
}

/// The colour scale beside a view: `top` at the top, 0 (or `top / 10^4`) at the bottom.
fn legend(ui: &Ui, rect: Rect, top: f64, log: bool) {
    let painter = ui.painter();
    let n = 48;
    let mut mesh = egui::Mesh::default();
    for i in 0..n {
        let t0 = i as f32 / n as f32;
        let y0 = rect.max.y - t0 * rect.height();
        let y1 = rect.max.y - (i + 1) as f32 / n as f32 * rect.height();
        mesh.add_colored_rect(
            Rect::from_min_max(Pos2::new(rect.min.x, y1), Pos2::new(rect.max.x, y0)),
            density::colormap(t0 + 0.5 / n as f32),
        );
    }
    painter.add(Shape::mesh(mesh));
    painter.rect_stroke(
        rect,
        0.0,
        Stroke::new(1.0, Color32::GRAY),
        egui::StrokeKind::Outside,
    );
    let text = ui.visuals().text_color();
    for k in 0..=4 {
        let t = k as f64 / 4.0;
        let v = if log {
            top * 10f64.powf(4.0 * (t - 1.0))
        } else {
            top * t
        };
        let y = rect.max.y - t as f32 * rect.height();
        painter.text(
            Pos2::new(rect.max.x + 4.0, y),
            Align2::LEFT_CENTER,
            format!("{v:.2e}"),
            FontId::monospace(10.0),
            text,
        );
    }
    painter.text(
        Pos2::new(rect.min.x, rect.min.y - 6.0),
        Align2::LEFT_BOTTOM,
        "p(y)",
        FontId::proportional(11.0),
        text,
    );
}

/// Score arrows on a 21 x 21 grid, length proportional to |score| (capped at 0.9 cell).
fn score_arrows(painter: &egui::Painter, f: &Frame2, field: &Field2) {
    let n = 21;
    let [x0, x1, y0, y1] = f.world;
    let cell = (x1 - x0) / n as f64;
    let stroke = Stroke::new(1.0, Color32::from_white_alpha(150));
    for j in 0..n {
        for i in 0..n {
            let y = [
                x0 + cell * (i as f64 + 0.5),
                y0 + (y1 - y0) / n as f64 * (j as f64 + 0.5),
            ];
            let s = field.score(y);
            if !(s[0].is_finite() && s[1].is_finite()) {
                continue;
            }
            // World length: 0.25 |score| sigma^2-free, capped so arrows never cross a cell.
            let norm = s[0].hypot(s[1]);
            let len = (0.15 * norm).min(0.9 * cell);
            if norm <= 0.0 || len < 1e-3 * cell {
                continue;
            }
            let d = [s[0] / norm * len, s[1] / norm * len];
            let a = f.to_screen(y);
            let b = f.to_screen([y[0] + d[0], y[1] + d[1]]);
            painter.arrow(a, b - a, stroke);
        }
    }
}

/// Draws one density view with everything on it; returns its response for the mixture editing.
#[allow(clippy::too_many_arguments)]
fn density_panel(
    ui: &mut Ui,
    side: f32,
    id: u64,
    title: &str,
    settings: &LabSettings,
    state: &LabState,
    set: Option<&ParticleSet>,
    colour: Color32,
) -> Option<(egui::Response, Frame2)> {
    let field = state.field.as_ref()?;
    ui.vertical(|ui| {
        ui.label(RichText::new(title).strong());
        let (outer, resp) =
            ui.allocate_exact_size(Vec2::new(side + 70.0, side), Sense::click_and_drag());
        // An accessible name, so screen readers (and tests) can find the view.
        let name = format!("density {}", &title[..1]);
        ui.ctx()
            .accesskit_node_builder(resp.id, |node| node.set_label(name));
        let rect = Rect::from_min_size(outer.min, Vec2::splat(side));
        let f = Frame2 {
            rect,
            world: settings.world(),
        };
        let painter = ui.painter_at(outer.expand(20.0));
        density::paint(
            &painter,
            rect,
            id,
            density_params(field, f.world, state.peak, settings, state.streak[0] >= 2),
        );
        legend(
            ui,
            Rect::from_min_size(
                Pos2::new(rect.max.x + 8.0, rect.min.y + 14.0),
                Vec2::new(12.0, side - 28.0),
            ),
            state.peak,
            settings.log_scale,
        );
        let painter = ui.painter_at(rect);
        if settings.arrows {
            score_arrows(&painter, &f, field);
        }
        if settings.spheres {
            let radius = if settings.sphere_radius_sigma {
                settings.sigma
            } else {
                spheres::sphere_radius(settings.sigma, 2)
            };
            let r = radius as f32 * f.scale();
            let overlapping: std::collections::HashSet<usize> = state
                .overlap
                .iter()
                .flat_map(|o| o.overlapping.iter().flat_map(|&(i, j)| [i, j]))
                .collect();
            if let Some(o) = &state.overlap {
                for &(i, j) in &o.overlapping {
                    if let (Some(a), Some(b)) =
                        (settings.scene.means.get(i), settings.scene.means.get(j))
                    {
                        painter.line_segment(
                            [f.to_screen(*a), f.to_screen(*b)],
                            Stroke::new(1.0, Color32::from_rgba_unmultiplied(255, 90, 70, 120)),
                        );
                    }
                }
            }
            for (k, m) in settings.scene.means.iter().enumerate() {
                let c = if overlapping.contains(&k) {
                    Color32::from_rgb(255, 60, 60)
                } else {
                    Color32::from_rgb(0, 230, 255)
                };
                // Dashed, so the i-spheres stand apart from the (solid) contour lines.
                let centre = f.to_screen(*m);
                let ring: Vec<Pos2> = (0..=72)
                    .map(|i| {
                        let a = i as f32 / 72.0 * std::f32::consts::TAU;
                        centre + r * Vec2::angled(a)
                    })
                    .collect();
                painter.extend(Shape::dashed_line(&ring, Stroke::new(2.0, c), 6.0, 4.0));
            }
        }
        if let Some(set) = set {
            particles(&painter, &f, field, set, settings, colour);
        }
        for (k, m) in settings.scene.means.iter().enumerate() {
            let p = f.to_screen(*m);
            let hot = state.dragging == Some(k);
            painter.circle(
                p,
                if hot { 6.0 } else { 4.5 },
                Color32::WHITE,
                Stroke::new(1.5, Color32::BLACK),
            );
        }
        Some((resp, f))
    })
    .inner
}

fn particles(
    painter: &egui::Painter,
    f: &Frame2,
    field: &Field2,
    set: &ParticleSet,
    settings: &LabSettings,
    colour: Color32,
) {
    if settings.trails {
        for (i, t) in set.trails().iter().enumerate() {
            if t.len() > 1 && set.is_alive(i) {
                let pts: Vec<Pos2> = t.iter().map(|p| f.to_screen(*p)).collect();
                painter.add(Shape::line(
                    pts,
                    Stroke::new(1.0, Color32::from_rgba_unmultiplied(255, 255, 255, 110)),
                ));
            }
        }
    }
    let mut mesh = egui::Mesh::default();
    let clip = painter.clip_rect();
    for y in set.live_positions() {
        let p = f.to_screen(y);
        if clip.contains(p) {
            mesh.add_colored_rect(Rect::from_center_size(p, Vec2::splat(2.5)), colour);
        }
    }
    painter.add(Shape::mesh(mesh));
    if settings.jumps {
        let jump_colour = Color32::from_rgb(255, 60, 40);
        let mut mesh = egui::Mesh::default();
        for (i, y) in set.live_positions().take(JUMP_POINTS).enumerate() {
            let x = field.jump(y);
            let (py, px) = (f.to_screen(y), f.to_screen(x));
            if i < JUMP_LINES {
                painter.line_segment(
                    [py, px],
                    Stroke::new(0.8, Color32::from_rgba_unmultiplied(255, 120, 90, 110)),
                );
            }
            if clip.contains(px) {
                mesh.add_colored_rect(Rect::from_center_size(px, Vec2::splat(2.0)), jump_colour);
            }
        }
        painter.add(Shape::mesh(mesh));
    }
}

fn hover_readout(resp: &egui::Response, f: &Frame2, field: &Field2) -> Option<String> {
    let pos = resp.hover_pos()?;
    if !f.rect.contains(pos) {
        return None;
    }
    let y = f.to_world(pos);
    let (lp, s) = field.log_density_and_score(y);
    let x = field.jump_from_score(y, s);
    Some(format!(
        "y = ({:.3}, {:.3})   p(y) = {:.4e}   score = ({:.3}, {:.3})   x_hat(y) = ({:.3}, {:.3})",
        y[0],
        y[1],
        lp.exp(),
        s[0],
        s[1],
        x[0],
        x[1]
    ))
}

fn particles_view(
    ui: &mut Ui,
    settings: &LabSettings,
    state: &mut LabState,
    actions: &mut Vec<LabAction>,
) {
    let Some(field) = state.field.clone() else {
        ui.label("the mixture is invalid; load a preset");
        return;
    };
    let panels = if settings.ab && state.b.is_some() {
        2
    } else {
        1
    };
    let avail = ui.available_size();
    let side = ((avail.x - 90.0 * panels as f32) / panels as f32)
        .min(avail.y - 260.0)
        .clamp(160.0, 1400.0);
    state.view_side = side;
    let mut hover = None;
    ui.horizontal(|ui| {
        let sets = [
            (
                state.a.as_ref(),
                VIEW_A,
                Color32::from_rgb(250, 250, 250),
                settings.a,
            ),
            (
                state.b.as_ref(),
                VIEW_B,
                Color32::from_rgb(255, 220, 120),
                settings.b,
            ),
        ];
        for (idx, (set, id, colour, s)) in sets.into_iter().enumerate().take(panels) {
            let title = format!(
                "{} {}: delta {}{}",
                if idx == 0 { "A" } else { "B" },
                s.kind.label(),
                format_param(s.delta),
                s.sampler()
                    .gamma_u()
                    .map(|(g, u)| format!(", gamma {}, u {}", format_param(g), format_param(u)))
                    .unwrap_or_default()
            );
            let Some((resp, f)) = density_panel(ui, side, id, &title, settings, state, set, colour)
            else {
                continue;
            };
            if let Some(h) = hover_readout(&resp, &f, &field) {
                hover = Some(h);
            }
            edit_mixture(&resp, &f, settings, state, actions);
        }
    });
    state.hover = hover;
    ui.label(
        RichText::new(
            state
                .hover
                .clone()
                .unwrap_or_else(|| "hover the density for y, p(y), score and x_hat(y)".into()),
        )
        .monospace(),
    );
    histograms(ui, settings, state, &field);
}

fn edit_mixture(
    resp: &egui::Response,
    f: &Frame2,
    settings: &LabSettings,
    state: &LabState,
    actions: &mut Vec<LabAction>,
) {
    let grab = 12.0 / f.scale() as f64;
    if resp.drag_started()
        && let Some(pos) = resp.ctx.input(|i| i.pointer.press_origin())
        && let Some(k) = settings.scene.nearest(f.to_world(pos), grab)
    {
        actions.push(LabAction::Grab(k));
    }
    if resp.dragged()
        && state.dragging.is_some()
        && let Some(pos) = resp.interact_pointer_pos()
    {
        actions.push(LabAction::DragTo(
            f.to_world(pos.clamp(f.rect.min, f.rect.max)),
        ));
    }
    if resp.drag_stopped() {
        actions.push(LabAction::Release);
    }
    if let Some(pos) = resp.interact_pointer_pos()
        && f.rect.contains(pos)
    {
        let at = f.to_world(pos);
        let near = settings.scene.nearest(at, grab);
        if resp.clicked() && settings.click_adds && near.is_none() {
            actions.push(LabAction::Add(at));
        }
        if resp.secondary_clicked()
            && let Some(k) = near
        {
            actions.push(LabAction::Remove(k));
        }
    }
}

fn histograms(ui: &mut Ui, settings: &LabSettings, state: &LabState, field: &Field2) {
    let [lo, hi, _, _] = settings.world();
    let bins = 60;
    let w = (hi - lo) / bins as f64;
    let exact: Vec<[f64; 2]> = (0..=400)
        .map(|i| {
            let t = lo + (hi - lo) * i as f64 / 400.0;
            [t, field.marginal_density(0, t)]
        })
        .collect();
    let mut tv_line = String::new();
    for (name, tv) in ["A", "B"].iter().zip(&state.tv) {
        if let Some(tv) = tv {
            tv_line.push_str(&format!(
                "TV({name}) = {:.3} (sampling noise alone ~ {:.3})   ",
                tv.tv, tv.noise_floor
            ));
        }
    }
    ui.horizontal(|ui| {
        ui.label(RichText::new("histogram of y1 against the exact marginal of Y").strong());
        if !tv_line.is_empty() {
            ui.label(tv_line).on_hover_text(
                "total variation between the particles' 24x24 histogram over the view and the exact bin \
                 probabilities; well above the noise level means the walk is biased (e.g. a large delta)",
            );
        }
    });
    Plot::new("lab_marginal")
        .height(ui.available_height().clamp(120.0, 260.0))
        .legend(Legend::default())
        .include_y(0.0)
        .x_axis_label("y1")
        .show(ui, |p| {
            let sets = [
                (state.a.as_ref(), "A", Color32::from_rgb(120, 170, 255)),
                (state.b.as_ref(), "B", Color32::from_rgb(255, 190, 80)),
            ];
            for (set, name, colour) in sets {
                if let Some(set) = set {
                    let h = set.marginal_histogram(0, lo, hi, bins);
                    let bars = h
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| Bar::new(lo + w * (i as f64 + 0.5), d).width(w))
                        .collect();
                    p.bar_chart(
                        BarChart::new(format!("particles {name}"), bars)
                            .color(colour.gamma_multiply(0.7)),
                    );
                }
            }
            p.line(
                Line::new("exact p(y1)", exact)
                    .color(Color32::from_rgb(240, 240, 240))
                    .width(2.0),
            );
        });
}

fn m_density_view(ui: &mut Ui, settings: &LabSettings, state: &mut LabState) {
    let Some((sigma, field, top)) = state.m_field.clone() else {
        ui.label("the M-density could not be built");
        return;
    };
    ui.label(RichText::new(format!(
        "M-density (seed 002 Fig. 1): a 1D mixture X seen through two measurements Y_m = X + N(0, sigma^2), sigma = {}",
        format_param(sigma)
    )).strong());
    let avail = ui.available_size();
    let side = (avail.x - 420.0).min(avail.y - 60.0).clamp(160.0, 1400.0);
    let world = [-5.0, 5.0, -5.0, 5.0];
    let mut hover = None;
    ui.horizontal(|ui| {
        let (outer, resp) = ui.allocate_exact_size(Vec2::new(side + 70.0, side), Sense::hover());
        ui.ctx()
            .accesskit_node_builder(resp.id, |node| node.set_label("M-density"));
        let rect = Rect::from_min_size(outer.min, Vec2::splat(side));
        let f = Frame2 { rect, world };
        let painter = ui.painter_at(outer.expand(20.0));
        density::paint(
            &painter,
            rect,
            VIEW_M,
            density_params(&field, world, top, settings, state.streak[1] >= 2),
        );
        legend(ui, Rect::from_min_size(Pos2::new(rect.max.x + 8.0, rect.min.y + 14.0), Vec2::new(12.0, side - 28.0)), top, settings.log_scale);
        let painter = ui.painter_at(rect);
        // The diagonal y1 = y2, where x (x) M lives and every jump lands; the density is symmetric about it.
        painter.line_segment(
            [f.to_screen([-5.0, -5.0]), f.to_screen([5.0, 5.0])],
            Stroke::new(1.0, Color32::from_white_alpha(140)),
        );
        if settings.arrows {
            score_arrows(&painter, &f, &field);
        }
        painter.text(rect.left_top() + Vec2::new(6.0, 4.0), Align2::LEFT_TOP, "y2", FontId::proportional(12.0), Color32::WHITE);
        painter.text(rect.right_bottom() - Vec2::new(6.0, 4.0), Align2::RIGHT_BOTTOM, "y1", FontId::proportional(12.0), Color32::WHITE);
        if let Some(pos) = resp.hover_pos()
            && rect.contains(pos)
        {
            let y = f.to_world(pos);
            let x = field.jump(y);
            painter.line_segment([pos, f.to_screen(x)], Stroke::new(1.5, Color32::from_rgb(255, 90, 60)));
            painter.circle_filled(f.to_screen(x), 4.0, Color32::from_rgb(255, 90, 60));
            hover = hover_readout(&resp, &f, &field);
        }
        ui.vertical(|ui| {
            ui.label("the clean density p(x) and one channel's p(y1)");
            let mix = field.mixture();
            let clean: Vec<[f64; 2]> = (0..=400)
                .map(|i| {
                    let t = -5.0 + 10.0 * i as f64 / 400.0;
                    let p: f64 = mix
                        .weights()
                        .iter()
                        .zip(mix.means())
                        .zip(mix.stds())
                        .map(|((w, m), s)| {
                            w * (-(t - m) * (t - m) / (2.0 * s * s)).exp()
                                / (2.0 * std::f64::consts::PI * s * s).sqrt()
                        })
                        .sum();
                    [t, p]
                })
                .collect();
            let noisy: Vec<[f64; 2]> = (0..=400)
                .map(|i| {
                    let t = -5.0 + 10.0 * i as f64 / 400.0;
                    [t, field.marginal_density(0, t)]
                })
                .collect();
            Plot::new("lab_m_clean")
                .width(320.0)
                .height(220.0)
                .legend(Legend::default())
                .include_y(0.0)
                .show(ui, |p| {
                    p.line(Line::new("p(x)", clean).width(2.0));
                    p.line(Line::new("p(y1)", noisy).width(2.0));
                });
            ui.label(RichText::new("Hover the heatmap: the red line is the jump from (y1, y2) to (x_hat, x_hat) on the diagonal.").weak());
        });
    });
    state.hover = hover;
    ui.label(
        RichText::new(
            state
                .hover
                .clone()
                .unwrap_or_else(|| "hover the density for y, p(y), score and x_hat(y)".into()),
        )
        .monospace(),
    );
}
