//! `walkjump recommend`: print or set the walk a checkpoint recommends (the sampler, its parameters and the jump
//! interval that the app and every command start from), leaving its tensors untouched.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use walkjump::models::checkpoint::{Checkpoint, sha256_hex};
use walkjump::models::load::read_checkpoint_bytes;
use walkjump::run::{Recommendation, RunRecord, recommended_sampler};
use walkjump::sampling::langevin::Sampler;

use super::cpu_only_command;

/// Print or set the walk a checkpoint recommends (sampler, delta, gamma, u, jump interval); tensors stay as they are.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump recommend checkpoints/deen-mlp-s1.0.safetensors\n  walkjump recommend my.safetensors --sampler sachs --delta 0.3 --gamma 0.5 --u 1 --every 10\n  walkjump recommend my.safetensors --from-run run.json --out tuned.safetensors\n\nWithout --sampler, --delta, --gamma, --u, --every or --from-run it prints the recommendation. Flags not given\nkeep the current recommendation's values. The checkpoint is rewritten in place (atomically) unless --out names\nanother file; its tensors are copied bit for bit, so only its sha256 changes."
)]
pub(crate) struct RecommendArgs {
    /// The checkpoint (.safetensors).
    file: PathBuf,
    /// Sampler by name (see `walkjump sample --help`).
    #[arg(long)]
    sampler: Option<String>,
    /// Step size delta (project convention, REFERENCE.md §6).
    #[arg(long, allow_negative_numbers = true)]
    delta: Option<f64>,
    /// Friction rate gamma (underdamped samplers).
    #[arg(long, allow_negative_numbers = true)]
    gamma: Option<f64>,
    /// Inverse mass u (underdamped samplers).
    #[arg(long, allow_negative_numbers = true)]
    u: Option<f64>,
    /// Jump every K steps.
    #[arg(long)]
    every: Option<usize>,
    /// Take sampler and jump interval from a run file written by `walkjump sample --save-run` (or the app).
    #[arg(long, conflicts_with_all = ["sampler", "delta", "gamma", "u", "every"])]
    from_run: Option<PathBuf>,
    /// Write the result here instead of rewriting the checkpoint in place.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal (accepted for uniformity: recommend does no tensor work).
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl super::CliCommand for RecommendArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        None
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

/// One line for a recommendation: `sachs delta 0.3, gamma 0.5, u 1, jump every 10`.
fn describe(sampler: &Sampler, every: usize) -> String {
    let knobs = match sampler.gamma_u() {
        Some((g, u)) => format!("delta {}, gamma {g}, u {u}", sampler.delta()),
        None => format!("delta {}", sampler.delta()),
    };
    format!("{} {knobs}, jump every {every}", sampler.name())
}

pub(crate) fn run(a: RecommendArgs) -> Result<()> {
    cpu_only_command("recommend", &a.device)?;
    let bytes = read_checkpoint_bytes(&a.file)?;
    let mut ck = Checkpoint::from_bytes(&bytes).with_context(|| format!("{}", a.file.display()))?;
    let (cur_sampler, cur_every) = recommended_sampler(&ck.meta);
    let stored = Recommendation::stored(&ck.meta).is_some();
    let changes = a.sampler.is_some()
        || a.delta.is_some()
        || a.gamma.is_some()
        || a.u.is_some()
        || a.every.is_some()
        || a.from_run.is_some();
    if !changes {
        println!("file        {}", a.file.display());
        println!(
            "recommends  {}{}",
            describe(&cur_sampler, cur_every),
            if stored {
                ""
            } else {
                " (derived from sigma and M: the checkpoint stores none)"
            }
        );
        println!("sha256      {}", sha256_hex(&bytes));
        return Ok(());
    }
    let rec = if let Some(run_path) = &a.from_run {
        let text = std::fs::read_to_string(run_path)
            .with_context(|| format!("cannot read run file {}", run_path.display()))?;
        let record: RunRecord = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a walk-jump run file", run_path.display()))?;
        if record.kind != ck.meta.kind.as_str() {
            bail!(
                "{} was run with a {} model, this checkpoint is a {}",
                run_path.display(),
                record.kind,
                ck.meta.kind.as_str()
            );
        }
        Recommendation {
            sampler: record.spec.chain.sampler,
            every: record.spec.chain.every,
        }
    } else {
        Recommendation {
            sampler: super::sample::sampler_from_flags(
                &cur_sampler,
                a.sampler.as_deref(),
                a.delta,
                a.gamma,
                a.u,
            )?,
            every: a.every.unwrap_or(cur_every),
        }
    };
    rec.store(&mut ck.meta)?;
    let out = a.out.as_ref().unwrap_or(&a.file);
    ck.save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let written = read_checkpoint_bytes(out)?;
    println!("was         {}", describe(&cur_sampler, cur_every));
    println!("recommends  {}", describe(&rec.sampler, rec.every));
    println!("wrote       {}", out.display());
    println!("sha256      {}", sha256_hex(&written));
    Ok(())
}
