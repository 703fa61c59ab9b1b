//! Conditional walk-jump (REFERENCE.md §11): chains that hold part of the data fixed.
//!
//! * On a 2D Gaussian mixture, holding `y_1` at a fixed value, each sampler's chains must sample the exact
//!   conditional `p(y_2 | y_1)` of the smoothed mixture: a Kolmogorov-Smirnov test of 4 000 independent chains
//!   against the exact conditional CDF, at the 0.1% level (critical value 1.95 / sqrt(n)); the held coordinate
//!   stays exactly at its value. The same test must reject the unconditioned marginal of `y_2`, so it has the
//!   power to see a chain that ignores the mask.
//! * On the bundled default model and real test digits, every jump of a masked chain equals the observation on
//!   the held pixels bit for bit, in memory and in the strip `walkjump sample` writes.
//! * `--jump-with` the walking model gives exactly the plain run's output; a model of another sigma is refused.

mod common;

use std::path::Path;

use candle_core::Device;
use walkjump::data::{Dataset, Split};
use walkjump::models::ScoreModel;
use walkjump::models::mixture::GaussianMixture;
use walkjump::sampling::{Chain, ChainConfig, ChainInit, Condition, Sampler, named_mask};

use common::{bundled, temp_dir, walkjump};

const N: usize = 4000;

/// The mixture: two components whose conditionals of y_2 given y_1 = 0.3 overlap enough to mix in a few hundred
/// steps, with unequal weights so that the conditional differs clearly from the marginal.
fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.4, 0.6],
        vec![vec![-0.8, -0.6], vec![0.9, 0.9]],
        vec![0.4, 0.5],
        vec![0.6],
    )
    .expect("mixture")
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// erf to about 1e-7 (Abramowitz and Stegun 7.1.26), enough for a KS test at n = 4000 (resolution 2.5e-4).
fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

/// The exact CDF of `y_2` given `y_1 = c` (REFERENCE.md §11), and of the marginal of `y_2`.
fn conditional_cdf(c: f64) -> impl Fn(f64) -> f64 {
    let (w, mu, s, sigma) = (
        [0.4, 0.6],
        [[-0.8, -0.6], [0.9, 0.9]],
        [0.4f64, 0.5],
        0.6f64,
    );
    let var: Vec<f64> = s.iter().map(|s| s * s + sigma * sigma).collect();
    let lik: Vec<f64> = (0..2)
        .map(|k| w[k] * (-(c - mu[k][0]).powi(2) / (2.0 * var[k])).exp() / var[k].sqrt())
        .collect();
    let total: f64 = lik.iter().sum();
    let wp: Vec<f64> = lik.iter().map(|l| l / total).collect();
    move |y| {
        (0..2)
            .map(|k| wp[k] * normal_cdf((y - mu[k][1]) / var[k].sqrt()))
            .sum()
    }
}

fn marginal_cdf(y: f64) -> f64 {
    let var = [0.4f64 * 0.4 + 0.36, 0.25 + 0.36];
    0.4 * normal_cdf((y + 0.6) / var[0].sqrt()) + 0.6 * normal_cdf((y - 0.9) / var[1].sqrt())
}

fn ks(samples: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as f64;
    samples
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let f = cdf(y);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn held_chains_sample_the_exact_conditional_of_a_mixture_for_each_sampler() {
    let model = mixture();
    let held = 0.3f32;
    let critical = 1.95 / (N as f64).sqrt();
    let cases = [
        (Sampler::overdamped(0.15), 1500),
        (Sampler::sachs(0.15, 1.0, 1.0), 1500),
        (Sampler::cheng(0.15, 1.0, 1.0), 1500),
    ];
    for (k, (sampler, steps)) in cases.into_iter().enumerate() {
        let cfg = ChainConfig {
            sampler,
            every: 10,
            chains: N,
            init: ChainInit::UniformNoise,
            seed: 11 + k as u64,
        };
        let cond = Condition::noisy(N, 1, 2, &[true, false], &[held, 0.0]).expect("condition");
        let mut chain =
            Chain::conditioned(&model, &cfg, None, &Device::Cpu, &cond).expect("chains");
        let mut kinetic = Vec::new();
        for _ in 0..steps {
            let stats = chain.step(&model, &sampler).expect("step");
            if let Some(k) = stats.kinetic {
                kinetic = k;
            }
        }
        assert_eq!(chain.running(), N, "{sampler:?}");
        if sampler.gamma_u().is_some() {
            // The kinetic temperature counts the free coordinate only: ||v||^2 / u over one coordinate is chi^2_1 at
            // equilibrium, mean 1 and variance 2 (counting the held one too would give 1/2).
            let mean = kinetic.iter().map(|&k| k as f64).sum::<f64>() / kinetic.len() as f64;
            let se = (2.0 / kinetic.len() as f64).sqrt();
            assert!(
                (mean - 1.0).abs() < 4.0 * se + 0.05,
                "{sampler:?}: kinetic temperature {mean:.3} +- {se:.3}"
            );
        }
        let y = chain.y.to_vec2::<f32>().expect("y");
        assert!(y.iter().all(|r| r[0] == held), "{sampler:?}: y_1 moved");
        let mut y2: Vec<f64> = y.iter().map(|r| r[1] as f64).collect();
        let d_cond = ks(&mut y2, conditional_cdf(held as f64));
        let d_marg = ks(&mut y2, marginal_cdf);
        eprintln!(
            "{sampler:?}: KS vs conditional {d_cond:.4}, vs marginal {d_marg:.4} (critical {critical:.4})"
        );
        assert!(
            d_cond < critical,
            "{sampler:?}: KS {d_cond:.4} against the exact conditional exceeds {critical:.4}"
        );
        assert!(
            d_marg > critical,
            "{sampler:?}: the test cannot tell the conditional from the marginal (KS {d_marg:.4})"
        );
    }
}

#[test]
fn unheld_chains_do_not_match_the_conditional() {
    // Power check: the same chains without the condition sample the marginal, which the test rejects.
    let model = mixture();
    let sampler = Sampler::overdamped(0.15);
    let cfg = ChainConfig {
        sampler,
        every: 10,
        chains: N,
        init: ChainInit::UniformNoise,
        seed: 5,
    };
    let mut chain = Chain::new(&model, &cfg, None, &Device::Cpu).expect("chains");
    for _ in 0..1500 {
        chain.step(&model, &sampler).expect("step");
    }
    let y = chain.y.to_vec2::<f32>().expect("y");
    let mut y2: Vec<f64> = y.iter().map(|r| r[1] as f64).collect();
    let d_cond = ks(&mut y2, conditional_cdf(0.3));
    let d_marg = ks(&mut y2, marginal_cdf);
    let critical = 1.95 / (N as f64).sqrt();
    assert!(d_marg < critical, "marginal KS {d_marg:.4}");
    assert!(d_cond > critical, "conditional KS {d_cond:.4}");
}

#[test]
fn masked_jumps_equal_the_observation_on_held_pixels_bit_for_bit() {
    let path = bundled("deen-mlp-s1.0.safetensors");
    if !path.is_file() {
        eprintln!("no bundled default model: skipped");
        return;
    }
    let model = walkjump::models::Model::load(&path, &Device::Cpu).expect("model");
    let test = Dataset::bundled().expect("digits").split(Split::Test);
    let n = 6;
    let d = model.data_dim();
    let x: Vec<f32> = (0..n)
        .flat_map(|i| test.image(i).expect("digit").to_vec())
        .collect();
    let mask = named_mask("top", 1, 28, 28, 0).expect("mask");
    let cond = Condition::clean(n, d, &mask, &x).expect("condition");
    for sampler in [Sampler::overdamped(0.3), Sampler::sachs(0.5, 0.5, 1.0)] {
        let cfg = ChainConfig {
            sampler,
            every: 5,
            chains: n,
            init: ChainInit::UniformNoise,
            seed: 3,
        };
        let mut chain = Chain::conditioned(&model, &cfg, None, &Device::Cpu, &cond).expect("chain");
        for s in 0..20 {
            chain.step(&model, &sampler).expect("step");
            if s % 5 == 4 {
                let jumps = chain
                    .jump(&model)
                    .expect("jump")
                    .to_vec2::<f32>()
                    .expect("rows");
                for (i, row) in jumps.iter().enumerate() {
                    for j in 0..d {
                        if mask[j] {
                            assert_eq!(
                                row[j].to_bits(),
                                x[i * d + j].to_bits(),
                                "chain {i} pixel {j}"
                            );
                        }
                    }
                    // The free half is the model's: not a copy of the observation.
                    let free_diff: f32 = (0..d)
                        .filter(|&j| !mask[j])
                        .map(|j| (row[j] - x[i * d + j]).abs())
                        .sum();
                    assert!(free_diff > 0.0);
                }
            }
        }
        // Reset keeps the condition.
        chain.reset(&model, &cfg, None).expect("reset");
        assert!(chain.condition().is_some());
    }
}

#[test]
fn the_exported_strip_holds_the_observation_and_jump_with_checks_its_model() {
    let model = bundled("deen-mlp-s1.0.safetensors");
    if !model.is_file() {
        eprintln!("no bundled default model: skipped");
        return;
    }
    let dir = temp_dir("cli");
    // Three test digits as an IDX file.
    let test = Dataset::bundled().expect("digits").split(Split::Test);
    let pixels: Vec<u8> = (0..3)
        .flat_map(|i| {
            test.image(i)
                .expect("digit")
                .iter()
                .map(|&v| (v * 255.0).round() as u8)
                .collect::<Vec<_>>()
        })
        .collect();
    let idx = walkjump::data::idx::IdxImages {
        count: 3,
        rows: 28,
        cols: 28,
        pixels: pixels.clone(),
    };
    let images = dir.join("three.idx");
    std::fs::write(&images, walkjump::data::idx::encode_images(&idx)).expect("write idx");
    let strip = dir.join("strip.png");
    let m = model.to_str().expect("path");
    let out = walkjump(&[
        "sample",
        "-c",
        m,
        "--condition",
        images.to_str().expect("p"),
        "--mask",
        "top",
        "--chains",
        "3",
        "--steps",
        "40",
        "--every",
        "10",
        "--frames",
        "4",
        "--seed",
        "2",
        "--out",
        strip.to_str().expect("p"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("condition"), "{text}");
    // The strip: one row per chain, 1-pixel grey gutters around 28 x 28 tiles.
    let png = image::open(&strip).expect("strip").to_luma8();
    let (w, h) = png.dimensions();
    let cols = (w as usize - 1) / 29;
    assert_eq!((cols, h), (4, 3 * 29 + 1));
    for chain in 0..3 {
        for col in 0..cols {
            for r in 0..14 {
                for c in 0..28 {
                    let (x, y) = (1 + col * 29 + c, 1 + chain * 29 + r);
                    let got = png.get_pixel(x as u32, y as u32)[0];
                    assert_eq!(
                        got,
                        pixels[chain * 784 + r * 28 + c],
                        "chain {chain} jump {col} ({r}, {c})"
                    );
                }
            }
        }
    }

    // --jump-with the same model: exactly the plain run.
    let plain = dir.join("plain.png");
    let same = dir.join("same.png");
    let args = |o: &Path| -> Vec<String> {
        [
            "sample", "-c", m, "--chains", "4", "--steps", "30", "--every", "10", "--seed", "9",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([o.display().to_string()])
        .collect()
    };
    let a: Vec<String> = args(&plain);
    let out = walkjump(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success());
    let mut b = args(&same);
    b.extend(["--jump-with".to_string(), m.to_string()]);
    let out = walkjump(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("jumps     with"));
    let decode = |p: &Path| image::open(p).expect("strip").to_luma8();
    assert_eq!(decode(&plain), decode(&same));
    // The strip names both models and their sigmas in its metadata.
    let text = walkjump::render::png_text(&std::fs::read(&same).expect("same"));
    let run = &text
        .iter()
        .find(|(k, _)| k == "walkjump-run")
        .expect("run text")
        .1;
    let run: serde_json::Value = serde_json::from_str(run).expect("json");
    assert_eq!(run["model"]["sigma"], 1.0);
    assert_eq!(run["jump_with"]["sigma"], 1.0);
    assert!(
        run["jump_with"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("deen-mlp-s1.0.safetensors"))
    );

    // Another sigma: one line, non-zero exit.
    let other = bundled("deen-mlp-s0.3.safetensors");
    if other.is_file() {
        let mut c = args(&dir.join("bad.png"));
        c.extend(["--jump-with".to_string(), other.display().to_string()]);
        let out = walkjump(&c.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sigma"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // A mask that names nothing known: one line, non-zero exit.
    let out = walkjump(&[
        "sample",
        "-c",
        m,
        "--condition",
        images.to_str().expect("p"),
        "--mask",
        "middle",
        "--out",
        dir.join("x.png").to_str().expect("p"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mask"));
}

#[test]
fn nebula_flows_holding_a_coordinate_end_on_stationary_points_of_the_conditional() {
    use walkjump::sampling::nebula::{NebulaConfig, NebulaInit, run_nebula_held};
    let model = mixture();
    let cfg = NebulaConfig {
        eta: 0.05,
        max_steps: 5000,
        tol: 1e-3,
        starts: 32,
        init: NebulaInit::Uniform,
        seed: 4,
        merge: 0.02,
        creative: 0.1,
    };
    let held = 0.3f32;
    let res = run_nebula_held(
        &model,
        &cfg,
        None,
        None,
        &Device::Cpu,
        Some((&[true, false], &[held, 0.0])),
        |_| {},
    )
    .expect("flow");
    assert_eq!(res.finals.len(), 32);
    for f in &res.finals {
        assert_eq!(f[0], held, "the held coordinate moved");
        // The free coordinate ends where the conditional's score vanishes.
        let s = model.score(&[held as f64, f[1] as f64]).expect("score");
        assert!(s[1].abs() < 2e-3, "score of y_2 at the end: {}", s[1]);
    }
    // The unheld flow from the same starts ends elsewhere (on the joint's modes), so holding changed the answer.
    let free =
        walkjump::sampling::nebula::run_nebula(&model, &cfg, None, None, &Device::Cpu, |_| {})
            .expect("flow");
    assert!(free.finals.iter().any(|f| (f[0] - held).abs() > 0.1));
}

#[test]
fn an_mdae_holds_the_mask_in_each_of_its_measurements() {
    let path = bundled("mdae-unet-1x4-s1.0.safetensors");
    if !path.is_file() {
        eprintln!("no bundled MDAE: skipped");
        return;
    }
    let model = walkjump::models::Model::load(&path, &Device::Cpu).expect("model");
    let (m, d) = (model.measurements(), model.data_dim());
    assert_eq!(m, 4);
    let test = Dataset::bundled().expect("digits").split(Split::Test);
    let x = test.image(7).expect("digit").to_vec();
    let mask = named_mask("left", 1, 28, 28, 0).expect("mask");
    let n = 3;
    let cond = Condition::clean(n, d, &mask, &x).expect("condition");
    let sampler = Sampler::cheng(0.5, 0.5, 1.0);
    let cfg = ChainConfig {
        sampler,
        every: 5,
        chains: n,
        init: ChainInit::UniformNoise,
        seed: 8,
    };
    let mut chain = Chain::conditioned(&model, &cfg, None, &Device::Cpu, &cond).expect("chain");
    let y0 = chain.y.to_vec2::<f32>().expect("y0");
    for _ in 0..10 {
        chain.step(&model, &sampler).expect("step");
    }
    let y = chain.y.to_vec2::<f32>().expect("y");
    for i in 0..n {
        for k in 0..m {
            for (j, _) in mask.iter().enumerate().filter(|(_, held)| **held) {
                // Held in every measurement, at its own draw of x_o + sigma eps.
                let at = k * d + j;
                assert_eq!(y[i][at].to_bits(), y0[i][at].to_bits());
            }
        }
        // The M draws of a held pixel differ (independent noise per measurement).
        let j = mask.iter().position(|&b| b).expect("a held pixel");
        assert_ne!(y0[i][j], y0[i][d + j]);
    }
    let jumps = chain
        .jump(&model)
        .expect("jump")
        .to_vec2::<f32>()
        .expect("rows");
    for row in &jumps {
        for j in 0..d {
            if mask[j] {
                assert_eq!(row[j].to_bits(), x[j].to_bits());
            }
        }
    }
}

#[test]
fn completions_of_top_halves_keep_the_digit_class_far_more_often_than_free_chains() {
    if !bundled("deen-mlp-s1.0.safetensors").is_file()
        || !bundled("classifier.safetensors").is_file()
    {
        eprintln!("no bundled models: skipped");
        return;
    }
    let dir = temp_dir("kept");
    let kept = |mask: &str| -> f64 {
        let json = dir.join(format!("{mask}.json"));
        let out = walkjump(&[
            "quality",
            "--condition",
            "test",
            "--mask",
            mask,
            "--chains",
            "24",
            "--steps",
            "300",
            "--seed",
            "3",
            "--json",
            json.to_str().expect("p"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let q: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
        q["kept_class"].as_f64().expect("kept_class")
    };
    // 24 chains x 30 jumps. Free chains ("none" holds nothing and starts from noise) match their digit's label
    // at about the class frequency (0.1); held top halves (74.5% over 64 chains x 100 jumps, MODELS.md) far more.
    let (top, free) = (kept("top"), kept("none"));
    eprintln!("kept class: top half {top:.3}, nothing held {free:.3}");
    assert!(
        top > 0.5,
        "top halves kept the class in only {top:.3} of jumps"
    );
    assert!(
        free < 0.3,
        "free chains matched labels in {free:.3} of jumps"
    );
}
