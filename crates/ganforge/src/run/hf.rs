//! A run's generator as a folder ready to upload to the Hugging Face hub: `model.safetensors`
//! (G, or its moving average, with the config that rebuilds it in the metadata),
//! `config.json` (the same, for people and the hub's widgets), `sample.png` (the latest sample
//! grid) and `README.md`, a model card: data, steps, training time, evaluation results, a
//! licence field and how to sample.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{checkpoint, model_metadata, RunDir, RunError};
use crate::params::{read_safetensors, safetensors_bytes_with};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.to_path_buf(), source }
}

/// Writes the hub folder `out` for `run`'s latest checkpoint (or `checkpoint`), under the
/// licence identifier `license` (the hub's names: "mit", "apache-2.0", "cc-by-4.0", "other").
pub fn export(run: &RunDir, checkpoint: Option<&Path>, out: &Path, license: &str) -> Result<Vec<PathBuf>, RunError> {
    let cfg = public_config(run.config()?);
    let dir = match checkpoint {
        // A weight file names the checkpoint folder it is in.
        Some(f) if f.is_file() => f.parent().map(Path::to_path_buf).ok_or_else(|| RunError::BadCheckpoint(f.to_path_buf()))?,
        Some(d) => d.to_path_buf(),
        None => run.latest_checkpoint()?,
    };
    let state = checkpoint::read_state(&dir)?;
    let (file, averaged) = match dir.join("g_ema.safetensors") {
        p if p.is_file() => (p, true),
        _ => (dir.join("g.safetensors"), false),
    };
    let tensors = read_safetensors(&file).map_err(checkpoint::CheckpointError::from)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut written = Vec::new();
    let mut write = |name: &str, bytes: &[u8]| -> Result<(), RunError> {
        let p = out.join(name);
        crate::fsutil::write_atomic(&p, bytes).map_err(io(&p))?;
        written.push(p);
        Ok(())
    };
    write("model.safetensors", &safetensors_bytes_with(&tensors, &model_metadata(&cfg.to_toml(), state.step)))?;

    let m = &cfg.model;
    let config = json!({
        "library_name": "ganforge",
        "ganforge_version": env!("CARGO_PKG_VERSION"),
        "arch": format!("{:?}", m.arch).to_lowercase(),
        "image_size": m.image_size,
        "channels": m.channels,
        "nz": m.nz,
        "classes": m.classes,
        "class_names": cfg.data.classes,
        "step": state.step,
        "moving_average": averaged,
        "data": cfg.data.spec,
        "preset": cfg.preset,
        "config": serde_json::to_value(&cfg).expect("config serializes"),
    });
    write("config.json", (serde_json::to_string_pretty(&config).expect("json") + "\n").as_bytes())?;

    // The grid of the exported step (a grid of another step would show another generator).
    let grid = run.samples_dir().join(format!("{}.png", super::step_name(state.step)));
    let has_grid = grid.is_file();
    if has_grid {
        write("sample.png", &std::fs::read(&grid).map_err(io(&grid))?)?;
    }
    let card = model_card(run, &cfg, &state, averaged, license, has_grid);
    write("README.md", card.as_bytes())?;
    Ok(written)
}

/// The config as it may be published: local paths (caches, weight files, the data's folder)
/// left out.
fn public_config(mut cfg: crate::config::GanConfig) -> crate::config::GanConfig {
    use crate::fsutil::OptionalPath;
    (cfg.data.cache_dir, cfg.eval.inception, cfg.eval.classifier) =
        (OptionalPath::default(), OptionalPath::default(), OptionalPath::default());
    if let Some((kind, path)) = cfg.data.spec.split_once(':') {
        let name = Path::new(path.trim_end_matches('/')).file_name().and_then(|n| n.to_str()).unwrap_or("data").to_string();
        cfg.data.spec = format!("{kind}:{name}");
    }
    cfg
}

/// The README of the hub folder.
fn model_card(
    run: &RunDir,
    cfg: &crate::config::GanConfig,
    state: &checkpoint::TrainState,
    averaged: bool,
    license: &str,
    grid: bool,
) -> String {
    let log = run.log().unwrap_or_default();
    let (m, step) = (&cfg.model, state.step);
    let arch = format!("{:?}", m.arch).to_lowercase();
    let kind = if m.classes > 0 { "class-conditional-image-generation" } else { "unconditional-image-generation" };
    let mut card =
        format!("---\nlicense: {license}\nlibrary_name: ganforge\ntags:\n- gan\n- image-generation\n- {kind}\n- {arch}\n---\n\n");
    card += &format!("# {} ({arch}, {}x{}, trained with ganforge)\n\n", run_title(run), m.image_size, m.image_size);
    card += &format!(
        "A {arch} generator of {}x{} {} images from {}-d latents{}, trained by ganforge {} for {step} steps on `{}`{}.\n\n",
        m.image_size,
        m.image_size,
        if m.channels == 1 { "grey" } else { "RGB" },
        m.nz,
        if m.classes > 0 { format!(", conditioned on {} classes ({})", m.classes, cfg.data.classes.join(", ")) } else { String::new() },
        env!("CARGO_PKG_VERSION"),
        cfg.data.spec,
        format!(" in {:.0} s of training", state.elapsed_s),
    );
    if averaged {
        card += "The weights are the exponential moving average of G's (`train.g_ema`).\n\n";
    }
    if grid {
        card += "![samples](sample.png)\n\n";
    }
    card += "## Evaluation\n\n";
    // The latest evaluation of the exported generator's step or before.
    match log.evals.iter().rev().find(|(s, _)| *s <= step) {
        Some((s, e)) => {
            card += &format!(
                "At step {s}, {} generated against {} real images, features: {}.\n\n| metric | value |\n|---|---|\n",
                e.n_fake, e.n_real, e.features
            );
            for (metric, v) in &e.metrics.0 {
                card += &format!("| {metric} | {v} |\n");
            }
            card += "\n";
        }
        None => card += "No evaluation was logged during training (`eval.every`); `ganforge eval` measures one.\n\n",
    }
    card += "## How to sample\n\nWith the `ganforge` program (`cargo build --release -p ganforge-cli` in its repository):\n\n```sh\n";
    card += "ganforge sample --model model.safetensors --n 64 --grid --out grid.png\n";
    if m.classes > 0 {
        card += "ganforge sample --model model.safetensors --per-class 8 --out classes.png\n";
    }
    card += "ganforge serve --model model.safetensors    # a page that makes a new image on every click\n```\n\n";
    card += "`model.safetensors` is a plain safetensors file: its metadata key `ganforge.config` holds the resolved config (TOML) that rebuilds the generator, `ganforge.step` the training step.\n\n";
    card += &format!(
        "## Licence\n\n`{license}`. The model was trained on `{}`: check that data's own terms before using what it makes.\n",
        cfg.data.spec
    );
    card
}

fn run_title(run: &RunDir) -> String {
    run.path.file_name().and_then(|n| n.to_str()).unwrap_or("ganforge model").to_string()
}
