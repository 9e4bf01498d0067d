//! Image sources and the loader that feeds the training loop.
//!
//! A source is chosen by a spec `KIND[:PATH]`:
//! - `mnist`: the MNIST training set shipped inside ganforge (60,000 digits, 28x28);
//! - `NAME` (`svhn`, `cifar10`, `stanford-dogs`, `quickdraw/sheep`, ...): a dataset that
//!   `ganforge data fetch NAME` downloaded into the cache folder (see `fetch`);
//! - `idx:PATH`: an IDX image file, or a folder holding one, with its label file if beside it;
//! - `folder:DIR`: every image file (PNG, JPEG, BMP, TIFF, WebP, PGM/PPM) under DIR,
//!   recursively; sub-folders are class labels;
//! - `quickdraw:FILE`: a Quick, Draw! numpy_bitmap .npy or ndjson drawing file;
//! - `svhn:FILE`: an SVHN cropped-digits .mat file;
//! - `cifar10:DIR`: CIFAR-10's binary batches, or its class sub-folders of images;
//! - `stanford-dogs:DIR`: Stanford Dogs' Images/ and Annotation/ folders.
//!
//! Every image is brought to the model's size (bilinear resize, then a centre crop when the
//! aspect ratio differs) and channel count, and scaled to [-1, 1] to match G's tanh output.

pub mod cache;
pub mod cifar;
pub mod dogs;
pub mod fetch;
pub mod folder;
pub mod idx;
pub mod inspect;
pub mod loader;
pub mod mat;
pub mod quickdraw;
pub mod stacked;
pub mod subset;
pub mod svhn;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::config::Config;
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("empty dataset: {0}")]
    Empty(String),
    #[error("{0}")]
    Classes(String),
    #[error("unknown data spec '{0}': expected mnist, idx:PATH, folder:DIR, quickdraw:FILE, svhn:FILE, cifar10:DIR, stanford-dogs:DIR, or the name of a fetched dataset (svhn, cifar10, stanford-dogs, quickdraw/CATEGORY)")]
    UnknownSpec(String),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error("the dataset has {images} images, fewer than one batch of {batch}; lower train.batch_size")]
    TooSmall { images: usize, batch: usize },
    #[error("{what}: {bad} of {total} cannot be used, more than the {MAX_BAD_PERCENT}% allowed: {examples}; repair or remove them")]
    TooManyBad { what: String, bad: usize, total: usize, examples: String },
}

/// Most of a dataset's image files, in percent, that may be unreadable before opening it fails.
/// A few broken files in a large scrape or download are normal and are skipped with a note;
/// more than a tenth usually means the wrong folder, an interrupted download or extraction, or
/// files that are not what their names say, and training on what is left would quietly train
/// on another dataset than the one asked for.
pub const MAX_BAD_PERCENT: usize = 10;

/// A file left out of a dataset, and why.
#[derive(Clone, Debug)]
pub struct SkippedFile {
    pub path: PathBuf,
    pub reason: String,
}

/// "a.png (reason), b.png (reason), ... and 3 more": the first few, with paths relative to `root`.
pub fn name_skipped(root: &Path, skipped: &[SkippedFile]) -> String {
    // Three examples tell what went wrong; the rest would flood the log of a large dataset.
    const SHOWN: usize = 3;
    let mut s: Vec<String> =
        skipped.iter().take(SHOWN).map(|f| format!("{} ({})", f.path.strip_prefix(root).unwrap_or(&f.path).display(), f.reason)).collect();
    if skipped.len() > SHOWN {
        s.push(format!("and {} more", skipped.len() - SHOWN));
    }
    s.join(", ")
}

/// An error when more than `MAX_BAD_PERCENT` of `total` files were skipped.
pub fn check_bad_share(what: String, root: &Path, skipped: &[SkippedFile], total: usize) -> Result<(), DataError> {
    if skipped.len() * 100 > total * MAX_BAD_PERCENT {
        return Err(DataError::TooManyBad { what, bad: skipped.len(), total, examples: name_skipped(root, skipped) });
    }
    Ok(())
}

/// A dataset: images by index, decoded at their native size.
pub trait Source: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image `i`, decoded.
    fn image(&self, i: usize) -> Result<DynamicImage, DataError>;
    /// Class label of image `i`, when the dataset has labels.
    fn label(&self, _i: usize) -> Option<u32> {
        None
    }
    /// Names of the class labels, by label, when the dataset has them.
    fn class_names(&self) -> Vec<String> {
        vec![]
    }
    /// One line for logs: what was loaded.
    fn describe(&self) -> String;
    /// Text that changes whenever the images would (file paths, sizes and times, options), for
    /// sources worth caching at the model size; None for sources already held in memory.
    fn fingerprint(&self) -> Option<String> {
        None
    }
    /// Image `i` already brought to `size` x `size` x `channels` (CHW bytes), when the source
    /// holds it that way (the cache does); None means "decode it with `image`".
    fn prepared(&self, _i: usize, _size: usize, _channels: usize) -> Option<Result<Vec<u8>, DataError>> {
        None
    }
}

const MNIST_TRAIN_IMAGES: &[u8] = include_bytes!("../../../../data/mnist/train-images-idx3-ubyte.gz");
const MNIST_TRAIN_LABELS: &[u8] = include_bytes!("../../../../data/mnist/train-labels-idx1-ubyte.gz");
const MNIST_TEST_IMAGES: &[u8] = include_bytes!("../../../../data/mnist/t10k-images-idx3-ubyte.gz");
const MNIST_TEST_LABELS: &[u8] = include_bytes!("../../../../data/mnist/t10k-labels-idx1-ubyte.gz");

/// Grey images held in memory (MNIST and other IDX sets).
pub struct GreySet {
    images: idx::IdxImages,
    name: String,
}

impl GreySet {
    /// The MNIST training set compiled into ganforge (see data/mnist/MANIFEST).
    pub fn mnist() -> Result<Self, DataError> {
        Self::bundled("train", MNIST_TRAIN_IMAGES, MNIST_TRAIN_LABELS)
    }

    /// The MNIST test set (10,000 images), also compiled in: for classifier accuracy.
    pub fn mnist_test() -> Result<Self, DataError> {
        Self::bundled("test", MNIST_TEST_IMAGES, MNIST_TEST_LABELS)
    }

    fn bundled(split: &str, image_bytes: &[u8], label_bytes: &[u8]) -> Result<Self, DataError> {
        let images = idx::read_idx_bytes(Path::new(&format!("<bundled mnist {split}-images>")), image_bytes)?;
        let labels = idx::read_idx_bytes(Path::new(&format!("<bundled mnist {split}-labels>")), label_bytes)?;
        let images = idx::IdxImages::from_arrays(
            Path::new("<bundled mnist>"),
            images,
            Some((format!("<bundled mnist {split} labels>").into(), labels)),
        )?;
        Ok(Self { images, name: format!("MNIST {split} (bundled)") })
    }

    pub fn open_idx(path: &Path) -> Result<Self, DataError> {
        let (image_path, label_path) = idx::locate(path)?;
        let images = idx::read_idx_file(&image_path)?;
        let labels = match label_path {
            Some(p) => Some((p.clone(), idx::read_idx_file(&p)?)),
            None => None,
        };
        let images = idx::IdxImages::from_arrays(&image_path, images, labels)?;
        Ok(Self { images, name: image_path.display().to_string() })
    }
}

impl Source for GreySet {
    fn len(&self) -> usize {
        self.images.n
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        let (h, w) = (self.images.height, self.images.width);
        let px = self.images.pixels[i * h * w..(i + 1) * h * w].to_vec();
        let img = GrayImage::from_raw(w as u32, h as u32, px).expect("slice has h*w bytes");
        Ok(DynamicImage::ImageLuma8(img))
    }

    fn label(&self, i: usize) -> Option<u32> {
        self.images.labels.as_ref().map(|l| l[i] as u32)
    }

    /// IDX labels are class numbers (digits for MNIST): named by their number, 0 to the largest.
    fn class_names(&self) -> Vec<String> {
        let top = self.images.labels.as_ref().and_then(|l| l.iter().max().copied());
        top.map(|t| (0..=t).map(|k| k.to_string()).collect()).unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!(
            "{}: {} images {}x{}, {}",
            self.name,
            self.images.n,
            self.images.height,
            self.images.width,
            if self.images.labels.is_some() { "with labels" } else { "no labels" }
        )
    }
}

/// Decodes an image file (PNG, JPEG, ...; the format is read from its contents).
pub fn decode_file(path: &Path) -> Result<DynamicImage, DataError> {
    let bad = |m: String| DataError::BadFile { path: path.to_path_buf(), message: m };
    image::ImageReader::open(path)
        .map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?
        .decode()
        .map_err(|e| bad(format!("cannot decode image: {e}")))
}

/// Where the images come from.
#[derive(Config, Debug)]
pub struct DataConfig {
    /// Dataset as KIND[:PATH]: "mnist" (the copy shipped with ganforge; "mnist-test" is its test
    /// set, "stacked-mnist" three of its digits as RGB), "idx:DIR_OR_FILE"
    /// (IDX image files such as MNIST and its look-alikes), "folder:DIR" (PNG, JPEG, BMP, TIFF,
    /// WebP, PGM/PPM files) or "quickdraw:FILE" (a numpy_bitmap .npy or an ndjson drawing file), "svhn:FILE" (an SVHN
    /// .mat file), "cifar10:DIR"
    /// (CIFAR-10's binary batches) or "stanford-dogs:DIR" (Images/ and Annotation/); or the bare
    /// name of a dataset that `ganforge data fetch` downloaded ("svhn", "quickdraw/sheep", ...).
    #[config(default = "String::from(\"mnist\")")]
    pub spec: String,
    /// Batches prepared ahead of the training step by the loader thread.
    #[config(default = 4)]
    pub prefetch: usize,
    /// Quick, Draw! drawings: stroke width as a fraction of the image side (0.03 is about
    /// 2 pixels at 64x64, close to the stroke of the published 28x28 bitmaps).
    #[config(default = 0.03)]
    pub stroke_width: f64,
    /// Quick, Draw! drawings: empty border on each side as a fraction of the image side.
    #[config(default = 0.05)]
    pub stroke_padding: f64,
    /// Stanford Dogs: one training image per bounding box (what the Kaggle competition's top
    /// entries trained on); false uses whole photos.
    #[config(default = true)]
    pub dogs_crop: bool,
    /// Stanford Dogs: enlarge each box to a square before cropping, so resizing keeps the dog's
    /// proportions.
    #[config(default = true)]
    pub dogs_square: bool,
    /// Stanford Dogs: drop boxes whose longer side exceeds this many times the shorter.
    #[config(default = 2.5)]
    pub dogs_max_aspect: f64,
    /// Decode and resize datasets read from many files (folders, Stanford Dogs, CIFAR as
    /// images, Quick, Draw! drawings) once, into a uint8 cache at the model size that later
    /// epochs and runs read; rebuilt when a file or a size setting changes.
    #[config(default = true)]
    pub cache: bool,
    /// Folder for those caches; empty means $XDG_CACHE_HOME/ganforge/images, else
    /// ~/.cache/ganforge/images.
    #[config(default = "crate::fsutil::OptionalPath::default()")]
    pub cache_dir: crate::fsutil::OptionalPath,
    /// Class names by label, filled in from the dataset when a run starts (sorted sub-folder
    /// names, CIFAR's classes, dog breeds, digits), so that a run records what its labels mean.
    /// A run resumed on data whose classes differ is refused.
    #[config(default = "Vec::new()")]
    pub classes: Vec<String>,
    /// Train on these classes only, by name, comma-separated: "dog" (CIFAR-10's dogs),
    /// "cat,dog"; empty keeps every image. The kept classes are numbered again from 0 (data.classes then
    /// lists them alone), and evaluation against real images keeps the same classes.
    #[config(default = "subset::ClassList::default()")]
    pub classes_keep: subset::ClassList,
    /// Flip each training image left-right with probability 1/2 (the Kaggle dog entries did);
    /// off by default because digits and letters are not symmetric.
    #[config(default = false)]
    pub hflip: bool,
}

/// Width and height from an image file's header, or why `decode_file` would refuse the file:
/// not an image, an empty image, or one larger than the decoder's memory limit. Reads the
/// header only, so a file cut short after it still passes; the cache build finds those.
pub fn check_header(path: &Path) -> Result<(u32, u32), String> {
    use image::ImageDecoder;
    let reader = image::ImageReader::open(path).map_err(|e| e.to_string())?.with_guessed_format().map_err(|e| e.to_string())?;
    let decoder = reader.into_decoder().map_err(|e| format!("not a readable image: {e}"))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("{w}x{h}, no pixels"));
    }
    // The limit `decode_file` decodes under (image's default), so what passes here decodes there.
    let limit = image::Limits::default().max_alloc.unwrap_or(u64::MAX);
    if decoder.total_bytes() > limit {
        return Err(format!("{w}x{h} needs {} MiB to decode, over the {} MiB decode limit", decoder.total_bytes() >> 20, limit >> 20));
    }
    Ok((w, h))
}

pub use crate::fsutil::expand_home;

/// The datasets compiled into ganforge, named without a path.
pub const BUNDLED: &[&str] = &["mnist", "mnist-test", "stacked-mnist"];

/// Opens the dataset named by `cfg.spec`, keeping only `cfg.classes_keep`'s classes when set.
pub fn open(cfg: &DataConfig) -> Result<Arc<dyn Source>, DataError> {
    let source = open_spec(cfg)?;
    if cfg.classes_keep.is_empty() {
        return Ok(source);
    }
    Ok(Arc::new(subset::Subset::new(source, &cfg.classes_keep)?))
}

/// Opens the whole dataset named by `cfg.spec`.
fn open_spec(cfg: &DataConfig) -> Result<Arc<dyn Source>, DataError> {
    let spec = cfg.spec.as_str();
    let (kind, path) = match spec.split_once(':') {
        Some((k, p)) => (k, Some(p)),
        None => (spec, None),
    };
    let need_path = |p: Option<&str>| -> Result<PathBuf, DataError> {
        match p {
            Some(p) if !p.is_empty() => Ok(expand_home(p)),
            _ => Err(DataError::UnknownSpec(format!("{spec}' needs a path, as in '{kind}:/path/to/data"))),
        }
    };
    // A bare name other than the bundled mnist: a dataset that `data fetch` put into the cache.
    if path.is_none() && !BUNDLED.contains(&spec) {
        if let Ok(ds) = fetch::find(spec) {
            let located = DataConfig { spec: fetch::locate(&ds, &fetch::default_root())?, ..cfg.clone() };
            return open_spec(&located);
        }
    }
    match kind {
        "mnist" if path.is_none() => Ok(Arc::new(GreySet::mnist()?)),
        "mnist-test" if path.is_none() => Ok(Arc::new(GreySet::mnist_test()?)),
        "stacked-mnist" if path.is_none() => Ok(Arc::new(stacked::StackedMnist::new()?)),
        "idx" => Ok(Arc::new(GreySet::open_idx(&need_path(path)?)?)),
        "folder" => Ok(Arc::new(folder::FolderSet::open(&need_path(path)?)?)),
        "cifar10" => cifar::open(&need_path(path)?),
        "svhn" => Ok(Arc::new(svhn::SvhnSet::open(&need_path(path)?)?)),
        "stanford-dogs" => {
            let opt = dogs::DogsOptions { crop: cfg.dogs_crop, square: cfg.dogs_square, max_aspect: cfg.dogs_max_aspect };
            Ok(Arc::new(dogs::DogsSet::open(&need_path(path)?, opt)?))
        }
        "quickdraw" => {
            let raster = quickdraw::RasterOptions { stroke: cfg.stroke_width as f32, padding: cfg.stroke_padding as f32 };
            Ok(Arc::new(quickdraw::QuickDrawSet::open(&need_path(path)?, raster)?))
        }
        _ => Err(DataError::UnknownSpec(spec.to_string())),
    }
}

/// Brings an image to `size` x `size` with `channels` channels, as bytes in CHW order.
/// Bilinear resize of the shorter side to `size`, then a centre crop; the same as
/// torchvision's `Resize(size)` + `CenterCrop(size)` used by the DCGAN reference code.
pub fn to_model_bytes(img: &DynamicImage, size: usize, channels: usize) -> Vec<u8> {
    // Scaling a 1x65535 strip's short side up to 64 would allocate 800 MB for a picture that is
    // cropped to a square anyway: past this aspect ratio, crop the centre square first. No real
    // dataset comes near it (Stanford Dogs' boxes are filtered at 2.5), so their bytes are as
    // they were.
    const MAX_ASPECT: u32 = 8;
    let squared;
    let img = if img.width().max(img.height()) > MAX_ASPECT * img.width().min(img.height()) {
        let side = img.width().min(img.height());
        squared = img.crop_imm((img.width() - side) / 2, (img.height() - side) / 2, side, side);
        &squared
    } else {
        img
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    let s = size as f64 / w.min(h) as f64;
    let (nw, nh) = (((w as f64 * s).round() as u32).max(size as u32), ((h as f64 * s).round() as u32).max(size as u32));
    let resized = if (nw as usize, nh as usize) == (w, h) { img.clone() } else { img.resize_exact(nw, nh, FilterType::Triangle) };
    let (x0, y0) = ((nw - size as u32) / 2, (nh - size as u32) / 2);
    let cropped = resized.crop_imm(x0, y0, size as u32, size as u32);
    if channels == 1 {
        cropped.to_luma8().into_raw()
    } else {
        let rgb = cropped.to_rgb8();
        let mut chw = vec![0u8; 3 * size * size];
        for (i, px) in rgb.pixels().enumerate() {
            for c in 0..3 {
                chw[c * size * size + i] = px[c];
            }
        }
        chw
    }
}

/// Mirrors CHW image bytes left-right, in place.
pub fn flip_rows(chw: &mut [u8], size: usize) {
    for row in chw.chunks_exact_mut(size) {
        row.reverse();
    }
}

/// Bytes 0..=255 to floats in [-1, 1].
/// Image `i` of `source` at the model's size and channels (CHW bytes): from the cache when the
/// source holds it that way, else decoded and resized.
pub fn model_bytes(source: &dyn Source, i: usize, size: usize, channels: usize) -> Result<Vec<u8>, DataError> {
    match source.prepared(i, size, channels) {
        Some(prepared) => prepared,
        None => source.image(i).map(|img| to_model_bytes(&img, size, channels)),
    }
}

pub fn to_unit_range(bytes: &[u8], out: &mut Vec<f32>) {
    out.extend(bytes.iter().map(|&b| b as f32 / 127.5 - 1.0));
}

/// Broken image files as they turn up in scraped datasets, for the sources' tests.
#[cfg(test)]
pub(crate) mod broken {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let body: Vec<u8> = kind.iter().chain(data).copied().collect();
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }

    /// A valid PNG header for a `w` x `h` RGB image, with a token of pixel data: a "decompression
    /// bomb" that costs nothing on disk but `w * h * 3` bytes to decode.
    pub fn huge_png(w: u32, h: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let ihdr: Vec<u8> = w.to_be_bytes().into_iter().chain(h.to_be_bytes()).chain([8, 2, 0, 0, 0]).collect();
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        chunk(&mut out, b"IEND", &[]);
        out
    }

    /// A real 40x30 PNG cut in half: its header reads, its pixels do not.
    pub fn truncated_png() -> Vec<u8> {
        let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 37 % 256) as u8, (y * 91 % 256) as u8, ((x * y) % 256) as u8]));
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
        let bytes = buf.into_inner();
        bytes[..bytes.len() / 2].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strip of 1x65535 pixels at model size 64 is cropped to its centre square first,
    /// instead of being scaled to 64x4194240 (800 MB) and then cropped.
    #[test]
    fn extreme_strips_are_squared_before_scaling() {
        let strip = DynamicImage::ImageLuma8(GrayImage::from_fn(1, 65_535, |_, y| image::Luma([(y % 251) as u8])));
        let bytes = to_model_bytes(&strip, 64, 1);
        // The centre pixel of the strip (row 32767, value 32767 % 251 = 137) everywhere.
        assert_eq!(bytes, vec![(32_767 % 251) as u8; 64 * 64]);
        let wide = DynamicImage::ImageLuma8(GrayImage::from_fn(90, 10, |x, _| image::Luma([x as u8])));
        assert_eq!(to_model_bytes(&wide, 10, 1)[..10].to_vec(), (40..50).collect::<Vec<u8>>(), "the centre 10x10 of a 9:1 image");
    }

    #[test]
    fn bundled_mnist_matches_its_manifest() {
        let m = GreySet::mnist().unwrap();
        assert_eq!(m.len(), 60_000);
        // First labels per the MANIFEST: 5 0 4 1 9 2 1 3 1 4.
        let first: Vec<u32> = (0..10).map(|i| m.label(i).unwrap()).collect();
        assert_eq!(first, vec![5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
        assert_eq!(m.class_names(), (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
        // Mean pixel of the training set: 33.318 per the MANIFEST.
        let mean = m.images.pixels.iter().map(|&p| p as f64).sum::<f64>() / m.images.pixels.len() as f64;
        assert!((mean - 33.318).abs() < 1e-3, "{mean}");
    }

    #[test]
    fn resize_and_scale() {
        let img = DynamicImage::ImageLuma8(GrayImage::from_fn(28, 28, |x, _| image::Luma([if x < 14 { 0 } else { 255 }])));
        let b = to_model_bytes(&img, 64, 1);
        assert_eq!(b.len(), 64 * 64);
        assert_eq!((b[0], b[63]), (0, 255));
        let b3 = to_model_bytes(&img, 16, 3);
        assert_eq!(b3.len(), 3 * 16 * 16);
        // Centre crop of a wide image keeps the middle.
        let wide = DynamicImage::ImageLuma8(GrayImage::from_fn(40, 20, |x, _| image::Luma([if (10..30).contains(&x) { 200 } else { 0 }])));
        let c = to_model_bytes(&wide, 20, 1);
        assert!(c.iter().all(|&v| v == 200));
        let mut f = Vec::new();
        to_unit_range(&[0, 255], &mut f);
        assert_eq!(f, vec![-1.0, 1.0]);
    }

    fn open_spec(spec: &str) -> Result<Arc<dyn Source>, DataError> {
        open(&DataConfig::new().with_spec(spec.to_string()))
    }

    #[test]
    fn bad_specs() {
        assert!(open_spec("cifar").err().unwrap().to_string().contains("unknown data spec"));
        assert!(open_spec("folder:").err().unwrap().to_string().contains("needs a path"));
        let e = open_spec("folder:/definitely/not/here").err().unwrap().to_string();
        assert!(e.contains("/definitely/not/here"), "{e}");
    }
}
