//! The Walk-Jump workspace: sampler and its parameters (applied to the running chains at the next step), presets
//! from REFERENCE.md §6, run controls, the live grid of jumps (and of y), the film strip of one chain, traces,
//! R-hat / ESS across chains, and classes when a classifier is loaded (those views in `walk/views.rs`).

use egui::{Color32, RichText, Ui};
use serde::{Deserialize, Serialize};

use super::messages::{ModelInfo, WalkCommand, WalkCondition, WalkFrame, WorkerCommand};
use super::widgets::{DrawPad, ImageGrid, ParamEdit, format_param, log_param};
use super::{Actions, SaveKind};
use crate::sampling::chain::{ChainConfig, ChainInit};

mod condition;
mod views;

use crate::sampling::langevin::Sampler;
use crate::sampling::samplers::{Overdamped, SamplerKind};
pub use condition::{CondSettings, CondSource, HeldMark, MaskPreset, condition_record};
use condition::{condition_controls, condition_of};
use views::views;

/// Walk parameters that persist between sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WalkSettings {
    /// Which walk (a sampler of the registry; saved as its name).
    pub sampler: SamplerKind,
    /// Step size (project convention).
    pub delta: f64,
    /// Friction rate.
    pub gamma: f64,
    /// Inverse mass.
    pub u: f64,
    /// Steps per jump.
    pub every: usize,
    /// Number of chains (taken at reset).
    pub chains: usize,
    /// Initialisation (taken at reset).
    pub init: ChainInit,
    /// Seed (taken at reset).
    pub seed: u64,
    /// Show the noisy states y beside the jumps.
    pub show_noisy: bool,
    /// sha256 of the model these parameters were set for; another model gets its recommendation.
    pub tuned_for: Option<String>,
    /// A/B comparison on: a second set of chains with the parameters `b`, same chains, init and seed.
    pub ab: bool,
    /// The B side's sampler parameters.
    pub b: SideB,
    /// Conditional walk-jump: hold part of an image fixed.
    pub cond: CondSettings,
}

/// The sampler of the B side of an A/B comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SideB {
    /// Which walk.
    pub sampler: SamplerKind,
    /// Step size.
    pub delta: f64,
    /// Friction rate.
    pub gamma: f64,
    /// Inverse mass.
    pub u: f64,
}

impl Default for SideB {
    fn default() -> Self {
        // Four times the default step: the comparison shows at once what a large delta does.
        Self {
            sampler: SamplerKind::new(&Overdamped),
            delta: 4.0 * std::f64::consts::SQRT_2 * 0.2,
            gamma: 0.5,
            u: 1.0,
        }
    }
}

impl SideB {
    /// The sampler these parameters describe.
    pub fn sampler(&self) -> Sampler {
        Sampler::new(self.sampler, self.delta, self.gamma, self.u)
    }
}

impl Default for WalkSettings {
    fn default() -> Self {
        Self {
            sampler: SamplerKind::new(&Overdamped),
            delta: std::f64::consts::SQRT_2 * 0.2,
            gamma: 0.5,
            u: 1.0,
            every: 10,
            chains: 16,
            init: ChainInit::UniformNoise,
            seed: 0,
            show_noisy: false,
            tuned_for: None,
            ab: false,
            b: SideB::default(),
            cond: CondSettings::default(),
        }
    }
}

impl WalkSettings {
    /// The sampler these settings describe.
    pub fn sampler(&self) -> Sampler {
        Sampler::new(self.sampler, self.delta, self.gamma, self.u)
    }

    /// What the worker must know about the B side (`None`: A/B is off).
    pub fn b_sampler(&self) -> Option<Sampler> {
        self.ab.then(|| self.b.sampler())
    }

    /// The full chain configuration.
    pub fn config(&self) -> ChainConfig {
        ChainConfig {
            sampler: self.sampler(),
            every: self.every.max(1),
            chains: self.chains.clamp(1, 256),
            init: self.init,
            seed: self.seed,
        }
    }

    /// Takes a sampler (kind and parameters; gamma and u are kept when it has none) and a jump interval.
    pub fn set_sampler(&mut self, s: Sampler, every: Option<usize>) {
        self.delta = s.delta();
        self.sampler = s.kind();
        if let Some((gamma, u)) = s.gamma_u() {
            self.gamma = gamma;
            self.u = u;
        }
        if let Some(k) = every {
            self.every = k;
        }
    }
}

/// A preset of REFERENCE.md §6: the sampler for a model of noise level sigma, and the jump interval if it fixes one.
pub struct Preset {
    /// Shown on the button.
    pub name: &'static str,
    /// Where it comes from.
    pub note: &'static str,
    /// `sigma -> (sampler, every)`.
    pub make: fn(f64) -> (Sampler, Option<usize>),
}

/// The presets of REFERENCE.md §6 (overdamped paper deltas converted with `delta_project = sqrt(2) delta_paper`).
pub const PRESETS: [Preset; 4] = [
    Preset {
        name: "MEMs 1x16 (Cheng)",
        note: "Algorithm 2, delta = sigma/2, gamma = 1/2, u = 1, jump every 10",
        make: |sigma| (Sampler::cheng(sigma / 2.0, 0.5, 1.0), Some(10)),
    },
    Preset {
        name: "MEMs 1x4 (Sachs)",
        note: "Algorithm 1, delta = 1, gamma = 1/4, u = 1",
        make: |_| (Sampler::sachs(1.0, 0.25, 1.0), None),
    },
    Preset {
        name: "UVB overdamped",
        note: "paper delta 0.2 = project delta 0.2 sqrt(2), jump every 10",
        make: |_| {
            (
                Sampler::overdamped(0.2 * std::f64::consts::SQRT_2),
                Some(10),
            )
        },
    },
    Preset {
        name: "NEB overdamped",
        note: "paper delta sigma/100 = project delta sqrt(2) sigma/100",
        make: |sigma| {
            (
                Sampler::overdamped(std::f64::consts::SQRT_2 * sigma / 100.0),
                None,
            )
        },
    },
];

/// Runtime state of the workspace: the newest frame and its textures.
pub struct WalkView {
    /// The newest snapshot from the worker.
    pub frame: Option<WalkFrame>,
    /// The frame changed since the textures were last updated.
    dirty: bool,
    /// Jumps of every chain.
    pub jumps: ImageGrid,
    /// Noisy states of every chain.
    pub noisy: ImageGrid,
    /// Film strip of the selected chain.
    pub film: ImageGrid,
    /// Jumps of every chain of the B side.
    pub jumps_b: ImageGrid,
    /// Film strip of the selected chain of the B side.
    pub film_b: ImageGrid,
    b_delta_text: String,
    b_gamma_text: String,
    b_u_text: String,
    delta_text: String,
    gamma_text: String,
    u_text: String,
    /// Last refused input or note, shown under the parameters.
    pub message: Option<String>,
    /// The held region painted with the brush (white = held).
    pub mask_pad: DrawPad,
    /// The observation picked from a jump.
    pub picked: Option<Vec<f32>>,
    /// Images read from a file for conditioned chains: the file and the images `[k * d]`.
    pub loaded: Option<(std::path::PathBuf, Vec<f32>)>,
    /// The loaded model the jumps come from (`None`: the walking model).
    pub jump_with: Option<std::path::PathBuf>,
    /// The condition last sent to the worker (`None` when nothing is held).
    pub sent_condition: Option<Option<WalkCondition>>,
    /// The translucent mark of the held pixels drawn over every tile, for the mask it was made from.
    held_mark: Option<(std::sync::Arc<Vec<bool>>, egui::TextureHandle)>,
}

impl Default for WalkView {
    fn default() -> Self {
        Self {
            frame: None,
            dirty: false,
            jumps: ImageGrid::new("walk-jumps"),
            noisy: ImageGrid::new("walk-noisy"),
            film: ImageGrid::new("walk-film"),
            jumps_b: ImageGrid::new("walk-jumps-b"),
            film_b: ImageGrid::new("walk-film-b"),
            b_delta_text: String::new(),
            b_gamma_text: String::new(),
            b_u_text: String::new(),
            delta_text: String::new(),
            gamma_text: String::new(),
            u_text: String::new(),
            message: None,
            mask_pad: DrawPad::default(),
            picked: None,
            loaded: None,
            jump_with: None,
            sent_condition: None,
            held_mark: None,
        }
    }
}

impl WalkView {
    /// Takes a new snapshot.
    pub fn apply(&mut self, frame: WalkFrame) {
        self.frame = Some(frame);
        self.dirty = true;
    }

    /// Forgets the run (the model changed).
    pub fn clear(&mut self) {
        self.frame = None;
        self.dirty = true;
    }

    /// Resets the typed-entry boxes so they show the current values.
    pub fn refresh_texts(&mut self) {
        self.delta_text.clear();
        self.gamma_text.clear();
        self.u_text.clear();
    }

    /// Whether the chains are running.
    pub fn running(&self) -> bool {
        self.frame.as_ref().is_some_and(|f| f.running)
    }

    fn update_textures(&mut self, ctx: &egui::Context) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(f) = &self.frame else {
            self.jumps.update(ctx, &[], 0, 0, 1);
            self.noisy.update(ctx, &[], 0, 0, 1);
            self.film.update(ctx, &[], 0, 0, 1);
            self.jumps_b.update(ctx, &[], 0, 0, 1);
            self.film_b.update(ctx, &[], 0, 0, 1);
            return;
        };
        let (h, w) = f.image_hw;
        let cols = grid_cols(f.jumps.len());
        self.jumps.update(ctx, &f.jumps, h, w, cols);
        self.noisy.update(ctx, &f.noisy, h, w, cols);
        self.film.update(ctx, &f.film, h, w, 12);
        match &f.b {
            Some(b) => {
                self.jumps_b.update(ctx, &b.jumps, h, w, cols);
                self.film_b.update(ctx, &b.film, h, w, 12);
            }
            None => {
                self.jumps_b.update(ctx, &[], 0, 0, 1);
                self.film_b.update(ctx, &[], 0, 0, 1);
            }
        }
    }
}

/// Tiles per row for n chains: a near-square grid, at most 16 wide.
pub fn grid_cols(n: usize) -> usize {
    let mut c = 1;
    while c * c < n && c < 16 {
        c += 1;
    }
    c
}

/// Keyboard and button actions shared with the top-level shortcuts.
pub fn run_or_pause(settings: &WalkSettings, view: &WalkView, actions: &mut Actions) {
    if view.running() {
        actions.send(WorkerCommand::Walk(WalkCommand::Pause));
    } else {
        send_b(settings, actions);
        actions.send(WorkerCommand::Walk(WalkCommand::Run(settings.config())));
    }
}

/// With A/B on, makes sure the worker runs B with the current B parameters (they persist between sessions, the
/// worker does not).
fn send_b(settings: &WalkSettings, actions: &mut Actions) {
    if let Some(b) = settings.b_sampler() {
        actions.send(WorkerCommand::Walk(WalkCommand::SetB(Some(b))));
    }
}

/// One jump's worth of steps.
pub fn step(settings: &WalkSettings, actions: &mut Actions) {
    send_b(settings, actions);
    actions.send(WorkerCommand::Walk(WalkCommand::Step(settings.config())));
}

/// Restart the chains with the current settings.
pub fn reset(settings: &WalkSettings, view: &mut WalkView, actions: &mut Actions) {
    view.message = None;
    send_b(settings, actions);
    actions.send(WorkerCommand::Walk(WalkCommand::Reset(settings.config())));
}

/// What the Walk-Jump workspace needs from the rest of the app besides its own state.
pub struct WalkContext<'a> {
    /// The walking model, once loaded.
    pub model: Option<&'a ModelInfo>,
    /// The digit drawn with the mouse (a possible observation).
    pub drawn: &'a DrawPad,
    /// Loaded models that can jump the walking model's chains: `(path, label)`.
    pub jump_models: Vec<(std::path::PathBuf, String)>,
}

/// Draws the workspace.
pub fn show(
    ui: &mut Ui,
    settings: &mut WalkSettings,
    view: &mut WalkView,
    cx: &WalkContext<'_>,
    actions: &mut Actions,
) {
    view.update_textures(ui.ctx());
    let model = cx.model;
    if let Some((_, h, w)) = model.map(|m| m.shape) {
        view.mask_pad.resize(h, w);
    }
    // A condition saved with the settings reaches the worker before the first chains are made.
    if view.sent_condition.is_none() && model.is_some() {
        match condition_of(settings, view, cx) {
            Ok(Some(c)) => {
                actions.send(WorkerCommand::Walk(WalkCommand::SetCondition(Some(
                    c.clone(),
                ))));
                view.sent_condition = Some(Some(c));
            }
            Ok(None) | Err(_) => view.sent_condition = Some(None),
        }
    }
    egui::Panel::left("walk_controls")
        .default_size(300.0)
        .resizable(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                controls(ui, settings, view, model, actions);
                ui.separator();
                condition_controls(ui, settings, view, cx, actions);
            });
        });
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| views(ui, settings, view, actions));
    });
}

fn controls(
    ui: &mut Ui,
    settings: &mut WalkSettings,
    view: &mut WalkView,
    model: Option<&ModelInfo>,
    actions: &mut Actions,
) {
    ui.heading("Walk");
    if let Some(m) = model
        && !m.has_score
    {
        ui.colored_label(
            Color32::from_rgb(220, 120, 40),
            format!(
                "a {} model has no score of y and cannot walk; pick DEEN, UVB or MDAE",
                m.kind
            ),
        );
    }
    let live = view.frame.is_some();
    let mut sampler_changed = false;
    let mut texts = [&mut view.delta_text, &mut view.gamma_text, &mut view.u_text];
    let (changed, refused) = sampler_params(
        ui,
        "",
        &mut settings.sampler,
        [&mut settings.delta, &mut settings.gamma, &mut settings.u],
        &mut texts,
    );
    sampler_changed |= changed;
    if changed {
        view.message = None;
    }
    if let Some(msg) = refused {
        view.message = Some(msg);
    }
    if sampler_changed {
        let s = settings.sampler();
        match s.validate() {
            Ok(()) if live => actions.send(WorkerCommand::Walk(WalkCommand::SetSampler(s))),
            Ok(()) => {}
            Err(e) => view.message = Some(format!("{e}; not applied")),
        }
    }
    ui.horizontal(|ui| {
        let label = ui.label("steps per jump");
        let r = ui
            .add(
                egui::DragValue::new(&mut settings.every)
                    .range(1..=100_000)
                    .speed(0.5),
            )
            .labelled_by(label.id);
        if r.changed() && live {
            actions.send(WorkerCommand::Walk(WalkCommand::SetEvery(
                settings.every.max(1),
            )));
        }
    });
    ab_controls(ui, settings, view, actions);
    ui.separator();
    ui.label(RichText::new("taken at Reset").weak());
    ui.add(egui::Slider::new(&mut settings.chains, 1..=256).text("chains"));
    egui::ComboBox::from_label("init")
        .selected_text(init_label(settings.init))
        .show_ui(ui, |ui| {
            for i in [
                ChainInit::Uniform,
                ChainInit::UniformNoise,
                ChainInit::DataNoise,
            ] {
                ui.selectable_value(&mut settings.init, i, init_label(i));
            }
        });
    ui.horizontal(|ui| {
        let label = ui.label("seed");
        ui.add(egui::DragValue::new(&mut settings.seed))
            .labelled_by(label.id);
    });
    if let Some(f) = &view.frame
        && let Some(c) = &f.config
        && (c.chains != settings.chains || c.init != settings.init || c.seed != settings.seed)
    {
        ui.label(RichText::new("chains / init / seed changed: press Reset").italics());
    }
    ui.separator();
    ui.label("presets (REFERENCE.md §6)");
    let sigma = model.map(|m| m.sigma).unwrap_or(1.0);
    ui.horizontal_wrapped(|ui| {
        for p in &PRESETS {
            if ui.button(p.name).on_hover_text(p.note).clicked() {
                let (s, every) = (p.make)(sigma);
                settings.set_sampler(s, every);
                view.refresh_texts();
                view.message = None;
                if live {
                    actions.send(WorkerCommand::Walk(WalkCommand::SetSampler(s)));
                    if let Some(k) = every {
                        actions.send(WorkerCommand::Walk(WalkCommand::SetEvery(k)));
                    }
                }
            }
        }
        if let Some(m) = model
            && ui
                .button("model's recommendation")
                .on_hover_text(
                    "the checkpoint's sampler metadata, or the §6 default for its sigma and M",
                )
                .clicked()
        {
            let (s, every) = m.recommended;
            settings.set_sampler(s, Some(every));
            view.refresh_texts();
            if live {
                actions.send(WorkerCommand::Walk(WalkCommand::SetSampler(s)));
                actions.send(WorkerCommand::Walk(WalkCommand::SetEvery(every)));
            }
        }
    });
    if let Some(msg) = &view.message {
        ui.colored_label(Color32::from_rgb(230, 80, 60), msg);
    }
    ui.separator();
    ui.horizontal(|ui| {
        let label = if view.running() { "Pause" } else { "Run" };
        if ui.button(label).on_hover_text("Space").clicked() {
            run_or_pause(settings, view, actions);
        }
        if ui
            .button("Step")
            .on_hover_text("S: walk to the next jump")
            .clicked()
        {
            step(settings, actions);
        }
        if ui.button("Reset").on_hover_text("R").clicked() {
            reset(settings, view, actions);
        }
    });
    ui.checkbox(&mut settings.show_noisy, "show y (noisy states)");
    ui.separator();
    ui.label("export");
    ui.horizontal_wrapped(|ui| {
        let has = view.frame.is_some();
        if ui.add_enabled(has, egui::Button::new("grid PNG")).clicked() {
            actions.saves.push(SaveKind::JumpGrid);
        }
        if ui
            .add_enabled(has, egui::Button::new("film strip PNG"))
            .clicked()
        {
            actions.saves.push(SaveKind::FilmStrip);
        }
        if ui
            .add_enabled(has, egui::Button::new("chain GIF"))
            .on_hover_text(
                "the followed chain's recent jumps as an animation (A beside B in A/B mode)",
            )
            .clicked()
        {
            actions.saves.push(SaveKind::ChainGif);
        }
        if ui
            .add_enabled(has, egui::Button::new("traces CSV"))
            .clicked()
        {
            actions.saves.push(SaveKind::TracesCsv);
        }
        if ui
            .add_enabled(has, egui::Button::new("run JSON"))
            .on_hover_text("replay with: walkjump sample --replay FILE --out strip.png")
            .clicked()
        {
            actions.saves.push(SaveKind::RunJson);
        }
        if ui
            .add_enabled(model.is_some(), egui::Button::new("model with this walk"))
            .on_hover_text(
                "a copy of the model's checkpoint whose recommended walk is this sampler and jump interval \
                 (the tensors unchanged): the app and every command then start from it",
            )
            .clicked()
        {
            actions.saves.push(SaveKind::ModelWithWalk);
        }
    });
}

/// The sampler choice (every sampler of the registry) and its delta / gamma / u (log sliders with typed entry; gamma
/// and u only for an underdamped sampler) for one side; `suffix` names the side in the labels (`""` for A, `" B"`
/// for B). Returns whether anything changed and a refused typed value's message.
fn sampler_params(
    ui: &mut Ui,
    suffix: &str,
    kind: &mut SamplerKind,
    [delta, gamma, u]: [&mut f64; 3],
    texts: &mut [&mut String; 3],
) -> (bool, Option<String>) {
    let mut changed = false;
    egui::ComboBox::from_label(format!("sampler{suffix}"))
        .selected_text(kind.label())
        .show_ui(ui, |ui| {
            for k in SamplerKind::all() {
                changed |= ui
                    .selectable_value(kind, k, k.label())
                    .on_hover_text(k.help())
                    .changed();
            }
        });
    let [dt, gt, ut] = texts;
    let mut edits = vec![log_param(
        ui,
        &format!("delta{suffix}"),
        delta,
        1e-4..=10.0,
        dt,
    )];
    if kind.underdamped() {
        edits.push(log_param(
            ui,
            &format!("gamma{suffix}"),
            gamma,
            1e-3..=100.0,
            gt,
        ));
        edits.push(log_param(ui, &format!("u{suffix}"), u, 1e-2..=100.0, ut));
        ui.label(format!(
            "gamma*delta = {} (friction per step)",
            format_param(*gamma * *delta)
        ));
    }
    let mut refused = None;
    for e in edits {
        match e {
            ParamEdit::None => {}
            ParamEdit::Changed => changed = true,
            ParamEdit::Refused(msg) => refused = Some(msg),
        }
    }
    (changed, refused)
}

/// The A/B switch and the B side's sampler parameters.
fn ab_controls(
    ui: &mut Ui,
    settings: &mut WalkSettings,
    view: &mut WalkView,
    actions: &mut Actions,
) {
    ui.separator();
    let toggled = ui
        .checkbox(&mut settings.ab, "A/B: compare a second parameter set")
        .on_hover_text(
            "B runs the same chains from the same states with the same noise, with its own sampler; \
             turning it on restarts the chains",
        )
        .changed();
    let mut changed = false;
    if settings.ab {
        let b = &mut settings.b;
        let mut texts = [
            &mut view.b_delta_text,
            &mut view.b_gamma_text,
            &mut view.b_u_text,
        ];
        let (edited, refused) = sampler_params(
            ui,
            " B",
            &mut b.sampler,
            [&mut b.delta, &mut b.gamma, &mut b.u],
            &mut texts,
        );
        changed |= edited;
        if edited {
            view.message = None;
        }
        if let Some(msg) = refused {
            view.message = Some(msg);
        }
        if ui
            .button("B = A")
            .on_hover_text("copy A's sampler into B")
            .clicked()
        {
            settings.b = SideB {
                sampler: settings.sampler,
                delta: settings.delta,
                gamma: settings.gamma,
                u: settings.u,
            };
            view.b_delta_text.clear();
            view.b_gamma_text.clear();
            view.b_u_text.clear();
            changed = true;
        }
    }
    if toggled || changed {
        let b = settings.b_sampler();
        match b.map(|s| s.validate()) {
            Some(Err(e)) => view.message = Some(format!("B: {e}; not applied")),
            _ => actions.send(WorkerCommand::Walk(WalkCommand::SetB(b))),
        }
    }
}

fn init_label(i: ChainInit) -> &'static str {
    match i {
        ChainInit::Uniform => "uniform",
        ChainInit::UniformNoise => "uniform + noise",
        ChainInit::DataNoise => "data + noise",
    }
}

/// The Walk-Jump workspace: walk-jump chains on the current model (registry entry `walk::WalkJump`).
pub struct WalkJump;

impl super::workspace::Workspace for WalkJump {
    type Settings = WalkSettings;
    type State = WalkView;
    const NAME: &'static str = "walk-jump";
    const ALIASES: &'static [&'static str] = &["walkjump", "walk"];
    const LABEL: &'static str = "Walk-Jump";
    const AUTOSTART: Option<&'static str> = Some("chains");

    fn sanitize(w: &mut WalkSettings) -> Vec<&'static str> {
        let mut fixed = Vec::new();
        let wd = WalkSettings::default();
        for (name, v, d) in [
            ("delta", &mut w.delta, wd.delta),
            ("gamma", &mut w.gamma, wd.gamma),
            ("u", &mut w.u, wd.u),
        ] {
            if !(v.is_finite() && *v > 0.0) {
                *v = d;
                fixed.push(name);
            }
        }
        let bd = SideB::default();
        for (name, v, d) in [
            ("delta B", &mut w.b.delta, bd.delta),
            ("gamma B", &mut w.b.gamma, bd.gamma),
            ("u B", &mut w.b.u, bd.u),
        ] {
            if !(v.is_finite() && *v > 0.0) {
                *v = d;
                fixed.push(name);
            }
        }
        if !(1..=256).contains(&w.chains) {
            w.chains = wd.chains;
            fixed.push("chains");
        }
        if !(1..=100_000).contains(&w.every) {
            w.every = wd.every;
            fixed.push("steps per jump");
        }
        fixed
    }

    fn show(app: &mut super::App, ui: &mut Ui, actions: &mut Actions) {
        let info = app.current_info().cloned();
        let jump_models = app.jump_models(info.as_ref());
        let cx = WalkContext {
            model: info.as_ref(),
            drawn: &app.pad,
            jump_models,
        };
        show(ui, &mut app.settings.walk, &mut app.ws.walk, &cx, actions);
    }

    /// The chains start when the model is loaded and selected (`App::on_selected`), not here.
    fn autostart(_app: &mut super::App, _actions: &mut Actions) {}

    fn apply_frame(app: &mut super::App, frame: super::Frame) -> Option<super::Frame> {
        match frame {
            super::Frame::Walk(f) => app.ws.walk.apply(*f),
            other => return Some(other),
        }
        None
    }

    fn device_changed(app: &mut super::App) {
        app.ws.walk.clear();
    }
}
