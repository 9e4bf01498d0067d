//! A folder of PNG/JPEG images, searched recursively.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader};

use super::{DataError, Source};

pub struct FolderSet {
    root: PathBuf,
    files: Vec<PathBuf>,
    /// Files with an image extension whose header could not be read.
    pub skipped: Vec<PathBuf>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
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
    /// at all are skipped (and counted) now rather than failing mid-run.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        if !root.is_dir() {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder (or does not exist)");
            return Err(DataError::Io { path: root.to_path_buf(), source });
        }
        let mut all = Vec::new();
        walk(root, &mut all)?;
        all.sort();
        if all.is_empty() {
            return Err(DataError::Empty(format!("no PNG or JPEG files under {}", root.display())));
        }
        let (files, skipped): (Vec<PathBuf>, Vec<PathBuf>) = all.into_iter().partition(|p| {
            ImageReader::open(p)
                .and_then(|r| r.with_guessed_format())
                .ok()
                .is_some_and(|r| r.into_dimensions().is_ok_and(|(w, h)| w > 0 && h > 0))
        });
        if files.is_empty() {
            return Err(DataError::Empty(format!(
                "none of the {} image files under {} could be decoded",
                skipped.len(),
                root.display()
            )));
        }
        Ok(Self { root: root.to_path_buf(), files, skipped })
    }
}

impl Source for FolderSet {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        let path = &self.files[i];
        let bad = |m: String| DataError::BadFile { path: path.clone(), message: m };
        ImageReader::open(path)
            .map_err(|e| DataError::Io { path: path.clone(), source: e })?
            .with_guessed_format()
            .map_err(|e| bad(e.to_string()))?
            .decode()
            .map_err(|e| bad(format!("cannot decode image: {e}")))
    }

    fn describe(&self) -> String {
        let mut s = format!("{}: {} images", self.root.display(), self.files.len());
        if !self.skipped.is_empty() {
            s += &format!(" ({} files skipped: not decodable, e.g. {})", self.skipped.len(), self.skipped[0].display());
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
        img.save(dir.path().join("one.png")).unwrap();
        img.save(dir.path().join("a/b/two.jpg")).unwrap();
        std::fs::write(dir.path().join("a/broken.png"), b"not a png").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let set = FolderSet::open(dir.path()).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.skipped.len(), 1);
        assert!(set.describe().contains("1 files skipped"));
        let i = set.image(0).unwrap();
        assert_eq!((i.width(), i.height()), (10, 6));
    }

    #[test]
    fn empty_missing_and_all_broken_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = FolderSet::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("no PNG or JPEG files"), "{e}");
        let e = FolderSet::open(&dir.path().join("nope")).err().unwrap().to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::write(dir.path().join("x.jpg"), b"garbage").unwrap();
        let e = FolderSet::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("none of the 1 image files"), "{e}");
    }
}
