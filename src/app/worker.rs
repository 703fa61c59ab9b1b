//! The worker thread: owns the models, the chains and the flows, executes [`WorkerCommand`]s and publishes
//! [`Frame`]s. All numbers come from the engine; the worker only schedules and packages them.
//!
//! [`Worker`] itself is synchronous (tests drive it with [`Worker::handle`] and [`Worker::tick`]); [`spawn`] runs
//! it on a thread that wakes the UI after each batch of frames.

mod denoise;
mod models;
mod nebula;
mod walk;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use candle_core::Device;

use super::messages::{Frame, WorkerCommand};
use crate::data::Dataset;
use crate::data::geometry::ChiStats;
use crate::models::Model;
use nebula::NebulaRun;
pub use walk::FILM_LEN;
use walk::{ResolvedCondition, WalkRun};

/// Longest stretch of computing between two looks at the command queue.
const SLICE: Duration = Duration::from_millis(25);
/// Shortest time between two published snapshots of the same workspace.
const PUBLISH_EVERY: Duration = Duration::from_millis(33);

/// A model and where it came from.
struct Loaded {
    path: PathBuf,
    label: String,
    model: Model,
    /// The checkpoint file's bytes: a change of device rebuilds the model from them, whatever became of the file.
    bytes: Arc<Vec<u8>>,
}

/// Owns every model and every piece of compute state of the app.
pub struct Worker {
    device: Device,
    models: Vec<Loaded>,
    current: Option<usize>,
    classifier: Option<Model>,
    classifier_bytes: Option<Arc<Vec<u8>>>,
    data: Option<Dataset>,
    walk: Option<WalkRun>,
    /// The B side of an A/B comparison: same chains, init and seed as `walk`, its own sampler.
    walk_b: Option<WalkRun>,
    /// B's sampler while A/B is on.
    b_sampler: Option<crate::sampling::langevin::Sampler>,
    /// The condition new chains take, and its resolved form (mask and observation).
    walk_condition: Option<ResolvedCondition>,
    /// The loaded model the walk jumps with, when not the walking one.
    jump_model: Option<PathBuf>,
    nebula: Option<NebulaRun>,
    /// The digit drawn in the UI `[h * w]`.
    drawn: Option<Vec<f32>>,
    /// Images read for Denoise (`WorkerCommand::DenoiseImages`).
    denoise_images: Option<Dataset>,
    chi: Option<ChiStats>,
    outbox: Vec<Frame>,
    walk_published: Option<Instant>,
    nebula_published: Option<Instant>,
}

impl Worker {
    /// A worker computing on `device`, with no model yet.
    pub fn new(device: Device) -> Self {
        Self {
            device,
            models: Vec::new(),
            current: None,
            classifier: None,
            classifier_bytes: None,
            data: None,
            walk: None,
            walk_b: None,
            b_sampler: None,
            walk_condition: None,
            jump_model: None,
            nebula: None,
            drawn: None,
            denoise_images: None,
            chi: None,
            outbox: Vec::new(),
            walk_published: None,
            nebula_published: None,
        }
    }

    /// Frames produced since the last call, oldest first.
    pub fn take_frames(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.outbox)
    }

    /// Whether there is compute to do without a new command.
    pub fn busy(&self) -> bool {
        self.walk.as_ref().is_some_and(|w| w.running)
            || self.nebula.as_ref().is_some_and(|n| n.running)
    }

    /// Executes one command. Failures become [`Frame::Error`] / [`Frame::LoadFailed`]; nothing panics.
    pub fn handle(&mut self, cmd: WorkerCommand) {
        let result = match cmd {
            WorkerCommand::Load { path, select } => {
                self.load(&path, select, &crate::onnx::ImportOptions::default());
                Ok(())
            }
            WorkerCommand::LoadOnnx { path, onnx } => {
                self.load(&path, true, &onnx);
                Ok(())
            }
            WorkerCommand::Select(path) => self.select(&path),
            WorkerCommand::Walk(c) => self.walk_command(c),
            WorkerCommand::Nebula(c) => self.nebula_command(c),
            WorkerCommand::Denoise(r) => self.denoise(&r),
            WorkerCommand::DenoiseAggregate(r) => self.aggregate(&r),
            WorkerCommand::DenoiseImages(path) => self.read_denoise_images(&path),
            WorkerCommand::ComputeChi => self.compute_chi(),
            WorkerCommand::SetDrawn(pixels) => {
                if pixels.iter().all(|v| v.is_finite()) {
                    self.drawn = Some(pixels.iter().map(|v| v.clamp(0.0, 1.0)).collect());
                    Ok(())
                } else {
                    Err(crate::Error::Param(
                        "the drawing has non-finite pixels".into(),
                    ))
                }
            }
            WorkerCommand::SetDevice(spec) => self.set_device(&spec),
        };
        if let Err(e) = result {
            self.outbox.push(Frame::Error(format!("{e:#}")));
        }
    }

    /// Computes for at most about 25 ms: walk steps and flow steps. Returns whether anything was computed.
    pub fn tick(&mut self) -> bool {
        let mut worked = false;
        if self.walk.as_ref().is_some_and(|w| w.running) {
            worked = true;
            if let Err(e) = self.walk_slice(SLICE) {
                if let Some(w) = self.walk.as_mut() {
                    w.running = false;
                }
                self.outbox
                    .push(Frame::Error(format!("walk stopped: {e:#}")));
                self.publish_walk(true);
            }
        }
        if self.nebula.as_ref().is_some_and(|n| n.running) {
            worked = true;
            if let Err(e) = self.nebula_slice(SLICE) {
                if let Some(n) = self.nebula.as_mut() {
                    n.running = false;
                }
                self.outbox
                    .push(Frame::Error(format!("NEBULA stopped: {e:#}")));
            }
        }
        worked
    }
}

/// The worker's end of the link to a UI: commands in, frames out, and a way to wake the UI.
pub struct Link {
    /// Commands from the UI.
    pub commands: Receiver<WorkerCommand>,
    /// Frames to the UI.
    pub frames: Sender<Frame>,
    /// Called after frames were sent (requests a repaint).
    pub wake: Box<dyn Fn() + Send>,
}

/// Runs `worker` on a new thread until the UI hangs up.
pub fn spawn(mut worker: Worker, link: Link) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("walkjump-worker".into())
        .spawn(move || {
            loop {
                // Idle: block until a command arrives. Busy: only glance at the queue between slices.
                let wait = if worker.busy() {
                    Duration::ZERO
                } else {
                    Duration::from_millis(200)
                };
                match link.commands.recv_timeout(wait) {
                    Ok(cmd) => {
                        worker.handle(cmd);
                        while let Ok(cmd) = link.commands.try_recv() {
                            worker.handle(cmd);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                worker.tick();
                let frames = worker.take_frames();
                if !frames.is_empty() {
                    for f in frames {
                        if link.frames.send(f).is_err() {
                            return;
                        }
                    }
                    (link.wake)();
                }
            }
        })
}
