//! Gradient penalties on D's input gradient g = grad_x D(x):
//! - WGAN-GP (Gulrajani et al. 2017): lambda * E[(|g| - 1)^2] at random points on the segments
//!   between real and fake images;
//! - R1 (Mescheder, Geiger & Nowozin 2018): gamma / 2 * E[|g|^2] at real images.
//!
//! Their gradient with respect to D's weights needs the gradient of a gradient, which burn 0.22
//! does not provide. It is computed exactly another way: for the unit direction u = g / |g|,
//! held constant, grad_theta |g| = grad_theta (grad_x D . u), and grad_x D . u is a
//! Jacobian-vector product that D computes in its forward pass as an ordinary, differentiable
//! function of its weights (`Discriminator::forward_jvp`: the tangent goes through the same
//! weights, and through LeakyReLU's slope at the primal point, whose own derivative is zero
//! almost everywhere, as in PyTorch's double backward). So the penalty's weight gradient is the
//! gradient of the surrogate sum_i c_i (grad_x D(x_i) . u_i), with c_i = dP/d|g_i| held
//! constant: lambda * 2 (|g_i| - 1) / n for WGAN-GP, gamma |g_i| / n for R1.
//!
//! When D mixes the images of a batch (StyleGAN2's minibatch standard deviation), g_i is the
//! gradient of sum_j D(x_j) with respect to x_i, and the same surrogate is the directional
//! derivative of sum_j D(x_j) along the whole batch's tangent V_i = c_i u_i, which D's forward
//! mode computes exactly through the smooth mixing layer (nothing detached there). For a D
//! that treats images apart, both forms are the same number.
//!
//! A finite-difference Hessian-vector product, (D(x + eps u) - D(x - eps u)) / (2 eps), was
//! tried first and rejected: D is piecewise linear, and a unit whose pre-activation changes
//! sign inside [x - eps u, x + eps u] adds an error of order 1/eps to the weight gradient,
//! whatever eps; on the reference below it was off by 10x the largest gradient entry.
//!
//! Checked against PyTorch's double backward (`autograd.grad(create_graph=True)`) on a small
//! critic: tests/fixtures/gp_reference.py, and the test below states the tolerance. D must not
//! use batch norm (its output for one image would then depend on the others; Gulrajani et al.
//! drop it for the same reason).

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::nets::Discriminator;

/// Which penalty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyKind {
    None,
    /// lambda * E[(|grad D(x_hat)| - 1)^2] on real-fake interpolates (WGAN-GP).
    WganGp,
    /// gamma / 2 * E[|grad D(x)|^2] on real images (R1).
    R1,
}

/// grad_x D(x) for each image, detached: [b, c, h, w].
pub fn input_gradient(d: &Discriminator, x: Tensor<4>, y: Option<Tensor<1, Int>>) -> Tensor<4> {
    let x = x.detach().require_grad();
    let grads = d.forward(x.clone(), y).sum().backward();
    x.grad(&grads).expect("D's output depends on its input").detach()
}

/// The penalty's value, and the surrogate whose weight gradient is the penalty's.
pub struct Penalty {
    pub value: f32,
    pub surrogate: Tensor<1>,
}

/// The penalty of `kind` with weight `weight` at points `x` ([b, c, h, w]).
pub fn penalty(kind: PenaltyKind, weight: f64, d: &Discriminator, x: Tensor<4>, y: Option<Tensor<1, Int>>, device: &Device) -> Penalty {
    let b = x.dims()[0];
    let g = input_gradient(d, x.clone(), y.clone()); // [b, c, h, w]
    let norms: Vec<f32> =
        g.clone().square().sum_dim(3).sum_dim(2).sum_dim(1).sqrt().into_data().convert::<f32>().try_into_vec::<f32>().expect("f32");
    let n = b as f64;
    let (value, coef): (f64, Vec<f32>) = match kind {
        PenaltyKind::None => (0.0, vec![0.0; b]),
        PenaltyKind::WganGp => (
            weight * norms.iter().map(|&v| (v as f64 - 1.0).powi(2)).sum::<f64>() / n,
            norms.iter().map(|&v| (weight * 2.0 * (v as f64 - 1.0) / n) as f32).collect(),
        ),
        PenaltyKind::R1 => (
            weight / 2.0 * norms.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n,
            norms.iter().map(|&v| (weight * v as f64 / n) as f32).collect(),
        ),
    };
    // The tangent V = c_i g_i / |g_i| per image; the sum over images of D's directional
    // derivatives along V is grad_x (sum_j D(x_j)) . V, whose weight gradient is the penalty's.
    let scale: Vec<f32> = norms.iter().zip(&coef).map(|(&v, &c)| c / v.max(1e-12)).collect();
    let tangent = g * Tensor::<4>::from_data(TensorData::new(scale, [b, 1, 1, 1]), device); // [b, c, h, w]
    let (_, directional) = d.forward_jvp(x, tangent, y); // [b]
    Penalty { value: value as f32, surrogate: directional.sum() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GanConfig;
    use crate::params::{map_named, HostTensor};
    use burn::optim::GradientsParams;

    #[derive(serde::Deserialize)]
    struct Reference {
        real: Vec<f64>,
        fake: Vec<f64>,
        alpha: Vec<f64>,
        weights: std::collections::BTreeMap<String, Vec<f64>>,
        wgan_gp: Case,
        r1: Case,
    }

    #[derive(serde::Deserialize)]
    struct Case {
        value: f64,
        grads: std::collections::BTreeMap<String, Vec<f64>>,
    }

    /// The surrogate's weight gradient against PyTorch's double backward, float64 there and
    /// float32 here: every entry within 1e-6 of the largest (README says so), and the value within 1e-4 relative.
    #[test]
    fn matches_pytorch_double_backward() {
        let path = crate::fixture("gp_reference.json");
        let r: Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let device = Device::flex().autodiff();
        let sets = ["model.image_size=16", "dcgan.ndf=4", "dcgan.batch_norm_d=false"].map(String::from);
        let cfg = GanConfig::resolve(None, None, &sets).unwrap();
        let (_, d) = crate::nets::build(&cfg.families(), 0, &device);
        let d = map_named(d, |name, h| {
            r.weights.get(name).map(|w| HostTensor { shape: h.shape.clone(), values: w.iter().map(|&v| v as f32).collect() })
        });
        let img =
            |v: &[f64]| Tensor::<4>::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [3, 1, 16, 16]), &device);
        let (real, fake) = (img(&r.real), img(&r.fake));
        let alpha = Tensor::<4>::from_data(TensorData::new(r.alpha.iter().map(|&a| a as f32).collect::<Vec<_>>(), [3, 1, 1, 1]), &device);
        let x_hat = real.clone() * alpha.clone() + fake * (alpha.neg().add_scalar(1.0));
        for (kind, x, case) in [(PenaltyKind::WganGp, x_hat, &r.wgan_gp), (PenaltyKind::R1, real, &r.r1)] {
            let p = penalty(kind, 10.0, &d, x, None, &device);
            assert!((p.value as f64 - case.value).abs() < 1e-4 * case.value.abs().max(1e-3), "{kind:?}: {} vs {}", p.value, case.value);
            let grads = GradientsParams::from_grads(p.surrogate.backward(), &d);
            let got = crate::params::named_grads(&d, &grads);
            let scale = case.grads.values().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
            for (name, want) in &case.grads {
                let g = &got[name];
                let worst = g.iter().zip(want).map(|(&a, &b)| (a as f64 - b).abs()).fold(0.0, f64::max);
                assert!(worst < 1e-6 * scale, "{kind:?} {name}: off by {worst} (largest entry {scale})");
            }
        }
    }
}
