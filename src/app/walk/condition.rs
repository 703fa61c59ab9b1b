//! Conditional walk-jump in the Walk-Jump workspace: what to hold (a test digit, the drawn digit or a picked jump;
//! a preset or painted region), the worker command that restarts the chains on it, the "jump with" picker, and the
//! mark of the held region drawn over every tile.

use egui::{Color32, RichText, Ui};
use serde::{Deserialize, Serialize};

use super::super::Actions;
use super::super::messages::{CondImage, WalkCommand, WalkCondition, WorkerCommand};
use super::{WalkContext, WalkSettings, WalkView, reset};
use crate::app::widgets::ImageGrid;

/// Where a conditioned walk's observation comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CondSource {
    /// A digit of the bundled test split (by number), the same in every chain.
    TestDigit,
    /// One test digit per chain, from a number on (chain k holds digit number + k).
    TestDigits,
    /// The digit drawn with the mouse (shared with NEBULA and Denoise).
    Drawn,
    /// A jump picked from the grid ("use the followed chain's jump").
    Jump,
    /// Images read from a file (PNG, a PNG folder, `.npy`, IDX), one per chain.
    File,
}

impl CondSource {
    fn label(self) -> &'static str {
        match self {
            CondSource::TestDigit => "a test digit",
            CondSource::TestDigits => "a test digit per chain",
            CondSource::Drawn => "a drawn digit",
            CondSource::Jump => "a jump of the followed chain",
            CondSource::File => "images from a file (one per chain)",
        }
    }
}

/// The held region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaskPreset {
    /// The top half.
    Top,
    /// The bottom half.
    Bottom,
    /// The left half.
    Left,
    /// The right half.
    Right,
    /// A centred square of half the side.
    Centre,
    /// A random share of the pixels.
    Random,
    /// Painted with the brush.
    Painted,
    /// Nothing: the chains only start from the image plus noise.
    Nothing,
}

impl MaskPreset {
    const ALL: [MaskPreset; 8] = [
        MaskPreset::Top,
        MaskPreset::Bottom,
        MaskPreset::Left,
        MaskPreset::Right,
        MaskPreset::Centre,
        MaskPreset::Random,
        MaskPreset::Painted,
        MaskPreset::Nothing,
    ];

    /// Name in the combo box.
    pub fn label(self) -> &'static str {
        match self {
            MaskPreset::Top => "top half",
            MaskPreset::Bottom => "bottom half",
            MaskPreset::Left => "left half",
            MaskPreset::Right => "right half",
            MaskPreset::Centre => "centre square",
            MaskPreset::Random => "random share",
            MaskPreset::Painted => "painted with the brush",
            MaskPreset::Nothing => "nothing (start from the image)",
        }
    }

    /// The name `named_mask` takes (`None` for a painted mask).
    pub fn spec(self, share: f64) -> Option<String> {
        Some(match self {
            MaskPreset::Top => "top".into(),
            MaskPreset::Bottom => "bottom".into(),
            MaskPreset::Left => "left".into(),
            MaskPreset::Right => "right".into(),
            MaskPreset::Centre => "centre".into(),
            MaskPreset::Random => format!("random:{}", share.clamp(0.0, 1.0)),
            MaskPreset::Nothing => "none".into(),
            MaskPreset::Painted => return None,
        })
    }
}

/// Conditional walk-jump settings that persist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CondSettings {
    /// Hold part of an image in every chain.
    pub on: bool,
    /// Where the observation comes from.
    pub source: CondSource,
    /// Test digit number (for [`CondSource::TestDigit`]).
    pub digit: usize,
    /// The held region.
    pub preset: MaskPreset,
    /// Share of pixels held by [`MaskPreset::Random`].
    pub share: f64,
    /// Start the free pixels from the image plus noise too (else from the run's init).
    pub start_from_image: bool,
}

impl Default for CondSettings {
    fn default() -> Self {
        Self {
            on: false,
            source: CondSource::TestDigit,
            digit: 0,
            preset: MaskPreset::Top,
            share: 0.3,
            start_from_image: false,
        }
    }
}

/// The condition the settings describe for the current model (`None` when nothing is held), or why there is none.
pub(super) fn condition_of(
    settings: &WalkSettings,
    view: &WalkView,
    cx: &WalkContext<'_>,
) -> Result<Option<WalkCondition>, String> {
    let c = &settings.cond;
    if !c.on {
        return Ok(None);
    }
    let (ch, h, w) = cx.model.map(|m| m.shape).ok_or("no model is loaded yet")?;
    let d = ch * h * w;
    let mask: Vec<bool> = match c.preset.spec(c.share) {
        Some(spec) => crate::sampling::condition::named_mask(&spec, ch, h, w, settings.seed)
            .map_err(|e| e.to_string())?,
        None => {
            if view.mask_pad.is_blank() {
                return Err("paint the held region on the mask pad first".into());
            }
            let plane: Vec<bool> = view.mask_pad.pixels.iter().map(|&v| v >= 0.5).collect();
            plane.iter().copied().cycle().take(d).collect()
        }
    };
    let image = match c.source {
        CondSource::TestDigit => CondImage::TestDigit(c.digit),
        CondSource::TestDigits => CondImage::TestDigitsFrom(c.digit),
        CondSource::Drawn => {
            if cx.drawn.is_blank() || cx.drawn.pixels.len() * ch != d {
                return Err("draw a digit on the pad first".into());
            }
            CondImage::Pixels(cx.drawn.pixels.iter().copied().cycle().take(d).collect())
        }
        CondSource::Jump => match &view.picked {
            Some(p) if p.len() == d => CondImage::Pixels(p.clone()),
            _ => return Err("click a tile, then \"use this chain's jump\"".into()),
        },
        CondSource::File => match &view.loaded {
            Some((_, x)) if !x.is_empty() && x.len().is_multiple_of(d) => {
                CondImage::Pixels(x.clone())
            }
            _ => return Err("choose images of the model's size with \"Choose images...\"".into()),
        },
    };
    Ok(Some(WalkCondition {
        mask,
        image,
        // Holding nothing means: start the chains from the image.
        start_from_image: c.start_from_image || c.preset == MaskPreset::Nothing,
    }))
}

/// The condition of the settings as the command line writes it (`--condition test:K --mask top`); an observation
/// or a mask that only exists in the app (a drawing, a picked jump, a painted mask) is named as such.
pub fn condition_record(settings: &WalkSettings) -> crate::run::ConditionRecord {
    let c = &settings.cond;
    crate::run::ConditionRecord {
        images: match c.source {
            // One digit for every chain; the command line repeats a one-digit range.
            CondSource::TestDigit => format!("test:{}..{}", c.digit, c.digit + 1),
            // The command line also gives chain k the k-th image.
            CondSource::TestDigits => format!("test:{}", c.digit),
            CondSource::Drawn => "(a digit drawn in the app)".into(),
            CondSource::Jump => "(a jump picked in the app)".into(),
            CondSource::File => "(images loaded in the app)".into(),
        },
        mask: Some(
            c.preset
                .spec(c.share)
                .unwrap_or_else(|| "(painted in the app)".into()),
        ),
    }
}

/// Sends the condition and restarts the chains on it.
pub(super) fn apply_condition(
    settings: &WalkSettings,
    view: &mut WalkView,
    cx: &WalkContext<'_>,
    actions: &mut Actions,
) {
    match condition_of(settings, view, cx) {
        Ok(c) => {
            actions.send(WorkerCommand::Walk(WalkCommand::SetCondition(c.clone())));
            view.sent_condition = Some(c);
            reset(settings, view, actions);
        }
        Err(m) => view.message = Some(m),
    }
}

/// The Condition section: what to hold, where, and which model jumps.
pub(super) fn condition_controls(
    ui: &mut Ui,
    settings: &mut WalkSettings,
    view: &mut WalkView,
    cx: &WalkContext<'_>,
    actions: &mut Actions,
) {
    ui.heading("Condition");
    let was_on = settings.cond.on;
    ui.checkbox(&mut settings.cond.on, "hold part of an image fixed")
        .on_hover_text(
            "every chain walks on p(y_free | y_held) with y_held = x_o + sigma eps drawn once; each jump keeps the \
             held pixels exactly (REFERENCE.md §11)",
        );
    if was_on && !settings.cond.on {
        actions.send(WorkerCommand::Walk(WalkCommand::SetCondition(None)));
        view.sent_condition = Some(None);
        reset(settings, view, actions);
    }
    if settings.cond.on {
        let c = &mut settings.cond;
        egui::ComboBox::from_label("observation")
            .selected_text(c.source.label())
            .show_ui(ui, |ui| {
                for s in [
                    CondSource::TestDigit,
                    CondSource::TestDigits,
                    CondSource::Drawn,
                    CondSource::Jump,
                    CondSource::File,
                ] {
                    ui.selectable_value(&mut c.source, s, s.label());
                }
            });
        match c.source {
            CondSource::TestDigit | CondSource::TestDigits => {
                ui.horizontal(|ui| {
                    let label = ui.label(if c.source == CondSource::TestDigits {
                        "first test digit no."
                    } else {
                        "test digit no."
                    });
                    ui.add(egui::DragValue::new(&mut c.digit).range(0..=9_999))
                        .labelled_by(label.id);
                });
            }
            CondSource::Drawn => {
                ui.label(RichText::new("draw it in the NEBULA or Denoise workspace").weak());
            }
            CondSource::File => {
                if ui
                    .button("Choose images...")
                    .on_hover_text("a PNG, a .npy array [N, h, w] / [N, c, h, w], or an IDX file")
                    .clicked()
                {
                    actions.open_images_dialog = true;
                }
                if let Some((p, x)) = &view.loaded {
                    let d = cx
                        .model
                        .map(|m| m.shape.0 * m.shape.1 * m.shape.2)
                        .unwrap_or(1);
                    ui.label(
                        RichText::new(format!(
                            "{} image(s) from {}",
                            x.len() / d.max(1),
                            p.file_name()
                                .map(|n| n.to_string_lossy())
                                .unwrap_or_default()
                        ))
                        .weak(),
                    );
                }
            }
            CondSource::Jump => {
                let followed = view
                    .frame
                    .as_ref()
                    .and_then(|f| f.jumps.get(f.film_chain).map(|j| (f.film_chain, j.clone())));
                let label = match &followed {
                    Some((k, _)) => format!("use chain {k}'s jump"),
                    None => "use the followed chain's jump".into(),
                };
                if ui
                    .add_enabled(followed.is_some(), egui::Button::new(label))
                    .on_hover_text("click a tile of the grid to follow another chain")
                    .clicked()
                    && let Some((_, j)) = followed
                {
                    view.picked = Some(j.iter().map(|v| v.clamp(0.0, 1.0)).collect());
                }
                if view.picked.is_some() {
                    ui.label(RichText::new("a jump is picked").weak());
                }
            }
        }
        egui::ComboBox::from_label("held region")
            .selected_text(c.preset.label())
            .show_ui(ui, |ui| {
                for p in MaskPreset::ALL {
                    ui.selectable_value(&mut c.preset, p, p.label());
                }
            });
        match c.preset {
            MaskPreset::Random => {
                ui.add(egui::Slider::new(&mut c.share, 0.0..=1.0).text("share held"));
            }
            MaskPreset::Painted => {
                ui.label("paint the held region (white = held):");
                view.mask_pad.show(ui, 140.0);
                if ui.button("Clear mask").clicked() {
                    view.mask_pad.clear();
                }
            }
            _ => {}
        }
        ui.checkbox(
            &mut c.start_from_image,
            "start the free pixels from the image too",
        )
        .on_hover_text("else the free pixels start from the init above");
        if ui
            .button("Hold and reset")
            .on_hover_text("restart every chain holding this region of this image")
            .clicked()
        {
            apply_condition(settings, view, cx, actions);
        }
    }
    ui.separator();
    let current = match &view.jump_with {
        Some(p) => cx
            .jump_models
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| "the walking model".into()),
        None => "the walking model".into(),
    };
    let mut pick: Option<Option<std::path::PathBuf>> = None;
    egui::ComboBox::from_label("jump with")
        .selected_text(current)
        .show_ui(ui, |ui| {
            if ui
                .selectable_label(view.jump_with.is_none(), "the walking model")
                .clicked()
            {
                pick = Some(None);
            }
            for (p, label) in &cx.jump_models {
                if ui
                    .selectable_label(view.jump_with.as_ref() == Some(p), label)
                    .clicked()
                {
                    pick = Some(Some(p.clone()));
                }
            }
        })
        .response
        .on_hover_text(
            "walk on this model, jump with another loaded one of the same image size and sigma (load more with the \
             model picker or Open...)",
        );
    if let Some(p) = pick {
        view.jump_with = p.clone();
        actions.send(WorkerCommand::Walk(WalkCommand::SetJumpModel(p)));
    }
}

/// The held region of a conditioned walk, drawn over tiles: a translucent tint of the held pixels and, when the
/// region has a simple shape, its outline.
pub struct HeldMark<'a> {
    pub(super) mask: &'a [bool],
    h: usize,
    w: usize,
    texture: egui::TextureId,
}

/// Colour of the held region's mark.
pub(super) const HELD: Color32 = Color32::from_rgb(255, 150, 30);

/// Most outline segments drawn per tile (a random share of pixels is marked by its tint alone).
const MAX_OUTLINE: usize = 64;

impl HeldMark<'_> {
    /// Outline segments of the held region in pixel units (runs merged), or `None` when there are too many.
    fn outline(&self) -> Option<Vec<[(f32, f32); 2]>> {
        let (h, w) = (self.h, self.w);
        let held = |r: usize, c: usize| self.mask[r * w + c];
        let mut segs = Vec::new();
        // Horizontal edges between rows r - 1 and r.
        for r in 1..h {
            let mut start: Option<usize> = None;
            for c in 0..=w {
                let edge = c < w && held(r - 1, c) != held(r, c);
                match (edge, start) {
                    (true, None) => start = Some(c),
                    (false, Some(s)) => {
                        segs.push([(s as f32, r as f32), (c as f32, r as f32)]);
                        start = None;
                    }
                    _ => {}
                }
            }
        }
        // Vertical edges between columns c - 1 and c.
        for c in 1..w {
            let mut start: Option<usize> = None;
            for r in 0..=h {
                let edge = r < h && held(r, c - 1) != held(r, c);
                match (edge, start) {
                    (true, None) => start = Some(r),
                    (false, Some(s)) => {
                        segs.push([(c as f32, s as f32), (c as f32, r as f32)]);
                        start = None;
                    }
                    _ => {}
                }
            }
        }
        (segs.len() <= MAX_OUTLINE).then_some(segs)
    }

    /// Draws the mark over every tile of `grid` drawn at `rect`.
    pub(super) fn draw(&self, ui: &Ui, grid: &ImageGrid, rect: egui::Rect) {
        let painter = ui.painter_at(rect);
        let outline = self.outline();
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        for k in 0..grid.len() {
            let Some(t) = grid.tile_rect(rect, k) else {
                continue;
            };
            painter.image(self.texture, t, uv, Color32::WHITE);
            if let Some(segs) = &outline {
                let sx = t.width() / self.w as f32;
                let sy = t.height() / self.h as f32;
                for [a, b] in segs {
                    painter.line_segment(
                        [
                            t.min + egui::vec2(a.0 * sx, a.1 * sy),
                            t.min + egui::vec2(b.0 * sx, b.1 * sy),
                        ],
                        egui::Stroke::new(1.5, HELD),
                    );
                }
            }
        }
    }
}

impl WalkView {
    /// Makes the texture of the held region's tint when the frame's mask changed.
    pub(super) fn refresh_held_mark(
        &mut self,
        ctx: &egui::Context,
        held: Option<&std::sync::Arc<Vec<bool>>>,
        hw: (usize, usize),
    ) {
        let (h, w) = hw;
        let Some(mask) = held.filter(|m| h > 0 && w > 0 && m.len() >= h * w) else {
            self.held_mark = None;
            return;
        };
        if self
            .held_mark
            .as_ref()
            .is_some_and(|(m, _)| m.as_slice() == mask.as_slice())
        {
            return;
        }
        let pixels: Vec<Color32> = mask[..h * w]
            .iter()
            .map(|&b| {
                if b {
                    Color32::from_rgba_unmultiplied(255, 150, 30, 46)
                } else {
                    Color32::TRANSPARENT
                }
            })
            .collect();
        let img = egui::ColorImage::new([w, h], pixels);
        let tex = ctx.load_texture("walk-held", img, egui::TextureOptions::NEAREST);
        self.held_mark = Some((mask.clone(), tex));
    }

    /// The mark of the held region for images of `hw`, if the walk holds one.
    pub(super) fn mark(&self, hw: (usize, usize)) -> Option<HeldMark<'_>> {
        let (mask, tex) = self.held_mark.as_ref()?;
        let (h, w) = hw;
        (mask.len() >= h * w && h > 0 && w > 0).then(|| HeldMark {
            mask: &mask[..h * w],
            h,
            w,
            texture: tex.id(),
        })
    }
}
