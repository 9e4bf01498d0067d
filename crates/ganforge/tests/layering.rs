//! The shape of the code, checked so that it stays true:
//! - the top-level modules of `crates/ganforge/src` form layers: each imports (`crate::x`) only
//!   modules below it, so there is no import cycle (unit tests at the bottom of a file, after
//!   `#[cfg(test)]`, may reach anywhere);
//! - nothing that reads a finished run imports `train`: outside `train/` only the CLI's train
//!   command does (a run folder's format lives in `run`);
//! - no function is longer than [`MAX_FN_LINES`] lines, so each reads on a screen or two.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 120;

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The file's text before its unit tests.
fn code_of(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// The top-level modules named after `crate::` in `code`: `crate::a::b`, `crate::{a, b::c}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `ganforge::` or `$crate::` are not this crate's paths.
        if code[..i].ends_with('$') || code[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group's closing brace, past any nested groups.
            let mut level = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    level += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    level == 0
                })
                .map_or(group.len(), |(i, _)| i);
            // Top-level names of a group: the first segment of each comma-separated path, at
            // nesting depth 0.
            let mut depth = 0;
            let mut start = true;
            let mut name = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            out.insert(std::mem::take(&mut name));
                        }
                        start = true;
                    }
                    c if start && depth == 0 && (c.is_alphanumeric() || c == '_') => name.push(c),
                    ':' if depth == 0 => start = false,
                    c if c.is_whitespace() => {}
                    _ => start = false,
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Top-level module of a file under src/: `train/step.rs` -> `train`, `lib.rs` -> None.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs").to_string();
    (first != "lib").then_some(first)
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = crates_dir().join("ganforge/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in rust_files(&src) {
        let Some(m) = module_of(&src, &f) else { continue };
        let text = std::fs::read_to_string(&f).unwrap();
        let refs = crate_refs(code_of(&text));
        graph.entry(m.clone()).or_default().extend(refs.into_iter().filter(|r| *r != m));
    }
    graph
}

/// A cycle of the graph, if there is one, as the path of modules around it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if state.get(m.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(m, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_reference_parser_reads_grouped_and_plain_paths() {
    let refs =
        crate_refs("use crate::{data::{self, Source}, rng::GanRng};\nlet x = crate::metrics::fid(a);\nganforge::train::x; $crate::y");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["data", "metrics", "rng"]);
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g), Some(vec!["a".into(), "b".into(), "a".into()]), "the cycle check can fail");
}

#[test]
fn top_level_modules_form_layers_without_cycles() {
    let graph = import_graph();
    assert!(graph.len() > 20, "found the modules: {:?}", graph.keys());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between top-level modules: {}", cycle.join(" -> "));
    }
}

#[test]
fn only_the_train_command_imports_train() {
    let graph = import_graph();
    let importers: Vec<&String> = graph.iter().filter(|(m, refs)| *m != "train" && refs.contains("train")).map(|(m, _)| m).collect();
    assert!(importers.is_empty(), "modules that import train: {importers:?}; a finished run is read through crate::run");
    let mut outside = Vec::new();
    for krate in ["ganforge-cli/src", "ganforge-serve/src"] {
        for f in rust_files(&crates_dir().join(krate)) {
            let text = std::fs::read_to_string(&f).unwrap();
            let code = code_of(&text);
            // `ganforge::train::x` and `ganforge::{train::x, ...}` alike.
            let grouped =
                code.match_indices("ganforge::{").any(|(i, _)| crate_refs(&format!("crate::{}", &code[i + 10..])).contains("train"));
            if (code.contains("ganforge::train") || grouped) && !f.ends_with("ganforge-cli/src/train.rs") {
                outside.push(f.display().to_string());
            }
        }
    }
    assert!(outside.is_empty(), "files outside the train command that import ganforge::train: {outside:?}");
}

/// Lengths of the functions of a file: (name, first line, lines), counted from the `fn` line to
/// its closing brace (braces in strings and comments are rare enough here to ignore; a `'{'`
/// char literal is skipped).
fn function_lengths(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "async fn ", "pub async fn ", "const fn ", "pub const fn "]
            .iter()
            .any(|p| t.starts_with(p));
        if !is_fn {
            continue;
        }
        let name: String = t.split("fn ").nth(1).unwrap_or("").chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let mut depth = 0i64;
        let mut opened = false;
        for (j, l) in lines.iter().enumerate().skip(i) {
            let l = l.replace("'{'", "").replace("'}'", "");
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened && depth == 0 => break,
                    _ => {}
                }
            }
            if !opened && l.trim_end().ends_with(';') {
                break; // a declaration without a body
            }
            if opened && depth == 0 {
                out.push((name.clone(), i + 1, j - i + 1));
                break;
            }
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_a_screenful_or_two() {
    let text = "fn a() {\n    let x = 1;\n}\nfn b() -> u8 {\n    if true {\n        2\n    } else {\n        3\n    }\n}\n";
    assert_eq!(function_lengths(text), vec![("a".to_string(), 1, 3), ("b".to_string(), 4, 7)]);
    let mut long = Vec::new();
    for krate in ["ganforge/src", "ganforge-cli/src", "ganforge-serve/src"] {
        for f in rust_files(&crates_dir().join(krate)) {
            let text = std::fs::read_to_string(&f).unwrap();
            for (name, line, n) in function_lengths(&text) {
                if n > MAX_FN_LINES {
                    long.push(format!("{}:{line} fn {name}: {n} lines", f.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "functions over {MAX_FN_LINES} lines:\n{}", long.join("\n"));
}
