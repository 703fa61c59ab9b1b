//! Reading and writing the IDX format (`LeCun`'s MNIST format), plain or gzip-compressed.
//!
//! # Format
//!
//! An IDX file is a big-endian header followed by the raw data:
//!
//! ```text
//! offset  size       field
//! 0       2          zero bytes (0x00 0x00)
//! 2       1          data type code: 0x08 = u8 (the only one supported here),
//!                    0x09 = i8, 0x0B = i16, 0x0C = i32, 0x0D = f32, 0x0E = f64
//! 3       1          number of dimensions d
//! 4       4 * d      the dimensions, one big-endian u32 each, outermost first
//! 4+4d    product    the data, row-major (last dimension varies fastest)
//! ```
//!
//! Two kinds of file are understood:
//!
//! * **images**, magic `0x00000803` (u8, 3 dimensions: `count, rows, cols`), a 16-byte header
//!   followed by `count * rows * cols` pixel bytes; loaded as [`IdxImages`] with
//!   `pixels` laid out `[count, rows, cols]` row-major;
//! * **labels**, magic `0x00000801` (u8, 1 dimension: `count`), an 8-byte header followed by
//!   `count` label bytes; loaded as `Vec<u8>` of shape `[count]`.
//!
//! Either may be gzip-compressed; compression is detected by the gzip magic bytes
//! `0x1f 0x8b`, never by the file name.
//!
//! # Robustness
//!
//! Every input, however malformed, yields an [`IdxError`] rather than a panic, and nothing is
//! allocated beyond what the input justifies: the header is validated (non-zero dimensions,
//! sides of at most [`MAX_SIDE`], at most [`MAX_DATA_BYTES`] of data) before any data is
//! read, plain inputs are checked against their known length before the data is copied, and
//! gzip streams are decompressed through [`Read::take`] capped at the size the header promises
//! plus one byte, so a stream that is too long is detected without inflating it further.
//! A count of zero is rejected like any other zero dimension: an empty data set is almost
//! certainly a mistake for this project.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

/// Magic number of an IDX image file: unsigned bytes, 3 dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file: unsigned bytes, 1 dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest accepted number of rows or columns of an image.
pub const MAX_SIDE: usize = 4096;
/// Largest accepted data size (excluding the header) in bytes: 2 GiB. This also caps how much a
/// gzip stream is ever inflated (header + this + 1 byte).
pub const MAX_DATA_BYTES: u64 = 1 << 31;

/// The gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The IDX data type code for unsigned bytes.
const TYPE_U8: u8 = 0x08;
/// Read granularity when the final size is not known in advance.
const CHUNK: usize = 64 * 1024;

/// Everything that can go wrong reading an IDX file. Every message is one sentence naming
/// the problem.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The input (after decompression) holds no bytes at all.
    #[error("IDX input is empty (0 bytes), expected a {needed}-byte {kind} header")]
    Empty { kind: &'static str, needed: usize },
    /// The input ends inside the header.
    #[error("IDX input is only {actual} bytes long, too short for the {needed}-byte {kind} header")]
    TooShort {
        kind: &'static str,
        actual: usize,
        needed: usize,
    },
    /// The first two bytes are not zero, so this is not an IDX file at all.
    #[error("IDX magic {magic:#010x} is not an IDX header (the first two bytes must be zero)")]
    BadMagic { magic: u32 },
    /// The data type code is not 0x08 (unsigned bytes).
    #[error("IDX data type {code:#04X} ({name}) is not supported, expected unsigned bytes")]
    UnsupportedType { code: u8, name: &'static str },
    /// The number of dimensions does not match the kind of file asked for
    /// (e.g. a label file given as images).
    #[error("IDX magic {magic:#010x} is {}, expected {expected}", describe_ndims(*.ndims))]
    WrongKind {
        magic: u32,
        ndims: u8,
        expected: &'static str,
    },
    /// One of the dimensions is zero.
    #[error("IDX header has a zero {axis} dimension ({count} x {rows} x {cols})")]
    ZeroDim {
        axis: &'static str,
        count: u32,
        rows: u32,
        cols: u32,
    },
    /// Rows or columns exceed [`MAX_SIDE`].
    #[error("IDX image size {rows}x{cols} is implausible, each side must be at most {MAX_SIDE}")]
    AbsurdDims { rows: u32, cols: u32 },
    /// The data size the header claims exceeds [`MAX_DATA_BYTES`].
    #[error(
        "IDX header claims {count} items of {item_bytes} bytes ({total_bytes} bytes), more than the limit of {MAX_DATA_BYTES} bytes"
    )]
    TooLarge {
        count: u32,
        item_bytes: u64,
        total_bytes: u64,
    },
    /// Fewer data bytes than the header promises.
    #[error(
        "IDX data is truncated: the header promises {expected} data bytes but only {actual} are present"
    )]
    Truncated { expected: u64, actual: u64 },
    /// More data bytes than the header promises. For gzip input `actual` is a lower bound
    /// (`exact == false`) because reading stops one byte past the promised size.
    #[error(
        "IDX data has trailing bytes: the header promises {expected} data bytes but {}{actual} are present",
        if *.exact { "" } else { "at least " }
    )]
    TrailingData {
        expected: u64,
        actual: u64,
        exact: bool,
    },
    /// The gzip stream is corrupt or truncated.
    #[error("corrupt gzip stream: {source}")]
    Gzip {
        #[source]
        source: io::Error,
    },
    /// A label is not below the number of classes (see [`check_labels`]).
    #[error("label {label} at index {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        index: usize,
        label: u8,
        classes: u8,
    },
    /// Images and labels have different counts (see [`check_pair`]).
    #[error("count mismatch: {images} images but {labels} labels")]
    CountMismatch { images: usize, labels: usize },
}

/// Words for an IDX file with `ndims` dimensions, for [`IdxError::WrongKind`].
fn describe_ndims(ndims: u8) -> String {
    match ndims {
        1 => "a label file".to_owned(),
        3 => "an image file".to_owned(),
        n => format!("a {n}-dimensional array"),
    }
}

/// Name of an IDX data type code, for [`IdxError::UnsupportedType`].
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "u8",
        0x09 => "i8",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown",
    }
}

/// A set of 8-bit grey-level images, as stored in an IDX image file.
#[derive(Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image (height).
    pub rows: usize,
    /// Columns per image (width).
    pub cols: usize,
    /// All pixels, shape `[count, rows, cols]`, row-major; `count * rows * cols` bytes.
    pub pixels: Vec<u8>,
}

impl fmt::Debug for IdxImages {
    // The derived Debug would print every pixel.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdxImages")
            .field("count", &self.count)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("pixels", &format_args!("[{} bytes]", self.pixels.len()))
            .finish()
    }
}

impl IdxImages {
    /// Pixels per image, `rows * cols` (saturating).
    #[must_use]
    pub fn image_len(&self) -> usize {
        self.rows.saturating_mul(self.cols)
    }

    /// The raw pixels of image `i`, shape `[rows, cols]` row-major, or `None` if `i` is out of
    /// range (or the fields disagree with `pixels`).
    #[must_use]
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        if i >= self.count {
            return None;
        }
        let len = self.rows.checked_mul(self.cols)?;
        let start = i.checked_mul(len)?;
        self.pixels.get(start..start.checked_add(len)?)
    }

    /// Image `i` as `rows * cols` floats in `[0, 1]` (pixel / 255), shape `[rows, cols]`
    /// row-major, or `None` if `i` is out of range.
    #[must_use]
    pub fn image_f32(&self, i: usize) -> Option<Vec<f32>> {
        self.image(i)
            .map(|px| px.iter().map(|&p| f32::from(p) / 255.0).collect())
    }
}

/// Which kind of IDX file is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn ndims(self) -> u8 {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    fn header_len(self) -> usize {
        4 + 4 * usize::from(self.ndims())
    }

    /// Singular noun for messages about the header.
    fn noun(self) -> &'static str {
        match self {
            Kind::Images => "image",
            Kind::Labels => "label",
        }
    }

    /// Plural noun for "expected ..." messages.
    fn plural(self) -> &'static str {
        match self {
            Kind::Images => "images",
            Kind::Labels => "labels",
        }
    }
}

/// A validated header.
#[derive(Clone, Copy, Debug)]
struct Header {
    count: usize,
    rows: usize,
    cols: usize,
    /// Number of data bytes after the header, at most [`MAX_DATA_BYTES`].
    data_len: u64,
}

/// Validates the header at the start of `h`, which holds the first bytes of the (decompressed)
/// input, up to the header length of `kind`. Checks are ordered so that the most telling error
/// wins: magic, data type, kind, then length and dimensions.
fn parse_header(h: &[u8], kind: Kind) -> Result<Header, IdxError> {
    let needed = kind.header_len();
    if h.is_empty() {
        return Err(IdxError::Empty {
            kind: kind.noun(),
            needed,
        });
    }
    let too_short = || IdxError::TooShort {
        kind: kind.noun(),
        actual: h.len(),
        needed,
    };
    let Some(&magic_bytes) = h.first_chunk::<4>() else {
        return Err(too_short());
    };
    let magic = u32::from_be_bytes(magic_bytes);
    let [z0, z1, code, ndims] = magic_bytes;
    if z0 != 0 || z1 != 0 {
        return Err(IdxError::BadMagic { magic });
    }
    if code != TYPE_U8 {
        return Err(IdxError::UnsupportedType {
            code,
            name: type_name(code),
        });
    }
    if ndims != kind.ndims() {
        return Err(IdxError::WrongKind {
            magic,
            ndims,
            expected: kind.plural(),
        });
    }
    let dims_bytes = h.get(4..needed).ok_or_else(too_short)?;
    // count, rows, cols; labels are count x 1 x 1.
    let mut dims = [1u32; 3];
    for (d, b) in dims.iter_mut().zip(dims_bytes.chunks_exact(4)) {
        let mut word = [0u8; 4];
        word.copy_from_slice(b);
        *d = u32::from_be_bytes(word);
    }
    let [count, rows, cols] = dims;
    for (axis, v) in [("count", count), ("rows", rows), ("cols", cols)] {
        if v == 0 {
            return Err(IdxError::ZeroDim {
                axis,
                count,
                rows,
                cols,
            });
        }
    }
    if u64::from(rows) > MAX_SIDE as u64 || u64::from(cols) > MAX_SIDE as u64 {
        return Err(IdxError::AbsurdDims { rows, cols });
    }
    // rows, cols <= 4096 so this is at most 2^24; times a u32 count it stays below 2^56.
    let item_bytes = u64::from(rows) * u64::from(cols);
    let total_bytes = item_bytes.saturating_mul(u64::from(count));
    let too_large = IdxError::TooLarge {
        count,
        item_bytes,
        total_bytes,
    };
    if total_bytes > MAX_DATA_BYTES {
        return Err(too_large);
    }
    // Also fails (rather than truncating) where usize is narrower than the data size.
    let to_usize = |v: u64| usize::try_from(v).ok();
    match (
        to_usize(u64::from(count)),
        to_usize(u64::from(rows)),
        to_usize(u64::from(cols)),
        to_usize(total_bytes),
    ) {
        (Some(count), Some(rows), Some(cols), Some(_)) => Ok(Header {
            count,
            rows,
            cols,
            data_len: total_bytes,
        }),
        _ => Err(too_large),
    }
}

/// Why [`decode`] failed: either a format problem, or an I/O error whose meaning (corrupt gzip
/// or unreadable file) only the caller knows.
enum Fail {
    Idx(IdxError),
    Io(io::Error),
}

impl From<IdxError> for Fail {
    fn from(e: IdxError) -> Self {
        Fail::Idx(e)
    }
}

/// Reads into `buf` until it is full or the reader is exhausted; returns the bytes read
/// (never more than `buf.len()`).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n).min(buf.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads at most `limit` bytes through [`Read::take`]. `capacity` is reserved up front and must
/// already be justified by the caller; beyond it the buffer grows geometrically with the data
/// actually read and never past `limit`.
fn read_limited<R: Read>(reader: R, limit: u64, capacity: usize) -> io::Result<Vec<u8>> {
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut limited = reader.take(limit);
    let mut out = Vec::with_capacity(capacity.min(limit_usize));
    let mut chunk = vec![0u8; CHUNK.min(limit_usize).max(1)];
    loop {
        let n = match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let Some(got) = chunk.get(..n) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "reader returned more bytes than requested",
            ));
        };
        if out.capacity() - out.len() < got.len() {
            let remaining = limit_usize.saturating_sub(out.len());
            let extra = out.len().min(remaining).max(got.len());
            out.reserve_exact(extra);
        }
        out.extend_from_slice(got);
    }
    Ok(out)
}

/// Reads one IDX file of `kind` from `r`. `total_len` is the exact length of the input when it
/// is known (a plain slice or regular file): the length is then checked against the header
/// before any data is read. Otherwise (gzip, pipes) at most `data_len + 1` bytes are read.
fn decode<R: Read>(
    r: &mut R,
    kind: Kind,
    total_len: Option<u64>,
) -> Result<(Header, Vec<u8>), Fail> {
    let mut head = [0u8; 16];
    let head = head.get_mut(..kind.header_len()).unwrap_or_default();
    let n = read_full(r, head).map_err(Fail::Io)?;
    let header = parse_header(head.get(..n).unwrap_or_default(), kind)?;
    let expected = header.data_len;
    let mut capacity = 0;
    if let Some(total) = total_len {
        let actual = total.saturating_sub(n as u64);
        if actual < expected {
            return Err(IdxError::Truncated { expected, actual }.into());
        }
        if actual > expected {
            return Err(IdxError::TrailingData {
                expected,
                actual,
                exact: true,
            }
            .into());
        }
        // The known input length backs this allocation.
        capacity = usize::try_from(expected).unwrap_or(0);
    }
    let data = read_limited(&mut *r, expected.saturating_add(1), capacity).map_err(Fail::Io)?;
    let actual = data.len() as u64;
    if actual < expected {
        return Err(IdxError::Truncated { expected, actual }.into());
    }
    if actual > expected {
        return Err(IdxError::TrailingData {
            expected,
            actual,
            exact: false,
        }
        .into());
    }
    Ok((header, data))
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Decodes an in-memory IDX file, plain or gzip.
fn decode_bytes(bytes: &[u8], kind: Kind) -> Result<(Header, Vec<u8>), IdxError> {
    if is_gzip(bytes) {
        let mut dec = MultiGzDecoder::new(bytes);
        decode(&mut dec, kind, None).map_err(|f| match f {
            Fail::Idx(e) => e,
            Fail::Io(source) => IdxError::Gzip { source },
        })
    } else {
        let mut reader = bytes;
        decode(&mut reader, kind, Some(bytes.len() as u64)).map_err(|f| match f {
            Fail::Idx(e) => e,
            // Reading a slice cannot fail; kept total for completeness.
            Fail::Io(source) => IdxError::Io {
                path: PathBuf::from("<in-memory buffer>"),
                source,
            },
        })
    }
}

/// A reader that remembers whether the underlying file failed, so that errors surfacing
/// through the gzip decoder can be told apart: file errors versus corrupt compressed data.
struct Tracked<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let kind = e.kind();
                self.error = Some(e);
                Err(io::Error::new(kind, "reading the underlying file failed"))
            }
            other => other,
        }
    }
}

/// Decodes the IDX file at `path`, plain or gzip.
fn decode_file(path: &Path, kind: Kind) -> Result<(Header, Vec<u8>), IdxError> {
    let io_err = |source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    let mut magic = [0u8; 2];
    let n = read_full(&mut file, &mut magic).map_err(io_err)?;
    let prefix = magic.get(..n).unwrap_or_default();
    if is_gzip(prefix) {
        let mut dec = MultiGzDecoder::new(Tracked {
            inner: prefix.chain(file),
            error: None,
        });
        decode(&mut dec, kind, None).map_err(|f| match f {
            Fail::Idx(e) => e,
            Fail::Io(source) => match dec.get_mut().error.take() {
                Some(file_error) => io_err(file_error),
                None => IdxError::Gzip { source },
            },
        })
    } else {
        // A regular file's size is known, so it is checked against the header before the
        // data is read; pipes and other special files are streamed with a cap instead.
        let total_len = meta.is_file().then_some(meta.len());
        let mut reader = prefix.chain(file);
        decode(&mut reader, kind, total_len).map_err(|f| match f {
            Fail::Idx(e) => e,
            Fail::Io(source) => io_err(source),
        })
    }
}

fn images_from(header: Header, pixels: Vec<u8>) -> IdxImages {
    IdxImages {
        count: header.count,
        rows: header.rows,
        cols: header.cols,
        pixels,
    }
}

/// Parses an IDX image file (magic `0x00000803`) held in memory, plain or gzip-compressed.
/// The result's `pixels` have shape `[count, rows, cols]`.
///
/// # Errors
///
/// [`IdxError::Gzip`] for a corrupt gzip stream; [`IdxError::Empty`], [`IdxError::TooShort`],
/// [`IdxError::BadMagic`], [`IdxError::UnsupportedType`], [`IdxError::WrongKind`],
/// [`IdxError::ZeroDim`], [`IdxError::AbsurdDims`] or [`IdxError::TooLarge`] for a bad
/// header; [`IdxError::Truncated`] or [`IdxError::TrailingData`] when the data length
/// disagrees with the header.
pub fn parse_images(bytes: &[u8]) -> Result<IdxImages, IdxError> {
    decode_bytes(bytes, Kind::Images).map(|(h, px)| images_from(h, px))
}

/// Parses an IDX label file (magic `0x00000801`) held in memory, plain or gzip-compressed.
/// Returns the labels, shape `[count]`; values are not range-checked (see [`check_labels`]).
///
/// # Errors
///
/// [`IdxError::Gzip`] for a corrupt gzip stream; [`IdxError::Empty`], [`IdxError::TooShort`],
/// [`IdxError::BadMagic`], [`IdxError::UnsupportedType`], [`IdxError::WrongKind`],
/// [`IdxError::ZeroDim`], [`IdxError::AbsurdDims`] or [`IdxError::TooLarge`] for a bad
/// header; [`IdxError::Truncated`] or [`IdxError::TrailingData`] when the data length
/// disagrees with the header.
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    decode_bytes(bytes, Kind::Labels).map(|(_, labels)| labels)
}

/// Reads an IDX image file from disk, plain or gzip-compressed (detected by content).
/// See [`parse_images`].
///
/// # Errors
///
/// [`IdxError::Io`] (carrying `path`) when the file cannot be opened or read, otherwise
/// as for [`parse_images`]; a plain regular file's size is checked against its header
/// before the data is read.
pub fn read_images(path: &Path) -> Result<IdxImages, IdxError> {
    decode_file(path, Kind::Images).map(|(h, px)| images_from(h, px))
}

/// Reads an IDX label file from disk, plain or gzip-compressed (detected by content).
/// See [`parse_labels`].
///
/// # Errors
///
/// [`IdxError::Io`] (carrying `path`) when the file cannot be opened or read, otherwise
/// as for [`parse_labels`]; a plain regular file's size is checked against its header
/// before the data is read.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    decode_file(path, Kind::Labels).map(|(_, labels)| labels)
}

/// Big-endian u32 of a size, saturating (an over-large struct encodes a header that
/// [`parse_images`] rejects rather than a silently wrapped one).
fn be_u32(v: usize) -> [u8; 4] {
    u32::try_from(v).unwrap_or(u32::MAX).to_be_bytes()
}

/// Encodes images as a plain (uncompressed) IDX image file: the 16-byte header from `count`,
/// `rows` and `cols`, then `pixels` as they are. The fields are not checked against
/// `pixels.len()`; an inconsistent struct gives a file that the parser rejects.
#[must_use]
pub fn encode_images(img: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(img.pixels.len().saturating_add(16));
    out.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    out.extend_from_slice(&be_u32(img.count));
    out.extend_from_slice(&be_u32(img.rows));
    out.extend_from_slice(&be_u32(img.cols));
    out.extend_from_slice(&img.pixels);
    out
}

/// Encodes labels as a plain (uncompressed) IDX label file: the 8-byte header, then the labels.
#[must_use]
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len().saturating_add(8));
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&be_u32(labels.len()));
    out.extend_from_slice(labels);
    out
}

/// Gzip-compresses `bytes` (default level), e.g. to produce `.gz` IDX files.
#[must_use]
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(bytes.len() / 2 + 64),
        Compression::default(),
    );
    // The sink is a Vec, whose writes cannot fail, so neither can these calls; the empty
    // fallback only keeps the function total without a panic path.
    enc.write_all(bytes)
        .and_then(|()| enc.finish())
        .unwrap_or_default()
}

/// Checks that every label is below `classes` (e.g. 10 for digits); the first offender is
/// reported with its index.
///
/// # Errors
///
/// [`IdxError::LabelOutOfRange`] for the first label `>= classes`.
pub fn check_labels(labels: &[u8], classes: u8) -> Result<(), IdxError> {
    match labels.iter().position(|&l| l >= classes) {
        Some(index) => Err(IdxError::LabelOutOfRange {
            index,
            label: labels.get(index).copied().unwrap_or_default(),
            classes,
        }),
        None => Ok(()),
    }
}

/// Checks that there is exactly one label per image.
///
/// # Errors
///
/// [`IdxError::CountMismatch`] when `images.count != labels.len()`.
pub fn check_pair(images: &IdxImages, labels: &[u8]) -> Result<(), IdxError> {
    if images.count == labels.len() {
        Ok(())
    } else {
        Err(IdxError::CountMismatch {
            images: images.count,
            labels: labels.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST_IMAGES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/mnist-10k-images-idx3-ubyte.gz"
    );
    const MNIST_LABELS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/mnist-10k-labels-idx1-ubyte.gz"
    );

    /// Three 4x5 images with distinct pixels.
    fn small_images() -> IdxImages {
        IdxImages {
            count: 3,
            rows: 4,
            cols: 5,
            pixels: (0..60u8).map(|i| i.wrapping_mul(37)).collect(),
        }
    }

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    /// A unique temporary file path for this process and test.
    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("walkjump-idx-{}-{name}", std::process::id()))
    }

    #[test]
    fn round_trip_images_plain_and_gzip() {
        let img = small_images();
        let plain = encode_images(&img);
        assert_eq!(plain.len(), 16 + 60);
        assert_eq!(&plain[..4], &[0, 0, 8, 3]);
        assert_eq!(parse_images(&plain).unwrap(), img);
        let gz = gzip(&plain);
        assert_eq!(&gz[..2], &GZIP_MAGIC);
        assert_eq!(parse_images(&gz).unwrap(), img);
    }

    #[test]
    fn round_trip_labels_plain_and_gzip() {
        let labels: Vec<u8> = (0..=255).collect();
        let plain = encode_labels(&labels);
        assert_eq!(&plain[..8], &[0, 0, 8, 1, 0, 0, 1, 0]);
        assert_eq!(parse_labels(&plain).unwrap(), labels);
        assert_eq!(parse_labels(&gzip(&plain)).unwrap(), labels);
    }

    #[test]
    fn round_trip_through_files() {
        let img = small_images();
        let labels = vec![0u8, 1, 2];
        let paths = [
            temp_path("rt-img.idx"),
            temp_path("rt-img.idx.gz"),
            temp_path("rt-lbl.idx"),
            temp_path("rt-lbl.gz"),
        ];
        std::fs::write(&paths[0], encode_images(&img)).unwrap();
        std::fs::write(&paths[1], gzip(&encode_images(&img))).unwrap();
        std::fs::write(&paths[2], encode_labels(&labels)).unwrap();
        std::fs::write(&paths[3], gzip(&encode_labels(&labels))).unwrap();
        assert_eq!(read_images(&paths[0]).unwrap(), img);
        assert_eq!(read_images(&paths[1]).unwrap(), img);
        assert_eq!(read_labels(&paths[2]).unwrap(), labels);
        assert_eq!(read_labels(&paths[3]).unwrap(), labels);
        // Detection is by content: a gzip file without .gz and vice versa both work.
        let swapped = temp_path("rt-swapped.gz");
        std::fs::write(&swapped, encode_labels(&labels)).unwrap();
        assert_eq!(read_labels(&swapped).unwrap(), labels);
        // Trailing bytes in a plain file are caught from its size.
        let mut long = encode_labels(&labels);
        long.push(7);
        std::fs::write(&swapped, &long).unwrap();
        assert!(matches!(
            read_labels(&swapped),
            Err(IdxError::TrailingData {
                expected: 3,
                actual: 4,
                exact: true
            })
        ));
        // ... and a wrong kind through the file path too.
        assert!(matches!(
            read_images(&paths[3]),
            Err(IdxError::WrongKind { ndims: 1, .. })
        ));
        for p in paths.iter().chain([&swapped]) {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn missing_file_reports_path() {
        let path = Path::new("/nonexistent-walkjump-dir/x.idx");
        let err = read_images(path).unwrap_err();
        assert!(matches!(err, IdxError::Io { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot read /nonexistent-walkjump-dir/x.idx: "),
            "{msg}"
        );
        assert!(msg.contains("No such file or directory"), "{msg}");
        // A directory opens but cannot be read.
        let err = read_labels(&std::env::temp_dir()).unwrap_err();
        assert!(matches!(err, IdxError::Io { .. }), "{err:?}");
    }

    #[test]
    fn image_accessors() {
        let img = small_images();
        let f = img.image_f32(1).unwrap();
        assert_eq!(f.len(), 20);
        assert_eq!(f[0], f32::from(img.pixels[20]) / 255.0);
        assert_eq!(img.image(2).unwrap(), &img.pixels[40..60]);
        assert!(img.image_f32(3).is_none());
        assert!(img.image_f32(usize::MAX).is_none());
        // Inconsistent fields give None, not a panic.
        let bad = IdxImages {
            count: 5,
            rows: usize::MAX,
            cols: 2,
            pixels: vec![0; 4],
        };
        assert!(bad.image_f32(1).is_none());
        let short = IdxImages {
            count: 5,
            rows: 2,
            cols: 2,
            pixels: vec![0; 4],
        };
        assert!(short.image_f32(0).is_some());
        assert!(short.image_f32(1).is_none());
        assert_eq!(
            format!("{short:?}"),
            "IdxImages { count: 5, rows: 2, cols: 2, pixels: [4 bytes] }"
        );
    }

    #[test]
    fn real_mnist_10k() {
        let images = read_images(Path::new(MNIST_IMAGES)).unwrap();
        let labels = read_labels(Path::new(MNIST_LABELS)).unwrap();
        assert_eq!((images.count, images.rows, images.cols), (10_000, 28, 28));
        assert_eq!(images.pixels.len(), 10_000 * 28 * 28);
        assert_eq!(labels.len(), 10_000);
        check_pair(&images, &labels).unwrap();
        check_labels(&labels, 10).unwrap();

        let mut per_class = [0usize; 10];
        for &l in &labels {
            per_class[usize::from(l)] += 1;
        }
        assert!(per_class.iter().all(|&c| c > 0), "{per_class:?}");
        assert_eq!(per_class, EXPECTED_PER_CLASS);
        assert_eq!(&labels[..10], &EXPECTED_FIRST_LABELS);

        let sum: u64 = images.pixels.iter().map(|&p| u64::from(p)).sum();
        assert_eq!(sum, EXPECTED_PIXEL_SUM);
        let mean = sum as f64 / 255.0 / images.pixels.len() as f64;
        assert_eq!(format!("{mean:.4}"), EXPECTED_MEAN);
        let first = images.image_f32(0).unwrap();
        assert_eq!(first.len(), 784);
        assert!(first.iter().all(|v| (0.0..=1.0).contains(v)));

        // The in-memory parser agrees with the file reader.
        let bytes = std::fs::read(MNIST_LABELS).unwrap();
        assert_eq!(parse_labels(&bytes).unwrap(), labels);
    }

    /// Statistics of the bundled 10k digits (also checked independently with Python's gzip).
    const EXPECTED_PER_CLASS: [usize; 10] = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
    const EXPECTED_FIRST_LABELS: [u8; 10] = [6, 7, 6, 3, 1, 0, 6, 1, 3, 5];
    /// Sum of all 7 840 000 pixel bytes.
    const EXPECTED_PIXEL_SUM: u64 = 262_146_600;
    /// Mean pixel value in [0, 1] (0.131126...).
    const EXPECTED_MEAN: &str = "0.1311";

    #[test]
    fn empty_input() {
        assert!(matches!(
            parse_images(&[]),
            Err(IdxError::Empty { needed: 16, .. })
        ));
        assert!(matches!(
            parse_labels(&[]),
            Err(IdxError::Empty { needed: 8, .. })
        ));
        // A gzip stream of nothing is empty too.
        assert!(matches!(
            parse_images(&gzip(&[])),
            Err(IdxError::Empty { .. })
        ));
        let path = temp_path("empty.idx");
        std::fs::write(&path, []).unwrap();
        assert!(matches!(read_labels(&path), Err(IdxError::Empty { .. })));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn short_header() {
        let full = encode_images(&small_images());
        for len in [1, 3, 4, 9, 15] {
            let err = parse_images(&full[..len]).unwrap_err();
            assert!(
                matches!(err, IdxError::TooShort { actual, needed: 16, .. } if actual == len),
                "{len}: {err:?}"
            );
            let err = parse_images(&gzip(&full[..len])).unwrap_err();
            assert!(matches!(err, IdxError::TooShort { .. }), "{len}: {err:?}");
        }
        let labels = encode_labels(&[1, 2]);
        assert!(matches!(
            parse_labels(&labels[..6]),
            Err(IdxError::TooShort {
                actual: 6,
                needed: 8,
                ..
            })
        ));
    }

    #[test]
    fn wrong_magic() {
        // Label file given as images, and vice versa.
        let err = parse_images(&encode_labels(&[1, 2, 3])).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::WrongKind {
                    magic: LABELS_MAGIC,
                    ndims: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "IDX magic 0x00000801 is a label file, expected images"
        );
        let err = parse_labels(&gzip(&encode_images(&small_images()))).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::WrongKind {
                    magic: IMAGES_MAGIC,
                    ndims: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "IDX magic 0x00000803 is an image file, expected labels"
        );
        let err = parse_images(&header(0x0000_0802, &[1, 1])).unwrap_err();
        assert!(matches!(err, IdxError::WrongKind { ndims: 2, .. }));
        assert!(err.to_string().contains("a 2-dimensional array"), "{err}");
        // Not IDX at all (a PNG signature).
        let err = parse_images(b"\x89PNG\r\n\x1a\n0123456789").unwrap_err();
        assert!(
            matches!(err, IdxError::BadMagic { magic: 0x8950_4e47 }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("IDX magic 0x89504e47 is not"));
    }

    #[test]
    fn bad_data_type() {
        let mut f32_images = header(0x0000_0D03, &[1, 2, 2]);
        f32_images.extend_from_slice(&[0; 16]);
        let err = parse_images(&f32_images).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::UnsupportedType {
                    code: 0x0D,
                    name: "f32"
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "IDX data type 0x0D (f32) is not supported, expected unsigned bytes"
        );
        let err = parse_labels(&header(0x0000_0501, &[1])).unwrap_err();
        assert!(matches!(
            err,
            IdxError::UnsupportedType {
                code: 5,
                name: "unknown"
            }
        ));
    }

    #[test]
    fn zero_dims() {
        for (dims, want) in [
            ([0, 28, 28], "count"),
            ([10, 0, 28], "rows"),
            ([10, 28, 0], "cols"),
        ] {
            let err = parse_images(&header(IMAGES_MAGIC, &dims)).unwrap_err();
            assert!(
                matches!(err, IdxError::ZeroDim { axis, .. } if axis == want),
                "{err:?}"
            );
        }
        assert!(matches!(
            parse_labels(&header(LABELS_MAGIC, &[0])),
            Err(IdxError::ZeroDim { axis: "count", .. })
        ));
    }

    #[test]
    fn absurd_dims() {
        let err = parse_images(&header(IMAGES_MAGIC, &[1, 4097, 28])).unwrap_err();
        assert!(matches!(
            err,
            IdxError::AbsurdDims {
                rows: 4097,
                cols: 28
            }
        ));
        let err = parse_images(&header(IMAGES_MAGIC, &[1, 28, u32::MAX])).unwrap_err();
        assert!(matches!(err, IdxError::AbsurdDims { .. }));
        // 2^32 - 1 images of 28x28: rejected from the header alone, plain and gzip.
        let huge = header(IMAGES_MAGIC, &[u32::MAX, 28, 28]);
        let start = std::time::Instant::now();
        for bytes in [huge.clone(), gzip(&huge)] {
            let err = parse_images(&bytes).unwrap_err();
            assert!(
                matches!(
                    err,
                    IdxError::TooLarge {
                        count: u32::MAX,
                        item_bytes: 784,
                        total_bytes
                    } if total_bytes == u64::from(u32::MAX) * 784
                ),
                "{err:?}"
            );
        }
        // 4096 x 4096 x 2^32 - 1 still computes without overflow.
        let err = parse_images(&header(IMAGES_MAGIC, &[u32::MAX, 4096, 4096])).unwrap_err();
        assert!(matches!(err, IdxError::TooLarge { .. }));
        let err = parse_labels(&header(LABELS_MAGIC, &[u32::MAX])).unwrap_err();
        assert!(matches!(err, IdxError::TooLarge { .. }), "{err:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        // Within the limit but backed by no data: truncated, without allocating the claim.
        let big = header(IMAGES_MAGIC, &[2_000_000, 28, 28]);
        for bytes in [big.clone(), gzip(&big)] {
            assert!(matches!(
                parse_images(&bytes),
                Err(IdxError::Truncated {
                    expected: 1_568_000_000,
                    actual: 0
                })
            ));
        }
    }

    #[test]
    fn truncated_data() {
        let full = encode_images(&small_images());
        let cut = &full[..full.len() - 7];
        let err = parse_images(cut).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::Truncated {
                    expected: 60,
                    actual: 53
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "IDX data is truncated: the header promises 60 data bytes but only 53 are present"
        );
        // Compressed properly, but the payload is short.
        assert!(matches!(
            parse_images(&gzip(cut)),
            Err(IdxError::Truncated {
                expected: 60,
                actual: 53
            })
        ));
        let path = temp_path("truncated.idx");
        std::fs::write(&path, cut).unwrap();
        assert!(matches!(
            read_images(&path),
            Err(IdxError::Truncated {
                expected: 60,
                actual: 53
            })
        ));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn trailing_data() {
        let mut long = encode_labels(&[1, 2, 3]);
        long.extend_from_slice(&[9, 9]);
        let err = parse_labels(&long).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::TrailingData {
                    expected: 3,
                    actual: 5,
                    exact: true
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "IDX data has trailing bytes: the header promises 3 data bytes but 5 are present"
        );
        // Through gzip only one byte past the promise is ever read.
        let mut long_images = encode_images(&small_images());
        long_images.extend_from_slice(&vec![0u8; 1 << 20]);
        let err = parse_images(&gzip(&long_images)).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::TrailingData {
                    expected: 60,
                    actual: 61,
                    exact: false
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("but at least 61 are present"));
    }

    #[test]
    fn truncated_gzip() {
        let gz = gzip(&encode_images(&small_images()));
        // Cut inside the deflate data, and just before the end (inside the CRC/size trailer).
        for cut in [gz.len() / 2, gz.len() - 4, gz.len() - 1, 5] {
            let err = parse_images(&gz[..cut]).unwrap_err();
            assert!(matches!(err, IdxError::Gzip { .. }), "cut {cut}: {err:?}");
            assert!(err.to_string().starts_with("corrupt gzip stream: "));
        }
        let path = temp_path("truncated.idx.gz");
        std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        assert!(matches!(read_images(&path), Err(IdxError::Gzip { .. })));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn garbage_gzip() {
        let mut garbage = vec![0x1f, 0x8b];
        garbage.extend((0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let err = parse_labels(&garbage).unwrap_err();
        assert!(matches!(err, IdxError::Gzip { .. }), "{err:?}");
        // A valid gzip header followed by a corrupt deflate stream.
        let mut gz = gzip(&encode_labels(&[1, 2, 3, 4, 5, 6, 7, 8]));
        let len = gz.len();
        gz[10..len - 8].fill(0xff);
        assert!(matches!(parse_labels(&gz), Err(IdxError::Gzip { .. })));
        // A wrong CRC.
        let mut gz = gzip(&encode_labels(&[1, 2, 3]));
        let len = gz.len();
        gz[len - 8] ^= 1;
        assert!(matches!(parse_labels(&gz), Err(IdxError::Gzip { .. })));
    }

    #[test]
    fn labels_out_of_range() {
        check_labels(&[0, 9, 3], 10).unwrap();
        let err = check_labels(&[0, 9, 10, 200], 10).unwrap_err();
        assert!(matches!(
            err,
            IdxError::LabelOutOfRange {
                index: 2,
                label: 10,
                classes: 10
            }
        ));
        assert_eq!(
            err.to_string(),
            "label 10 at index 2 is out of range for 10 classes"
        );
        // The format itself allows any byte.
        assert_eq!(parse_labels(&encode_labels(&[255])).unwrap(), vec![255]);
        assert!(check_labels(&[0], 0).is_err());
    }

    #[test]
    fn count_mismatch() {
        let img = small_images();
        check_pair(&img, &[1, 2, 3]).unwrap();
        let err = check_pair(&img, &[1, 2]).unwrap_err();
        assert!(matches!(
            err,
            IdxError::CountMismatch {
                images: 3,
                labels: 2
            }
        ));
        assert_eq!(err.to_string(), "count mismatch: 3 images but 2 labels");
    }

    /// Deterministic xorshift64 for the fuzz test.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Parses `bytes` both ways; any result is fine, a panic or an inconsistent success is not.
    fn parse_all(bytes: &[u8]) {
        if let Ok(img) = parse_images(bytes) {
            assert_eq!(img.pixels.len(), img.count * img.rows * img.cols);
            assert!(img.image_f32(img.count - 1).is_some());
        }
        let _ = parse_labels(bytes);
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        // Random byte strings, some starting with a plausible magic.
        for i in 0..2000 {
            let len = rng.below(48);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match i % 4 {
                1 if len >= 4 => bytes[..4].copy_from_slice(&[0, 0, 8, 3]),
                2 if len >= 4 => bytes[..4].copy_from_slice(&[0, 0, 8, 1]),
                3 if len >= 2 => bytes[..2].copy_from_slice(&GZIP_MAGIC),
                _ => {}
            }
            parse_all(&bytes);
        }
        // Mutations of valid small files, plain and gzip.
        let seeds = [
            encode_images(&small_images()),
            gzip(&encode_images(&small_images())),
            encode_labels(&[3, 1, 4, 1, 5, 9, 2, 6]),
            gzip(&encode_labels(&[3, 1, 4, 1, 5, 9, 2, 6])),
        ];
        for i in 0..2000 {
            let mut bytes = seeds[i % seeds.len()].clone();
            match rng.below(4) {
                0 => {
                    for _ in 0..=rng.below(4) {
                        let at = rng.below(bytes.len());
                        bytes[at] ^= 1 << rng.below(8);
                    }
                }
                1 => bytes.truncate(rng.below(bytes.len())),
                2 => {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next() as u8;
                }
                _ => {
                    let extra = rng.below(8) + 1;
                    bytes.extend((0..extra).map(|_| rng.next() as u8));
                }
            }
            parse_all(&bytes);
        }
    }
}
