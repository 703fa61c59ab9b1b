//! The NEBULA workspace: gradient flows `y <- y - eta grad f(y)` from noise or test digits to attractors
//! (REFERENCE.md §7), the live grid of flowing images, the energy curve, and the attractor gallery with basin
//! counts, nearest training digit and chi distance; plus poor man's NEBULA (two jumps).

use egui::{Color32, RichText, Ui};
use egui_plot::{Legend, Line, Plot};
use serde::{Deserialize, Serialize};

use super::messages::{
    CondImage, ModelInfo, NebulaCommand, NebulaFrame, NebulaSource, WalkCondition, WorkerCommand,
};
use super::widgets::{DrawPad, ImageGrid, ParamEdit, log_param};
use super::{Actions, SaveKind};
use crate::sampling::nebula::{NebulaConfig, NebulaInit};

/// NEBULA parameters that persist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NebulaSettings {
    /// Where flows start.
    pub source: NebulaSource,
    /// Step size; `None` means the model's recommended step ([`NebulaTarget::eta`]).
    pub eta: Option<f64>,
    /// Stop a start once `||grad f|| < tol`.
    pub tol: f64,
    /// Most steps.
    pub max_steps: usize,
    /// Number of starts.
    pub starts: usize,
    /// Seed of the starts.
    pub seed: u64,
    /// Merge attractors closer than this (chi units).
    pub merge: f64,
    /// Creative when farther than this from every training digit (chi units).
    pub creative: f64,
    /// Hold part of every start at test digits (the flow completes the rest).
    pub hold: bool,
    /// The held region.
    pub hold_preset: super::walk::MaskPreset,
    /// First test digit held (start k holds digit `hold_digit + k` when `hold_per_start`).
    pub hold_digit: usize,
    /// One test digit per start (else the same digit in every start).
    pub hold_per_start: bool,
}

impl Default for NebulaSettings {
    fn default() -> Self {
        Self {
            source: NebulaSource::Uniform,
            eta: None,
            tol: 0.1,
            max_steps: 4000,
            starts: 64,
            seed: 0,
            merge: 0.02,
            creative: 0.1,
            hold: false,
            hold_preset: super::walk::MaskPreset::Top,
            hold_digit: 0,
            hold_per_start: true,
        }
    }
}

impl NebulaSettings {
    /// What the starts hold, for a model of images `shape` (`None` when nothing is held or the preset is painted,
    /// which NEBULA does not offer).
    pub fn hold_condition(&self, shape: (usize, usize, usize)) -> Option<WalkCondition> {
        if !self.hold {
            return None;
        }
        let (c, h, w) = shape;
        let spec = self.hold_preset.spec(0.5)?;
        let mask = crate::sampling::condition::named_mask(&spec, c, h, w, self.seed).ok()?;
        Some(WalkCondition {
            mask,
            image: if self.hold_per_start {
                CondImage::TestDigitsFrom(self.hold_digit)
            } else {
                CondImage::TestDigit(self.hold_digit)
            },
            start_from_image: false,
        })
    }
}

impl NebulaSettings {
    /// The flow configuration, with `default_eta` where no step size was chosen.
    pub fn config(&self, default_eta: f64) -> NebulaConfig {
        NebulaConfig {
            eta: self.eta.unwrap_or(default_eta),
            max_steps: self.max_steps,
            tol: self.tol,
            starts: self.starts.clamp(1, 1024),
            init: NebulaInit::Uniform,
            seed: self.seed,
            merge: self.merge,
            creative: self.creative,
        }
    }
}

/// The model NEBULA flows on (NEBULA keeps its own, apart from the Walk-Jump model), and why it is that one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NebulaTarget {
    /// The checkpoint; `None` follows the current model of the top bar.
    pub path: Option<std::path::PathBuf>,
    /// Why the app chose it (shown under the model), `None` when the user did.
    pub why: Option<String>,
    /// The step size documented for it, where one is (else sigma^2 / 10).
    pub eta: Option<f64>,
}

impl NebulaTarget {
    /// The step size used while the user has not chosen one: the documented one, else sigma^2 / 10.
    pub fn default_eta(&self, sigma: f64) -> f64 {
        self.eta.unwrap_or(sigma * sigma / 10.0)
    }
}

/// Runtime state: the newest frame and its textures.
pub struct NebulaView {
    /// Newest snapshot.
    pub frame: Option<NebulaFrame>,
    dirty: bool,
    flow: ImageGrid,
    gallery: ImageGrid,
    poor_man: ImageGrid,
    eta_text: String,
    tol_text: String,
    /// Last refused input.
    pub message: Option<String>,
}

impl Default for NebulaView {
    fn default() -> Self {
        Self {
            frame: None,
            dirty: false,
            flow: ImageGrid::new("nebula-flow"),
            gallery: ImageGrid::new("nebula-gallery"),
            poor_man: ImageGrid::new("nebula-poor-man"),
            eta_text: String::new(),
            tol_text: String::new(),
            message: None,
        }
    }
}

impl NebulaView {
    /// Takes a new snapshot.
    pub fn apply(&mut self, frame: NebulaFrame) {
        self.frame = Some(frame);
        self.dirty = true;
    }

    /// Forgets the flow (the model changed).
    pub fn clear(&mut self) {
        self.frame = None;
        self.dirty = true;
    }

    fn update_textures(&mut self, ctx: &egui::Context) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(f) = &self.frame else {
            self.flow.update(ctx, &[], 0, 0, 1);
            self.gallery.update(ctx, &[], 0, 0, 1);
            self.poor_man.update(ctx, &[], 0, 0, 1);
            return;
        };
        let (h, w) = f.image_hw;
        self.flow.update(ctx, &f.images, h, w, 16);
        // Gallery: pairs (attractor, nearest training digit), four pairs per row.
        let mut tiles = Vec::new();
        for (a, near) in f.attractors.iter().zip(&f.nearest_images) {
            tiles.push(a.image.clone());
            tiles.push(near.clone());
        }
        self.gallery.update(ctx, &tiles, h, w, 8);
        match &f.poor_man {
            Some(p) => self.poor_man.update(ctx, p, h, w, 16),
            None => self.poor_man.update(ctx, &[], 0, 0, 1),
        }
    }
}

fn source_label(s: NebulaSource) -> &'static str {
    match s {
        NebulaSource::Uniform => "uniform noise",
        NebulaSource::TestDigits => "test digits",
        NebulaSource::NoisyTestDigits => "noisy test digits",
        NebulaSource::Drawn => "a digit drawn with the mouse",
    }
}

/// Draws the workspace.
pub fn show(
    ui: &mut Ui,
    settings: &mut NebulaSettings,
    view: &mut NebulaView,
    pad: &mut DrawPad,
    model: Option<&ModelInfo>,
    target: &NebulaTarget,
    actions: &mut Actions,
) {
    view.update_textures(ui.ctx());
    let sigma = model.map(|m| m.sigma).unwrap_or(1.0);
    let default_eta = target.default_eta(sigma);
    egui::Panel::left("nebula_controls")
        .default_size(300.0)
        .show(ui, |ui| {
            ui.heading("Flow");
            match model {
                Some(m) => ui.label(format!(
                    "flows on {} ({}, sigma {})",
                    m.label, m.kind, m.sigma
                )),
                None => ui.label("model: loading..."),
            };
            if let Some(why) = &target.why {
                ui.label(RichText::new(why).weak());
            }
            egui::ComboBox::from_label("start from")
                .selected_text(source_label(settings.source))
                .show_ui(ui, |ui| {
                    for s in [
                        NebulaSource::Uniform,
                        NebulaSource::TestDigits,
                        NebulaSource::NoisyTestDigits,
                        NebulaSource::Drawn,
                    ] {
                        ui.selectable_value(&mut settings.source, s, source_label(s));
                    }
                });
            if settings.source == NebulaSource::Drawn {
                ui.label(
                    "draw a digit (start 1 is the drawing, the others the drawing plus noise)",
                );
                if pad.show(ui, 168.0) {
                    actions.send(WorkerCommand::SetDrawn(pad.pixels.clone()));
                }
                if ui.button("Clear drawing").clicked() {
                    pad.clear();
                }
            }
            let mut eta = settings.eta.unwrap_or(default_eta);
            match log_param(ui, "eta", &mut eta, 1e-5..=10.0, &mut view.eta_text) {
                ParamEdit::Changed => settings.eta = Some(eta),
                ParamEdit::Refused(m) => view.message = Some(m),
                ParamEdit::None => {}
            }
            let reset = match target.eta {
                Some(e) => format!("eta = {e} (documented for this model)"),
                None => "eta = sigma²/10".to_string(),
            };
            if settings.eta.is_some() && ui.small_button(reset).clicked() {
                settings.eta = None;
                view.eta_text.clear();
            }
            match log_param(
                ui,
                "tol",
                &mut settings.tol,
                1e-4..=10.0,
                &mut view.tol_text,
            ) {
                ParamEdit::Refused(m) => view.message = Some(m),
                ParamEdit::Changed | ParamEdit::None => {}
            }
            ui.add(
                egui::Slider::new(&mut settings.max_steps, 1..=20_000)
                    .text("max steps")
                    .logarithmic(true),
            );
            ui.add(egui::Slider::new(&mut settings.starts, 1..=256).text("starts"));
            ui.horizontal(|ui| {
                let label = ui.label("seed");
                ui.add(egui::DragValue::new(&mut settings.seed))
                    .labelled_by(label.id);
            });
            ui.add(egui::Slider::new(&mut settings.merge, 0.0..=0.2).text("merge (chi)"));
            ui.add(
                egui::Slider::new(&mut settings.creative, 0.0..=0.5).text("creative beyond (chi)"),
            );
            ui.checkbox(&mut settings.hold, "hold part of each start at a test digit")
                .on_hover_text(
                    "the flow moves only the other pixels: its attractors complete the held part (REFERENCE.md §11)",
                );
            if settings.hold {
                ui.horizontal(|ui| {
                    let label = ui.label("test digit no.");
                    ui.add(egui::DragValue::new(&mut settings.hold_digit).range(0..=9_999))
                        .labelled_by(label.id);
                });
                ui.checkbox(&mut settings.hold_per_start, "one digit per start (from this number)");
                egui::ComboBox::from_label("held region")
                    .selected_text(settings.hold_preset.label())
                    .show_ui(ui, |ui| {
                        use super::walk::MaskPreset as P;
                        for p in [P::Top, P::Bottom, P::Left, P::Right, P::Centre] {
                            ui.selectable_value(&mut settings.hold_preset, p, p.label());
                        }
                    });
            }
            if let Some(m) = &view.message {
                ui.colored_label(Color32::from_rgb(230, 80, 60), m);
            }
            ui.separator();
            let running = view.frame.as_ref().is_some_and(|f| f.running);
            ui.horizontal(|ui| {
                if ui.button("Start flow").clicked() && drawing_ready(settings, view, pad, actions)
                {
                    view.message = None;
                    actions.send(WorkerCommand::Nebula(NebulaCommand::Start {
                        cfg: settings.config(default_eta),
                        source: settings.source,
                        model: target.path.clone(),
                        hold: model.and_then(|m| settings.hold_condition(m.shape)),
                    }));
                }
                if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                    actions.send(WorkerCommand::Nebula(NebulaCommand::Stop));
                }
            });
            if ui
                .button("Poor man's NEBULA (two jumps)")
                .on_hover_text("x_hat(x_hat(y)) from the same starts")
                .clicked()
                && drawing_ready(settings, view, pad, actions)
            {
                actions.send(WorkerCommand::Nebula(NebulaCommand::PoorMan {
                    cfg: settings.config(default_eta),
                    source: settings.source,
                    model: target.path.clone(),
                }));
            }
        });
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| {
            export_row(ui, view, actions);
            views(ui, view);
        });
    });
}

fn export_row(ui: &mut Ui, view: &NebulaView, actions: &mut Actions) {
    let Some(f) = &view.frame else {
        return;
    };
    ui.horizontal(|ui| {
        ui.label("export");
        if ui.button("flow PNG").clicked() {
            actions.saves.push(SaveKind::NebulaFlow);
        }
        if ui
            .add_enabled(!f.attractors.is_empty(), egui::Button::new("gallery PNG"))
            .clicked()
        {
            actions.saves.push(SaveKind::NebulaGallery);
        }
        if ui
            .add_enabled(f.poor_man.is_some(), egui::Button::new("poor man's PNG"))
            .clicked()
        {
            actions.saves.push(SaveKind::PoorMan);
        }
    });
}

/// With the drawn-digit source, sends the drawing to the worker, or says to draw one first.
fn drawing_ready(
    settings: &NebulaSettings,
    view: &mut NebulaView,
    pad: &DrawPad,
    actions: &mut Actions,
) -> bool {
    if settings.source != NebulaSource::Drawn {
        return true;
    }
    if pad.is_blank() {
        view.message = Some("draw a digit on the pad first".into());
        return false;
    }
    actions.send(WorkerCommand::SetDrawn(pad.pixels.clone()));
    true
}

fn views(ui: &mut Ui, view: &mut NebulaView) {
    let Some(f) = view.frame.clone() else {
        ui.label("Press Start flow to follow the gradient flow from the chosen starts.");
        return;
    };
    ui.label(
        RichText::new(format!(
            "step {} · {} of {} starts converged{}",
            f.step,
            f.converged,
            f.starts,
            if f.running { " · flowing" } else { "" }
        ))
        .strong(),
    );
    let width = ui.available_width();
    view.flow.show(ui, width.min(720.0), 4.0);
    if !f.energy_curve.is_empty() || !f.grad_curve.is_empty() {
        ui.columns(2, |cols| {
            let pts = |v: &[f64]| -> Vec<[f64; 2]> {
                v.iter()
                    .enumerate()
                    .filter(|(_, y)| y.is_finite())
                    .map(|(i, &y)| [i as f64, y])
                    .collect()
            };
            Plot::new("nebula_energy")
                .height(130.0)
                .legend(Legend::default())
                .show(&mut cols[0], |p| {
                    p.line(Line::new("mean energy", pts(&f.energy_curve)));
                });
            Plot::new("nebula_grad")
                .height(130.0)
                .legend(Legend::default())
                .show(&mut cols[1], |p| {
                    p.line(Line::new("max ||grad f|| (flowing)", pts(&f.grad_curve)));
                });
        });
    }
    if !f.attractors.is_empty() {
        ui.separator();
        let creative = f.attractors.iter().filter(|a| a.creative).count();
        ui.label(
            RichText::new(format!(
                "{} attractors · {} creative",
                f.attractors.len(),
                creative
            ))
            .strong(),
        );
        ui.label("gallery: each attractor beside its nearest training digit");
        view.gallery.show(ui, width.min(720.0), 3.0);
        egui::Grid::new("attractors")
            .striped(true)
            .num_columns(5)
            .show(ui, |ui| {
                ui.label("#");
                ui.label("basin");
                ui.label("nearest training digit");
                ui.label("chi");
                ui.label("");
                ui.end_row();
                for (k, a) in f.attractors.iter().enumerate() {
                    ui.label(k.to_string());
                    ui.label(a.members.len().to_string());
                    ui.label(a.nearest.map(|j| format!("#{j}")).unwrap_or("-".into()));
                    ui.label(
                        a.nearest_chi
                            .map(|d| format!("{d:.4}"))
                            .unwrap_or("-".into()),
                    );
                    if a.creative {
                        ui.label(RichText::new("creative").color(Color32::from_rgb(120, 200, 120)));
                    } else {
                        ui.label("");
                    }
                    ui.end_row();
                }
            });
    }
    if f.poor_man.is_some() {
        ui.separator();
        ui.label("poor man's NEBULA: x_hat(x_hat(y)) of the same starts");
        view.poor_man.show(ui, width.min(720.0), 4.0);
    }
}

/// The NEBULA workspace's runtime state.
#[derive(Default)]
pub struct NebulaState {
    /// The flow's view.
    pub(crate) view: NebulaView,
    /// The model NEBULA flows on (its own, apart from the current Walk-Jump model).
    pub(crate) target: NebulaTarget,
    /// The NEBULA model asked for from the worker (loaded once, when the workspace is first shown).
    pub(crate) requested: Option<std::path::PathBuf>,
}

/// The NEBULA workspace: gradient flows on a model of its own (registry entry `nebula::Nebula`).
pub struct Nebula;

impl super::workspace::Workspace for Nebula {
    type Settings = NebulaSettings;
    type State = NebulaState;
    const NAME: &'static str = "nebula";
    const LABEL: &'static str = "NEBULA";
    const AUTOSTART: Option<&'static str> = Some("a flow");

    fn sanitize(n: &mut NebulaSettings) -> Vec<&'static str> {
        let mut fixed = Vec::new();
        let nd = NebulaSettings::default();
        if n.eta.is_some_and(|e| !(e.is_finite() && e > 0.0)) {
            n.eta = nd.eta;
            fixed.push("eta");
        }
        for (name, v, d) in [
            ("tol", &mut n.tol, nd.tol),
            ("merge", &mut n.merge, nd.merge),
            ("creative", &mut n.creative, nd.creative),
        ] {
            if !(v.is_finite() && *v > 0.0) {
                *v = d;
                fixed.push(name);
            }
        }
        if !(1..=1024).contains(&n.starts) {
            n.starts = nd.starts;
            fixed.push("starts");
        }
        if !(1..=10_000_000).contains(&n.max_steps) {
            n.max_steps = nd.max_steps;
            fixed.push("max steps");
        }
        fixed
    }

    fn show(app: &mut super::App, ui: &mut Ui, actions: &mut Actions) {
        app.ensure_nebula_model(actions);
        let info = app.nebula_info().cloned();
        if let Some((_, h, w)) = info.as_ref().map(|i| i.shape) {
            app.pad.resize(h, w);
        }
        let state = &mut app.ws.nebula;
        show(
            ui,
            &mut app.settings.nebula,
            &mut state.view,
            &mut app.pad,
            info.as_ref(),
            &state.target,
            actions,
        );
    }

    fn autostart(app: &mut super::App, actions: &mut Actions) {
        if let Some(info) = app.nebula_info().filter(|i| i.has_score) {
            let target = &app.ws.nebula.target;
            let eta = target.default_eta(info.sigma);
            actions.send(WorkerCommand::Nebula(NebulaCommand::Start {
                cfg: app.settings.nebula.config(eta),
                source: app.settings.nebula.source,
                model: target.path.clone(),
                hold: app.settings.nebula.hold_condition(info.shape),
            }));
            app.autostart = false;
        }
    }

    fn apply_frame(app: &mut super::App, frame: super::Frame) -> Option<super::Frame> {
        match frame {
            super::Frame::Nebula(f) => app.ws.nebula.view.apply(*f),
            other => return Some(other),
        }
        None
    }

    fn device_changed(app: &mut super::App) {
        app.ws.nebula.view.clear();
    }
}
