//! `ganforge`: the command-line program. Errors are reported in one line with their context
//! and a non-zero exit status; the path of a new run is the last line of standard output.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use ganforge::config::{GanConfig, PRESETS};
use ganforge::device::parse_device;
use ganforge::image_io::{grid_cols, save_png};
use ganforge::sample::Sampler;
use ganforge::train::run_dir::RunDir;
use ganforge::train::step::StepStats;
use ganforge::train::{train, Observer, TrainOptions};

#[global_allocator]
static GLOBAL: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ganforge", version, about = "Train, sample and inspect GANs on image data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GAN; prints the new run folder as the last line of output.
    #[command(after_help = "Examples:
  ganforge train                                   # DCGAN on the bundled MNIST (preset mnist)
  ganforge train --preset mnist64 --steps 20000    # the classic DCGAN setup, 64x64
  ganforge train --data folder:~/pictures --set model.channels=3 --set model.image_size=64
  ganforge train --set train.lr_d=1e-4 --set tricks.soft_labels=true
  ganforge train --resume runs/00003-mnist --steps 4000   # continue a run in place")]
    Train(TrainArgs),
    /// Generate images from a trained run.
    #[command(after_help = "Examples:
  ganforge sample --run runs/00003-mnist --n 64 --grid --out grid.png
  ganforge sample --run runs/00003-mnist --n 1000 --out samples/ --seed 7
  ganforge sample --run runs/00003-mnist --latents z.npy --raw out.npy --out imgs/
  ganforge sample --run runs/00004-mnist --class 7 --n 16 --grid --out sevens.png    # conditional runs
  ganforge sample --run runs/00004-mnist --per-class 8 --out classes.png             # a row per class")]
    Sample(SampleArgs),
    /// List the presets and what each is for.
    Presets,
    /// Look at datasets before training on them.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Count, size, classes, pixel statistics and a preview grid of a dataset spec.
    #[command(after_help = "Examples:
  ganforge data inspect mnist
  ganforge data inspect folder:~/photos/dogs --size 64 --channels 3 --preview dogs.png")]
    Inspect(InspectArgs),
    /// Download a dataset from its publisher (checked against its published SHA-256) into the
    /// cache folder, where a bare `--data NAME` finds it.
    #[command(after_help = "Examples:
  ganforge data fetch svhn                 # then: ganforge train --preset svhn
  ganforge data fetch quickdraw/sheep      # any of the 345 Quick, Draw! categories
  ganforge data fetch stanford-dogs --dir /data/ganforge
  ganforge data fetch --list

The cache folder is $GANFORGE_DATA, else $XDG_CACHE_HOME/ganforge/data, else ~/.cache/ganforge/data.
An interrupted download resumes where it stopped when the command is run again.")]
    Fetch(FetchArgs),
}

#[derive(Args)]
struct FetchArgs {
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

fn cmd_fetch(a: FetchArgs) -> Result<()> {
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
struct InspectArgs {
    /// Dataset: mnist, idx:PATH, folder:DIR, quickdraw:FILE, svhn:FILE, cifar10:DIR,
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

fn cmd_inspect(a: InspectArgs) -> Result<()> {
    if !(8..=1024).contains(&a.size) || !(a.channels == 1 || a.channels == 3) || a.sample == 0 {
        bail!("--size must be 8 to 1024, --channels 1 or 3, --sample at least 1");
    }
    let source = ganforge::data::open(&ganforge::config::DataConfig::new().with_spec(a.spec.clone()))?;
    eprintln!("{}", source.describe());
    let r = ganforge::data::inspect::inspect(&*source, a.size, a.channels, a.sample, 64, 0)?;
    println!("images      {}", r.images);
    println!("native size {}x{} to {}x{} (of {} looked at)", r.min_size.0, r.min_size.1, r.max_size.0, r.max_size.1, r.sampled);
    println!("model input {}x{}, {} channel(s), scaled to [-1, 1]", a.size, a.size, a.channels);
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(" ");
    println!("pixel mean  {}  (per channel, pixels in [0, 1])", fmt(&r.mean));
    println!("pixel std   {}", fmt(&r.std));
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

#[derive(Args)]
struct TrainArgs {
    /// Preset to start from (see `ganforge presets`); default: mnist.
    #[arg(long)]
    preset: Option<String>,
    /// TOML config file applied on top of the preset.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one config key, e.g. --set train.lr_d=1e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Dataset: mnist, idx:PATH, folder:DIR, quickdraw:FILE (.npy bitmaps or .ndjson drawings), cifar10:DIR (binary batches) or stanford-dogs:DIR.
    #[arg(long, value_name = "SPEC")]
    data: Option<String>,
    /// Folder that holds the numbered run folders [default: runs].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Train for this many steps (one D and one G update each).
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<u64>,
    /// Train for this many passes over the data.
    #[arg(long)]
    epochs: Option<u64>,
    /// Seed for every random choice of the run.
    #[arg(long)]
    seed: Option<u64>,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Continue this run folder from its latest checkpoint (with --steps/--epochs for a new end).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
}

#[derive(Args)]
struct SampleArgs {
    /// Run folder to sample from.
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// Checkpoint folder or g.safetensors file; default: the run's latest checkpoint.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Number of images (ignored with --latents).
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Output: a folder for PNG files, or a .png file with --grid.
    #[arg(long, value_name = "PATH", required_unless_present = "kaggle")]
    out: Option<PathBuf>,
    /// Write a Kaggle "Generative Dog Images" submission instead: 10,000 PNGs of 64x64 RGB in
    /// one zip (other sizes and grey images are converted).
    #[arg(long, value_name = "FILE.zip", conflicts_with_all = ["out", "grid", "raw", "latents", "per_class"])]
    kaggle: Option<PathBuf>,
    /// Seed of the latent vectors; default: the run's seed (the latents of its sample grids).
    #[arg(long)]
    seed: Option<u64>,
    /// Write one grid PNG instead of one file per image.
    #[arg(long)]
    grid: bool,
    /// Sample exactly these latents: a float32 .npy of shape [N, nz].
    #[arg(long, value_name = "FILE.npy")]
    latents: Option<PathBuf>,
    /// Also write G's raw float32 output [N, C, H, W] to this .npy file.
    #[arg(long, value_name = "FILE.npy")]
    raw: Option<PathBuf>,
    /// Conditional runs: make every image of this class (its index; see data.classes in the
    /// run's config.toml for the names).
    #[arg(long, value_name = "K", conflicts_with = "per_class")]
    class: Option<u32>,
    /// Conditional runs: N images of each class, one row per class (sets --n, implies --grid).
    #[arg(long, value_name = "N")]
    per_class: Option<usize>,
    /// Truncation trick (BigGAN): redraw latent values beyond this magnitude, e.g. 0.5.
    #[arg(long, value_name = "T")]
    truncation: Option<f32>,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Progress bar on a terminal; a line every 5% otherwise (logs, CI).
#[derive(Default)]
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    every: u64,
    cache_bar: Option<ProgressBar>,
    cache_quarter: usize,
}

impl Observer for Progress {
    fn start(&mut self, run: &RunDir, start: u64, total: u64) {
        eprintln!("run folder: {}", run.path.display());
        self.total = total;
        self.every = (total / 20).max(1);
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total).with_position(start);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]")
                    .expect("valid template"),
            );
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, step: u64, s: &StepStats, ips: f64) {
        let msg = format!("loss D {:.3} G {:.3}  D(x) {:.2} D(G(z)) {:.2}  {:.0} img/s", s.loss_d, s.loss_g, s.d_real, s.d_fake, ips);
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(msg);
            }
            None if step % self.every == 0 || step == self.total => eprintln!("step {step}/{}  {msg}", self.total),
            None => {}
        }
    }

    fn caching(&mut self, done: usize, total: usize) {
        if total == 0 {
            return;
        }
        // Before training starts: a bar of its own on a terminal, a line per quarter otherwise.
        if std::io::stderr().is_terminal() {
            let bar = self.cache_bar.get_or_insert_with(|| {
                ProgressBar::new(total as u64).with_style(
                    ProgressStyle::with_template("caching images at model size {bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}]")
                        .expect("valid template"),
                )
            });
            bar.set_position(done as u64);
            if done == total {
                bar.finish_and_clear();
            }
        } else if done * 4 / total > self.cache_quarter {
            self.cache_quarter = done * 4 / total;
            eprintln!("caching images at model size: {done}/{total}");
        }
    }

    fn message(&mut self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// `--steps` / `--epochs` as config overrides (`--steps` also clears a configured epoch count).
fn duration_sets(a: &TrainArgs) -> Vec<String> {
    let mut sets = Vec::new();
    if let Some(s) = a.steps {
        sets.extend([format!("train.steps={s}"), "train.epochs=0".into()]);
    }
    if let Some(e) = a.epochs {
        sets.push(format!("train.epochs={e}"));
    }
    sets
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let cfg = match &a.resume {
        Some(run) => {
            if a.preset.is_some() || a.config.is_some() || !a.sets.is_empty() || a.data.is_some() || a.seed.is_some() || a.out.is_some() {
                bail!("--resume continues a run in place with its own config; only --steps, --epochs and --device may be given with it");
            }
            let run = RunDir::open(run)?;
            let sets = duration_sets(&a);
            let saved = GanConfig::load(&run.config_path()).context("reading the run's config")?;
            saved.with_overrides(&sets)?
        }
        None => {
            let mut sets = duration_sets(&a);
            if let Some(d) = &a.data {
                sets.push(format!("data.spec={d}"));
            }
            if let Some(s) = a.seed {
                sets.push(format!("seed={s}"));
            }
            sets.extend(a.sets.iter().cloned());
            GanConfig::resolve(a.preset.as_deref(), a.config.as_deref(), &sets)?
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without a final checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing this step and writing a checkpoint (press Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;

    let mut progress = Progress { every: 1, ..Default::default() };
    let out = a.out.unwrap_or_else(|| PathBuf::from("runs"));
    let run = train(cfg, TrainOptions { out, device, resume: a.resume, stop }, &mut progress)?;
    println!("{}", run.path.display());
    Ok(())
}

fn cmd_sample(a: SampleArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let sampler = Sampler::load(&a.run, a.checkpoint.as_deref(), &device)?;
    if let Some(zip) = &a.kaggle {
        return kaggle_submission(&sampler, &a, zip);
    }
    let out = a.out.clone().context("--out is needed")?;
    let z = match &a.latents {
        Some(p) => {
            let arr = ganforge::npy::read(p)?;
            sampler.check_latents(&arr.shape).with_context(|| format!("reading {}", p.display()))?;
            arr.values
        }
        None => {
            let n = match a.per_class {
                Some(k) => k.saturating_mul(sampler.cfg.model.classes),
                None => a.n,
            };
            if n == 0 || n > 100_000 {
                match a.per_class {
                    Some(k) => bail!("--per-class {k} makes {n} images: ask for 1 to 100000 (and a conditional run)"),
                    None => bail!("--n {n} is out of range: ask for 1 to 100000 images"),
                }
            }
            latents(&sampler, &a, n)?
        }
    };
    let n = z.len() / sampler.cfg.model.nz;
    let labels: Option<Vec<u32>> = match (a.class, a.per_class) {
        (Some(k), _) => Some(vec![k; n]),
        (None, Some(per)) => Some((0..n).map(|i| (i / per.max(1)) as u32).collect()),
        (None, None) => None,
    };
    if let Some(l) = &labels {
        sampler.check_labels(l)?;
    }
    let images = sampler.generate(&z, labels.as_deref());
    let cols = match a.per_class {
        Some(per) => per.max(1),
        None => grid_cols(images.n),
    };
    let grid = a.grid || a.per_class.is_some();
    if let Some(raw) = &a.raw {
        ganforge::npy::write(raw, &[images.n, images.channels, images.height, images.width], &images.values)?;
    }
    if grid {
        save_png(&out, &images.grid(cols)).with_context(|| format!("writing {}", out.display()))?;
        println!("{}", out.display());
    } else {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let width = images.n.to_string().len().max(5);
        for i in 0..images.n {
            let p = out.join(format!("{i:0width$}.png"));
            ganforge::fsutil::write_atomic(&p, &images.png(i)).with_context(|| format!("writing {}", p.display()))?;
        }
        println!("{}", out.display());
    }
    eprintln!("{} images from {}", images.n, sampler.checkpoint.display());
    Ok(())
}

/// `n` latents from --seed (default: the run's), truncated with --truncation.
fn latents(sampler: &Sampler, a: &SampleArgs, n: usize) -> Result<Vec<f32>> {
    let seed = a.seed.unwrap_or(sampler.cfg.seed);
    Ok(match a.truncation {
        Some(t) if !(t.is_finite() && t >= 0.05) => bail!("--truncation {t} must be a number of at least 0.05 (0.5 is typical)"),
        Some(t) => sampler.latents_truncated(n, seed, t),
        None => sampler.latents(n, seed),
    })
}

/// 10,000 images as Kaggle's dog competition took them, generated 500 at a time; a
/// conditional G is asked for each class in turn.
fn kaggle_submission(sampler: &Sampler, a: &SampleArgs, zip: &std::path::Path) -> Result<()> {
    use ganforge::kaggle::{submission_png, write_zip, IMAGES};
    let z = latents(sampler, a, IMAGES)?;
    let (nz, classes) = (sampler.cfg.model.nz, sampler.cfg.model.classes);
    let labels: Option<Vec<u32>> = match (a.class, classes) {
        (Some(k), _) => Some(vec![k; IMAGES]),
        (None, 0) => None,
        (None, c) => Some((0..IMAGES).map(|i| (i % c) as u32).collect()),
    };
    if let Some(l) = &labels {
        sampler.check_labels(l)?;
    }
    let chunk = 500;
    let files = (0..IMAGES).step_by(chunk).flat_map(|start| {
        let end = (start + chunk).min(IMAGES);
        let images = sampler.generate(&z[start * nz..end * nz], labels.as_ref().map(|l| &l[start..end]));
        (0..images.n).map(move |i| (format!("{:05}.png", start + i), submission_png(&images, i))).collect::<Vec<_>>()
    });
    write_zip(zip, files).with_context(|| format!("writing {}", zip.display()))?;
    println!("{}", zip.display());
    eprintln!("{IMAGES} images (64x64 RGB PNG) from {}", sampler.checkpoint.display());
    Ok(())
}

/// The error and its causes on one line, each cause once: library errors already quote the
/// I/O error they wrap, which `{:#}` would print a second time.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg = format!("{msg}: {c}");
        }
    }
    msg
}

fn main() -> ExitCode {
    ganforge::alloc::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Sample(a) => cmd_sample(a),
        Command::Data(DataCommand::Inspect(a)) => cmd_inspect(a),
        Command::Data(DataCommand::Fetch(a)) => cmd_fetch(a),
        Command::Presets => {
            for p in PRESETS {
                println!("{:10} {}", p.name, p.about);
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
