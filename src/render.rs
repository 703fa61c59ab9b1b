//! Turning batches of images into pictures: grids and film strips as 8-bit PNGs (grey, or RGB for 3-channel
//! images), and animated GIFs.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageBuffer, Luma, Rgb};

use crate::error::{Error, Result};

/// A grid of equally sized tiles, `cols` wide, with a 1-pixel mid-grey gutter; grey, or colour for 3 channels.
#[derive(Clone, Debug)]
pub struct Grid {
    /// Tile height.
    pub height: usize,
    /// Tile width.
    pub width: usize,
    /// Tiles per row.
    pub cols: usize,
    /// Tiles, each `[channels * height * width]`, channel-major; values are clamped to [0, 1] for display.
    pub tiles: Vec<Vec<f32>>,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
}

impl Grid {
    /// An empty grid of `height x width` tiles, `cols` per row.
    pub fn new(height: usize, width: usize, cols: usize) -> Self {
        Self {
            height,
            width,
            cols: cols.max(1),
            tiles: Vec::new(),
            channels: 1,
        }
    }

    /// An empty grid of `c x height x width` tiles: RGB when `c = 3`, else the first channel in grey.
    pub fn with_channels(c: usize, height: usize, width: usize, cols: usize) -> Self {
        Self {
            channels: if c == 3 { 3 } else { 1 },
            ..Self::new(height, width, cols)
        }
    }

    /// A grid for tiles like `sample` (a flat image of `h x w` pixels): colour when it holds exactly three planes.
    pub fn like(sample: Option<&[f32]>, height: usize, width: usize, cols: usize) -> Self {
        let c = match sample {
            Some(t) if height * width > 0 && t.len() == 3 * height * width => 3,
            _ => 1,
        };
        Self::with_channels(c, height, width, cols)
    }

    /// Appends a tile (missing pixels are black, extra ones ignored).
    pub fn push(&mut self, tile: &[f32]) {
        let n = self.channels * self.height * self.width;
        let mut t = tile.iter().take(n).copied().collect::<Vec<_>>();
        t.resize(n, 0.0);
        self.tiles.push(t);
    }

    /// Renders to an 8-bit grey image (channel 0 of each tile).
    pub fn to_image(&self) -> ImageBuffer<Luma<u8>, Vec<u8>> {
        let (w, h) = self.canvas();
        let mut img = ImageBuffer::from_pixel(w as u32, h as u32, Luma([128u8]));
        self.paint(|x, y, k, p| {
            if k == 0 {
                img.put_pixel(x, y, Luma([p]));
            }
        });
        img
    }

    /// Renders to an 8-bit image: RGB for 3-channel tiles, else grey.
    pub fn to_dynamic(&self) -> DynamicImage {
        if self.channels != 3 {
            return DynamicImage::ImageLuma8(self.to_image());
        }
        let (w, h) = self.canvas();
        let mut img = ImageBuffer::from_pixel(w as u32, h as u32, Rgb([128u8, 128, 128]));
        self.paint(|x, y, k, p| img.get_pixel_mut(x, y).0[k] = p);
        DynamicImage::ImageRgb8(img)
    }

    fn canvas(&self) -> (usize, usize) {
        let rows = self.tiles.len().div_ceil(self.cols).max(1);
        let cols = self.cols.min(self.tiles.len().max(1));
        (cols * (self.width + 1) + 1, rows * (self.height + 1) + 1)
    }

    /// Calls `put(x, y, channel, value)` for every pixel of every tile.
    fn paint(&self, mut put: impl FnMut(u32, u32, usize, u8)) {
        let plane = self.height * self.width;
        for (k, tile) in self.tiles.iter().enumerate() {
            let (r, c) = (k / self.cols, k % self.cols);
            let (ox, oy) = (1 + c * (self.width + 1), 1 + r * (self.height + 1));
            for ch in 0..self.channels {
                for y in 0..self.height {
                    for x in 0..self.width {
                        let v = tile
                            .get(ch * plane + y * self.width + x)
                            .copied()
                            .unwrap_or(0.0);
                        let p = if v.is_finite() {
                            (v.clamp(0.0, 1.0) * 255.0).round() as u8
                        } else {
                            0
                        };
                        put((ox + x) as u32, (oy + y) as u32, ch, p);
                    }
                }
            }
        }
    }

    /// PNG bytes (deterministic for the same tiles).
    pub fn png_bytes(&self) -> Result<Vec<u8>> {
        let mut buf = Cursor::new(Vec::new());
        self.to_dynamic()
            .write_to(&mut buf, image::ImageFormat::Png)
            .map_err(|e| Error::Image(e.to_string()))?;
        Ok(buf.into_inner())
    }

    /// Writes the PNG atomically (temporary file, then rename).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.png_bytes()?)
    }

    /// Writes the PNG with `tEXt` chunks `(keyword, text)` (e.g. the run that made it), atomically.
    pub fn save_png_with_text(&self, path: &Path, text: &[(&str, &str)]) -> Result<()> {
        write_atomic(path, &png_with_text(&self.png_bytes()?, text)?)
    }
}

/// Inserts `tEXt` chunks `(keyword, text)` after the IHDR chunk of a PNG. Keywords are 1-79 Latin-1 characters;
/// characters of the text outside Latin-1 become `?`.
pub fn png_with_text(png: &[u8], text: &[(&str, &str)]) -> Result<Vec<u8>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    // Signature, then IHDR: length (4), type (4), 13 data bytes, CRC (4).
    let ihdr_end = SIGNATURE.len() + 4 + 4 + 13 + 4;
    if png.len() < ihdr_end || &png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return Err(Error::Image("not a PNG with an IHDR chunk".into()));
    }
    let mut out = png[..ihdr_end].to_vec();
    for (key, value) in text {
        if key.is_empty() || key.len() > 79 || !key.bytes().all(|b| (32..=126).contains(&b)) {
            return Err(Error::Image(format!("invalid PNG text keyword '{key}'")));
        }
        let mut chunk = b"tEXt".to_vec();
        chunk.extend_from_slice(key.as_bytes());
        chunk.push(0);
        chunk.extend(value.chars().map(|c| {
            if (c as u32) < 256 && c != '\0' {
                c as u8
            } else {
                b'?'
            }
        }));
        let len =
            u32::try_from(chunk.len() - 4).map_err(|_| Error::Image("PNG text too long".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out.extend_from_slice(&png[ihdr_end..]);
    Ok(out)
}

/// The `tEXt` chunks of a PNG as `(keyword, text)` (for tests and tools).
pub fn png_text(png: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= png.len()) else {
            break;
        };
        if &png[at + 4..at + 8] == b"tEXt" {
            let data = &png[at + 8..end];
            if let Some(z) = data.iter().position(|&b| b == 0) {
                let key: String = data[..z].iter().map(|&b| b as char).collect();
                let val: String = data[z + 1..].iter().map(|&b| b as char).collect();
                out.push((key, val));
            }
        }
        at = end + 4;
    }
    out
}

/// CRC-32 (ISO 3309, as PNG uses) of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
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
            let rgba: RgbaImage = g.to_dynamic().to_rgba8();
            let frame = Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(delay_ms, 1));
            enc.encode_frame(frame)
                .map_err(|e| Error::Image(e.to_string()))?;
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_channel_tiles_render_in_colour_and_one_channel_in_grey() {
        // One 1x2 tile: pixel 0 red, pixel 1 half blue (channel-major planes R, G, B).
        let tile = [1.0, 0.0, 0.0, 0.0, 0.0, 0.5];
        let mut g = Grid::with_channels(3, 1, 2, 1);
        g.push(&tile);
        let img = g.to_dynamic().to_rgb8();
        assert_eq!(img.get_pixel(1, 1).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(2, 1).0, [0, 0, 128]);
        assert_eq!(img.get_pixel(0, 0).0, [128, 128, 128], "gutter");
        let decoded = image::load_from_memory(&g.png_bytes().expect("png")).expect("decode");
        assert_eq!(decoded.color(), image::ColorType::Rgb8);
        // The same values as a grey grid show channel 0 only, and `like` picks colour by tile length.
        let mut grey = Grid::new(1, 2, 1);
        grey.push(&tile);
        assert_eq!(grey.to_dynamic().color(), image::ColorType::L8);
        assert_eq!(grey.to_image().get_pixel(1, 1).0, [255]);
        assert_eq!(Grid::like(Some(&tile), 1, 2, 1).channels, 3);
        assert_eq!(Grid::like(Some(&tile[..2]), 1, 2, 1).channels, 1);
    }

    #[test]
    fn png_text_chunks_round_trip_and_keep_the_image() {
        // CRC-32 of "IEND", as every PNG ends with it.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        let mut g = Grid::new(2, 2, 1);
        g.push(&[0.0, 1.0, 0.5, 0.25]);
        let plain = g.png_bytes().expect("png");
        let text = "{\"jump_with\": \"uvb (sigma 1)\"}";
        let with = png_with_text(&plain, &[("walkjump-run", text)]).expect("text");
        assert_eq!(
            png_text(&with),
            vec![("walkjump-run".to_string(), text.to_string())]
        );
        let a = image::load_from_memory(&plain)
            .expect("decode plain")
            .to_luma8();
        let b = image::load_from_memory(&with)
            .expect("decode with text")
            .to_luma8();
        assert_eq!(a, b);
        assert!(png_with_text(b"not a png at all, just bytes", &[]).is_err());
        assert!(png_with_text(&plain, &[("", "x")]).is_err());
    }
}
