//! Turning batches of images into pictures: grids and film strips as 8-bit grey PNGs, and animated GIFs.

use std::io::Cursor;
use std::path::Path;

use image::{ImageBuffer, Luma};

use crate::error::{Error, Result};

/// A grid of equally sized grey tiles, `cols` wide, with a 1-pixel mid-grey gutter.
#[derive(Clone, Debug)]
pub struct Grid {
    /// Tile height.
    pub height: usize,
    /// Tile width.
    pub width: usize,
    /// Tiles per row.
    pub cols: usize,
    /// Tiles, each `[height * width]`, row-major; values are clamped to [0, 1] for display.
    pub tiles: Vec<Vec<f32>>,
}

impl Grid {
    /// An empty grid of `height x width` tiles, `cols` per row.
    pub fn new(height: usize, width: usize, cols: usize) -> Self {
        Self {
            height,
            width,
            cols: cols.max(1),
            tiles: Vec::new(),
        }
    }

    /// Appends a tile (missing pixels are black, extra ones ignored).
    pub fn push(&mut self, tile: &[f32]) {
        let n = self.height * self.width;
        let mut t = tile.iter().take(n).copied().collect::<Vec<_>>();
        t.resize(n, 0.0);
        self.tiles.push(t);
    }

    /// Renders to an 8-bit grey image.
    pub fn to_image(&self) -> ImageBuffer<Luma<u8>, Vec<u8>> {
        let rows = self.tiles.len().div_ceil(self.cols).max(1);
        let cols = self.cols.min(self.tiles.len().max(1));
        let w = cols * (self.width + 1) + 1;
        let h = rows * (self.height + 1) + 1;
        let mut img = ImageBuffer::from_pixel(w as u32, h as u32, Luma([128u8]));
        for (k, tile) in self.tiles.iter().enumerate() {
            let (r, c) = (k / self.cols, k % self.cols);
            let (ox, oy) = (1 + c * (self.width + 1), 1 + r * (self.height + 1));
            for y in 0..self.height {
                for x in 0..self.width {
                    let v = tile[y * self.width + x];
                    let p = if v.is_finite() {
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    } else {
                        0
                    };
                    img.put_pixel((ox + x) as u32, (oy + y) as u32, Luma([p]));
                }
            }
        }
        img
    }

    /// PNG bytes (deterministic for the same tiles).
    pub fn png_bytes(&self) -> Result<Vec<u8>> {
        let mut buf = Cursor::new(Vec::new());
        self.to_image()
            .write_to(&mut buf, image::ImageFormat::Png)
            .map_err(|e| Error::Image(e.to_string()))?;
        Ok(buf.into_inner())
    }

    /// Writes the PNG atomically (temporary file, then rename).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.png_bytes()?)
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// An animated GIF of frames (each a grid), `delay_ms` per frame.
pub fn gif_bytes(frames: &[Grid], delay_ms: u32) -> Result<Vec<u8>> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame, RgbaImage};
    let mut buf = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut buf);
        enc.set_repeat(Repeat::Infinite)
            .map_err(|e| Error::Image(e.to_string()))?;
        for g in frames {
            let grey = g.to_image();
            let rgba = RgbaImage::from_fn(grey.width(), grey.height(), |x, y| {
                let v = grey.get_pixel(x, y).0[0];
                image::Rgba([v, v, v, 255])
            });
            let frame = Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(delay_ms, 1));
            enc.encode_frame(frame)
                .map_err(|e| Error::Image(e.to_string()))?;
        }
    }
    Ok(buf)
}
