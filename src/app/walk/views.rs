//! The Walk-Jump workspace's central views: the grid of jumps (and of y) with classes and held regions, the film
//! strip of one chain, traces, R-hat / ESS, quality and classes; side by side for an A/B comparison.

use egui::{Color32, RichText, Ui};
use egui_plot::{Legend, Line, Plot, Points};

use super::condition::HELD;
use super::{HeldMark, WalkSettings, WalkView, reset};
use crate::app::Actions;
use crate::app::messages::{WalkCommand, WalkFrame, WorkerCommand};
use crate::app::widgets::{ImageGrid, format_param};
use crate::sampling::chain::ChainConfig;

/// One line describing a chain configuration's sampler.
fn sampler_line(cfg: &ChainConfig) -> String {
    format!(
        "{} delta {} {} · jump every {}",
        cfg.sampler.name(),
        format_param(cfg.sampler.delta()),
        cfg.sampler
            .gamma_u()
            .map(|(g, u)| format!("gamma {} u {}", format_param(g), format_param(u)))
            .unwrap_or_default(),
        cfg.every
    )
}

/// A grid of jumps with each tile's class written in its corner and the held region (if any) marked; a click
/// follows that chain.
fn jump_grid(
    ui: &mut Ui,
    grid: &ImageGrid,
    f: &WalkFrame,
    width: f32,
    held: Option<&HeldMark<'_>>,
    actions: &mut Actions,
) {
    let classes = f.classes.as_ref();
    let (resp, clicked) = grid.show(ui, width, 5.0);
    if let Some(k) = clicked {
        actions.send(WorkerCommand::Walk(WalkCommand::SelectChain(k)));
    }
    if let (Some(resp), Some(mark)) = (resp.as_ref(), held) {
        mark.draw(ui, grid, resp.rect);
    }
    // Trapped chains: a red frame on the tile, and the reason when the pointer is over it.
    if let (Some(resp), Some(q)) = (resp.as_ref(), f.quality.as_ref()) {
        let painter = ui.painter_at(resp.rect);
        let hover = resp.hover_pos();
        for (k, c) in q.per_chain.iter().enumerate() {
            let (Some(reason), Some(r)) = (c.trapped.as_ref(), grid.tile_rect(resp.rect, k)) else {
                continue;
            };
            painter.rect_stroke(
                r.shrink(1.0),
                0.0,
                egui::Stroke::new(2.0, TRAPPED),
                egui::StrokeKind::Inside,
            );
            if hover.is_some_and(|p| r.contains(p)) {
                resp.clone()
                    .on_hover_text(format!("chain {k} is trapped: {reason}"));
            }
        }
    }
    if let (Some(resp), Some(classes)) = (resp, classes) {
        let painter = ui.painter_at(resp.rect);
        for (k, c) in classes.iter().enumerate() {
            if let Some(r) = grid.tile_rect(resp.rect, k) {
                painter.text(
                    r.left_top() + egui::vec2(2.0, 1.0),
                    egui::Align2::LEFT_TOP,
                    c.to_string(),
                    egui::FontId::monospace(11.0),
                    Color32::from_rgb(255, 200, 0),
                );
            }
        }
    }
}

fn divergence_row(
    ui: &mut Ui,
    side: &str,
    msg: &str,
    settings: &WalkSettings,
    view: &mut WalkView,
    actions: &mut Actions,
) {
    ui.horizontal(|ui| {
        ui.colored_label(
            Color32::from_rgb(230, 80, 60),
            format!("{side}Diverged: {msg}"),
        );
        if ui.button("Reset chains").clicked() {
            reset(settings, view, actions);
        }
    });
}

pub(super) fn views(
    ui: &mut Ui,
    settings: &WalkSettings,
    view: &mut WalkView,
    actions: &mut Actions,
) {
    let Some(f) = view.frame.clone() else {
        ui.label("Press Run (Space) or Step (S) to start the chains.");
        return;
    };
    let side_a = if f.b.is_some() { "A: " } else { "" };
    if let Some(msg) = &f.divergence {
        divergence_row(ui, side_a, msg, settings, view, actions);
    }
    if let Some(msg) = f.b.as_ref().and_then(|b| b.divergence.as_ref()) {
        divergence_row(ui, "B: ", msg, settings, view, actions);
    }
    view.refresh_held_mark(ui.ctx(), f.held.as_ref(), f.image_hw);
    let view: &WalkView = view;
    let mark = view.mark(f.image_hw);
    if let Some(m) = &mark {
        let held = m.mask.iter().filter(|&&b| b).count();
        let observed = f
            .observed
            .as_ref()
            .map(|_| "the observation")
            .unwrap_or("the image");
        ui.label(
            RichText::new(format!(
                "conditioned: {held} of {} pixels held at {observed} (tinted and outlined in orange on every tile)",
                m.mask.len()
            ))
            .color(HELD),
        );
    }
    if let Some(j) = &f.jump_model {
        ui.label(RichText::new(format!("jumps with {j}")).color(HELD));
    }
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("{} chains", f.chains)).strong());
        ui.label(format!(
            "{} running · step {} · jump at step {}",
            f.running_chains, f.step, f.jump_step
        ));
    });
    if let Some(b) = f.b.as_deref() {
        ab_views(ui, &f, b, view, mark.as_ref(), actions);
        return;
    }
    if let Some(cfg) = &f.config {
        ui.label(RichText::new(sampler_line(cfg)).weak());
    }
    let width = ui.available_width();
    // Film strip first, full width, as in the papers: one chain's jumps in reading order.
    ui.label(format!(
        "film strip of chain {} (last {} jumps, oldest first; click a tile below to follow another chain)",
        f.film_chain,
        f.film.len()
    ));
    let (film, _) = view.film.show(ui, width.min(1000.0), 3.0);
    if let (Some(r), Some(m)) = (film, &mark) {
        m.draw(ui, &view.film, r.rect);
    }
    ui.separator();
    let left_w = (width * 0.45).min(560.0);
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.set_width(left_w);
            ui.label("jumps x_hat(y), one tile per chain");
            let grid_w = if settings.show_noisy {
                left_w * 0.49
            } else {
                left_w
            };
            ui.horizontal_top(|ui| {
                jump_grid(ui, &view.jumps, &f, grid_w, mark.as_ref(), actions);
                if settings.show_noisy {
                    view.noisy.show(ui, grid_w, 5.0);
                }
            });
            if settings.show_noisy {
                ui.label("right: the noisy states y (first measurement)");
            }
            ui.separator();
            mixing_row(ui, "mixing", &f);
            quality_row(ui, &f);
            if f.classes.is_some() {
                classes_view(ui, &f);
            }
        });
        ui.vertical(|ui| traces(ui, &f, None));
    });
}

/// A/B layout: both film strips, then the two grids side by side with their mixing statistics, then the traces of
/// both sides on shared axes.
fn ab_views(
    ui: &mut Ui,
    a: &WalkFrame,
    b: &WalkFrame,
    view: &WalkView,
    mark: Option<&HeldMark<'_>>,
    actions: &mut Actions,
) {
    let width = ui.available_width();
    for (side, f, film) in [("A", a, &view.film), ("B", b, &view.film_b)] {
        ui.label(format!(
            "{side}: film strip of chain {} (last {} jumps)",
            f.film_chain,
            f.film.len()
        ));
        let (resp, _) = film.show(ui, width.min(1000.0), 3.0);
        if let (Some(r), Some(m)) = (resp, mark) {
            m.draw(ui, film, r.rect);
        }
    }
    ui.separator();
    let col_w = ((width - 24.0) * 0.5).min(520.0);
    ui.horizontal_top(|ui| {
        for (side, f, grid) in [("A", a, &view.jumps), ("B", b, &view.jumps_b)] {
            ui.vertical(|ui| {
                ui.set_width(col_w);
                ui.label(RichText::new(side).strong());
                if let Some(cfg) = &f.config {
                    ui.label(RichText::new(sampler_line(cfg)).weak());
                }
                ui.label(format!(
                    "{} of {} chains running",
                    f.running_chains, f.chains
                ));
                jump_grid(ui, grid, f, col_w, mark, actions);
                mixing_row(ui, &format!("mixing {side}"), f);
                quality_row(ui, f);
                if f.classes.is_some() {
                    ui.label(format!(
                        "classes visited: chain {}: {} · all chains: {}",
                        f.film_chain, f.classes_visited, f.classes_visited_all
                    ));
                }
            });
        }
    });
    ui.separator();
    traces(ui, a, Some(b));
}

/// Colour of a trapped chain's frame.
const TRAPPED: Color32 = Color32::from_rgb(235, 60, 60);

/// The quality of each chain's recent jumps, judged by the classifier (`walkjump quality` for whole runs).
fn quality_row(ui: &mut Ui, f: &WalkFrame) {
    let Some(q) = &f.quality else {
        return;
    };
    let text = format!(
        "last {} jumps: confident {:.0}% · junk {:.0}% · trapped {} of {}",
        q.jumps_per_chain,
        100.0 * q.confident_share,
        100.0 * q.junk_share,
        q.trapped,
        q.chains
    );
    let hover = "confident: the classifier's top probability >= 0.9; junk: below 0.5 or a pixel outside \
                 [-0.5, 1.5]; trapped (red frame on the tile; hover it for why): diverged, junk in most of its \
                 last half, or jumps that stopped changing";
    if q.trapped > 0 {
        ui.colored_label(TRAPPED, text).on_hover_text(hover);
    } else {
        ui.label(text).on_hover_text(hover);
    }
}

fn classes_view(ui: &mut Ui, f: &WalkFrame) {
    ui.label(format!(
        "classes visited: chain {}: {} · all chains: {}",
        f.film_chain, f.classes_visited, f.classes_visited_all
    ));
    let pts: Vec<[f64; 2]> = f
        .class_timeline
        .iter()
        .enumerate()
        .map(|(i, &c)| [i as f64, c as f64])
        .collect();
    Plot::new("class_timeline")
        .height(110.0)
        .include_y(0.0)
        .include_y(9.0)
        .x_axis_label("jump")
        .y_axis_label("class")
        .show(ui, |p| {
            p.points(Points::new("class", pts).radius(2.0));
        });
}

fn mixing_row(ui: &mut Ui, id: &str, f: &WalkFrame) {
    let show = |m: &Option<crate::run::Mixing>| match m {
        Some(m) => format!("R-hat {:.3}, ESS {:.0} ({} draws)", m.rhat, m.ess, m.draws),
        None => "R-hat / ESS: too few draws".into(),
    };
    egui::Grid::new(id).num_columns(2).show(ui, |ui| {
        ui.label("energy");
        ui.label(show(&f.mixing_energy));
        ui.end_row();
        ui.label("||score||");
        ui.label(show(&f.mixing_score));
        ui.end_row();
    });
}

fn series(x: &[f64], y: &[f64]) -> Vec<[f64; 2]> {
    x.iter()
        .zip(y)
        .filter(|(_, v)| v.is_finite())
        .map(|(&a, &b)| [a, b])
        .collect()
}

/// Energy, ||score||, kinetic temperature and jump range over steps; with `b`, the B side's lines beside A's.
fn traces(ui: &mut Ui, f: &WalkFrame, b: Option<&WalkFrame>) {
    let t = &f.traces;
    let tb = b.map(|b| &b.traces);
    let (ka, kb) = if b.is_some() {
        (" (A)", " (B)")
    } else {
        ("", "")
    };
    let h = 125.0;
    let link = ui.scope_id().with("walk_traces");
    let plot = |name: &str| {
        Plot::new(name.to_string())
            .height(h)
            .link_axis(link, [true, false])
            .legend(Legend::default())
    };
    if t.energy.is_empty() {
        ui.label("energy: this model has none");
    } else {
        plot("trace_energy").show(ui, |p| {
            p.line(Line::new(
                format!("mean energy{ka}"),
                series(&t.step, &t.energy),
            ));
            if let Some(tb) = tb {
                p.line(Line::new(
                    format!("mean energy{kb}"),
                    series(&tb.step, &tb.energy),
                ));
            }
        });
    }
    plot("trace_score").show(ui, |p| {
        p.line(Line::new(
            format!("mean ||score||{ka}"),
            series(&t.step, &t.score),
        ));
        if let Some(tb) = tb {
            p.line(Line::new(
                format!("mean ||score||{kb}"),
                series(&tb.step, &tb.score),
            ));
        }
    });
    if t.kinetic.is_empty() && tb.is_none_or(|tb| tb.kinetic.is_empty()) {
        ui.label("kinetic temperature: underdamped samplers only");
    } else {
        plot("trace_kinetic").show(ui, |p| {
            if !t.kinetic.is_empty() {
                p.line(Line::new(
                    format!("kinetic temperature{ka}"),
                    series(&t.step, &t.kinetic),
                ));
            }
            if let Some(tb) = tb.filter(|tb| !tb.kinetic.is_empty()) {
                p.line(Line::new(
                    format!("kinetic temperature{kb}"),
                    series(&tb.step, &tb.kinetic),
                ));
            }
        });
    }
    plot("trace_range").show(ui, |p| {
        p.line(Line::new(format!("jump min{ka}"), t.jump_min.clone()));
        p.line(Line::new(format!("jump max{ka}"), t.jump_max.clone()));
        if let Some(tb) = tb {
            p.line(Line::new(format!("jump min{kb}"), tb.jump_min.clone()));
            p.line(Line::new(format!("jump max{kb}"), tb.jump_max.clone()));
        }
    });
}
