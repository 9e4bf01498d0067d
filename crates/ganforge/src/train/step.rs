//! One training step of the GAN game: update D, then update G.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::TricksConfig;
use crate::loss::{bce_with_logits, generator_loss};
use crate::nets::{Discriminator, Generator};
use crate::optim::Adam;
use crate::rng::GanRng;

/// Both players and their optimizers: one Adam per network.
pub struct Gan {
    pub g: Generator,
    pub d: Discriminator,
    pub opt_g: Adam,
    pub opt_d: Adam,
}

/// What one step measured. `d_real` and `d_fake` are mean D outputs (probabilities of "real",
/// in the configured labelling) on the real batch and on G's batch, before D's update.
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
}

impl StepNoise {
    /// Draws a step's randomness in a fixed order, so that the stream position after a step
    /// depends only on the config.
    pub fn draw(rng: &mut GanRng, batch: usize, nz: usize, pixels: usize, tricks: &TricksConfig, sigma: f32) -> Self {
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
        Self { z, real_targets: real, fake_targets: fake, g_target, instance }
    }
}

fn mean_of(x: Tensor<1>) -> f32 {
    x.mean().into_scalar::<f32>()
}

/// One step: D on a real batch and a detached fake batch, then G through the updated D.
pub fn train_step(gan: Gan, real: Tensor<4>, noise: &StepNoise, device: &Device) -> (Gan, StepStats) {
    let Gan { g, d, mut opt_g, mut opt_d } = gan;
    let [b, c, h, w] = real.dims();
    let vec1 = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
    let img = |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [b, c, h, w]), device);
    let nz = noise.z.len() / b;
    let z = Tensor::<2>::from_data(TensorData::new(noise.z.clone(), [b, nz]), device); // [b, nz]

    let fake = g.forward(z); // [b, c, h, w], graph kept for G's update

    // ---- update D: maximize log D(x) + log(1 - D(G(z))) -------------------------------------
    // G's output is detached: this phase must not move G.
    let mut real_in = real; // [b, c, h, w]
    let mut fake_in = fake.clone().detach(); // [b, c, h, w]
    if let Some([nr, nf, _]) = &noise.instance {
        real_in = real_in + img(nr);
        fake_in = fake_in + img(nf);
    }
    let real_logits = d.forward(real_in); // [b]
    let fake_logits = d.forward(fake_in); // [b]
    let d_real = mean_of(sigmoid(real_logits.clone().detach()));
    let d_fake = mean_of(sigmoid(fake_logits.clone().detach()));
    let loss_d = bce_with_logits(real_logits, vec1(&noise.real_targets)) + bce_with_logits(fake_logits, vec1(&noise.fake_targets)); // [1]
    let grads_d = GradientsParams::from_grads(loss_d.backward(), &d);
    let d = opt_d.step(d, grads_d);

    // ---- update G: maximize log D(G(z)) (the non-saturating loss) ----------------------------
    // D's weights are frozen for this pass: G's gradient flows through D, D's own is not needed.
    let d_frozen = d.clone().no_grad();
    let mut fake_in = fake; // [b, c, h, w]
    if let Some([_, _, ng]) = &noise.instance {
        fake_in = fake_in + img(ng);
    }
    let loss_g = generator_loss(d_frozen.forward(fake_in), noise.g_target); // [1]
    let grads_g = GradientsParams::from_grads(loss_g.backward(), &g);
    let g = opt_g.step(g, grads_g);

    let stats = StepStats {
        loss_d: loss_d.into_scalar::<f32>(),
        loss_g: loss_g.into_scalar::<f32>(),
        d_real,
        d_fake,
    };
    (Gan { g, d, opt_g, opt_d }, stats)
}
