//! `walkjump chi`: chi statistics and sigma_c of a dataset.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use walkjump::data::Dataset;
use walkjump::data::geometry::chi_stats;

use super::cpu_only_command;

/// chi statistics and sigma_c of a dataset (REFERENCE.md §8).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump chi\n  walkjump chi --data train-images-idx3-ubyte.gz --pairs 1000000 --seed 3"
)]
pub(crate) struct ChiArgs {
    /// Images: IDX, a folder of PNGs or a .npy [N, c, h, w] (default: the bundled digits).
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

impl super::CliCommand for ChiArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        None
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: ChiArgs) -> Result<()> {
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
