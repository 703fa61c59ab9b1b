//! Files dropped on the window: checkpoints and ONNX models open, pictures and arrays become held observations; and
//! the hint shown while a file is dragged over.

use std::path::PathBuf;

use egui::Color32;

use crate::app::App;
use crate::app::settings::Tab;

impl App {
    /// While a file is dragged over the window, says what dropping it does.
    pub(in crate::app) fn drop_hint(&self, ctx: &egui::Context) {
        if ctx.input(|i| i.raw.hovered_files.is_empty()) {
            return;
        }
        let painter = ctx.layer_painter(egui::LayerId::new(
            egui::Order::Foreground,
            egui::Id::unique("drop_hint"),
        ));
        let rect = ctx.content_rect();
        painter.rect_filled(rect, 0.0, Color32::from_black_alpha(170));
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "Drop a .safetensors checkpoint or an .onnx model to open it, or a .png / .npy to hold in the chains (to denoise, in Denoise)",
            egui::FontId::proportional(24.0),
            Color32::WHITE,
        );
    }

    pub(in crate::app) fn dropped_files(&mut self, ctx: &egui::Context) {
        let paths: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        for p in paths {
            // Pictures and arrays become the observations of conditioned chains; anything else is opened as a model.
            let image = p.extension().is_some_and(|e| {
                let e = e.to_string_lossy().to_ascii_lowercase();
                e == "png" || e == "npy"
            });
            if image && self.settings.tab == Tab::Denoise {
                self.load_denoise_images(&p);
            } else if image {
                self.load_condition_images(&p);
            } else {
                self.open_path(&p);
            }
        }
    }
}
