//! Files in and out through dialogs: the file dialogs [`Actions`](crate::app::Actions) ask for, polled each frame,
//! the exports a save dialog leads to ([`App::export_to`]), and the questions an `.onnx` file without its metadata
//! asks before it opens.

use std::path::Path;

use crate::app::export::{self, DialogPurpose, PendingDialog};
use crate::app::{App, Link, ModelSlot, SaveKind, onnx_dialog, stem, walk};

impl App {
    /// Writes an export to `path` from the newest frame of its workspace (what a save dialog's answer leads to).
    pub fn export_to(&mut self, kind: SaveKind, path: &Path) -> Result<(), String> {
        const NO_WALK: &str = "nothing to export yet: run the chains first";
        const NO_FLOW: &str = "nothing to export yet: start a flow first";
        const NO_DENOISE: &str = "nothing to export yet: denoise some digits first";
        let walk = self.ws.walk.frame.as_ref();
        let flow = self.ws.nebula.view.frame.as_ref();
        let res = match kind {
            SaveKind::JumpGrid => {
                let f = walk.ok_or(NO_WALK)?;
                let info = self.current_info().map(|i| (i.label.as_str(), i.sigma));
                export::save_jump_grid(
                    f,
                    walk::grid_cols(f.jumps.len()),
                    path,
                    &export::run_text(f, info),
                )
            }
            SaveKind::FilmStrip => {
                let f = walk.ok_or(NO_WALK)?;
                let info = self.current_info().map(|i| (i.label.as_str(), i.sigma));
                export::save_film_strip(f, path, &export::run_text(f, info))
            }
            SaveKind::ChainGif => export::save_chain_gif(walk.ok_or(NO_WALK)?, path),
            SaveKind::TracesCsv => {
                export::save_text(path, &export::traces_csv(walk.ok_or(NO_WALK)?))
            }
            SaveKind::RunJson => {
                let f = walk.ok_or(NO_WALK)?;
                let info = self.current_info().ok_or("no model is loaded")?;
                let mut rec = export::run_record(f, &info.sha256, &info.kind)
                    .ok_or("the run has no configuration yet")?;
                // The jump model and the condition, where the command line can say them.
                rec.jump_with = f
                    .jump_model
                    .as_ref()
                    .and(self.ws.walk.jump_with.as_ref())
                    .and_then(|p| {
                        let j = self.info_of(p)?;
                        Some(crate::run::ModelRef {
                            path: p.display().to_string(),
                            sha256: j.sha256.clone(),
                            kind: j.kind.clone(),
                            sigma: j.sigma,
                        })
                    });
                rec.condition = f
                    .held
                    .as_ref()
                    .map(|_| walk::condition_record(&self.settings.walk));
                let text = serde_json::to_string_pretty(&rec).map_err(|e| e.to_string())?;
                export::save_text(path, &text)
            }
            SaveKind::NebulaFlow => export::save_nebula_flow(flow.ok_or(NO_FLOW)?, path),
            SaveKind::NebulaGallery => export::save_nebula_gallery(flow.ok_or(NO_FLOW)?, path),
            SaveKind::PoorMan => export::save_poor_man(flow.ok_or(NO_FLOW)?, path),
            SaveKind::DenoiseTable => {
                export::save_denoise_table(self.ws.denoise.frame.as_ref().ok_or(NO_DENOISE)?, path)
            }
            SaveKind::ModelWithWalk => {
                let info = self.current_info().ok_or("no model is loaded")?;
                let rec = crate::run::Recommendation {
                    sampler: self.settings.walk.sampler(),
                    every: self.settings.walk.every,
                };
                export::save_model_with_walk(&info.path, &info.sha256, &rec, path)
            }
        };
        res.map_err(|e| format!("{e:#}"))?;
        self.notice = Some(format!("saved {}", path.display()));
        Ok(())
    }

    pub(in crate::app) fn start_dialog(&mut self, purpose: DialogPurpose) {
        if matches!(self.link, Link::Test { .. }) {
            return;
        }
        if self.dialogs.iter().any(|d| d.purpose == purpose) {
            return;
        }
        match PendingDialog::start(purpose) {
            Ok(d) => self.dialogs.push(d),
            Err(e) => self.banner = Some(format!("cannot open a file dialog: {e}")),
        }
    }

    pub(in crate::app) fn poll_dialogs(&mut self) {
        let mut done = Vec::new();
        self.dialogs.retain(|d| match d.poll() {
            Some(answer) => {
                done.push((d.purpose, answer));
                false
            }
            None => true,
        });
        for (purpose, answer) in done {
            let Some(path) = answer else {
                continue;
            };
            match purpose {
                DialogPurpose::Open => self.open_path(&path),
                DialogPurpose::OpenImages => self.load_condition_images(&path),
                DialogPurpose::OpenDenoiseImages => self.load_denoise_images(&path),
                DialogPurpose::Save(kind) => {
                    if let Err(e) = self.export_to(kind, &path) {
                        self.banner = Some(format!("could not save {}: {e}", path.display()));
                    }
                }
            }
        }
    }

    pub(in crate::app) fn onnx_window(&mut self, ctx: &egui::Context) {
        let Some(ask) = self.onnx_ask.as_mut() else {
            return;
        };
        match ask.show(ctx) {
            onnx_dialog::Outcome::Pending => {}
            onnx_dialog::Outcome::Cancelled => self.onnx_ask = None,
            onnx_dialog::Outcome::Open(cmd) => {
                let path = ask.path.clone();
                self.onnx_ask = None;
                if !self.slots.iter().any(|s| s.path == path) {
                    self.slots.push(ModelSlot {
                        label: stem(&path),
                        path,
                        bundled: false,
                        info: None,
                    });
                }
                self.send(cmd);
            }
        }
    }

    /// The `.onnx` file waiting for its role / sigma / shape, if any.
    pub fn onnx_question(&self) -> Option<&Path> {
        self.onnx_ask.as_ref().map(|a| a.path.as_path())
    }
}
