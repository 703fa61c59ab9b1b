//! The `walkjump` command line: every view of the app as a headless command with the same seed and the same result.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use walkjump::data::geometry::chi_stats;
use walkjump::data::noise::Noise;
use walkjump::data::{Dataset, Split};
use walkjump::models::checkpoint::inspect;
use walkjump::models::load::read_checkpoint_bytes;
use walkjump::models::{Model, ScoreModel, ZMode};
use walkjump::onnx::ImportOptions;
use walkjump::render::{Grid, write_atomic};
use walkjump::run::{self, EvalResult, evaluate, noisy_batch};
use walkjump::sampling::chain::jump_of_jump;
use walkjump::sampling::nebula::{NebulaConfig, NebulaInit, run_nebula_held};
use walkjump::sampling::rng::Rng;
use walkjump::{DEFAULT_CHECKPOINT, checkpoints_dir};

mod cli;

use cli::sample::{SampleArgs, cmd_sample, sample_condition};

/// Name of the bundled default model inside `checkpoints/`.

#[derive(Parser)]
#[command(
    name = "walkjump",
    version,
    about = "A lab for empirical-Bayes generative models: walk-jump sampling, NEBULA flows, denoising.",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct Common {
    /// Checkpoint (.safetensors). Default: the bundled default model.
    #[arg(long, short = 'c')]
    checkpoint: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal (falls back to cpu with a message).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Seed for every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    onnx: OnnxArgs,
}

/// What an `.onnx` model is when its metadata does not say (`walkjump.role`, `walkjump.sigma`, `walkjump.shape`).
#[derive(Args, Clone, Default)]
struct OnnxArgs {
    /// ONNX only: what the network computes: energy f(y) -> [N], denoiser D(y), or score s(y).
    #[arg(long, value_enum)]
    role: Option<walkjump::onnx::Role>,
    /// ONNX only: the noise level sigma the network was trained for.
    #[arg(long = "onnx-sigma", value_name = "SIGMA")]
    onnx_sigma: Option<f64>,
    /// ONNX only: shape c,h,w of one clean sample (e.g. 3,32,32).
    #[arg(long = "onnx-shape", value_name = "C,H,W")]
    onnx_shape: Option<String>,
    /// ONNX only: number of noisy measurements M the network reads.
    #[arg(long = "onnx-measurements", value_name = "M")]
    onnx_measurements: Option<usize>,
}

impl OnnxArgs {
    fn options(&self) -> Result<ImportOptions> {
        let shape = match &self.onnx_shape {
            Some(s) => Some(
                walkjump::onnx::parse_shape(s).map_err(|e| anyhow::anyhow!("--onnx-shape: {e}"))?,
            ),
            None => None,
        };
        Ok(ImportOptions {
            role: self.role,
            sigma: self.onnx_sigma,
            shape,
            measurements: self.onnx_measurements,
        })
    }
}

/// The ONNX settings of this run's command line (set once in `dispatch`, read by `load_model`).
static ONNX_OPTIONS: std::sync::OnceLock<ImportOptions> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Command {
    /// Run walk-jump chains and write the film strip of their jumps.
    #[command(
        after_help = "Examples:\n  walkjump sample --out strip.png\n  walkjump sample -c checkpoints/deen-mlp-s1.0.safetensors --sampler cheng --delta 0.5 --gamma 0.5 --steps 2000 --chains 8 --out s.png --trace t.csv\n  walkjump sample --replay run.json --out again.png"
    )]
    Sample(SampleArgs),
    /// Follow NEBULA gradient flows to their attractors.
    #[command(
        after_help = "Examples:\n  walkjump nebula -c checkpoints/deen-mlp-s0.3.safetensors --out attractors.png\n  walkjump nebula --init data --eta 0.01 --max-steps 3000 --gallery gallery.png --out finals.png"
    )]
    Nebula(NebulaArgs),
    /// Judge a walk-jump run's jumps with the classifier: confident and junk shares, trapped chains, classes
    /// visited, jumps per class change. Takes every flag of `sample`; --out (the strip) is optional here.
    #[command(
        after_help = "Examples:\n  walkjump quality --chains 64 --steps 2000\n  walkjump quality -c checkpoints/uvb-mlp-s1.0.safetensors --chains 64 --steps 2000 --seed 1 --json q.json\n\nRules: confident = the classifier's top softmax probability >= 0.9; junk = below 0.5 or a pixel outside\n[-0.5, 1.5]; trapped = diverged, junk in most of its last half of jumps, or jumps that stopped changing."
    )]
    Quality(SampleArgs),
    /// Denoise the same noisy test digits with several models, side by side.
    #[command(
        after_help = "Examples:\n  walkjump denoise -c a.safetensors -c b.safetensors --noise gaussian:1.0 --count 8 --out cmp.png\n  walkjump denoise --noise salt-pepper:0.2 --out sp.png"
    )]
    Denoise(DenoiseArgs),
    /// Print the test loss of a denoiser or the accuracy of a classifier.
    #[command(
        after_help = "Examples:\n  walkjump eval -c checkpoints/deen-mlp-s1.0.safetensors\n  walkjump eval -c model.safetensors --data t10k-images-idx3-ubyte.gz --sigma 0.5"
    )]
    Eval(EvalArgs),
    /// chi statistics and sigma_c of a dataset (REFERENCE.md §8).
    #[command(
        after_help = "Examples:\n  walkjump chi\n  walkjump chi --data train-images-idx3-ubyte.gz --pairs 1000000 --seed 3"
    )]
    Chi(ChiArgs),
    /// Train a model on IDX digits (the bundled training split by default) and save a checkpoint.
    #[command(
        after_help = "Examples:\n  walkjump train --kind deen --sigma 1.0 --epochs 20 --out deen.safetensors\n  walkjump train --kind mdae --sigma 1.0 --measurements 4 --out mdae.safetensors\n  walkjump train --kind classifier --epochs 10 --out classifier.safetensors\n  walkjump train --kind deen --sigma 0.3 --arch '{\"net\":{\"type\":\"mlp\",\"hidden\":[512,512]}}' --out small.safetensors\n\nCtrl-C saves a resumable checkpoint to --out; continue with --resume FILE."
    )]
    Train(TrainArgs),
    /// Measure throughput: walk-jump steps at several batch sizes, NEBULA, denoising and training steps.
    #[command(
        after_help = "Examples:\n  walkjump bench\n  walkjump bench -c checkpoints/deen-mlp-s1.0.safetensors --batches 1,64,256 --json bench.json"
    )]
    Bench(BenchArgs),
    /// Energy, score and jump of a checkpoint on given inputs, for parity checks against other implementations.
    #[command(
        hide = true,
        after_help = "Reads the tensor `y` [N, M*d] from --inputs and writes to --out (safetensors): `energy` [N] and\n\
                      `score` [N, M*d] where the kind defines them, `jump` [N, d] (UVB and VAEs with z = mean),\n\
                      `logits` [N, classes] for a classifier, `prior_energy` [N] (GRBM at z = mean) for ebm_vae.\n\n\
                      Example:\n  walkjump probe -c checkpoints/deen-mlp-s1.0.safetensors --inputs y.safetensors --out probe.safetensors"
    )]
    Probe(ProbeArgs),
    /// Compare a device with the CPU: outputs of every bundled checkpoint, then chain statistics (GPU checks).
    #[command(
        after_help = "Energy, score and jump (logits, prior energy) of each checkpoint on the same inputs must agree within
                      --tol relative; for models with a score, the mean and variance of energy, ||score|| and kinetic
                      temperature over a --steps chain (same seed, same noise) must agree within --z standard errors.
                      Exits with status 1 when a check fails, 2 when the device under test is not usable.

                      Examples:
  walkjump parity --device cuda
  walkjump parity --device cuda -c checkpoints/deen-mlp-s1.0.safetensors --steps 1000 --chains 64 --json parity.json
  walkjump parity --device cpu --steps 100 --burn-in 20 --chains 4   (CPU against itself: tests the command)"
    )]
    Parity(ParityArgs),
    /// Open the desktop app (the default when no command is given).
    #[command(
        after_help = "Examples:\n  walkjump\n  walkjump gui -c checkpoints/deen-mlp-s0.3.safetensors\n  walkjump gui --autostart --screenshot-after 8 shot.png"
    )]
    Gui(GuiArgs),
    /// Print a checkpoint's metadata, tensor table, parameter count and sha256.
    #[command(after_help = "Example:\n  walkjump inspect checkpoints/deen-mlp-s1.0.safetensors")]
    Inspect {
        /// The checkpoint file (.safetensors) or ONNX model (.onnx).
        file: PathBuf,
        /// Device: cpu, cuda, cuda:N or metal (accepted for uniformity: inspect reads metadata only, on the CPU).
        #[arg(long, default_value = "cpu")]
        device: String,
        #[command(flatten)]
        onnx: OnnxArgs,
    },
    /// Translate an ONNX model into a walkjump checkpoint (graph in `arch`, weights as tensors).
    #[command(
        after_help = "Examples:\n  walkjump convert model.onnx --out model.safetensors\n  walkjump convert unet.onnx --role denoiser --onnx-sigma 0.5 --onnx-shape 1,28,28 --out unet.safetensors"
    )]
    Convert {
        /// The ONNX file.
        file: PathBuf,
        /// The checkpoint to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        onnx: OnnxArgs,
    },
}

#[derive(Args, Default)]
struct GuiArgs {
    /// Checkpoint to open first. Default: the bundled default model.
    #[arg(long, short = 'c')]
    checkpoint: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal (falls back to cpu with a message).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Press Run as soon as the model is loaded.
    #[arg(long)]
    autostart: bool,
    /// Save a screenshot of the window after SECONDS to PATH (PNG), then exit.
    #[arg(long, num_args = 2, value_names = ["SECONDS", "PATH"])]
    screenshot_after: Option<Vec<String>>,
    /// Ignore the saved settings and start from the defaults.
    #[arg(long)]
    fresh: bool,
    /// Number of chains to start with (1-256; default: the saved setting).
    #[arg(long)]
    chains: Option<usize>,
    /// Threads the worker computes with (default: all cores). On a machine without a GPU the window is drawn by
    /// the CPU too; leaving it a core keeps the frame rate up while chains run.
    #[arg(long, value_name = "N")]
    compute_threads: Option<usize>,
    /// Measure frame times for SECONDS once the chains run (after a 1 s warm-up), print them, and exit.
    /// With --autostart: `walkjump gui --fresh --autostart --chains 64 --measure-frames 10`.
    #[arg(long, value_name = "SECONDS")]
    measure_frames: Option<f64>,
    /// Workspace to open: walk-jump, nebula, denoise, lab or models. With --autostart its main action starts
    /// (chains, a flow, the denoising comparison, the 2D Lab's particles).
    #[arg(long)]
    tab: Option<String>,
}

#[derive(Args)]
struct NebulaArgs {
    #[command(flatten)]
    common: Common,
    /// Step size eta of the flow y <- y - eta grad f. Default: sigma^2 / 10.
    #[arg(long)]
    eta: Option<f64>,
    /// Maximum steps.
    #[arg(long, default_value_t = 2000)]
    max_steps: usize,
    /// Stop a start when ||grad f|| < tol.
    #[arg(long, default_value_t = 0.1)]
    tol: f64,
    /// Number of starts.
    #[arg(long, default_value_t = 64)]
    starts: usize,
    /// Start from uniform noise, training digits (data) or noisy training digits (data-noise).
    #[arg(long, value_enum, default_value = "uniform")]
    init: NebulaInit,
    /// Merge attractors closer than this (chi units).
    #[arg(long, default_value_t = 0.02)]
    merge: f64,
    /// Call an attractor creative when its nearest training image is farther than this (chi units).
    #[arg(long, default_value_t = 0.1)]
    creative: f64,
    /// Also run poor man's NEBULA (two jumps) from the same starts and add it as a second block of rows.
    #[arg(long)]
    poor_man: bool,
    /// Attractor gallery PNG: pairs of (attractor, nearest training image), largest basin first.
    #[arg(long)]
    gallery: Option<PathBuf>,
    /// Final states PNG.
    #[arg(long)]
    out: PathBuf,
    /// Hold part of every start fixed at these images (one per start, repeated; same files as `sample
    /// --condition`, `test` / `test:K` for bundled test digits): the flow completes the rest. Needs --mask.
    #[arg(long, requires = "mask")]
    condition: Option<PathBuf>,
    /// The held region (as in `sample --mask`).
    #[arg(long, requires = "condition")]
    mask: Option<String>,
}

#[derive(Args)]
struct DenoiseArgs {
    /// Checkpoints to compare (repeat the flag). Default: the bundled default model.
    #[arg(long = "checkpoint", short = 'c')]
    checkpoints: Vec<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Seed for the choice of digits, the noise, and latent samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Noise: gaussian:S, laplace:A or salt-pepper:P.
    #[arg(long, default_value = "gaussian:1.0")]
    noise: String,
    /// Number of test digits.
    #[arg(long, default_value_t = 8)]
    count: usize,
    /// Only digits of this class.
    #[arg(long)]
    class: Option<u8>,
    /// How VAEs pick z: sample, mean, or average:K.
    #[arg(long, default_value = "sample")]
    z: String,
    /// IDX images (default: the bundled test split).
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX labels for --data.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// PNG: one row per digit; columns clean, noisy, then one per model.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    common: Common,
    /// IDX images (default: the bundled digits' test split).
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX labels (needed for a classifier with --data).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Split of the data: train, test or all. Default: test for the bundled digits, all for --data.
    #[arg(long, value_enum)]
    split: Option<Split>,
    /// Noise level (default: the model's sigma).
    #[arg(long)]
    sigma: Option<f64>,
    /// How UVB / VAEs pick z: sample, mean, or average:K.
    #[arg(long, default_value = "sample")]
    z: String,
    /// Also print the best linear (Wiener) denoiser's loss, fitted to the training split, on the same data.
    #[arg(long)]
    baselines: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// Model kind: deen, uvb, sigma-vae, alpha-vae, vae, mdae, ebm-vae, classifier.
    #[arg(long)]
    kind: String,
    /// Noise level sigma (sigma-VAE: the imaginary noise). Ignored by the classifier.
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
    /// Number of measurements M (mdae).
    #[arg(long, default_value_t = 1)]
    measurements: usize,
    /// IDX images (default: the bundled digits). Training uses the first 90%, the rest is the test split.
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX labels (classifier).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Passes over the training split.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed for initialisation, batches and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Architecture as JSON, inline or `@FILE` (see README; `{"net": {"type": "graph", ...}}` for a layer
    /// graph); default depends on the kind.
    #[arg(long)]
    arch: Option<String>,
    /// Recommended sampler stored in the checkpoint, as JSON {"sampler": {...}, "every": K}.
    #[arg(long)]
    sampler: Option<String>,
    /// Device: cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Continue from a checkpoint written by an earlier (possibly interrupted) run.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Output checkpoint.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    /// Checkpoints to measure (repeat). Default: every bundled checkpoint.
    #[arg(long = "checkpoint", short = 'c')]
    checkpoints: Vec<PathBuf>,
    /// Chain counts for the walk-jump step, comma-separated.
    #[arg(long, default_value = "1,64,256")]
    batches: String,
    /// Seconds spent timing each measurement (after warm-up).
    #[arg(long, default_value_t = 1.0)]
    budget: f64,
    /// Skip the training-step measurement.
    #[arg(long)]
    no_train: bool,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct ProbeArgs {
    #[command(flatten)]
    common: Common,
    /// safetensors file with the inputs `y` [N, M*d] (F32 or F64).
    #[arg(long)]
    inputs: PathBuf,
    /// safetensors file for the outputs.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ParityArgs {
    /// Checkpoints to compare (repeat). Default: every bundled checkpoint.
    #[arg(long = "checkpoint", short = 'c')]
    checkpoints: Vec<PathBuf>,
    /// Device under test: cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Reference device.
    #[arg(long, default_value = "cpu")]
    reference: String,
    /// Go on when the device under test falls back to the CPU (then the CPU is compared with itself).
    #[arg(long)]
    allow_fallback: bool,
    /// Input rows for the output check.
    #[arg(long, default_value_t = 16)]
    rows: usize,
    /// Relative tolerance of the outputs: max |diff| / max |reference|.
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Chain steps (0: outputs only).
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Steps dropped before the chain statistics.
    #[arg(long, default_value_t = 200)]
    burn_in: usize,
    /// Chains.
    #[arg(long, default_value_t = 64)]
    chains: usize,
    /// Standard errors allowed between the devices' chain means and variances.
    #[arg(long, default_value_t = 4.0)]
    z: f64,
    /// Seed of inputs, chain starts and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ChiArgs {
    /// IDX images (default: the bundled digits).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Number of random pairs.
    #[arg(long, default_value_t = 200_000)]
    pairs: usize,
    /// Seed for the pairs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, cuda, cuda:N or metal (accepted for uniformity: chi is plain arithmetic on the CPU).
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn main() {
    keep_freed_memory();
    // SAFETY: first thing in main, before any other thread exists.
    unsafe { walkjump::parallel::configure_cpu_threads() };
    let cli = Cli::parse();
    let result = match cli.command {
        // The window must stay on the main thread.
        None | Some(Command::Gui(_)) => dispatch(cli),
        // Headless commands run on a rayon worker, so that the parallel sections of every step start from inside
        // the pool instead of handing work to it and waiting from outside.
        Some(_) => rayon::scope(|_| dispatch(cli)),
    };
    if let Err(e) = result {
        // One line, the whole cause chain.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Keeps freed memory in the process instead of handing it back to the kernel. glibc serves big blocks (im2col
/// buffers, activations: several MiB per sampler step) with fresh `mmap`s and trims its heap whenever the free top
/// exceeds a threshold, so every step paid page faults and zeroing for memory it had just freed: ~35% of a conv
/// DEEN step at 64 chains (`walkjump bench`: 60 ms -> 38 ms). Blocks up to 32 MiB (glibc's ceiling for this
/// setting) now come from the heap, and up to 1 GiB of free heap is kept for reuse.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes the allocator's tunables and is called first thing in main, before any other
    // thread of this process exists. A refused value leaves glibc's default in place, which is harmless.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        // One arena for every thread: the row blocks of a step run on whichever rayon thread is free, and with an
        // arena per thread each of them grew, shrank and page-faulted its own copy of the working set (conv DEEN
        // training 6% faster, sampling 3% as a whole process; small blocks still come from per-thread caches).
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn dispatch(cli: Cli) -> Result<()> {
    let onnx = match &cli.command {
        Some(Command::Sample(a) | Command::Quality(a)) => Some(&a.common.onnx),
        Some(Command::Nebula(a)) => Some(&a.common.onnx),
        Some(Command::Eval(a)) => Some(&a.common.onnx),
        Some(Command::Probe(a)) => Some(&a.common.onnx),
        Some(Command::Inspect { onnx, .. } | Command::Convert { onnx, .. }) => Some(onnx),
        _ => None,
    };
    if let Some(o) = onnx {
        let _ = ONNX_OPTIONS.set(o.options()?);
    }
    match cli.command {
        None => cmd_gui(GuiArgs {
            device: "cpu".into(),
            ..Default::default()
        }),
        Some(Command::Gui(a)) => cmd_gui(a),
        Some(Command::Sample(a)) => cmd_sample(a, false),
        Some(Command::Quality(a)) => cmd_sample(a, true),
        Some(Command::Nebula(a)) => cmd_nebula(a),
        Some(Command::Denoise(a)) => cmd_denoise(a),
        Some(Command::Eval(a)) => cmd_eval(a),
        Some(Command::Chi(a)) => cmd_chi(a),
        Some(Command::Train(a)) => cmd_train(a),
        Some(Command::Bench(a)) => cmd_bench(a),
        Some(Command::Probe(a)) => cmd_probe(a),
        Some(Command::Parity(a)) => cmd_parity(a),
        Some(Command::Convert { file, out, .. }) => {
            let opts = ONNX_OPTIONS.get().cloned().unwrap_or_default();
            let (ckpt, _) = walkjump::onnx::checkpoint_from_file(&file, &opts)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            // Building the model checks every tensor against the graph before anything is written.
            Model::from_checkpoint(&ckpt, &candle_core::Device::Cpu)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            ckpt.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} ({} {}, sigma {}, {} parameters)",
                out.display(),
                ckpt.meta.kind.as_str(),
                ckpt.meta.extra.get("onnx_role").map_or("", String::as_str),
                ckpt.meta.sigma,
                ckpt.param_count()
            );
            Ok(())
        }
        Some(Command::Inspect { file, device, .. }) => {
            cpu_only_command("inspect", &device)?;
            if walkjump::onnx::is_onnx_path(&file) {
                let opts = ONNX_OPTIONS.get().cloned().unwrap_or_default();
                let bytes = walkjump::onnx::read_onnx_file(&file)?;
                let imported = walkjump::onnx::import_bytes(&bytes, &opts)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                print!("{}", imported.describe(&opts));
                println!(
                    "sha256       {}",
                    walkjump::models::checkpoint::sha256_hex(&bytes)
                );
                return Ok(());
            }
            let bytes = read_checkpoint_bytes(&file)?;
            print!(
                "{}",
                inspect(&bytes).with_context(|| format!("{}", file.display()))?
            );
            Ok(())
        }
    }
}

#[cfg(feature = "gui")]
fn cmd_gui(a: GuiArgs) -> Result<()> {
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
            format!("--tab: unknown workspace '{name}' (walk-jump, nebula, denoise, lab, models)")
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
fn cmd_gui(_a: GuiArgs) -> Result<()> {
    println!(
        "walkjump {}: this build has no desktop app (build with the `gui` feature).\n\
         Try: walkjump sample --out strip.png   (see walkjump --help)",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}

fn resolve_checkpoint(path: Option<&Path>) -> PathBuf {
    match path {
        Some(p) => p.to_path_buf(),
        None => checkpoints_dir().join(DEFAULT_CHECKPOINT),
    }
}

fn open_device(spec: &str) -> Result<candle_core::Device> {
    let (device, note) = walkjump::device::select(spec)?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(device)
}

/// Commands without tensor work accept `--device` like every other command: a bad spec is an error, a GPU gets a
/// one-line note that the command runs on the CPU.
fn cpu_only_command(name: &str, spec: &str) -> Result<()> {
    let spec = walkjump::device::DeviceSpec::parse(spec)?;
    if spec.is_gpu() {
        eprintln!("note: {name} does no tensor work; it runs on the CPU");
    }
    Ok(())
}

fn load_model(path: &Path, device: &candle_core::Device) -> Result<Model> {
    let opts = ONNX_OPTIONS.get().cloned().unwrap_or_default();
    Model::load_with(path, device, &opts).map_err(|e| match e {
        // I/O errors already name the file.
        walkjump::Error::Io { .. } => anyhow::anyhow!(e),
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

fn parse_z(s: &str) -> Result<ZMode> {
    Ok(match s {
        "sample" => ZMode::Sample,
        "mean" => ZMode::Mean,
        other => match other.strip_prefix("average:").map(str::parse::<usize>) {
            Some(Ok(k)) if (1..=1024).contains(&k) => ZMode::Average { k },
            _ => bail!("--z must be sample, mean or average:K with 1 <= K <= 1024, got '{other}'"),
        },
    })
}

fn cmd_nebula(a: NebulaArgs) -> Result<()> {
    let device = open_device(&a.common.device)?;
    let path = resolve_checkpoint(a.common.checkpoint.as_deref());
    let model = load_model(&path, &device)?;
    let sigma = model.meta.sigma;
    let cfg = NebulaConfig {
        eta: a.eta.unwrap_or(sigma * sigma / 10.0),
        max_steps: a.max_steps,
        tol: a.tol,
        starts: a.starts,
        init: a.init,
        seed: a.common.seed,
        merge: a.merge,
        creative: a.creative,
    };
    let train = Dataset::bundled()?.split(Split::Train);
    let train = (train.dim() == model.data_dim()).then_some(train);
    let held = sample_condition(
        a.condition.as_deref(),
        a.mask.as_deref(),
        &model,
        cfg.starts,
        cfg.seed,
    )?;
    let hold = held.as_ref().and_then(|c| {
        let mask: Vec<bool> = c.mask().iter().map(|&m| m != 0).collect();
        c.observed().map(|x| (mask, x.to_vec()))
    });
    let t0 = Instant::now();
    let res = run_nebula_held(
        &model,
        &cfg,
        train.as_ref(),
        train.as_ref(),
        &device,
        hold.as_ref().map(|(m, x)| (m.as_slice(), x.as_slice())),
        |_| {},
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let (c, h, w) = model.data_shape();
    let mut grid = Grid::with_channels(c, h, w, 16);
    for f in &res.finals {
        grid.push(f);
    }
    if a.poor_man {
        // Same starts, two jumps each.
        let neb = walkjump::sampling::nebula::Nebula::new(&model, &cfg, train.as_ref(), &device)?;
        let mut rng = Rng::new(cfg.seed ^ 0x9E37);
        let pm = jump_of_jump(&model, &neb.y, &mut rng)?.to_vec2::<f32>()?;
        while !grid.tiles.len().is_multiple_of(16) {
            grid.push(&[]);
        }
        for f in &pm {
            grid.push(f);
        }
    }
    grid.save_png(&a.out)?;
    if let Some(g) = &a.gallery {
        let mut gal = Grid::with_channels(c, h, w, 2);
        for at in &res.attractors {
            gal.push(&at.image);
            match (train.as_ref(), at.nearest) {
                (Some(t), Some(j)) => gal.push(t.image(j).unwrap_or(&[])),
                _ => gal.push(&[]),
            }
        }
        gal.save_png(g)?;
    }
    let steps_max = res.steps.iter().copied().max().unwrap_or(0);
    println!(
        "model       {} ({}, sigma {})",
        path.display(),
        model.kind().as_str(),
        sigma
    );
    println!(
        "flow        eta {}, tol {}, max {} steps, {} starts from {:?}, seed {}",
        cfg.eta, cfg.tol, cfg.max_steps, cfg.starts, cfg.init, cfg.seed
    );
    println!(
        "converged   {} of {} ({:.1}%), slowest after {} steps",
        res.converged.iter().filter(|&&c| c).count(),
        res.converged.len(),
        100.0 * res.converged_fraction(),
        steps_max
    );
    if let (Some(first), Some(last)) = (res.energy_curve.first(), res.energy_curve.last()) {
        println!("energy      mean {first:.3} -> {last:.3}");
    }
    println!(
        "attractors  {} after merging at chi <= {}",
        res.attractors.len(),
        cfg.merge
    );
    for (k, at) in res.attractors.iter().enumerate().take(12) {
        let nearest = match (at.nearest, at.nearest_chi) {
            (Some(j), Some(d)) => format!(
                "nearest training digit #{j} at chi {d:.4}{}",
                if at.creative { " (creative)" } else { "" }
            ),
            _ => "no training data".into(),
        };
        println!("  #{k:<3} basin {:>4}  {nearest}", at.members.len());
    }
    println!(
        "creative    {} attractors farther than chi {} from every training digit",
        res.attractors.iter().filter(|a| a.creative).count(),
        cfg.creative
    );
    println!("wrote       {}", a.out.display());
    eprintln!("time        {secs:.2} s");
    Ok(())
}

fn cmd_denoise(a: DenoiseArgs) -> Result<()> {
    let device = open_device(&a.device)?;
    let noise = Noise::parse(&a.noise)?;
    let paths = if a.checkpoints.is_empty() {
        vec![resolve_checkpoint(None)]
    } else {
        a.checkpoints.clone()
    };
    let z = parse_z(&a.z)?;
    let mut models = Vec::new();
    for p in &paths {
        let mut m = load_model(p, &device)?;
        if !m.is_denoiser() {
            bail!("{} is a classifier, not a denoiser", p.display());
        }
        m.set_z_mode(z);
        models.push(m);
    }
    let data = match &a.data {
        Some(p) => Dataset::from_files(p, a.labels.as_deref())?,
        None => Dataset::bundled()?.split(Split::Test),
    };
    let data = match a.class {
        Some(c) => {
            let labels = data.labels.as_ref().context("--class needs labels")?;
            let idx: Vec<usize> = (0..data.len()).filter(|&i| labels[i] == c).collect();
            if idx.is_empty() {
                bail!("no test digit has class {c}");
            }
            let d = data.dim();
            Dataset {
                spec: data.spec.clone(),
                images: idx
                    .iter()
                    .flat_map(|&i| data.images[i * d..(i + 1) * d].to_vec())
                    .collect(),
                labels: Some(idx.iter().map(|&i| labels[i]).collect()),
            }
        }
        None => data,
    };
    for m in &models {
        data.check_fits(&m.meta.data)?;
    }
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let copies = models.iter().map(|m| m.measurements()).max().unwrap_or(1);
    let batch = noisy_batch(&data, a.count, &noise, copies, a.seed)?;
    let mut cols = Vec::new();
    for (m, p) in models.iter().zip(&paths) {
        let label = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        cols.push(run::denoise_with(m, &label, &batch, a.seed)?);
    }
    let spec = &data.spec;
    let mut grid = Grid::with_channels(spec.channels, spec.height, spec.width, 2 + cols.len());
    for i in 0..batch.clean.len() {
        grid.push(&batch.clean[i]);
        grid.push(&batch.noisy[i][..data.dim()]);
        for c in &cols {
            grid.push(&c.outputs[i]);
        }
    }
    grid.save_png(&a.out)?;
    let d = data.dim() as f64;
    println!(
        "noise     {noise}, {} digits, seed {}",
        batch.clean.len(),
        a.seed
    );
    let noisy_mse = batch
        .noisy
        .iter()
        .zip(&batch.clean)
        .map(|(y, x)| {
            y.iter()
                .zip(x)
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / d
        })
        .sum::<f64>()
        / batch.clean.len() as f64;
    println!(
        "{:<28} {:>10} {:>12} {:>18}",
        "column", "mse/pixel", "sum/image", "pixel range"
    );
    println!(
        "{:<28} {:>10.5} {:>12.3} {:>18}",
        "noisy input",
        noisy_mse,
        noisy_mse * d,
        ""
    );
    for c in &cols {
        let lo = c.range.iter().map(|r| r.0).fold(f32::INFINITY, f32::min);
        let hi = c
            .range
            .iter()
            .map(|r| r.1)
            .fold(f32::NEG_INFINITY, f32::max);
        println!(
            "{:<28} {:>10.5} {:>12.3} {:>18}",
            c.label,
            c.mean_mse(),
            c.mean_mse() * d,
            format!("[{lo:.3}, {hi:.3}]")
        );
    }
    println!("wrote     {}", a.out.display());
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let device = open_device(&a.common.device)?;
    let path = resolve_checkpoint(a.common.checkpoint.as_deref());
    let mut model = load_model(&path, &device)?;
    model.set_z_mode(parse_z(&a.z)?);
    let data = Dataset::open(a.data.as_deref(), a.labels.as_deref())?;
    let split = a.split.unwrap_or(run::default_eval_split(a.data.is_some()));
    let train_split = data.split(Split::Train);
    let data = data.split(split);
    if let Some((kl, rec)) = run::vae_statistics(&model, &data, a.common.seed)? {
        println!("kl (clean inputs): {kl:.4}");
        println!("reconstruction E||x - x_hat(z)||^2 (clean inputs): {rec:.4}");
    }
    match evaluate(&model, &data, a.sigma, a.common.seed)? {
        EvalResult::Loss {
            loss,
            stderr,
            sigma,
            count,
        } => {
            println!("loss: {loss:.4}");
            println!("stderr: {stderr:.4}");
            println!("sigma: {sigma}");
            println!("images: {count} ({split:?} split)");
            println!(
                "identity baseline (x_hat = y): {:.4}",
                sigma * sigma * data.dim() as f64
            );
            if a.baselines && sigma > 0.0 {
                let w = walkjump::train::wiener::Wiener::fit(&train_split, sigma)?;
                println!(
                    "wiener baseline (linear, fitted to the training split): {:.4}",
                    w.loss(&data, a.common.seed)
                );
            }
        }
        EvalResult::Accuracy { accuracy, count } => {
            println!("accuracy: {accuracy:.4}");
            println!("images: {count} ({split:?} split)");
        }
    }
    Ok(())
}

fn cmd_chi(a: ChiArgs) -> Result<()> {
    cpu_only_command("chi", &a.device)?;
    let data = Dataset::open(a.data.as_deref(), None)?;
    let s = chi_stats(&data, a.pairs, a.seed)?;
    println!(
        "data     {} ({} images of {}x{})",
        data.spec.name,
        data.len(),
        data.spec.height,
        data.spec.width
    );
    println!("pairs    {}", s.pairs);
    println!("min      {:.4}", s.min);
    println!("median   {:.4}", s.median);
    println!("mean     {:.4}", s.mean);
    println!("max      {:.4}", s.max);
    println!("sigma_c  {:.4}", s.sigma_c());
    Ok(())
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use walkjump::models::checkpoint::Checkpoint;
    use walkjump::models::{Arch, ModelKind};
    use walkjump::train::{TrainConfig, default_arch, train};

    let kind = ModelKind::parse(&a.kind.replace('-', "_")).with_context(|| {
        format!(
            "unknown kind '{}' (deen, uvb, sigma-vae, alpha-vae, vae, mdae, ebm-vae, classifier)",
            a.kind
        )
    })?;
    let device = open_device(&a.device)?;
    let resume = match &a.resume {
        Some(p) => Some(Checkpoint::load(p)?),
        None => None,
    };
    let arch = match (&a.arch, &resume) {
        (Some(s), _) => {
            // `@FILE` (or a path to a .json file) reads the architecture from a file: layer graphs are long.
            let text = match s.strip_prefix('@') {
                Some(p) => {
                    std::fs::read_to_string(p).with_context(|| format!("--arch: reading {p}"))?
                }
                None if s.ends_with(".json") && Path::new(s).is_file() => {
                    std::fs::read_to_string(s).with_context(|| format!("--arch: reading {s}"))?
                }
                None => s.clone(),
            };
            serde_json::from_str::<Arch>(&text).map_err(|e| {
                anyhow::anyhow!(
                    "--arch is not a valid architecture: {}",
                    e.to_string().lines().next().unwrap_or("")
                )
            })?
        }
        (None, Some(ck)) => Arch::from_json(&ck.meta.arch)?,
        (None, None) => default_arch(kind),
    };
    let cfg = TrainConfig {
        kind,
        sigma: if kind == ModelKind::Classifier {
            1.0
        } else {
            a.sigma
        },
        measurements: a.measurements,
        arch,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
    };
    let data = match &a.data {
        Some(p) => Dataset::from_files(p, a.labels.as_deref())?,
        None => Dataset::bundled()?,
    };
    let (tr, te) = (data.split(Split::Train), data.split(Split::Test));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let batches = tr.len().div_ceil(cfg.batch.max(1));
    let bar = indicatif::ProgressBar::new((cfg.epochs * batches) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} epoch {prefix} loss {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut ck, rec) = train(
        &cfg,
        &tr,
        &te,
        &device,
        resume.as_ref(),
        stop.clone(),
        |p| {
            bar.set_position(((p.epoch - 1) * p.batches + p.batch) as u64);
            bar.set_prefix(format!("{}/{}", p.epoch, cfg.epochs));
            bar.set_message(format!(
                "{:.4} ({:.0} samples/s)",
                p.loss, p.samples_per_sec
            ));
            if let Some(e) = &p.epoch_done {
                let acc = e
                    .test_accuracy
                    .map(|a| format!(", test accuracy {a:.4}"))
                    .unwrap_or_default();
                let line = format!(
                    "epoch {:>3}: train {:.4}, test {:.4}{acc} ({:.0} s)",
                    e.epoch, e.train_loss, e.test_loss, e.seconds
                );
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
        },
    )?;
    bar.finish_and_clear();
    if let Some(s) = &a.sampler {
        serde_json::from_str::<serde_json::Value>(s).context("--sampler is not JSON")?;
        ck.meta.extra.insert("sampler".into(), s.clone());
    } else if let Some(prev) = resume.as_ref().and_then(|r| r.meta.extra.get("sampler")) {
        ck.meta.extra.insert("sampler".into(), prev.clone());
    }
    ck.save(&a.out)?;
    let last = rec
        .best_epoch
        .and_then(|b| rec.history.iter().find(|e| e.epoch == b))
        .or(rec.history.last());
    println!("kind        {}", kind.as_str());
    if let Some(b) = rec.best_epoch {
        println!("saved       parameters of epoch {b} (lowest test loss)");
    }
    println!("parameters  {}", rec.parameters);
    println!(
        "epochs      {}{}",
        rec.epochs_done,
        if rec.interrupted {
            " (interrupted: resume with --resume)"
        } else {
            ""
        }
    );
    if let Some(l) = last {
        println!("train loss  {:.4}", l.train_loss);
        println!("test loss   {:.4}", l.test_loss);
        if let Some(acc) = l.test_accuracy {
            println!("test acc    {acc:.4}");
        }
    }
    println!("wall time   {:.1} s", rec.wall_seconds);
    println!("wrote       {}", a.out.display());
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    use walkjump::bench::{BenchReport, bench_model, format_report, gemm_peak, peak_rss_mib};
    use walkjump::models::checkpoint::Checkpoint;
    let device = open_device(&a.device)?;
    let batches: Vec<usize> = a
        .batches
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .context("--batches must be comma-separated counts, e.g. 1,64,256")?;
    if batches.contains(&0) || !(a.budget.is_finite() && a.budget > 0.0) {
        bail!("batch sizes and --budget must be positive");
    }
    let paths = if a.checkpoints.is_empty() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(checkpoints_dir())
            .context("no checkpoints folder; pass --checkpoint")?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        v.sort();
        v
    } else {
        a.checkpoints.clone()
    };
    let gemm = gemm_peak(&device, a.budget)?;
    let mut rows = Vec::new();
    for p in &paths {
        let model = load_model(p, &device)?;
        let label = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let (tm, vars) = if a.no_train {
            (None, Vec::new())
        } else {
            let ck = Checkpoint::load(p)?;
            let (m, vm) = walkjump::train::trainable_model(ck.meta.clone(), &device, 0, Some(&ck))?;
            (Some(m), vm.all_vars())
        };
        eprintln!("measuring {label} ...");
        rows.extend(bench_model(
            &label,
            &model,
            &batches,
            a.budget,
            tm.as_ref(),
            vars,
        )?);
    }
    let report = BenchReport {
        device: walkjump::device::describe(&device),
        threads: candle_core::utils::get_num_threads(),
        gemm_gflops: gemm,
        peak_rss_mib: peak_rss_mib(),
        rows,
    };
    print!("{}", format_report(&report));
    if let Some(j) = &a.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", j.display());
    }
    Ok(())
}

/// Deterministic model outputs on given inputs (z = mean for the latent-variable kinds), for parity checks.
fn cmd_probe(a: ProbeArgs) -> Result<()> {
    use candle_core::{DType, Tensor};
    let device = open_device(&a.common.device)?;
    let path = resolve_checkpoint(a.common.checkpoint.as_deref());
    let mut model = load_model(&path, &device)?;
    model.set_z_mode(ZMode::Mean);
    let inputs = candle_core::safetensors::load(&a.inputs, &device)
        .with_context(|| format!("cannot read the inputs {}", a.inputs.display()))?;
    let y = inputs
        .get("y")
        .with_context(|| format!("{} has no tensor 'y'", a.inputs.display()))?
        .to_dtype(DType::F32)?;
    let width = walkjump::parity::input_width(&model);
    if y.dims().len() != 2 || y.dim(1)? != width {
        bail!(
            "{}: 'y' has shape {:?}, the model expects [N, {width}]",
            a.inputs.display(),
            y.dims()
        );
    }
    let mut rng = Rng::new(a.common.seed);
    let out: std::collections::HashMap<&str, Tensor> =
        walkjump::parity::probe_outputs(&model, &y, &mut rng)?
            .into_iter()
            .collect();
    candle_core::safetensors::save(&out, &a.out)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    let mut names: Vec<String> = out
        .iter()
        .map(|(k, t)| format!("{k} {:?}", t.dims()))
        .collect();
    names.sort();
    println!(
        "model   {} ({}, sigma {}, z = mean)",
        path.display(),
        model.kind().as_str(),
        model.meta.sigma
    );
    println!("inputs  {} rows", y.dim(0)?);
    println!("wrote   {}: {}", a.out.display(), names.join(", "));
    Ok(())
}

fn cmd_parity(a: ParityArgs) -> Result<()> {
    use walkjump::device::DeviceSpec;
    use walkjump::parity::{ParityConfig, format_report, run_parity};
    let asked = DeviceSpec::parse(&a.device)?;
    let device = open_device(&a.device)?;
    if asked.is_gpu() && matches!(device, candle_core::Device::Cpu) && !a.allow_fallback {
        eprintln!(
            "error: {asked} is not usable here, so there is nothing to compare (--allow-fallback compares the CPU with itself)"
        );
        std::process::exit(2);
    }
    let reference = open_device(&a.reference)?;
    let cfg = ParityConfig {
        rows: a.rows,
        tol: a.tol,
        steps: a.steps,
        burn_in: a.burn_in,
        chains: a.chains,
        z: a.z,
        seed: a.seed,
    };
    cfg.validate()?;
    let paths = if a.checkpoints.is_empty() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(checkpoints_dir())
            .context("no checkpoints folder; pass --checkpoint")?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        v.sort();
        v
    } else {
        a.checkpoints.clone()
    };
    if paths.is_empty() {
        bail!("no checkpoints to compare; pass --checkpoint");
    }
    let mut checkpoints = Vec::with_capacity(paths.len());
    for p in &paths {
        let bytes = read_checkpoint_bytes(p)?;
        let label = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        checkpoints.push((label, bytes));
    }
    let report = run_parity(&checkpoints, &device, &reference, &cfg, |label| {
        eprintln!("comparing {label} ...")
    })
    .context("parity")?;
    print!("{}", format_report(&report));
    if let Some(j) = &a.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", j.display());
    }
    let failures = report.failures();
    if failures > 0 {
        bail!("parity FAIL: {failures} check(s) out of tolerance");
    }
    Ok(())
}
