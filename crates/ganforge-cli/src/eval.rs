//! `ganforge eval`: a run's metrics, printed and written to RUN_DIR/eval/.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use ganforge::device::parse_device;
use ganforge::sample::Sampler;

#[derive(Args)]
pub struct EvalArgs {
    /// Run folder to evaluate.
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// A checkpoint folder of the run instead of its latest.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Comma-separated: fid, kid, mifid, pr, is, coverage.
    #[arg(long, default_value = "fid,kid,pr,coverage")]
    metrics: String,
    /// Real data spec (default: the run's own data).
    #[arg(long, value_name = "SPEC")]
    real: Option<String>,
    /// Generated images (FID is biased by n: compare at equal n; 10000 or 50000 are the usual).
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    /// Real images (default: as many as --n, at most the dataset's size).
    #[arg(long)]
    n_real: Option<usize>,
    /// Features for fid, kid, mifid, pr and is: inception (needs --inception), lenet (digits) or
    /// cifar (small photos; a domain FID, not comparable to Inception's).
    #[arg(long, default_value = "inception")]
    features: String,
    /// pytorch-fid's Inception weights, pt_inception-2015-12-05-6726825d.pth.
    #[arg(long, value_name = "FILE")]
    inception: Option<PathBuf>,
    /// A classifier from `ganforge classifier train` (default: the shipped MNIST one).
    #[arg(long, value_name = "FILE")]
    classifier: Option<PathBuf>,
    /// Seed of the generated images' latents.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Do not read or write the cache of real-image features.
    #[arg(long)]
    no_cache: bool,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: EvalArgs, ranks: &crate::ranks::Ranks) -> Result<()> {
    use ganforge::eval::{evaluate_in, EvalOptions, Extractors, FeatureKind, Metric};
    let device = parse_device(&a.device)?;
    let opts = EvalOptions {
        metrics: Metric::parse_list(&a.metrics)?,
        n: a.n,
        n_real: a.n_real,
        real: a.real.clone(),
        features: FeatureKind::parse(&a.features)?,
        inception: a.inception.clone(),
        classifier: a.classifier.clone(),
        seed: a.seed,
        cache_dir: (!a.no_cache).then(ganforge::eval::default_cache_dir),
    };
    let sampler = Sampler::load(&a.run, a.checkpoint.as_deref(), &device)?;
    let ex = Extractors::load(&opts, &device)?;
    let quiet = !std::io::stderr().is_terminal();
    let mut last = std::time::Instant::now();
    // Under mpirun every rank extracts a block of the images; rank 0 reports and writes.
    let root = ranks.is_root();
    let report = evaluate_in(&*ranks.group, &sampler, &opts, &ex, &mut |msg| {
        if !root {
            return;
        }
        // Counters ("real images: 500 of 10000") are thinned out in logs; other lines always show.
        let counter = msg.contains(" of ");
        if !counter || !quiet || last.elapsed().as_secs() >= 10 {
            eprintln!("{msg}");
            last = std::time::Instant::now();
        }
    })?;
    let Some(report) = report else { return Ok(()) };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    // eval/<checkpoint>.json, never overwritten: a second evaluation gets -2, -3, ...
    let dir = a.run.join("eval");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = sampler.checkpoint.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("eval").to_string();
    let path = (1..)
        .map(|k| if k == 1 { dir.join(format!("{stem}.json")) } else { dir.join(format!("{stem}-{k}.json")) })
        .find(|p| !p.exists())
        .expect("a free name");
    let json = serde_json::to_string_pretty(&report)?;
    ganforge::fsutil::write_atomic(&path, (json.clone() + "\n").as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    println!("{json}");
    eprintln!("written to {}", path.display());
    Ok(())
}
