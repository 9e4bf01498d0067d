//! Model files that travel: a checkpoint's generator file carries what rebuilds it, so
//! `sample --model FILE` works without the run folder, and `export --format hf` writes a folder
//! ready for the Hugging Face hub.

use std::path::Path;

mod common;

fn ganforge(args: &[&str]) -> (bool, String, String) {
    let o = common::ganforge(args);
    (o.ok, o.stdout, o.stderr)
}

use common::ok;

fn tiny_run(out: &Path) -> String {
    common::tiny_run(out, &[])
}

#[test]
fn a_generator_file_samples_alone_and_exports_for_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(&dir.path().join("runs"));
    let g = format!("{run}/checkpoints/step_000004/g.safetensors");
    let by_run = dir.path().join("by_run.png");
    ok(&["sample", "--run", &run, "--checkpoint", &g, "--n", "9", "--grid", "--seed", "3", "--out", by_run.to_str().unwrap()]);

    // The file alone, in a folder of its own.
    let alone = dir.path().join("elsewhere/g.safetensors");
    std::fs::create_dir_all(alone.parent().unwrap()).unwrap();
    std::fs::copy(&g, &alone).unwrap();
    let by_file = dir.path().join("by_file.png");
    ok(&["sample", "--model", alone.to_str().unwrap(), "--n", "9", "--grid", "--seed", "3", "--out", by_file.to_str().unwrap()]);
    assert_eq!(std::fs::read(&by_run).unwrap(), std::fs::read(&by_file).unwrap(), "the same images");

    // The hub folder.
    let hf = dir.path().join("hf");
    ok(&["export", "--run", &run, "--format", "hf", "--license", "mit", "--out", hf.to_str().unwrap()]);
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["arch"].as_str(), config["image_size"].as_u64(), config["step"].as_u64()), (Some("dcgan"), Some(16), Some(4)));
    assert_eq!(config["config"]["dcgan"]["ngf"], 8);
    let card = std::fs::read_to_string(hf.join("README.md")).unwrap();
    assert!(card.starts_with("---\nlicense: mit\nlibrary_name: ganforge\n"), "{card}");
    assert!(card.contains("for 4 steps on `mnist`") && card.contains("![samples](sample.png)"), "{card}");
    assert!(card.contains("| coverage | ") && card.contains("| fid | "), "the latest evaluation: {card}");
    assert!(card.contains("ganforge sample --model model.safetensors"), "{card}");
    assert_eq!(std::fs::read(hf.join("sample.png")).unwrap(), std::fs::read(format!("{run}/samples/step_000004.png")).unwrap());
    let from_hub = dir.path().join("from_hub.png");
    ok(&[
        "sample",
        "--model",
        hf.join("model.safetensors").to_str().unwrap(),
        "--n",
        "9",
        "--grid",
        "--seed",
        "3",
        "--out",
        from_hub.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&by_run).unwrap(), std::fs::read(&from_hub).unwrap());

    // A generator file of an earlier version carries no config: refused with what to do.
    let old =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ganforge/tests/fixtures/old_run_c47ce6c/checkpoints/step_000004/g.safetensors");
    let (success, _, err) =
        ganforge(&["sample", "--model", old.to_str().unwrap(), "--n", "2", "--out", dir.path().join("x").to_str().unwrap()]);
    assert!(!success && err.contains("carries no ganforge config") && err.contains("--run RUN_DIR --checkpoint"), "{err}");
    let (success, _, err) = ganforge(&["export", "--run", &run, "--format", "hf", "--net", "d", "--out", hf.to_str().unwrap()]);
    assert!(!success && err.contains("leave out --net d"), "{err}");
}
