//! The desktop app (feature `gui`): an eframe window over the engine.
//!
//! Structure (after rerun and the egui demo app): [`Settings`] persist between sessions (eframe storage) and live
//! beside the runtime state; drawing code never touches compute state: it collects [`WorkerCommand`]s in an
//! [`Actions`] list that is sent, after drawing, to the [`worker`] thread that owns the models, chains and flows.
//! The worker answers with [`Frame`]s (the newest snapshot of each workspace wins) and wakes the UI. Tests build the
//! app without a worker ([`App::new_for_test`]), read what it sent ([`App::take_sent`]) and feed it frames
//! ([`App::apply_frame`]).

pub mod export;
pub mod messages;
pub mod onnx_dialog;
pub mod settings;
pub mod widgets;
pub mod worker;
pub mod workspace;

// The workspaces, in the order of the tab bar: each entry is a file `src/app/<file>.rs` whose type implements
// `workspace::Workspace`. From this list come `Tab`, `Settings` and the routing (`app/workspace.rs`).
workspace::workspaces! {
    /// Walk-jump chains.
    walk::WalkJump,
    /// NEBULA flows.
    nebula::Nebula,
    /// Denoising comparison.
    denoise::Denoise,
    /// Analytic 2D mixtures, shader-rendered density, particles (teaching).
    lab::Lab,
    /// Checkpoint metadata and chi.
    models::Models,
}

/// The shell around the workspaces, beside this file's frame loop, bars and state.
mod shell {
    pub mod dialogs;
    pub mod drops;
    pub mod help;
    pub mod launch;
}

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use egui::{Color32, RichText, Ui};

pub use export::SaveKind;
use export::{DialogPurpose, PendingDialog};
use messages::ModelInfo;
pub use messages::{Frame, WorkerCommand};
pub use settings::SETTINGS_KEY;
pub use shell::launch::{AppError, FrameReport, GuiOptions, ScreenshotRequest, run};
use shell::launch::{FrameMeter, Screenshot};

pub use crate::{
    CLASSIFIER_CHECKPOINT, DEFAULT_CHECKPOINT, DENOISE_TRIO, NEBULA_CHECKPOINT, NEBULA_ETA,
    checkpoints_dir,
};

/// What one pass of drawing asked for; applied after drawing, in one place.
#[derive(Default, Debug)]
#[must_use]
pub struct Actions {
    /// Commands for the worker.
    pub commands: Vec<WorkerCommand>,
    /// Exports to ask a file name for.
    pub saves: Vec<SaveKind>,
    /// Show the Open dialog.
    pub open_dialog: bool,
    /// Show the dialog that picks images for conditioned chains.
    pub open_images_dialog: bool,
    /// Show the dialog that picks images to denoise.
    pub open_denoise_dialog: bool,
    /// Load every bundled checkpoint not loaded yet.
    pub load_all_bundled: bool,
}

impl Actions {
    /// Queues a command for the worker.
    pub fn send(&mut self, cmd: WorkerCommand) {
        self.commands.push(cmd);
    }
}

/// A checkpoint the model picker offers.
#[derive(Clone, Debug)]
struct ModelSlot {
    path: PathBuf,
    label: String,
    bundled: bool,
    info: Option<ModelInfo>,
}

/// How commands leave the UI.
enum Link {
    /// A worker thread.
    Thread {
        tx: Sender<WorkerCommand>,
        rx: Receiver<Frame>,
    },
    /// No worker: commands are kept for the test to read.
    Test { sent: Vec<WorkerCommand> },
}

/// The app: persisted settings, runtime view state, and the link to the worker.
pub struct App {
    /// What persists.
    pub settings: Settings,
    link: Link,
    slots: Vec<ModelSlot>,
    current: Option<PathBuf>,
    classifier: Option<PathBuf>,
    device: String,
    banner: Option<String>,
    notice: Option<String>,
    /// Each workspace's runtime state, under its file's name.
    ws: WorkspaceStates,
    /// The digit drawn with the mouse (NEBULA and Denoise share it).
    pad: widgets::DrawPad,
    help_open: bool,
    dialogs: Vec<PendingDialog>,
    frame_ms: f32,
    /// The UI's own work per frame (ms, smoothed), shown while something animates.
    ui_ms: f32,
    autostart: bool,
    screenshot: Option<Screenshot>,
    started: Instant,
    theme_applied: Option<bool>,
    meter: Option<FrameMeter>,
    /// An `.onnx` file waiting for its role / sigma / shape.
    onnx_ask: Option<onnx_dialog::OnnxAsk>,
}

/// The `.safetensors` files of a folder, sorted, without the classifier.
fn bundled_checkpoints(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "safetensors")
                && p.file_name().is_some_and(|n| n != CLASSIFIER_CHECKPOINT)
        })
        .collect();
    v.sort();
    v
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

impl App {
    fn blank(link: Link, settings: Settings, device: String) -> Self {
        Self {
            settings,
            link,
            slots: Vec::new(),
            current: None,
            classifier: None,
            device,
            banner: None,
            notice: None,
            ws: Default::default(),
            pad: Default::default(),
            help_open: false,
            dialogs: Vec::new(),
            frame_ms: 0.0,
            ui_ms: 0.0,
            autostart: false,
            screenshot: None,
            started: Instant::now(),
            theme_applied: None,
            meter: None,
            onnx_ask: None,
        }
    }

    /// The app without a worker thread, for tests: commands pile up for [`App::take_sent`], frames come from
    /// [`App::apply_frame`]. No checkpoint is scanned or opened.
    pub fn new_for_test() -> Self {
        Self::blank(
            Link::Test { sent: Vec::new() },
            Settings::default(),
            "cpu".into(),
        )
    }

    /// Lists the bundled checkpoints of `dir` and opens the first model (`checkpoint`, else the default). Without
    /// `checkpoint`, each workspace starts on the bundled model suited to it: NEBULA on [`NEBULA_CHECKPOINT`] (loaded
    /// when first shown), Denoise with the sigma-VAE / DEEN / UVB trio ([`DENOISE_TRIO`] beside the default).
    pub fn startup(&mut self, dir: &Path, checkpoint: Option<&Path>) {
        for p in bundled_checkpoints(dir) {
            self.slots.push(ModelSlot {
                label: stem(&p),
                path: p,
                bundled: true,
                info: None,
            });
        }
        let first = checkpoint
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join(DEFAULT_CHECKPOINT));
        if first.is_file() {
            self.open_path(&first);
        } else {
            self.banner = Some(format!(
                "the default model {} is missing: open a checkpoint with Open... or drop one on the window",
                first.display()
            ));
        }
        if checkpoint.is_none() && first.is_file() {
            let nebula = dir.join(NEBULA_CHECKPOINT);
            if nebula.is_file() {
                self.ws.nebula.target = nebula::NebulaTarget {
                    path: Some(nebula),
                    why: Some(format!(
                        "the bundled model for attractors (checkpoints/MODELS.md): its flows from uniform noise end \
                         on whole digits, where the sigma = 1 default's all fall into one blur; eta {NEBULA_ETA} as \
                         documented there. Pick another model in the top bar to flow on it."
                    )),
                    eta: Some(NEBULA_ETA),
                };
            }
            for name in DENOISE_TRIO {
                let path = dir.join(name);
                if path.is_file() {
                    self.send(WorkerCommand::Load {
                        path,
                        select: false,
                    });
                }
            }
        }
        let classifier = dir.join(CLASSIFIER_CHECKPOINT);
        if classifier.is_file() {
            self.send(WorkerCommand::Load {
                path: classifier,
                select: false,
            });
        }
    }

    /// Opens a checkpoint (file dialog, drop, command line): it becomes the current model once loaded; a file
    /// that fails to load leaves the current model in place.
    pub fn open_path(&mut self, path: &Path) {
        if !self.slots.iter().any(|s| s.path == path) {
            self.slots.push(ModelSlot {
                path: path.to_path_buf(),
                label: stem(path),
                bundled: false,
                info: None,
            });
        }
        self.send(WorkerCommand::Load {
            path: path.to_path_buf(),
            select: true,
        });
    }

    fn send(&mut self, cmd: WorkerCommand) {
        match &mut self.link {
            Link::Thread { tx, .. } => {
                if tx.send(cmd).is_err() {
                    self.banner = Some("the worker thread has stopped; restart the app".into());
                }
            }
            Link::Test { sent } => sent.push(cmd),
        }
    }

    /// Commands sent since the last call (test mode only; empty with a worker thread).
    pub fn take_sent(&mut self) -> Vec<WorkerCommand> {
        match &mut self.link {
            Link::Test { sent } => std::mem::take(sent),
            Link::Thread { .. } => Vec::new(),
        }
    }

    /// The error banner, if one is shown.
    pub fn banner(&self) -> Option<&str> {
        self.banner.as_deref()
    }

    /// The current model's file.
    pub fn current(&self) -> Option<&Path> {
        self.current.as_deref()
    }

    /// The current model's information, once loaded.
    pub fn current_info(&self) -> Option<&ModelInfo> {
        let cur = self.current.as_ref()?;
        self.info_of(cur)
    }

    fn info_of(&self, path: &Path) -> Option<&ModelInfo> {
        self.slots
            .iter()
            .find(|s| s.path == path)
            .and_then(|s| s.info.as_ref())
    }

    /// The model NEBULA flows on (its own choice, else the current model).
    pub fn nebula_target(&self) -> &nebula::NebulaTarget {
        &self.ws.nebula.target
    }

    /// The information of the model NEBULA flows on, once loaded.
    pub fn nebula_info(&self) -> Option<&ModelInfo> {
        match &self.ws.nebula.target.path {
            Some(p) => self.info_of(p),
            None => self.current_info(),
        }
    }

    /// The model the open workspace works on (NEBULA's own, else the current one).
    fn workspace_info(&self) -> Option<&ModelInfo> {
        match self.settings.tab {
            Tab::Nebula => self.nebula_info(),
            _ => self.current_info(),
        }
    }

    /// Loaded models that can jump the chains of `walker`: same image shape, M and sigma, with a jump.
    fn jump_models(&self, walker: Option<&ModelInfo>) -> Vec<(PathBuf, String)> {
        let Some(w) = walker else {
            return Vec::new();
        };
        self.slots
            .iter()
            .filter_map(|s| s.info.as_ref())
            .filter(|i| {
                i.path != w.path
                    && i.is_denoiser
                    && i.shape == w.shape
                    && i.measurements == w.measurements
                    && (i.sigma - w.sigma).abs() <= 1e-9 * w.sigma.abs().max(i.sigma.abs())
            })
            .map(|i| {
                (
                    i.path.clone(),
                    format!("{} ({}, sigma {})", i.label, i.kind, i.sigma),
                )
            })
            .collect()
    }

    /// Makes `path` the model NEBULA flows on (the user's choice: no reason shown, no documented step size).
    fn set_nebula_model(&mut self, path: PathBuf, actions: &mut Actions) {
        if self.ws.nebula.target.path.as_ref() != Some(&path) {
            self.ws.nebula.view.clear();
        }
        if self.info_of(&path).is_none() {
            actions.send(WorkerCommand::Load {
                path: path.clone(),
                select: false,
            });
        }
        self.ws.nebula.requested = Some(path.clone());
        self.ws.nebula.target = nebula::NebulaTarget {
            path: Some(path),
            why: None,
            eta: None,
        };
    }

    /// Asks the worker to read images to denoise from `path` (their shape from the file: colour or any size, for
    /// models of that shape) and denoises them with the Denoise settings; a file that does not fit gives the
    /// worker's one-line error in the banner.
    pub fn load_denoise_images(&mut self, path: &Path) {
        self.send(WorkerCommand::DenoiseImages(path.to_path_buf()));
        self.settings.denoise.file = true;
        self.ws.denoise.loaded = Some(path.to_path_buf());
        self.ws.denoise.message = None;
        self.send(WorkerCommand::Denoise(self.settings.denoise.request()));
        self.notice = Some(format!("denoising images from {}", path.display()));
    }

    /// Reads images of the current model's shape from `path` (PNG, PNG folder, `.npy`, IDX) as the observations of
    /// conditioned chains (one per chain, repeated); a file that does not fit gives a one-line banner.
    pub fn load_condition_images(&mut self, path: &Path) {
        let Some((c, h, w)) = self.current_info().map(|i| i.shape) else {
            self.banner = Some("open a model before choosing images to hold".into());
            return;
        };
        match crate::data::images::read_images(path, c, h, w) {
            Ok(rows) => {
                let n = rows.len();
                self.ws.walk.loaded = Some((path.to_path_buf(), rows.concat()));
                self.settings.walk.cond.source = walk::CondSource::File;
                self.notice = Some(format!(
                    "{n} image(s) from {} to hold, one per chain",
                    path.display()
                ));
            }
            Err(e) => {
                self.banner = Some(format!(
                    "could not read images from {}: {}",
                    path.display(),
                    crate::error::one_line(&e.to_string())
                ))
            }
        }
    }

    /// Loads NEBULA's own model the first time the workspace is shown.
    fn ensure_nebula_model(&mut self, actions: &mut Actions) {
        let Some(p) = self.ws.nebula.target.path.clone() else {
            return;
        };
        if self.ws.nebula.requested.as_ref() != Some(&p) {
            self.ws.nebula.requested = Some(p.clone());
            if self.info_of(&p).is_none() {
                actions.send(WorkerCommand::Load {
                    path: p,
                    select: false,
                });
            }
        }
    }

    /// The drawing pad shared by NEBULA and Denoise.
    pub fn pad_mut(&mut self) -> &mut widgets::DrawPad {
        &mut self.pad
    }

    /// The newest NEBULA snapshot.
    pub fn nebula_frame(&self) -> Option<&messages::NebulaFrame> {
        self.ws.nebula.view.frame.as_ref()
    }

    /// The newest denoising comparison.
    pub fn denoise_frame(&self) -> Option<&messages::DenoiseFrame> {
        self.ws.denoise.frame.as_ref()
    }

    /// The newest Walk-Jump snapshot.
    pub fn walk_frame(&self) -> Option<&messages::WalkFrame> {
        self.ws.walk.frame.as_ref()
    }

    /// Loaded denoisers, in picker order.
    pub fn loaded_denoisers(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.info.as_ref().is_some_and(|i| i.is_denoiser))
            .count()
    }

    /// The 2D Lab's runtime state (its particles live on the UI thread).
    pub fn lab_state(&self) -> &lab::LabState {
        &self.ws.lab
    }

    /// Takes a frame from the worker.
    pub fn apply_frame(&mut self, frame: Frame) {
        match frame {
            Frame::Loaded { info, selected } => {
                let path = info.path.clone();
                match self.slots.iter_mut().find(|s| s.path == path) {
                    Some(s) => s.info = Some(*info),
                    None => self.slots.push(ModelSlot {
                        label: info.label.clone(),
                        path: path.clone(),
                        bundled: false,
                        info: Some(*info),
                    }),
                }
                if selected {
                    self.on_selected(path);
                }
            }
            Frame::Selected(path) => self.on_selected(path),
            Frame::ClassifierLoaded { path } => {
                self.slots.retain(|s| s.path != path);
                self.classifier = Some(path);
            }
            Frame::LoadFailed { path, error } => {
                self.slots
                    .retain(|s| s.path != path || s.bundled || s.info.is_some());
                let err = error.lines().next().unwrap_or("").to_string();
                match onnx_dialog::OnnxAsk::after_failure(&path, &err) {
                    // An ONNX file that only lacks its metadata: ask instead of failing.
                    Some(ask) => self.onnx_ask = Some(ask),
                    None => {
                        self.banner = Some(format!("could not open {}: {err}", path.display()));
                    }
                }
            }
            Frame::Error(e) => {
                self.banner = Some(e.lines().next().unwrap_or("").to_string());
            }
            Frame::Device { label, note } => {
                if label != self.device {
                    // Chains and flows do not survive a change of device.
                    self.workspaces_device_changed();
                }
                self.device = label;
                self.notice = Some(match note {
                    Some(n) => n.lines().next().unwrap_or("").to_string(),
                    None => format!("computing on {}", self.device),
                });
            }
            // The workspaces' own frames (snapshots, tables); each takes its own kinds.
            other => {
                let _untaken = self.workspace_frame(other);
            }
        }
    }

    /// The device in use (`cpu`, `cuda`, `metal`).
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The device selector of the top bar: picking one asks the worker to move every model there.
    fn device_picker(&mut self, ui: &mut Ui, actions: &mut Actions) {
        let built = crate::device::compiled_backends();
        let hover = if built.is_empty() {
            "where the models compute; this build is CPU-only (a GPU choice falls back to the CPU with a note)"
                .to_string()
        } else {
            format!(
                "where the models compute; this build supports cpu and {} (an unusable GPU falls back to the CPU with a note)",
                built.join(", ")
            )
        };
        let mut pick: Option<&str> = None;
        egui::ComboBox::from_label("device")
            .selected_text(self.device.as_str())
            .width(70.0)
            .show_ui(ui, |ui| {
                for spec in ["cpu", "cuda", "metal"] {
                    if ui.selectable_label(self.device == spec, spec).clicked()
                        && self.device != spec
                    {
                        pick = Some(spec);
                    }
                }
            })
            .response
            .on_hover_text(hover);
        if let Some(spec) = pick {
            actions.send(WorkerCommand::SetDevice(spec.to_string()));
        }
    }

    fn on_selected(&mut self, path: PathBuf) {
        let changed = self.current.as_ref() != Some(&path);
        self.current = Some(path);
        if changed {
            self.ws.walk.clear();
            // The jump model and the condition were checked against the previous model.
            if self.ws.walk.jump_with.take().is_some() {
                self.send(WorkerCommand::Walk(messages::WalkCommand::SetJumpModel(
                    None,
                )));
            }
            self.ws.walk.sent_condition = None;
            if self.ws.nebula.target.path.is_none() {
                // NEBULA follows the current model when it has none of its own.
                self.ws.nebula.view.clear();
            }
        }
        if let Some(info) = self.current_info().cloned() {
            if let Some(i) = self
                .slots
                .iter()
                .filter(|s| s.info.is_some())
                .position(|s| s.path == info.path)
            {
                self.ws.models.shown = i;
            }
            // A model other than the one the parameters were tuned for starts from its recommendation.
            if self.settings.walk.tuned_for.as_deref() != Some(info.sha256.as_str()) {
                let (s, every) = info.recommended;
                self.settings.walk.set_sampler(s, Some(every));
                self.settings.walk.init = crate::run::default_init(info.sigma);
                self.settings.walk.tuned_for = Some(info.sha256.clone());
                self.ws.walk.refresh_texts();
            }
            if self.autostart && info.has_score && self.settings.tab == Tab::WalkJump {
                self.autostart = false;
                let cfg = self.settings.walk.config();
                self.send(WorkerCommand::Walk(messages::WalkCommand::Run(cfg)));
            }
        }
    }

    fn pump(&mut self) {
        let mut frames = Vec::new();
        if let Link::Thread { rx, .. } = &self.link {
            while let Ok(f) = rx.try_recv() {
                frames.push(f);
            }
        }
        for f in frames {
            self.apply_frame(f);
        }
    }

    /// Draws one frame of the whole app and then applies what the drawing asked for.
    pub fn show(&mut self, ui: &mut Ui) {
        let frame_start = Instant::now();
        let ctx = ui.ctx().clone();
        self.pump();
        self.poll_dialogs();
        if self.theme_applied != Some(self.settings.dark) {
            ctx.set_theme(if self.settings.dark {
                egui::Theme::Dark
            } else {
                egui::Theme::Light
            });
            self.theme_applied = Some(self.settings.dark);
        }
        let dt = ctx.input(|i| i.unstable_dt) * 1000.0;
        self.frame_ms = if self.frame_ms == 0.0 {
            dt
        } else {
            0.9 * self.frame_ms + 0.1 * dt
        };
        let mut actions = Actions::default();
        self.dropped_files(&ctx);
        self.shortcuts(&ctx, &mut actions);
        self.top_bar(ui, &mut actions);
        self.status_bar(ui);
        self.banner_bar(ui);
        if let Some((_, h, w)) = self.current_info().map(|i| i.shape) {
            self.pad.resize(h, w);
        }
        self.show_workspace(ui, &mut actions);
        self.autostart_step(&mut actions);
        self.help_window(&ctx);
        self.onnx_window(&ctx);
        self.drop_hint(&ctx);
        self.apply_actions(actions);
        self.screenshot_step(&ctx);
        if self.ws.walk.running()
            || self
                .ws
                .nebula
                .view
                .frame
                .as_ref()
                .is_some_and(|f| f.running)
        {
            // Keep the frame time honest while frames stream in.
            ctx.request_repaint_after(Duration::from_millis(16));
        }
        let ui_ms = frame_start.elapsed().as_secs_f32() * 1000.0;
        self.ui_ms = if self.ui_ms == 0.0 {
            ui_ms
        } else {
            0.9 * self.ui_ms + 0.1 * ui_ms
        };
        self.measure_step(&ctx, dt, ui_ms as f64);
    }

    /// Whether anything moves on its own: chains running, a flow running, or the 2D Lab's particles.
    pub fn animating(&self) -> bool {
        self.ws.walk.running()
            || self
                .ws
                .nebula
                .view
                .frame
                .as_ref()
                .is_some_and(|f| f.running)
            || (self.settings.tab == Tab::Lab && self.ws.lab.running())
    }

    fn apply_actions(&mut self, actions: Actions) {
        for c in actions.commands {
            self.send(c);
        }
        for kind in actions.saves {
            self.start_dialog(DialogPurpose::Save(kind));
        }
        if actions.open_dialog {
            self.start_dialog(DialogPurpose::Open);
        }
        if actions.open_images_dialog {
            self.start_dialog(DialogPurpose::OpenImages);
        }
        if actions.open_denoise_dialog {
            self.start_dialog(DialogPurpose::OpenDenoiseImages);
        }
        if actions.load_all_bundled {
            let paths: Vec<PathBuf> = self
                .slots
                .iter()
                .filter(|s| s.bundled && s.info.is_none())
                .map(|s| s.path.clone())
                .collect();
            for path in paths {
                self.send(WorkerCommand::Load {
                    path,
                    select: false,
                });
            }
        }
    }

    fn top_bar(&mut self, ui: &mut Ui, actions: &mut Actions) {
        egui::Panel::top("top_bar").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new("walkjump").strong());
                ui.separator();
                let current_label = self
                    .workspace_info()
                    .map(|i| format!("{} ({}, sigma {})", i.label, i.kind, i.sigma))
                    .unwrap_or_else(|| "(no model)".into());
                let nebula_tab = self.settings.tab == Tab::Nebula;
                let shown = if nebula_tab {
                    self.ws.nebula.target.path.clone().or(self.current.clone())
                } else {
                    self.current.clone()
                };
                let mut pick: Option<(PathBuf, bool)> = None;
                egui::ComboBox::from_label(if nebula_tab { "NEBULA model" } else { "model" })
                    .selected_text(current_label)
                    .width(260.0)
                    .show_ui(ui, |ui| {
                        for s in &self.slots {
                            let text = match &s.info {
                                Some(i) => format!("{} ({}, sigma {})", s.label, i.kind, i.sigma),
                                None if s.bundled => format!("{} (bundled, not loaded)", s.label),
                                None => format!("{} (loading)", s.label),
                            };
                            let is_current = shown.as_ref() == Some(&s.path);
                            if ui.selectable_label(is_current, text).clicked() && !is_current {
                                pick = Some((s.path.clone(), s.info.is_some()));
                            }
                        }
                    });
                if let Some((path, loaded)) = pick {
                    if nebula_tab {
                        // NEBULA keeps its own model; the Walk-Jump chains go on.
                        self.set_nebula_model(path, actions);
                    } else {
                        actions.send(if loaded {
                            WorkerCommand::Select(path)
                        } else {
                            WorkerCommand::Load { path, select: true }
                        });
                    }
                }
                if ui
                    .button("Open...")
                    .on_hover_text("open a .safetensors checkpoint or an .onnx model (or drop one on the window)")
                    .clicked()
                {
                    actions.open_dialog = true;
                }
                ui.separator();
                self.device_picker(ui, actions);
                if let Some(c) = &self.classifier {
                    ui.label(format!("classifier: {}", stem(c)));
                }
                ui.separator();
                let theme = if self.settings.dark {
                    "Light theme"
                } else {
                    "Dark theme"
                };
                if ui.button(theme).clicked() {
                    self.settings.dark = !self.settings.dark;
                }
                if ui.button("Help").on_hover_text("F1").clicked() {
                    self.help_open = !self.help_open;
                }
            });
            ui.horizontal(|ui| {
                for &t in Tab::ALL {
                    ui.selectable_value(&mut self.settings.tab, t, t.label());
                }
            });
        });
    }

    fn banner_bar(&mut self, ui: &mut Ui) {
        let mut dismiss = false;
        if let Some(b) = &self.banner {
            egui::Panel::top("banner").show(ui, |ui| {
                ui.horizontal(|ui| {
                    if ui.small_button("Dismiss").clicked() {
                        dismiss = true;
                    }
                    // One line, however long the message; the whole of it on hover.
                    let text =
                        RichText::new(format!("Error: {b}")).color(Color32::from_rgb(230, 80, 60));
                    ui.add(egui::Label::new(text).truncate())
                        .on_hover_text(b.as_str());
                });
            });
        }
        if dismiss {
            self.banner = None;
        }
    }

    fn status_bar(&mut self, ui: &mut Ui) {
        egui::Panel::bottom("status_bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                if self.animating() {
                    ui.label(format!("frame {:.1} ms", self.ui_ms))
                        .on_hover_text(format!(
                            "the UI's own work per frame (smoothed); frames come every {:.0} ms",
                            self.frame_ms
                        ));
                } else {
                    ui.label("idle")
                        .on_hover_text("nothing animates: the window repaints only on input");
                }
                ui.separator();
                let (sps, running, chains) = self
                    .ws
                    .walk
                    .frame
                    .as_ref()
                    .map(|f| (f.steps_per_sec, f.running_chains, f.chains))
                    .unwrap_or((0.0, 0, 0));
                ui.label(format!("{sps:.0} steps/s"));
                ui.separator();
                ui.label(format!("chains running {running}/{chains}"));
                ui.separator();
                ui.label(format!("device {}", self.device));
                ui.separator();
                ui.label(match self.workspace_info() {
                    Some(i) => format!("model: {} ({}, sigma {})", i.label, i.kind, i.sigma),
                    None => "model: none".into(),
                });
                if self.settings.tab == Tab::WalkJump
                    && let Some(j) = self
                        .ws
                        .walk
                        .frame
                        .as_ref()
                        .and_then(|f| f.jump_model.as_ref())
                {
                    ui.label(format!("jumps with {j}"));
                }
                if let Some(n) = &self.notice {
                    ui.separator();
                    ui.label(RichText::new(n).weak());
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_default_model_opens_with_a_banner() {
        let dir = std::env::temp_dir().join(format!("walkjump-app-empty-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let mut app = App::new_for_test();
        app.startup(&dir, None);
        assert!(app.banner().is_some_and(|b| b.contains(DEFAULT_CHECKPOINT)));
        assert!(app.take_sent().is_empty());
        assert!(app.current().is_none());
    }
}
