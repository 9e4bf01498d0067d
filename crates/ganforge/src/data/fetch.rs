//! `ganforge data fetch NAME`: downloads a dataset from its publisher into a cache folder,
//! resumably and checked against a SHA-256 kept here, then unpacks it. A bare `--data NAME`
//! then finds it there.
//!
//! The checksums are TensorFlow Datasets' (tensorflow_datasets/url_checksums, which records
//! each publisher file's size and SHA-256); a file that differs by one byte is refused.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// One file as its publisher serves it.
#[derive(Clone, Debug)]
pub struct RemoteFile {
    /// Name on disk (the last part of the URL, unescaped).
    pub name: String,
    pub url: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// A downloadable dataset and the spec that opens it once unpacked.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub files: Vec<RemoteFile>,
    /// The data kind (`svhn`, `cifar10`, ...) and the path under the dataset's folder it opens.
    pub kind: &'static str,
    pub entry: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unknown dataset '{name}'; fetchable: {}", valid.join(", "))]
    UnknownDataset { name: String, valid: Vec<String> },
    #[error("unknown Quick, Draw! category '{0}'; `ganforge data fetch --list` shows all 345")]
    UnknownCategory(String),
    #[error("dataset '{name}' is not downloaded yet (looked in {}); run `ganforge data fetch {name}`", dir.display())]
    NotFetched { name: String, dir: PathBuf },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("another `ganforge data fetch` is downloading into {}; wait for it to finish", dir.display())]
    Busy { dir: PathBuf },
    #[error("{url}: the server sends {got} bytes for {file}, but the published file has {expected}")]
    Size { url: String, file: String, expected: u64, got: u64 },
    #[error("download of {file} stopped at {got} of {size} bytes ({message}); run the same command again to resume")]
    Cut { file: String, got: u64, size: u64, message: String },
    #[error("{file}: SHA-256 is {got} but the published file's is {expected}; the download was deleted, so the next try starts over")]
    Checksum { file: String, expected: String, got: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot unpack {path}: {message}")]
    Unpack { path: PathBuf, message: String },
}

/// What a fetch is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum FetchEvent {
    /// Downloading `file` of `size` bytes, starting at byte `from` (above 0 when resuming).
    Start {
        file: String,
        size: u64,
        from: u64,
    },
    Bytes {
        done: u64,
    },
    /// The connection broke; trying again from where it stopped.
    Retry {
        file: String,
        attempt: u32,
        message: String,
    },
    Verified {
        file: String,
    },
    Unpacking {
        file: String,
    },
    AlreadyThere {
        dir: PathBuf,
    },
}

#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Serve every file from here instead of the publisher: MIRROR/FILE_NAME.
    pub mirror: Option<String>,
    /// Automatic resumes in a row that get no further, within one command (a resume that made
    /// progress does not count); 0 never resumes automatically.
    pub retries: u32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self { mirror: None, retries: 3 }
    }
}

/// Folder that fetched datasets go to: $GANFORGE_DATA, else $XDG_CACHE_HOME/ganforge/data,
/// else ~/.cache/ganforge/data.
pub fn default_root() -> PathBuf {
    match std::env::var_os("GANFORGE_DATA").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => crate::fsutil::cache_home().join("data"),
    }
}

const QUICKDRAW: &str = include_str!("quickdraw_bitmap_sha256.txt");

fn file(base: &str, name: &str, size: u64, sha256: &str) -> RemoteFile {
    RemoteFile { name: name.into(), url: format!("{base}{name}"), size, sha256: sha256.into() }
}

/// The datasets with a fixed name; `quickdraw/CATEGORY` adds one per Quick, Draw! category.
pub const DATASETS: [&str; 5] = ["mnist", "svhn", "svhn-extra", "cifar10", "stanford-dogs"];

/// Names accepted by `find`, with `quickdraw/CATEGORY` standing for 345 of them.
pub fn names() -> Vec<String> {
    DATASETS.iter().chain(&["quickdraw/CATEGORY"]).map(|s| s.to_string()).collect()
}

/// Quick, Draw! categories with the size of their numpy_bitmap file.
pub fn quickdraw_categories() -> Vec<(String, u64)> {
    quickdraw_rows().map(|(c, s, _)| (c.to_string(), s)).collect()
}

fn quickdraw_rows() -> impl Iterator<Item = (&'static str, u64, &'static str)> {
    QUICKDRAW.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).filter_map(|l| {
        let mut f = l.split('\t');
        let (c, s, h) = (f.next()?, f.next()?, f.next()?);
        Some((c, s.parse().ok()?, h))
    })
}

/// The catalog entry for `name`.
pub fn find(name: &str) -> Result<Dataset, FetchError> {
    let mnist = "https://storage.googleapis.com/cvdf-datasets/mnist/";
    let svhn = "http://ufldl.stanford.edu/housenumbers/";
    let dogs = "http://vision.stanford.edu/aditya86/ImageNetDogs/";
    let ds = |files: Vec<RemoteFile>, kind, entry: &str| Dataset { name: name.into(), files, kind, entry: entry.into() };
    Ok(match name {
        "mnist" => ds(
            vec![
                file(mnist, "train-images-idx3-ubyte.gz", 9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
                file(mnist, "train-labels-idx1-ubyte.gz", 28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
                file(mnist, "t10k-images-idx3-ubyte.gz", 1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
                file(mnist, "t10k-labels-idx1-ubyte.gz", 4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
            ],
            "idx",
            "train-images-idx3-ubyte.gz",
        ),
        "svhn" => ds(
            vec![
                file(svhn, "train_32x32.mat", 182040794, "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"),
                file(svhn, "test_32x32.mat", 64275384, "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"),
            ],
            "svhn",
            "train_32x32.mat",
        ),
        "svhn-extra" => ds(
            vec![file(svhn, "extra_32x32.mat", 1329278602, "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3")],
            "svhn",
            "extra_32x32.mat",
        ),
        "cifar10" => ds(
            vec![file(
                "https://www.cs.toronto.edu/~kriz/",
                "cifar-10-binary.tar.gz",
                170052171,
                "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            )],
            "cifar10",
            "cifar-10-batches-bin",
        ),
        "stanford-dogs" => ds(
            vec![
                file(dogs, "images.tar", 793579520, "a443fc2f9a851aa1a7b8e4fa4af94b8459fce2c9f5a2f4dd4669cf9673a4ec58"),
                file(dogs, "annotation.tar", 21852160, "662ed36f707be6b195c2fda392d8e153e83af28cedc8e2134a649f198def30fd"),
            ],
            "stanford-dogs",
            "",
        ),
        _ => {
            let Some(category) = name.strip_prefix("quickdraw/") else {
                return Err(FetchError::UnknownDataset { name: name.into(), valid: names() });
            };
            let (c, size, sha) = quickdraw_rows().find(|r| r.0 == category).ok_or_else(|| FetchError::UnknownCategory(category.into()))?;
            let npy = format!("{c}.npy");
            let url = format!("https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/{}", npy.replace(' ', "%20"));
            ds(vec![RemoteFile { name: npy.clone(), url, size, sha256: sha.into() }], "quickdraw", &npy)
        }
    })
}

const DONE_MARKER: &str = ".complete";

/// The data spec that opens a fetched dataset under `root`, or why there is none.
pub fn locate(ds: &Dataset, root: &Path) -> Result<String, FetchError> {
    let dir = root.join(&ds.name);
    if !dir.join(DONE_MARKER).is_file() {
        return Err(FetchError::NotFetched { name: ds.name.clone(), dir });
    }
    let path = if ds.entry.is_empty() { dir } else { dir.join(&ds.entry) };
    Ok(format!("{}:{}", ds.kind, path.display()))
}

/// Downloads, verifies and unpacks `ds` into `root/NAME`; returns that folder. Files already
/// verified are kept, a partial download resumes where it stopped, and a finished dataset is
/// left alone.
pub fn fetch(ds: &Dataset, root: &Path, opts: &FetchOptions, progress: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf, FetchError> {
    let dir = root.join(&ds.name);
    if dir.join(DONE_MARKER).is_file() {
        progress(FetchEvent::AlreadyThere { dir: dir.clone() });
        return Ok(dir);
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| FetchError::Io { path: p, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    // One fetch per folder at a time: two appending to one .part would corrupt it.
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(FetchError::Busy { dir: dir.clone() });
    }

    for f in &ds.files {
        let done = dir.join(&f.name);
        if done.is_file() {
            continue; // verified by an earlier run, then renamed into place
        }
        // ureq has no idle timeout: a stalled connection would block forever, so the body gets
        // a time budget (10 minutes, or the file at 100 kB/s); past it the download resumes.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_recv_body(Some(Duration::from_secs((f.size / 100_000).max(600))))
            .build()
            .into();
        let part = dir.join(format!("{}.part", f.name));
        let url = match &opts.mirror {
            Some(m) => format!("{}/{}", m.trim_end_matches('/'), f.url.rsplit('/').next().unwrap_or(&f.name)),
            None => f.url.clone(),
        };
        let mut attempt = 0;
        let mut had = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        loop {
            match download(&agent, &url, f, &part, progress) {
                Ok(()) => break,
                Err(FetchError::Cut { message, got, .. }) if opts.retries > 0 && (attempt < opts.retries || got > had) => {
                    // `retries` bounds tries in a row that get nowhere; progress resets it.
                    attempt = if got > had { 1 } else { attempt + 1 };
                    had = got;
                    progress(FetchEvent::Retry { file: f.name.clone(), attempt, message });
                    std::thread::sleep(Duration::from_millis(200 * (1 << attempt.min(5))));
                }
                Err(e) => return Err(e),
            }
        }
        let got = sha256_file(&part)?;
        if got != f.sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(FetchError::Checksum { file: f.name.clone(), expected: f.sha256.clone(), got });
        }
        progress(FetchEvent::Verified { file: f.name.clone() });
        std::fs::rename(&part, &done).map_err(io(&done))?;
    }

    let is_archive = |name: &str| name.ends_with(".tar.gz") || name.ends_with(".tgz") || name.ends_with(".tar");
    for f in ds.files.iter().filter(|f| is_archive(&f.name)) {
        let archive = dir.join(&f.name);
        progress(FetchEvent::Unpacking { file: f.name.clone() });
        let file = std::fs::File::open(&archive).map_err(io(&archive))?;
        let reader: Box<dyn Read> = if f.name.ends_with(".tar") { Box::new(file) } else { Box::new(flate2::read::GzDecoder::new(file)) };
        // tar's unpack refuses entries that would land outside `dir` (absolute or `..` paths).
        tar::Archive::new(reader).unpack(&dir).map_err(|e| FetchError::Unpack { path: archive.clone(), message: e.to_string() })?;
    }
    let marker: String = ds.files.iter().map(|f| format!("{}\t{}\t{}\n", f.name, f.size, f.sha256)).collect();
    crate::fsutil::write_atomic(&dir.join(DONE_MARKER), marker.as_bytes()).map_err(io(&dir))?;
    // The archives are only a vehicle; they go once everything is unpacked, so that a fetch
    // interrupted while unpacking unpacks again instead of downloading again.
    for f in ds.files.iter().filter(|f| is_archive(&f.name)) {
        let archive = dir.join(&f.name);
        std::fs::remove_file(&archive).map_err(io(&archive))?;
    }
    Ok(dir)
}

/// One try at getting `f` into `part`, continuing from what `part` already holds.
fn download(agent: &ureq::Agent, url: &str, f: &RemoteFile, part: &Path, progress: &mut dyn FnMut(FetchEvent)) -> Result<(), FetchError> {
    let io = |source| FetchError::Io { path: part.to_path_buf(), source };
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if have > f.size {
        std::fs::remove_file(part).map_err(io)?;
        have = 0;
    }
    if have == f.size {
        return Ok(());
    }
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", &format!("bytes={have}-"));
    }
    let cut = |got: u64, message: String| FetchError::Cut { file: f.name.clone(), got, size: f.size, message };
    // A refused or dropped connection is worth another try; anything else is not.
    let resp = req.call().map_err(|e| match e {
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) => cut(have, e.to_string()),
        e => FetchError::Http { url: url.into(), message: e.to_string() },
    })?;
    let status = resp.status().as_u16();
    let length = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let start = match status {
        206 => {
            // Content-Range: bytes START-END/TOTAL; the server must continue where we stopped.
            let range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
            let start = range.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok());
            if start != Some(have) {
                // The server does not continue our copy: start over on the next try.
                std::fs::remove_file(part).map_err(io)?;
                return Err(cut(0, format!("asked for bytes from {have}, got range '{range}'; starting over")));
            }
            have
        }
        200 => 0, // the server ignored the range: start over
        416 => {
            // What we hold is not a prefix the server recognizes; start over next time.
            std::fs::remove_file(part).map_err(io)?;
            return Err(cut(0, "the server refused to resume".into()));
        }
        s => return Err(FetchError::Http { url: url.into(), message: format!("HTTP status {s}") }),
    };
    if let Some(n) = length {
        if start + n != f.size {
            return Err(FetchError::Size { url: url.into(), file: f.name.clone(), expected: f.size, got: start + n });
        }
    }
    progress(FetchEvent::Start { file: f.name.clone(), size: f.size, from: start });
    let mut out = std::fs::OpenOptions::new().create(true).write(true).truncate(start == 0).append(start > 0).open(part).map_err(io)?;
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = start;
    loop {
        let k = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) => {
                out.flush().map_err(io)?;
                return Err(cut(done, e.to_string()));
            }
        };
        if done + k as u64 > f.size {
            drop(out);
            let _ = std::fs::remove_file(part);
            return Err(FetchError::Size { url: url.into(), file: f.name.clone(), expected: f.size, got: done + k as u64 });
        }
        out.write_all(&buf[..k]).map_err(io)?;
        done += k as u64;
        progress(FetchEvent::Bytes { done });
    }
    out.sync_all().map_err(io)?;
    if done < f.size {
        return Err(cut(done, "the connection closed early".into()));
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut file = std::fs::File::open(path).map_err(|source| FetchError::Io { path: path.to_path_buf(), source })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = file.read(&mut buf).map_err(|source| FetchError::Io { path: path.to_path_buf(), source })?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog() {
        let q = quickdraw_categories();
        assert_eq!(q.len(), 345);
        let sheep = find("quickdraw/sheep").unwrap();
        assert_eq!(sheep.files[0].size, 98878944);
        assert!(sheep.files[0].url.ends_with("/numpy_bitmap/sheep.npy"));
        let eiffel = find("quickdraw/The Eiffel Tower").unwrap();
        assert!(eiffel.files[0].url.ends_with("The%20Eiffel%20Tower.npy"), "{}", eiffel.files[0].url);
        // Every numpy_bitmap file is an 80-byte .npy header and N images of 784 bytes.
        assert!(q.iter().all(|(_, s)| (s - 80) % 784 == 0));
        for n in DATASETS {
            let d = find(n).unwrap();
            assert!(d.files.iter().all(|f| f.sha256.len() == 64 && f.url.ends_with(&f.name)), "{n}");
        }
        assert!(find("imagenet").unwrap_err().to_string().contains("fetchable: mnist, svhn"));
        assert!(find("quickdraw/shep").unwrap_err().to_string().contains("'shep'"));
    }

    #[test]
    fn not_fetched_says_how() {
        let dir = tempfile::tempdir().unwrap();
        let e = locate(&find("svhn").unwrap(), dir.path()).unwrap_err().to_string();
        assert!(e.contains("ganforge data fetch svhn"), "{e}");
    }
}
