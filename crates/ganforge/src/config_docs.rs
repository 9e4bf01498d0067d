//! What each config key means, for `ganforge config show` and `config keys`: the doc comments
//! on the config structs' fields, read from the source at build time (build.rs), and each
//! key's default from the default config itself. Neither is written twice, so neither can
//! drift from the code; a test fails when a key has no doc comment.

use std::collections::BTreeMap;

use crate::config::GanConfig;

/// A key's entry in the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    /// Dotted path (`train.lr_d`); a section's entry has the section's name (`train`).
    pub key: &'static str,
    /// The field's Rust type without paths: `f64`, `LossKind`, `Vec<String>`.
    pub rust_type: &'static str,
    /// The field's doc comment, its source lines joined by newlines.
    pub doc: &'static str,
    /// A TOML section (a nested struct) rather than a value.
    pub section: bool,
}

/// `(key, rust type, doc, section)` for every field reachable from `GanConfig`, depth first in
/// the order of the source.
const TABLE: &[(&str, &str, &str, bool)] = include!(concat!(env!("OUT_DIR"), "/config_docs.rs"));

/// Every entry: sections and values, in the order of the source.
pub fn all() -> impl Iterator<Item = KeyDoc> {
    TABLE.iter().map(|&(key, rust_type, doc, section)| KeyDoc { key, rust_type, doc, section })
}

/// The entry of `key` (a value or a section).
pub fn find(key: &str) -> Option<KeyDoc> {
    all().find(|d| d.key == key)
}

impl KeyDoc {
    /// The doc's first sentence, on one line: what `config keys` shows. A sentence ends at a
    /// full stop before a capital letter or the end ("et al. 2017" does not end one).
    pub fn summary(&self) -> String {
        let text = self.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        let end = text
            .match_indices(". ")
            .find(|(i, _)| text[i + 2..].starts_with(|c: char| c.is_uppercase()))
            .map_or(text.len(), |(i, _)| i + 1);
        text[..end].to_string()
    }
}

/// Every value of `tree` by dotted key: the reference's keys in its order, then any key it
/// does not know (a key without a doc comment), sorted.
pub fn leaves(tree: &toml::Table) -> Vec<(String, toml::Value)> {
    fn flatten(t: &toml::Table, prefix: &str, out: &mut BTreeMap<String, toml::Value>) {
        for (k, v) in t {
            let key = format!("{prefix}{k}");
            match v {
                toml::Value::Table(sub) => flatten(sub, &format!("{key}."), out),
                other => {
                    out.insert(key, other.clone());
                }
            }
        }
    }
    let mut rest = BTreeMap::new();
    flatten(tree, "", &mut rest);
    let mut out: Vec<(String, toml::Value)> =
        all().filter(|d| !d.section).filter_map(|d| rest.remove_entry(d.key)).collect();
    out.extend(rest);
    out
}

/// A key as `config keys` lists it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub key: String,
    /// The TOML type of its value: string, integer, float, boolean or array.
    pub toml_type: &'static str,
    /// The Rust type of the field ("?" for a key without a doc comment).
    pub rust_type: &'static str,
    pub default: toml::Value,
    /// The full doc comment (empty for a key without one).
    pub doc: &'static str,
    pub summary: String,
}

/// Every value key of the config with its default, in the order of the source.
pub fn keys() -> Vec<KeyInfo> {
    leaves(&GanConfig::default_tree())
        .into_iter()
        .map(|(key, default)| {
            let d = find(&key);
            KeyInfo {
                toml_type: default.type_str(),
                rust_type: d.map_or("?", |d| d.rust_type),
                doc: d.map_or("", |d| d.doc),
                summary: d.map(|d| d.summary()).unwrap_or_default(),
                default,
                key,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PRESETS;

    /// The keys and sections of a serialized config.
    fn paths(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in t {
            out.push(format!("{prefix}{k}"));
            if let toml::Value::Table(sub) = v {
                paths(sub, &format!("{prefix}{k}."), out);
            }
        }
    }

    /// A new config field without a `///` comment fails here (and so CI), for the defaults
    /// and for every preset.
    #[test]
    fn every_key_of_every_preset_is_documented() {
        let mut trees = vec![("defaults".to_string(), GanConfig::default_tree())];
        for p in PRESETS {
            let cfg = GanConfig::resolve(Some(p.name), None, &[]).unwrap();
            trees.push((p.name.to_string(), cfg.to_tree()));
        }
        for (name, tree) in trees {
            let mut all_paths = Vec::new();
            paths(&tree, "", &mut all_paths);
            assert!(all_paths.len() > 60, "{name}: only {} keys", all_paths.len());
            let missing: Vec<&String> = all_paths.iter().filter(|k| find(k).is_none_or(|d| d.doc.trim().is_empty())).collect();
            assert!(missing.is_empty(), "{name}: keys without a doc comment: {missing:?}");
        }
    }

    /// And no entry names a key the config does not have (a renamed serde key, say).
    #[test]
    fn every_entry_is_a_key_of_the_config() {
        let mut all_paths = Vec::new();
        paths(&GanConfig::default_tree(), "", &mut all_paths);
        for d in all() {
            assert!(all_paths.iter().any(|k| k == d.key), "{} is documented but is not a key of the config", d.key);
        }
    }

    #[test]
    fn entries_carry_the_source_text_and_types() {
        let lr = find("train.lr_d").unwrap();
        assert_eq!(lr.doc, "Adam learning rate of D (2e-4 in the DCGAN paper).");
        assert_eq!((lr.rust_type, lr.section), ("f64", false));
        let train = find("train").unwrap();
        assert_eq!((train.rust_type, train.doc, train.section), ("TrainConfig", "Optimization and output schedule.", true));
        assert_eq!(find("data.classes").unwrap().rust_type, "Vec<String>");
        // Multi-line comments keep their lines; the summary is the first sentence on one line.
        let unroll = find("train.unroll").unwrap();
        assert!(unroll.doc.contains('\n'), "{:?}", unroll.doc);
        assert_eq!(
            unroll.summary(),
            "Unrolled GAN (Metz et al. 2016): G's update plays against a copy of D advanced this many extra steps (5 to 10 in the paper), which counters mode collapse; 0 = off."
        );
    }

    #[test]
    fn keys_follow_the_source_order_with_defaults() {
        let k = keys();
        assert_eq!(k[0].key, "preset");
        assert_eq!(k[1].key, "seed");
        assert_eq!(k[2].key, "data.spec");
        let lr = k.iter().find(|i| i.key == "train.lr_g").unwrap();
        assert_eq!((lr.toml_type, lr.default.as_float()), ("float", Some(2e-4)));
        let pos = |key: &str| k.iter().position(|i| i.key == key).unwrap();
        assert!(pos("train.loss") < pos("train.optimizer") && pos("train.optimizer") < pos("eval.every"));
    }
}
