//! The long mode: `cargo run --release -p ganforge-fuzz -- --minutes N [--target NAME]`.
//! Fuzzes each target (or one) for N minutes, prints per target the inputs tried, accepted,
//! failures, the largest single allocation and the slowest input, and saves failing inputs.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ganforge_fuzz::{fuzz, load_corpus, mib, save_failures, Budget, Ctx, Limits, TARGETS};

#[global_allocator]
static A: ganforge_fuzz::alloc::Counting = ganforge_fuzz::alloc::Counting;

/// An input slower than this is reported: the parsers take milliseconds on 64 KiB.
const SLOW: Duration = Duration::from_secs(2);
/// A single input running this long is a hang: the watchdog saves it and ends the run.
const HANG: Duration = Duration::from_secs(60);

struct Args {
    minutes: f64,
    target: Option<String>,
    seed: u64,
    out: PathBuf,
    corpus: PathBuf,
}

const USAGE: &str = "usage: ganforge-fuzz --minutes N [--target NAME] [--seed S] [--out DIR] [--corpus DIR]
  --minutes N   minutes per target (fractions allowed)
  --target NAME one target only
  --seed S      seed of the mutations (default: the clock)
  --out DIR     where failing inputs go (default: fuzz-failures)
  --corpus DIR  seed corpus (default: the committed crates/ganforge-fuzz/corpus)";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        minutes: f64::NAN,
        target: None,
        seed: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1),
        out: PathBuf::from("fuzz-failures"),
        corpus: ganforge_fuzz::corpus_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--minutes" => a.minutes = value()?.parse().map_err(|_| "--minutes takes a number".to_string())?,
            "--target" => a.target = Some(value()?),
            "--seed" => a.seed = value()?.parse().map_err(|_| "--seed takes an integer".to_string())?,
            "--out" => a.out = value()?.into(),
            "--corpus" => a.corpus = value()?.into(),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(a.minutes.is_finite() && a.minutes > 0.0) {
        return Err("--minutes N (a positive number) is required".into());
    }
    if let Some(t) = &a.target {
        if !TARGETS.iter().any(|x| x.name == t) {
            return Err(format!("no target '{t}'; targets: {}", TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")));
        }
    }
    Ok(a)
}

fn main() {
    ganforge::alloc::keep_freed_memory();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    assert!(ganforge_fuzz::alloc::installed(), "the counting allocator is not installed");
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("cannot create {}: {e}", args.out.display());
        std::process::exit(1);
    }
    // The input running now is also on disk: an abort (an allocation over the hard ceiling) or
    // a hang leaves it behind, where no report could.
    let current = args.out.join("current-input.bin");
    let started = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    {
        let (started, current) = (started.clone(), current.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let s = started.load(Ordering::Relaxed);
            if s > 0 && epoch.elapsed().saturating_sub(Duration::from_millis(s)) > HANG {
                eprintln!("HANG: an input has run for over {} s; it is in {}", HANG.as_secs(), current.display());
                std::process::exit(3);
            }
        });
    }
    let mut ctx = match Ctx::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot make a scratch folder: {e}");
            std::process::exit(1);
        }
    };
    let limits = Limits { slow: SLOW, keep_failures: 20 };
    let budget = Budget::Time(Duration::from_secs_f64(args.minutes * 60.0));
    println!("seed {}; {} min per target; failures go to {}", args.seed, args.minutes, args.out.display());
    println!("| target | inputs tried | accepted | failures | largest single allocation (bound) | slowest input |");
    println!("|---|---:|---:|---:|---|---:|");
    let mut total_failed = 0;
    for (i, target) in TARGETS.iter().enumerate().filter(|(_, t)| args.target.as_deref().is_none_or(|n| n == t.name)) {
        let seeds = load_corpus(&args.corpus, target.name).unwrap_or_else(|e| {
            eprintln!("no seed corpus for {} ({e}); starting from an empty input", target.name);
            Vec::new()
        });
        let report = fuzz(target, &mut ctx, &seeds, budget, args.seed.wrapping_add(i as u64), &limits, |input| {
            // Best effort: a full disk must not stop the fuzzing, only the saving.
            let _ = std::fs::write(&current, input);
            started.store(epoch.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
        });
        started.store(0, Ordering::Relaxed);
        println!(
            "| {} | {} | {} | {} | {} ({}) | {:.0} ms |",
            report.target,
            report.tried,
            report.accepted,
            report.failed,
            mib(report.largest_alloc),
            mib(target.max_alloc),
            report.slowest.as_secs_f64() * 1000.0
        );
        for f in report.failures.iter().take(3) {
            println!("  {}: {}", report.target, f.kind);
        }
        match save_failures(&report, &args.out) {
            Ok(paths) if !paths.is_empty() => println!("  saved {} failing inputs to {}", paths.len(), args.out.display()),
            Ok(_) => {}
            Err(e) => eprintln!("cannot save failures: {e}"),
        }
        total_failed += report.failed;
        let _ = std::io::stdout().flush();
    }
    let _ = std::fs::remove_file(&current);
    std::process::exit(if total_failed > 0 { 1 } else { 0 });
}
