//! The small window that asks what an `.onnx` model is when the file does not say (its `walkjump.role`,
//! `walkjump.sigma`, `walkjump.shape` metadata), then opens it with those settings.

use std::path::{Path, PathBuf};

use egui::Context;

use super::messages::WorkerCommand;
use crate::onnx::{ImportOptions, Role, parse_shape};

/// An `.onnx` file waiting for the user to say what it is.
#[derive(Clone, Debug)]
pub struct OnnxAsk {
    /// The file.
    pub path: PathBuf,
    /// What the import said was missing.
    pub reason: String,
    role: Role,
    sigma: String,
    shape: String,
    measurements: String,
    error: Option<String>,
}

/// What the window decided this frame.
pub enum Outcome {
    /// Still open.
    Pending,
    /// Closed without opening.
    Cancelled,
    /// Open the file with these settings.
    Open(WorkerCommand),
}

impl OnnxAsk {
    /// The question to ask after `path` failed to load with `error`, when it is an `.onnx` file that only lacks a
    /// role, a noise level or a shape.
    pub fn after_failure(path: &Path, error: &str) -> Option<Self> {
        let missing = ["--role", "--onnx-sigma", "--onnx-shape"]
            .iter()
            .any(|f| error.contains(f));
        if !(crate::onnx::is_onnx_path(path) && missing) {
            return None;
        }
        Some(Self {
            path: path.to_path_buf(),
            reason: error.lines().next().unwrap_or("").to_string(),
            role: if error.contains("--role") {
                Role::Denoiser
            } else {
                Role::Energy
            },
            sigma: "1.0".into(),
            shape: "1,28,28".into(),
            measurements: "1".into(),
            error: None,
        })
    }

    /// The settings as typed, or what is wrong with them.
    fn options(&self) -> Result<ImportOptions, String> {
        let sigma: f64 = self
            .sigma
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0)
            .ok_or_else(|| format!("sigma '{}' is not a positive number", self.sigma.trim()))?;
        let shape = parse_shape(&self.shape)?;
        let measurements: usize = self
            .measurements
            .trim()
            .parse()
            .ok()
            .filter(|m| *m >= 1)
            .ok_or_else(|| format!("M '{}' is not a count", self.measurements.trim()))?;
        Ok(ImportOptions {
            role: Some(self.role),
            sigma: Some(sigma),
            shape: Some(shape),
            measurements: Some(measurements),
        })
    }

    /// Draws the window.
    pub fn show(&mut self, ctx: &Context) -> Outcome {
        let mut outcome = Outcome::Pending;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        egui::Window::new("Open ONNX model")
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                ui.label(format!("{name} does not say what it computes."));
                ui.small(&self.reason);
                ui.add_space(4.0);
                egui::Grid::new("onnx_ask").num_columns(2).show(ui, |ui| {
                    ui.label("role");
                    ui.horizontal(|ui| {
                        for (r, text, tip) in [
                            (Role::Energy, "energy", "f(y) -> [N]; score = -grad f"),
                            (
                                Role::Denoiser,
                                "denoiser",
                                "D(y); score = (D(y) - y) / sigma^2",
                            ),
                            (Role::Score, "score", "s(y); jump = y + sigma^2 s(y)"),
                        ] {
                            ui.selectable_value(&mut self.role, r, text)
                                .on_hover_text(tip);
                        }
                    });
                    ui.end_row();
                    for (label, value, tip) in [
                        (
                            "sigma",
                            &mut self.sigma,
                            "the noise level the network was trained for",
                        ),
                        (
                            "shape c,h,w",
                            &mut self.shape,
                            "one clean sample, e.g. 1,28,28 or 3,32,32",
                        ),
                        (
                            "measurements M",
                            &mut self.measurements,
                            "noisy copies the network reads at once",
                        ),
                    ] {
                        let l = ui.label(label);
                        ui.text_edit_singleline(value)
                            .labelled_by(l.id)
                            .on_hover_text(tip);
                        ui.end_row();
                    }
                });
                if let Some(e) = &self.error {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                ui.horizontal(|ui| {
                    if ui.button("Open").clicked() {
                        match self.options() {
                            Ok(onnx) => {
                                outcome = Outcome::Open(WorkerCommand::LoadOnnx {
                                    path: self.path.clone(),
                                    onnx,
                                });
                            }
                            Err(e) => self.error = Some(e),
                        }
                    }
                    if ui.button("Cancel").clicked() {
                        outcome = Outcome::Cancelled;
                    }
                });
            });
        outcome
    }
}
