//! ganforge: train, sample and inspect Generative Adversarial Networks on image data.
//!
//! A walk through the crate, in the order a training step touches it:
//! - [`config`]: paper defaults, presets, overrides and validation;
//! - [`data`]: image sources (`mnist`, `idx:`, `folder:`) and the prefetching loader;
//! - [`nets`]: one file per network family (DCGAN, fully connected GAN);
//! - [`loss`]: the adversarial losses on logits;
//! - [`optim`]: Adam with its state addressable by parameter name;
//! - [`train`]: the training step, the loop, run folders and checkpoints;
//! - [`sample`]: images out of a trained generator;
//! - [`image_io`], [`npy`], [`params`], [`rng`], [`device`]: plumbing.

pub mod alloc;
pub mod augment;
pub mod config;
pub mod data;
pub mod device;
pub mod doctor;
pub mod eval;
pub mod features;
pub mod fsutil;
pub mod image_io;
pub mod interop;
pub mod kaggle;
pub mod loss;
pub mod metrics;
pub mod nets;
pub mod npy;
pub mod optim;
pub mod params;
pub mod penalty;
pub mod plot;
pub mod rng;
pub mod sample;
pub mod toy2d;
pub mod train;
pub mod zipfile;

pub use burn;
