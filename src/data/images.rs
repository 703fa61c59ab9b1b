//! Images chosen by the user (the observations and starts of conditional walk-jump, a mask drawn as a picture,
//! images to denoise), read in any registered [format](super::formats): an IDX file (plain or gzip), a PNG file, a
//! folder of PNG files (sorted by name), or a NumPy `.npy` array `[N, h, w]` / `[N, c, h, w]` of `uint8` (0..255)
//! or `float32` / `float64` in `[0, 1]`. Every image must have the model's `c x h x w`; values come back as
//! `[c * h * w]` rows in `[0, 1]`, channel-major as the models see them.

use std::path::Path;

pub use super::formats::npy::{npy_image_shape, parse_npy};
use super::formats::{FORMATS, format_for, metadata, png::read_png, read_with, shape_with};
use crate::data::Result;

/// The image shape `(c, h, w)` a file or folder holds, from the format that claims it: a `.npy` header, the first
/// PNG (colour images give 3 channels, grey ones 1), or an IDX header (1 channel).
pub fn image_shape(path: &Path) -> Result<(usize, usize, usize)> {
    let meta = metadata(path)?;
    shape_with(format_for(FORMATS, path, meta.is_dir())?, path)
}

/// Reads images of `c x h x w` from `path` in the format that claims it (IDX, PNG, a folder of PNGs, or `.npy`):
/// `[N][c * h * w]` in `[0, 1]`.
pub fn read_images(path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>> {
    let meta = metadata(path)?;
    read_with(format_for(FORMATS, path, meta.is_dir())?, path, c, h, w)
}

/// Reads a mask from a PNG of `h x w` (any colour type): held where the pixel's grey level is at least one half.
/// The mask applies to every channel: `[c * h * w]`.
pub fn read_mask_png(path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<bool>> {
    let grey = read_png(path, 1, h, w)?;
    Ok(grey
        .iter()
        .map(|&v| v >= 0.5)
        .cycle()
        .take(c * h * w)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::formats::npy::tests::npy;

    /// Colour data sets load with their shape read from the file: a `.npy` `[N, 3, h, w]` and a folder of RGB
    /// PNGs (grey PNGs give one channel).
    #[test]
    fn colour_data_sets_load_with_their_own_shape() {
        let dir = std::env::temp_dir().join(format!("walkjump-colour-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pngs")).expect("dir");
        let body: Vec<u8> = (0..2 * 3 * 4 * 5).map(|i| (i * 2) as u8).collect();
        let path = dir.join("c.npy");
        std::fs::write(&path, npy("|u1", "(2, 3, 4, 5)", &body)).expect("write");
        assert_eq!(image_shape(&path).expect("shape"), (3, 4, 5));
        let data = super::super::Dataset::from_files(&path, None).expect("npy data");
        assert_eq!(
            (data.spec.channels, data.spec.height, data.spec.width),
            (3, 4, 5)
        );
        assert_eq!(data.len(), 2);
        assert!((data.images[61] - 122.0 / 255.0).abs() < 1e-7);
        for k in 0..3u8 {
            let img =
                image::RgbImage::from_fn(6, 7, |x, _| image::Rgb([40 * k, x as u8 * 10, 200]));
            img.save(dir.join(format!("pngs/{k}.png"))).expect("png");
        }
        let data = super::super::Dataset::from_files(&dir.join("pngs"), None).expect("png data");
        assert_eq!(
            (
                data.spec.channels,
                data.spec.height,
                data.spec.width,
                data.len()
            ),
            (3, 7, 6, 3)
        );
        // Image 2, blue plane, first pixel.
        assert!((data.images[2 * 126 + 2 * 42] - 200.0 / 255.0).abs() < 1e-7);
        let grey = image::GrayImage::from_pixel(3, 3, image::Luma([9]));
        grey.save(dir.join("g.png")).expect("grey");
        assert_eq!(
            image_shape(&dir.join("g.png")).expect("grey shape"),
            (1, 3, 3)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
