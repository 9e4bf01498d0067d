//! `ganforge classifier train`: the small classifier behind class coverage and domain
//! features.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use ganforge::device::parse_device;

#[derive(Args)]
pub struct ClassifierTrainArgs {
    /// Labelled training data: mnist, idx:PATH, svhn:FILE, cifar10:DIR, ...
    #[arg(long, default_value = "mnist")]
    data: String,
    /// The network: lenet (grey 28x28, for digits) or cifar (colour 32x32, a small VGG with
    /// batch norm, for photos). Images are brought to its input whatever their size.
    #[arg(long, default_value = "lenet")]
    arch: String,
    /// Labelled test data for the accuracy; default: mnist-test when --data is mnist.
    #[arg(long)]
    test: Option<String>,
    /// Passes over the training data; 2 reach about 98% test accuracy on MNIST (the shipped
    /// classifier had 4).
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Images per step (64, with --lr, is the setting behind that accuracy).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam's learning rate (1e-3, Adam's usual default).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Decay the learning rate linearly to zero over the training (the shipped CIFAR-10
    /// classifier's setting: a few points of accuracy for no extra step).
    #[arg(long)]
    decay: bool,
    /// Shift each training image by up to 4 pixels and flip it with probability 1/2 (for
    /// photos, where a mirrored image is still of its class; not for digits).
    #[arg(long)]
    augment: bool,
    /// Seed of the initial weights and the order of the batches: the same seed, the same weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the weights (a .json record with the accuracy is written beside them).
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: ClassifierTrainArgs) -> Result<()> {
    use ganforge::features::classifier::{self, Arch, ClassifierOptions, Labelled};
    use ganforge::features::{cifar::CifarNet, lenet::LeNet};
    let device = parse_device(&a.device)?;
    let Some(arch) = Arch::parse(&a.arch) else { bail!("--arch {}: expected lenet or cifar", a.arch) };
    let open = |spec: &str| -> Result<Labelled> {
        let source = ganforge::data::open(&ganforge::data::DataConfig { spec: spec.to_string(), ..ganforge::data::DataConfig::new() })
            .with_context(|| format!("opening {spec}"))?;
        eprintln!("{}", source.describe());
        Ok(Labelled::from_source(source.as_ref(), arch.input())?)
    };
    if a.epochs == 0 || a.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    let train_set = open(&a.data)?;
    let test_spec = match (&a.test, a.data.as_str()) {
        (Some(t), _) => Some(t.clone()),
        (None, "mnist") => Some("mnist-test".to_string()),
        (None, _) => None,
    };
    if a.batch_size > train_set.len() {
        bail!("--batch-size {} is larger than the {} training images", a.batch_size, train_set.len());
    }
    // Opened before the training, so that a bad --test spec costs no training time.
    let test_set = test_spec.as_deref().map(open).transpose()?;
    let opts = ClassifierOptions { epochs: a.epochs, batch_size: a.batch_size, lr: a.lr, decay: a.decay, augment: a.augment, seed: a.seed };
    let started = std::time::Instant::now();
    let mut progress = |p: classifier::Progress| {
        let elapsed = started.elapsed().as_secs();
        eprintln!(
            "epoch {}/{}  step {}/{}  loss {:.4}  {}m{:02}s",
            p.epoch + 1,
            opts.epochs,
            p.step,
            p.steps,
            p.loss,
            elapsed / 60,
            elapsed % 60
        );
    };
    // Both branches measure the same way; only the network's type differs.
    let (seconds, train_acc, test_acc) = match arch {
        Arch::Lenet => {
            let net: LeNet = classifier::train(&train_set, &opts, &device, &mut progress);
            finish(&net, &a.out, started, &train_set, test_set.as_ref())?
        }
        Arch::Cifar => {
            let net: CifarNet = classifier::train(&train_set, &opts, &device, &mut progress);
            finish(&net, &a.out, started, &train_set, test_set.as_ref())?
        }
    };
    let record = serde_json::json!({
        "arch": arch.name(), "data": a.data, "test": test_spec, "classes": train_set.classes, "epochs": a.epochs,
        "batch_size": a.batch_size, "lr": a.lr, "decay": a.decay, "augment": a.augment, "seed": a.seed,
        "train_accuracy": train_acc, "test_accuracy": test_acc, "train_seconds": seconds,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    let json = a.out.with_extension("json");
    ganforge::fsutil::write_atomic(&json, (serde_json::to_string_pretty(&record)? + "\n").as_bytes())?;
    eprintln!("train accuracy {:.4}{}", train_acc, test_acc.map(|t| format!(", test accuracy {t:.4}")).unwrap_or_default());
    println!("{}", a.out.display());
    Ok(())
}

/// Saves `net` and measures its accuracy on the training and the test data; the seconds are
/// those of the training, from `started`.
fn finish<N: ganforge::features::ClassifierNet>(
    net: &N,
    out: &std::path::Path,
    started: std::time::Instant,
    train_set: &ganforge::features::classifier::Labelled,
    test_set: Option<&ganforge::features::classifier::Labelled>,
) -> Result<(u64, f64, Option<f64>)> {
    use ganforge::features::classifier::{accuracy, save};
    let seconds = started.elapsed().as_secs();
    save(net, out)?;
    Ok((seconds, accuracy(net, train_set), test_set.map(|t| accuracy(net, t))))
}
