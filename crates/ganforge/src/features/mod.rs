//! Feature extractors for the metrics: images in, feature vectors (and class scores) out.
//!
//! - [`inception`]: Inception-v3 as pytorch-fid has it, for FID, KID, MiFID, precision/recall
//!   and the Inception Score on natural images (weights supplied by the user);
//! - [`lenet`] and [`cifar`]: small classifiers ganforge trains itself, shipped for MNIST and
//!   CIFAR-10, for class coverage and for domain features where Inception is missing or
//!   meaningless; [`classifier`] trains them and loads either kind.
//!
//! The metrics themselves are pure functions on these features, in `crate::metrics`.

pub mod cifar;
pub mod classifier;
pub mod inception;
pub mod lenet;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(
        "Inception weights not found at {0}. FID, KID, MiFID, precision/recall and the Inception Score use pytorch-fid's \
         Inception-v3; this machine cannot download it: fetch {url} elsewhere and pass it with --inception FILE \
         (or use --features lenet for MNIST-like data)",
        url = inception::WEIGHTS_URL
    )]
    NoInceptionFile(PathBuf),
    #[error("the weights have no tensor '{0}': is this pytorch-fid's pt_inception-2015-12-05 file?")]
    MissingWeight(String),
    #[error("weight '{name}' has shape {found:?}, expected {expected:?}: not pytorch-fid's Inception-v3 weights")]
    WeightShape { name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error(transparent)]
    Pth(#[from] crate::pth::PthError),
    #[error(transparent)]
    Tensors(#[from] crate::params::TensorFileError),
    #[error("the classifier takes grey images of one channel; these have {0}")]
    Channels(usize),
}

/// Which network's features the distribution metrics compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FeatureKind {
    /// pytorch-fid's Inception-v3 (the FID everyone reports); needs the weight file.
    Inception,
    /// The LeNet classifier's 64-d features: a domain FID for digits.
    Lenet,
    /// The CIFAR-10 classifier's 256-d features: a domain FID for small photos, never to be
    /// compared with an Inception FID.
    Cifar,
}

/// A name that is no feature extractor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown feature extractor '{0}': expected inception (pytorch-fid's Inception-v3, needs --inception FILE), lenet (digits) or cifar (small photos)")]
pub struct UnknownFeatures(pub String);

impl FeatureKind {
    pub fn parse(s: &str) -> Result<Self, UnknownFeatures> {
        match s {
            "inception" => Ok(Self::Inception),
            "lenet" => Ok(Self::Lenet),
            "cifar" => Ok(Self::Cifar),
            _ => Err(UnknownFeatures(s.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Inception => "inception",
            Self::Lenet => "lenet",
            Self::Cifar => "cifar",
        }
    }
}

impl TryFrom<String> for FeatureKind {
    type Error = UnknownFeatures;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<FeatureKind> for String {
    fn from(k: FeatureKind) -> String {
        k.name().to_string()
    }
}

/// A classifier network that ganforge trains (`classifier::train`) and judges images with: its
/// penultimate layer gives domain features, its last the class scores.
pub trait ClassifierNet: burn::module::Module {
    /// The channels and side of the input it takes, in [-1, 1].
    const INPUT: (usize, usize);
    /// Width of the feature layer.
    const FEATURE_DIM: usize;
    /// A network with He-initialized weights drawn from `seed` (see [`he_init`]).
    fn init(classes: usize, seed: u64, device: &burn::tensor::Device) -> Self;
    /// Features [b, FEATURE_DIM] and logits [b, classes] of x [b, c, s, s] in [-1, 1].
    fn forward(&self, x: burn::tensor::Tensor<4>) -> (burn::tensor::Tensor<2>, burn::tensor::Tensor<2>);
    fn classes(&self) -> usize;
    fn device(&self) -> burn::tensor::Device;
}

/// `net` with every weight matrix or kernel drawn from N(0, 2 / fan_in) (He et al. 2015, for
/// ReLU networks) and every bias zero, from `seed` in module order, so that a seed gives the
/// same network on any machine. Batch norm keeps its constant start (scale 1, shift 0).
pub fn he_init<M: burn::module::Module>(net: M, seed: u64) -> M {
    let mut rng = crate::rng::GanRng::new(seed, crate::rng::Stream::Init);
    crate::params::map_named(net, |path, t| {
        let fan_in = match t.shape.as_slice() {
            // Conv kernels are [out, in, k, k]; burn's Linear weights are [in, out].
            [_, cin, kh, kw] => cin * kh * kw,
            [cin, _] => *cin,
            _ if path.ends_with("bias") => return Some(crate::params::HostTensor { shape: t.shape.clone(), values: vec![0.0; t.values.len()] }),
            _ => return None,
        };
        Some(crate::params::HostTensor { shape: t.shape.clone(), values: rng.normal_vec(t.values.len(), 0.0, (2.0 / fan_in as f32).sqrt()) })
    })
}

/// A tensor's values on the host.
fn host<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 after convert")
}

/// Feature vectors ([n * dim], row-major) and, when the extractor is a classifier, its logits
/// ([n * classes]).
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub dim: usize,
    pub values: Vec<f32>,
    pub classes: Option<usize>,
    pub logits: Vec<f32>,
}

impl Features {
    pub fn new(dim: usize, classes: Option<usize>) -> Self {
        Self { dim, values: Vec::new(), classes, logits: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn push(&mut self, values: &[f32], logits: Option<&[f32]>) {
        self.values.extend_from_slice(values);
        if let Some(l) = logits {
            self.logits.extend_from_slice(l);
        }
    }

    /// Appends `more` (one batch's features, if the extractor gave any) to the set gathered so
    /// far in `acc`: the one way a set's features are put together, batch by batch.
    pub fn append(acc: &mut Option<Self>, more: Option<Self>) {
        match (acc, more) {
            (Some(acc), Some(f)) => acc.push(&f.values, Some(&f.logits)),
            (acc @ None, f) => *acc = f,
            _ => {}
        }
    }

    /// Class probabilities (softmax of the logits), [n * classes].
    pub fn probs(&self) -> Vec<f32> {
        let Some(c) = self.classes else { return Vec::new() };
        self.logits
            .chunks(c)
            .flat_map(|row| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f64> = row.iter().map(|&v| ((v - max) as f64).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.into_iter().map(move |v| (v / sum) as f32)
            })
            .collect()
    }

    /// The most likely class of each image.
    pub fn predictions(&self) -> Vec<u32> {
        let Some(c) = self.classes else { return Vec::new() };
        self.logits
            .chunks(c)
            .map(|row| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0 as u32)
            .collect()
    }
}

/// Bilinear resize of `planes` planes of h x w to out_h x out_w, as PyTorch's
/// `F.interpolate(mode="bilinear", align_corners=False)` without antialiasing: the source of
/// output pixel i is (i + 0.5) * in / out - 0.5, clamped at 0, between its two neighbours.
pub fn resize_bilinear(values: &[f32], planes: usize, h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    // (lower index, upper index, weight of the upper) per output coordinate.
    let taps = |inp: usize, out: usize| -> Vec<(usize, usize, f32)> {
        let scale = inp as f32 / out as f32;
        (0..out)
            .map(|i| {
                let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                let lo = (src as usize).min(inp - 1);
                let hi = (lo + 1).min(inp - 1);
                (lo, hi, src - lo as f32)
            })
            .collect()
    };
    let (ty, tx) = (taps(h, out_h), taps(w, out_w));
    let mut out = Vec::with_capacity(planes * out_h * out_w);
    for p in 0..planes {
        let plane = &values[p * h * w..(p + 1) * h * w];
        for &(y0, y1, ly) in &ty {
            for &(x0, x1, lx) in &tx {
                let top = (1.0 - lx) * plane[y0 * w + x0] + lx * plane[y0 * w + x1];
                let bottom = (1.0 - lx) * plane[y1 * w + x0] + lx * plane[y1 * w + x1];
                out.push((1.0 - ly) * top + ly * bottom);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch, `F.interpolate(torch.arange(4.).view(1,1,1,4), size=(1,8), mode="bilinear")`:
    /// [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]; and down by 2 averages neighbours.
    #[test]
    fn bilinear_resize_matches_pytorch() {
        let up = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 1, 1, 4, 1, 8);
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]);
        let down = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 1, 1, 4, 1, 2);
        assert_eq!(down, vec![0.5, 2.5]);
    }

    #[test]
    fn softmax_and_predictions() {
        let mut f = Features::new(1, Some(3));
        f.push(&[0.0, 0.0], Some(&[0.0, 0.0, 0.0, 1.0, 5.0, 2.0]));
        let p = f.probs();
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-6 && (p[3..].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(f.predictions(), vec![0, 1]);
    }
}
