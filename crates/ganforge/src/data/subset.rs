//! Some classes of a labelled dataset (`data.classes_keep`): CIFAR-10's dogs, a few breeds of
//! Stanford Dogs, one digit of MNIST. The kept classes are numbered again from 0 in the order
//! the dataset lists them, so a conditional model on the subset has exactly their count.

use std::collections::BTreeSet;
use std::sync::Arc;

use image::DynamicImage;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{DataError, Source};

/// Class names to keep, as config holds them: "dog" or "cat,dog" (`--set
/// data.classes_keep=dog`), the form `--set` and the config file share; so a name cannot hold a
/// comma. Empty keeps every image.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClassList(pub Vec<String>);

impl ClassList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ClassList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.join(","))
    }
}

impl<'de> Deserialize<'de> for ClassList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ClassList(s.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect()))
    }
}

/// The images of `inner` whose class is one of the kept ones.
pub struct Subset {
    inner: Arc<dyn Source>,
    /// `inner`'s index of each kept image.
    index: Vec<usize>,
    /// New label by `inner`'s label (None: not kept).
    relabel: Vec<Option<u32>>,
    names: Vec<String>,
}

impl Subset {
    /// Keeps the images of `keep`'s classes. Every name must be one of `inner`'s classes.
    pub fn new(inner: Arc<dyn Source>, keep: &ClassList) -> Result<Self, DataError> {
        let all = inner.class_names();
        if all.is_empty() {
            return Err(DataError::Classes(format!(
                "data.classes_keep = [{}] needs a dataset with class labels; {} has none",
                keep.0.join(", "),
                inner.describe()
            )));
        }
        let wanted: BTreeSet<&str> = keep.0.iter().map(String::as_str).collect();
        if let Some(unknown) = wanted.iter().find(|w| !all.iter().any(|a| a == *w)) {
            return Err(DataError::Classes(format!("data.classes_keep: no class '{unknown}' in this dataset; its classes are: {}", all.join(", "))));
        }
        let mut relabel = vec![None; all.len()];
        let mut names = Vec::new();
        for (label, name) in all.iter().enumerate() {
            if wanted.contains(name.as_str()) {
                relabel[label] = Some(names.len() as u32);
                names.push(name.clone());
            }
        }
        let index: Vec<usize> =
            (0..inner.len()).filter(|&i| inner.label(i).and_then(|l| relabel.get(l as usize).copied().flatten()).is_some()).collect();
        if index.is_empty() {
            return Err(DataError::Empty(format!("{} has no images of the classes {}", inner.describe(), names.join(", "))));
        }
        Ok(Self { inner, index, relabel, names })
    }
}

impl Source for Subset {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        self.inner.image(self.index[i])
    }

    fn label(&self, i: usize) -> Option<u32> {
        self.inner.label(self.index[i]).and_then(|l| self.relabel[l as usize])
    }

    fn class_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn describe(&self) -> String {
        format!("{} images of class {} from {}", self.index.len(), self.names.join(", "), self.inner.describe())
    }

    fn fingerprint(&self) -> Option<String> {
        // The inner fingerprint names every file; which of them are kept follows from the names.
        self.inner.fingerprint().map(|f| format!("classes_keep {}\n{f}", self.names.join(",")))
    }

    fn prepared(&self, i: usize, size: usize, channels: usize) -> Option<Result<Vec<u8>, DataError>> {
        self.inner.prepared(self.index[i], size, channels)
    }
}

#[cfg(test)]
mod tests {
    use super::super::GreySet;
    use super::*;

    fn mnist() -> Arc<dyn Source> {
        Arc::new(GreySet::mnist_test().unwrap())
    }

    #[test]
    fn keeps_the_named_classes_and_numbers_them_again() {
        let full = mnist();
        let s = Subset::new(full.clone(), &ClassList(vec!["7".into(), "3".into()])).unwrap();
        // MNIST's test set has 1,010 threes and 1,028 sevens (its published class counts).
        assert_eq!(s.len(), 1010 + 1028);
        assert_eq!(s.class_names(), vec!["3", "7"], "in the dataset's order, not the list's");
        let labels: Vec<u32> = (0..s.len()).map(|i| s.label(i).unwrap()).collect();
        assert_eq!(labels.iter().filter(|&&l| l == 0).count(), 1010);
        assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 1028);
        // The first test image is a 7 (index 0), the first 3 is at index 18.
        assert_eq!((s.index[0], s.label(0)), (0, Some(1)));
        assert_eq!(s.index.iter().position(|&i| i == 18).map(|k| s.label(k)), Some(Some(0)));
        assert_eq!(s.image(0).unwrap().as_bytes(), full.image(0).unwrap().as_bytes());
        assert!(s.describe().starts_with("2038 images of class 3, 7 from "), "{}", s.describe());
    }

    #[test]
    fn unknown_classes_and_unlabelled_data_are_refused_by_name() {
        let e = Subset::new(mnist(), &ClassList(vec!["dog".into()])).err().unwrap().to_string();
        assert_eq!(e, "data.classes_keep: no class 'dog' in this dataset; its classes are: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9");
        let dir = tempfile::tempdir().unwrap();
        image::GrayImage::new(4, 4).save(dir.path().join("a.png")).unwrap();
        let folder: Arc<dyn Source> = Arc::new(super::super::folder::FolderSet::open(dir.path()).unwrap());
        let e = Subset::new(folder, &ClassList(vec!["dog".into()])).err().unwrap().to_string();
        assert!(e.starts_with("data.classes_keep = [dog] needs a dataset with class labels; "), "{e}");
    }

    #[test]
    fn class_lists_read_from_comma_separated_text() {
        #[derive(Deserialize, Serialize)]
        struct T {
            k: ClassList,
        }
        let t: T = toml::from_str("k = \"cat, dog\"").unwrap();
        assert_eq!(t.k.0, vec!["cat", "dog"]);
        assert_eq!(toml::to_string(&t).unwrap().trim(), "k = \"cat,dog\"");
        let t: T = toml::from_str("k = \"\"").unwrap();
        assert!(t.k.is_empty());
    }
}
