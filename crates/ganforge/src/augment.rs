//! DiffAugment: "Differentiable Augmentation for Data-Efficient GAN Training", Zhao, Liu, Lin,
//! Zhu & Han, NeurIPS 2020 (arXiv:2006.10738).
//!
//! The same random, differentiable transforms are applied to every image D sees, real or fake,
//! in D's update and in G's, so that D cannot memorize a small dataset and G's gradient still
//! flows through the augmentation. The three policies of the paper's reference code:
//! - `color`: brightness + U(-0.5, 0.5); saturation: (x - channel mean) * U(0, 2) + channel
//!   mean; contrast: (x - image mean) * U(0.5, 1.5) + image mean (one draw per image each);
//! - `translation`: a shift by up to 1/8 of the side in x and y, filled with zeros;
//! - `cutout`: a zeroed square of half the side at a random position.
//!
//! The random draws happen on the host from the run's training stream, so runs stay exactly
//! repeatable and resumable.

use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, TensorData};

use crate::rng::GanRng;

/// Which transforms, in the order the reference code applies them. In the config it reads and
/// writes as "color,translation,cutout" (any subset; "" is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Policy {
    pub color: bool,
    pub translation: bool,
    pub cutout: bool,
}

impl Policy {
    /// Parses "color,translation,cutout" (any subset; empty = off).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut p = Policy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "color" => p.color = true,
                "translation" => p.translation = true,
                "cutout" => p.cutout = true,
                other => {
                    return Err(format!("unknown DiffAugment policy '{other}': use color, translation and/or cutout, comma-separated"))
                }
            }
        }
        Ok(p)
    }

    pub fn is_on(&self) -> bool {
        self.color || self.translation || self.cutout
    }
}

impl TryFrom<String> for Policy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Policy::parse(&s)
    }
}

impl From<Policy> for String {
    fn from(p: Policy) -> String {
        [("color", p.color), ("translation", p.translation), ("cutout", p.cutout)]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One draw of every random choice for a batch of `b` images of `c` x `s` x `s`.
#[derive(Clone, Debug, PartialEq)]
pub struct Draw {
    pub policy: Policy,
    /// Per image: brightness shift, saturation factor, contrast factor.
    pub color: Option<Vec<[f32; 3]>>,
    /// Per image: shift (dy, dx) in pixels.
    pub shifts: Option<Vec<(i64, i64)>>,
    /// [b * s * s]: 0 inside each image's cutout square, 1 elsewhere.
    pub cutout: Option<Vec<f32>>,
}

impl Draw {
    pub fn new(policy: Policy, b: usize, s: usize, rng: &mut GanRng) -> Self {
        let color = policy.color.then(|| {
            let (br, sa, co) = (rng.uniform_vec(b, -0.5, 0.5), rng.uniform_vec(b, 0.0, 2.0), rng.uniform_vec(b, 0.5, 1.5));
            (0..b).map(|i| [br[i], sa[i], co[i]]).collect()
        });
        let shifts = policy.translation.then(|| {
            let max = (s / 8) as i64; // shift ratio 1/8, as in the reference code
            let u = rng.uniform_vec(2 * b, 0.0, (2 * max + 1) as f32);
            (0..b).map(|i| ((u[2 * i] as i64).min(2 * max) - max, (u[2 * i + 1] as i64).min(2 * max) - max)).collect()
        });
        let cutout = policy.cutout.then(|| {
            let half = s / 2; // cutout ratio 1/2
            let u = rng.uniform_vec(2 * b, 0.0, (s + 1 - half % 2) as f32);
            let mut mask = vec![1.0; b * s * s];
            for i in 0..b {
                // The square's centre, anywhere in the image (it may hang over the edge).
                let (cy, cx) = (u[2 * i] as i64, u[2 * i + 1] as i64);
                for y in (cy - half as i64 / 2).max(0)..(cy + half as i64 / 2).min(s as i64) {
                    for x in (cx - half as i64 / 2).max(0)..(cx + half as i64 / 2).min(s as i64) {
                        mask[i * s * s + y as usize * s + x as usize] = 0.0;
                    }
                }
            }
            mask
        });
        Self { policy, color, shifts, cutout }
    }

    /// The draws of images `part` of the batch (a rank's share in a data-parallel run); `s` is
    /// the image side.
    pub fn shard(&self, part: std::ops::Range<usize>, s: usize) -> Self {
        Self {
            policy: self.policy,
            color: self.color.as_ref().map(|c| c[part.clone()].to_vec()),
            shifts: self.shifts.as_ref().map(|v| v[part.clone()].to_vec()),
            cutout: self.cutout.as_ref().map(|m| m[part.start * s * s..part.end * s * s].to_vec()),
        }
    }
}

/// The augmented batch; differentiable in `x`.
pub fn apply(x: Tensor<4>, d: &Draw, device: &Device) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let per_image = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [b, 1, 1, 1]), device); // [b, 1, 1, 1]
    let mut x = x;
    if let Some(col) = &d.color {
        x = x + per_image(col.iter().map(|p| p[0]).collect());
        let mean_c = x.clone().mean_dim(1); // [b, 1, h, w]
        x = (x - mean_c.clone()) * per_image(col.iter().map(|p| p[1]).collect()) + mean_c;
        let mean = x.clone().mean_dim(3).mean_dim(2).mean_dim(1); // [b, 1, 1, 1]
        x = (x - mean.clone()) * per_image(col.iter().map(|p| p[2]).collect()) + mean;
    }
    if let Some(shifts) = &d.shifts {
        let m = shifts.iter().map(|&(dy, dx)| dy.unsigned_abs().max(dx.unsigned_abs()) as usize).max().unwrap_or(0);
        let padded = x.pad((m, m, m, m), PadMode::Constant(0.0)); // [b, c, h + 2m, w + 2m]
                                                                  // Image i moved by (dy, dx) is the window of the padded image starting at (m - dy, m - dx).
        let parts: Vec<Tensor<4>> = shifts
            .iter()
            .enumerate()
            .map(|(i, &(dy, dx))| {
                let (y0, x0) = ((m as i64 - dy) as usize, (m as i64 - dx) as usize);
                padded.clone().slice([i..i + 1, 0..c, y0..y0 + h, x0..x0 + w]) // [1, c, h, w]
            })
            .collect();
        x = Tensor::cat(parts, 0); // [b, c, h, w]
    }
    if let Some(mask) = &d.cutout {
        x = x * Tensor::<4>::from_data(TensorData::new(mask.clone(), [b, 1, h, w]), device);
        // [b, c, h, w]
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn policies_parse() {
        assert_eq!(Policy::parse("color, cutout").unwrap(), Policy { color: true, translation: false, cutout: true });
        assert!(!Policy::parse("").unwrap().is_on());
        assert!(Policy::parse("colour").unwrap_err().contains("'colour'"));
    }

    #[test]
    fn each_transform_does_what_it_says() {
        let device = Device::flex();
        // One 1x8x8 image holding 0..64.
        let x = || Tensor::<4>::from_data(TensorData::new((0..64).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 8, 8]), &device);
        let shift = Draw { policy: Policy::default(), color: None, shifts: Some(vec![(1, -1)]), cutout: None };
        let out = values(apply(x(), &shift, &device));
        // Moved down one row and left one column: out[y][x] = in[y - 1][x + 1], zeros entering.
        assert_eq!(out[8 + 2], 3.0);
        assert!(out[..8].iter().all(|&v| v == 0.0) && (1..8).all(|y| out[y * 8 + 7] == 0.0));
        let bright = Draw { policy: Policy::default(), color: Some(vec![[0.25, 1.0, 1.0]]), shifts: None, cutout: None };
        assert_eq!(values(apply(x(), &bright, &device))[5], 5.25);
        let contrast = Draw { policy: Policy::default(), color: Some(vec![[0.0, 1.0, 0.5]]), shifts: None, cutout: None };
        // Mean 31.5: 0 -> 31.5 + (0 - 31.5) / 2.
        assert_eq!(values(apply(x(), &contrast, &device))[0], 15.75);
        let mut rng = GanRng::new(4, Stream::Train);
        let cut = Draw::new(Policy { cutout: true, ..Default::default() }, 1, 8, &mut rng);
        let out = values(apply(x(), &cut, &device));
        let zeros = out.iter().enumerate().filter(|&(i, &v)| v == 0.0 && i != 0).count();
        assert!((4..=16).contains(&zeros), "a square of side 4, maybe clipped: {zeros} zeros");
    }

    #[test]
    fn gradients_flow_through_every_policy() {
        let device = Device::flex().autodiff();
        let mut rng = GanRng::new(9, Stream::Train);
        let all = Policy { color: true, translation: true, cutout: true };
        let d = Draw::new(all, 3, 16, &mut rng);
        let x = Tensor::<4>::from_data(TensorData::new(rng.uniform_vec(3 * 3 * 256, -1.0, 1.0), [3, 3, 16, 16]), &device).require_grad();
        let y = apply(x.clone(), &d, &device);
        let g = x.grad(&y.square().sum().backward()).unwrap().into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
        assert!(g.iter().filter(|v| v.abs() > 0.0).count() > g.len() / 3, "the output depends on the input");
        // Two draws from the stream differ.
        assert_ne!(Draw::new(all, 3, 16, &mut rng), d);
    }
}
