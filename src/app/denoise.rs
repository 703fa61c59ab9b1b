//! The Denoise workspace: the same noisy test digits (random, of one class, or drawn with the mouse), or images
//! read from a file (any size, grey or colour), through every loaded denoiser, side by side, with per-image MSE and pixel range, several posterior draws for the stochastic
//! denoisers (VAEs, UVB), and an aggregate MSE table over many digits.

use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

use super::messages::{AggregateFrame, DenoiseFrame, DenoiseRequest, DigitChoice, WorkerCommand};
use super::widgets::{DrawPad, ImageGrid};
use super::{Actions, SaveKind};
use crate::data::noise::Noise;

/// Noise kinds offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoiseKind {
    /// Additive Gaussian (level = sigma).
    Gaussian,
    /// Additive Laplace (level = scale alpha).
    Laplace,
    /// Salt and pepper (level = fraction of pixels).
    SaltPepper,
}

impl NoiseKind {
    fn label(self) -> &'static str {
        match self {
            NoiseKind::Gaussian => "gaussian (sigma)",
            NoiseKind::Laplace => "laplace (alpha)",
            NoiseKind::SaltPepper => "salt-pepper (p)",
        }
    }
}

/// Denoise parameters that persist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DenoiseSettings {
    /// Class to draw from, or any.
    pub class: Option<u8>,
    /// Noise kind.
    pub kind: NoiseKind,
    /// Its level.
    pub level: f64,
    /// Digits shown.
    pub count: usize,
    /// Digits in the aggregate table.
    pub aggregate: usize,
    /// Seed of the digits and the noise.
    pub seed: u64,
    /// Denoise the digit drawn with the mouse instead of test digits.
    pub drawn: bool,
    /// Outputs per stochastic denoiser (independent posterior draws of z).
    pub draws: usize,
    /// Denoise the images read from a file (`DenoiseView::loaded`) instead of test digits; not kept between
    /// sessions, as the images are not.
    #[serde(skip)]
    pub file: bool,
}

impl Default for DenoiseSettings {
    fn default() -> Self {
        Self {
            class: None,
            kind: NoiseKind::Gaussian,
            level: 1.0,
            count: 6,
            aggregate: 200,
            seed: 0,
            drawn: false,
            draws: 3,
            file: false,
        }
    }
}

impl DenoiseSettings {
    /// The noise these settings describe.
    pub fn noise(&self) -> Noise {
        match self.kind {
            NoiseKind::Gaussian => Noise::Gaussian { sigma: self.level },
            NoiseKind::Laplace => Noise::Laplace { alpha: self.level },
            NoiseKind::SaltPepper => Noise::SaltPepper {
                p: self.level.clamp(0.0, 1.0),
            },
        }
    }

    /// The request these settings describe.
    pub fn request(&self) -> DenoiseRequest {
        DenoiseRequest {
            digits: match (self.drawn, self.class) {
                _ if self.file => DigitChoice::Loaded,
                (true, _) => DigitChoice::Drawn,
                (false, Some(c)) => DigitChoice::Class(c),
                (false, None) => DigitChoice::Random,
            },
            noise: self.noise(),
            count: self.count.clamp(1, 32),
            aggregate: self.aggregate.clamp(1, 1000),
            seed: self.seed,
            draws: self.draws.clamp(1, 8),
        }
    }
}

/// Runtime state: the newest comparison and its textures (one per column).
#[derive(Default)]
pub struct DenoiseView {
    /// Newest comparison.
    pub frame: Option<DenoiseFrame>,
    /// Newest aggregate table.
    pub aggregate: Option<AggregateFrame>,
    dirty: bool,
    columns: Vec<ImageGrid>,
    /// Why the last request was not sent.
    pub message: Option<String>,
    /// The file the images to denoise were read from, once chosen.
    pub loaded: Option<std::path::PathBuf>,
}

impl DenoiseView {
    /// Takes a new comparison.
    pub fn apply(&mut self, frame: DenoiseFrame) {
        self.frame = Some(frame);
        self.dirty = true;
    }

    fn update_textures(&mut self, ctx: &egui::Context) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(f) = &self.frame else {
            self.columns.clear();
            return;
        };
        let (h, w) = f.image_hw;
        let mut cols: Vec<&Vec<Vec<f32>>> = vec![&f.clean, &f.noisy];
        cols.extend(f.columns.iter().map(|c| &c.outputs));
        while self.columns.len() < cols.len() {
            let name = format!("denoise-col-{}", self.columns.len());
            self.columns.push(ImageGrid::new(&name));
        }
        self.columns.truncate(cols.len());
        for (grid, tiles) in self.columns.iter_mut().zip(cols) {
            grid.update(ctx, tiles, h, w, 1);
        }
    }
}

/// Draws the workspace. `denoisers` is the number of loaded denoisers (each gets a column).
pub fn show(
    ui: &mut Ui,
    settings: &mut DenoiseSettings,
    view: &mut DenoiseView,
    pad: &mut DrawPad,
    denoisers: usize,
    bundled_unloaded: usize,
    actions: &mut Actions,
) {
    view.update_textures(ui.ctx());
    egui::Panel::left("denoise_controls")
        .default_size(280.0)
        .show(ui, |ui| {
            ui.heading("Digits and noise");
            egui::ComboBox::from_label("digits")
                .selected_text(match (settings.drawn, settings.class) {
                    _ if settings.file => "images from a file".to_string(),
                    (true, _) => "drawn digit".to_string(),
                    (false, None) => "random".to_string(),
                    (false, Some(c)) => format!("class {c}"),
                })
                .show_ui(ui, |ui| {
                    let digits = !settings.file;
                    if ui
                        .selectable_label(
                            digits && !settings.drawn && settings.class.is_none(),
                            "random",
                        )
                        .clicked()
                    {
                        (settings.file, settings.drawn, settings.class) = (false, false, None);
                    }
                    if ui
                        .selectable_label(digits && settings.drawn, "drawn digit")
                        .clicked()
                    {
                        (settings.file, settings.drawn) = (false, true);
                    }
                    for c in 0..10u8 {
                        let on = digits && !settings.drawn && settings.class == Some(c);
                        if ui.selectable_label(on, format!("class {c}")).clicked() {
                            (settings.file, settings.drawn, settings.class) = (false, false, Some(c));
                        }
                    }
                    if ui
                        .selectable_label(settings.file, "images from a file")
                        .on_hover_text(
                            "a PNG, a folder of PNGs, a .npy [N, c, h, w] / [N, h, w] or IDX: any size, grey or \
                             colour, for the loaded models of that shape (or drop the file on the window)",
                        )
                        .clicked()
                    {
                        settings.file = true;
                    }
                });
            if settings.file {
                if ui.button("Choose images...").clicked() {
                    actions.open_denoise_dialog = true;
                }
                if let Some(p) = &view.loaded {
                    let name = p.file_name().map(|n| n.to_string_lossy().to_string());
                    ui.label(RichText::new(name.unwrap_or_default()).weak());
                }
            } else if settings.drawn {
                ui.label("draw a digit:");
                if pad.show(ui, 140.0) {
                    actions.send(WorkerCommand::SetDrawn(pad.pixels.clone()));
                }
                if ui.button("Clear drawing").clicked() {
                    pad.clear();
                }
            }
            egui::ComboBox::from_label("noise")
                .selected_text(settings.kind.label())
                .show_ui(ui, |ui| {
                    for k in [
                        NoiseKind::Gaussian,
                        NoiseKind::Laplace,
                        NoiseKind::SaltPepper,
                    ] {
                        ui.selectable_value(&mut settings.kind, k, k.label());
                    }
                });
            let max = if settings.kind == NoiseKind::SaltPepper {
                1.0
            } else {
                3.0
            };
            ui.add(egui::Slider::new(&mut settings.level, 0.0..=max).text("level"));
            ui.add(egui::Slider::new(&mut settings.count, 1..=16).text("digits shown"));
            ui.add(egui::Slider::new(&mut settings.draws, 1..=6).text("posterior draws"))
                .on_hover_text(
                    "outputs per VAE / UVB column: independent draws of z from q(z | y)",
                );
            ui.horizontal(|ui| {
                let label = ui.label("noise seed");
                ui.add(egui::DragValue::new(&mut settings.seed))
                    .labelled_by(label.id);
            });
            ui.label(format!("{denoisers} loaded denoisers"));
            if bundled_unloaded > 0
                && ui
                    .button(format!("Load {bundled_unloaded} more bundled models"))
                    .clicked()
            {
                actions.load_all_bundled = true;
            }
            if ui.button("Denoise digits").clicked() {
                if settings.file && view.loaded.is_none() {
                    view.message = Some("choose images with \"Choose images...\" first".into());
                } else if !settings.file && settings.drawn && pad.is_blank() {
                    view.message = Some("draw a digit on the pad first".into());
                } else {
                    view.message = None;
                    if settings.drawn && !settings.file {
                        actions.send(WorkerCommand::SetDrawn(pad.pixels.clone()));
                    }
                    actions.send(WorkerCommand::Denoise(settings.request()));
                }
            }
            if let Some(m) = &view.message {
                ui.colored_label(egui::Color32::from_rgb(230, 80, 60), m);
            }
            ui.separator();
            ui.add(
                egui::Slider::new(&mut settings.aggregate, 10..=1000)
                    .text("digits")
                    .logarithmic(true),
            );
            if ui.button("Aggregate MSE").clicked() {
                // Over test digits (of the chosen class), never over the single drawing.
                let mut req = settings.request();
                if req.digits == DigitChoice::Drawn {
                    req.digits = settings
                        .class
                        .map_or(DigitChoice::Random, DigitChoice::Class);
                }
                actions.send(WorkerCommand::DenoiseAggregate(req));
            }
        });
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::both().show(ui, |ui| {
            if view.frame.is_some() && ui.button("export table PNG").clicked() {
                actions.saves.push(SaveKind::DenoiseTable);
            }
            views(ui, view);
        });
    });
}

/// Colour of the mark on a column whose model was trained for other noise.
const MISMATCH: egui::Color32 = egui::Color32::from_rgb(230, 150, 40);

/// A column's title: the model, its kind and training sigma; marked when the noise shown is not what it was
/// trained for.
fn column_title(ui: &mut Ui, c: &crate::run::DenoiseColumn, noise: Option<&Noise>) {
    ui.vertical(|ui| {
        ui.label(RichText::new(&c.label).strong());
        let trained = format!("{}, sigma {}", c.kind, c.sigma);
        match noise {
            Some(n) if c.mismatched(n) => {
                ui.label(
                    RichText::new(format!("! {trained}"))
                        .small()
                        .color(MISMATCH),
                )
                .on_hover_text(format!(
                    "trained for Gaussian noise of sigma {}, shown {n}: not a fair comparison",
                    c.sigma
                ));
            }
            _ => {
                ui.label(RichText::new(trained).small().weak());
            }
        }
    });
}

fn views(ui: &mut Ui, view: &DenoiseView) {
    if let Some(a) = &view.aggregate {
        ui.label(
            RichText::new(format!(
                "aggregate over {} digits, {}",
                a.count,
                a.noise.map(|n| n.to_string()).unwrap_or_default()
            ))
            .strong(),
        );
        egui::Grid::new("aggregate")
            .striped(true)
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("model");
                ui.label("MSE per pixel");
                ui.end_row();
                ui.label("noisy input");
                ui.label(format!("{:.5}", a.noisy_mse));
                ui.end_row();
                for (label, m) in &a.rows {
                    ui.label(label);
                    ui.label(format!("{m:.5}"));
                    ui.end_row();
                }
            });
        ui.separator();
    }
    let Some(f) = &view.frame else {
        ui.label("Press Denoise to compare the loaded denoisers on the same noisy digits.");
        return;
    };
    for s in &f.skipped {
        ui.label(RichText::new(format!("left out: {s}")).weak());
    }
    let tile = 72.0;
    let mismatched = f
        .columns
        .iter()
        .filter(|c| f.noise.as_ref().is_some_and(|n| c.mismatched(n)))
        .count();
    if mismatched > 0 {
        ui.label(
            RichText::new(format!(
                "{mismatched} column(s) marked: trained for another noise than shown here, so their MSE is not a fair \
                 comparison"
            ))
            .color(MISMATCH),
        );
    }
    egui::Grid::new("denoise_table")
        .num_columns(f.columns.len() + 2)
        .spacing([10.0, 6.0])
        .show(ui, |ui| {
            ui.label(RichText::new("clean").strong());
            ui.label(RichText::new("noisy").strong());
            for c in &f.columns {
                column_title(ui, c, f.noise.as_ref());
            }
            ui.end_row();
            for i in 0..f.clean.len() {
                for (k, grid) in view.columns.iter().enumerate() {
                    ui.vertical(|ui| {
                        grid.show_tile(ui, i, tile);
                        let note = match k {
                            0 => String::new(),
                            1 => f
                                .noisy_mse
                                .get(i)
                                .map(|m| format!("MSE {m:.4}"))
                                .unwrap_or_default(),
                            _ => f
                                .columns
                                .get(k - 2)
                                .and_then(|c| Some((c.mse.get(i)?, c.range.get(i)?)))
                                .map(|(m, (lo, hi))| format!("MSE {m:.4}\n[{lo:.2}, {hi:.2}]"))
                                .unwrap_or_default(),
                        };
                        if !note.is_empty() {
                            ui.label(RichText::new(note).small());
                        }
                    });
                }
                ui.end_row();
            }
        });
    ui.label(format!("{} denoiser columns", f.columns.len()));
}

/// The Denoise workspace: the loaded denoisers side by side on the same noisy images (registry entry
/// `denoise::Denoise`).
pub struct Denoise;

impl super::workspace::Workspace for Denoise {
    type Settings = DenoiseSettings;
    type State = DenoiseView;
    const NAME: &'static str = "denoise";
    const LABEL: &'static str = "Denoise";
    const AUTOSTART: Option<&'static str> = Some("the denoising comparison");

    fn sanitize(d: &mut DenoiseSettings) -> Vec<&'static str> {
        let mut fixed = Vec::new();
        let dd = DenoiseSettings::default();
        if !(d.level.is_finite() && d.level >= 0.0) {
            d.level = dd.level;
            fixed.push("noise level");
        }
        if d.class.is_some_and(|c| c > 9) {
            d.class = None;
            fixed.push("class");
        }
        if !(1..=32).contains(&d.count) {
            d.count = dd.count;
            fixed.push("digits shown");
        }
        if !(1..=8).contains(&d.draws) {
            d.draws = dd.draws;
            fixed.push("posterior draws");
        }
        if !(1..=1000).contains(&d.aggregate) {
            d.aggregate = dd.aggregate;
            fixed.push("aggregate digits");
        }
        fixed
    }

    fn show(app: &mut super::App, ui: &mut Ui, actions: &mut Actions) {
        let n = app.loaded_denoisers();
        let unloaded = app
            .slots
            .iter()
            .filter(|s| s.bundled && s.info.is_none())
            .count();
        show(
            ui,
            &mut app.settings.denoise,
            &mut app.ws.denoise,
            &mut app.pad,
            n,
            unloaded,
            actions,
        );
    }

    /// Once the bundled trio has loaded (or failed), compares the loaded denoisers.
    fn autostart(app: &mut super::App, actions: &mut Actions) {
        let waiting = app
            .slots
            .iter()
            .any(|s| s.info.is_none() && super::DENOISE_TRIO.iter().any(|t| s.path.ends_with(t)));
        if !waiting && app.loaded_denoisers() > 0 {
            actions.send(WorkerCommand::Denoise(app.settings.denoise.request()));
            app.autostart = false;
        }
    }

    fn apply_frame(app: &mut super::App, frame: super::Frame) -> Option<super::Frame> {
        match frame {
            super::Frame::Denoise(f) => app.ws.denoise.apply(*f),
            super::Frame::Aggregate(a) => app.ws.denoise.aggregate = Some(a),
            other => return Some(other),
        }
        None
    }
}
