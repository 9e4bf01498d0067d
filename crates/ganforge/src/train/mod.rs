//! Training: the step ([`step`]), run folders ([`run_dir`]), checkpoints ([`checkpoint`]) and
//! the loop below that ties them to the data loader and writes what a run produces.

pub mod checkpoint;
pub mod run_dir;
pub mod step;
pub mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::config::{GanConfig, LrSchedule, OptimizerKind};
use crate::data::loader::{Loader, LoaderOptions};
use crate::data::{self, DataError};
use crate::image_io::{grid_cols, save_png, ImageBatch};
use crate::nets::{self, Generator};
use crate::optim::Optimizer;
use crate::params;
use crate::rng::{GanRng, Stream};
use checkpoint::{CheckpointError, Parts, TrainState};
use run_dir::{step_name, RunDir, RunError};
use step::{train_step, Gan, RealBatch, StepNoise, StepRules, StepStats};
use watch::{MetricsLine, Watch};

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
    #[error("evaluation during training: {0}")]
    Eval(#[from] crate::eval::EvalError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("training diverged at step {step}: a loss or D output became NaN or infinite ({stats:?}); {}. Try lower learning rates (train.lr_d, train.lr_g) or the label tricks", match last_good { Some(p) => format!("the last good checkpoint is {}", p.display()), None => "no checkpoint had been written yet".into() })]
    Diverged { step: u64, stats: StepStats, last_good: Option<PathBuf> },
    #[error("training diverged by step {step}: {tensor} holds a NaN or infinity; {}. Try lower learning rates (train.lr_d, train.lr_g)", match last_good { Some(p) => format!("the last good checkpoint is {}", p.display()), None => "no checkpoint had been written yet".into() })]
    DivergedWeights { step: u64, tensor: String, last_good: Option<PathBuf> },
    #[error("model.classes = {model}, but the data has {}; a conditional GAN needs labelled data with that many classes (folders of class sub-folders, MNIST, CIFAR-10, SVHN, Stanford Dogs)", if *data == 0 { "no labels".to_string() } else { format!("{data} classes") })]
    Conditioning { model: usize, data: usize },
    #[error("the data's classes [{}] differ from the run's data.classes [{}]; resuming would change what each label means", data.join(", "), run.join(", "))]
    Classes { data: Vec<String>, run: Vec<String> },
}

/// One line of metrics.jsonl: means over the steps since the previous line.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct MetricsRecord {
    pub step: u64,
    pub epoch: u64,
    pub loss_d: f32,
    pub loss_g: f32,
    /// Mean D(x) on real images.
    pub d_real: f32,
    /// Mean D(G(z)) on generated images, before D's update.
    pub d_fake: f32,
    pub lr_d: f64,
    pub lr_g: f64,
    pub images_per_s: f64,
    pub elapsed_s: f64,
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
}

/// Doctor's findings: a warning line for the user and a line of metrics.jsonl each.
fn announce(
    findings: Vec<crate::doctor::Finding>,
    log_line: &mut dyn FnMut(&MetricsLine) -> Result<(), TrainError>,
    obs: &mut dyn Observer,
) -> Result<(), TrainError> {
    for f in findings {
        obs.message(&format!("doctor: {f}"));
        log_line(&MetricsLine::Doctor { step: f.step, doctor: f })?;
    }
    Ok(())
}

/// The fixed latent batch that every sample grid of a run is drawn from.
pub fn fixed_latents(cfg: &GanConfig) -> Vec<f32> {
    GanRng::new(cfg.seed, Stream::FixedNoise).normal_vec(cfg.train.grid_images * cfg.model.nz, 0.0, 1.0)
}

/// Labels for a grid of `n` conditional samples: one class per row, cycling through the classes.
pub fn grid_labels(n: usize, classes: usize) -> Vec<u32> {
    let cols = grid_cols(n);
    (0..n).map(|i| ((i / cols) % classes.max(1)) as u32).collect()
}

/// Runs G (in inference mode: batch norm uses its running statistics) on host latents, with
/// class labels for a conditional G.
pub fn generate(g: &Generator, z: &[f32], labels: Option<&[u32]>, nz: usize, device: &Device) -> ImageBatch {
    let g = g.valid();
    let n = z.len() / nz;
    let inner = device.clone().inner();
    let z = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [n, nz]), &inner); // [n, nz]
    let y = labels.map(|l| step::label_tensor(l, &inner)); // [n]
    ImageBatch::from_tensor(g.forward(z, y)) // [n, c, s, s]
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
pub fn train(mut cfg: GanConfig, opts: TrainOptions, obs: &mut dyn Observer) -> Result<RunDir, TrainError> {
    let device = opts.device.clone().autodiff();
    let source = data::open(&cfg.data)?;
    obs.message(&format!("data: {}", source.describe()));
    let classes = source.class_names();
    if !cfg.data.classes.is_empty() && cfg.data.classes != classes {
        return Err(TrainError::Classes { data: classes, run: cfg.data.classes.clone() });
    }
    if cfg.model.classes > 0 && cfg.model.classes != classes.len() {
        return Err(TrainError::Conditioning { model: cfg.model.classes, data: classes.len() });
    }
    cfg.data.classes = classes;
    let source = if cfg.data.cache {
        let dir = if cfg.data.cache_dir.is_empty() { data::cache::default_dir() } else { data::expand_home(&cfg.data.cache_dir) };
        data::cache::cached(source, &dir, cfg.model.image_size, cfg.model.channels, &mut |done, total| obs.caching(done, total))?
    } else {
        source
    };

    let (mut g, mut d) = nets::build(&cfg.families(), cfg.seed, &device);
    let t = &cfg.train;
    let optimizer = |lr: f64| match t.optimizer {
        OptimizerKind::Adam => Optimizer::adam(lr, t.beta1, t.beta2, t.eps),
        OptimizerKind::Rmsprop => Optimizer::rmsprop(lr, 0.99, t.eps),
    };
    let (mut opt_g, mut opt_d) = (optimizer(t.lr_g), optimizer(t.lr_d));
    let mut g_ema: Option<Generator> = None;
    let config_toml = cfg.to_toml();

    let (run, mut state) = match &opts.resume {
        Some(path) => {
            let run = RunDir::open(path)?;
            let ckpt = run.latest_checkpoint()?;
            let (g2, d2, state) = checkpoint::load(&ckpt, g, d, &mut opt_g, &mut opt_d)?;
            (g, d) = (g2, d2);
            if t.g_ema > 0.0 {
                g_ema = checkpoint::load_ema(&ckpt, g.clone())?;
            }
            obs.message(&format!("resuming from {} (step {})", ckpt.display(), state.step));
            (run, state)
        }
        None => {
            let run = RunDir::create(&opts.out, &run_name(&cfg))?;
            let state = TrainState {
                step: 0,
                epoch: 0,
                elapsed_s: 0.0,
                adam_g_steps: 0,
                adam_d_steps: 0,
                rng: GanRng::new(cfg.seed, Stream::Train),
            };
            (run, state)
        }
    };
    let ioerr = |path: PathBuf| move |source| TrainError::Io { path, source };
    crate::fsutil::write_atomic(&run.config_path(), config_toml.as_bytes()).map_err(ioerr(run.config_path()))?;

    let (b, c, s, nz) = (t.batch_size, cfg.model.channels, cfg.model.image_size, cfg.model.nz);
    let loader = Loader::spawn(
        source,
        LoaderOptions { batch_size: b, image_size: s, channels: c, seed: cfg.seed, prefetch: cfg.data.prefetch, hflip: cfg.data.hflip },
        // Each step consumed n_critic batches.
        state.step * t.n_critic as u64,
    )?;
    let total = total_steps(&cfg, loader.batches_per_epoch);
    let rules = StepRules { loss: t.loss, clip: t.clip, penalty: t.gp, penalty_weight: t.gp_weight, unroll: t.unroll };
    let augment = crate::augment::Policy::parse(&t.diffaugment).map_err(|e| TrainError::Config(crate::config::ConfigError::Invalid(e)))?;
    obs.start(&run, state.step, total);

    let fixed_z = fixed_latents(&cfg);
    let classes = cfg.model.classes;
    let fixed_y = (classes > 0).then(|| grid_labels(t.grid_images, classes));
    let save_samples = |g: &Generator, step: u64| -> Result<ImageBatch, TrainError> {
        let imgs = generate(g, &fixed_z, fixed_y.as_deref(), nz, &device);
        let p = run.samples_dir().join(format!("{}.png", step_name(step)));
        save_png(&p, &imgs.grid(grid_cols(imgs.n))).map_err(ioerr(p))?;
        Ok(imgs)
    };
    let mut metrics = std::fs::OpenOptions::new().create(true).append(true).open(run.metrics_path()).map_err(ioerr(run.metrics_path()))?;
    // A run killed mid-write leaves a partial last line: end it, so the next record starts clean.
    if !crate::fsutil::ends_with_newline(&run.metrics_path()).map_err(ioerr(run.metrics_path()))? {
        writeln!(metrics).map_err(ioerr(run.metrics_path()))?;
    }
    let mut log_line = |line: &MetricsLine| -> Result<(), TrainError> {
        let text = serde_json::to_string(line).expect("record serializes");
        writeln!(metrics, "{text}").and_then(|_| metrics.flush()).map_err(ioerr(run.metrics_path()))
    };
    let mut watch = Watch::new(&cfg, &device)?;
    let mut session_first = true;

    let mut gan = Gan { g, d, opt_g, opt_d };
    let mut acc = (StepStats::default(), 0u32);
    let mut interval_start = Instant::now();
    let mut session_start = Instant::now();
    let elapsed_before = state.elapsed_s;
    let pixels = c * s * s;
    let mut first_batch = opts.resume.is_none();

    while state.step < total {
        let mut reals = Vec::with_capacity(t.n_critic);
        let mut noises = Vec::with_capacity(t.n_critic);
        for _ in 0..t.n_critic {
            let batch = loader.next_batch()?;
            if session_first {
                let n = b.min(64);
                watch.real_batch(&ImageBatch { values: batch.images[..pixels * n].to_vec(), n, channels: c, height: s, width: s });
                session_first = false;
            }
            if first_batch {
                let real =
                    ImageBatch { values: batch.images[..pixels * b.min(64)].to_vec(), n: b.min(64), channels: c, height: s, width: s };
                let p = run.path.join("real.png");
                save_png(&p, &real.grid(grid_cols(real.n))).map_err(ioerr(p))?;
                first_batch = false;
                // Do not count the one-off start-up (first batch, image writing) as training speed.
                interval_start = Instant::now();
                session_start = Instant::now();
            }
            let images = Tensor::<4>::from_data(TensorData::new(batch.images, [b, c, s, s]), &device); // [b, c, s, s]
            reals.push(RealBatch { images, labels: if classes > 0 { batch.labels } else { None } });
            let k = &cfg.tricks;
            let sigma = (k.instance_noise * (1.0 - state.step as f64 / k.instance_noise_steps as f64).max(0.0)) as f32;
            let noise = StepNoise::draw(&mut state.rng, b, nz, pixels, k, sigma, classes);
            noises.push(
                noise
                    .with_augment(augment, b, s, &mut state.rng)
                    .with_gp_alpha(t.gp, b, &mut state.rng)
                    .with_unroll(t.unroll, &mut state.rng),
            );
        }
        // The schedule sets this step's rates from the configured ones.
        let scale = match t.lr_schedule {
            LrSchedule::Constant => 1.0,
            LrSchedule::Linear => 1.0 - state.step as f64 / total as f64,
        };
        (gan.opt_d.lr, gan.opt_g.lr) = (t.lr_d * scale, t.lr_g * scale);

        let (next, stats) = train_step(gan, reals, &noises, rules, &device);
        gan = next;
        if t.g_ema > 0.0 {
            // Before g_ema_start the average is a copy of G.
            let decay = if state.step < t.g_ema_start { 0.0 } else { t.g_ema };
            g_ema = Some(match g_ema.take() {
                Some(e) => params::ema_update(e, &gan.g, decay),
                None => params::ema_update(gan.g.clone(), &gan.g, 0.0),
            });
        }
        if !stats.is_finite() {
            // Nothing of this step is saved: the newest checkpoint stays the last good state.
            let last_good = run.latest_checkpoint().ok();
            let losses = [("loss_d", stats.loss_d), ("loss_g", stats.loss_g), ("D(x)", stats.d_real), ("D(G(z))", stats.d_fake)];
            let f = crate::doctor::divergence(state.step + 1, &losses, last_good.as_ref().and_then(|p| p.to_str()));
            announce(f.into_iter().collect(), &mut log_line, obs)?;
            return Err(TrainError::Diverged { step: state.step + 1, stats, last_good });
        }
        state.step += 1;
        state.epoch = state.step * t.n_critic as u64 / loader.batches_per_epoch;
        state.elapsed_s = elapsed_before + session_start.elapsed().as_secs_f64();
        acc.0 = StepStats {
            loss_d: acc.0.loss_d + stats.loss_d,
            loss_g: acc.0.loss_g + stats.loss_g,
            d_real: acc.0.d_real + stats.d_real,
            d_fake: acc.0.d_fake + stats.d_fake,
        };
        acc.1 += 1;
        let ips = (acc.1 as usize * b) as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
        obs.step(state.step, &stats, ips);

        let stopping = opts.stop.load(Ordering::SeqCst);
        let last = state.step == total || stopping;
        if state.step % t.log_every == 0 || last {
            let n = acc.1 as f32;
            let rec = MetricsRecord {
                step: state.step,
                epoch: state.epoch,
                loss_d: acc.0.loss_d / n,
                loss_g: acc.0.loss_g / n,
                d_real: acc.0.d_real / n,
                d_fake: acc.0.d_fake / n,
                lr_d: gan.opt_d.lr,
                lr_g: gan.opt_g.lr,
                images_per_s: ips,
                elapsed_s: state.elapsed_s,
            };
            log_line(&MetricsLine::Step(rec.clone()))?;
            announce(watch.on_record(&rec), &mut log_line, obs)?;
            acc = (StepStats::default(), 0);
            interval_start = Instant::now();
        }
        if state.step % t.sample_every == 0 || last {
            let samples = save_samples(g_ema.as_ref().unwrap_or(&gan.g), state.step)?;
            announce(watch.on_samples(state.step, &samples), &mut log_line, obs)?;
        }
        if watch.eval_due(state.step, cfg.eval.every) {
            let g_now = g_ema.as_ref().unwrap_or(&gan.g).clone();
            let sampler = crate::sample::Sampler::from_generator(cfg.clone(), g_now, run.path.clone(), &device);
            let (result, findings) = watch.evaluate(state.step, &sampler)?;
            obs.message(&format!("eval at step {}: {}", state.step, serde_json::to_string(&result.metrics).expect("serializes")));
            log_line(&MetricsLine::Eval { step: state.step, eval: serde_json::to_value(&result).expect("serializes") })?;
            announce(findings, &mut log_line, obs)?;
        }
        if state.step % t.checkpoint_every == 0 || last {
            // A weight gone to NaN or infinity would poison every later checkpoint: stop here.
            let bad = params::first_non_finite(&gan.g)
                .map(|n| format!("G's {n}"))
                .or_else(|| params::first_non_finite(&gan.d).map(|n| format!("D's {n}")));
            if let Some(tensor) = bad {
                let last_good = run.latest_checkpoint().ok();
                let what = format!("{tensor} holds a NaN or infinity");
                let f = crate::doctor::diverged(state.step, &what, last_good.as_ref().and_then(|p| p.to_str()));
                announce(vec![f], &mut log_line, obs)?;
                return Err(TrainError::DivergedWeights { step: state.step, tensor, last_good });
            }
            state.adam_g_steps = gan.opt_g.steps;
            state.adam_d_steps = gan.opt_d.steps;
            let parts = Parts { g: &gan.g, d: &gan.d, opt_g: &gan.opt_g, opt_d: &gan.opt_d, g_ema: g_ema.as_ref() };
            checkpoint::save(&run.checkpoints_dir(), &state, parts, &config_toml, t.keep_checkpoints)?;
        }
        if stopping {
            obs.message(&format!("stopped at step {}; continue with --resume {}", state.step, run.path.display()));
            break;
        }
    }
    // The whole run's curves (earlier sessions too, when resumed) as a picture.
    if let Ok(log) = watch::MetricsLog::read(&run.metrics_path()) {
        let p = run.path.join("loss.png");
        save_png(&p, &crate::plot::loss_plot(&log.steps)).map_err(ioerr(p))?;
    }
    obs.finish();
    Ok(run)
}
