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

#[cfg(test)]
mod tests {
    use super::*;

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
