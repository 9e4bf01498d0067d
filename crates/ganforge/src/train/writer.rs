//! What a training run writes besides the weights' updates, each on its schedule: the config,
//! metrics.jsonl (losses, evaluations, the live doctor's findings), real.png, the sample grids,
//! checkpoints, loss.png, and the same figures as TensorBoard events in tb/. The loop in `train()` calls one method a schedule; this file owns
//! the files.

use std::path::PathBuf;

use burn::tensor::Device;

use super::step::{Gan, StepStats};
use super::watch::Watch;
use super::TrainError;
use crate::config::GanConfig;
use crate::image_io::{grid_cols, png_bytes, save_png, ImageBatch};
use crate::nets::Generator;
use crate::params;
use crate::run::checkpoint::{self, Parts, TrainState};
use crate::run::{step_name, Finding, MetricsLine, MetricsRecord, MetricsWriter, RunDir};
use crate::sample::{class_labels, fixed_latents, generate, grid_layout, Sampler};
use crate::tensorboard::EventWriter;

use super::Observer;

fn io(path: PathBuf) -> impl FnOnce(std::io::Error) -> TrainError {
    move |source| TrainError::Io { path, source }
}

/// Images of the real.png grid and of the doctor's diversity reference.
const REAL_GRID: usize = 64;

pub struct RunWriter {
    run: RunDir,
    cfg: GanConfig,
    config_toml: String,
    metrics: MetricsWriter,
    watch: Watch,
    device: Device,
    /// The latents (and, for a conditional G, classes) of every sample grid.
    fixed_z: Vec<f32>,
    fixed_y: Option<Vec<u32>>,
    /// No real batch seen yet in this session / in this run.
    session_first: bool,
    run_first: bool,
    /// TensorBoard's copy of what metrics.jsonl and the grids hold (`log.tensorboard`).
    tb: Option<EventWriter>,
}

impl RunWriter {
    /// Writes the run's config and opens its metrics log, cut back to `resumed_at` when the run
    /// is resumed from that step. A run at step 0 gets real.png from its first batch.
    pub fn new(cfg: &GanConfig, run: RunDir, resumed_at: Option<u64>, device: &Device) -> Result<Self, TrainError> {
        let config_toml = cfg.to_toml();
        crate::fsutil::write_atomic(&run.config_path(), config_toml.as_bytes()).map_err(io(run.config_path()))?;
        let metrics = match resumed_at {
            None => MetricsWriter::open(&run.metrics_path()),
            Some(step) => MetricsWriter::resume(&run.metrics_path(), step),
        }
        .map_err(io(run.metrics_path()))?;
        let new_run = resumed_at.is_none_or(|s| s == 0);
        let tb_dir = run.path.join("tb");
        let tb = if cfg.log.tensorboard {
            let mut w = EventWriter::create(&tb_dir).map_err(io(tb_dir.clone()))?;
            if let Some(step) = resumed_at {
                w.restart(step + 1).map_err(io(tb_dir))?;
            }
            Some(w)
        } else {
            None
        };
        let n = cfg.train.grid_images;
        Ok(Self {
            fixed_z: fixed_latents(cfg, n),
            fixed_y: (cfg.model.classes > 0).then(|| class_labels(n, cfg.model.classes, grid_layout(n))),
            watch: Watch::new(cfg, device)?,
            cfg: cfg.clone(),
            config_toml,
            metrics,
            run,
            device: device.clone(),
            session_first: true,
            run_first: new_run,
            tb,
        })
    }

    pub fn run(&self) -> &RunDir {
        &self.run
    }

    /// A real batch as the loader delivered it ([b * c * s * s]): the session's first tells the
    /// doctor what real diversity looks like, the run's first becomes real.png. Returns whether
    /// it wrote real.png (the start-up is then over).
    pub fn real_batch(&mut self, images: &[f32], b: usize) -> Result<bool, TrainError> {
        if !(self.session_first || self.run_first) {
            return Ok(false);
        }
        let (c, s) = (self.cfg.model.channels, self.cfg.model.image_size);
        let n = b.min(REAL_GRID);
        let batch = ImageBatch { values: images[..c * s * s * n].to_vec(), n, channels: c, height: s, width: s };
        if std::mem::take(&mut self.session_first) {
            self.watch.real_batch(&batch);
        }
        if !std::mem::take(&mut self.run_first) {
            return Ok(false);
        }
        let p = self.run.path.join("real.png");
        save_png(&p, &batch.grid(grid_cols(n))).map_err(io(p))?;
        Ok(true)
    }

    /// Doctor's findings: a warning line for the user and a line of metrics.jsonl each.
    fn announce(&mut self, findings: Vec<Finding>, obs: &mut dyn Observer) -> Result<(), TrainError> {
        for f in findings {
            obs.message(&format!("doctor: {f}"));
            self.tensorboard(|tb| tb.text(&format!("doctor/{}", f.kind), f.step, &format!("{} Remedy: {}", f.evidence, f.remedy)))?;
            self.write(&MetricsLine::Doctor { step: f.step, doctor: f })?;
        }
        Ok(())
    }

    /// Writes to the TensorBoard file when the run keeps one.
    fn tensorboard(&mut self, f: impl FnOnce(&mut EventWriter) -> std::io::Result<()>) -> Result<(), TrainError> {
        match &mut self.tb {
            Some(tb) => f(tb).map_err(|source| TrainError::Io { path: tb.path().to_path_buf(), source }),
            None => Ok(()),
        }
    }

    fn write(&mut self, line: &MetricsLine) -> Result<(), TrainError> {
        self.metrics.write(line).map_err(io(self.metrics.path().to_path_buf()))
    }

    /// A metrics line, then the loss-trace doctor.
    pub fn log(&mut self, rec: MetricsRecord, obs: &mut dyn Observer) -> Result<(), TrainError> {
        self.write(&MetricsLine::Step(rec.clone()))?;
        let scalars = [
            ("loss/d", rec.loss_d as f64),
            ("loss/g", rec.loss_g as f64),
            ("d_output/real", rec.d_real as f64),
            ("d_output/fake", rec.d_fake as f64),
            ("lr/d", rec.lr_d),
            ("lr/g", rec.lr_g),
            ("speed/images_per_s", rec.images_per_s),
            ("data/decode_failures", rec.decode_failures as f64),
        ];
        self.tensorboard(|tb| tb.scalars(rec.step, &scalars))?;
        let found = self.watch.on_record(&rec);
        self.announce(found, obs)
    }

    /// The sample grid of `g` on the fixed latents, then the samples' doctor.
    pub fn samples(&mut self, g: &Generator, step: u64, obs: &mut dyn Observer) -> Result<(), TrainError> {
        let imgs = generate(g, &self.fixed_z, self.fixed_y.as_deref(), self.cfg.model.nz, &self.device);
        let p = self.run.samples_dir().join(format!("{}.png", step_name(step)));
        // Encoded once, for the file and for TensorBoard.
        let grid = imgs.grid(grid_cols(imgs.n));
        let png = png_bytes(&grid);
        crate::fsutil::write_atomic(&p, &png).map_err(io(p))?;
        self.tensorboard(|tb| tb.image("samples", step, &png, grid.width(), grid.height(), 3))?;
        let found = self.watch.on_samples(step, &imgs);
        self.announce(found, obs)
    }

    /// Whether `eval.every` evaluates at this step.
    pub fn eval_due(&self, step: u64) -> bool {
        self.watch.eval_due(step, self.cfg.eval.every)
    }

    /// `eval.every`: G's metrics now into metrics.jsonl, and what they say about collapse and
    /// memorization.
    pub fn evaluate(&mut self, g: &Generator, step: u64, obs: &mut dyn Observer) -> Result<(), TrainError> {
        let sampler = Sampler::from_generator(self.cfg.clone(), g.clone(), self.run.path.clone(), &self.device);
        let (report, findings) = self.watch.evaluate(step, &sampler)?;
        obs.message(&format!("eval at step {step}: {}", serde_json::to_string(&report.metrics).expect("serializes")));
        let scalars: Vec<(String, f64)> =
            report.metrics.0.values().flat_map(|v| v.scalars()).map(|(name, x)| (format!("eval/{name}"), x)).collect();
        let scalars: Vec<(&str, f64)> = scalars.iter().map(|(n, x)| (n.as_str(), *x)).collect();
        self.tensorboard(|tb| tb.scalars(step, &scalars))?;
        self.write(&MetricsLine::Eval { step, eval: Box::new(report) })?;
        self.announce(findings, obs)
    }

    /// Saves a checkpoint, unless a weight went to NaN or infinity: that would poison every
    /// later checkpoint, so training stops there.
    pub fn checkpoint(
        &mut self,
        state: &mut TrainState,
        gan: &Gan,
        g_ema: Option<&Generator>,
        obs: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let limit = crate::doctor::WEIGHT_LIMIT;
        let bad = params::first_beyond(&gan.g, limit)
            .map(|n| format!("G's {n}"))
            .or_else(|| params::first_beyond(&gan.d, limit).map(|n| format!("D's {n}")))
            .or_else(|| g_ema.and_then(|e| params::first_beyond(e, limit)).map(|n| format!("G's moving average's {n}")));
        if let Some(tensor) = bad {
            let last_good = self.run.last_good_checkpoint(limit);
            let what = format!("{tensor} holds a NaN, an infinity or a value beyond {limit:e}");
            let f = crate::doctor::diverged(state.step, &what, last_good.as_ref().and_then(|p| p.to_str()), &crate::doctor::Settings::of(&self.cfg));
            self.announce(vec![f], obs)?;
            return Err(TrainError::DivergedWeights { step: state.step, tensor, last_good, limit });
        }
        state.adam_g_steps = gan.opt_g.steps;
        state.adam_d_steps = gan.opt_d.steps;
        let parts = Parts { g: &gan.g, d: &gan.d, opt_g: &gan.opt_g, opt_d: &gan.opt_d, g_ema };
        checkpoint::save(&self.run.checkpoints_dir(), state, parts, &self.config_toml, self.cfg.train.keep_checkpoints)?;
        Ok(())
    }

    /// A loss or D output of step `step` became NaN, infinite or absurdly large: the finding is
    /// logged and the error to stop with returned.
    pub fn diverged(&mut self, step: u64, stats: StepStats, obs: &mut dyn Observer) -> Result<TrainError, TrainError> {
        let last_good = self.run.last_good_checkpoint(crate::doctor::WEIGHT_LIMIT);
        let probabilistic = self.cfg.train.loss.is_probabilistic();
        let settings = crate::doctor::Settings::of(&self.cfg);
        let f = crate::doctor::divergence(step, &stats.named(), probabilistic, last_good.as_ref().and_then(|p| p.to_str()), &settings);
        self.announce(f.into_iter().collect(), obs)?;
        Ok(TrainError::Diverged { step, stats, last_good, limit: crate::doctor::LOSS_LIMIT })
    }

    /// The whole run's curves (earlier sessions too, when resumed) as loss.png.
    pub fn finish(self) -> Result<RunDir, TrainError> {
        if let Ok(log) = self.run.log() {
            let p = self.run.path.join("loss.png");
            save_png(&p, &crate::plot::loss_plot(&log.steps)).map_err(io(p))?;
        }
        Ok(self.run)
    }
}
