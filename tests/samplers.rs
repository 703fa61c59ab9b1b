//! The samplers of REFERENCE.md §6 on targets whose answers are known exactly.
//!
//! Tolerances: with N independent chains (the final states of N chains started independently), the sample mean of a
//! coordinate has standard error sqrt(v / N) and the sample variance sqrt(2 / (N - 1)) v for a Gaussian; every
//! statistical assertion allows 5 standard errors (a false failure rate below 1e-6 per assertion).

use candle_core::{Device, Tensor};
use walkjump::models::ScoreModel;
use walkjump::models::mixture::GaussianMixture;
use walkjump::sampling::chain::{Chain, ChainConfig, ChainInit};
use walkjump::sampling::langevin::{Sampler, cheng_coefficients};
use walkjump::sampling::rng::Rng;

/// Y ~ N(mu, s0^2 + sigma^2) = N(mu, 1) per coordinate, in 2 dimensions.
fn gaussian_target() -> GaussianMixture {
    GaussianMixture::single_gaussian(vec![0.5, -1.0], 0.6, vec![0.8]).expect("target")
}

fn run(
    model: &dyn ScoreModel,
    sampler: Sampler,
    chains: usize,
    steps: usize,
    seed: u64,
) -> Vec<Vec<f32>> {
    let cfg = ChainConfig {
        sampler,
        every: 10,
        chains,
        init: ChainInit::UniformNoise,
        seed,
    };
    let mut chain = Chain::new(model, &cfg, None, &Device::Cpu).expect("chain");
    for _ in 0..steps {
        let stats = chain.step(model, &sampler).expect("step");
        assert!(stats.diverged.is_empty(), "{:?}", stats.diverged);
    }
    chain.y.to_vec2::<f32>().expect("y")
}

fn moments(rows: &[Vec<f32>], j: usize) -> (f64, f64) {
    let n = rows.len() as f64;
    let m = rows.iter().map(|r| r[j] as f64).sum::<f64>() / n;
    let v = rows.iter().map(|r| (r[j] as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v)
}

/// Stationary covariance of the linear recursion s' = A s + B xi (2x2), by fixed-point iteration.
fn lyapunov(a: [[f64; 2]; 2], b: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    let mul = |x: [[f64; 2]; 2], y: [[f64; 2]; 2]| {
        let mut r = [[0.0; 2]; 2];
        for i in 0..2 {
            for j in 0..2 {
                r[i][j] = x[i][0] * y[0][j] + x[i][1] * y[1][j];
            }
        }
        r
    };
    let t = |x: [[f64; 2]; 2]| [[x[0][0], x[1][0]], [x[0][1], x[1][1]]];
    let bbt = mul(b, t(b));
    let mut s = [[0.0; 2]; 2];
    for _ in 0..100_000 {
        let n = mul(mul(a, s), t(a));
        s = [
            [n[0][0] + bbt[0][0], n[0][1] + bbt[0][1]],
            [n[1][0] + bbt[1][0], n[1][1] + bbt[1][1]],
        ];
    }
    s
}

/// The exact stationary variance of y for each algorithm, written out from REFERENCE.md §6 for a Gaussian target of
/// precision k (score -k (y - mu)), independently of the tensor implementation.
fn exact_variance(sampler: Sampler, k: f64) -> f64 {
    let delta = sampler.delta();
    let (gamma, u) = sampler.gamma_u().unwrap_or((f64::NAN, f64::NAN));
    match sampler.name() {
        "overdamped" => {
            let a = 1.0 - 0.5 * delta * delta * k;
            delta * delta / (1.0 - a * a)
        }
        "sachs" => {
            let (z1, z2) = ((-gamma * delta).exp(), (-2.0 * gamma * delta).exp());
            let c = (u * (1.0 - z2)).sqrt();
            let step = |y: f64, v: f64, e: f64| {
                let y1 = y + delta * v / 2.0;
                let psi = -k * y1;
                let v1 = v + u * delta * psi / 2.0;
                let v2 = z1 * v1 + u * delta * psi / 2.0 + c * e;
                (y1 + delta * v2 / 2.0, v2)
            };
            let (c0, c1, n) = (
                step(1.0, 0.0, 0.0),
                step(0.0, 1.0, 0.0),
                step(0.0, 0.0, 1.0),
            );
            lyapunov([[c0.0, c1.0], [c0.1, c1.1]], [[n.0, 0.0], [n.1, 0.0]])[0][0]
        }
        "cheng" => {
            let g = 1.0 / gamma;
            let (z1, z2) = ((-gamma * delta).exp(), (-2.0 * gamma * delta).exp());
            let vyy = u * g * (2.0 * delta - 4.0 * g * (1.0 - z1) + g * (1.0 - z2));
            let vvv = u * (1.0 - z2);
            let cyv = u * g * (1.0 - 2.0 * z1 + z2);
            let l11 = vyy.sqrt();
            let l21 = cyv / l11;
            let l22 = (vvv - l21 * l21).sqrt();
            let a = [
                [1.0 - u * g * (delta - g * (1.0 - z1)) * k, g * (1.0 - z1)],
                [-u * g * (1.0 - z1) * k, z1],
            ];
            lyapunov(a, [[l11, 0.0], [l21, l22]])[0][0]
        }
        other => panic!("no exact variance written here for {other}"),
    }
}

#[test]
fn each_sampler_reproduces_gaussian_mean_and_variance() {
    let target = gaussian_target();
    let n = 4000;
    for (sampler, steps) in [
        (Sampler::overdamped(0.3), 300),
        (Sampler::sachs(0.3, 1.0, 1.0), 400),
        (Sampler::cheng(0.1, 1.0, 1.0), 800),
        (Sampler::cheng(0.4, 2.0, 1.5), 400),
    ] {
        let exact = exact_variance(sampler, 1.0);
        // The discretised chain targets N(mu, 1) up to an O(delta) bias: make sure these settings are close to it.
        assert!(
            (exact - 1.0).abs() < 0.2,
            "{sampler:?}: stationary variance {exact}"
        );
        let rows = run(&target, sampler, n, steps, 17);
        for (j, mu) in [0.5, -1.0].into_iter().enumerate() {
            let (m, v) = moments(&rows, j);
            let se_m = (exact / n as f64).sqrt();
            let se_v = exact * (2.0 / (n as f64 - 1.0)).sqrt();
            assert!(
                (m - mu).abs() < 5.0 * se_m,
                "{sampler:?} dim {j}: mean {m} vs {mu}"
            );
            assert!(
                (v - exact).abs() < 5.0 * se_v,
                "{sampler:?} dim {j}: variance {v} vs exact {exact}"
            );
        }
    }
}

#[test]
fn sachs_is_exact_for_gaussians_and_overdamped_is_biased() {
    // A property of the algorithms worth pinning down: ABOBA (Algorithm 1) has the exact Gaussian variance for any
    // step, overdamped ULA has variance 1 / (1 - delta^2 k / 4) / k.
    for delta in [0.1, 0.5, 1.0] {
        let s = exact_variance(Sampler::sachs(delta, 0.7, 1.0), 1.0);
        assert!((s - 1.0).abs() < 1e-9, "{s}");
        let o = exact_variance(Sampler::overdamped(delta), 1.0);
        assert!((o - 1.0 / (1.0 - delta * delta / 4.0)).abs() < 1e-12);
    }
}

/// As gamma grows, Algorithm 1 becomes the overdamped chain with step delta sqrt(u): with z1 = 0 its half-step points
/// y + delta v / 2 follow ULA exactly, drawing the same noise in the same order.
#[test]
fn sachs_tends_to_overdamped_as_gamma_grows() {
    let target = gaussian_target();
    let (delta, u) = (0.4, 2.0);
    let mut last = f64::INFINITY;
    for gd in [2.0, 5.0, 10.0, 40.0] {
        let sachs = Sampler::sachs(delta, gd / delta, u);
        let over = Sampler::overdamped(delta * u.sqrt());
        let cfg = |s| ChainConfig {
            sampler: s,
            every: 1,
            chains: 16,
            init: ChainInit::Uniform,
            seed: 5,
        };
        let mut a = Chain::new(&target, &cfg(sachs), None, &Device::Cpu).expect("a");
        let mut b = Chain::new(&target, &cfg(over), None, &Device::Cpu).expect("b");
        for _ in 0..50 {
            a.step(&target, &sachs).expect("a");
            b.step(&target, &over).expect("b");
        }
        let mid = (&a.y + (&a.v * (delta / 2.0)).expect("v")).expect("mid");
        let diff = (mid - &b.y)
            .expect("diff")
            .abs()
            .expect("abs")
            .max_all()
            .expect("max")
            .to_scalar::<f32>()
            .expect("s") as f64;
        assert!(
            diff < last || diff < 1e-5,
            "gamma*delta {gd}: difference {diff} did not shrink from {last}"
        );
        last = diff;
    }
    assert!(
        last < 1e-4,
        "at gamma*delta = 40 the chains differ by {last}"
    );
}

/// Lemma 1: the (y, v) noise covariance of Algorithm 2 equals the integrals of the OU process over one step,
/// computed here by quadrature, and an empirical covariance of one zero-score step matches it.
#[test]
fn cheng_covariance_equals_lemma_1() {
    for (delta, gamma, u) in [
        (0.5, 0.5, 1.0),
        (0.1, 3.0, 2.0),
        (1.0, 0.25, 0.5),
        (1e-3, 1.0, 1.0),
    ] {
        let c = cheng_coefficients(delta, gamma, u);
        // dv = -gamma v dt + sqrt(2 gamma u) dW, dy = v dt, from (0, 0): with r the time to the end of the step,
        // y gets (1 - e^{-gamma r}) / gamma and v gets e^{-gamma r} per unit of dW.
        let m = 200_000;
        let (mut yy, mut vv, mut yv) = (0.0, 0.0, 0.0);
        for i in 0..m {
            let r = (i as f64 + 0.5) * delta / m as f64;
            let fy = (1.0 - (-gamma * r).exp()) / gamma;
            let fv = (-gamma * r).exp();
            yy += fy * fy;
            vv += fv * fv;
            yv += fy * fv;
        }
        let w = 2.0 * gamma * u * delta / m as f64;
        for (name, got, want) in [
            ("Var_yy", c.var_yy, yy * w),
            ("Var_vv", c.var_vv, vv * w),
            ("Cov_yv", c.cov_yv, yv * w),
        ] {
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1e-12),
                "{name} at {delta},{gamma},{u}: {got} vs {want}"
            );
        }
        // Cholesky factor reproduces the covariance.
        assert!((c.l11 * c.l11 - c.var_yy).abs() < 1e-12 * c.var_yy.max(1e-30));
        assert!((c.l21 * c.l21 + c.l22 * c.l22 - c.var_vv).abs() < 1e-12);
    }
    // Empirical: one step from y = v = 0 with zero score.
    let (delta, gamma, u) = (0.5, 0.5, 1.0);
    let c = cheng_coefficients(delta, gamma, u);
    let n = 50_000;
    let zeros = Tensor::zeros((n, 1), candle_core::DType::F32, &Device::Cpu).expect("z");
    let s = Sampler::cheng(delta, gamma, u);
    let (y, v, _, _) = s
        .step(&zeros, &zeros, &mut Rng::new(8), |y| {
            Ok(((), y.zeros_like()?))
        })
        .expect("step");
    let y = y.flatten_all().expect("f").to_vec1::<f32>().expect("v");
    let v = v.flatten_all().expect("f").to_vec1::<f32>().expect("v");
    let nf = n as f64;
    let syy = y.iter().map(|&a| (a as f64).powi(2)).sum::<f64>() / nf;
    let svv = v.iter().map(|&a| (a as f64).powi(2)).sum::<f64>() / nf;
    let syv = y
        .iter()
        .zip(&v)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum::<f64>()
        / nf;
    // Standard errors of second moments of a zero-mean Gaussian pair: Var(a b) = s_aa s_bb + s_ab^2.
    let se = |aa: f64, bb: f64, ab: f64| ((aa * bb + ab * ab) / nf).sqrt();
    assert!(
        (syy - c.var_yy).abs() < 5.0 * se(c.var_yy, c.var_yy, c.var_yy),
        "{syy} vs {}",
        c.var_yy
    );
    assert!(
        (svv - c.var_vv).abs() < 5.0 * se(c.var_vv, c.var_vv, c.var_vv),
        "{svv} vs {}",
        c.var_vv
    );
    assert!(
        (syv - c.cov_yv).abs() < 5.0 * se(c.var_yy, c.var_vv, c.cov_yv),
        "{syv} vs {}",
        c.cov_yv
    );
}

/// Started from exact samples of Y for a bimodal mixture, each sampler keeps the mixture's moments (it is invariant
/// up to its small discretisation bias): mean and variance of 4000 chains after 200 steps.
#[test]
fn samplers_keep_the_analytic_mixture() {
    let target = GaussianMixture::two_gaussians()
        .with_sigma(0.6)
        .expect("mix");
    let n = 4000;
    let mean = target.y_mean();
    let var = target.y_marginal_variance();
    for sampler in [
        Sampler::overdamped(0.05),
        Sampler::sachs(0.1, 1.0, 1.0),
        Sampler::cheng(0.05, 2.0, 1.0),
    ] {
        let cfg = ChainConfig {
            sampler,
            every: 10,
            chains: n,
            init: ChainInit::Uniform,
            seed: 23,
        };
        let mut chain = Chain::new(&target, &cfg, None, &Device::Cpu).expect("chain");
        let init: Vec<f32> = target
            .sample_y(&mut Rng::new(31), n)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        chain.y = Tensor::from_vec(init, (n, 2), &Device::Cpu).expect("t");
        if sampler.is_underdamped() {
            // Start the velocity at its stationary law N(0, u).
            chain.v =
                Tensor::from_vec(Rng::new(37).normal_vec(2 * n), (n, 2), &Device::Cpu).expect("v");
        }
        for _ in 0..200 {
            chain.step(&target, &sampler).expect("step");
        }
        let rows = chain.y.to_vec2::<f32>().expect("rows");
        for j in 0..2 {
            let (m, v) = moments(&rows, j);
            // A mixture is not Gaussian: use the sample fourth moment for the variance's standard error.
            let m4 = rows.iter().map(|r| (r[j] as f64 - m).powi(4)).sum::<f64>() / n as f64;
            let se_v = ((m4 - v * v) / n as f64).sqrt();
            let se_m = (var[j] / n as f64).sqrt();
            // Allow 5 standard errors plus a 2% discretisation bias on the variance.
            assert!(
                (m - mean[j]).abs() < 5.0 * se_m,
                "{sampler:?} dim {j}: mean {m} vs {}",
                mean[j]
            );
            assert!(
                (v - var[j]).abs() < 5.0 * se_v + 0.02 * var[j],
                "{sampler:?} dim {j}: variance {v} vs {}",
                var[j]
            );
        }
    }
}

/// Equation 26 of seed 002: the M = 2 Bayes estimator of a Gaussian X, through the ScoreModel jump on tensors.
#[test]
fn analytic_m2_estimator_matches_the_mixture_jump() {
    let (mu, s0, s1, s2) = (0.3, 0.7, 0.5, 1.3);
    let model = GaussianMixture::single_gaussian(vec![mu; 3], s0, vec![s1, s2]).expect("model");
    let mut rng = Rng::new(41);
    let n = 50;
    let y: Vec<f32> = (0..n * 6).map(|_| (2.0 * rng.normal()) as f32).collect();
    let yt = Tensor::from_vec(y.clone(), (n, 6), &Device::Cpu).expect("y");
    let jump = model
        .jump(&yt, &mut rng)
        .expect("jump")
        .to_vec2::<f32>()
        .expect("rows");
    let (a, b, c) = (s0 * s0, s1 * s1, s2 * s2);
    for i in 0..n {
        for d in 0..3 {
            let y1 = y[i * 6 + d] as f64;
            let y2 = y[i * 6 + 3 + d] as f64;
            let want = (mu * b * c + y1 * a * c + y2 * a * b) / (b * c + a * c + a * b);
            assert!(
                (jump[i][d] as f64 - want).abs() < 1e-5,
                "{} vs {want}",
                jump[i][d]
            );
        }
    }
}
