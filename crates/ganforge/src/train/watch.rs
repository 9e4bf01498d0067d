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
    /// The real images' checkerboard scores, the reference for the samples'.
    real_checkerboard: [f64; 2],
    /// The run's settings, so that remedies name only what would change.
    settings: doctor::Settings,
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
            real_checkerboard: [0.0; 2],
            settings: doctor::Settings::of(cfg),
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

    /// The real images' diversity and checkerboard scores, from a batch of them (the first of
    /// the session).
    pub fn real_batch(&mut self, images: &ImageBatch) {
        let dim = images.channels * images.height * images.width;
        self.real_diversity = Some(doctor::mean_pairwise_distance(&images.values, dim));
        if self.doctor {
            self.real_checkerboard = doctor::real_checkerboard_scores(images);
        }
    }

    /// After each metrics record: the loss-trace detectors.
    pub fn on_record(&mut self, rec: &MetricsRecord) -> Vec<Finding> {
        self.history.push(rec.clone());
        if !self.doctor {
            return Vec::new();
        }
        let found = doctor::lr_imbalance(&self.history, self.probabilities, &self.settings).into_iter().collect();
        self.fresh(&["lr_imbalance"], found)
    }

    /// After each sample grid: checkerboard and diversity.
    pub fn on_samples(&mut self, step: u64, samples: &ImageBatch) -> Vec<Finding> {
        if !self.doctor || step < doctor::SAMPLE_CHECKS_FROM {
            return Vec::new();
        }
        let mut found: Vec<Finding> = doctor::checkerboard(step, samples, self.real_checkerboard, &self.settings).into_iter().collect();
        if let Some(real) = self.real_diversity {
            let dim = samples.channels * samples.height * samples.width;
            found.extend(doctor::mode_collapse(step, doctor::mean_pairwise_distance(&samples.values, dim), real, None, &self.settings));
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
        let announce = self.judge_report(step, &report);
        Ok((report, announce))
    }

    /// What an evaluation says about collapse (coverage below its best) and memorization, each
    /// announced once when it appears. Apart from [`Watch::evaluate`] so that tests can plant reports.
    fn judge_report(&mut self, step: u64, report: &EvalReport) -> Vec<Finding> {
        if !self.doctor {
            return Vec::new();
        }
        let mut announce = Vec::new();
        if let Some(c) = report.metrics.coverage().map(|c| c.covered) {
            self.best_coverage = self.best_coverage.max(c);
            // Its own "announced" flag: the diversity check of the samples keeps the other.
            match doctor::mode_collapse(step, 1.0, 1.0, Some((c, self.best_coverage)), &self.settings) {
                Some(f) if self.active.insert("coverage_collapse".into()) => announce.push(f),
                Some(_) => {}
                None => {
                    self.active.remove("coverage_collapse");
                }
            }
        }
        let memorized = report.metrics.mifid().and_then(|m| doctor::memorization(step, m.memorization_distance, &self.settings));
        announce.extend(self.fresh(&["memorization"], memorized.into_iter().collect()));
        announce
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{GanRng, Stream};

    fn watch() -> Watch {
        let cfg = GanConfig::resolve(None, None, &["eval.every=0".into(), "eval.doctor=true".into()]).unwrap();
        Watch::new(&cfg, &Device::flex()).unwrap()
    }

    fn rec(step: u64, d_real: f32, d_fake: f32) -> MetricsRecord {
        MetricsRecord::planted(step, 0.5, 1.0, d_real, d_fake)
    }

    fn kinds(found: &[Finding]) -> Vec<&str> {
        found.iter().map(|f| f.kind.as_str()).collect()
    }

    /// 16 grey 16x16 images of independent noise in [-0.5, 0.5] (diverse, no periodic peak),
    /// plus `checker` times a period-2 checkerboard.
    fn images(seed: u64, checker: f32) -> ImageBatch {
        let mut values = GanRng::new(seed, Stream::Train).normal_vec(16 * 256, 0.0, 0.2);
        for (k, v) in values.iter_mut().enumerate() {
            let (y, x) = ((k / 16) % 16, k % 16);
            *v = v.clamp(-0.5, 0.5) + if (x + y) % 2 == 0 { checker } else { -checker };
        }
        ImageBatch { values, n: 16, channels: 1, height: 16, width: 16 }
    }

    fn report(metrics: &str) -> EvalReport {
        serde_json::from_str(&format!(
            r#"{{"checkpoint":"c","real":"mnist","n_fake":10,"n_real":10,"features":"lenet","resize":"r","metrics":{metrics},"warnings":[]}}"#
        ))
        .unwrap()
    }

    fn coverage(covered: usize) -> EvalReport {
        report(&format!(r#"{{"coverage":{{"classes":10,"covered":{covered},"histogram":[1,1,1,1,1,1,1,1,1,1],"kl":0.1}}}}"#))
    }

    fn mifid(distance: f64) -> EvalReport {
        report(&format!(r#"{{"mifid":{{"fid":12.5,"memorization_distance":{distance},"threshold":0.1,"value":12.5}}}}"#))
    }

    #[test]
    fn a_loss_finding_is_announced_once_until_it_clears() {
        let mut w = watch();
        // D winning from step 0: the fifth line spans 200 steps, the sixth 250 (D_WINS_STEPS).
        let mut announced = Vec::new();
        for i in 0..10 {
            announced.push(w.on_record(&rec(i * 50, 0.99, 0.01)).len());
        }
        assert_eq!(announced, [0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "once, at step 250, then suppressed");
        assert!(w.on_record(&rec(500, 0.7, 0.3)).is_empty(), "a healthy line clears it");
        let again: usize = (11..17).map(|i| w.on_record(&rec(i * 50, 0.99, 0.01)).len()).sum();
        assert_eq!(again, 1, "D winning anew is announced anew");
        let mut off = watch();
        off.doctor = false;
        assert!((0..10).all(|i| off.on_record(&rec(i * 50, 0.99, 0.01)).is_empty()), "eval.doctor = false");
    }

    #[test]
    fn samples_are_judged_from_step_500_and_announced_once() {
        let mut w = watch();
        let checker = images(1, 0.3);
        assert!(w.on_samples(doctor::SAMPLE_CHECKS_FROM - 1, &checker).is_empty(), "before the gate");
        assert_eq!(kinds(&w.on_samples(doctor::SAMPLE_CHECKS_FROM, &checker)), ["checkerboard"], "at the gate");
        assert!(w.on_samples(600, &checker).is_empty(), "still there: not announced again");
        assert!(w.on_samples(700, &images(2, 0.0)).is_empty(), "clean samples clear it");
        assert_eq!(kinds(&w.on_samples(800, &checker)), ["checkerboard"]);
    }

    #[test]
    fn collapse_in_samples_needs_the_real_batch() {
        // 16 copies of one noise image: no diversity at all.
        let one = images(3, 0.0);
        let collapsed = ImageBatch { values: one.values[..256].repeat(16), ..one.clone() };
        let mut w = watch();
        assert!(w.on_samples(600, &collapsed).is_empty(), "without real images there is nothing to compare with");
        w.real_batch(&images(4, 0.0));
        assert_eq!(kinds(&w.on_samples(700, &collapsed)), ["mode_collapse"]);
        assert!(w.on_samples(800, &one).is_empty(), "diverse samples: no collapse");
    }

    #[test]
    fn coverage_collapse_has_its_own_flag() {
        let mut w = watch();
        assert!(w.judge_report(500, &coverage(10)).is_empty());
        // 7 of a best of 10 is the boundary (below 0.7 of the best is collapse).
        assert!(w.judge_report(1000, &coverage(7)).is_empty());
        let f = w.judge_report(1500, &coverage(6));
        assert_eq!(kinds(&f), ["mode_collapse"]);
        assert!(f[0].evidence.contains("fell to 6 classes from 10"), "{}", f[0].evidence);
        assert!(w.judge_report(2000, &coverage(3)).is_empty(), "announced once");
        // The samples' diversity check keeps its own flag: a collapse there is still announced.
        w.real_batch(&images(4, 0.0));
        let one = images(3, 0.0);
        let collapsed = ImageBatch { values: one.values[..256].repeat(16), ..one };
        assert_eq!(kinds(&w.on_samples(2000, &collapsed)), ["mode_collapse"]);
        assert!(w.judge_report(2500, &coverage(10)).is_empty(), "recovered");
        assert_eq!(kinds(&w.judge_report(3000, &coverage(5))), ["mode_collapse"], "collapsed anew");
    }

    #[test]
    fn memorization_from_mifid_is_announced_once() {
        let mut w = watch();
        assert!(w.judge_report(500, &mifid(0.3)).is_empty());
        assert_eq!(kinds(&w.judge_report(1000, &mifid(0.01))), ["memorization"]);
        assert!(w.judge_report(1500, &mifid(0.02)).is_empty(), "announced once");
        assert!(w.judge_report(2000, &mifid(crate::metrics::MIFID_EPS)).is_empty(), "at the threshold is not below it");
        assert_eq!(kinds(&w.judge_report(2500, &mifid(0.01))), ["memorization"]);
        w.doctor = false;
        assert!(w.judge_report(3000, &mifid(0.3)).is_empty() && w.judge_report(3500, &mifid(0.01)).is_empty());
    }
}
