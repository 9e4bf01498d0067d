//! ganforge: train, sample and inspect Generative Adversarial Networks on image data.
//!
//! The modules form layers; each imports only those above it in this list (checked by
//! tests/layering.rs):
//! - plumbing: [`fsutil`], [`rng`], [`alloc`], [`device`], [`dist`] (the ranks of a
//!   data-parallel run and their collectives), file formats [`npy`],
//!   [`pth`], [`image_io`], [`tensorboard`] (event files), and [`params`] (named tensors and
//!   their safetensors files);
//! - [`kernels`]: ganforge's own CPU products and convolutions on slices; [`ops`]: the
//!   convolutions inside burn (forward and both gradients), on those kernels;
//! - [`metrics`]: the metrics as pure functions on features, and their registry;
//! - the pieces of a GAN: [`augment`] (DiffAugment), [`loss`], [`optim`], [`nets`] (DCGAN,
//!   fully connected, BigGAN-style), [`penalty`] (WGAN-GP and R1);
//! - [`data`]: image sources, the image cache and the prefetching loader; [`features`]:
//!   Inception-v3 and LeNet feature extractors;
//! - [`config`]: paper defaults, presets, overrides and validation; [`memory`]: whether a
//!   config fits the machine;
//! - [`interop`] (PyTorch's DCGAN example) and [`toy2d`] (the 2-D mode-collapse bed);
//! - [`run`]: the run folder's format (checkpoints, metrics.jsonl, evaluation reports), which
//!   everything that reads a finished run goes through;
//! - [`sample`], [`kaggle`], [`plot`]: images and pictures out of a generator or a run;
//! - [`eval`] and [`doctor`]: measuring and diagnosing a run; [`compare`]: any two image sets
//!   (folders, datasets, generators, saved statistics) compared as pytorch-fid does;
//! - [`train`]: the training step, the loop and what it writes on its schedules.

pub mod alloc;
pub mod augment;
pub mod compare;
pub mod config;
pub mod config_docs;
pub mod data;
pub mod device;
pub mod dist;
pub mod doctor;
pub mod eval;
pub mod features;
pub mod fsutil;
pub mod image_io;
pub mod interop;
pub mod kaggle;
pub mod kernels;
pub mod loss;
pub mod memory;
pub mod metrics;
pub mod nets;
pub mod ops;
pub mod npy;
pub mod optim;
pub mod params;
pub mod penalty;
pub mod plot;
pub mod pth;
pub mod rng;
pub mod run;
pub mod sample;
pub mod tensorboard;
pub mod toy2d;
pub mod train;

pub use burn;

/// A file of `tests/fixtures`, where the unit tests' committed references live.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}
