//! `walkjump nebula`: follow NEBULA gradient flows to their attractors, optionally holding part of every start fixed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use walkjump::data::{Dataset, Split};
use walkjump::models::ScoreModel;
use walkjump::render::Grid;
use walkjump::sampling::chain::jump_of_jump;
use walkjump::sampling::nebula::{NebulaConfig, NebulaInit, run_nebula_held};
use walkjump::sampling::rng::Rng;

use super::sample::sample_condition;
use super::{Common, load_model, open_device, resolve_checkpoint};

/// Follow NEBULA gradient flows to their attractors.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump nebula -c checkpoints/deen-mlp-s0.3.safetensors --out attractors.png\n  walkjump nebula --init data --eta 0.01 --max-steps 3000 --gallery gallery.png --out finals.png"
)]
pub(crate) struct NebulaArgs {
    #[command(flatten)]
    pub(crate) common: Common,
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

impl super::CliCommand for NebulaArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        Some(&self.common.onnx)
    }

    fn run(self) -> Result<()> {
        run(self)
    }
}

pub(crate) fn run(a: NebulaArgs) -> Result<()> {
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
