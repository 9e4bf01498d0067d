//! The networks of PyTorch's reference DCGAN example (github.com/pytorch/examples, dcgan/main.py)
//! in and out of ganforge.
//!
//! The example holds each network as one `nn.Sequential` called `main`, so its state-dict names
//! are layer indices: G is ConvTranspose(0), BatchNorm(1), ReLU(2), then ConvTranspose,
//! BatchNorm, ReLU per doubling, and a last ConvTranspose before tanh; D is Conv(0),
//! LeakyReLU(1), then Conv, BatchNorm, LeakyReLU per halving, and a last Conv before its
//! sigmoid. All convolutions are bias-free with 4x4 kernels, which is ganforge's DCGAN with its
//! defaults, so the weights map one to one (transposed convolutions are `[in, out, k, k]` in
//! both). BatchNorm's `weight`/`bias` are burn's `gamma`/`beta`; `num_batches_tracked` has no
//! use here and is skipped on import and written as 0 on export.
//!
//! One difference in the outputs: the example's D ends in a sigmoid, ganforge's D returns the
//! logit (the losses take logits, which is numerically safer), so sigmoid(D_ganforge) = D_torch.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;

use crate::config::GanConfig;
use crate::nets::{self, Arch, Discriminator, Generator};
use crate::params::{map_named, named_tensors, HostTensor};
use crate::pth::{self, PthError, PthTensor, StateDict};

#[derive(Debug, thiserror::Error)]
pub enum DcganImportError {
    #[error(transparent)]
    Pth(#[from] PthError),
    #[error("{path} is not a generator state dict of PyTorch's DCGAN example: {reason}")]
    NotDcganG { path: String, reason: String },
    #[error("{path} is not a discriminator state dict of PyTorch's DCGAN example: {reason}")]
    NotDcganD { path: String, reason: String },
    #[error("--{flag} {given} disagrees with the file, whose weights have {flag} = {found}")]
    Disagrees { flag: &'static str, given: usize, found: usize },
    #[error("only a plain DCGAN can be exported to PyTorch's example: {0}")]
    NotExportable(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The example's hyper-parameters, as its command line names them. `None`: read from the file.
#[derive(Clone, Copy, Debug, Default)]
pub struct TorchDcgan {
    pub nz: Option<usize>,
    pub ngf: Option<usize>,
    pub ndf: Option<usize>,
    pub nc: Option<usize>,
    pub size: Option<usize>,
}

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    G,
    D,
}

/// (PyTorch name, ganforge name) of every tensor, for a network with `stages` stride-2 stages
/// besides the 4x4 end (4 at 64x64).
fn name_table(net: Net, stages: usize) -> Vec<(String, String)> {
    let bn = |torch: usize, ours: &str| {
        [("weight", "gamma"), ("bias", "beta"), ("running_mean", "running_mean"), ("running_var", "running_var")]
            .map(|(t, o)| (format!("main.{torch}.{t}"), format!("{ours}.{o}")))
    };
    let mut table = Vec::new();
    match net {
        Net::G => {
            table.push(("main.0.weight".to_string(), "project.weight".to_string()));
            table.extend(bn(1, "project_bn"));
            for i in 0..stages - 1 {
                table.push((format!("main.{}.weight", 3 + 3 * i), format!("blocks.{i}.up.weight")));
                table.extend(bn(4 + 3 * i, &format!("blocks.{i}.bn")));
            }
            table.push((format!("main.{}.weight", 3 * stages), "to_image.weight".to_string()));
        }
        Net::D => {
            table.push(("main.0.weight".to_string(), "from_image.weight".to_string()));
            for i in 0..stages - 1 {
                table.push((format!("main.{}.weight", 2 + 3 * i), format!("blocks.{i}.conv.weight")));
                table.extend(bn(3 + 3 * i, &format!("blocks.{i}.bn")));
            }
            table.push((format!("main.{}.weight", 3 * stages - 1), "head.weight".to_string()));
        }
    }
    table
}

/// The convolution weights of `state` in layer order: `main.K.weight` with 4 dimensions.
fn conv_layers(state: &StateDict) -> Vec<(usize, &HostTensor)> {
    let mut convs: Vec<(usize, &HostTensor)> = state
        .floats
        .iter()
        .filter_map(|(name, t)| {
            let k = name.strip_prefix("main.")?.strip_suffix(".weight")?.parse().ok()?;
            (t.shape.len() == 4).then_some((k, t))
        })
        .collect();
    convs.sort_by_key(|(k, _)| *k);
    convs
}

/// Reads the hyper-parameters off the weights' shapes and checks any that were given.
fn infer(state: &StateDict, net: Net) -> Result<(TorchDcgan, usize), String> {
    let convs = conv_layers(state);
    if convs.len() < 2 {
        let names: Vec<&String> = state.floats.keys().take(4).collect();
        return Err(format!("expected main.0.weight, main.3.weight, ... (4-D convolution weights); found {names:?}"));
    }
    let (first, last) = (convs[0].1, convs[convs.len() - 1].1);
    let stages = convs.len() - 1;
    let size = 4 << stages;
    // G: first [nz, 8ngf, 4, 4], last [ngf, nc, 4, 4]. D: first [ndf, nc, 4, 4], last [1, 8ndf, 4, 4].
    let consistent = match net {
        Net::G => first.shape[1] == last.shape[0] << (stages - 1),
        Net::D => last.shape[0] == 1 && last.shape[1] == first.shape[0] << (stages - 1),
    };
    if !consistent {
        return Err(format!(
            "its first and last convolutions ({:?}, {:?}) do not have the example's widths, which double at each layer",
            first.shape, last.shape
        ));
    }
    let found = match net {
        Net::G => TorchDcgan { nz: Some(first.shape[0]), ngf: Some(last.shape[0]), nc: Some(last.shape[1]), size: Some(size), ndf: None },
        Net::D => TorchDcgan { ndf: Some(first.shape[0]), nc: Some(first.shape[1]), size: Some(size), nz: None, ngf: None },
    };
    Ok((found, stages))
}

fn check_given(given: &TorchDcgan, found: &TorchDcgan) -> Result<(), DcganImportError> {
    let pairs = [
        ("nz", given.nz, found.nz),
        ("ngf", given.ngf, found.ngf),
        ("ndf", given.ndf, found.ndf),
        ("nc", given.nc, found.nc),
        ("size", given.size, found.size),
    ];
    for (flag, g, f) in pairs {
        if let (Some(given), Some(found)) = (g, f) {
            if given != found {
                return Err(DcganImportError::Disagrees { flag, given, found });
            }
        }
    }
    Ok(())
}

/// A ganforge config for the example's network (preset mnist64 with these shapes).
pub fn config_for(h: &TorchDcgan) -> Result<GanConfig, DcganImportError> {
    let mut sets = Vec::new();
    let mut set = |k: &str, v: Option<usize>| {
        if let Some(v) = v {
            sets.push(format!("{k}={v}"));
        }
    };
    set("model.nz", h.nz);
    set("model.channels", h.nc);
    set("model.image_size", h.size);
    set("dcgan.ngf", h.ngf);
    set("dcgan.ndf", h.ndf);
    Ok(GanConfig::resolve(Some("mnist64"), None, &sets)?)
}

/// Copies the example's tensors into a freshly built ganforge network, checking names and shapes.
fn load_into<M: burn::module::Module>(module: M, state: &StateDict, net: Net, stages: usize) -> Result<M, String> {
    let table = name_table(net, stages);
    let ours = named_tensors(&module);
    let mut by_ours: BTreeMap<&str, &HostTensor> = BTreeMap::new();
    for (torch, mine) in &table {
        let t = state.floats.get(torch).ok_or_else(|| format!("no tensor '{torch}'"))?;
        let want = &ours.get(mine.as_str()).ok_or_else(|| format!("internal: no '{mine}' in ganforge's network"))?.shape;
        if &t.shape != want {
            return Err(format!("'{torch}' has shape {:?}, expected {want:?}", t.shape));
        }
        by_ours.insert(mine, t);
    }
    let known: std::collections::BTreeSet<&str> = table.iter().map(|(t, _)| t.as_str()).collect();
    if let Some(extra) = state.floats.keys().find(|k| !known.contains(k.as_str())) {
        return Err(format!("unexpected tensor '{extra}'"));
    }
    if by_ours.len() != ours.len() {
        return Err(format!("internal: ganforge's network has {} tensors, the table maps {}", ours.len(), by_ours.len()));
    }
    Ok(map_named(module, |name, _| by_ours.get(name).map(|t| (*t).clone())))
}

/// Loads a generator saved by the example (`torch.save(netG.state_dict(), ...)`); returns the
/// config it corresponds to and G, ready to sample (batch norm on its running statistics).
pub fn import_generator(path: &Path, given: &TorchDcgan, device: &Device) -> Result<(GanConfig, Generator), DcganImportError> {
    let state = pth::read(path)?;
    let bad = |reason: String| DcganImportError::NotDcganG { path: path.display().to_string(), reason };
    let (found, stages) = infer(&state, Net::G).map_err(bad)?;
    check_given(given, &found)?;
    let cfg = config_for(&TorchDcgan { ndf: given.ndf, ..found })?;
    let (g, _) = nets::build(&cfg.families(), cfg.seed, device);
    let g = load_into(g, &state, Net::G, stages).map_err(bad)?;
    Ok((cfg, g))
}

/// Loads a discriminator saved by the example. Its output is a logit: apply a sigmoid for the
/// example's probability.
pub fn import_discriminator(path: &Path, given: &TorchDcgan, device: &Device) -> Result<(GanConfig, Discriminator), DcganImportError> {
    let state = pth::read(path)?;
    let bad = |reason: String| DcganImportError::NotDcganD { path: path.display().to_string(), reason };
    let (found, stages) = infer(&state, Net::D).map_err(bad)?;
    check_given(given, &found)?;
    let cfg = config_for(&TorchDcgan { nz: given.nz, ngf: given.ngf, ..found })?;
    let (_, d) = nets::build(&cfg.families(), cfg.seed, device);
    let d = load_into(d, &state, Net::D, stages).map_err(bad)?;
    Ok((cfg, d))
}

/// Why `cfg`'s networks do not have the example's layout, if they do not.
fn exportable(cfg: &GanConfig) -> Result<(), DcganImportError> {
    let d = &cfg.dcgan;
    let why = if cfg.model.arch != Arch::Dcgan {
        Some(format!("model.arch is {:?}", cfg.model.arch))
    } else if cfg.model.classes > 0 {
        Some("the model is conditional (model.classes > 0); the example has no labels".into())
    } else if d.upsample != crate::nets::dcgan::Upsample::Transposed || d.g_kernel != 4 {
        Some("G must use transposed 4x4 convolutions (dcgan.upsample = transposed, g_kernel = 4)".into())
    } else if d.spectral_norm_d || d.spectral_norm_g {
        Some("spectral normalization has no counterpart in the example".into())
    } else if !d.batch_norm_d {
        Some("D without batch norm (dcgan.batch_norm_d = false) has no counterpart in the example".into())
    } else {
        None
    };
    why.map_or(Ok(()), |w| Err(DcganImportError::NotExportable(w)))
}

/// Writes `module` (G or D of `cfg`) as the example's state dict, which its
/// `load_state_dict(torch.load(path))` accepts.
pub fn export<M: burn::module::Module>(module: &M, net: Net, cfg: &GanConfig, path: &Path) -> Result<(), DcganImportError> {
    exportable(cfg)?;
    let ours = named_tensors(module);
    let stages = cfg.model.image_size.trailing_zeros() as usize - 2;
    let table = name_table(net, stages);
    if table.len() != ours.len() {
        return Err(DcganImportError::NotExportable(format!(
            "the network has {} tensors, the example's layout {}",
            ours.len(),
            table.len()
        )));
    }
    let mut tensors = Vec::new();
    for (torch, mine) in table {
        let t = ours.get(&mine).ok_or_else(|| DcganImportError::NotExportable(format!("no tensor '{mine}'")))?;
        tensors.push((torch.clone(), PthTensor::Float(t.clone())));
        if let Some(layer) = torch.strip_suffix(".running_var") {
            tensors.push((format!("{layer}.num_batches_tracked"), PthTensor::Long { shape: vec![], values: vec![0] }));
        }
    }
    pth::write(path, &tensors)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example's 64x64 layer indices: G 0,1 | 3,4 | 6,7 | 9,10 | 12; D 0 | 2,3 | 5,6 | 8,9 | 11.
    #[test]
    fn layer_indices_of_the_64px_example() {
        let g: Vec<String> = name_table(Net::G, 4).into_iter().map(|(t, _)| t).filter(|t| t.ends_with(".weight")).collect();
        assert_eq!(
            g,
            [
                "main.0.weight",
                "main.1.weight",
                "main.3.weight",
                "main.4.weight",
                "main.6.weight",
                "main.7.weight",
                "main.9.weight",
                "main.10.weight",
                "main.12.weight"
            ]
        );
        let d: Vec<String> = name_table(Net::D, 4).into_iter().map(|(t, _)| t).filter(|t| t.ends_with(".weight")).collect();
        assert_eq!(
            d,
            [
                "main.0.weight",
                "main.2.weight",
                "main.3.weight",
                "main.5.weight",
                "main.6.weight",
                "main.8.weight",
                "main.9.weight",
                "main.11.weight"
            ]
        );
    }
}
