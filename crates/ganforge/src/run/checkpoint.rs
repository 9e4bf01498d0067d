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

use std::path::{Path, PathBuf};

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::fsutil::{sync_dir, write_synced, ATOMIC_TMP};
use crate::params::{
    check_finite, first_beyond_in, load_module, named_tensors, read_safetensors, safetensors_bytes, safetensors_bytes_with,
};
use crate::rng::GanRng;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid checkpoint file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(transparent)]
    Tensors(#[from] crate::params::TensorFileError),
    #[error("not writing a checkpoint at step {step}: {file} tensor '{name}' holds a NaN or infinity")]
    NonFinite { step: u64, file: String, name: String },
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
    // (file, tensors, whether it is a generator's)
    let mut tensors = vec![
        ("g.safetensors", named_tensors(parts.g), true),
        ("d.safetensors", named_tensors(parts.d), false),
        ("optim_g.safetensors", parts.opt_g.state_tensors(), false),
        ("optim_d.safetensors", parts.opt_d.state_tensors(), false),
    ];
    if let Some(ema) = parts.g_ema {
        tensors.push(("g_ema.safetensors", named_tensors(ema), true));
    }
    // A checkpoint is the state a run goes back to: never one that holds a NaN or infinity.
    for (file, t, _) in &tensors {
        if let Some(name) = first_beyond_in(t, f32::INFINITY) {
            return Err(CheckpointError::NonFinite { step: state.step, file: file.to_string(), name: name.to_string() });
        }
    }
    // A generator's file carries what rebuilds it, so it travels without its run folder.
    let g_meta = super::model_metadata(config_toml, state.step);
    let mut files: Vec<(&str, Vec<u8>)> =
        tensors.iter().map(|(f, t, g)| (*f, if *g { safetensors_bytes_with(t, &g_meta) } else { safetensors_bytes(t) })).collect();
    files.push(("state.json", serde_json::to_vec_pretty(state).expect("state serializes")));
    files.push(("config.toml", config_toml.as_bytes().to_vec()));

    let name = super::step_name(state.step);
    let final_dir = checkpoints_dir.join(&name);
    // A hidden name holding ATOMIC_TMP: what remove_stale_temporaries clears after a crash.
    let tmp = checkpoints_dir.join(format!("{ATOMIC_TMP}{name}-{}", std::process::id()));
    let written = write_folder(&tmp, &files);
    if written.is_err() {
        // A full disk must not stay full of half a checkpoint: the previous one is still whole.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written?;
    if final_dir.exists() {
        // Same step written again (a resumed run that stopped at once): replace it.
        std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    sync_dir(checkpoints_dir).map_err(io(checkpoints_dir))?;
    prune(checkpoints_dir, keep)?;
    Ok(final_dir)
}

/// A fresh folder `dir` holding `files`, each fsynced.
fn write_folder(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<(), CheckpointError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (file, bytes) in files {
        let p = dir.join(file);
        write_synced(&p, bytes).map_err(io(&p))?;
    }
    sync_dir(dir).map_err(io(dir))
}

fn prune(checkpoints_dir: &Path, keep: usize) -> Result<(), CheckpointError> {
    let all = super::list_checkpoints(checkpoints_dir).map_err(io(checkpoints_dir))?;
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
    opt_g.load_state(&g, state.adam_g_steps, &read_finite(&dir.join("optim_g.safetensors"))?)?;
    opt_d.load_state(&d, state.adam_d_steps, &read_finite(&dir.join("optim_d.safetensors"))?)?;
    Ok((g, d, state))
}

/// Tensors of a checkpoint file, every value finite (an optimizer's moments too).
fn read_finite(path: &Path) -> Result<std::collections::BTreeMap<String, crate::params::HostTensor>, CheckpointError> {
    let t = read_safetensors(path)?;
    check_finite(&t, path)?;
    Ok(t)
}

/// The moving average of G saved in a checkpoint (into a copy of G's architecture), if any.
pub fn load_ema<G: Module>(dir: &Path, like: G) -> Result<Option<G>, CheckpointError> {
    let p = dir.join("g_ema.safetensors");
    if !p.is_file() {
        return Ok(None);
    }
    Ok(Some(load_module(like, &p)?))
}
