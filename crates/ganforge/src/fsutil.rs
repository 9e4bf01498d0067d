//! Crash-safe file writing: a temporary file, fsync, then rename over the target, so that
//! a reader (or a crash) sees either the old file or the new one, never half of one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Flushes a directory entry so that a rename inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Writes `bytes` to a new file and fsyncs it (for files inside a folder that is renamed
/// into place as a whole).
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// ganforge's cache folder: $XDG_CACHE_HOME/ganforge, else ~/.cache/ganforge (downloads go
/// under `data/`, image caches under `images/`).
pub fn cache_home() -> std::path::PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    match (env("XDG_CACHE_HOME"), env("HOME")) {
        (Some(x), _) => x.join("ganforge"),
        (None, Some(h)) => h.join(".cache/ganforge"),
        (None, None) => std::path::PathBuf::from("ganforge-cache"),
    }
}

/// Whether the file at `path` is empty or ends with a newline (only its last byte is read).
pub fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// `~/x` as a path under $HOME: the shell does not expand `~` after `folder:` or in configs.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// A path setting of the config that may be left empty: written as a string ("" for none, as
/// config files always had it), read with `~/` expanded.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct OptionalPath(String);

impl OptionalPath {
    pub fn new(p: impl Into<String>) -> Self {
        Self(p.into())
    }

    /// The path, `~/` expanded; None when empty.
    pub fn get(&self) -> Option<PathBuf> {
        (!self.0.is_empty()).then(|| expand_home(&self.0))
    }
}
