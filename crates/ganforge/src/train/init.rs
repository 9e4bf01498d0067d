//! Fine-tuning (`train.init_from`, `ganforge train --init-from`): a new run, at step 0 with
//! fresh optimizers and its own seed's streams, whose networks start from another run's
//! weights instead of random ones (StyleGAN2-ADA's `--resume`; ganforge's `--resume` continues
//! a run in place instead).
//!
//! The source is a run folder (its last good checkpoint), a checkpoint folder (G, D and the
//! moving average of G when both runs keep one), or a generator file (`g.safetensors`,
//! `g_ema.safetensors`, an exported `model.safetensors`), which holds G alone: D then starts
//! from its seed's random weights.

use std::path::{Path, PathBuf};

use crate::config::GanConfig;
use crate::nets::{Arch, Discriminator, Generator};
use crate::params::{load_tensors, parse_safetensors, read_safetensors, TensorFileError};
use crate::run::{RunDir, RunError, META_CONFIG};

/// Why a source of weights cannot start this run.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("--init-from {0}: no such file or folder")]
    Missing(PathBuf),
    #[error("--init-from {0}: neither a run folder, a checkpoint folder nor a .safetensors generator file")]
    NotWeights(PathBuf),
    #[error("--init-from {0}: the run has no checkpoint without NaN or infinite weights to start from")]
    NoCheckpoint(PathBuf),
    #[error("--init-from {}: its networks are model.arch = \"{}\", the new run's config builds \"{}\"; fine-tuning keeps the architecture (set model.arch = \"{}\")", path.display(), arch_name(*from), arch_name(*to), arch_name(*from))]
    Arch { path: PathBuf, from: Arch, to: Arch },
    #[error("--init-from: {0}. Fine-tuning keeps the source's shapes: set model.image_size, model.nz, model.channels, model.classes and the widths as the source run had them")]
    Shapes(TensorFileError),
    #[error("--init-from: {0}")]
    Tensors(TensorFileError),
    #[error("--init-from: {0}")]
    Run(#[from] RunError),
}

/// The name config files give the architecture (`"dcgan"`), not Rust's (`Dcgan`).
fn arch_name(a: Arch) -> String {
    serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| format!("{a:?}"))
}

fn tensors_error(e: TensorFileError) -> InitError {
    match e {
        TensorFileError::Mismatch { .. } => InitError::Shapes(e),
        e => InitError::Tensors(e),
    }
}

/// Where the weights come from, resolved: a checkpoint folder, or a generator file.
#[derive(Clone, Debug, PartialEq)]
pub enum InitSource {
    Checkpoint(PathBuf),
    ModelFile(PathBuf),
}

impl InitSource {
    /// The source `path` names, as an absolute path, so that the new run's config records
    /// exactly where it started (a run folder becomes its last good checkpoint, which a later
    /// session of the source run cannot move: further checkpoints get new names).
    pub fn resolve(path: &Path) -> Result<Self, InitError> {
        let abs = std::fs::canonicalize(path).map_err(|_| InitError::Missing(path.to_path_buf()))?;
        if abs.join("state.json").is_file() {
            return Ok(Self::Checkpoint(abs));
        }
        if abs.join("config.toml").is_file() {
            let run = RunDir::open(&abs)?;
            let ckpt = run.last_good_checkpoint(crate::doctor::WEIGHT_LIMIT).ok_or(InitError::NoCheckpoint(abs))?;
            return Ok(Self::Checkpoint(ckpt));
        }
        if abs.is_file() && abs.extension().is_some_and(|e| e == "safetensors") {
            return Ok(Self::ModelFile(abs));
        }
        Err(InitError::NotWeights(path.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Checkpoint(p) | Self::ModelFile(p) => p,
        }
    }
}

/// The networks a new run starts from.
pub struct Init {
    pub g: Generator,
    pub d: Discriminator,
    /// The source's moving average of G, when it has one and the new run keeps one.
    pub g_ema: Option<Generator>,
    /// What was taken from where, for the user.
    pub message: String,
}

/// Loads `source`'s weights into the networks `cfg` builds (`g`, `d`): the architecture, and
/// every tensor's name and shape, must match.
pub fn load(source: &InitSource, cfg: &GanConfig, g: Generator, d: Discriminator) -> Result<Init, InitError> {
    match source {
        InitSource::Checkpoint(dir) => {
            let from = GanConfig::load(&dir.join("config.toml")).map_err(RunError::from)?;
            check_arch(dir, &from, cfg)?;
            let read = |f: &str| {
                let p = dir.join(f);
                read_safetensors(&p).map(|t| (t, p)).map_err(tensors_error)
            };
            let ((gt, gp), (dt, dp)) = (read("g.safetensors")?, read("d.safetensors")?);
            let g = load_tensors(g, gt, &gp).map_err(tensors_error)?;
            let d = load_tensors(d, dt, &dp).map_err(tensors_error)?;
            // Only when both runs keep an average: otherwise the new run's starts as a copy of G.
            let g_ema = if cfg.train.g_ema > 0.0 && dir.join("g_ema.safetensors").is_file() {
                let (et, ep) = read("g_ema.safetensors")?;
                Some(load_tensors(g.clone(), et, &ep).map_err(tensors_error)?)
            } else {
                None
            };
            let what = if g_ema.is_some() { "G, D and G's moving average" } else { "G and D" };
            let message = format!("fine-tuning from {}: {what}; step, optimizers and random streams start afresh", dir.display());
            Ok(Init { g, d, g_ema, message })
        }
        InitSource::ModelFile(file) => {
            let bytes = std::fs::read(file).map_err(|source| InitError::Tensors(TensorFileError::Io { path: file.clone(), source }))?;
            let meta = crate::params::parse_safetensors_metadata(&bytes, file).map_err(tensors_error)?;
            // A bare weight file without ganforge's metadata is checked by its tensors alone.
            if let Some(text) = meta.get(META_CONFIG) {
                let origin = format!("{} (its {META_CONFIG} metadata)", file.display());
                check_arch(file, &GanConfig::parse(text, &origin).map_err(RunError::from)?, cfg)?;
            }
            let g = load_tensors(g, parse_safetensors(&bytes, file).map_err(tensors_error)?, file).map_err(tensors_error)?;
            let message = format!(
                "fine-tuning from {}: G only (a generator file holds no D), so D starts from random weights; step, optimizers and random streams start afresh",
                file.display()
            );
            Ok(Init { g, d, g_ema: None, message })
        }
    }
}

fn check_arch(path: &Path, source: &GanConfig, cfg: &GanConfig) -> Result<(), InitError> {
    if source.model.arch != cfg.model.arch {
        return Err(InitError::Arch { path: path.to_path_buf(), from: source.model.arch, to: cfg.model.arch });
    }
    Ok(())
}
