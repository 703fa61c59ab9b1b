//! The image format registry (`walkjump::data::formats`): every registered format reads its own fixture through the
//! public readers (`read_images`, `image_shape`, `Dataset::from_files`) and refuses junk in one line; a format
//! defined here goes through the same path.

use std::path::{Path, PathBuf};

use walkjump::data::formats::{FORMATS, ImageFormat, format_for, read_with};
use walkjump::data::idx::{IdxImages, encode_images, gzip};
use walkjump::data::images::{image_shape, read_images};
use walkjump::data::{Dataset, Error, Result};

/// Two grey 3x4 images, pixel `i` of image `k` = `20 k + i` (of 255).
const H: usize = 3;
const W: usize = 4;

fn pixels() -> Vec<u8> {
    (0..2)
        .flat_map(|k| (0..H * W).map(move |i| (20 * k + i) as u8))
        .collect()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("walkjump-formats-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn png(path: &Path, k: usize) {
    let p = pixels();
    image::GrayImage::from_raw(W as u32, H as u32, p[k * H * W..(k + 1) * H * W].to_vec())
        .expect("image")
        .save(path)
        .expect("png");
}

fn npy(body: &[u8], shape: &str) -> Vec<u8> {
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}");
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

/// The fixture (both images, or the first only for a single PNG) and a junk file for each format, by name. A
/// registered format without an entry here fails the test.
fn fixture(name: &str, d: &Path) -> Option<(PathBuf, usize, PathBuf)> {
    Some(match name {
        "PNG folder" => {
            let f = d.join("pngs");
            std::fs::create_dir_all(&f).expect("dir");
            png(&f.join("a.png"), 0);
            png(&f.join("b.PNG"), 1);
            std::fs::write(f.join("notes.txt"), "ignored").expect("txt");
            let junk = d.join("junk-pngs");
            std::fs::create_dir_all(&junk).expect("dir");
            std::fs::write(junk.join("x.png"), b"not a png\n at all").expect("junk");
            (f, 2, junk)
        }
        "PNG" => {
            let f = d.join("one.png");
            png(&f, 0);
            let junk = d.join("junk.png");
            std::fs::write(&junk, b"\x89PNG\r\n\x1a\n broken\n").expect("junk");
            (f, 1, junk)
        }
        ".npy" => {
            let f = d.join("a.npy");
            std::fs::write(&f, npy(&pixels(), "(2, 3, 4)")).expect("npy");
            let junk = d.join("junk.npy");
            std::fs::write(&junk, npy(&[1, 2], "(2, 3, 4)")).expect("junk");
            (f, 2, junk)
        }
        "IDX" => {
            let f = d.join("images-idx3-ubyte.gz");
            let img = IdxImages {
                count: 2,
                rows: H,
                cols: W,
                pixels: pixels(),
            };
            std::fs::write(&f, gzip(&encode_images(&img))).expect("idx");
            let junk = d.join("junk-idx3-ubyte");
            std::fs::write(&junk, b"\x00\x00\x08\x03 line\n break").expect("junk");
            (f, 2, junk)
        }
        _ => return None,
    })
}

#[test]
fn every_registered_format_reads_its_fixture_and_refuses_junk_in_one_line() {
    let d = dir("registry");
    let names: Vec<&str> = FORMATS.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["PNG folder", "PNG", ".npy", "IDX"]);
    let want: Vec<f32> = pixels().iter().map(|&p| p as f32 / 255.0).collect();
    for format in FORMATS {
        let name = format.name();
        let (path, n, junk) =
            fixture(name, &d).unwrap_or_else(|| panic!("no fixture for the format {name}"));
        // The path goes to this format, and the public readers read it.
        let claimed = format_for(FORMATS, &path, path.is_dir()).expect("claimed");
        assert_eq!(claimed.name(), name);
        assert_eq!(image_shape(&path).expect(name), (1, H, W), "{name}");
        let rows = read_images(&path, 1, H, W).expect(name);
        assert_eq!(rows.concat(), want[..n * H * W], "{name}");
        let data = Dataset::from_files(&path, None).expect(name);
        assert_eq!((data.len(), data.images), (n, want[..n * H * W].to_vec()));
        // Another shape is refused, in one line.
        let e = read_images(&path, 1, W, H).expect_err(name).to_string();
        assert!(!e.contains('\n'), "{name}: {e}");
        // Junk is refused in one line, by the same format.
        assert_eq!(
            format_for(FORMATS, &junk, junk.is_dir())
                .expect("claimed")
                .name(),
            name
        );
        for e in [
            read_images(&junk, 1, H, W).expect_err(name).to_string(),
            Dataset::from_files(&junk, None)
                .expect_err(name)
                .to_string(),
        ] {
            assert!(!e.contains('\n') && !e.is_empty(), "{name}: {e}");
        }
    }
    // A missing file is one I/O line naming it.
    let e = read_images(&d.join("gone.npy"), 1, H, W)
        .expect_err("missing")
        .to_string();
    assert!(
        e.starts_with("cannot access") && e.contains("gone.npy"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Plain PGM (`P2`, ASCII): a format defined outside the crate.
struct Pgm;

impl ImageFormat for Pgm {
    fn name(&self) -> &'static str {
        "PGM"
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["pgm"]
    }

    fn shape(&self, path: &Path) -> Result<(usize, usize, usize)> {
        let (w, h, _) = parse_pgm(path)?;
        Ok((1, h, w))
    }

    fn read(&self, path: &Path, c: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>> {
        let (pw, ph, pixels) = parse_pgm(path)?;
        if (c, h, w) != (1, ph, pw) {
            return Err(Error::Data(format!(
                "{} holds 1x{ph}x{pw} images",
                path.display()
            )));
        }
        Ok(vec![pixels])
    }
}

fn parse_pgm(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bad = || Error::Data(format!("{} is not a plain PGM", path.display()));
    let text = std::fs::read_to_string(path).map_err(|_| bad())?;
    let mut it = text.split_whitespace();
    if it.next() != Some("P2") {
        return Err(bad());
    }
    let mut num = || -> Result<usize> { it.next().and_then(|t| t.parse().ok()).ok_or_else(bad) };
    let (w, h, max) = (num()?, num()?, num()?);
    let pixels = (0..w * h)
        .map(|_| num().map(|v| v as f32 / max as f32))
        .collect::<Result<Vec<_>>>()?;
    Ok((w, h, pixels))
}

#[test]
fn a_format_defined_outside_the_crate_goes_through_the_same_path() {
    let d = dir("extra");
    let path = d.join("x.pgm");
    std::fs::write(&path, "P2 2 1 10\n0 5\n").expect("pgm");
    // Without it, IDX (the last format) takes the file and refuses it.
    assert_eq!(
        format_for(FORMATS, &path, false).expect("idx").name(),
        "IDX"
    );
    assert!(read_images(&path, 1, 1, 2).is_err());
    // Listed before the registry, it claims its files; the size and empty checks are the registry's.
    let mut formats: Vec<&dyn ImageFormat> = vec![&Pgm];
    formats.extend_from_slice(FORMATS);
    let f = format_for(&formats, &path, false).expect("claimed");
    assert_eq!(f.name(), "PGM");
    assert_eq!(f.shape(&path).expect("shape"), (1, 1, 2));
    assert_eq!(
        read_with(f, &path, 1, 1, 2).expect("read"),
        vec![vec![0.0, 0.5]]
    );
    let data = f.dataset(&path, None).expect("data set");
    assert_eq!((data.spec.name.as_str(), data.len()), ("x.pgm", 1));
    let e = read_with(f, &path, 1, 2, 2).expect_err("shape").to_string();
    assert!(e.contains("1x1x2") && !e.contains('\n'), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
