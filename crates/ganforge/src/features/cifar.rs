//! A small VGG-style classifier for CIFAR-10: "Very Deep Convolutional Networks for Large-Scale
//! Image Recognition", Simonyan & Zisserman, 2014 (stacks of 3x3 convolutions between poolings),
//! with batch normalization after each convolution ("Batch Normalization", Ioffe & Szegedy,
//! 2015), at a width that trains on a 2-core CPU in about an hour.
//!
//! ganforge ships the one trained on CIFAR-10's 50,000 training photos
//! (weights/cifar10_net.json records how, and its test accuracy). It judges generated photos
//! where Inception's weights are not at hand: its predictions give class coverage (which of
//! the ten classes a G makes, and the dog share of a dogs run), and its 256-d penultimate layer
//! gives a domain FID (`--features cifar`), labelled as such and never comparable to an
//! Inception FID.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use super::{he_init, ClassifierNet};

/// The CIFAR-10 classifier ganforge ships (`ganforge classifier train --arch cifar`).
pub(super) const CIFAR10_WEIGHTS: &[u8] = include_bytes!("../../weights/cifar10_net.safetensors");
/// Its record: data, epochs, training time, test accuracy.
pub const CIFAR10_RECORD: &str = include_str!("../../weights/cifar10_net.json");

/// Channels of the three stages; each stage is two 3x3 convolutions, then a 2x2 max pool.
const WIDTHS: [usize; 3] = [32, 64, 128];

/// conv 3x3 - batch norm - ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            // No bias: batch norm's shift takes its place.
            conv: Conv2dConfig::new([cin, cout], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).with_bias(false).init(device),
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(crate::ops::conv2d_layer(&self.conv, x)))
    }
}

/// [conv-bn-relu x2, pool] at 32, 64 and 128 channels (32 -> 16 -> 8 -> 4 pixels), fc 256, fc
/// classes.
#[derive(Module, Debug)]
pub struct CifarNet {
    convs: Vec<ConvBn>,
    fc1: Linear,
    fc2: Linear,
}

impl CifarNet {
    pub(super) const LAST_BIAS: &str = "fc2.bias";
    /// A tensor only this network has (LeNet's last layer has CifarNet's name too).
    pub(super) const MARKER: &str = "convs.0.conv.weight";
}

impl ClassifierNet for CifarNet {
    const INPUT: (usize, usize) = (3, 32);
    const FEATURE_DIM: usize = 256;

    fn init(classes: usize, seed: u64, device: &Device) -> Self {
        let mut convs = Vec::new();
        let mut cin = 3;
        for w in WIDTHS {
            convs.push(ConvBn::new(cin, w, device));
            convs.push(ConvBn::new(w, w, device));
            cin = w;
        }
        let net = Self {
            convs,
            fc1: LinearConfig::new(WIDTHS[2] * 4 * 4, Self::FEATURE_DIM).init(device),
            fc2: LinearConfig::new(Self::FEATURE_DIM, classes).init(device),
        };
        he_init(net, seed)
    }

    fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let pool = |x| max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]));
        let mut x = x; // [b, 3, 32, 32]
        for pair in self.convs.chunks(2) {
            x = pool(pair[1].forward(pair[0].forward(x))); // [b, 32, 16, 16], [b, 64, 8, 8], [b, 128, 4, 4]
        }
        let [b, ..] = x.dims();
        let f = relu(self.fc1.forward(x.reshape([b, WIDTHS[2] * 4 * 4]))); // [b, 256]
        (f.clone(), self.fc2.forward(f)) // [b, classes]
    }

    fn classes(&self) -> usize {
        self.fc2.weight.dims()[1]
    }

    fn device(&self) -> Device {
        self.fc2.weight.device()
    }
}
