//! What the integration tests share: a local HTTP server (downloads), and the tiny run
//! config every training test starts from.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod http_server;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ganforge::burn::tensor::Device;
use ganforge::config::GanConfig;
use ganforge::train::TrainOptions;

/// A 16x16 DCGAN with widths 8 on batches of 8: a step takes milliseconds.
pub fn tiny(extra: &[&str]) -> GanConfig {
    let mut sets: Vec<String> = [
        "model.image_size=16",
        "dcgan.ngf=8",
        "dcgan.ndf=8",
        "fc.hidden=16",
        "train.batch_size=8",
        "train.steps=4",
        "train.log_every=1",
        "train.sample_every=2",
        "train.checkpoint_every=2",
        "train.keep_checkpoints=2",
        "train.grid_images=4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sets.push(test_cache());
    sets.extend(extra.iter().map(|s| s.to_string()));
    GanConfig::resolve(None, None, &sets).unwrap()
}

/// Image caches of the tests go to the temporary folder, not the user's ~/.cache.
pub fn test_cache() -> String {
    format!("data.cache_dir={}", std::env::temp_dir().join("ganforge-test-cache").display())
}

pub fn opts(out: &Path, resume: Option<PathBuf>) -> TrainOptions {
    TrainOptions {
        out: out.to_path_buf(),
        device: Device::flex(),
        resume,
        stop: Arc::new(AtomicBool::new(false)),
        group: ganforge::dist::solo(),
    }
}

/// FNV-1a over 64-bit words: one number that pins a whole sequence of exact values.
pub fn fnv(words: impl IntoIterator<Item = u64>) -> u64 {
    words.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, w| (h ^ w).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Float tensors' sum, sum of squares and alternating-sign sum: a fingerprint that tolerates
/// the last-bit differences of another CPU's kernels (compare with a relative tolerance) but
/// not another draw of the random streams, which moves each weight by a learning rate.
pub fn fingerprint(tensors: &std::collections::BTreeMap<String, ganforge::params::HostTensor>) -> [f64; 3] {
    let values = tensors.values().flat_map(|t| t.values.iter().map(|&v| v as f64));
    values.enumerate().fold([0.0; 3], |[s, q, a], (i, v)| [s + v, q + v * v, a + if i % 2 == 0 { v } else { -v }])
}
