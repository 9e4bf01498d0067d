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
}
