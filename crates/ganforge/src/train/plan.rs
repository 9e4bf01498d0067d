//! `train --dry-run`: what a run of a config would be, found the way the run itself would
//! find it (the same memory check, data checks, networks and steps), and timed on a few real
//! training steps; without a run folder, an image cache or any other file written.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;

use super::step::{train_step, Gan};
use super::{check_memory, loader_options, optimizers, step_inputs, step_rules, take_classes, total_steps, TrainError};
use crate::config::GanConfig;
use crate::data;
use crate::data::loader::Loader;
use crate::nets;
use crate::params::trainable_shapes;
use crate::rng::{GanRng, Stream};

/// Steps run before the timed ones: the first builds kernels, fills allocator pools and warms
/// caches, and would make the estimate several times too long.
pub const WARMUP_STEPS: usize = 1;
/// Steps timed: enough to average out one slow step, few enough to answer in seconds.
pub const PROBE_STEPS: usize = 3;

/// A layer: its module path, its weight's shape, its trainable parameters (weight and bias).
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub path: String,
    pub shape: Vec<usize>,
    pub params: u64,
}

/// A network: its layers in the module's order and their trainable parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct NetSummary {
    pub layers: Vec<Layer>,
    /// What training updates: batch-norm statistics and spectral norm vectors are not counted.
    pub params: u64,
}

impl NetSummary {
    fn of<M: burn::module::Module>(module: &M) -> Self {
        let mut layers: Vec<Layer> = Vec::new();
        for (path, shape) in trainable_shapes(module) {
            let (layer, _) = path.rsplit_once('.').unwrap_or(("", &path));
            let n = shape.iter().product::<usize>() as u64;
            match layers.last_mut() {
                Some(l) if l.path == layer => l.params += n,
                _ => layers.push(Layer { path: layer.to_string(), shape, params: n }),
            }
        }
        Self { params: layers.iter().map(|l| l.params).sum(), layers }
    }
}

/// What a run of the config would do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The dataset as the run would log it, and its size.
    pub data: String,
    pub images: usize,
    pub classes: usize,
    pub batches_per_epoch: u64,
    /// Steps (G updates) the run would take, and the passes over the data they make.
    pub steps: u64,
    pub epochs: f64,
    pub g: NetSummary,
    pub d: NetSummary,
    /// memory.rs's estimate of a training step's memory, and what the machine has.
    pub memory_bytes: u64,
    pub memory_available: Option<u64>,
    /// The folder of the image cache that the run would first build (decoding every image,
    /// which the estimate leaves out); None when the data is not cached.
    pub cache: Option<PathBuf>,
    /// Mean seconds of the timed steps.
    pub step_s: f64,
}

impl Plan {
    /// The whole run's training steps at the probe's pace, in seconds: an estimate that leaves
    /// out sample grids, checkpoints and evaluations.
    pub fn estimate_s(&self) -> f64 {
        self.step_s * self.steps as f64
    }
}

/// Checks `cfg` as `train` would, opens its data, builds its networks and times
/// [`PROBE_STEPS`] real training steps after [`WARMUP_STEPS`], writing nothing.
pub fn plan(mut cfg: GanConfig, device: &Device) -> Result<Plan, TrainError> {
    check_memory(&cfg, device)?;
    let source = data::open(&cfg.data)?;
    take_classes(&mut cfg, &*source)?;
    let cache =
        (cfg.data.cache && source.fingerprint().is_some()).then(|| cfg.data.cache_dir.get().unwrap_or_else(data::cache::default_dir));
    let (data, images, classes) = (source.describe(), source.len(), cfg.data.classes.len());
    // The images come straight from the source: the probe must not build the cache.
    let loader = Loader::spawn(source, loader_options(&cfg), 0)?;
    let steps = total_steps(&cfg, loader.batches_per_epoch);
    let autodiff = device.clone().autodiff();
    let (g, d) = nets::build(&cfg.families(), cfg.seed, &autodiff);
    let (g_summary, d_summary) = (NetSummary::of(&g), NetSummary::of(&d));
    let (opt_g, opt_d) = optimizers(&cfg);
    let mut gan = Gan { g, d, opt_g, opt_d };
    let mut rng = GanRng::new(cfg.seed, Stream::Train);
    let mut started = Instant::now();
    for step in 0..WARMUP_STEPS + PROBE_STEPS {
        if step == WARMUP_STEPS {
            started = Instant::now();
        }
        let (reals, noises) = step_inputs(&cfg, &loader, &mut rng, (step as u64, 0..cfg.train.batch_size), &autodiff, &mut |_| Ok(()))?;
        // The step reads its losses back to the host, so the device has finished when it returns.
        gan = train_step(gan, reals, &noises, step_rules(&cfg, 0), &autodiff).0;
    }
    let step_s = started.elapsed().as_secs_f64() / PROBE_STEPS as f64;
    Ok(Plan {
        data,
        images,
        classes,
        batches_per_epoch: loader.batches_per_epoch,
        steps,
        epochs: (steps * cfg.train.n_critic as u64) as f64 / loader.batches_per_epoch as f64,
        g: g_summary,
        d: d_summary,
        memory_bytes: crate::memory::training_bytes(&cfg, cfg.train.batch_size as u64),
        memory_available: crate::memory::available(),
        cache,
        step_s,
    })
}
