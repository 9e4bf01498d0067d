//! Evaluating a generator: draw images, extract features, compute the metrics of
//! [`crate::metrics`] against real data, report in JSON.
//!
//! Real images are brought to the generator's size and channels exactly as training brings
//! them (so the two sets always match in shape), taken as the first `n_real` of a fixed
//! permutation of the dataset. Their features are cached per dataset, extractor and count, so
//! evaluating many checkpoints against the same data extracts them once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sha2::{Digest, Sha256};

use crate::data::{self, DataConfig, DataError, Source};
use crate::dist::{self, Group};
use crate::features::classifier::{Arch, Classifier};
use crate::features::inception::{self, Inception};
pub use crate::features::FeatureKind;
use crate::features::{FeatureError, Features, UnknownFeatures};
use crate::image_io::ImageBatch;
pub use crate::metrics::registry::{protocol, Metric, UnknownMetric};
use crate::metrics::registry::{Inputs, MetricResults};
use crate::metrics::MetricError;
use crate::params::{read_safetensors, safetensors_bytes, HostTensor};
use crate::rng::{GanRng, Stream};
pub use crate::run::EvalReport;
use crate::sample::Sampler;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    UnknownMetric(#[from] UnknownMetric),
    #[error(transparent)]
    UnknownFeatures(#[from] UnknownFeatures),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error("no metric asked for: name at least one of fid, kid, mifid, pr, is, coverage")]
    NoMetrics,
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{metric}: {source}")]
    Metric { metric: &'static str, source: MetricError },
    #[error("{metric} needs at least {need} generated and real images; asked for {n} generated and {n_real} real")]
    TooFew { metric: &'static str, need: usize, n: usize, n_real: usize },
    #[error("--features {features} needs a {features} classifier; the one given is a {arch} network")]
    ClassifierKind { features: &'static str, arch: &'static str },
    #[error("coverage uses a classifier of {classes} classes on grey images or, for RGB, on each channel (Stacked MNIST); these images have {channels} channels")]
    CoverageChannels { classes: usize, channels: usize },
}

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub metrics: Vec<Metric>,
    /// Generated images.
    pub n: usize,
    /// Real images (at most the dataset's size); default n.
    pub n_real: Option<usize>,
    /// Real data spec; default: the run's own data.
    pub real: Option<String>,
    pub features: FeatureKind,
    /// pytorch-fid's weight file, for `FeatureKind::Inception`.
    pub inception: Option<PathBuf>,
    /// A classifier saved by `classifier train`; default: the shipped MNIST one.
    pub classifier: Option<PathBuf>,
    /// Seed of the generated images' latents.
    pub seed: u64,
    /// Where real features are cached; None: no cache.
    pub cache_dir: Option<PathBuf>,
}

/// The loaded networks an evaluation needs.
pub struct Extractors {
    features: Option<(FeatureKind, Extractor)>,
    classifier: Option<Classifier>,
    classifier_id: String,
}

enum Extractor {
    Inception(Box<Inception>, String),
    /// The classifier's penultimate layer.
    Classifier,
}

impl Extractors {
    /// Loads what `opts.metrics` need (Inception only when its features are asked for).
    pub fn load(opts: &EvalOptions, device: &Device) -> Result<Self, EvalError> {
        Self::new(&opts.metrics, opts.features, opts.inception.as_deref(), opts.classifier.as_deref(), device)
    }

    /// Loads what `metrics` need: `features`' network (Inception from `inception`) and the
    /// classifier when coverage or classifier features ask: `classifier`, else the shipped one
    /// of `features`' kind (CIFAR-10's for `cifar`, MNIST's otherwise).
    pub fn new(
        metrics: &[Metric],
        features: FeatureKind,
        inception: Option<&Path>,
        classifier: Option<&Path>,
        device: &Device,
    ) -> Result<Self, EvalError> {
        let wants_features = metrics.iter().any(|m| m.spec().needs_features);
        let classifier_features = matches!(features, FeatureKind::Lenet | FeatureKind::Cifar);
        let needs_classifier = metrics.contains(&Metric::Coverage) || (wants_features && classifier_features);
        let (classifier, classifier_id) = match (needs_classifier, classifier, features) {
            (false, ..) => (None, String::new()),
            (true, Some(p), _) => {
                let net = Classifier::load(p, device)?;
                let id = format!("{} {}", net.arch().name(), data::cache::file_stamp(p).trim());
                (Some(net), id)
            }
            (true, None, FeatureKind::Cifar) => (Some(Classifier::cifar10(device)?), "cifar shipped cifar10".to_string()),
            (true, None, _) => (Some(Classifier::mnist(device)?), "lenet shipped mnist".to_string()),
        };
        // Features named for one network are that network's: a LeNet file's are not "cifar".
        if let (true, Some(c)) = (wants_features && classifier_features, &classifier) {
            if c.arch().features() != features {
                return Err(EvalError::ClassifierKind { features: features.name(), arch: c.arch().name() });
            }
        }
        let features = match (wants_features, features) {
            (false, _) => None,
            (true, FeatureKind::Lenet | FeatureKind::Cifar) => Some((features, Extractor::Classifier)),
            (true, FeatureKind::Inception) => {
                let path = inception.map(Path::to_path_buf).ok_or_else(|| FeatureError::NoInceptionFile(PathBuf::from("(none given)")))?;
                let net = Inception::load(&path, device)?;
                Some((
                    FeatureKind::Inception,
                    Extractor::Inception(Box::new(net), format!("inception {}", data::cache::file_stamp(&path).trim())),
                ))
            }
        };
        Ok(Self { features, classifier, classifier_id })
    }

    /// Inception features from a network built elsewhere (from a formula, in tests); `id` names
    /// its weights in caches and reports.
    pub fn from_inception(net: Inception, id: &str) -> Self {
        Self {
            features: Some((FeatureKind::Inception, Extractor::Inception(Box::new(net), id.to_string()))),
            classifier: None,
            classifier_id: String::new(),
        }
    }

    /// The features of a chunk for the distribution metrics, when they were asked for.
    pub(crate) fn features(&self, images: &ImageBatch) -> Result<Option<Features>, EvalError> {
        Ok(match &self.features {
            None => None,
            Some((_, Extractor::Inception(net, _))) => Some(net.features(images, 50)),
            Some((_, Extractor::Classifier)) => Some(self.loaded_classifier().features(images, 250)),
        })
    }

    /// The classes coverage counts on images of `channels`: Stacked MNIST's 1,000 triples on RGB
    /// digits (see [`Self::run`]), else the classifier's own.
    pub(crate) fn coverage_classes(&self, channels: usize) -> usize {
        match &self.classifier {
            None => 0,
            Some(c) if channels == 3 && c.arch() != Arch::Cifar => 1000,
            Some(c) => c.classes(),
        }
    }

    fn loaded_classifier(&self) -> &Classifier {
        self.classifier.as_ref().expect("loaded with the metrics that need it")
    }

    /// Features (for the distribution metrics) and class predictions (for coverage) of a chunk.
    pub(crate) fn run(&self, images: &ImageBatch) -> Result<(Option<Features>, Option<Vec<u32>>), EvalError> {
        let features = self.features(images)?;
        let preds = match &self.classifier {
            None => None,
            // A photo classifier reads colour; grey images are repeated to RGB.
            Some(c) if c.arch() == Arch::Cifar || images.channels == 1 => Some(match (&features, &self.features) {
                // The features came from this classifier's pass already.
                (Some(f), Some((_, Extractor::Classifier))) => f.predictions(),
                _ => c.features(images, 250).predictions(),
            }),
            // Digits in RGB: one digit per channel (Stacked MNIST), class = 100 r + 10 g + b.
            Some(c) if images.channels == 3 && c.classes() == 10 => {
                let per: Vec<Vec<u32>> = (0..3).map(|ch| c.features(&channel(images, ch), 250).predictions()).collect();
                Some((0..images.n).map(|i| 100 * per[0][i] + 10 * per[1][i] + per[2][i]).collect())
            }
            Some(_) => None,
        };
        Ok((features, preds))
    }

    /// What the real set's cached features depend on: the extractor of each kind.
    fn id(&self) -> String {
        match &self.features {
            Some((_, Extractor::Inception(_, id))) => format!("features: {id} | classes: {}", self.classifier_id),
            Some((kind, Extractor::Classifier)) => format!("features: {} | classes: {}", kind.name(), self.classifier_id),
            None => format!("features: none | classes: {}", self.classifier_id),
        }
    }

    /// What the features are and how images reach the extractor, for reports.
    pub(crate) fn describe(&self) -> (String, String) {
        let resize = || self.classifier.as_ref().map_or(Arch::Lenet, Classifier::arch).resize().to_string();
        match &self.features {
            Some((_, Extractor::Inception(..))) => {
                ("inception-v3 pool3, 2048-d (pytorch-fid, 2015-12-05 weights)".into(), inception::RESIZE.into())
            }
            Some((_, Extractor::Classifier)) => {
                let c = self.loaded_classifier();
                (format!("{}, {}-d penultimate layer", self.classifier_id, c.feature_dim()), resize())
            }
            None => (self.classifier_id.clone(), resize()),
        }
    }
}

/// Channel `ch` of each image, as grey images.
fn channel(images: &ImageBatch, ch: usize) -> ImageBatch {
    let plane = images.height * images.width;
    let c = images.channels;
    let values = (0..images.n).flat_map(|i| images.values[(i * c + ch) * plane..(i * c + ch + 1) * plane].iter().copied()).collect();
    ImageBatch { values, channels: 1, ..images.clone() }
}

/// What a set of images turned into.
#[derive(Default)]
struct SetFeatures {
    features: Option<Features>,
    preds: Vec<u32>,
    labels: Vec<u32>,
}

impl SetFeatures {
    fn add(&mut self, f: Option<Features>, p: Option<Vec<u32>>) {
        Features::append(&mut self.features, f);
        self.preds.extend(p.unwrap_or_default());
    }

    /// Every rank's share, put together in rank order (which is the images' order: each rank
    /// took a consecutive block), on rank 0; the others get an empty set. Class ids travel as
    /// floats, exact below 2^24.
    fn gather(self, group: &dyn Group) -> Self {
        if group.size() == 1 {
            return self;
        }
        let as_f32 = |v: &[u32]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let as_u32 = |v: Vec<f32>| v.into_iter().map(|x| x as u32).collect();
        // A rank with no images has no features and does not know their shape: take it from
        // the ranks that do.
        let shape = self.features.as_ref().map_or([0.0; 2], |f| [f.dim as f32, f.classes.map_or(0.0, |c| c as f32 + 1.0)]);
        let shapes = group.gather(&shape);
        let (values, logits) = self.features.map_or((Vec::new(), Vec::new()), |f| (f.values, f.logits));
        let (values, logits) = (group.gather(&values), group.gather(&logits));
        let features = shapes.chunks(2).find(|s| s[0] > 0.0).map(|s| Features {
            dim: s[0] as usize,
            values,
            classes: (s[1] > 0.0).then(|| s[1] as usize - 1),
            logits,
        });
        Self { features, preds: as_u32(group.gather(&as_f32(&self.preds))), labels: as_u32(group.gather(&as_f32(&self.labels))) }
    }
}

const CHUNK: usize = 250;

/// The real set's features, from the cache when it has them.
fn real_features(
    group: &dyn Group,
    source: &dyn Source,
    spec: &str,
    n: usize,
    size: usize,
    channels: usize,
    ex: &Extractors,
    cache_dir: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<SetFeatures, EvalError> {
    let key = {
        let mut h = Sha256::new();
        h.update(format!(
            "v1\n{spec}\n{}\n{}\n{n} {size} {channels}\n{}\n",
            source.describe(),
            source.fingerprint().unwrap_or_default(),
            ex.id()
        ));
        h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect::<String>()
    };
    let file = cache_dir.map(|d| d.join(format!("real-{key}.safetensors")));
    let wants_features = ex.features.is_some();
    // A cache that lacks what this evaluation needs (or is cut short) is made again.
    let usable = |t: &BTreeMap<String, HostTensor>| {
        t.get("preds").is_some_and(|p| p.values.len() == n || ex.classifier.is_none())
            && (!wants_features || t.get("features").is_some_and(|v| v.shape.first() == Some(&n)))
    };
    // Rank 0 decides whether the cache serves (the metrics are its to compute); the others then
    // have nothing to do for the real set.
    let cached =
        file.as_ref().filter(|f| group.is_root() && f.is_file()).and_then(|f| read_safetensors(f).ok().filter(usable).map(|t| (f, t)));
    let mut hit = vec![u8::from(cached.is_some())];
    group.broadcast(&mut hit);
    if hit[0] == 1 && !group.is_root() {
        return Ok(SetFeatures::default());
    }
    if let Some((f, t)) = cached {
        progress(&format!("real features from the cache: {}", f.display()));
        let mut out = SetFeatures::default();
        if let Some(v) = t.get("features") {
            let classes = t.get("logits").map(|l| l.shape[1]);
            out.features = Some(Features {
                dim: v.shape[1],
                values: v.values.clone(),
                classes,
                logits: t.get("logits").map(|l| l.values.clone()).unwrap_or_default(),
            });
        }
        out.preds = t.get("preds").map(|p| p.values.iter().map(|&v| v as u32).collect()).unwrap_or_default();
        out.labels = t.get("labels").map(|p| p.values.iter().map(|&v| v as u32).collect()).unwrap_or_default();
        return Ok(out);
    }
    // A fixed sample of the dataset: the same images whatever the run; each rank takes whole
    // chunks of it.
    let order = GanRng::new(0, Stream::DataOrder).permutation(source.len());
    let mine = dist::share_chunks(n, CHUNK, group.rank(), group.size());
    let mut out = SetFeatures::default();
    let pixels = channels * size * size;
    for (k, idx) in order[mine.clone()].chunks(CHUNK).enumerate() {
        let mut values = Vec::with_capacity(idx.len() * pixels);
        for &i in idx {
            data::to_unit_range(&data::model_bytes(source, i, size, channels)?, &mut values);
            if let Some(l) = source.label(i) {
                out.labels.push(l);
            }
        }
        let (f, p) = ex.run(&ImageBatch { values, n: idx.len(), channels, height: size, width: size })?;
        out.add(f, p);
        progress(&format!("real images: {} of {}", ((k + 1) * CHUNK).min(mine.len()), mine.len()));
    }
    let out = out.gather(group);
    if let Some(file) = file.filter(|_| group.is_root()) {
        let mut t = BTreeMap::new();
        if let Some(f) = &out.features {
            t.insert("features".to_string(), HostTensor { shape: vec![f.len(), f.dim], values: f.values.clone() });
            if let Some(c) = f.classes {
                t.insert("logits".to_string(), HostTensor { shape: vec![f.len(), c], values: f.logits.clone() });
            }
        }
        let as_f32 = |v: &[u32]| HostTensor { shape: vec![v.len()], values: v.iter().map(|&x| x as f32).collect() };
        t.insert("preds".to_string(), as_f32(&out.preds));
        t.insert("labels".to_string(), as_f32(&out.labels));
        // A cache that cannot be written only costs time next run.
        let _ = std::fs::create_dir_all(file.parent().expect("file in a folder"));
        let _ = crate::fsutil::write_atomic(&file, &safetensors_bytes(&t));
    }
    Ok(out)
}

/// Where real-image features are cached by default.
pub fn default_cache_dir() -> PathBuf {
    crate::fsutil::cache_home().join("features")
}

/// Evaluates `sampler`'s generator. `progress` gets one line per chunk of work.
pub fn evaluate(sampler: &Sampler, opts: &EvalOptions, ex: &Extractors, progress: &mut dyn FnMut(&str)) -> Result<EvalReport, EvalError> {
    Ok(evaluate_in(&dist::Solo, sampler, opts, ex, progress)?.expect("the one rank is rank 0"))
}

/// [`evaluate`] split over `group`'s ranks: each extracts the features of a block of the real
/// and of the generated images; rank 0 gathers them and computes the metrics (Some), the
/// others return None. The images, and so the numbers, are a single process's.
pub fn evaluate_in(
    group: &dyn Group,
    sampler: &Sampler,
    opts: &EvalOptions,
    ex: &Extractors,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<EvalReport>, EvalError> {
    if opts.metrics.is_empty() {
        return Err(EvalError::NoMetrics);
    }
    let cfg = &sampler.cfg;
    let real_spec = opts.real.clone().unwrap_or_else(|| cfg.data.spec.clone());
    let source = data::open(&DataConfig { spec: real_spec.clone(), ..cfg.data.clone() })?;
    let n = opts.n;
    let n_real = opts.n_real.unwrap_or(n).min(source.len());
    for m in &opts.metrics {
        let spec = m.spec();
        if n < spec.min_count || n_real < spec.min_count {
            return Err(EvalError::TooFew { metric: spec.title, need: spec.min_count, n, n_real });
        }
    }
    let (size, channels) = (cfg.model.image_size, cfg.model.channels);
    if let Some(have) = crate::memory::available() {
        // Both sets' features and class scores stay in memory (the images go 250 at a time):
        // Inception's 2048 features and 1008 logits are the most an image gets.
        crate::memory::check_images("eval", n + n_real, 2048 + 1008, have)?;
    }
    let coverage = opts.metrics.contains(&Metric::Coverage);
    let classifier_classes = ex.classifier.as_ref().map_or(0, |c| c.classes());
    let photos = ex.classifier.as_ref().is_some_and(|c| c.arch() == Arch::Cifar);
    if coverage && !(photos || channels == 1 || (channels == 3 && classifier_classes == 10)) {
        return Err(EvalError::CoverageChannels { classes: classifier_classes, channels });
    }
    let real = real_features(group, source.as_ref(), &real_spec, n_real, size, channels, ex, opts.cache_dir.as_deref(), progress)?;

    let mut fake = SetFeatures::default();
    let mine = dist::share_chunks(n, CHUNK, group.rank(), group.size());
    sampler.for_each_generated((n, opts.seed), mine.clone(), CHUNK, |images, done| {
        let (f, p) = ex.run(&images)?;
        fake.add(f, p);
        progress(&format!("generated images: {} of {}", done - mine.start, mine.len()));
        Ok::<_, EvalError>(())
    })?;
    let fake = fake.gather(group);
    if !group.is_root() {
        return Ok(None);
    }

    let classes = ex.coverage_classes(channels);
    // The real class distribution: the data's labels when they are the classifier's classes,
    // else what the classifier sees in the real images.
    let labels_are_classes = source.class_names().len() == classes && real.labels.len() == n_real;
    let real_classes: &[u32] = if labels_are_classes { &real.labels } else { &real.preds };
    let features = real.features.as_ref().zip(fake.features.as_ref());
    let probs = fake.features.as_ref().filter(|_| opts.metrics.contains(&Metric::Is)).map(|f| (f.probs(), f.classes.unwrap_or(0)));
    let inputs = Inputs::new(
        n,
        n_real,
        features.map(|(r, f)| (r.values.as_slice(), f.values.as_slice())),
        features.map_or(0, |(r, _)| r.dim),
        probs.as_ref().map(|(p, c)| (p.as_slice(), *c)),
        classes,
        real_classes,
        &fake.preds,
        opts.seed,
    );
    let mut results = MetricResults::default();
    let mut warnings = Vec::new();
    for &m in &opts.metrics {
        let spec = m.spec();
        let value = (spec.compute)(&inputs, &mut warnings).map_err(|source| EvalError::Metric { metric: spec.title, source })?;
        results.insert(m, value);
    }
    let (features, resize) = ex.describe();
    Ok(Some(EvalReport {
        checkpoint: sampler.checkpoint.display().to_string(),
        real: real_spec,
        n_fake: n,
        n_real,
        features,
        resize,
        metrics: results,
        warnings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On RGB images the classifier reads one digit per channel: Stacked MNIST's class.
    #[test]
    fn stacked_mnist_classes_are_read_per_channel() {
        let device = Device::flex();
        let opts = EvalOptions {
            metrics: vec![Metric::Coverage],
            n: 0,
            n_real: None,
            real: None,
            features: FeatureKind::Lenet,
            inception: None,
            classifier: None,
            seed: 0,
            cache_dir: None,
        };
        let ex = Extractors::load(&opts, &device).unwrap();
        let stacked = data::stacked::StackedMnist::new().unwrap();
        let n = 60;
        let mut values = Vec::new();
        for i in 0..n {
            data::to_unit_range(&data::to_model_bytes(&stacked.image(i).unwrap(), 32, 3), &mut values);
        }
        let (features, preds) = ex.run(&ImageBatch { values, n, channels: 3, height: 32, width: 32 }).unwrap();
        assert!(features.is_none(), "coverage alone extracts no features");
        let preds = preds.unwrap();
        let right = (0..n).filter(|&i| preds[i] == stacked.label(i).unwrap()).count();
        // Three digits at ~98% each: about 95% of the triples.
        assert!(right >= 54, "{right} of {n} triples read right");
    }
}
