//! One PNG file (grey or colour, any bit depth): one image.

use std::path::Path;

use super::{ImageFormat, io};
use crate::data::{Error, Result};

/// A PNG file: one image; colour PNGs give 3 channels, grey ones 1.
pub struct Png;

impl ImageFormat for Png {
    fn name(&self) -> &'static str {
        "PNG"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["png"]
    }

    fn shape(&self, path: &Path) -> Result<(usize, usize, usize)> {
        png_shape(path)
    }

    fn read(&self, path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>> {
        Ok(vec![read_png(path, c, h, w)?])
    }
}

/// `(c, h, w)` of a PNG: 3 channels for a colour image, 1 for a grey one.
pub(crate) fn png_shape(p: &Path) -> Result<(usize, usize, usize)> {
    let shown = p.display().to_string();
    let (w, h) = image::image_dimensions(p)
        .map_err(|e| Error::Data(format!("{shown} is not a readable image: {e}")))?;
    let colour = image::ImageReader::open(p)
        .map_err(|err| io(p, err))?
        .with_guessed_format()
        .map_err(|err| io(p, err))?
        .decode()
        .map_err(|e| Error::Data(format!("{shown} is not a readable image: {e}")))?
        .color()
        .has_color();
    Ok((if colour { 3 } else { 1 }, h as usize, w as usize))
}

/// A PNG of `w x h` as `[c * h * w]` in `[0, 1]` (grey for `c = 1`, RGB planes for `c = 3`).
pub(crate) fn read_png(path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<f32>> {
    let shown = path.display().to_string();
    let img = image::ImageReader::open(path)
        .map_err(|err| io(path, err))?
        .with_guessed_format()
        .map_err(|err| io(path, err))?
        .decode()
        .map_err(|e| Error::Data(format!("{shown} is not a readable image: {e}")))?;
    if img.width() as usize != w || img.height() as usize != h {
        return Err(Error::Data(format!(
            "{shown} is {}x{} pixels, the model takes {w}x{h}",
            img.width(),
            img.height()
        )));
    }
    Ok(match c {
        1 => img
            .to_luma8()
            .into_raw()
            .into_iter()
            .map(|p| p as f32 / 255.0)
            .collect(),
        3 => {
            let rgb = img.to_rgb8().into_raw();
            let mut out = vec![0f32; 3 * h * w];
            for (p, px) in rgb.chunks_exact(3).enumerate() {
                for ch in 0..3 {
                    out[ch * h * w + p] = px[ch] as f32 / 255.0;
                }
            }
            out
        }
        _ => {
            return Err(Error::Data(format!(
                "images of {c} channels cannot be read from PNG (1 or 3)"
            )));
        }
    })
}
