//! Sample-quality metrics as pure functions on features (rows of `dim` values, row-major), kept
//! apart from any feature extractor and from file I/O. Each follows its reference
//! implementation and is tested against it (tests/fixtures/metrics_reference.py):
//! - FID (Heusel et al. 2017): |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), covariances
//!   with n - 1 as pytorch-fid's `np.cov`;
//! - KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel (x.y / dim + 1)^3, averaged
//!   over random subsets;
//! - MiFID (Kaggle's "Generative Dog Images"): FID divided by the memorization distance
//!   (mean over generated features of the least cosine distance 1 - |cos| to a training
//!   feature), which counts only below 0.1 and is 1 otherwise;
//! - precision and recall (Kynkaanniemi et al. 2019): the share of generated features inside
//!   the real k-NN balls (k = 3), and of real features inside the generated ones;
//! - the Inception Score (Salimans et al. 2016) from class probabilities;
//! - class coverage (Metz et al. 2017, Lin et al. 2018): classes a classifier finds among the
//!   generated images, and KL(generated class distribution || real class distribution).

use nalgebra::{DMatrix, DVector, SymmetricEigen};

use crate::rng::GanRng;

pub mod registry;
pub use registry::{Metric, MetricResults, MetricValue};

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    #[error("{what}: {values} values are not a whole number of {dim}-d features")]
    Shape { what: &'static str, values: usize, dim: usize },
    #[error("{what} needs at least {need} samples, got {got}")]
    TooFew { what: &'static str, need: usize, got: usize },
    #[error("{0} holds a NaN or infinite value")]
    NotFinite(&'static str),
}

fn rows<'a>(what: &'static str, x: &'a [f32], dim: usize, need: usize) -> Result<Vec<&'a [f32]>, MetricError> {
    if dim == 0 || x.len() % dim != 0 {
        return Err(MetricError::Shape { what, values: x.len(), dim });
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(MetricError::NotFinite(what));
    }
    let r: Vec<&[f32]> = x.chunks_exact(dim).collect();
    if r.len() < need {
        return Err(MetricError::TooFew { what, need, got: r.len() });
    }
    Ok(r)
}

/// Mean and covariance of a feature set, what FID compares (and what a cache of real-data
/// statistics stores).
#[derive(Clone, Debug)]
pub struct FeatureStats {
    pub n: usize,
    pub mu: DVector<f64>,
    pub sigma: DMatrix<f64>,
}

impl FeatureStats {
    pub fn of(what: &'static str, x: &[f32], dim: usize) -> Result<Self, MetricError> {
        let r = rows(what, x, dim, 2)?;
        let n = r.len();
        let mut mu = DVector::zeros(dim);
        for row in &r {
            for (m, &v) in mu.iter_mut().zip(*row) {
                *m += v as f64;
            }
        }
        mu /= n as f64;
        let mut sigma = DMatrix::zeros(dim, dim);
        for row in &r {
            let d = DVector::from_iterator(dim, row.iter().zip(mu.iter()).map(|(&v, m)| v as f64 - m));
            sigma.ger(1.0, &d, &d, 1.0);
        }
        sigma /= (n - 1) as f64;
        Ok(Self { n, mu, sigma })
    }

    /// Fewer samples than dimensions: the covariance is singular and FID is biased upward.
    pub fn underdetermined(&self) -> bool {
        self.n <= self.mu.len()
    }
}

/// The square root of a symmetric positive semi-definite matrix, by its eigenvectors (negative
/// eigenvalues from rounding are taken as 0).
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let e = SymmetricEigen::new(m.clone());
    let root = DMatrix::from_diagonal(&e.eigenvalues.map(|l| l.max(0.0).sqrt()));
    &e.eigenvectors * root * e.eigenvectors.transpose()
}

/// The Frechet distance between two Gaussians. Tr (S_1 S_2)^(1/2) is computed as
/// Tr (S_1^(1/2) S_2 S_1^(1/2))^(1/2), a symmetric matrix with the same eigenvalues, which
/// stays real and stable where a general matrix square root can go complex.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> f64 {
    let d = &a.mu - &b.mu;
    let r = sqrt_psd(&a.sigma);
    let inner = &r * &b.sigma * &r;
    let inner = (&inner + inner.transpose()) * 0.5; // exact symmetry against rounding
    let tr_covmean: f64 = SymmetricEigen::new(inner).eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
    d.dot(&d) + a.sigma.trace() + b.sigma.trace() - 2.0 * tr_covmean
}

/// FID between real and generated features.
pub fn fid(real: &[f32], fake: &[f32], dim: usize) -> Result<f64, MetricError> {
    Ok(frechet_distance(&FeatureStats::of("real features", real, dim)?, &FeatureStats::of("generated features", fake, dim)?))
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// KID: mean and standard deviation over `subsets` random subsets of `subset_size` features
/// from each set (torch-fidelity's defaults are 100 subsets of 1,000).
pub fn kid(
    real: &[f32],
    fake: &[f32],
    dim: usize,
    subsets: usize,
    subset_size: usize,
    rng: &mut GanRng,
) -> Result<(f64, f64), MetricError> {
    let (r, f) = (rows("real features", real, dim, subset_size.max(2))?, rows("generated features", fake, dim, subset_size.max(2))?);
    let m = subset_size as f64;
    let k = |a: &[f32], b: &[f32]| (dot(a, b) / dim as f64 + 1.0).powi(3);
    let mut scores = Vec::with_capacity(subsets);
    for _ in 0..subsets.max(1) {
        let (pr, pf) = (rng.permutation(r.len()), rng.permutation(f.len()));
        let (x, y): (Vec<&[f32]>, Vec<&[f32]>) =
            (pr[..subset_size].iter().map(|&i| r[i]).collect(), pf[..subset_size].iter().map(|&i| f[i]).collect());
        let (mut kxx, mut kyy, mut kxy) = (0.0, 0.0, 0.0);
        for i in 0..subset_size {
            for j in 0..subset_size {
                if i != j {
                    kxx += k(x[i], x[j]);
                    kyy += k(y[i], y[j]);
                }
                kxy += k(x[i], y[j]);
            }
        }
        scores.push((kxx + kyy) / (m * (m - 1.0)) - 2.0 * kxy / (m * m));
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let std = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64).sqrt();
    Ok((mean, std))
}

/// Kaggle's memorization distance: mean over generated features of the least cosine distance
/// 1 - |cos| to any training feature (all-zero-sum rows are left out, as Kaggle's code does).
pub fn memorization_distance(fake: &[f32], train: &[f32], dim: usize) -> Result<f64, MetricError> {
    let keep = |v: Vec<&[f32]>| -> Vec<Vec<f64>> {
        v.into_iter()
            .filter(|r| r.iter().map(|&x| x as f64).sum::<f64>() != 0.0)
            .map(|r| {
                let n = dot(r, r).sqrt();
                r.iter().map(|&x| if n > 0.0 { x as f64 / n } else { 0.0 }).collect()
            })
            .collect()
    };
    let (g, t) = (keep(rows("generated features", fake, dim, 1)?), keep(rows("training features", train, dim, 1)?));
    if g.is_empty() || t.is_empty() {
        return Err(MetricError::TooFew { what: "memorization distance (non-zero features)", need: 1, got: 0 });
    }
    let total: f64 =
        g.iter().map(|a| t.iter().map(|b| 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>().abs()).fold(f64::MAX, f64::min)).sum();
    Ok(total / g.len() as f64)
}

/// The memorization distance's threshold in the competition (cosine_distance_eps).
pub const MIFID_EPS: f64 = 0.1;

/// MiFID from an FID and a memorization distance: the distance counts only below 0.1.
pub fn mifid(fid: f64, memorization: f64) -> f64 {
    let d = if memorization < MIFID_EPS { memorization } else { 1.0 };
    fid / (d + 1e-15)
}

fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum()
}

/// Squared distance of each point to its k-th nearest other point.
fn knn_radii2(x: &[&[f32]], k: usize) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, a)| {
            let mut d: Vec<f64> = x.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, b)| dist2(a, b)).collect();
            d.sort_by(|p, q| p.total_cmp(q));
            d[k - 1]
        })
        .collect()
}

/// Precision and recall with k-NN manifolds (k = 3 in Kynkaanniemi et al.).
pub fn precision_recall(real: &[f32], fake: &[f32], dim: usize, k: usize) -> Result<(f64, f64), MetricError> {
    let (r, f) = (rows("real features", real, dim, k + 1)?, rows("generated features", fake, dim, k + 1)?);
    let (rr, rf) = (knn_radii2(&r, k), knn_radii2(&f, k));
    let inside = |p: &[f32], set: &[&[f32]], radii: &[f64]| set.iter().zip(radii).any(|(q, &rad)| dist2(p, q) <= rad);
    let precision = f.iter().filter(|p| inside(p, &r, &rr)).count() as f64 / f.len() as f64;
    let recall = r.iter().filter(|p| inside(p, &f, &rf)).count() as f64 / r.len() as f64;
    Ok((precision, recall))
}

/// The Inception Score exp(E_x KL(p(y|x) || p(y))) from class probabilities ([n * classes]),
/// as mean and standard deviation over `splits` consecutive parts (10 in the original code;
/// parts as NumPy's array_split makes them).
pub fn inception_score(probs: &[f32], classes: usize, splits: usize) -> Result<(f64, f64), MetricError> {
    let p = rows("class probabilities", probs, classes, splits.max(1))?;
    let (n, s) = (p.len(), splits.max(1));
    let mut scores = Vec::with_capacity(s);
    let mut start = 0;
    for part in 0..s {
        let len = n / s + usize::from(part < n % s);
        let chunk = &p[start..start + len];
        start += len;
        let py: Vec<f64> = (0..classes).map(|c| chunk.iter().map(|r| r[c] as f64).sum::<f64>() / len as f64).collect();
        let kl: f64 = chunk
            .iter()
            .map(|r| r.iter().zip(&py).filter(|(&q, _)| q > 0.0).map(|(&q, &m)| q as f64 * ((q as f64).ln() - m.ln())).sum::<f64>())
            .sum::<f64>()
            / len as f64;
        scores.push(kl.exp());
    }
    let mean = scores.iter().sum::<f64>() / s as f64;
    let std = (scores.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / s as f64).sqrt();
    Ok((mean, std))
}

/// How many classes the generated images cover, and how far their class histogram is from
/// the real one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Coverage {
    pub classes: usize,
    /// Classes predicted for at least one generated image.
    pub covered: usize,
    /// KL(q || p), q the generated class distribution and p the real one (as PacGAN reports it).
    /// JSON has no infinity: an infinite KL is written as null and read back as infinite.
    #[serde(deserialize_with = "registry::null_is_infinite")]
    pub kl: f64,
    /// Generated images per class.
    pub histogram: Vec<usize>,
    /// Real images per class (their labels, or the classifier's calls on them): what the
    /// generated histogram is judged against. Empty when not known (files before it, which
    /// then read and write back unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub real_histogram: Vec<usize>,
}

/// Coverage of `predicted` classes (one per generated image) against the real class
/// distribution `real` (non-negative weights, one per class; normalized here). A class the
/// generated images hit but the real data never shows makes KL infinite, reported as such.
pub fn class_coverage(predicted: &[u32], real: &[f64]) -> Result<Coverage, MetricError> {
    let classes = real.len();
    if predicted.is_empty() {
        return Err(MetricError::TooFew { what: "class coverage", need: 1, got: 0 });
    }
    let total: f64 = real.iter().sum();
    if classes == 0 || real.iter().any(|p| !p.is_finite() || *p < 0.0) || total <= 0.0 {
        return Err(MetricError::NotFinite("real class distribution"));
    }
    let mut histogram = vec![0usize; classes];
    for &c in predicted {
        match histogram.get_mut(c as usize) {
            Some(h) => *h += 1,
            None => return Err(MetricError::Shape { what: "predicted classes", values: c as usize, dim: classes }),
        }
    }
    let n = predicted.len() as f64;
    let kl = histogram
        .iter()
        .zip(real)
        .filter(|(&h, _)| h > 0)
        .map(|(&h, &p)| {
            let q = h as f64 / n;
            q * (q / (p / total)).ln()
        })
        .sum();
    Ok(Coverage { classes, covered: histogram.iter().filter(|&&h| h > 0).count(), kl, histogram, real_histogram: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    #[derive(serde::Deserialize)]
    struct Reference {
        dim: usize,
        real: Vec<f32>,
        fake: Vec<f32>,
        copies: Vec<f32>,
        probs: Vec<f32>,
        fid: f64,
        kid_full: f64,
        memorization_fake: f64,
        mifid_fake: f64,
        memorization_copies: f64,
        mifid_copies: f64,
        precision_recall: (f64, f64),
        is_1: (f64, f64),
        is_2: (f64, f64),
    }

    fn reference() -> Reference {
        let p = crate::fixture("metrics_reference.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn close(got: f64, want: f64, rel: f64, what: &str) {
        assert!((got - want).abs() <= rel * want.abs().max(1e-6), "{what}: {got} vs {want}");
    }

    /// Features are float32 here, float64 in the reference: agreement to 1e-5 relative.
    #[test]
    fn metrics_match_the_reference_implementations() {
        let r = reference();
        let d = r.dim;
        close(fid(&r.real, &r.fake, d).unwrap(), r.fid, 1e-5, "fid");
        // A set against itself: |mu - mu|^2 + tr(S + S - 2 (S S)^(1/2)) = 0 by hand; what is left
        // is the rounding of the matrix square root.
        assert!(fid(&r.real, &r.real, d).unwrap().abs() < 1e-6, "FID of a set with itself");
        // One subset that is the whole of each set (the first 30 real, all 30 generated): the
        // unbiased MMD^2 does not depend on the order the subset is drawn in.
        for seed in [0, 7] {
            let (kid_mean, kid_std) = kid(&r.real[..30 * d], &r.fake, d, 1, 30, &mut GanRng::new(seed, Stream::Train)).unwrap();
            close(kid_mean, r.kid_full, 1e-5, "kid");
            assert_eq!(kid_std, 0.0);
        }
        close(memorization_distance(&r.fake, &r.real, d).unwrap(), r.memorization_fake, 1e-5, "memorization (fake)");
        close(mifid(fid(&r.real, &r.fake, d).unwrap(), r.memorization_fake), r.mifid_fake, 1e-5, "mifid (fake)");
        // Near-copies (noise of std 1e-3): a distance of 2.3e-7, which the float32 rounding of the
        // features (about 6e-8 of each entry, against differences of 1e-3) moves by well under 1%.
        let mem = memorization_distance(&r.copies, &r.real, d).unwrap();
        close(mem, r.memorization_copies, 1e-2, "memorization (copies)");
        close(mifid(fid(&r.copies, &r.real, d).unwrap(), mem), r.mifid_copies, 1e-2, "mifid (copies)");
        let (p, rc) = precision_recall(&r.real, &r.fake, d, 3).unwrap();
        assert_eq!((p, rc), r.precision_recall);
        let (m1, s1) = inception_score(&r.probs, 10, 1).unwrap();
        close(m1, r.is_1.0, 1e-5, "IS, 1 split");
        assert_eq!(s1, 0.0);
        let (m2, s2) = inception_score(&r.probs, 10, 2).unwrap();
        close(m2, r.is_2.0, 1e-5, "IS, 2 splits");
        close(s2, r.is_2.1, 1e-4, "IS std, 2 splits");
    }

    /// scipy.stats.entropy([0.5, 0.5, 0], [1/3, 1/3, 1/3]) = 0.4054651081081644 (= ln 1.5).
    #[test]
    fn coverage_counts_classes_and_kl() {
        let c = class_coverage(&[0, 1, 1, 0], &[1.0, 1.0, 1.0]).unwrap();
        assert_eq!((c.classes, c.covered, c.histogram.clone()), (3, 2, vec![2, 2, 0]));
        assert!((c.kl - 0.4054651081081644).abs() < 1e-12);
        // Matching distributions: KL 0; a collapsed G: KL = ln(classes).
        assert!(class_coverage(&[0, 1, 2], &[5.0, 5.0, 5.0]).unwrap().kl.abs() < 1e-12);
        assert!((class_coverage(&[2; 9], &[1.0; 10]).unwrap().kl - 10f64.ln()).abs() < 1e-12);
        assert!(class_coverage(&[3], &[1.0; 3]).is_err());
        assert!(class_coverage(&[], &[1.0; 3]).is_err());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(fid(&[1.0; 7], &[1.0; 8], 4), Err(MetricError::Shape { what: "real features", values: 7, dim: 4 }));
        assert_eq!(fid(&[1.0; 4], &[1.0; 8], 4), Err(MetricError::TooFew { what: "real features", need: 2, got: 1 }));
        assert_eq!(fid(&[f32::NAN; 8], &[1.0; 8], 4), Err(MetricError::NotFinite("real features")));
        let s = FeatureStats::of("x", &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 3).unwrap();
        assert!(s.underdetermined());
    }
}
