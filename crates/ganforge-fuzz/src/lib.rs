//! Fuzzing for every parser of outside bytes in ganforge: IDX, .npy, Quick, Draw! ndjson,
//! MAT v5 (SVHN), CIFAR batches, VOC XML (Stanford Dogs), image decoding and resizing, config
//! TOML and `--set`, safetensors, state.json, .pth, and the server's query strings.
//!
//! Stable Rust only (`cargo fuzz` needs nightly): each target ([`targets`]) runs the real
//! parser entry point on bytes; [`mutate`] makes the bytes from a committed seed corpus
//! (`corpus/<target>/`); [`fuzz`] runs a target for a count or a time and checks the
//! invariants on every input:
//! - no panic (each call under `catch_unwind`; an abort ends the run, see the long mode);
//! - no single allocation above the target's stated bound ([`alloc::Counting`]);
//! - no input slower than a time limit;
//! - a clear error (a non-empty message) or a correct value (the target's own checks).
//!
//! Inputs that parse are added to the pool that later inputs are mutated from (up to
//! [`POOL_CAP`]), so mutation keeps reaching past the first checks of a format.

pub mod alloc;
pub mod mutate;
pub mod targets;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use targets::{Ctx, Target, Verdict, TARGETS};

/// Inputs that parsed kept for mutation, at most: enough variety for splicing, and a pool that
/// stays a few megabytes at [`mutate::MAX_INPUT`] per input.
pub const POOL_CAP: usize = 256;

/// What went wrong with one input.
#[derive(Clone, Debug, PartialEq)]
pub enum FailureKind {
    Panic(String),
    /// The largest single allocation, over the target's bound.
    Alloc {
        bytes: usize,
        bound: usize,
    },
    Slow(Duration),
    /// A wrong value or an empty error message, as the target's checks found it.
    Invariant(String),
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::Panic(m) => write!(f, "panic: {m}"),
            FailureKind::Alloc { bytes, bound } => write!(f, "allocated {} in one piece, over the bound of {}", mib(*bytes), mib(*bound)),
            FailureKind::Slow(d) => write!(f, "took {:.2} s", d.as_secs_f64()),
            FailureKind::Invariant(m) => write!(f, "invariant: {m}"),
        }
    }
}

/// Bytes as MiB (KiB under one MiB), for reports.
pub fn mib(bytes: usize) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub input: Vec<u8>,
}

/// How one input went.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub result: Result<Verdict, FailureKind>,
    pub largest_alloc: usize,
    pub elapsed: Duration,
}

/// The figures of a fuzzing run of one target.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub target: String,
    pub tried: u64,
    /// Inputs the parser took as a value (the rest it refused with an error).
    pub accepted: u64,
    /// Inputs that failed an invariant; the first few are kept in `failures`.
    pub failed: u64,
    pub failures: Vec<Failure>,
    pub largest_alloc: usize,
    pub slowest: Duration,
}

/// How long a run goes.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// This many mutated inputs, after every seed once.
    Inputs(u64),
    /// Until this much time has passed (seeds first).
    Time(Duration),
}

/// Limits for a run.
#[derive(Clone, Debug)]
pub struct Limits {
    /// An input slower than this is a failure.
    pub slow: Duration,
    /// Failures kept with their inputs (more are counted in `tried` only); a parser that fails
    /// on one input usually fails on thousands of its mutations.
    pub keep_failures: usize,
}

thread_local! {
    static IN_HARNESS: Cell<bool> = const { Cell::new(false) };
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic hook that, on the harness's thread, records the message (with its location) for
/// the report instead of printing it; elsewhere it prints as before.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HARNESS.with(|h| h.get()) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-text panic payload".into());
                let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `run` on one input and judges it against `max_alloc` and `limits`.
pub fn run_one(run: impl FnOnce() -> Result<Verdict, String>, max_alloc: usize, limits: &Limits) -> Outcome {
    install_panic_hook();
    IN_HARNESS.with(|h| h.set(true));
    let start = Instant::now();
    let (caught, largest_alloc) = alloc::largest_during(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)));
    let elapsed = start.elapsed();
    IN_HARNESS.with(|h| h.set(false));
    let result = match caught {
        Err(_) => Err(FailureKind::Panic(PANIC_MESSAGE.with(|m| m.borrow_mut().take()).unwrap_or_default())),
        Ok(_) if largest_alloc > max_alloc => Err(FailureKind::Alloc { bytes: largest_alloc, bound: max_alloc }),
        Ok(_) if elapsed > limits.slow => Err(FailureKind::Slow(elapsed)),
        Ok(Err(m)) => Err(FailureKind::Invariant(m)),
        Ok(Ok(v)) => Ok(v),
    };
    Outcome { result, largest_alloc, elapsed }
}

/// The seed corpus of `target` under `dir` (`dir/<target>/*`), sorted by name.
pub fn load_corpus(dir: &Path, target: &str) -> std::io::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(target))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths.iter().filter(|p| p.is_file()).map(std::fs::read).collect()
}

/// The committed seed corpus.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Fuzzes `target` from `seeds`: every seed once, then mutations until `budget` is spent.
/// `before_each` sees every input before it runs (the long mode saves it, so that an abort or
/// a hang leaves the input behind).
pub fn fuzz(
    target: &Target,
    ctx: &mut Ctx,
    seeds: &[Vec<u8>],
    budget: Budget,
    rng_seed: u64,
    limits: &Limits,
    mut before_each: impl FnMut(&[u8]),
) -> Report {
    let mut report = Report { target: target.name.to_string(), ..Report::default() };
    let mut rng = mutate::Rng::new(rng_seed);
    let dict = (target.dict)();
    let mut pool: Vec<Vec<u8>> = seeds.to_vec();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let start = Instant::now();
    let mut mutated = 0u64;
    for k in 0.. {
        let input = if k < seeds.len() {
            seeds[k].clone()
        } else {
            let done = match budget {
                Budget::Inputs(n) => mutated >= n,
                Budget::Time(d) => start.elapsed() >= d,
            };
            if done {
                break;
            }
            mutated += 1;
            let base = rng.below(pool.len());
            mutate::mutate(&mut rng, &pool[base], &pool, &dict, target.text)
        };
        before_each(&input);
        let outcome = run_one(|| (target.run)(ctx, &input), target.max_alloc, limits);
        report.tried += 1;
        report.largest_alloc = report.largest_alloc.max(outcome.largest_alloc);
        report.slowest = report.slowest.max(outcome.elapsed);
        match outcome.result {
            Ok(Verdict::Value) => {
                report.accepted += 1;
                if k >= seeds.len() && pool.len() < POOL_CAP + seeds.len() {
                    pool.push(input);
                }
            }
            Ok(Verdict::Refused) => {}
            Err(kind) => {
                report.failed += 1;
                if report.failures.len() < limits.keep_failures {
                    report.failures.push(Failure { kind, input });
                }
            }
        }
    }
    report
}

/// Writes each failure's input to `dir/<target>-<n>.bin` and its finding to a `.txt` beside it.
pub fn save_failures(report: &Report, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (i, f) in report.failures.iter().enumerate() {
        let p = dir.join(format!("{}-{i}.bin", report.target));
        std::fs::write(&p, &f.input)?;
        std::fs::write(p.with_extension("txt"), format!("{}\n", f.kind))?;
        out.push(p);
    }
    Ok(out)
}
