//! A submission for Kaggle's "Generative Dog Images" competition (2019), in the form it
//! accepted: one zip file `images.zip` holding 10,000 PNG images of 64x64 RGB at its top level.
//! Images of another size or of one channel are brought to 64x64 RGB (bilinear).
//!
//! The zip is written here directly (stored entries, CRC-32, no compression: PNG is already
//! compressed), to a temporary file renamed into place when complete.

use std::io::Write;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};

use crate::image_io::ImageBatch;

/// Images in a submission.
pub const IMAGES: usize = 10_000;
/// Their side.
pub const SIZE: u32 = 64;

/// Image `i` of `batch` as a 64x64 RGB PNG.
pub fn submission_png(batch: &ImageBatch, i: usize) -> Vec<u8> {
    let img = image::load_from_memory(&batch.png(i)).expect("our own PNG decodes");
    let img = if (img.width(), img.height()) == (SIZE, SIZE) { img } else { img.resize_exact(SIZE, SIZE, FilterType::Triangle) };
    let rgb: RgbImage = img.to_rgb8();
    let mut buf = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(rgb).write_to(&mut buf, image::ImageFormat::Png).expect("PNG encodes to memory");
    buf.into_inner()
}

/// Writes a zip of `files` (name, bytes) to `path`, stored, atomically.
pub fn write_zip(path: &Path, files: impl Iterator<Item = (String, Vec<u8>)>) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("zip"), std::process::id()));
    let result = (|| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut central = Vec::new();
        let (mut offset, mut count) = (0u64, 0u64);
        // 1980-01-01 00:00, the zip epoch: entries carry no meaningful time.
        let (time, date) = (0u16, (1 << 5) | 1u16);
        for (name, data) in files {
            let mut crc = flate2::Crc::new();
            crc.update(&data);
            let (crc, size, n) = (crc.sum(), data.len() as u32, name.len() as u16);
            if offset > u32::MAX as u64 || data.len() > u32::MAX as usize || count >= u16::MAX as u64 {
                return Err(std::io::Error::other("too large for a zip without ZIP64"));
            }
            let mut local = Vec::with_capacity(30 + name.len());
            local.extend(0x0403_4b50u32.to_le_bytes());
            local.extend(20u16.to_le_bytes()); // version needed: 2.0
            local.extend(0u16.to_le_bytes()); // flags
            local.extend(0u16.to_le_bytes()); // method: stored
            local.extend(time.to_le_bytes());
            local.extend(date.to_le_bytes());
            local.extend(crc.to_le_bytes());
            local.extend(size.to_le_bytes());
            local.extend(size.to_le_bytes());
            local.extend(n.to_le_bytes());
            local.extend(0u16.to_le_bytes()); // extra field length
            local.extend(name.as_bytes());
            out.write_all(&local)?;
            out.write_all(&data)?;

            central.extend(0x0201_4b50u32.to_le_bytes());
            central.extend(20u16.to_le_bytes()); // made by
            central.extend(20u16.to_le_bytes()); // needed
            central.extend(0u16.to_le_bytes());
            central.extend(0u16.to_le_bytes());
            central.extend(time.to_le_bytes());
            central.extend(date.to_le_bytes());
            central.extend(crc.to_le_bytes());
            central.extend(size.to_le_bytes());
            central.extend(size.to_le_bytes());
            central.extend(n.to_le_bytes());
            central.extend([0u8; 8]); // extra, comment, disk number, internal attributes
            central.extend(0u32.to_le_bytes()); // external attributes
            central.extend((offset as u32).to_le_bytes());
            central.extend(name.as_bytes());
            offset += local.len() as u64 + data.len() as u64;
            count += 1;
        }
        out.write_all(&central)?;
        let mut end = Vec::with_capacity(22);
        end.extend(0x0605_4b50u32.to_le_bytes());
        end.extend([0u8; 4]); // disk numbers
        end.extend((count as u16).to_le_bytes());
        end.extend((count as u16).to_le_bytes());
        end.extend((central.len() as u32).to_le_bytes());
        end.extend((offset as u32).to_le_bytes());
        end.extend(0u16.to_le_bytes()); // comment length
        out.write_all(&end)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
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
        write_zip(&zip_path, (0..3).map(|i| (format!("{i:05}.png"), submission_png(&batch, i)))).unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
        assert_eq!(archive.len(), 3);
        for i in 0..3 {
            let mut f = archive.by_index(i).unwrap();
            assert_eq!(f.name(), format!("{i:05}.png"));
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut bytes).unwrap(); // checks the CRC
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!((img.width(), img.height(), img.color()), (64, 64, image::ColorType::Rgb8));
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "no temporary file left");
    }
}
