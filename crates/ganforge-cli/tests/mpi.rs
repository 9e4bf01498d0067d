//! `mpirun -np 2 ganforge ...` against one process (feature `mpi`; .ci/run installs Open MPI
//! and runs this with `--features ganforge-cli/mpi`). Two ranks on this machine, oversubscribed
//! when it has fewer cores.
#![cfg(feature = "mpi")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::ok;
use ganforge::params::{read_safetensors, HostTensor};

/// Runs `mpirun -np 2 ganforge ARGS` and returns rank 0's standard output.
fn mpirun(args: &[&str]) -> String {
    let (ok, stdout, stderr) = mpirun_status(args);
    assert!(ok && !stderr.contains("panicked"), "mpirun {args:?}: {stderr}");
    stdout
}

/// Success, standard output and standard error of `mpirun -np 2 ganforge ARGS`.
fn mpirun_status(args: &[&str]) -> (bool, String, String) {
    let o = Command::new("mpirun")
        .args(["--oversubscribe", "-np", "2", env!("CARGO_BIN_EXE_ganforge")])
        .args(args)
        // CI runs as root, which Open MPI refuses unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun (Open MPI's openmpi-bin) on the PATH");
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `train` arguments of a tiny fully connected GAN (no batch norm), 6 steps.
fn train_args(out: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--out", out.to_str().unwrap(), "--steps", "6"].iter().map(|s| s.to_string()).collect();
    for s in [
        "model.arch=\"fc\"",
        "model.image_size=16",
        "fc.hidden=16",
        "train.batch_size=8",
        "train.grid_images=4",
        "train.checkpoint_every=3",
        "train.lr_g=0.01",
        "train.lr_d=0.01",
        "tricks.soft_labels=true",
        "train.diffaugment=\"color,translation\"",
        "train.g_ema=0.9",
    ] {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    args
}

fn tensors(ckpt: &Path) -> BTreeMap<String, HostTensor> {
    let mut out = BTreeMap::new();
    for f in ["g", "d", "g_ema", "optim_g", "optim_d"] {
        out.extend(read_safetensors(&ckpt.join(format!("{f}.safetensors"))).unwrap().into_iter().map(|(k, v)| (format!("{f}/{k}"), v)));
    }
    out
}

/// Two MPI ranks train the run one process trains (to float-summation differences), and
/// rank 0 alone writes it; `sample --seeds` and `eval` split over the ranks give one
/// process's files and numbers.
#[test]
fn two_mpi_ranks_do_what_one_process_does() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = |out: &Path| train_args(out);
    let single = ok(&args(one.path()).iter().map(String::as_str).collect::<Vec<_>>()).lines().last().unwrap().trim().to_string();
    let stdout = mpirun(&args(two.path()).iter().map(String::as_str).collect::<Vec<_>>());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "rank 0 alone prints the run folder: {stdout}");
    let split = lines[0].trim().to_string();
    assert_eq!(std::fs::read_dir(two.path()).unwrap().count(), 1, "one run folder");

    let ckpt = |run: &str| Path::new(run).join("checkpoints").join("step_000006");
    let (a, b) = (tensors(&ckpt(&single)), tensors(&ckpt(&split)));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let diff = a.iter().flat_map(|(k, t)| t.values.iter().zip(&b[k].values).map(|(x, y)| (x - y).abs())).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "two MPI ranks differ from one process by {diff}");

    // Sampling: files per seed and one .npz, byte for byte.
    let s = tempfile::tempdir().unwrap();
    let (d1, d2) = (s.path().join("one"), s.path().join("two"));
    ok(&["sample", "--run", &single, "--seeds", "0-20", "--batch-size", "4", "--out", d1.to_str().unwrap()]);
    mpirun(&["sample", "--run", &single, "--seeds", "0-20", "--batch-size", "4", "--out", d2.to_str().unwrap()]);
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&d1).len(), 21);
    assert_eq!(names(&d1), names(&d2));
    for n in names(&d1) {
        assert_eq!(std::fs::read(d1.join(&n)).unwrap(), std::fs::read(d2.join(&n)).unwrap(), "{n}");
    }
    let (z1, z2) = (s.path().join("one.npz"), s.path().join("two.npz"));
    ok(&["sample", "--run", &single, "--seeds", "0-20", "--batch-size", "4", "--format", "npz", "--out", z1.to_str().unwrap()]);
    mpirun(&["sample", "--run", &single, "--seeds", "0-20", "--batch-size", "4", "--format", "npz", "--out", z2.to_str().unwrap()]);
    assert_eq!(std::fs::read(&z1).unwrap(), std::fs::read(&z2).unwrap());

    // Evaluation: the same report.
    let eval = ["eval", "--run", &single, "--metrics", "fid,kid,coverage", "--features", "lenet", "--n", "301", "--no-cache"];
    let metrics = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap()["metrics"].clone();
    let (e1, e2) = (ok(&eval), mpirun(&eval));
    assert_eq!(metrics(&e1), metrics(&e2));

    // A command that does not split its work is refused rather than run twice; an error on the
    // ranks ends the job with its message.
    let (ok2, _, stderr) = mpirun_status(&["fid", &single, "mnist-test", "--features", "lenet"]);
    assert!(!ok2 && stderr.contains("only train, sample and eval split their work over ranks"), "{stderr}");
    let mut bad = args(two.path());
    bad.extend(["--set".to_string(), "train.batch_size=7".to_string()]);
    let (ok3, _, stderr) = mpirun_status(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok3 && stderr.contains("error on rank 0: train.batch_size = 7 does not split over 2 ranks"), "{stderr}");
}
