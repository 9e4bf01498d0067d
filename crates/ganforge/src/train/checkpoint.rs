//! Checkpoints: everything needed to continue a run exactly.
//!
//! A checkpoint is a folder `checkpoints/step_000500/` holding
//! - `g.safetensors`, `d.safetensors`: weights and batch-norm statistics, by parameter name,
//!   readable by any safetensors tool;
//! - `optim_g.safetensors`, `optim_d.safetensors`: Adam's moments (`m.<name>`, `v.<name>`);
//! - `state.json`: step and epoch counters, Adam's step counts and the RNG state;
//! - `config.toml`: the config the tensors were built from.
//!
//! The folder is written under a temporary name, every file fsynced, then renamed into place,
//! so a crash at any moment leaves the previous checkpoint whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::fsutil::{sync_dir, write_synced};
use crate::params::{map_named, named_shapes, named_tensors, HostTensor};
use crate::rng::GanRng;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid checkpoint file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("checkpoint {path} does not match the model built from the config: {detail}")]
    Mismatch { path: PathBuf, detail: String },
    #[error(transparent)]
    Optim(#[from] crate::optim::OptimStateError),
}

/// Counters and generator state of a run between two steps.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Training steps completed.
    pub step: u64,
    /// Epoch of the next batch.
    pub epoch: u64,
    /// Seconds spent training, summed over all sessions of the run.
    pub elapsed_s: f64,
    pub adam_g_steps: u64,
    pub adam_d_steps: u64,
    /// The training stream (latents, label noise, instance noise).
    pub rng: GanRng,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

/// Serializes named tensors as safetensors (float32, little-endian).
pub fn safetensors_bytes(tensors: &BTreeMap<String, HostTensor>) -> Vec<u8> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(k, t)| (k.clone(), t.shape.clone(), t.values.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<(String, TensorView)> = raw
        .iter()
        .map(|(k, shape, bytes)| (k.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).expect("shape matches bytes")))
        .collect();
    let mut meta = std::collections::HashMap::new();
    meta.insert("producer".to_string(), format!("ganforge {}", env!("CARGO_PKG_VERSION")));
    safetensors::serialize(views, Some(meta)).expect("in-memory serialization")
}

/// Reads a safetensors file of float32 tensors.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    parse_safetensors(&bytes, path)
}

/// Parses safetensors bytes of float32 tensors; `origin` names them in errors.
pub fn parse_safetensors(bytes: &[u8], origin: &Path) -> Result<BTreeMap<String, HostTensor>, CheckpointError> {
    let corrupt = |m: String| CheckpointError::Corrupt { path: origin.to_path_buf(), message: m };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
        }
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.insert(name, HostTensor { shape: view.shape().to_vec(), values });
    }
    Ok(out)
}

/// Loads named tensors into `module`, refusing any difference in names or shapes.
pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M, CheckpointError> {
    load_tensors(module, read_safetensors(path)?, path)
}

/// Loads named tensors (read from `path`) into `module`, refusing any difference in names or shapes.
pub fn load_tensors<M: Module>(module: M, file: BTreeMap<String, HostTensor>, path: &Path) -> Result<M, CheckpointError> {
    let want = named_shapes(&module);
    let mut problems = Vec::new();
    for (name, shape) in &want {
        match file.get(name) {
            None => problems.push(format!("'{name}' is missing from the file")),
            Some(t) if &t.shape != shape => problems.push(format!("'{name}' has shape {:?} in the file, {shape:?} in the model", t.shape)),
            _ => {}
        }
    }
    problems.extend(file.keys().filter(|k| !want.contains_key(*k)).map(|k| format!("the file has '{k}', which the model does not")));
    if !problems.is_empty() {
        let more = if problems.len() > 3 { format!(" (and {} more)", problems.len() - 3) } else { String::new() };
        problems.truncate(3);
        return Err(CheckpointError::Mismatch { path: path.to_path_buf(), detail: problems.join("; ") + &more });
    }
    Ok(map_named(module, |name, _| file.get(name).cloned()))
}

/// The networks and optimizers a checkpoint holds.
pub struct Parts<'a, G: Module, D: Module> {
    pub g: &'a G,
    pub d: &'a D,
    pub opt_g: &'a crate::optim::Optimizer,
    pub opt_d: &'a crate::optim::Optimizer,
    /// The moving average of G's weights, when the run keeps one.
    pub g_ema: Option<&'a G>,
}

/// Writes a checkpoint folder atomically into `checkpoints_dir`, then deletes all but the
/// newest `keep`. Returns the folder.
pub fn save<G: Module, D: Module>(
    checkpoints_dir: &Path,
    state: &TrainState,
    parts: Parts<G, D>,
    config_toml: &str,
    keep: usize,
) -> Result<PathBuf, CheckpointError> {
    let name = super::run_dir::step_name(state.step);
    let final_dir = checkpoints_dir.join(&name);
    let tmp = checkpoints_dir.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("g.safetensors", safetensors_bytes(&named_tensors(parts.g))),
        ("d.safetensors", safetensors_bytes(&named_tensors(parts.d))),
        ("optim_g.safetensors", safetensors_bytes(&parts.opt_g.state_tensors())),
        ("optim_d.safetensors", safetensors_bytes(&parts.opt_d.state_tensors())),
        ("state.json", serde_json::to_vec_pretty(state).expect("state serializes")),
        ("config.toml", config_toml.as_bytes().to_vec()),
    ];
    if let Some(ema) = parts.g_ema {
        files.push(("g_ema.safetensors", safetensors_bytes(&named_tensors(ema))));
    }
    for (file, bytes) in &files {
        let p = tmp.join(file);
        write_synced(&p, bytes).map_err(io(&p))?;
    }
    sync_dir(&tmp).map_err(io(&tmp))?;
    if final_dir.exists() {
        // Same step written again (a resumed run that stopped at once): replace it.
        std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    sync_dir(checkpoints_dir).map_err(io(checkpoints_dir))?;
    prune(checkpoints_dir, keep)?;
    Ok(final_dir)
}

fn prune(checkpoints_dir: &Path, keep: usize) -> Result<(), CheckpointError> {
    let all = super::run_dir::list_checkpoints(checkpoints_dir).map_err(io(checkpoints_dir))?;
    for old in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(())
}

pub fn read_state(dir: &Path) -> Result<TrainState, CheckpointError> {
    let p = dir.join("state.json");
    let bytes = std::fs::read(&p).map_err(io(&p))?;
    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt { path: p, message: e.to_string() })
}

/// Restores networks and optimizers from a checkpoint folder.
pub fn load<G: Module, D: Module>(
    dir: &Path,
    g: G,
    d: D,
    opt_g: &mut crate::optim::Optimizer,
    opt_d: &mut crate::optim::Optimizer,
) -> Result<(G, D, TrainState), CheckpointError> {
    let state = read_state(dir)?;
    let g = load_module(g, &dir.join("g.safetensors"))?;
    let d = load_module(d, &dir.join("d.safetensors"))?;
    opt_g.load_state(&g, state.adam_g_steps, &read_safetensors(&dir.join("optim_g.safetensors"))?)?;
    opt_d.load_state(&d, state.adam_d_steps, &read_safetensors(&dir.join("optim_d.safetensors"))?)?;
    Ok((g, d, state))
}

/// The moving average of G saved in a checkpoint (into a copy of G's architecture), if any.
pub fn load_ema<G: Module>(dir: &Path, like: G) -> Result<Option<G>, CheckpointError> {
    let p = dir.join("g_ema.safetensors");
    if !p.is_file() {
        return Ok(None);
    }
    Ok(Some(load_module(like, &p)?))
}
