//! A BigGAN-style model: "Large Scale GAN Training for High Fidelity Natural Image Synthesis",
//! Brock, Donahue & Simonyan, ICLR 2019 (arXiv:1809.11096), scaled for 32 to 128 pixels, with
//! the self-attention block of SAGAN (Zhang, Goodfellow, Metaxas & Odena, ICML 2019).
//!
//! What is kept from the paper: residual blocks in G (BN, ReLU, nearest up-sampling, 3x3 convs,
//! a 1x1 conv on the skip path) and in D (ReLU, 3x3 convs, 2x2 average pooling); spectral norm
//! on every convolution and linear layer of both; conditional batch norm in G whose gains and
//! biases are linear functions of a shared class embedding concatenated with z; a projection
//! discriminator (Miyato & Koyama 2018); one self-attention block at a chosen resolution;
//! orthogonal initialization. The hinge loss, G's moving average and the truncation trick are
//! run settings (preset `biggan`, `train.g_ema`, `sample --truncation`). Left out: the
//! hierarchical latent (z split across blocks) and the channel widths of the 128px paper model.
//! Unconditional runs use a single class.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Embedding, EmbeddingConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, softmax, tanh};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Int, Tensor};

use super::spectral::{self, SpectralNorm};
use super::ModelShape;
use crate::params::{map_named, HostTensor};
use crate::rng::GanRng;

/// BigGAN-style settings.
#[derive(Config, Debug)]
pub struct BigganConfig {
    /// Base width: G's last block and D's first have `ch` channels, doubling per resolution
    /// step toward 4x4 (BigGAN's 128px model uses 96; 32 to 64 suit a CPU or one GPU).
    #[config(default = 32)]
    pub ch: usize,
    /// Resolution of the self-attention block in G and D (64 in BigGAN's 128px model); 0 = none.
    #[config(default = 32)]
    pub attn_res: usize,
    /// Size of the class embedding shared by all of G's conditional batch norms (128 in BigGAN).
    #[config(default = 128)]
    pub shared_dim: usize,
}

impl BigganConfig {
    pub fn validate(&self, image_size: usize) -> Result<(), String> {
        if !(8..=1024).contains(&self.ch) {
            return Err(format!("biggan.ch = {} must be between 8 and 1024 (attention needs ch/8 channels)", self.ch));
        }
        if self.attn_res != 0 && (!self.attn_res.is_power_of_two() || !(8..=image_size).contains(&self.attn_res)) {
            return Err(format!("biggan.attn_res = {} must be 0 (none) or a power of two from 8 to model.image_size", self.attn_res));
        }
        if !(1..=1024).contains(&self.shared_dim) {
            return Err("biggan.shared_dim must be between 1 and 1024".into());
        }
        Ok(())
    }
}

fn conv(cin: usize, cout: usize, k: usize, device: &Device) -> (Conv2d, Option<SpectralNorm>) {
    let c = Conv2dConfig::new([cin, cout], [k, k]).with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2)).init(device);
    (c, Some(SpectralNorm::new(cout, device)))
}

fn linear(din: usize, dout: usize, device: &Device) -> (Linear, Option<SpectralNorm>) {
    (LinearConfig::new(din, dout).init(device), Some(SpectralNorm::new(din, device)))
}

/// A spectrally normalized convolution or linear layer.
#[derive(Module, Debug)]
pub struct SnConv {
    conv: Conv2d,
    sn: Option<SpectralNorm>,
}

impl SnConv {
    fn new(cin: usize, cout: usize, k: usize, device: &Device) -> Self {
        let (conv, sn) = conv(cin, cout, k, device);
        Self { conv, sn }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        spectral::conv2d(&self.conv, &self.sn, x)
    }
}

#[derive(Module, Debug)]
pub struct SnLinear {
    linear: Linear,
    sn: Option<SpectralNorm>,
}

impl SnLinear {
    fn new(din: usize, dout: usize, device: &Device) -> Self {
        let (linear, sn) = linear(din, dout, device);
        Self { linear, sn }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        spectral::linear(&self.linear, &self.sn, x)
    }
}

/// Batch norm whose gain and bias are linear in the conditioning vector: y = BN(x) * (1 + g(c)) + b(c).
#[derive(Module, Debug)]
pub struct CondBatchNorm {
    bn: BatchNorm,
    gain: SnLinear,
    bias: SnLinear,
}

impl CondBatchNorm {
    fn new(channels: usize, cond: usize, device: &Device) -> Self {
        Self {
            bn: BatchNormConfig::new(channels).init(device),
            gain: SnLinear::new(cond, channels, device),
            bias: SnLinear::new(cond, channels, device),
        }
    }
    fn forward(&self, x: Tensor<4>, c: Tensor<2>) -> Tensor<4> {
        let [b, ch, _, _] = x.dims();
        let gain = self.gain.forward(c.clone()).add_scalar(1.0).reshape([b, ch, 1, 1]); // [b, ch, 1, 1]
        let bias = self.bias.forward(c).reshape([b, ch, 1, 1]); // [b, ch, 1, 1]
        self.bn.forward(x) * gain + bias
    }
}

/// 2x2 average or max pooling by reshaping: [b, c, h, w] -> [b, c, h/2, w/2].
fn pool2(x: Tensor<4>, max: bool) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let x = x.reshape([b, c, h / 2, 2, w / 2, 2]);
    let x = if max { x.max_dim(5).max_dim(3) } else { x.mean_dim(5).mean_dim(3) };
    x.reshape([b, c, h / 2, w / 2])
}

fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(x, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]))
}

/// SAGAN's self-attention: every position attends to all (2x2 max-pooled) positions; the
/// result is added with a learned gain that starts at 0, so the block starts as the identity.
#[derive(Module, Debug)]
pub struct Attention {
    theta: SnConv,
    phi: SnConv,
    g: SnConv,
    o: SnConv,
    attn_gain: Param<Tensor<1>>,
}

impl Attention {
    fn new(ch: usize, device: &Device) -> Self {
        Self {
            theta: SnConv::new(ch, ch / 8, 1, device),
            phi: SnConv::new(ch, ch / 8, 1, device),
            g: SnConv::new(ch, ch / 2, 1, device),
            o: SnConv::new(ch / 2, ch, 1, device),
            attn_gain: Param::from_tensor(Tensor::zeros([1], device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let theta = self.theta.forward(x.clone()).reshape([b, c / 8, n]); // [b, c/8, n]
        let phi = pool2(self.phi.forward(x.clone()), true).reshape([b, c / 8, n / 4]); // [b, c/8, n/4]
        let attn = softmax(theta.swap_dims(1, 2).matmul(phi), 2); // [b, n, n/4]
        let g = pool2(self.g.forward(x.clone()), true).reshape([b, c / 2, n / 4]); // [b, c/2, n/4]
        let o = g.matmul(attn.swap_dims(1, 2)).reshape([b, c / 2, h, w]); // [b, c/2, h, w]
        x + self.o.forward(o) * self.attn_gain.val().reshape([1, 1, 1, 1])
    }
}

#[derive(Module, Debug)]
pub struct GBlock {
    bn1: CondBatchNorm,
    conv1: SnConv,
    bn2: CondBatchNorm,
    conv2: SnConv,
    skip: SnConv,
}

impl GBlock {
    fn forward(&self, x: Tensor<4>, c: Tensor<2>) -> Tensor<4> {
        let h = upsample2(relu(self.bn1.forward(x.clone(), c.clone()))); // [b, cin, 2h, 2w]
        let h = self.conv1.forward(h); // [b, cout, 2h, 2w]
        let h = self.conv2.forward(relu(self.bn2.forward(h, c))); // [b, cout, 2h, 2w]
        h + self.skip.forward(upsample2(x))
    }
}

/// G: (z [b, nz], class) -> image [b, c, s, s].
#[derive(Module, Debug)]
pub struct Generator {
    shared: Embedding,
    project: SnLinear,
    blocks: Vec<GBlock>,
    attention: Option<Attention>,
    attn_after: usize,
    out_bn: BatchNorm,
    to_image: SnConv,
    width0: usize,
}

/// Channels at each resolution step: index 0 is 4x4.
fn widths(ch: usize, stages: usize) -> Vec<usize> {
    (0..=stages).map(|i| ch << (stages - i).min(4)).collect()
}

impl Generator {
    pub fn new(shape: &ModelShape, cfg: &BigganConfig, device: &Device) -> Self {
        let n = shape.image_size.trailing_zeros() as usize - 2;
        let w = widths(cfg.ch, n);
        let cond = shape.nz + cfg.shared_dim;
        let blocks = (1..=n)
            .map(|i| GBlock {
                bn1: CondBatchNorm::new(w[i - 1], cond, device),
                conv1: SnConv::new(w[i - 1], w[i], 3, device),
                bn2: CondBatchNorm::new(w[i], cond, device),
                conv2: SnConv::new(w[i], w[i], 3, device),
                skip: SnConv::new(w[i - 1], w[i], 1, device),
            })
            .collect();
        // Attention after the block whose output has the attention resolution (4 << i).
        let attn_after = (1..=n).find(|&i| 4 << i == cfg.attn_res).unwrap_or(0);
        Self {
            shared: EmbeddingConfig::new(shape.classes.max(1), cfg.shared_dim).init(device),
            project: SnLinear::new(cond, 16 * w[0], device),
            blocks,
            attention: (attn_after > 0).then(|| Attention::new(w[attn_after], device)),
            attn_after,
            out_bn: BatchNormConfig::new(w[n]).init(device),
            to_image: SnConv::new(w[n], shape.channels, 3, device),
            width0: w[0],
        }
    }

    pub fn forward(&self, z: Tensor<2>, y: Option<Tensor<1, Int>>) -> Tensor<4> {
        let [b, _] = z.dims();
        let y = y.unwrap_or_else(|| Tensor::zeros([b], &z.device())); // unconditional: class 0
        let e = self.shared.forward(y.reshape([b, 1])); // [b, 1, shared]
        let dim = e.dims()[2];
        let c = Tensor::cat(vec![z, e.reshape([b, dim])], 1); // [b, nz + shared]
        let mut x = self.project.forward(c.clone()).reshape([b, self.width0, 4, 4]); // [b, w0, 4, 4]
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, c.clone()); // [b, w_i, 2h, 2w]
            if i + 1 == self.attn_after {
                x = self.attention.as_ref().expect("built with the block").forward(x);
            }
        }
        tanh(self.to_image.forward(relu(self.out_bn.forward(x)))) // [b, c, s, s]
    }
}

#[derive(Module, Debug)]
pub struct DBlock {
    conv1: SnConv,
    conv2: SnConv,
    skip: SnConv,
    /// The first block sees the image itself: no ReLU before its first conv ("optimized block").
    first: bool,
}

impl DBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = if self.first { x.clone() } else { relu(x.clone()) };
        let h = self.conv2.forward(relu(self.conv1.forward(h))); // [b, cout, h, w]
        let h = pool2(h, false); // [b, cout, h/2, w/2]
        let skip = if self.first { self.skip.forward(pool2(x, false)) } else { pool2(self.skip.forward(x), false) };
        h + skip
    }
}

/// D: (image [b, c, s, s], class) -> [b]: a linear score plus the class projection.
#[derive(Module, Debug)]
pub struct Discriminator {
    blocks: Vec<DBlock>,
    attention: Option<Attention>,
    attn_after: usize,
    head: SnLinear,
    embed: Embedding,
    embed_sn: Option<SpectralNorm>,
}

impl Discriminator {
    pub fn new(shape: &ModelShape, cfg: &BigganConfig, device: &Device) -> Self {
        let n = shape.image_size.trailing_zeros() as usize - 2;
        // D mirrors G: ch at s/2, doubling per halving.
        let w: Vec<usize> = (1..=n).map(|j| cfg.ch << (j - 1).min(4)).collect();
        let blocks = (0..n)
            .map(|j| {
                let cin = if j == 0 { shape.channels } else { w[j - 1] };
                DBlock {
                    conv1: SnConv::new(cin, w[j], 3, device),
                    conv2: SnConv::new(w[j], w[j], 3, device),
                    skip: SnConv::new(cin, w[j], 1, device),
                    first: j == 0,
                }
            })
            .collect();
        let attn_after = (1..=n).find(|&j| shape.image_size >> j == cfg.attn_res).unwrap_or(0);
        let last = w[n - 1];
        Self {
            blocks,
            attention: (attn_after > 0).then(|| Attention::new(w[attn_after - 1], device)),
            attn_after,
            head: SnLinear::new(last, 1, device),
            embed: EmbeddingConfig::new(shape.classes.max(1), last).init(device),
            embed_sn: Some(SpectralNorm::new(shape.classes.max(1), device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>, y: Option<Tensor<1, Int>>) -> Tensor<1> {
        let [b, _, _, _] = x.dims();
        let mut x = x;
        for (j, block) in self.blocks.iter().enumerate() {
            x = block.forward(x); // [b, w_j, h/2, w/2]
            if j + 1 == self.attn_after {
                x = self.attention.as_ref().expect("built with the block").forward(x);
            }
        }
        let [_, c, _, _] = x.dims();
        let h = relu(x).sum_dim(3).sum_dim(2).reshape([b, c]); // [b, c]: global sum pooling
        let out = self.head.forward(h.clone()).reshape([b]); // [b]
        let y = y.unwrap_or_else(|| Tensor::zeros([b], &h.device()));
        let table = match &self.embed_sn {
            Some(sn) => sn.normalize(self.embed.weight.val()),
            None => self.embed.weight.val(),
        }; // [classes, c]
        let e = table.select(0, y); // [b, c]
        out + (e * h).sum_dim(1).reshape([b])
    }
}

/// BigGAN's initialization: every weight matrix orthogonal (its rows, or its columns when it
/// has more rows than columns, orthonormal), biases 0, batch-norm scales 1, spectral norm's u a
/// random unit vector; the attention gain stays 0.
pub fn init_orthogonal<M: Module>(module: M, rng: &mut GanRng) -> M {
    map_named(module, |path, current| {
        let name = path.rsplit('.').next().unwrap_or(path);
        let n = current.values.len();
        let values = match name {
            "weight" if current.shape.len() >= 2 && !path.ends_with("bn.weight") => {
                // burn stores a Linear weight as [in, out] and a conv weight as [out, in, k, k];
                // either way the matrix is [shape[0], rest].
                let rows = current.shape[0];
                orthogonal(rows, n / rows, rng)
            }
            "u" => {
                let u = rng.normal_vec(n, 0.0, 1.0);
                let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                u.into_iter().map(|x| x / norm).collect()
            }
            "bias" | "beta" => vec![0.0; n],
            "gamma" => vec![1.0; n],
            _ => return None,
        };
        Some(HostTensor { shape: current.shape.clone(), values })
    })
}

/// A rows x cols matrix (row-major) with orthonormal rows (rows <= cols) or columns, from a
/// Gaussian matrix by modified Gram-Schmidt, in f64.
pub fn orthogonal(rows: usize, cols: usize, rng: &mut GanRng) -> Vec<f32> {
    let (k, len) = if rows <= cols { (rows, cols) } else { (cols, rows) };
    let mut vs: Vec<Vec<f64>> = (0..k).map(|_| rng.normal_vec(len, 0.0, 1.0).into_iter().map(f64::from).collect()).collect();
    for i in 0..k {
        for j in 0..i {
            let dot: f64 = vs[i].iter().zip(&vs[j]).map(|(a, b)| a * b).sum();
            let vj = vs[j].clone();
            vs[i].iter_mut().zip(&vj).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = vs[i].iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        vs[i].iter_mut().for_each(|a| *a /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = if rows <= cols { vs[r][c] } else { vs[c][r] } as f32;
        }
    }
    out
}

/// Latents from the truncated normal of BigGAN's truncation trick: N(0, 1) values whose
/// magnitude exceeds `threshold` are drawn again, trading variety for fidelity.
pub fn truncated_latents(rng: &mut GanRng, n: usize, threshold: f32) -> Vec<f32> {
    let mut z = rng.normal_vec(n, 0.0, 1.0);
    for v in z.iter_mut() {
        while v.abs() > threshold {
            *v = rng.normal_vec(1, 0.0, 1.0)[0];
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use burn::tensor::TensorData;

    #[test]
    fn orthogonal_rows_and_columns() {
        let mut rng = GanRng::new(0, Stream::Init);
        for (r, c) in [(4, 9), (9, 4), (6, 6)] {
            let m = orthogonal(r, c, &mut rng);
            let k = r.min(c);
            // The Gram matrix of the shorter side is the identity.
            for i in 0..k {
                for j in 0..k {
                    let dot: f32 = if r <= c {
                        (0..c).map(|x| m[i * c + x] * m[j * c + x]).sum()
                    } else {
                        (0..r).map(|x| m[x * c + i] * m[x * c + j]).sum()
                    };
                    assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5, "{r}x{c} [{i},{j}] = {dot}");
                }
            }
        }
    }

    #[test]
    fn truncation_bounds_the_latents() {
        let mut rng = GanRng::new(1, Stream::FixedNoise);
        let z = truncated_latents(&mut rng, 10_000, 0.5);
        assert!(z.iter().all(|v| v.abs() <= 0.5));
        let mean = z.iter().sum::<f32>() / z.len() as f32;
        assert!(mean.abs() < 0.02, "{mean}");
    }

    #[test]
    fn shapes_with_attention_and_classes() {
        let device = Device::flex();
        for (s, attn) in [(32, 16), (64, 32)] {
            let shape = ModelShape::new().with_image_size(s).with_channels(3).with_nz(16).with_classes(5);
            let cfg = BigganConfig::new().with_ch(8).with_attn_res(attn).with_shared_dim(8);
            let mut rng = GanRng::new(0, Stream::Init);
            let g = init_orthogonal(Generator::new(&shape, &cfg, &device), &mut rng);
            let d = init_orthogonal(Discriminator::new(&shape, &cfg, &device), &mut rng);
            assert!(g.attention.is_some() && d.attention.is_some());
            let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 4], [2]), &device);
            let x = g.forward(Tensor::zeros([2, 16], &device), Some(y.clone()));
            assert_eq!(x.dims(), [2, 3, s, s]);
            assert_eq!(d.forward(x, Some(y)).dims(), [2]);
        }
    }
}
