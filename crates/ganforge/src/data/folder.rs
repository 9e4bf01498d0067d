//! A folder of images (the formats of [`IMAGE_EXTENSIONS`]), searched recursively. When every image lies inside a
//! sub-folder, the top-level sub-folder names are the class labels (sorted by name, label =
//! index), as in the torchvision `ImageFolder` layout; a flat folder is unlabelled.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::{check_bad_share, check_header, decode_file, name_skipped, DataError, SkippedFile, Source};

pub struct FolderSet {
    root: PathBuf,
    files: Vec<PathBuf>,
    /// Files with an image extension that `decode_file` would refuse (see `check_header`).
    pub skipped: Vec<SkippedFile>,
    /// Class names, sorted, when the folder is laid out by class.
    pub classes: Vec<String>,
    labels: Vec<u32>,
}

/// The class of each file (its top-level sub-folder), when every file has one.
fn classes_of(root: &Path, files: &[PathBuf]) -> Result<(Vec<String>, Vec<u32>), DataError> {
    let tops: Option<Vec<String>> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root).ok()?;
            (rel.components().count() >= 2).then(|| rel.components().next()?.as_os_str().to_str().map(String::from))?
        })
        .collect();
    let Some(tops) = tops else { return Ok((vec![], vec![])) };
    let mut classes = tops.clone();
    classes.sort();
    classes.dedup();
    // A class folder without a single image is a mistake worth stopping for.
    let entries = std::fs::read_dir(root).map_err(|e| DataError::Io { path: root.to_path_buf(), source: e })?;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() && !name.starts_with('.') && !classes.contains(&name) {
            return Err(DataError::Empty(format!("class folder {} holds no decodable image", e.path().display())));
        }
    }
    let labels = tops.iter().map(|t| classes.binary_search(t).expect("collected above") as u32).collect();
    Ok((classes, labels))
}

/// The file extensions taken as images, in any case: pytorch-fid's list, so that a folder
/// means the same images to `ganforge fid` as to `python -m pytorch_fid`.
pub const IMAGE_EXTENSIONS: &[&str] = &["bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::Io { path: dir.to_path_buf(), source: e })?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::Io { path: dir.to_path_buf(), source: e })?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| DataError::Io { path: path.clone(), source: e })?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl FolderSet {
    /// Lists the images under `root` and reads each header, so that files which are not images
    /// at all, or too large to decode, are skipped (and named) now rather than failing mid-run;
    /// more than `MAX_BAD_PERCENT` of them is an error.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        if !root.is_dir() {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder (or does not exist)");
            return Err(DataError::Io { path: root.to_path_buf(), source });
        }
        let mut all = Vec::new();
        walk(root, &mut all)?;
        all.sort();
        if all.is_empty() {
            return Err(DataError::Empty(format!("no image files ({}) under {}", IMAGE_EXTENSIONS.join(", "), root.display())));
        }
        let total = all.len();
        let (mut files, mut skipped) = (Vec::new(), Vec::new());
        for path in all {
            match check_header(&path) {
                Ok(_) => files.push(path),
                Err(reason) => skipped.push(SkippedFile { path, reason }),
            }
        }
        if files.is_empty() {
            return Err(DataError::Empty(format!(
                "none of the {} image files under {} could be decoded: {}",
                skipped.len(),
                root.display(),
                name_skipped(root, &skipped)
            )));
        }
        check_bad_share(format!("image files under {}", root.display()), root, &skipped, total)?;
        let (classes, labels) = classes_of(root, &files)?;
        Ok(Self { root: root.to_path_buf(), files, skipped, classes, labels })
    }
}

impl Source for FolderSet {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        decode_file(&self.files[i])
    }

    fn label(&self, i: usize) -> Option<u32> {
        self.labels.get(i).copied()
    }

    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }

    fn fingerprint(&self) -> Option<String> {
        Some(self.files.iter().map(|f| super::cache::file_stamp(f)).collect())
    }

    fn describe(&self) -> String {
        let mut s = format!("{}: {} images", self.root.display(), self.files.len());
        if !self.classes.is_empty() {
            let shown: Vec<&str> = self.classes.iter().take(5).map(String::as_str).collect();
            s += &format!(" in {} classes ({}{})", self.classes.len(), shown.join(", "), if self.classes.len() > 5 { ", ..." } else { "" });
        }
        if !self.skipped.is_empty() {
            let total = self.files.len() + self.skipped.len();
            s += &format!(" (skipped {} of {total} files: {})", self.skipped.len(), name_skipped(&self.root, &self.skipped));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_images_recursively_and_skips_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let img = image::RgbImage::from_pixel(10, 6, image::Rgb([255, 0, 0]));
        img.save(dir.path().join("a/b/two.jpg")).unwrap();
        for k in 0..9 {
            img.save(dir.path().join(format!("one{k}.png"))).unwrap();
        }
        std::fs::write(dir.path().join("a/broken.png"), b"not a png").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let set = FolderSet::open(dir.path()).unwrap();
        assert_eq!(set.len(), 10);
        assert_eq!(set.skipped.len(), 1);
        let d = set.describe();
        assert!(d.contains("(skipped 1 of 11 files: a/broken.png (not a readable image: "), "{d}");
        let i = set.image(0).unwrap();
        assert_eq!((i.width(), i.height()), (10, 6));
    }

    /// Files that would fail to decode mid-run are named with their reason at open, and a
    /// folder with more than MAX_BAD_PERCENT of them is refused.
    #[test]
    fn undecodable_files_are_named_and_too_many_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([0, 90, 0]));
        for k in 0..18 {
            img.save(dir.path().join(format!("good{k:02}.png"))).unwrap();
        }
        std::fs::write(dir.path().join("huge.png"), super::super::broken::huge_png(60000, 60000)).unwrap();
        std::fs::write(dir.path().join("empty.jpg"), b"").unwrap();
        let set = FolderSet::open(dir.path()).unwrap();
        assert_eq!((set.len(), set.skipped.len()), (18, 2));
        let d = set.describe();
        assert!(d.contains("skipped 2 of 20 files: empty.jpg ("), "{d}");
        assert!(d.contains("huge.png (60000x60000 needs 10299 MiB to decode, over the 512 MiB decode limit)"), "{d}");
        // A third bad file: 3 of 21 is over 10%.
        std::fs::write(dir.path().join("noise.jpg"), (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>())
            .unwrap();
        let e = FolderSet::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("3 of 21 cannot be used, more than the 10% allowed: empty.jpg ("), "{e}");
        assert!(e.contains("huge.png (60000x60000") && e.contains("noise.jpg ("), "{e}");
    }

    #[test]
    fn sub_folders_are_classes() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::GrayImage::from_pixel(4, 4, image::Luma([9]));
        for (class, n) in [("dog", 2), ("cat", 1), ("zebra", 1)] {
            std::fs::create_dir_all(dir.path().join(class).join("deep")).unwrap();
            for i in 0..n {
                img.save(dir.path().join(class).join("deep").join(format!("{i}.png"))).unwrap();
            }
        }
        let set = FolderSet::open(dir.path()).unwrap();
        assert_eq!(set.classes, vec!["cat", "dog", "zebra"]);
        let labels: Vec<u32> = (0..set.len()).map(|i| set.label(i).unwrap()).collect();
        assert_eq!(labels, vec![0, 1, 1, 2]);
        assert!(set.describe().contains("in 3 classes (cat, dog, zebra)"));
        // An image at the top level makes the folder unlabelled.
        img.save(dir.path().join("loose.png")).unwrap();
        assert_eq!(FolderSet::open(dir.path()).unwrap().label(0), None);
        std::fs::remove_file(dir.path().join("loose.png")).unwrap();
        // An empty class folder is an error that names it.
        std::fs::create_dir(dir.path().join("emu")).unwrap();
        let e = FolderSet::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("emu") && e.contains("holds no decodable"), "{e}");
    }

    #[test]
    fn empty_missing_and_all_broken_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = FolderSet::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("no image files (bmp, jpg"), "{e}");
        let e = FolderSet::open(&dir.path().join("nope")).err().unwrap().to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::write(dir.path().join("x.jpg"), b"garbage").unwrap();
        let e = FolderSet::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("none of the 1 image files") && e.contains("x.jpg (not a readable image"), "{e}");
    }
}
