//! Data: image file formats (one file each in `formats/`), IDX files, the bundled digits with their fixed split,
//! noise kinds, and the chi geometry of a dataset.

pub mod formats;
pub mod geometry;
pub mod idx;
pub mod images;
pub mod noise;

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::checkpoint::DataSpec;

/// Why data could not be read or used. The crate-wide `Error` takes each variant in as its variant of the same name,
/// with the same message, so `data` needs nothing from `error`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An IDX data file is malformed.
    #[error(transparent)]
    Idx(#[from] idx::IdxError),
    /// A parameter is out of its valid range (a noise level, a pair count ...).
    #[error("invalid parameter: {0}")]
    Param(String),
    /// Data does not fit (wrong image size, missing labels, an unreadable image ...).
    #[error("data does not fit: {0}")]
    Data(String),
    /// Reading a file failed.
    #[error("cannot access {path}: {err}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error (kept out of the error chain: the message already says it).
        err: std::io::Error,
    },
    /// A tensor operation failed (a bug or an out-of-memory condition, not a user error).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias for data.
pub type Result<T> = std::result::Result<T, Error>;

/// The bundled 10 000 MNIST digits (see `assets/README.md` for provenance).
const BUNDLED_IMAGES: &[u8] = include_bytes!("../../assets/mnist-10k-images-idx3-ubyte.gz");
const BUNDLED_LABELS: &[u8] = include_bytes!("../../assets/mnist-10k-labels-idx1-ubyte.gz");
/// Name recorded in checkpoints trained on the bundled digits.
pub const BUNDLED_NAME: &str = "mnist-10k";
/// Size of the bundled training split (the first 9 000 digits); the rest is the test split.
pub const BUNDLED_TRAIN: usize = 9_000;

/// Which part of a dataset to use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The training split (first 90%).
    Train,
    /// The test split (last 10%).
    Test,
    /// Every image.
    All,
}

/// Images in `[0, 1]` (flat, `[n, c*h*w]` row-major) with optional labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Shape and name.
    pub spec: DataSpec,
    /// `[n * d]` pixel values in [0, 1].
    pub images: Vec<f32>,
    /// `[n]` class labels, when known.
    pub labels: Option<Vec<u8>>,
}

impl Dataset {
    /// The bundled digits.
    pub fn bundled() -> Result<Self> {
        let images = idx::parse_images(BUNDLED_IMAGES)?;
        let labels = idx::parse_labels(BUNDLED_LABELS)?;
        Self::from_idx_parts(BUNDLED_NAME, images, Some(labels))
    }

    /// Reads images (and IDX labels) from files in the [format](formats) that claims them: IDX (plain or gzip), a
    /// PNG, a folder of PNGs (grey or colour), or a `.npy` array `[N, h, w]` / `[N, c, h, w]` of `uint8` or floats
    /// in `[0, 1]`.
    pub fn from_files(images: &Path, labels: Option<&Path>) -> Result<Self> {
        formats::format_for(formats::FORMATS, images, images.is_dir())?.dataset(images, labels)
    }

    /// Reads IDX images (and labels) from files, plain or gzip.
    pub fn from_idx_file(images: &Path, labels: Option<&Path>) -> Result<Self> {
        let img = idx::read_images(images)?;
        let lab = labels.map(idx::read_labels).transpose()?;
        Self::from_idx_parts(&formats::file_name(images), img, lab)
    }

    fn from_idx_parts(name: &str, img: idx::IdxImages, labels: Option<Vec<u8>>) -> Result<Self> {
        if let Some(l) = &labels {
            idx::check_pair(&img, l)?;
        }
        let images = img.pixels.iter().map(|&p| p as f32 / 255.0).collect();
        Ok(Self {
            spec: DataSpec {
                name: name.to_string(),
                channels: 1,
                height: img.rows,
                width: img.cols,
            },
            images,
            labels,
        })
    }

    /// The bundled digits, or the given files.
    pub fn open(images: Option<&Path>, labels: Option<&Path>) -> Result<Self> {
        match images {
            Some(p) => Self::from_files(p, labels),
            None => Self::bundled(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len() / self.dim().max(1)
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels per image, `c * h * w`.
    pub fn dim(&self) -> usize {
        self.spec.dim()
    }

    /// Image `i` as `[d]`.
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        let d = self.dim();
        self.images.get(i * d..(i + 1) * d)
    }

    /// Label of image `i`.
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels.as_ref().and_then(|l| l.get(i).copied())
    }

    /// Index where the test split starts: 9 000 for the bundled digits, 90% of the file otherwise.
    pub fn test_start(&self) -> usize {
        let n = self.len();
        if self.spec.name == BUNDLED_NAME && n == 10_000 {
            BUNDLED_TRAIN
        } else {
            n - n / 10
        }
    }

    /// The images of a split, in file order.
    pub fn split(&self, split: Split) -> Dataset {
        let t = self.test_start();
        let range = match split {
            Split::Train => 0..t,
            Split::Test => t..self.len(),
            Split::All => 0..self.len(),
        };
        let d = self.dim();
        Dataset {
            spec: self.spec.clone(),
            images: self.images[range.start * d..range.end * d].to_vec(),
            labels: self
                .labels
                .as_ref()
                .map(|l| l[range.start..range.end].to_vec()),
        }
    }

    /// Rows `idx` as a tensor `[idx.len(), d]`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let d = self.dim();
        let mut v = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            let img = self
                .image(i)
                .ok_or_else(|| Error::Data(format!("image {i} out of range")))?;
            v.extend_from_slice(img);
        }
        Ok(Tensor::from_vec(v, (idx.len(), d), device)?)
    }

    /// Checks that a model trained on `spec` can use this data (same image size).
    pub fn check_fits(&self, spec: &DataSpec) -> Result<()> {
        if self.spec.channels != spec.channels
            || self.spec.height != spec.height
            || self.spec.width != spec.width
        {
            return Err(Error::Data(format!(
                "the data has {}x{}x{} images, the model expects {}x{}x{}",
                self.spec.channels,
                self.spec.height,
                self.spec.width,
                spec.channels,
                spec.height,
                spec.width
            )));
        }
        if self.is_empty() {
            return Err(Error::Data("the data has no images".into()));
        }
        Ok(())
    }
}
