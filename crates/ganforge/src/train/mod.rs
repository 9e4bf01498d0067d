//! Training: the step ([`step`]), what a run writes on its schedules ([`writer`]: metrics,
//! grids, evaluation, the live doctor, checkpoints), and the loop below that ties them to the
//! data loader. The run folder's format itself lives in [`crate::run`].

pub mod init;
pub mod plan;
pub mod step;
pub mod watch;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::{GanConfig, LrSchedule, OptimizerKind};
use crate::data::loader::{Batch, Loader, LoaderOptions};
use crate::data::{self, DataError, Source};
use crate::dist::{self, Group};
use crate::nets::{self, Generator};
use crate::optim::Optimizer;
use crate::params;
use crate::rng::{GanRng, Stream};
use crate::run::checkpoint::{self, CheckpointError, TrainState};
use crate::run::{MetricsRecord, RunDir, RunError};
use step::{train_step, Gan, RealBatch, StepNoise, StepRules, StepStats};
use writer::RunWriter;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error(transparent)]
    Init(#[from] init::InitError),
    #[error("evaluation during training: {0}")]
    Eval(#[from] crate::eval::EvalError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("training diverged at step {step}: a loss or D output became NaN, infinite or larger than {limit:e} ({stats:?}); {}. Try lower learning rates (train.lr_d, train.lr_g) or the label tricks", match last_good { Some(p) => format!("the last good checkpoint is {}", p.display()), None => "no checkpoint had been written yet".into() })]
    Diverged { step: u64, stats: StepStats, last_good: Option<PathBuf>, limit: f32 },
    #[error("training diverged by step {step}: {tensor} holds a NaN, an infinity or a value beyond {limit:e}; {}. Try lower learning rates (train.lr_d, train.lr_g)", match last_good { Some(p) => format!("the last good checkpoint is {}", p.display()), None => "no checkpoint had been written yet".into() })]
    DivergedWeights { step: u64, tensor: String, last_good: Option<PathBuf>, limit: f32 },
    #[error(
        "{run} is at step {step}, and the run asks for {total} steps: nothing to train. Continue it with --steps N for some N above {step}"
    )]
    NothingToTrain { run: PathBuf, step: u64, total: u64 },
    #[error("model.classes = {model}, but the data has {}; a conditional GAN needs labelled data with that many classes (folders of class sub-folders, MNIST, CIFAR-10, SVHN, Stanford Dogs)", if *data == 0 { "no labels".to_string() } else { format!("{data} classes") })]
    Conditioning { model: usize, data: usize },
    #[error("the data's classes [{}] differ from the run's data.classes [{}]; resuming would change what each label means", data.join(", "), run.join(", "))]
    Classes { data: Vec<String>, run: Vec<String> },
    #[error("train.batch_size = {batch} does not split over {ranks} ranks: the global batch must be a multiple of the number of processes (each takes batch_size / ranks images)")]
    BatchSplit { batch: usize, ranks: usize },
    #[error("at step {step} the weights of {ranks} rank(s) differ from rank 0's: every rank must start from the same run folder (resuming needs the run on a filesystem all ranks share) and apply the same averaged update")]
    RanksDiffer { step: u64, ranks: usize },
    #[error("{ranks} rank(s) see other data than rank 0 ({root}): every rank must read the same dataset, at the same path, with the same images")]
    DataDiffers { ranks: usize, root: String },
    #[error("train.loss = \"{0}\" compares each output with the mean of the whole batch's other side, which a rank's share does not have: with several ranks use ns, wgan, hinge or lsgan")]
    RelativisticSplit(String),
}

/// What the caller sees of a run: progress and messages. The CLI draws a progress bar.
pub trait Observer {
    fn start(&mut self, _run: &RunDir, _start_step: u64, _total_steps: u64) {}
    fn step(&mut self, _step: u64, _stats: &StepStats, _images_per_s: f64) {}
    fn message(&mut self, _msg: &str) {}
    /// Building the image cache: `done` of `total` images decoded and resized.
    fn caching(&mut self, _done: usize, _total: usize) {}
    fn finish(&mut self) {}
}

/// An observer that ignores everything (tests, library use).
pub struct Quiet;
impl Observer for Quiet {}

pub struct TrainOptions {
    /// Folder that holds the numbered run folders.
    pub out: PathBuf,
    pub device: Device,
    /// Continue this run instead of starting a new one.
    pub resume: Option<PathBuf>,
    /// Set from another thread (Ctrl-C) to checkpoint and stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// The processes that train this run together, data-parallel ([`dist::solo`] alone).
    /// Rank 0 alone writes the run folder.
    pub group: Arc<dyn Group>,
}

/// The name part of a new run folder: the preset on the bundled MNIST, otherwise the data
/// (`folder-dogs` for `folder:/data/dogs`), so that a listing of runs says what each learned.
pub fn run_name(cfg: &GanConfig) -> String {
    match cfg.data.spec.split_once(':') {
        None if cfg.data.spec == "mnist" => cfg.preset.clone(),
        None => cfg.data.spec.clone(),
        Some((kind, path)) => {
            // The file or folder name without extension: quickdraw:/d/sheep.ndjson -> quickdraw-sheep.
            let base = std::path::Path::new(path.trim_end_matches('/')).file_stem().and_then(|n| n.to_str()).unwrap_or("data");
            format!("{kind}-{base}")
        }
    }
}

/// Total steps (G updates) the config asks for; with `epochs`, each step consumes n_critic
/// batches.
pub fn total_steps(cfg: &GanConfig, batches_per_epoch: u64) -> u64 {
    if cfg.train.epochs > 0 {
        (cfg.train.epochs.saturating_mul(batches_per_epoch) / cfg.train.n_critic as u64).max(1)
    } else {
        cfg.train.steps
    }
}

/// Trains a new run, or continues one (`opts.resume`). Returns the run folder.
///
/// In a group of ranks (`opts.group`) every rank runs this loop on its share of each global
/// batch; the optimizers average the gradients, the step's losses and the stop flag are
/// averaged too, so every rank takes the same decisions; rank 0 alone writes the run.
pub fn train(mut cfg: GanConfig, opts: TrainOptions, obs: &mut dyn Observer) -> Result<RunDir, TrainError> {
    let device = opts.device.clone().autodiff();
    let group = &*opts.group;
    let (b, ranks) = (cfg.train.batch_size, group.size());
    check_split(&cfg, ranks, &opts.device)?;
    if opts.resume.is_none() {
        // Before the data is opened: a wrong source is an error at once, not after caching.
        record_init_source(&mut cfg)?;
    }
    // Rank 0 first: it builds the image cache, which the others then find ready.
    let source = root_first(group, || open_data(&mut cfg, obs))?;
    check_same_data(group, &*source)?;
    let started = root_first(group, || start(&cfg, &opts, &device, obs))?;
    let Start { run, mut state, mut gan, mut g_ema, resumed_at } = join(&opts.group, started)?;
    let t = &cfg.train;
    let part = dist::share(b, group.rank(), ranks);
    // Each step consumed n_critic batches.
    let loader = Loader::spawn(source, LoaderOptions { part: Some(part.clone()), ..loader_options(&cfg) }, state.step * t.n_critic as u64)?;
    let total = total_steps(&cfg, loader.batches_per_epoch);
    if state.step > total && resumed_at.is_some() {
        return Err(TrainError::NothingToTrain { run: run.path, step: state.step, total });
    }
    let mut out = if group.is_root() { Some(RunWriter::new(&cfg, run.clone(), resumed_at, &device)?) } else { None };
    if state.step == total && resumed_at.is_some() {
        // Killed after its last checkpoint: only what a finished run writes at its end is left.
        obs.message(&format!("{} is already at its last step, {total}: nothing to train", run.path.display()));
        return finish(out, run, obs);
    }
    obs.start(&run, state.step, total);

    let mut meter = Meter::new();
    let (mut decode_failures, mut first_batch) = (0, true);
    let elapsed_before = state.elapsed_s;
    while state.step < total {
        let (reals, noises) = step_inputs(&cfg, &loader, &mut state.rng, (state.step, part.clone()), &device, &mut |images| {
            // The session's first batch, whole (every rank's share), is real.png and the
            // doctor's reference; later ones only train.
            if !std::mem::take(&mut first_batch) {
                return Ok(());
            }
            let whole = group.gather(images);
            // Do not count the one-off start-up (first batch, image writing) as training speed.
            if let Some(out) = out.as_mut() {
                if out.real_batch(&whole, b)? {
                    meter.restart();
                }
            }
            Ok(())
        })?;
        // The schedule sets this step's rates from the configured ones.
        let scale = match t.lr_schedule {
            LrSchedule::Constant => 1.0,
            LrSchedule::Linear => 1.0 - state.step as f64 / total as f64,
        };
        (gan.opt_d.lr, gan.opt_g.lr) = (t.lr_d * scale, t.lr_g * scale);

        let (next, stats) = train_step(gan, reals, &noises, step_rules(&cfg, state.step), &device);
        gan = next;
        // The whole batch's losses, and a stop asked of any rank, so that all decide alike.
        let (stats, stopping, failures) = group_stats(group, stats, opts.stop.load(Ordering::SeqCst), loader.decode_failures());
        if t.g_ema > 0.0 {
            // Before g_ema_start the average is a copy of G.
            let decay = if state.step < t.g_ema_start { 0.0 } else { t.g_ema };
            g_ema = Some(match g_ema.take() {
                Some(e) => params::ema_update(e, &gan.g, decay),
                None => params::ema_update(gan.g.clone(), &gan.g, 0.0),
            });
        }
        if !crate::doctor::runaway_losses(&stats.named(), t.loss.is_probabilistic()).is_empty() {
            // Nothing of this step is saved: the newest checkpoint stays the last good state.
            return Err(match out.as_mut() {
                Some(out) => out.diverged(state.step + 1, stats, obs)?,
                None => TrainError::Diverged { step: state.step + 1, stats, last_good: None, limit: crate::doctor::LOSS_LIMIT },
            });
        }
        state.step += 1;
        state.epoch = state.step * t.n_critic as u64 / loader.batches_per_epoch;
        state.elapsed_s = elapsed_before + meter.session_s();
        let ips = meter.add(&stats, t.batch_size);
        obs.step(state.step, &stats, ips);
        if failures > decode_failures {
            decode_failures = failures;
            let latest = loader.last_decode_error().unwrap_or_default();
            obs.message(&format!(
                "warning: {decode_failures} image(s) failed to decode so far, each replaced by another image; latest: {latest}"
            ));
        }

        let last = state.step == total || stopping;
        let checkpoint_due = state.step % t.checkpoint_every == 0 || last;
        if checkpoint_due {
            check_same_weights(group, &gan, state.step)?;
        }
        if let Some(out) = out.as_mut() {
            if state.step % t.log_every == 0 || last {
                out.log(meter.record(&state, &gan, ips, decode_failures as u64), obs)?;
            }
            let g_now = g_ema.as_ref().unwrap_or(&gan.g);
            if state.step % t.sample_every == 0 || last {
                out.samples(g_now, state.step, obs)?;
            }
            if out.eval_due(state.step) {
                out.evaluate(g_now, state.step, obs)?;
            }
            if checkpoint_due {
                out.checkpoint(&mut state, &gan, g_ema.as_ref(), obs)?;
            }
        }
        if stopping {
            obs.message(&format!("stopped at step {}; continue with --resume {}", state.step, run.path.display()));
            break;
        }
    }
    finish(out, run, obs)
}

/// Whether `cfg` can train on `ranks` ranks: its batch splits evenly, its loss needs no
/// whole-batch statistic, and a rank's share of the batch fits the machine.
fn check_split(cfg: &GanConfig, ranks: usize, device: &Device) -> Result<(), TrainError> {
    let b = cfg.train.batch_size;
    if b % ranks != 0 {
        return Err(TrainError::BatchSplit { batch: b, ranks });
    }
    if ranks > 1 && cfg.train.loss.is_relativistic() {
        return Err(TrainError::RelativisticSplit(format!("{:?}", cfg.train.loss).to_lowercase()));
    }
    let mut local = cfg.clone();
    local.train.batch_size = b / ranks;
    check_memory(&local, device)
}

/// Makes a rank's start the group's: the run folder rank 0 numbered, optimizers that average
/// over the ranks, and the same weights everywhere.
fn join(group: &Arc<dyn Group>, mut s: Start) -> Result<Start, TrainError> {
    let mut path = s.run.path.to_string_lossy().into_owned().into_bytes();
    group.broadcast(&mut path);
    s.run.path = PathBuf::from(String::from_utf8_lossy(&path).into_owned());
    (s.gan.opt_g, s.gan.opt_d) = (s.gan.opt_g.averaged_over(group.clone()), s.gan.opt_d.averaged_over(group.clone()));
    check_same_weights(&**group, &s.gan, s.state.step)?;
    Ok(s)
}

/// The end of a session: rank 0 draws the run's curves.
fn finish(out: Option<RunWriter>, run: RunDir, obs: &mut dyn Observer) -> Result<RunDir, TrainError> {
    let run = match out {
        Some(out) => out.finish()?,
        None => run,
    };
    obs.finish();
    Ok(run)
}

/// `f` on rank 0, then on the other ranks: for work whose side effects (an image cache, a
/// run folder) the others should find done.
fn root_first<T>(group: &dyn Group, f: impl FnOnce() -> T) -> T {
    if !group.is_root() {
        group.barrier();
    }
    let out = f();
    if group.is_root() {
        group.barrier();
    }
    out
}

/// The ranks' mean of a step's losses and outputs, whether any rank was asked to stop, and
/// the images that failed to decode on all ranks together.
fn group_stats(group: &dyn Group, s: StepStats, stop: bool, failures: usize) -> (StepStats, bool, usize) {
    if group.size() == 1 {
        return (s, stop, failures);
    }
    let n = group.size() as f32;
    let mut v = [s.loss_d, s.loss_g, s.d_real, s.d_fake, f32::from(stop), failures as f32];
    group.sum(&mut v);
    (StepStats { loss_d: v[0] / n, loss_g: v[1] / n, d_real: v[2] / n, d_fake: v[3] / n }, v[4] > 0.0, v[5] as usize)
}

/// Checks that every rank opened the same dataset (its size and classes): a rank with a copy
/// that lacks a file would shuffle other images, or run out of epochs at another step.
fn check_same_data(group: &dyn Group, source: &dyn Source) -> Result<(), TrainError> {
    let what = format!("{} images, classes [{}]", source.len(), source.class_names().join(", "));
    match dist::disagreeing(group, what.as_bytes()) {
        0 => Ok(()),
        ranks => {
            let mut root = what.into_bytes();
            group.broadcast(&mut root);
            Err(TrainError::DataDiffers { ranks, root: String::from_utf8_lossy(&root).into_owned() })
        }
    }
}

/// Checks that every rank holds rank 0's trainable weights: at the start (a rank that read
/// another copy of the run would train something else) and at every checkpoint.
fn check_same_weights(group: &dyn Group, gan: &Gan, step: u64) -> Result<(), TrainError> {
    use std::hash::{Hash, Hasher};
    if group.size() == 1 {
        return Ok(());
    }
    let mut h = std::hash::DefaultHasher::new();
    for (name, t) in params::named_tensors(&gan.g).into_iter().chain(params::named_tensors(&gan.d)) {
        // Batch-norm running statistics follow each rank's own batches (as in PyTorch's DDP);
        // rank 0's are the ones saved.
        if !name.contains("running_") {
            name.hash(&mut h);
            t.values.iter().for_each(|v| v.to_bits().hash(&mut h));
        }
    }
    match dist::disagreeing(group, &h.finish().to_le_bytes()) {
        0 => Ok(()),
        ranks => Err(TrainError::RanksDiffer { step, ranks }),
    }
}

/// Resolves `train.init_from` (a run folder, checkpoint folder or generator file) to the
/// absolute path of the weights it names, so that the new run's config says exactly where it
/// started.
fn record_init_source(cfg: &mut GanConfig) -> Result<(), TrainError> {
    if let Some(path) = cfg.train.init_from.get() {
        let source = init::InitSource::resolve(&path)?;
        cfg.train.init_from = crate::fsutil::OptionalPath::new(source.path().to_string_lossy());
    }
    Ok(())
}

/// Opens the dataset, checks its classes against the run's, records them in the config, and
/// puts the image cache in front when the config asks for it.
fn open_data(cfg: &mut GanConfig, obs: &mut dyn Observer) -> Result<Arc<dyn Source>, TrainError> {
    let source = data::open(&cfg.data)?;
    obs.message(&format!("data: {}", source.describe()));
    take_classes(cfg, &*source)?;
    if !cfg.data.cache {
        return Ok(source);
    }
    let dir = cfg.data.cache_dir.get().unwrap_or_else(data::cache::default_dir);
    let before = source.describe();
    let cached = data::cache::cached(source, &dir, cfg.model.image_size, cfg.model.channels, &mut |done, total| obs.caching(done, total))?;
    // Building the cache decodes every image: say what it had to leave out.
    if cached.describe() != before {
        obs.message(&format!("data: {}", cached.describe()));
    }
    Ok(cached)
}

/// Checks the data's classes against the run's and the model's, and records them in the config.
fn take_classes(cfg: &mut GanConfig, source: &dyn Source) -> Result<(), TrainError> {
    let classes = source.class_names();
    if !cfg.data.classes.is_empty() && cfg.data.classes != classes {
        return Err(TrainError::Classes { data: classes, run: cfg.data.classes.clone() });
    }
    if cfg.model.classes > 0 && cfg.model.classes != classes.len() {
        return Err(TrainError::Conditioning { model: cfg.model.classes, data: classes.len() });
    }
    cfg.data.classes = classes;
    Ok(())
}

/// The loader's settings for `cfg`.
fn loader_options(cfg: &GanConfig) -> LoaderOptions {
    LoaderOptions {
        batch_size: cfg.train.batch_size,
        image_size: cfg.model.image_size,
        channels: cfg.model.channels,
        seed: cfg.seed,
        prefetch: cfg.data.prefetch,
        hflip: cfg.data.hflip,
        part: None,
    }
}

/// The rules of step `step` (0-based). Lazy regularization: the penalty only on every
/// `gp_every`-th step, from the first, at `gp_every` times its weight.
fn step_rules(cfg: &GanConfig, step: u64) -> StepRules {
    let t = &cfg.train;
    let (penalty, penalty_weight) = match step % t.gp_every.max(1) {
        0 => (t.gp, t.gp_weight * t.gp_every.max(1) as f64),
        _ => (crate::penalty::PenaltyKind::None, t.gp_weight),
    };
    StepRules { loss: t.loss, clip: t.clip, penalty, penalty_weight, unroll: t.unroll }
}

/// G's and D's optimizers as the config sets them up.
fn optimizers(cfg: &GanConfig) -> (Optimizer, Optimizer) {
    let t = &cfg.train;
    let optimizer = |lr: f64| match t.optimizer {
        OptimizerKind::Adam => Optimizer::adam(lr, t.beta1, t.beta2, t.eps),
        OptimizerKind::Rmsprop => Optimizer::rmsprop(lr, 0.99, t.eps),
    };
    (optimizer(t.lr_g), optimizer(t.lr_d))
}

/// The memory check before anything is allocated. The estimate is of host memory, which a CPU
/// run uses; a GPU's memory is the device's own.
fn check_memory(cfg: &GanConfig, device: &Device) -> Result<(), TrainError> {
    if let Some(have) = crate::memory::available().filter(|_| crate::device::is_cpu(device)) {
        crate::memory::check_training(cfg, have)?;
    }
    Ok(())
}

/// Where training starts: a new run folder at step 0, or a run's latest checkpoint.
struct Start {
    run: RunDir,
    state: TrainState,
    gan: Gan,
    g_ema: Option<Generator>,
    /// The step a resumed run continues from (0 for a run killed before its first checkpoint);
    /// None for a new run.
    resumed_at: Option<u64>,
}

fn start(cfg: &GanConfig, opts: &TrainOptions, device: &Device, obs: &mut dyn Observer) -> Result<Start, TrainError> {
    let (g, d) = nets::build(&cfg.families(), cfg.seed, device);
    let t = &cfg.train;
    let (mut opt_g, mut opt_d) = optimizers(cfg);
    let fresh =
        || TrainState { step: 0, epoch: 0, elapsed_s: 0.0, adam_g_steps: 0, adam_d_steps: 0, rng: GanRng::new(cfg.seed, Stream::Train) };
    let root = opts.group.is_root();
    let Some(path) = &opts.resume else {
        let (g, d, g_ema) = initial_weights(cfg, g, d, obs)?;
        // Rank 0 alone makes the folder (the others are told its name).
        let run = if root { RunDir::create(&opts.out, &run_name(cfg))? } else { RunDir { path: PathBuf::new() } };
        if root {
            // At once, so that a run killed from here on is a run folder that --resume takes.
            crate::fsutil::write_atomic(&run.config_path(), cfg.to_toml().as_bytes())
                .map_err(|source| TrainError::Io { path: run.config_path(), source })?;
        }
        return Ok(Start { run, state: fresh(), gan: Gan { g, d, opt_g, opt_d }, g_ema, resumed_at: None });
    };
    let run = RunDir::open(path)?;
    let stale = if root { run.remove_stale_temporaries()? } else { 0 };
    if stale > 0 {
        obs.message(&format!("removed {stale} temporary file(s) that an interrupted session left in {}", run.path.display()));
    }
    let ckpt = match run.latest_checkpoint() {
        Ok(c) => c,
        Err(RunError::NoCheckpoint(_)) => {
            // Killed before its first checkpoint: nothing to continue, so the run starts over in
            // its own folder with its own config, exactly as it first started.
            obs.message(&format!("{} has no checkpoint yet: training it from step 0", run.path.display()));
            // Only here does a resumed run read its train.init_from again: it starts over.
            let (g, d, g_ema) = initial_weights(cfg, g, d, obs)?;
            return Ok(Start { run, state: fresh(), gan: Gan { g, d, opt_g, opt_d }, g_ema, resumed_at: Some(0) });
        }
        Err(e) => return Err(e.into()),
    };
    let (g, d, state) = checkpoint::load(&ckpt, g, d, &mut opt_g, &mut opt_d)?;
    let g_ema = if t.g_ema > 0.0 { checkpoint::load_ema(&ckpt, g.clone())? } else { None };
    obs.message(&format!("resuming from {} (step {})", ckpt.display(), state.step));
    let resumed_at = Some(state.step);
    Ok(Start { run, state, gan: Gan { g, d, opt_g, opt_d }, g_ema, resumed_at })
}

/// The networks at step 0: `cfg`'s random ones (`g`, `d`), or those of `train.init_from`.
fn initial_weights(
    cfg: &GanConfig,
    g: Generator,
    d: nets::Discriminator,
    obs: &mut dyn Observer,
) -> Result<(Generator, nets::Discriminator, Option<Generator>), TrainError> {
    let Some(path) = cfg.train.init_from.get() else {
        return Ok((g, d, None));
    };
    let init = init::load(&init::InitSource::resolve(&path)?, cfg, g, d)?;
    obs.message(&init.message);
    Ok((init.g, init.d, init.g_ema))
}

/// One step's real batches and randomness: n_critic batches, each with its own draw of
/// latents, label noise, instance noise, augmentation, penalty points and look-ahead latents,
/// in that order (the order fixes the stream, which makes runs repeatable and resumable).
/// `on_batch` sees each batch's images first (the run writes its first as real.png).
/// `part` is this rank's share of the global batch (all of it in a single process): the whole
/// batch's randomness is drawn, and the share's kept.
fn step_inputs(
    cfg: &GanConfig,
    loader: &Loader,
    rng: &mut GanRng,
    (step, part): (u64, std::ops::Range<usize>),
    device: &Device,
    on_batch: &mut dyn FnMut(&[f32]) -> Result<(), TrainError>,
) -> Result<(Vec<RealBatch>, Vec<StepNoise>), TrainError> {
    let (t, k) = (&cfg.train, &cfg.tricks);
    let (b, c, s, nz, classes) = (t.batch_size, cfg.model.channels, cfg.model.image_size, cfg.model.nz, cfg.model.classes);
    let whole = part.len() == b;
    let mut reals = Vec::with_capacity(t.n_critic);
    let mut noises = Vec::with_capacity(t.n_critic);
    for _ in 0..t.n_critic {
        let Batch { images, labels, .. } = loader.next_batch()?;
        on_batch(&images)?;
        let images = Tensor::<4>::from_data(TensorData::new(images, [part.len(), c, s, s]), device); // [b / ranks, c, s, s]
        reals.push(RealBatch { images, labels: if classes > 0 { labels } else { None } });
        let sigma = (k.instance_noise * (1.0 - step as f64 / k.instance_noise_steps as f64).max(0.0)) as f32;
        let noise = StepNoise::draw(rng, b, nz, c * s * s, k, sigma, classes);
        let noise = noise.with_augment(t.diffaugment, b, s, rng).with_gp_alpha(t.gp, b, rng).with_unroll(t.unroll, rng);
        noises.push(if whole { noise } else { noise.shard(part.clone(), (nz, c * s * s, s)) });
    }
    Ok((reals, noises))
}

/// Losses and speed since the last metrics line, and time since the session started.
struct Meter {
    sum: StepStats,
    steps: u32,
    interval_start: Instant,
    session_start: Instant,
}

impl Meter {
    fn new() -> Self {
        Self { sum: StepStats::default(), steps: 0, interval_start: Instant::now(), session_start: Instant::now() }
    }

    fn restart(&mut self) {
        (self.interval_start, self.session_start) = (Instant::now(), Instant::now());
    }

    fn session_s(&self) -> f64 {
        self.session_start.elapsed().as_secs_f64()
    }

    /// Adds a step; returns images per second over the interval so far.
    fn add(&mut self, s: &StepStats, batch: usize) -> f64 {
        let a = &self.sum;
        self.sum = StepStats {
            loss_d: a.loss_d + s.loss_d,
            loss_g: a.loss_g + s.loss_g,
            d_real: a.d_real + s.d_real,
            d_fake: a.d_fake + s.d_fake,
        };
        self.steps += 1;
        (self.steps as usize * batch) as f64 / self.interval_start.elapsed().as_secs_f64().max(1e-9)
    }

    /// The interval's means as a metrics line; starts the next interval.
    fn record(&mut self, state: &TrainState, gan: &Gan, images_per_s: f64, decode_failures: u64) -> MetricsRecord {
        let n = self.steps as f32;
        let rec = MetricsRecord {
            step: state.step,
            epoch: state.epoch,
            loss_d: self.sum.loss_d / n,
            loss_g: self.sum.loss_g / n,
            d_real: self.sum.d_real / n,
            d_fake: self.sum.d_fake / n,
            lr_d: gan.opt_d.lr,
            lr_g: gan.opt_g.lr,
            images_per_s,
            elapsed_s: state.elapsed_s,
            decode_failures,
        };
        (self.sum, self.steps, self.interval_start) = (StepStats::default(), 0, Instant::now());
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::penalty::PenaltyKind;

    /// Lazy regularization: R1 on steps 0, 16, 32, ... at 16 times its weight, none between;
    /// a penalty every step (WGAN-GP) keeps its weight.
    #[test]
    fn the_penalty_is_lazy_at_its_interval() {
        let cfg = GanConfig::resolve(Some("stylegan2"), None, &[]).unwrap();
        for s in 0..33u64 {
            let r = step_rules(&cfg, s);
            if s % 16 == 0 {
                assert_eq!((r.penalty, r.penalty_weight), (PenaltyKind::R1, cfg.train.gp_weight * 16.0), "step {s}");
            } else {
                assert_eq!(r.penalty, PenaltyKind::None, "step {s}");
            }
        }
        let every = GanConfig::resolve(Some("wgan-gp"), None, &[]).unwrap();
        assert!((0..5).all(|s| step_rules(&every, s).penalty == PenaltyKind::WganGp && step_rules(&every, s).penalty_weight == 10.0));
    }
}
