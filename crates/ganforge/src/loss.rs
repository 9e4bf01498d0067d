//! The adversarial losses, on logits.
//!
//! Goodfellow et al. (2014) define the minimax game min_G max_D E[log D(x)] + E[log(1 - D(G(z)))]
//! and recommend, in practice, training G to maximize log D(G(z)) instead (the non-saturating
//! loss): its gradient is strong exactly when D confidently rejects G's samples, early in
//! training. Both are binary cross-entropies, computed here on the logits D outputs.

use burn::tensor::activation::relu;
use burn::tensor::Tensor;

/// Mean binary cross-entropy between `sigmoid(logits)` and `targets` (each in [0, 1]),
/// computed as max(x, 0) - x t + log(1 + exp(-|x|)): exact for every finite logit, where
/// taking log(sigmoid(x)) underflows to -inf once |x| passes ~17 in f32.
pub fn bce_with_logits(logits: Tensor<1>, targets: Tensor<1>) -> Tensor<1> {
    let softplus_neg_abs = logits.clone().abs().neg().exp().log1p(); // [b]
    (relu(logits.clone()) - logits * targets + softplus_neg_abs).mean() // [1]
}

/// D's loss: -[log D(x) + log(1 - D(G(z)))] with the given targets for the real and the fake
/// batch (1 and 0 unless the label tricks change them). Each batch is averaged on its own and
/// the two are added, as in the DCGAN reference code.
pub fn discriminator_loss(real_logits: Tensor<1>, real_targets: Tensor<1>, fake_logits: Tensor<1>, fake_targets: Tensor<1>) -> Tensor<1> {
    bce_with_logits(real_logits, real_targets) + bce_with_logits(fake_logits, fake_targets)
}

/// G's non-saturating loss: -log D(G(z)), i.e. cross-entropy against the "real" target.
pub fn generator_loss(fake_logits: Tensor<1>, real_target: f32) -> Tensor<1> {
    let targets = fake_logits.ones_like().mul_scalar(real_target);
    bce_with_logits(fake_logits, targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::from_floats(v, &Device::flex())
    }

    fn scalar(x: Tensor<1>) -> f32 {
        x.into_scalar::<f32>()
    }

    /// Hand values: BCE(x, t) = -[t log s(x) + (1-t) log(1 - s(x))], s the logistic function.
    #[test]
    fn matches_the_definition() {
        let xs = [-3.0f32, -0.5, 0.0, 0.7, 4.0];
        let ts = [0.0f32, 1.0, 0.5, 0.9, 1.0];
        let expect: f32 = xs
            .iter()
            .zip(ts)
            .map(|(&x, t)| {
                let s = 1.0 / (1.0 + (-x as f64).exp());
                -(t as f64 * s.ln() + (1.0 - t as f64) * (1.0 - s).ln()) as f32
            })
            .sum::<f32>()
            / 5.0;
        let got = scalar(bce_with_logits(t(&xs), t(&ts)));
        assert!((got - expect).abs() < 1e-6, "{got} vs {expect}");
        // At x = 0 the loss is log 2 whatever the target.
        assert!((scalar(bce_with_logits(t(&[0.0]), t(&[1.0]))) - std::f32::consts::LN_2).abs() < 1e-7);
    }

    #[test]
    fn stable_for_huge_logits() {
        // A confidently wrong D: sigmoid-then-log would give inf here.
        let got = scalar(bce_with_logits(t(&[-100.0, 100.0]), t(&[1.0, 0.0])));
        assert!((got - 100.0).abs() < 1e-4, "{got}");
        let got = scalar(bce_with_logits(t(&[100.0, -100.0]), t(&[1.0, 0.0])));
        assert!(got.abs() < 1e-6, "{got}");
    }

    #[test]
    fn d_and_g_losses() {
        // D(x) logit 2 on a real image, D(G(z)) logit -1 on a fake one.
        let d = scalar(discriminator_loss(t(&[2.0]), t(&[1.0]), t(&[-1.0]), t(&[0.0])));
        let expect = (1.0 + (-2.0f32).exp()).ln() + (1.0 + (-1.0f32).exp()).ln();
        assert!((d - expect).abs() < 1e-6);
        // Non-saturating G loss: -log sigmoid(-1) = log(1 + e).
        let g = scalar(generator_loss(t(&[-1.0]), 1.0));
        assert!((g - (1.0 + 1.0f32.exp()).ln()).abs() < 1e-6);
    }
}
