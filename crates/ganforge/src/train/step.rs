//! One training step of the GAN game: update D (n_critic times), then update G.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::augment;
use crate::config::TricksConfig;
use crate::loss::{d_loss, g_loss, LossKind};
use crate::nets::{Discriminator, Generator};
use crate::optim::Optimizer;
use crate::penalty::{penalty, PenaltyKind};
use crate::rng::GanRng;

/// Both players and their optimizers: one per network.
pub struct Gan {
    pub g: Generator,
    pub d: Discriminator,
    pub opt_g: Optimizer,
    pub opt_d: Optimizer,
}

/// The rules of the game that shape a step.
#[derive(Clone, Copy, Debug)]
pub struct StepRules {
    pub loss: LossKind,
    /// Weight clipping of D after each of its updates (WGAN's c); 0 = off.
    pub clip: f64,
    /// A gradient penalty in D's loss, and its weight (lambda or gamma).
    pub penalty: PenaltyKind,
    pub penalty_weight: f64,
    /// Unrolled GAN: D steps G's update looks ahead (0 = off).
    pub unroll: usize,
}

impl Default for StepRules {
    fn default() -> Self {
        Self { loss: LossKind::Ns, clip: 0.0, penalty: PenaltyKind::None, penalty_weight: 10.0, unroll: 0 }
    }
}

/// What one step measured. `d_real` and `d_fake` are D's mean outputs on the real batch and
/// on G's batch, before D's last update: probabilities of "real" (in the configured labelling)
/// for the cross-entropy losses, raw outputs for the others (the WGAN critic's score).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    pub loss_d: f32,
    pub loss_g: f32,
    pub d_real: f32,
    pub d_fake: f32,
}

impl StepStats {
    pub fn is_finite(&self) -> bool {
        [self.loss_d, self.loss_g, self.d_real, self.d_fake].iter().all(|v| v.is_finite())
    }

    /// The values by the names the doctor reports them under.
    pub fn named(&self) -> [(&'static str, f32); 4] {
        [("loss_d", self.loss_d), ("loss_g", self.loss_g), ("D(x)", self.d_real), ("D(G(z))", self.d_fake)]
    }
}

/// The random inputs of one step, all drawn on the host from the run's training stream.
pub struct StepNoise {
    /// Latents z ~ N(0, I), [b * nz].
    pub z: Vec<f32>,
    /// D's targets for the real and the fake batch.
    pub real_targets: Vec<f32>,
    pub fake_targets: Vec<f32>,
    /// G's target: what D should say about G's samples.
    pub g_target: f32,
    /// Instance noise for D's real input, fake input (D phase) and fake input (G phase).
    pub instance: Option<[Vec<f32>; 3]>,
    /// Classes asked of G, uniform over the classes, when the GAN is conditional.
    pub fake_labels: Option<Vec<u32>>,
    /// DiffAugment draws for D's real input, its fake input, G's fake input and (relativistic
    /// losses) the real input of G's update.
    pub augment: Option<[crate::augment::Draw; 4]>,
    /// WGAN-GP: where on each real-fake segment the penalty is taken, U(0, 1) per image.
    pub gp_alpha: Option<Vec<f32>>,
    /// Unrolled GAN: the latents of each look-ahead D step.
    pub unroll_z: Vec<Vec<f32>>,
}

/// A real batch: images [b, c, s, s] and, for a conditional GAN, their class labels.
pub struct RealBatch {
    pub images: Tensor<4>,
    pub labels: Option<Vec<u32>>,
}

impl StepNoise {
    /// Draws a step's randomness in a fixed order, so that the stream position after a step
    /// depends only on the config.
    /// `classes` > 0 draws the labels asked of a conditional G, after everything else.
    pub fn draw(rng: &mut GanRng, batch: usize, nz: usize, pixels: usize, tricks: &TricksConfig, sigma: f32, classes: usize) -> Self {
        let z = rng.normal_vec(batch * nz, 0.0, 1.0);
        // Targets as "realness": 1 real, 0 fake; soft labels jitter them (Salimans et al. 2016).
        let (mut real, mut fake) = if tricks.soft_labels {
            (rng.uniform_vec(batch, 0.9, 1.0), rng.uniform_vec(batch, 0.0, 0.1))
        } else {
            (vec![1.0; batch], vec![0.0; batch])
        };
        if tricks.label_flip_p > 0.0 {
            for t in real.iter_mut().chain(fake.iter_mut()) {
                if rng.bernoulli(tricks.label_flip_p) {
                    *t = 1.0 - *t;
                }
            }
        }
        let g_target = if tricks.swap_labels {
            for t in real.iter_mut().chain(fake.iter_mut()) {
                *t = 1.0 - *t;
            }
            0.0
        } else {
            1.0
        };
        let instance = (sigma > 0.0).then(|| [0, 1, 2].map(|_| rng.normal_vec(batch * pixels, 0.0, sigma)));
        let fake_labels = (classes > 0)
            .then(|| rng.uniform_vec(batch, 0.0, classes as f32).into_iter().map(|u| (u as u32).min(classes as u32 - 1)).collect());
        Self {
            z,
            real_targets: real,
            fake_targets: fake,
            g_target,
            instance,
            fake_labels,
            augment: None,
            gp_alpha: None,
            unroll_z: Vec::new(),
        }
    }

    /// The draws of images `part` of the batch: a rank's share of the global batch in a
    /// data-parallel run. Every rank draws the whole batch from the same stream and keeps its
    /// share, so the streams stay where a single process would leave them. `nz` is the latent
    /// size, `pixels` an image's values, `side` its side.
    pub fn shard(&self, part: std::ops::Range<usize>, (nz, pixels, side): (usize, usize, usize)) -> Self {
        let rows = |v: &[f32], width: usize| v[part.start * width..part.end * width].to_vec();
        Self {
            z: rows(&self.z, nz),
            real_targets: rows(&self.real_targets, 1),
            fake_targets: rows(&self.fake_targets, 1),
            g_target: self.g_target,
            instance: self.instance.as_ref().map(|i| i.each_ref().map(|v| rows(v, pixels))),
            fake_labels: self.fake_labels.as_ref().map(|l| l[part.clone()].to_vec()),
            augment: self.augment.as_ref().map(|a| a.each_ref().map(|d| d.shard(part.clone(), side))),
            gp_alpha: self.gp_alpha.as_ref().map(|a| rows(a, 1)),
            unroll_z: self.unroll_z.iter().map(|z| rows(z, nz)).collect(),
        }
    }

    /// Adds the latents of `k` look-ahead D steps (unrolled GAN).
    pub fn with_unroll(mut self, k: usize, rng: &mut GanRng) -> Self {
        let n = self.z.len();
        self.unroll_z = (0..k).map(|_| rng.normal_vec(n, 0.0, 1.0)).collect();
        self
    }

    /// Adds WGAN-GP's interpolation points for a batch of `batch` images.
    pub fn with_gp_alpha(mut self, kind: PenaltyKind, batch: usize, rng: &mut GanRng) -> Self {
        if kind == PenaltyKind::WganGp {
            self.gp_alpha = Some(rng.uniform_vec(batch, 0.0, 1.0));
        }
        self
    }

    /// Adds DiffAugment draws for a batch of `batch` images of side `size`.
    pub fn with_augment(mut self, policy: crate::augment::Policy, batch: usize, size: usize, rng: &mut GanRng) -> Self {
        if policy.is_on() {
            self.augment = Some([0, 1, 2, 3].map(|_| crate::augment::Draw::new(policy, batch, size, rng)));
        }
        self
    }
}

fn mean_of(x: Tensor<1>) -> f32 {
    x.mean().into_scalar::<f32>()
}

/// What one D update saw: its reported loss and D's raw outputs on the real and fake batches.
struct DOutcome {
    loss: f32,
    real_out: Tensor<1>,
    fake_out: Tensor<1>,
}

/// One update of D on a real and a fake batch (images and labels), with the draw's instance
/// noise, DiffAugment and gradient-penalty points: the D phase of a step, and each look-ahead
/// step of the unrolled GAN.
fn d_update(
    mut d: Discriminator,
    opt_d: &mut Optimizer,
    (real, real_y): (Tensor<4>, Option<Tensor<1, Int>>),
    (fake, fake_y): (Tensor<4>, Option<Tensor<1, Int>>),
    noise: &StepNoise,
    rules: StepRules,
    device: &Device,
) -> (Discriminator, DOutcome) {
    let [b, c, h, w] = real.dims();
    let img = |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [b, c, h, w]), device);
    let vec1 = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
    let (mut real_in, mut fake_in) = (real, fake);
    if let Some([nr, nf, _]) = &noise.instance {
        real_in = real_in + img(nr);
        fake_in = fake_in + img(nf);
    }
    if let Some([ar, af, _, _]) = &noise.augment {
        real_in = augment::apply(real_in, ar, device);
        fake_in = augment::apply(fake_in, af, device);
    }
    // The penalty's points: real images (R1) or random points between real and fake (WGAN-GP),
    // as D sees them; conditional D is penalized with the real labels.
    let penalty_at = match rules.penalty {
        PenaltyKind::None => None,
        PenaltyKind::R1 => Some(real_in.clone()),
        PenaltyKind::WganGp => {
            let alpha =
                Tensor::<4>::from_data(TensorData::new(noise.gp_alpha.clone().expect("drawn with the penalty"), [b, 1, 1, 1]), device);
            Some(real_in.clone() * alpha.clone() + fake_in.clone() * alpha.neg().add_scalar(1.0))
            // [b, c, h, w]
        }
    };
    let real_out = d.forward(real_in, real_y.clone()); // [b]
    let fake_out = d.forward(fake_in, fake_y); // [b]
    let loss = d_loss(rules.loss, real_out.clone(), fake_out.clone(), vec1(&noise.real_targets), vec1(&noise.fake_targets)); // [1]
                                                                                                                             // Reported: the adversarial loss plus the penalty's value (the surrogate that carries the
                                                                                                                             // penalty's gradient has another value).
    let (to_minimize, reported) = match penalty_at {
        Some(x) => {
            let p = penalty(rules.penalty, rules.penalty_weight, &d, x, real_y, device);
            (loss.clone() + p.surrogate, loss.add_scalar(p.value))
        }
        None => (loss.clone(), loss),
    };
    let grads = GradientsParams::from_grads(to_minimize.backward(), &d);
    d = opt_d.step(d, grads);
    if rules.clip > 0.0 {
        d = crate::params::clip_weights(d, rules.clip);
    }
    (d, DOutcome { loss: reported.into_scalar::<f32>(), real_out, fake_out })
}

/// One step. `reals` and `noises` hold one real batch and one draw of randomness per D update
/// (n_critic of them); the last D update and G's update share one fake batch, as in the DCGAN
/// reference code, and earlier D updates draw their own. A conditional GAN's D sees real
/// images with their labels and G's images with the labels G was asked for.
pub fn train_step(gan: Gan, reals: Vec<RealBatch>, noises: &[StepNoise], rules: StepRules, device: &Device) -> (Gan, StepStats) {
    assert!(!reals.is_empty() && reals.len() == noises.len(), "one noise draw per real batch");
    let Gan { g, mut d, opt_g, mut opt_d } = gan;
    let [b, c, h, w] = reals[0].images.dims();
    let y = |l: &Option<Vec<u32>>| l.as_ref().map(|l| crate::nets::label_tensor(l, device)); // [b]
    let img = |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [b, c, h, w]), device);
    let latents = |n: &StepNoise| Tensor::<2>::from_data(TensorData::new(n.z.clone(), [b, n.z.len() / b]), device); // [b, nz]
    let report = |x: Tensor<1>| if rules.loss.is_probabilistic() { mean_of(sigmoid(x.detach())) } else { mean_of(x.detach()) };

    let last = noises.len() - 1;
    let fake_y = y(&noises[last].fake_labels);
    let fake = g.forward(latents(&noises[last]), fake_y.clone()); // [b, c, h, w], graph kept for G's update
    let (mut loss_d, mut d_real, mut d_fake) = (0.0, 0.0, 0.0);
    let last_real = rules.loss.is_relativistic().then(|| (reals[last].images.clone(), y(&reals[last].labels))); // [b, c, h, w]
    let unroll_real = (rules.unroll > 0).then(|| (reals[last].images.clone(), y(&reals[last].labels))); // [b, c, h, w]

    // ---- update D: maximize log D(x) + log(1 - D(G(z))) (or the configured loss) -------------
    // G's output is detached: this phase must not move G.
    for (k, (real, noise)) in reals.into_iter().zip(noises).enumerate() {
        let fake_y_k = y(&noise.fake_labels);
        let fake_k = if k == last { fake.clone().detach() } else { g.clone().no_grad().forward(latents(noise), fake_y_k.clone()).detach() }; // [b, c, h, w]
        let out;
        (d, out) = d_update(d, &mut opt_d, (real.images, y(&real.labels)), (fake_k, fake_y_k), noise, rules, device);
        (loss_d, d_real, d_fake) = (out.loss, report(out.real_out), report(out.fake_out));
    }

    // ---- look ahead (unrolled GAN, Metz et al. 2016): a copy of D takes `unroll` more steps -
    // on the last real batch against fresh fakes, each the same D update as above (with the last
    // draw's label noise, instance noise, augmentation and penalty points); G then plays against
    // it. The copy's weights and optimizer are thrown away, and after G's update the running
    // state the copy shares with D (batch-norm statistics, spectral-norm vectors) is restored:
    // D stays as its own update left it. burn has no second-order gradients: the term through
    // D's unrolled updates is dropped.
    let mut d_state = None;
    let d_for_g = match unroll_real {
        None => d.clone(),
        Some((real, real_y)) => {
            let state = crate::params::named_tensors(&d);
            let (mut ahead, mut opt_ahead) = (d.clone(), opt_d.clone());
            let noise = &noises[last];
            for z in &noise.unroll_z {
                let z = Tensor::<2>::from_data(TensorData::new(z.clone(), [b, z.len() / b]), device); // [b, nz]
                let fake = g.clone().no_grad().forward(z, y(&noise.fake_labels)).detach(); // [b, c, h, w]
                (ahead, _) =
                    d_update(ahead, &mut opt_ahead, (real.clone(), real_y.clone()), (fake, y(&noise.fake_labels)), noise, rules, device);
            }
            d_state = Some(state);
            ahead
        }
    };

    // ---- update G: maximize log D(G(z)) (the non-saturating loss, or the configured one) -----
    // D's weights are frozen for this pass: G's gradient flows through D, D's own is not needed.
    let (g, opt_g, loss_g) = {
        let mut opt_g = opt_g;
        let noise = &noises[last];
        let d_frozen = d_for_g.no_grad();
        let mut fake_in = fake; // [b, c, h, w]
        if let Some([_, _, ng]) = &noise.instance {
            fake_in = fake_in + img(ng);
        }
        // G's gradient flows back through the augmentation of its own images.
        if let Some([_, _, ag, _]) = &noise.augment {
            fake_in = augment::apply(fake_in, ag, device);
        }
        let fake_out = d_frozen.forward(fake_in, fake_y); // [b]
                                                          // The relativistic losses compare with D's view of real images: a constant for G.
        let real_out = last_real.map(|(x, ry)| {
            let x = match &noise.augment {
                Some([_, _, _, a]) => augment::apply(x, a, device),
                None => x,
            };
            d_frozen.forward(x, ry).detach() // [b]
        });
        let loss = g_loss(rules.loss, real_out, fake_out, noise.g_target); // [1]
        let grads = GradientsParams::from_grads(loss.backward(), &g);
        let g = opt_g.step(g, grads);
        (g, opt_g, loss.into_scalar::<f32>())
    };

    if let Some(state) = d_state {
        let shared = |name: &str| name.contains("running_") || name.ends_with("sn.u");
        d = crate::params::map_named(d, |name, _| if shared(name) { state.get(name).cloned() } else { None });
    }
    (Gan { g, d, opt_g, opt_d }, StepStats { loss_d, loss_g, d_real, d_fake })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn draw(tricks: &TricksConfig, sigma: f32) -> StepNoise {
        StepNoise::draw(&mut GanRng::new(1, Stream::Train), 4000, 3, 5, tricks, sigma, 0)
    }

    #[test]
    fn plain_targets_are_one_and_zero() {
        let n = draw(&TricksConfig::new(), 0.0);
        assert!(n.real_targets.iter().all(|&t| t == 1.0) && n.fake_targets.iter().all(|&t| t == 0.0));
        assert_eq!((n.g_target, n.z.len()), (1.0, 4000 * 3));
        assert!(n.instance.is_none());
    }

    #[test]
    fn soft_labels_lie_in_their_ranges() {
        let n = draw(&TricksConfig::new().with_soft_labels(true), 0.0);
        assert!(n.real_targets.iter().all(|t| (0.9..1.0).contains(t)));
        assert!(n.fake_targets.iter().all(|t| (0.0..0.1).contains(t)));
    }

    #[test]
    fn flips_happen_at_the_configured_rate() {
        let n = draw(&TricksConfig::new().with_label_flip_p(0.05), 0.0);
        let flipped = n.real_targets.iter().filter(|&&t| t == 0.0).count() + n.fake_targets.iter().filter(|&&t| t == 1.0).count();
        let rate = flipped as f64 / 8000.0;
        assert!((rate - 0.05).abs() < 0.01, "{rate}");
    }

    #[test]
    fn swapped_labels_call_fakes_one() {
        let n = draw(&TricksConfig::new().with_swap_labels(true), 0.0);
        assert!(n.real_targets.iter().all(|&t| t == 0.0) && n.fake_targets.iter().all(|&t| t == 1.0));
        assert_eq!(n.g_target, 0.0);
    }

    #[test]
    fn instance_noise_has_the_requested_sigma() {
        let n = draw(&TricksConfig::new(), 0.1);
        let [a, b, c] = n.instance.unwrap();
        assert_eq!(a.len(), 4000 * 5);
        let var = a.iter().map(|v| v * v).sum::<f32>() / a.len() as f32;
        assert!((var.sqrt() - 0.1).abs() < 0.005, "{var}");
        assert_ne!(a, b);
        assert_ne!(b, c);
    }

    /// The D phase must not move G (its input is detached), and the G phase must not move D
    /// (its weights are frozen): with G's learning rate 0 only D changes, and with D's 0 only G.
    #[test]
    fn each_phase_moves_only_its_network() {
        use crate::config::GanConfig;
        use crate::params::named_tensors;
        let cfg = GanConfig::resolve(None, None, &["model.image_size=16".into(), "dcgan.ngf=4".into(), "dcgan.ndf=4".into()]).unwrap();
        let device = Device::flex().autodiff();
        let real = || RealBatch { images: Tensor::<4>::ones([4, 1, 16, 16], &device), labels: None };
        let noise = StepNoise::draw(&mut GanRng::new(0, Stream::Train), 4, 100, 256, &TricksConfig::new(), 0.0, 0);
        let weights = |m: &crate::nets::Generator| named_tensors(m).into_iter().filter(|(k, _)| !k.contains("running")).collect::<Vec<_>>();
        let dweights =
            |m: &crate::nets::Discriminator| named_tensors(m).into_iter().filter(|(k, _)| !k.contains("running")).collect::<Vec<_>>();

        let (g, d) = crate::nets::build(&cfg.families(), 0, &device);
        let (g0, d0) = (weights(&g), dweights(&d));
        let gan = Gan { g, d, opt_g: Optimizer::adam(0.0, 0.5, 0.999, 1e-8), opt_d: Optimizer::adam(1e-2, 0.5, 0.999, 1e-8) };
        let (gan, stats) = train_step(gan, vec![real()], std::slice::from_ref(&noise), StepRules::default(), &device);
        assert!(stats.is_finite());
        assert_eq!(weights(&gan.g), g0, "G moved although its learning rate is 0");
        assert_ne!(dweights(&gan.d), d0);

        let (g, d) = crate::nets::build(&cfg.families(), 0, &device);
        let gan = Gan { g, d, opt_g: Optimizer::adam(1e-2, 0.5, 0.999, 1e-8), opt_d: Optimizer::adam(0.0, 0.5, 0.999, 1e-8) };
        let (gan, _) = train_step(gan, vec![real()], std::slice::from_ref(&noise), StepRules::default(), &device);
        assert_ne!(weights(&gan.g), g0);
        assert_eq!(dweights(&gan.d), d0, "D moved although its learning rate is 0");
    }

    /// The look-ahead leaves D's weights and optimizer exactly as a step without it does, and
    /// its batch-norm statistics as D's own update left them (G's pass went through the copy),
    /// while G, trained against the advanced copy, moves differently.
    #[test]
    fn unrolling_leaves_d_as_its_own_step_left_it() {
        use crate::config::GanConfig;
        use crate::params::named_tensors;
        let cfg = GanConfig::resolve(None, None, &["model.image_size=16".into(), "dcgan.ngf=4".into(), "dcgan.ndf=4".into()]).unwrap();
        let device = Device::flex().autodiff();
        let real = || RealBatch { images: Tensor::<4>::ones([4, 1, 16, 16], &device), labels: None };
        let run = |unroll: usize| {
            let mut rng = GanRng::new(0, Stream::Train);
            let noise = StepNoise::draw(&mut rng, 4, 100, 256, &TricksConfig::new(), 0.0, 0).with_unroll(unroll.max(2), &mut rng);
            let (g, d) = crate::nets::build(&cfg.families(), 0, &device);
            let gan = Gan { g, d, opt_g: Optimizer::adam(1e-2, 0.5, 0.999, 1e-8), opt_d: Optimizer::adam(1e-2, 0.5, 0.999, 1e-8) };
            let rules = StepRules { unroll, ..StepRules::default() };
            train_step(gan, vec![real()], std::slice::from_ref(&noise), rules, &device).0
        };
        let (plain, unrolled) = (run(0), run(2));
        let (a, b) = (named_tensors(&plain.d), named_tensors(&unrolled.d));
        let differing: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
        // Without unrolling, G's pass through D also moved D's batch-norm statistics.
        assert!(differing.iter().all(|k| k.contains("running_")), "{differing:?}");
        assert!(!differing.is_empty());
        assert_eq!(plain.opt_d.state_tensors(), unrolled.opt_d.state_tensors());
        assert_ne!(named_tensors(&plain.g), named_tensors(&unrolled.g));
    }
}
