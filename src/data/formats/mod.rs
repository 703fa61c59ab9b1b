//! The image file formats `data` reads (conditions and masks, `--data` for training and eval, Denoise's images),
//! one file each implementing [`ImageFormat`], listed once in the `formats!` registry below. A path goes to the
//! first format that [claims](ImageFormat::claims) it; IDX comes last because it takes any other file.
//!
//! A new format is a file `src/data/formats/<name>.rs` with a unit struct implementing [`ImageFormat`], plus one
//! line `<name>::<Type>,` in the registry. [`images::read_images`](super::images::read_images),
//! [`images::image_shape`](super::images::image_shape) and [`Dataset::from_files`] read the registry.

use std::path::Path;

use crate::data::{Dataset, Error, Result, idx as idx_files};

/// Largest file read as images (bytes).
pub const MAX_BYTES: u64 = 1 << 30;

/// A file format of images. Values come back as `[c * h * w]` rows in `[0, 1]`, channel-major as the models see
/// them; every error is one line (text from the file goes through `text::one_line`).
pub trait ImageFormat: Sync {
    /// Short name (`PNG`, `.npy` ...), for messages and tests.
    fn name(&self) -> &'static str;

    /// File extensions it reads, lower case, without the dot (empty for a folder or a format known by content).
    fn extensions(&self) -> &'static [&'static str];

    /// Whether this format reads `path` (a folder when `is_dir`). By default: a file with one of
    /// [`extensions`](ImageFormat::extensions), in any case.
    fn claims(&self, path: &Path, is_dir: bool) -> bool {
        !is_dir && self.extensions().contains(&extension(path).as_str())
    }

    /// The image shape `(c, h, w)` the file holds.
    fn shape(&self, path: &Path) -> Result<(usize, usize, usize)>;

    /// Every image of the file, of shape `c x h x w` (any other shape is refused): `[N][c * h * w]` in `[0, 1]`.
    /// [`read_with`] checks the file's size first and refuses an empty result.
    fn read(&self, path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>>;

    /// The file as a data set (with IDX `labels` if given), the shape from the file. By default its
    /// [`shape`](ImageFormat::shape) and [`read`](ImageFormat::read), named after the file.
    fn dataset(&self, path: &Path, labels: Option<&Path>) -> Result<Dataset> {
        let (c, h, w) = shape_with(self, path)?;
        let rows = read_with(self, path, c, h, w)?;
        let labels = labels.map(idx_files::read_labels).transpose()?;
        if let Some(l) = &labels
            && l.len() != rows.len()
        {
            return Err(Error::Data(format!(
                "{} holds {} images but the labels file {} labels",
                path.display(),
                rows.len(),
                l.len()
            )));
        }
        Ok(Dataset {
            spec: crate::checkpoint::DataSpec {
                name: file_name(path),
                channels: c,
                height: h,
                width: w,
            },
            images: rows.into_iter().flatten().collect(),
            labels,
        })
    }
}

/// The registry: declares each format's file and lists it in [`FORMATS`], in the order formats claim paths.
macro_rules! formats {
    ($($file:ident :: $format:ident),+ $(,)?) => {
        $(
            pub mod $file;
            pub use $file::$format;
        )+
        /// Every registered format, in the order they are offered a path.
        pub static FORMATS: &[&dyn ImageFormat] = &[$(&$format),+];
    };
}

formats! {
    png_folder::PngFolder,
    png::Png,
    npy::Npy,
    // Last: it takes any file the others leave (`.gz`, `-ubyte`, no extension).
    idx::Idx,
}

/// The first of `formats` that claims `path`.
pub fn format_for<'a>(
    formats: &[&'a dyn ImageFormat],
    path: &Path,
    is_dir: bool,
) -> Result<&'a dyn ImageFormat> {
    formats
        .iter()
        .copied()
        .find(|f| f.claims(path, is_dir))
        .ok_or_else(|| {
            Error::Data(format!(
                "{}: no reader for this file (readers: {})",
                path.display(),
                formats
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// `format`'s shape of `path`, after checking that the path exists.
pub fn shape_with(
    format: &(impl ImageFormat + ?Sized),
    path: &Path,
) -> Result<(usize, usize, usize)> {
    metadata(path)?;
    format.shape(path)
}

/// `format`'s images of `path`: refuses a file larger than [`MAX_BYTES`] before reading and a file without images
/// after.
pub fn read_with(
    format: &(impl ImageFormat + ?Sized),
    path: &Path,
    c: usize,
    h: usize,
    w: usize,
) -> Result<Vec<Vec<f32>>> {
    let shown = path.display().to_string();
    let meta = metadata(path)?;
    if !meta.is_dir() && meta.len() > MAX_BYTES {
        return Err(Error::Data(format!(
            "{shown} is {} bytes, more than the {MAX_BYTES} read as images",
            meta.len()
        )));
    }
    let rows = format.read(path, c, h, w)?;
    if rows.is_empty() {
        return Err(Error::Data(format!("{shown} holds no images")));
    }
    Ok(rows)
}

/// The file's metadata, or the one-line I/O error naming it.
pub(crate) fn metadata(path: &Path) -> Result<std::fs::Metadata> {
    std::fs::metadata(path).map_err(|err| io(path, err))
}

/// An I/O error naming `path`.
pub(crate) fn io(path: &Path, err: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        err,
    }
}

/// The lower-case extension of `path` (empty without one).
pub(crate) fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The data set name of a file: its file name.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "data".into())
}

/// Prefixes a data error with the file it is about.
pub(crate) fn prefix(shown: &str, e: Error) -> Error {
    match e {
        Error::Data(m) => Error::Data(format!("{shown}: {m}")),
        other => other,
    }
}
