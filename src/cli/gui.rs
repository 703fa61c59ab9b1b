//! `walkjump gui` (and `walkjump` with no command): open the desktop app.

use std::path::PathBuf;

use anyhow::Result;
#[cfg(feature = "gui")]
use anyhow::{Context, bail};
use clap::Args;

/// Open the desktop app (the default when no command is given).
#[derive(Args, Default)]
#[command(
    after_help = "Examples:\n  walkjump\n  walkjump gui -c checkpoints/deen-mlp-s0.3.safetensors\n  walkjump gui --autostart --screenshot-after 8 shot.png"
)]
pub(crate) struct GuiArgs {
    /// Checkpoint to open first. Default: the bundled default model.
    #[arg(long, short = 'c')]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal (falls back to cpu with a message).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Press Run as soon as the model is loaded.
    #[arg(long)]
    pub(crate) autostart: bool,
    /// Save a screenshot of the window after SECONDS to PATH (PNG), then exit.
    #[arg(long, num_args = 2, value_names = ["SECONDS", "PATH"])]
    pub(crate) screenshot_after: Option<Vec<String>>,
    /// Ignore the saved settings and start from the defaults.
    #[arg(long)]
    pub(crate) fresh: bool,
    /// Number of chains to start with (1-256; default: the saved setting).
    #[arg(long)]
    pub(crate) chains: Option<usize>,
    /// Threads the worker computes with (default: all cores). On a machine without a GPU the window is drawn by
    /// the CPU too; leaving it a core keeps the frame rate up while chains run.
    #[arg(long, value_name = "N")]
    pub(crate) compute_threads: Option<usize>,
    /// Measure frame times for SECONDS once the chains run (after a 1 s warm-up), print them, and exit.
    /// With --autostart: `walkjump gui --fresh --autostart --chains 64 --measure-frames 10`.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) measure_frames: Option<f64>,
    /// Workspace to open (the app's builds list the registered workspaces and what --autostart starts in each).
    #[cfg_attr(feature = "gui", arg(long, help = walkjump::app::workspace::tab_help()))]
    #[cfg_attr(not(feature = "gui"), arg(long))]
    pub(crate) tab: Option<String>,
}

impl super::CliCommand for GuiArgs {
    const MAIN_THREAD: bool = true;

    fn onnx(&self) -> Option<&super::OnnxArgs> {
        None
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

#[cfg(feature = "gui")]
pub(crate) fn run(a: GuiArgs) -> Result<()> {
    let screenshot = match a.screenshot_after.as_deref() {
        Some([secs, path]) => {
            let after: f64 = secs
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .with_context(|| {
                    format!("--screenshot-after: '{secs}' is not a number of seconds")
                })?;
            Some(walkjump::app::ScreenshotRequest {
                after,
                path: PathBuf::from(path),
            })
        }
        Some(_) => bail!("--screenshot-after needs SECONDS and PATH"),
        None => None,
    };
    if let Some(c) = a.chains
        && !(1..=256).contains(&c)
    {
        bail!("--chains must be between 1 and 256, got {c}");
    }
    if let Some(m) = a.measure_frames
        && !(m.is_finite() && m > 0.0)
    {
        bail!("--measure-frames must be a positive number of seconds");
    }
    if let Some(n) = a.compute_threads {
        if n == 0 {
            bail!("--compute-threads must be at least 1");
        }
        // SAFETY: set before any other thread of this process exists (the window, the worker and the compute pool
        // all start later), so nothing can read the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
    let tab = match a.tab.as_deref() {
        Some(name) => Some(walkjump::app::Tab::from_name(name).with_context(|| {
            format!(
                "--tab: unknown workspace '{name}' ({})",
                walkjump::app::workspace::tab_names()
            )
        })?),
        None => None,
    };
    let report = walkjump::app::run(walkjump::app::GuiOptions {
        checkpoint: a.checkpoint,
        device: a.device,
        autostart: a.autostart,
        screenshot,
        fresh: a.fresh,
        chains: a.chains,
        measure_frames: a.measure_frames,
        tab,
    })?;
    if let Some(r) = report {
        println!("{r}");
    }
    Ok(())
}

#[cfg(not(feature = "gui"))]
pub(crate) fn run(_a: GuiArgs) -> Result<()> {
    println!(
        "walkjump {}: this build has no desktop app (build with the `gui` feature).\n\
         Try: walkjump sample --out strip.png   (see walkjump --help)",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}
