//! `ganforge config show`, `config keys` and `train --dry-run`, run as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

use ganforge::burn::tensor::Device;
use ganforge::config::GanConfig;
use ganforge::config_docs;

/// Runs the binary in `cwd`; returns (success, stdout, stderr).
fn ganforge_at(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_ganforge")).current_dir(cwd).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned());
    assert!(!stderr.contains("panicked"), "panic in {args:?}: {stderr}");
    (status.success(), stdout, stderr)
}

fn sets(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The comment lines right above `line` in `text`.
fn comments_above<'a>(text: &'a str, line: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines.iter().position(|l| *l == line).unwrap_or_else(|| panic!("no line '{line}' in:\n{text}"));
    let first = lines[..i].iter().rposition(|l| !l.starts_with('#')).map_or(0, |j| j + 1);
    lines[first..i].to_vec()
}

#[test]
fn config_show_is_the_resolved_config_with_docs_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["config", "show", "--preset", "wgan", "--set", "train.lr_d=1e-3", "--set", "seed=7"];
    let (ok, out, err) = ganforge_at(dir.path(), &args);
    assert!(ok, "{err}");
    // The output reads back as the very config it shows.
    let back = GanConfig::parse(&out, "config show").unwrap();
    let want = GanConfig::resolve(Some("wgan"), None, &sets(&["train.lr_d=1e-3", "seed=7"])).unwrap();
    assert_eq!(back.to_toml(), want.to_toml());
    // A --set value: its doc (the source's comment), then its default and the preset's value.
    assert_eq!(
        comments_above(&out, "lr_d = 0.001"),
        ["# Adam learning rate of D (2e-4 in the DCGAN paper).", "# default: 0.0002, preset wgan: 0.00005"]
    );
    assert_eq!(comments_above(&out, "seed = 7"), ["# Seed for every random choice: weights, data order, latents, label noise.", "# default: 42"]);
    // A value the preset set says so; a preset's value set back to the default too; an
    // untouched value has no default line.
    assert_eq!(comments_above(&out, "n_critic = 5").last(), Some(&"# default: 1, preset wgan: 5"));
    assert_eq!(comments_above(&out, "beta1 = 0.5").last(), Some(&"# Adam beta1 (0.5 in the DCGAN paper: 0.9 oscillated and was unstable)."));
    assert_eq!(comments_above(&out, "batch_size = 64"), ["# Images per batch (128 in the DCGAN paper; 64 in PyTorch's DCGAN example)."]);
    // Sections carry their own doc; every key has a comment.
    assert_eq!(comments_above(&out, "[train]"), ["# Optimization and output schedule."]);
    for line in out.lines().filter(|l| !l.starts_with('#') && l.contains(" = ")) {
        let above = comments_above(&out, line);
        assert!(!above.is_empty() && !above[0].starts_with("# default"), "no doc above '{line}'");
    }
    let (ok, out, _) = ganforge_at(dir.path(), &["config", "show", "--preset", "wgan", "--set", "train.n_critic=1"]);
    assert!(ok);
    assert_eq!(comments_above(&out, "n_critic = 1").last(), Some(&"# preset wgan: 5"));
    // The defaults alone annotate nothing as changed but what the default preset sets.
    let (ok, out, _) = ganforge_at(dir.path(), &["config", "show"]);
    assert!(ok);
    // mnist: image size, two widths, two rates, steps, sample and checkpoint intervals.
    assert_eq!(out.matches("# default: ").count(), 8, "{out}");
    // Bad input is the error resolve gives.
    let (ok, _, err) = ganforge_at(dir.path(), &["config", "show", "--set", "train.lr=1"]);
    assert!(!ok && err.contains("unknown config key 'train.lr'"), "{err}");
}

#[test]
fn config_keys_lists_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let all = config_docs::keys();
    let (ok, out, err) = ganforge_at(dir.path(), &["config", "keys"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), all.len() + 1);
    assert!(lines[0].starts_with("KEY") && lines[0].contains("DEFAULT"), "{}", lines[0]);
    let lr = lines.iter().find(|l| l.starts_with("train.lr_g ")).unwrap();
    let cols: Vec<&str> = lr.split_whitespace().collect();
    assert_eq!(cols[..4], ["train.lr_g", "float", "0.0002", "Adam"], "{lr}");

    let (ok, out, _) = ganforge_at(dir.path(), &["config", "keys", "--json"]);
    assert!(ok);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), all.len());
    let keys: Vec<&str> = v.iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"data.spec") && keys.contains(&"log.tensorboard"), "{keys:?}");
    let steps = v.iter().find(|k| k["key"] == "train.steps").unwrap();
    assert_eq!(steps["type"], "integer");
    assert_eq!(steps["default"], 5000);
    assert_eq!(steps["rust_type"], "u64");
    assert_eq!(steps["doc"], "Training steps, each one D update and one G update.");
    assert!(v.iter().all(|k| !k["summary"].as_str().unwrap().is_empty()), "a key without a summary");
}

const TINY: &[&str] = &[
    "--set",
    "model.image_size=16",
    "--set",
    "dcgan.ngf=8",
    "--set",
    "dcgan.ndf=8",
    "--set",
    "biggan.ch=8",
    "--set",
    "biggan.attn_res=8",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.steps=1000",
];

/// Trainable parameters counted from the built networks by name: every float tensor but the
/// batch-norm statistics and spectral norm's vectors.
fn counts_by_name(cfg: &GanConfig) -> (usize, usize) {
    let (g, d) = ganforge::nets::build(&cfg.families(), cfg.seed, &Device::flex().autodiff());
    let count = |t: std::collections::BTreeMap<String, ganforge::params::HostTensor>| {
        t.iter().filter(|(k, _)| !(k.ends_with("running_mean") || k.ends_with("running_var") || k.ends_with(".u"))).map(|(_, v)| v.values.len()).sum()
    };
    (count(ganforge::params::named_tensors(&g)), count(ganforge::params::named_tensors(&d)))
}

fn number_after(out: &str, prefix: &str) -> usize {
    let line = out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no '{prefix}' line in:\n{out}"));
    line[prefix.len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn dry_run_shows_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--set", "model.arch=biggan", "--set", "model.classes=10"][..]] {
        let mut args = vec!["train", "--dry-run"];
        args.extend_from_slice(TINY);
        args.extend_from_slice(extra);
        let (ok, out, err) = ganforge_at(dir.path(), &args);
        assert!(ok, "{err}");
        let sets: Vec<String> = TINY.iter().chain(extra).filter(|a| !a.starts_with("--")).map(|s| s.to_string()).collect();
        let cfg = GanConfig::resolve(None, None, &sets).unwrap();
        let (g, d) = counts_by_name(&cfg);
        assert!(g > 1000 && d > 1000, "{g} {d}");
        assert_eq!((number_after(&out, "G: "), number_after(&out, "D: ")), (g, d), "{out}");
        assert!(out.contains("data: MNIST") && out.contains("60000 images, 10 classes, 7500 batches an epoch"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("memory: about ") && l.contains("GiB")), "{out}");
        assert!(out.contains("steps: 1000 (0.13 epochs)"), "{out}");
        let time = out.lines().find(|l| l.starts_with("time: about ")).unwrap_or_else(|| panic!("{out}"));
        assert!(time.contains("for 1000 steps (an estimate: ") && time.contains("3 timed steps after 1 warm-up on cpu"), "{time}");
        // No run folder (the default is ./runs), no image cache, no other file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the dry run wrote into its folder");
    }
}

#[test]
fn dry_run_refuses_what_train_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let out = out.to_str().unwrap();
    for bad in [&["--set", "train.lr=1"][..], &["--set", "model.image_size=48"], &["--set", "model.classes=3"]] {
        let mut train = vec!["train", "--out", out, "--set", "train.batch_size=8", "--steps", "1"];
        train.extend_from_slice(bad);
        let (ok, _, train_err) = ganforge_at(dir.path(), &train);
        assert!(!ok, "{bad:?}");
        train.push("--dry-run");
        let (ok, _, dry_err) = ganforge_at(dir.path(), &train);
        assert!(!ok, "{bad:?}");
        let error = |s: &str| s.lines().filter(|l| l.starts_with("error:")).map(String::from).collect::<Vec<_>>();
        assert_eq!(error(&dry_err), error(&train_err), "{bad:?}");
        assert_eq!(error(&dry_err).len(), 1, "{dry_err}");
    }
}
