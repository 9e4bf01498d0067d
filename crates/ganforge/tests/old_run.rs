//! A run folder written by an earlier ganforge (commit c47ce6c, before the `run` module and the
//! typed evaluation results) still reads, samples, resumes and reports.
//!
//! The fixture was made with that commit's binary:
//! ```text
//! ganforge train --steps 4 --set model.image_size=16 --set model.nz=8 --set dcgan.ngf=8
//!   --set dcgan.ndf=8 --set train.batch_size=8 --set train.log_every=1 --set train.sample_every=2
//!   --set train.checkpoint_every=2 --set train.keep_checkpoints=1 --set train.grid_images=4
//!   --set eval.every=2 --set eval.n=20 --set train.diffaugment=color --set train.g_ema=0.9
//! ganforge eval --run RUN --metrics fid,kid,pr,coverage,is,mifid --features lenet --n 20 --n-real 40
//! ```
//! (loss.png and real.png left out).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ganforge::burn::tensor::Device;
use ganforge::metrics::Metric;
use ganforge::run::{EvalReport, RunDir};
use ganforge::sample::Sampler;
use ganforge::train::{train, Quiet, TrainOptions};

mod common;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old_run_c47ce6c")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn an_old_run_reads_with_typed_config_and_results() {
    let run = RunDir::open(&fixture()).unwrap();
    let cfg = run.config().unwrap();
    assert!(cfg.train.diffaugment.color && !cfg.train.diffaugment.cutout);
    assert_eq!(cfg.eval.metrics.0, vec![Metric::Fid, Metric::Coverage], "the old string \"coverage,fid\"");
    assert_eq!(cfg.eval.inception.get(), None);

    let log = run.log().unwrap();
    assert_eq!(log.steps.iter().map(|r| r.step).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(log.evals.len(), 2);
    let (step, e) = &log.evals[1];
    assert_eq!((*step, e.n_fake), (4, 20));
    let cov = e.metrics.coverage().unwrap();
    assert_eq!((cov.classes, cov.histogram.iter().sum::<usize>()), (10, 20));
    assert!(e.metrics.fid().unwrap().value > 0.0 && e.metrics.fid().unwrap().protocol == "fid20");

    // `ganforge eval`'s file: all six metrics, and it writes back the same JSON.
    let text = std::fs::read_to_string(fixture().join("eval/step_000004.json")).unwrap();
    let report: EvalReport = serde_json::from_str(&text).unwrap();
    assert_eq!(report.metrics.0.len(), 6);
    assert_eq!(report.metrics.pr().unwrap().k, 3);
    assert_eq!(report.metrics.kid().unwrap().protocol, "kid20");
    let old: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&report).unwrap(), old);
}

#[test]
fn an_old_run_samples_resumes_and_is_examined() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000-mnist");
    copy_dir(&fixture(), &path);
    let device = Device::flex();
    let s = Sampler::load(&path, None, &device).unwrap();
    assert!(s.checkpoint.ends_with("checkpoints/step_000004/g_ema.safetensors"));
    assert_eq!(s.step, Some(4));
    let images = s.generate(&s.latents(3, 0), None);
    assert_eq!((images.n, images.channels, images.height), (3, 1, 16));

    let cfg = RunDir::open(&path).unwrap().config().unwrap().with_overrides(&["train.steps=6".into()]).unwrap();
    let opts = TrainOptions {
        out: dir.path().to_path_buf(),
        device: device.clone(),
        resume: Some(path.clone()),
        stop: Arc::new(AtomicBool::new(false)),
        group: ganforge::dist::solo(),
    };
    train(cfg, opts, &mut Quiet).unwrap();
    let log = RunDir::open(&path).unwrap().log().unwrap();
    assert_eq!(log.steps.iter().map(|r| r.step).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    resumed_as_at_commit_2340d05(&path, &device);
    assert_eq!(log.evals.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 4, 6], "old and new evaluations in one log");

    let exam = ganforge::doctor::examine_run(&path, &device).unwrap();
    assert!(exam.notes.iter().any(|n| n.contains("samples are judged from step 500")), "{:?}", exam.notes);
}

/// The resumed run continues the old checkpoint's streams exactly as commit 2340d05 (rand 0.9,
/// rand_chacha 0.9, rand_distr 0.5, before the upgrade to burn's rand 0.10) continued them: the
/// values and the image fixture below were made by that commit's code. The stream position is
/// exact; weights and images go through float kernels, so they are compared with a tolerance
/// far below what one other draw of latents or batch order changes.
fn resumed_as_at_commit_2340d05(run: &Path, device: &Device) {
    let ckpt = run.join("checkpoints/step_000006");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(ckpt.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["rng"].to_string(), PIN_RESUMED_RNG);
    let files = [("g.safetensors", PIN_RESUMED_G), ("d.safetensors", PIN_RESUMED_D), ("g_ema.safetensors", PIN_RESUMED_G_EMA)];
    let got: Vec<[f64; 3]> =
        files.iter().map(|(f, _)| common::fingerprint(&ganforge::params::read_safetensors(&ckpt.join(f)).unwrap())).collect();
    for ((file, pin), got) in files.iter().zip(&got) {
        for (g, p) in got.iter().zip(pin) {
            assert!((g - p).abs() <= 1e-5 * p.abs().max(1.0), "{file}: {got:?}, commit 2340d05 made {pin:?}");
        }
    }
    let s = Sampler::load(run, None, device).unwrap();
    let grid = s.generate(&s.latents(4, 123), None).grid(2);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed_123_old_run_c47ce6c_resumed_6.png");
    let want = image::open(&fixture).unwrap().to_rgb8();
    let worst = grid.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(grid.dimensions() == want.dimensions() && worst <= 1, "the resumed run's images differ by up to {worst} levels");
}

// Printed by commit 2340d05's code.
const PIN_RESUMED_RNG: &str = r#"{"seed":[164,143,161,123,88,50,61,10,234,184,161,204,105,1,20,184,43,140,200,117,24,180,247,84,141,68,110,161,228,223,32,242],"stream":2,"word_pos":1368}"#;
const PIN_RESUMED_G: [f64; 3] = [36.523391979737426, 32.697724561888016, 0.39410983390735055];
const PIN_RESUMED_D: [f64; 3] = [19.043118001711264, 17.31036679912236, 0.8297104906014283];
const PIN_RESUMED_G_EMA: [f64; 3] = [36.61675542821058, 32.69502387354317, 0.3178764808694723];
