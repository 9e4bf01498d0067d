//! Images out of a trained generator.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::config::GanConfig;
use crate::image_io::ImageBatch;
use crate::nets::{self, Generator};
use crate::rng::{GanRng, Stream};
use crate::train::checkpoint::{load_module, CheckpointError};
use crate::train::generate;
use crate::train::run_dir::{RunDir, RunError};

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("latents have shape {shape:?}, expected [N, {nz}] or [N, {nz}, 1, 1] float32 (nz = model.nz of this run)")]
    LatentShape { shape: Vec<usize>, nz: usize },
    #[error("{0} is neither a checkpoint folder nor a .safetensors file")]
    BadCheckpoint(PathBuf),
    #[error("this run's G is not conditional (model.classes = 0), so it takes no class")]
    NotConditional,
    #[error("class {class} is out of range: this G knows {classes} classes (0 to {}){}", classes - 1, if names.is_empty() { String::new() } else { format!(": {}", names.join(", ")) })]
    ClassOutOfRange { class: u32, classes: usize, names: Vec<String> },
}

/// A generator loaded from a run, ready to sample.
pub struct Sampler {
    pub cfg: GanConfig,
    pub g: Generator,
    pub checkpoint: PathBuf,
    device: Device,
}

/// Images per generator call: bounds memory whatever N is asked for. Batch norm runs on its
/// running statistics here, so the split does not change any image.
const CHUNK: usize = 256;

impl Sampler {
    /// Loads G from `run`'s latest checkpoint, or from `checkpoint` (a checkpoint folder or a
    /// `.safetensors` file) built with this run's config. From a folder, the moving average of
    /// G (`g_ema.safetensors`) is preferred when the run kept one; name `g.safetensors` itself
    /// to sample the raw G.
    pub fn load(run: &Path, checkpoint: Option<&Path>, device: &Device) -> Result<Self, SampleError> {
        let run = RunDir::open(run)?;
        let cfg = GanConfig::load(&run.config_path())?;
        let pick =
            |dir: PathBuf| if dir.join("g_ema.safetensors").is_file() { dir.join("g_ema.safetensors") } else { dir.join("g.safetensors") };
        let file = match checkpoint {
            None => pick(run.latest_checkpoint()?),
            Some(p) if p.is_dir() => pick(p.to_path_buf()),
            Some(p) if p.extension().is_some_and(|e| e == "safetensors") => p.to_path_buf(),
            Some(p) => return Err(SampleError::BadCheckpoint(p.to_path_buf())),
        };
        let (g, _) = nets::build(&cfg.families(), cfg.seed, device);
        let g = load_module(g, &file)?;
        Ok(Self { cfg, g, checkpoint: file, device: device.clone() })
    }

    /// A sampler for a generator built elsewhere (imported from PyTorch): `source` names it.
    pub fn from_generator(cfg: GanConfig, g: Generator, source: PathBuf, device: &Device) -> Self {
        Self { cfg, g, checkpoint: source, device: device.clone() }
    }

    /// `n` latent vectors from `seed`. With the run's own seed and n = train.grid_images these
    /// are the latents of the run's sample grids.
    pub fn latents(&self, n: usize, seed: u64) -> Vec<f32> {
        GanRng::new(seed, Stream::FixedNoise).normal_vec(n * self.cfg.model.nz, 0.0, 1.0)
    }

    /// `n` latent vectors from `seed` under BigGAN's truncation trick: values beyond
    /// `threshold` in magnitude are redrawn (smaller thresholds: less variety, higher fidelity).
    pub fn latents_truncated(&self, n: usize, seed: u64, threshold: f32) -> Vec<f32> {
        crate::nets::biggan::truncated_latents(&mut GanRng::new(seed, Stream::FixedNoise), n * self.cfg.model.nz, threshold)
    }

    /// Checks a user-supplied latent array and returns its rows: [N, nz], or PyTorch's
    /// [N, nz, 1, 1] as its DCGAN example draws them.
    pub fn check_latents(&self, shape: &[usize]) -> Result<usize, SampleError> {
        match shape {
            [n, nz] | [n, nz, 1, 1] if *nz == self.cfg.model.nz && *n > 0 => Ok(*n),
            _ => Err(SampleError::LatentShape { shape: shape.to_vec(), nz: self.cfg.model.nz }),
        }
    }

    /// Checks class labels asked for at sampling against the model.
    pub fn check_labels(&self, labels: &[u32]) -> Result<(), SampleError> {
        let classes = self.cfg.model.classes;
        match labels.iter().find(|&&l| l as usize >= classes) {
            _ if classes == 0 => Err(SampleError::NotConditional),
            Some(&bad) => Err(SampleError::ClassOutOfRange { class: bad, classes, names: self.cfg.data.classes.clone() }),
            None => Ok(()),
        }
    }

    /// G(z) for host latents `z` ([n * nz]), in chunks. A conditional G takes one class label
    /// per latent; None gives the layout of the run's grids, one class per row. Labels must
    /// have passed `check_labels`.
    pub fn generate(&self, z: &[f32], labels: Option<&[u32]>) -> ImageBatch {
        let nz = self.cfg.model.nz;
        let n = z.len() / nz;
        let grid;
        let labels = match labels {
            _ if self.cfg.model.classes == 0 => None,
            Some(l) => Some(l),
            None => {
                grid = crate::train::grid_labels(n, self.cfg.model.classes);
                Some(grid.as_slice())
            }
        };
        let mut out: Option<ImageBatch> = None;
        for (k, chunk) in z.chunks(CHUNK * nz).enumerate() {
            let part_labels = labels.map(|l| &l[k * CHUNK..(k * CHUNK + chunk.len() / nz)]);
            let part = generate(&self.g, chunk, part_labels, nz, &self.device);
            out = Some(match out {
                None => part,
                Some(mut acc) => {
                    acc.values.extend(part.values);
                    acc.n += part.n;
                    acc
                }
            });
        }
        out.expect("at least one latent")
    }
}
