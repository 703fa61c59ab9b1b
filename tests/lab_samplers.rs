//! Seeded statistical tests of the 2D Lab's particles (plain f64 samplers on exact fields).
//!
//! * On a Gaussian target each sampler's 10 000 particles must match the exact stationary law of the *discretised*
//!   recursion (`walkjump::lab::stationary`, written from REFERENCE.md §6 independently of the particle code), with
//!   tolerances of 4.5 standard errors computed from the sample size; the large-delta overdamped chain must be seen
//!   to miss the target variance.
//! * On the two-Gaussian mixture, small-delta walks started far from the target must reproduce the exact smoothed
//!   density: a chi-square test of the 2D histogram against exact bin probabilities, and a total-variation distance
//!   close to its sampling-noise floor; a large delta must be rejected by the same test.

use walkjump::lab::field::Field2;
use walkjump::lab::particles::{ParticleConfig, ParticleInit, ParticleSet};
use walkjump::lab::stationary::gaussian_stationary_variance;
use walkjump::models::mixture::GaussianMixture;
use walkjump::sampling::langevin::Sampler;

const N: usize = 10_000;

fn run(
    field: &Field2,
    sampler: Sampler,
    init: ParticleInit,
    steps: usize,
    seed: u64,
) -> ParticleSet {
    let cfg = ParticleConfig {
        n: N,
        seed,
        sampler,
        init,
        bounds: [-5.0, 5.0, -5.0, 5.0],
        trails: 0,
        trail_len: 1,
    };
    let mut p = ParticleSet::new(&cfg, field).expect("particles");
    p.step(field, steps);
    assert_eq!(p.diverged(), 0, "{sampler:?}");
    p
}

#[test]
fn particles_match_the_exact_law_of_the_discretised_chain_on_a_gaussian() {
    // X ~ N(mu, 0.6^2 I), sigma = 0.8: Y ~ N(mu, I), so the score is -(y - mu) (precision k = 1).
    let mu = [0.5, -1.0];
    let field = Field2::new(
        GaussianMixture::single_gaussian(mu.to_vec(), 0.6, vec![0.8]).expect("gaussian"),
    )
    .expect("field");
    let cases = [
        (Sampler::overdamped(0.3), 300),
        (Sampler::overdamped(1.2), 100),
        (Sampler::sachs(0.5, 1.0, 1.0), 300),
        (Sampler::cheng(0.4, 2.0, 1.5), 300),
        (Sampler::cheng(1.0, 0.5, 1.0), 300),
    ];
    let n = N as f64;
    for (i, (sampler, steps)) in cases.into_iter().enumerate() {
        let exact = gaussian_stationary_variance(sampler, 1.0).expect("stable");
        let p = run(&field, sampler, ParticleInit::Exact, steps, 100 + i as u64);
        let (m, c) = p.moments();
        let se_m = (exact / n).sqrt();
        let se_v = exact * (2.0 / (n - 1.0)).sqrt();
        for d in 0..2 {
            assert!(
                (m[d] - mu[d]).abs() < 4.5 * se_m,
                "{sampler:?} coord {d}: mean {} vs {} (se {se_m})",
                m[d],
                mu[d]
            );
            let v = if d == 0 { c[0] } else { c[2] };
            assert!(
                (v - exact).abs() < 4.5 * se_v,
                "{sampler:?} coord {d}: variance {v} vs exact {exact} (se {se_v})"
            );
        }
        assert!(
            c[1].abs() < 4.5 * exact / n.sqrt(),
            "{sampler:?}: covariance {}",
            c[1]
        );
        if sampler.name() == "overdamped" && sampler.delta() > 1.0 {
            let delta = sampler.delta();
            // The bias of a large step: 1 / (1 - delta^2 / 4) = 1.5625, far outside the noise around 1.
            assert!((exact - 1.0 / (1.0 - delta * delta / 4.0)).abs() < 1e-9);
            assert!(
                (c[0] - 1.0).abs() > 10.0 * se_v,
                "bias not visible: {}",
                c[0]
            );
        }
    }
}

/// Probability of `[a, b]` under `N(m, var)` by Simpson's rule (64 panels).
fn normal_mass(a: f64, b: f64, m: f64, var: f64) -> f64 {
    let k = 64;
    let h = (b - a) / k as f64;
    let f = |t: f64| {
        (-(t - m) * (t - m) / (2.0 * var)).exp() / (2.0 * std::f64::consts::PI * var).sqrt()
    };
    let mut s = f(a) + f(b);
    for i in 1..k {
        s += f(a + h * i as f64) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0
}

/// Chi-square statistic and degrees of freedom of the particles' 2D histogram (bins x bins over `box_`, plus the
/// outside) against the exact bin probabilities of the isotropic mixture `mix`, merging bins expected below 5.
fn chi_square(p: &ParticleSet, mix: &GaussianMixture, box_: [f64; 4], bins: usize) -> (f64, usize) {
    let [x0, x1, y0, y1] = box_;
    let (wx, wy) = ((x1 - x0) / bins as f64, (y1 - y0) / bins as f64);
    let sigma2 = mix.sigmas()[0].powi(2);
    let mut probs = vec![0.0; bins * bins + 1];
    for j in 0..bins {
        for i in 0..bins {
            let (a, b) = (x0 + wx * i as f64, y0 + wy * j as f64);
            probs[j * bins + i] = mix
                .weights()
                .iter()
                .zip(mix.means().chunks_exact(2))
                .zip(mix.stds())
                .map(|((w, mu), s)| {
                    let var = s * s + sigma2;
                    w * normal_mass(a, a + wx, mu[0], var) * normal_mass(b, b + wy, mu[1], var)
                })
                .sum();
        }
    }
    probs[bins * bins] = 1.0 - probs[..bins * bins].iter().sum::<f64>();
    let mut counts = vec![0usize; bins * bins + 1];
    for y in p.live_positions() {
        let (i, j) = ((y[0] - x0) / wx, (y[1] - y0) / wy);
        let idx = if i >= 0.0 && j >= 0.0 && i < bins as f64 && j < bins as f64 {
            j as usize * bins + i as usize
        } else {
            bins * bins
        };
        counts[idx] += 1;
    }
    let n = N as f64;
    let (mut chi2, mut cells) = (0.0, 0usize);
    let (mut rest_c, mut rest_p) = (0.0, 0.0);
    for (&c, &pr) in counts.iter().zip(&probs) {
        if pr * n >= 5.0 {
            chi2 += (c as f64 - n * pr).powi(2) / (n * pr);
            cells += 1;
        } else {
            rest_c += c as f64;
            rest_p += pr;
        }
    }
    if rest_p * n >= 1.0 {
        chi2 += (rest_c - n * rest_p).powi(2) / (n * rest_p);
        cells += 1;
    }
    (chi2, cells - 1)
}

#[test]
fn small_delta_particles_reproduce_the_smoothed_mixture_density() {
    // Two Gaussians at (+-2, 0), std 0.5, seen at sigma = 1; particles start uniform over [-5, 5]^2.
    let mix = GaussianMixture::two_gaussians();
    let field = Field2::new(mix.clone()).expect("field");
    let box_ = [-5.0, 5.0, -4.0, 4.0];
    for (sampler, steps, seed) in [
        (Sampler::overdamped(0.1), 3000, 11),
        (Sampler::sachs(0.1, 2.0, 1.0), 3000, 12),
    ] {
        let p = run(&field, sampler, ParticleInit::Uniform, steps, seed);
        let (chi2, df) = chi_square(&p, &mix, box_, 12);
        // Normal approximation of the chi-square tail: about 5 standard deviations.
        let limit = df as f64 + 5.0 * (2.0 * df as f64).sqrt();
        assert!(
            chi2 < limit,
            "{sampler:?}: chi2 {chi2} with {df} df (limit {limit})"
        );
        let tv = p.tv_distance(&field, box_, 12);
        assert!(
            tv.tv < 1.5 * tv.noise_floor,
            "{sampler:?}: TV {} vs noise floor {}",
            tv.tv,
            tv.noise_floor
        );
    }
    // A large overdamped step over-spreads the particles: the same tests reject it.
    let p = run(
        &field,
        Sampler::overdamped(1.0),
        ParticleInit::Uniform,
        400,
        13,
    );
    let (chi2, df) = chi_square(&p, &mix, box_, 12);
    let limit = df as f64 + 5.0 * (2.0 * df as f64).sqrt();
    assert!(
        chi2 > 2.0 * limit,
        "large delta not rejected: chi2 {chi2}, df {df}"
    );
    let tv = p.tv_distance(&field, box_, 12);
    assert!(
        tv.tv > 2.0 * tv.noise_floor,
        "TV {} floor {}",
        tv.tv,
        tv.noise_floor
    );
}

#[test]
fn the_marginal_histogram_follows_the_exact_marginal() {
    let mix = GaussianMixture::two_gaussians();
    let field = Field2::new(mix).expect("field");
    let p = run(
        &field,
        Sampler::overdamped(0.1),
        ParticleInit::Exact,
        50,
        21,
    );
    let (lo, hi, bins) = (-5.0, 5.0, 40);
    let h = p.marginal_histogram(0, lo, hi, bins);
    let w = (hi - lo) / bins as f64;
    for (b, &dens) in h.iter().enumerate() {
        let t = lo + w * (b as f64 + 0.5);
        let exact = field.marginal_density(0, t);
        // A bin count is binomial: se of the density estimate sqrt(p (1 - p) / n) / w with p ~ exact * w.
        let pb = exact * w;
        let se = (pb * (1.0 - pb) / N as f64).sqrt() / w;
        // Midpoint-rule error of the exact bin mass is far below the noise at this width.
        assert!(
            (dens - exact).abs() < 5.0 * se + 2e-3,
            "bin {b}: {dens} vs {exact}"
        );
    }
}
