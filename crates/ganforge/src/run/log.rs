//! metrics.jsonl: one JSON object a line, of three kinds, read by the doctor, the dashboard,
//! the report and the loss plot:
//!
//! ```text
//! {"step":10,"epoch":0,"loss_d":1.2,"loss_g":0.9,...}          a MetricsRecord (means since the last)
//! {"step":500,"doctor":{"kind":"checkerboard",...}}            a Finding
//! {"step":1000,"eval":{"checkpoint":..,"metrics":{"fid":..}}}  an EvalReport
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::MetricResults;

/// One line of metrics.jsonl: means over the steps since the previous line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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
    /// Images that failed to decode so far in this session (each replaced by another image);
    /// left out of the line while 0, as logs before this field have it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub decode_failures: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One diagnosis of the doctor: what, the evidence, and the remedy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    pub step: u64,
    pub evidence: String,
    pub remedy: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] step {}: {} Remedy: {}", self.kind, self.step, self.evidence, self.remedy)
    }
}

/// One evaluation: where the images came from, how they reached the extractor, the results.
/// Written into metrics.jsonl during training and as `eval/step_NNNNNN.json` by `ganforge eval`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub checkpoint: String,
    pub real: String,
    pub n_fake: usize,
    pub n_real: usize,
    /// The extractor of the distribution metrics and how images reach it.
    pub features: String,
    pub resize: String,
    pub metrics: MetricResults,
    pub warnings: Vec<String>,
}

/// One line of metrics.jsonl, whichever kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricsLine {
    Doctor { step: u64, doctor: Finding },
    Eval { step: u64, eval: Box<EvalReport> },
    Step(MetricsRecord),
}

impl MetricsLine {
    pub fn step(&self) -> u64 {
        match self {
            MetricsLine::Doctor { step, .. } | MetricsLine::Eval { step, .. } => *step,
            MetricsLine::Step(r) => r.step,
        }
    }
}

/// A run's metrics.jsonl, split by kind.
#[derive(Clone, Debug, Default)]
pub struct MetricsLog {
    pub steps: Vec<MetricsRecord>,
    pub evals: Vec<(u64, EvalReport)>,
    pub findings: Vec<Finding>,
}

impl MetricsLog {
    /// Reads metrics.jsonl; a line that is not one of its kinds is an error naming the line.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let mut log = Self::default();
        let lines = text.lines().count();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match serde_json::from_str::<MetricsLine>(line) {
                Ok(MetricsLine::Step(r)) => log.steps.push(r),
                Ok(MetricsLine::Eval { step, eval }) => log.evals.push((step, *eval)),
                Ok(MetricsLine::Doctor { doctor, .. }) => log.findings.push(doctor),
                // A run killed mid-write leaves a partial line (the last, or, once resumed, one
                // that training ended with a newline): nothing to report there.
                Err(_) if i + 1 == lines || !line.trim_end().ends_with('}') => {}
                Err(e) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: line {}: {e}", path.display(), i + 1)))
                }
            }
        }
        Ok(log)
    }
}

/// Appends lines to a run's metrics.jsonl, each flushed as written.
pub struct MetricsWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsWriter {
    /// Opens metrics.jsonl for appending. A run killed mid-write leaves a partial last line:
    /// it is ended, so the next record starts clean.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        if !crate::fsutil::ends_with_newline(path)? {
            writeln!(file)?;
        }
        Ok(Self { path: path.to_path_buf(), file })
    }

    /// Opens metrics.jsonl of a run resumed from the checkpoint at `step`: lines of later steps
    /// (written after that checkpoint by a session that was then killed) and a partial last line
    /// would repeat or garble what the resumed session writes, so they are moved to
    /// `metrics.cut.jsonl` beside it, and the log is rewritten (atomically) without them. The
    /// resumed log then equals an uninterrupted one, apart from timing fields.
    pub fn resume(path: &Path, step: u64) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let (mut keep, mut cut) = (String::new(), String::new());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let later = serde_json::from_str::<MetricsLine>(line).map_or(true, |l| l.step() > step);
            let to = if later { &mut cut } else { &mut keep };
            to.push_str(line);
            to.push('\n');
        }
        if !cut.is_empty() {
            let side = path.with_file_name("metrics.cut.jsonl");
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&side)?;
            f.write_all(cut.as_bytes())?;
            f.sync_all()?;
            crate::fsutil::write_atomic(path, keep.as_bytes())?;
        }
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, line: &MetricsLine) -> std::io::Result<()> {
        let text = serde_json::to_string(line).expect("metrics lines serialize");
        writeln!(self.file, "{text}")?;
        self.file.flush()
    }
}

#[cfg(test)]
impl MetricsRecord {
    /// A record of losses and D outputs at `step`, the rest filled in: evidence planted for the
    /// detectors' and the plot's tests.
    pub(crate) fn planted(step: u64, loss_d: f32, loss_g: f32, d_real: f32, d_fake: f32) -> Self {
        let (lr_d, lr_g, images_per_s, elapsed_s, decode_failures) = (2e-4, 2e-4, 1.0, 1.0, 0);
        Self { step, epoch: 0, loss_d, loss_g, d_real, d_fake, lr_d, lr_g, images_per_s, elapsed_s, decode_failures }
    }
}
