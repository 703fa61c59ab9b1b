//! The registry of model kinds (`models::kinds`): every registered kind round-trips its name, builds from its default
//! architecture, trains on a tiny batch and loads back from its checkpoint with the same outputs bit for bit; and a
//! kind defined here, outside the crate and unregistered, builds, scores, trains and loads through the public traits.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::{D, Device, Tensor};
use candle_nn::VarBuilder;
use common::*;
use walkjump::data::Dataset;
use walkjump::models::checkpoint::{Checkpoint, CheckpointError, DataSpec, ModelKind};
use walkjump::models::kinds::{self, MODELS};
use walkjump::models::{Arch, Draws, KindModel, Model, ModelDef, ScoreModel, ZMode};
use walkjump::parity::{input_width, probe_outputs};
use walkjump::rng::Rng;
use walkjump::train::{
    TrainConfig, TrainRecord, batch_loss_and_block_grads, default_arch, to_checkpoint, train,
    trainable_model_as,
};

/// `n` images of 1 x 8 x 8 in [0, 1] with labels 0..10.
fn tiny_data(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    Dataset {
        spec: DataSpec {
            name: "tiny".into(),
            channels: 1,
            height: 8,
            width: 8,
        },
        images: rng.uniform_vec(n * 64),
        labels: Some((0..n).map(|i| (i % 10) as u8).collect()),
    }
}

/// Every output `parity` compares, as bits.
fn outputs(model: &Model, y: &Tensor) -> Vec<(&'static str, Vec<u32>)> {
    probe_outputs(model, y, &mut Rng::new(5))
        .expect("outputs")
        .into_iter()
        .map(|(name, t)| {
            let v = t.flatten_all().expect("flat").to_vec1::<f32>().expect("v");
            (name, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

#[test]
fn every_registered_kind_round_trips_its_name() {
    assert_eq!(ModelKind::all().len(), MODELS.len());
    for def in MODELS {
        let kind = def.kind();
        assert_eq!(ModelKind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.def().map(|d| d.kind()), Some(kind));
        let json = serde_json::to_string(&kind).expect("json");
        assert_eq!(json, format!("\"{}\"", kind.as_str()));
        assert_eq!(
            serde_json::from_str::<ModelKind>(&json).expect("back"),
            kind
        );
    }
    let e = serde_json::from_str::<ModelKind>("\"gan\"").expect_err("unknown");
    assert!(e.to_string().contains("deen"), "{e}");
    assert_eq!(ModelKind::parse("gan"), None);
}

#[test]
fn every_registered_kind_trains_a_step_and_loads_back_the_same() {
    let data = tiny_data(12, 1);
    // The first 90% trains (one batch of 11), the rest tests.
    let (tr, te) = (
        data.split(walkjump::data::Split::Train),
        data.split(walkjump::data::Split::Test),
    );
    for def in MODELS {
        let kind = def.kind();
        let cfg = TrainConfig {
            kind,
            sigma: 0.5,
            measurements: if def.multi_measurement() { 2 } else { 1 },
            arch: default_arch(kind).expect("default arch"),
            epochs: 1,
            batch: 16,
            lr: 1e-3,
            seed: 3,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut steps = 0;
        let (ck, rec) = train(&cfg, &tr, &te, &Device::Cpu, None, stop, |p| {
            if p.epoch_done.is_none() {
                steps += 1;
            }
        })
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(steps, 1, "{kind}");
        let epoch = &rec.history[0];
        assert!(
            epoch.train_loss.is_finite() && epoch.test_loss.is_finite(),
            "{kind}"
        );
        assert_eq!(epoch.test_accuracy.is_some(), def.needs_labels(), "{kind}");

        let bytes = ck.to_bytes().expect("bytes");
        let back = Checkpoint::from_bytes(&bytes).expect("parse");
        assert_eq!(back.meta.kind, kind);
        let saved: TrainRecord =
            serde_json::from_value(back.meta.train.clone().expect("train")).expect("record");
        assert_eq!(saved.config, cfg, "{kind}");

        let mut a = Model::from_checkpoint(&ck, &Device::Cpu).expect("model");
        let mut b = Model::from_bytes(&bytes, &Device::Cpu).expect("model from bytes");
        a.set_z_mode(ZMode::Mean);
        b.set_z_mode(ZMode::Mean);
        assert_eq!(a.def().kind(), kind);
        assert_eq!(a.has_energy(), def.has_energy(), "{kind}");
        assert_eq!(a.has_score(), def.has_score(), "{kind}");
        assert_eq!(a.is_denoiser(), def.is_denoiser(), "{kind}");
        assert!(!a.is_stochastic(), "{kind}");
        assert!(a.macs_per_score() > 0, "{kind}");
        let width = input_width(&a);
        let y = Tensor::from_vec(Rng::new(2).normal_vec(3 * width), (3, width), &Device::Cpu)
            .expect("y");
        let out = outputs(&a, &y);
        assert!(!out.is_empty(), "{kind}");
        assert_eq!(out, outputs(&b, &y), "{kind}");
    }
}

#[test]
fn unknown_kinds_are_refused_with_the_registry_in_one_line() {
    let e = Model::build(
        meta(ModelKind::new("gan"), 1.0, 1, &Arch::net(mlp(&[2])), 2, 2),
        &VarBuilder::zeros(candle_core::DType::F32, &Device::Cpu),
        &Device::Cpu,
    )
    .expect_err("unknown kind");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains("\"gan\"") || msg.contains("gan"), "{msg}");
    assert!(msg.contains(&kinds::names_line()), "{msg}");
    assert!(default_arch(ModelKind::new("gan")).is_err());
}

// ---- A kind defined outside the crate ----

/// An isotropic Gaussian energy `f(y) = c/2 ||y - mu||^2`, `c = exp(log_c)`: score `-c (y - mu)`, jump
/// `y - sigma^2 c (y - mu)`, trained on the DEEN loss. Parameters `mu: [d]`, `log_c: [1]`.
struct ShrinkKind;

const SHRINK: ModelKind = ModelKind::new("shrink");

impl ModelDef for ShrinkKind {
    fn kind(&self) -> ModelKind {
        SHRINK
    }

    fn has_energy(&self) -> bool {
        true
    }

    fn has_score(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        9
    }

    fn default_arch(&self) -> Arch {
        Arch::net(mlp(&[1]))
    }

    fn build(
        &self,
        meta: &walkjump::models::Metadata,
        _arch: &Arch,
        vb: &VarBuilder,
    ) -> walkjump::Result<Box<dyn KindModel>> {
        Ok(Box::new(Shrink {
            mu: vb.get(meta.data.dim(), "mu")?,
            log_c: vb.get(1, "log_c")?,
            sigma: meta.sigma,
        }))
    }
}

#[derive(Debug)]
struct Shrink {
    mu: Tensor,
    log_c: Tensor,
    sigma: f64,
}

impl Shrink {
    /// `(f: [N], grad_y f: [N, d])`.
    fn energy_and_grad(&self, y: &Tensor) -> walkjump::Result<(Tensor, Tensor)> {
        let c = self.log_c.exp()?;
        let r = y.broadcast_sub(&self.mu)?;
        let g = r.broadcast_mul(&c)?;
        let f = ((&r * &g)?.sum(D::Minus1)? * 0.5)?;
        Ok((f, g))
    }

    fn jump(&self, y: &Tensor) -> walkjump::Result<Tensor> {
        let (_, g) = self.energy_and_grad(y)?;
        Ok((y - (g * (self.sigma * self.sigma))?)?)
    }
}

impl KindModel for Shrink {
    fn energy_and_score(
        &self,
        y: &Tensor,
        _rng: &mut Rng,
    ) -> walkjump::Result<(Option<Tensor>, Tensor)> {
        let (f, g) = self.energy_and_grad(y)?;
        Ok((Some(f), g.neg()?))
    }

    fn jump(&self, y: &Tensor, _rng: &mut Rng) -> walkjump::Result<Tensor> {
        Shrink::jump(self, y)
    }

    fn macs_per_score(&self) -> usize {
        2 * self.mu.elem_count()
    }

    fn draws(&self, x: &Tensor, rng: &mut Rng) -> walkjump::Result<Draws> {
        Ok(Draws {
            gauss: vec![Draws::normals(x, x.dim(1)?, rng)?],
            z: Vec::new(),
        })
    }

    fn loss(
        &self,
        x: &Tensor,
        _labels: Option<&Tensor>,
        draws: &Draws,
    ) -> walkjump::Result<Tensor> {
        let y = (x + (draws.gauss(0)? * self.sigma)?)?;
        Ok((x - Shrink::jump(self, &y)?)?
            .sqr()?
            .sum(D::Minus1)?
            .mean(0)?)
    }
}

#[test]
fn a_kind_defined_outside_the_crate_builds_scores_trains_and_loads() {
    static DEF: ShrinkKind = ShrinkKind;
    let meta = meta(SHRINK, 0.5, 1, &DEF.default_arch(), 2, 2);
    let (model, varmap) =
        trainable_model_as(&DEF, meta.clone(), &Device::Cpu, 1, None).expect("build");
    assert_eq!(model.kind(), SHRINK);
    assert!(model.has_energy() && model.has_score() && model.is_denoiser());

    // Initialised at mu = 0, c = 1: score -y, jump (1 - sigma^2) y.
    let y = Tensor::new(&[[1.0f32, -2.0, 0.5, 0.0]], &Device::Cpu).expect("y");
    let (e, s) = model.energy_and_score(&y, &mut Rng::new(0)).expect("score");
    assert_eq!(
        s.to_vec2::<f32>().expect("s"),
        vec![vec![-1.0, 2.0, -0.5, 0.0]]
    );
    assert_eq!(
        e.expect("energy").to_vec1::<f32>().expect("e"),
        vec![0.5 * (1.0 + 4.0 + 0.25)]
    );
    assert_eq!(
        model
            .jump(&y, &mut Rng::new(0))
            .expect("jump")
            .to_vec2::<f32>()
            .expect("j"),
        vec![vec![0.75, -1.5, 0.375, 0.0]]
    );

    // Training moves mu towards the data and lowers the loss.
    let x = Tensor::from_vec(vec![0.8f32; 8 * 4], (8, 4), &Device::Cpu).expect("x");
    let mut opt = walkjump::train::adam::Adam::new(varmap.all_vars(), 0.05).expect("adam");
    let mut rng = Rng::new(7);
    let mut losses = Vec::new();
    for _ in 0..40 {
        let (loss, grads) = batch_loss_and_block_grads(&model, &x, None, &mut rng).expect("loss");
        opt.step_blocks(&grads).expect("step");
        losses.push(loss);
    }
    assert!(
        losses[losses.len() - 1] < 0.5 * losses[0],
        "{:?}",
        (losses[0], losses[losses.len() - 1])
    );

    // Its checkpoint reads back only where its kind is named, and builds the same model.
    let cfg = TrainConfig {
        kind: SHRINK,
        sigma: 0.5,
        measurements: 1,
        arch: DEF.default_arch(),
        epochs: 1,
        batch: 8,
        lr: 0.05,
        seed: 1,
    };
    let record = TrainRecord {
        dataset: "constant".into(),
        train_images: 8,
        test_images: 0,
        config: cfg,
        epochs_done: 1,
        history: Vec::new(),
        wall_seconds: 0.0,
        parameters: 5,
        interrupted: false,
        best_epoch: None,
    };
    let bytes = to_checkpoint(&varmap, meta, &record)
        .expect("checkpoint")
        .to_bytes()
        .expect("bytes");
    match Checkpoint::from_bytes(&bytes) {
        Err(CheckpointError::UnknownKind { value, .. }) => assert_eq!(value, "shrink"),
        other => panic!("{other:?}"),
    }
    let ck = Checkpoint::from_bytes_in(&bytes, &[SHRINK]).expect("named kind");
    let back = Model::from_checkpoint_as(&DEF, &ck, &Device::Cpu).expect("load");
    assert_eq!(outputs(&back, &y), outputs(&model, &y));
    let mu = back
        .net_as::<Shrink>()
        .expect("a Shrink")
        .mu
        .to_vec1::<f32>();
    assert!(
        mu.expect("mu").iter().all(|&m| m > 0.3),
        "mu moved to the data"
    );
}
