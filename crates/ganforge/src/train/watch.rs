//! What the training loop watches besides the step: the live doctor and `eval.every`.
//!
//! Findings and evaluations become lines of metrics.jsonl (`{"step": N, "doctor": {...}}`,
//! `{"step": N, "eval": {...}}`) beside the loss records, so that `ganforge doctor` and the
//! dashboard read one file.

use std::collections::BTreeSet;

use burn::tensor::Device;

use crate::config::GanConfig;
use crate::doctor::{self, Finding};
use crate::eval::{self, EvalOptions, EvalReport, Extractors};
use crate::image_io::ImageBatch;
use crate::run::MetricsRecord;

/// The live doctor's memory: the loss trace, the real data's diversity, the best coverage.
pub struct Watch {
    history: Vec<MetricsRecord>,
    /// D's outputs are probabilities (cross-entropy losses).
    probabilities: bool,
    real_diversity: Option<f64>,
    best_coverage: usize,
    /// Kinds found at the last check, so a finding is announced once when it appears.
    active: BTreeSet<String>,
    pub doctor: bool,
    eval: Option<(EvalOptions, Extractors)>,
}

impl Watch {
    pub fn new(cfg: &GanConfig, device: &Device) -> Result<Self, eval::EvalError> {
        let e = &cfg.eval;
        let eval = if e.every > 0 {
            let opts = EvalOptions {
                metrics: e.metrics.0.clone(),
                n: e.n,
                n_real: None,
                real: None,
                features: e.features,
                inception: e.inception.get(),
                classifier: e.classifier.get(),
                seed: cfg.seed,
                cache_dir: Some(eval::default_cache_dir()),
            };
            let ex = Extractors::load(&opts, device)?;
            Some((opts, ex))
        } else {
            None
        };
        Ok(Self {
            history: Vec::new(),
            probabilities: cfg.train.loss.is_probabilistic(),
            real_diversity: None,
            best_coverage: 0,
            active: BTreeSet::new(),
            doctor: e.doctor,
            eval,
        })
    }

    /// Keeps only findings that were not active at the previous check of their kind.
    fn fresh(&mut self, kinds: &[&str], found: Vec<Finding>) -> Vec<Finding> {
        for k in kinds {
            if !found.iter().any(|f| f.kind == *k) {
                self.active.remove(*k);
            }
        }
        found.into_iter().filter(|f| self.active.insert(f.kind.clone())).collect()
    }

    /// The real images' diversity, from a batch of them (the first of the session).
    pub fn real_batch(&mut self, images: &ImageBatch) {
        let dim = images.channels * images.height * images.width;
        self.real_diversity = Some(doctor::mean_pairwise_distance(&images.values, dim));
    }

    /// After each metrics record: the loss-trace detectors.
    pub fn on_record(&mut self, rec: &MetricsRecord) -> Vec<Finding> {
        self.history.push(rec.clone());
        if !self.doctor {
            return Vec::new();
        }
        let found = doctor::lr_imbalance(&self.history, self.probabilities).into_iter().collect();
        self.fresh(&["lr_imbalance"], found)
    }

    /// After each sample grid: checkerboard and diversity.
    pub fn on_samples(&mut self, step: u64, samples: &ImageBatch) -> Vec<Finding> {
        if !self.doctor || step < doctor::SAMPLE_CHECKS_FROM {
            return Vec::new();
        }
        let mut found: Vec<Finding> = doctor::checkerboard(step, samples).into_iter().collect();
        if let Some(real) = self.real_diversity {
            let dim = samples.channels * samples.height * samples.width;
            found.extend(doctor::mode_collapse(step, doctor::mean_pairwise_distance(&samples.values, dim), real, None));
        }
        self.fresh(&["checkerboard", "mode_collapse"], found)
    }

    /// Whether this step evaluates.
    pub fn eval_due(&self, step: u64, every: u64) -> bool {
        self.eval.is_some() && every > 0 && step % every == 0
    }

    /// `eval.every`: the metrics of G now, and what they say about collapse and memorization.
    pub fn evaluate(&mut self, step: u64, sampler: &crate::sample::Sampler) -> Result<(EvalReport, Vec<Finding>), eval::EvalError> {
        let (opts, ex) = self.eval.as_ref().expect("eval_due checked");
        let report = eval::evaluate(sampler, opts, ex, &mut |_| {})?;
        if !self.doctor {
            return Ok((report, Vec::new()));
        }
        let mut announce = Vec::new();
        if let Some(c) = report.metrics.coverage().map(|c| c.covered) {
            self.best_coverage = self.best_coverage.max(c);
            // Its own "announced" flag: the diversity check of the samples keeps the other.
            match doctor::mode_collapse(step, 1.0, 1.0, Some((c, self.best_coverage))) {
                Some(f) if self.active.insert("coverage_collapse".into()) => announce.push(f),
                Some(_) => {}
                None => {
                    self.active.remove("coverage_collapse");
                }
            }
        }
        let memorized = report.metrics.mifid().and_then(|m| doctor::memorization(step, m.memorization_distance));
        announce.extend(self.fresh(&["memorization"], memorized.into_iter().collect()));
        Ok((report, announce))
    }
}
