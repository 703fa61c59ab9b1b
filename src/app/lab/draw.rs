//! The 2D Lab's views: the shader-drawn density with its colour scale, contours, score arrows and i-spheres, the
//! particles with their jumps and trails, the histograms against the exact density, and the M-density of seed 002
//! Fig. 1; mouse edits of the mixture are read here and recorded as [`LabAction`]s.

use egui::{Align2, Color32, FontId, Pos2, Rect, RichText, Sense, Shape, Stroke, Ui, Vec2};
use egui_plot::{Bar, BarChart, Legend, Line, Plot};

use super::{LabAction, LabSettings, LabState, density};
use crate::app::widgets::format_param;
use crate::lab::field::Field2;
use crate::lab::particles::ParticleSet;
use crate::lab::spheres;

/// Particles whose jump line `y -> x_hat(y)` is drawn (jump points are drawn for all).
const JUMP_LINES: usize = 150;

/// Particles whose jump point is drawn (the jumps cost one score evaluation each per frame).
const JUMP_POINTS: usize = 3000;

/// View ids of the shader callbacks.
const VIEW_A: u64 = 1;
const VIEW_B: u64 = 2;
const VIEW_M: u64 = 3;

/// Maps between world coordinates (y up) and screen points inside `rect`.
#[derive(Clone, Copy)]
struct Frame2 {
    rect: Rect,
    world: [f64; 4],
}

impl Frame2 {
    fn to_screen(self, p: [f64; 2]) -> Pos2 {
        let [x0, x1, y0, y1] = self.world;
        let u = ((p[0] - x0) / (x1 - x0)) as f32;
        let v = ((y1 - p[1]) / (y1 - y0)) as f32;
        Pos2::new(
            self.rect.min.x + u * self.rect.width(),
            self.rect.min.y + v * self.rect.height(),
        )
    }

    fn to_world(self, p: Pos2) -> [f64; 2] {
        let [x0, x1, y0, y1] = self.world;
        let u = f64::from((p.x - self.rect.min.x) / self.rect.width());
        let v = f64::from((p.y - self.rect.min.y) / self.rect.height());
        [x0 + u * (x1 - x0), y1 - v * (y1 - y0)]
    }

    /// Screen points per world unit.
    fn scale(&self) -> f32 {
        self.rect.width() / (self.world[1] - self.world[0]) as f32
    }
}

/// The shader parameters of a view; `moving` (the field changed in the last frames) halves the resolution.
fn density_params(
    field: &Field2,
    world: [f64; 4],
    top: f64,
    settings: &LabSettings,
    moving: bool,
) -> density::DensityParams {
    let mut p = density::DensityParams::new(field, world, top);
    p.resolution = if moving { 0.5 } else { 1.0 };
    p.contours = if settings.contours { 1.0 } else { 0.0 };
    p.log_decades = if settings.log_scale { 4.0 } else { 0.0 };
    p
}

/// The colour scale beside a view: `top` at the top, 0 (or `top / 10^4`) at the bottom.
fn legend(ui: &Ui, rect: Rect, top: f64, log: bool) {
    let painter = ui.painter();
    let n = 48;
    let mut mesh = egui::Mesh::default();
    for i in 0..n {
        let t0 = i as f32 / n as f32;
        let y0 = rect.max.y - t0 * rect.height();
        let y1 = rect.max.y - (i + 1) as f32 / n as f32 * rect.height();
        mesh.add_colored_rect(
            Rect::from_min_max(Pos2::new(rect.min.x, y1), Pos2::new(rect.max.x, y0)),
            density::colormap(t0 + 0.5 / n as f32),
        );
    }
    painter.add(Shape::mesh(mesh));
    painter.rect_stroke(
        rect,
        0.0,
        Stroke::new(1.0, Color32::GRAY),
        egui::StrokeKind::Outside,
    );
    let text = ui.visuals().text_color();
    for k in 0..=4 {
        let t = k as f64 / 4.0;
        let v = if log {
            top * 10f64.powf(4.0 * (t - 1.0))
        } else {
            top * t
        };
        let y = rect.max.y - t as f32 * rect.height();
        painter.text(
            Pos2::new(rect.max.x + 4.0, y),
            Align2::LEFT_CENTER,
            format!("{v:.2e}"),
            FontId::monospace(10.0),
            text,
        );
    }
    painter.text(
        Pos2::new(rect.min.x, rect.min.y - 6.0),
        Align2::LEFT_BOTTOM,
        "p(y)",
        FontId::proportional(11.0),
        text,
    );
}

/// Score arrows on a 21 x 21 grid, length proportional to |score| (capped at 0.9 cell).
fn score_arrows(painter: &egui::Painter, f: &Frame2, field: &Field2) {
    let n = 21;
    let [x0, x1, y0, y1] = f.world;
    let cell = (x1 - x0) / n as f64;
    let stroke = Stroke::new(1.0, Color32::from_white_alpha(150));
    for j in 0..n {
        for i in 0..n {
            let y = [
                x0 + cell * (i as f64 + 0.5),
                y0 + (y1 - y0) / n as f64 * (j as f64 + 0.5),
            ];
            let s = field.score(y);
            if !(s[0].is_finite() && s[1].is_finite()) {
                continue;
            }
            // World length: 0.25 |score| sigma^2-free, capped so arrows never cross a cell.
            let norm = s[0].hypot(s[1]);
            let len = (0.15 * norm).min(0.9 * cell);
            if norm <= 0.0 || len < 1e-3 * cell {
                continue;
            }
            let d = [s[0] / norm * len, s[1] / norm * len];
            let a = f.to_screen(y);
            let b = f.to_screen([y[0] + d[0], y[1] + d[1]]);
            painter.arrow(a, b - a, stroke);
        }
    }
}

/// Draws one density view with everything on it; returns its response for the mixture editing.
#[allow(clippy::too_many_arguments)]
fn density_panel(
    ui: &mut Ui,
    side: f32,
    id: u64,
    title: &str,
    settings: &LabSettings,
    state: &LabState,
    set: Option<&ParticleSet>,
    colour: Color32,
) -> Option<(egui::Response, Frame2)> {
    let field = state.field.as_ref()?;
    ui.vertical(|ui| {
        ui.label(RichText::new(title).strong());
        let (outer, resp) =
            ui.allocate_exact_size(Vec2::new(side + 70.0, side), Sense::click_and_drag());
        // An accessible name, so screen readers (and tests) can find the view.
        let name = format!("density {}", &title[..1]);
        ui.ctx()
            .accesskit_node_builder(resp.id, |node| node.set_label(name));
        let rect = Rect::from_min_size(outer.min, Vec2::splat(side));
        let f = Frame2 {
            rect,
            world: settings.world(),
        };
        let painter = ui.painter_at(outer.expand(20.0));
        density::paint(
            &painter,
            rect,
            id,
            density_params(field, f.world, state.peak, settings, state.streak[0] >= 2),
        );
        legend(
            ui,
            Rect::from_min_size(
                Pos2::new(rect.max.x + 8.0, rect.min.y + 14.0),
                Vec2::new(12.0, side - 28.0),
            ),
            state.peak,
            settings.log_scale,
        );
        let painter = ui.painter_at(rect);
        if settings.arrows {
            score_arrows(&painter, &f, field);
        }
        if settings.spheres {
            let radius = if settings.sphere_radius_sigma {
                settings.sigma
            } else {
                spheres::sphere_radius(settings.sigma, 2)
            };
            let r = radius as f32 * f.scale();
            let overlapping: std::collections::HashSet<usize> = state
                .overlap
                .iter()
                .flat_map(|o| o.overlapping.iter().flat_map(|&(i, j)| [i, j]))
                .collect();
            if let Some(o) = &state.overlap {
                for &(i, j) in &o.overlapping {
                    if let (Some(a), Some(b)) =
                        (settings.scene.means.get(i), settings.scene.means.get(j))
                    {
                        painter.line_segment(
                            [f.to_screen(*a), f.to_screen(*b)],
                            Stroke::new(1.0, Color32::from_rgba_unmultiplied(255, 90, 70, 120)),
                        );
                    }
                }
            }
            for (k, m) in settings.scene.means.iter().enumerate() {
                let c = if overlapping.contains(&k) {
                    Color32::from_rgb(255, 60, 60)
                } else {
                    Color32::from_rgb(0, 230, 255)
                };
                // Dashed, so the i-spheres stand apart from the (solid) contour lines.
                let centre = f.to_screen(*m);
                let ring: Vec<Pos2> = (0..=72)
                    .map(|i| {
                        let a = i as f32 / 72.0 * std::f32::consts::TAU;
                        centre + r * Vec2::angled(a)
                    })
                    .collect();
                painter.extend(Shape::dashed_line(&ring, Stroke::new(2.0, c), 6.0, 4.0));
            }
        }
        if let Some(set) = set {
            particles(&painter, &f, field, set, settings, colour);
        }
        for (k, m) in settings.scene.means.iter().enumerate() {
            let p = f.to_screen(*m);
            let hot = state.dragging == Some(k);
            painter.circle(
                p,
                if hot { 6.0 } else { 4.5 },
                Color32::WHITE,
                Stroke::new(1.5, Color32::BLACK),
            );
        }
        Some((resp, f))
    })
    .inner
}

fn particles(
    painter: &egui::Painter,
    f: &Frame2,
    field: &Field2,
    set: &ParticleSet,
    settings: &LabSettings,
    colour: Color32,
) {
    if settings.trails {
        for (i, t) in set.trails().iter().enumerate() {
            if t.len() > 1 && set.is_alive(i) {
                let pts: Vec<Pos2> = t.iter().map(|p| f.to_screen(*p)).collect();
                painter.add(Shape::line(
                    pts,
                    Stroke::new(1.0, Color32::from_rgba_unmultiplied(255, 255, 255, 110)),
                ));
            }
        }
    }
    let mut mesh = egui::Mesh::default();
    let clip = painter.clip_rect();
    for y in set.live_positions() {
        let p = f.to_screen(y);
        if clip.contains(p) {
            mesh.add_colored_rect(Rect::from_center_size(p, Vec2::splat(2.5)), colour);
        }
    }
    painter.add(Shape::mesh(mesh));
    if settings.jumps {
        let jump_colour = Color32::from_rgb(255, 60, 40);
        let mut mesh = egui::Mesh::default();
        for (i, y) in set.live_positions().take(JUMP_POINTS).enumerate() {
            let x = field.jump(y);
            let (py, px) = (f.to_screen(y), f.to_screen(x));
            if i < JUMP_LINES {
                painter.line_segment(
                    [py, px],
                    Stroke::new(0.8, Color32::from_rgba_unmultiplied(255, 120, 90, 110)),
                );
            }
            if clip.contains(px) {
                mesh.add_colored_rect(Rect::from_center_size(px, Vec2::splat(2.0)), jump_colour);
            }
        }
        painter.add(Shape::mesh(mesh));
    }
}

fn hover_readout(resp: &egui::Response, f: &Frame2, field: &Field2) -> Option<String> {
    let pos = resp.hover_pos()?;
    if !f.rect.contains(pos) {
        return None;
    }
    let y = f.to_world(pos);
    let (lp, s) = field.log_density_and_score(y);
    let x = field.jump_from_score(y, s);
    Some(format!(
        "y = ({:.3}, {:.3})   p(y) = {:.4e}   score = ({:.3}, {:.3})   x_hat(y) = ({:.3}, {:.3})",
        y[0],
        y[1],
        lp.exp(),
        s[0],
        s[1],
        x[0],
        x[1]
    ))
}

pub(super) fn particles_view(
    ui: &mut Ui,
    settings: &LabSettings,
    state: &mut LabState,
    actions: &mut Vec<LabAction>,
) {
    let Some(field) = state.field.clone() else {
        ui.label("the mixture is invalid; load a preset");
        return;
    };
    let panels = if settings.ab && state.b.is_some() {
        2
    } else {
        1
    };
    let avail = ui.available_size();
    let side = ((avail.x - 90.0 * panels as f32) / panels as f32)
        .min(avail.y - 260.0)
        .clamp(160.0, 1400.0);
    state.view_side = side;
    let mut hover = None;
    ui.horizontal(|ui| {
        let sets = [
            (
                state.a.as_ref(),
                VIEW_A,
                Color32::from_rgb(250, 250, 250),
                settings.a,
            ),
            (
                state.b.as_ref(),
                VIEW_B,
                Color32::from_rgb(255, 220, 120),
                settings.b,
            ),
        ];
        for (idx, (set, id, colour, s)) in sets.into_iter().enumerate().take(panels) {
            let title = format!(
                "{} {}: delta {}{}",
                if idx == 0 { "A" } else { "B" },
                s.kind.label(),
                format_param(s.delta),
                s.sampler()
                    .gamma_u()
                    .map(|(g, u)| format!(", gamma {}, u {}", format_param(g), format_param(u)))
                    .unwrap_or_default()
            );
            let Some((resp, f)) = density_panel(ui, side, id, &title, settings, state, set, colour)
            else {
                continue;
            };
            if let Some(h) = hover_readout(&resp, &f, &field) {
                hover = Some(h);
            }
            edit_mixture(&resp, &f, settings, state, actions);
        }
    });
    state.hover = hover;
    ui.label(
        RichText::new(
            state
                .hover
                .clone()
                .unwrap_or_else(|| "hover the density for y, p(y), score and x_hat(y)".into()),
        )
        .monospace(),
    );
    histograms(ui, settings, state, &field);
}

fn edit_mixture(
    resp: &egui::Response,
    f: &Frame2,
    settings: &LabSettings,
    state: &LabState,
    actions: &mut Vec<LabAction>,
) {
    let grab = 12.0 / f.scale() as f64;
    if resp.drag_started()
        && let Some(pos) = resp.ctx.input(|i| i.pointer.press_origin())
        && let Some(k) = settings.scene.nearest(f.to_world(pos), grab)
    {
        actions.push(LabAction::Grab(k));
    }
    if resp.dragged()
        && state.dragging.is_some()
        && let Some(pos) = resp.interact_pointer_pos()
    {
        actions.push(LabAction::DragTo(
            f.to_world(pos.clamp(f.rect.min, f.rect.max)),
        ));
    }
    if resp.drag_stopped() {
        actions.push(LabAction::Release);
    }
    if let Some(pos) = resp.interact_pointer_pos()
        && f.rect.contains(pos)
    {
        let at = f.to_world(pos);
        let near = settings.scene.nearest(at, grab);
        if resp.clicked() && settings.click_adds && near.is_none() {
            actions.push(LabAction::Add(at));
        }
        if resp.secondary_clicked()
            && let Some(k) = near
        {
            actions.push(LabAction::Remove(k));
        }
    }
}

fn histograms(ui: &mut Ui, settings: &LabSettings, state: &LabState, field: &Field2) {
    let [lo, hi, _, _] = settings.world();
    let bins = 60;
    let w = (hi - lo) / bins as f64;
    let exact: Vec<[f64; 2]> = (0..=400)
        .map(|i| {
            let t = lo + (hi - lo) * i as f64 / 400.0;
            [t, field.marginal_density(0, t)]
        })
        .collect();
    let mut tv_line = String::new();
    for (name, tv) in ["A", "B"].iter().zip(&state.tv) {
        if let Some(tv) = tv {
            tv_line.push_str(&format!(
                "TV({name}) = {:.3} (sampling noise alone ~ {:.3})   ",
                tv.tv, tv.noise_floor
            ));
        }
    }
    ui.horizontal(|ui| {
        ui.label(RichText::new("histogram of y1 against the exact marginal of Y").strong());
        if !tv_line.is_empty() {
            ui.label(tv_line).on_hover_text(
                "total variation between the particles' 24x24 histogram over the view and the exact bin \
                 probabilities; well above the noise level means the walk is biased (e.g. a large delta)",
            );
        }
    });
    Plot::new("lab_marginal")
        .height(ui.available_height().clamp(120.0, 260.0))
        .legend(Legend::default())
        .include_y(0.0)
        .x_axis_label("y1")
        .show(ui, |p| {
            let sets = [
                (state.a.as_ref(), "A", Color32::from_rgb(120, 170, 255)),
                (state.b.as_ref(), "B", Color32::from_rgb(255, 190, 80)),
            ];
            for (set, name, colour) in sets {
                if let Some(set) = set {
                    let h = set.marginal_histogram(0, lo, hi, bins);
                    let bars = h
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| Bar::new(lo + w * (i as f64 + 0.5), d).width(w))
                        .collect();
                    p.bar_chart(
                        BarChart::new(format!("particles {name}"), bars)
                            .color(colour.gamma_multiply(0.7)),
                    );
                }
            }
            p.line(
                Line::new("exact p(y1)", exact)
                    .color(Color32::from_rgb(240, 240, 240))
                    .width(2.0),
            );
        });
}

pub(super) fn m_density_view(ui: &mut Ui, settings: &LabSettings, state: &mut LabState) {
    let Some((sigma, field, top)) = state.m_field.clone() else {
        ui.label("the M-density could not be built");
        return;
    };
    ui.label(RichText::new(format!(
        "M-density (seed 002 Fig. 1): a 1D mixture X seen through two measurements Y_m = X + N(0, sigma^2), sigma = {}",
        format_param(sigma)
    )).strong());
    let avail = ui.available_size();
    let side = (avail.x - 420.0).min(avail.y - 60.0).clamp(160.0, 1400.0);
    let world = [-5.0, 5.0, -5.0, 5.0];
    let mut hover = None;
    ui.horizontal(|ui| {
        let (outer, resp) = ui.allocate_exact_size(Vec2::new(side + 70.0, side), Sense::hover());
        ui.ctx()
            .accesskit_node_builder(resp.id, |node| node.set_label("M-density"));
        let rect = Rect::from_min_size(outer.min, Vec2::splat(side));
        let f = Frame2 { rect, world };
        let painter = ui.painter_at(outer.expand(20.0));
        density::paint(
            &painter,
            rect,
            VIEW_M,
            density_params(&field, world, top, settings, state.streak[1] >= 2),
        );
        legend(ui, Rect::from_min_size(Pos2::new(rect.max.x + 8.0, rect.min.y + 14.0), Vec2::new(12.0, side - 28.0)), top, settings.log_scale);
        let painter = ui.painter_at(rect);
        // The diagonal y1 = y2, where x (x) M lives and every jump lands; the density is symmetric about it.
        painter.line_segment(
            [f.to_screen([-5.0, -5.0]), f.to_screen([5.0, 5.0])],
            Stroke::new(1.0, Color32::from_white_alpha(140)),
        );
        if settings.arrows {
            score_arrows(&painter, &f, &field);
        }
        painter.text(rect.left_top() + Vec2::new(6.0, 4.0), Align2::LEFT_TOP, "y2", FontId::proportional(12.0), Color32::WHITE);
        painter.text(rect.right_bottom() - Vec2::new(6.0, 4.0), Align2::RIGHT_BOTTOM, "y1", FontId::proportional(12.0), Color32::WHITE);
        if let Some(pos) = resp.hover_pos()
            && rect.contains(pos)
        {
            let y = f.to_world(pos);
            let x = field.jump(y);
            painter.line_segment([pos, f.to_screen(x)], Stroke::new(1.5, Color32::from_rgb(255, 90, 60)));
            painter.circle_filled(f.to_screen(x), 4.0, Color32::from_rgb(255, 90, 60));
            hover = hover_readout(&resp, &f, &field);
        }
        ui.vertical(|ui| {
            ui.label("the clean density p(x) and one channel's p(y1)");
            let mix = field.mixture();
            let clean: Vec<[f64; 2]> = (0..=400)
                .map(|i| {
                    let t = -5.0 + 10.0 * i as f64 / 400.0;
                    let p: f64 = mix
                        .weights()
                        .iter()
                        .zip(mix.means())
                        .zip(mix.stds())
                        .map(|((w, m), s)| {
                            w * (-(t - m) * (t - m) / (2.0 * s * s)).exp()
                                / (2.0 * std::f64::consts::PI * s * s).sqrt()
                        })
                        .sum();
                    [t, p]
                })
                .collect();
            let noisy: Vec<[f64; 2]> = (0..=400)
                .map(|i| {
                    let t = -5.0 + 10.0 * i as f64 / 400.0;
                    [t, field.marginal_density(0, t)]
                })
                .collect();
            Plot::new("lab_m_clean")
                .width(320.0)
                .height(220.0)
                .legend(Legend::default())
                .include_y(0.0)
                .show(ui, |p| {
                    p.line(Line::new("p(x)", clean).width(2.0));
                    p.line(Line::new("p(y1)", noisy).width(2.0));
                });
            ui.label(RichText::new("Hover the heatmap: the red line is the jump from (y1, y2) to (x_hat, x_hat) on the diagonal.").weak());
        });
    });
    state.hover = hover;
    ui.label(
        RichText::new(
            state
                .hover
                .clone()
                .unwrap_or_else(|| "hover the density for y, p(y), score and x_hat(y)".into()),
        )
        .monospace(),
    );
}
