//! The desktop app (feature `gui`): an eframe window over the engine.
//!
//! Structure (after rerun and the egui demo app): [`Settings`] persist between sessions (eframe storage) and live
//! beside the runtime state; drawing code never touches compute state: it collects [`WorkerCommand`]s in an
//! [`Actions`] list that is sent, after drawing, to the [`worker`] thread that owns the models, chains and flows.
//! The worker answers with [`Frame`]s (the newest snapshot of each workspace wins) and wakes the UI. Tests build the
//! app without a worker ([`App::new_for_test`]), read what it sent ([`App::take_sent`]) and feed it frames
//! ([`App::apply_frame`]).

pub mod denoise;
pub mod export;
pub mod lab;
pub mod messages;
pub mod models;
pub mod nebula;
pub mod onnx_dialog;
pub mod walk;
pub mod widgets;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::{Color32, Key, RichText, Ui};
use serde::{Deserialize, Serialize};

use crate::data::geometry::ChiStats;
pub use export::SaveKind;
use export::{DialogPurpose, PendingDialog};
use messages::ModelInfo;
pub use messages::{Frame, WorkerCommand};

pub use crate::{
    CLASSIFIER_CHECKPOINT, DEFAULT_CHECKPOINT, DENOISE_TRIO, NEBULA_CHECKPOINT, NEBULA_ETA,
    checkpoints_dir,
};

/// Why the app could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The window or its renderer could not be created.
    #[error("cannot open the window: {0}")]
    Window(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The device could not be opened.
    #[error(transparent)]
    Engine(#[from] crate::Error),
    /// The screenshot asked for on the command line failed.
    #[error("screenshot failed: {0}")]
    Screenshot(String),
}

/// Take a screenshot after a delay, save it, and close the window (for CI and the README).
#[derive(Clone, Debug, PartialEq)]
pub struct ScreenshotRequest {
    /// Seconds after start.
    pub after: f64,
    /// PNG file to write.
    pub path: PathBuf,
}

/// How the app is started (from the command line).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuiOptions {
    /// Model to open first (default: the bundled default model).
    pub checkpoint: Option<PathBuf>,
    /// Device spec (`cpu`, `cuda`, `cuda:N`, `metal`).
    pub device: String,
    /// Press Run as soon as the first model is loaded.
    pub autostart: bool,
    /// Take a screenshot and exit.
    pub screenshot: Option<ScreenshotRequest>,
    /// Start from default settings instead of the saved ones.
    pub fresh: bool,
    /// Number of chains to start with (overrides the saved setting).
    pub chains: Option<usize>,
    /// Measure frame times for this many seconds once the chains run, then close (see [`FrameReport`]).
    pub measure_frames: Option<f64>,
    /// Workspace to open on (else the saved one); with `autostart`, its main action runs once its models load.
    pub tab: Option<Tab>,
}

/// Frame times measured while the chains ran (`walkjump gui --measure-frames`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameReport {
    /// Frames measured.
    pub frames: usize,
    /// Chains running.
    pub chains: usize,
    /// Time between frames: mean, 95th percentile and largest, in ms.
    pub interval_ms: [f64; 3],
    /// Time the UI thread spent building each frame (the app's own work, without presenting): mean, p95, max, ms.
    pub ui_ms: [f64; 3],
    /// Walk steps per second reported by the worker (mean over the frames).
    pub steps_per_sec: f64,
}

impl std::fmt::Display for FrameReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [im, ip, ix] = self.interval_ms;
        let [um, up, ux] = self.ui_ms;
        write!(
            f,
            "frames {} with {} chains: interval mean {im:.2} ms (fps {:.1}), p95 {ip:.2}, max {ix:.2}; \
             UI work mean {um:.2} ms, p95 {up:.2}, max {ux:.2}; {:.1} walk steps/s",
            self.frames,
            self.chains,
            1000.0 / im.max(1e-9),
            self.steps_per_sec
        )
    }
}

/// Collects frame times for [`FrameReport`].
struct FrameMeter {
    seconds: f64,
    running_since: Option<Instant>,
    started: Option<Instant>,
    interval: Vec<f64>,
    ui: Vec<f64>,
    rate: Vec<f64>,
    chains: usize,
    result: Arc<Mutex<Option<FrameReport>>>,
}

impl FrameMeter {
    fn report(&self) -> FrameReport {
        let stats = |v: &[f64]| -> [f64; 3] {
            if v.is_empty() {
                return [0.0; 3];
            }
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            let p95 = s[((s.len() as f64 * 0.95).ceil() as usize).clamp(1, s.len()) - 1];
            [s.iter().sum::<f64>() / s.len() as f64, p95, s[s.len() - 1]]
        };
        FrameReport {
            frames: self.interval.len(),
            chains: self.chains,
            interval_ms: stats(&self.interval),
            ui_ms: stats(&self.ui),
            steps_per_sec: self.rate.iter().sum::<f64>() / self.rate.len().max(1) as f64,
        }
    }
}

/// The workspaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    /// Walk-jump chains.
    WalkJump,
    /// NEBULA flows.
    Nebula,
    /// Denoising comparison.
    Denoise,
    /// Analytic 2D mixtures, shader-rendered density, particles (teaching).
    Lab,
    /// Checkpoint metadata and chi.
    Models,
}

impl Tab {
    /// Every workspace, in the order of the tab bar.
    pub const ALL: [Tab; 5] = [
        Tab::WalkJump,
        Tab::Nebula,
        Tab::Denoise,
        Tab::Lab,
        Tab::Models,
    ];

    /// The workspace named `name` on the command line (`walk-jump`, `nebula`, `denoise`, `lab`, `models`).
    pub fn from_name(name: &str) -> Option<Tab> {
        match name.trim().to_ascii_lowercase().as_str() {
            "walk-jump" | "walkjump" | "walk" => Some(Tab::WalkJump),
            "nebula" => Some(Tab::Nebula),
            "denoise" => Some(Tab::Denoise),
            "lab" | "2d-lab" => Some(Tab::Lab),
            "models" => Some(Tab::Models),
            _ => None,
        }
    }

    /// Name on the tab.
    pub fn label(self) -> &'static str {
        match self {
            Tab::WalkJump => "Walk-Jump",
            Tab::Nebula => "NEBULA",
            Tab::Denoise => "Denoise",
            Tab::Lab => "2D Lab",
            Tab::Models => "Models",
        }
    }
}

/// Everything that persists between sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Dark theme (else light).
    pub dark: bool,
    /// Open workspace.
    pub tab: Tab,
    /// Walk-Jump parameters.
    pub walk: walk::WalkSettings,
    /// NEBULA parameters.
    pub nebula: nebula::NebulaSettings,
    /// Denoise parameters.
    pub denoise: denoise::DenoiseSettings,
    /// 2D Lab parameters.
    pub lab: lab::LabSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dark: true,
            tab: Tab::WalkJump,
            walk: Default::default(),
            nebula: Default::default(),
            denoise: Default::default(),
            lab: Default::default(),
        }
    }
}

/// Key of the settings (JSON text) in eframe's storage.
pub const SETTINGS_KEY: &str = "walkjump.settings";

impl Settings {
    /// Reads saved settings. Unreadable text falls back to the defaults, and values out of range (NaN or
    /// non-positive step sizes, zero chains, ...) are replaced by their defaults; the second value says what was
    /// done, in one line, when anything was.
    pub fn from_json(text: &str) -> (Settings, Option<String>) {
        match serde_json::from_str::<Settings>(text) {
            Ok(mut s) => {
                let fixed = s.sanitize();
                let note = (!fixed.is_empty()).then(|| {
                    format!(
                        "saved settings had invalid values ({}); defaults used for those",
                        fixed.join(", ")
                    )
                });
                (s, note)
            }
            Err(e) => (
                Settings::default(),
                Some(format!(
                    "saved settings are unreadable ({}); using the defaults",
                    crate::error::one_line(&e.to_string())
                )),
            ),
        }
    }

    /// Replaces every value the app cannot use by its default; returns the names of the fields replaced.
    pub fn sanitize(&mut self) -> Vec<&'static str> {
        let mut fixed = Vec::new();
        let (w, wd) = (&mut self.walk, walk::WalkSettings::default());
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
        let bd = walk::SideB::default();
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
        let (n, nd) = (&mut self.nebula, nebula::NebulaSettings::default());
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
        let (d, dd) = (&mut self.denoise, denoise::DenoiseSettings::default());
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
        fixed.extend(self.lab.sanitize());
        fixed
    }
}

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

/// State of a screenshot request.
struct Screenshot {
    req: ScreenshotRequest,
    requested: bool,
    result: Arc<Mutex<Option<Result<(), String>>>>,
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
    walk: walk::WalkView,
    nebula: nebula::NebulaView,
    /// The model NEBULA flows on (its own, apart from the current Walk-Jump model).
    nebula_target: nebula::NebulaTarget,
    /// The NEBULA model asked for from the worker (loaded once, when the workspace is first shown).
    nebula_requested: Option<PathBuf>,
    denoise: denoise::DenoiseView,
    /// The digit drawn with the mouse (NEBULA and Denoise share it).
    pad: widgets::DrawPad,
    lab: lab::LabState,
    chi: Option<ChiStats>,
    chi_requested: bool,
    models_shown: usize,
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
            walk: Default::default(),
            nebula: Default::default(),
            nebula_target: Default::default(),
            nebula_requested: None,
            denoise: Default::default(),
            pad: Default::default(),
            lab: Default::default(),
            chi: None,
            chi_requested: false,
            models_shown: 0,
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

    /// The app with a worker thread, opening the default (or given) model.
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        opts: &GuiOptions,
        shot: Arc<Mutex<Option<Result<(), String>>>>,
        report: Arc<Mutex<Option<FrameReport>>>,
    ) -> Result<Self, AppError> {
        let (settings, settings_note) = match (cc.storage, opts.fresh) {
            (Some(s), false) => match s.get_string(SETTINGS_KEY) {
                Some(text) => Settings::from_json(&text),
                None => (Settings::default(), None),
            },
            _ => (Settings::default(), None),
        };
        let spec = if opts.device.is_empty() {
            "cpu"
        } else {
            &opts.device
        };
        if let Some(rs) = cc.wgpu_render_state.as_ref() {
            lab::density::install(rs);
        }
        let (device, note) = crate::device::select(spec)?;
        let device_label = crate::device::describe(&device);
        let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
        let (frame_tx, frame_rx) = std::sync::mpsc::channel();
        let ctx = cc.egui_ctx.clone();
        worker::spawn(
            worker::Worker::new(device),
            worker::Link {
                commands: cmd_rx,
                frames: frame_tx,
                // Batch bursts of frames into one repaint (as rerun does).
                wake: Box::new(move || ctx.request_repaint_after(Duration::from_millis(10))),
            },
        )?;
        let mut app = Self::blank(
            Link::Thread {
                tx: cmd_tx,
                rx: frame_rx,
            },
            settings,
            device_label,
        );
        app.notice = note;
        if let Some(n) = settings_note {
            app.banner = Some(n);
        }
        app.autostart = opts.autostart;
        if let Some(t) = opts.tab {
            app.settings.tab = t;
        }
        if let Some(c) = opts.chains {
            app.settings.walk.chains = c.clamp(1, 256);
        }
        app.meter = opts.measure_frames.map(|seconds| FrameMeter {
            seconds,
            running_since: None,
            started: None,
            interval: Vec::new(),
            ui: Vec::new(),
            rate: Vec::new(),
            chains: 0,
            result: report,
        });
        app.screenshot = opts.screenshot.clone().map(|req| Screenshot {
            req,
            requested: false,
            result: shot,
        });
        let dir = checkpoints_dir();
        app.startup(&dir, opts.checkpoint.as_deref());
        Ok(app)
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
                self.nebula_target = nebula::NebulaTarget {
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
        &self.nebula_target
    }

    /// The information of the model NEBULA flows on, once loaded.
    pub fn nebula_info(&self) -> Option<&ModelInfo> {
        match &self.nebula_target.path {
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
        if self.nebula_target.path.as_ref() != Some(&path) {
            self.nebula.clear();
        }
        if self.info_of(&path).is_none() {
            actions.send(WorkerCommand::Load {
                path: path.clone(),
                select: false,
            });
        }
        self.nebula_requested = Some(path.clone());
        self.nebula_target = nebula::NebulaTarget {
            path: Some(path),
            why: None,
            eta: None,
        };
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
                self.walk.loaded = Some((path.to_path_buf(), rows.concat()));
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
        let Some(p) = self.nebula_target.path.clone() else {
            return;
        };
        if self.nebula_requested.as_ref() != Some(&p) {
            self.nebula_requested = Some(p.clone());
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
        self.nebula.frame.as_ref()
    }

    /// The newest denoising comparison.
    pub fn denoise_frame(&self) -> Option<&messages::DenoiseFrame> {
        self.denoise.frame.as_ref()
    }

    /// The newest Walk-Jump snapshot.
    pub fn walk_frame(&self) -> Option<&messages::WalkFrame> {
        self.walk.frame.as_ref()
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
        &self.lab
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
            Frame::Walk(f) => self.walk.apply(*f),
            Frame::Nebula(f) => self.nebula.apply(*f),
            Frame::Denoise(f) => self.denoise.apply(*f),
            Frame::Aggregate(a) => self.denoise.aggregate = Some(a),
            Frame::Chi(c) => self.chi = Some(c),
            Frame::Error(e) => {
                self.banner = Some(e.lines().next().unwrap_or("").to_string());
            }
            Frame::Device { label, note } => {
                if label != self.device {
                    // Chains and flows do not survive a change of device.
                    self.walk.clear();
                    self.nebula.clear();
                }
                self.device = label;
                self.notice = Some(match note {
                    Some(n) => n.lines().next().unwrap_or("").to_string(),
                    None => format!("computing on {}", self.device),
                });
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
            self.walk.clear();
            // The jump model and the condition were checked against the previous model.
            if self.walk.jump_with.take().is_some() {
                self.send(WorkerCommand::Walk(messages::WalkCommand::SetJumpModel(
                    None,
                )));
            }
            self.walk.sent_condition = None;
            if self.nebula_target.path.is_none() {
                // NEBULA follows the current model when it has none of its own.
                self.nebula.clear();
            }
        }
        if let Some(info) = self.current_info().cloned() {
            if let Some(i) = self
                .slots
                .iter()
                .filter(|s| s.info.is_some())
                .position(|s| s.path == info.path)
            {
                self.models_shown = i;
            }
            // A model other than the one the parameters were tuned for starts from its recommendation.
            if self.settings.walk.tuned_for.as_deref() != Some(info.sha256.as_str()) {
                let (s, every) = info.recommended;
                self.settings.walk.set_sampler(s, Some(every));
                self.settings.walk.init = crate::run::default_init(info.sigma);
                self.settings.walk.tuned_for = Some(info.sha256.clone());
                self.walk.refresh_texts();
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

    /// Writes an export to `path` from the newest frame of its workspace (what a save dialog's answer leads to).
    pub fn export_to(&mut self, kind: SaveKind, path: &Path) -> Result<(), String> {
        const NO_WALK: &str = "nothing to export yet: run the chains first";
        const NO_FLOW: &str = "nothing to export yet: start a flow first";
        const NO_DENOISE: &str = "nothing to export yet: denoise some digits first";
        let walk = self.walk.frame.as_ref();
        let flow = self.nebula.frame.as_ref();
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
                    .and(self.walk.jump_with.as_ref())
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
                export::save_denoise_table(self.denoise.frame.as_ref().ok_or(NO_DENOISE)?, path)
            }
        };
        res.map_err(|e| format!("{e:#}"))?;
        self.notice = Some(format!("saved {}", path.display()));
        Ok(())
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
        match self.settings.tab {
            Tab::WalkJump => {
                let info = self.current_info().cloned();
                let jump_models = self.jump_models(info.as_ref());
                let cx = walk::WalkContext {
                    model: info.as_ref(),
                    drawn: &self.pad,
                    jump_models,
                };
                walk::show(
                    ui,
                    &mut self.settings.walk,
                    &mut self.walk,
                    &cx,
                    &mut actions,
                );
            }
            Tab::Nebula => {
                self.ensure_nebula_model(&mut actions);
                let info = self.nebula_info().cloned();
                if let Some((_, h, w)) = info.as_ref().map(|i| i.shape) {
                    self.pad.resize(h, w);
                }
                nebula::show(
                    ui,
                    &mut self.settings.nebula,
                    &mut self.nebula,
                    &mut self.pad,
                    info.as_ref(),
                    &self.nebula_target,
                    &mut actions,
                );
            }
            Tab::Denoise => {
                let n = self.loaded_denoisers();
                let unloaded = self
                    .slots
                    .iter()
                    .filter(|s| s.bundled && s.info.is_none())
                    .count();
                denoise::show(
                    ui,
                    &mut self.settings.denoise,
                    &mut self.denoise,
                    &mut self.pad,
                    n,
                    unloaded,
                    &mut actions,
                );
            }
            Tab::Lab => lab::show(ui, &mut self.settings.lab, &mut self.lab),
            Tab::Models => {
                if self.chi.is_none() && !self.chi_requested {
                    self.chi_requested = true;
                    actions.send(WorkerCommand::ComputeChi);
                }
                let infos: Vec<&ModelInfo> =
                    self.slots.iter().filter_map(|s| s.info.as_ref()).collect();
                egui::CentralPanel::default().show(ui, |ui| {
                    models::show(ui, &infos, &mut self.models_shown, self.chi.as_ref());
                });
            }
        }
        self.autostart_step(&mut actions);
        self.help_window(&ctx);
        self.onnx_window(&ctx);
        self.drop_hint(&ctx);
        self.apply_actions(actions);
        self.screenshot_step(&ctx);
        if self.walk.running() || self.nebula.frame.as_ref().is_some_and(|f| f.running) {
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

    /// `--autostart` outside Walk-Jump: starts the open workspace's main action once its models are loaded (a flow
    /// on NEBULA's model, the comparison of the loaded denoisers, the 2D Lab's particles).
    fn autostart_step(&mut self, actions: &mut Actions) {
        if !self.autostart {
            return;
        }
        match self.settings.tab {
            Tab::WalkJump => {}
            Tab::Nebula => {
                if let Some(info) = self.nebula_info().filter(|i| i.has_score) {
                    let eta = self.nebula_target.default_eta(info.sigma);
                    actions.send(WorkerCommand::Nebula(messages::NebulaCommand::Start {
                        cfg: self.settings.nebula.config(eta),
                        source: self.settings.nebula.source,
                        model: self.nebula_target.path.clone(),
                        hold: self.settings.nebula.hold_condition(info.shape),
                    }));
                    self.autostart = false;
                }
            }
            Tab::Denoise => {
                let waiting = self
                    .slots
                    .iter()
                    .any(|s| s.info.is_none() && DENOISE_TRIO.iter().any(|t| s.path.ends_with(t)));
                if !waiting && self.loaded_denoisers() > 0 {
                    actions.send(WorkerCommand::Denoise(self.settings.denoise.request()));
                    self.autostart = false;
                }
            }
            Tab::Lab => {
                if !self.lab.running() {
                    self.lab
                        .apply(&mut self.settings.lab, vec![lab::LabAction::RunPause]);
                }
                self.autostart = false;
            }
            Tab::Models => self.autostart = false,
        }
    }

    /// Whether anything moves on its own: chains running, a flow running, or the 2D Lab's particles.
    pub fn animating(&self) -> bool {
        self.walk.running()
            || self.nebula.frame.as_ref().is_some_and(|f| f.running)
            || (self.settings.tab == Tab::Lab && self.lab.running())
    }

    /// Records one frame for `--measure-frames`, and closes the window when done.
    fn measure_step(&mut self, ctx: &egui::Context, interval_ms: f32, ui_ms: f64) {
        let running = self.walk.running();
        let (rate, chains) = self
            .walk
            .frame
            .as_ref()
            .map(|f| (f.steps_per_sec, f.running_chains))
            .unwrap_or((0.0, 0));
        let Some(m) = self.meter.as_mut() else {
            return;
        };
        let now = Instant::now();
        if !running {
            m.running_since = None;
            return;
        }
        let since = *m.running_since.get_or_insert(now);
        if now.duration_since(since) < Duration::from_secs(1) {
            return;
        }
        let started = *m.started.get_or_insert(now);
        m.interval.push(interval_ms as f64);
        m.ui.push(ui_ms);
        m.rate.push(rate);
        m.chains = chains;
        if now.duration_since(started).as_secs_f64() >= m.seconds {
            let r = m.report();
            if let Ok(mut slot) = m.result.lock() {
                *slot = Some(r);
            }
            self.meter = None;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
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

    fn start_dialog(&mut self, purpose: DialogPurpose) {
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

    fn poll_dialogs(&mut self) {
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
                DialogPurpose::Save(kind) => {
                    if let Err(e) = self.export_to(kind, &path) {
                        self.banner = Some(format!("could not save {}: {e}", path.display()));
                    }
                }
            }
        }
    }

    /// While a file is dragged over the window, says what dropping it does.
    fn drop_hint(&self, ctx: &egui::Context) {
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
            "Drop a .safetensors checkpoint or an .onnx model to open it, or a .png / .npy to hold in the chains",
            egui::FontId::proportional(24.0),
            Color32::WHITE,
        );
    }

    fn dropped_files(&mut self, ctx: &egui::Context) {
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
            if image {
                self.load_condition_images(&p);
            } else {
                self.open_path(&p);
            }
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context, actions: &mut Actions) {
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
            self.lab.apply(&mut self.settings.lab, acts);
        } else {
            if space {
                walk::run_or_pause(&self.settings.walk, &self.walk, actions);
            }
            if s {
                walk::step(&self.settings.walk, actions);
            }
            if r {
                walk::reset(&self.settings.walk, &mut self.walk, actions);
            }
        }
        if f1 {
            self.help_open = !self.help_open;
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
                    self.nebula_target.path.clone().or(self.current.clone())
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
                for t in [
                    Tab::WalkJump,
                    Tab::Nebula,
                    Tab::Denoise,
                    Tab::Lab,
                    Tab::Models,
                ] {
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
                    && let Some(j) = self.walk.frame.as_ref().and_then(|f| f.jump_model.as_ref())
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

    fn onnx_window(&mut self, ctx: &egui::Context) {
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

    fn help_window(&mut self, ctx: &egui::Context) {
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

    fn screenshot_step(&mut self, ctx: &egui::Context) {
        let Some(shot) = self.screenshot.as_mut() else {
            return;
        };
        ctx.request_repaint_after(Duration::from_millis(50));
        if !shot.requested {
            if self.started.elapsed().as_secs_f64() >= shot.req.after {
                shot.requested = true;
                let path = shot.req.path.clone();
                let result = shot.result.clone();
                ctx.request_screenshot(move |img| {
                    let r = save_color_image(&img, &path);
                    if let Ok(mut slot) = result.lock() {
                        *slot = Some(r);
                    }
                });
            }
            return;
        }
        let done = shot.result.lock().map(|r| r.is_some()).unwrap_or(true);
        if done {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// Writes a screenshot as PNG (atomically).
fn save_color_image(img: &egui::ColorImage, path: &Path) -> Result<(), String> {
    let [w, h] = img.size;
    let first = img.pixels.first().copied();
    if img.pixels.iter().all(|&c| Some(c) == first) {
        return Err("the window is blank (a single colour); the renderer drew nothing".into());
    }
    let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
    let rgba = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| "screenshot has the wrong size".to_string())?;
    let mut buf = std::io::Cursor::new(Vec::new());
    rgba.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    crate::render::write_atomic(path, &buf.into_inner()).map_err(|e| format!("{e:#}"))
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if let Ok(text) = serde_json::to_string(&self.settings) {
            storage.set_string(SETTINGS_KEY, text);
        }
    }
}

/// Opens the window and runs until it is closed; with `measure_frames`, returns the frame times.
pub fn run(opts: GuiOptions) -> Result<Option<FrameReport>, AppError> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("walkjump")
            .with_app_id("walkjump")
            .with_inner_size([1280.0, 860.0])
            .with_min_inner_size([640.0, 420.0]),
        ..Default::default()
    };
    let shot: Arc<Mutex<Option<Result<(), String>>>> = Arc::new(Mutex::new(None));
    let shot_in = shot.clone();
    let report: Arc<Mutex<Option<FrameReport>>> = Arc::new(Mutex::new(None));
    let report_in = report.clone();
    let opts_in = opts.clone();
    eframe::run_native(
        "walkjump",
        native,
        Box::new(move |cc| {
            let app = App::new(cc, &opts_in, shot_in, report_in)?;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| AppError::Window(e.to_string()))?;
    if opts.screenshot.is_some() {
        let r = shot.lock().ok().and_then(|mut s| s.take());
        match r {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(AppError::Screenshot(e)),
            None => {
                return Err(AppError::Screenshot(
                    "the window closed before the screenshot".into(),
                ));
            }
        }
    }
    let measured = report.lock().ok().and_then(|mut r| r.take());
    if opts.measure_frames.is_some() && measured.is_none() {
        return Err(AppError::Window(
            "the window closed before the frame measurement ended (did the chains run? use --autostart)".into(),
        ));
    }
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fill_missing_fields_with_defaults() {
        // An older settings file with only some keys still loads.
        let s: Settings = serde_json::from_str(r#"{"dark": false, "walk": {"chains": 64}}"#)
            .expect("partial settings");
        assert!(!s.dark);
        assert_eq!(s.walk.chains, 64);
        assert_eq!(s.walk.every, walk::WalkSettings::default().every);
        assert_eq!(s.tab, Tab::WalkJump);
        let back: Settings =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("round trip");
        assert_eq!(back, s);
    }

    #[test]
    fn corrupted_settings_fall_back_to_defaults_with_a_message() {
        let (s, note) = Settings::from_json("{\"dark\": false, \"walk\": {\"chains\": 6");
        assert_eq!(s, Settings::default());
        let note = note.expect("a message");
        assert!(note.contains("unreadable"), "{note}");
        assert!(!note.contains('\n'));
        let (s, note) = Settings::from_json("not json at all \u{0}\u{ff}");
        assert_eq!(s, Settings::default());
        assert!(note.is_some());
        // Readable but unusable values are replaced one by one; the rest is kept.
        let (s, note) = Settings::from_json(
            r#"{"dark": false, "walk": {"delta": -1.0, "gamma": 0.0, "chains": 100000, "seed": 9},
                "nebula": {"eta": -3.0, "starts": 0}, "denoise": {"class": 42, "count": 0}}"#,
        );
        let note = note.expect("a message");
        for field in [
            "delta",
            "gamma",
            "chains",
            "eta",
            "starts",
            "class",
            "digits shown",
        ] {
            assert!(note.contains(field), "{field}: {note}");
        }
        assert!(!s.dark);
        assert_eq!(s.walk.seed, 9);
        assert_eq!(s.walk.delta, walk::WalkSettings::default().delta);
        assert_eq!(s.walk.chains, walk::WalkSettings::default().chains);
        assert_eq!(s.nebula.eta, None);
        assert_eq!(s.denoise.class, None);
        // Good settings pass untouched.
        let text = serde_json::to_string(&Settings::default()).expect("json");
        assert_eq!(Settings::from_json(&text), (Settings::default(), None));
    }

    /// A seeded mutation fuzzer over the settings text (the settings live in the app, whose dependencies do not
    /// build under cargo-fuzz in reasonable time here): whatever the bytes, reading them never panics and always
    /// gives settings the app can use. `WALKJUMP_SETTINGS_FUZZ_SECS=600` runs it for ten minutes instead of 20 000
    /// inputs, and prints how many it tried.
    #[test]
    fn mutated_settings_never_panic_and_are_always_usable() {
        let secs: Option<f64> = std::env::var("WALKJUMP_SETTINGS_FUZZ_SECS")
            .ok()
            .and_then(|v| v.parse().ok());
        let iters = if secs.is_some() { usize::MAX } else { 20_000 };
        let start = Instant::now();
        let mut tried = 0usize;
        let mut base = Settings::default();
        base.walk.tuned_for = Some("ab".repeat(32));
        base.nebula.eta = Some(0.1);
        base.denoise.class = Some(3);
        let seed_text = serde_json::to_string_pretty(&base).expect("json");
        let tokens: [&[u8]; 12] = [
            b"-1",
            b"0",
            b"1e400",
            b"NaN",
            b"null",
            b"\"",
            b"{",
            b"}",
            b"[",
            b"18446744073709551616",
            b"\"Sachs\"",
            b"\\u0000",
        ];
        let mut rng = crate::sampling::rng::Rng::new(11);
        let mut pick = |n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
        for _ in 0..iters {
            if secs.is_some_and(|s| start.elapsed().as_secs_f64() > s) {
                break;
            }
            tried += 1;
            let mut bytes = seed_text.as_bytes().to_vec();
            for _ in 0..1 + pick(4) {
                let at = pick(bytes.len() + 1);
                match pick(4) {
                    0 if at < bytes.len() => bytes[at] = pick(256) as u8,
                    1 if at < bytes.len() => {
                        let end = (at + 1 + pick(8)).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    _ => {
                        let t = tokens[pick(tokens.len())];
                        bytes.splice(at..at, t.iter().copied());
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let (mut s, note) = Settings::from_json(&text);
            if let Some(n) = &note {
                assert!(!n.contains('\n'), "{n}");
            }
            assert!(s.sanitize().is_empty(), "{text}");
            assert!(s.walk.sampler().delta() > 0.0);
        }
        eprintln!(
            "settings fuzz: {tried} mutated inputs in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }

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
