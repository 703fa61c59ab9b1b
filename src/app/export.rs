//! Files the app writes: PNG grids and film strips, CSV traces, the JSON run record; and the native file dialogs,
//! run on a helper thread so the UI never blocks (rfd asks before overwriting).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use super::messages::{DenoiseFrame, NebulaFrame, WalkFrame};
use crate::render::{Grid, gif_bytes, write_atomic};
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
    /// The film strip of the selected chain as an animation (A and B side by side in A/B mode) (GIF).
    ChainGif,
    /// The current points of the NEBULA flow (PNG).
    NebulaFlow,
    /// The attractor gallery, each attractor beside its nearest training digit (PNG).
    NebulaGallery,
    /// Poor man's NEBULA: the two-jump images (PNG).
    PoorMan,
    /// The denoising comparison: one row per digit: clean, noisy, then one column per denoiser (PNG).
    DenoiseTable,
    /// The current model's checkpoint with the Walk-Jump workspace's sampler stored as its recommended walk
    /// (`.safetensors`; what `walkjump recommend` writes).
    ModelWithWalk,
}

impl SaveKind {
    /// Suggested file name and the filter `(name, extensions)`.
    pub fn suggestion(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            SaveKind::JumpGrid => ("jumps.png", "PNG image", &["png"]),
            SaveKind::FilmStrip => ("film-strip.png", "PNG image", &["png"]),
            SaveKind::TracesCsv => ("traces.csv", "CSV", &["csv"]),
            SaveKind::RunJson => ("run.json", "JSON", &["json"]),
            SaveKind::ChainGif => ("chain.gif", "GIF animation", &["gif"]),
            SaveKind::NebulaFlow => ("nebula-flow.png", "PNG image", &["png"]),
            SaveKind::NebulaGallery => ("attractors.png", "PNG image", &["png"]),
            SaveKind::PoorMan => ("poor-mans-nebula.png", "PNG image", &["png"]),
            SaveKind::DenoiseTable => ("denoise.png", "PNG image", &["png"]),
            SaveKind::ModelWithWalk => {
                ("model.safetensors", "walkjump checkpoint", &["safetensors"])
            }
        }
    }
}

/// What a dialog was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogPurpose {
    /// Open a checkpoint.
    Open,
    /// Open images to hold in conditioned chains (PNG, a `.npy` array, IDX).
    OpenImages,
    /// Open images to denoise (any shape the file gives).
    OpenDenoiseImages,
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
                        .set_title("Open a walkjump checkpoint or an ONNX model")
                        .add_filter("model (checkpoint or ONNX)", &["safetensors", "onnx"])
                        .pick_file(),
                    DialogPurpose::OpenImages => rfd::FileDialog::new()
                        .set_title("Images to hold (one per chain)")
                        .add_filter("images", &["png", "npy", "idx", "gz", "ubyte"])
                        .pick_file(),
                    DialogPurpose::OpenDenoiseImages => rfd::FileDialog::new()
                        .set_title("Images to denoise")
                        .add_filter("images", &["png", "npy", "idx", "gz", "ubyte"])
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

/// Copies the checkpoint at `src` (which must still be the file with `sha256` that was loaded) to `out` with `rec`
/// as its recommended walk; the tensors are copied bit for bit.
pub fn save_model_with_walk(
    src: &Path,
    sha256: &str,
    rec: &crate::run::Recommendation,
    out: &Path,
) -> crate::Result<()> {
    use crate::models::checkpoint::{Checkpoint, read_checkpoint_file, sha256_hex};
    if crate::onnx::is_onnx_path(src) {
        return Err(crate::Error::Unsupported(
            "an ONNX model has no checkpoint to store a walk in: convert it first (walkjump convert)".into(),
        ));
    }
    let bytes = read_checkpoint_file(src)?;
    if sha256_hex(&bytes) != sha256 {
        return Err(crate::Error::Param(format!(
            "{} changed on disk since it was loaded: reopen it first",
            src.display()
        )));
    }
    let mut ck = Checkpoint::from_bytes(&bytes)?;
    rec.store(&mut ck.meta)?;
    ck.save(out)?;
    Ok(())
}

/// Writes the grid of the latest jumps as a PNG (one tile per chain, `cols` per row).
pub fn save_jump_grid(frame: &WalkFrame, cols: usize, path: &Path, run: &str) -> crate::Result<()> {
    let (h, w) = frame.image_hw;
    let mut grid = Grid::like(frame.jumps.first().map(Vec::as_slice), h, w, cols);
    for t in frame.jumps.iter() {
        grid.push(t);
    }
    grid.save_png_with_text(path, &[("walkjump-run", run)])
}

/// Writes the film strip of the selected chain as a PNG (jumps in reading order).
pub fn save_film_strip(frame: &WalkFrame, path: &Path, run: &str) -> crate::Result<()> {
    let (h, w) = frame.image_hw;
    let mut grid = Grid::like(frame.film.first().map(Vec::as_slice), h, w, 12);
    for t in &frame.film {
        grid.push(t);
    }
    grid.save_png_with_text(path, &[("walkjump-run", run)])
}

/// What a PNG export of the walk says about its run (a `tEXt` chunk `walkjump-run`): the walking model and its
/// sigma, the jump model when another, the sampler, and the held pixels.
pub fn run_text(frame: &WalkFrame, model: Option<(&str, f64)>) -> String {
    serde_json::json!({
        "program": format!("walkjump {} (app)", env!("CARGO_PKG_VERSION")),
        "model": model.map(|(m, s)| serde_json::json!({"label": m, "sigma": s})),
        "jump_with": frame.jump_model,
        "config": frame.config,
        "step": frame.step,
        "held_pixels": frame.held.as_ref().map(|h| h.iter().filter(|&&b| b).count()),
    })
    .to_string()
}

/// Writes the film strip of the selected chain as an animated GIF, one jump per frame (200 ms each); in A/B mode
/// each frame shows A's jump beside B's.
pub fn save_chain_gif(frame: &WalkFrame, path: &Path) -> crate::Result<()> {
    let (h, w) = frame.image_hw;
    let b = frame.b.as_deref();
    let frames: Vec<Grid> = frame
        .film
        .iter()
        .enumerate()
        .map(|(k, a)| {
            let mut g = Grid::like(Some(a.as_slice()), h, w, if b.is_some() { 2 } else { 1 });
            g.push(a);
            if let Some(b) = b {
                g.push(b.film.get(k).map(Vec::as_slice).unwrap_or(&[]));
            }
            g
        })
        .collect();
    if frames.is_empty() {
        return Err(crate::Error::Param(
            "the followed chain has no jumps yet".into(),
        ));
    }
    write_atomic(path, &gif_bytes(&frames, 200)?)
}

/// Writes the current points of a NEBULA flow as a PNG grid (16 per row, as shown).
pub fn save_nebula_flow(frame: &NebulaFrame, path: &Path) -> crate::Result<()> {
    save_tiles(frame.image_hw, 16, frame.images.iter(), path)
}

/// Writes the attractor gallery: each attractor followed by its nearest training digit, four pairs per row.
pub fn save_nebula_gallery(frame: &NebulaFrame, path: &Path) -> crate::Result<()> {
    if frame.attractors.is_empty() {
        return Err(crate::Error::Param(
            "no attractors yet: let the flow finish or press Stop".into(),
        ));
    }
    let tiles = frame
        .attractors
        .iter()
        .zip(&frame.nearest_images)
        .flat_map(|(a, near)| [&a.image, near]);
    save_tiles(frame.image_hw, 8, tiles, path)
}

/// Writes poor man's NEBULA (the two-jump images) as a PNG grid.
pub fn save_poor_man(frame: &NebulaFrame, path: &Path) -> crate::Result<()> {
    let pm = frame.poor_man.as_ref().ok_or_else(|| {
        crate::Error::Param("no poor man's NEBULA yet: press its button first".into())
    })?;
    save_tiles(frame.image_hw, 16, pm.iter(), path)
}

/// Writes the denoising comparison as one PNG: a row per digit with the clean digit, the noisy input and each
/// denoiser's output, in the order shown.
pub fn save_denoise_table(frame: &DenoiseFrame, path: &Path) -> crate::Result<()> {
    let cols = 2 + frame.columns.len();
    let tiles = (0..frame.clean.len()).flat_map(|i| {
        let row: Vec<&Vec<f32>> = [frame.clean.get(i), frame.noisy.get(i)]
            .into_iter()
            .chain(frame.columns.iter().map(|c| c.outputs.get(i)))
            .flatten()
            .collect();
        row
    });
    save_tiles(frame.image_hw, cols, tiles, path)
}

fn save_tiles<'a>(
    (h, w): (usize, usize),
    cols: usize,
    tiles: impl Iterator<Item = &'a Vec<f32>>,
    path: &Path,
) -> crate::Result<()> {
    let tiles: Vec<&Vec<f32>> = tiles.collect();
    let mut grid = Grid::like(tiles.first().map(|t| t.as_slice()), h, w, cols);
    for t in tiles {
        grid.push(t);
    }
    if grid.tiles.is_empty() {
        return Err(crate::Error::Param("nothing to export yet".into()));
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
        jump_with: None,
        condition: None,
    })
}

/// Writes text atomically.
pub fn save_text(path: &Path, text: &str) -> crate::Result<()> {
    write_atomic(path, text.as_bytes())
}
