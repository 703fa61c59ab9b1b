//! `walkjump train`: train a model on IDX digits and save a checkpoint (Ctrl-C saves a resumable one).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use walkjump::data::{Dataset, Split};

use super::open_device;

/// Train a model on IDX digits (the bundled training split by default) and save a checkpoint.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump train --kind deen --sigma 1.0 --epochs 20 --out deen.safetensors\n  walkjump train --kind mdae --sigma 1.0 --measurements 4 --out mdae.safetensors\n  walkjump train --kind classifier --epochs 10 --out classifier.safetensors\n  walkjump train --kind deen --sigma 0.3 --arch '{\"net\":{\"type\":\"mlp\",\"hidden\":[512,512]}}' --out small.safetensors\n\nCtrl-C saves a resumable checkpoint to --out; continue with --resume FILE."
)]
pub(crate) struct TrainArgs {
    /// Model kind: one of the registered kinds (listed in the help).
    #[arg(long, help = kind_help())]
    kind: String,
    /// Noise level sigma (sigma-VAE: the imaginary noise). Ignored by the classifier.
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
    /// Number of measurements M (mdae).
    #[arg(long, default_value_t = 1)]
    measurements: usize,
    /// Images: IDX, a folder of PNGs or a .npy [N, c, h, w] (default: the bundled digits). Training uses the first 90%, the rest is the test split.
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

/// The `--kind` help: the registered kinds, spelled with dashes.
fn kind_help() -> String {
    format!(
        "Model kind: {}.",
        walkjump::models::kinds::names_line().replace('_', "-")
    )
}

impl super::CliCommand for TrainArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        None
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: TrainArgs) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use walkjump::models::checkpoint::Checkpoint;
    use walkjump::models::{Arch, ModelKind};
    use walkjump::train::{TrainConfig, default_arch, train};

    let kind = ModelKind::parse(&a.kind.replace('-', "_")).with_context(|| {
        format!(
            "unknown kind '{}' ({})",
            a.kind,
            walkjump::models::kinds::names_line().replace('_', "-")
        )
    })?;
    // Checked before training, so that a typo in the recommendation does not cost a finished run.
    let recommendation = a
        .sampler
        .as_deref()
        .map(walkjump::run::Recommendation::parse)
        .transpose()
        .context("--sampler")?;
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
        (None, None) => default_arch(kind)?,
    };
    let cfg = TrainConfig {
        kind,
        sigma: if kind.allows_zero_sigma() {
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
    if let Some(rec) = &recommendation {
        rec.store(&mut ck.meta)?;
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
