//! Run configuration: paper defaults, presets as small diffs from them, a TOML file and
//! `--set key=value` overrides, resolved in that order. Unknown keys are errors that list the
//! valid ones, and the resolved config is validated before any work starts.

use std::path::Path;

use burn::config::Config;

use crate::augment::Policy;
pub use crate::data::DataConfig;
use crate::features::FeatureKind;
use crate::fsutil::OptionalPath;
use crate::loss::LossKind;
use crate::metrics::registry::{Metric, MetricList};
use crate::nets::biggan::BigganConfig;
use crate::nets::dcgan::DcganConfig;
use crate::nets::fc::FcConfig;
use crate::nets::stylegan2::Stylegan2Config;
use crate::nets::{Arch, ModelShape};
pub use crate::optim::OptimizerKind;
use crate::penalty::PenaltyKind;

/// How the learning rates change over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The configured rates throughout (DCGAN, WGAN).
    Constant,
    /// Decaying linearly from the configured rates to 0 at the last step.
    Linear,
}

/// The optimization schedule and what a run writes.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// The adversarial loss: "ns" (non-saturating, DCGAN), "wgan", "hinge", "lsgan", "ragan"
    /// or "ralsgan" (see loss.rs for each definition and its paper).
    #[config(default = "LossKind::Ns")]
    pub loss: LossKind,
    /// "adam" or "rmsprop" (the WGAN paper's choice).
    #[config(default = "OptimizerKind::Adam")]
    pub optimizer: OptimizerKind,
    /// "constant" or "linear" (decay to 0 at the end).
    #[config(default = "LrSchedule::Constant")]
    pub lr_schedule: LrSchedule,
    /// D updates per G update, each on its own real batch (5 in the WGAN paper; 1 in DCGAN).
    #[config(default = 1)]
    pub n_critic: usize,
    /// Unrolled GAN (Metz et al. 2016): G's update plays against a copy of D advanced this many
    /// extra steps (5 to 10 in the paper), which counters mode collapse; 0 = off. D itself is
    /// unchanged by the look-ahead; the second-order term is dropped (no double backward).
    #[config(default = 0)]
    pub unroll: usize,
    /// Clip every weight of D to [-clip, clip] after each D update (0.01 in the WGAN paper);
    /// 0 turns it off.
    #[config(default = 0.0)]
    pub clip: f64,
    /// Decay of an exponential moving average of G's weights (0.999 to 0.9999 in BigGAN-style
    /// training); 0 turns it off. Sample grids and `sample` use the average when it is on.
    #[config(default = 0.0)]
    pub g_ema: f64,
    /// Gradient penalty in D's loss: "none", "wgan_gp" (Gulrajani et al. 2017, at random
    /// real-fake interpolates; the Lipschitz constraint of WGAN-GP) or "r1" (Mescheder et al.
    /// 2018, at real images). Computed exactly (penalty.rs); needs dcgan.batch_norm_d = false.
    #[config(default = "PenaltyKind::None")]
    pub gp: PenaltyKind,
    /// Weight of the penalty: lambda for WGAN-GP (10 in the paper), gamma for R1 (10 in
    /// Mescheder et al.'s and StyleGAN's experiments).
    #[config(default = 10.0)]
    pub gp_weight: f64,
    /// Lazy regularization (StyleGAN2, section 3.1): the penalty on every k-th step only, its
    /// weight multiplied by k so that its average pull is unchanged (16 in StyleGAN2 for R1;
    /// 1 = every step, as WGAN-GP needs).
    #[config(default = 1)]
    pub gp_every: u64,
    /// DiffAugment policies applied to every image D sees, in D's and G's updates (Zhao et al.
    /// 2020; "color,translation,cutout" is the paper's choice for small datasets); empty = off.
    #[config(default = "Policy::default()")]
    pub diffaugment: Policy,
    /// Step until which the average simply copies G (BigGAN starts averaging late, once G is
    /// past its first chaotic phase).
    #[config(default = 0)]
    pub g_ema_start: u64,
    /// Images per batch (128 in the DCGAN paper; 64 in PyTorch's DCGAN example).
    #[config(default = 64)]
    pub batch_size: usize,
    /// Training steps, each one D update and one G update.
    #[config(default = 5000)]
    pub steps: u64,
    /// If above 0, train for this many passes over the data instead of `steps`.
    #[config(default = 0)]
    pub epochs: u64,
    /// Adam learning rate of D (2e-4 in the DCGAN paper).
    #[config(default = 2e-4)]
    pub lr_d: f64,
    /// Adam learning rate of G (2e-4 in the DCGAN paper). Separate rates counter the
    /// "colourful grid" failure of an unbalanced game (Heusel et al. 2017: two time scales).
    #[config(default = 2e-4)]
    pub lr_g: f64,
    /// Adam beta1 (0.5 in the DCGAN paper: 0.9 oscillated and was unstable).
    #[config(default = 0.5)]
    pub beta1: f64,
    /// Adam beta2 (0.999, Adam's default).
    #[config(default = 0.999)]
    pub beta2: f64,
    /// Adam epsilon (1e-8, PyTorch's default that the DCGAN reference code uses; burn's is 1e-5).
    #[config(default = 1e-8)]
    pub eps: f64,
    /// Append a line to metrics.jsonl every this many steps.
    #[config(default = 10)]
    pub log_every: u64,
    /// Write a sample grid from the fixed latent batch every this many steps.
    #[config(default = 500)]
    pub sample_every: u64,
    /// Write a checkpoint every this many steps (and always at the end).
    #[config(default = 500)]
    pub checkpoint_every: u64,
    /// Checkpoints kept; older ones are deleted.
    #[config(default = 3)]
    pub keep_checkpoints: usize,
    /// Images in each sample grid (the fixed latent batch).
    #[config(default = 64)]
    pub grid_images: usize,
    /// Weights this run started from (`ganforge train --init-from`, fine-tuning): the absolute
    /// path of the checkpoint folder or generator file they were read from; empty (the
    /// default): its seed's random weights. Read once, when the run starts: `--resume`
    /// continues from the run's own checkpoints.
    #[config(default = "OptionalPath::default()")]
    pub init_from: OptionalPath,
}

/// Evaluation during training and the live doctor.
#[derive(Config, Debug)]
pub struct EvalConfig {
    /// Compute `eval.metrics` every this many steps into metrics.jsonl (0: never). Costs about
    /// `eval.n` generated images' worth of feature extraction each time.
    #[config(default = 0)]
    pub every: u64,
    /// Metrics for `eval.every`: any of fid, kid, mifid, pr, is, coverage, comma-separated.
    #[config(default = "MetricList(vec![Metric::Fid, Metric::Coverage])")]
    pub metrics: MetricList,
    /// Generated images per evaluation during training (FID's bias grows as n shrinks: compare
    /// runs at the same n, and use `ganforge eval --n 10000` for reported numbers).
    #[config(default = 1000)]
    pub n: usize,
    /// Features of the distribution metrics: "lenet" (the shipped MNIST classifier's, or
    /// `eval.classifier`'s), "cifar" (the shipped CIFAR-10 classifier's, a domain FID for
    /// small photos) or "inception" (pytorch-fid's, needs `eval.inception`).
    #[config(default = "FeatureKind::Lenet")]
    pub features: FeatureKind,
    /// pytorch-fid's weight file pt_inception-2015-12-05-6726825d.pth, for features = "inception".
    #[config(default = "OptionalPath::default()")]
    pub inception: OptionalPath,
    /// A classifier from `ganforge classifier train`; empty: the shipped one of `features`'
    /// kind (CIFAR-10's for "cifar", MNIST's otherwise).
    #[config(default = "OptionalPath::default()")]
    pub classifier: OptionalPath,
    /// Run the training doctor live: checks the loss trace at each log line and the samples at
    /// each grid, and warns of mode collapse, checkerboards, unbalanced learning rates,
    /// divergence and memorization.
    #[config(default = true)]
    pub doctor: bool,
}

/// The stabilizing tricks collected by Salimans et al. 2016 ("Improved Techniques for
/// Training GANs") and Soumith Chintala's "ganhacks"; all off by default.
#[derive(Config, Debug)]
pub struct TricksConfig {
    /// Soft labels: real targets drawn from U[0.9, 1.0], fake targets from U[0.0, 0.1].
    #[config(default = false)]
    pub soft_labels: bool,
    /// Probability of flipping each of D's targets (real <-> fake); 0.05 is the usual value.
    #[config(default = 0.0)]
    pub label_flip_p: f64,
    /// Swapped labels: 1 means fake and 0 means real, for D and G alike.
    #[config(default = false)]
    pub swap_labels: bool,
    /// Instance noise (Sonderby et al. 2016): std of Gaussian noise added to every input of D,
    /// decaying linearly to 0. 0 turns it off; 0.1 is a common start.
    #[config(default = 0.0)]
    pub instance_noise: f64,
    /// Steps over which the instance noise decays linearly to 0. A fixed horizon rather than
    /// "the whole run", so that extending a run with --resume does not change its past.
    #[config(default = 10000)]
    pub instance_noise_steps: u64,
}

/// What a run logs besides its own files.
#[derive(Config, Debug)]
pub struct LogConfig {
    /// TensorBoard event files in RUN/tb/ (losses, D's outputs, rates, speed, evaluations, the
    /// doctor's findings, the sample grids): `tensorboard --logdir runs`, or `wandb sync
    /// --sync-tensorboard`. On by default: a few hundred bytes a logged step.
    #[config(default = true)]
    pub tensorboard: bool,
}

/// Everything a run needs; written to `config.toml` in the run folder.
#[derive(Config, Debug)]
pub struct GanConfig {
    /// The preset this config started from (informational).
    #[config(default = "String::from(\"mnist\")")]
    pub preset: String,
    /// Seed for every random choice: weights, data order, latents, label noise.
    #[config(default = 42)]
    pub seed: u64,
    /// Data source.
    #[config(default = "DataConfig::new()")]
    pub data: DataConfig,
    /// Image and latent shapes, and the network family.
    #[config(default = "ModelShape::new()")]
    pub model: ModelShape,
    /// DCGAN settings.
    #[config(default = "DcganConfig::new()")]
    pub dcgan: DcganConfig,
    /// Fully connected GAN settings.
    #[config(default = "FcConfig::new()")]
    pub fc: FcConfig,
    /// BigGAN-style model settings.
    #[config(default = "BigganConfig::new()")]
    pub biggan: BigganConfig,
    /// StyleGAN2-style model settings.
    #[config(default = "Stylegan2Config::new()")]
    pub stylegan2: Stylegan2Config,
    /// Optimization and output schedule.
    #[config(default = "TrainConfig::new()")]
    pub train: TrainConfig,
    /// Stabilizing tricks.
    #[config(default = "TricksConfig::new()")]
    pub tricks: TricksConfig,
    /// Evaluation during training and the live doctor.
    #[config(default = "EvalConfig::new()")]
    pub eval: EvalConfig,
    /// Logs for other tools.
    #[config(default = "LogConfig::new()")]
    pub log: LogConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown preset '{name}'; valid presets: {}", valid.join(", "))]
    UnknownPreset { name: String, valid: Vec<String> },
    #[error("unknown config key '{key}'; valid keys{}: {}", if section.is_empty() { String::new() } else { format!(" in [{section}]") }, valid.join(", "))]
    UnknownKey { key: String, section: String, valid: Vec<String> },
    #[error("'{key}' is a section, not a value; its keys are: {}", valid.join(", "))]
    NotAValue { key: String, valid: Vec<String> },
    #[error("--set expects key=value, got '{0}'")]
    BadSet(String),
    #[error("cannot read config file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// A preset: a name, what it is for, what its images show, and its diff from the defaults or
/// from another preset.
pub struct Preset {
    pub name: &'static str,
    pub about: &'static str,
    /// What one image shows, for "this dog does not exist" (the serve page's title).
    pub subject: &'static str,
    /// The preset this one starts from (its settings first, then `diff`); None: the defaults.
    pub base: Option<&'static str>,
    pub diff: &'static [(&'static str, &'static str)],
}

impl Preset {
    /// Every setting the preset changes from the defaults, its base's first: a later entry
    /// of a key overrides an earlier one.
    pub fn settings(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = match self.base.and_then(|b| PRESETS.iter().find(|p| p.name == b)) {
            Some(base) => base.settings(),
            None => vec![],
        };
        out.extend_from_slice(self.diff);
        out
    }
}

/// The presets. `mnist` is the default.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "mnist",
        about: "MNIST at 32x32 with narrow nets and Adam at 4e-4: recognizable digits within minutes on a laptop CPU",
        subject: "digit",
        base: None,
        diff: &[
            ("model.image_size", "32"),
            ("dcgan.ngf", "32"),
            ("dcgan.ndf", "32"),
            // Twice the paper's rate: in five minutes of a 2-core CPU the best of the recipes
            // tried (G average, soft labels, batch 32; two seeds), level with PyTorch's DCGAN at
            // equal wall time (LeNet FID, BENCHMARKS.md "Digits at equal wall time").
            ("train.lr_d", "4e-4"),
            ("train.lr_g", "4e-4"),
            ("train.steps", "2000"),
            ("train.sample_every", "250"),
            ("train.checkpoint_every", "250"),
        ],
    },
    Preset {
        name: "mnist64",
        about: "the classic DCGAN setup: MNIST upscaled to 64x64, widths 64, batch 64, lr 2e-4",
        subject: "digit",
        base: None,
        diff: &[("preset", "\"mnist64\"")],
    },
    Preset {
        name: "stacked-mnist",
        about:
            "Stacked MNIST (three digits as RGB, 1,000 modes): the mode-coverage benchmark; score with `ganforge eval --metrics coverage`",
        subject: "digit",
        base: None,
        diff: &[
            ("data.spec", "stacked-mnist"),
            ("model.channels", "3"),
            ("model.image_size", "32"),
            ("dcgan.ngf", "32"),
            ("dcgan.ndf", "32"),
            ("train.steps", "5000"),
            ("train.sample_every", "500"),
            ("train.checkpoint_every", "500"),
        ],
    },
    Preset {
        name: "mnist-fc",
        about: "the fully connected GAN of Goodfellow et al. 2014 on MNIST at 32x32, as a baseline",
        subject: "digit",
        base: None,
        diff: &[("preset", "\"mnist-fc\""), ("model.arch", "\"fc\""), ("model.image_size", "32"), ("train.steps", "5000")],
    },
    Preset {
        name: "wgan",
        about: "WGAN on MNIST at 32x32 as in Arjovsky et al. 2017: critic, clipping 0.01, 5 critic steps, RMSProp 5e-5",
        subject: "digit",
        base: None,
        diff: &[
            ("preset", "\"wgan\""),
            ("model.image_size", "32"),
            ("dcgan.ngf", "32"),
            ("dcgan.ndf", "32"),
            ("train.loss", "\"wgan\""),
            ("train.optimizer", "\"rmsprop\""),
            ("train.lr_d", "5e-5"),
            ("train.lr_g", "5e-5"),
            ("train.n_critic", "5"),
            ("train.clip", "0.01"),
            ("train.steps", "2000"),
        ],
    },
    Preset {
        name: "wgan-gp",
        about: "WGAN-GP on MNIST at 32x32 as in Gulrajani et al. 2017: lambda 10, 5 critic steps, Adam 1e-4 (0, 0.9), no BN in D",
        subject: "digit",
        base: None,
        diff: &[
            ("preset", "\"wgan-gp\""),
            ("model.image_size", "32"),
            ("dcgan.ngf", "32"),
            ("dcgan.ndf", "32"),
            ("dcgan.batch_norm_d", "false"),
            ("train.loss", "\"wgan\""),
            ("train.gp", "\"wgan_gp\""),
            ("train.n_critic", "5"),
            ("train.lr_d", "1e-4"),
            ("train.lr_g", "1e-4"),
            ("train.beta1", "0.0"),
            ("train.beta2", "0.9"),
            ("train.steps", "2000"),
        ],
    },
    Preset {
        name: "biggan",
        about: "BigGAN-style class-conditional model on MNIST at 32x32: residual blocks, attention, SN, hinge, 2 D steps, EMA",
        subject: "digit",
        base: None,
        diff: &[
            ("preset", "\"biggan\""),
            ("model.arch", "\"biggan\""),
            ("model.image_size", "32"),
            ("model.classes", "10"),
            ("biggan.attn_res", "16"),
            ("train.loss", "\"hinge\""),
            ("train.lr_g", "1e-4"),
            ("train.lr_d", "4e-4"),
            ("train.beta1", "0.0"),
            ("train.n_critic", "2"),
            ("train.g_ema", "0.999"),
            ("train.g_ema_start", "500"),
            ("train.steps", "5000"),
        ],
    },
    Preset {
        name: "stylegan2",
        about: "StyleGAN2-style model on MNIST at 32x32: mapping network, modulated convolutions, noise, skip outputs, residual D with minibatch stddev, lazy R1, style mixing, EMA; widths 16 to 64 for a CPU",
        subject: "digit",
        base: None,
        diff: &[
            ("preset", "\"stylegan2\""),
            ("model.arch", "\"stylegan2\""),
            ("model.image_size", "32"),
            ("model.nz", "128"),
            ("stylegan2.channel_base", "512"),
            ("stylegan2.channel_max", "64"),
            ("train.gp", "\"r1\""),
            ("train.gp_weight", "0.01"),
            ("train.gp_every", "16"),
            ("train.lr_g", "2e-3"),
            ("train.lr_d", "2e-3"),
            ("train.beta1", "0.0"),
            ("train.beta2", "0.99"),
            ("train.g_ema", "0.998"),
            ("train.g_ema_start", "200"),
            ("train.steps", "3000"),
            ("train.sample_every", "250"),
            ("train.checkpoint_every", "250"),
        ],
    },
    Preset {
        name: "stylegan2-cifar",
        about: "StyleGAN2-style model on CIFAR-10 (fetch cifar10 first) at 32x32 in colour: the stylegan2 recipe with NVlabs' CIFAR-10 settings, judged by the shipped CIFAR-10 classifier",
        subject: "photo",
        base: Some("stylegan2"),
        diff: &[
            ("preset", "\"stylegan2-cifar\""),
            ("data.spec", "\"cifar10\""),
            ("model.channels", "3"),
            // NVlabs' `--cfg cifar` (stylegan2-ada-pytorch; its plain `orig` D is not built, the
            // residual D stays): beat the MNIST recipe in colour at 25 minutes side by side (CIFAR
            // FID 1449 vs 1825, all ten classes vs seven; BENCHMARKS.md).
            ("stylegan2.mapping_layers", "2"),
            ("stylegan2.mbstd_group", "32"),
            ("stylegan2.style_mixing", "0.0"),
            ("train.lr_g", "2.5e-3"),
            ("train.lr_d", "2.5e-3"),
            ("train.steps", "5000"),
            ("train.sample_every", "500"),
            ("train.checkpoint_every", "500"),
            ("eval.features", "\"cifar\""),
        ],
    },
    Preset {
        name: "sheep",
        about: "Quick, Draw! sheep drawings (fetch quickdraw/sheep first), DCGAN at 64x64, grey",
        subject: "sheep",
        base: None,
        diff: &[("preset", "\"sheep\""), ("data.spec", "\"quickdraw/sheep\"")],
    },
    Preset {
        name: "svhn",
        about: "SVHN house numbers (fetch svhn first) at 32x32 in colour; D learns faster: lr_d 1e-3, lr_g 1e-4",
        subject: "house number",
        base: None,
        diff: &[
            ("preset", "\"svhn\""),
            ("data.spec", "\"svhn\""),
            ("model.image_size", "32"),
            ("model.channels", "3"),
            ("train.lr_d", "1e-3"),
            ("train.lr_g", "1e-4"),
        ],
    },
    Preset {
        name: "cifar10",
        about: "CIFAR-10 (fetch cifar10 first) at 32x32 in colour: DCGAN at widths 32, Adam 4e-4, soft and flipped labels (ahead of PyTorch's DCGAN at 30 minutes, see BENCHMARKS.md), judged by the shipped CIFAR-10 classifier",
        subject: "photo",
        base: None,
        diff: &[
            ("preset", "\"cifar10\""),
            ("data.spec", "\"cifar10\""),
            ("model.image_size", "32"),
            ("model.channels", "3"),
            // Half the example's widths and twice its rate: on this CPU a step at widths 64 costs
            // 2.5x PyTorch's, and at widths 32 ganforge makes more steps in 30 minutes than
            // PyTorch does at 64 (15,415 against 13,172), each learning more; CIFAR FID 154.1
            // against PyTorch's 169.6 (BENCHMARKS.md "ganforge vs PyTorch's DCGAN, 30 minutes").
            ("dcgan.ngf", "32"),
            ("dcgan.ndf", "32"),
            ("train.lr_d", "4e-4"),
            ("train.lr_g", "4e-4"),
            ("tricks.soft_labels", "true"),
            ("tricks.label_flip_p", "0.05"),
            // No average of G: at 0.999 it lagged the raw G by 32 FID at 30 minutes (186.3 vs
            // 154.1), as on digits at five.
            ("eval.features", "\"cifar\""),
        ],
    },
    Preset {
        name: "cifar10-dogs",
        about: "CIFAR-10's 5,000 dogs (data.classes_keep = \"dog\") at 32x32: the cifar10 recipe with flips and DiffAugment for the smaller set",
        subject: "dog",
        base: Some("cifar10"),
        diff: &[
            ("preset", "\"cifar10-dogs\""),
            ("data.classes_keep", "\"dog\""),
            ("data.hflip", "true"),
            ("train.diffaugment", "\"color,translation\""),
        ],
    },
    Preset {
        name: "dogs",
        about: "Stanford Dogs, one crop per bounding box (fetch stanford-dogs first), 64x64 colour, flips; lr_d 1e-4, lr_g 3e-4",
        subject: "dog",
        base: None,
        diff: &[
            ("preset", "\"dogs\""),
            ("data.spec", "\"stanford-dogs\""),
            ("data.hflip", "true"),
            ("model.channels", "3"),
            ("train.lr_d", "1e-4"),
            ("train.lr_g", "3e-4"),
            ("train.steps", "20000"),
        ],
    },
];

pub fn preset_names() -> Vec<String> {
    PRESETS.iter().map(|p| p.name.to_string()).collect()
}

fn sorted_keys(t: &toml::Table) -> Vec<String> {
    let mut k: Vec<String> = t.keys().cloned().collect();
    k.sort();
    k
}

/// Parses the right-hand side of `key=value` as a TOML value; bare words become strings so that
/// `--set data.spec=folder:/data` works without quotes.
pub(crate) fn parse_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Sets a dotted key inside `tree`, refusing keys that the defaults do not have.
fn set_key(tree: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut table = tree;
    for (i, part) in parts.iter().enumerate() {
        let section = parts[..i].join(".");
        let valid = sorted_keys(table);
        let Some(slot) = table.get_mut(*part) else {
            return Err(ConfigError::UnknownKey { key: key.to_string(), section, valid });
        };
        if i + 1 == parts.len() {
            if let toml::Value::Table(t) = slot {
                return Err(ConfigError::NotAValue { key: key.to_string(), valid: sorted_keys(t) });
            }
            // An integer where a float is expected is fine (lr_d = 1 means 1.0).
            *slot = match (&*slot, value) {
                (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
                (old, v) if old.type_str() == v.type_str() => v,
                (old, v) => {
                    return Err(ConfigError::Invalid(format!(
                        "{key} expects {} {}, got {} {v}",
                        if matches!(old.type_str(), "integer" | "array") { "an" } else { "a" },
                        old.type_str(),
                        v.type_str()
                    )))
                }
            };
            return Ok(());
        }
        match slot {
            toml::Value::Table(t) => table = t,
            _ => return Err(ConfigError::UnknownKey { key: key.to_string(), section: parts[..=i].join("."), valid: vec![] }),
        }
    }
    unreachable!("split always yields at least one part")
}

/// Applies `key=value` overrides to `tree`.
fn apply_sets(tree: &mut toml::Table, sets: &[String]) -> Result<(), ConfigError> {
    for s in sets {
        let (k, v) = s.split_once('=').ok_or_else(|| ConfigError::BadSet(s.clone()))?;
        set_key(tree, k.trim(), parse_value(v.trim()))?;
    }
    Ok(())
}

/// Overlays a parsed TOML table onto `tree`, key by key.
fn overlay(tree: &mut toml::Table, file: &toml::Table, prefix: &str) -> Result<(), ConfigError> {
    for (k, v) in file {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(sub) => {
                // Make sure the section exists before descending into it.
                let mut probe = tree.clone();
                set_key(&mut probe, &key, toml::Value::Table(toml::Table::new())).or_else(|e| match e {
                    ConfigError::NotAValue { .. } => Ok(()),
                    other => Err(other),
                })?;
                overlay(tree, sub, &key)?;
            }
            other => set_key(tree, &key, other.clone())?,
        }
    }
    Ok(())
}

impl GanConfig {
    /// What one of the run's images shows ("dog", "digit", ...): the class when the run keeps
    /// one class of its data, else its preset's subject, else "image".
    pub fn subject(&self) -> String {
        if let [one] = self.data.classes_keep.0.as_slice() {
            return one.clone();
        }
        PRESETS.iter().find(|p| p.name == self.preset).map_or("image", |p| p.subject).to_string()
    }

    /// The network settings, for `nets::build`.
    pub fn families(&self) -> crate::nets::Families<'_> {
        crate::nets::Families { shape: &self.model, dcgan: &self.dcgan, fc: &self.fc, biggan: &self.biggan, stylegan2: &self.stylegan2 }
    }

    /// The default config (no preset) as a TOML table: what every key defaults to.
    pub fn default_tree() -> toml::Table {
        toml::Table::try_from(GanConfig::new()).expect("defaults serialize")
    }

    /// The config as a TOML table.
    pub fn to_tree(&self) -> toml::Table {
        toml::Table::try_from(self).expect("config serializes")
    }

    /// The config as a TOML document.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes to TOML")
    }

    /// Resolves defaults + preset + config file + `--set` overrides, then validates.
    pub fn resolve(preset: Option<&str>, file: Option<&Path>, sets: &[String]) -> Result<Self, ConfigError> {
        let mut tree = Self::default_tree();
        let name = preset.unwrap_or("mnist");
        let p = PRESETS
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ConfigError::UnknownPreset { name: name.to_string(), valid: preset_names() })?;
        set_key(&mut tree, "preset", toml::Value::String(p.name.to_string()))?;
        for (k, v) in p.settings() {
            set_key(&mut tree, k, parse_value(v))?;
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.display().to_string(), source })?;
            let parsed: toml::Table =
                toml::from_str(&text).map_err(|e| ConfigError::Parse { origin: path.display().to_string(), message: e.to_string() })?;
            overlay(&mut tree, &parsed, "")?;
        }
        apply_sets(&mut tree, sets)?;
        Self::from_tree(tree, "config")
    }

    /// This config with `key=value` overrides applied and validated (how `--resume --steps N`
    /// changes a saved run's config).
    pub fn with_overrides(&self, sets: &[String]) -> Result<Self, ConfigError> {
        let mut tree = self.to_tree();
        apply_sets(&mut tree, sets)?;
        Self::from_tree(tree, "config")
    }

    /// Reads a resolved config (the `config.toml` of a run folder).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Reads a resolved config from TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let parsed: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse { origin: origin.to_string(), message: e.to_string() })?;
        let mut tree = Self::default_tree();
        overlay(&mut tree, &parsed, "")?;
        Self::from_tree(tree, origin)
    }

    fn from_tree(tree: toml::Table, origin: &str) -> Result<Self, ConfigError> {
        let cfg: GanConfig = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse { origin: origin.to_string(), message: e.message().to_string() })?;
        cfg.validate().map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    /// Checks every value that would otherwise fail (or silently misbehave) mid-run.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        match self.model.arch {
            Arch::Dcgan => self.dcgan.validate()?,
            Arch::Fc => self.fc.validate()?,
            Arch::Biggan => self.biggan.validate(self.model.image_size)?,
            Arch::Stylegan2 => self.stylegan2.validate(&self.model)?,
        }
        let t = &self.train;
        if t.batch_size > 4096 {
            return Err(format!("train.batch_size = {} is too large (at most 4096)", t.batch_size));
        }
        if t.steps > 1_000_000_000 || t.epochs > 1_000_000 {
            return Err("train.steps must be at most 1e9 and train.epochs at most 1e6".into());
        }
        if t.batch_size < 2 {
            return Err(format!("train.batch_size = {} is too small: batch norm needs at least 2 images", t.batch_size));
        }
        if !(1..=100).contains(&t.n_critic) {
            return Err(format!("train.n_critic = {} must be between 1 and 100", t.n_critic));
        }
        if t.unroll > 100 {
            return Err(format!("train.unroll = {} must be at most 100", t.unroll));
        }
        if !(t.clip.is_finite() && t.clip >= 0.0) {
            return Err(format!("train.clip = {} must be 0 (off) or a positive number", t.clip));
        }
        if !(0.0..1.0).contains(&t.g_ema) {
            return Err(format!("train.g_ema = {} must be in [0, 1): a decay such as 0.999, or 0 for off", t.g_ema));
        }
        let e = &self.eval;
        if e.every > 0 && e.metrics.0.is_empty() {
            return Err("eval.metrics is empty: name at least one metric, or set eval.every = 0".into());
        }
        if e.every > 0 && e.features == FeatureKind::Inception && e.inception.get().is_none() {
            return Err("eval.features = \"inception\" needs eval.inception = the path of pt_inception-2015-12-05-6726825d.pth".into());
        }
        if e.every > 0 && e.n < 10 {
            return Err(format!("eval.n = {} is too few images to evaluate (at least 10)", e.n));
        }
        if t.loss == LossKind::Wgan && t.clip == 0.0 && t.gp != PenaltyKind::WganGp {
            return Err("train.loss = \"wgan\" needs a Lipschitz constraint on the critic: set train.clip (0.01 in Arjovsky et al. 2017) or train.gp = \"wgan_gp\", or use preset wgan or wgan-gp".into());
        }
        if t.gp != PenaltyKind::None {
            let penalizable = match self.model.arch {
                crate::nets::Arch::Dcgan => !self.dcgan.batch_norm_d,
                crate::nets::Arch::Stylegan2 => true,
                _ => false,
            };
            if !penalizable {
                return Err("train.gp needs model.arch = \"stylegan2\", or \"dcgan\" with dcgan.batch_norm_d = false: the penalty's exact gradient runs a forward-mode derivative through D, which these have (batch norm's running statistics would also make D's answer for one image depend on the others)".into());
            }
            if !(1..=1000).contains(&t.gp_every) {
                return Err(format!("train.gp_every = {} must be between 1 and 1000", t.gp_every));
            }
            if !(t.gp_weight.is_finite() && t.gp_weight > 0.0) {
                return Err(format!("train.gp_weight = {} must be a positive number", t.gp_weight));
            }
        }
        let k = &self.tricks;
        if !t.loss.takes_targets() && (k.soft_labels || k.swap_labels || k.label_flip_p > 0.0) {
            return Err(format!(
                "tricks.soft_labels, tricks.swap_labels and tricks.label_flip_p change D's targets, which only train.loss = \"ns\" or \"lsgan\" have; train.loss is {:?}",
                t.loss
            ));
        }
        if t.steps == 0 && t.epochs == 0 {
            return Err("train.steps and train.epochs are both 0: nothing to train".into());
        }
        for (name, lr) in [("train.lr_d", t.lr_d), ("train.lr_g", t.lr_g)] {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(format!("{name} = {lr} must be a positive number"));
            }
        }
        for (name, b) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("{name} = {b} must be in [0, 1)"));
            }
        }
        if !(t.eps.is_finite() && t.eps > 0.0) {
            return Err(format!("train.eps = {} must be a positive number", t.eps));
        }
        if t.log_every == 0 || t.sample_every == 0 || t.checkpoint_every == 0 {
            return Err("train.log_every, train.sample_every and train.checkpoint_every must be at least 1".into());
        }
        if t.keep_checkpoints == 0 {
            return Err("train.keep_checkpoints must be at least 1".into());
        }
        if t.grid_images == 0 || t.grid_images > 1024 {
            return Err(format!("train.grid_images = {} must be between 1 and 1024", t.grid_images));
        }
        if !(self.data.stroke_width > 0.0 && self.data.stroke_width <= 0.5) || !(0.0..0.4).contains(&self.data.stroke_padding) {
            return Err("data.stroke_width must be in (0, 0.5] and data.stroke_padding in [0, 0.4)".into());
        }
        if !(self.data.dogs_max_aspect >= 1.0) {
            return Err(format!("data.dogs_max_aspect = {} must be at least 1", self.data.dogs_max_aspect));
        }
        if !(1..=64).contains(&self.data.prefetch) {
            return Err(format!("data.prefetch = {} must be between 1 and 64 batches", self.data.prefetch));
        }
        if !(0.0..=1.0).contains(&k.label_flip_p) {
            return Err(format!("tricks.label_flip_p = {} must be a probability in [0, 1]", k.label_flip_p));
        }
        if !(k.instance_noise.is_finite() && k.instance_noise >= 0.0) {
            return Err(format!("tricks.instance_noise = {} must be 0 or more", k.instance_noise));
        }
        if k.instance_noise > 0.0 && k.instance_noise_steps == 0 {
            return Err("tricks.instance_noise_steps must be at least 1 when instance noise is on".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_preset_is_a_small_diff() {
        let c = GanConfig::resolve(None, None, &[]).unwrap();
        assert_eq!(c.preset, "mnist");
        assert_eq!(c.model.image_size, 32);
        assert_eq!(c.dcgan.ngf, 32);
        assert_eq!((c.train.lr_d, c.train.lr_g), (4e-4, 4e-4), "the preset's rates (BENCHMARKS.md, digits at equal wall time)");
        assert_eq!(c.train.beta1, 0.5);
        // The paper's rates are the defaults under the preset.
        assert_eq!(TrainConfig::new().lr_d, 2e-4);
        assert_eq!(c.train.eps, 1e-8);
        let c = GanConfig::resolve(Some("mnist64"), None, &[]).unwrap();
        assert_eq!((c.model.image_size, c.dcgan.ngf, c.dcgan.ndf, c.train.batch_size), (64, 64, 64, 64));
    }

    /// A preset with a base is its base with its own changes on top; every base exists.
    #[test]
    fn a_based_preset_is_its_base_plus_its_diff() {
        let by_hand = |base: &str, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            GanConfig::resolve(Some(base), None, &sets).unwrap().to_toml()
        };
        let dogs = GanConfig::resolve(Some("cifar10-dogs"), None, &[]).unwrap();
        let sets = ["preset=cifar10-dogs", "data.classes_keep=dog", "data.hflip=true", "train.diffaugment=color,translation"];
        assert_eq!(dogs.to_toml(), by_hand("cifar10", &sets));
        assert_eq!((dogs.model.channels, dogs.tricks.label_flip_p, dogs.eval.features), (3, 0.05, FeatureKind::Cifar));
        let sg = GanConfig::resolve(Some("stylegan2-cifar"), None, &[]).unwrap();
        let sets = [
            "preset=stylegan2-cifar",
            "data.spec=cifar10",
            "model.channels=3",
            "stylegan2.mapping_layers=2",
            "stylegan2.mbstd_group=32",
            "stylegan2.style_mixing=0.0",
            "train.lr_g=2.5e-3",
            "train.lr_d=2.5e-3",
            "train.steps=5000",
            "train.sample_every=500",
            "train.checkpoint_every=500",
            "eval.features=cifar",
        ];
        assert_eq!(sg.to_toml(), by_hand("stylegan2", &sets));
        assert_eq!((sg.model.arch, sg.train.gp_every), (crate::nets::Arch::Stylegan2, 16));
        assert_eq!((sg.stylegan2.mapping_layers, sg.stylegan2.mbstd_group, sg.train.lr_d), (2, 32, 2.5e-3));
        for p in PRESETS {
            assert!(
                p.base.is_none_or(|b| PRESETS.iter().any(|q| q.name == b && q.base.is_none())),
                "{}: a base that is itself a plain preset",
                p.name
            );
        }
    }

    #[test]
    fn classes_keep_reads_a_name_and_names_the_subject() {
        let c = GanConfig::resolve(Some("cifar10"), None, &["data.classes_keep=dog".into()]).unwrap();
        assert_eq!(c.data.classes_keep.0, vec!["dog"]);
        assert_eq!(c.subject(), "dog", "one kept class names what the images show");
        // The resolved config keeps it as the same text and reads back the same.
        let back = GanConfig::parse(&c.to_toml(), "round trip").unwrap();
        assert_eq!(back.data.classes_keep.0, vec!["dog"]);
        let two = GanConfig::resolve(Some("cifar10"), None, &["data.classes_keep=cat,dog".into()]).unwrap();
        assert_eq!((two.data.classes_keep.0.len(), two.subject().as_str()), (2, "photo"));
        assert_eq!(GanConfig::resolve(None, None, &[]).unwrap().subject(), "digit");
        let custom = GanConfig::resolve(None, None, &["preset=\"mine\"".into()]).unwrap();
        assert_eq!(custom.subject(), "image");
    }

    #[test]
    fn set_overrides_and_coerces() {
        let sets = vec!["train.lr_d=1".into(), "data.spec=folder:/tmp/x".into(), "tricks.soft_labels=true".into()];
        let c = GanConfig::resolve(None, None, &sets).unwrap();
        assert_eq!(c.train.lr_d, 1.0);
        assert_eq!(c.data.spec, "folder:/tmp/x");
        assert!(c.tricks.soft_labels);
    }

    #[test]
    fn unknown_keys_list_valid_ones() {
        let e = GanConfig::resolve(None, None, &["train.lr=1".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown config key 'train.lr'"), "{e}");
        assert!(e.contains("lr_d") && e.contains("lr_g") && e.contains("[train]"), "{e}");
        let e = GanConfig::resolve(None, None, &["nope=1".into()]).unwrap_err().to_string();
        assert!(e.contains("'nope'") && e.contains("train"), "{e}");
        let e = GanConfig::resolve(None, None, &["train=1".into()]).unwrap_err().to_string();
        assert!(e.contains("is a section"), "{e}");
        let e = GanConfig::resolve(None, None, &["novalue".into()]).unwrap_err().to_string();
        assert!(e.contains("key=value"), "{e}");
    }

    #[test]
    fn unknown_preset_lists_presets() {
        let e = GanConfig::resolve(Some("dogz"), None, &[]).unwrap_err().to_string();
        assert!(e.contains("unknown preset 'dogz'") && e.contains("mnist64"), "{e}");
    }

    #[test]
    fn config_file_overlays_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "seed = 7\n[train]\nlr_g = 3e-4\n").unwrap();
        let c = GanConfig::resolve(None, Some(&p), &[]).unwrap();
        assert_eq!((c.seed, c.train.lr_g), (7, 3e-4));
        std::fs::write(&p, "[train]\nlearning_rate = 3e-4\n").unwrap();
        let e = GanConfig::resolve(None, Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("train.learning_rate") && e.contains("lr_g"), "{e}");
        std::fs::write(&p, "[trian]\nlr_g = 3e-4\n").unwrap();
        let e = GanConfig::resolve(None, Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("'trian"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        let e = GanConfig::resolve(None, None, &["model.image_size=48".into()]).unwrap_err().to_string();
        assert!(e.contains("power of two"), "{e}");
        let e = GanConfig::resolve(None, None, &["dcgan.g_kernel=3".into()]).unwrap_err().to_string();
        assert!(e.contains("checkerboard") && e.contains("resize_conv"), "{e}");
        // The cure is accepted.
        GanConfig::resolve(None, None, &["dcgan.g_kernel=3".into(), "dcgan.upsample=resize_conv".into()]).unwrap();
        let e = GanConfig::resolve(None, None, &["model.image_size=\"big\"".into()]).unwrap_err().to_string();
        assert!(e.contains("image_size") || e.contains("integer"), "{e}");
        let e = GanConfig::resolve(None, None, &["tricks.label_flip_p=2".into()]).unwrap_err().to_string();
        assert!(e.contains("probability"), "{e}");
    }

    #[test]
    fn overrides_apply_to_a_loaded_config() {
        let c = GanConfig::resolve(Some("mnist-fc"), None, &["seed=9".into()]).unwrap();
        let d = c.with_overrides(&["train.steps=7".into()]).unwrap();
        assert_eq!((d.train.steps, d.seed, d.model.arch), (7, 9, Arch::Fc));
        let e = c.with_overrides(&["train.stepz=7".into()]).unwrap_err().to_string();
        assert!(e.contains("valid keys in [train]"), "{e}");
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = GanConfig::resolve(Some("mnist-fc"), None, &["seed=9".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, c.to_toml()).unwrap();
        let back = GanConfig::load(&p).unwrap();
        assert_eq!(back.to_toml(), c.to_toml());
        assert_eq!(back.model.arch, Arch::Fc);
    }
}
