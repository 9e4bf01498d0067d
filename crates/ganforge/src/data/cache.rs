//! The image cache: a dataset read from many files (or drawn from strokes) is decoded and
//! resized once, into one file of uint8 images at the model's size, which later epochs and
//! later runs read instead. 20,000 dog photos at 64x64x3 take 246 MB there, and are read image
//! by image with positioned reads, so neither the photos nor the cache are held in memory.
//!
//! The cache file is named by a SHA-256 of the source's fingerprint (every file's path, size
//! and modification time, and the options that shape its images) and of the model size,
//! channel count and resize method, so changing any of them builds a new cache, never reads a
//! stale one. Layout: a 64-byte header ("GFCACHE1", n, size, channels), one status byte per
//! image (1 = decoded), then the images, CHW.
//!
//! Building the cache decodes every image in full, so it finds the files whose header reads
//! but whose pixels do not (a download cut short): those are left out of the cached set and
//! named in its `describe()`, and more than `MAX_BAD_PERCENT` of them fails the build.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use image::DynamicImage;
use sha2::{Digest, Sha256};

use super::{to_model_bytes, DataError, Source, MAX_BAD_PERCENT};

const MAGIC: &[u8; 8] = b"GFCACHE1";
const HEADER: u64 = 64;
/// Changes whenever `to_model_bytes` would give other bytes for the same image.
const RESIZE_METHOD: &str = "bilinear-shorter-side+center-crop v1";

/// Where caches go when `data.cache_dir` is empty: $XDG_CACHE_HOME/ganforge/images, else
/// ~/.cache/ganforge/images.
pub fn default_dir() -> PathBuf {
    crate::fsutil::cache_home().join("images")
}

/// "path size mtime" of a file, for fingerprints; a file that cannot be read gives a line that
/// says so, which still changes the fingerprint when it becomes readable.
pub fn file_stamp(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => {
            let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
            format!("{} {} {t}\n", path.display(), m.len())
        }
        Err(_) => format!("{} unreadable\n", path.display()),
    }
}

/// A source whose images come from a cache file at one model size. `image` still decodes from
/// the original (for `data inspect`); the loader asks for `prepared` bytes. Images that failed
/// to decode when the cache was built are left out, so image `i` here is `inner`'s `good[i]`.
pub struct CachedSet {
    inner: Arc<dyn Source>,
    file: File,
    path: PathBuf,
    size: usize,
    channels: usize,
    n: usize,
    good: Vec<usize>,
    /// How many of `inner`'s images are left out, and the errors of the first few.
    failed: usize,
    failures: Vec<String>,
}

impl CachedSet {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Images of the source that failed to decode when the cache was built, and are left out.
    pub fn failed(&self) -> usize {
        self.failed
    }

    fn read_image(&self, i: usize) -> std::io::Result<Vec<u8>> {
        let len = self.channels * self.size * self.size;
        let mut buf = vec![0u8; len];
        let at = HEADER + self.n as u64 + (self.good[i] * len) as u64;
        read_exact_at(&self.file, &mut buf, at)?;
        Ok(buf)
    }
}

/// Fills `buf` from `file` at `offset`, without moving a shared cursor (the loader thread and
/// others read the same file).
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_exact_at(file, buf, offset);
    #[cfg(windows)]
    {
        let mut got = 0;
        while got < buf.len() {
            let k = std::os::windows::fs::FileExt::seek_read(file, &mut buf[got..], offset + got as u64)?;
            if k == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            got += k;
        }
        Ok(())
    }
}

impl Source for CachedSet {
    fn len(&self) -> usize {
        self.good.len()
    }
    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        self.inner.image(self.good[i])
    }
    fn prepared(&self, i: usize, size: usize, channels: usize) -> Option<Result<Vec<u8>, DataError>> {
        if (size, channels) != (self.size, self.channels) {
            return None;
        }
        Some(self.read_image(i).map_err(|e| DataError::Io { path: self.path.clone(), source: e }))
    }
    fn label(&self, i: usize) -> Option<u32> {
        self.inner.label(self.good[i])
    }
    fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }
    fn describe(&self) -> String {
        let mut s =
            format!("{} (cached at {}x{}x{} in {})", self.inner.describe(), self.size, self.size, self.channels, self.path.display());
        if self.failed > 0 {
            let more =
                if self.failed > self.failures.len() { format!("; and {} more", self.failed - self.failures.len()) } else { String::new() };
            s += &format!("; left out {} of {} images that failed to decode: {}{more}", self.failed, self.n, self.failures.join("; "));
        }
        s
    }
}

/// The cache file for `source` at this model size: its path, and whether it is already built.
fn cache_path(source: &dyn Source, dir: &Path, size: usize, channels: usize) -> Option<PathBuf> {
    let fp = source.fingerprint()?;
    let mut h = Sha256::new();
    h.update(format!("{RESIZE_METHOD}\n{size} {channels}\n{}\n", source.len()).as_bytes());
    h.update(fp.as_bytes());
    let hex: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(dir.join(format!("{hex}-{size}x{size}x{channels}.u8")))
}

/// `source` read through its cache in `dir` (built now when missing, reporting progress as
/// (done, total)), or `source` itself when it has nothing to cache (images already in memory).
pub fn cached(
    source: Arc<dyn Source>,
    dir: &Path,
    size: usize,
    channels: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Arc<dyn Source>, DataError> {
    let Some(path) = cache_path(&*source, dir, size, channels) else { return Ok(source) };
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| DataError::Io { path: p, source: e }
    };
    let n = source.len();
    if let Some(set) = open_cache(&source, &path, n, size, channels)? {
        return Ok(Arc::new(set));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    remove_stale_temporaries(dir);
    // Built under a temporary name and renamed, so a crash or a second process never leaves
    // (or reads) half a cache.
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:?}",
        path.file_name().and_then(|f| f.to_str()).unwrap_or("cache"),
        std::process::id(),
        std::thread::current().id()
    ));
    let result = build(&*source, &tmp, size, channels, progress);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    open_cache(&source, &path, n, size, channels)?
        .map(|s| Arc::new(s) as Arc<dyn Source>)
        .ok_or_else(|| DataError::BadFile { path: path.clone(), message: "the cache just written does not read back".into() })
}

/// Deletes temporary files of builds that were killed (a build writes its file continuously,
/// so one untouched for an hour is dead).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let stale =
            e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 3600);
        if name.to_string_lossy().starts_with('.') && name.to_string_lossy().contains(".tmp-") && stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn open_cache(source: &Arc<dyn Source>, path: &Path, n: usize, size: usize, channels: usize) -> Result<Option<CachedSet>, DataError> {
    let Ok(file) = File::open(path) else { return Ok(None) };
    let mut head = [0u8; HEADER as usize];
    let expect = HEADER + n as u64 + (n * channels * size * size) as u64;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read = read_exact_at(&file, &mut head, 0);
    let fields = |k: usize| u64::from_le_bytes(head[8 + 8 * k..16 + 8 * k].try_into().expect("8 bytes"));
    if read.is_err()
        || &head[..8] != MAGIC
        || len != expect
        || (fields(0), fields(1), fields(2)) != (n as u64, size as u64, channels as u64)
    {
        // Not ours or damaged: rebuild it.
        return Ok(None);
    }
    let mut ok = vec![0u8; n];
    read_exact_at(&file, &mut ok, HEADER).map_err(|e| DataError::Io { path: path.into(), source: e })?;
    let good: Vec<usize> = (0..n).filter(|&i| ok[i] != 0).collect();
    // The errors are not stored in the cache: decode the first few failures again to name them.
    let failures =
        (0..n).filter(|&i| ok[i] == 0).take(FAILURES_NAMED).filter_map(|i| source.image(i).err().map(|e| e.to_string())).collect();
    let failed = n - good.len();
    Ok(Some(CachedSet { inner: source.clone(), file, path: path.to_path_buf(), size, channels, n, good, failed, failures }))
}

/// Failures named in a cached set's description: enough to see what is wrong, few enough that a
/// large dataset's log stays readable.
const FAILURES_NAMED: usize = 3;

/// A worker's share of a build: its first image's index, and each image's bytes or error.
type Chunk = (usize, Vec<Result<Vec<u8>, DataError>>);

/// Decodes and resizes every image on all cores, writing them in order.
fn build(source: &dyn Source, tmp: &Path, size: usize, channels: usize, progress: &mut dyn FnMut(usize, usize)) -> Result<(), DataError> {
    let io = |e| DataError::Io { path: tmp.to_path_buf(), source: e };
    let n = source.len();
    let per = channels * size * size;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(tmp).map_err(io)?);
    let mut head = [0u8; HEADER as usize];
    head[..8].copy_from_slice(MAGIC);
    for (k, v) in [n, size, channels].iter().enumerate() {
        head[8 + 8 * k..16 + 8 * k].copy_from_slice(&(*v as u64).to_le_bytes());
    }
    out.write_all(&head).map_err(io)?;
    out.write_all(&vec![0u8; n]).map_err(io)?; // status bytes, filled in at the end

    // Chunks of images decoded in parallel, written in order, so memory stays at a few chunks.
    let workers = std::thread::available_parallelism().map(|p| p.get()).unwrap_or(2);
    let chunk = 256;
    let mut ok = vec![0u8; n];
    let mut failures = Vec::new();
    for start in (0..n).step_by(chunk * workers) {
        let end = (start + chunk * workers).min(n);
        let results: Mutex<Vec<Chunk>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for w in 0..workers {
                let (lo, hi) = (start + w * chunk, (start + (w + 1) * chunk).min(end));
                if lo >= hi {
                    continue;
                }
                let results = &results;
                s.spawn(move || {
                    let imgs: Vec<Result<Vec<u8>, DataError>> =
                        (lo..hi).map(|i| source.image(i).map(|img| to_model_bytes(&img, size, channels))).collect();
                    results.lock().expect("no worker panics holding it").push((lo, imgs));
                });
            }
        });
        let mut results = results.into_inner().expect("workers are done");
        results.sort_by_key(|r| r.0);
        for (lo, imgs) in results {
            for (k, img) in imgs.into_iter().enumerate() {
                match img {
                    Ok(b) => {
                        ok[lo + k] = 1;
                        out.write_all(&b).map_err(io)?;
                    }
                    Err(e) => {
                        if failures.len() < FAILURES_NAMED {
                            failures.push(e.to_string());
                        }
                        out.write_all(&vec![0u8; per]).map_err(io)?
                    }
                }
            }
        }
        progress(end, n);
    }
    let failed = ok.iter().filter(|&&o| o == 0).count();
    if failed == n {
        return Err(DataError::Empty(format!("none of the {n} images could be decoded: {}", failures.join("; "))));
    }
    if failed * 100 > n * MAX_BAD_PERCENT {
        let more = if failed > failures.len() { format!("; and {} more", failed - failures.len()) } else { String::new() };
        let what = format!("decoding the images of {} for the cache", source.describe());
        return Err(DataError::TooManyBad { what, bad: failed, total: n, examples: format!("{}{more}", failures.join("; ")) });
    }
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(HEADER)).map_err(io)?;
    file.write_all(&ok).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    /// A folder of 40x30 photos; the fingerprint is FolderSet's.
    fn photos(dir: &Path, n: usize) {
        for k in 0..n {
            let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, (k * 20) as u8]));
            img.save(dir.join(format!("{k:03}.png"))).unwrap();
        }
    }

    #[test]
    fn cache_gives_the_decoded_bytes_and_is_reused_until_files_change() {
        let data = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        photos(data.path(), 7);
        let open = || -> Arc<dyn Source> { Arc::new(super::super::folder::FolderSet::open(data.path()).unwrap()) };
        // Counts images prepared, from the progress reports of cache builds.
        let mut built = 0;
        let mut count = |done: usize, total: usize| built += (done == total) as usize * total;
        let set = cached(open(), cache.path(), 16, 3, &mut count).unwrap();
        assert_eq!(built, 7, "each image decoded once");
        for i in 0..7 {
            let direct = to_model_bytes(&set.image(i).unwrap(), 16, 3);
            assert_eq!(set.prepared(i, 16, 3).unwrap().unwrap(), direct, "image {i}");
        }
        assert!(set.prepared(0, 32, 3).is_none(), "another size is not in this cache");
        assert!(set.describe().contains("cached at 16x16x3"));

        // A second open reads the cache: nothing decoded.
        let mut count = |done: usize, total: usize| built += (done == total) as usize * total;
        let again = cached(open(), cache.path(), 16, 3, &mut count).unwrap();
        assert_eq!(built, 7);
        assert_eq!(again.prepared(6, 16, 3).unwrap().unwrap(), set.prepared(6, 16, 3).unwrap().unwrap());

        // Another size, or a changed file, builds a new cache.
        let mut count = |done: usize, total: usize| built += (done == total) as usize * total;
        cached(open(), cache.path(), 8, 1, &mut count).unwrap();
        assert_eq!(built, 14);
        std::thread::sleep(std::time::Duration::from_millis(20));
        RgbImage::from_pixel(40, 30, image::Rgb([255, 0, 0])).save(data.path().join("003.png")).unwrap();
        let mut count = |done: usize, total: usize| built += (done == total) as usize * total;
        let changed = cached(open(), cache.path(), 16, 3, &mut count).unwrap();
        assert_eq!(built, 21);
        assert_eq!(changed.prepared(3, 16, 3).unwrap().unwrap()[..256], [255u8; 256], "the new pixels, red plane");
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 3, "three caches, no temporary files left");
    }

    /// A file whose header reads but whose pixels do not passes the folder's check; the cache
    /// build decodes it, leaves it out and names it, rather than the loader swapping it for
    /// another image at every visit.
    #[test]
    fn images_that_fail_to_decode_are_left_out_and_named() {
        let data = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        photos(data.path(), 11);
        std::fs::write(data.path().join("005.png"), super::super::broken::truncated_png()).unwrap();
        let open = || -> Arc<dyn Source> { Arc::new(super::super::folder::FolderSet::open(data.path()).unwrap()) };
        assert_eq!(open().len(), 11, "the header check lets it through");
        for _ in 0..2 {
            // Built, then read back from the file: the same images left out, the same reason.
            let set = cached(open(), cache.path(), 8, 3, &mut |_, _| {}).unwrap();
            assert_eq!(set.len(), 10);
            let d = set.describe();
            assert!(d.contains("left out 1 of 11 images that failed to decode: ") && d.contains("005.png: cannot decode image"), "{d}");
            // Image 5 is now the sixth photo (blue = 6 * 20), and nothing in between.
            let direct = open();
            assert_eq!(set.prepared(5, 8, 3).unwrap().unwrap(), to_model_bytes(&direct.image(6).unwrap(), 8, 3));
            assert_eq!(set.prepared(4, 8, 3).unwrap().unwrap(), to_model_bytes(&direct.image(4).unwrap(), 8, 3));
        }
        // Two of 11 is more than 10%: refused, with the files named.
        std::fs::write(data.path().join("008.png"), super::super::broken::truncated_png()).unwrap();
        let e = cached(open(), cache.path(), 8, 3, &mut |_, _| {}).err().unwrap().to_string();
        assert!(e.contains("2 of 11 cannot be used, more than the 10% allowed: ") && e.contains("008.png: cannot decode"), "{e}");
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1, "no cache written for the refused set");
    }

    #[test]
    fn a_damaged_cache_is_rebuilt() {
        let data = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        photos(data.path(), 3);
        let src: Arc<dyn Source> = Arc::new(super::super::folder::FolderSet::open(data.path()).unwrap());
        let set = cached(src.clone(), cache.path(), 16, 1, &mut |_, _| {}).unwrap();
        let file = std::fs::read_dir(cache.path()).unwrap().next().unwrap().unwrap().path();
        let good = set.prepared(2, 16, 1).unwrap().unwrap();
        std::fs::write(&file, b"GFCACHE1 cut short").unwrap();
        let rebuilt = cached(src, cache.path(), 16, 1, &mut |_, _| {}).unwrap();
        assert_eq!(rebuilt.prepared(2, 16, 1).unwrap().unwrap(), good);
    }
}
