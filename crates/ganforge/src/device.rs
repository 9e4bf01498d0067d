//! Choosing the compute device at run time: `--device cpu|cuda[:N]|wgpu|vulkan|tch[:cuda[:N]]`.
//!
//! Every backend other than the CPU one is a Cargo feature; asking for one that this binary was
//! built without is an error that says how to rebuild, never a panic deep inside burn.

use burn::tensor::Device;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device '{0}': expected cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N]")]
    Unknown(String),
    #[error("device '{spec}' needs the `{feature}` backend, but this ganforge was built without it; rebuild with `cargo build --release --features {feature}`")]
    NotBuilt { spec: String, feature: &'static str },
    #[error("bad device index in '{0}': expected a non-negative integer, as in cuda:1")]
    BadIndex(String),
}

/// Parses a device spec. `cpu` is burn's default `flex` backend, always available.
pub fn parse_device(spec: &str) -> Result<Device, DeviceError> {
    let spec_l = spec.trim().to_ascii_lowercase();
    let (kind, index) = match spec_l.split_once(':') {
        Some((k, rest)) => (k, Some(rest)),
        None => (spec_l.as_str(), None),
    };
    let parse_index = |s: Option<&str>| -> Result<usize, DeviceError> {
        match s {
            None => Ok(0),
            Some(s) => s.parse().map_err(|_| DeviceError::BadIndex(spec.to_string())),
        }
    };
    let not_built = |feature| DeviceError::NotBuilt { spec: spec.to_string(), feature };
    match kind {
        "cpu" | "flex" if index.is_none() => Ok(Device::flex()),
        "cuda" => {
            let _i = parse_index(index)?;
            #[cfg(feature = "cuda")]
            return Ok(Device::cuda(_i));
            #[allow(unreachable_code)]
            Err(not_built("cuda"))
        }
        "wgpu" if index.is_none() => {
            #[cfg(feature = "wgpu")]
            return Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice));
            #[allow(unreachable_code)]
            Err(not_built("wgpu"))
        }
        "vulkan" if index.is_none() => {
            #[cfg(feature = "vulkan")]
            return Ok(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice));
            #[allow(unreachable_code)]
            Err(not_built("vulkan"))
        }
        "tch" => {
            let _cuda = match index {
                None => None,
                Some(rest) => match rest.split_once(':') {
                    Some(("cuda", n)) => Some(parse_index(Some(n))?),
                    None if rest == "cuda" => Some(0),
                    _ => return Err(DeviceError::Unknown(spec.to_string())),
                },
            };
            #[cfg(feature = "tch")]
            return Ok(match _cuda {
                None => Device::libtorch(),
                Some(i) => Device::libtorch_cuda(i),
            });
            #[allow(unreachable_code)]
            Err(not_built("tch"))
        }
        _ => Err(DeviceError::Unknown(spec.to_string())),
    }
}

/// Whether this is the CPU backend (its memory is the host's).
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

/// Whether runs on this device are bit-for-bit repeatable (the CPU backend is; GPU kernels with
/// atomics are not).
pub fn is_deterministic(device: &Device) -> bool {
    is_cpu(device)
}

/// How closely results on `device` may be expected to match the CPU backend's: exactly on the
/// CPU itself (every CPU run is bit-for-bit repeatable), else within a relative tolerance, since
/// GPU kernels sum in other orders (tiled matrix products, atomics) and may fuse operations.
/// 1e-3 covers float32 reorderings through a DCGAN's dozen layers with margin; what exceeds it
/// is a wrong kernel, not rounding.
pub fn tolerance(device: &Device) -> Option<f32> {
    if is_cpu(device) {
        None
    } else {
        Some(1e-3)
    }
}

/// Whether `got` (from `device`) matches `want` (from the CPU) under [`tolerance`]: equal on the
/// CPU; elsewhere each value within the tolerance relative to the largest magnitude in `want`.
pub fn matches_cpu(device: &Device, got: &[f32], want: &[f32]) -> bool {
    if got.len() != want.len() {
        return false;
    }
    match tolerance(device) {
        None => got == want,
        Some(tol) => {
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            got.iter().zip(want).all(|(g, w)| (g - w).abs() <= tol * scale)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_always_parses() {
        assert!(parse_device("cpu").is_ok());
        assert!(parse_device("CPU").is_ok());
    }

    #[test]
    fn unknown_and_bad_index_are_errors() {
        let e = parse_device("tpu").unwrap_err().to_string();
        assert!(e.contains("unknown device 'tpu'"), "{e}");
        let e = parse_device("cuda:x").unwrap_err().to_string();
        assert!(e.contains("bad device index"), "{e}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_says_how_to_rebuild() {
        let e = parse_device("cuda:1").unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }

    /// Every GPU spec of a backend this build lacks names its feature; `wgpu` and `vulkan` take
    /// no index, `tch` only `tch:cuda[:N]`.
    #[test]
    fn every_backend_spec_parses_or_names_its_feature() {
        let cases = [
            ("vulkan", "vulkan", cfg!(feature = "vulkan")),
            ("wgpu", "wgpu", cfg!(feature = "wgpu")),
            ("tch", "tch", cfg!(feature = "tch")),
            ("tch:cuda:1", "tch", cfg!(feature = "tch")),
            ("cuda", "cuda", cfg!(feature = "cuda")),
        ];
        for (spec, feature, built) in cases {
            match parse_device(spec) {
                Ok(_) => assert!(built, "{spec} parsed without the {feature} feature"),
                Err(e) => {
                    assert!(!built, "{spec}: {e}");
                    assert!(e.to_string().contains(&format!("--features {feature}")), "{spec}: {e}");
                }
            }
        }
        for bad in ["vulkan:1", "wgpu:0", "tch:rocm", "cpu:0"] {
            assert!(parse_device(bad).unwrap_err().to_string().contains("unknown device"), "{bad}");
        }
    }

    /// On the CPU a result must be bit-for-bit the CPU's; off it, within 1e-3 of the largest value.
    #[test]
    fn comparisons_are_exact_on_the_cpu_and_tolerant_elsewhere() {
        let cpu = Device::flex();
        let want = [1.0, -2.0, 0.5];
        assert!(matches_cpu(&cpu, &want, &want));
        assert!(!matches_cpu(&cpu, &[1.0, -2.0, 0.500_001], &want));
        assert!(!matches_cpu(&cpu, &[1.0, -2.0], &want));
        assert_eq!(tolerance(&cpu), None);
    }
}
