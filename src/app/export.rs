//! Files the app writes: PNG grids and film strips, CSV traces, the JSON run record; and the native file dialogs,
//! run on a helper thread so the UI never blocks (rfd asks before overwriting).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use super::messages::WalkFrame;
use crate::render::{Grid, write_atomic};
use crate::run::{RunRecord, WalkJumpSpec};

/// What a save dialog is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveKind {
    /// The grid of the latest jumps (PNG).
    JumpGrid,
    /// The film strip of the selected chain (PNG).
    FilmStrip,
    /// The traces (CSV).
    TracesCsv,
    /// The run record (JSON) for `walkjump sample --replay`.
    RunJson,
}

impl SaveKind {
    /// Suggested file name and the filter `(name, extensions)`.
    pub fn suggestion(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            SaveKind::JumpGrid => ("jumps.png", "PNG image", &["png"]),
            SaveKind::FilmStrip => ("film-strip.png", "PNG image", &["png"]),
            SaveKind::TracesCsv => ("traces.csv", "CSV", &["csv"]),
            SaveKind::RunJson => ("run.json", "JSON", &["json"]),
        }
    }
}

/// What a dialog was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogPurpose {
    /// Open a checkpoint.
    Open,
    /// Save an export.
    Save(SaveKind),
}

/// A file dialog running on a helper thread; polled once per UI frame.
pub struct PendingDialog {
    /// What for.
    pub purpose: DialogPurpose,
    rx: Receiver<Option<PathBuf>>,
}

impl PendingDialog {
    /// Opens the native dialog for `purpose` on a helper thread.
    pub fn start(purpose: DialogPurpose) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("walkjump-dialog".into())
            .spawn(move || {
                let path = match purpose {
                    DialogPurpose::Open => rfd::FileDialog::new()
                        .set_title("Open a walkjump checkpoint")
                        .add_filter("safetensors checkpoint", &["safetensors"])
                        .pick_file(),
                    DialogPurpose::Save(kind) => {
                        let (name, filter, ext) = kind.suggestion();
                        rfd::FileDialog::new()
                            .set_title("Save")
                            .set_file_name(name)
                            .add_filter(filter, ext)
                            .save_file()
                    }
                };
                let _ = tx.send(path);
            })?;
        Ok(Self { purpose, rx })
    }

    /// `Some(answer)` once the dialog has closed (`None` inside when it was cancelled).
    pub fn poll(&self) -> Option<Option<PathBuf>> {
        match self.rx.try_recv() {
            Ok(p) => Some(p),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(None),
        }
    }
}

/// Writes the grid of the latest jumps as a PNG (one tile per chain, `cols` per row).
pub fn save_jump_grid(frame: &WalkFrame, cols: usize, path: &Path) -> crate::Result<()> {
    let (h, w) = frame.image_hw;
    let mut grid = Grid::new(h, w, cols);
    for t in frame.jumps.iter() {
        grid.push(t);
    }
    grid.save_png(path)
}

/// Writes the film strip of the selected chain as a PNG (jumps in reading order).
pub fn save_film_strip(frame: &WalkFrame, path: &Path) -> crate::Result<()> {
    let (h, w) = frame.image_hw;
    let mut grid = Grid::new(h, w, 12);
    for t in &frame.film {
        grid.push(t);
    }
    grid.save_png(path)
}

/// The traces as CSV text: one row per recorded step (thinned evenly on long runs).
pub fn traces_csv(frame: &WalkFrame) -> String {
    let t = &frame.traces;
    let at = |v: &[f64], i: usize| v.get(i).map(|x| x.to_string()).unwrap_or_default();
    let mut out = String::from("step,mean_energy,mean_score_norm,mean_kinetic\n");
    for (i, s) in t.step.iter().enumerate() {
        out.push_str(&format!(
            "{s},{},{},{}\n",
            at(&t.energy, i),
            at(&t.score, i),
            at(&t.kinetic, i)
        ));
    }
    out.push_str("\njump_step,jump_min,jump_max\n");
    for (lo, hi) in t.jump_min.iter().zip(&t.jump_max) {
        out.push_str(&format!("{},{},{}\n", lo[0], lo[1], hi[1]));
    }
    out
}

/// The run record `walkjump sample --replay` reads: the configuration in force, the steps taken, the checkpoint.
pub fn run_record(frame: &WalkFrame, sha256: &str, kind: &str) -> Option<RunRecord> {
    let chain = frame.config.clone()?;
    Some(RunRecord {
        program: format!("walkjump {} (app)", env!("CARGO_PKG_VERSION")),
        checkpoint_sha256: sha256.to_string(),
        kind: kind.to_string(),
        spec: WalkJumpSpec {
            chain,
            steps: frame.step.max(1) as usize,
            frames: 40,
        },
    })
}

/// Writes text atomically.
pub fn save_text(path: &Path, text: &str) -> crate::Result<()> {
    write_atomic(path, text.as_bytes())
}
