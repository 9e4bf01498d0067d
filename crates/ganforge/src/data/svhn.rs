//! SVHN, the Street View House Numbers (Netzer et al. 2011), cropped-digits format: the files
//! `train_32x32.mat`, `test_32x32.mat` and `extra_32x32.mat` hold `X`, uint8
//! [32, 32, 3, N] (height, width, channel, image; MATLAB's column-major order), and `y`,
//! [N, 1], where the digit 0 has label 10. Labels here are the digits themselves.

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage};

use super::mat::{read_mat, Values};
use super::{DataError, Source};

pub struct SvhnSet {
    name: String,
    height: usize,
    width: usize,
    channels: usize,
    n: usize,
    /// X as stored: column-major [height, width, channels, n].
    pixels: Vec<u8>,
    digits: Vec<u8>,
}

impl SvhnSet {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let bad = |m: String| DataError::BadFile { path: path.to_path_buf(), message: m };
        let mut vars = read_mat(path, &["X", "y"])?;
        let (Some(x), Some(y)) = (vars.remove("X"), vars.remove("y")) else {
            return Err(bad("no numeric variables X and y; an SVHN cropped-digits file (train_32x32.mat) has both".into()));
        };
        let n_labels = y.values.len();
        // MATLAB drops trailing singleton dimensions: one colour image is [h, w, 3].
        let (height, width, channels, n) = match x.dims[..] {
            [h, w, c, n] if c == 1 || c == 3 => (h, w, c, n),
            [h, w, 3] if n_labels == 1 => (h, w, 3, 1),
            [h, w, n] => (h, w, 1, n),
            _ => {
                return Err(bad(format!(
                    "X has dimensions {:?}; expected [height, width, channels, images] with 1 or 3 channels, as SVHN's [32, 32, 3, N]",
                    x.dims
                )))
            }
        };
        if height == 0 || width == 0 {
            return Err(bad(format!("X has empty images: dimensions {:?}", x.dims)));
        }
        let Values::U8(pixels) = x.values else {
            return Err(bad("X is not uint8; SVHN stores its pixels as uint8".into()));
        };
        if n_labels != n {
            return Err(bad(format!("X holds {n} images but y holds {n_labels} labels")));
        }
        let raw: Vec<f64> = match y.values {
            Values::U8(v) => v.into_iter().map(f64::from).collect(),
            Values::F64(v) => v,
        };
        let digits = raw
            .iter()
            .enumerate()
            .map(|(i, &v)| match v {
                v if v == 10.0 => Ok(0),
                v if (1.0..=9.0).contains(&v) && v.fract() == 0.0 => Ok(v as u8),
                // A few copies already map 10 to 0; accept that too.
                v if v == 0.0 => Ok(0),
                v => Err(bad(format!("y[{i}] is {v}; SVHN labels are 1-10 (10 for the digit 0)"))),
            })
            .collect::<Result<Vec<u8>, _>>()?;
        if n == 0 {
            return Err(DataError::Empty(path.display().to_string()));
        }
        Ok(Self { name: path.display().to_string(), height, width, channels, n, pixels, digits })
    }
}

impl Source for SvhnSet {
    fn len(&self) -> usize {
        self.n
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        let (h, w) = (self.height, self.width);
        let base = i * h * w * self.channels;
        // Column-major: pixel (row r, column c) of plane ch is at r + h * (c + w * ch).
        let at = |r: u32, c: u32, ch: usize| self.pixels[base + r as usize + h * (c as usize + w * ch)];
        Ok(if self.channels == 1 {
            DynamicImage::ImageLuma8(GrayImage::from_fn(w as u32, h as u32, |c, r| image::Luma([at(r, c, 0)])))
        } else {
            DynamicImage::ImageRgb8(RgbImage::from_fn(w as u32, h as u32, |c, r| image::Rgb([at(r, c, 0), at(r, c, 1), at(r, c, 2)])))
        })
    }

    fn label(&self, i: usize) -> Option<u32> {
        Some(self.digits[i] as u32)
    }

    fn class_names(&self) -> Vec<String> {
        (0..10).map(|d| d.to_string()).collect()
    }

    fn describe(&self) -> String {
        format!("SVHN {}: {} images {}x{}x{}, digit labels", self.name, self.n, self.height, self.width, self.channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    #[test]
    fn images_and_digits_match_numpy() {
        // make_fixtures.py wrote the same images as uint8 [N, 3, 32, 32] and y % 10.
        let chw = std::fs::read(fixture("svhn_5_chw.npy")).unwrap();
        let chw = crate::npy::decode_u8(Path::new("svhn_5_chw.npy"), &chw).unwrap();
        let digits = std::fs::read(fixture("svhn_5_digits.npy")).unwrap();
        let digits = crate::npy::decode_u8(Path::new("svhn_5_digits.npy"), &digits).unwrap();
        for f in ["svhn_5.mat", "svhn_5_plain.mat"] {
            let s = SvhnSet::open(&fixture(f)).unwrap();
            assert_eq!(s.len(), 5);
            for i in 0..5 {
                let bytes = super::super::to_model_bytes(&s.image(i).unwrap(), 32, 3);
                assert_eq!(bytes[..], chw.values[i * 3072..(i + 1) * 3072], "{f} image {i}");
                assert_eq!(s.label(i), Some(digits.values[i] as u32), "{f} label {i}");
            }
            assert_eq!(s.label(0), Some(0), "label 10 is the digit 0");
        }
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = SvhnSet::open(&fixture("svhn_no_y.mat")).err().unwrap().to_string();
        assert!(e.contains("svhn_no_y.mat") && e.contains("no numeric variables X and y"), "{e}");
        let e = SvhnSet::open(&fixture("svhn_bad_dims.mat")).err().unwrap().to_string();
        assert!(e.contains("X has dimensions [32, 32]; expected [height, width, channels, images]"), "{e}");
        let e = SvhnSet::open(&fixture("svhn_truncated.mat")).err().unwrap().to_string();
        assert!(e.contains("truncated or corrupt"), "{e}");
    }
}
