//! Images out of a trained generator: latents, class labels, and G run in inference mode.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::GanConfig;
use crate::image_io::{grid_cols, ImageBatch};
use crate::nets::stylegan2::NoiseMode;
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
    generate_styled(g, z, labels, (&[], NoiseMode::Random), nz, device)
}

/// [`generate`] with StyleGAN2's sampling choices: truncation psi per image in w space (empty:
/// none) and the noise mode (see `nets::Generator::sample`).
pub fn generate_styled(
    g: &Generator,
    z: &[f32],
    labels: Option<&[u32]>,
    (psi, noise): (&[f32], NoiseMode),
    nz: usize,
    device: &Device,
) -> ImageBatch {
    let g = g.valid();
    let n = z.len() / nz;
    let inner = device.clone().inner();
    let z = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [n, nz]), &inner); // [n, nz]
    let y = labels.map(|l| crate::nets::label_tensor(l, &inner)); // [n]
    ImageBatch::from_tensor(g.sample(z, y, psi, noise)) // [n, c, s, s]
}

/// The latent of seed `seed`: the first `nz` values of the seed's own fixed-noise stream, under
/// the truncation trick when a threshold is given (values beyond it redrawn, BigGAN's way). The
/// one rule for every image named by a seed (`sample --seeds`, `sample --interpolate`, the
/// server's /api/generate and /api/interpolate): an image depends on its seed alone, never on
/// which other seeds are asked for, nor on the batch it is made in. It is the first latent of
/// `Sampler::latents(n, seed)`.
pub fn seed_latent(nz: usize, seed: u64, truncation: Option<f32>) -> Vec<f32> {
    let mut rng = GanRng::new(seed, Stream::FixedNoise);
    match truncation {
        Some(t) => crate::nets::biggan::truncated_latents(&mut rng, nz, t),
        None => rng.normal_vec(nz, 0.0, 1.0),
    }
}

/// The class a conditional G gets for seed `seed` when none is named: the `Cycle` rule from the
/// seed itself, so seed s is class s mod classes and any run of consecutive seeds shows every
/// class in turn. None for an unconditional G.
pub fn seed_class(seed: u64, classes: usize) -> Option<u32> {
    class_labels(1, classes, ClassLayout::Cycle { start: seed }).first().copied()
}

/// `frames` latents on the straight line from seed `from`'s latent to seed `to`'s, both ends
/// included (frame k at t = k / (frames - 1)).
pub fn interpolation_latents(nz: usize, from: u64, to: u64, frames: usize, truncation: Option<f32>) -> Vec<f32> {
    let (a, b) = (seed_latent(nz, from, truncation), seed_latent(nz, to, truncation));
    (0..frames)
        .flat_map(|k| {
            let t = k as f32 / (frames - 1).max(1) as f32;
            a.iter().zip(&b).map(move |(x, y)| (1.0 - t) * x + t * y).collect::<Vec<_>>()
        })
        .collect()
}

/// Seeds as a command line names them: `0-9999`, `0-3,7,10-12`. Ranges are inclusive, kept in
/// the order given and never expanded, so any count of seeds costs a few bytes; each seed may
/// appear once (two images of one seed would be one file written twice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedList {
    ranges: Vec<(u64, u64)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedListError {
    #[error("no seeds given: name seeds as 0-99 or 1,5,9 or 0-3,7,10-12")]
    Empty,
    #[error("'{0}' is not a seed: seeds are whole numbers from 0, named as 0-99 or 1,5,9 or 0-3,7,10-12")]
    NotASeed(String),
    #[error("seed range {lo}-{hi} runs backwards: write it as {hi}-{lo}")]
    Backwards { lo: u64, hi: u64 },
    #[error("seed {0} is named twice")]
    Twice(u64),
}

impl std::str::FromStr for SeedList {
    type Err = SeedListError;

    fn from_str(s: &str) -> Result<Self, SeedListError> {
        let seed = |t: &str| t.trim().parse::<u64>().map_err(|_| SeedListError::NotASeed(t.trim().to_string()));
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (seed(a)?, seed(b)?),
                None if part.is_empty() && s.trim().is_empty() => return Err(SeedListError::Empty),
                None => (seed(part)?, seed(part)?),
            };
            if lo > hi {
                return Err(SeedListError::Backwards { lo, hi });
            }
            ranges.push((lo, hi));
        }
        let mut sorted = ranges.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[1].0 <= w[0].1) {
            return Err(SeedListError::Twice(w[1].0));
        }
        Ok(Self { ranges })
    }
}

impl SeedList {
    /// How many seeds.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(lo, hi)| hi - lo + 1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The seeds in the order given.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|&(lo, hi)| lo..=hi)
    }
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
    #[error("{what} needs a StyleGAN2 generator (model.arch = \"stylegan2\"); this one is {arch}")]
    NotStylegan2 { what: &'static str, arch: String },
    #[error("style layers {lo}-{hi} are out of range: this G has {n} style inputs, 0 to {} (0 = the 4x4 convolution, coarse first)", n - 1)]
    StyleLayers { lo: usize, hi: usize, n: usize },
}

/// A generator loaded from a run, ready to sample.
pub struct Sampler {
    pub cfg: GanConfig,
    pub g: Generator,
    pub checkpoint: PathBuf,
    /// Training steps behind the weights, when known.
    pub step: Option<u64>,
    /// How a StyleGAN2 generator fills its noise inputs (`sample --noise-mode`).
    pub noise: NoiseMode,
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
        Self { cfg: loaded.cfg, g: loaded.g, checkpoint: loaded.file, step: loaded.step, noise: NoiseMode::Random, device: device.clone() }
    }

    /// A sampler for a generator built elsewhere (imported from PyTorch): `source` names it.
    pub fn from_generator(cfg: GanConfig, g: Generator, source: PathBuf, device: &Device) -> Self {
        Self { cfg, g, checkpoint: source, step: None, noise: NoiseMode::Random, device: device.clone() }
    }

    /// `n` latent vectors from `seed`. With the run's own seed and n = train.grid_images these
    /// are the latents of the run's sample grids.
    pub fn latents(&self, n: usize, seed: u64) -> Vec<f32> {
        GanRng::new(seed, Stream::FixedNoise).normal_vec(n * self.cfg.model.nz, 0.0, 1.0)
    }

    /// `n` latent vectors from `seed` under BigGAN's truncation trick: values beyond
    /// `threshold` in magnitude are redrawn (smaller thresholds: less variety, higher fidelity).
    /// A StyleGAN2 G truncates in w instead ([`Sampler::psi`]): its latents are not truncated.
    pub fn latents_truncated(&self, n: usize, seed: u64, threshold: f32) -> Vec<f32> {
        match self.z_truncation(Some(threshold)) {
            Some(t) => crate::nets::biggan::truncated_latents(&mut GanRng::new(seed, Stream::FixedNoise), n * self.cfg.model.nz, t),
            None => self.latents(n, seed),
        }
    }

    /// The one rule of where a truncation value (`--truncation`, the server's `truncation=`)
    /// acts: in z for most families (BigGAN's redrawn latent values), in w for StyleGAN2.
    fn z_truncation(&self, truncation: Option<f32>) -> Option<f32> {
        truncation.filter(|_| !self.g.truncates_in_w())
    }

    /// StyleGAN2's truncation psi for `n` images (`truncation`, or 1 = none, each); empty for
    /// the families that truncate in z. For [`Sampler::generate_styled`].
    pub fn psi(&self, n: usize, truncation: Option<f32>) -> Vec<f32> {
        if self.g.truncates_in_w() {
            vec![truncation.unwrap_or(1.0); n]
        } else {
            vec![]
        }
    }

    /// The latents of `seeds`, one per seed by [`seed_latent`]'s rule.
    pub fn seed_latents(&self, seeds: &[u64], truncation: Option<f32>) -> Vec<f32> {
        let truncation = self.z_truncation(truncation);
        seeds.iter().flat_map(|&s| seed_latent(self.cfg.model.nz, s, truncation)).collect()
    }

    /// The default classes of `seeds` ([`seed_class`]); None for an unconditional G.
    pub fn seed_classes(&self, seeds: &[u64]) -> Option<Vec<u32>> {
        let classes = self.cfg.model.classes;
        (classes > 0).then(|| seeds.iter().filter_map(|&s| seed_class(s, classes)).collect())
    }

    /// [`interpolation_latents`] at this G's latent size.
    pub fn interpolation(&self, from: u64, to: u64, frames: usize, truncation: Option<f32>) -> Vec<f32> {
        interpolation_latents(self.cfg.model.nz, from, to, frames, self.z_truncation(truncation))
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

    /// The `n` images an evaluation makes from `seed`: the latents of [`Sampler::latents`], a
    /// conditional G asked for each class in turn ([`ClassLayout::Cycle`] from 0). Images
    /// `part` of them are generated `chunk` at a time and handed to `each` with the index one
    /// past the batch's last image. One rule for `eval`, `fid` and their split over processes:
    /// an image depends on (n, seed, its index) alone.
    pub fn for_each_generated<E>(
        &self,
        (n, seed): (usize, u64),
        part: std::ops::Range<usize>,
        chunk: usize,
        mut each: impl FnMut(ImageBatch, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let z = self.latents(n, seed);
        let nz = self.cfg.model.nz;
        let labels = class_labels(n, self.cfg.model.classes, ClassLayout::Cycle { start: 0 });
        for start in part.clone().step_by(chunk.max(1)) {
            let end = (start + chunk.max(1)).min(part.end);
            each(self.generate(&z[start * nz..end * nz], (!labels.is_empty()).then(|| &labels[start..end])), end)?;
        }
        Ok(())
    }

    /// The style-mixing figure of StyleGAN (Karras et al. 2019, figure 3): a grid of
    /// (rows + 1) x (cols + 1) images whose first row holds the `cols` seeds' images and first
    /// column the `rows` seeds', and whose cell (i, j) is row seed i's image with the styles of
    /// `layers` (inclusive; 0 is the 4x4 convolution, coarse first; default the coarse half)
    /// taken from column seed j. The top-left corner is black; each cell keeps its row seed's noise.
    pub fn style_mix(
        &self,
        rows: &[u64],
        cols: &[u64],
        layers: Option<(usize, usize)>,
        truncation: Option<f32>,
    ) -> Result<ImageBatch, SampleError> {
        let Generator::Stylegan2(g) = &self.g else {
            return Err(SampleError::NotStylegan2 { what: "style mixing", arch: format!("{:?}", self.cfg.model.arch).to_lowercase() });
        };
        let n = g.num_ws();
        let (lo, hi) = layers.unwrap_or((0, n / 2 - 1));
        if lo > hi || hi >= n {
            return Err(SampleError::StyleLayers { lo, hi, n });
        }
        let g = g.valid();
        let inner = self.device.clone().inner();
        let nz = self.cfg.model.nz;
        let latents = |seeds: &[u64]| seeds.iter().map(|&s| seed_latent(nz, s, None)).collect::<Vec<_>>();
        let (zr, zc) = (latents(rows), latents(cols));
        let ws = |z: &[Vec<f32>]| {
            let t = Tensor::<2>::from_data(TensorData::new(z.concat(), [z.len(), nz]), &inner); // [k, nz]
            g.ws(t, &self.psi(z.len(), truncation)) // [k, num_ws, w_dim]
        };
        let (wr, wc) = (ws(&zr), ws(&zc));
        let row = |i: usize| wr.clone().narrow(0, i, 1);
        let col = |j: usize| wc.clone().narrow(0, j, 1);
        // Cells in grid order after the first row: the row seed's own image, then its mixes.
        let mut cells = vec![];
        let mut noise_of = vec![];
        for (i, z) in zr.iter().enumerate() {
            cells.push(row(i));
            noise_of.push(z.clone());
            for j in 0..cols.len() {
                cells.push(g.mix(row(i), col(j), lo..hi + 1));
                noise_of.push(z.clone());
            }
        }
        let top = ImageBatch::from_tensor(g.synthesize(wc, &zc, self.noise)); // [cols, c, s, s]
        let body = ImageBatch::from_tensor(g.synthesize(Tensor::cat(cells, 0), &noise_of, self.noise)); // [rows (cols + 1), c, s, s]
        let per = top.channels * top.height * top.width;
        let mut values = vec![-1.0; per]; // the black corner
        values.extend(top.values);
        values.extend(body.values);
        Ok(ImageBatch { values, n: (rows.len() + 1) * (cols.len() + 1), ..top })
    }

    /// G(z) for host latents `z` ([n * nz]), in chunks. A conditional G takes one class label
    /// per latent; None gives the layout of the run's grids, one class per row. Labels must
    /// have passed `check_labels`.
    pub fn generate(&self, z: &[f32], labels: Option<&[u32]>) -> ImageBatch {
        self.generate_styled(z, labels, &[])
    }

    /// [`Sampler::generate`] with StyleGAN2's truncation psi per image ([`Sampler::psi`];
    /// empty: none) and the sampler's noise mode.
    pub fn generate_styled(&self, z: &[f32], labels: Option<&[u32]>, psi: &[f32]) -> ImageBatch {
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
            let rows = k * CHUNK..(k * CHUNK + chunk.len() / nz);
            let part_psi = if psi.is_empty() { &[][..] } else { &psi[rows] };
            let part = generate_styled(&self.g, chunk, part_labels, (part_psi, self.noise), nz, &self.device);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_latent_is_the_first_of_its_stream() {
        let stream = GanRng::new(7, Stream::FixedNoise).normal_vec(3 * 4, 0.0, 1.0);
        assert_eq!(seed_latent(4, 7, None), stream[..4]);
        assert_ne!(seed_latent(4, 8, None), stream[..4]);
        let t = seed_latent(64, 7, Some(0.5));
        assert!(t.iter().all(|v| v.abs() <= 0.5), "{t:?}");
        let mut rng = GanRng::new(7, Stream::FixedNoise);
        assert_eq!(t, crate::nets::biggan::truncated_latents(&mut rng, 64, 0.5));
    }

    #[test]
    fn the_class_of_a_seed_cycles_from_the_seed() {
        assert_eq!((seed_class(7, 10), seed_class(13, 10), seed_class(3, 0)), (Some(7), Some(3), None));
        // Consecutive seeds from s are the Cycle layout starting at s.
        let run: Vec<u32> = (25..40).filter_map(|s| seed_class(s, 10)).collect();
        assert_eq!(run, class_labels(15, 10, ClassLayout::Cycle { start: 25 }));
    }

    #[test]
    fn interpolation_runs_from_one_seed_to_the_other() {
        let (a, b) = (seed_latent(3, 1, None), seed_latent(3, 2, None));
        let z = interpolation_latents(3, 1, 2, 5, None);
        assert_eq!(z.len(), 15);
        assert_eq!((&z[..3], &z[12..]), (&a[..], &b[..]));
        for i in 0..3 {
            assert!((z[6 + i] - (a[i] + b[i]) / 2.0).abs() < 1e-6);
        }
        assert_eq!(interpolation_latents(3, 1, 2, 1, None), a);
    }

    #[test]
    fn seed_lists_parse_ranges_and_refuse_bad_input() {
        let s: SeedList = "0-3, 7,10-12".parse().unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 1, 2, 3, 7, 10, 11, 12]);
        assert_eq!(s.len(), 8);
        let big: SeedList = "0-9999999999".parse().unwrap();
        assert_eq!((big.len(), big.iter().nth(5)), (10_000_000_000, Some(5)));
        let err = |t: &str| t.parse::<SeedList>().unwrap_err().to_string();
        assert_eq!(err("5-2"), "seed range 5-2 runs backwards: write it as 2-5");
        assert!(err("abc").starts_with("'abc' is not a seed"), "{}", err("abc"));
        assert!(err("1,,2").starts_with("'' is not a seed"), "{}", err("1,,2"));
        assert!(err("-3").starts_with("'' is not a seed"));
        assert!(err("").starts_with("no seeds given"));
        assert_eq!(err("0-5,3"), "seed 3 is named twice");
        assert_eq!(err("4,4"), "seed 4 is named twice");
    }
}
