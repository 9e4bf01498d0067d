//! The `ganforge` binary run as a user runs it, and a tiny trained run, for the CLI's tests.
#![allow(dead_code)] // each test binary uses its own part of this

use std::path::Path;
use std::process::Command;

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `ganforge` with `args`; a panic is a failure whatever the exit status.
pub fn ganforge(args: &[&str]) -> Out {
    ganforge_in(args, &[])
}

/// Runs with extra environment variables.
pub fn ganforge_in(args: &[&str], env: &[(&str, &Path)]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_ganforge")).args(args).envs(env.iter().map(|(k, v)| (k, v))).output().unwrap();
    let out = Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    };
    assert!(!out.stderr.contains("panicked"), "panic in {args:?}: {}", out.stderr);
    out
}

/// Runs and expects success; returns standard output.
pub fn ok(args: &[&str]) -> String {
    let o = ganforge(args);
    assert!(o.ok, "{args:?}: {}", o.stderr);
    o.stdout
}

/// Runs and expects a failure whose single `error:` line contains `needle`.
pub fn fails_with(args: &[&str], needle: &str) {
    let o = ganforge(args);
    assert!(!o.ok, "{args:?} should fail");
    let errors: Vec<&str> = o.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: {}", o.stderr);
    assert!(errors[0].contains(needle), "{args:?}: expected '{needle}' in: {}", errors[0]);
}

/// A 16x16 DCGAN trained for 4 steps under `out`; returns the run folder. `extra` are more
/// `train` arguments (a preset, settings).
pub fn tiny_run(out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--steps", "4"];
    for s in ["model.image_size=16", "dcgan.ngf=8", "dcgan.ndf=8", "train.batch_size=8", "train.grid_images=4"] {
        args.extend(["--set", s]);
    }
    args.extend(["--set", "train.checkpoint_every=2", "--set", "train.sample_every=2", "--set", "eval.every=2", "--set", "eval.n=20"]);
    args.extend(extra);
    ok(&args).lines().last().unwrap().trim().to_string()
}
