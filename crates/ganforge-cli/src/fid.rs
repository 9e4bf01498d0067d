//! `ganforge fid A B`: FID (and KID, precision/recall, IS) between any two image sets, in the
//! shape of `python -m pytorch_fid A B`; `--save-stats` writes pytorch-fid's `.npz`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use ganforge::compare::{compare, statistics, write_stats, CompareOptions, ImageSet, Side};
use ganforge::device::parse_device;
use ganforge::eval::{Extractors, FeatureKind, Metric};
use ganforge::features::classifier::Classifier;

#[derive(Args)]
pub struct FidArgs {
    /// The two sets: each a folder of images (searched recursively), a run folder or a generator
    /// .safetensors (its images), a dataset spec (mnist, cifar10:DIR, ...) or a .npz of
    /// statistics (pytorch-fid's mu and sigma). The first plays the generated images' role.
    #[arg(value_name = "PATH", num_args = 2, required = true)]
    paths: Vec<String>,
    /// Instead of comparing, write the statistics (mu, sigma) of the first PATH to the second,
    /// an .npz, as pytorch-fid's --save-stats does: `fid --save-stats real/ real.npz`.
    #[arg(long)]
    save_stats: bool,
    /// Comma-separated: fid, kid, pr, is, mifid, coverage (the classes the classifier calls in
    /// each set; needs --features lenet, cifar or a classifier FILE). Statistics files allow fid
    /// only.
    #[arg(long, default_value = "fid")]
    metrics: String,
    /// Features: inception (pytorch-fid's, needs --inception), lenet (the shipped MNIST
    /// classifier, a domain FID for digits), cifar (the shipped CIFAR-10 classifier, a domain
    /// FID for small photos) or a classifier FILE from `ganforge classifier train`.
    #[arg(long, default_value = "inception", value_name = "inception|lenet|cifar|FILE")]
    features: String,
    /// pytorch-fid's Inception weights, pt_inception-2015-12-05-6726825d.pth.
    #[arg(long, value_name = "FILE")]
    inception: Option<PathBuf>,
    /// Images per extractor call (pytorch-fid's default is 50; results do not depend on it).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch_size: u64,
    /// Images per set: a generator makes N (default 10000); a folder or dataset gives the first
    /// N of a fixed shuffle (default: all of them).
    #[arg(long)]
    n: Option<usize>,
    /// Seed of a generator's latents.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object keyed by metric name instead of lines of text.
    #[arg(long)]
    json: bool,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: FidArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let metrics = Metric::parse_list(&a.metrics)?;
    // A FILE of --features is a classifier whose penultimate layer gives the features.
    let (features, classifier) = match FeatureKind::parse(&a.features) {
        Ok(kind) => (kind, None),
        Err(_) if Path::new(&a.features).is_file() => {
            let arch = Classifier::load(Path::new(&a.features), &device).with_context(|| format!("--features {}", a.features))?.arch();
            (arch.features(), Some(PathBuf::from(&a.features)))
        }
        Err(e) => return Err(e).context("--features: not inception, lenet, cifar, nor an existing classifier file"),
    };
    let open = |p: &str| Side::open(p, &device).with_context(|| format!("reading {p}"));
    let [first, second] = &a.paths[..] else {
        bail!("give two PATHs: the sets to compare, or with --save-stats the set and the .npz to write")
    };
    let inputs = if a.save_stats { std::slice::from_ref(first) } else { &a.paths[..] };
    let sides = inputs.iter().map(|p| open(p)).collect::<Result<Vec<_>>>()?;
    // Two statistics files need no network (and no weight file).
    let needs_images = sides.iter().any(|s| !matches!(s.set, ImageSet::Stats(_)));
    let ex = Extractors::new(if needs_images { &metrics } else { &[] }, features, a.inception.as_deref(), classifier.as_deref(), &device)?;
    let opts = CompareOptions { metrics, n: a.n, seed: a.seed, batch_size: a.batch_size as usize };
    let quiet = !std::io::stderr().is_terminal();
    let mut last = std::time::Instant::now();
    let mut progress = |msg: &str| {
        // Counters are thinned out in logs, every 10 s.
        if !quiet || last.elapsed().as_secs() >= 10 {
            eprintln!("{msg}");
            last = std::time::Instant::now();
        }
    };

    if a.save_stats {
        let out = Path::new(second);
        if out.extension().and_then(|e| e.to_str()) != Some("npz") {
            bail!("--save-stats writes an .npz: the second PATH must end in .npz, got {second}");
        }
        let stats = statistics(&sides[0], &opts, &ex, &mut progress)?;
        write_stats(out, &stats).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("statistics of {} images ({}-d features) written to {}", stats.n, stats.mu.len(), out.display());
        return Ok(());
    }
    let result = compare(&sides[0], &sides[1], &opts, &ex, &mut progress)?;
    for w in &result.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        println!("{}", serde_json::to_string(&result.metrics)?);
    } else {
        for value in result.metrics.0.values() {
            for (name, v) in value.scalars() {
                // pytorch-fid prints "FID:  <value>"; the same shape for every number.
                println!("{}:  {v}", name.to_uppercase());
            }
        }
    }
    Ok(())
}
