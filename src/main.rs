//! The `walkjump` command line: every view of the app as a headless command with the same seed and the same result.
//! Each command lives in `src/cli/` with its clap arguments, help and `run` function, listed once in the `commands!`
//! registry of `src/cli/mod.rs`; this file parses the command line and hands the command to that registry.

use clap::Parser;

mod cli;

use cli::Command;
use cli::gui::GuiArgs;

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

fn main() {
    keep_freed_memory();
    // SAFETY: first thing in main, before any other thread exists.
    unsafe { walkjump::parallel::configure_cpu_threads() };
    let result = match Cli::parse().command {
        // No command opens the window, which must stay on the main thread (as `gui` does).
        None => cli::CliCommand::run(GuiArgs {
            device: "cpu".into(),
            ..Default::default()
        }),
        Some(c) if c.main_thread() => c.dispatch(),
        // Headless commands run on a rayon worker, so that the parallel sections of every step start from inside
        // the pool instead of handing work to it and waiting from outside.
        Some(c) => rayon::scope(|_| c.dispatch()),
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
