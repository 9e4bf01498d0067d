//! The mode-collapse test bed of "Unrolled Generative Adversarial Networks" (Metz, Poole, Pfau
//! & Sohl-Dickstein, ICLR 2017): fully connected G and D on a 2-D mixture of Gaussians, small
//! enough to train in seconds on a CPU, where mode collapse is visible and countable.
//!
//! Mixtures: 8 Gaussians on a ring of radius 2 with std 0.02 (Metz et al.), and 25 on a 5x5
//! grid at -4, -2, 0, 2, 4 with std 0.05 (VEEGAN, PacGAN). Metric, as in PacGAN (Lin et al.
//! 2018): of 2,500 samples, a sample is high quality when it lies within 3 standard deviations
//! of its nearest centre, and a mode is covered when at least 20 high-quality samples fall on it.
//!
//! Unrolling: G's update sees a copy of D advanced `unroll` extra D steps on fresh batches; D
//! itself only takes its ordinary step. burn has no second-order gradients, so G's gradient is
//! taken through the unrolled D as a constant function: the term of Metz et al.'s gradient that
//! differentiates D's unrolled updates with respect to G is dropped (their paper notes this
//! variant is the same as training G against the k-step-ahead D).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::loss::{d_loss, g_loss, LossKind};
use crate::optim::Optimizer;
use crate::params::clip_weights;
use crate::rng::{GanRng, Stream};

/// Which mixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mixture {
    /// 8 Gaussians on a ring of radius 2, std 0.02.
    Ring8,
    /// 25 Gaussians on a 5x5 grid with spacing 2, std 0.05.
    Grid25,
}

impl Mixture {
    pub fn centres(self) -> Vec<[f32; 2]> {
        match self {
            Mixture::Ring8 => (0..8)
                .map(|k| {
                    let a = k as f32 * std::f32::consts::TAU / 8.0;
                    [2.0 * a.cos(), 2.0 * a.sin()]
                })
                .collect(),
            Mixture::Grid25 => (0..25).map(|k| [(k % 5) as f32 * 2.0 - 4.0, (k / 5) as f32 * 2.0 - 4.0]).collect(),
        }
    }

    pub fn std(self) -> f32 {
        match self {
            Mixture::Ring8 => 0.02,
            Mixture::Grid25 => 0.05,
        }
    }

    /// `n` points, [n * 2] row-major: a uniformly chosen centre plus isotropic noise.
    pub fn sample(self, n: usize, rng: &mut GanRng) -> Vec<f32> {
        let c = self.centres();
        let picks = rng.uniform_vec(n, 0.0, c.len() as f32);
        let noise = rng.normal_vec(2 * n, 0.0, self.std());
        picks
            .iter()
            .enumerate()
            .flat_map(|(i, &p)| {
                let k = (p as usize).min(c.len() - 1);
                [c[k][0] + noise[2 * i], c[k][1] + noise[2 * i + 1]]
            })
            .collect()
    }
}

/// A test-bed run. Defaults follow Metz et al.'s 2-D experiment.
#[derive(Config, Debug)]
pub struct ToyConfig {
    /// The data: "ring8" or "grid25".
    #[config(default = "Mixture::Ring8")]
    pub mixture: Mixture,
    /// The adversarial loss (see loss.rs).
    #[config(default = "LossKind::Ns")]
    pub loss: LossKind,
    /// Extra D steps G's update looks ahead (Metz et al. used up to 10); 0 = plain GAN.
    #[config(default = 0)]
    pub unroll: usize,
    /// D updates per G update (5 for WGAN).
    #[config(default = 1)]
    pub n_critic: usize,
    /// D weight clipping (0.01 for WGAN); 0 = off.
    #[config(default = 0.0)]
    pub clip: f64,
    /// "adam" (Metz et al.) or "rmsprop" (WGAN).
    #[config(default = "crate::optim::OptimizerKind::Adam")]
    pub optimizer: crate::optim::OptimizerKind,
    /// Learning rate of both players (1e-4 in Metz et al.; 5e-5 for WGAN).
    #[config(default = 1e-4)]
    pub lr: f64,
    /// G updates.
    #[config(default = 3000)]
    pub steps: usize,
    /// Points per batch (512 in Metz et al.).
    #[config(default = 512)]
    pub batch: usize,
    /// Latent size (256 in Metz et al.).
    #[config(default = 256)]
    pub nz: usize,
    /// Units in each of the two hidden layers of G and of D (128 in Metz et al.).
    #[config(default = 128)]
    pub hidden: usize,
    #[config(default = 0)]
    pub seed: u64,
}

/// A ReLU multilayer perceptron with two hidden layers.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// Layers of `sizes`, initialized from `rng` as PyTorch's nn.Linear does (the reference
    /// implementations use it): weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    pub fn new(sizes: [usize; 4], rng: &mut GanRng, device: &Device) -> Self {
        let layers = sizes.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        let mut fan_in = 0;
        crate::params::map_named(Self { layers }, |path, current| {
            // burn stores a Linear weight as [in, out]; the bias that follows shares its fan-in.
            if path.ends_with("weight") {
                fan_in = current.shape[0];
            }
            let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
            Some(crate::params::HostTensor { shape: current.shape.clone(), values: rng.uniform_vec(current.values.len(), -bound, bound) })
        })
    }

    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}

/// What a run achieved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToyReport {
    pub modes_covered: usize,
    pub modes: usize,
    /// Share of samples within 3 std of a centre.
    pub high_quality: f64,
    pub seconds: f64,
    /// The 2,500 samples measured, [2500 * 2].
    #[serde(skip)]
    pub samples: Vec<f32>,
}

/// PacGAN's counts on `points` ([n * 2]): modes with at least 20 high-quality samples, and
/// the share of high-quality samples.
pub fn coverage(mixture: Mixture, points: &[f32]) -> (usize, f64) {
    let centres = mixture.centres();
    let mut per_mode = vec![0usize; centres.len()];
    let n = points.len() / 2;
    let mut hq = 0;
    for p in points.chunks_exact(2) {
        let (k, d2) = centres
            .iter()
            .enumerate()
            .map(|(k, c)| (k, (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)))
            .fold((0, f32::MAX), |a, b| if b.1 < a.1 { b } else { a });
        if d2.sqrt() <= 3.0 * mixture.std() {
            hq += 1;
            per_mode[k] += 1;
        }
    }
    (per_mode.iter().filter(|&&c| c >= 20).count(), hq as f64 / n.max(1) as f64)
}

struct Players {
    g: Mlp,
    d: Mlp,
    opt_g: Optimizer,
    opt_d: Optimizer,
}

fn points(v: Vec<f32>, device: &Device) -> Tensor<2> {
    let n = v.len() / 2;
    Tensor::from_data(TensorData::new(v, [n, 2]), device)
}

fn latents(rng: &mut GanRng, b: usize, nz: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(rng.normal_vec(b * nz, 0.0, 1.0), [b, nz]), device)
}

/// One D update on a real batch and G's (detached) batch.
fn d_step(d: Mlp, opt: &mut Optimizer, g: &Mlp, real: Tensor<2>, z: Tensor<2>, cfg: &ToyConfig) -> Mlp {
    let fake = g.forward(z).detach(); // [b, 2]
    let b = real.dims()[0];
    let (r, f) = (d.forward(real).reshape([b]), d.forward(fake).reshape([b])); // [b]
    let loss = d_loss(cfg.loss, r.clone(), f.clone(), r.ones_like(), f.zeros_like());
    let d = opt.step(d.clone(), GradientsParams::from_grads(loss.backward(), &d));
    if cfg.clip > 0.0 {
        clip_weights(d, cfg.clip)
    } else {
        d
    }
}

/// Trains on `cfg` and measures coverage on 2,500 samples of G.
pub fn run(cfg: &ToyConfig, device: &Device) -> ToyReport {
    let t0 = std::time::Instant::now();
    let device = device.clone().autodiff();
    let mut init = GanRng::new(cfg.seed, Stream::Init);
    let mut data = GanRng::new(cfg.seed, Stream::Train);
    let h = cfg.hidden;
    let opt = || match cfg.optimizer {
        crate::optim::OptimizerKind::Adam => Optimizer::adam(cfg.lr, 0.5, 0.999, 1e-8),
        crate::optim::OptimizerKind::Rmsprop => Optimizer::rmsprop(cfg.lr, 0.99, 1e-8),
    };
    let (g, d) = (Mlp::new([cfg.nz, h, h, 2], &mut init, &device), Mlp::new([2, h, h, 1], &mut init, &device));
    let mut p = Players { g, d, opt_g: opt(), opt_d: opt() };
    for _ in 0..cfg.steps {
        p = step(p, cfg, &mut data, &device);
    }
    let z = latents(&mut data, 2500, cfg.nz, &device);
    let samples = p.g.forward(z).into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 samples");
    let (covered, hq) = coverage(cfg.mixture, &samples);
    ToyReport { modes_covered: covered, modes: cfg.mixture.centres().len(), high_quality: hq, seconds: t0.elapsed().as_secs_f64(), samples }
}

/// One G update after n_critic D updates; with `unroll` > 0, G plays against a copy of D
/// advanced that many more steps, which is then thrown away.
fn step(p: Players, cfg: &ToyConfig, data: &mut GanRng, device: &Device) -> Players {
    let Players { g, mut d, mut opt_g, mut opt_d } = p;
    let b = cfg.batch;

    // ---- update D (n_critic times) ----------------------------------------------------------
    for _ in 0..cfg.n_critic {
        let real = points(cfg.mixture.sample(b, data), device);
        let z = latents(data, b, cfg.nz, device);
        d = d_step(d, &mut opt_d, &g, real, z, cfg);
    }

    // ---- look ahead: a copy of D and its optimizer take `unroll` more steps -----------------
    let mut d_ahead = d.clone();
    let mut opt_ahead = opt_d.clone();
    for _ in 0..cfg.unroll {
        let real = points(cfg.mixture.sample(b, data), device);
        let z = latents(data, b, cfg.nz, device);
        d_ahead = d_step(d_ahead, &mut opt_ahead, &g, real, z, cfg);
    }

    // ---- update G against the (unrolled) D, frozen ------------------------------------------
    let d_frozen = d_ahead.no_grad();
    let z = latents(data, b, cfg.nz, device);
    let f = d_frozen.forward(g.forward(z)).reshape([b]); // [b]
    let r = cfg.loss.is_relativistic().then(|| d_frozen.forward(points(cfg.mixture.sample(b, data), device)).reshape([b]).detach());
    let loss = g_loss(cfg.loss, r, f, 1.0);
    let g = opt_g.step(g.clone(), GradientsParams::from_grads(loss.backward(), &g));
    Players { g, d, opt_g, opt_d }
}

/// A scatter plot of `samples` (white) over the mixture's centres (red), in [-span, span]^2.
pub fn scatter(mixture: Mixture, samples: &[f32], size: u32) -> RgbImage {
    let span = match mixture {
        Mixture::Ring8 => 3.0,
        Mixture::Grid25 => 6.0,
    };
    let mut img = RgbImage::from_pixel(size, size, image::Rgb([16, 16, 24]));
    let to_px = |v: f32| ((v / span + 1.0) * 0.5 * size as f32) as i64;
    let mut put = |x: i64, y: i64, c: [u8; 3]| {
        if (0..size as i64).contains(&x) && (0..size as i64).contains(&y) {
            img.put_pixel(x as u32, (size as i64 - 1 - y) as u32, image::Rgb(c));
        }
    };
    for p in samples.chunks_exact(2) {
        put(to_px(p[0]), to_px(p[1]), [230, 230, 230]);
    }
    for c in mixture.centres() {
        let (x, y) = (to_px(c[0]), to_px(c[1]));
        for (dx, dy) in [(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)] {
            put(x + dx, y + dy, [230, 40, 40]);
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_modes_and_quality() {
        let m = Mixture::Ring8;
        // 20 points exactly on each of the first 3 centres, 19 on the 4th, 41 far away.
        let c = m.centres();
        let mut pts = Vec::new();
        for (k, n) in [(0, 20), (1, 20), (2, 20), (3, 19)] {
            for _ in 0..n {
                pts.extend_from_slice(&c[k]);
            }
        }
        for _ in 0..41 {
            pts.extend_from_slice(&[0.0, 0.0]);
        }
        let (modes, hq) = coverage(m, &pts);
        assert_eq!(modes, 3, "a mode needs 20 high-quality samples");
        assert!((hq - 79.0 / 120.0).abs() < 1e-12);
        // 3 std is the edge: 0.059 away counts, 0.061 does not.
        assert_eq!(coverage(m, &[c[0][0] + 0.059, c[0][1]]).1, 1.0);
        assert_eq!(coverage(m, &[c[0][0] + 0.061, c[0][1]]).1, 0.0);
    }

    #[test]
    fn mixtures_sample_their_modes() {
        let mut rng = GanRng::new(1, Stream::Train);
        for m in [Mixture::Ring8, Mixture::Grid25] {
            let (modes, hq) = coverage(m, &m.sample(5000, &mut rng));
            assert_eq!(modes, m.centres().len(), "{m:?}");
            assert!(hq > 0.98, "{m:?}: {hq}");
        }
    }

    /// The look-ahead leaves D as one ordinary step leaves it: D after a step with unroll = 3
    /// equals D after a step with unroll = 0, from the same state and data.
    #[test]
    fn unrolling_does_not_change_d() {
        let device = Device::flex().autodiff();
        let cfg = ToyConfig::new().with_hidden(8).with_nz(4).with_batch(16);
        let fresh = || {
            let mut rng = GanRng::new(3, Stream::Init);
            Players {
                g: Mlp::new([4, 8, 8, 2], &mut rng, &device),
                d: Mlp::new([2, 8, 8, 1], &mut rng, &device),
                opt_g: Optimizer::adam(1e-2, 0.5, 0.999, 1e-8),
                opt_d: Optimizer::adam(1e-2, 0.5, 0.999, 1e-8),
            }
        };
        let plain = step(fresh(), &cfg, &mut GanRng::new(0, Stream::Train), &device);
        let unrolled = step(fresh(), &cfg.clone().with_unroll(3), &mut GanRng::new(0, Stream::Train), &device);
        assert_eq!(crate::params::named_tensors(&plain.d), crate::params::named_tensors(&unrolled.d));
        assert_eq!(plain.opt_d.steps, unrolled.opt_d.steps);
        // ... while G, trained against a different D, moved differently.
        assert_ne!(crate::params::named_tensors(&plain.g), crate::params::named_tensors(&unrolled.g));
    }

    /// A run reports the coverage of the 2,500 samples it returns, of the mixture it trained on.
    /// After 20 steps G's outputs have not left the origin's neighbourhood (init weights of a
    /// 2-layer MLP of width 16), while the ring's modes lie at radius 2 and count within 0.06 of
    /// a centre: no sample is high quality and no mode is covered.
    #[test]
    fn a_short_run_reports_the_coverage_of_its_samples() {
        let cfg = ToyConfig::new().with_steps(20).with_hidden(16).with_nz(8).with_batch(64);
        let r = run(&cfg, &Device::flex());
        assert_eq!(r.samples.len(), 2 * 2500);
        assert!(r.samples.iter().all(|v| v.is_finite()));
        assert_eq!((r.modes_covered, r.high_quality), coverage(Mixture::Ring8, &r.samples));
        let radius = r.samples.chunks_exact(2).map(|p| (p[0].powi(2) + p[1].powi(2)).sqrt()).fold(0.0f32, f32::max);
        assert!(radius < 1.5, "largest radius {radius}");
        assert_eq!((r.modes, r.modes_covered, r.high_quality), (8, 0, 0.0));
        let grid = run(&cfg.clone().with_mixture(Mixture::Grid25).with_steps(1), &Device::flex());
        assert_eq!(grid.modes, 25);
    }

    /// A NaN sample is never high quality (its distance to every centre compares false), so a
    /// diverged G scores 0, not NaN: 1 of these 2 points is on a centre.
    #[test]
    fn nan_samples_are_not_high_quality() {
        let c = Mixture::Ring8.centres()[0];
        assert_eq!(coverage(Mixture::Ring8, &[f32::NAN, f32::NAN, c[0], c[1]]), (0, 0.5));
    }
}
