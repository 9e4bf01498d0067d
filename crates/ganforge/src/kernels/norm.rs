//! Batch normalization in training mode (Ioffe & Szegedy, "Batch Normalization", 2015) fused
//! with the activation after it, forward and backward, on NCHW slices.
//!
//! burn 0.22 differentiates batch norm as one operation, but its CPU backend computes it from
//! generic tensor operations: the statistics through a transposed copy, then a subtraction, a
//! product, two means and the normalization, and the backward through a dozen more passes, each
//! over the whole activation. Here the forward reads x twice (mean, then variance about it) and
//! writes y once; the backward reads x, y and dy twice and writes dx once. Every channel is
//! summed in a fixed order (planes in turn, eight lanes within a plane, totals in f64), so runs
//! repeat bit for bit whatever the thread count.

use rayon::prelude::*;

/// The activation applied after the normalization.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Relu,
    /// LeakyReLU with this slope for negative inputs (DCGAN's D: 0.2).
    Leaky(f32),
}

impl Act {
    fn apply(self, z: f32) -> f32 {
        match self {
            Act::Identity => z,
            Act::Relu => z.max(0.0),
            Act::Leaky(slope) => {
                if z > 0.0 {
                    z
                } else {
                    z * slope
                }
            }
        }
    }

    /// The derivative at the pre-activation z, read off the output y (z > 0 exactly where
    /// y > 0 for all three), as burn's relu backward does.
    fn slope(self, y: f32) -> f32 {
        match self {
            Act::Identity => 1.0,
            Act::Relu => (y > 0.0) as u8 as f32,
            Act::Leaky(slope) => {
                if y > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
        }
    }
}

/// [batch, channels, pixels per plane] of an NCHW tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    pub batch: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl Planes {
    fn count(&self) -> f64 {
        (self.batch * self.pixels) as f64
    }

    /// The planes of channel c, image by image.
    fn of<'a>(&self, v: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (channels, pixels) = (self.channels, self.pixels);
        (0..self.batch).map(move |n| &v[(n * channels + c) * pixels..][..pixels])
    }
}

/// Sum of `f(i)` over a plane in eight independent lanes (so the compiler vectorizes it).
#[inline(always)]
fn lane_sum(len: usize, f: impl Fn(usize) -> f32) -> f64 {
    let mut acc = [0.0f32; 8];
    let whole = len / 8 * 8;
    for i in (0..whole).step_by(8) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
    }
    let tail: f32 = (whole..len).map(&f).sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64
}

/// Per-channel mean and biased variance (the statistics batch norm normalizes with).
pub fn stats(x: &[f32], s: Planes) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), s.batch * s.channels * s.pixels, "x does not match {s:?}");
    (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let mean = s.of(x, c).map(|p| lane_sum(p.len(), |i| p[i])).sum::<f64>() / s.count();
            let m = mean as f32;
            let var = s.of(x, c).map(|p| lane_sum(p.len(), |i| (p[i] - m) * (p[i] - m))).sum::<f64>() / s.count();
            (m, var as f32)
        })
        .unzip()
}

/// Per-channel scale and shift of the normalization: z = x * a + b with a = gamma / sqrt(var +
/// eps), b = beta - mean * a.
fn affine(mean: &[f32], var: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<(f32, f32)> {
    (0..mean.len())
        .map(|c| {
            let a = gamma[c] / ((var[c] as f64 + eps).sqrt() as f32);
            (a, beta[c] - mean[c] * a)
        })
        .collect()
}

/// y = act(gamma * (x - mean) / sqrt(var + eps) + beta).
pub fn forward(x: &[f32], s: Planes, mean: &[f32], var: &[f32], gamma: &[f32], beta: &[f32], eps: f64, act: Act) -> Vec<f32> {
    assert_eq!(x.len(), s.batch * s.channels * s.pixels, "x does not match {s:?}");
    let ab = affine(mean, var, gamma, beta, eps);
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(s.pixels).zip(x.par_chunks(s.pixels)).enumerate().for_each(|(plane, (y, x))| {
        let (a, b) = ab[plane % s.channels];
        for (y, &x) in y.iter_mut().zip(x) {
            *y = act.apply(x * a + b);
        }
    });
    y
}

/// Gradients of [`forward`] (with the statistics of x, as training computes them): (dx, dgamma,
/// dbeta). With dz = dy * act'(z) and xhat the normalized x, per channel:
/// dbeta = sum dz, dgamma = sum dz * xhat, dx = gamma / sqrt(var + eps) * (dz - mean(dz) -
/// xhat * mean(dz * xhat)).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    s: Planes,
    mean: &[f32],
    var: &[f32],
    gamma: &[f32],
    eps: f64,
    act: Act,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let len = s.batch * s.channels * s.pixels;
    assert_eq!([x.len(), y.len(), dy.len()], [len; 3], "slices do not match {s:?}");
    let inv: Vec<f32> = var.iter().map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32).collect();
    let (dgamma, dbeta): (Vec<f32>, Vec<f32>) = (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let (m, r) = (mean[c], inv[c]);
            let planes = s.of(x, c).zip(s.of(y, c)).zip(s.of(dy, c));
            let (mut sum_dz, mut sum_dz_xhat) = (0.0f64, 0.0f64);
            for ((x, y), dy) in planes {
                sum_dz += lane_sum(x.len(), |i| dy[i] * act.slope(y[i]));
                sum_dz_xhat += lane_sum(x.len(), |i| dy[i] * act.slope(y[i]) * (x[i] - m) * r);
            }
            (sum_dz_xhat as f32, sum_dz as f32)
        })
        .unzip();
    let n = s.count() as f32;
    let mut dx = vec![0.0f32; len];
    dx.par_chunks_mut(s.pixels).enumerate().for_each(|(plane, dx)| {
        let c = plane % s.channels;
        let at = plane * s.pixels;
        let (x, y, dy) = (&x[at..][..s.pixels], &y[at..][..s.pixels], &dy[at..][..s.pixels]);
        let (m, r, g) = (mean[c], inv[c], gamma[c]);
        let (mean_dz, mean_dz_xhat) = (dbeta[c] / n, dgamma[c] / n);
        for i in 0..s.pixels {
            let dz = dy[i] * act.slope(y[i]);
            dx[i] = g * r * (dz - mean_dz - (x[i] - m) * r * mean_dz_xhat);
        }
    });
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statistics, the forward and the gradients against the definitions in f64, computed
    /// element by element (the gradient by central differences of the loss sum(y * g)).
    #[test]
    fn matches_the_definition() {
        let s = Planes { batch: 3, channels: 2, pixels: 13 };
        let len = s.batch * s.channels * s.pixels;
        let x: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) / 20.0).collect();
        let g: Vec<f32> = (0..len).map(|i| ((i * 53 % 89) as f32 - 44.0) / 30.0).collect();
        let (gamma, beta, eps) = ([1.5f32, -0.7], [0.3f32, 0.1], 1e-5);
        let loss = |x: &[f64], gamma: &[f64], beta: &[f64], act: Act| -> f64 {
            let mut total = 0.0;
            for c in 0..s.channels {
                let idx: Vec<usize> = (0..s.batch).flat_map(|n| (0..s.pixels).map(move |p| (n * s.channels + c) * s.pixels + p)).collect();
                let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64;
                let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / idx.len() as f64;
                for &i in &idx {
                    let z = gamma[c] * (x[i] - mean) / (var + eps).sqrt() + beta[c];
                    let y = match act {
                        Act::Identity => z,
                        Act::Relu => z.max(0.0),
                        Act::Leaky(a) => {
                            if z > 0.0 {
                                z
                            } else {
                                z * a as f64
                            }
                        }
                    };
                    total += y * g[i] as f64;
                }
            }
            total
        };
        let (mean, var) = stats(&x, s);
        for act in [Act::Identity, Act::Relu, Act::Leaky(0.2)] {
            let y = forward(&x, s, &mean, &var, &gamma, &beta, eps, act);
            let (dx, dgamma, dbeta) = backward(&x, &y, &g, s, &mean, &var, &gamma, eps, act);
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let (g64, b64) = (gamma.map(|v| v as f64), beta.map(|v| v as f64));
            let y_sum: f64 = y.iter().zip(&g).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((y_sum - loss(&x64, &g64, &b64, act)).abs() < 1e-3, "{act:?}: forward");
            let h = 1e-4;
            for i in [0, 5, 40, len - 1] {
                let (mut up, mut down) = (x64.clone(), x64.clone());
                up[i] += h;
                down[i] -= h;
                let want = (loss(&up, &g64, &b64, act) - loss(&down, &g64, &b64, act)) / (2.0 * h);
                assert!((dx[i] as f64 - want).abs() < 2e-3, "{act:?} dx[{i}]: {} vs {want}", dx[i]);
            }
            for c in 0..2 {
                let bump = |v: [f64; 2], d: f64| {
                    let mut v = v;
                    v[c] += d;
                    v
                };
                let dg = (loss(&x64, &bump(g64, h), &b64, act) - loss(&x64, &bump(g64, -h), &b64, act)) / (2.0 * h);
                let db = (loss(&x64, &g64, &bump(b64, h), act) - loss(&x64, &g64, &bump(b64, -h), act)) / (2.0 * h);
                assert!((dgamma[c] as f64 - dg).abs() < 2e-3, "{act:?} dgamma[{c}]: {} vs {dg}", dgamma[c]);
                assert!((dbeta[c] as f64 - db).abs() < 2e-3, "{act:?} dbeta[{c}]: {} vs {db}", dbeta[c]);
            }
        }
    }
}
