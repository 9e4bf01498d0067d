//! Two sets of images compared, in pytorch-fid's shape (`python -m pytorch_fid A B`): what
//! `ganforge fid A B` and `ganforge fid --save-stats` compute.
//!
//! Each side is an [`ImageSet`]: a folder of image files, a dataset spec, a generator (a run or
//! a model file), or statistics saved as pytorch-fid saves them (`.npz` with `mu`, `sigma`).
//! Images reach the extractor as pytorch-fid brings them: each at its own size, converted to
//! RGB, 8-bit, then (inside [`crate::features::inception`]) resized bilinearly to 299x299 and
//! scaled to [-1, 1]; generated images are rounded to the 8-bit levels a PNG of them stores.
//! The metrics are the registered ones of [`crate::metrics::registry`], computed exactly as
//! `eval` computes them, with the first set in the role of the generated images and the second
//! in that of the real ones (it matters for precision/recall; the Inception Score is the first
//! set's). Class coverage counts the classes the classifier calls in each set: a folder has no
//! labels, so the real set's distribution is the classifier's reading of it too.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use image::DynamicImage;

use crate::data::folder::FolderSet;
use crate::data::{self, DataConfig, DataError, Source};
use crate::eval::{EvalError, Extractors};
use crate::features::Features;
use crate::image_io::ImageBatch;
use crate::metrics::registry::{protocol, Fid, Inputs, Metric, MetricResults, MetricValue};
use crate::metrics::{frechet_distance, FeatureStats, MetricError};
use crate::npy::{self, NpyError};
use crate::rng::{GanRng, Stream};
use crate::sample::{SampleError, Sampler};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error("{0}: a file, but not one `fid` reads: give a folder of images, a run folder, a dataset spec, a .npz of statistics (mu, sigma) or a generator .safetensors file")]
    UnknownFile(String),
    #[error("'{0}' is no file or folder, and as a dataset spec: {1}")]
    NotFound(String, DataError),
    #[error("{path}: {n} of its image files cannot be decoded ({names}); FID on the rest would not be the folder's, so remove or fix them")]
    BadImages { path: String, n: usize, names: String },
    #[error("{path}: the statistics are not pytorch-fid's: {why}")]
    BadStats { path: String, why: String },
    #[error("{metric} needs the features of both sets, but {side} is a statistics file (mu and sigma only): only fid can use it")]
    StatsOnlyFid { metric: &'static str, side: String },
    #[error("the statistics of {side} are of {have}-d features, but {extractor} gives {want}-d ones: compare statistics made with the same features")]
    StatsDim { side: String, have: usize, want: usize, extractor: String },
    #[error("{metric} needs at least {need} images in each set; {side} has {n}")]
    TooFew { metric: &'static str, need: usize, side: String, n: usize },
    #[error("{0}: {1}")]
    Metric(&'static str, MetricError),
    #[error("{0} is a statistics file already; --save-stats reads images")]
    StatsOfStats(String),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
}

/// Where one side's images come from.
pub enum ImageSet {
    /// Decodable images by index, at their own size: a folder's files (sorted by path) or a
    /// dataset's images.
    Images(Arc<dyn Source>),
    /// A generator: `n` images from the latents of `seed`, classes in turn when conditional.
    Generator(Box<Sampler>),
    /// Mean and covariance of features, from a `.npz`.
    Stats(FeatureStats),
}

/// A side as the user named it, and what it holds.
pub struct Side {
    pub name: String,
    pub set: ImageSet,
}

impl Side {
    /// Reads `arg`: an existing `.npz` file is statistics, a `.safetensors` file a generator, a
    /// folder with a `config.toml` a run, any other folder its image files; anything else is
    /// taken as a dataset spec (`mnist`, `cifar10:DIR`, ...).
    pub fn open(arg: &str, device: &Device) -> Result<Self, CompareError> {
        let path = Path::new(arg);
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let set = if path.is_file() {
            match ext.as_deref() {
                Some("npz") => ImageSet::Stats(read_stats(path)?),
                Some("safetensors") => ImageSet::Generator(Box::new(Sampler::from_model_file(path, device)?)),
                _ => return Err(CompareError::UnknownFile(arg.to_string())),
            }
        } else if path.is_dir() && path.join("config.toml").is_file() {
            ImageSet::Generator(Box::new(Sampler::load(path, None, device)?))
        } else if path.is_dir() {
            let folder = FolderSet::open(path)?;
            if !folder.skipped.is_empty() {
                let names = data::name_skipped(path, &folder.skipped);
                return Err(CompareError::BadImages { path: arg.to_string(), n: folder.skipped.len(), names });
            }
            ImageSet::Images(Arc::new(folder))
        } else {
            // Decoded at their own size: no model-size cache is wanted.
            let cfg = DataConfig { spec: arg.to_string(), cache: false, ..DataConfig::new() };
            ImageSet::Images(data::open(&cfg).map_err(|e| CompareError::NotFound(arg.to_string(), e))?)
        };
        Ok(Self { name: arg.to_string(), set })
    }
}

/// What `fid` is asked to do, beyond its two sides.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    pub metrics: Vec<Metric>,
    /// Images per side: a generator makes this many (default [`GENERATED`]); a folder or a
    /// dataset gives the first this many of a fixed shuffle (default: all, in order).
    pub n: Option<usize>,
    /// Seed of a generator's latents.
    pub seed: u64,
    /// Images per extractor call.
    pub batch_size: usize,
}

/// Images a generator makes when `--n` is not given: FID's bias falls with the count, and
/// 10,000 (stylegan2-ada's fid10k) is the smallest count people commonly report.
pub const GENERATED: usize = 10_000;

/// The numbers and what they were computed from.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub metrics: MetricResults,
    /// Images (or, for statistics, the count they were made from: unknown, 0) per side.
    pub counts: [usize; 2],
    pub warnings: Vec<String>,
}

/// Features of a side (when a metric needs them) and the classifier's call on each image (when
/// coverage asks), or the statistics it already is.
enum Extracted {
    Images { features: Option<Features>, classes: Vec<u32>, channels: usize, sizes: BTreeSet<(usize, usize)> },
    Stats(FeatureStats),
}

/// Compares `a` (in the generated images' role) with `b` (the real ones').
pub fn compare(a: &Side, b: &Side, opts: &CompareOptions, ex: &Extractors, progress: &mut dyn FnMut(&str)) -> Result<Comparison, CompareError> {
    for side in [a, b] {
        if let (ImageSet::Stats(_), Some(m)) = (&side.set, opts.metrics.iter().find(|m| **m != Metric::Fid)) {
            return Err(CompareError::StatsOnlyFid { metric: m.spec().title, side: side.name.clone() });
        }
    }
    check_memory(&[a, b], opts)?;
    let fa = extract(a, opts, ex, progress)?;
    let fb = extract(b, opts, ex, progress)?;
    let count = |e: &Extracted| match e {
        Extracted::Images { features: Some(f), .. } => f.len(),
        Extracted::Images { features: None, classes, .. } => classes.len(),
        Extracted::Stats(_) => 0,
    };
    let counts = [count(&fa), count(&fb)];
    let mut metrics = MetricResults::default();
    let mut warnings = Vec::new();
    match (&fa, &fb) {
        (
            Extracted::Images { features: x, classes: cx, channels: ca, sizes: sa },
            Extracted::Images { features: y, classes: cy, channels: cb, sizes: sb },
        ) => {
            if let Some(w) = size_warning([(a, sa), (b, sb)]) {
                warnings.push(w);
            }
            for &m in &opts.metrics {
                let spec = m.spec();
                for (side, n) in [(a, counts[0]), (b, counts[1])] {
                    if n < spec.min_count {
                        return Err(CompareError::TooFew { metric: spec.title, need: spec.min_count, side: side.name.clone(), n });
                    }
                }
            }
            let probs = x.as_ref().map(Features::probs).unwrap_or_default();
            let inputs = Inputs::new(
                counts[0],
                counts[1],
                x.as_ref().zip(y.as_ref()).map(|(x, y)| (y.values.as_slice(), x.values.as_slice())),
                x.as_ref().map_or(0, |x| x.dim),
                x.as_ref().and_then(|x| x.classes).map(|c| (probs.as_slice(), c)),
                ex.coverage_classes((*ca).max(*cb)),
                cy,
                cx,
                opts.seed,
            );
            for &m in &opts.metrics {
                let spec = m.spec();
                let value = (spec.compute)(&inputs, &mut warnings).map_err(|e| CompareError::Metric(spec.title, e))?;
                metrics.insert(m, value);
            }
        }
        _ => {
            let stats = |e: &Extracted| match e {
                Extracted::Stats(s) => Ok(s.clone()),
                Extracted::Images { features: Some(f), .. } => FeatureStats::of("features", &f.values, f.dim).map_err(|e| CompareError::Metric("fid", e)),
                Extracted::Images { features: None, .. } => unreachable!("fid, the one metric a statistics file allows, asks for features"),
            };
            let (sa, sb) = (stats(&fa)?, stats(&fb)?);
            if sa.mu.len() != sb.mu.len() {
                let (side, have, want) = if matches!(fa, Extracted::Stats(_)) { (a, sa.mu.len(), sb.mu.len()) } else { (b, sb.mu.len(), sa.mu.len()) };
                return Err(CompareError::StatsDim { side: side.name.clone(), have, want, extractor: ex.describe().0 });
            }
            let value = frechet_distance(&sa, &sb);
            // Named by the count of images behind it, when one side has images (statistics
            // files do not record theirs).
            let protocol = match counts {
                [0, 0] => "fid".to_string(),
                [0, n] | [n, _] => protocol("fid", n),
            };
            metrics.insert(Metric::Fid, MetricValue::Fid(Fid { value, protocol }));
        }
    }
    Ok(Comparison { metrics, counts, warnings })
}

/// The statistics of a side's features, as `--save-stats` writes them.
pub fn statistics(side: &Side, opts: &CompareOptions, ex: &Extractors, progress: &mut dyn FnMut(&str)) -> Result<FeatureStats, CompareError> {
    check_memory(&[side], opts)?;
    match extract(side, opts, ex, progress)? {
        Extracted::Stats(_) => Err(CompareError::StatsOfStats(side.name.clone())),
        Extracted::Images { features: Some(f), .. } => FeatureStats::of("features", &f.values, f.dim).map_err(|e| CompareError::Metric("statistics", e)),
        Extracted::Images { features: None, .. } => Err(CompareError::TooFew { metric: "statistics", need: 2, side: side.name.clone(), n: 0 }),
    }
}

/// Images a side gives under `opts` (0 for statistics).
fn count(side: &Side, opts: &CompareOptions) -> usize {
    match &side.set {
        ImageSet::Images(source) => opts.n.map_or(source.len(), |n| n.min(source.len())),
        ImageSet::Generator(_) => opts.n.unwrap_or(GENERATED),
        ImageSet::Stats(_) => 0,
    }
}

/// Every image's features and class scores stay in memory (the images go a batch at a time):
/// Inception's 2,048 features and 1,008 logits are the most an image gets.
fn check_memory(sides: &[&Side], opts: &CompareOptions) -> Result<(), CompareError> {
    if let Some(have) = crate::memory::available() {
        let n = sides.iter().map(|s| count(s, opts)).sum();
        crate::memory::check_images("fid", n, 2048 + 1008, have)?;
    }
    Ok(())
}

fn extract(side: &Side, opts: &CompareOptions, ex: &Extractors, progress: &mut dyn FnMut(&str)) -> Result<Extracted, CompareError> {
    let mut out: Option<Features> = None;
    let (mut classes, mut channels, mut sizes) = (Vec::new(), 0, BTreeSet::new());
    // Classes cost classifier passes of their own (three per image on RGB digits): only for coverage.
    let coverage = opts.metrics.contains(&Metric::Coverage);
    let mut add = |images: &ImageBatch| -> Result<(), CompareError> {
        let (f, c) = if coverage { ex.run(images)? } else { (ex.features(images)?, None) };
        Features::append(&mut out, f);
        classes.extend(c.unwrap_or_default());
        channels = channels.max(images.channels);
        sizes.insert((images.height, images.width));
        Ok(())
    };
    match &side.set {
        ImageSet::Stats(s) => return Ok(Extracted::Stats(s.clone())),
        ImageSet::Images(source) => {
            let n = count(side, opts);
            // A subset is a fixed shuffle's first n (as eval takes real images), so that a
            // folder sorted by class still gives every class.
            let order = if n < source.len() { GanRng::new(0, Stream::DataOrder).permutation(source.len()) } else { (0..n).collect() };
            let mut batch = Batch::default();
            for (k, &i) in order[..n].iter().enumerate() {
                let img = source.image(i)?;
                if !batch.fits(&img) || batch.images.n == opts.batch_size {
                    add(&std::mem::take(&mut batch).images)?;
                }
                batch.push(&img);
                if (k + 1) % 500 == 0 {
                    progress(&format!("{}: {} of {n} images", side.name, k + 1));
                }
            }
            if batch.images.n > 0 {
                add(&batch.images)?;
            }
        }
        ImageSet::Generator(sampler) => {
            let n = count(side, opts);
            sampler.for_each_generated((n, opts.seed), 0..n, opts.batch_size, |images, done| {
                add(&images)?;
                progress(&format!("{}: {done} of {n} images generated", side.name));
                Ok::<_, CompareError>(())
            })?;
        }
    }
    if out.is_none() && classes.is_empty() {
        return Err(CompareError::TooFew { metric: "fid", need: 2, side: side.name.clone(), n: 0 });
    }
    Ok(Extracted::Images { features: out, classes, channels, sizes })
}

/// A warning when the two sets' images are of different sizes: each is resized to the
/// extractor's input on its own, and the resizing itself moves the features. MNIST's 28x28
/// digits against the same digits at 32x32 (a generator's size) give a LeNet FID of 38 where
/// 32x32 against 32x32 gives 0.8 (BENCHMARKS.md, issue 15).
fn size_warning(sides: [(&Side, &BTreeSet<(usize, usize)>); 2]) -> Option<String> {
    let [(a, sa), (b, sb)] = sides;
    // Sets of many sizes (photos as found) are resized anyway; one size against another is
    // the trap: a generator's 32x32 against a dataset read at its own 28x28.
    if sa.len() != 1 || sb.len() != 1 || sa == sb {
        return None;
    }
    let show = |s: &BTreeSet<(usize, usize)>| s.iter().map(|(h, w)| format!("{w}x{h}")).collect::<Vec<_>>().join(", ");
    Some(format!(
        "the sets' images differ in size ({}: {}; {}: {}): each is resized to the extractor's input on its own, which alone raises FID; compare images of one size (resize the real ones as the generator's data were)",
        a.name,
        show(sa),
        b.name,
        show(sb)
    ))
}

/// Consecutive images of one shape, gathered for one extractor call.
#[derive(Default)]
struct Batch {
    images: ImageBatch,
}

impl Batch {
    /// Grey images stay one channel (the extractor repeats it, as PIL's `convert("RGB")` does);
    /// any other is taken as RGB, alpha dropped as PIL drops it.
    fn shape(img: &DynamicImage) -> (usize, usize, usize) {
        let c = if img.color().has_color() { 3 } else { 1 };
        (c, img.height() as usize, img.width() as usize)
    }

    fn fits(&self, img: &DynamicImage) -> bool {
        let b = &self.images;
        b.n == 0 || Self::shape(img) == (b.channels, b.height, b.width)
    }

    fn push(&mut self, img: &DynamicImage) {
        let (c, h, w) = Self::shape(img);
        let b = &mut self.images;
        (b.channels, b.height, b.width) = (c, h, w);
        b.n += 1;
        // CHW planes, values in [-1, 1] that give back the file's bytes exactly.
        let hwc = if c == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
        let start = b.values.len();
        b.values.resize(start + c * h * w, 0.0);
        for (p, px) in hwc.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                b.values[start + ch * h * w + p] = v as f32 / 127.5 - 1.0;
            }
        }
    }
}

/// Reads statistics in pytorch-fid's format: `mu` [d] and `sigma` [d, d], float64 or float32.
pub fn read_stats(path: &Path) -> Result<FeatureStats, CompareError> {
    let bad = |why: String| CompareError::BadStats { path: path.display().to_string(), why };
    let arrays = npy::read_npz(path, &["mu", "sigma"])?;
    let mu = npy::decode_f64(path, &arrays["mu"])?;
    let sigma = npy::decode_f64(path, &arrays["sigma"])?;
    let d = match mu.shape[..] {
        [d] if d > 0 => d,
        _ => return Err(bad(format!("mu has shape {:?}, expected [d]", mu.shape))),
    };
    if sigma.shape != [d, d] {
        return Err(bad(format!("sigma has shape {:?}, expected [{d}, {d}] for mu of {d}", sigma.shape)));
    }
    if mu.values.iter().chain(&sigma.values).any(|v| !v.is_finite()) {
        return Err(bad("a value is NaN or infinite".into()));
    }
    Ok(FeatureStats {
        n: 0,
        mu: nalgebra::DVector::from_vec(mu.values),
        // C order is row-major; the matrix is symmetric, but read it right anyway.
        sigma: nalgebra::DMatrix::from_row_slice(d, d, &sigma.values),
    })
}

/// Writes statistics as pytorch-fid's `--save-stats` does: `mu` and `sigma` in an `.npz`.
pub fn write_stats(path: &Path, stats: &FeatureStats) -> Result<(), CompareError> {
    let d = stats.mu.len();
    let le = |v: f64| v.to_le_bytes();
    let mut npz = npy::NpzWriter::create(path)?;
    npz.start_array("mu", npy::Dtype::F64, &[d])?;
    npz.write(&stats.mu.iter().flat_map(|&v| le(v)).collect::<Vec<u8>>())?;
    npz.start_array("sigma", npy::Dtype::F64, &[d, d])?;
    // Row by row in C order (the matrix is symmetric, but write it right anyway).
    for r in 0..d {
        npz.write(&(0..d).flat_map(|c| le(stats.sigma[(r, c)])).collect::<Vec<u8>>())?;
    }
    npz.finish()?;
    Ok(())
}
