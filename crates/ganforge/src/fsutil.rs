//! Crash-safe file writing: a temporary file, fsync, then rename over the target, so that
//! a reader (or a crash) sees either the old file or the new one, never half of one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Flushes a directory entry so that a rename inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The folder `path` is in ("." for a bare name).
fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The temporary that stands for `path` while it is written: hidden, beside it (so the rename
/// stays on one file system), named for the writing process.
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    parent_dir(path).join(format!(".{name}{ATOMIC_TMP}{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let tmp = temporary(path);
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // A full disk must not stay full of the half-written temporary.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// A file too large to hold in memory, written atomically in pieces: under a temporary name
/// until `commit` syncs it and renames it over `path`. Dropped uncommitted (an error on the
/// way), the temporary is removed, so no half-written file is left behind.
pub struct AtomicFile {
    file: Option<std::io::BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let tmp = temporary(path);
        let file = File::create(&tmp)?;
        Ok(Self { file: Some(std::io::BufWriter::new(file)), tmp, path: path.to_path_buf() })
    }

    fn file(&mut self) -> &mut std::io::BufWriter<File> {
        self.file.as_mut().expect("open until commit")
    }

    /// Flushes and syncs the file, renames it into place and syncs its folder.
    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.take().expect("open until commit").into_inner().map_err(|e| e.into_error())?;
        let done = file.sync_all().and_then(|()| std::fs::rename(&self.tmp, &self.path));
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        done?;
        sync_dir(parent_dir(&self.path))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file().flush()
    }
}

impl std::io::Seek for AtomicFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.file().seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a zip of `files` (name, bytes) to `path` atomically. Every entry is stored, not
/// deflated (PNG and float tensors gain next to nothing), dated 1980-01-01, the zip epoch (the
/// same files make the same bytes), with its data starting at a multiple of `align` bytes in
/// the file (1: packed).
pub fn write_zip(path: &Path, files: impl Iterator<Item = (String, Vec<u8>)>, align: u16) -> std::io::Result<()> {
    let mut zip = zip::ZipWriter::new(AtomicFile::create(path)?);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .with_alignment(align);
    for (name, data) in files {
        zip.start_file(name, options).map_err(std::io::Error::other)?;
        zip.write_all(&data)?;
    }
    zip.finish().map_err(std::io::Error::other)?.commit()
}

/// What `write_atomic` puts between a file's name and the writing process's id in the name of
/// its temporary (`.config.toml.tmp-1234`).
pub const ATOMIC_TMP: &str = ".tmp-";

/// Removes the temporaries that a process killed while writing (or out of disk) left in `dir`:
/// hidden entries whose name holds ".tmp-" (files of `write_atomic`, checkpoint folders).
/// Returns how many it removed.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with('.') && name.contains(ATOMIC_TMP)) {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
        removed += 1;
    }
    Ok(removed)
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
