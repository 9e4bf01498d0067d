//! TensorBoard reads back every value a run logs: the losses and the rest of metrics.jsonl as
//! scalars, evaluations, the sample grids as images, the doctor's findings as text; and a
//! resumed run's events show each step once. Read by TensorBoard's own EventAccumulator
//! (tests/fixtures/tensorboard_read.py), so this needs Python with `pip install tensorboard`;
//! `.ci/run` installs it and runs the ignored tests.

use std::path::Path;

use ganforge::run::{MetricsLog, RunDir};
use ganforge::train::{train, Quiet};

mod common;
use common::{opts, tiny};
use serde_json::Value;

/// What TensorBoard reads in `run`/tb.
fn read_back(run: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tensorboard_read.py");
    let o = std::process::Command::new("python3").arg(script).arg(run.join("tb")).output().expect("python3 runs");
    assert!(o.status.success(), "TensorBoard's reader failed (pip install tensorboard): {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A scalar's (step, value) as float32, which is what an event holds.
fn series(tb: &Value, tag: &str) -> Vec<(u64, f32)> {
    let points = tb["scalars"][tag].as_array().unwrap_or_else(|| panic!("no scalar {tag}: {tb}"));
    points.iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap() as f32)).collect()
}

#[test]
#[ignore = "needs Python's tensorboard package (pip install tensorboard); .ci/run installs it and runs this"]
fn tensorboard_reads_back_every_value() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&["eval.every=2", "eval.n=20", "eval.metrics=coverage,fid"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let tb = read_back(&run);
    let log = MetricsLog::read(&run.join("metrics.jsonl")).unwrap();
    let f32s = |f: &dyn Fn(&ganforge::run::MetricsRecord) -> f64| log.steps.iter().map(|r| (r.step, f(r) as f32)).collect::<Vec<_>>();
    assert_eq!(series(&tb, "loss/d"), f32s(&|r| r.loss_d as f64));
    assert_eq!(series(&tb, "loss/g"), f32s(&|r| r.loss_g as f64));
    assert_eq!(series(&tb, "d_output/real"), f32s(&|r| r.d_real as f64));
    assert_eq!(series(&tb, "d_output/fake"), f32s(&|r| r.d_fake as f64));
    assert_eq!(series(&tb, "lr/g"), f32s(&|r| r.lr_g));
    assert_eq!(series(&tb, "speed/images_per_s"), f32s(&|r| r.images_per_s));
    let covered: Vec<(u64, f32)> = log.evals.iter().map(|(s, e)| (*s, e.metrics.coverage().unwrap().covered as f32)).collect();
    assert_eq!(series(&tb, "eval/classes_covered"), covered);
    let fid: Vec<(u64, f32)> = log.evals.iter().map(|(s, e)| (*s, e.metrics.fid().unwrap().value as f32)).collect();
    assert_eq!(series(&tb, "eval/fid"), fid);
    // The grids: 4 images of 16x16 in a 2x2 grid with 2-pixel borders.
    let grids = tb["images"]["samples"].as_array().unwrap();
    assert_eq!(grids.iter().map(|g| g[0].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 4]);
    let png = std::fs::read(run.join("samples/step_000004.png")).unwrap();
    assert_eq!(grids[1][3].as_u64().unwrap(), png.len() as u64, "the grid's PNG, byte for byte as samples/ has it");

    // A divergence: the doctor's finding becomes text.
    let bad = train(tiny(&["train.lr_d=1e30", "train.lr_g=1e30"]), opts(out.path(), None), &mut Quiet).err().unwrap();
    assert!(bad.to_string().contains("diverged"));
    let diverged = RunDir::open(&out.path().join("00001-mnist")).unwrap();
    let tb = read_back(&diverged.path);
    let text = &tb["text"]["doctor/divergence"][0];
    assert_eq!(text[0], 1);
    assert!(text[1].as_str().unwrap().contains("training stopped") && text[1].as_str().unwrap().contains("Remedy:"), "{text}");
}

/// Killed after logging steps 3 and 4 but before their checkpoint: the resumed session's
/// events replace them (a restart marker purges what came after the checkpoint).
#[test]
#[ignore = "needs Python's tensorboard package (pip install tensorboard); .ci/run installs it and runs this"]
fn a_resumed_run_shows_each_step_once() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    std::fs::remove_dir_all(run.join("checkpoints/step_000004")).unwrap();
    train(tiny(&[]), opts(out.path(), Some(run.clone())), &mut Quiet).unwrap();
    let tb = read_back(&run);
    let steps: Vec<u64> = series(&tb, "loss/d").iter().map(|p| p.0).collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
}
