//! Pictures out: single images and sample grids as PNG, written atomically.

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage};

use crate::fsutil::write_atomic;

/// A value in [-1, 1] as the 8-bit level a PNG of it stores (what feature extractors see, as
/// reference tools read generated images back from files).
pub fn to_byte(v: f32) -> u8 {
    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// A batch of images on the host: values in [-1, 1], [n, c, h, w] row-major.
#[derive(Clone, Debug, Default)]
pub struct ImageBatch {
    pub values: Vec<f32>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageBatch {
    pub fn from_tensor(t: burn::tensor::Tensor<4>) -> Self {
        let [n, channels, height, width] = t.dims();
        let values = t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 after convert");
        Self { values, n, channels, height, width }
    }

    /// Pixel (channel `c`, row `y`, column `x`) of image `i` as a byte.
    fn byte(&self, i: usize, c: usize, y: usize, x: usize) -> u8 {
        to_byte(self.values[((i * self.channels + c) * self.height + y) * self.width + x])
    }

    /// A grid with `cols` images per row and a 2-pixel border, as RGB.
    pub fn grid(&self, cols: usize) -> RgbImage {
        let cols = cols.clamp(1, self.n.max(1));
        let rows = self.n.div_ceil(cols);
        let pad = 2;
        let (w, h) = (cols * (self.width + pad) + pad, rows * (self.height + pad) + pad);
        let mut out = RgbImage::from_pixel(w as u32, h as u32, image::Rgb([40, 40, 40]));
        for i in 0..self.n {
            let (ox, oy) = (pad + (i % cols) * (self.width + pad), pad + (i / cols) * (self.height + pad));
            for y in 0..self.height {
                for x in 0..self.width {
                    let px = if self.channels == 1 {
                        let g = self.byte(i, 0, y, x);
                        [g, g, g]
                    } else {
                        [self.byte(i, 0, y, x), self.byte(i, 1, y, x), self.byte(i, 2, y, x)]
                    };
                    out.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(px));
                }
            }
        }
        out
    }

    /// Image `i` as an image of the `image` crate: grey or RGB, as G made it.
    pub fn image(&self, i: usize) -> DynamicImage {
        let (w, h) = (self.width as u32, self.height as u32);
        if self.channels == 1 {
            DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| image::Luma([self.byte(i, 0, y as usize, x as usize)])))
        } else {
            DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
                let (x, y) = (x as usize, y as usize);
                image::Rgb([self.byte(i, 0, y, x), self.byte(i, 1, y, x), self.byte(i, 2, y, x)])
            }))
        }
    }

    /// Image `i` encoded as PNG bytes (grey or RGB).
    pub fn png(&self, i: usize) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        self.image(i).write_to(&mut buf, image::ImageFormat::Png).expect("PNG encodes to memory");
        buf.into_inner()
    }

    /// Image `i` encoded as JPEG of `quality` (1 to 100).
    pub fn jpeg(&self, i: usize, quality: u8) -> Vec<u8> {
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
            .encode_image(&self.image(i))
            .expect("JPEG encodes grey and RGB images to memory");
        buf
    }

    /// Image `i` as bytes in [h, w, c] order, the layout of NumPy image arrays (and PIL's).
    pub fn hwc_bytes(&self, i: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.height * self.width * self.channels);
        for y in 0..self.height {
            for x in 0..self.width {
                out.extend((0..self.channels).map(|c| self.byte(i, c, y, x)));
            }
        }
        out
    }
}

/// `img` encoded as PNG bytes.
pub fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).expect("PNG encodes to memory");
    buf.into_inner()
}

/// Writes `img` as a PNG file, atomically.
pub fn save_png(path: &Path, img: &RgbImage) -> std::io::Result<()> {
    write_atomic(path, &png_bytes(img))
}

/// Columns for a near-square grid of `n` images.
pub fn grid_cols(n: usize) -> usize {
    (n as f64).sqrt().ceil().max(1.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_layout_and_values() {
        // Two 1x2x2 images: all -1 (black) and all +1 (white).
        let b = ImageBatch { values: vec![-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0], n: 2, channels: 1, height: 2, width: 2 };
        let g = b.grid(2);
        assert_eq!((g.width(), g.height()), (2 * 4 + 2, 4 + 2));
        assert_eq!(g.get_pixel(2, 2).0, [0, 0, 0]);
        assert_eq!(g.get_pixel(6, 2).0, [255, 255, 255]);
        assert_eq!(g.get_pixel(0, 0).0, [40, 40, 40]);
        let png = b.png(1);
        let back = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(back.get_pixel(1, 1).0, [255]);
        let jpeg = image::load_from_memory(&b.jpeg(1, 95)).unwrap().to_luma8();
        assert_eq!((jpeg.width(), jpeg.get_pixel(1, 1).0[0] > 250), (2, true));
        // An RGB image: red, green and blue planes, then [h, w, c] bytes interleave them.
        let rgb = ImageBatch { values: vec![1.0, -1.0, -1.0, 1.0, -1.0, 1.0], n: 1, channels: 3, height: 1, width: 2 };
        assert_eq!(rgb.hwc_bytes(0), [255, 0, 0, 0, 255, 255]);
        assert_eq!(grid_cols(64), 8);
        assert_eq!(grid_cols(10), 4);
    }
}
