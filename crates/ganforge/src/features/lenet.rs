//! A small LeNet-style classifier: "Gradient-Based Learning Applied to Document Recognition",
//! LeCun, Bottou, Bengio & Haffner, 1998, in the modern form (ReLU, max pooling).
//!
//! ganforge trains it on a labelled dataset (`ganforge classifier train --data mnist`, see
//! [`super::classifier`]) and ships the MNIST one. It judges generated digits where
//! Inception's ImageNet features mean little: its predictions give class coverage (how many digits a G makes, and in what proportions,
//! and Stacked MNIST's 1,000 modes, one digit per colour channel), and its 64-d penultimate
//! layer gives domain features for FID-like distances.
//!
//! Input handling: grey 28x28, 8-bit values (as a PNG would hold them) scaled to [-1, 1];
//! other sizes are resized bilinearly (`align_corners = False`, as in PyTorch).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use super::{he_init, ClassifierNet};

/// The MNIST classifier ganforge ships (trained by `ganforge classifier train --data mnist`).
pub(super) const MNIST_WEIGHTS: &[u8] = include_bytes!("../../weights/lenet_mnist.safetensors");
/// Its record: data, epochs, test accuracy.
pub const MNIST_RECORD: &str = include_str!("../../weights/lenet_mnist.json");

/// conv 5x5 (16) - pool - conv 5x5 (32) - pool - fc 64 - fc classes.
#[derive(Module, Debug)]
pub struct LeNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl LeNet {
    pub(super) const LAST_BIAS: &str = "fc2.bias";
}

impl ClassifierNet for LeNet {
    const INPUT: (usize, usize) = (1, 28);
    const FEATURE_DIM: usize = 64;

    fn init(classes: usize, seed: u64, device: &Device) -> Self {
        let conv = |cin, cout| Conv2dConfig::new([cin, cout], [5, 5]).with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2)).init(device);
        let net = Self {
            conv1: conv(1, 16),
            conv2: conv(16, 32),
            fc1: LinearConfig::new(32 * 7 * 7, Self::FEATURE_DIM).init(device),
            fc2: LinearConfig::new(Self::FEATURE_DIM, classes).init(device),
        };
        he_init(net, seed)
    }

    fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let pool = |x| max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]));
        let x = pool(relu(crate::ops::conv2d_layer(&self.conv1, x))); // [b, 16, 14, 14]
        let x = pool(relu(crate::ops::conv2d_layer(&self.conv2, x))); // [b, 32, 7, 7]
        let [b, ..] = x.dims();
        let f = relu(self.fc1.forward(x.reshape([b, 32 * 7 * 7]))); // [b, 64]
        (f.clone(), self.fc2.forward(f)) // [b, classes]
    }

    fn classes(&self) -> usize {
        self.fc2.weight.dims()[1]
    }

    fn device(&self) -> Device {
        self.fc2.weight.device()
    }
}
