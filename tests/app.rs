//! GUI tests: the app is driven through egui_kittest without its worker thread. Frames are either scripted
//! (deterministic snapshots of each workspace) or produced by a synchronous [`Worker`] on small random models.
#![cfg(feature = "gui")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use walkjump::app::messages::{
    DenoiseFrame, ModelInfo, NebulaFrame, Traces, WalkCommand, WalkFrame,
};
use walkjump::app::worker::Worker;
use walkjump::app::{App, Frame, SaveKind, WorkerCommand};
use walkjump::models::Arch;
use walkjump::models::checkpoint::ModelKind;
use walkjump::run::{DenoiseColumn, Mixing};
use walkjump::sampling::SamplerKind;
use walkjump::sampling::langevin::Sampler;
use walkjump::sampling::nebula::Attractor;

use common::{meta, mlp, random_checkpoint, temp_dir};

// ---- fixtures ----------------------------------------------------------------------------------------------------

fn harness(app: App) -> Harness<'static, App> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app)
}

fn fake_info(path: &str, kind: &str, sigma: f64) -> ModelInfo {
    let path = PathBuf::from(path);
    ModelInfo {
        label: path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default(),
        path,
        kind: kind.into(),
        sigma,
        measurements: 1,
        shape: (1, 28, 28),
        is_denoiser: true,
        has_score: kind != "sigma_vae",
        has_energy: kind == "deen" || kind == "uvb",
        parameters: 1_863_681,
        sha256: "ab".repeat(32),
        arch: "{\n  \"net\": {\"type\": \"mlp\", \"hidden\": [1024, 1024]}\n}".into(),
        train: Some("{\n  \"epochs\": 20,\n  \"test_loss\": 28.1\n}".into()),
        extra: BTreeMap::new(),
        recommended: (Sampler::overdamped(0.2 * std::f64::consts::SQRT_2), 10),
    }
}

/// A 28x28 "digit": a ring whose radius depends on `k`, so tiles differ.
fn digit(k: usize) -> Vec<f32> {
    let r0 = 5.0 + (k % 6) as f32;
    (0..784)
        .map(|p| {
            let (y, x) = ((p / 28) as f32 - 13.5, (p % 28) as f32 - 13.5);
            let r = (x * x + y * y).sqrt();
            (1.0 - (r - r0).abs() / 2.0).clamp(0.0, 1.0)
        })
        .collect()
}

fn walk_frame(chains: usize, running: bool) -> WalkFrame {
    let step: Vec<f64> = (1..=200).map(|s| s as f64).collect();
    let energy: Vec<f64> = step
        .iter()
        .map(|s| 300.0 / (1.0 + s / 20.0) + 40.0)
        .collect();
    let score: Vec<f64> = step
        .iter()
        .map(|s| 30.0 / (1.0 + s / 50.0) + 10.0)
        .collect();
    let jumps: Vec<Vec<f32>> = (0..chains).map(digit).collect();
    WalkFrame {
        step: 200,
        running,
        chains,
        running_chains: chains,
        image_hw: (28, 28),
        jumps: Arc::new(jumps.clone()),
        jump_step: 200,
        noisy: Arc::new(jumps),
        film_chain: 1,
        film: (0..12).map(digit).collect(),
        traces: Traces {
            step: step.clone(),
            energy,
            score,
            kinetic: Vec::new(),
            jump_min: (1..=20).map(|j| [10.0 * j as f64, -0.05]).collect(),
            jump_max: (1..=20).map(|j| [10.0 * j as f64, 1.02]).collect(),
        },
        mixing_energy: Some(Mixing {
            rhat: 1.013,
            ess: 412.0,
            draws: 20,
        }),
        mixing_score: None,
        classes: Some((0..chains as u32).map(|c| c % 10).collect()),
        class_timeline: vec![1, 1, 7, 7, 7, 9, 4, 4, 9, 1, 3, 3],
        classes_visited: 5,
        classes_visited_all: 8,
        divergence: None,
        steps_per_sec: 0.0,
        config: Some(walkjump::sampling::chain::ChainConfig {
            sampler: Sampler::overdamped(0.2828),
            every: 10,
            chains,
            init: walkjump::sampling::chain::ChainInit::UniformNoise,
            seed: 0,
        }),
        b: None,
        held: None,
        observed: None,
        jump_model: None,
        quality: None,
    }
}

/// An app with one fake DEEN loaded and selected.
fn app_with_model() -> App {
    let mut app = App::new_for_test();
    app.apply_frame(Frame::Loaded {
        info: Box::new(fake_info("/models/deen-mlp-s1.0.safetensors", "deen", 1.0)),
        selected: true,
    });
    app
}

/// Writes a small random checkpoint on 28x28 images; returns its path.
fn write_model(
    dir: &Path,
    name: &str,
    kind: ModelKind,
    sigma: f64,
    m: usize,
    seed: u64,
) -> PathBuf {
    let arch = match kind {
        ModelKind::DEEN => Arch {
            quadratic: true,
            ..Arch::net(mlp(&[16]))
        },
        ModelKind::SIGMA_VAE | ModelKind::UVB => Arch {
            decoder: Some(vec![16]),
            latent: Some(4),
            ..Arch::net(mlp(&[16]))
        },
        _ => Arch::net(mlp(&[16])),
    };
    let path = dir.join(name);
    random_checkpoint(meta(kind, sigma, m, &arch, 28, 28), seed)
        .save(&path)
        .expect("save checkpoint");
    path
}

/// Hands every command the app sent to the worker, lets it compute until idle (at most `ticks` slices), and feeds
/// every frame back to the app; then redraws.
fn pump(h: &mut Harness<'static, App>, worker: &mut Worker, ticks: usize) -> Vec<WorkerCommand> {
    let sent = h.state_mut().take_sent();
    for c in &sent {
        worker.handle(c.clone());
    }
    for _ in 0..ticks {
        if !worker.tick() {
            break;
        }
    }
    for f in worker.take_frames() {
        h.state_mut().apply_frame(f);
    }
    h.run();
    sent
}

/// Writes `pixels` as a `.npy` array of `uint8` with the given shape (a Python tuple, e.g. `"(2, 28, 28)"`).
fn write_u8_npy(path: &Path, shape: &str, pixels: &[u8]) {
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend_from_slice(pixels);
    std::fs::write(path, &npy).expect("write npy");
}

#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn select_all_and_type(h: &mut Harness<'static, App>, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.run();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run();
    h.get_by_label(label).type_text(text);
    h.run();
    h.key_press(egui::Key::Enter);
    h.run();
}

// ---- Walk-Jump ---------------------------------------------------------------------------------------------------

#[test]
fn walk_tab_shows_sampler_and_run_sends_run() {
    let mut h = harness(app_with_model());
    h.run();
    h.get_by_label("sampler");
    h.get_by_label("delta");
    h.get_by_label("model: deen-mlp-s1.0 (deen, sigma 1)");
    h.get_by_label("Run").click();
    h.run();
    let sent = h.state_mut().take_sent();
    assert!(
        matches!(&sent[..], [WorkerCommand::Walk(WalkCommand::Run(cfg))] if cfg.sampler.name() == "overdamped" && cfg.every == 10),
        "{sent:?}"
    );
}

/// The sampler combo box lists the registry (`walkjump::sampling::SAMPLERS`), and the gamma and u sliders show only
/// for a sampler that takes them.
#[test]
fn sampler_combo_lists_the_registry_and_shows_gamma_u_only_when_used() {
    let mut h = harness(app_with_model());
    h.run();
    assert!(
        h.query_by_label("gamma").is_none(),
        "overdamped has no gamma"
    );
    for k in SamplerKind::all() {
        h.get_by_label("sampler").click();
        h.run();
        // The open list holds every registered sampler; pick `k` (the last node with its label: the list entry,
        // not the combo's own text).
        for other in SamplerKind::all() {
            assert!(
                h.query_all_by_label(other.label()).next().is_some(),
                "{} is not listed",
                other.label()
            );
        }
        let entry = h.get_all_by_label(k.label()).last().expect("entry");
        entry.click();
        h.run();
        assert_eq!(h.state().settings.walk.sampler, k);
        assert_eq!(h.state().settings.walk.sampler().name(), k.name());
        assert_eq!(
            h.query_by_label("gamma").is_some(),
            k.underdamped(),
            "{}",
            k.name()
        );
        assert_eq!(h.query_by_label("u").is_some(), k.underdamped());
    }
}

#[test]
fn fed_frame_shows_chains_and_diagnostics() {
    let mut h = harness(app_with_model());
    h.state_mut()
        .apply_frame(Frame::Walk(Box::new(walk_frame(4, true))));
    h.run_steps(3);
    h.get_by_label("4 chains");
    h.get_by_label("chains running 4/4");
    h.get_by_label_contains("R-hat 1.013, ESS 412");
    h.get_by_label("classes visited: chain 1: 5 · all chains: 8");
    h.get_by_label_contains("film strip of chain 1 (last 12 jumps");
    // Running: the button pauses.
    h.get_by_label("Pause").click();
    h.run_steps(2);
    assert_eq!(
        h.state_mut().take_sent(),
        vec![WorkerCommand::Walk(WalkCommand::Pause)]
    );
}

#[test]
fn divergence_shows_message_and_reset() {
    let mut h = harness(app_with_model());
    let mut f = walk_frame(4, false);
    f.divergence = Some(
        "chain 2 diverged at step 7: non-finite values (lower delta and reset); the run is paused"
            .into(),
    );
    f.running_chains = 3;
    h.state_mut().apply_frame(Frame::Walk(Box::new(f)));
    h.run();
    h.get_by_label_contains("Diverged: chain 2 diverged at step 7");
    h.get_by_label("chains running 3/4");
    h.get_by_label("Reset chains").click();
    h.run();
    let sent = h.state_mut().take_sent();
    assert!(
        matches!(&sent[..], [WorkerCommand::Walk(WalkCommand::Reset(_))]),
        "{sent:?}"
    );
}

#[test]
fn invalid_typed_delta_is_refused_and_not_sent() {
    let mut h = harness(app_with_model());
    h.state_mut()
        .apply_frame(Frame::Walk(Box::new(walk_frame(4, true))));
    h.run();
    for bad in ["-1", "nan", "0", "abc"] {
        select_all_and_type(&mut h, "delta value", bad);
        h.get_by_label_contains("delta must be a positive number");
        let sent = h.state_mut().take_sent();
        assert!(
            !sent
                .iter()
                .any(|c| matches!(c, WorkerCommand::Walk(WalkCommand::SetSampler(_)))),
            "{bad}: {sent:?}"
        );
        assert!((h.state().settings.walk.delta - 0.2 * std::f64::consts::SQRT_2).abs() < 1e-12);
    }
    select_all_and_type(&mut h, "delta value", "0.5");
    let sent = h.state_mut().take_sent();
    assert!(
        sent.contains(&WorkerCommand::Walk(WalkCommand::SetSampler(
            Sampler::overdamped(0.5)
        ))),
        "{sent:?}"
    );
    assert!(
        h.query_by_label_contains("must be a positive number")
            .is_none()
    );
}

#[test]
fn presets_follow_reference_section_6() {
    let mut app = App::new_for_test();
    app.apply_frame(Frame::Loaded {
        info: Box::new(fake_info("/models/mdae-s0.5.safetensors", "mdae", 0.5)),
        selected: true,
    });
    let mut h = harness(app);
    h.run();
    h.get_by_label("MEMs 1x16 (Cheng)").click();
    h.run();
    let w = &h.state().settings.walk;
    assert_eq!(w.sampler(), Sampler::cheng(0.25, 0.5, 1.0));
    assert_eq!(w.every, 10);
    h.get_by_label_contains("gamma*delta = 0.125");
    h.get_by_label("MEMs 1x4 (Sachs)").click();
    h.run();
    assert_eq!(
        h.state().settings.walk.sampler(),
        Sampler::sachs(1.0, 0.25, 1.0)
    );
    h.get_by_label("NEB overdamped").click();
    h.run();
    let d = h.state().settings.walk.delta;
    assert!(
        (d - std::f64::consts::SQRT_2 * 0.5 / 100.0).abs() < 1e-12,
        "{d}"
    );
    h.get_by_label("UVB overdamped").click();
    h.run();
    let d = h.state().settings.walk.delta;
    assert!((d - 0.2 * std::f64::consts::SQRT_2).abs() < 1e-12, "{d}");
    // No chains yet: nothing is sent, the settings wait for Run.
    assert!(h.state_mut().take_sent().is_empty());
}

#[test]
fn keyboard_space_s_r() {
    let mut h = harness(app_with_model());
    h.run();
    h.key_press(egui::Key::Space);
    h.run();
    h.key_press(egui::Key::S);
    h.run();
    h.key_press(egui::Key::R);
    h.run();
    let sent = h.state_mut().take_sent();
    assert!(
        matches!(
            &sent[..],
            [
                WorkerCommand::Walk(WalkCommand::Run(_)),
                WorkerCommand::Walk(WalkCommand::Step(_)),
                WorkerCommand::Walk(WalkCommand::Reset(_))
            ]
        ),
        "{sent:?}"
    );
}

#[test]
fn help_window_lists_shortcuts() {
    let mut h = harness(app_with_model());
    h.run();
    h.get_by_label("Help").click();
    h.run();
    h.get_by_label("run / pause the walk");
    h.get_by_label("step to the next jump");
    h.get_by_label("reset the chains");
}

#[test]
fn theme_toggle_switches_to_light() {
    let mut h = harness(app_with_model());
    h.run();
    assert!(h.state().settings.dark);
    h.get_by_label("Light theme").click();
    h.run();
    assert!(!h.state().settings.dark);
    h.get_by_label("Dark theme");
    assert_eq!(h.ctx.theme(), egui::Theme::Light);
}

// ---- real worker, small random models ----------------------------------------------------------------------------

#[test]
fn bad_dropped_file_shows_banner_and_keeps_the_model() {
    let dir = temp_dir("app-drop");
    let good = write_model(&dir, "good.safetensors", ModelKind::DEEN, 1.0, 1, 1);
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, b"this is not a checkpoint").expect("write");
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&good);
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    assert_eq!(h.state().current(), Some(good.as_path()));
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(bad.clone())));
    h.run();
    let sent = pump(&mut h, &mut worker, 0);
    assert_eq!(
        sent,
        vec![WorkerCommand::Load {
            path: bad.clone(),
            select: true
        }]
    );
    h.get_by_label_contains("could not open");
    assert!(
        h.state()
            .banner()
            .is_some_and(|b| b.contains("bad.safetensors"))
    );
    assert_eq!(h.state().current(), Some(good.as_path()));
    h.get_by_label("model: good (deen, sigma 1)");
    h.get_by_label("Dismiss").click();
    h.run();
    let again = h.state_mut().take_sent();
    assert!(
        h.state().banner().is_none(),
        "{:?} {again:?}",
        h.state().banner()
    );
    assert!(h.query_by_label_contains("could not open").is_none());
}

/// Every kind of bad drop (empty file, a directory, a 1 GB file of random bytes, a non-checkpoint, a missing
/// file) shows a one-line banner naming the file, and the model already loaded stays current.
#[test]
fn hostile_drops_show_a_banner_and_keep_the_model() {
    let dir = temp_dir("app-hostile-drop");
    let good = write_model(&dir, "good.safetensors", ModelKind::DEEN, 1.0, 1, 1);
    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").expect("write");
    let folder = dir.join("folder.safetensors");
    std::fs::create_dir_all(&folder).expect("mkdir");
    // 1 GiB whose first 64 KiB are random bytes (seeded) and whose rest is a hole: the loader must refuse it from
    // its 8-byte prefix instead of reading a gigabyte.
    let big = dir.join("random-1g.bin");
    {
        let mut rng = walkjump::sampling::rng::Rng::new(7);
        let head: Vec<u8> = (0..65536).map(|_| (rng.next_u64() >> 56) as u8).collect();
        std::fs::write(&big, &head).expect("write");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .expect("open");
        f.set_len(1 << 30).expect("set_len");
    }
    let text = dir.join("notes.txt");
    std::fs::write(&text, "a text file, not a checkpoint").expect("write");
    let missing = dir.join("gone.safetensors");
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&good);
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    assert_eq!(h.state().current(), Some(good.as_path()));
    for (bad, expect) in [
        (&empty, "empty"),
        (&folder, "directory"),
        (&big, "header claims"),
        (&text, "header claims"),
        (&missing, "does not exist"),
    ] {
        h.input_mut()
            .dropped_files
            .push(Arc::new(Dropped(bad.clone())));
        h.run();
        let sent = pump(&mut h, &mut worker, 0);
        assert_eq!(
            sent,
            vec![WorkerCommand::Load {
                path: bad.clone(),
                select: true
            }]
        );
        let banner = h.state().banner().unwrap_or_default().to_string();
        let name = bad.file_name().unwrap_or_default().to_string_lossy();
        assert!(banner.contains(name.as_ref()), "{banner}");
        assert!(banner.contains(expect), "{expect}: {banner}");
        assert!(!banner.contains('\n'), "{banner}");
        assert_eq!(h.state().current(), Some(good.as_path()));
        h.get_by_label("model: good (deen, sigma 1)");
        h.get_by_label("Dismiss").click();
        h.run();
        assert!(h.state().banner().is_none());
    }
    // The app still works: the good model walks.
    h.get_by_label("Step").click();
    h.run();
    pump(&mut h, &mut worker, 200);
    h.get_by_label_contains("running · step");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A/B: B with A's parameters reproduces A exactly (same chains, states and noise); B with four times the step
/// walks elsewhere. Both are shown side by side.
#[test]
fn ab_mode_runs_a_second_parameter_set_on_the_same_seed() {
    let dir = temp_dir("app-ab");
    let good = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 2);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&good);
    app.settings.walk.chains = 4;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("A/B: compare a second parameter set")
        .click();
    h.run();
    h.get_by_label("B = A").click();
    h.run();
    let sent = pump(&mut h, &mut worker, 0);
    assert!(
        sent.iter()
            .any(|c| matches!(c, WorkerCommand::Walk(WalkCommand::SetB(Some(_))))),
        "{sent:?}"
    );
    h.get_by_label("Step").click();
    h.run();
    pump(&mut h, &mut worker, 200);
    {
        let f = h.state().walk_frame().expect("a frame");
        let b = f.b.as_deref().expect("the B side");
        assert_eq!(f.step, 10);
        assert_eq!(b.step, 10);
        assert_eq!(f.jumps, b.jumps, "B = A must reproduce A exactly");
    }
    h.get_by_label("A");
    h.get_by_label("B");
    h.get_by_label("mean energy (B)");
    // A different step size on B: same start, different path.
    let delta_b = h.state().settings.walk.delta * 4.0;
    select_all_and_type(&mut h, "delta B value", &format!("{delta_b}"));
    pump(&mut h, &mut worker, 0);
    h.get_by_label("Step").click();
    h.run();
    pump(&mut h, &mut worker, 200);
    let f = h.state().walk_frame().expect("a frame");
    let b = f.b.as_deref().expect("the B side");
    assert_eq!((f.step, b.step), (20, 20));
    assert_ne!(f.jumps, b.jumps);
    let cfg_b = b.config.as_ref().expect("config");
    assert!(
        (cfg_b.sampler.delta() - delta_b).abs() < 1e-9 * delta_b,
        "{} vs {delta_b}",
        cfg_b.sampler.delta()
    );
    // Turning A/B off drops B.
    h.get_by_label("A/B: compare a second parameter set")
        .click();
    h.run();
    pump(&mut h, &mut worker, 0);
    assert!(h.state().walk_frame().is_some_and(|f| f.b.is_none()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn walk_with_a_real_worker_runs_steps_and_exports() {
    let dir = temp_dir("app-walk");
    let good = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 2);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&good);
    app.settings.walk.chains = 4;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    // Step walks exactly to the next jump.
    h.get_by_label("Step").click();
    h.run();
    pump(&mut h, &mut worker, 200);
    h.get_by_label("4 chains");
    h.get_by_label_contains("running · step 10 ·");
    // Run, compute a few slices, pause.
    h.get_by_label("Run").click();
    h.run();
    pump(&mut h, &mut worker, 4);
    h.get_by_label("Pause").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    h.get_by_label("Run");
    let out = temp_dir("app-export");
    let run_json = out.join("run.json");
    let png = out.join("jumps.png");
    let csv = out.join("traces.csv");
    let film = out.join("film.png");
    let app = h.state_mut();
    app.export_to(SaveKind::RunJson, &run_json)
        .expect("run json");
    app.export_to(SaveKind::JumpGrid, &png).expect("png");
    app.export_to(SaveKind::FilmStrip, &film).expect("film");
    app.export_to(SaveKind::TracesCsv, &csv).expect("csv");
    let gif = out.join("chain.gif");
    app.export_to(SaveKind::ChainGif, &gif).expect("gif");
    // The model with this walk as its recommendation: same tensors, the workspace's sampler and interval stored.
    app.settings
        .walk
        .set_sampler(Sampler::sachs(0.3, 0.5, 1.0), Some(7));
    let tuned = out.join("tuned.safetensors");
    app.export_to(SaveKind::ModelWithWalk, &tuned)
        .expect("model with walk");
    {
        use walkjump::models::Checkpoint;
        let a = Checkpoint::load(&good).expect("source");
        let b = Checkpoint::load(&tuned).expect("copy");
        assert_eq!(a.tensors, b.tensors, "tensors copied bit for bit");
        assert_eq!(
            walkjump::run::recommended_sampler(&b.meta),
            (Sampler::sachs(0.3, 0.5, 1.0), 7)
        );
        // A model file changed on disk since it was loaded is refused, and nothing is written.
        let moved = out.join("other.safetensors");
        std::fs::copy(&tuned, &good).expect("replace the source");
        let err = app
            .export_to(SaveKind::ModelWithWalk, &moved)
            .expect_err("a changed source");
        assert!(err.contains("changed on disk"), "{err}");
        assert!(!moved.exists());
        std::fs::write(
            &good,
            walkjump::models::checkpoint::Checkpoint::to_bytes(&a).expect("bytes"),
        )
        .expect("restore");
    }
    {
        use image::AnimationDecoder;
        let file = std::io::BufReader::new(std::fs::File::open(&gif).expect("open gif"));
        let frames = image::codecs::gif::GifDecoder::new(file)
            .expect("a gif")
            .into_frames()
            .collect_frames()
            .expect("frames");
        let film = app.walk_frame().map(|f| f.film.len()).unwrap_or(0);
        assert!(film > 0);
        assert_eq!(
            frames.len(),
            film,
            "one frame per jump of the followed chain"
        );
    }
    let rec =
        walkjump::run::RunRecord::from_json(&std::fs::read_to_string(&run_json).expect("read"))
            .expect("parse");
    let sha = walkjump::models::checkpoint::sha256_hex(&std::fs::read(&good).expect("read"));
    assert_eq!(rec.checkpoint_sha256, sha);
    assert_eq!(rec.spec.chain.chains, 4);
    assert!(rec.spec.steps >= 10);
    assert!(std::fs::read(&png).expect("png").starts_with(b"\x89PNG"));
    // The command line replays the exported run.
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_walkjump"))
        .arg("sample")
        .arg("-c")
        .arg(&good)
        .arg("--replay")
        .arg(&run_json)
        .arg("--out")
        .arg(out.join("replayed.png"))
        .output()
        .expect("run walkjump");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        std::fs::read_to_string(&csv)
            .expect("csv")
            .starts_with("step,mean_energy")
    );
}

#[test]
fn denoise_shows_one_column_per_loaded_denoiser() {
    let dir = temp_dir("app-denoise");
    let a = write_model(&dir, "deen-a.safetensors", ModelKind::DEEN, 1.0, 1, 3);
    let b = write_model(&dir, "svae-b.safetensors", ModelKind::SIGMA_VAE, 1.0, 1, 4);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&a);
    app.open_path(&b);
    app.settings.denoise.draws = 1;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    assert_eq!(h.state().loaded_denoisers(), 2);
    h.get_by_label("Denoise").click();
    h.run();
    h.get_by_label("2 loaded denoisers");
    h.get_by_label("Denoise digits").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    h.get_by_label("2 denoiser columns");
    h.get_by_label("deen-a");
    h.get_by_label("svae-b");
    // Per image: the noisy input's MSE and one MSE per model.
    assert_eq!(h.get_all_by_label_contains("MSE ").count(), 6 * 3);
    h.get_by_label("Aggregate MSE").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    h.get_by_label_contains("aggregate over 200 digits, gaussian:1");
    h.get_by_label("noisy input");
}

/// Drags the pointer across the drawing pad from `a` to `b` (fractions of its size) in a few moves.
fn draw_on_pad(h: &mut Harness<'static, App>, a: (f32, f32), b: (f32, f32)) {
    let rect = h.get_by_label("drawing pad").rect();
    let at = |t: f32| {
        egui::pos2(
            rect.min.x + rect.width() * (a.0 + t * (b.0 - a.0)),
            rect.min.y + rect.height() * (a.1 + t * (b.1 - a.1)),
        )
    };
    let button = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    h.input_mut()
        .events
        .push(egui::Event::PointerMoved(at(0.0)));
    h.run();
    h.input_mut().events.push(button(at(0.0), true));
    h.run();
    for k in 1..=8 {
        h.input_mut()
            .events
            .push(egui::Event::PointerMoved(at(k as f32 / 8.0)));
        h.run();
    }
    h.input_mut().events.push(button(at(1.0), false));
    h.run();
}

/// Denoise a digit drawn with the mouse: the stroke reaches the worker, the clean column is the drawing, and a
/// stochastic denoiser (sigma-VAE) gets one column per posterior draw, which differ; the table exports as one PNG.
#[test]
fn denoise_a_drawn_digit_with_posterior_draws() {
    let dir = temp_dir("app-drawn-denoise");
    let a = write_model(&dir, "deen-a.safetensors", ModelKind::DEEN, 1.0, 1, 3);
    let b = write_model(&dir, "svae-b.safetensors", ModelKind::SIGMA_VAE, 1.0, 1, 4);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&a);
    app.open_path(&b);
    app.settings.tab = walkjump::app::Tab::Denoise;
    app.settings.denoise.drawn = true;
    app.settings.denoise.draws = 3;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    // Nothing drawn yet: refused with a message.
    h.get_by_label("Denoise digits").click();
    h.run();
    assert!(pump(&mut h, &mut worker, 0).is_empty());
    h.get_by_label("draw a digit on the pad first");
    // A vertical stroke down the middle.
    draw_on_pad(&mut h, (0.5, 0.2), (0.5, 0.8));
    let sent = pump(&mut h, &mut worker, 0);
    let drawn = match sent.as_slice() {
        [WorkerCommand::SetDrawn(p)] => p.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(drawn.len(), 784);
    assert!(drawn[14 * 28 + 14] > 0.9, "the middle is inked");
    assert_eq!(drawn[14 * 28 + 3], 0.0, "the left edge is not");
    h.get_by_label("Denoise digits").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    // deen-a, svae-b and two more draws of svae-b.
    h.get_by_label("4 denoiser columns");
    h.get_by_label("svae-b · draw 2");
    h.get_by_label("svae-b · draw 3");
    let f = h.state().denoise_frame().expect("a comparison").clone();
    assert_eq!(f.clean, vec![drawn]);
    assert_eq!(f.columns.len(), 4);
    assert_ne!(
        f.columns[1].outputs, f.columns[2].outputs,
        "posterior draws differ"
    );
    let png = dir.join("table.png");
    h.state_mut()
        .export_to(SaveKind::DenoiseTable, &png)
        .expect("export");
    let img = image::open(&png).expect("png").to_luma8();
    // One row of 2 + 4 tiles of 28 pixels with 1-pixel gutters.
    assert_eq!((img.width(), img.height()), (6 * 29 + 1, 29 + 1));
    let _ = std::fs::remove_dir_all(&dir);
}

/// NEBULA from a drawn digit: start 0 is the drawing itself; a blank pad is refused; flow and gallery export.
#[test]
fn nebula_flows_from_a_drawn_digit_and_exports() {
    let dir = temp_dir("app-drawn-nebula");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 5);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&m);
    app.settings.tab = walkjump::app::Tab::Nebula;
    app.settings.nebula.source = walkjump::app::messages::NebulaSource::Drawn;
    app.settings.nebula.starts = 5;
    app.settings.nebula.max_steps = 10;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("Start flow").click();
    h.run();
    assert!(pump(&mut h, &mut worker, 0).is_empty());
    h.get_by_label("draw a digit on the pad first");
    h.state_mut().pad_mut().stroke((6.0, 8.0), (20.0, 20.0));
    let drawing = h.state_mut().pad_mut().pixels.clone();
    h.get_by_label("Start flow").click();
    h.run();
    let sent = pump(&mut h, &mut worker, 0);
    assert!(
        matches!(&sent[0], WorkerCommand::SetDrawn(p) if *p == drawing),
        "{sent:?}"
    );
    assert!(matches!(sent[1], WorkerCommand::Nebula(_)));
    let f = h.state().nebula_frame().expect("a flow").clone();
    assert_eq!(f.starts, 5);
    assert_eq!(f.images[0], drawing, "start 0 is the drawing");
    assert_ne!(f.images[1], drawing, "the others are noisy copies");
    for _ in 0..20 {
        pump(&mut h, &mut worker, 5);
    }
    let f = h.state().nebula_frame().expect("a flow").clone();
    assert!(!f.running && !f.attractors.is_empty());
    let (flow, gallery) = (dir.join("flow.png"), dir.join("gallery.png"));
    h.state_mut()
        .export_to(SaveKind::NebulaFlow, &flow)
        .expect("flow");
    h.state_mut()
        .export_to(SaveKind::NebulaGallery, &gallery)
        .expect("gallery");
    let g = image::open(&gallery).expect("png").to_luma8();
    let pairs = f.attractors.len();
    assert_eq!(g.width() as usize, (2 * pairs).min(8) * 29 + 1);
    // No poor man's NEBULA yet: a clear error, nothing written.
    let pm = dir.join("pm.png");
    let e = h
        .state_mut()
        .export_to(SaveKind::PoorMan, &pm)
        .expect_err("nothing to export");
    assert!(e.contains("poor man"), "{e}");
    assert!(!pm.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nebula_with_a_real_worker_reaches_the_gallery() {
    let dir = temp_dir("app-nebula");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 5);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&m);
    app.settings.nebula.starts = 6;
    app.settings.nebula.max_steps = 20;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("NEBULA").click();
    h.run();
    h.get_by_label("Start flow").click();
    h.run();
    pump(&mut h, &mut worker, 1000);
    h.get_by_label_contains("of 6 starts converged");
    h.get_by_label_contains("attractors ·");
    h.get_by_label("Poor man's NEBULA (two jumps)").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    h.get_by_label_contains("poor man's NEBULA: x_hat(x_hat(y))");
}

#[test]
fn models_tab_asks_for_chi_once_and_shows_it() {
    let mut h = harness(app_with_model());
    h.run();
    h.get_by_label("Models").click();
    // The spinner repaints until chi arrives.
    h.run_steps(2);
    let sent = h.state_mut().take_sent();
    assert_eq!(sent, vec![WorkerCommand::ComputeChi]);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    worker.handle(WorkerCommand::ComputeChi);
    for f in worker.take_frames() {
        h.state_mut().apply_frame(f);
    }
    h.run();
    h.get_by_label("max = sigma_c");
    h.get_by_label_contains("sigma = 1 is");
    h.get_by_label("1863681");
    h.get_by_label_contains("\"test_loss\": 28.1");
}

#[test]
fn divergence_from_a_real_worker_pauses_until_reset() {
    let dir = temp_dir("app-diverge");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 6);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&m);
    app.settings.walk.chains = 3;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.state_mut().settings.walk.delta = 1000.0;
    h.get_by_label("Run").click();
    h.run();
    pump(&mut h, &mut worker, 5);
    h.get_by_label_contains("Diverged: chain 0 diverged at step 1");
    h.get_by_label("chains running 0/3");
    // Running again is refused until the chains are reset.
    h.get_by_label("Run").click();
    h.run();
    pump(&mut h, &mut worker, 1);
    h.get_by_label_contains("reset before running again");
    h.state_mut().settings.walk.delta = 0.1;
    h.get_by_label("Reset chains").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    assert!(h.query_by_label_contains("Diverged").is_none());
    h.get_by_label("chains running 3/3");
}

#[test]
fn a_classifier_labels_every_jump() {
    let dir = temp_dir("app-classes");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 7);
    let arch = Arch {
        classes: Some(10),
        ..Arch::net(mlp(&[8]))
    };
    let c = dir.join("classifier.safetensors");
    random_checkpoint(meta(ModelKind::CLASSIFIER, 0.0, 1, &arch, 28, 28), 8)
        .save(&c)
        .expect("save classifier");
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.startup(&dir, Some(&m));
    app.settings.walk.chains = 5;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("classifier: classifier");
    h.get_by_label("Step").click();
    h.run();
    pump(&mut h, &mut worker, 100);
    h.get_by_label_contains("classes visited: chain 0:");
    // The classifier is not offered as a model to walk with.
    assert_eq!(h.state().loaded_denoisers(), 1);
}

#[test]
fn gui_command_is_documented() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_walkjump"))
        .args(["gui", "--help"])
        .output()
        .expect("run walkjump");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("--autostart") && text.contains("--screenshot-after"),
        "{text}"
    );
}

// ---- snapshots of every workspace (wgpu on Mesa lavapipe / llvmpipe) --------------------------------------------

fn nebula_frame() -> NebulaFrame {
    let images: Vec<Vec<f32>> = (0..32).map(digit).collect();
    NebulaFrame {
        step: 120,
        running: false,
        image_hw: (28, 28),
        images: Arc::new(images),
        energy_curve: (0..120).map(|s| 200.0 / (1.0 + s as f64 / 10.0)).collect(),
        grad_curve: (0..120).map(|s| 50.0 / (1.0 + s as f64 / 5.0)).collect(),
        converged: 30,
        starts: 32,
        attractors: (0..3)
            .map(|k| Attractor {
                image: digit(k),
                members: (0..(10 - 3 * k)).collect(),
                nearest: Some(100 + k),
                nearest_chi: Some(0.05 + 0.04 * k as f64),
                creative: k == 2,
                energy: Some(-1.0),
            })
            .collect(),
        nearest_images: (0..3).map(|k| digit(k + 3)).collect(),
        poor_man: None,
    }
}

fn denoise_frame() -> DenoiseFrame {
    let clean: Vec<Vec<f32>> = (0..4).map(digit).collect();
    let col = |label: &str, shift: f32| DenoiseColumn {
        label: label.into(),
        kind: "deen".into(),
        sigma: 1.0,
        outputs: clean
            .iter()
            .map(|c| c.iter().map(|v| (v * shift).min(1.0)).collect())
            .collect(),
        mse: vec![0.0123, 0.0234, 0.0345, 0.0456],
        range: vec![(0.0, 1.0); 4],
    };
    DenoiseFrame {
        image_hw: (28, 28),
        noisy: clean
            .iter()
            .map(|c| c.iter().map(|v| 0.5 * v + 0.25).collect())
            .collect(),
        noisy_mse: vec![0.9, 0.95, 1.01, 0.99],
        columns: vec![col("deen-mlp-s1.0", 0.9), col("sigma-vae-s1.0", 0.7)],
        clean,
        skipped: vec![],
        noise: Some(walkjump::data::noise::Noise::Gaussian { sigma: 1.0 }),
    }
}

/// Snapshots need a wgpu adapter (Mesa lavapipe or llvmpipe in CI). `WALKJUMP_SKIP_SNAPSHOTS=1` skips them on a
/// machine without one.
fn snapshots_enabled() -> bool {
    std::env::var("WALKJUMP_SKIP_SNAPSHOTS").map_or(true, |v| v != "1")
}

fn snapshot_options() -> egui_kittest::SnapshotOptions {
    // Software rasterisers differ by a few anti-aliased pixels between Mesa versions.
    egui_kittest::SnapshotOptions::new()
        .threshold(2.0)
        .max_failed_pixels(400)
}

#[test]
fn snapshots_of_every_workspace() {
    if !snapshots_enabled() {
        eprintln!("WALKJUMP_SKIP_SNAPSHOTS=1: snapshot test skipped");
        return;
    }
    let mut app = app_with_model();
    app.apply_frame(Frame::Loaded {
        info: Box::new(fake_info(
            "/models/sigma-vae-s1.0.safetensors",
            "sigma_vae",
            1.0,
        )),
        selected: false,
    });
    app.apply_frame(Frame::Walk(Box::new(walk_frame(16, false))));
    app.apply_frame(Frame::Nebula(Box::new(nebula_frame())));
    app.apply_frame(Frame::Denoise(Box::new(denoise_frame())));
    app.apply_frame(Frame::Chi(walkjump::data::geometry::ChiStats {
        pairs: 20000,
        min: 0.08,
        median: 0.36,
        mean: 0.37,
        max: 0.62,
    }));
    let mut h = harness(app);
    h.run();
    let opts = snapshot_options();
    h.snapshot_options("walk_jump", &opts);
    for (tab, name) in [
        ("NEBULA", "nebula"),
        ("Denoise", "denoise"),
        ("Models", "models"),
    ] {
        h.get_by_label(tab).click();
        h.run();
        h.snapshot_options(name, &opts);
    }
}

#[test]
fn hovering_a_file_shows_the_drop_hint() {
    let mut h = harness(app_with_model());
    h.run();
    h.input_mut().hovered_files.push(egui::HoveredFile {
        path: Some(PathBuf::from("/tmp/model.safetensors")),
        ..Default::default()
    });
    h.step();
    // Painted text is not in the accessibility tree; the app must simply not fail or send anything.
    assert!(h.state_mut().take_sent().is_empty());
}

#[test]
fn device_picker_asks_the_worker_and_shows_the_fallback() {
    let dir = temp_dir("app-device");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 7);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&m);
    app.settings.walk.chains = 2;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    assert_eq!(h.state().current(), Some(m.as_path()));
    assert_eq!(h.state().device(), "cpu");
    h.get_by_label("device").click();
    h.run();
    h.get_by_label("cuda").click();
    h.run();
    let sent = pump(&mut h, &mut worker, 0);
    assert_eq!(sent, vec![WorkerCommand::SetDevice("cuda".into())]);
    // The model stays loaded and current wherever it now computes.
    assert_eq!(h.state().current(), Some(m.as_path()));
    assert!(h.state().current_info().is_some());
    if matches!(worker.device(), candle_core::Device::Cpu) {
        // No usable GPU (or a CPU-only build): the CPU, and the one-line reason in the status bar.
        assert_eq!(h.state().device(), "cpu");
        h.get_by_label_contains("using the CPU");
        assert!(h.state().banner().is_none());
    } else {
        assert_eq!(h.state().device(), "cuda");
    }
    // Chains run after the change.
    h.get_by_label("Run").click();
    h.run();
    pump(&mut h, &mut worker, 3);
    assert!(h.state().banner().is_none(), "{:?}", h.state().banner());
    h.get_by_label("chains running 2/2");
}

#[test]
fn moving_the_worker_reloads_models_and_keeps_the_current_one() {
    let dir = temp_dir("app-move");
    let a = write_model(&dir, "a.safetensors", ModelKind::DEEN, 1.0, 1, 8);
    let b = write_model(&dir, "b.safetensors", ModelKind::DEEN, 0.5, 1, 9);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&a);
    app.open_path(&b);
    app.settings.walk.chains = 2;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    assert_eq!(h.state().current(), Some(b.as_path()));
    h.get_by_label("Run").click();
    h.run();
    pump(&mut h, &mut worker, 3);
    assert!(worker.busy());
    // A move (here CPU to CPU: the reload path every real device change takes) stops the walk, reloads both
    // models and keeps b current.
    worker.move_to(candle_core::Device::Cpu, Some("test note".into()));
    assert!(!worker.busy());
    let frames = worker.take_frames();
    assert!(
        frames.iter().any(|f| matches!(f, Frame::Device { label, note } if label == "cpu" && note.as_deref() == Some("test note"))),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::Selected(p) if p == &b))
    );
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, Frame::LoadFailed { .. } | Frame::Error(_)))
    );
    for f in frames {
        h.state_mut().apply_frame(f);
    }
    h.run();
    assert_eq!(h.state().current(), Some(b.as_path()));
    h.get_by_label_contains("test note");
    // Both models are still there to select, and the walk restarts on b.
    worker.handle(WorkerCommand::Select(a.clone()));
    assert!(
        worker
            .take_frames()
            .iter()
            .any(|f| matches!(f, Frame::Selected(p) if p == &a))
    );
    // A spec that is not a device changes nothing and says why in one line.
    worker.handle(WorkerCommand::SetDevice("tpu".into()));
    let frames = worker.take_frames();
    assert!(
        matches!(&frames[..], [Frame::Error(e)] if e.contains("unknown device") && !e.contains('\n')),
        "{frames:?}"
    );
}

// ---- first use: each workspace on its own bundled model ----------------------------------------------------------

/// A checkpoints folder with the bundled file names (small random models of the right kinds and sigmas).
fn bundled_like_dir(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    write_model(
        &dir,
        "deen-mlp-s1.0.safetensors",
        ModelKind::DEEN,
        1.0,
        1,
        1,
    );
    write_model(
        &dir,
        "deen-conv-s0.3.safetensors",
        ModelKind::DEEN,
        0.3,
        1,
        2,
    );
    write_model(
        &dir,
        "sigma-vae-s0.9.safetensors",
        ModelKind::SIGMA_VAE,
        0.9,
        1,
        3,
    );
    write_model(&dir, "uvb-conv-s1.0.safetensors", ModelKind::UVB, 1.0, 1, 4);
    write_model(
        &dir,
        "deen-mlp-s0.3.safetensors",
        ModelKind::DEEN,
        0.3,
        1,
        5,
    );
    dir
}

#[test]
fn nebula_opens_on_its_own_bundled_model_and_says_why() {
    let dir = bundled_like_dir("first-nebula");
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.startup(&dir, None);
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    // Walk-Jump stays on the default model.
    h.get_by_label("model: deen-mlp-s1.0 (deen, sigma 1)");
    h.get_by_label("NEBULA").click();
    h.run();
    let sent = pump(&mut h, &mut worker, 0);
    assert!(
        sent.iter().any(|c| matches!(c, WorkerCommand::Load { path, select: false } if path.ends_with("deen-conv-s0.3.safetensors"))),
        "{sent:?}"
    );
    h.get_by_label("flows on deen-conv-s0.3 (deen, sigma 0.3)");
    h.get_by_label_contains("the bundled model for attractors");
    // The current (Walk-Jump) model did not change; NEBULA's is its own.
    assert!(
        h.state()
            .current()
            .is_some_and(|p| p.ends_with("deen-mlp-s1.0.safetensors"))
    );
    assert_eq!(
        h.state().nebula_info().map(|i| i.label.as_str()),
        Some("deen-conv-s0.3")
    );
    // The documented step size is the default, and Start flow names NEBULA's model.
    h.get_by_label("Start flow").click();
    h.run();
    let sent = h.state_mut().take_sent();
    let start = sent.iter().find_map(|c| match c {
        WorkerCommand::Nebula(walkjump::app::messages::NebulaCommand::Start {
            cfg, model, ..
        }) => Some((cfg.eta, model.clone())),
        _ => None,
    });
    let (eta, model) = start.expect("a Start command");
    assert_eq!(eta, walkjump::NEBULA_ETA);
    assert!(model.is_some_and(|p| p.ends_with("deen-conv-s0.3.safetensors")));
    for c in sent {
        worker.handle(c);
    }
    for _ in 0..50 {
        if !worker.tick() {
            break;
        }
    }
    let frames = worker.take_frames();
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::Nebula(n) if n.step > 0)),
        "the flow ran on NEBULA's model"
    );
    // A model picked in NEBULA is the user's: no reason shown, sigma^2/10 again, Walk-Jump untouched.
    let mut app = App::new_for_test();
    app.startup(&dir, None);
    let mut h = harness(app);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("NEBULA").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    h.get_by_label("NEBULA model").click();
    h.run();
    h.get_by_label("deen-mlp-s0.3 (bundled, not loaded)")
        .click();
    h.run();
    pump(&mut h, &mut worker, 0);
    h.get_by_label("flows on deen-mlp-s0.3 (deen, sigma 0.3)");
    assert!(
        h.query_by_label_contains("the bundled model for attractors")
            .is_none()
    );
    assert!(
        h.state()
            .current()
            .is_some_and(|p| p.ends_with("deen-mlp-s1.0.safetensors"))
    );
    // With -c FILE, NEBULA follows that file.
    let mut app = App::new_for_test();
    let own = dir.join("deen-mlp-s0.3.safetensors");
    app.startup(&dir, Some(&own));
    assert!(app.nebula_target().path.is_none());
}

#[test]
fn denoise_opens_with_the_trio_grouped_by_kind_and_marks_other_sigmas() {
    let dir = bundled_like_dir("first-denoise");
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.startup(&dir, None);
    let mut h = harness(app);
    let sent = pump(&mut h, &mut worker, 0);
    let loads: Vec<String> = sent
        .iter()
        .filter_map(|c| match c {
            WorkerCommand::Load { path, .. } => {
                path.file_name().map(|n| n.to_string_lossy().to_string())
            }
            _ => None,
        })
        .collect();
    for want in [
        "deen-mlp-s1.0.safetensors",
        "sigma-vae-s0.9.safetensors",
        "uvb-conv-s1.0.safetensors",
    ] {
        assert!(
            loads.iter().any(|l| l == want),
            "{want} not loaded: {loads:?}"
        );
    }
    assert!(
        !loads.iter().any(|l| l == "deen-mlp-s0.3.safetensors"),
        "{loads:?}"
    );
    assert_eq!(h.state().loaded_denoisers(), 3);
    h.get_by_label("Denoise").click();
    h.run();
    h.get_by_label("Denoise digits").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    let frame = h.state().denoise_frame().expect("a comparison").clone();
    let kinds: Vec<&str> = frame.columns.iter().map(|c| c.kind.as_str()).collect();
    // sigma-VAE first, then DEEN, then UVB (3 posterior draws for each stochastic model).
    assert_eq!(
        kinds,
        [
            "sigma_vae",
            "sigma_vae",
            "sigma_vae",
            "deen",
            "uvb",
            "uvb",
            "uvb"
        ],
        "{kinds:?}"
    );
    // At Gaussian noise sigma = 1 only the sigma-VAE (trained at 0.9) is marked.
    h.get_by_label_contains("column(s) marked");
    let marked = h
        .query_all_by_label_contains("! sigma_vae, sigma 0.9")
        .count();
    assert_eq!(marked, 3);
    assert!(h.query_by_label_contains("! deen").is_none());
    h.get_by_label("deen, sigma 1");
}

#[test]
fn status_bar_says_idle_until_something_animates() {
    let mut h = harness(app_with_model());
    h.run();
    h.get_by_label("idle");
    h.state_mut()
        .apply_frame(Frame::Walk(Box::new(walk_frame(4, true))));
    h.run_steps(3);
    assert!(h.query_by_label("idle").is_none());
    h.get_by_label_contains("frame ");
}

// ---- conditional walk-jump --------------------------------------------------------------------------------------

#[test]
fn holding_the_top_half_restarts_chains_that_keep_it_and_mark_it() {
    let dir = temp_dir("app-condition");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 7);
    let j = write_model(&dir, "deen-b.safetensors", ModelKind::DEEN, 1.0, 1, 8);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.startup(&dir, Some(&m));
    app.settings.walk.chains = 4;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("hold part of an image fixed").click();
    h.run();
    h.get_by_label("test digit no.");
    h.get_by_label("Hold and reset").click();
    h.run();
    let sent = pump(&mut h, &mut worker, 0);
    let cond = sent.iter().find_map(|c| match c {
        WorkerCommand::Walk(WalkCommand::SetCondition(Some(c))) => Some(c.clone()),
        _ => None,
    });
    let cond = cond.expect("a condition was sent");
    assert_eq!(cond.mask.iter().filter(|&&b| b).count(), 14 * 28);
    h.get_by_label_contains("conditioned: 392 of 784 pixels held");
    let f = h.state().walk_frame().expect("chains").clone();
    let held = f.held.clone().expect("held mask in the frame");
    let x = f.observed.clone().expect("observation in the frame");
    for jump in f.jumps.iter() {
        for (k, (&b, &o)) in held.iter().zip(x.iter()).enumerate() {
            if b {
                assert_eq!(jump[k].to_bits(), o.to_bits(), "pixel {k}");
            }
        }
    }
    // Step to the next jump: still exact.
    h.get_by_label("Step").click();
    h.run();
    pump(&mut h, &mut worker, 100);
    let f = h.state().walk_frame().expect("chains").clone();
    assert!(f.step > 0);
    for jump in f.jumps.iter() {
        for (k, (&b, &o)) in held.iter().zip(x.iter()).enumerate() {
            if b {
                assert_eq!(jump[k].to_bits(), o.to_bits(), "pixel {k}");
            }
        }
    }
    // Jump with a second loaded model of the same sigma.
    h.state_mut().open_path(&j);
    pump(&mut h, &mut worker, 0);
    h.state_mut().open_path(&m);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("jump with").click();
    h.run();
    h.get_by_label("deen-b (deen, sigma 1)").click();
    h.run();
    h.get_by_label("Step").click();
    h.run();
    pump(&mut h, &mut worker, 100);
    // In the view and in the status bar.
    assert_eq!(
        h.query_all_by_label_contains("jumps with deen-b (sigma 1)")
            .count(),
        2
    );
    // The exported strip and run file name both models and their sigmas.
    let strip = dir.join("strip.png");
    h.state_mut()
        .export_to(SaveKind::FilmStrip, &strip)
        .expect("export strip");
    let text = walkjump::render::png_text(&std::fs::read(&strip).expect("strip"));
    let run = &text
        .iter()
        .find(|(k, _)| k == "walkjump-run")
        .expect("run text")
        .1;
    assert!(
        run.contains("deen-b (sigma 1)") && run.contains("\"label\":\"deen\""),
        "{run}"
    );
    let json = dir.join("run.json");
    h.state_mut()
        .export_to(SaveKind::RunJson, &json)
        .expect("export run");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("run")).expect("json");
    assert_eq!(rec["jump_with"]["sigma"], 1.0);
    assert_eq!(rec["condition"]["images"], "test:0..1");
    assert_eq!(rec["condition"]["mask"], "top");
    // Turning the condition off restarts unconditioned chains.
    h.get_by_label("hold part of an image fixed").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    assert!(h.state().walk_frame().is_some_and(|f| f.held.is_none()));
}

#[test]
fn masked_walk_view_snapshot() {
    if !snapshots_enabled() {
        eprintln!("WALKJUMP_SKIP_SNAPSHOTS=1: snapshot skipped");
        return;
    }
    let mut app = app_with_model();
    app.settings.walk.cond.on = true;
    let mut f = walk_frame(16, false);
    let held: Vec<bool> = (0..784).map(|p| p / 28 < 14).collect();
    f.held = Some(Arc::new(held));
    f.observed = Some(Arc::new(digit(2)));
    f.jump_model = Some("deen-conv-s1.0 (sigma 1)".into());
    app.apply_frame(Frame::Walk(Box::new(f)));
    let mut h = harness(app);
    h.run_steps(4);
    h.get_by_label_contains("conditioned: 392 of 784 pixels held");
    h.snapshot_options("walk_masked", &snapshot_options());
}

#[test]
fn one_test_digit_per_chain_is_held_in_its_own_chain() {
    use walkjump::app::messages::{CondImage, WalkCondition};
    let dir = temp_dir("app-per-chain");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 7);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    worker.handle(WorkerCommand::Load {
        path: m,
        select: true,
    });
    let mask: Vec<bool> = (0..784).map(|p| p / 28 < 14).collect();
    worker.handle(WorkerCommand::Walk(WalkCommand::SetCondition(Some(
        WalkCondition {
            mask: mask.clone(),
            image: CondImage::TestDigitsFrom(3),
            start_from_image: false,
        },
    ))));
    let cfg = walkjump::sampling::chain::ChainConfig {
        sampler: Sampler::overdamped(0.2),
        every: 5,
        chains: 4,
        init: walkjump::sampling::chain::ChainInit::UniformNoise,
        seed: 1,
    };
    worker.handle(WorkerCommand::Walk(WalkCommand::Step(cfg)));
    for _ in 0..20 {
        if !worker.tick() {
            break;
        }
    }
    let frame = worker
        .take_frames()
        .into_iter()
        .filter_map(|f| match f {
            Frame::Walk(w) => Some(w),
            _ => None,
        })
        .last()
        .expect("a walk frame");
    assert!(frame.step >= 5);
    let test = walkjump::data::Dataset::bundled()
        .expect("digits")
        .split(walkjump::data::Split::Test);
    for (k, jump) in frame.jumps.iter().enumerate() {
        let x = test.image(3 + k).expect("digit");
        for (p, _) in mask.iter().enumerate().filter(|(_, h)| **h) {
            assert_eq!(jump[p].to_bits(), x[p].to_bits(), "chain {k} pixel {p}");
        }
    }
    // Another model's worth of errors: a digit number past the end is one message, no chains.
    worker.handle(WorkerCommand::Walk(WalkCommand::SetCondition(Some(
        WalkCondition {
            mask,
            image: CondImage::TestDigitsFrom(5000),
            start_from_image: false,
        },
    ))));
    let frames = worker.take_frames();
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::Error(e) if e.contains("does not exist"))),
        "{frames:?}"
    );
}

#[test]
fn images_from_a_file_are_held_one_per_chain_and_bad_files_get_a_banner() {
    let dir = temp_dir("app-cond-file");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 7);
    // Two 28 x 28 digits as a .npy array of uint8 [2, 28, 28].
    let test = walkjump::data::Dataset::bundled()
        .expect("digits")
        .split(walkjump::data::Split::Test);
    let pixels: Vec<u8> = (0..2)
        .flat_map(|i| {
            test.image(i)
                .expect("digit")
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect::<Vec<_>>()
        })
        .collect();
    let file = dir.join("two.npy");
    write_u8_npy(&file, "(2, 28, 28)", &pixels);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.startup(&dir, Some(&m));
    app.settings.walk.chains = 4;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("hold part of an image fixed").click();
    h.run();
    // Dropping the array on the window loads it as the observations.
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(file.clone())));
    h.run();
    h.get_by_label_contains("2 image(s) from two.npy");
    h.get_by_label("Hold and reset").click();
    h.run();
    pump(&mut h, &mut worker, 0);
    let f = h.state().walk_frame().expect("chains").clone();
    let held = f.held.clone().expect("held");
    for (k, jump) in f.jumps.iter().enumerate() {
        // Chains 0..4 hold images 0, 1, 0, 1.
        let x = &pixels[(k % 2) * 784..(k % 2 + 1) * 784];
        for (p, _) in held.iter().enumerate().filter(|(_, b)| **b) {
            assert_eq!(jump[p], x[p] as f32 / 255.0, "chain {k} pixel {p}");
        }
    }
    // A file of the wrong size: one line, the chains stay.
    let bad = dir.join("bad.npy");
    std::fs::write(&bad, b"\x93NUMPY\x01\x00\x10\x00{'descr': 'x'}  \n").expect("write bad");
    h.state_mut().load_condition_images(&bad);
    h.run();
    assert!(
        h.state()
            .banner()
            .is_some_and(|b| b.contains("could not read images"))
    );
    assert!(h.state().walk_frame().is_some());
}

#[test]
fn nebula_flows_can_hold_part_of_each_start() {
    use walkjump::app::messages::{CondImage, NebulaCommand, NebulaSource, WalkCondition};
    let dir = temp_dir("app-nebula-hold");
    let m = write_model(&dir, "deen.safetensors", ModelKind::DEEN, 1.0, 1, 7);
    let mut worker = Worker::new(candle_core::Device::Cpu);
    worker.handle(WorkerCommand::Load {
        path: m,
        select: true,
    });
    let settings = walkjump::app::nebula::NebulaSettings {
        hold: true,
        hold_digit: 10,
        hold_per_start: true,
        starts: 3,
        max_steps: 20,
        ..Default::default()
    };
    let hold: Option<WalkCondition> = settings.hold_condition((1, 28, 28));
    let held_mask = hold.as_ref().expect("a condition").mask.clone();
    assert!(matches!(
        hold.as_ref().map(|c| &c.image),
        Some(CondImage::TestDigitsFrom(10))
    ));
    worker.handle(WorkerCommand::Nebula(NebulaCommand::Start {
        cfg: settings.config(0.1),
        source: NebulaSource::Uniform,
        model: None,
        hold,
    }));
    for _ in 0..20 {
        if !worker.tick() {
            break;
        }
    }
    let frame = worker
        .take_frames()
        .into_iter()
        .filter_map(|f| match f {
            Frame::Nebula(n) => Some(n),
            _ => None,
        })
        .last()
        .expect("a flow frame");
    assert!(frame.step > 0);
    let test = walkjump::data::Dataset::bundled()
        .expect("digits")
        .split(walkjump::data::Split::Test);
    for (k, img) in frame.images.iter().enumerate() {
        let x = test.image(10 + k).expect("digit");
        for (p, _) in held_mask.iter().enumerate().filter(|(_, h)| **h) {
            assert_eq!(img[p], x[p], "start {k} pixel {p}");
        }
    }
}

/// An `.onnx` file with its metadata opens directly; one without asks for role, sigma and shape in a small window,
/// then opens with what was typed (a bad sigma is refused in the window).
#[test]
fn onnx_models_open_and_a_bare_one_asks_what_it_is() {
    let dir = temp_dir("app-onnx");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/unet_denoiser.onnx");
    let bytes = std::fs::read(&fixture).expect("fixture");
    let mut m = walkjump::onnx::parse(&bytes).expect("parse");
    m.metadata_props.clear();
    let bare = dir.join("bare.onnx");
    std::fs::write(&bare, prost::Message::encode_to_vec(&m)).expect("write");

    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&fixture);
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    assert_eq!(h.state().current(), Some(fixture.as_path()));
    h.get_by_label("model: unet_denoiser (mdae, sigma 0.5)");

    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(bare.clone())));
    h.run();
    pump(&mut h, &mut worker, 0);
    assert_eq!(h.state().onnx_question(), Some(bare.as_path()));
    assert!(h.state().banner().is_none(), "asks instead of failing");
    h.get_by_label("Open ONNX model");
    h.get_by_label("score").click();
    h.run();
    // A bad sigma stays in the window with a message.
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "sigma")
        .click();
    h.run();
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "sigma")
        .type_text("x");
    h.run();
    h.get_by_label("Open").click();
    h.run();
    h.get_by_label_contains("is not a positive number");
    assert_eq!(h.state().onnx_question(), Some(bare.as_path()));
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "sigma")
        .set_text_value_accesskit("1.0");
    h.run();
    h.get_by_label("Open").click();
    h.run();
    let sent = pump(&mut h, &mut worker, 0);
    assert!(
        matches!(&sent[..], [WorkerCommand::LoadOnnx { path, onnx }]
            if path == &bare && onnx.role == Some(walkjump::onnx::Role::Score) && onnx.sigma == Some(1.0)),
        "{sent:?}"
    );
    assert!(h.state().onnx_question().is_none());
    assert_eq!(h.state().current(), Some(bare.as_path()));
    h.get_by_label("model: bare (mdae, sigma 1)");
}

/// A colour 3x32x32 ONNX energy walks in the app; its jumps are 3-plane tiles and the exported grid is an RGB PNG.
#[test]
fn colour_onnx_model_walks_and_exports_in_colour() {
    let colour =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/colour_energy.onnx");
    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&colour);
    app.settings.walk.chains = 4;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.get_by_label("model: colour_energy (deen, sigma 0.3)");
    h.get_by_label("Step").click();
    h.run();
    pump(&mut h, &mut worker, 200);
    let f = h.state().walk_frame().expect("a frame").clone();
    assert_eq!(f.image_hw, (32, 32));
    assert_eq!(f.jumps.len(), 4);
    assert!(f.jumps.iter().all(|t| t.len() == 3 * 32 * 32));
    let out = temp_dir("app-colour");
    let png = out.join("jumps.png");
    h.state_mut()
        .export_to(SaveKind::JumpGrid, &png)
        .expect("png");
    let img = image::open(&png).expect("decode");
    assert_eq!(img.color(), image::ColorType::Rgb8);
}

/// Images from a file go through a model of their shape in the Denoise workspace: a colour `.npy` dropped on the
/// window while Denoise shows is read with the shape it declares, the colour ONNX energy gets a column of
/// three-plane tiles, and a file that is not an image array gives a one-line banner and keeps the last comparison.
#[test]
fn denoise_takes_colour_images_from_a_dropped_file() {
    let colour =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/colour_energy.onnx");
    let dir = temp_dir("app-denoise-colour");
    let (n, c, hh, ww) = (5usize, 3usize, 32usize, 32usize);
    let pixels: Vec<u8> = (0..n * c * hh * ww).map(|i| (i * 37 % 251) as u8).collect();
    let file = dir.join("colour.npy");
    write_u8_npy(&file, &format!("({n}, {c}, {hh}, {ww})"), &pixels);

    let mut worker = Worker::new(candle_core::Device::Cpu);
    let mut app = App::new_for_test();
    app.open_path(&colour);
    app.settings.tab = walkjump::app::Tab::Denoise;
    app.settings.denoise.count = 3;
    let mut h = harness(app);
    pump(&mut h, &mut worker, 0);
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(file.clone())));
    h.run();
    let sent = pump(&mut h, &mut worker, 0);
    assert!(
        sent.iter()
            .any(|s| matches!(s, WorkerCommand::DenoiseImages(p) if p == &file)),
        "{sent:?}"
    );
    assert!(h.state().banner().is_none(), "{:?}", h.state().banner());
    let f = h.state().denoise_frame().expect("a comparison").clone();
    assert_eq!(f.image_hw, (32, 32));
    assert_eq!(f.clean.len(), 3);
    assert!(f.clean.iter().all(|t| t.len() == c * hh * ww));
    let col = f
        .columns
        .iter()
        .find(|col| col.label.contains("colour_energy"))
        .expect("a column for the colour model");
    assert!(col.outputs.iter().all(|t| t.len() == c * hh * ww));
    assert!(
        h.state().settings.denoise.file,
        "the digits choice shows the file"
    );

    // Not an image array: one line, and the comparison stays.
    let bad = dir.join("bad.npy");
    std::fs::write(&bad, b"\x93NUMPY\x01\x00\x10\x00{'descr': 'x'}  \n").expect("write bad");
    h.input_mut().dropped_files.push(Arc::new(Dropped(bad)));
    h.run();
    pump(&mut h, &mut worker, 0);
    let banner = h.state().banner().expect("a banner").to_string();
    assert!(!banner.contains('\n'), "{banner}");
    assert!(h.state().denoise_frame().is_some());
}

// ---- the workspace registry --------------------------------------------------------------------------------------

/// Every workspace of the `workspaces!` registry (`src/app/mod.rs`) has its tab, in the registry's order, and
/// clicking it opens it; its `--tab` name finds it in any case; the settings round-trip with it open.
#[test]
fn every_registered_workspace_has_a_tab_and_round_trips_its_settings() {
    use walkjump::app::{Settings, Tab};
    let labels: Vec<&str> = Tab::ALL.iter().map(|t| t.label()).collect();
    assert_eq!(
        labels,
        ["Walk-Jump", "NEBULA", "Denoise", "2D Lab", "Models"]
    );
    let mut h = harness(App::new_for_test());
    h.run();
    for &t in Tab::ALL.iter().rev() {
        assert_eq!(Tab::from_name(t.name()), Some(t));
        assert_eq!(
            Tab::from_name(&format!(" {} ", t.name().to_uppercase())),
            Some(t)
        );
        // The tab bar is drawn before the workspace, so its button comes first.
        h.get_all_by_label(t.label())
            .next()
            .expect("a tab for every workspace")
            .click();
        // Some workspaces animate (Models' spinner while chi is computed): a few frames, not until still.
        h.run_steps(3);
        assert_eq!(h.state().settings.tab, t, "{}", t.label());
        let s = Settings {
            tab: t,
            dark: false,
            ..Default::default()
        };
        let text = serde_json::to_string(&s).expect("json");
        assert!(text.contains(&format!("\"tab\":\"{t:?}\"")), "{text}");
        assert_eq!(Settings::from_json(&text), (s, None));
    }
    assert_eq!(Tab::from_name("walk"), Some(Tab::WalkJump));
    assert_eq!(Tab::from_name("2d-lab"), Some(Tab::Lab));
    assert_eq!(Tab::from_name("nowhere"), None);
    assert_eq!(
        walkjump::app::workspace::tab_help(),
        "Workspace to open: walk-jump, nebula, denoise, lab or models. With --autostart its main action starts \
         (chains, a flow, the denoising comparison, the 2D Lab's particles)"
    );
}
