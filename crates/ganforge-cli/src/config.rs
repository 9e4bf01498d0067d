//! `ganforge config show` and `config keys`: the resolved config as TOML with each key's doc
//! comment and default, and the list of every key. The text is the config structs' own doc
//! comments (ganforge::config_docs), so it says what the code does.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use ganforge::config::GanConfig;
use ganforge::config_docs::{self, KeyInfo};

/// Where a config comes from, as `train` and `config show` take it.
#[derive(Args)]
pub struct ConfigSource {
    /// Preset to start from (see `ganforge presets`); default: mnist.
    #[arg(long)]
    pub preset: Option<String>,
    /// TOML config file applied on top of the preset.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config key, e.g. --set train.lr_d=1e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    source: ConfigSource,
}

#[derive(Args)]
pub struct KeysArgs {
    /// One JSON array of {key, type, rust_type, default, summary, doc} objects.
    #[arg(long)]
    json: bool,
}

pub fn show(a: ShowArgs) -> Result<()> {
    let src = &a.source;
    let cfg = GanConfig::resolve(src.preset.as_deref(), src.config.as_deref(), &src.sets)?;
    // The preset alone, to say which values it set.
    let name = src.preset.as_deref().unwrap_or("mnist");
    let preset = GanConfig::resolve(Some(name), None, &[])?;
    print!("{}", annotated(&cfg, &preset, name));
    Ok(())
}

/// The value of `key` in a list of leaves.
fn value_of<'a, V>(leaves: &'a [(String, V)], key: &str) -> Option<&'a V> {
    leaves.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `cfg` as a TOML document: each key after its doc comment, and after its default where its
/// value differs from it (and the preset's value where the preset set one). Values at the top
/// come first, then each section, as TOML requires.
fn annotated(cfg: &GanConfig, preset: &GanConfig, preset_name: &str) -> String {
    let defaults = config_docs::leaves(&GanConfig::default_tree());
    let preset = config_docs::leaves(&preset.to_tree());
    // Each section's keys, in the order of the source; the top level ("") first.
    let mut sections: Vec<(String, Vec<(String, String)>)> = vec![(String::new(), Vec::new())];
    for (key, value) in config_docs::leaves(&cfg.to_tree()) {
        let (section, name) = key.rsplit_once('.').unwrap_or(("", &key));
        let mut text = comment(config_docs::find(&key).map_or("", |d| d.doc));
        let default = value_of(&defaults, &key);
        let by_preset = value_of(&preset, &key).filter(|&p| Some(p) != default);
        match (default.filter(|&d| *d != value), by_preset) {
            (Some(d), Some(p)) => text.push_str(&format!("# default: {d}, preset {preset_name}: {p}\n")),
            (Some(d), None) => text.push_str(&format!("# default: {d}\n")),
            (None, Some(p)) => text.push_str(&format!("# preset {preset_name}: {p}\n")),
            (None, None) => {}
        }
        text.push_str(&format!("{name} = {value}\n"));
        match sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, entries)) => entries.push((key.clone(), text)),
            None => sections.push((section.to_string(), vec![(key.clone(), text)])),
        }
    }
    let mut out = format!("# ganforge config: preset {preset_name}, resolved. `ganforge config keys` lists every key.\n");
    for (section, entries) in sections {
        if !section.is_empty() {
            out.push('\n');
            out.push_str(&comment(config_docs::find(&section).map_or("", |d| d.doc)));
            out.push_str(&format!("[{section}]\n"));
        }
        for (_, text) in entries {
            out.push('\n');
            out.push_str(&text);
        }
    }
    out
}

/// A doc comment as TOML comment lines.
fn comment(doc: &str) -> String {
    doc.lines().map(|l| if l.is_empty() { "#\n".to_string() } else { format!("# {l}\n") }).collect()
}

pub fn keys(a: KeysArgs) -> Result<()> {
    let keys = config_docs::keys();
    if a.json {
        let list: Vec<serde_json::Value> = keys.iter().map(key_json).collect::<Result<_>>()?;
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let rows: Vec<[String; 4]> =
        keys.iter().map(|k| [k.key.clone(), k.toml_type.to_string(), k.default.to_string(), k.summary.clone()]).collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0).max(3), width(1).max(4), width(2).max(7));
    println!("{:w0$}  {:w1$}  {:w2$}  DESCRIPTION", "KEY", "TYPE", "DEFAULT");
    for [key, ty, default, summary] in rows {
        println!("{key:w0$}  {ty:w1$}  {default:w2$}  {summary}");
    }
    Ok(())
}

fn key_json(k: &KeyInfo) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "key": k.key,
        "type": k.toml_type,
        "rust_type": k.rust_type,
        "default": serde_json::to_value(&k.default)?,
        "summary": k.summary,
        "doc": k.doc,
    }))
}
