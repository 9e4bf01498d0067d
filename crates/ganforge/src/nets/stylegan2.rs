//! A StyleGAN2-style model: "Analyzing and Improving the Image Quality of StyleGAN", Karras,
//! Laine, Aittala, Hellsten, Lehtinen & Aila, CVPR 2020 (arXiv:1912.04958), with the layer
//! layout, gains and names of NVlabs' stylegan2-ada-pytorch (config F: skip generator,
//! residual discriminator), so that the formulas can be checked one by one against it.
//!
//! Generator: a mapping network z -> w (2nd-moment normalized z, fully connected layers with
//! equalized learning rate and a learning-rate multiplier of 0.01) whose moving average w_avg
//! is kept for the truncation trick; a synthesis network from a learned 4x4 constant through
//! modulated and demodulated 3x3 convolutions (the paper's section 2.2), per-pixel noise with a
//! learned strength, and an RGB output at every resolution summed into the image (skip
//! connections). Up-sampling is zero insertion followed by the [1, 3, 3, 1] low-pass filter
//! (FIR), which has no checkerboard.
//!
//! Discriminator: residual blocks (FIR down-sampling, 1x1 skip), minibatch standard deviation
//! (groups of 4), a 3x3 convolution, two fully connected layers. Every layer stores N(0, 1)
//! weights and multiplies them by He's constant at run time (equalized learning rate);
//! LeakyReLU(0.2) outputs are scaled by sqrt(2).
//!
//! G's randomness (the noise inputs, and in training the style-mixing latent and crossover
//! point) comes from a generator seeded by the latent's own bits, so an image is a function of
//! its z, and runs repeat bit for bit on every backend.
//!
//! Implementation choices: modulation is computed unfused (scale the input by the style,
//! convolve with the shared weight, scale the output by the demodulation coefficients; NVlabs'
//! `fused_modconv = False`, the same function as the grouped convolution); the convolution of an
//! up-sampling layer follows NVlabs' generic path (FIR up-sampling padded [3, 2], then a valid
//! convolution with the flipped kernel, i.e. a true convolution as NVlabs' transposed path
//! computes it). Left out: conditioning (classes), the fp16 clamps, path-length regularization.

use burn::config::Config;
use burn::module::{Module, Param, RunningState};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use super::{leaky_relu_02, ModelShape};
use crate::ops::conv2d;
use crate::params::{map_named, HostTensor};
use crate::rng::{GanRng, Stream};

/// StyleGAN2-style settings (defaults scaled down from the paper's config F for a CPU).
#[derive(Config, Debug)]
pub struct Stylegan2Config {
    /// Size of w, the intermediate latent (512 in the paper; 128 trains on a CPU).
    #[config(default = 128)]
    pub w_dim: usize,
    /// Fully connected layers of the mapping network (8 in the paper; NVlabs' CIFAR-10 config uses 2).
    #[config(default = 8)]
    pub mapping_layers: usize,
    /// Learning-rate multiplier of the mapping network (0.01 in the paper: w moves slowly).
    #[config(default = 0.01)]
    pub mapping_lr_mul: f64,
    /// Channels at resolution r: min(channel_base / r, channel_max) (NVlabs: 32768 and 512;
    /// 1024 and 128 give 32 channels at 32x32, 64 at 16x16 and 128 below, a size a CPU trains).
    #[config(default = 1024)]
    pub channel_base: usize,
    /// The most channels of any layer (see channel_base).
    #[config(default = 128)]
    pub channel_max: usize,
    /// Images per group of D's minibatch standard deviation (4 in the paper); a batch that is
    /// not a multiple uses the largest common divisor.
    #[config(default = 4)]
    pub mbstd_group: usize,
    /// Decay of the moving average of w kept for truncation (0.995 in NVlabs' code).
    #[config(default = 0.995)]
    pub w_avg_beta: f64,
    /// Probability that a training batch mixes two latents' styles at a random layer (0.9 in
    /// the paper's style-mixing regularization; 0 = off).
    #[config(default = 0.9)]
    pub style_mixing: f64,
}

impl Stylegan2Config {
    pub fn validate(&self, shape: &ModelShape) -> Result<(), String> {
        if !(1..=2048).contains(&self.w_dim) {
            return Err(format!("stylegan2.w_dim = {} must be between 1 and 2048", self.w_dim));
        }
        if !(1..=16).contains(&self.mapping_layers) {
            return Err(format!("stylegan2.mapping_layers = {} must be between 1 and 16", self.mapping_layers));
        }
        if !(self.mapping_lr_mul > 0.0 && self.mapping_lr_mul <= 1.0) {
            return Err(format!("stylegan2.mapping_lr_mul = {} must be in (0, 1]", self.mapping_lr_mul));
        }
        if self.channel_max == 0 || self.channel_max > 2048 || self.channel_base / shape.image_size == 0 {
            return Err(format!(
                "stylegan2.channel_base = {} and channel_max = {} give no channels at {}x{}: channel_base must be at least model.image_size and channel_max between 1 and 2048",
                self.channel_base, self.channel_max, shape.image_size, shape.image_size
            ));
        }
        if self.mbstd_group == 0 {
            return Err("stylegan2.mbstd_group must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.w_avg_beta) || !(0.0..=1.0).contains(&self.style_mixing) {
            return Err("stylegan2.w_avg_beta must be in [0, 1) and stylegan2.style_mixing in [0, 1]".into());
        }
        if shape.classes > 0 {
            return Err("model.arch = \"stylegan2\" is unconditional here: set model.classes = 0".into());
        }
        Ok(())
    }

    fn channels(&self, res: usize) -> usize {
        (self.channel_base / res).min(self.channel_max)
    }
}

/// How the synthesis network's noise inputs are filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseMode {
    /// Fresh per image, drawn from the image's latent (training, and sampling by default).
    #[default]
    Random,
    /// The fixed noise buffers stored with G (as NVlabs' `noise_mode='const'`).
    Const,
    /// No noise.
    None,
}

impl std::str::FromStr for NoiseMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "random" => Ok(Self::Random),
            "const" => Ok(Self::Const),
            "none" => Ok(Self::None),
            _ => Err(format!("'{s}' is not a noise mode: use random, const or none")),
        }
    }
}

const SQRT2: f64 = std::f64::consts::SQRT_2;

/// LeakyReLU(0.2) scaled by sqrt(2) and `gain` (NVlabs' bias_act 'lrelu' gain).
fn lrelu<const D: usize>(x: Tensor<D>, gain: f64) -> Tensor<D> {
    leaky_relu_02(x).mul_scalar(SQRT2 * gain)
}

/// Its derivative at `a`, held constant: sqrt(2) gain (0.2 or 1).
fn lrelu_slope<const D: usize>(a: &Tensor<D>, gain: f64) -> Tensor<D> {
    a.clone().greater_elem(0.0).float().mul_scalar(0.8).add_scalar(0.2).mul_scalar(SQRT2 * gain).detach()
}

// ---- resampling with the [1, 3, 3, 1] filter (NVlabs' upfirdn2d, separable) --------------------

/// The 1-D filter, normalized to sum 1; the 2-D filter is its outer product.
const FIR: [f64; 4] = [0.125, 0.375, 0.375, 0.125];

/// NVlabs' upfirdn2d along one axis of length n, as a matrix [n, m] in row-major order: zero
/// insertion (`up - 1` zeros after each sample), zero padding (before, after), correlation with
/// FIR * gain, then every `down`-th sample. Applied as a matrix product it is one contiguous
/// gemm per axis: the same sums as shifted slices, which burn-flex computes through its slow
/// strided path (they made StyleGAN2's training step 3x slower).
fn resample_matrix(n: usize, up: usize, (before, after): (usize, usize), down: usize, gain: f64) -> (Vec<f32>, usize) {
    let filtered = n * up + before + after - 3;
    let m = filtered.div_ceil(down);
    let mut a = vec![0f32; n * m];
    for j in 0..m {
        for (k, f) in FIR.iter().enumerate() {
            // Output j reads padded sample j * down + k, which is input sample u / up when it
            // falls on one (not on an inserted zero nor in the padding).
            let Some(u) = (j * down + k).checked_sub(before) else { continue };
            if u % up == 0 && u / up < n {
                a[(u / up) * m + j] += (f * gain) as f32;
            }
        }
    }
    (a, m)
}

/// [`resample_matrix`] on both spatial axes: [b, c, h, w] -> [b, c, h', w'] (gain per axis).
fn resample(x: Tensor<4>, up: usize, pad: (usize, usize), down: usize, gain: f64) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let (aw, w2) = resample_matrix(w, up, pad, down, gain);
    let (ah, h2) = resample_matrix(h, up, pad, down, gain);
    let ah_t: Vec<f32> = (0..h2).flat_map(|i| (0..h).map(move |r| (i, r))).map(|(i, r)| ah[r * h2 + i]).collect(); // [h', h]
    let aw = Tensor::<2>::from_data(TensorData::new(aw, [w, w2]), &device);
    let ah_t = Tensor::<3>::from_data(TensorData::new(ah_t, [1, h2, h]), &device);
    let x = x.reshape([b * c * h, w]).matmul(aw); // [b c h, w']
    ah_t.matmul(x.reshape([b * c, h, w2])).reshape([b, c, h2, w2]) // [1, h', h] x [b c, h, w'] -> [b, c, h', w']
}

/// The low-pass filter with zero padding: [b, c, h, w] -> [b, c, h + before + after - 3, ...].
fn fir(x: Tensor<4>, pad: (usize, usize), gain_per_axis: f64) -> Tensor<4> {
    resample(x, 1, pad, 1, gain_per_axis)
}

/// NVlabs' upsample2d: [b, c, h, w] -> [b, c, 2h, 2w], gain 4 (2 per axis) keeps the mean.
fn upsample2d(x: Tensor<4>) -> Tensor<4> {
    resample(x, 2, (2, 1), 1, 2.0)
}

/// NVlabs' downsample2d: low-pass (padded 1) then every second sample: [b, c, h, w] -> [b, c, h/2, w/2].
fn downsample2d(x: Tensor<4>) -> Tensor<4> {
    resample(x, 1, (1, 1), 2, 1.0)
}

fn conv(x: Tensor<4>, w: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    conv2d(x, w, None, ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1))
}

// ---- layers ------------------------------------------------------------------------------------

/// A fully connected layer with equalized learning rate: stored weight N(0, 1) / lr_mul, used
/// as weight * lr_mul / sqrt(in) and bias * lr_mul (NVlabs' FullyConnectedLayer).
#[derive(Module, Debug)]
pub struct FullyConnected {
    weight: Param<Tensor<2>>, // [out, in]
    bias: Param<Tensor<1>>,   // [out]
    weight_gain: f64,
    bias_gain: f64,
    activation: bool,
}

impl FullyConnected {
    fn new(din: usize, dout: usize, lr_mul: f64, activation: bool, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::zeros([dout, din], device)),
            bias: Param::from_tensor(Tensor::zeros([dout], device)),
            weight_gain: lr_mul / (din as f64).sqrt(),
            bias_gain: lr_mul,
            activation,
        }
    }

    /// The pre-activation without the bias: the layer's linear part (the tangent's map).
    fn linear(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose().mul_scalar(self.weight_gain)) // [b, out]
    }

    fn pre(&self, x: Tensor<2>) -> Tensor<2> {
        let [dout] = self.bias.val().dims();
        self.linear(x) + self.bias.val().mul_scalar(self.bias_gain).reshape([1, dout])
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let a = self.pre(x);
        if self.activation {
            lrelu(a, 1.0)
        } else {
            a
        }
    }
}

/// A discriminator convolution with equalized learning rate (NVlabs' Conv2dLayer).
#[derive(Module, Debug)]
pub struct ConvLayer {
    weight: Param<Tensor<4>>, // [out, in, k, k]
    bias: Option<Param<Tensor<1>>>,
    down: bool,
    activation: bool,
}

impl ConvLayer {
    fn new(cin: usize, cout: usize, k: usize, bias: bool, down: bool, activation: bool, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::zeros([cout, cin, k, k], device)),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([cout], device))),
            down,
            activation,
        }
    }

    /// Resampling and convolution without the bias: the linear part.
    fn linear(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, cin, k, _] = self.weight.val().dims();
        let w = self.weight.val().mul_scalar(1.0 / ((cin * k * k) as f64).sqrt());
        match (self.down, k) {
            (false, _) => conv(x, w, 1, k / 2),
            (true, 1) => conv(downsample2d(x), w, 1, 0),     // [b, out, h/2, w/2]
            (true, _) => conv(fir(x, (2, 2), 1.0), w, 2, 0), // [b, out, h/2, w/2]
        }
    }

    /// The layer and, when a tangent is given, its Jacobian-vector product.
    fn run(&self, x: Tensor<4>, t: Option<Tensor<4>>, gain: f64) -> (Tensor<4>, Option<Tensor<4>>) {
        let t = t.map(|t| self.linear(t));
        let mut a = self.linear(x);
        if let Some(b) = &self.bias {
            let [c] = b.val().dims();
            a = a + b.val().reshape([1, c, 1, 1]);
        }
        if self.activation {
            let t = t.map(|t| t * lrelu_slope(&a, gain));
            (lrelu(a, gain), t)
        } else {
            (a.mul_scalar(gain), t.map(|t| t.mul_scalar(gain)))
        }
    }
}

/// A modulated 3x3 convolution with demodulation, noise, bias and LeakyReLU (NVlabs'
/// SynthesisLayer).
#[derive(Module, Debug)]
pub struct SynthesisLayer {
    affine: FullyConnected,
    weight: Param<Tensor<4>>,             // [out, in, 3, 3]
    noise_strength: Param<Tensor<1>>,     // [1] (a scalar in NVlabs' state dict)
    bias: Param<Tensor<1>>,               // [out]
    noise_const: RunningState<Tensor<2>>, // [res, res]
    up: bool,
}

impl SynthesisLayer {
    fn new(cin: usize, cout: usize, w_dim: usize, res: usize, up: bool, device: &Device) -> Self {
        Self {
            affine: FullyConnected::new(w_dim, cin, 1.0, false, device),
            weight: Param::from_tensor(Tensor::zeros([cout, cin, 3, 3], device)),
            noise_strength: Param::from_tensor(Tensor::zeros([1], device)),
            bias: Param::from_tensor(Tensor::zeros([cout], device)),
            noise_const: RunningState::new(Tensor::zeros([res, res], device)),
            up,
        }
    }

    /// x [b, in, h, w], w [b, w_dim], noise [b, 1, res, res] (unscaled) -> [b, out, res, res].
    fn forward(&self, x: Tensor<4>, w: Tensor<2>, noise: Option<Tensor<4>>) -> Tensor<4> {
        let [b, cin, _, _] = x.dims();
        let weight = self.weight.val(); // [out, in, 3, 3]
        let [cout, _, _, _] = weight.dims();
        let styles = self.affine.forward(w); // [b, in]
        let x = x * styles.clone().reshape([b, cin, 1, 1]); // modulate: [b, in, h, w]
        let x = if self.up {
            // A true convolution (NVlabs' up-sampling layers do not flip into correlation).
            let up = resample(x, 2, (3, 2), 1, 2.0); // [b, in, 2h + 2, 2w + 2]
            conv(up, weight.clone().flip([2, 3]), 1, 0) // [b, out, 2h, 2w]
        } else {
            conv(x, weight.clone(), 1, 1) // [b, out, h, w]
        };
        // Demodulate: 1 / sqrt(sum over in, k of (weight * style)^2), per image and output channel.
        let wsq = weight.square().sum_dim(3).sum_dim(2).reshape([cout, cin]); // [out, in]
        let dcoefs = styles.square().matmul(wsq.transpose()).add_scalar(1e-8).sqrt().recip(); // [b, out]
        let mut x = x * dcoefs.reshape([b, cout, 1, 1]); // [b, out, res, res]
        if let Some(n) = noise {
            x = x + n * self.noise_strength.val().reshape([1, 1, 1, 1]);
        }
        lrelu(x + self.bias.val().reshape([1, cout, 1, 1]), 1.0)
    }

    fn const_noise(&self, b: usize) -> Tensor<4> {
        let n = self.noise_const.value();
        let [h, w] = n.dims();
        n.reshape([1, 1, h, w]).repeat_dim(0, b) // [b, 1, res, res]
    }
}

/// A modulated 1x1 convolution without demodulation, to RGB (NVlabs' ToRGBLayer).
#[derive(Module, Debug)]
pub struct ToRgb {
    affine: FullyConnected,
    weight: Param<Tensor<4>>, // [channels, in, 1, 1]
    bias: Param<Tensor<1>>,   // [channels]
}

impl ToRgb {
    fn forward(&self, x: Tensor<4>, w: Tensor<2>) -> Tensor<4> {
        let [b, cin, _, _] = x.dims();
        let [c] = self.bias.val().dims();
        let styles = self.affine.forward(w).mul_scalar(1.0 / (cin as f64).sqrt()); // [b, in]
        conv(x * styles.reshape([b, cin, 1, 1]), self.weight.val(), 1, 0) + self.bias.val().reshape([1, c, 1, 1])
        // [b, c, h, w]
    }
}

/// One resolution of the synthesis network (NVlabs' SynthesisBlock, architecture 'skip').
#[derive(Module, Debug)]
pub struct SynthesisBlock {
    /// The learned input of the 4x4 block, [c, 4, 4].
    constant: Option<Param<Tensor<3>>>,
    conv0: Option<SynthesisLayer>,
    conv1: SynthesisLayer,
    torgb: ToRgb,
}

impl SynthesisBlock {
    fn num_conv(&self) -> usize {
        1 + self.conv0.is_some() as usize
    }
}

/// z -> w (NVlabs' MappingNetwork, unconditional).
#[derive(Module, Debug)]
pub struct Mapping {
    fc: Vec<FullyConnected>,
    /// Moving average of w over training batches, the centre of the truncation trick.
    w_avg: RunningState<Tensor<1>>, // [w_dim]
    w_avg_beta: f64,
}

impl Mapping {
    /// z [b, nz] -> w [b, w_dim]; in training (an autodiff device) w_avg moves toward the batch mean.
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        self.to_w(z, true)
    }

    /// z -> w; `track` lets a training pass move w_avg (the style-mixing latents do not, as in
    /// NVlabs' `skip_w_avg_update`: w_avg is the mean of the w that G is asked to draw).
    fn to_w(&self, z: Tensor<2>, track: bool) -> Tensor<2> {
        let mut x = z.clone() * z.square().mean_dim(1).add_scalar(1e-8).sqrt().recip(); // normalize_2nd_moment: [b, nz]
        for fc in &self.fc {
            x = fc.forward(x); // [b, w_dim]
        }
        if track && x.device().is_autodiff() {
            let [_, d] = x.dims();
            let avg = self.w_avg.value_sync().to_device(&x.device());
            let mean = x.clone().detach().mean_dim(0).reshape([d]);
            // lerp(mean, w_avg, beta) = mean + beta (w_avg - mean)
            self.w_avg.update((mean.clone() + (avg - mean).mul_scalar(self.w_avg_beta)).detach().inner());
        }
        x
    }

    /// The moving average, with this thread's last update applied.
    pub fn w_avg(&self) -> Tensor<1> {
        self.w_avg.value_sync()
    }
}

/// The synthesis network: w per layer -> image.
#[derive(Module, Debug)]
pub struct Synthesis {
    blocks: Vec<SynthesisBlock>,
}

/// The StyleGAN2 generator: z [b, nz] -> image [b, c, s, s] (not clamped: about [-1, 1]).
#[derive(Module, Debug)]
pub struct Generator {
    pub mapping: Mapping,
    synthesis: Synthesis,
    style_mixing: f64,
}

/// A seed from a latent's bits (FNV-1a), for the randomness that goes with it.
fn latent_seed(z: &[f32]) -> u64 {
    z.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ v.to_bits() as u64).wrapping_mul(0x0100_0000_01b3))
}

fn host_rows(z: &Tensor<2>) -> Vec<Vec<f32>> {
    let [b, n] = z.dims();
    let v: Vec<f32> = z.clone().into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 latents");
    (0..b).map(|i| v[i * n..(i + 1) * n].to_vec()).collect()
}

impl Generator {
    pub fn new(shape: &ModelShape, cfg: &Stylegan2Config, device: &Device) -> Self {
        let fc = (0..cfg.mapping_layers)
            .map(|i| FullyConnected::new(if i == 0 { shape.nz } else { cfg.w_dim }, cfg.w_dim, cfg.mapping_lr_mul, true, device))
            .collect();
        let mapping = Mapping { fc, w_avg: RunningState::new(Tensor::zeros([cfg.w_dim], device)), w_avg_beta: cfg.w_avg_beta };
        let mut blocks = Vec::new();
        let mut res = 4;
        while res <= shape.image_size {
            let cout = cfg.channels(res);
            let (constant, conv0) = if res == 4 {
                (Some(Param::from_tensor(Tensor::zeros([cout, 4, 4], device))), None)
            } else {
                (None, Some(SynthesisLayer::new(cfg.channels(res / 2), cout, cfg.w_dim, res, true, device)))
            };
            blocks.push(SynthesisBlock {
                constant,
                conv0,
                conv1: SynthesisLayer::new(cout, cout, cfg.w_dim, res, false, device),
                torgb: ToRgb {
                    affine: FullyConnected::new(cfg.w_dim, cout, 1.0, false, device),
                    weight: Param::from_tensor(Tensor::zeros([shape.channels, cout, 1, 1], device)),
                    bias: Param::from_tensor(Tensor::zeros([shape.channels], device)),
                },
            });
            res *= 2;
        }
        Self { mapping, synthesis: Synthesis { blocks }, style_mixing: cfg.style_mixing }
    }

    /// How many w vectors the synthesis takes: one per convolution, and one for the last toRGB.
    pub fn num_ws(&self) -> usize {
        self.synthesis.blocks.iter().map(|b| b.num_conv()).sum::<usize>() + 1
    }

    /// In training (an autodiff device): style mixing regularization, then random noise.
    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let rows = host_rows(&z);
        let n = self.num_ws();
        let mut ws = self.ws(z.clone(), &[]); // [b, num_ws, w_dim]
        let [b, _, d] = ws.dims();
        if z.device().is_autodiff() && self.style_mixing > 0.0 {
            // As NVlabs' loss.run_G: with probability p, the layers from a random cutoff in
            // 1..num_ws take the styles of a second latent (one cutoff per batch).
            let mut rng = GanRng::new(latent_seed(&rows.concat()), Stream::Synthesis);
            let cutoff = 1 + rng.below(n - 1);
            if rng.bernoulli(self.style_mixing) {
                let [_, nz] = z.dims();
                let z2 = Tensor::<2>::from_data(TensorData::new(rng.normal_vec(b * nz, 0.0, 1.0), [b, nz]), &z.device());
                let w2 = self.mapping.to_w(z2, false).reshape([b, 1, d]).repeat_dim(1, n - cutoff); // [b, n - cutoff, w_dim]
                ws = Tensor::cat(vec![ws.narrow(1, 0, cutoff), w2], 1);
            }
        }
        self.synthesize(ws, &rows, NoiseMode::Random)
    }

    /// Sampling: truncation in w space (`psi`, one per image, or empty for none) and a noise mode.
    pub fn sample(&self, z: Tensor<2>, psi: &[f32], noise: NoiseMode) -> Tensor<4> {
        let rows = host_rows(&z);
        let ws = self.ws(z, psi);
        self.synthesize(ws, &rows, noise)
    }

    /// z [b, nz] -> w per layer [b, num_ws, w_dim], image i pulled toward w_avg by psi[i]:
    /// w_avg + psi (w - w_avg) (empty psi: no truncation).
    pub fn ws(&self, z: Tensor<2>, psi: &[f32]) -> Tensor<3> {
        let w = self.mapping.forward(z); // [b, w_dim]
        let [b, d] = w.dims();
        let w = if psi.is_empty() || psi.iter().all(|&p| p == 1.0) {
            w
        } else {
            assert_eq!(psi.len(), b, "one psi per image");
            let device = w.device();
            let avg = self.mapping.w_avg().to_device(&device).reshape([1, d]);
            let psi = Tensor::<2>::from_data(TensorData::new(psi.to_vec(), [b, 1]), &device);
            avg.clone() + (w - avg) * psi
        };
        w.reshape([b, 1, d]).repeat_dim(1, self.num_ws())
    }

    /// Style mixing: `base`'s styles with those of `layers` taken from `from` ([b, num_ws, w_dim]
    /// each; layer 0 is the 4x4 convolution, coarse styles first).
    pub fn mix(&self, base: Tensor<3>, from: Tensor<3>, layers: std::ops::Range<usize>) -> Tensor<3> {
        let n = self.num_ws();
        let (lo, hi) = (layers.start.min(n), layers.end.min(n));
        if lo >= hi {
            return base;
        }
        let mut parts = vec![];
        if lo > 0 {
            parts.push(base.clone().narrow(1, 0, lo));
        }
        parts.push(from.narrow(1, lo, hi - lo));
        if hi < n {
            parts.push(base.narrow(1, hi, n - hi));
        }
        Tensor::cat(parts, 1)
    }

    /// ws [b, num_ws, w_dim] -> images, with the noise drawn from each image's latent `seeds`
    /// (its z's values; used only in `NoiseMode::Random`).
    pub fn synthesize(&self, ws: Tensor<3>, seeds: &[Vec<f32>], noise: NoiseMode) -> Tensor<4> {
        let [b, _, d] = ws.dims();
        let device = ws.device();
        let mut rngs: Vec<GanRng> = seeds.iter().map(|z| GanRng::new(latent_seed(z), Stream::Synthesis)).collect();
        let mut draw = |layer: &SynthesisLayer, res: usize| -> Option<Tensor<4>> {
            match noise {
                NoiseMode::None => None,
                NoiseMode::Const => Some(layer.const_noise(b)),
                NoiseMode::Random => {
                    let v: Vec<f32> = rngs.iter_mut().flat_map(|r| r.normal_vec(res * res, 0.0, 1.0)).collect();
                    Some(Tensor::from_data(TensorData::new(v, [b, 1, res, res]), &device))
                }
            }
        };
        let w_at = |i: usize| ws.clone().narrow(1, i, 1).reshape([b, d]); // [b, w_dim]
        let (mut x, mut img): (Option<Tensor<4>>, Option<Tensor<4>>) = (None, None);
        let mut idx = 0;
        let mut res = 4;
        for block in &self.synthesis.blocks {
            let mut h = match (&block.constant, x.take(), &block.conv0) {
                (Some(c), _, _) => {
                    let [ch, _, _] = c.val().dims();
                    c.val().reshape([1, ch, 4, 4]).repeat_dim(0, b) // [b, c4, 4, 4]
                }
                (None, Some(prev), Some(conv0)) => conv0.forward(prev, w_at(idx), draw(conv0, res)), // [b, c, res, res]
                _ => unreachable!("every block after the first has conv0 and an input"),
            };
            let j = idx + block.num_conv() - 1;
            h = block.conv1.forward(h, w_at(j), draw(&block.conv1, res)); // [b, c, res, res]
            let y = block.torgb.forward(h.clone(), w_at(j + 1)); // [b, channels, res, res]
            img = Some(match img {
                Some(prev) => upsample2d(prev) + y,
                None => y,
            });
            x = Some(h);
            idx += block.num_conv();
            res *= 2;
        }
        img.expect("at least the 4x4 block")
    }
}

// ---- discriminator -----------------------------------------------------------------------------

/// One residual block of D (NVlabs' DiscriminatorBlock, architecture 'resnet').
#[derive(Module, Debug)]
pub struct DBlock {
    fromrgb: Option<ConvLayer>,
    conv0: ConvLayer,
    conv1: ConvLayer,
    skip: ConvLayer,
}

/// The 4x4 end of D: minibatch stddev, conv, fc, out (NVlabs' DiscriminatorEpilogue).
#[derive(Module, Debug)]
pub struct Epilogue {
    conv: ConvLayer,
    fc: FullyConnected,
    out: FullyConnected,
    mbstd_group: usize,
}

/// The StyleGAN2 discriminator: image [b, c, s, s] -> one logit per image [b].
#[derive(Module, Debug)]
pub struct Discriminator {
    blocks: Vec<DBlock>,
    epilogue: Epilogue,
}

/// Minibatch standard deviation (Karras et al. 2018, as NVlabs' MinibatchStdLayer with one
/// channel): images i and j share a group when i = j mod (N / G); the new channel is the mean
/// over channels and pixels of the within-group standard deviation. With a tangent, its exact
/// forward-mode derivative, a smooth function of the primal values (nothing detached), so that
/// R1's weight gradient through it is exact.
pub fn minibatch_stddev(x: Tensor<4>, t: Option<Tensor<4>>, group: usize) -> (Tensor<4>, Option<Tensor<4>>) {
    let [n, c, h, w] = x.dims();
    let g = gcd(group.min(n), n);
    let m = n / g;
    let dev = |v: Tensor<4>| {
        let v = v.reshape([g, m, c, h, w]);
        v.clone() - v.mean_dim(0) // [g, m, c, h, w]
    };
    let d = dev(x.clone());
    let s = d.clone().square().mean_dim(0).add_scalar(1e-8).sqrt(); // [1, m, c, h, w]
    let stat = |v: Tensor<5>| {
        v.reshape([1, m, c * h * w])
            .mean_dim(2)
            .reshape([1, m, 1, 1])
            .repeat_dim(0, g)
            .reshape([n, 1, 1, 1])
            .repeat_dim(2, h)
            .repeat_dim(3, w)
    }; // [n, 1, h, w]
    let t = t.map(|t| {
        // d(sqrt(mean(d^2))) = mean(d * dt) / s, with dt the tangent's deviation from its group mean.
        let tv = (d.clone() * dev(t.clone())).mean_dim(0) / s.clone(); // [1, m, c, h, w]
        Tensor::cat(vec![t, stat(tv)], 1)
    });
    (Tensor::cat(vec![x, stat(s)], 1), t)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Discriminator {
    pub fn new(shape: &ModelShape, cfg: &Stylegan2Config, device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut res = shape.image_size;
        while res > 4 {
            let (tmp, out) = (cfg.channels(res), cfg.channels(res / 2));
            blocks.push(DBlock {
                fromrgb: (res == shape.image_size).then(|| ConvLayer::new(shape.channels, tmp, 1, true, false, true, device)),
                conv0: ConvLayer::new(tmp, tmp, 3, true, false, true, device),
                conv1: ConvLayer::new(tmp, out, 3, true, true, true, device),
                skip: ConvLayer::new(tmp, out, 1, false, true, false, device),
            });
            res /= 2;
        }
        let c = cfg.channels(4);
        let epilogue = Epilogue {
            conv: ConvLayer::new(c + 1, c, 3, true, false, true, device),
            fc: FullyConnected::new(c * 16, c, 1.0, true, device),
            out: FullyConnected::new(c, 1, 1.0, false, device),
            mbstd_group: cfg.mbstd_group,
        };
        Self { blocks, epilogue }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<1> {
        self.run(x, None).0
    }

    /// D(x) and, exactly, the forward-mode derivative of D's outputs along the tangent t (all
    /// images' tangents together, as minibatch stddev mixes images), as differentiable
    /// functions of D's weights: R1's Hessian-vector product (penalty.rs).
    pub fn forward_jvp(&self, x: Tensor<4>, t: Tensor<4>) -> (Tensor<1>, Tensor<1>) {
        let (out, jvp) = self.run(x, Some(t));
        (out, jvp.expect("a tangent was given"))
    }

    fn run(&self, x: Tensor<4>, t: Option<Tensor<4>>) -> (Tensor<1>, Option<Tensor<1>>) {
        let (mut x, mut t) = (x, t);
        let half = 0.5f64.sqrt();
        for block in &self.blocks {
            if let Some(rgb) = &block.fromrgb {
                (x, t) = rgb.run(x, t, 1.0); // [b, tmp, s, s]
            }
            let (y, ty) = block.skip.run(x.clone(), t.clone(), half); // [b, out, h/2, w/2]
            let (h, th) = block.conv0.run(x, t, 1.0); // [b, tmp, h, w]
            let (h, th) = block.conv1.run(h, th, half); // [b, out, h/2, w/2]
            x = y + h;
            t = ty.zip(th).map(|(a, b)| a + b);
        }
        let e = &self.epilogue;
        let (x, t) = minibatch_stddev(x, t, e.mbstd_group); // [b, c + 1, 4, 4]
        let (x, t) = e.conv.run(x, t, 1.0); // [b, c, 4, 4]
        let [b, c, h, w] = x.dims();
        let flat = |v: Tensor<4>| v.reshape([b, c * h * w]);
        let a = e.fc.pre(flat(x)); // [b, c]
        let t = t.map(|t| e.fc.linear(flat(t)) * lrelu_slope(&a, 1.0));
        let x = lrelu(a, 1.0);
        let out = e.out.pre(x).reshape([b]); // [b]
        (out, t.map(|t| e.out.linear(t).reshape([b])))
    }
}

/// StyleGAN2's initialization: every weight and the constant input N(0, 1) (N(0, 1/lr_mul^2)
/// in the mapping network, whose gain multiplies by lr_mul back), the affine layers' biases 1
/// (styles start at 1), other biases and the noise strengths 0, the fixed noise N(0, 1), w_avg 0.
pub fn init<M: Module>(module: M, cfg: &Stylegan2Config, rng: &mut GanRng) -> M {
    map_named(module, |path, current| {
        let n = current.values.len();
        let name = path.rsplit('.').next().unwrap_or(path);
        let values = match name {
            "weight" if path.starts_with("mapping.") => rng.normal_vec(n, 0.0, (1.0 / cfg.mapping_lr_mul) as f32),
            "weight" | "constant" | "noise_const" => rng.normal_vec(n, 0.0, 1.0),
            "bias" if path.contains("affine.") => vec![1.0; n],
            "bias" | "noise_strength" | "w_avg" => vec![0.0; n],
            _ => return None,
        };
        Some(HostTensor { shape: current.shape.clone(), values })
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use burn::optim::GradientsParams;

    use super::*;
    use crate::config::GanConfig;
    use crate::params::{named_grads, named_tensors};
    use crate::penalty::{penalty, PenaltyKind};

    #[derive(serde::Deserialize)]
    struct Stored {
        shape: Vec<usize>,
        values: Vec<f64>,
    }

    #[derive(serde::Deserialize)]
    struct Cases {
        psi: f64,
        cutoff: usize,
        batch: usize,
        gamma: f64,
        num_ws: usize,
    }

    /// tests/fixtures/stylegan2_reference.py's output: a PyTorch float64 model written from the
    /// paper and NVlabs' formulas, by other routes where NVlabs has two (see the script).
    #[derive(serde::Deserialize)]
    struct Reference {
        config: Cases,
        params: BTreeMap<String, Stored>,
        g_names: Vec<String>,
        d_names: Vec<String>,
        z: Vec<f64>,
        z2: Vec<f64>,
        w: Vec<f64>,
        images_const: Vec<f64>,
        images_trunc: Vec<f64>,
        images_mix: Vec<f64>,
        x: Vec<f64>,
        logits: Vec<f64>,
        r1: f64,
        r1_grads: BTreeMap<String, Vec<f64>>,
    }

    fn reference() -> Reference {
        let path = crate::fixture("stylegan2_reference.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The reference's tiny model: 16x16 RGB, z and w of 8, two mapping layers, 8 channels at
    /// 4 and 8 pixels and 4 at 16, minibatch-stddev groups of 2 (two groups in a batch of 4).
    fn config() -> GanConfig {
        let sets = [
            "model.arch=stylegan2",
            "model.image_size=16",
            "model.channels=3",
            "model.nz=8",
            "stylegan2.w_dim=8",
            "stylegan2.mapping_layers=2",
            "stylegan2.channel_base=64",
            "stylegan2.channel_max=8",
            "stylegan2.mbstd_group=2",
        ]
        .map(String::from);
        GanConfig::resolve(None, None, &sets).unwrap()
    }

    fn load<M: Module>(module: M, r: &Reference) -> M {
        map_named(module, |name, h| {
            r.params.get(name).map(|t| {
                assert_eq!(t.shape, h.shape, "{name}");
                HostTensor { shape: h.shape.clone(), values: t.values.iter().map(|&v| v as f32).collect() }
            })
        })
    }

    fn tensor<const D: usize>(v: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape), device)
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    /// Every entry within `rel` of the largest reference entry.
    fn close(got: &[f32], want: &[f64], rel: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
        let worst = got.iter().zip(want).map(|(&a, &b)| (a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(worst <= rel * scale, "{what}: off by {worst} (largest entry {scale})");
    }

    #[test]
    fn parameter_names_and_shapes_are_the_references() {
        let r = reference();
        let (g, d) = crate::nets::build(&config().families(), 0, &Device::flex());
        let names = |t: BTreeMap<String, HostTensor>| t.into_keys().collect::<BTreeSet<_>>();
        assert_eq!(names(named_tensors(&g)), r.g_names.iter().cloned().collect());
        assert_eq!(names(named_tensors(&d)), r.d_names.iter().cloned().collect());
        let crate::nets::Generator::Stylegan2(g) = g else { panic!("a StyleGAN2 generator") };
        assert_eq!(g.num_ws(), r.config.num_ws);
    }

    /// Mapping, modulated and demodulated convolutions, const noise, FIR up-sampling, skip
    /// outputs, truncation in w space and style mixing against PyTorch (float64 there): within
    /// 2e-5 of the largest value.
    #[test]
    fn generator_matches_the_pytorch_reference() {
        let r = reference();
        let device = Device::flex();
        let cfg = config();
        let g = load(Generator::new(&cfg.model, &cfg.stylegan2, &device), &r);
        let b = r.config.batch;
        let z = tensor(&r.z, [b, 8], &device);
        close(&values(g.mapping.forward(z.clone())), &r.w, 2e-5, "w");
        close(&values(g.sample(z.clone(), &[], NoiseMode::Const)), &r.images_const, 2e-5, "images, const noise");
        let psi = vec![r.config.psi as f32; b];
        close(&values(g.sample(z.clone(), &psi, NoiseMode::None)), &r.images_trunc, 2e-5, "images, truncated, no noise");
        let ws = g.mix(g.ws(z, &[]), g.ws(tensor(&r.z2, [b, 8], &device), &[]), r.config.cutoff..g.num_ws());
        close(&values(g.synthesize(ws, &[], NoiseMode::None)), &r.images_mix, 2e-5, "images, style mixing");
    }

    /// D's logits through residual blocks and minibatch stddev, and R1 (gamma 10) with its
    /// weight gradient, against PyTorch's double backward: the value within 1e-5 relative,
    /// every gradient entry within 1e-4 of the largest.
    #[test]
    fn discriminator_and_r1_match_pytorch_double_backward() {
        let r = reference();
        let device = Device::flex().autodiff();
        let (_, d) = crate::nets::build(&config().families(), 0, &device);
        let d = load(d, &r);
        let x = tensor(&r.x, [r.config.batch, 3, 16, 16], &device);
        close(&values(d.forward(x.clone(), None)), &r.logits, 2e-5, "logits");
        let p = penalty(PenaltyKind::R1, r.config.gamma, &d, x, None, &device);
        assert!((p.value as f64 - r.r1).abs() < 1e-5 * r.r1.abs(), "R1 {} vs {}", p.value, r.r1);
        let grads = GradientsParams::from_grads(p.surrogate.backward(), &d);
        let got = named_grads(&d, &grads);
        let scale = r.r1_grads.values().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        for (name, want) in &r.r1_grads {
            let zeros = vec![0.0; want.len()];
            let g = got.get(name).unwrap_or(&zeros);
            let worst = g.iter().zip(want).map(|(&a, &b)| (a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-4 * scale, "{name}: off by {worst} (largest entry {scale})");
        }
    }

    /// The noise and style mixing come from each latent: an image does not depend on the
    /// batch around it, and a second call repeats it bit for bit.
    #[test]
    fn an_image_is_a_function_of_its_latent() {
        let device = Device::flex();
        let cfg = config();
        let mut rng = GanRng::new(1, Stream::Init);
        let g = init(Generator::new(&cfg.model, &cfg.stylegan2, &device), &cfg.stylegan2, &mut rng);
        // Noise strengths start at 0; make the noise count.
        let g = map_named(g, |name, h| name.ends_with("noise_strength").then(|| HostTensor { shape: h.shape.clone(), values: vec![0.5] }));
        let z: Vec<f64> = rng.normal_vec(3 * 8, 0.0, 1.0).into_iter().map(f64::from).collect();
        let batch = values(g.forward(tensor(&z, [3, 8], &device)));
        let again = values(g.forward(tensor(&z, [3, 8], &device)));
        assert_eq!(batch, again);
        let alone = values(g.forward(tensor(&z[8..16], [1, 8], &device)));
        assert_eq!(&batch[3 * 256..6 * 256], &alone[..]);
        // Random noise differs from none.
        let quiet = values(g.sample(tensor(&z[8..16], [1, 8], &device), &[], NoiseMode::None));
        assert!(alone != quiet, "random noise made no difference");
    }

    /// In training, w_avg moves toward the batch's mean w by 1 - beta (NVlabs' lerp).
    #[test]
    fn w_avg_tracks_the_mean_w_in_training() {
        let device = Device::flex().autodiff();
        let cfg = config();
        let mut rng = GanRng::new(2, Stream::Init);
        let g = init(Generator::new(&cfg.model, &cfg.stylegan2, &device), &cfg.stylegan2, &mut rng);
        let z = Tensor::<2>::from_data(TensorData::new(rng.normal_vec(4 * 8, 0.0, 1.0), [4, 8]), &device);
        let mean = values(g.mapping.forward(z.clone()).mean_dim(0)); // this call moved w_avg from 0 once
        let moved_once_by_mean = |g: &Generator, what: &str| {
            for (a, m) in values(g.mapping.w_avg()).iter().zip(&mean) {
                assert!((a - (1.0 - 0.995) * m).abs() < 1e-6 * m.abs().max(1.0), "{what}: {a} vs {m}");
            }
        };
        moved_once_by_mean(&g, "mapping");

        // A training pass that mixes styles moves w_avg by the asked-for latents only, not by
        // the second latent drawn for the mix (the same G again, from the same seed, with w_avg at 0).
        let mut rng = GanRng::new(2, Stream::Init);
        let mut g = init(Generator::new(&cfg.model, &cfg.stylegan2, &device), &cfg.stylegan2, &mut rng);
        g.style_mixing = 1.0;
        let _ = g.forward(z);
        moved_once_by_mean(&g, "mixing moved w_avg");
    }
}
