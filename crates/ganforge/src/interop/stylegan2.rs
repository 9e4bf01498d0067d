//! Generators of NVlabs' stylegan2-ada-pytorch (Karras et al. 2020) as a state dict:
//! `torch.save(G.state_dict(), "G.pth")` of its `training.networks.Generator` (for instance
//! `G_ema` of a `network-snapshot-*.pkl`, unpickled where NVlabs' code is importable; ganforge
//! does not read the pickle itself, which needs their classes).
//!
//! The layout allows it: ganforge's StyleGAN2-style model (nets/stylegan2.rs) has NVlabs'
//! tensors under other names (`mapping.fc0` is `mapping.fc.0`, `synthesis.b16` the third
//! synthesis block, `const` is `constant`) and one other shape (a scalar noise strength is [1]).
//! The sizes are read from the file; the widths must follow NVlabs' rule min(channel_base / r,
//! channel_max), as every NVlabs config does. What a state dict does not hold is assumed at
//! NVlabs' defaults: the mapping network's learning-rate multiplier 0.01 (it scales the stored
//! weights), architecture 'skip' (checked: a toRGB in every block), the [1, 3, 3, 1] filter
//! (checked against the `resample_filter` buffers), no `conv_clamp` (NVlabs' configs clamp at
//! 256 only under fp16, which does not change images in range). Conditional generators
//! (`mapping.embed`) are refused.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;

use crate::config::GanConfig;
use crate::nets::{self, Generator};
use crate::params::{map_named, named_tensors, HostTensor};
use crate::pth::{self, PthError};

#[derive(Debug, thiserror::Error)]
pub enum Stylegan2ImportError {
    #[error(transparent)]
    Pth(#[from] PthError),
    #[error("{path} is not the state dict of a stylegan2-ada-pytorch generator: {reason}")]
    NotStylegan2 { path: String, reason: String },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// ganforge's name of an NVlabs generator tensor; None for the buffers ganforge does not keep
/// (`resample_filter`).
pub fn ganforge_name(nvlabs: &str) -> Option<String> {
    let parts: Vec<&str> = nvlabs.split('.').collect();
    let mut out = Vec::with_capacity(parts.len() + 1);
    for (i, p) in parts.iter().enumerate() {
        match *p {
            "resample_filter" => return None,
            "const" => out.push("constant".to_string()),
            p if i == 1 && parts[0] == "mapping" && p.starts_with("fc") => out.push(format!("fc.{}", &p[2..])),
            p if i == 1 && parts[0] == "synthesis" && p.starts_with('b') => {
                let res: usize = p[1..].parse().ok()?;
                out.push(format!("blocks.{}", res.checked_ilog2()?.checked_sub(2)?));
            }
            p => out.push(p.to_string()),
        }
    }
    Some(out.join("."))
}

/// The config of the generator in `state`, from its tensors' shapes.
fn infer(state: &BTreeMap<String, HostTensor>) -> Result<GanConfig, String> {
    let shape = |k: &str| state.get(k).map(|t| t.shape.clone()).ok_or_else(|| format!("no tensor '{k}'"));
    if state.contains_key("mapping.embed.weight") {
        return Err("it is conditional (mapping.embed), which ganforge's StyleGAN2 model is not".into());
    }
    let fc0 = shape("mapping.fc0.weight")?; // [w_dim, z_dim]
    let layers = (0..).take_while(|i| state.contains_key(&format!("mapping.fc{i}.weight"))).count();
    let mut res = 4;
    let mut widths = vec![];
    while state.contains_key(&format!("synthesis.b{res}.conv1.weight")) {
        if !state.contains_key(&format!("synthesis.b{res}.torgb.weight")) {
            return Err(format!("block b{res} has no toRGB: only architecture 'skip' (NVlabs' default) is supported"));
        }
        widths.push((res, shape(&format!("synthesis.b{res}.conv1.weight"))?[0]));
        res *= 2;
    }
    let (size, _) = *widths.last().ok_or("no synthesis.b4 block")?;
    let channels = shape(&format!("synthesis.b{size}.torgb.weight"))?[0];
    // channel_max is the widest layer; channel_base follows from the last layer narrower than it.
    let max = widths.iter().map(|&(_, c)| c).max().unwrap_or(1);
    let base = widths.iter().rev().find(|&&(_, c)| c < max).map_or(max * size, |&(r, c)| c * r);
    if let Some(&(r, c)) = widths.iter().find(|&&(r, c)| (base / r).min(max) != c) {
        return Err(format!("its widths are not min(channel_base / r, channel_max): {c} channels at {r}x{r}"));
    }
    for (k, t) in state.iter().filter(|(k, _)| k.ends_with("resample_filter")) {
        // setup_filter([1, 3, 3, 1]): the outer product, normalized to sum 1.
        let f = [1.0f32, 3.0, 3.0, 1.0];
        let want: Vec<f32> = f.iter().flat_map(|a| f.iter().map(move |b| a * b / 64.0)).collect();
        if t.values.len() != 16 || t.values.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-6) {
            return Err(format!("'{k}' is not the [1, 3, 3, 1] filter ganforge uses"));
        }
    }
    let sets = [
        "model.arch=stylegan2".to_string(),
        format!("model.image_size={size}"),
        format!("model.channels={channels}"),
        format!("model.nz={}", fc0[1]),
        format!("stylegan2.w_dim={}", fc0[0]),
        format!("stylegan2.mapping_layers={layers}"),
        format!("stylegan2.channel_base={base}"),
        format!("stylegan2.channel_max={max}"),
    ];
    GanConfig::resolve(Some("stylegan2"), None, &sets).map_err(|e| e.to_string())
}

/// Loads a generator saved as NVlabs' state dict; returns the config it corresponds to and G.
pub fn import_generator(path: &Path, device: &Device) -> Result<(GanConfig, Generator), Stylegan2ImportError> {
    let state = pth::read(path)?.floats;
    let bad = |reason: String| Stylegan2ImportError::NotStylegan2 { path: path.display().to_string(), reason };
    let cfg = infer(&state).map_err(bad)?;
    let (g, _) = nets::build(&cfg.families(), cfg.seed, device);
    let ours = named_tensors(&g);
    let mut by_ours: BTreeMap<String, HostTensor> = BTreeMap::new();
    for (name, t) in &state {
        let Some(mine) = ganforge_name(name) else { continue };
        let want = &ours.get(&mine).ok_or_else(|| bad(format!("unexpected tensor '{name}'")))?.shape;
        // NVlabs' scalar noise strength is [] (one value); ganforge's is [1].
        if t.values.len() != want.iter().product::<usize>() || (t.shape != *want && !t.shape.is_empty()) {
            return Err(bad(format!("'{name}' has shape {:?}, expected {want:?}", t.shape)));
        }
        by_ours.insert(mine, HostTensor { shape: want.clone(), values: t.values.clone() });
    }
    if let Some(missing) = ours.keys().find(|k| !by_ours.contains_key(*k)) {
        return Err(bad(format!("no tensor for ganforge's '{missing}'")));
    }
    Ok((cfg, map_named(g, |name, _| by_ours.get(name).cloned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    /// tests/fixtures/stylegan2_reference.py saves its generator under NVlabs' names: imported,
    /// it makes the reference's images (const noise) within 2e-5 of the largest value.
    #[test]
    fn an_nvlabs_state_dict_makes_the_reference_images() {
        use burn::tensor::{Tensor, TensorData};
        let device = Device::flex();
        let (cfg, g) = import_generator(&fixture("stylegan2_nvlabs_G.pth"), &device).unwrap();
        let (m, s) = (&cfg.model, &cfg.stylegan2);
        assert_eq!((m.image_size, m.channels, m.nz, s.w_dim, s.mapping_layers, s.channel_base, s.channel_max), (16, 3, 8, 8, 2, 64, 8));
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("stylegan2_reference.json")).unwrap()).unwrap();
        let floats = |k: &str| r[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<f64>>();
        let z: Vec<f32> = floats("z").iter().map(|&v| v as f32).collect();
        let z = Tensor::<2>::from_data(TensorData::new(z, [4, 8]), &device);
        let got =
            g.sample(z, None, &[], crate::nets::stylegan2::NoiseMode::Const).into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
        let want = floats("images_const");
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let worst = got.iter().zip(&want).map(|(&a, &b)| (a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(worst < 2e-5 * scale, "off by {worst} (largest {scale})");
    }

    #[test]
    fn other_files_are_refused_with_the_reason() {
        let e = import_generator(&fixture("dcgan_netG.pth"), &Device::flex()).unwrap_err().to_string();
        assert!(e.contains("not the state dict of a stylegan2-ada-pytorch generator") && e.contains("mapping.fc0.weight"), "{e}");
    }

    #[test]
    fn names_map_to_ganforges() {
        assert_eq!(ganforge_name("mapping.fc3.bias").as_deref(), Some("mapping.fc.3.bias"));
        assert_eq!(ganforge_name("mapping.w_avg").as_deref(), Some("mapping.w_avg"));
        assert_eq!(ganforge_name("synthesis.b4.const").as_deref(), Some("synthesis.blocks.0.constant"));
        assert_eq!(ganforge_name("synthesis.b32.conv0.affine.weight").as_deref(), Some("synthesis.blocks.3.conv0.affine.weight"));
        assert_eq!(ganforge_name("synthesis.b8.resample_filter"), None);
        assert_eq!(ganforge_name("synthesis.b2.conv1.weight"), None, "no block below 4x4");
    }
}
