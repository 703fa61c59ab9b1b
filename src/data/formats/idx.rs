//! IDX files (plain or gzip), MNIST's format: `[N, h, w]` of `uint8`, one channel, with IDX labels beside them.

use std::path::Path;

use super::ImageFormat;
use crate::data::{Dataset, Error, Result};

/// An IDX image file, plain or gzip. It claims every file no other format took (`train-images-idx3-ubyte`,
/// `*.gz`), so it is the registry's last entry.
pub struct Idx;

impl ImageFormat for Idx {
    fn name(&self) -> &'static str {
        "IDX"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["gz", "idx"]
    }

    fn claims(&self, _path: &Path, is_dir: bool) -> bool {
        !is_dir
    }

    fn shape(&self, path: &Path) -> Result<(usize, usize, usize)> {
        let data = Dataset::from_idx_file(path, None)?;
        Ok((1, data.spec.height, data.spec.width))
    }

    fn read(&self, path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>> {
        let data = Dataset::from_idx_file(path, None)?;
        if c != 1 || data.spec.height != h || data.spec.width != w {
            return Err(Error::Data(format!(
                "{} holds 1x{}x{} images, the model takes {c}x{h}x{w}",
                path.display(),
                data.spec.height,
                data.spec.width
            )));
        }
        Ok(data
            .images
            .chunks_exact(h * w)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// IDX images with their IDX labels, checked as a pair.
    fn dataset(&self, path: &Path, labels: Option<&Path>) -> Result<Dataset> {
        Dataset::from_idx_file(path, labels)
    }
}
