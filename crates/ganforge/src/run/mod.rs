//! The run folder's format, and everything that reads or writes it: a finished run is read
//! through this module alone (sample, eval, the doctor, the report, the server), never through
//! training. Run folders are `runs/00000-mnist/`, numbered, created atomically and never reused.
//!
//! ```text
//! 00003-mnist/
//!   config.toml            the resolved config
//!   metrics.jsonl          one JSON object per logged step, evaluation or doctor finding
//!   real.png               a grid of training images, as the model sees them
//!   loss.png               D's and G's losses, drawn at the end of training
//!   samples/step_000500.png  grids from one fixed latent batch
//!   checkpoints/step_000500/ g, d and optimizer tensors (safetensors) and state.json
//!   eval/step_000500.json  results of `ganforge eval`
//!   tb/events.out.tfevents.*  TensorBoard's copy of metrics.jsonl and the grids
//!   report.html            `ganforge report`: all of the above in one page
//! ```

pub mod checkpoint;
pub mod hf;
pub mod log;

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::config::GanConfig;
use crate::nets::{self, Generator};
pub use checkpoint::{CheckpointError, TrainState};
pub use log::{EvalReport, Finding, MetricsLine, MetricsLog, MetricsRecord, MetricsWriter};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} is not a ganforge run folder (it has no config.toml); pass the folder that `ganforge train` printed")]
    NotARun(PathBuf),
    #[error("run folder {0} has no checkpoint yet")]
    NoCheckpoint(PathBuf),
    #[error("{0} is neither a checkpoint folder nor a .safetensors file")]
    BadCheckpoint(PathBuf),
    #[error("{path} is refused: {why}")]
    ModelTooLarge { path: PathBuf, why: String },
    #[error("{0} carries no ganforge config in its metadata (checkpoints of ganforge before 0.1.0's model files do not): sample it with --run RUN_DIR --checkpoint FILE instead")]
    NoModelConfig(PathBuf),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A generator read from a run: the config it was built from, its weights, and where they came
/// from.
pub struct LoadedGenerator {
    pub cfg: GanConfig,
    pub g: Generator,
    /// The weight file read (`g_ema.safetensors` or `g.safetensors`).
    pub file: PathBuf,
    /// Training steps behind the weights (from the checkpoint's state.json); None for a bare
    /// .safetensors file outside a checkpoint folder.
    pub step: Option<u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.to_path_buf(), source }
}

#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

/// Metadata keys of a generator's safetensors file: the resolved config (architecture, shapes,
/// classes and their names), the step and the version that wrote it.
pub const META_CONFIG: &str = "ganforge.config";
pub const META_STEP: &str = "ganforge.step";
pub const META_VERSION: &str = "ganforge.version";

/// The metadata a generator file carries (see [`META_CONFIG`]).
pub fn model_metadata(config_toml: &str, step: u64) -> std::collections::BTreeMap<String, String> {
    [
        (META_CONFIG.to_string(), config_toml.to_string()),
        (META_STEP.to_string(), step.to_string()),
        (META_VERSION.to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]
    .into_iter()
    .collect()
}

/// G from a generator file alone (a checkpoint's g.safetensors or g_ema.safetensors, or an
/// exported model.safetensors), rebuilt from the config in its metadata.
pub fn load_model_file(path: &Path, device: &Device) -> Result<LoadedGenerator, RunError> {
    // Read once: the metadata, then the tensors, come from the same bytes.
    let bytes = std::fs::read(path).map_err(io(path))?;
    let meta = crate::params::parse_safetensors_metadata(&bytes, path).map_err(CheckpointError::from)?;
    let text = meta.get(META_CONFIG).ok_or_else(|| RunError::NoModelConfig(path.to_path_buf()))?;
    let cfg = GanConfig::parse(text, &format!("{} (its {META_CONFIG} metadata)", path.display()))?;
    let step = meta.get(META_STEP).and_then(|s| s.parse().ok());
    crate::memory::check_model_file(&cfg, bytes.len() as u64, crate::memory::available())
        .map_err(|why| RunError::ModelTooLarge { path: path.to_path_buf(), why })?;
    let tensors = crate::params::parse_safetensors(&bytes, path).map_err(CheckpointError::from)?;
    let (g, _) = nets::build(&cfg.families(), cfg.seed, device);
    let g = crate::params::load_tensors(g, tensors, path).map_err(CheckpointError::from)?;
    Ok(LoadedGenerator { cfg, g, file: path.to_path_buf(), step })
}

/// File name of a step, zero-padded so that names sort by step.
pub fn step_name(step: u64) -> String {
    format!("step_{step:06}")
}

/// The completed checkpoint folders in `dir` (those with a state.json), oldest first.
pub fn list_checkpoints(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step_")))
        .filter(|p| p.join("state.json").is_file())
        .collect();
    // By step number, not by name: step_1000000 comes after step_999999.
    v.sort_by_key(|p| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("step_")).and_then(|s| s.parse::<u64>().ok()));
    Ok(v)
}

impl RunDir {
    /// Creates the next numbered folder `NNNNN-name` inside `out`.
    pub fn create(out: &Path, name: &str) -> Result<Self, RunError> {
        std::fs::create_dir_all(out).map_err(io(out))?;
        let mut next = std::fs::read_dir(out)
            .map_err(io(out))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.split('-').next().filter(|p| p.len() == 5).and_then(|p| p.parse::<u64>().ok())
            })
            .max()
            .map_or(0, |m| m + 1);
        let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        loop {
            let path = out.join(format!("{next:05}-{safe}"));
            // create_dir fails if the folder exists, so two runs started at once never share one.
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let run = Self { path };
                    for sub in [run.samples_dir(), run.checkpoints_dir()] {
                        std::fs::create_dir_all(&sub).map_err(io(&sub))?;
                    }
                    return Ok(run);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }

    /// Opens an existing run folder.
    pub fn open(path: &Path) -> Result<Self, RunError> {
        let run = Self { path: path.to_path_buf() };
        if !run.config_path().is_file() {
            return Err(RunError::NotARun(path.to_path_buf()));
        }
        Ok(run)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.toml")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }
    pub fn samples_dir(&self) -> PathBuf {
        self.path.join("samples")
    }
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// Completed checkpoints, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<PathBuf>, RunError> {
        let dir = self.checkpoints_dir();
        list_checkpoints(&dir).map_err(io(&dir))
    }

    pub fn latest_checkpoint(&self) -> Result<PathBuf, RunError> {
        self.checkpoints()?.pop().ok_or_else(|| RunError::NoCheckpoint(self.path.clone()))
    }

    /// The newest checkpoint whose networks hold only finite values of at most `limit` in
    /// magnitude: the state a diverged run can go back to.
    pub fn last_good_checkpoint(&self, limit: f32) -> Option<PathBuf> {
        let good = |dir: &Path| {
            ["g.safetensors", "d.safetensors"]
                .iter()
                .all(|f| crate::params::read_safetensors(&dir.join(f)).is_ok_and(|t| crate::params::first_beyond_in(&t, limit).is_none()))
        };
        self.checkpoints().ok()?.into_iter().rev().find(|d| good(d))
    }

    /// Removes what a session killed mid-write (or out of disk) left behind: temporary files of
    /// the run folder and half-written checkpoint folders. Returns how many.
    pub fn remove_stale_temporaries(&self) -> Result<usize, RunError> {
        let mut n = 0;
        for dir in [self.path.clone(), self.checkpoints_dir(), self.samples_dir(), self.path.join("eval")] {
            n += crate::fsutil::remove_stale_temporaries(&dir).map_err(io(&dir))?;
        }
        Ok(n)
    }

    pub fn config(&self) -> Result<GanConfig, RunError> {
        Ok(GanConfig::load(&self.config_path())?)
    }

    /// metrics.jsonl, split by kind.
    pub fn log(&self) -> Result<MetricsLog, RunError> {
        let p = self.metrics_path();
        MetricsLog::read(&p).map_err(io(&p))
    }

    /// G from the latest checkpoint, or from `checkpoint` (a checkpoint folder or a
    /// `.safetensors` file) built with this run's config. From a folder, the moving average of
    /// G (`g_ema.safetensors`) is preferred when the run kept one; name `g.safetensors` itself
    /// to get the raw G.
    pub fn load_generator(&self, checkpoint: Option<&Path>, device: &Device) -> Result<LoadedGenerator, RunError> {
        let cfg = self.config()?;
        let pick =
            |dir: &Path| if dir.join("g_ema.safetensors").is_file() { dir.join("g_ema.safetensors") } else { dir.join("g.safetensors") };
        let (file, folder) = match checkpoint {
            None => {
                let dir = self.latest_checkpoint()?;
                (pick(&dir), Some(dir))
            }
            Some(p) if p.is_dir() => (pick(p), Some(p.to_path_buf())),
            Some(p) if p.extension().is_some_and(|e| e == "safetensors") => {
                // A weight file inside a checkpoint folder still has that folder's step.
                let folder = p.parent().filter(|d| d.join("state.json").is_file()).map(Path::to_path_buf);
                (p.to_path_buf(), folder)
            }
            Some(p) => return Err(RunError::BadCheckpoint(p.to_path_buf())),
        };
        let step = match folder {
            Some(dir) => Some(checkpoint::read_state(&dir)?.step),
            None => None,
        };
        let (g, _) = nets::build(&cfg.families(), cfg.seed, device);
        let g = crate::params::load_module(g, &file).map_err(CheckpointError::from)?;
        Ok(LoadedGenerator { cfg, g, file, step })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunDir::create(dir.path(), "mnist").unwrap();
        let b = RunDir::create(dir.path(), "mnist").unwrap();
        assert!(a.path.ends_with("00000-mnist") && b.path.ends_with("00001-mnist"));
        std::fs::create_dir(dir.path().join("00007-other")).unwrap();
        let c = RunDir::create(dir.path(), "a b/c").unwrap();
        assert!(c.path.ends_with("00008-a_b_c"), "{:?}", c.path);
        assert!(c.samples_dir().is_dir() && c.checkpoints_dir().is_dir());
        assert_eq!(step_name(500), "step_000500");
    }

    #[test]
    fn checkpoints_sort_by_step_past_six_digits() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), "x").unwrap();
        for s in [999_999u64, 1_000_000, 5] {
            let c = run.checkpoints_dir().join(step_name(s));
            std::fs::create_dir_all(&c).unwrap();
            std::fs::write(c.join("state.json"), "{}").unwrap();
        }
        assert!(run.latest_checkpoint().unwrap().ends_with("step_1000000"));
        assert!(run.checkpoints().unwrap()[0].ends_with("step_000005"));
    }

    #[test]
    fn not_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let e = RunDir::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is not a ganforge run folder"), "{e}");
    }
}
