//! Crash safety, tested with real SIGKILLs: `ganforge train` is killed at several moments
//! (some land while a checkpoint is being written, some between steps), resumed each time,
//! and finally finishes. Every checkpoint left behind must be whole, metrics.jsonl must hold
//! each step once and in order, and the finished run must equal, bit for bit, the same run
//! trained without interruption.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ganforge::params::read_safetensors;
use ganforge::run::{MetricsLog, RunDir};

/// A tiny DCGAN with a checkpoint every 5 steps, so that a kill often lands inside one.
const CONFIG: &[&str] = &[
    "model.image_size=16",
    "dcgan.ngf=8",
    "dcgan.ndf=8",
    "train.batch_size=8",
    "train.grid_images=4",
    "train.log_every=5",
    "train.checkpoint_every=5",
    "train.sample_every=50",
    "train.keep_checkpoints=2",
    // The live doctor remembers the trace of its own session only; its findings are not part
    // of what must match across sessions.
    "eval.doctor=false",
];
const STEPS: &str = "300";

fn command(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ganforge"));
    c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn new_run_args(out: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["train", "--out", out.to_str().unwrap(), "--steps", STEPS].iter().map(|s| s.to_string()).collect();
    for s in CONFIG {
        a.extend(["--set".to_string(), s.to_string()]);
    }
    a
}

fn resume_args(run: &Path) -> Vec<String> {
    ["train", "--resume", run.to_str().unwrap(), "--steps", STEPS].iter().map(|s| s.to_string()).collect()
}

fn run_to_end(args: &[String]) -> PathBuf {
    let o = command(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{args:?}: {stderr}");
    PathBuf::from(String::from_utf8_lossy(&o.stdout).lines().last().unwrap().trim())
}

/// Starts `args` and kills it with SIGKILL after `after`; true if it was still running.
fn kill_after(args: &[String], after: Duration) -> bool {
    let mut child = command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix: no handler runs, nothing is flushed
    child.wait().unwrap();
    true
}

/// Every checkpoint folder is complete: its files parse, and its state names its own step.
fn assert_checkpoints_whole(run: &Path) {
    for dir in RunDir::open(run).unwrap().checkpoints().unwrap() {
        for f in ["g.safetensors", "d.safetensors", "optim_g.safetensors", "optim_d.safetensors"] {
            read_safetensors(&dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let state = ganforge::run::checkpoint::read_state(&dir).unwrap();
        assert!(dir.ends_with(ganforge::run::step_name(state.step)), "{}", dir.display());
    }
}

fn untimed_steps(run: &Path) -> Vec<(u64, f32, f32, f32, f32)> {
    let log = MetricsLog::read(&run.join("metrics.jsonl")).unwrap();
    log.steps.iter().map(|r| (r.step, r.loss_d, r.loss_g, r.d_real, r.d_fake)).collect()
}

#[test]
fn sigkill_at_any_moment_loses_nothing_and_resume_is_exact() {
    let out = tempfile::tempdir().unwrap();
    let whole = run_to_end(&new_run_args(&out.path().join("whole")));
    let total_time = {
        let t = Instant::now();
        run_to_end(&new_run_args(&out.path().join("timing")));
        t.elapsed()
    };

    // The first session is killed early; later ones are killed at spread fractions of a full
    // run's time, each resuming where the last checkpoint left it.
    let crashed_out = out.path().join("crashed");
    let first = new_run_args(&crashed_out);
    let mut killed = 0;
    // Kill before the first checkpoint can exist too (a run with nothing to resume from).
    if kill_after(&first, Duration::from_millis(1)) {
        killed += 1;
    }
    let run = match std::fs::read_dir(&crashed_out).ok().and_then(|mut d| d.next()) {
        Some(e) => e.unwrap().path(),
        None => {
            // Killed before even its folder existed: start again.
            assert!(kill_after(&first, total_time / 4), "the run ended before a quarter of its time");
            killed += 1;
            std::fs::read_dir(&crashed_out).unwrap().next().unwrap().unwrap().path()
        }
    };
    let mut finished = false;
    for fraction in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] {
        assert_checkpoints_whole(&run);
        if !kill_after(&resume_args(&run), total_time.mul_f64(fraction)) {
            finished = true; // what was left took less than this session's time
            break;
        }
        killed += 1;
    }
    assert!(killed >= 4, "only {killed} sessions were killed before finishing: the run is too short to test");
    assert_checkpoints_whole(&run);
    if !finished {
        run_to_end(&resume_args(&run));
        assert_checkpoints_whole(&run);
    }

    let steps: Vec<u64> = untimed_steps(&run).iter().map(|s| s.0).collect();
    assert_eq!(steps, (1..=60).map(|i| i * 5).collect::<Vec<_>>(), "each logged step once, in order");
    assert_eq!(untimed_steps(&run), untimed_steps(&whole), "the same losses as the uninterrupted run");
    let last = |r: &Path| RunDir::open(r).unwrap().latest_checkpoint().unwrap();
    for f in ["g.safetensors", "d.safetensors", "optim_g.safetensors", "optim_d.safetensors"] {
        assert_eq!(read_safetensors(&last(&run).join(f)).unwrap(), read_safetensors(&last(&whole).join(f)).unwrap(), "{f}");
    }
    let leftovers: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("step_"))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left behind: {leftovers:?}");
}
