//! Device selection: the only place that knows about CUDA and Metal.
//!
//! Every command and the app take a device spec (`cpu`, `cuda`, `cuda:N`, `metal`). A spec that names a GPU this
//! build cannot use (no `cuda` / `metal` feature, no driver, no device, a driver that loads but finds no usable GPU)
//! falls back to the CPU, with a one-line note saying why. A spec that is not a device at all is an error.

use std::fmt;

use candle_core::Device;

use crate::text::one_line;

/// Why a device spec was refused; the crate-wide `Error` takes it in as `Error::Param` (same message).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is not a device (`gpu`, `cuda:x` ...).
    #[error("invalid parameter: {0}")]
    Param(String),
}

/// Result alias for device selection.
pub type Result<T> = std::result::Result<T, Error>;

/// The device specs accepted everywhere, for help texts and selectors.
pub const SPECS: &str = "cpu, cuda, cuda:N, metal";

/// A parsed device spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
    /// The default Metal device.
    Metal,
}

impl DeviceSpec {
    /// Parses `cpu`, `cuda`, `cuda:N` or `metal` (case and surrounding spaces ignored).
    pub fn parse(spec: &str) -> Result<Self> {
        let s = spec.trim().to_ascii_lowercase();
        if s == "cpu" {
            return Ok(Self::Cpu);
        }
        if s == "metal" {
            return Ok(Self::Metal);
        }
        if let Some(rest) = s.strip_prefix("cuda") {
            if rest.is_empty() {
                return Ok(Self::Cuda(0));
            }
            if let Some(n) = rest.strip_prefix(':') {
                return n.parse::<usize>().map(Self::Cuda).map_err(|_| {
                    Error::Param(format!(
                        "bad CUDA device '{}' (use cuda or cuda:N)",
                        one_line(spec.trim())
                    ))
                });
            }
        }
        Err(Error::Param(format!(
            "unknown device '{}' (use {SPECS})",
            one_line(spec.trim())
        )))
    }

    /// Opens the device, or the CPU with a one-line note when it cannot be used.
    pub fn open(self) -> (Device, Option<String>) {
        match self {
            Self::Cpu => (Device::Cpu, None),
            Self::Cuda(n) => open_cuda(n),
            Self::Metal => open_metal(),
        }
    }

    /// Whether this spec names a GPU.
    pub fn is_gpu(self) -> bool {
        !matches!(self, Self::Cpu)
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(0) => write!(f, "cuda"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => write!(f, "metal"),
        }
    }
}

/// Parses `cpu`, `cuda`, `cuda:N` or `metal` and opens that device. A GPU that cannot be opened (no driver, no
/// device, or a build without the feature) falls back to the CPU; the returned note says why, in one line.
pub fn select(spec: &str) -> Result<(Device, Option<String>)> {
    Ok(DeviceSpec::parse(spec)?.open())
}

/// The first line of an error, with control characters escaped (driver messages can span lines).
#[cfg(any(feature = "cuda", feature = "metal"))]
fn first_line(e: &dyn fmt::Display) -> String {
    let text = e.to_string();
    one_line(text.lines().next().unwrap_or(""))
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> (Device, Option<String>) {
    // `new_cuda` fails when the driver finds no device (or not this one); a driver that loads but has no usable GPU
    // can also fail at the first allocation, so make one before handing the device out.
    let opened = Device::new_cuda(ordinal).and_then(|d| {
        candle_core::Tensor::zeros(1, candle_core::DType::F32, &d)?;
        Ok(d)
    });
    match opened {
        Ok(d) => (d, None),
        Err(e) => (
            Device::Cpu,
            Some(format!(
                "CUDA device {ordinal} is not usable ({}), using the CPU",
                first_line(&e)
            )),
        ),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_ordinal: usize) -> (Device, Option<String>) {
    (
        Device::Cpu,
        Some("this build has no CUDA support (build with --features cuda), using the CPU".into()),
    )
}

#[cfg(feature = "metal")]
fn open_metal() -> (Device, Option<String>) {
    let opened = Device::new_metal(0).and_then(|d| {
        candle_core::Tensor::zeros(1, candle_core::DType::F32, &d)?;
        Ok(d)
    });
    match opened {
        Ok(d) => (d, None),
        Err(e) => (
            Device::Cpu,
            Some(format!(
                "Metal is not usable ({}), using the CPU",
                first_line(&e)
            )),
        ),
    }
}

#[cfg(not(feature = "metal"))]
fn open_metal() -> (Device, Option<String>) {
    (
        Device::Cpu,
        Some("this build has no Metal support (build with --features metal), using the CPU".into()),
    )
}

/// A short name for the device, for status lines.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

/// The GPU backends compiled into this build (empty for a CPU-only build).
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    if cfg!(feature = "metal") {
        v.push("metal");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_specs() {
        assert_eq!(DeviceSpec::parse("cpu").ok(), Some(DeviceSpec::Cpu));
        assert_eq!(DeviceSpec::parse(" CPU ").ok(), Some(DeviceSpec::Cpu));
        assert_eq!(DeviceSpec::parse("cuda").ok(), Some(DeviceSpec::Cuda(0)));
        assert_eq!(DeviceSpec::parse("cuda:0").ok(), Some(DeviceSpec::Cuda(0)));
        assert_eq!(DeviceSpec::parse("Cuda:3").ok(), Some(DeviceSpec::Cuda(3)));
        assert_eq!(DeviceSpec::parse("metal").ok(), Some(DeviceSpec::Metal));
        for bad in [
            "", "tpu", "cuda:", "cuda:x", "cuda:-1", "cuda0", "cudax", "cuda:1:2", "gpu", "cpu:0",
        ] {
            assert!(DeviceSpec::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            DeviceSpec::Cpu,
            DeviceSpec::Cuda(0),
            DeviceSpec::Cuda(7),
            DeviceSpec::Metal,
        ] {
            assert_eq!(DeviceSpec::parse(&s.to_string()).ok(), Some(s));
        }
        assert!(!DeviceSpec::Cpu.is_gpu());
        assert!(DeviceSpec::Cuda(1).is_gpu() && DeviceSpec::Metal.is_gpu());
    }

    #[test]
    fn errors_are_one_line() {
        for bad in ["tpu", "cuda:x", "weird\ndevice", "cuda:\r9"] {
            let msg = match select(bad) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{bad:?} was accepted"),
            };
            assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
            assert!(msg.contains("device"), "{msg}");
        }
    }

    #[test]
    fn cpu_has_no_note() {
        assert!(matches!(select("cpu"), Ok((Device::Cpu, None))));
    }

    #[test]
    fn unusable_gpu_falls_back_with_one_line() {
        // Without a usable GPU (or without the feature) a GPU spec gives the CPU and a one-line note; with one, the
        // device itself and no note.
        for spec in ["cuda", "cuda:0", "cuda:99", "metal"] {
            match select(spec) {
                Ok((Device::Cpu, Some(note))) => {
                    assert!(!note.contains('\n'), "{note:?}");
                    assert!(note.ends_with("using the CPU"), "{note}");
                }
                Ok((Device::Cpu, None)) => panic!("{spec}: CPU without a note"),
                Ok((_, note)) => assert!(note.is_none()),
                Err(e) => panic!("{spec}: {e}"),
            }
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cpu_build_names_the_missing_feature() {
        let (_, note) = select("cuda").unwrap_or((Device::Cpu, None));
        assert!(note.is_some_and(|n| n.contains("--features cuda")));
    }
}
