//! `ganforge data inspect`: what a dataset spec loads as, before training on it.

use std::collections::BTreeMap;

use super::{to_model_bytes, DataError, Source};
use crate::image_io::ImageBatch;
use crate::rng::GanRng;

/// What an inspection found.
#[derive(Debug)]
pub struct Inspection {
    pub images: usize,
    /// Smallest and largest native (width, height) among the images looked at.
    pub min_size: (u32, u32),
    pub max_size: (u32, u32),
    /// Images looked at for sizes and statistics (a random sample of large sets).
    pub sampled: usize,
    /// Images per class label, when the dataset has labels.
    pub class_counts: BTreeMap<u32, usize>,
    /// Per-channel mean and standard deviation of pixels in [0, 1], as the model sees them.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// The first images, at the model's size.
    pub preview: ImageBatch,
    /// Images looked at that failed to decode (training skips or replaces them): how many,
    /// and the first error.
    pub undecodable: usize,
    pub first_error: Option<String>,
}

/// Looks at up to `sample` images (drawn with `seed`), at `size` x `size` with `channels`.
pub fn inspect(
    source: &dyn Source,
    size: usize,
    channels: usize,
    sample: usize,
    preview: usize,
    seed: u64,
) -> Result<Inspection, DataError> {
    let n = source.len();
    let picks: Vec<usize> = if n <= sample { (0..n).collect() } else { GanRng::for_epoch(seed, 0).permutation(n)[..sample].to_vec() };
    let mut class_counts = BTreeMap::new();
    for i in 0..n {
        if let Some(l) = source.label(i) {
            *class_counts.entry(l).or_insert(0) += 1;
        }
    }
    let (mut sum, mut sum2, mut count) = (vec![0f64; channels], vec![0f64; channels], 0usize);
    let (mut min_size, mut max_size) = ((u32::MAX, u32::MAX), (0, 0));
    let plane = size * size;
    let (mut undecodable, mut first_error) = (0, None);
    for &i in &picks {
        // One broken file says something about the dataset; it does not end the inspection.
        let img = match source.image(i) {
            Ok(img) => img,
            Err(e) => {
                undecodable += 1;
                first_error.get_or_insert(e.to_string());
                continue;
            }
        };
        min_size = (min_size.0.min(img.width()), min_size.1.min(img.height()));
        max_size = (max_size.0.max(img.width()), max_size.1.max(img.height()));
        let bytes = to_model_bytes(&img, size, channels);
        for c in 0..channels {
            for &b in &bytes[c * plane..(c + 1) * plane] {
                let v = b as f64 / 255.0;
                sum[c] += v;
                sum2[c] += v * v;
            }
        }
        count += plane;
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / count.max(1) as f64).collect();
    let std = sum2.iter().zip(&mean).map(|(s2, m)| (s2 / count.max(1) as f64 - m * m).max(0.0).sqrt()).collect();
    let mut values = Vec::with_capacity(preview.min(n) * channels * plane);
    let mut k = 0;
    for img in (0..n).filter_map(|i| source.image(i).ok()).take(preview) {
        super::to_unit_range(&to_model_bytes(&img, size, channels), &mut values);
        k += 1;
    }
    Ok(Inspection {
        images: n,
        min_size,
        max_size,
        sampled: picks.len(),
        class_counts,
        mean,
        std,
        preview: ImageBatch { values, n: k, channels, height: size, width: size },
        undecodable,
        first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_statistics_match_the_manifest() {
        let m = crate::data::GreySet::mnist().unwrap();
        // At the native 28x28 every image counts: the MANIFEST's mean is 33.318 / 255.
        let r = inspect(&m, 28, 1, 60_000, 16, 0).unwrap();
        assert_eq!((r.images, r.sampled, r.min_size, r.max_size), (60_000, 60_000, (28, 28), (28, 28)));
        assert!((r.mean[0] - 33.318 / 255.0).abs() < 1e-5, "{:?}", r.mean);
        // The classic normalization constant: std 0.3081.
        assert!((r.std[0] - 0.3081).abs() < 1e-3, "{:?}", r.std);
        let counts: Vec<usize> = r.class_counts.values().copied().collect();
        assert_eq!(counts, vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
        assert_eq!((r.preview.n, r.preview.height), (16, 28));
    }

    /// A file whose header reads but whose pixels are cut short: counted and skipped, with its
    /// error, instead of ending the inspection.
    #[test]
    fn undecodable_images_are_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut png = Vec::new();
        for i in 0..12u8 {
            let img = image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x as u8 + y as u8) * 10 + i]));
            png.clear();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
            std::fs::write(dir.path().join(format!("{i:02}.png")), &png).unwrap();
        }
        std::fs::write(dir.path().join("00cut.png"), &png[..png.len() / 2]).unwrap();
        let set = crate::data::folder::FolderSet::open(dir.path()).unwrap();
        let r = inspect(&set, 8, 1, 100, 4, 0).unwrap();
        assert_eq!((r.images, r.sampled, r.undecodable), (13, 13, 1));
        assert!(r.first_error.as_deref().is_some_and(|e| e.contains("00cut.png")), "{:?}", r.first_error);
        assert_eq!(r.preview.n, 4, "the preview takes the next good images");
    }
}
