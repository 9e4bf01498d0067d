//! `ganforge presets`: the presets and what each is for.

use anyhow::Result;
use clap::Args;

use ganforge::config::PRESETS;

#[derive(Args)]
pub struct PresetsArgs {
    /// Print one JSON document instead of the list, for scripts: each preset's name, what it is
    /// for, and the settings it changes from the defaults.
    #[arg(long)]
    json: bool,
}

/// One preset in `presets --json`.
#[derive(serde::Serialize)]
struct PresetJson {
    name: &'static str,
    about: &'static str,
    /// The config settings it changes: key to TOML value (`"train.steps": "20000"`).
    settings: std::collections::BTreeMap<&'static str, &'static str>,
}

pub fn run(a: PresetsArgs) -> Result<()> {
    if a.json {
        let list: Vec<PresetJson> =
            PRESETS.iter().map(|p| PresetJson { name: p.name, about: p.about, settings: p.settings().into_iter().collect() }).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for p in PRESETS {
            println!("{:10} {}", p.name, p.about);
        }
    }
    Ok(())
}
