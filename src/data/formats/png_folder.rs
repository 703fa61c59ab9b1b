//! A folder of PNG files: one image each, in the order of their names.

use std::path::{Path, PathBuf};

use super::png::{png_shape, read_png};
use super::{ImageFormat, io};
use crate::data::{Error, Result};

/// A folder of PNG files (`.png` in any case; other files are ignored), sorted by name; the first gives the shape.
pub struct PngFolder;

impl ImageFormat for PngFolder {
    fn name(&self) -> &'static str {
        "PNG folder"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &[]
    }

    fn claims(&self, _path: &Path, is_dir: bool) -> bool {
        is_dir
    }

    fn shape(&self, path: &Path) -> Result<(usize, usize, usize)> {
        let first = pngs(path)?.into_iter().next();
        png_shape(&first.ok_or_else(|| no_pngs(path))?)
    }

    fn read(&self, path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>> {
        let files = pngs(path)?;
        if files.is_empty() {
            return Err(no_pngs(path));
        }
        files.iter().map(|f| read_png(f, c, h, w)).collect()
    }
}

/// The `.png` files of a folder, sorted.
fn pngs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|err| io(dir, err))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    Ok(files)
}

fn no_pngs(dir: &Path) -> Error {
    Error::Data(format!("{} holds no .png files", dir.display()))
}
