//! What scripts read: `--json` documents of `presets`, `data fetch --list` and `data inspect`,
//! and the shell completion scripts.

mod common;

use common::{fails_with, ok};

fn json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} is not one JSON document ({e}): {out}"))
}

#[test]
fn presets_as_json() {
    let list = json(&["presets", "--json"]);
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"mnist") && names.contains(&"mnist64") && names.contains(&"biggan"), "{names:?}");
    assert!(list.iter().all(|p| !p["about"].as_str().unwrap().is_empty()));
    let mnist = list.iter().find(|p| p["name"] == "mnist").unwrap();
    assert_eq!((mnist["settings"]["model.image_size"].as_str(), mnist["settings"]["train.steps"].as_str()), (Some("32"), Some("2000")), "{mnist}");
}

#[test]
fn fetchable_datasets_as_json() {
    let list = json(&["data", "fetch", "--list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 5 + 345);
    let sheep = list.iter().find(|d| d["name"] == "quickdraw/sheep").unwrap();
    assert_eq!((sheep["bytes"].as_u64(), sheep["files"][0].as_str()), (Some(98878944), Some("sheep.npy")), "{sheep}");
    let mnist = list.iter().find(|d| d["name"] == "mnist").unwrap();
    assert_eq!(mnist["files"].as_array().unwrap().len(), 4, "{mnist}");
    let o = common::ganforge(&["data", "fetch", "mnist", "--json"]);
    assert!(!o.ok && o.stderr.contains("required arguments were not provided:\n  --list"), "{}", o.stderr);
}

#[test]
fn data_inspect_as_json() {
    let r = json(&["data", "inspect", "mnist", "--size", "28", "--sample", "500", "--json"]);
    assert_eq!((r["images"].as_u64(), r["sampled"].as_u64(), r["size"].as_u64()), (Some(60000), Some(500), Some(28)), "{r}");
    assert_eq!((r["min_size"][0].as_u64(), r["max_size"][1].as_u64()), (Some(28), Some(28)));
    let mean = r["mean"][0].as_f64().unwrap();
    assert!((mean - 0.1307).abs() < 0.02, "MNIST's mean is about 0.1307: {mean}");
    let classes = r["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 10);
    assert_eq!((classes[0]["label"].as_u64(), classes[0]["count"].as_u64()), (Some(0), Some(5923)), "counts of all 60000: {r}");
    assert!(r["preview"].is_null());
}

#[test]
fn completion_scripts_name_the_subcommands() {
    let bash = ok(&["completions", "bash"]);
    for word in ["ganforge", "train", "sample", "serve", "data", "inspect", "fetch", "completions", "--seeds", "--interpolate"] {
        assert!(bash.contains(word), "the bash script lacks {word}");
    }
    for shell in ["zsh", "fish"] {
        let script = ok(&["completions", shell]);
        assert!(script.contains("sample") && script.contains("seeds"), "{shell}: {script}");
    }
    fails_with(&["completions", "tcsh"], "invalid value 'tcsh'");
}
