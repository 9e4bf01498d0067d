//! Train a GAN: `ganforge train`, with a progress bar (or a line every 5% in logs), Ctrl-C
//! handling and the optional live dashboard.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use ganforge::burn::tensor::Device;
use ganforge::config::GanConfig;
use ganforge::device::parse_device;
use ganforge::memory;
use ganforge::run::RunDir;
use ganforge::train::plan::{plan, PROBE_STEPS, WARMUP_STEPS};
use ganforge::train::step::StepStats;
use ganforge::train::{train, Observer, TrainOptions};

#[derive(Args)]
pub struct TrainArgs {
    /// Serve the live dashboard (and the image page) while training, at ADDR
    /// (default 127.0.0.1:8080): open http://ADDR/dashboard.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    dashboard: Option<std::net::SocketAddr>,
    #[command(flatten)]
    source: crate::config::ConfigSource,
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
    /// Train until this much wall-clock time has passed since training started (30m, 2h, 90s,
    /// 1h30m), then write a checkpoint and stop, as Ctrl-C does; --resume continues the run.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    time: Option<std::time::Duration>,
    /// Seed for every random choice of the run.
    #[arg(long)]
    seed: Option<u64>,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Continue this run folder from its latest checkpoint (with --steps/--epochs for a new end).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Check the config and the data, show the networks, the memory and a time estimate from a
    /// few timed steps, and stop: no run folder, nothing written.
    #[arg(long, conflicts_with_all = ["resume", "dashboard"])]
    dry_run: bool,
    /// Fine-tune: start a new run (step 0, fresh optimizers) from the weights of a run folder
    /// (its last good checkpoint), a checkpoint folder (G, D and G's average) or a generator
    /// file (G only; D starts random). The config must build the same networks. Recorded as
    /// train.init_from in the new run.
    #[arg(long, value_name = "RUN_OR_FILE", conflicts_with = "resume")]
    init_from: Option<PathBuf>,
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
    /// `--time`: the budget and the flag that stops training when it is spent.
    budget: Option<(std::time::Duration, Arc<AtomicBool>)>,
    deadline: Option<std::time::Instant>,
    budget_said: bool,
}

/// "30m", "2h", "90s", "1h30m" as a duration: numbers each followed by h, m or s.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{s}' is not a duration: write it as 30m, 2h, 90s or 1h30m");
    let (mut total, mut number) = (0u64, String::new());
    for c in s.trim().chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' if !number.is_empty() => {
                let n: u64 = number.parse().map_err(|_| bad())?;
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
                number.clear();
            }
            _ => return Err(bad()),
        }
    }
    if !number.is_empty() || total == 0 {
        return Err(if total == 0 && number.is_empty() && !s.trim().is_empty() { format!("--time {s} is no time at all") } else { bad() });
    }
    Ok(std::time::Duration::from_secs(total))
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
        if let Some((budget, stop)) = self.budget.clone() {
            // Counted from here: opening the data and building the cache are not training time.
            self.deadline = Some(std::time::Instant::now() + budget);
            std::thread::spawn(move || {
                std::thread::sleep(budget);
                stop.store(true, Ordering::SeqCst);
            });
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
        let mut msg = format!("loss D {:.3} G {:.3}  D(x) {:.2} D(G(z)) {:.2}  {:.0} img/s", s.loss_d, s.loss_g, s.d_real, s.d_fake, ips);
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(std::time::Instant::now()).as_secs();
            msg.push_str(&format!("  time left {}:{:02}:{:02}", left / 3600, left / 60 % 60, left % 60));
            if left == 0 && !std::mem::replace(&mut self.budget_said, true) {
                self.message("time budget spent: finishing this step and writing a checkpoint");
            }
        }
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

pub fn run(a: TrainArgs, ranks: &crate::ranks::Ranks) -> Result<()> {
    let device = parse_device(&a.device)?;
    let cfg = match &a.resume {
        Some(run) => {
            if a.source.preset.is_some()
                || a.source.config.is_some()
                || !a.source.sets.is_empty()
                || a.data.is_some()
                || a.seed.is_some()
                || a.out.is_some()
            {
                bail!("--resume continues a run in place with its own config; only --steps, --epochs, --time and --device may be given with it");
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
            sets.extend(a.source.sets.iter().cloned());
            let mut cfg = GanConfig::resolve(a.source.preset.as_deref(), a.source.config.as_deref(), &sets)?;
            if let Some(from) = &a.init_from {
                // Set directly rather than through --set: a path needs no TOML quoting.
                cfg.train.init_from = ganforge::fsutil::OptionalPath::new(from.to_string_lossy());
            }
            cfg
        }
    };
    if a.dry_run {
        // One plan for the job, from rank 0.
        return if ranks.is_root() { dry_run(cfg, &device, &a.device) } else { Ok(()) };
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Its own count: a spent --time budget also sets the stop flag, and is no first Ctrl-C.
    let interrupted = AtomicBool::new(false);
    let root = ranks.is_root();
    ctrlc::set_handler(move || {
        flag.store(true, Ordering::SeqCst);
        if interrupted.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without a final checkpoint");
            std::process::exit(130);
        }
        if root {
            eprintln!("\ninterrupt: finishing this step and writing a checkpoint (press Ctrl-C again to quit at once)");
        }
    })
    .context("installing the Ctrl-C handler")?;

    let budget = a.time.map(|t| (t, stop.clone()));
    let mut progress = Progress { every: 1, dashboard: a.dashboard, budget, ..Default::default() };
    let out = a.out.unwrap_or_else(|| PathBuf::from("runs"));
    let opts = TrainOptions { out, device, resume: a.resume, stop, group: ranks.group.clone() };
    // Rank 0 reports for the whole job.
    if !ranks.is_root() {
        train(cfg, opts, &mut ganforge::train::Quiet)?;
        return Ok(());
    }
    let run = train(cfg, opts, &mut progress)?;
    println!("{}", run.path.display());
    Ok(())
}

/// `--dry-run`: the plan of the run, on standard output.
fn dry_run(cfg: GanConfig, device: &Device, device_name: &str) -> Result<()> {
    let (arch, size, channels, batch) = (cfg.model.arch, cfg.model.image_size, cfg.model.channels, cfg.train.batch_size);
    let p = plan(cfg, device)?;
    let arch = format!("{arch:?}").to_lowercase();
    println!("config: valid ({arch}, {size}x{size}x{channels} images, batches of {batch})");
    println!("data: {} ({} images, {} classes, {} batches an epoch)", p.data, p.images, p.classes, p.batches_per_epoch);
    for (name, net) in [("G", &p.g), ("D", &p.d)] {
        println!("{name}: {} parameters ({})", net.params, memory::count(net.params));
        for l in &net.layers {
            println!("  {:28} {:>18} {:>10}", l.path, format!("{:?}", l.shape), l.params);
        }
    }
    let have = p.memory_available.map_or(String::new(), |b| format!(" of {} available", memory::gib(b)));
    println!("memory: about {} a training step (estimate{have})", memory::gib(p.memory_bytes));
    println!("steps: {} ({:.2} epochs)", p.steps, p.epochs);
    println!(
        "time: about {} for {} steps (an estimate: {:.3} s a step over {PROBE_STEPS} timed steps after {WARMUP_STEPS} warm-up on {device_name}; sample grids, checkpoints and evaluations not included)",
        human_duration(p.estimate_s()),
        p.steps,
        p.step_s
    );
    if let Some(dir) = p.cache {
        println!("cache: the run first decodes the {} images into {} (not in the estimate)", p.images, dir.display());
    }
    println!("dry run: no run folder created, nothing written");
    Ok(())
}

/// Seconds for people: "2h 05m", "4m 10s", "12s".
fn human_duration(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, s / 60 % 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 90s "), Ok(Duration::from_secs(90)));
        for bad in ["", "30", "m", "1.5h", "10d", "-5m", "99999999999999999999h"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        assert!(parse_duration("0s").unwrap_err().contains("no time at all"));
    }
}
