//! The Models workspace: metadata and training record of each loaded checkpoint, and the chi statistics of the
//! bundled digits with the model's sigma placed on that scale (REFERENCE.md §8).

use egui::{RichText, Ui};

use super::messages::ModelInfo;
use crate::data::geometry::ChiStats;

/// Draws the workspace for the loaded models; `shown` is the index of the one in focus.
pub fn show(ui: &mut Ui, models: &[&ModelInfo], shown: &mut usize, chi: Option<&ChiStats>) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        if models.is_empty() {
            ui.label("No model is loaded. Open a checkpoint (.safetensors) from the top bar or drop one here.");
        } else {
            *shown = (*shown).min(models.len() - 1);
            ui.horizontal_wrapped(|ui| {
                for (i, m) in models.iter().enumerate() {
                    ui.selectable_value(shown, i, &m.label);
                }
            });
            ui.separator();
            info(ui, models[*shown]);
        }
        ui.separator();
        ui.heading("Geometry of the noise");
        match chi {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("computing chi over 20 000 pairs of bundled digits ...");
                });
            }
            Some(c) => chi_table(ui, c, models.get(*shown).map(|m| m.sigma)),
        }
    });
}

fn info(ui: &mut Ui, m: &ModelInfo) {
    ui.heading(&m.label);
    egui::Grid::new("model_info")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            let mut row = |k: &str, v: String| {
                ui.label(k);
                ui.label(v);
                ui.end_row();
            };
            row("file", m.path.display().to_string());
            row("kind", m.kind.clone());
            row("sigma", format!("{}", m.sigma));
            row("measurements M", m.measurements.to_string());
            row(
                "data",
                format!("{} x {} x {}", m.shape.0, m.shape.1, m.shape.2),
            );
            row("parameters", m.parameters.to_string());
            row("sha256", m.sha256.clone());
            row(
                "can",
                [
                    m.is_denoiser.then_some("denoise"),
                    m.has_score.then_some("walk / flow (score)"),
                    m.has_energy.then_some("energy"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            );
            let (s, every) = m.recommended;
            row(
                "recommended walk",
                format!(
                    "{} delta {:.4}{}, jump every {every}",
                    s.name(),
                    s.delta(),
                    s.gamma_u()
                        .map(|(g, u)| format!(" gamma {g} u {u}"))
                        .unwrap_or_default()
                ),
            );
            for (k, v) in &m.extra {
                row(k, v.clone());
            }
        });
    egui::CollapsingHeader::new("architecture")
        .default_open(false)
        .show(ui, |ui| {
            ui.label(RichText::new(&m.arch).monospace());
        });
    egui::CollapsingHeader::new("training record")
        .default_open(true)
        .show(ui, |ui| match &m.train {
            Some(t) => {
                ui.label(RichText::new(t).monospace());
            }
            None => {
                ui.label("this checkpoint has no training record");
            }
        });
}

fn chi_table(ui: &mut Ui, c: &ChiStats, sigma: Option<f64>) {
    ui.label("chi = ||X_i - X_j|| / (2 sqrt d) over random pairs of the bundled digits");
    egui::Grid::new("chi")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            for (k, v) in [
                ("pairs", c.pairs as f64),
                ("min", c.min),
                ("median", c.median),
                ("mean", c.mean),
                ("max = sigma_c", c.sigma_c()),
            ] {
                ui.label(k);
                ui.label(if k == "pairs" {
                    format!("{v:.0}")
                } else {
                    format!("{v:.4}")
                });
                ui.end_row();
            }
        });
    if let Some(s) = sigma {
        ui.label(
            RichText::new(format!(
                "sigma = {s} is {:.2} sigma_c: {}",
                s / c.sigma_c(),
                c.regime(s)
            ))
            .strong(),
        );
    }
}

/// The Models workspace's runtime state.
#[derive(Default)]
pub struct ModelsState {
    /// chi statistics of the bundled digits, once computed.
    pub(crate) chi: Option<ChiStats>,
    /// chi was asked for from the worker.
    pub(crate) chi_requested: bool,
    /// The model whose details are shown.
    pub(crate) shown: usize,
}

/// The Models workspace: every loaded checkpoint's metadata, and the data's chi (registry entry `models::Models`).
pub struct Models;

impl super::workspace::Workspace for Models {
    type Settings = ();
    type State = ModelsState;
    const NAME: &'static str = "models";
    const LABEL: &'static str = "Models";

    fn show(app: &mut super::App, ui: &mut Ui, actions: &mut super::Actions) {
        let state = &mut app.ws.models;
        if state.chi.is_none() && !state.chi_requested {
            state.chi_requested = true;
            actions.send(super::WorkerCommand::ComputeChi);
        }
        let infos: Vec<&ModelInfo> = app.slots.iter().filter_map(|s| s.info.as_ref()).collect();
        egui::CentralPanel::default().show(ui, |ui| {
            show(ui, &infos, &mut state.shown, state.chi.as_ref());
        });
    }

    fn apply_frame(app: &mut super::App, frame: super::Frame) -> Option<super::Frame> {
        match frame {
            super::Frame::Chi(c) => app.ws.models.chi = Some(c),
            other => return Some(other),
        }
        None
    }
}
