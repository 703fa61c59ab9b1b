//! NumPy `.npy` arrays (format 1.0-3.0, C order) `[N, h, w]` / `[N, c, h, w]` of `uint8` (0..255) or `float32` /
//! `float64` in `[0, 1]`.

use std::path::Path;

use super::{ImageFormat, MAX_BYTES, io, prefix};
use crate::data::{Error, Result};

/// A `.npy` array of images.
pub struct Npy;

impl ImageFormat for Npy {
    fn name(&self) -> &'static str {
        ".npy"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["npy"]
    }

    fn shape(&self, path: &Path) -> Result<(usize, usize, usize)> {
        let shown = path.display().to_string();
        let len = std::fs::metadata(path).map_err(|err| io(path, err))?.len();
        if len > MAX_BYTES {
            return Err(Error::Data(format!(
                "{shown} is larger than {MAX_BYTES} bytes"
            )));
        }
        let bytes = std::fs::read(path).map_err(|err| io(path, err))?;
        npy_image_shape(&bytes).map_err(|e| prefix(&shown, e))
    }

    fn read(&self, path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>> {
        let bytes = std::fs::read(path).map_err(|err| io(path, err))?;
        parse_npy(&bytes, c, h, w).map_err(|e| prefix(&path.display().to_string(), e))
    }
}

/// Parses a `.npy` array (format 1.0-3.0, C order) of `uint8`, `float32` or `float64`, shape `[N, h, w]` (c = 1)
/// or `[N, c, h, w]`.
pub fn parse_npy(bytes: &[u8], c: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>> {
    let (descr, shape, end) = npy_header(bytes)?;
    parse_npy_body(bytes, &descr, &shape, end, c, h, w)
}

/// The image shape `(c, h, w)` of a `.npy` array `[N, h, w]` or `[N, c, h, w]`.
pub fn npy_image_shape(bytes: &[u8]) -> Result<(usize, usize, usize)> {
    let (_, shape, _) = npy_header(bytes)?;
    match shape.as_slice() {
        [_, h, w] => Ok((1, *h, *w)),
        [_, c, h, w] => Ok((*c, *h, *w)),
        other => Err(Error::Data(format!(
            "not a usable .npy array: shape {other:?}; expected [N, h, w] or [N, c, h, w]"
        ))),
    }
}

/// `(descr, shape, offset of the data)` of a `.npy` file.
fn npy_header(bytes: &[u8]) -> Result<(String, Vec<usize>, usize)> {
    let bad = |m: &str| Error::Data(format!("not a usable .npy array: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NumPy magic"));
    }
    let major = bytes[6];
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(&format!("format version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("header past the end of the file"))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let rest = &header[at + key.len() + 2..];
        let colon = rest.find(':')?;
        Some(rest[colon + 1..].trim_start())
    };
    let descr = field("descr").ok_or_else(|| bad("no descr"))?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| bad("descr is not a string"))?;
    let fortran = field("fortran_order").ok_or_else(|| bad("no fortran_order"))?;
    if fortran.starts_with("True") {
        return Err(bad("Fortran order (save it with np.ascontiguousarray)"));
    }
    let shape_text = field("shape").ok_or_else(|| bad("no shape"))?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("shape is not a tuple"))?;
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("shape is not integers")))
        .collect::<Result<_>>()?;
    Ok((descr.to_string(), shape, end))
}

fn parse_npy_body(
    bytes: &[u8],
    descr: &str,
    shape: &[usize],
    end: usize,
    c: usize,
    h: usize,
    w: usize,
) -> Result<Vec<Vec<f32>>> {
    let bad = |m: &str| Error::Data(format!("not a usable .npy array: {m}"));
    let (n, sc, sh, sw) = match shape {
        [n, sh, sw] => (*n, 1, *sh, *sw),
        [n, sc, sh, sw] => (*n, *sc, *sh, *sw),
        other => {
            return Err(bad(&format!(
                "shape {other:?}; expected [N, h, w] or [N, c, h, w]"
            )));
        }
    };
    if (sc, sh, sw) != (c, h, w) {
        return Err(Error::Data(format!(
            "the array holds {sc}x{sh}x{sw} images, the model takes {c}x{h}x{w}"
        )));
    }
    let d = c * h * w;
    let count = n.checked_mul(d).ok_or_else(|| bad("shape too large"))?;
    let body = &bytes[end..];
    let values: Vec<f32> = match descr {
        "|u1" | "u1" | "<u1" => {
            let b = body
                .get(..count)
                .ok_or_else(|| bad("data shorter than its shape"))?;
            b.iter().map(|&p| p as f32 / 255.0).collect()
        }
        "<f4" => {
            let b = body
                .get(..count.checked_mul(4).ok_or_else(|| bad("shape too large"))?)
                .ok_or_else(|| bad("data shorter than its shape"))?;
            b.chunks_exact(4)
                .map(|q| f32::from_le_bytes([q[0], q[1], q[2], q[3]]))
                .collect()
        }
        "<f8" => {
            let b = body
                .get(..count.checked_mul(8).ok_or_else(|| bad("shape too large"))?)
                .ok_or_else(|| bad("data shorter than its shape"))?;
            b.chunks_exact(8)
                .map(|q| {
                    f64::from_le_bytes([q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]]) as f32
                })
                .collect()
        }
        other => {
            // The dtype is text from the file: escaped, so the message stays on one line.
            return Err(bad(&format!(
                "dtype {}; use uint8, float32 or float64 (little-endian)",
                crate::text::one_line(other)
            )));
        }
    };
    if values
        .iter()
        .any(|v| !v.is_finite() || *v < -1e-6 || *v > 1.0 + 1e-6)
    {
        return Err(Error::Data(
            "float pixels must be finite and in [0, 1]".into(),
        ));
    }
    if n == 0 {
        return Err(Error::Data("the array holds no images".into()));
    }
    Ok(values.chunks_exact(d).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn npy_arrays_of_each_dtype_read_back() {
        let u8s: Vec<u8> = (0..8).map(|i| i * 30).collect();
        let rows = parse_npy(&npy("|u1", "(2, 2, 2)", &u8s), 1, 2, 2).expect("u1");
        assert_eq!(rows.len(), 2);
        assert!((rows[1][3] - 210.0 / 255.0).abs() < 1e-7);
        let f: Vec<u8> = [0.0f32, 0.25, 0.5, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let rows = parse_npy(&npy("<f4", "(1, 1, 2, 2)", &f), 1, 2, 2).expect("f4");
        assert_eq!(rows, vec![vec![0.0, 0.25, 0.5, 1.0]]);
        let d: Vec<u8> = [0.5f64; 12].iter().flat_map(|v| v.to_le_bytes()).collect();
        let rows = parse_npy(&npy("<f8", "(1, 3, 2, 2)", &d), 3, 2, 2).expect("f8");
        assert_eq!(rows[0].len(), 12);
    }

    #[test]
    fn bad_npy_arrays_are_refused_with_a_reason() {
        let f: Vec<u8> = [0.0f32, 2.0, 0.5, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not numpy at all".to_vec(), "magic"),
            (npy("<f4", "(1, 2, 2)", &f), "[0, 1]"),
            (npy("<f4", "(1, 2, 2)", &f[..8]), "shorter"),
            (npy("<i8", "(1, 2, 2)", &[0; 32]), "dtype"),
            (npy("|u1", "(1, 3, 3)", &[0; 9]), "2x2"),
            (npy("|u1", "(4,)", &[0; 4]), "shape"),
            (npy("|u1", "(0, 2, 2)", &[]), "no images"),
        ];
        for (bytes, want) in cases {
            let e = parse_npy(&bytes, 1, 2, 2).expect_err(want).to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        let mut truncated = npy("|u1", "(1, 2, 2)", &[0; 4]);
        truncated.truncate(20);
        assert!(parse_npy(&truncated, 1, 2, 2).is_err());
    }
}
