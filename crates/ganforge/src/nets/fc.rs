//! The original GAN: "Generative Adversarial Nets", Goodfellow et al., NeurIPS 2014
//! (arXiv:1406.2661), as the fully connected baseline.
//!
//! The paper's MNIST nets used maxout units and dropout in D; this baseline keeps its shape
//! (multilayer perceptrons for both players, sigmoid/tanh output) with the LeakyReLU(0.2)
//! hidden units that later re-implementations settled on, and no dropout so that runs stay
//! deterministic on every backend.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::tanh;
use burn::tensor::{Device, Tensor};

use super::{leaky_relu_02, ModelShape};

/// Fully connected GAN settings.
#[derive(Config, Debug)]
pub struct FcConfig {
    /// Width of the narrowest hidden layer; the three hidden layers are 1x, 2x and 4x this
    /// (G: 256-512-1024, D: 1024-512-256 at the default, as in common MNIST re-implementations).
    #[config(default = 256)]
    pub hidden: usize,
}

impl FcConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden == 0 {
            return Err("fc.hidden must be at least 1".into());
        }
        Ok(())
    }
}

/// z [b, nz] -> image [b, c, s, s].
#[derive(Module, Debug)]
pub struct Generator {
    layers: Vec<Linear>,
    out: Linear,
    image: [usize; 3],
}

impl Generator {
    pub fn new(shape: &ModelShape, cfg: &FcConfig, device: &Device) -> Self {
        let h = cfg.hidden;
        let dims = [shape.nz, h, 2 * h, 4 * h];
        let layers = dims.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        let out = LinearConfig::new(4 * h, shape.pixels()).init(device);
        Self { layers, out, image: [shape.channels, shape.image_size, shape.image_size] }
    }

    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let b = z.dims()[0];
        let mut x = z; // [b, nz]
        for layer in &self.layers {
            x = leaky_relu_02(layer.forward(x)); // [b, h..4h]
        }
        let [c, h, w] = self.image;
        tanh(self.out.forward(x)).reshape([b, c, h, w]) // [b, c, s, s]
    }
}

/// image [b, c, s, s] -> logit [b].
#[derive(Module, Debug)]
pub struct Discriminator {
    layers: Vec<Linear>,
    out: Linear,
}

impl Discriminator {
    pub fn new(shape: &ModelShape, cfg: &FcConfig, device: &Device) -> Self {
        let h = cfg.hidden;
        let dims = [shape.pixels(), 4 * h, 2 * h, h];
        let layers = dims.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        let out = LinearConfig::new(h, 1).init(device);
        Self { layers, out }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<1> {
        let b = x.dims()[0];
        let mut x: Tensor<2> = x.reshape([b as i32, -1]); // [b, c*s*s]
        for layer in &self.layers {
            x = leaky_relu_02(layer.forward(x)); // [b, 4h..h]
        }
        self.out.forward(x).reshape([b]) // [b]
    }
}
