//! DCGAN: "Unsupervised Representation Learning with Deep Convolutional Generative Adversarial
//! Networks", Radford, Metz & Chintala, 2015 (arXiv:1511.06434).
//!
//! The paper's architecture guidelines, all kept here: strided (transposed) convolutions instead
//! of pooling, no fully connected hidden layers, batch norm in G on all but the output layer and
//! in D on all but the input layer, ReLU in G with tanh at the output, LeakyReLU(0.2) in D.
//! D mirrors G. For a 64x64 image the layer widths are those of the paper (and of PyTorch's
//! DCGAN example): G 100 -> 8ngf@4 -> 4ngf@8 -> 2ngf@16 -> ngf@32 -> c@64; other power-of-two
//! sizes add or drop a doubling stage.
//!
//! Options beyond the paper: class conditioning (Mirza & Osindero 2014: a learned label
//! embedding through a fully connected layer, concatenated with z in G; in D a label map as an
//! extra image channel, or the projection discriminator of Miyato & Koyama 2018), spectral normalization of D's and/or G's layers (Miyato et al.
//! 2018, see spectral.rs), and D without batch norm (the SNGAN discriminator has none).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Embedding, EmbeddingConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::tanh;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::spectral::{self, SpectralNorm};
use super::{leaky_relu_02, DCond, ModelShape};
use crate::ops::{self, Act};

/// How G doubles the resolution at each stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsample {
    /// Strided transposed convolution (the paper's choice).
    Transposed,
    /// Nearest-neighbour resize by 2, then a 3x3 stride-1 convolution: free of checkerboard
    /// artifacts by construction (Odena, Dumoulin & Olah, "Deconvolution and Checkerboard
    /// Artifacts", Distill 2016).
    ResizeConv,
}

/// DCGAN-specific settings; image size, channels and nz are in [`ModelShape`].
#[derive(Config, Debug)]
pub struct DcganConfig {
    /// Width of G: channels of its last hidden layer (the paper and PyTorch's example use 64).
    #[config(default = 64)]
    pub ngf: usize,
    /// Width of D: channels of its first layer (64 in the paper).
    #[config(default = 64)]
    pub ndf: usize,
    /// Kernel size of G's stride-2 transposed convolutions (4 in the paper). Must be a multiple
    /// of the stride (2), or the kernel overlaps unevenly and paints a checkerboard.
    #[config(default = 4)]
    pub g_kernel: usize,
    /// Up-sampling in G: "transposed" (the paper) or "resize_conv" (nearest resize + conv).
    #[config(default = "Upsample::Transposed")]
    pub upsample: Upsample,
    /// Spectral normalization of every D layer (Miyato et al. 2018): D becomes 1-Lipschitz per
    /// layer, which steadies its gradients; off in the DCGAN paper.
    #[config(default = false)]
    pub spectral_norm_d: bool,
    /// Spectral normalization of every G layer (Zhang et al. 2019, SAGAN, found it helps G too).
    #[config(default = false)]
    pub spectral_norm_g: bool,
    /// Batch norm in D's hidden layers (the paper has it; SNGAN's D, with spectral norm, does not).
    #[config(default = true)]
    pub batch_norm_d: bool,
}

/// Why a kernel that is not a multiple of the stride is refused.
pub fn checkerboard_message(kernel: usize, stride: usize) -> String {
    format!(
        "dcgan.g_kernel = {kernel} is not a multiple of the stride {stride}: a transposed convolution \
         whose kernel does not divide evenly by its stride overlaps unevenly, so some output pixels \
         receive more kernel taps than their neighbours and the images show a checkerboard pattern \
         (Odena et al., Distill 2016). Use an even kernel such as 4 (the DCGAN paper's), or set \
         dcgan.upsample = \"resize_conv\" (nearest-neighbour resize, then a stride-1 convolution)"
    )
}

impl DcganConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ngf == 0 || self.ndf == 0 {
            return Err("dcgan.ngf and dcgan.ndf must be at least 1".into());
        }
        if self.upsample == Upsample::Transposed && (self.g_kernel < 2 || self.g_kernel % 2 != 0) {
            return Err(checkerboard_message(self.g_kernel, 2));
        }
        Ok(())
    }
}

/// Number of stride-2 stages between 4x4 and the image size.
fn stages(image_size: usize) -> usize {
    image_size.trailing_zeros() as usize - 2
}

fn conv_bias_free(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

fn conv_t_bias_free(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([cin, cout], [k, k]).with_stride([stride, stride]).with_padding([pad, pad]).with_bias(false).init(device)
}

/// One doubling of resolution.
#[derive(Module, Debug)]
pub enum Up {
    Transposed(ConvTranspose2d),
    ResizeConv(Conv2d),
}

impl Up {
    fn new(cin: usize, cout: usize, cfg: &DcganConfig, device: &Device) -> Self {
        match cfg.upsample {
            // out = 2*in requires k - 2*pad = 2.
            Upsample::Transposed => Up::Transposed(conv_t_bias_free(cin, cout, cfg.g_kernel, 2, (cfg.g_kernel - 2) / 2, device)),
            Upsample::ResizeConv => Up::ResizeConv(conv_bias_free(cin, cout, 3, 1, 1, device)),
        }
    }

    /// Rows of the weight matrix spectral norm sees: a transposed convolution's weight is
    /// [in, out, k, k], a convolution's [out, in, k, k].
    fn rows(&self) -> usize {
        match self {
            Up::Transposed(c) => c.weight.dims()[0],
            Up::ResizeConv(c) => c.weight.dims()[0],
        }
    }

    fn forward(&self, x: Tensor<4>, sn: &Option<SpectralNorm>) -> Tensor<4> {
        match self {
            Up::Transposed(conv) => spectral::conv_transpose2d(conv, sn, x),
            Up::ResizeConv(conv) => {
                let [_, _, h, w] = x.dims();
                let x = interpolate(x, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]));
                spectral::conv2d(conv, sn, x)
            }
        }
    }
}

/// Spectral norm for a layer whose weight has `rows` rows, when `on`.
fn sn(on: bool, rows: usize, device: &Device) -> Option<SpectralNorm> {
    on.then(|| SpectralNorm::new(rows, device))
}

#[derive(Module, Debug)]
pub struct GBlock {
    up: Up,
    bn: BatchNorm,
    sn: Option<SpectralNorm>,
}

/// The DCGAN generator: z [b, nz] -> image [b, c, s, s] in [-1, 1].
#[derive(Module, Debug)]
pub struct Generator {
    /// Conditional G: label -> embedding -> fully connected, concatenated with z.
    label_embed: Option<Embedding>,
    label_fc: Option<Linear>,
    project: ConvTranspose2d,
    project_bn: BatchNorm,
    project_sn: Option<SpectralNorm>,
    blocks: Vec<GBlock>,
    to_image: Up,
    to_image_sn: Option<SpectralNorm>,
}

impl Generator {
    pub fn new(shape: &ModelShape, cfg: &DcganConfig, device: &Device) -> Self {
        let n = stages(shape.image_size);
        let width = |stage: usize| cfg.ngf << (n - 1 - stage); // ngf * 2^(n-1-stage)
        let cond = shape.classes > 0;
        let label_embed = cond.then(|| EmbeddingConfig::new(shape.classes, shape.label_dim).init(device));
        let label_fc = cond.then(|| LinearConfig::new(shape.label_dim, shape.label_dim).init(device));
        let z_in = shape.nz + if cond { shape.label_dim } else { 0 };
        let project = conv_t_bias_free(z_in, width(0), 4, 1, 0, device);
        let project_bn = BatchNormConfig::new(width(0)).init(device);
        let g_sn = cfg.spectral_norm_g;
        let project_sn = sn(g_sn, z_in, device);
        let blocks = (1..n)
            .map(|s| {
                let up = Up::new(width(s - 1), width(s), cfg, device);
                GBlock { sn: sn(g_sn, up.rows(), device), up, bn: BatchNormConfig::new(width(s)).init(device) }
            })
            .collect();
        let to_image = Up::new(cfg.ngf, shape.channels, cfg, device);
        let to_image_sn = sn(g_sn, to_image.rows(), device);
        Self { label_embed, label_fc, project, project_bn, project_sn, blocks, to_image, to_image_sn }
    }

    pub fn forward(&self, z: Tensor<2>, y: Option<Tensor<1, Int>>) -> Tensor<4> {
        let z = match (&self.label_embed, &self.label_fc) {
            (Some(embed), Some(fc)) => {
                let y = y.expect("a conditional G is given class labels");
                let [b] = y.dims();
                let e = embed.forward(y.reshape([b, 1])); // [b, 1, label_dim]
                let dim = e.dims()[2];
                let e = fc.forward(e.reshape([b, dim])); // [b, label_dim]
                Tensor::cat(vec![z, e], 1) // [b, nz + label_dim]
            }
            _ => z,
        };
        let [b, nz] = z.dims();
        let x = z.reshape([b, nz, 1, 1]); // [b, nz, 1, 1]
        let x = spectral::conv_transpose2d(&self.project, &self.project_sn, x); // [b, 8ngf, 4, 4] at 64px
        let mut x = ops::batch_norm_act(&self.project_bn, x, Act::Relu);
        for block in &self.blocks {
            x = ops::batch_norm_act(&block.bn, block.up.forward(x, &block.sn), Act::Relu); // [b, w/2, 2h, 2w]
        }
        tanh(self.to_image.forward(x, &self.to_image_sn)) // [b, c, s, s]
    }
}

#[derive(Module, Debug)]
pub struct DBlock {
    conv: Conv2d,
    bn: Option<BatchNorm>,
    sn: Option<SpectralNorm>,
}

/// The DCGAN discriminator: image [b, c, s, s] -> one logit per image [b].
#[derive(Module, Debug)]
pub struct Discriminator {
    /// Conditional D, "concat": label -> embedding -> fully connected -> an s x s label map.
    label_embed: Option<Embedding>,
    label_fc: Option<Linear>,
    /// Conditional D, "projection": one embedding row per class, as wide as D's last features.
    label_proj: Option<Embedding>,
    from_image: Conv2d,
    from_image_sn: Option<SpectralNorm>,
    blocks: Vec<DBlock>,
    head: Conv2d,
    head_sn: Option<SpectralNorm>,
}

impl Discriminator {
    pub fn new(shape: &ModelShape, cfg: &DcganConfig, device: &Device) -> Self {
        let n = stages(shape.image_size);
        let width = |stage: usize| cfg.ndf << stage;
        let d_sn = cfg.spectral_norm_d;
        let concat = shape.classes > 0 && shape.d_cond == DCond::Concat;
        let s = shape.image_size;
        let label_embed = concat.then(|| EmbeddingConfig::new(shape.classes, shape.label_dim).init(device));
        let label_fc = concat.then(|| LinearConfig::new(shape.label_dim, s * s).init(device));
        let label_proj = (shape.classes > 0 && shape.d_cond == DCond::Projection)
            .then(|| EmbeddingConfig::new(shape.classes, width(n - 1)).init(device));
        let from_image = conv_bias_free(shape.channels + concat as usize, cfg.ndf, 4, 2, 1, device);
        let blocks = (1..n)
            .map(|s| DBlock {
                conv: conv_bias_free(width(s - 1), width(s), 4, 2, 1, device),
                bn: cfg.batch_norm_d.then(|| BatchNormConfig::new(width(s)).init(device)),
                sn: sn(d_sn, width(s), device),
            })
            .collect();
        let head = conv_bias_free(width(n - 1), 1, 4, 1, 0, device);
        Self {
            label_embed,
            label_fc,
            label_proj,
            from_image,
            from_image_sn: sn(d_sn, cfg.ndf, device),
            blocks,
            head,
            head_sn: sn(d_sn, 1, device),
        }
    }

    pub fn forward(&self, x: Tensor<4>, y: Option<Tensor<1, Int>>) -> Tensor<1> {
        self.run(x, None, y).0
    }

    /// D(x) and, exactly, its directional derivative grad_x D(x) . t per image (a forward-mode
    /// Jacobian-vector product), as a function of D's weights that can be differentiated: the
    /// gradient penalties' Hessian-vector products (penalty.rs). Every layer is linear or
    /// piecewise linear, so the tangent goes through the same weights and through LeakyReLU's
    /// slope at the primal point, held constant. D must have no batch norm.
    pub fn forward_jvp(&self, x: Tensor<4>, t: Tensor<4>, y: Option<Tensor<1, Int>>) -> (Tensor<1>, Tensor<1>) {
        let (out, jvp) = self.run(x, Some(t), y);
        (out, jvp.expect("a tangent was given"))
    }

    fn run(&self, x: Tensor<4>, t: Option<Tensor<4>>, y: Option<Tensor<1, Int>>) -> (Tensor<1>, Option<Tensor<1>>) {
        let [b, _, h, w] = x.dims();
        let labels = || y.clone().expect("a conditional D is given class labels").reshape([b, 1]); // [b, 1]
        let (x, t) = match (&self.label_embed, &self.label_fc) {
            (Some(embed), Some(fc)) => {
                let e = embed.forward(labels()); // [b, 1, label_dim]
                let dim = e.dims()[2];
                let map = fc.forward(e.reshape([b, dim])).reshape([b, 1, h, w]); // [b, 1, s, s]
                                                                                 // The label map does not depend on the image: its tangent is 0.
                let t = t.map(|t| Tensor::cat(vec![t, map.zeros_like()], 1));
                (Tensor::cat(vec![x, map], 1), t) // [b, c + 1, s, s]
            }
            _ => (x, t),
        };
        // A linear layer maps the tangent with the same (spectrally normalized) weight.
        let linear = |conv: &Conv2d, sn: &Option<SpectralNorm>, x: Tensor<4>, t: Option<Tensor<4>>| {
            let conv = spectral::effective_conv2d(conv, sn);
            debug_assert!(conv.bias.is_none(), "D's convolutions are bias-free, so the tangent map is linear");
            let t = t.map(|t| ops::conv2d_layer(&conv, t));
            (ops::conv2d_layer(&conv, x), t)
        };
        // LeakyReLU(0.2): the tangent is scaled by the slope at the primal point.
        let leaky = |a: Tensor<4>, t: Option<Tensor<4>>| {
            let t = t.map(|t| t * a.clone().greater_elem(0.0).float().mul_scalar(0.8).add_scalar(0.2).detach());
            (leaky_relu_02(a), t)
        };
        let (a, t) = linear(&self.from_image, &self.from_image_sn, x, t); // [b, ndf, s/2, s/2], no BN on the input layer
        let (mut x, mut t) = leaky(a, t);
        for block in &self.blocks {
            let (a, ta) = linear(&block.conv, &block.sn, x, t); // [b, 2w, h/2, w/2]
            (x, t) = match &block.bn {
                Some(bn) => {
                    assert!(ta.is_none(), "a tangent through batch norm is not supported: set dcgan.batch_norm_d = false");
                    (ops::batch_norm_act(bn, a, Act::Leaky(0.2)), None)
                }
                None => leaky(a, ta),
            };
        }
        let (logits, tl) = linear(&self.head, &self.head_sn, x.clone(), t.clone());
        let (logits, tl) = (logits.reshape([b]), tl.map(|t| t.reshape([b]))); // [b]
        match &self.label_proj {
            // Projection: + <embed(y), sum over space of the last features>.
            Some(proj) => {
                let [_, c, _, _] = x.dims();
                let e = proj.forward(labels()).reshape([b, c]); // [b, c]
                let project = |f: Tensor<4>| (f.sum_dim(3).sum_dim(2).reshape([b, c]) * e.clone()).sum_dim(1).reshape([b]); // [b]
                (logits + project(x), tl.zip(t).map(|(tl, t)| tl + project(t)))
            }
            None => (logits, tl),
        }
    }
}
