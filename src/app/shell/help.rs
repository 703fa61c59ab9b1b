//! The keyboard shortcuts (Space / S / R drive the chains, or the 2D Lab's particles; F1) and the Help window that
//! lists them with what each workspace does.

use egui::{Key, RichText};

use crate::app::{Actions, App, Tab, lab, walk};

impl App {
    pub(in crate::app) fn shortcuts(&mut self, ctx: &egui::Context, actions: &mut Actions) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (space, s, r, f1) = ctx.input(|i| {
            (
                i.key_pressed(Key::Space),
                i.key_pressed(Key::S),
                i.key_pressed(Key::R),
                i.key_pressed(Key::F1),
            )
        });
        if self.settings.tab == Tab::Lab {
            // In the 2D Lab the keys drive its particles.
            let keys = [
                (space, lab::LabAction::RunPause),
                (s, lab::LabAction::Step),
                (r, lab::LabAction::Reset),
            ];
            let acts = keys
                .into_iter()
                .filter(|(k, _)| *k)
                .map(|(_, a)| a)
                .collect();
            self.ws.lab.apply(&mut self.settings.lab, acts);
        } else {
            if space {
                walk::run_or_pause(&self.settings.walk, &self.ws.walk, actions);
            }
            if s {
                walk::step(&self.settings.walk, actions);
            }
            if r {
                walk::reset(&self.settings.walk, &mut self.ws.walk, actions);
            }
        }
        if f1 {
            self.help_open = !self.help_open;
        }
    }

    pub(in crate::app) fn help_window(&mut self, ctx: &egui::Context) {
        let mut open = self.help_open;
        egui::Window::new("Help")
            .open(&mut open)
            .resizable(true)
            .default_width(460.0)
            .show(ctx, |ui| {
                ui.heading("Shortcuts");
                egui::Grid::new("shortcuts").num_columns(2).show(ui, |ui| {
                    for (k, v) in [
                        ("Space", "run / pause the walk"),
                        ("S", "step to the next jump"),
                        ("R", "reset the chains"),
                        ("F1", "this help"),
                    ] {
                        ui.label(RichText::new(k).monospace());
                        ui.label(v);
                        ui.end_row();
                    }
                });
                ui.separator();
                ui.heading("Workspaces");
                for (t, v) in [
                    ("Walk-Jump", "Langevin chains on the noisy density and their empirical-Bayes jumps: one tile per chain, the film strip of one chain, energy / score / kinetic temperature / pixel range traces, R-hat and ESS across chains, classes with a classifier. Parameter changes apply at the next step; chains, init and seed at Reset. A/B runs a second sampler on the same chains, states and noise, side by side."),
                    ("NEBULA", "gradient flow of the energy from noise, test digits or a digit you draw to attractors; gallery of attractors with basin sizes, nearest training digit and chi distance; poor man's NEBULA (two jumps)."),
                    ("Denoise", "the same noisy digits (test digits or one you draw) through every loaded denoiser, several posterior draws for the VAEs and UVB, per-image MSE and pixel range, and an aggregate MSE table."),
                    ("2D Lab", "teaching: an analytic 2D mixture (presets, click to add a component, drag to move, right-click to remove) with the exact density of Y = X + N(0, sigma^2 I) drawn by a WGSL shader, contours, score arrows and i-spheres; up to 10 000 particles per sampler (overdamped / Sachs / Cheng, A/B on the same seed) with their jumps, trails and histograms against the exact density; the M-density of seed 002 Fig. 1 (M = 2). There Space, S and R run / pause, step and reset its particles."),
                    ("Models", "metadata and training record of each checkpoint; chi statistics of the digits with the model's sigma on that scale."),
                ] {
                    ui.label(RichText::new(t).strong());
                    ui.label(v);
                }
                ui.separator();
                ui.label("Open a checkpoint with Open... or drop a .safetensors file on the window. Every run can be reproduced from the command line: export the run JSON and use walkjump sample --replay FILE.");
            });
        self.help_open = open;
    }
}
