//! The sampler registry (`walkjump::sampling::samplers`): adding a sampler is one file implementing `SamplerDef` plus
//! one registry line, so every registered sampler must work through every consumer with nothing else written for
//! it, and a sampler defined outside the crate (here, in this test) must run wherever a `Sampler` value goes.
//!
//! Statistics: each sampler is held against the exact stationary law of its own discretised chain on a Gaussian
//! target (its `gaussian_transition`, through `lab::stationary`). With N independent chains the sample mean of a
//! coordinate has standard error sqrt(v / N) and the sample variance sqrt(2 / (N - 1)) v; every assertion allows 5
//! standard errors (a false failure rate below 1e-6 per assertion), and the seeds are fixed.

use candle_core::{Device, Tensor};
use walkjump::lab::field::Field2;
use walkjump::lab::particles::{ParticleConfig, ParticleInit, ParticleSet};
use walkjump::lab::stationary::{gaussian_stationary_variance, transition};
use walkjump::models::mixture::GaussianMixture;
use walkjump::rng::Rng;
use walkjump::sampling::chain::{Chain, ChainConfig, ChainInit};
use walkjump::sampling::langevin::Sampler;
use walkjump::sampling::samplers::{
    self, Mat2, Params, Particles, SAMPLERS, SamplerDef, SamplerKind, Score, lincomb, positive,
    score_beside_noise,
};
use walkjump::sampling::{Error, Result};

const MU: [f64; 2] = [0.5, -1.0];

/// `X ~ N(MU, 0.6^2 I)` seen at sigma = 0.8: `Y ~ N(MU, I)`, score `-(y - MU)` (precision 1).
fn gaussian() -> GaussianMixture {
    GaussianMixture::single_gaussian(MU.to_vec(), 0.6, vec![0.8]).expect("gaussian")
}

/// Per-coordinate mean and variance of rows `[n][2]`.
fn moments(rows: &[[f64; 2]]) -> [(f64, f64); 2] {
    let n = rows.len() as f64;
    [0, 1].map(|j| {
        let m = rows.iter().map(|r| r[j]).sum::<f64>() / n;
        let v = rows.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, v)
    })
}

/// Mean and variance of `rows` within 5 standard errors of `N(MU, exact)`.
fn assert_law(what: &str, rows: &[[f64; 2]], exact: f64) {
    let n = rows.len() as f64;
    let (se_m, se_v) = ((exact / n).sqrt(), exact * (2.0 / (n - 1.0)).sqrt());
    for (j, (m, v)) in moments(rows).into_iter().enumerate() {
        assert!(
            (m - MU[j]).abs() < 5.0 * se_m,
            "{what} coord {j}: mean {m} vs {} (se {se_m})",
            MU[j]
        );
        assert!(
            (v - exact).abs() < 5.0 * se_v,
            "{what} coord {j}: variance {v} vs exact {exact} (se {se_v})"
        );
    }
}

/// The final states of `chains` tensor chains after `steps` steps of `sampler` (the engine's walk: `Chain::step`).
fn tensor_chains(sampler: Sampler, chains: usize, steps: usize, seed: u64) -> Vec<[f64; 2]> {
    let target = gaussian();
    let cfg = ChainConfig {
        sampler,
        every: 10,
        chains,
        init: ChainInit::UniformNoise,
        seed,
    };
    let mut chain = Chain::new(&target, &cfg, None, &Device::Cpu).expect("chain");
    for _ in 0..steps {
        let stats = chain.step(&target, &sampler).expect("step");
        assert!(stats.diverged.is_empty(), "{:?}", stats.diverged);
        assert_eq!(stats.kinetic.is_some(), sampler.is_underdamped());
    }
    chain
        .y
        .to_vec2::<f32>()
        .expect("y")
        .into_iter()
        .map(|r| [r[0] as f64, r[1] as f64])
        .collect()
}

/// The live positions of `n` 2D Lab particles after `steps` steps of `sampler`, started at the target law.
fn lab_particles(sampler: Sampler, n: usize, steps: usize, seed: u64) -> Vec<[f64; 2]> {
    let field = Field2::new(gaussian()).expect("field");
    let cfg = ParticleConfig {
        n,
        seed,
        sampler,
        init: ParticleInit::Exact,
        bounds: [-5.0, 5.0, -5.0, 5.0],
        trails: 0,
        trail_len: 1,
    };
    let mut p = ParticleSet::new(&cfg, &field).expect("particles");
    p.step(&field, steps);
    assert_eq!(p.diverged(), 0, "{sampler:?}");
    if !sampler.is_underdamped() {
        assert!(p.velocities().iter().all(|v| *v == [0.0, 0.0]));
    }
    p.live_positions().collect()
}

/// Both engines (tensor chains and the Lab's f64 particles) hold `sampler` to its own exact law; a sampler without
/// one is held to the law the two engines agree on.
fn check_against_its_law(sampler: Sampler, seed: u64) {
    let tensor = tensor_chains(sampler, 4000, 400, seed);
    let lab = lab_particles(sampler, 10_000, 300, seed + 1);
    match gaussian_stationary_variance(sampler, 1.0) {
        Some(exact) => {
            assert_law(&format!("{sampler:?} (tensor chains)"), &tensor, exact);
            assert_law(&format!("{sampler:?} (lab particles)"), &lab, exact);
        }
        None => {
            assert!(
                transition(sampler, 1.0).is_none(),
                "{sampler:?} is unstable at these parameters"
            );
            let ([(_, vt), _], [(_, vl), _]) = (moments(&tensor), moments(&lab));
            let se = (2.0 * vt * vt / 3999.0 + 2.0 * vl * vl / 9999.0).sqrt();
            assert!(
                (vt - vl).abs() < 5.0 * se,
                "{sampler:?}: tensor variance {vt} vs lab {vl}"
            );
        }
    }
}

#[test]
fn every_registered_sampler_round_trips_and_keeps_its_own_exact_law() {
    assert!(!SAMPLERS.is_empty());
    for (i, kind) in SamplerKind::all().enumerate() {
        let (delta, gamma, u) = (0.4, 1.5, 1.0);
        let sampler = Sampler::new(kind, delta, gamma, u);
        sampler.validate().expect("valid parameters");
        // Name -> from_name -> the same sampler, for the name and every alias.
        for name in std::iter::once(kind.name()).chain(kind.aliases().iter().copied()) {
            let s = Sampler::from_name(name, delta, gamma, u).expect(name);
            assert_eq!(s, sampler, "{name}");
            assert_eq!(s.name(), kind.name());
        }
        // JSON: tagged by name, gamma and u exactly when the sampler takes them, and back.
        let text = serde_json::to_string(&sampler).expect("json");
        let value: serde_json::Value = serde_json::from_str(&text).expect("value");
        assert_eq!(value["kind"], kind.name(), "{text}");
        assert_eq!(value.get("gamma").is_some(), kind.underdamped(), "{text}");
        assert_eq!(value.get("u").is_some(), kind.underdamped(), "{text}");
        let back: Sampler = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, sampler);
        assert_eq!(sampler.gamma_u().is_some(), kind.underdamped());
        // Validation refuses what every sampler must refuse.
        for bad in [f64::NAN, 0.0, -1.0, f64::INFINITY] {
            let e = Sampler::new(kind, bad, gamma, u)
                .validate()
                .expect_err("bad delta");
            assert!(e.to_string().contains("delta"), "{e}");
            if kind.underdamped() {
                let e = Sampler::new(kind, delta, bad, u)
                    .validate()
                    .expect_err("bad gamma");
                assert!(e.to_string().contains("gamma"), "{e}");
                let e = Sampler::new(kind, delta, gamma, bad)
                    .validate()
                    .expect_err("bad u");
                assert!(e.to_string().contains('u'), "{e}");
            }
        }
        // The same seed gives the same bytes.
        let once = tensor_chains(sampler, 8, 20, 3);
        assert_eq!(once, tensor_chains(sampler, 8, 20, 3), "{sampler:?}");
        check_against_its_law(sampler, 100 + 10 * i as u64);
    }
}

#[test]
fn the_cli_error_lists_every_registered_name() {
    let e = Sampler::from_name("no-such-sampler", 0.1, 1.0, 1.0).expect_err("unknown");
    for kind in SamplerKind::all() {
        assert!(e.to_string().contains(kind.name()), "{e}");
    }
    assert_eq!(
        samplers::names(),
        SAMPLERS.iter().map(|d| d.name()).collect::<Vec<_>>()
    );
}

// ---- a sampler written outside the crate ------------------------------------------------------------------------

/// A sampler the crate does not have: underdamped Langevin split as a full kick, a full drift and an exact
/// Ornstein-Uhlenbeck step ("BAO"), one score per step:
/// `v1 = v + u delta psi(y)`, `y' = y + delta v1`, `v' = z1 v1 + sqrt(u (1 - z1^2)) eps`, `z1 = exp(-gamma delta)`.
/// Everything it needs is the trait and the public helpers a sampler file uses.
struct Bao;

impl SamplerDef for Bao {
    fn name(&self) -> &'static str {
        "bao"
    }

    fn label(&self) -> &'static str {
        "bao (kick, drift, friction)"
    }

    fn help(&self) -> &'static str {
        "test-only: a full kick, a full drift and an exact Ornstein-Uhlenbeck step; takes delta, gamma and u"
    }

    fn underdamped(&self) -> bool {
        true
    }

    fn validate(&self, p: Params) -> Result<()> {
        positive("delta", p.delta)?;
        positive("gamma", p.gamma)?;
        positive("u", p.u)?;
        if p.u * p.delta * p.delta >= 4.0 {
            return Err(Error::Param("u delta^2 must stay below 4".into()));
        }
        Ok(())
    }

    fn step(
        &self,
        p: Params,
        y: &Tensor,
        v: &Tensor,
        rng: &mut Rng,
        score: Score<'_>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let Params { delta, gamma, u } = p;
        let z1 = (-gamma * delta).exp();
        let (psi, eps) = score_beside_noise(y, y, rng, score)?;
        let v1 = lincomb(&[(v, 1.0), (&psi, u * delta)])?;
        let y1 = lincomb(&[(y, 1.0), (&v1, delta)])?;
        let v2 = lincomb(&[(&v1, z1), (&eps, (u * (1.0 - z1 * z1)).sqrt())])?;
        Ok((y1, v2, psi))
    }

    fn step_particles(
        &self,
        p: Params,
        particles: Particles<'_>,
        rng: &mut Rng,
        score: &dyn Fn([f64; 2]) -> [f64; 2],
    ) {
        let Params { delta, gamma, u } = p;
        let z1 = (-gamma * delta).exp();
        let c = (u * (1.0 - z1 * z1)).sqrt();
        let Particles { y, v, alive } = particles;
        for ((y, v), &alive) in y.iter_mut().zip(v.iter_mut()).zip(alive) {
            if !alive {
                continue;
            }
            let psi = score(*y);
            for d in 0..2 {
                v[d] += u * delta * psi[d];
                y[d] += delta * v[d];
                v[d] = z1 * v[d] + c * rng.normal();
            }
        }
    }

    fn gaussian_transition(&self, p: Params, k: f64) -> Option<(Mat2, Mat2)> {
        let Params { delta, gamma, u } = p;
        let z1 = (-gamma * delta).exp();
        // y' = (1 - u delta^2 k) y + delta v; v' = z1 (v - u delta k y) + c eps.
        Some((
            [
                [1.0 - u * delta * delta * k, delta],
                [-z1 * u * delta * k, z1],
            ],
            [[0.0, 0.0], [0.0, u * (1.0 - z1 * z1)]],
        ))
    }
}

#[test]
fn a_sampler_defined_outside_the_crate_runs_wherever_a_sampler_goes() {
    let kind = SamplerKind::new(&Bao);
    let sampler = Sampler::new(kind, 0.4, 1.0, 1.0);
    sampler.validate().expect("valid");
    assert!(Sampler::new(kind, 3.0, 1.0, 1.0).validate().is_err());
    assert_eq!(sampler.gamma_u(), Some((1.0, 1.0)));
    // Its JSON is written like any other's ...
    let text = serde_json::to_string(&sampler).expect("json");
    assert_eq!(text, r#"{"kind":"bao","delta":0.4,"gamma":1.0,"u":1.0}"#);
    // ... but names are looked up in the registry, so until its one registry line exists the CLI and JSON do not
    // know it, and say which samplers they do know.
    assert_eq!(SamplerKind::from_name("bao"), None);
    let e = Sampler::from_name("bao", 0.4, 1.0, 1.0).expect_err("unregistered");
    assert!(e.to_string().contains(&samplers::names().join(", ")), "{e}");
    let e = serde_json::from_str::<Sampler>(&text).expect_err("unregistered");
    assert!(e.to_string().contains("unknown variant `bao`"), "{e}");
    // Tensor chains and the Lab's particles both follow its own exact law, with nothing written for it elsewhere.
    let exact = gaussian_stationary_variance(sampler, 1.0).expect("stable");
    assert!(
        (exact - 1.0).abs() > 0.1,
        "its bias is large enough to tell a wrong law: {exact}"
    );
    check_against_its_law(sampler, 7);
}
