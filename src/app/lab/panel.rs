//! The 2D Lab's side panel: the view switch, sigma, the density overlays, the mixture's presets and editing
//! options, and each sampler's parameters with Run / Step / Reset. [`show`] lays the panel beside the open view.

use egui::{Color32, RichText, Ui};

use super::draw::{m_density_view, particles_view};
use super::{
    LabAction, LabMode, LabSettings, LabState, MAX_LAB_PARTICLES, ParamTexts, SamplerSettings,
};
use crate::app::walk::PRESETS;
use crate::app::widgets::{ParamEdit, format_param, log_param};
use crate::lab::particles::{ParticleInit, ParticleSet};
use crate::lab::scene::LabPreset;
use crate::lab::stationary::{gaussian_stationary_variance, transition};
use crate::sampling::samplers::SamplerKind;

/// Draws the workspace and applies what it asked for.
pub fn show(ui: &mut Ui, settings: &mut LabSettings, state: &mut LabState) {
    state.tick(settings);
    let mut actions = Vec::new();
    egui::Panel::left("lab_controls")
        .default_size(310.0)
        .resizable(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| controls(ui, settings, state, &mut actions));
        });
    egui::CentralPanel::default().show(ui, |ui| match settings.mode {
        LabMode::Particles => particles_view(ui, settings, state, &mut actions),
        LabMode::MDensity => m_density_view(ui, settings, state),
    });
    state.apply(settings, actions);
    // Running particles animate; a field that just changed gets one more frame to redraw at full resolution.
    if state.running || state.streak.iter().any(|&k| k > 0) {
        ui.ctx().request_repaint();
    }
}

pub(super) fn controls(
    ui: &mut Ui,
    settings: &mut LabSettings,
    state: &mut LabState,
    actions: &mut Vec<LabAction>,
) {
    ui.heading("2D Lab");
    ui.horizontal(|ui| {
        ui.selectable_value(&mut settings.mode, LabMode::Particles, "Particles");
        ui.selectable_value(&mut settings.mode, LabMode::MDensity, "M-density (M = 2)");
    });
    if let ParamEdit::Refused(m) = log_param(
        ui,
        "sigma",
        &mut settings.sigma,
        0.02..=5.0,
        &mut state.sigma_text,
    ) {
        state.message = Some(m);
    }
    ui.label(
        RichText::new("Y = X + N(0, sigma^2 I): the density below is exact for every sigma").weak(),
    );
    if settings.mode == LabMode::Particles {
        ui.separator();
        run_controls(ui, state, actions);
    }
    ui.separator();
    ui.label(RichText::new("density").strong());
    ui.checkbox(&mut settings.contours, "contour lines");
    ui.checkbox(&mut settings.log_scale, "log colour scale (4 decades)");
    ui.checkbox(&mut settings.arrows, "score arrows");
    if settings.mode == LabMode::MDensity {
        if let Some(msg) = &state.message {
            ui.colored_label(Color32::from_rgb(230, 80, 60), msg);
        }
        return;
    }
    ui.separator();
    ui.label(RichText::new("mixture X").strong());
    ui.horizontal_wrapped(|ui| {
        for p in LabPreset::ALL {
            if ui.button(p.label()).clicked() {
                actions.push(LabAction::Preset(p));
            }
        }
    });
    ui.label(format!("components: {}", settings.scene.len()));
    ui.checkbox(&mut settings.click_adds, "click adds a component");
    ui.add(egui::Slider::new(&mut settings.new_std, 0.0..=2.0).text("new component std"));
    ui.add(
        egui::Slider::new(&mut settings.half_width, 1.0..=50.0)
            .logarithmic(true)
            .text("view half-width"),
    )
    .on_hover_text("the view shows [-w, w]^2; uniform starts fill it (at Reset)");
    ui.label(RichText::new("drag a centre to move it; right-click removes it").weak());
    ui.checkbox(&mut settings.spheres, "i-spheres");
    if settings.spheres {
        ui.checkbox(&mut settings.sphere_radius_sigma, "radius sigma (else sigma sqrt(2))")
            .on_hover_text(
                "noise N(0, sigma^2 I) in d = 2 concentrates at radius sigma sqrt(2): circles of that radius touch \
                 exactly when sigma = chi, the overlap rule; circles of radius sigma touch at sigma = sqrt(2) chi",
            );
    }
    if let Some(o) = &state.overlap {
        ui.label(format!("i-spheres: {}", o.verdict()));
        if o.pairs > 0 {
            ui.label(
                RichText::new(format!(
                    "chi min {}, sigma_c {}; overlap when sigma > chi (REFERENCE §8)",
                    format_param(o.chi_min),
                    format_param(o.sigma_c)
                ))
                .weak(),
            );
        }
    }
    ui.separator();
    ui.label(RichText::new("walk").strong());
    sampler_controls(
        ui,
        "A",
        &mut settings.a,
        &mut state.texts[0],
        false,
        settings.sigma,
        actions,
        &mut state.message,
    );
    ui.checkbox(
        &mut settings.ab,
        "A/B: a second sampler side by side (same seed)",
    );
    if settings.ab {
        if state.a.is_some() && state.b.is_none() {
            ui.label(RichText::new("press Reset to start B beside A").italics());
        }
        let sigma = settings.sigma;
        sampler_controls(
            ui,
            "B",
            &mut settings.b,
            &mut state.texts[1],
            true,
            sigma,
            actions,
            &mut state.message,
        );
    }
    ui.horizontal(|ui| {
        let label = ui.label("steps per frame");
        ui.add(egui::DragValue::new(&mut settings.steps_per_frame).range(1..=1000))
            .labelled_by(label.id);
    });
    ui.checkbox(
        &mut settings.jumps,
        "jumps x_hat(y) of the first 3000 (lines for the first 150)",
    );
    ui.checkbox(&mut settings.trails, "trails");
    ui.add(
        egui::Slider::new(&mut settings.trail_len, 2..=2000)
            .logarithmic(true)
            .text("trail length"),
    );
    ui.separator();
    ui.label(RichText::new("taken at Reset").weak());
    ui.add(
        egui::Slider::new(&mut settings.particles, 1..=MAX_LAB_PARTICLES)
            .logarithmic(true)
            .text("particles"),
    );
    egui::ComboBox::from_label("init")
        .selected_text(init_label(settings.init))
        .show_ui(ui, |ui| {
            for i in [ParticleInit::Uniform, ParticleInit::Exact] {
                ui.selectable_value(&mut settings.init, i, init_label(i));
            }
        });
    ui.horizontal(|ui| {
        let label = ui.label("seed");
        ui.add(egui::DragValue::new(&mut settings.seed))
            .labelled_by(label.id);
    });
    if let Some(msg) = &state.message {
        ui.colored_label(Color32::from_rgb(230, 80, 60), msg);
    }
}

/// Run / Step / Reset and what the particles are doing.
fn run_controls(ui: &mut Ui, state: &LabState, actions: &mut Vec<LabAction>) {
    ui.horizontal(|ui| {
        let run = if state.running { "Pause" } else { "Run" };
        if ui.button(run).clicked() {
            actions.push(LabAction::RunPause);
        }
        if ui.button("Step").clicked() {
            actions.push(LabAction::Step);
        }
        if ui.button("Reset").clicked() {
            actions.push(LabAction::Reset);
        }
    });
    if let Some(a) = &state.a {
        ui.label(format!("steps: {}", a.steps()));
        let live = |p: &ParticleSet| p.len() - p.diverged();
        let mut line = format!("particles: {}", live(a));
        if let Some(b) = &state.b {
            line.push_str(&format!(" (A), {} (B)", live(b)));
        }
        ui.label(line);
        let div = a.diverged() + state.b.as_ref().map_or(0, ParticleSet::diverged);
        if div > 0 {
            ui.colored_label(
                Color32::from_rgb(230, 80, 60),
                format!("{div} particles diverged and stopped: lower delta and press Reset"),
            );
        }
        if state.running {
            ui.label(
                RichText::new(format!(
                    "{} steps in {:.1} ms last frame",
                    state.steps_last_frame, state.step_ms
                ))
                .weak(),
            );
        }
    } else {
        ui.label("no particles yet: press Run, Step or Reset");
    }
}

fn init_label(i: ParticleInit) -> &'static str {
    match i {
        ParticleInit::Uniform => "uniform over the view",
        ParticleInit::Exact => "exact draws of Y",
    }
}

#[allow(clippy::too_many_arguments)]
fn sampler_controls(
    ui: &mut Ui,
    name: &str,
    s: &mut SamplerSettings,
    texts: &mut ParamTexts,
    is_b: bool,
    sigma: f64,
    actions: &mut Vec<LabAction>,
    message: &mut Option<String>,
) {
    let suffix = if is_b { " B" } else { "" };
    let mut changed = false;
    egui::ComboBox::from_label(format!("sampler {name}"))
        .selected_text(s.kind.label())
        .show_ui(ui, |ui| {
            for k in SamplerKind::all() {
                changed |= ui
                    .selectable_value(&mut s.kind, k, k.label())
                    .on_hover_text(k.help())
                    .changed();
            }
        });
    let mut edits = vec![log_param(
        ui,
        &format!("delta{suffix}"),
        &mut s.delta,
        1e-3..=5.0,
        &mut texts.delta,
    )];
    if s.kind.underdamped() {
        edits.push(log_param(
            ui,
            &format!("gamma{suffix}"),
            &mut s.gamma,
            1e-2..=100.0,
            &mut texts.gamma,
        ));
        edits.push(log_param(
            ui,
            &format!("u{suffix}"),
            &mut s.u,
            1e-2..=100.0,
            &mut texts.u,
        ));
        ui.label(format!("gamma*delta = {}", format_param(s.gamma * s.delta)));
    }
    for e in edits {
        match e {
            ParamEdit::None => {}
            ParamEdit::Changed => changed = true,
            ParamEdit::Refused(m) => *message = Some(m),
        }
    }
    ui.horizontal_wrapped(|ui| {
        for p in &PRESETS {
            if ui.small_button(p.name).on_hover_text(p.note).clicked() {
                s.set((p.make)(sigma).0);
                *texts = ParamTexts::default();
                changed = true;
            }
        }
    });
    // The bias of the discretised walk, in closed form, on a unit Gaussian.
    let bias = match gaussian_stationary_variance(s.sampler(), 1.0) {
        Some(v) => format!("on N(0, 1) this walk samples variance {}", format_param(v)),
        None if transition(s.sampler(), 1.0).is_none() => {
            "this walk has no closed-form law on N(0, 1)".into()
        }
        None => "on N(0, 1) this walk is unstable: delta too large".into(),
    };
    ui.label(RichText::new(bias).weak());
    if changed {
        actions.push(LabAction::SamplerChanged(is_b));
    }
}
