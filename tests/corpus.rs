//! The crafted corpus in `tests/corpus/` (written by `tests/corpus/make.py`): every bad checkpoint, IDX file and run
//! file is refused with its specific error, fast and without allocating more than the file justifies; the valid
//! ones load. Then the sampler's parameters at the command line: divergence is reported, nonsense is refused.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use candle_core::Device;
use common::*;
use walkjump::Error;
use walkjump::data::idx::{IdxError, parse_images, parse_labels, read_images, read_labels};
use walkjump::models::checkpoint::{Checkpoint, CheckpointError, ModelKind};
use walkjump::models::{Arch, Model, ScoreModel};
use walkjump::run::RunRecord;
use walkjump::sampling::langevin::Sampler;

// ---------------------------------------------------------------------------------------------------------------
// Allocation accounting: a global allocator that keeps, per thread, the bytes live and their peak, so that a test can
// measure what one call allocates on its own thread while other tests run in parallel.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bookkeeping only touches const-initialised
// thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's pointer, layout and size.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result, the most bytes it had allocated at once on this thread, and its wall time.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let t0 = Instant::now();
    let out = f();
    let secs = t0.elapsed();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize, secs)
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints, loaded the way the CLI loads them (`Model::load`: read the file, validate, build the model).

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(corpus(name)).unwrap_or_else(|e| panic!("{name}: {e} (run tests/corpus/make.py)"))
}

/// The error `Model::load` gives for a corpus file, after checking that its message is one non-empty line.
fn load_err(name: &str) -> Error {
    match Model::load(&corpus(name), &Device::Cpu) {
        Ok(_) => panic!("{name} loaded, but it is broken"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "{name}: not one line: {msg:?}"
            );
            e
        }
    }
}

fn ck(name: &str) -> CheckpointError {
    match load_err(name) {
        // Errors found from the file's 8-byte prefix, before it is read, come wrapped with the path.
        Error::Checkpoint(CheckpointError::InFile { error, .. }) => *error,
        Error::Checkpoint(c) => c,
        other => panic!("{name}: expected a checkpoint error, got: {other}"),
    }
}

fn arch(name: &str) -> String {
    match load_err(name) {
        Error::Architecture(m) => m,
        other => panic!("{name}: expected an architecture error, got: {other}"),
    }
}

const TIB4: usize = 4 << 40;

#[test]
fn valid_checkpoints_load() {
    for (name, kind) in [
        ("valid-deen.safetensors", ModelKind::DEEN),
        ("valid-deen-f64.safetensors", ModelKind::DEEN),
        ("valid-deen-quadratic-sampler.safetensors", ModelKind::DEEN),
        ("valid-mdae.safetensors", ModelKind::MDAE),
        ("valid-sigma-vae.safetensors", ModelKind::SIGMA_VAE),
        ("valid-alpha-vae.safetensors", ModelKind::ALPHA_VAE),
        ("valid-ebm-vae.safetensors", ModelKind::EBM_VAE),
        ("valid-conv-classifier.safetensors", ModelKind::CLASSIFIER),
    ] {
        let m = Model::load(&corpus(name), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name} must load: {e}"));
        assert_eq!(m.kind(), kind, "{name}");
        assert_eq!(m.data_shape(), (1, 4, 4), "{name}");
    }
    // F64 weights are converted to the same f32 values.
    let a = Checkpoint::from_bytes(&bytes("valid-deen.safetensors")).expect("f32");
    let b = Checkpoint::from_bytes(&bytes("valid-deen-f64.safetensors")).expect("f64");
    assert_eq!(a.tensors, b.tensors);
}

#[test]
fn envelope_errors() {
    assert!(matches!(
        ck("empty.safetensors"),
        CheckpointError::EmptyFile { .. }
    ));
    assert!(matches!(
        Checkpoint::from_bytes(&bytes("empty.safetensors")),
        Err(CheckpointError::Empty)
    ));
    assert!(matches!(
        ck("short-prefix.safetensors"),
        CheckpointError::TooShort { len: 5 }
    ));
    // The header is cut in half: the prefix promises twice what follows.
    let len = bytes("truncated-header.safetensors").len();
    let e = ck("truncated-header.safetensors");
    assert!(
        matches!(e, CheckpointError::HeaderPastEnd { claimed, available }
            if available == len - 8 && claimed as usize > available),
        "{e}"
    );
    let e = ck("header-past-end.safetensors");
    assert!(
        matches!(
            e,
            CheckpointError::HeaderPastEnd {
                claimed: 0x100_0000_0000,
                available: 64
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("1099511627776 bytes"), "{e}");
    let e = ck("header-not-json.safetensors");
    assert!(matches!(e, CheckpointError::HeaderNotJson { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("safetensors header is not valid JSON")
    );
    let e = ck("header-not-object.safetensors");
    assert!(
        matches!(&e, CheckpointError::HeaderMalformed { reason } if reason.contains("array")),
        "{e}"
    );
    // The 0xff byte sits inside the `kind` value of __metadata__.
    let raw = bytes("metadata-not-utf8.safetensors");
    let at = raw.iter().position(|&b| b == 0xff).expect("0xff") - 8;
    let e = ck("metadata-not-utf8.safetensors");
    assert!(
        matches!(e, CheckpointError::HeaderNotUtf8 { offset } if offset == at),
        "{e}"
    );
    let e = ck("trailing-bytes.safetensors");
    assert!(
        matches!(
            e,
            CheckpointError::DataLengthMismatch {
                covered: 292,
                available: 296
            }
        ),
        "{e}"
    );
    let e = ck("data-truncated.safetensors");
    assert!(
        matches!(&e, CheckpointError::TensorOutOfBounds { name, end: 292, available: 289 } if name == "net.l1.bias"),
        "{e}"
    );
}

#[test]
fn tensor_errors() {
    let e = ck("dtype-i32.safetensors");
    assert!(
        matches!(&e, CheckpointError::UnsupportedDtype { name, dtype } if name == "net.l0.bias" && dtype == "I32"),
        "{e}"
    );
    let e = ck("dtype-f16.safetensors");
    assert!(
        matches!(&e, CheckpointError::UnsupportedDtype { name, dtype } if name == "net.l1.bias" && dtype == "F16"),
        "{e}"
    );
    // Text from the file is escaped in the message (`ck` checks it is one line).
    let e = ck("dtype-newline.safetensors");
    assert!(
        matches!(&e, CheckpointError::UnsupportedDtype { name, dtype } if name == "net.l1.bias" && dtype == "F\n32"),
        "{e}"
    );
    assert!(e.to_string().contains("F\\n32"), "{e}");
    // Listed twice: JSON keeps the last entry (valid), the safetensors crate reads the first (a bad dtype).
    let e = ck("duplicate-tensor-newline.safetensors");
    assert!(
        matches!(&e, CheckpointError::HeaderMalformed { reason } if reason.contains("unknown variant")),
        "{e}"
    );
    // Shape [4, 16] of f32 needs 256 bytes, the offsets span 240.
    let e = ck("shape-bytes-mismatch.safetensors");
    assert!(
        matches!(&e, CheckpointError::TensorSizeMismatch { name, expected: 256, actual: 240, .. }
            if name == "net.l0.weight"),
        "{e}"
    );
    let e = ck("nan-weights.safetensors");
    assert!(
        matches!(&e, CheckpointError::NonFinite { name, nan: 8, inf: 0, total: 64 } if name == "net.l0.weight"),
        "{e}"
    );
    let e = ck("inf-weights.safetensors");
    assert!(
        matches!(&e, CheckpointError::NonFinite { name, nan: 0, inf: 2, total: 4 } if name == "net.l1.weight"),
        "{e}"
    );
    let e = ck("f64-out-of-range.safetensors");
    assert!(
        matches!(&e, CheckpointError::F64OutOfRange { name, count: 1 } if name == "net.l0.bias"),
        "{e}"
    );
    let e = ck("overlapping-offsets.safetensors");
    assert!(
        matches!(&e, CheckpointError::TensorOffsets { name, reason }
            if name == "net.l0.weight" && reason.contains("inside the previous tensor")),
        "{e}"
    );
}

#[test]
fn absurd_sizes_fail_fast_without_allocating() {
    // (file, check of the error); each claims terabytes somewhere in a file of under 1 KB.
    type Check = fn(&Error) -> bool;
    let cases: [(&str, Check); 5] = [
        ("absurd-offsets.safetensors", |e| {
            matches!(e, Error::Checkpoint(CheckpointError::TensorOutOfBounds { name, end, .. })
                if name == "huge" && *end == TIB4)
        }),
        ("absurd-shape.safetensors", |e| {
            matches!(e, Error::Checkpoint(CheckpointError::TensorSizeMismatch { name, expected, actual: 256, .. })
                if name == "net.l0.weight" && *expected == TIB4)
        }),
        (
            "absurd-shape-overflow.safetensors",
            |e| matches!(e, Error::Checkpoint(CheckpointError::TensorTooLarge { name }) if name == "net.l0.weight"),
        ),
        ("absurd-data-dims.safetensors", |e| {
            matches!(
                e,
                Error::Checkpoint(CheckpointError::DataDims {
                    channels: 4096,
                    height: 4096,
                    width: 4096
                })
            )
        }),
        // A valid file whose architecture wants a 65536 x 2^24 first layer: refused by shape, nothing allocated.
        ("absurd-arch.safetensors", |e| {
            matches!(e, Error::Architecture(m)
                if m.contains("net.l0.weight") && m.contains("[4, 16]") && m.contains("[65536, 16777216]"))
        }),
    ];
    for (name, check) in cases {
        let file = bytes(name);
        // Measured cold: nothing may be so expensive that only a warm-up hides it (an architecture error used to
        // symbolize a whole backtrace, 100+ MB and 0.3 s, when RUST_BACKTRACE was set).
        let (res, peak, time) = measure(|| Model::from_bytes(&file, &Device::Cpu));
        let e = match res {
            Ok(_) => panic!("{name} loaded"),
            Err(e) => e,
        };
        assert!(check(&e), "{name}: unexpected error: {e}");
        assert!(!e.to_string().contains('\n'), "{name}: {e:?}");
        assert!(
            time < Duration::from_millis(250),
            "{name}: took {time:?} to fail"
        );
        assert!(
            peak < 64 * file.len() + (256 << 10),
            "{name}: {peak} bytes allocated at once for a {}-byte file",
            file.len()
        );
    }
    // The file-level path too (reads the file first).
    let (res, _, time) =
        measure(|| Model::load(&corpus("absurd-offsets.safetensors"), &Device::Cpu));
    assert!(res.is_err());
    assert!(time < Duration::from_millis(250), "{time:?}");
}

/// Regression: with `RUST_BACKTRACE=1`, candle's `bail!` captures a backtrace and the loader formatted it (to keep
/// one line), symbolizing the whole stack: 135 MB and 0.3 s for the first architecture error of a process. Runs
/// itself in a fresh process with the variable set, so that the measured call is the first one.
#[test]
fn architecture_error_is_cheap_under_rust_backtrace() {
    const CHILD: &str = "WALKJUMP_CORPUS_CHILD";
    if std::env::var_os(CHILD).is_some() {
        for name in ["absurd-arch.safetensors", "shape-arch-mismatch.safetensors"] {
            let file = bytes(name);
            let (res, peak, time) = measure(|| Model::from_bytes(&file, &Device::Cpu));
            assert!(matches!(res, Err(Error::Architecture(_))), "{name}");
            assert!(
                peak < 64 * file.len() + (256 << 10),
                "{name}: {peak} bytes at once"
            );
            assert!(time < Duration::from_millis(250), "{name}: {time:?}");
        }
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "architecture_error_is_cheap_under_rust_backtrace",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_bad_checkpoint_is_cheap_to_refuse() {
    for entry in std::fs::read_dir(corpus("")).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".safetensors") || name.starts_with("valid-") {
            continue;
        }
        let file = std::fs::read(&path).expect("read");
        let (res, peak, time) = measure(|| Model::from_bytes(&file, &Device::Cpu));
        assert!(res.is_err(), "{name} loaded");
        assert!(time < Duration::from_millis(250), "{name}: {time:?}");
        assert!(
            peak < 64 * file.len() + (256 << 10),
            "{name}: {peak} bytes at once for a {}-byte file",
            file.len()
        );
    }
}

#[test]
fn metadata_errors() {
    assert!(matches!(
        ck("no-metadata.safetensors"),
        CheckpointError::NoMetadata
    ));
    let e = ck("not-walkjump.safetensors");
    assert!(
        matches!(&e, CheckpointError::NotWalkjump { found: Some(f) } if f == "pytorch"),
        "{e}"
    );
    let e = ck("future-version.safetensors");
    assert!(
        matches!(e, CheckpointError::UnsupportedVersion { found: 7 }),
        "{e}"
    );
    let e = ck("unknown-kind.safetensors");
    assert!(
        matches!(&e, CheckpointError::UnknownKind { value, .. } if value == "gan"),
        "{e}"
    );
    assert!(
        e.to_string().contains("deen"),
        "the message lists the kinds: {e}"
    );
    let e = ck("sigma-nan.safetensors");
    assert!(matches!(e, CheckpointError::SigmaNotFinite { .. }), "{e}");
    let e = ck("sigma-negative.safetensors");
    assert!(matches!(e, CheckpointError::SigmaNegative { .. }), "{e}");
    // The raw text around the number holds newlines: the message quotes the number only.
    let e = ck("sigma-inf-newline.safetensors");
    assert!(
        matches!(&e, CheckpointError::SigmaNotFinite { value } if value == "inf"),
        "{e}"
    );
    let e = ck("sigma-negative-newline.safetensors");
    assert!(
        matches!(&e, CheckpointError::SigmaNegative { value } if value == "-1"),
        "{e}"
    );
    let e = ck("missing-sigma.safetensors");
    assert!(
        matches!(e, CheckpointError::MissingKey { key: "sigma" }),
        "{e}"
    );
    let e = ck("arch-not-json.safetensors");
    assert!(matches!(e, CheckpointError::ArchNotJson { .. }), "{e}");
    let e = ck("arch-not-object.safetensors");
    assert!(
        matches!(e, CheckpointError::ArchNotObject { found: "array" }),
        "{e}"
    );
    let e = ck("metadata-value-not-string.safetensors");
    assert!(
        matches!(&e, CheckpointError::MetadataMalformed { reason } if reason.contains("`version`")),
        "{e}"
    );
    assert!(matches!(
        ck("no-tensors.safetensors"),
        CheckpointError::NoTensors
    ));
    // The library's file loader names the file around the same error.
    match Checkpoint::load(&corpus("unknown-kind.safetensors")) {
        Err(e) => {
            assert!(
                matches!(e.inner(), CheckpointError::UnknownKind { .. }),
                "{e}"
            );
            assert!(e.to_string().contains("unknown-kind.safetensors"), "{e}");
        }
        Ok(_) => panic!("unknown kind loaded"),
    }
}

#[test]
fn architecture_errors() {
    let m = arch("shape-arch-mismatch.safetensors");
    assert!(
        m.contains("net.l0.weight") && m.contains("[4, 15]") && m.contains("[4, 16]"),
        "{m}"
    );
    let m = arch("missing-tensor.safetensors");
    assert!(m.contains("net.l1.bias") && m.contains("missing"), "{m}");
    let m = arch("unexpected-tensor.safetensors");
    assert!(
        m.contains("net.l9.weight") && m.contains("not part of a deen"),
        "{m}"
    );
    let m = arch("arch-unknown-net.safetensors");
    assert!(m.contains("transformer"), "{m}");
    // Names from the file are echoed escaped, on one line (`arch` checks that).
    let m = arch("arch-newline.safetensors");
    assert!(m.contains("mlp\\nrm -rf"), "{m}");
    let m = arch("unexpected-tensor-newline.safetensors");
    assert!(m.contains("net.l9\\nweight"), "{m}");
    let m = arch("deen-with-two-measurements.safetensors");
    assert!(m.contains("one measurement") && m.contains('2'), "{m}");
    let m = arch("vae-without-latent.safetensors");
    assert!(m.contains("arch.latent"), "{m}");
}

// ---------------------------------------------------------------------------------------------------------------
// IDX files, through both the in-memory parser and the file reader.

fn images_err(name: &str) -> IdxError {
    let from_bytes = parse_images(&bytes(name)).expect_err(name);
    let from_file = read_images(&corpus(name)).expect_err(name);
    assert_eq!(from_bytes.to_string(), from_file.to_string(), "{name}");
    assert!(!from_bytes.to_string().contains('\n'));
    from_bytes
}

fn labels_err(name: &str) -> IdxError {
    let from_bytes = parse_labels(&bytes(name)).expect_err(name);
    let from_file = read_labels(&corpus(name)).expect_err(name);
    assert_eq!(from_bytes.to_string(), from_file.to_string(), "{name}");
    from_bytes
}

#[test]
fn valid_idx_files() {
    for name in ["valid-images.idx", "valid-images.idx.gz"] {
        let img = read_images(&corpus(name)).expect(name);
        assert_eq!((img.count, img.rows, img.cols), (3, 4, 4), "{name}");
        assert_eq!(img.pixels, parse_images(&bytes(name)).expect(name).pixels);
    }
    for name in ["valid-labels.idx", "valid-labels.idx.gz"] {
        assert_eq!(read_labels(&corpus(name)).expect(name), vec![3, 1, 4]);
    }
}

#[test]
fn idx_errors() {
    // The header's count disagrees with the file size, in both directions.
    let e = images_err("images-count-too-big.idx");
    assert!(
        matches!(
            e,
            IdxError::Truncated {
                expected: 80,
                actual: 48
            }
        ),
        "{e}"
    );
    let e = images_err("images-count-too-small.idx");
    assert!(
        matches!(
            e,
            IdxError::TrailingData {
                expected: 32,
                actual: 48,
                exact: true
            }
        ),
        "{e}"
    );
    let e = labels_err("labels-count-too-big.idx");
    assert!(
        matches!(
            e,
            IdxError::Truncated {
                expected: 9,
                actual: 3
            }
        ),
        "{e}"
    );
    let e = labels_err("labels-count-too-small.idx");
    assert!(
        matches!(
            e,
            IdxError::TrailingData {
                expected: 1,
                actual: 3,
                exact: true
            }
        ),
        "{e}"
    );
    let e = images_err("wrong-magic.idx");
    assert!(
        matches!(e, IdxError::BadMagic { magic: 0x1234_0803 }),
        "{e}"
    );
    let e = images_err("float-images.idx");
    assert!(
        matches!(
            e,
            IdxError::UnsupportedType {
                code: 0x0D,
                name: "f32"
            }
        ),
        "{e}"
    );
    let e = images_err("truncated.idx.gz");
    assert!(matches!(e, IdxError::Gzip { .. }), "{e}");
    assert!(e.to_string().starts_with("corrupt gzip stream"), "{e}");
    // A label file passed as images, and the other way round.
    let e = images_err("valid-labels.idx");
    assert!(
        matches!(
            e,
            IdxError::WrongKind {
                magic: 0x0801,
                ndims: 1,
                expected: "images"
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("a label file"), "{e}");
    let e = images_err("valid-labels.idx.gz");
    assert!(matches!(e, IdxError::WrongKind { ndims: 1, .. }), "{e}");
    let e = labels_err("valid-images.idx");
    assert!(
        matches!(
            e,
            IdxError::WrongKind {
                magic: 0x0803,
                ndims: 3,
                expected: "labels"
            }
        ),
        "{e}"
    );
    let e = images_err("zero-count.idx");
    assert!(matches!(e, IdxError::ZeroDim { axis: "count", .. }), "{e}");
    let e = images_err("absurd-side.idx");
    assert!(
        matches!(
            e,
            IdxError::AbsurdDims {
                rows: 100_000,
                cols: 4
            }
        ),
        "{e}"
    );
    let e = images_err("absurd-total.idx");
    assert!(
        matches!(
            e,
            IdxError::TooLarge {
                count: u32::MAX,
                ..
            }
        ),
        "{e}"
    );
    let e = images_err("empty.idx");
    assert!(matches!(e, IdxError::Empty { needed: 16, .. }), "{e}");
    let e = images_err("short-header.idx");
    assert!(
        matches!(
            e,
            IdxError::TooShort {
                actual: 10,
                needed: 16,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn idx_claims_cost_nothing_until_the_data_is_there() {
    // A 51-byte gzip whose header claims 100 000 images of 28x28 (78 MB) but inflates to 3 of them.
    let file = bytes("gzip-claims-more.idx.gz");
    let _ = parse_images(&file);
    let (res, peak, time) = measure(|| parse_images(&file));
    let e = res.expect_err("must be refused");
    assert!(
        matches!(
            e,
            IdxError::Truncated {
                expected: 78_400_000,
                actual: 2352
            }
        ),
        "{e}"
    );
    assert!(peak < 1 << 20, "{peak} bytes allocated at once");
    assert!(time < Duration::from_millis(250), "{time:?}");
    for name in [
        "absurd-total.idx",
        "absurd-side.idx",
        "images-count-too-big.idx",
    ] {
        let file = bytes(name);
        let (res, peak, time) = measure(|| parse_images(&file));
        assert!(res.is_err(), "{name}");
        assert!(peak < 1 << 20, "{name}: {peak} bytes");
        assert!(time < Duration::from_millis(250), "{name}: {time:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Run files (what `walkjump sample --replay` reads).

fn run_text(name: &str) -> String {
    String::from_utf8(bytes(name)).expect("utf-8")
}

fn run_param_err(name: &str) -> String {
    match RunRecord::from_json(&run_text(name)) {
        Err(Error::Param(m)) => {
            assert!(m.starts_with("not a walkjump run file"), "{name}: {m}");
            assert!(!m.contains('\n'), "{name}: {m}");
            m
        }
        Err(other) => panic!("{name}: expected a parameter error, got {other}"),
        Ok(_) => panic!("{name} parsed"),
    }
}

fn run_invalid(name: &str) -> String {
    // The chain's parameters are checked by `sampling`, whose error type is its own.
    use walkjump::sampling::Error;
    let rec =
        RunRecord::from_json(&run_text(name)).unwrap_or_else(|e| panic!("{name} must parse: {e}"));
    match rec.spec.chain.validate() {
        Err(Error::Param(m)) => m,
        Err(other) => panic!("{name}: expected a parameter error, got {other}"),
        Ok(()) => panic!("{name} validated"),
    }
}

#[test]
fn run_files() {
    let rec = RunRecord::from_json(&run_text("valid-run.json")).expect("valid run");
    rec.spec.chain.validate().expect("valid chain");
    assert_eq!(rec.spec.chain.sampler, Sampler::cheng(0.5, 0.5, 1.0));
    assert_eq!((rec.spec.chain.chains, rec.spec.steps), (4, 100));
    let rec = RunRecord::from_json(&run_text("valid-run-overdamped.json")).expect("valid run");
    rec.spec.chain.validate().expect("valid chain");

    run_param_err("run-not-json.json");
    assert!(run_param_err("run-unknown-sampler.json").contains("hmc"));
    assert!(run_param_err("run-newline-sampler.json").contains("cheng\\nrm -rf /"));
    assert!(run_param_err("run-missing-steps.json").contains("missing field `steps`"));
    assert!(run_param_err("run-negative-chains.json").contains("-4"));
    assert!(
        run_invalid("run-negative-delta.json").contains("delta must be a positive number, got -1")
    );
    assert!(run_invalid("run-every-zero.json").contains("steps per jump"));
    assert!(run_invalid("run-huge-friction.json").contains("too large"));
    assert!(run_invalid("run-too-many-chains.json").contains("chains must be between 1 and 65536"));
}

// ---------------------------------------------------------------------------------------------------------------
// Inputs that made a fuzz target fail (fuzz/README.md), kept in tests/fuzz-regressions/<target>/ and replayed here
// with the target's properties: no panic, every error one non-empty line, and a valid run record survives the
// save/replay round trip exactly.

fn one_line_error(what: &str, msg: String) {
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "{what}: error is not one line: {msg:?}"
    );
}

#[test]
fn fuzz_regressions_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut seen = 0;
    for target in [
        "checkpoint",
        "idx_images",
        "idx_labels",
        "run_json",
        "npy",
        "onnx",
    ] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in dir {
            let path = entry.expect("entry").path();
            let data = std::fs::read(&path).expect("read");
            let what = path.display().to_string();
            seen += 1;
            match target {
                "checkpoint" => {
                    if let Err(e) = Model::from_bytes(&data, &Device::Cpu) {
                        one_line_error(&what, e.to_string());
                    }
                }
                "idx_images" => {
                    if let Err(e) = parse_images(&data) {
                        one_line_error(&what, e.to_string());
                    }
                }
                "idx_labels" => {
                    if let Err(e) = parse_labels(&data) {
                        one_line_error(&what, e.to_string());
                    }
                }
                "npy" => {
                    // As the fuzz target: the first byte picks the image shape.
                    let Some((&pick, rest)) = data.split_first() else {
                        continue;
                    };
                    let c = if pick & 1 == 0 { 1 } else { 3 };
                    let side = 1 + (pick as usize >> 1) % 8;
                    if let Err(e) = walkjump::data::images::parse_npy(rest, c, side, side) {
                        one_line_error(&what, e.to_string());
                    }
                }
                "onnx" => {
                    if let Err(e) = walkjump::onnx::import_bytes(&data, &Default::default()) {
                        one_line_error(&what, e.to_string());
                    }
                }
                _ => {
                    let Ok(text) = std::str::from_utf8(&data) else {
                        continue;
                    };
                    match RunRecord::from_json(text) {
                        Err(e) => one_line_error(&what, e.to_string()),
                        Ok(rec) => match rec.spec.chain.validate() {
                            Err(e) => one_line_error(&what, e.to_string()),
                            // What `--save-run` writes must replay exactly.
                            Ok(()) => {
                                let saved = serde_json::to_string_pretty(&rec).expect("serialize");
                                let back = RunRecord::from_json(&saved).expect("reparse");
                                assert_eq!(back, rec, "{what}: changed through save and load");
                            }
                        },
                    }
                }
            }
        }
    }
    assert!(
        seen > 0,
        "no regression inputs found under {}",
        root.display()
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The command line: sampler parameters.

fn walkjump(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walkjump"))
        .args(args)
        .output()
        .expect("run walkjump")
}

/// A small random DEEN on 1x8x8 images, saved in a fresh directory.
fn small_deen(tag: &str) -> (PathBuf, String) {
    let dir = temp_dir(tag);
    let path = dir.join("deen.safetensors");
    random_checkpoint(
        meta(ModelKind::DEEN, 1.0, 1, &Arch::net(mlp(&[16])), 8, 8),
        3,
    )
    .save(&path)
    .expect("save");
    (dir, path.display().to_string())
}

fn refused(args: &[&str]) -> String {
    let out = walkjump(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "walkjump {args:?} should fail");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line on stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn huge_step_diverges_and_is_reported() {
    let (dir, ck) = small_deen("delta100");
    let png = dir.join("s.png").display().to_string();
    let out = walkjump(&[
        "sample", "-c", &ck, "--delta", "100", "--steps", "50", "--every", "5", "--chains", "4",
        "--out", &png,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("diverged  "))
        .unwrap_or_else(|| panic!("no divergence line in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "diverged");
    assert_eq!(&words[2..], ["of", "4", "chains"], "{line}");
    let n: usize = words[1].parse().expect("count");
    assert!(n >= 1, "delta 100 must make chains diverge: {stdout}");
    // Each stopped chain's reason follows (up to three).
    let idx = stdout.lines().position(|l| l == line).expect("line");
    let reasons = stdout
        .lines()
        .skip(idx + 1)
        .take_while(|l| l.starts_with("          "))
        .count();
    assert_eq!(reasons, n.min(3), "{stdout}");
    assert!(Path::new(&png).exists());
}

#[test]
fn nonsense_parameters_are_refused_in_one_line() {
    let (dir, ck) = small_deen("badparams");
    let png = dir.join("s.png").display().to_string();
    let base = [
        "sample",
        "-c",
        ck.as_str(),
        "--steps",
        "5",
        "--out",
        png.as_str(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args)
    };
    let e = run(&["--delta", "nan"]);
    assert!(
        e.contains("delta must be a positive number, got NaN"),
        "{e}"
    );
    let e = run(&["--delta", "-1"]);
    assert!(e.contains("delta must be a positive number, got -1"), "{e}");
    let e = run(&["--delta", "0"]);
    assert!(e.contains("delta"), "{e}");
    // gamma is refused whether or not the sampler uses it.
    let e = run(&["--gamma", "inf"]);
    assert!(
        e.contains("gamma must be a positive number, got inf"),
        "{e}"
    );
    let e = run(&["--sampler", "cheng", "--gamma", "inf"]);
    assert!(
        e.contains("gamma must be a positive number, got inf"),
        "{e}"
    );
    let e = run(&["--sampler", "sachs", "--u", "-2"]);
    assert!(e.contains("u must be a positive number, got -2"), "{e}");
    assert!(
        !Path::new(&png).exists(),
        "nothing is written for a refused run"
    );
}

/// The crafted ONNX files (tests/corpus/make_onnx.py): the valid ones load and score, every other one is refused
/// in one line that says what is wrong.
#[test]
fn onnx_corpus_is_refused_or_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let expect: &[(&str, &str)] = &[
        (
            "onnx-conv-negative-pads.onnx",
            "node 'conv' (Conv): has pads [1, -1, 1, 1]; walkjump pads 2D convolutions by 0 to 256 on a side",
        ),
        ("onnx-pad-wrap.onnx", "node 'pad' (Pad): has mode 'wrap'"),
        (
            "onnx-conv-dilated-unevenly.onnx",
            "node 'conv' (Conv): has dilations [2, 1]; walkjump dilates both axes alike",
        ),
        (
            "onnx-external-data.onnx",
            "keeps its values in an external file",
        ),
        ("onnx-local-function.onnx", "defines local function 'f'"),
        ("onnx-no-sigma.onnx", "does not say its noise level"),
        ("onnx-not-protobuf.onnx", "not an ONNX model"),
        ("onnx-old-opset.onnx", "opset 5 is outside"),
        ("onnx-reads-itself.onnx", "node 'loop' (Add): reads 'out'"),
        (
            "onnx-reshape-across-batch.onnx",
            "node 'reshape' (Reshape): reshapes across the batch",
        ),
        ("onnx-short-raw-data.onnx", "has 124 bytes for 32 values"),
        ("onnx-truncated.onnx", "not an ONNX model"),
        ("onnx-two-inputs.onnx", "the graph has 2 inputs"),
        ("onnx-undefined-input.onnx", "reads 'nowhere'"),
        ("onnx-unknown-shape.onnx", "pass --onnx-shape"),
        (
            "onnx-unsupported-op.onnx",
            "node 'cos' (Cos): is not supported",
        ),
        (
            "onnx-wrong-role.onnx",
            "a denoiser network must give 4 value(s)",
        ),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        if !name.starts_with("onnx-") || !name.ends_with(".onnx") {
            continue;
        }
        seen += 1;
        let result = Model::load(&path, &Device::Cpu);
        if name.starts_with("onnx-valid-") {
            let model = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            let y =
                candle_core::Tensor::ones((3, model.dim()), candle_core::DType::F32, &Device::Cpu)
                    .expect("y");
            let (_, score) = model
                .energy_and_score(&y, &mut walkjump::sampling::rng::Rng::new(0))
                .expect("score");
            assert_eq!(score.dims(), [3, model.dim()], "{name}");
            continue;
        }
        let Some((_, want)) = expect.iter().find(|(n, _)| *n == name) else {
            panic!("{name}: no expected error listed");
        };
        let msg = match result {
            Ok(_) => panic!("{name}: loaded"),
            Err(e) => e.to_string(),
        };
        one_line_error(&name, msg.clone());
        assert!(msg.contains(want), "{name}: {msg:?} should say {want:?}");
    }
    assert_eq!(seen, expect.len() + 4, "every crafted file checked");
}
