//! A tiny trained run and a server on it, for the HTTP and browser tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ganforge::burn::tensor::Device;
use ganforge::config::GanConfig;
use ganforge::train::{train, Quiet, TrainOptions};
use ganforge_serve::server::{spawn, ServeHandle};

/// A 16x16 DCGAN trained for 4 steps, with an evaluation and a doctor finding in its log.
pub fn tiny_run(out: &Path, extra: &[&str]) -> PathBuf {
    let mut sets: Vec<String> = [
        "model.image_size=16",
        "dcgan.ngf=8",
        "dcgan.ndf=8",
        "train.batch_size=8",
        "train.steps=4",
        "train.log_every=1",
        "train.sample_every=2",
        "train.checkpoint_every=2",
        "train.grid_images=4",
        "eval.every=2",
        "eval.n=20",
        "eval.metrics=coverage,fid",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sets.push(format!("data.cache_dir={}", std::env::temp_dir().join("ganforge-test-cache").display()));
    sets.extend(extra.iter().map(|s| s.to_string()));
    let cfg = GanConfig::resolve(None, None, &sets).unwrap();
    let opts = options(out);
    let run = train(cfg, opts, &mut Quiet).unwrap().path;
    // A finding as the live doctor writes it, for the dashboard to show.
    let line = r#"{"step":3,"doctor":{"kind":"checkerboard","step":3,"evidence":"planted for the test.","remedy":"resize-convolution"}}"#;
    let mut log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    log.push_str(line);
    log.push('\n');
    std::fs::write(run.join("metrics.jsonl"), log).unwrap();
    run
}

/// A class-conditional BigGAN-style run at 16x16 (3 steps): its classes change its images
/// already, where a conditional DCGAN's label barely moves them after a few steps.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn tiny_biggan_run(out: &Path) -> PathBuf {
    let sets: Vec<String> =
        ["biggan.ch=8", "biggan.shared_dim=8", "model.image_size=16", "biggan.attn_res=8", "train.batch_size=4", "train.steps=3"]
            .iter()
            .map(|s| s.to_string())
            .chain(std::iter::once(format!("data.cache_dir={}", std::env::temp_dir().join("ganforge-test-cache").display())))
            .collect();
    let cfg = GanConfig::resolve(Some("biggan"), None, &sets).unwrap();
    let opts = options(out);
    train(cfg, opts, &mut Quiet).unwrap().path
}

pub fn serve(run: &Path) -> ServeHandle {
    spawn(run, "127.0.0.1:0".parse().unwrap(), Device::flex()).unwrap()
}

/// A plain single-process training into `out`.
fn options(out: &Path) -> TrainOptions {
    TrainOptions { out: out.to_path_buf(), device: Device::flex(), resume: None, stop: Arc::new(AtomicBool::new(false)), group: ganforge::dist::solo() }
}
