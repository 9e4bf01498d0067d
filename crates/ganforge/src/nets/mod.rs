//! The networks, one file per family, each with its generator, discriminator and config.

pub mod biggan;
pub mod dcgan;
pub mod fc;
pub mod spectral;
pub mod stylegan2;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::params::{map_named, HostTensor};
use crate::rng::{GanRng, Stream};

/// Class labels as the index tensor the networks take, [b].
pub fn label_tensor(labels: &[u32], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [labels.len()]), device)
}

/// The network family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Deep convolutional GAN (Radford et al. 2015).
    Dcgan,
    /// Fully connected GAN (Goodfellow et al. 2014).
    Fc,
    /// BigGAN-style residual model with self-attention (Brock et al. 2019).
    Biggan,
    /// StyleGAN2-style model: mapping network, modulated convolutions (Karras et al. 2020).
    Stylegan2,
}

/// What every family shares: the image and latent shapes.
#[derive(Config, Debug)]
pub struct ModelShape {
    /// Network family: "dcgan", "fc", "biggan" or "stylegan2".
    #[config(default = "Arch::Dcgan")]
    pub arch: Arch,
    /// Side of the square images, a power of two from 16 to 256 (64 in the DCGAN paper).
    #[config(default = 64)]
    pub image_size: usize,
    /// Image channels: 1 (grey) or 3 (RGB).
    #[config(default = 1)]
    pub channels: usize,
    /// Length of the latent vector z ~ N(0, I) (100 in the DCGAN paper).
    #[config(default = 100)]
    pub nz: usize,
    /// Classes G and D are conditioned on (conditional GAN, Mirza & Osindero 2014): the data's
    /// class count (10 for MNIST); 0 = unconditional.
    #[config(default = 0)]
    pub classes: usize,
    /// Size of the learned label embedding of a conditional GAN.
    #[config(default = 50)]
    pub label_dim: usize,
    /// How a conditional D sees the label: "concat" (a label map, from the embedding through a
    /// fully connected layer, as an extra image channel) or "projection" (Miyato & Koyama 2018:
    /// the inner product of a class embedding with D's pooled features, added to its output).
    #[config(default = "DCond::Concat")]
    pub d_cond: DCond,
}

/// How a conditional D takes the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DCond {
    Concat,
    Projection,
}

impl ModelShape {
    pub fn pixels(&self) -> usize {
        self.channels * self.image_size * self.image_size
    }

    pub fn validate(&self) -> Result<(), String> {
        let s = self.image_size;
        if !(16..=256).contains(&s) || !s.is_power_of_two() {
            return Err(format!(
                "model.image_size = {s} is not supported: it must be a power of two from 16 to 256 (16, 32, 64, 128 or 256)"
            ));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(format!("model.channels = {} is not supported: use 1 (grey) or 3 (RGB)", self.channels));
        }
        if !(1..=4096).contains(&self.nz) {
            return Err(format!("model.nz = {} must be between 1 and 4096", self.nz));
        }
        if self.classes > 100_000 || !(1..=4096).contains(&self.label_dim) {
            return Err("model.classes must be at most 100000 and model.label_dim between 1 and 4096".into());
        }
        if self.classes > 0 && self.arch == Arch::Fc {
            return Err("a conditional GAN (model.classes > 0) is built on model.arch = \"dcgan\" or \"biggan\"".into());
        }
        Ok(())
    }
}

/// A generator of any family.
#[derive(Module, Debug)]
pub enum Generator {
    Dcgan(dcgan::Generator),
    Fc(fc::Generator),
    Biggan(biggan::Generator),
    Stylegan2(stylegan2::Generator),
}

impl Generator {
    pub fn new(f: &Families, device: &Device) -> Self {
        match f.shape.arch {
            Arch::Dcgan => Generator::Dcgan(dcgan::Generator::new(f.shape, f.dcgan, device)),
            Arch::Fc => Generator::Fc(fc::Generator::new(f.shape, f.fc, device)),
            Arch::Biggan => Generator::Biggan(biggan::Generator::new(f.shape, f.biggan, device)),
            Arch::Stylegan2 => Generator::Stylegan2(stylegan2::Generator::new(f.shape, f.stylegan2, device)),
        }
    }

    /// z [b, nz] (and class labels [b] when conditional) -> images [b, c, s, s] in [-1, 1]
    /// (StyleGAN2's are not clamped; about [-1, 1]).
    pub fn forward(&self, z: Tensor<2>, y: Option<Tensor<1, Int>>) -> Tensor<4> {
        match self {
            Generator::Dcgan(g) => g.forward(z, y),
            Generator::Fc(g) => g.forward(z),
            Generator::Biggan(g) => g.forward(z, y),
            Generator::Stylegan2(g) => g.forward(z),
        }
    }

    /// As `forward`, with StyleGAN2's sampling choices: truncation in w space (`psi`, one per
    /// image, empty for none) and its noise mode. The other families take neither (their
    /// truncation is BigGAN's, in z: `Sampler::latents_truncated`).
    pub fn sample(&self, z: Tensor<2>, y: Option<Tensor<1, Int>>, psi: &[f32], noise: stylegan2::NoiseMode) -> Tensor<4> {
        match self {
            Generator::Stylegan2(g) => g.sample(z, psi, noise),
            _ => self.forward(z, y),
        }
    }

    /// Whether the truncation trick of this family works in w space (StyleGAN2) rather than z.
    pub fn truncates_in_w(&self) -> bool {
        matches!(self, Generator::Stylegan2(_))
    }
}

/// A discriminator of any family.
#[derive(Module, Debug)]
pub enum Discriminator {
    Dcgan(dcgan::Discriminator),
    Fc(fc::Discriminator),
    Biggan(biggan::Discriminator),
    Stylegan2(stylegan2::Discriminator),
}

impl Discriminator {
    pub fn new(f: &Families, device: &Device) -> Self {
        match f.shape.arch {
            Arch::Dcgan => Discriminator::Dcgan(dcgan::Discriminator::new(f.shape, f.dcgan, device)),
            Arch::Fc => Discriminator::Fc(fc::Discriminator::new(f.shape, f.fc, device)),
            Arch::Biggan => Discriminator::Biggan(biggan::Discriminator::new(f.shape, f.biggan, device)),
            Arch::Stylegan2 => Discriminator::Stylegan2(stylegan2::Discriminator::new(f.shape, f.stylegan2, device)),
        }
    }

    /// D(x) [b] and, exactly, the forward-mode derivative of D's outputs along the tangent t
    /// [b, c, h, w] (see dcgan::Discriminator::forward_jvp); their sum is grad_x (sum_i D(x_i)) . t.
    /// The DCGAN and StyleGAN2 families only (config validation refuses gradient penalties for
    /// the others).
    pub fn forward_jvp(&self, x: Tensor<4>, t: Tensor<4>, y: Option<Tensor<1, Int>>) -> (Tensor<1>, Tensor<1>) {
        match self {
            Discriminator::Dcgan(d) => d.forward_jvp(x, t, y),
            Discriminator::Stylegan2(d) => d.forward_jvp(x, t),
            _ => panic!("gradient penalties need model.arch = \"dcgan\" or \"stylegan2\" (checked by the config)"),
        }
    }

    /// images [b, c, s, s] (and class labels [b] when conditional) -> logits [b] (no sigmoid:
    /// the loss works on logits).
    pub fn forward(&self, x: Tensor<4>, y: Option<Tensor<1, Int>>) -> Tensor<1> {
        match self {
            Discriminator::Dcgan(d) => d.forward(x, y),
            Discriminator::Fc(d) => d.forward(x),
            Discriminator::Biggan(d) => d.forward(x, y),
            Discriminator::Stylegan2(d) => d.forward(x),
        }
    }
}

/// LeakyReLU with slope 0.2, as in the DCGAN paper, composed as 0.8 relu(x) + 0.2 x.
/// On burn 0.22's CPU backend both `activation::leaky_relu` and max(x, 0.2x) go through a
/// compare-and-select forward and two masked selects backward; this form is one ReLU and
/// cheap scalar ops, 4.5x faster forward + backward (benches/leaky_relu.rs).
pub fn leaky_relu_02<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    relu(x.clone()).mul_scalar(0.8) + x.mul_scalar(0.2)
}

/// DCGAN's weight initialization (the paper, section 4): every weight N(0, 0.02), batch-norm
/// scales N(1, 0.02), biases and batch-norm shifts 0. Running statistics keep their defaults.
/// Draws come from the run's `Init` stream in module order, so they repeat on every backend.
pub fn init_weights<M: Module>(module: M, rng: &mut GanRng) -> M {
    map_named(module, |path, current| {
        let n = current.values.len();
        let name = path.rsplit('.').next().unwrap_or(path);
        let values = match name {
            "weight" => rng.normal_vec(n, 0.0, 0.02),
            "gamma" => rng.normal_vec(n, 1.0, 0.02),
            "bias" | "beta" => vec![0.0; n],
            // Spectral norm's power-iteration vector: a random unit vector, as in the paper.
            "u" => {
                let u = rng.normal_vec(n, 0.0, 1.0);
                let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                u.into_iter().map(|x| x / norm).collect()
            }
            _ => return None,
        };
        Some(HostTensor { shape: current.shape.clone(), values })
    })
}

/// Builds and initializes both networks of a model from the run seed.
pub fn build(f: &Families, seed: u64, device: &Device) -> (Generator, Discriminator) {
    let mut rng = GanRng::new(seed, Stream::Init);
    let (g, d) = (Generator::new(f, device), Discriminator::new(f, device));
    match f.shape.arch {
        // BigGAN initializes orthogonally; the others follow DCGAN's rule.
        Arch::Biggan => (biggan::init_orthogonal(g, &mut rng), biggan::init_orthogonal(d, &mut rng)),
        Arch::Stylegan2 => (stylegan2::init(g, f.stylegan2, &mut rng), stylegan2::init(d, f.stylegan2, &mut rng)),
        _ => (init_weights(g, &mut rng), init_weights(d, &mut rng)),
    }
}

/// The shape and the settings of every network family, as a config holds them.
pub struct Families<'a> {
    pub shape: &'a ModelShape,
    pub dcgan: &'a dcgan::DcganConfig,
    pub fc: &'a fc::FcConfig,
    pub biggan: &'a biggan::BigganConfig,
    pub stylegan2: &'a stylegan2::Stylegan2Config,
}

#[cfg(test)]
mod tests {
    use super::dcgan::{DcganConfig, Upsample};
    use super::fc::FcConfig;
    use super::*;
    use crate::params::named_tensors;

    fn families(s: &ModelShape) -> Families<'_> {
        static DC: std::sync::OnceLock<DcganConfig> = std::sync::OnceLock::new();
        static FC: std::sync::OnceLock<FcConfig> = std::sync::OnceLock::new();
        static BG: std::sync::OnceLock<super::biggan::BigganConfig> = std::sync::OnceLock::new();
        static SG: std::sync::OnceLock<super::stylegan2::Stylegan2Config> = std::sync::OnceLock::new();
        Families {
            shape: s,
            dcgan: DC.get_or_init(DcganConfig::new),
            fc: FC.get_or_init(FcConfig::new),
            biggan: BG.get_or_init(super::biggan::BigganConfig::new),
            stylegan2: SG.get_or_init(super::stylegan2::Stylegan2Config::new),
        }
    }

    fn shape(size: usize, channels: usize) -> ModelShape {
        ModelShape::new().with_image_size(size).with_channels(channels)
    }

    /// The paper's 64x64 model has PyTorch's DCGAN example's layer shapes.
    #[test]
    fn dcgan64_layer_shapes_match_the_paper() {
        let (g, d) = build(&families(&shape(64, 3)), 0, &Device::flex());
        let gs: Vec<(String, Vec<usize>)> =
            named_tensors(&g).into_iter().filter(|(k, _)| k.ends_with("weight")).map(|(k, v)| (k, v.shape)).collect();
        assert_eq!(
            gs,
            vec![
                ("blocks.0.up.weight".to_string(), vec![512, 256, 4, 4]),
                ("blocks.1.up.weight".to_string(), vec![256, 128, 4, 4]),
                ("blocks.2.up.weight".to_string(), vec![128, 64, 4, 4]),
                ("project.weight".to_string(), vec![100, 512, 4, 4]),
                ("to_image.weight".to_string(), vec![64, 3, 4, 4]),
            ]
        );
        let ds: Vec<(String, Vec<usize>)> =
            named_tensors(&d).into_iter().filter(|(k, _)| k.ends_with("weight")).map(|(k, v)| (k, v.shape)).collect();
        assert_eq!(
            ds,
            vec![
                ("blocks.0.conv.weight".to_string(), vec![128, 64, 4, 4]),
                ("blocks.1.conv.weight".to_string(), vec![256, 128, 4, 4]),
                ("blocks.2.conv.weight".to_string(), vec![512, 256, 4, 4]),
                ("from_image.weight".to_string(), vec![64, 3, 4, 4]),
                ("head.weight".to_string(), vec![1, 512, 4, 4]),
            ]
        );
        // No batch norm on D's input layer nor G's output layer.
        assert!(!named_tensors(&d).keys().any(|k| k.starts_with("from_image_bn")));
        assert_eq!(named_tensors(&g).keys().filter(|k| k.ends_with("gamma")).count(), 4);
        assert_eq!(named_tensors(&d).keys().filter(|k| k.ends_with("gamma")).count(), 3);
    }

    #[test]
    fn init_follows_the_paper() {
        let (g, _) = build(&families(&shape(64, 1)), 3, &Device::flex());
        let t = named_tensors(&g);
        let stats = |v: &[f32]| {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt())
        };
        let (m, s) = stats(&t["blocks.0.up.weight"].values);
        assert!(m.abs() < 1e-3 && (s - 0.02).abs() < 1e-3, "{m} {s}");
        let (m, s) = stats(&t["project_bn.gamma"].values);
        assert!((m - 1.0).abs() < 5e-3 && (s - 0.02).abs() < 5e-3, "{m} {s}");
        assert!(t["project_bn.beta"].values.iter().all(|&b| b == 0.0));
        assert!(t["project_bn.running_var"].values.iter().all(|&b| b == 1.0));
    }

    #[test]
    fn every_size_and_family_gives_the_right_shapes() {
        let device = Device::flex();
        for size in [16, 32, 64, 128, 256] {
            for (arch, up) in [(Arch::Dcgan, Upsample::Transposed), (Arch::Dcgan, Upsample::ResizeConv), (Arch::Fc, Upsample::Transposed)] {
                if arch == Arch::Fc && size > 64 {
                    continue; // dense layers of 256x256 images are huge and add nothing here
                }
                let s = shape(size, 3).with_arch(arch);
                let dc = DcganConfig::new().with_ngf(4).with_ndf(4).with_upsample(up).with_g_kernel(if up == Upsample::ResizeConv {
                    3
                } else {
                    4
                });
                let fc = FcConfig::new().with_hidden(8);
                let bg = biggan::BigganConfig::new().with_ch(8).with_attn_res(0);
                let sg = stylegan2::Stylegan2Config::new();
                let (g, d) = build(&Families { shape: &s, dcgan: &dc, fc: &fc, biggan: &bg, stylegan2: &sg }, 0, &device);
                let z = Tensor::<2>::zeros([2, 100], &device);
                let x = g.forward(z, None);
                assert_eq!(x.dims(), [2, 3, size, size], "{arch:?} {up:?} {size}");
                assert_eq!(d.forward(x, None).dims(), [2]);
            }
        }
    }
}
