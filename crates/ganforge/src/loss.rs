//! The adversarial losses, each a named choice (`train.loss`), as functions of D's raw outputs
//! on a real batch and a fake batch. D never ends in a sigmoid; the losses that need one apply
//! it here, on logits.
//!
//! - `ns`: Goodfellow et al. (2014) define the minimax game min_G max_D E[log D(x)] +
//!   E[log(1 - D(G(z)))] and recommend, in practice, training G to maximize log D(G(z)) instead
//!   (the non-saturating loss): its gradient is strong exactly when D confidently rejects G's
//!   samples, early in training. Both are binary cross-entropies on logits.
//! - `wgan`: Arjovsky, Chintala & Bottou (2017): the critic maximizes E[C(x)] - E[C(G(z))]
//!   under a Lipschitz constraint (weight clipping), G minimizes -E[C(G(z))].
//! - `hinge`: Lim & Ye (2017), used by SAGAN and BigGAN: D minimizes E[relu(1 - D(x))] +
//!   E[relu(1 + D(G(z)))], G minimizes -E[D(G(z))].
//! - `lsgan`: Mao et al. (2017), least squares with targets b = 1 (real), a = 0 (fake) and
//!   c = 1 (what G wants D to say): D minimizes 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2], G
//!   minimizes 1/2 E[(D(G(z)) - 1)^2].
//! - `ragan`, `ralsgan`: Jolicoeur-Martineau (2018), relativistic average: D estimates whether
//!   a real image is more realistic than the average fake (and a fake less realistic than the
//!   average real), with C~(x_r) = C(x_r) - E C(x_f) and C~(x_f) = C(x_f) - E C(x_r):
//!   RaGAN D: -E[log sigmoid(C~(x_r))] - E[log(1 - sigmoid(C~(x_f)))], G the same with real
//!   and fake exchanged; RaLSGAN D: E[(C~(x_r) - 1)^2] + E[(C~(x_f) + 1)^2], G exchanged.

use burn::tensor::activation::relu;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The adversarial loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Non-saturating cross-entropy (Goodfellow et al. 2014; DCGAN).
    Ns,
    /// Wasserstein critic (Arjovsky et al. 2017); needs a Lipschitz constraint (weight clipping).
    Wgan,
    /// Hinge (Lim & Ye 2017; SAGAN, BigGAN).
    Hinge,
    /// Least squares (Mao et al. 2017).
    Lsgan,
    /// Relativistic average cross-entropy (Jolicoeur-Martineau 2018).
    Ragan,
    /// Relativistic average least squares (Jolicoeur-Martineau 2018).
    Ralsgan,
}

impl LossKind {
    /// Whether the loss reads D's outputs as "realness" targets that the label tricks (soft
    /// labels, flips, swapped labels) can change.
    pub fn takes_targets(self) -> bool {
        matches!(self, LossKind::Ns | LossKind::Lsgan)
    }

    /// Whether D's output is a logit whose sigmoid is a probability of "real" (for reporting).
    pub fn is_probabilistic(self) -> bool {
        matches!(self, LossKind::Ns | LossKind::Ragan)
    }

    /// Whether G's loss needs D's outputs on the real batch.
    pub fn is_relativistic(self) -> bool {
        matches!(self, LossKind::Ragan | LossKind::Ralsgan)
    }
}

fn mean_sq(x: Tensor<1>) -> Tensor<1> {
    x.square().mean()
}

/// D's loss from its outputs on the real and the fake batch. `real_targets` and
/// `fake_targets` (1 and 0 unless the label tricks change them) are read by `ns` and `lsgan`.
pub fn d_loss(kind: LossKind, real: Tensor<1>, fake: Tensor<1>, real_targets: Tensor<1>, fake_targets: Tensor<1>) -> Tensor<1> {
    match kind {
        LossKind::Ns => discriminator_loss(real, real_targets, fake, fake_targets),
        LossKind::Lsgan => (mean_sq(real - real_targets) + mean_sq(fake - fake_targets)).mul_scalar(0.5),
        LossKind::Wgan => fake.mean() - real.mean(),
        LossKind::Hinge => relu(real.neg().add_scalar(1.0)).mean() + relu(fake.add_scalar(1.0)).mean(),
        LossKind::Ragan | LossKind::Ralsgan => relativistic(kind, real, fake),
    }
}

/// G's loss from D's outputs on G's batch (and, for the relativistic losses, on the real
/// batch). `g_target` is what G wants D to say (1, or 0 with swapped labels) for `ns`/`lsgan`.
pub fn g_loss(kind: LossKind, real: Option<Tensor<1>>, fake: Tensor<1>, g_target: f32) -> Tensor<1> {
    match kind {
        LossKind::Ns => generator_loss(fake, g_target),
        LossKind::Lsgan => mean_sq(fake.sub_scalar(g_target)).mul_scalar(0.5),
        LossKind::Wgan | LossKind::Hinge => fake.mean().neg(),
        LossKind::Ragan | LossKind::Ralsgan => {
            let real = real.expect("a relativistic G loss is given D's outputs on the real batch");
            // G's side of the game: the roles of real and fake exchanged.
            relativistic(kind, fake, real)
        }
    }
}

/// The relativistic average loss of "`a` looks more real than the average `b`, and `b` less
/// real than the average `a`".
fn relativistic(kind: LossKind, a: Tensor<1>, b: Tensor<1>) -> Tensor<1> {
    let a_rel = a.clone() - b.clone().mean().unsqueeze::<1>(); // [n]
    let b_rel = b - a.mean().unsqueeze::<1>(); // [n]
    if kind == LossKind::Ragan {
        let (ones, zeros) = (a_rel.ones_like(), b_rel.zeros_like());
        bce_with_logits(a_rel, ones) + bce_with_logits(b_rel, zeros)
    } else {
        mean_sq(a_rel.sub_scalar(1.0)) + mean_sq(b_rel.add_scalar(1.0))
    }
}

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

    /// Every loss against values worked out by hand for D outputs r = [2, -1] on the real batch
    /// and f = [0.5, -3] on the fake one (mean r = 0.5, mean f = -1.25).
    #[test]
    fn every_loss_matches_its_definition() {
        let (r, f) = ([2.0f32, -1.0], [0.5f32, -3.0]);
        let sp = |x: f64| (1.0 + x.exp()).ln(); // softplus: -log sigmoid(-x), -log(1 - sigmoid(x)) = sp(x)
        let d = |k| scalar(d_loss(k, t(&r), t(&f), t(&[1.0, 1.0]), t(&[0.0, 0.0]))) as f64;
        let g = |k| scalar(g_loss(k, Some(t(&r)), t(&f), 1.0)) as f64;
        let close = |got: f64, want: f64, what: &str| assert!((got - want).abs() < 1e-5, "{what}: {got} vs {want}");

        close(d(LossKind::Ns), (sp(-2.0) + sp(1.0)) / 2.0 + (sp(0.5) + sp(-3.0)) / 2.0, "ns D");
        close(g(LossKind::Ns), (sp(-0.5) + sp(3.0)) / 2.0, "ns G");
        // WGAN: D minimizes E f - E r = -1.25 - 0.5; G minimizes -E f = 1.25.
        close(d(LossKind::Wgan), -1.75, "wgan D");
        close(g(LossKind::Wgan), 1.25, "wgan G");
        // Hinge: relu(1 - r) = [0, 2], relu(1 + f) = [1.5, 0].
        close(d(LossKind::Hinge), 1.0 + 0.75, "hinge D");
        close(g(LossKind::Hinge), 1.25, "hinge G");
        // LSGAN: 1/2 mean((r-1)^2) = 1/2 * (1 + 4)/2; 1/2 mean(f^2) = 1/2 * (0.25 + 9)/2.
        close(d(LossKind::Lsgan), 1.25 + 2.3125, "lsgan D");
        close(g(LossKind::Lsgan), 0.5 * (0.25 + 16.0) / 2.0, "lsgan G");
        // Relativistic: r~ = r - (-1.25) = [3.25, 0.25], f~ = f - 0.5 = [0, -3.5].
        close(d(LossKind::Ragan), (sp(-3.25) + sp(-0.25)) / 2.0 + (sp(0.0) + sp(-3.5)) / 2.0, "ragan D");
        close(g(LossKind::Ragan), (sp(-0.0) + sp(3.5)) / 2.0 + (sp(3.25) + sp(0.25)) / 2.0, "ragan G");
        close(d(LossKind::Ralsgan), (2.25f64.powi(2) + 0.75f64.powi(2)) / 2.0 + (1.0 + 2.5f64.powi(2)) / 2.0, "ralsgan D");
        close(g(LossKind::Ralsgan), (1.0 + 4.5f64.powi(2)) / 2.0 + (4.25f64.powi(2) + 1.25f64.powi(2)) / 2.0, "ralsgan G");
    }
}
