//! Spectral normalization: "Spectral Normalization for Generative Adversarial Networks",
//! Miyato, Kataoka, Koyama & Yoshida, ICLR 2018 (arXiv:1802.05957).
//!
//! A layer's weight W, seen as a matrix (rows = its first dimension, the rest flattened), is
//! divided by an estimate of its largest singular value sigma(W), which bounds the layer's
//! Lipschitz constant by 1. The estimate comes from power iteration with a persistent vector
//! u: each forward pass in training takes one step, v = W^T u / |W^T u|, u = W v / |W v|,
//! sigma = u^T W v, with u and v held constant for the gradient (as in the paper's Algorithm 1
//! and PyTorch's `spectral_norm`, which also steps once per training forward pass). u is a
//! running state, so it is saved in checkpoints (`....sn.u`) and a resumed run continues the
//! iteration where it was.

use burn::module::{Module, Param, ParamId, RunningState};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::ops;

/// The persistent left singular vector estimate of one layer.
#[derive(Module, Debug)]
pub struct SpectralNorm {
    u: RunningState<Tensor<1>>,
}

fn normalized(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum().sqrt().add_scalar(1e-12); // [1]
    x.div(norm.unsqueeze::<2>())
}

impl SpectralNorm {
    /// For a weight whose first dimension is `rows`; u starts as the unit vector along
    /// (1, ..., 1) until `nets::init_weights` draws it at random.
    pub fn new(rows: usize, device: &Device) -> Self {
        let u = Tensor::<1>::ones([rows], device).div_scalar((rows as f64).sqrt());
        Self { u: RunningState::new(u) }
    }

    /// One power-iteration step on `weight` (updating u when the device tracks gradients, i.e.
    /// in training) and the estimate sigma, [1]; the gradient flows through W only.
    pub fn sigma<const D: usize>(&self, weight: Tensor<D>) -> Tensor<1> {
        let dims = weight.dims();
        let rows = dims[0];
        let cols: usize = dims[1..].iter().product();
        let w = weight.reshape([rows, cols]); // [rows, cols]
        let wd = w.clone().detach();
        let training = w.device().is_autodiff();
        let u = if training { self.u.value_sync() } else { self.u.value() }.to_device(&w.device()).reshape([rows, 1]); // [rows, 1]
        let v = normalized(wd.clone().transpose().matmul(u)); // [cols, 1]
        let u = normalized(wd.matmul(v.clone())); // [rows, 1]
        if training {
            self.u.update(u.clone().reshape([rows]).detach().inner());
        }
        u.transpose().matmul(w.matmul(v)).reshape([1]) // [1]: u^T W v
    }

    /// `weight / sigma(weight)`.
    pub fn normalize<const D: usize>(&self, weight: Tensor<D>) -> Tensor<D> {
        let sigma = self.sigma(weight.clone());
        weight.div(sigma.reshape([1; D]))
    }
}

/// A computed weight in a parameter slot for one forward pass: the gradient flows through it to
/// the layer's real weight (a fresh `Param::from_tensor` would try to make it a leaf).
fn through<const D: usize>(w: Tensor<D>) -> Param<Tensor<D>> {
    Param::initialized(ParamId::new(), w)
}

/// The convolution to apply: `conv` itself, or a copy with the spectrally normalized weight
/// (one power-iteration step), to be used for every input of one forward pass.
pub fn effective_conv2d(conv: &Conv2d, sn: &Option<SpectralNorm>) -> Conv2d {
    match sn {
        None => conv.clone(),
        Some(sn) => Conv2d { weight: through(sn.normalize(conv.weight.val())), ..conv.clone() },
    }
}

/// A convolution through its spectrally normalized weight when `sn` is set.
pub fn conv2d(conv: &Conv2d, sn: &Option<SpectralNorm>, x: Tensor<4>) -> Tensor<4> {
    match sn {
        None => ops::conv2d_layer(conv, x),
        Some(_) => ops::conv2d_layer(&effective_conv2d(conv, sn), x),
    }
}

/// A linear layer through its spectrally normalized weight when `sn` is set (burn stores the
/// weight as [in, out]; its singular values are those of the map).
pub fn linear(layer: &Linear, sn: &Option<SpectralNorm>, x: burn::tensor::Tensor<2>) -> burn::tensor::Tensor<2> {
    match sn {
        None => layer.forward(x),
        Some(sn) => Linear { weight: through(sn.normalize(layer.weight.val())), ..layer.clone() }.forward(x),
    }
}

/// A transposed convolution through its spectrally normalized weight when `sn` is set.
pub fn conv_transpose2d(conv: &ConvTranspose2d, sn: &Option<SpectralNorm>, x: Tensor<4>) -> Tensor<4> {
    match sn {
        None => ops::conv_transpose2d_layer(conv, x),
        Some(sn) => ops::conv_transpose2d_layer(&ConvTranspose2d { weight: through(sn.normalize(conv.weight.val())), ..conv.clone() }, x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// Largest singular value by power iteration in f64 run to convergence: the SVD's sigma_1
    /// to ~1e-12 for these well-separated spectra.
    fn sigma_max(w: &[f64], rows: usize, cols: usize) -> f64 {
        let mut v = vec![1.0; cols];
        let mut s = 0.0;
        for _ in 0..5000 {
            let u: Vec<f64> = (0..rows).map(|r| (0..cols).map(|c| w[r * cols + c] * v[c]).sum()).collect();
            let nu = u.iter().map(|x| x * x).sum::<f64>().sqrt();
            v = (0..cols).map(|c| (0..rows).map(|r| w[r * cols + c] * u[r] / nu).sum()).collect();
            s = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter_mut().for_each(|x| *x /= s);
        }
        s
    }

    #[test]
    fn converges_to_the_largest_singular_value() {
        let device = Device::flex().autodiff();
        // W = R diag(3, 2, 0.5) with R a rotation by 0.3 rad in the first two axes: sigma_1 = 3.
        let (c, s) = (0.3f64.cos(), 0.3f64.sin());
        let known = [3.0 * c, -2.0 * s, 0.0, 3.0 * s, 2.0 * c, 0.0, 0.0, 0.0, 0.5];
        // A conv-shaped weight [4, 2, 3, 3] with arbitrary values: compared with sigma_max.
        let conv: Vec<f64> = (0..72).map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0).collect();
        for (w, dims, want) in [(known.to_vec(), vec![3, 3, 1, 1], 3.0), (conv.clone(), vec![4, 2, 3, 3], sigma_max(&conv, 4, 18))] {
            let rows = dims[0];
            let sn = SpectralNorm::new(rows, &device);
            let t = Tensor::<4>::from_data(TensorData::new(w.iter().map(|&x| x as f32).collect::<Vec<_>>(), dims.clone()), &device);
            let mut got = 0.0;
            for _ in 0..60 {
                got = sn.sigma(t.clone()).into_scalar::<f32>() as f64;
            }
            assert!((got - want).abs() < 1e-4 * want, "{dims:?}: {got} vs {want}");
            // The normalized weight has largest singular value 1.
            let n = sn.normalize(t).into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
            let n: Vec<f64> = n.into_iter().map(|x| x as f64).collect();
            assert!((sigma_max(&n, rows, n.len() / rows) - 1.0).abs() < 1e-3);
        }
    }

    #[test]
    fn u_moves_only_in_training_and_gradients_flow_through_w() {
        let device = Device::flex();
        let sn = SpectralNorm::new(3, &device);
        let w = Tensor::<2>::from_floats([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], &device);
        let before = sn.u.value().into_data();
        sn.sigma(w.clone());
        assert_eq!(sn.u.value().into_data(), before, "no update outside training");
        let ad = device.autodiff();
        let w = Tensor::<2>::from_floats([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], &ad).require_grad();
        let sigma = sn.sigma(w.clone());
        assert_ne!(sn.u.value_sync().into_data(), before, "one power step in training");
        let grads = sigma.backward();
        let g = w.grad(&grads).expect("W gets a gradient").into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
        // d(u^T W v)/dW = u v^T: a rank-one matrix, not zero.
        assert!(g.iter().any(|&x| x.abs() > 1e-3), "{g:?}");
    }
}
