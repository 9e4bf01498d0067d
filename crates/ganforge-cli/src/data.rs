//! `ganforge data inspect` and `ganforge data fetch`: datasets before training.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use ganforge::image_io::{grid_cols, save_png};

#[derive(Args)]
pub struct FetchArgs {
    /// mnist, svhn, svhn-extra, cifar10, stanford-dogs or quickdraw/CATEGORY.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// Folder to put it in instead of the cache folder (then train with the spec printed).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Download every file from this address instead of the publisher's (MIRROR/FILE_NAME).
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,
    /// List what can be fetched, with download sizes.
    #[arg(long)]
    list: bool,
}

pub fn fetch(a: FetchArgs) -> Result<()> {
    use ganforge::data::fetch::{self, FetchEvent, FetchOptions};
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    if a.list {
        for name in fetch::DATASETS {
            let ds = fetch::find(name)?;
            println!(
                "{name:16} {:>10}  {}",
                mb(ds.files.iter().map(|f| f.size).sum()),
                ds.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(" ")
            );
        }
        for (c, size) in fetch::quickdraw_categories() {
            println!("quickdraw/{c:26} {:>10}", mb(size));
        }
        return Ok(());
    }
    let name = a.name.context("a dataset name is needed")?;
    let ds = fetch::find(&name)?;
    let root = a.dir.clone().unwrap_or_else(fetch::default_root);
    let opts = FetchOptions { mirror: a.mirror.clone(), ..Default::default() };
    let bar = std::io::stderr().is_terminal().then(|| {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        )
    });
    let dir = fetch::fetch(&ds, &root, &opts, &mut |e| match (&bar, e) {
        (Some(b), FetchEvent::Start { file, size, from }) => {
            b.reset();
            b.set_length(size);
            b.set_position(from);
            b.set_message(file);
        }
        (Some(b), FetchEvent::Bytes { done }) => b.set_position(done),
        (_, FetchEvent::Start { file, size, from }) if from > 0 => eprintln!("resuming {file} at {} of {}", mb(from), mb(size)),
        (_, FetchEvent::Start { file, size, .. }) => eprintln!("downloading {file} ({})", mb(size)),
        (_, FetchEvent::Retry { file, attempt, message }) => eprintln!("{file}: connection lost ({message}); resuming, try {attempt}"),
        (_, FetchEvent::Verified { file }) => eprintln!("{file}: SHA-256 verified"),
        (_, FetchEvent::Unpacking { file }) => eprintln!("unpacking {file}"),
        (_, FetchEvent::AlreadyThere { dir }) => eprintln!("already fetched in {}", dir.display()),
        _ => {}
    })
    .with_context(|| format!("fetching {name}"))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let spec = fetch::locate(&ds, &root)?;
    if a.dir.is_some() {
        println!("train with: --data {spec}");
    } else {
        println!("train with: --data {name}   (or --data {spec})");
    }
    println!("{}", dir.display());
    Ok(())
}

#[derive(Args)]
pub struct InspectArgs {
    /// Dataset: mnist, stacked-mnist, idx:PATH, folder:DIR, quickdraw:FILE, svhn:FILE, cifar10:DIR,
    /// stanford-dogs:DIR, or the name of a fetched dataset (svhn, quickdraw/sheep, ...).
    spec: String,
    /// Side the images are brought to, as for training.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Channels the images are converted to: 1 or 3.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Images to look at for sizes and statistics (a random sample of larger sets).
    #[arg(long, default_value_t = 2000)]
    sample: usize,
    /// Write a preview grid of the first 64 images here.
    #[arg(long, value_name = "FILE.png")]
    preview: Option<PathBuf>,
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    if !(8..=1024).contains(&a.size) || !(a.channels == 1 || a.channels == 3) || a.sample == 0 {
        bail!("--size must be 8 to 1024, --channels 1 or 3, --sample at least 1");
    }
    let source = ganforge::data::open(&ganforge::data::DataConfig::new().with_spec(a.spec.clone()))?;
    eprintln!("{}", source.describe());
    let r = ganforge::data::inspect::inspect(&*source, a.size, a.channels, a.sample, 64, 0)?;
    println!("images      {}", r.images);
    println!("native size {}x{} to {}x{} (of {} looked at)", r.min_size.0, r.min_size.1, r.max_size.0, r.max_size.1, r.sampled);
    println!("model input {}x{}, {} channel(s), scaled to [-1, 1]", a.size, a.size, a.channels);
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(" ");
    println!("pixel mean  {}  (per channel, pixels in [0, 1])", fmt(&r.mean));
    println!("pixel std   {}", fmt(&r.std));
    if r.undecodable > 0 {
        println!("undecodable {} of {} looked at; first: {}", r.undecodable, r.sampled, r.first_error.as_deref().unwrap_or(""));
    }
    if r.class_counts.is_empty() {
        println!("classes     none (unlabelled)");
    } else {
        let names = source.class_names();
        println!("classes     {}", r.class_counts.len());
        for (label, count) in &r.class_counts {
            let name = names.get(*label as usize).cloned().unwrap_or_else(|| label.to_string());
            println!("  {label:>4}  {name:20} {count}");
        }
    }
    if let Some(p) = &a.preview {
        save_png(p, &r.preview.grid(grid_cols(r.preview.n))).with_context(|| format!("writing {}", p.display()))?;
        println!("preview     {}", p.display());
    }
    Ok(())
}
