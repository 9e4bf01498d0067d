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
    /// With --list: one JSON document on standard output, for scripts.
    #[arg(long, requires = "list")]
    json: bool,
}

/// One entry of `data fetch --list --json`.
#[derive(serde::Serialize)]
struct Fetchable {
    name: String,
    /// Bytes to download, all files together.
    bytes: u64,
    files: Vec<String>,
}

pub fn fetch(a: FetchArgs) -> Result<()> {
    use ganforge::data::fetch::{self, FetchEvent, FetchOptions};
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    if a.list {
        let names = fetch::DATASETS.iter().map(|n| n.to_string());
        let names = names.chain(fetch::quickdraw_categories().into_iter().map(|(c, _)| format!("quickdraw/{c}")));
        let mut list = Vec::new();
        for name in names {
            let ds = fetch::find(&name)?;
            let files = ds.files.iter().map(|f| f.name.clone()).collect();
            list.push(Fetchable { name, bytes: ds.files.iter().map(|f| f.size).sum(), files });
        }
        if a.json {
            println!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(());
        }
        for f in &list {
            match f.name.strip_prefix("quickdraw/") {
                Some(c) => println!("quickdraw/{c:26} {:>10}", mb(f.bytes)),
                None => println!("{:16} {:>10}  {}", f.name, mb(f.bytes), f.files.join(" ")),
            }
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
    /// Print one JSON document instead of the table, for scripts.
    #[arg(long)]
    json: bool,
}

/// `data inspect --json`: what the table says, typed.
#[derive(serde::Serialize)]
struct InspectJson {
    spec: String,
    images: usize,
    /// Images looked at for sizes and statistics.
    sampled: usize,
    /// Smallest and largest native [width, height] among them.
    min_size: [u32; 2],
    max_size: [u32; 2],
    /// The model's input: side and channels, pixels scaled to [-1, 1].
    size: usize,
    channels: usize,
    /// Per channel, pixels in [0, 1].
    mean: Vec<f64>,
    std: Vec<f64>,
    undecodable: usize,
    first_error: Option<String>,
    /// Empty for unlabelled data.
    classes: Vec<ClassCount>,
    preview: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct ClassCount {
    label: u32,
    name: String,
    count: usize,
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    if !(8..=1024).contains(&a.size) || !(a.channels == 1 || a.channels == 3) || a.sample == 0 {
        bail!("--size must be 8 to 1024, --channels 1 or 3, --sample at least 1");
    }
    let source = ganforge::data::open(&ganforge::data::DataConfig::new().with_spec(a.spec.clone()))?;
    eprintln!("{}", source.describe());
    let r = ganforge::data::inspect::inspect(&*source, a.size, a.channels, a.sample, 64, 0)?;
    let names = source.class_names();
    let classes: Vec<ClassCount> = r
        .class_counts
        .iter()
        .map(|(&label, &count)| ClassCount { label, name: names.get(label as usize).cloned().unwrap_or_else(|| label.to_string()), count })
        .collect();
    if let Some(p) = &a.preview {
        save_png(p, &r.preview.grid(grid_cols(r.preview.n))).with_context(|| format!("writing {}", p.display()))?;
    }
    if a.json {
        let report = InspectJson {
            spec: a.spec.clone(),
            images: r.images,
            sampled: r.sampled,
            min_size: [r.min_size.0, r.min_size.1],
            max_size: [r.max_size.0, r.max_size.1],
            size: a.size,
            channels: a.channels,
            mean: r.mean,
            std: r.std,
            undecodable: r.undecodable,
            first_error: r.first_error,
            classes,
            preview: a.preview,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("images      {}", r.images);
    println!("native size {}x{} to {}x{} (of {} looked at)", r.min_size.0, r.min_size.1, r.max_size.0, r.max_size.1, r.sampled);
    println!("model input {}x{}, {} channel(s), scaled to [-1, 1]", a.size, a.size, a.channels);
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(" ");
    println!("pixel mean  {}  (per channel, pixels in [0, 1])", fmt(&r.mean));
    println!("pixel std   {}", fmt(&r.std));
    if r.undecodable > 0 {
        println!("undecodable {} of {} looked at; first: {}", r.undecodable, r.sampled, r.first_error.as_deref().unwrap_or(""));
    }
    if classes.is_empty() {
        println!("classes     none (unlabelled)");
    } else {
        println!("classes     {}", classes.len());
        for c in &classes {
            println!("  {:>4}  {:20} {}", c.label, c.name, c.count);
        }
    }
    if let Some(p) = &a.preview {
        println!("preview     {}", p.display());
    }
    Ok(())
}
