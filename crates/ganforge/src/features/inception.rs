//! Inception-v3 as the FID protocol uses it: "Rethinking the Inception Architecture for Computer
//! Vision", Szegedy et al. 2016, in the variant of pytorch-fid (Seitzer, github.com/mseitzer/
//! pytorch-fid), which reproduces the TensorFlow graph of Heusel et al.'s original FID code
//! ("GANs Trained by a Two Time-Scale Update Rule...", 2017).
//!
//! That variant differs from torchvision's Inception-v3 in four places, all kept here: the
//! average pools of the A, C and first E blocks leave padding out of the mean
//! (`count_include_pad = False`), the last E block's pool branch takes a max instead of an
//! average, and the classifier has 1008 outputs. Weights: the file pytorch-fid downloads,
//! `pt_inception-2015-12-05-6726825d.pth`, supplied by the user with `--inception FILE`.
//!
//! Input handling (pytorch-fid's `resize_input` and `normalize_input`): images as 8-bit values
//! / 255 (what pytorch-fid reads back from PNG files), bilinearly resized to 299x299
//! (`align_corners = False`, no antialiasing) and scaled to [-1, 1]. Grey images are repeated
//! into three channels. Batch norm (eps 0.001) is folded into each convolution.
//!
//! Checked without the real weights: `tests/fixtures/inception_reference.py` fills every
//! parameter of pytorch-fid's model from a formula, and the test `inception_matches_pytorch_fid`
//! fills this port from the same formula and compares the 2048-d features.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::{resize_bilinear, FeatureError, Features};
use crate::image_io::ImageBatch;
use crate::ops::conv2d;
use crate::params::HostTensor;

/// The input side of the network.
pub const SIZE: usize = 299;
/// Width of the pool features FID uses.
pub const POOL_DIM: usize = 2048;
/// Classes of the 2015 classifier (1,000 ImageNet classes and 8 unused).
pub const CLASSES: usize = 1008;
/// Where the weights come from.
pub const WEIGHTS_URL: &str = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";
/// How the inputs are brought to the network, for every result that uses it.
pub const RESIZE: &str = "8-bit, bilinear to 299x299 (align_corners=False, no antialias), scaled to [-1, 1] (pytorch-fid)";

/// Conv + folded batch norm + ReLU: torchvision's `BasicConv2d`.
struct Conv {
    w: Tensor<4>,
    b: Tensor<1>,
    options: ConvOptions<2>,
}

impl Conv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(conv2d(x, self.w.clone(), Some(self.b.clone()), self.options.clone()))
    }
}

/// Reads the weights of each named `BasicConv2d` and checks their shapes.
struct Builder<'a> {
    weights: &'a dyn Fn(&str) -> Option<HostTensor>,
    device: &'a Device,
}

impl Builder<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<HostTensor, FeatureError> {
        let t = (self.weights)(name).ok_or_else(|| FeatureError::MissingWeight(name.to_string()))?;
        if t.shape != shape {
            return Err(FeatureError::WeightShape { name: name.to_string(), found: t.shape, expected: shape.to_vec() });
        }
        Ok(t)
    }

    /// `name`: cin -> cout with a kh x kw kernel.
    fn conv(&self, name: &str, cin: usize, cout: usize, k: [usize; 2], stride: usize, pad: [usize; 2]) -> Result<Conv, FeatureError> {
        let w = self.get(&format!("{name}.conv.weight"), &[cout, cin, k[0], k[1]])?;
        let bn = |p: &str| self.get(&format!("{name}.bn.{p}"), &[cout]);
        let (gamma, beta, mean, var) = (bn("weight")?, bn("bias")?, bn("running_mean")?, bn("running_var")?);
        // BN(conv(x)) = conv(x) * s + (beta - mean * s), s = gamma / sqrt(var + eps).
        let scale: Vec<f32> = (0..cout).map(|o| gamma.values[o] / (var.values[o] + 1e-3).sqrt()).collect();
        let per_out = cin * k[0] * k[1];
        let wv: Vec<f32> = w.values.iter().enumerate().map(|(i, v)| v * scale[i / per_out]).collect();
        let bv: Vec<f32> = (0..cout).map(|o| beta.values[o] - mean.values[o] * scale[o]).collect();
        Ok(Conv {
            w: Tensor::from_data(TensorData::new(wv, [cout, cin, k[0], k[1]]), self.device),
            b: Tensor::from_data(TensorData::new(bv, [cout]), self.device),
            options: ConvOptions::new([stride, stride], pad, [1, 1], 1),
        })
    }

    /// The branch3x3dbl of blocks A and B: 1x1 to 64, then two 3x3 to 96, the last with
    /// `stride` (padded to keep the size at stride 1).
    fn double3(&self, block: &str, cin: usize, stride: usize) -> Result<[Conv; 3], FeatureError> {
        let pad = if stride == 1 { 1 } else { 0 };
        Ok([
            self.square(&format!("{block}.branch3x3dbl_1"), cin, 64, 1, 1, 0)?,
            self.square(&format!("{block}.branch3x3dbl_2"), 64, 96, 3, 1, 1)?,
            self.square(&format!("{block}.branch3x3dbl_3"), 96, 96, 3, stride, pad)?,
        ])
    }

    fn square(&self, name: &str, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Result<Conv, FeatureError> {
        self.conv(name, cin, cout, [k, k], stride, [pad, pad])
    }
}

/// Convolutions applied one after the other.
fn chain(convs: &[Conv], x: Tensor<4>) -> Tensor<4> {
    convs.iter().fold(x, |h, c| c.forward(h))
}

fn avg3(x: Tensor<4>) -> Tensor<4> {
    // pytorch-fid: padding left out of the mean, as in the TensorFlow graph.
    avg_pool2d(x, AvgPoolOptions::new([3, 3]).with_stride([1, 1]).with_padding([1, 1]).with_count_include_pad(false))
}

fn max3(x: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([stride, stride]).with_padding([pad, pad]))
}

/// Mixed_5b/5c/5d.
struct BlockA {
    b1: Conv,
    b5: [Conv; 2],
    b3: [Conv; 3],
    pool: Conv,
}

impl BlockA {
    fn new(b: &Builder, name: &str, cin: usize, pool: usize) -> Result<Self, FeatureError> {
        let n = |s: &str| format!("{name}.{s}");
        Ok(Self {
            b1: b.square(&n("branch1x1"), cin, 64, 1, 1, 0)?,
            b5: [b.square(&n("branch5x5_1"), cin, 48, 1, 1, 0)?, b.square(&n("branch5x5_2"), 48, 64, 5, 1, 2)?],
            b3: b.double3(name, cin, 1)?,
            pool: b.square(&n("branch_pool"), cin, pool, 1, 1, 0)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.b1.forward(x.clone());
        let b5 = chain(&self.b5, x.clone());
        let b3 = chain(&self.b3, x.clone());
        let pool = self.pool.forward(avg3(x));
        Tensor::cat(vec![b1, b5, b3, pool], 1) // [b, 224 + pool, 35, 35]
    }
}

/// Mixed_6a: 35x35 -> 17x17.
struct BlockB {
    b3: Conv,
    b3d: [Conv; 3],
}

impl BlockB {
    fn new(b: &Builder, name: &str, cin: usize) -> Result<Self, FeatureError> {
        let n = |s: &str| format!("{name}.{s}");
        Ok(Self { b3: b.square(&n("branch3x3"), cin, 384, 3, 2, 0)?, b3d: b.double3(name, cin, 2)? })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.b3.forward(x.clone());
        let b3d = chain(&self.b3d, x.clone());
        Tensor::cat(vec![b3, b3d, max3(x, 2, 0)], 1) // [b, 768, 17, 17]
    }
}

/// Mixed_6b..6e: factorized 7x7 convolutions.
struct BlockC {
    b1: Conv,
    b7: [Conv; 3],
    b7d: [Conv; 5],
    pool: Conv,
}

impl BlockC {
    fn new(b: &Builder, name: &str, c7: usize) -> Result<Self, FeatureError> {
        let n = |s: &str| format!("{name}.{s}");
        let (row, col) = ([1, 7], [7, 1]);
        let (prow, pcol) = ([0, 3], [3, 0]);
        Ok(Self {
            b1: b.square(&n("branch1x1"), 768, 192, 1, 1, 0)?,
            b7: [
                b.square(&n("branch7x7_1"), 768, c7, 1, 1, 0)?,
                b.conv(&n("branch7x7_2"), c7, c7, row, 1, prow)?,
                b.conv(&n("branch7x7_3"), c7, 192, col, 1, pcol)?,
            ],
            b7d: [
                b.square(&n("branch7x7dbl_1"), 768, c7, 1, 1, 0)?,
                b.conv(&n("branch7x7dbl_2"), c7, c7, col, 1, pcol)?,
                b.conv(&n("branch7x7dbl_3"), c7, c7, row, 1, prow)?,
                b.conv(&n("branch7x7dbl_4"), c7, c7, col, 1, pcol)?,
                b.conv(&n("branch7x7dbl_5"), c7, 192, row, 1, prow)?,
            ],
            pool: b.square(&n("branch_pool"), 768, 192, 1, 1, 0)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.b1.forward(x.clone());
        let b7 = chain(&self.b7, x.clone());
        let b7d = chain(&self.b7d, x.clone());
        let pool = self.pool.forward(avg3(x));
        Tensor::cat(vec![b1, b7, b7d, pool], 1) // [b, 768, 17, 17]
    }
}

/// Mixed_7a: 17x17 -> 8x8.
struct BlockD {
    b3: [Conv; 2],
    b7: [Conv; 4],
}

impl BlockD {
    fn new(b: &Builder, name: &str) -> Result<Self, FeatureError> {
        let n = |s: &str| format!("{name}.{s}");
        Ok(Self {
            b3: [b.square(&n("branch3x3_1"), 768, 192, 1, 1, 0)?, b.square(&n("branch3x3_2"), 192, 320, 3, 2, 0)?],
            b7: [
                b.square(&n("branch7x7x3_1"), 768, 192, 1, 1, 0)?,
                b.conv(&n("branch7x7x3_2"), 192, 192, [1, 7], 1, [0, 3])?,
                b.conv(&n("branch7x7x3_3"), 192, 192, [7, 1], 1, [3, 0])?,
                b.square(&n("branch7x7x3_4"), 192, 192, 3, 2, 0)?,
            ],
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = chain(&self.b3, x.clone());
        let b7 = chain(&self.b7, x.clone());
        Tensor::cat(vec![b3, b7, max3(x, 2, 0)], 1) // [b, 1280, 8, 8]
    }
}

/// Mixed_7b (average pool) and Mixed_7c (max pool, pytorch-fid's FIDInceptionE_2).
struct BlockE {
    b1: Conv,
    b3: Conv,
    b3_split: [Conv; 2],
    b3d: [Conv; 2],
    b3d_split: [Conv; 2],
    pool: Conv,
    max_pool: bool,
}

impl BlockE {
    fn new(b: &Builder, name: &str, cin: usize, max_pool: bool) -> Result<Self, FeatureError> {
        let n = |s: &str| format!("{name}.{s}");
        Ok(Self {
            b1: b.square(&n("branch1x1"), cin, 320, 1, 1, 0)?,
            b3: b.square(&n("branch3x3_1"), cin, 384, 1, 1, 0)?,
            b3_split: [b.conv(&n("branch3x3_2a"), 384, 384, [1, 3], 1, [0, 1])?, b.conv(&n("branch3x3_2b"), 384, 384, [3, 1], 1, [1, 0])?],
            b3d: [b.square(&n("branch3x3dbl_1"), cin, 448, 1, 1, 0)?, b.square(&n("branch3x3dbl_2"), 448, 384, 3, 1, 1)?],
            b3d_split: [
                b.conv(&n("branch3x3dbl_3a"), 384, 384, [1, 3], 1, [0, 1])?,
                b.conv(&n("branch3x3dbl_3b"), 384, 384, [3, 1], 1, [1, 0])?,
            ],
            pool: b.square(&n("branch_pool"), cin, 192, 1, 1, 0)?,
            max_pool,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.b1.forward(x.clone());
        let h = self.b3.forward(x.clone());
        let b3 = Tensor::cat(vec![self.b3_split[0].forward(h.clone()), self.b3_split[1].forward(h)], 1); // [b, 768, 8, 8]
        let h = chain(&self.b3d, x.clone());
        let b3d = Tensor::cat(vec![self.b3d_split[0].forward(h.clone()), self.b3d_split[1].forward(h)], 1); // [b, 768, 8, 8]
        let pooled = if self.max_pool { max3(x, 1, 1) } else { avg3(x) };
        Tensor::cat(vec![b1, b3, b3d, self.pool.forward(pooled)], 1) // [b, 2048, 8, 8]
    }
}

/// The network up to its 2048-d pool features, and the 1008-way classifier for the
/// Inception Score.
pub struct Inception {
    stem: Vec<Conv>,
    stem2: Vec<Conv>,
    a: Vec<BlockA>,
    b: BlockB,
    c: Vec<BlockC>,
    d: BlockD,
    e: Vec<BlockE>,
    fc_w: Tensor<2>,
    fc_b: Tensor<1>,
    device: Device,
}

impl Inception {
    /// Builds the network from `weights` (a name -> tensor lookup in pytorch-fid's names).
    pub fn from_weights(weights: &dyn Fn(&str) -> Option<HostTensor>, device: &Device) -> Result<Self, FeatureError> {
        let b = Builder { weights, device };
        let fc_w = b.get("fc.weight", &[CLASSES, POOL_DIM])?;
        let fc_b = b.get("fc.bias", &[CLASSES])?;
        Ok(Self {
            stem: vec![
                b.square("Conv2d_1a_3x3", 3, 32, 3, 2, 0)?,
                b.square("Conv2d_2a_3x3", 32, 32, 3, 1, 0)?,
                b.square("Conv2d_2b_3x3", 32, 64, 3, 1, 1)?,
            ],
            stem2: vec![b.square("Conv2d_3b_1x1", 64, 80, 1, 1, 0)?, b.square("Conv2d_4a_3x3", 80, 192, 3, 1, 0)?],
            a: vec![BlockA::new(&b, "Mixed_5b", 192, 32)?, BlockA::new(&b, "Mixed_5c", 256, 64)?, BlockA::new(&b, "Mixed_5d", 288, 64)?],
            b: BlockB::new(&b, "Mixed_6a", 288)?,
            c: vec![
                BlockC::new(&b, "Mixed_6b", 128)?,
                BlockC::new(&b, "Mixed_6c", 160)?,
                BlockC::new(&b, "Mixed_6d", 160)?,
                BlockC::new(&b, "Mixed_6e", 192)?,
            ],
            d: BlockD::new(&b, "Mixed_7a")?,
            e: vec![BlockE::new(&b, "Mixed_7b", 1280, false)?, BlockE::new(&b, "Mixed_7c", 2048, true)?],
            // Transposed once here: logits = pool . W^T + b.
            fc_w: Tensor::<2>::from_data(TensorData::new(fc_w.values, [CLASSES, POOL_DIM]), device).transpose(),
            fc_b: Tensor::from_data(TensorData::new(fc_b.values, [CLASSES]), device),
            device: device.clone(),
        })
    }

    /// Loads pytorch-fid's weight file.
    pub fn load(path: &Path, device: &Device) -> Result<Self, FeatureError> {
        if !path.is_file() {
            return Err(FeatureError::NoInceptionFile(path.to_path_buf()));
        }
        let state = crate::pth::read(path)?;
        let floats: BTreeMap<String, HostTensor> = state.floats;
        Self::from_weights(&|name| floats.get(name).cloned(), device)
    }

    /// Pool features and logits of images already resized and scaled: [b, 3, 299, 299].
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let mut x = x;
        for c in &self.stem {
            x = c.forward(x);
        }
        x = max3(x, 2, 0); // [b, 64, 73, 73]
        for c in &self.stem2 {
            x = c.forward(x);
        }
        x = max3(x, 2, 0); // [b, 192, 35, 35]
        for a in &self.a {
            x = a.forward(x);
        }
        x = self.b.forward(x); // [b, 768, 17, 17]
        for c in &self.c {
            x = c.forward(x);
        }
        x = self.d.forward(x); // [b, 1280, 8, 8]
        for e in &self.e {
            x = e.forward(x);
        }
        let [b, ..] = x.dims();
        let pool = adaptive_avg_pool2d(x, [1, 1]).reshape([b, POOL_DIM]); // [b, 2048]
        let logits = pool.clone().matmul(self.fc_w.clone()) + self.fc_b.clone().unsqueeze::<2>(); // [b, 1008]
        (pool, logits)
    }

    /// Features of `images` (values in [-1, 1], any size, 1 or 3 channels), `batch` at a time.
    pub fn features(&self, images: &ImageBatch, batch: usize) -> Features {
        let mut out = Features::new(POOL_DIM, Some(CLASSES));
        for start in (0..images.n).step_by(batch.max(1)) {
            let n = batch.min(images.n - start);
            let x = prepare(images, start, n); // [n, 3, 299, 299]
            let x = Tensor::<4>::from_data(TensorData::new(x, [n, 3, SIZE, SIZE]), &self.device);
            let (pool, logits) = self.forward(x);
            out.push(&super::host(pool), Some(&super::host(logits)));
        }
        out
    }
}

/// Images `start..start + n` as the network takes them: 8-bit, /255, resized, scaled to [-1, 1].
fn prepare(images: &ImageBatch, start: usize, n: usize) -> Vec<f32> {
    let (c, h, w) = (images.channels, images.height, images.width);
    let plane = h * w;
    let mut rgb = Vec::with_capacity(n * 3 * plane);
    for i in start..start + n {
        for ch in 0..3 {
            let src = if c == 1 { 0 } else { ch };
            let off = (i * c + src) * plane;
            // The byte a PNG would hold, as pytorch-fid reads the images back from files.
            rgb.extend(images.values[off..off + plane].iter().map(|&v| crate::image_io::to_byte(v) as f32 / 255.0));
        }
    }
    prepare_unit(&rgb, n, h, w)
}

/// Inputs as [`Inception::forward`] takes them, from [0, 1] values [n, 3, h, w].
pub fn prepare_unit(values: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
    let mut x = resize_bilinear(values, n * 3, h, w, SIZE, SIZE);
    for v in &mut x {
        *v = 2.0 * *v - 1.0;
    }
    x
}
