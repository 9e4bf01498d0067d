//! A submission for Kaggle's "Generative Dog Images" competition (2019), in the form it
//! accepted: one zip file `images.zip` holding 10,000 PNG images of 64x64 RGB at its top level.
//! Images of another size or of one channel are brought to 64x64 RGB (bilinear).
//!
//! The zip is written by [`write_submission`] (stored entries: PNG is already compressed).

use image::imageops::FilterType;

use crate::image_io::ImageBatch;

/// Images in a submission.
pub const IMAGES: usize = 10_000;
/// Their side.
pub const SIZE: u32 = 64;

/// Writes the submission zip of `pngs` (file name, PNG bytes) to `path`, atomically.
pub fn write_submission(path: &std::path::Path, pngs: impl Iterator<Item = (String, Vec<u8>)>) -> std::io::Result<()> {
    crate::fsutil::write_zip(path, pngs, 1)
}

/// Image `i` of `batch` as a 64x64 RGB PNG.
pub fn submission_png(batch: &ImageBatch, i: usize) -> Vec<u8> {
    let img = image::load_from_memory(&batch.png(i)).expect("our own PNG decodes");
    let img = if (img.width(), img.height()) == (SIZE, SIZE) { img } else { img.resize_exact(SIZE, SIZE, FilterType::Triangle) };
    crate::image_io::png_bytes(&img.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zip_that_another_implementation_reads() {
        let dir = tempfile::tempdir().unwrap();
        // Three grey 16x16 images: each becomes a 64x64 RGB PNG.
        let batch =
            ImageBatch { values: (0..3 * 256).map(|i| (i % 256) as f32 / 127.5 - 1.0).collect(), n: 3, channels: 1, height: 16, width: 16 };
        let zip_path = dir.path().join("images.zip");
        write_submission(&zip_path, (0..3).map(|i| (format!("{i:05}.png"), submission_png(&batch, i)))).unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
        assert_eq!(archive.len(), 3);
        for i in 0..3 {
            let mut f = archive.by_index(i).unwrap();
            assert_eq!(f.name().unwrap(), format!("{i:05}.png"));
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut bytes).unwrap(); // checks the CRC
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!((img.width(), img.height(), img.color()), (64, 64, image::ColorType::Rgb8));
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "no temporary file left");
    }
}
