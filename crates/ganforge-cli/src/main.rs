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
use ganforge::interop::dcgan::{self, TorchDcgan};
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
    /// Score a run's generator: FID, KID, MiFID, precision/recall, Inception Score, class coverage.
    #[command(after_help = "Examples:
  ganforge eval --run runs/00003-mnist --metrics fid,kid,pr,coverage --features lenet
  ganforge eval --run runs/00007-dogs --metrics fid,mifid,is --inception pt_inception-2015-12-05-6726825d.pth --n 10000
  ganforge eval --run runs/00009-stacked-mnist --metrics coverage --n 26000     # modes of 1000

The result is printed and written to RUN_DIR/eval/. Inception weights (pytorch-fid's):
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth")]
    Eval(EvalArgs),
    /// Diagnose a run: mode collapse, checkerboard artifacts, unbalanced learning rates,
    /// divergence, memorization; each with its evidence and remedy.
    #[command(after_help = "Example:
  ganforge doctor runs/00003-mnist")]
    Doctor(DoctorArgs),
    /// Serve a run: a page that makes a new image on every click, its HTTP API, and the live
    /// training dashboard (/dashboard).
    #[command(after_help = "Examples:
  ganforge serve --run runs/00003-mnist                    # then open http://127.0.0.1:8080/
  ganforge serve --run runs/00003-mnist --addr 0.0.0.0:8080   # reachable from other machines

API: GET /api/generate?seed=S&n=N&class=K&truncation=T (PNG: one image, or a grid for n > 1),
GET /api/interpolate?from=A&to=B&steps=8 (PNG strip), GET /api/model, GET /api/metrics (JSON).")]
    Serve(ServeArgs),
    /// Write one self-contained HTML report of a run: config, curves, samples, metrics, doctor.
    #[command(after_help = "Example:
  ganforge report runs/00003-mnist            # writes runs/00003-mnist/report.html")]
    Report(ReportArgs),
    /// Write a run's DCGAN generator (or discriminator) as a state dict of PyTorch's DCGAN example.
    #[command(after_help = "Examples:
  ganforge export --run runs/00003-mnist64 --out netG.pth
  ganforge export --run runs/00003-mnist64 --net d --out netD.pth

In PyTorch (github.com/pytorch/examples, dcgan/main.py): netG.load_state_dict(torch.load(\"netG.pth\")).
Only a plain 64x64-style DCGAN has the example's layout: no classes, no spectral norm, transposed 4x4 up-sampling.")]
    Export(ExportArgs),
    /// Train the small classifier that class coverage and domain features use.
    #[command(subcommand)]
    Classifier(ClassifierCommand),
    /// List the presets and what each is for.
    Presets,
    /// Look at datasets before training on them.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Subcommand)]
enum ClassifierCommand {
    /// Train a LeNet-style classifier on a labelled dataset and report its test accuracy.
    #[command(after_help = "Examples:
  ganforge classifier train --data mnist --out lenet-mnist.safetensors
  ganforge eval --run runs/00003-mnist --metrics coverage --classifier lenet-mnist.safetensors

ganforge ships the MNIST classifier this command makes with its defaults; eval uses it unless told otherwise.")]
    Train(ClassifierTrainArgs),
}

#[derive(Args)]
struct ClassifierTrainArgs {
    /// Labelled training data: mnist, idx:PATH, svhn:FILE, cifar10:DIR, ... (grey 28x28 input).
    #[arg(long, default_value = "mnist")]
    data: String,
    /// Labelled test data for the accuracy; default: mnist-test when --data is mnist.
    #[arg(long)]
    test: Option<String>,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the weights (a .json record with the accuracy is written beside them).
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct EvalArgs {
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
    /// Features for fid, kid, mifid, pr and is: inception (needs --inception) or lenet.
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
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct ServeArgs {
    /// Run folder to serve (it may still be training).
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// Address to listen on (loopback by default: the page is not exposed unless asked).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct ReportArgs {
    /// Run folder.
    run: PathBuf,
    /// Output file (default: RUN_DIR/report.html).
    #[arg(long, value_name = "FILE.html")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct DoctorArgs {
    /// Run folder to examine.
    run: PathBuf,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct ExportArgs {
    /// Run folder whose latest checkpoint is exported.
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// A checkpoint folder of the run instead of its latest.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Which network: g or d.
    #[arg(long, default_value = "g", value_parser = ["g", "d"])]
    net: String,
    /// The .pth file to write.
    #[arg(long, value_name = "FILE.pth")]
    out: PathBuf,
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
    /// Serve the live dashboard (and the image page) while training, at ADDR
    /// (default 127.0.0.1:8080): open http://ADDR/dashboard.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    dashboard: Option<std::net::SocketAddr>,
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
    #[arg(long, value_name = "RUN_DIR", required_unless_present = "from_pytorch")]
    run: Option<PathBuf>,
    /// Sample a generator saved by PyTorch's DCGAN example (`torch.save(netG.state_dict(), ...)`)
    /// instead of a run; its sizes are read from the file (--nz, --ngf, --nc, --size check them).
    #[arg(long, value_name = "netG.pth", conflicts_with_all = ["run", "checkpoint"])]
    from_pytorch: Option<PathBuf>,
    /// The architecture of --from-pytorch: dcgan (PyTorch's example).
    #[arg(long, default_value = "dcgan", value_parser = ["dcgan"], requires = "from_pytorch")]
    arch: String,
    #[arg(long, requires = "from_pytorch")]
    nz: Option<usize>,
    #[arg(long, requires = "from_pytorch")]
    ngf: Option<usize>,
    #[arg(long, requires = "from_pytorch")]
    nc: Option<usize>,
    #[arg(long, requires = "from_pytorch")]
    size: Option<usize>,
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
    dashboard: Option<std::net::SocketAddr>,
    server: Option<ganforge_serve::server::ServeHandle>,
}

impl Observer for Progress {
    fn start(&mut self, run: &RunDir, start: u64, total: u64) {
        eprintln!("run folder: {}", run.path.display());
        if let Some(addr) = self.dashboard {
            match ganforge_serve::server::spawn(&run.path, addr, ganforge::burn::tensor::Device::flex()) {
                Ok(server) => {
                    eprintln!("dashboard: http://{}/dashboard", server.addr);
                    self.server = Some(server);
                }
                Err(e) => eprintln!("warning: no dashboard: {e}"),
            }
        }
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

    let mut progress = Progress { every: 1, dashboard: a.dashboard, ..Default::default() };
    let out = a.out.unwrap_or_else(|| PathBuf::from("runs"));
    let run = train(cfg, TrainOptions { out, device, resume: a.resume, stop }, &mut progress)?;
    println!("{}", run.path.display());
    Ok(())
}

fn cmd_sample(a: SampleArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let sampler = match (&a.from_pytorch, &a.run) {
        (Some(pth), _) => {
            let given = TorchDcgan { nz: a.nz, ngf: a.ngf, nc: a.nc, size: a.size, ndf: None };
            let (cfg, g) = dcgan::import_generator(pth, &given, &device)?;
            Sampler::from_generator(cfg, g, pth.clone(), &device)
        }
        (None, Some(run)) => Sampler::load(run, a.checkpoint.as_deref(), &device)?,
        (None, None) => bail!("--run or --from-pytorch is needed"),
    };
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
    use ganforge::kaggle::{submission_png, IMAGES};
    use ganforge::zipfile::write_zip;
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

fn cmd_eval(a: EvalArgs) -> Result<()> {
    use ganforge::eval::{evaluate, EvalOptions, Extractors, FeatureKind, Metric};
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
    if opts.metrics.is_empty() {
        bail!("--metrics is empty: name at least one of fid, kid, mifid, pr, is, coverage");
    }
    let sampler = Sampler::load(&a.run, a.checkpoint.as_deref(), &device)?;
    let ex = Extractors::load(&opts, &device)?;
    let quiet = !std::io::stderr().is_terminal();
    let mut last = std::time::Instant::now();
    let report = evaluate(&sampler, &opts, &ex, &mut |msg| {
        // Counters ("real images: 500 of 10000") are thinned out in logs; other lines always show.
        let counter = msg.contains(" of ");
        if !counter || !quiet || last.elapsed().as_secs() >= 10 {
            eprintln!("{msg}");
            last = std::time::Instant::now();
        }
    })?;
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

fn cmd_serve(a: ServeArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let server = ganforge_serve::server::spawn(&a.run, a.addr, device)?;
    eprintln!("serving {} at http://{}/ (dashboard: http://{}/dashboard); Ctrl-C stops", a.run.display(), server.addr, server.addr);
    println!("http://{}/", server.addr);
    server.wait();
    Ok(())
}

fn cmd_report(a: ReportArgs) -> Result<()> {
    let html = ganforge_serve::report::build(&a.run)?;
    let out = a.out.unwrap_or_else(|| a.run.join("report.html"));
    ganforge::fsutil::write_atomic(&out, html.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

fn cmd_doctor(a: DoctorArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let exam = ganforge::doctor::examine_run(&a.run, &device)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&exam)?);
        return Ok(());
    }
    let show =
        |f: &ganforge::doctor::Finding| println!("{}: step {}\n  evidence: {}\n  remedy:   {}", f.kind, f.step, f.evidence, f.remedy);
    if exam.findings.is_empty() {
        println!("no problems found now in {}", a.run.display());
    }
    exam.findings.iter().for_each(show);
    if !exam.logged.is_empty() {
        println!("\nlogged during training (the latest of each kind; it may have passed since):");
        exam.logged.iter().for_each(show);
    }
    for n in &exam.notes {
        println!("note: {n}");
    }
    Ok(())
}

fn cmd_export(a: ExportArgs) -> Result<()> {
    use ganforge::train::checkpoint::load_module;
    let device = ganforge::burn::tensor::Device::flex();
    let run = RunDir::open(&a.run)?;
    let cfg = GanConfig::load(&run.config_path())?;
    let dir = match a.checkpoint {
        Some(d) => d,
        None => run.latest_checkpoint()?,
    };
    let (g, d) = ganforge::nets::build(&cfg.families(), cfg.seed, &device);
    if a.net == "g" {
        let g = load_module(g, &dir.join("g.safetensors"))?;
        dcgan::export(&g, dcgan::Net::G, &cfg, &a.out)?;
    } else {
        let d = load_module(d, &dir.join("d.safetensors"))?;
        dcgan::export(&d, dcgan::Net::D, &cfg, &a.out)?;
    }
    println!("{}", a.out.display());
    eprintln!(
        "{} of {} as PyTorch's DCGAN example names it (nz {}, ngf {}, ndf {}, nc {})",
        a.net.to_uppercase(),
        dir.display(),
        cfg.model.nz,
        cfg.dcgan.ngf,
        cfg.dcgan.ndf,
        cfg.model.channels
    );
    Ok(())
}

fn cmd_classifier_train(a: ClassifierTrainArgs) -> Result<()> {
    use ganforge::features::lenet::{self, ClassifierOptions, Labelled};
    let device = parse_device(&a.device)?;
    let open = |spec: &str| -> Result<Labelled> {
        let source = ganforge::data::open(&ganforge::config::DataConfig { spec: spec.to_string(), ..ganforge::config::DataConfig::new() })
            .with_context(|| format!("opening {spec}"))?;
        eprintln!("{}", source.describe());
        Ok(Labelled::from_source(source.as_ref())?)
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
    let opts = ClassifierOptions { epochs: a.epochs, batch_size: a.batch_size, lr: a.lr, seed: a.seed };
    let net = lenet::train(&train_set, &opts, &device, &mut |epoch, step, steps, loss| {
        eprintln!("epoch {}/{}  step {step}/{steps}  loss {loss:.4}", epoch + 1, opts.epochs);
    });
    let train_acc = lenet::accuracy(&net, &train_set);
    let test_acc = match &test_spec {
        Some(t) => Some(lenet::accuracy(&net, &open(t)?)),
        None => None,
    };
    net.save(&a.out)?;
    let record = serde_json::json!({
        "data": a.data, "test": test_spec, "classes": train_set.classes, "epochs": a.epochs, "batch_size": a.batch_size,
        "lr": a.lr, "seed": a.seed, "train_accuracy": train_acc, "test_accuracy": test_acc,
    });
    let json = a.out.with_extension("json");
    ganforge::fsutil::write_atomic(&json, (serde_json::to_string_pretty(&record)? + "\n").as_bytes())?;
    eprintln!("train accuracy {:.4}{}", train_acc, test_acc.map(|t| format!(", test accuracy {t:.4}")).unwrap_or_default());
    println!("{}", a.out.display());
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
        Command::Export(a) => cmd_export(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Serve(a) => cmd_serve(a),
        Command::Report(a) => cmd_report(a),
        Command::Doctor(a) => cmd_doctor(a),
        Command::Classifier(ClassifierCommand::Train(a)) => cmd_classifier_train(a),
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
