//! How the window starts and ends: [`GuiOptions`] from the command line, [`run`], [`App::new`] with its worker
//! thread and eframe's hooks (the settings saved on exit); and what drives a window without a user: `--autostart`,
//! `--screenshot`, `--measure-frames` ([`FrameReport`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::Ui;

use crate::app::{Actions, App, Link, SETTINGS_KEY, Settings, Tab, checkpoints_dir, lab, worker};

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
pub(in crate::app) struct FrameMeter {
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

/// State of a screenshot request.
pub(in crate::app) struct Screenshot {
    req: ScreenshotRequest,
    requested: bool,
    result: Arc<Mutex<Option<Result<(), String>>>>,
}

impl App {
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
        let (device, note) = crate::device::select(spec).map_err(crate::Error::from)?;
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

    /// `--autostart` outside Walk-Jump (whose chains start in `on_selected`): starts the open workspace's main
    /// action once its models are loaded ([`Workspace::autostart`](crate::app::workspace::Workspace::autostart)).
    pub(in crate::app) fn autostart_step(&mut self, actions: &mut Actions) {
        if !self.autostart {
            return;
        }
        self.autostart_workspace(actions);
    }

    /// Records one frame for `--measure-frames`, and closes the window when done.
    pub(in crate::app) fn measure_step(
        &mut self,
        ctx: &egui::Context,
        interval_ms: f32,
        ui_ms: f64,
    ) {
        let running = self.ws.walk.running();
        let (rate, chains) = self
            .ws
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

    pub(in crate::app) fn screenshot_step(&mut self, ctx: &egui::Context) {
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
