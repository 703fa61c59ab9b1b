//! `walkjump sample` and `walkjump quality`: walk-jump chains from the command line, with their conditions
//! (`--condition`, `--mask`), a second model for the jumps (`--jump-with`), the quality report and the jumps file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use walkjump::data::{Dataset, Split};
use walkjump::models::{Model, ScoreModel};
use walkjump::render::{Grid, write_atomic};
use walkjump::run::{self, RunRecord, WalkJumpSpec, default_init, mixing, recommended_sampler};
use walkjump::sampling::chain::{ChainConfig, ChainInit};
use walkjump::sampling::langevin::Sampler;
use walkjump::sampling::rng::Rng;
use walkjump::sampling::samplers::{self, SamplerKind};
use walkjump::{CLASSIFIER_CHECKPOINT, checkpoints_dir};

use super::{Common, load_model, open_device, parse_z, resolve_checkpoint};

/// `--sampler`'s one-line help: the registered names and aliases.
fn sampler_help() -> String {
    format!(
        "Sampler: {}. Default: the model's recommendation",
        samplers::names_line()
    )
}

/// `--sampler`'s help under `--help`: one line per registered sampler.
fn sampler_long_help() -> String {
    let mut text = String::from("Sampler (default: the model's recommendation):");
    for k in SamplerKind::all() {
        let aliases = match k.aliases() {
            [] => String::new(),
            a => format!(" (also {})", a.join(", ")),
        };
        text.push_str(&format!("\n  {}{aliases}: {}", k.name(), k.help()));
    }
    text
}

/// The sampler the flags `--sampler`, `--delta`, `--gamma`, `--u` describe, each flag not given taken from `base`
/// (the model's recommendation). A nonsensical gamma or u is refused even where the sampler ignores it (overdamped).
pub(crate) fn sampler_from_flags(
    base: &Sampler,
    name: Option<&str>,
    delta: Option<f64>,
    gamma: Option<f64>,
    u: Option<f64>,
) -> Result<Sampler> {
    for (flag, v) in [("gamma", gamma), ("u", u)] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0)
        {
            bail!("invalid parameter: {flag} must be a positive number, got {v}");
        }
    }
    let (g, uu) = base.gamma_u().unwrap_or((0.5, 1.0));
    Ok(Sampler::from_name(
        name.unwrap_or(base.name()),
        delta.unwrap_or(base.delta()),
        gamma.unwrap_or(g),
        u.unwrap_or(uu),
    )?)
}

/// Run walk-jump chains and write the film strip of their jumps.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump sample --out strip.png\n  walkjump sample -c checkpoints/deen-mlp-s1.0.safetensors --sampler cheng --delta 0.5 --gamma 0.5 --steps 2000 --chains 8 --out s.png --trace t.csv\n  walkjump sample --replay run.json --out again.png"
)]
pub(crate) struct SampleArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    // Its help lists the registered samplers (`walkjump::sampling::samplers::SAMPLERS`).
    #[arg(long, help = sampler_help(), long_help = sampler_long_help())]
    pub(crate) sampler: Option<String>,
    /// Step size delta (project convention, REFERENCE.md §6).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) delta: Option<f64>,
    /// Friction rate gamma (underdamped samplers).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) gamma: Option<f64>,
    /// Inverse mass u (underdamped samplers).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) u: Option<f64>,
    /// Walk steps.
    #[arg(long, default_value_t = 1000)]
    pub(crate) steps: usize,
    /// Jump every K steps.
    #[arg(long)]
    pub(crate) every: Option<usize>,
    /// Number of chains.
    #[arg(long, default_value_t = 8)]
    pub(crate) chains: usize,
    /// Initialisation: uniform, uniform-noise or data-noise. Default: uniform-noise for sigma >= 0.5.
    #[arg(long, value_enum)]
    pub(crate) init: Option<ChainInit>,
    /// Most jumps per chain kept in the film strip (evenly thinned).
    #[arg(long, default_value_t = 40)]
    pub(crate) frames: usize,
    /// How UVB / VAEs pick z: sample, mean, or average:K.
    #[arg(long, default_value = "sample")]
    pub(crate) z: String,
    /// Classifier checkpoint for the class of each jump. Default: the bundled classifier, if present.
    #[arg(long)]
    pub(crate) classifier: Option<PathBuf>,
    /// Replay a run file written by --save-run (its parameters override the flags).
    #[arg(long)]
    pub(crate) replay: Option<PathBuf>,
    /// Write the run (parameters, seed, checkpoint sha256) as JSON.
    #[arg(long)]
    pub(crate) save_run: Option<PathBuf>,
    /// Per-step diagnostics as CSV (one row per chain per step).
    #[arg(long)]
    pub(crate) trace: Option<PathBuf>,
    /// Write trace rows only every K steps (steps K, 2K, ...), to keep long runs' traces small.
    #[arg(long, default_value_t = 1)]
    pub(crate) trace_every: usize,
    /// Film strip PNG: one row per chain, its jumps left to right (required by `sample`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Also judge the jumps with the classifier and print the quality table (what `walkjump quality` does).
    #[arg(long)]
    pub(crate) quality: bool,
    /// Write the quality report as JSON (implies --quality).
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write every jump as the tensor `jumps` [chains, jumps, c, h, w] (safetensors; `steps` [jumps] holds the
    /// step of each jump, the metadata the run's parameters), for analysis elsewhere.
    #[arg(long)]
    pub(crate) jumps: Option<PathBuf>,
    /// Images that condition the chains, one per chain in order (--chains repeats them): an IDX file, a PNG, a
    /// folder of PNGs, a .npy array [N, h, w] / [N, c, h, w], or `test`, `test:K` or `test:K..L` for the bundled
    /// test digits (from number K, or K to L - 1). With --mask they are the observation held fixed; without it the chains start from them
    /// plus noise.
    #[arg(long)]
    pub(crate) condition: Option<PathBuf>,
    /// The held region of each --condition image: top, bottom, left, right (that half), centre (a square),
    /// random:P (a share P of the pixels, from --seed), all, or a PNG of the image's size (white = held).
    #[arg(long, requires = "condition")]
    pub(crate) mask: Option<String>,
    /// Jump with this checkpoint instead of the walking model (same image size, M and sigma).
    #[arg(long)]
    pub(crate) jump_with: Option<PathBuf>,
}

impl super::CliCommand for SampleArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        Some(&self.common.onnx)
    }

    fn run(self) -> Result<()> {
        cmd_sample(self, false)
    }
}

/// Writes every jump of a run: `jumps` [chains, jumps, c, h, w], `steps` [jumps] (as f32), and the run in the
/// metadata.
fn write_jumps(
    path: &Path,
    out: &run::WalkJumpOutput,
    model: &walkjump::models::Model,
    spec: &run::WalkJumpSpec,
) -> Result<()> {
    let all = out
        .all_jumps
        .as_ref()
        .context("the run kept no jumps to write")?;
    let (c, h, w) = model.data_shape();
    let n = all.len();
    let k = all.first().map(Vec::len).unwrap_or(0);
    let flat: Vec<f32> = all.iter().flatten().flatten().copied().collect();
    if flat.len() != n * k * c * h * w {
        bail!("the chains kept different numbers of jumps");
    }
    let jumps = candle_core::Tensor::from_vec(flat, (n, k, c, h, w), &candle_core::Device::Cpu)?;
    let steps: Vec<f32> = out.all_jump_steps.iter().map(|&s| s as f32).collect();
    let steps = candle_core::Tensor::from_vec(steps, k, &candle_core::Device::Cpu)?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "walkjump-jumps".to_string());
    meta.insert("checkpoint_sha256".to_string(), model.sha256.clone());
    meta.insert("kind".to_string(), model.kind().as_str().to_string());
    meta.insert("sigma".to_string(), model.meta.sigma.to_string());
    meta.insert("run".to_string(), serde_json::to_string(spec)?);
    let tensors = [("jumps", &jumps), ("steps", &steps)];
    let bytes =
        safetensors::tensor::serialize(tensors.iter().map(|(n, t)| (*n, SafeView(t))), Some(meta))
            .context("cannot encode the jumps")?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// A candle tensor as a safetensors view (F32, CPU).
struct SafeView<'a>(&'a candle_core::Tensor);

impl safetensors::View for SafeView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.0.dims()
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        let v = self
            .0
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .unwrap_or_default();
        std::borrow::Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.0.elem_count() * 4
    }
}

/// `--condition test`, `test:K` or `test:K..L` (when no such file exists): the bundled test digits from number K on.
fn bundled_test_digits(
    images: &std::path::Path,
    c: usize,
    h: usize,
    w: usize,
) -> Result<Option<Vec<Vec<f32>>>> {
    let name = images.to_string_lossy();
    if images.exists() || !(name == "test" || name.starts_with("test:")) {
        return Ok(None);
    }
    let test = Dataset::bundled()?.split(Split::Test);
    let (from, to) = test_range(&name, test.len())?;
    if (c, h, w) != (1, test.spec.height, test.spec.width) {
        bail!(
            "the bundled test digits are 1x{}x{}, the model takes {c}x{h}x{w}",
            test.spec.height,
            test.spec.width
        );
    }
    if from >= test.len() || to <= from {
        bail!(
            "--condition {name}: there are {} test digits (numbers 0 to {})",
            test.len(),
            test.len() - 1
        );
    }
    Ok(Some(
        (from..to.min(test.len()))
            .filter_map(|i| test.image(i).map(<[f32]>::to_vec))
            .collect(),
    ))
}

/// The digit numbers `[from, to)` that `test`, `test:K` (K on) or `test:K..L` name among `n` test digits.
fn test_range(name: &str, n: usize) -> Result<(usize, usize)> {
    let Some(spec) = name.strip_prefix("test:") else {
        return Ok((0, n));
    };
    let number = |k: &str| -> Result<usize> {
        k.trim().parse().with_context(|| {
            format!("--condition test:K or test:K..L needs digit numbers, got '{k}'")
        })
    };
    match spec.split_once("..") {
        Some((a, b)) => Ok((number(a)?, number(b)?)),
        None => Ok((number(spec)?, n)),
    }
}

/// The labels of the chains' condition images when they are bundled test digits (`test` / `test:K`), one per chain.
fn condition_labels(images: Option<&std::path::Path>, chains: usize) -> Option<Vec<u8>> {
    let images = images?;
    let name = images.to_string_lossy();
    if images.exists() || !(name == "test" || name.starts_with("test:")) {
        return None;
    }
    let test = Dataset::bundled().ok()?.split(Split::Test);
    let (from, to) = test_range(&name, test.len()).ok()?;
    let labels: Vec<u8> = (from..to.min(test.len()))
        .filter_map(|i| test.label(i))
        .collect();
    (!labels.is_empty()).then(|| labels.iter().copied().cycle().take(chains).collect())
}

/// The condition of `walkjump sample --condition IMAGES [--mask SPEC]`: one image per chain, in order (repeated when
/// there are more chains than images).
pub(crate) fn sample_condition(
    images: Option<&std::path::Path>,
    mask: Option<&str>,
    model: &walkjump::models::Model,
    chains: usize,
    seed: u64,
) -> Result<Option<walkjump::sampling::Condition>> {
    use walkjump::sampling::{Condition, named_mask};
    let Some(images) = images else {
        return Ok(None);
    };
    let (c, h, w) = model.data_shape();
    let rows = match bundled_test_digits(images, c, h, w)? {
        Some(rows) => rows,
        None => walkjump::data::images::read_images(images, c, h, w)?,
    };
    let d = c * h * w;
    let x: Vec<f32> = rows
        .iter()
        .cycle()
        .take(chains)
        .flatten()
        .copied()
        .collect();
    let cond = match mask {
        None => Condition::seeded(chains, d, &x)?,
        Some(spec) => {
            let mask = if spec.to_ascii_lowercase().ends_with(".png") {
                walkjump::data::images::read_mask_png(std::path::Path::new(spec), c, h, w)?
            } else {
                named_mask(spec, c, h, w, seed)?
            };
            Condition::clean(chains, d, &mask, &x)?
        }
    };
    Ok(Some(cond))
}

pub(crate) fn cmd_sample(a: SampleArgs, quality_command: bool) -> Result<()> {
    let judge = quality_command || a.quality || a.json.is_some();
    if a.out.is_none() && !quality_command {
        bail!("--out is required: the film strip PNG to write");
    }
    let device = open_device(&a.common.device)?;
    let path = resolve_checkpoint(a.common.checkpoint.as_deref());
    let mut model = load_model(&path, &device)?;
    model.set_z_mode(parse_z(&a.z)?);
    if let Some(e) = model.net_as::<walkjump::models::EbmVae>() {
        if a.condition.is_some() || a.jump_with.is_some() || quality_command || a.quality {
            bail!(
                "--condition, --jump-with and quality need chains on y; a GRBM-prior VAE samples its latent instead"
            );
        }
        return sample_latent(&a, &model, e, &device);
    }
    let mut replayed: Option<RunRecord> = None;
    let spec = match &a.replay {
        Some(run_file) => {
            let text = std::fs::read_to_string(run_file)
                .with_context(|| format!("cannot read {}", run_file.display()))?;
            let rec = RunRecord::from_json(&text)?;
            if rec.checkpoint_sha256 != model.sha256 {
                bail!(
                    "{} was recorded with checkpoint {}, but {} has sha256 {}",
                    run_file.display(),
                    rec.checkpoint_sha256,
                    path.display(),
                    model.sha256
                );
            }
            let spec = rec.spec.clone();
            replayed = Some(rec);
            spec
        }
        None => {
            let (rec_sampler, rec_every) = recommended_sampler(&model.meta);
            let sampler =
                sampler_from_flags(&rec_sampler, a.sampler.as_deref(), a.delta, a.gamma, a.u)?;
            WalkJumpSpec {
                chain: ChainConfig {
                    sampler,
                    every: a.every.unwrap_or(rec_every),
                    chains: a.chains,
                    init: a.init.unwrap_or(default_init(model.meta.sigma)),
                    seed: a.common.seed,
                },
                steps: a.steps,
                frames: a.frames,
            }
        }
    };
    spec.chain.validate()?;
    if spec.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if a.trace_every == 0 {
        bail!("--trace-every must be at least 1");
    }
    let classifier_path = a.classifier.clone().or_else(|| {
        let p = checkpoints_dir().join(CLASSIFIER_CHECKPOINT);
        p.is_file().then_some(p)
    });
    let classifier_model = match &classifier_path {
        Some(p) => {
            let c = load_model(p, &device)?;
            if c.meta.data.dim() != model.data_dim() {
                if a.classifier.is_some() {
                    bail!(
                        "{} classifies {}x{}x{} images, the model makes {}x{}x{}",
                        p.display(),
                        c.meta.data.channels,
                        c.meta.data.height,
                        c.meta.data.width,
                        model.meta.data.channels,
                        model.meta.data.height,
                        model.meta.data.width
                    );
                }
                // The bundled classifier only applies to models of its image size.
                None
            } else {
                Some(c)
            }
        }
        None => None,
    };
    let classifier = match &classifier_model {
        Some(m) => Some(m.classifier().with_context(|| {
            format!(
                "{} is not a classifier",
                classifier_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        })?),
        None => None,
    };
    let data = Dataset::bundled()?.split(Split::Train);
    let data = (data.dim() == model.data_dim()).then_some(data);
    let mut trace_file = match &a.trace {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    // A replayed run takes its condition and jump model from the run file unless the flags name others.
    let recorded = replayed.as_ref();
    let condition_images: Option<PathBuf> = a
        .condition
        .clone()
        .or_else(|| recorded.and_then(|r| r.condition.as_ref().map(|c| PathBuf::from(&c.images))));
    let condition_mask: Option<String> = if a.condition.is_some() {
        a.mask.clone()
    } else {
        recorded.and_then(|r| r.condition.as_ref().and_then(|c| c.mask.clone()))
    };
    let jump_with: Option<PathBuf> = a
        .jump_with
        .clone()
        .or_else(|| recorded.and_then(|r| r.jump_with.as_ref().map(|j| PathBuf::from(&j.path))));
    let condition = sample_condition(
        condition_images.as_deref(),
        condition_mask.as_deref(),
        &model,
        spec.chain.chains,
        spec.chain.seed,
    )?;
    let jump_model = match &jump_with {
        Some(p) => {
            let mut j = load_model(p, &device)?;
            if let Some(want) = recorded.and_then(|r| r.jump_with.as_ref())
                && want.sha256 != j.sha256
            {
                bail!(
                    "the run was recorded jumping with sha256 {}, but {} has sha256 {}",
                    want.sha256,
                    p.display(),
                    j.sha256
                );
            }
            j.set_z_mode(parse_z(&a.z)?);
            walkjump::sampling::check_jump_model(&model, &j)
                .with_context(|| format!("cannot jump with {}", p.display()))?;
            Some(j)
        }
        None => None,
    };
    if judge && classifier.is_none() {
        bail!(
            "judging the jumps needs a classifier of the model's image size: pass --classifier FILE (the bundled \
             one is checkpoints/classifier.safetensors)"
        );
    }
    let opts = run::RunOptions {
        condition: condition.clone(),
        jump_with: jump_model
            .as_ref()
            .map(|j| j as &dyn walkjump::models::ScoreModel),
        keep_jumps: judge || a.jumps.is_some(),
    };
    let t0 = Instant::now();
    let out = run::walk_jump_with(
        &model,
        &spec,
        data.as_ref(),
        classifier,
        trace_file.as_mut().map(|w| w as &mut dyn std::io::Write),
        a.trace_every,
        &device,
        &opts,
    )?;
    if let Some(mut w) = trace_file {
        use std::io::Write;
        w.flush().context("cannot write the trace")?;
    }
    let secs = t0.elapsed().as_secs_f64();

    // Film strip: one row per chain.
    let (c, h, w) = model.data_shape();
    let cols = out.frames.len().max(1);
    let mut grid = Grid::with_channels(c, h, w, cols);
    for chain in 0..spec.chain.chains {
        for frame in &out.frames {
            grid.push(&frame[chain]);
        }
    }
    let record = RunRecord {
        program: format!("walkjump {}", env!("CARGO_PKG_VERSION")),
        checkpoint_sha256: model.sha256.clone(),
        kind: model.kind().as_str().to_string(),
        spec: spec.clone(),
        jump_with: match (&jump_with, &jump_model) {
            (Some(p), Some(j)) => Some(run::ModelRef {
                path: p.display().to_string(),
                sha256: j.sha256.clone(),
                kind: j.kind().as_str().to_string(),
                sigma: j.meta.sigma,
            }),
            _ => None,
        },
        condition: condition_images.as_ref().map(|p| run::ConditionRecord {
            images: p.display().to_string(),
            mask: condition_mask.clone(),
        }),
    };
    if let Some(o) = &a.out {
        // The strip carries its run (models, sigmas, sampler, condition) as a PNG text chunk.
        let mut text = serde_json::to_value(&record)?;
        text["model"] = serde_json::json!({
            "path": path.display().to_string(),
            "sigma": model.meta.sigma,
        });
        grid.save_png_with_text(o, &[("walkjump-run", &text.to_string())])?;
    }
    if let Some(p) = &a.jumps {
        write_jumps(p, &out, &model, &spec)?;
    }
    let quality = match (judge, classifier) {
        (true, Some(cl)) => {
            let all = out.all_jumps.as_deref().unwrap_or(&[]);
            let cfg = walkjump::quality::QualityConfig::default();
            let verdicts = walkjump::quality::verdicts(cl, all, &cfg, &device)?;
            let mut q = walkjump::quality::assess(all, &verdicts, &out.stopped, &cfg)?;
            if let Some(labels) = condition_labels(condition_images.as_deref(), spec.chain.chains) {
                q.kept_class = walkjump::quality::kept_class(&verdicts, &labels);
            }
            Some(q)
        }
        _ => None,
    };
    if let (Some(q), Some(p)) = (&quality, &a.json) {
        write_atomic(p, serde_json::to_string_pretty(q)?.as_bytes())?;
    }
    if let Some(p) = &a.save_run {
        write_atomic(p, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }

    let c = &spec.chain;
    println!(
        "model     {} ({}, sigma {}, M {})",
        path.display(),
        model.kind().as_str(),
        model.meta.sigma,
        model.meta.measurements
    );
    if let (Some(p), Some(j)) = (&jump_with, &jump_model) {
        println!(
            "jumps     with {} ({}, sigma {})",
            p.display(),
            j.kind().as_str(),
            j.meta.sigma
        );
    }
    if let (Some(cond), Some(images)) = (&condition, &condition_images) {
        let d = model.data_dim();
        println!(
            "condition {} ({}), {} of {} pixels held per chain on average",
            images.display(),
            condition_mask
                .as_deref()
                .unwrap_or("start from the images, nothing held"),
            cond.held_count() / c.chains.max(1),
            d
        );
    }
    println!("sampler   {}", serde_json::to_string(&c.sampler)?);
    if let Some((g, _)) = c.sampler.gamma_u() {
        println!(
            "          gamma*delta = {:.4} (friction per step)",
            g * c.sampler.delta()
        );
    }
    println!(
        "run       {} steps, jump every {}, {} chains, init {:?}, seed {}",
        spec.steps, c.every, c.chains, c.init, c.seed
    );
    println!(
        "jumps     {} per chain, pixel range [{:.3}, {:.3}]",
        spec.steps / c.every,
        out.jump_range.0,
        out.jump_range.1
    );
    if let Some(k) = out.kinetic_mean {
        println!("kinetic   mean temperature over the second half: {k:.4} (healthy near 1)");
    }
    let report = |name: &str, draws: Option<&Vec<Vec<f64>>>| match draws.and_then(|d| mixing(d)) {
        Some(m) => println!(
            "{name:<9} R-hat {:.4}  bulk ESS {:.1}  ({} draws x {} chains)",
            m.rhat, m.ess, m.draws, c.chains
        ),
        None => println!("{name:<9} R-hat / ESS: too few draws"),
    };
    report("energy", out.energy_draws.as_ref());
    report("||score||", Some(&out.score_draws));
    if let Some(visited) = out.classes_visited() {
        let best = visited.iter().map(|v| v.len()).max().unwrap_or(0);
        let mut all: Vec<u32> = visited.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        println!(
            "classes   most in one chain: {best}; over all chains: {} {:?}",
            all.len(),
            all
        );
        if let Some(m) = out.class_mixing() {
            println!(
                "classes   worst indicator R-hat {:.4}, min bulk ESS {:.1}",
                m.rhat, m.ess
            );
        }
    }
    let stopped: Vec<&String> = out.stopped.iter().flatten().collect();
    println!("diverged  {} of {} chains", stopped.len(), c.chains);
    for s in stopped.iter().take(3) {
        println!("          {s}");
    }
    if let Some(q) = &quality {
        print!("{}", walkjump::quality::format_report(q));
    }
    for p in [&a.out, &a.jumps, &a.json].into_iter().flatten() {
        println!("wrote     {}", p.display());
    }
    eprintln!(
        "time      {secs:.2} s, {:.1} steps/s ({:.2} ms per step of {} chains)",
        spec.steps as f64 / secs,
        1e3 * secs / spec.steps as f64,
        c.chains
    );
    Ok(())
}

/// A VAE with a GRBM prior samples in latent space (REFERENCE.md §9): Langevin on E(z), then decode.
fn sample_latent(
    a: &SampleArgs,
    model: &Model,
    e: &walkjump::models::EbmVae,
    device: &candle_core::Device,
) -> Result<()> {
    let step = a.delta.unwrap_or(0.01);
    let steps = a.steps;
    let mut rng = Rng::new(a.common.seed);
    let like = candle_core::Tensor::zeros(1, candle_core::DType::F32, device)?;
    let x = e
        .sample(a.chains, steps, step, &mut rng, &like)?
        .to_vec2::<f32>()?;
    let (c, h, w) = model.data_shape();
    let mut grid = Grid::with_channels(c, h, w, 8);
    for img in &x {
        grid.push(img);
    }
    let out_path = a.out.as_deref().context("--out is required")?;
    grid.save_png(out_path)?;
    let lo = x.iter().flatten().copied().fold(f32::INFINITY, f32::min);
    let hi = x
        .iter()
        .flatten()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    println!("model     {} (ebm_vae, GRBM prior)", model.meta.data.name);
    println!(
        "latent    Langevin z <- z - s grad E(z) + sqrt(2 s) eps, s = {step}, {steps} steps, {} samples, seed {}",
        a.chains, a.common.seed
    );
    println!("samples   pixel range [{lo:.3}, {hi:.3}]");
    println!("wrote     {}", out_path.display());
    Ok(())
}
