//! Widgets shared by the workspaces: an image grid drawn from one texture updated tile by tile, and a logarithmic
//! slider with a typed-entry box that refuses values that are not positive numbers.

use egui::{Color32, ColorImage, Rect, Response, Sense, TextureHandle, TextureOptions, Ui, Vec2};

/// Grey value of the gutter between tiles.
const GUTTER: u8 = 96;

/// Converts one tile (values in [0, 1], clamped; non-finite shown black) to pixels: a tile of exactly
/// `3 * h * w` values is a channel-major RGB image, any other is grey (its first `h * w` values).
fn tile_pixels(tile: &[f32], h: usize, w: usize) -> Vec<Color32> {
    let byte = |k: usize| {
        let v = tile.get(k).copied().unwrap_or(0.0);
        if v.is_finite() {
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        } else {
            0
        }
    };
    let plane = h * w;
    let colour = plane > 0 && tile.len() == 3 * plane;
    (0..plane)
        .map(|k| {
            if colour {
                Color32::from_rgb(byte(k), byte(plane + k), byte(2 * plane + k))
            } else {
                Color32::from_gray(byte(k))
            }
        })
        .collect()
}

/// A grid of equally sized grey tiles held in ONE texture (an atlas). When the layout is unchanged, only the tiles
/// whose pixels changed are uploaded, each with [`TextureHandle::set_partial`]; a new layout reallocates it.
pub struct ImageGrid {
    name: String,
    texture: Option<TextureHandle>,
    tiles: Vec<Vec<f32>>,
    layout: (usize, usize, usize, usize),
    /// Tile uploads done with `set_partial` since creation (for tests and the curious).
    pub partial_uploads: usize,
}

impl ImageGrid {
    /// An empty grid whose texture will be called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            texture: None,
            tiles: Vec::new(),
            layout: (0, 0, 0, 0),
            partial_uploads: 0,
        }
    }

    /// Number of tiles shown.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether the grid has no tiles.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// Pixel size of the atlas for `n` tiles of `h x w`, `cols` per row, 1-pixel gutters.
    fn atlas_size(n: usize, h: usize, w: usize, cols: usize) -> [usize; 2] {
        let cols = cols.max(1).min(n.max(1));
        let rows = n.div_ceil(cols).max(1);
        [cols * (w + 1) + 1, rows * (h + 1) + 1]
    }

    fn origin(k: usize, h: usize, w: usize, cols: usize) -> [usize; 2] {
        let (r, c) = (k / cols, k % cols);
        [1 + c * (w + 1), 1 + r * (h + 1)]
    }

    /// Brings the texture up to date with `tiles` (`h x w` each, `cols` per row).
    pub fn update(
        &mut self,
        ctx: &egui::Context,
        tiles: &[Vec<f32>],
        h: usize,
        w: usize,
        cols: usize,
    ) {
        let cols = cols.max(1).min(tiles.len().max(1));
        let layout = (tiles.len(), h, w, cols);
        if h == 0 || w == 0 || tiles.is_empty() {
            self.texture = None;
            self.tiles.clear();
            self.layout = layout;
            return;
        }
        let options = TextureOptions::NEAREST;
        match self.texture.as_mut() {
            Some(tex) if self.layout == layout => {
                for (k, tile) in tiles.iter().enumerate() {
                    if self.tiles.get(k) != Some(tile) {
                        let img = ColorImage::new([w, h], tile_pixels(tile, h, w));
                        tex.set_partial(Self::origin(k, h, w, cols), img, options);
                        self.partial_uploads += 1;
                    }
                }
            }
            _ => {
                let size = Self::atlas_size(tiles.len(), h, w, cols);
                let mut atlas = ColorImage::filled(size, Color32::from_gray(GUTTER));
                for (k, tile) in tiles.iter().enumerate() {
                    let [ox, oy] = Self::origin(k, h, w, cols);
                    for (p, c) in tile_pixels(tile, h, w).into_iter().enumerate() {
                        let (y, x) = (p / w, p % w);
                        atlas.pixels[(oy + y) * size[0] + ox + x] = c;
                    }
                }
                match self.texture.as_mut() {
                    Some(tex) => tex.set(atlas, options),
                    None => self.texture = Some(ctx.load_texture(&self.name, atlas, options)),
                }
            }
        }
        self.tiles = tiles.to_vec();
        self.layout = layout;
    }

    /// Draws the grid scaled to fit `max_width` (at most `max_scale` screen points per pixel). Returns the response
    /// and the tile under a click, if any.
    pub fn show(
        &self,
        ui: &mut Ui,
        max_width: f32,
        max_scale: f32,
    ) -> (Option<Response>, Option<usize>) {
        let Some(tex) = &self.texture else {
            return (None, None);
        };
        let size = tex.size_vec2();
        let scale = (max_width / size.x).clamp(0.25, max_scale);
        let resp = ui.add(
            egui::Image::from_texture((tex.id(), size * scale))
                .sense(Sense::click())
                .fit_to_exact_size(size * scale),
        );
        let mut clicked = None;
        if resp.clicked()
            && let Some(pos) = resp.interact_pointer_pos()
        {
            let (n, h, w, cols) = self.layout;
            let local = (pos - resp.rect.min) / scale;
            let c = (local.x as usize).saturating_sub(1) / (w + 1);
            let r = (local.y as usize).saturating_sub(1) / (h + 1);
            let k = r * cols + c;
            if c < cols && k < n {
                clicked = Some(k);
            }
        }
        (Some(resp), clicked)
    }

    /// Draws tile `k` alone, `size` points wide, from the shared texture (by UV coordinates).
    pub fn show_tile(&self, ui: &mut Ui, k: usize, size: f32) -> Option<Response> {
        let tex = self.texture.as_ref()?;
        let (n, h, w, cols) = self.layout;
        if k >= n {
            return None;
        }
        let [aw, ah] = Self::atlas_size(n, h, w, cols);
        let [ox, oy] = Self::origin(k, h, w, cols);
        let uv = Rect::from_min_max(
            egui::pos2(ox as f32 / aw as f32, oy as f32 / ah as f32),
            egui::pos2((ox + w) as f32 / aw as f32, (oy + h) as f32 / ah as f32),
        );
        let display = Vec2::new(size, size * h as f32 / w.max(1) as f32);
        Some(
            ui.add(
                egui::Image::from_texture((tex.id(), display))
                    .uv(uv)
                    .fit_to_exact_size(display),
            ),
        )
    }

    /// Screen rectangle of tile `k` inside a grid drawn at `rect` (for overlays such as class labels).
    pub fn tile_rect(&self, rect: Rect, k: usize) -> Option<Rect> {
        let (n, h, w, cols) = self.layout;
        if k >= n || self.texture.is_none() {
            return None;
        }
        let size = Self::atlas_size(n, h, w, cols);
        let scale = rect.width() / size[0] as f32;
        let [ox, oy] = Self::origin(k, h, w, cols);
        Some(Rect::from_min_size(
            rect.min + Vec2::new(ox as f32, oy as f32) * scale,
            Vec2::new(w as f32, h as f32) * scale,
        ))
    }
}

/// What a [`log_param`] edit produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamEdit {
    /// Nothing changed.
    None,
    /// A new valid value (already stored).
    Changed,
    /// A typed value was refused; the message says why. The stored value is unchanged.
    Refused(String),
}

/// A logarithmic slider for a positive parameter, followed by a box to type an exact value (applied with Enter).
/// Values that are not finite positive numbers are refused. `text` is the typed-entry buffer kept by the caller.
pub fn log_param(
    ui: &mut Ui,
    name: &str,
    value: &mut f64,
    range: std::ops::RangeInclusive<f64>,
    text: &mut String,
) -> ParamEdit {
    let mut out = ParamEdit::None;
    ui.horizontal(|ui| {
        let before = *value;
        let slider = egui::Slider::new(value, range)
            .logarithmic(true)
            .clamping(egui::SliderClamping::Never)
            .show_value(false)
            .text(name);
        if ui.add(slider).changed() && *value != before {
            *text = format_param(*value);
            out = ParamEdit::Changed;
        }
        let label = format!("{name} value");
        let resp = ui.add(
            egui::TextEdit::singleline(text)
                .desired_width(70.0)
                .hint_text(format_param(*value)),
        );
        let resp = resp.on_hover_text(format!("type {name} and press Enter"));
        // The box's accessible name, so screen readers (and tests) can find it.
        ui.ctx()
            .accesskit_node_builder(resp.id, |node| node.set_label(label.clone()));
        let submitted = resp.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if submitted {
            match parse_positive(name, text) {
                Ok(v) => {
                    if v != *value {
                        *value = v;
                        out = ParamEdit::Changed;
                    }
                    *text = format_param(v);
                }
                Err(msg) => {
                    out = ParamEdit::Refused(msg);
                    *text = format_param(*value);
                }
            }
        } else if !resp.has_focus() && text.is_empty() {
            *text = format_param(*value);
        }
    });
    out
}

/// Parses a typed parameter: a finite number greater than zero.
pub fn parse_positive(name: &str, text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!(
            "{name} must be a positive number, got {v}; not applied"
        )),
        Err(_) => Err(format!(
            "{name} must be a positive number, got '{}'; not applied",
            text.trim()
        )),
    }
}

/// Shows a parameter with 4 significant digits.
pub fn format_param(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return v.to_string();
    }
    let digits = (4 - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A canvas to draw a digit with the mouse: `h * w` values in `[0, 1]`, row-major, painted with a soft round
/// brush about two pixels wide.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawPad {
    /// The image `[h * w]`.
    pub pixels: Vec<f32>,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    last: Option<(f32, f32)>,
}

impl Default for DrawPad {
    fn default() -> Self {
        Self::new(28, 28)
    }
}

impl DrawPad {
    /// A blank pad of `h x w` pixels.
    pub fn new(h: usize, w: usize) -> Self {
        Self {
            pixels: vec![0.0; h * w],
            h,
            w,
            last: None,
        }
    }

    /// Makes the pad `h x w` (clearing it if the size changes).
    pub fn resize(&mut self, h: usize, w: usize) {
        if (h, w) != (self.h, self.w) {
            *self = Self::new(h, w);
        }
    }

    /// No ink at all.
    pub fn is_blank(&self) -> bool {
        self.pixels.iter().all(|&v| v <= 0.0)
    }

    /// Wipes the pad.
    pub fn clear(&mut self) {
        self.pixels.iter_mut().for_each(|v| *v = 0.0);
        self.last = None;
    }

    /// Adds ink around the point `(row, col)` (pixel units, centres at `k + 0.5`): full ink within 0.9 pixel,
    /// fading to none at 1.6.
    pub fn ink(&mut self, row: f32, col: f32) {
        let (r0, r1) = (
            (row - 2.0).floor().max(0.0) as usize,
            (row + 2.0).ceil() as usize,
        );
        let (c0, c1) = (
            (col - 2.0).floor().max(0.0) as usize,
            (col + 2.0).ceil() as usize,
        );
        for r in r0..r1.min(self.h) {
            for c in c0..c1.min(self.w) {
                let (dy, dx) = (r as f32 + 0.5 - row, c as f32 + 0.5 - col);
                let dist = (dx * dx + dy * dy).sqrt();
                let v = ((1.6 - dist) / 0.7).clamp(0.0, 1.0);
                let p = &mut self.pixels[r * self.w + c];
                *p = p.max(v);
            }
        }
    }

    /// Inks a straight stroke from `a` to `b` (pixel units), densely enough to leave no gaps.
    pub fn stroke(&mut self, a: (f32, f32), b: (f32, f32)) {
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let n = (len * 3.0).ceil().max(1.0) as usize;
        for k in 0..=n {
            let t = k as f32 / n as f32;
            self.ink(a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        }
    }

    /// Draws the pad `size` points wide and lets the mouse draw on it. Returns true when a stroke has just ended
    /// (the drawing changed).
    pub fn show(&mut self, ui: &mut Ui, size: f32) -> bool {
        let (h, w) = (self.h.max(1), self.w.max(1));
        let cell = size / w.max(h) as f32;
        let (rect, resp) =
            ui.allocate_exact_size(Vec2::new(cell * w as f32, cell * h as f32), Sense::drag());
        ui.ctx()
            .accesskit_node_builder(resp.id, |node| node.set_label("drawing pad"));
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::BLACK);
        for r in 0..self.h {
            for c in 0..self.w {
                let v = self.pixels[r * self.w + c];
                if v > 0.0 {
                    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    let min = rect.min + Vec2::new(c as f32 * cell, r as f32 * cell);
                    painter.rect_filled(
                        Rect::from_min_size(min, Vec2::splat(cell)),
                        0.0,
                        Color32::from_gray(g),
                    );
                }
            }
        }
        painter.rect_stroke(
            rect,
            0.0,
            egui::Stroke::new(1.0, Color32::from_gray(GUTTER)),
            egui::StrokeKind::Outside,
        );
        if (resp.dragged() || resp.drag_started())
            && let Some(p) = resp.interact_pointer_pos()
        {
            let at = ((p.y - rect.min.y) / cell, (p.x - rect.min.x) / cell);
            let from = self.last.unwrap_or(at);
            self.stroke(from, at);
            self.last = Some(at);
        }
        if resp.drag_stopped() {
            self.last = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_strokes_ink_a_connected_line() {
        let mut pad = DrawPad::new(28, 28);
        assert!(pad.is_blank());
        pad.stroke((4.5, 14.5), (23.5, 14.5));
        // Every row the stroke crosses has full ink on its column, and nothing far from it is inked.
        for r in 5..23 {
            assert_eq!(pad.pixels[r * 28 + 14], 1.0, "row {r}");
            assert_eq!(pad.pixels[r * 28 + 10], 0.0, "row {r}");
        }
        assert_eq!(pad.pixels[14], 0.0);
        assert!(pad.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        pad.resize(28, 28);
        assert!(!pad.is_blank());
        pad.resize(4, 4);
        assert!(pad.is_blank());
        assert_eq!(pad.pixels.len(), 16);
    }

    #[test]
    fn typed_values_must_be_positive_numbers() {
        assert_eq!(parse_positive("delta", " 0.5 "), Ok(0.5));
        for bad in ["-1", "0", "nan", "inf", "", "abc"] {
            let e = parse_positive("delta", bad).expect_err(bad);
            assert!(e.starts_with("delta must be a positive number"), "{e}");
        }
    }

    #[test]
    fn parameters_show_four_significant_digits() {
        assert_eq!(format_param(0.282842712), "0.2828");
        assert_eq!(format_param(1.0), "1");
        assert_eq!(format_param(0.0070711), "0.007071");
        assert_eq!(format_param(1234.6), "1235");
    }

    #[test]
    fn grid_uploads_only_changed_tiles_with_set_partial() {
        let ctx = egui::Context::default();
        let mut grid = ImageGrid::new("test");
        let tiles: Vec<Vec<f32>> = (0..6).map(|k| vec![k as f32 / 6.0; 4 * 3]).collect();
        grid.update(&ctx, &tiles, 4, 3, 3);
        assert_eq!(
            grid.partial_uploads, 0,
            "a new layout allocates the whole atlas"
        );
        let tex = grid.texture.as_ref().map(TextureHandle::size);
        assert_eq!(tex, Some([3 * 4 + 1, 2 * 5 + 1]));
        let mut next = tiles.clone();
        next[4] = vec![1.0; 12];
        grid.update(&ctx, &next, 4, 3, 3);
        assert_eq!(grid.partial_uploads, 1);
        grid.update(&ctx, &next, 4, 3, 3);
        assert_eq!(
            grid.partial_uploads, 1,
            "unchanged tiles are not uploaded again"
        );
        // A different number of tiles is a new layout: one full upload, no partial ones.
        grid.update(&ctx, &next[..5], 4, 3, 3);
        assert_eq!(grid.partial_uploads, 1);
        assert_eq!(grid.len(), 5);
    }
}
