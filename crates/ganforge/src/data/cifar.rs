//! CIFAR-10 in its publisher's binary format: `data_batch_1.bin` ... `data_batch_5.bin` and
//! `test_batch.bin`, each record one label byte then 3072 pixel bytes, channel-planar
//! (1024 red, 1024 green, 1024 blue, rows of 32). `cifar10:DIR` reads the training batches of
//! DIR, or, when DIR has none, CIFAR-10 as image files: one sub-folder per class (in DIR, or in
//! DIR/train when DIR holds train/ and test/ as ../shared/data/cifar10 does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, RgbImage};

use super::{DataError, Source};

const RECORD: usize = 1 + 3 * 32 * 32;

/// The class names, in label order (batches.meta.txt).
pub const CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

pub struct CifarSet {
    name: String,
    records: Vec<u8>,
    n: usize,
}

/// CIFAR-10 at `path`: binary batches, or class sub-folders of images named as CIFAR's classes.
pub fn open(path: &Path) -> Result<Arc<dyn Source>, DataError> {
    if path.is_file() || has_batches(path) {
        return Ok(Arc::new(CifarSet::open(path)?));
    }
    let dir = if path.join("train").is_dir() { path.join("train") } else { path.to_path_buf() };
    let set = match super::folder::FolderSet::open(&dir) {
        Ok(set) => set,
        // Neither batches nor images: say what cifar10: expects, and where the batches may be.
        Err(DataError::Empty(_)) => {
            let inner = path.join("cifar-10-batches-bin");
            let hint = if inner.is_dir() { format!("; the batches are in {}", inner.display()) } else { String::new() };
            return Err(DataError::Empty(format!(
                "no CIFAR-10 training batch (data_batch_N.bin) and no class folders of images in {}{hint}",
                path.display()
            )));
        }
        Err(e) => return Err(e),
    };
    // Sorted sub-folder names are CIFAR's label order (airplane = 0 ... truck = 9), so the
    // labels agree with the binary batches'; anything else is not CIFAR-10.
    if set.class_names() != CLASSES {
        return Err(DataError::BadFile {
            path: dir,
            message: format!(
                "neither CIFAR-10 binary batches (data_batch_N.bin) nor one sub-folder per CIFAR-10 class ({}); found classes [{}]",
                CLASSES.join(", "),
                set.class_names().join(", ")
            ),
        });
    }
    Ok(Arc::new(set))
}

fn has_batches(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut e| {
        e.any(|e| e.ok().and_then(|e| e.file_name().to_str().map(|n| n.starts_with("data_batch_") && n.ends_with(".bin"))) == Some(true))
    })
}

/// The batch files of `dir`: the training batches, or `path` itself when it is one file.
fn batch_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("data_batch_") && n.ends_with(".bin")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::Empty(format!(
            "no CIFAR-10 training batch (data_batch_N.bin) in {}; for a folder of class sub-folders of images use folder:DIR",
            path.display()
        )));
    }
    Ok(files)
}

impl CifarSet {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let mut records = Vec::new();
        for f in batch_files(path)? {
            let bytes = std::fs::read(&f).map_err(|e| DataError::Io { path: f.clone(), source: e })?;
            if bytes.is_empty() || bytes.len() % RECORD != 0 {
                return Err(DataError::BadFile {
                    path: f,
                    message: format!(
                        "{} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes each: 1 label + 3072 pixels)",
                        bytes.len()
                    ),
                });
            }
            if let Some(pos) = bytes.chunks_exact(RECORD).position(|r| r[0] > 9) {
                return Err(DataError::BadFile {
                    path: f,
                    message: format!("record {pos} has label {}, CIFAR-10 labels are 0..=9", bytes[pos * RECORD]),
                });
            }
            records.extend_from_slice(&bytes);
        }
        let n = records.len() / RECORD;
        Ok(Self { name: path.display().to_string(), records, n })
    }
}

impl Source for CifarSet {
    fn len(&self) -> usize {
        self.n
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        let px = &self.records[i * RECORD + 1..(i + 1) * RECORD];
        Ok(DynamicImage::ImageRgb8(RgbImage::from_fn(32, 32, |x, y| {
            let k = (y * 32 + x) as usize;
            image::Rgb([px[k], px[1024 + k], px[2048 + k]])
        })))
    }

    fn label(&self, i: usize) -> Option<u32> {
        Some(self.records[i * RECORD] as u32)
    }

    fn class_names(&self) -> Vec<String> {
        CLASSES.iter().map(|c| c.to_string()).collect()
    }

    fn describe(&self) -> String {
        format!("{}: {} CIFAR-10 images 32x32 in {} classes", self.name, self.n, CLASSES.len())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record in the publisher's layout: label, then planes R, G, B.
    fn record(label: u8, r: u8, g: u8, b: u8) -> Vec<u8> {
        let mut v = vec![label];
        for c in [r, g, b] {
            v.extend(std::iter::repeat_n(c, 1024));
        }
        v
    }

    #[test]
    fn reads_planar_records_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut b1 = record(3, 10, 20, 30);
        b1[1 + 5] = 200; // red of pixel (x 5, y 0)
        b1[1 + 2048 + 32] = 99; // blue of pixel (x 0, y 1)
        std::fs::write(dir.path().join("data_batch_1.bin"), [b1, record(9, 1, 2, 3)].concat()).unwrap();
        std::fs::write(dir.path().join("data_batch_2.bin"), record(0, 0, 0, 0)).unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), record(5, 5, 5, 5)).unwrap();
        let set = CifarSet::open(dir.path()).unwrap();
        assert_eq!(set.len(), 3, "test_batch.bin is not training data");
        assert_eq!((0..3).map(|i| set.label(i).unwrap()).collect::<Vec<_>>(), vec![3, 9, 0]);
        let img = set.image(0).unwrap().to_rgb8();
        assert_eq!(img.get_pixel(0, 0).0, [10, 20, 30]);
        assert_eq!(img.get_pixel(5, 0).0, [200, 20, 30]);
        assert_eq!(img.get_pixel(0, 1).0, [10, 20, 99]);
        assert_eq!(CifarSet::open(&dir.path().join("test_batch.bin")).unwrap().label(0), Some(5));
    }

    /// The real CIFAR-10 JPEGs in ../shared (a tar.gz of train/ and test/ class folders):
    /// the test split is unpacked to a temporary folder and opened as `cifar10:DIR`.
    /// The test split of the workplace's CIFAR-10 JPEGs (../shared/data/cifar10/cifar10-jpg.tar.gz,
    /// train/ and test/ class folders), unpacked into `to` as `to/train`.
    pub(crate) fn unpack_shared_test_split(to: &Path) {
        let tgz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10/cifar10-jpg.tar.gz");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&tgz).unwrap()));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let p = entry.path().unwrap().into_owned();
            if let Ok(rest) = p.strip_prefix("test") {
                entry.unpack(to.join("train").join(rest)).unwrap();
            }
        }
    }

    #[test]
    #[ignore = "needs ../shared/data (the workplace's CIFAR-10 JPEGs / Quick, Draw! sheep): run with --include-ignored"]
    fn real_cifar_jpeg_folders_load_with_cifar_labels() {
        let dir = tempfile::tempdir().unwrap();
        // Unpacked as train/ so that the train/-preferring rule is exercised too.
        unpack_shared_test_split(dir.path());
        let set = open(dir.path()).unwrap();
        assert_eq!(set.len(), 10_000, "1,000 test images per class");
        assert_eq!(set.class_names(), CLASSES);
        let counts = (0..set.len()).fold([0usize; 10], |mut c, i| {
            c[set.label(i).unwrap() as usize] += 1;
            c
        });
        assert_eq!(counts, [1000; 10]);
        let img = set.image(0).unwrap();
        assert_eq!((img.width(), img.height(), img.color().channel_count()), (32, 32, 3));
        // A folder with other classes is not CIFAR-10.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join("cats")).unwrap();
        img.save(other.path().join("cats/0.png")).unwrap();
        let e = open(other.path()).err().unwrap().to_string();
        assert!(e.contains("found classes [cats]"), "{e}");
        // The folder above the batches (where `data fetch` unpacks them) points to them.
        let above = tempfile::tempdir().unwrap();
        std::fs::create_dir(above.path().join("cifar-10-batches-bin")).unwrap();
        let e = open(above.path()).err().unwrap().to_string();
        assert!(e.contains("no CIFAR-10 training batch") && e.contains("the batches are in"), "{e}");
    }

    #[test]
    fn bad_batches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("data_batch_1.bin");
        std::fs::write(&f, vec![0u8; 3072]).unwrap();
        let e = CifarSet::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("3072 bytes is not a whole number of CIFAR-10 records"), "{e}");
        std::fs::write(&f, record(12, 0, 0, 0)).unwrap();
        assert!(CifarSet::open(dir.path()).err().unwrap().to_string().contains("label 12"));
        let empty = tempfile::tempdir().unwrap();
        assert!(CifarSet::open(empty.path()).err().unwrap().to_string().contains("use folder:DIR"));
    }
}
