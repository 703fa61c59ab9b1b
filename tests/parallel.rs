//! Row-block data parallelism (`walkjump::parallel`) on every bundled checkpoint and real digits: scores, jumps,
//! chains and training gradients computed on several threads agree with one thread (up to the GEMM's float
//! rounding), and repeat bit for bit at a fixed thread count.

use candle_core::{Device, Tensor, Var};
use walkjump::data::{Dataset, Split};
use walkjump::models::checkpoint::Checkpoint;
use walkjump::models::{Model, ScoreModel};
use walkjump::run::recommended_sampler;
use walkjump::sampling::chain::{Chain, ChainConfig, ChainInit};
use walkjump::sampling::rng::Rng;
use walkjump::train::{batch_loss, batch_loss_and_grads, trainable_model};

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn bundled() -> Vec<(String, Checkpoint)> {
    let dir = walkjump::checkpoints_dir();
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .expect("checkpoints dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, Checkpoint::load(&p).expect("checkpoint"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 8,
        "expected the bundled checkpoints in {dir:?}"
    );
    out
}

/// `n` test digits `[n, d]` and their labels.
fn digits(n: usize) -> (Tensor, Tensor) {
    let test = Dataset::bundled()
        .expect("bundled digits")
        .split(Split::Test);
    let idx: Vec<usize> = (0..n).map(|i| i * 7 % test.len()).collect();
    let x = test.batch(&idx, &Device::Cpu).expect("batch");
    let labels: Vec<u32> = idx
        .iter()
        .map(|&i| test.labels.as_ref().map_or(0, |l| l[i] as u32))
        .collect();
    (
        x,
        Tensor::from_vec(labels, n, &Device::Cpu).expect("labels"),
    )
}

/// Noisy inputs `[n, M d]` for `model`: each measurement is a digit plus N(0, sigma^2).
fn noisy(model: &Model, n: usize) -> Tensor {
    let (x, _) = digits(n);
    let m = model.measurements();
    let xt = Tensor::cat(&vec![x; m], 1).expect("tile");
    let mut rng = Rng::new(21);
    let eps =
        Tensor::from_vec(rng.normal_vec(xt.elem_count()), xt.shape(), &Device::Cpu).expect("noise");
    (xt + (eps * model.sigma()).expect("scale")).expect("add")
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .expect("flatten")
        .to_vec1::<f32>()
        .expect("vec")
}

/// Largest |a - b| relative to the largest |a| (both must be finite).
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(d.is_finite() && scale.is_finite());
    d / scale
}

/// Energy (where defined), score and jump of `y`, with the model's own sampling draws from a fixed seed.
fn outputs(model: &Model, y: &Tensor) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    if model.has_score() {
        let (e, s) = model.energy_and_score(y, &mut Rng::new(5)).expect("score");
        if let Some(e) = e {
            out.push(flat(&e));
        }
        out.push(flat(&s));
    }
    if model.is_denoiser() {
        out.push(flat(&model.jump(y, &mut Rng::new(6)).expect("jump")));
    }
    out
}

#[test]
fn scores_and_jumps_agree_across_thread_counts() {
    for (name, ck) in bundled() {
        let model = Model::from_checkpoint(&ck, &Device::Cpu).expect("model");
        if !model.is_denoiser() {
            continue;
        }
        // 30 rows: one block on 1 thread, three blocks of 10 on 3 threads.
        let y = noisy(&model, 30);
        let one = pool(1).install(|| outputs(&model, &y));
        let three = pool(3).install(|| outputs(&model, &y));
        let again = pool(3).install(|| outputs(&model, &y));
        assert!(!one.is_empty(), "{name}: nothing computed");
        assert_eq!(
            three, again,
            "{name}: not reproducible at a fixed thread count"
        );
        for (k, (a, b)) in one.iter().zip(&three).enumerate() {
            let r = rel_diff(a, b);
            assert!(
                r < 1e-5,
                "{name}, output {k}: 1 vs 3 threads differ by {r:e} (relative)"
            );
        }
    }
}

#[test]
fn chains_agree_across_thread_counts() {
    for (name, ck) in bundled() {
        let model = Model::from_checkpoint(&ck, &Device::Cpu).expect("model");
        if !model.has_score() {
            continue;
        }
        let (sampler, every) = recommended_sampler(&model.meta);
        let cfg = ChainConfig {
            sampler,
            every,
            chains: 24,
            init: ChainInit::UniformNoise,
            seed: 3,
        };
        let run = || {
            let mut chain = Chain::new(&model, &cfg, None, &Device::Cpu).expect("chain");
            for _ in 0..3 {
                chain.step(&model, &sampler).expect("step");
            }
            flat(&chain.jump(&model).expect("jump"))
        };
        let one = pool(1).install(run);
        let three = pool(3).install(run);
        assert_eq!(
            three,
            pool(3).install(run),
            "{name}: chain not reproducible"
        );
        // Three steps amplify the GEMM's rounding a little: allow 1e-4.
        let r = rel_diff(&one, &three);
        assert!(r < 1e-4, "{name}: chains on 1 vs 3 threads differ by {r:e}");
    }
}

fn grads_of(vars: &[Var], g: &candle_core::backprop::GradStore) -> Vec<Vec<f32>> {
    vars.iter()
        .map(|v| g.get(v.as_tensor()).map(flat).unwrap_or_default())
        .collect()
}

#[test]
fn training_gradients_per_block_sum_to_the_batch_gradient() {
    let (x, labels) = digits(24);
    for (name, ck) in bundled() {
        let (model, varmap) =
            trainable_model(ck.meta.clone(), &Device::Cpu, 0, Some(&ck)).expect("trainable");
        let vars = varmap.all_vars();
        // One graph over the whole batch, one thread: the reference.
        let (l1, g1) = pool(1).install(|| {
            let loss = batch_loss(&model, &x, Some(&labels), &mut Rng::new(9)).expect("loss");
            let grads = loss.backward().expect("backward");
            (
                loss.to_scalar::<f32>().expect("scalar") as f64,
                grads_of(&vars, &grads),
            )
        });
        let blocks = || {
            let (l, g) = batch_loss_and_grads(&model, &x, Some(&labels), &mut Rng::new(9), &vars)
                .expect("block grads");
            (l, grads_of(&vars, &g))
        };
        // 24 rows on 3 threads: three blocks of 8, three backward passes.
        let (l3, g3) = pool(3).install(blocks);
        assert_eq!(
            (l3, g3.clone()),
            pool(3).install(blocks),
            "{name}: not reproducible"
        );
        assert!(
            (l1 - l3).abs() <= 1e-5 * l1.abs().max(1.0),
            "{name}: loss {l1} vs {l3}"
        );
        let mut with_grad = 0;
        for (k, (a, b)) in g1.iter().zip(&g3).enumerate() {
            assert_eq!(
                a.len(),
                b.len(),
                "{name}: parameter {k} has a gradient on one side only"
            );
            if a.is_empty() {
                continue;
            }
            with_grad += 1;
            let r = rel_diff(a, b);
            assert!(
                r < 1e-4,
                "{name}: gradient of parameter {k} differs by {r:e} (relative)"
            );
        }
        assert!(with_grad > 0, "{name}: no gradients");
    }
}
