//! Device selection: the only place that knows about CUDA and Metal.

use candle_core::Device;

use crate::error::{Error, Result};

/// Parses `cpu`, `cuda`, `cuda:N` or `metal` and opens that device. A GPU that cannot be opened (no driver, no
/// device, or a build without the feature) falls back to the CPU; the returned note says why, in one line.
pub fn select(spec: &str) -> Result<(Device, Option<String>)> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok((Device::Cpu, None));
    }
    if let Some(rest) = spec.strip_prefix("cuda") {
        let ordinal = match rest.strip_prefix(':') {
            Some(n) => n.parse::<usize>().map_err(|_| {
                Error::Param(format!("bad CUDA device '{spec}' (use cuda or cuda:N)"))
            })?,
            None if rest.is_empty() => 0,
            None => {
                return Err(Error::Param(format!(
                    "bad device '{spec}' (cpu, cuda[:N], metal)"
                )));
            }
        };
        return Ok(open_cuda(ordinal));
    }
    if spec == "metal" {
        return Ok(open_metal());
    }
    Err(Error::Param(format!(
        "unknown device '{spec}' (cpu, cuda[:N], metal)"
    )))
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> (Device, Option<String>) {
    match Device::new_cuda(ordinal) {
        Ok(d) => (d, None),
        Err(e) => (
            Device::Cpu,
            Some(format!(
                "CUDA device {ordinal} is not usable ({}), using the CPU",
                e.to_string().lines().next().unwrap_or("")
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
    match Device::new_metal(0) {
        Ok(d) => (d, None),
        Err(e) => (
            Device::Cpu,
            Some(format!(
                "Metal is not usable ({}), using the CPU",
                e.to_string().lines().next().unwrap_or("")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_devices() {
        assert!(matches!(select("cpu"), Ok((Device::Cpu, None))));
        assert!(select("tpu").is_err());
        assert!(select("cuda:x").is_err());
        // Without a usable GPU, cuda falls back to the CPU with a note.
        if let Ok((Device::Cpu, note)) = select("cuda:0") {
            assert!(note.is_some());
        }
    }
}
