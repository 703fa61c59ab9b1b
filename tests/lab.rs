//! The 2D Lab workspace: the WGSL density against the CPU density (offscreen wgpu render, read back), a snapshot of
//! the workspace, and kittest tests of its controls (presets, counts, i-sphere verdicts, adding and dragging
//! components, A/B particles). GPU tests need a wgpu adapter (Mesa lavapipe or llvmpipe in CI): without one they
//! print a message and pass; `WALKJUMP_SKIP_SNAPSHOTS=1` skips them as in `tests/app.rs`.
#![cfg(feature = "gui")]

use eframe::egui;
use eframe::egui_wgpu;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use walkjump::app::lab::density::{DensityParams, DensityPipeline, render_raw};
use walkjump::app::{App, Tab};
use walkjump::lab::field::Field2;
use walkjump::lab::scene::{LabPreset, Scene, fig1_mixture};
use walkjump::models::mixture::GaussianMixture;

fn snapshots_enabled() -> bool {
    std::env::var("WALKJUMP_SKIP_SNAPSHOTS").map_or(true, |v| v != "1")
}

/// A headless wgpu render state preferring software rasterisers, or `None` (with the reason printed) when this
/// machine has no adapter.
fn render_state() -> Option<egui_wgpu::RenderState> {
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        egui_kittest::wgpu::create_render_state(
            egui_kittest::wgpu::default_wgpu_setup(),
            egui_wgpu::RendererOptions::PREDICTABLE,
        )
    }));
    match made {
        Ok(rs) => {
            let info = rs.adapter.get_info();
            eprintln!("wgpu adapter: {} ({:?})", info.name, info.backend);
            Some(rs)
        }
        Err(_) => {
            eprintln!("no wgpu adapter on this machine: GPU test skipped");
            None
        }
    }
}

fn lab_app() -> App {
    let mut app = App::new_for_test();
    app.settings.tab = Tab::Lab;
    app
}

fn harness(app: App) -> Harness<'static, App> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 900.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app)
}

// ---- the shader against the CPU --------------------------------------------------------------------------------

/// Relative tolerance on p(y) and absolute tolerance on log p(y) between the f32 shader and the f64 CPU density.
/// The shader evaluates the quadratic forms in f32 (about 1e-7 relative), so exponents of a few hundred carry errors
/// near 1e-5, and Vulkan allows exp an error of (3 + 2|x|) ulp; lavapipe's worst case here is about 3e-5.
const REL_TOL: f64 = 1e-4;
const LOG_TOL: f64 = 1e-4;

#[test]
fn shader_density_equals_the_cpu_density_at_sampled_pixels() {
    if !snapshots_enabled() {
        eprintln!("WALKJUMP_SKIP_SNAPSHOTS=1: GPU test skipped");
        return;
    }
    let Some(rs) = render_state() else {
        return;
    };
    let scene_field = |p: LabPreset, sigma: f64| {
        Field2::new(Scene::preset(p).mixture(sigma).expect("mixture")).expect("field")
    };
    // A crowded scene: all 256 uniform slots in use, unequal weights and widths.
    let mut crowded = Scene::preset(LabPreset::Grid);
    for k in 0..240 {
        let a = k as f64 * 0.37;
        crowded
            .add(
                [3.5 * a.cos() * (k as f64 / 240.0), 3.5 * a.sin()],
                0.05 + 0.002 * k as f64,
                1.0 + (k % 7) as f64,
            )
            .expect("room");
    }
    let cases = [
        (
            "two Gaussians, sigma 1",
            Field2::new(GaussianMixture::two_gaussians()).expect("two"),
            [-5.0, 5.0, -5.0, 5.0],
        ),
        (
            "ring, sigma 0.3",
            scene_field(LabPreset::Ring, 0.3),
            [-5.0, 5.0, -5.0, 5.0],
        ),
        (
            "grid, sigma 0.1",
            scene_field(LabPreset::Grid, 0.1),
            [-4.0, 4.0, -3.0, 3.5],
        ),
        (
            "256 components, sigma 0.2",
            Field2::new(crowded.mixture(0.2).expect("crowded")).expect("field"),
            [-5.0, 5.0, -5.0, 5.0],
        ),
        (
            "M-density, sigma 0.5",
            Field2::new(fig1_mixture(0.5).expect("m")).expect("m field"),
            [-5.0, 5.0, -5.0, 5.0],
        ),
        // Point masses at sigma 0.2: far pixels take the shader's far-tail branch (p below 1e-30 of the top).
        (
            "two points, sigma 0.2",
            Field2::new(
                GaussianMixture::from_points(vec![vec![-1.5, 0.0], vec![1.0, 1.0]], vec![0.2])
                    .expect("points"),
            )
            .expect("points field"),
            [-5.0, 5.0, -5.0, 5.0],
        ),
    ];
    let mut tail_pixels = 0;
    let (w, h) = (160u32, 120u32);
    for (name, field, world) in cases {
        let top = field.peak_density();
        let params = DensityParams::new(&field, world, top);
        let texels = render_raw(&rs.device, &rs.queue, &params, w, h).expect("render");
        assert_eq!(texels.len(), (w * h) as usize);
        let (mut worst_rel, mut worst_log, mut compared) = (0.0f64, 0.0f64, 0);
        for j in (0..h).step_by(7) {
            for i in (0..w).step_by(5) {
                let t = texels[(j * w + i) as usize];
                // The pixel centre in world coordinates, as the shader maps it (row 0 at the top).
                let y = [
                    world[0] + (world[1] - world[0]) * (i as f64 + 0.5) / w as f64,
                    world[3] - (world[3] - world[2]) * (j as f64 + 0.5) / h as f64,
                ];
                let span = (world[1] - world[0]).max(world[3] - world[2]);
                assert!(
                    (f64::from(t[2]) - y[0]).abs() < 1e-4 * span
                        && (f64::from(t[3]) - y[1]).abs() < 1e-4 * span,
                    "{name}: pixel ({i}, {j}) maps to ({}, {}), expected {y:?}",
                    t[2],
                    t[3]
                );
                let lp = field.log_density(y);
                let p = lp.exp();
                let (pg, lg) = (f64::from(t[0]), f64::from(t[1]));
                if lp > -80.0 {
                    // Far above f32's smallest normal: compare p relatively and log p absolutely.
                    let rel = (pg - p).abs() / p;
                    let dl = (lg - lp).abs();
                    assert!(
                        rel <= REL_TOL,
                        "{name}: p at {y:?}: shader {pg}, CPU {p} (rel {rel})"
                    );
                    assert!(
                        dl <= LOG_TOL,
                        "{name}: log p at {y:?}: shader {lg}, CPU {lp}"
                    );
                    worst_rel = worst_rel.max(rel);
                    if lp < top.ln() - 69.0 {
                        tail_pixels += 1;
                    }
                    worst_log = worst_log.max(dl);
                    compared += 1;
                } else {
                    assert!(pg < 1e-30, "{name}: p at {y:?} should be ~0, shader {pg}");
                }
            }
        }
        assert!(compared > 20, "{name}: only {compared} pixels compared");
        eprintln!(
            "{name}: {compared} pixels, worst relative error of p {worst_rel:.2e}, of log p {worst_log:.2e}"
        );
    }
    assert!(tail_pixels > 0, "no pixel exercised the far-tail branch");
    eprintln!("{tail_pixels} pixels compared in the far tail");
}

// ---- kittest: controls, labels and counts -----------------------------------------------------------------------

#[test]
fn the_lab_tab_shows_presets_components_and_the_overlap_verdict() {
    let mut h = harness(App::new_for_test());
    h.run();
    h.get_by_label("2D Lab").click();
    h.run();
    h.get_by_label("components: 2");
    h.get_by_label("sigma");
    // Two Gaussians 4 apart in 2D: chi = 4 / (2 sqrt 2) = 1.414 > sigma = 0.5.
    h.get_by_label("i-spheres: no i-spheres overlap (0 of 1 pairs)");
    h.get_by_label("ring of eight").click();
    h.run();
    h.get_by_label("components: 8");
    h.get_by_label("i-spheres: no i-spheres overlap (0 of 28 pairs)");
    // Neighbours on the ring are 2 * 3 sin(pi / 8) = 2.296 apart: chi = 0.812; the next ones chi = 1.5.
    h.state_mut().settings.lab.sigma = 1.0;
    h.run();
    h.get_by_label("i-spheres: 8 of 28 pairs of i-spheres overlap");
    h.state_mut().settings.lab.sigma = 4.5;
    h.run();
    h.get_by_label(
        "i-spheres: all 28 pairs overlap and sigma > 2 sigma_c: every point lies inside every i-sphere",
    );
    h.get_by_label("grid 4x4").click();
    h.run();
    h.get_by_label("components: 16");
    assert!(
        h.state_mut().take_sent().is_empty(),
        "the lab needs no worker"
    );
}

#[test]
fn reset_step_and_ab_particles_follow_the_settings() {
    let mut app = lab_app();
    app.settings.lab.particles = 500;
    app.settings.lab.steps_per_frame = 3;
    let mut h = harness(app);
    h.run();
    h.get_by_label("no particles yet: press Run, Step or Reset");
    h.get_by_label("Reset").click();
    h.run();
    h.get_by_label("particles: 500");
    h.get_by_label("steps: 0");
    h.get_by_label("Step").click();
    h.run();
    h.get_by_label("steps: 3");
    h.get_by_label("A/B: a second sampler side by side (same seed)")
        .click();
    h.run();
    h.get_by_label("delta B");
    h.get_by_label("Reset").click();
    h.run();
    h.get_by_label("particles: 500 (A), 500 (B)");
    h.get_by_label("density A");
    h.get_by_label("density B");
    // Same seed, same starting points.
    let s = h.state();
    let lab = s.lab_state();
    assert_eq!(lab.positions(false), lab.positions(true));
    // Run keeps stepping (a frame at a time) until paused.
    h.get_by_label("Run").click();
    h.step();
    h.step();
    h.step();
    assert!(h.state().lab_state().steps() >= 3);
    h.get_by_label("Pause").click();
    h.step();
    let n = h.state().lab_state().steps();
    h.step();
    assert_eq!(h.state().lab_state().steps(), n);
    // B's delta is 1.0 against A's 0.1 by default: after some steps the two sets differ.
    assert_ne!(
        h.state().lab_state().positions(false),
        h.state().lab_state().positions(true)
    );
}

#[test]
fn a_typed_bad_delta_is_refused() {
    let mut h = harness(lab_app());
    h.run();
    h.get_by_label("delta value").click();
    h.run();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run();
    h.get_by_label("delta value").type_text("-2");
    h.run();
    h.key_press(egui::Key::Enter);
    h.run();
    h.get_by_label("delta must be a positive number, got -2; not applied");
    assert_eq!(h.state().settings.lab.a.delta, 0.1);
}

/// Screen position of a world point inside the view labelled `label` (world window [-5, 5]^2).
fn screen_of(h: &Harness<'static, App>, label: &str, p: [f64; 2]) -> egui::Pos2 {
    let r = h.get_by_label(label).rect();
    let side = r.height();
    egui::pos2(
        r.min.x + ((p[0] + 5.0) / 10.0) as f32 * side,
        r.min.y + ((5.0 - p[1]) / 10.0) as f32 * side,
    )
}

#[test]
fn clicking_adds_dragging_moves_and_right_click_removes_a_component() {
    let mut h = harness(lab_app());
    h.run();
    h.get_by_label("components: 2");
    // A click far from both centres adds a component there.
    let at = screen_of(&h, "density A", [0.0, 3.0]);
    h.hover_at(at);
    h.run();
    h.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    h.run();
    h.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.run();
    h.get_by_label("components: 3");
    let added = h.state().settings.lab.scene.means[2];
    assert!(
        (added[0] - 0.0).abs() < 0.05 && (added[1] - 3.0).abs() < 0.05,
        "{added:?}"
    );
    // Drag the centre at (2, 0) to (1, -2).
    let from = screen_of(&h, "density A", [2.0, 0.0]);
    let to = screen_of(&h, "density A", [1.0, -2.0]);
    h.drag_at(from);
    h.run();
    for k in 1..=8 {
        h.hover_at(from + (to - from) * (k as f32 / 8.0));
        h.run();
    }
    h.drop_at(to);
    h.run();
    h.get_by_label("components: 3");
    let moved = h.state().settings.lab.scene.means[1];
    assert!(
        (moved[0] - 1.0).abs() < 0.05 && (moved[1] + 2.0).abs() < 0.05,
        "{moved:?}"
    );
    // A right click on a centre removes it.
    let c = screen_of(&h, "density A", moved);
    h.get_by_label("density A").hover();
    h.hover_at(c);
    h.run();
    h.event(egui::Event::PointerButton {
        pos: c,
        button: egui::PointerButton::Secondary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    h.event(egui::Event::PointerButton {
        pos: c,
        button: egui::PointerButton::Secondary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.run();
    h.get_by_label("components: 2");
}

#[test]
fn the_m_density_view_opens() {
    let mut h = harness(lab_app());
    h.run();
    h.get_by_label("M-density (M = 2)").click();
    h.run();
    h.get_by_label("M-density");
    h.get_by_label("the clean density p(x) and one channel's p(y1)");
}

#[test]
fn the_help_window_describes_the_lab() {
    let mut h = harness(lab_app());
    h.run();
    h.key_press(egui::Key::F1);
    h.run();
    h.get_by_label_contains("teaching: an analytic 2D mixture");
}

// ---- snapshot ---------------------------------------------------------------------------------------------------

#[test]
fn snapshot_of_the_lab_workspace() {
    if !snapshots_enabled() {
        eprintln!("WALKJUMP_SKIP_SNAPSHOTS=1: snapshot test skipped");
        return;
    }
    let Some(rs) = render_state() else {
        return;
    };
    walkjump::app::lab::density::install(&rs);
    let mut app = lab_app();
    app.settings.lab.scene = Scene::preset(LabPreset::Ring);
    app.settings.lab.sigma = 0.6;
    app.settings.lab.particles = 1000;
    app.settings.lab.steps_per_frame = 40;
    app.settings.lab.ab = true;
    let renders = {
        let rs = rs.clone();
        move || {
            rs.renderer
                .read()
                .callback_resources
                .get::<DensityPipeline>()
                .map_or(0, DensityPipeline::renders)
        }
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 820.0))
        .renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(rs))
        .build_ui_state(|ui, app: &mut App| app.show(ui), app);
    h.run();
    h.get_by_label("Reset").click();
    h.run();
    h.get_by_label("Step").click();
    h.run();
    h.get_by_label("steps: 40");
    // Software rasterisers differ by a few anti-aliased pixels between Mesa versions.
    let opts = egui_kittest::SnapshotOptions::new()
        .threshold(2.0)
        .max_failed_pixels(600);
    h.snapshot_options("lab", &opts);
    // The density is rendered into each view's cache only when it changes: more frames of the same field (particles
    // moving) only copy it; a new sigma renders it again.
    let before = renders();
    assert!(before >= 2, "{before} renders");
    h.get_by_label("Step").click();
    h.run();
    h.render().expect("render");
    assert_eq!(renders(), before, "an unchanged field was rendered again");
    h.get_by_label("M-density (M = 2)").click();
    h.run();
    h.snapshot_options("lab_m_density", &opts);
    let before = renders();
    h.state_mut().settings.lab.sigma = 0.7;
    h.run();
    h.render().expect("render");
    assert_eq!(
        renders(),
        before + 1,
        "a new sigma renders the M-density again"
    );
}

#[test]
fn space_s_and_r_drive_the_lab_particles_in_the_lab_tab() {
    let mut app = lab_app();
    app.settings.lab.particles = 100;
    app.settings.lab.steps_per_frame = 4;
    let mut h = harness(app);
    h.run();
    h.key_press(egui::Key::R);
    h.run();
    h.get_by_label("particles: 100");
    h.key_press(egui::Key::S);
    h.run();
    h.get_by_label("steps: 4");
    h.key_press(egui::Key::Space);
    h.step();
    h.step();
    assert!(h.state().lab_state().running());
    h.key_press(egui::Key::Space);
    h.step();
    assert!(!h.state().lab_state().running());
    assert!(
        h.state_mut().take_sent().is_empty(),
        "no walk command reaches the worker"
    );
}

#[test]
fn damaged_lab_settings_fall_back_to_defaults() {
    let text = r#"{"lab": {"sigma": -1.0, "half_width": 1e300, "particles": 0, "steps_per_frame": 1000000000,
        "a": {"kind": "Sachs", "delta": 0.0, "gamma": 1.0, "u": 1.0},
        "scene": {"means": [[0.0, 0.0]], "stds": [], "weights": [1.0]}}}"#;
    let (s, note) = walkjump::app::Settings::from_json(text);
    let note = note.expect("a note");
    for field in [
        "lab sigma",
        "lab view",
        "lab particles",
        "lab steps per frame",
        "lab sampler A",
        "lab mixture",
    ] {
        assert!(note.contains(field), "{field}: {note}");
    }
    let d = walkjump::app::lab::LabSettings::default();
    assert_eq!(s.lab.sigma, d.sigma);
    assert_eq!(s.lab.scene, d.scene);
    assert_eq!(s.lab.steps_per_frame, d.steps_per_frame);
}
