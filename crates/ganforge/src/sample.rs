//! Images out of a trained generator: latents, class labels, and G run in inference mode.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::GanConfig;
use crate::image_io::{grid_cols, ImageBatch};
use crate::nets::Generator;
use crate::rng::{GanRng, Stream};
use crate::run::{RunDir, RunError};

/// Which class image `i` of a conditional G gets when the caller names none. One rule for
/// every place that makes images: grids, image files, evaluation, the Kaggle zip, the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassLayout {
    /// Image i is class (start + i) mod classes: every class in turn, so any n images are
    /// spread evenly (evaluation, the Kaggle zip; the server starts at the request's seed).
    Cycle { start: u64 },
    /// One class per row of a grid `cols` wide, cycling through the classes (sample grids,
    /// `sample --per-class` with one row of `cols` images per class).
    Rows { cols: usize },
}

/// The class of each of `n` images under `layout`; empty for an unconditional G (0 classes).
pub fn class_labels(n: usize, classes: usize, layout: ClassLayout) -> Vec<u32> {
    if classes == 0 {
        return Vec::new();
    }
    let c = classes as u64;
    (0..n as u64)
        .map(|i| match layout {
            ClassLayout::Cycle { start } => ((start % c + i % c) % c) as u32,
            ClassLayout::Rows { cols } => ((i / cols.max(1) as u64) % c) as u32,
        })
        .collect()
}

/// The grid layout of `n` images: one class per row of a square-ish grid.
pub fn grid_layout(n: usize) -> ClassLayout {
    ClassLayout::Rows { cols: grid_cols(n) }
}

/// The fixed latent batch that every sample grid of a run is drawn from: `n` latents of the
/// run's seed (train.grid_images of them for the grids).
pub fn fixed_latents(cfg: &GanConfig, n: usize) -> Vec<f32> {
    GanRng::new(cfg.seed, Stream::FixedNoise).normal_vec(n * cfg.model.nz, 0.0, 1.0)
}

/// Runs G (in inference mode: batch norm uses its running statistics) on host latents `z`
/// ([n * nz]), with class labels for a conditional G.
pub fn generate(g: &Generator, z: &[f32], labels: Option<&[u32]>, nz: usize, device: &Device) -> ImageBatch {
    let g = g.valid();
    let n = z.len() / nz;
    let inner = device.clone().inner();
    let z = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [n, nz]), &inner); // [n, nz]
    let y = labels.map(|l| crate::nets::label_tensor(l, &inner)); // [n]
    ImageBatch::from_tensor(g.forward(z, y)) // [n, c, s, s]
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("latents have shape {shape:?}, expected [N, {nz}] or [N, {nz}, 1, 1] float32 (nz = model.nz of this run)")]
    LatentShape { shape: Vec<usize>, nz: usize },
    #[error("latent row {row} holds {value}: latents must be finite numbers (a standard normal draw, as G was trained on)")]
    LatentNotFinite { row: usize, value: f32 },
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
    /// Training steps behind the weights, when known.
    pub step: Option<u64>,
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
        Ok(Self::from_loaded(RunDir::open(run)?.load_generator(checkpoint, device)?, device))
    }

    /// Loads G from a generator file alone (its metadata holds the config that rebuilds it).
    pub fn from_model_file(path: &Path, device: &Device) -> Result<Self, SampleError> {
        Ok(Self::from_loaded(crate::run::load_model_file(path, device)?, device))
    }

    fn from_loaded(loaded: crate::run::LoadedGenerator, device: &Device) -> Self {
        Self { cfg: loaded.cfg, g: loaded.g, checkpoint: loaded.file, step: loaded.step, device: device.clone() }
    }

    /// A sampler for a generator built elsewhere (imported from PyTorch): `source` names it.
    pub fn from_generator(cfg: GanConfig, g: Generator, source: PathBuf, device: &Device) -> Self {
        Self { cfg, g, checkpoint: source, step: None, device: device.clone() }
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
    /// [N, nz, 1, 1] as its DCGAN example draws them, every value finite.
    pub fn check_latents(&self, shape: &[usize], values: &[f32]) -> Result<usize, SampleError> {
        let n = match shape {
            [n, nz] | [n, nz, 1, 1] if *nz == self.cfg.model.nz && *n > 0 => *n,
            _ => return Err(SampleError::LatentShape { shape: shape.to_vec(), nz: self.cfg.model.nz }),
        };
        match values.iter().position(|v| !v.is_finite()) {
            // G would turn it into a black image without a word.
            Some(i) => Err(SampleError::LatentNotFinite { row: i / self.cfg.model.nz, value: values[i] }),
            None => Ok(n),
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
                grid = class_labels(n, self.cfg.model.classes, grid_layout(n));
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
