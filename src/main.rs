//! The `walkjump` command line: every view of the app as a headless command with the same seed and the same result.
//! Each command lives in `src/cli/` with its clap arguments and its `run` function; this file parses the command line
//! and dispatches.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

use cli::bench::BenchArgs;
use cli::chi::ChiArgs;
use cli::denoise::DenoiseArgs;
use cli::eval::EvalArgs;
use cli::gui::GuiArgs;
use cli::inspect::{ConvertArgs, InspectArgs};
use cli::nebula::NebulaArgs;
use cli::parity::ParityArgs;
use cli::probe::ProbeArgs;
use cli::sample::{SampleArgs, cmd_sample};
use cli::train::TrainArgs;

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
    Inspect(InspectArgs),
    /// Translate an ONNX model into a walkjump checkpoint (graph in `arch`, weights as tensors).
    #[command(
        after_help = "Examples:\n  walkjump convert model.onnx --out model.safetensors\n  walkjump convert unet.onnx --role denoiser --onnx-sigma 0.5 --onnx-shape 1,28,28 --out unet.safetensors"
    )]
    Convert(ConvertArgs),
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
        Some(Command::Inspect(a)) => Some(&a.onnx),
        Some(Command::Convert(a)) => Some(&a.onnx),
        _ => None,
    };
    if let Some(o) = onnx {
        let _ = cli::ONNX_OPTIONS.set(o.options()?);
    }
    match cli.command {
        None => cli::gui::run(GuiArgs {
            device: "cpu".into(),
            ..Default::default()
        }),
        Some(Command::Gui(a)) => cli::gui::run(a),
        Some(Command::Sample(a)) => cmd_sample(a, false),
        Some(Command::Quality(a)) => cmd_sample(a, true),
        Some(Command::Nebula(a)) => cli::nebula::run(a),
        Some(Command::Denoise(a)) => cli::denoise::run(a),
        Some(Command::Eval(a)) => cli::eval::run(a),
        Some(Command::Chi(a)) => cli::chi::run(a),
        Some(Command::Train(a)) => cli::train::run(a),
        Some(Command::Bench(a)) => cli::bench::run(a),
        Some(Command::Probe(a)) => cli::probe::run(a),
        Some(Command::Parity(a)) => cli::parity::run(a),
        Some(Command::Convert(a)) => cli::inspect::convert(a),
        Some(Command::Inspect(a)) => cli::inspect::run(a),
    }
}
