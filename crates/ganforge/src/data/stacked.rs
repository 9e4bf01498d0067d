//! Stacked MNIST: three MNIST digits as the red, green and blue channels of one image, so the
//! data has 10 x 10 x 10 = 1,000 modes. The mode-coverage benchmark of "Unrolled Generative
//! Adversarial Networks" (Metz et al. 2017) and of PacGAN (Lin et al. 2018): a classifier reads
//! each channel's digit and the run is scored by how many of the 1,000 triples its samples hit.
//!
//! Image i stacks digits a(i), b(i), c(i) of the bundled MNIST training set, drawn from fixed
//! permutations so that the set is the same on every machine; its label is 100a + 10b + c.

use image::{DynamicImage, RgbImage};

use super::{DataError, GreySet, Source};
use crate::rng::{GanRng, Stream};

/// Images in the set, as many as MNIST's training set.
pub const LEN: usize = 60_000;
/// The seed of the triples.
const SEED: u64 = 1000;

pub struct StackedMnist {
    mnist: GreySet,
    /// For each image, the three MNIST indices (red, green, blue).
    triples: Vec<[usize; 3]>,
}

impl StackedMnist {
    pub fn new() -> Result<Self, DataError> {
        let mnist = GreySet::mnist()?;
        let n = mnist.len();
        let perms: Vec<Vec<usize>> = (0..3).map(|k| GanRng::new(SEED + k, Stream::DataOrder).permutation(n)).collect();
        let triples = (0..LEN).map(|i| [perms[0][i % n], perms[1][i % n], perms[2][i % n]]).collect();
        Ok(Self { mnist, triples })
    }
}

impl Source for StackedMnist {
    fn len(&self) -> usize {
        self.triples.len()
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        let planes: Vec<image::GrayImage> =
            self.triples[i].iter().map(|&k| self.mnist.image(k).map(|im| im.to_luma8())).collect::<Result<_, _>>()?;
        let (w, h) = planes[0].dimensions();
        Ok(DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| image::Rgb([0, 1, 2].map(|c| planes[c].get_pixel(x, y)[0])))))
    }

    fn label(&self, i: usize) -> Option<u32> {
        let d = |k: usize| self.mnist.label(self.triples[i][k]).unwrap_or(0);
        Some(100 * d(0) + 10 * d(1) + d(2))
    }

    fn class_names(&self) -> Vec<String> {
        (0..1000).map(|k| format!("{k:03}")).collect()
    }

    fn describe(&self) -> String {
        format!("Stacked MNIST: {} RGB images 28x28, three bundled MNIST digits each, 1000 classes", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_hold_the_three_digits_of_the_label() {
        let s = StackedMnist::new().unwrap();
        let m = GreySet::mnist().unwrap();
        assert_eq!(s.len(), LEN);
        let img = s.image(7).unwrap().to_rgb8();
        let label = s.label(7).unwrap();
        for c in 0..3 {
            let digit = m.image(s.triples[7][c]).unwrap().to_luma8();
            assert!(img.pixels().zip(digit.pixels()).all(|(p, g)| p[c] == g[0]));
            assert_eq!(m.label(s.triples[7][c]).unwrap(), [label / 100, label / 10 % 10, label % 10][c]);
        }
        // All 1000 triples occur.
        let mut seen = vec![false; 1000];
        (0..s.len()).for_each(|i| seen[s.label(i).unwrap() as usize] = true);
        assert!(seen.iter().all(|&x| x));
    }
}
