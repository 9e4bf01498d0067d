//! The metrics `eval` can report, registered once each, in the spirit of stylegan2-ada's
//! `metric_main.register_metric`: a name, the protocol it is reported under, the fewest images
//! it is defined for, what it needs, the function that computes it from features, and its
//! typed result. Adding a metric is one entry in [`REGISTRY`], its result type and its two enum
//! variants, all in this file; `eval`, the config, the doctor, the dashboard and the report
//! read the typed results.
//!
//! Results serialize to the JSON that ganforge has always written (`{"fid": {"value": ..,
//! "protocol": "fid10k"}, "kid": {...}}`), so evaluations of older runs still read.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Coverage, MetricError};
use crate::rng::{GanRng, Stream};

/// A metric's name, as written in `--metrics`, `eval.metrics` and the JSON reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    Fid,
    Kid,
    Mifid,
    Pr,
    Is,
    Coverage,
}

/// A metric's typed result.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    Fid(Fid),
    Kid(Kid),
    Mifid(Mifid),
    Pr(PrecisionRecall),
    Is(InceptionScore),
    Coverage(Coverage),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fid {
    #[serde(deserialize_with = "null_is_nan")]
    pub value: f64,
    /// fid10k: FID at 10,000 generated images (FID's bias depends on the count).
    pub protocol: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    #[serde(deserialize_with = "null_is_nan")]
    pub mean: f64,
    #[serde(deserialize_with = "null_is_nan")]
    pub std: f64,
    pub subsets: usize,
    pub subset_size: usize,
    pub protocol: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mifid {
    #[serde(deserialize_with = "null_is_nan")]
    pub value: f64,
    #[serde(deserialize_with = "null_is_nan")]
    pub fid: f64,
    #[serde(deserialize_with = "null_is_nan")]
    pub memorization_distance: f64,
    pub threshold: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecall {
    #[serde(deserialize_with = "null_is_nan")]
    pub precision: f64,
    #[serde(deserialize_with = "null_is_nan")]
    pub recall: f64,
    pub k: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InceptionScore {
    #[serde(deserialize_with = "null_is_nan")]
    pub mean: f64,
    #[serde(deserialize_with = "null_is_nan")]
    pub std: f64,
    pub splits: usize,
    pub classes: usize,
}

/// JSON has no NaN: serde_json writes a non-finite number as null. Read it back as NaN rather
/// than refusing the whole report.
fn null_is_nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// KL divergence's null is an infinity (a class the real data never shows).
pub(crate) fn null_is_infinite<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

/// What a metric is computed from: both sets' features (rows of `dim`), the generated images'
/// class probabilities, and the classes a classifier gave each image.
pub struct Inputs<'a> {
    pub n_fake: usize,
    pub n_real: usize,
    /// Real and generated features, when an extractor ran.
    pub features: Option<(&'a [f32], &'a [f32])>,
    pub dim: usize,
    /// The generated images' class probabilities and their class count (the Inception Score).
    pub fake_probs: Option<(&'a [f32], usize)>,
    /// Classes of the classifier behind coverage, the reference class of each real image, and
    /// the predicted class of each generated image.
    pub classes: usize,
    pub real_classes: &'a [u32],
    pub fake_classes: &'a [u32],
    /// Seed of KID's random subsets.
    pub seed: u64,
    /// FID, computed once for FID and MiFID, with its warning.
    fid: OnceCell<Result<(f64, Option<String>), MetricError>>,
}

impl<'a> Inputs<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n_fake: usize,
        n_real: usize,
        features: Option<(&'a [f32], &'a [f32])>,
        dim: usize,
        fake_probs: Option<(&'a [f32], usize)>,
        classes: usize,
        real_classes: &'a [u32],
        fake_classes: &'a [u32],
        seed: u64,
    ) -> Self {
        Self { n_fake, n_real, features, dim, fake_probs, classes, real_classes, fake_classes, seed, fid: OnceCell::new() }
    }

    fn features(&self) -> (&'a [f32], &'a [f32]) {
        self.features.expect("eval extracts features for the metrics that need them")
    }

    /// FID, and a warning when a covariance is singular.
    fn fid(&self) -> Result<(f64, Option<String>), MetricError> {
        self.fid
            .get_or_init(|| {
                let (real, fake) = self.features();
                let a = super::FeatureStats::of("real features", real, self.dim)?;
                let b = super::FeatureStats::of("generated features", fake, self.dim)?;
                let warning = (a.underdetermined() || b.underdetermined()).then(|| {
                    format!(
                        "FID with fewer images ({} real, {} generated) than feature dimensions ({}): the covariances are singular and FID is biased high; use --n {} or more",
                        self.n_real, self.n_fake, self.dim, self.dim + 1
                    )
                });
                Ok((super::frechet_distance(&a, &b), warning))
            })
            .clone()
    }
}

/// One registered metric.
pub struct MetricSpec {
    pub metric: Metric,
    /// Its name in lists and reports.
    pub name: &'static str,
    /// Other names `--metrics` accepts.
    pub aliases: &'static [&'static str],
    /// How errors name it.
    pub title: &'static str,
    /// The fewest generated and real images it is defined for.
    pub min_count: usize,
    /// Whether it compares extracted features (all but coverage, which needs class predictions).
    pub needs_features: bool,
    /// Computes it; warnings (a biased estimate, say) are pushed to the vector.
    pub compute: fn(&Inputs, &mut Vec<String>) -> Result<MetricValue, MetricError>,
    /// Reads its result back from JSON.
    parse: fn(serde_json::Value) -> Result<MetricValue, serde_json::Error>,
    /// Writes its result as JSON.
    write: fn(&MetricValue) -> serde_json::Value,
}

/// The protocol name of a metric at n samples: fid10k, kid50k, fid2500.
pub fn protocol(metric: &str, n: usize) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{metric}{}k", n / 1000)
    } else {
        format!("{metric}{n}")
    }
}

/// KID's subsets: 100 of at most 1,000 images each, as torch-fidelity and the KID paper.
const KID_SUBSETS: usize = 100;
const KID_SUBSET_SIZE: usize = 1000;
/// k of the k-NN balls of precision and recall (Kynkaanniemi et al. 2019).
const PR_K: usize = 3;
/// Splits of the Inception Score (Salimans et al. 2016).
const IS_SPLITS: usize = 10;

fn fid(x: &Inputs, warnings: &mut Vec<String>) -> Result<MetricValue, MetricError> {
    let (value, warning) = x.fid()?;
    warnings.extend(warning);
    Ok(MetricValue::Fid(Fid { value, protocol: protocol("fid", x.n_fake) }))
}

fn kid(x: &Inputs, _: &mut Vec<String>) -> Result<MetricValue, MetricError> {
    let (real, fake) = x.features();
    let subset = x.n_fake.min(x.n_real).min(KID_SUBSET_SIZE);
    let (mean, std) = super::kid(real, fake, x.dim, KID_SUBSETS, subset, &mut GanRng::new(x.seed, Stream::Train))?;
    Ok(MetricValue::Kid(Kid { mean, std, subsets: KID_SUBSETS, subset_size: subset, protocol: protocol("kid", x.n_fake) }))
}

fn mifid(x: &Inputs, warnings: &mut Vec<String>) -> Result<MetricValue, MetricError> {
    let (real, fake) = x.features();
    let d = super::memorization_distance(fake, real, x.dim)?;
    let (fid, warning) = x.fid()?;
    // Said once, by FID, when both are asked for.
    warnings.extend(warning.filter(|w| !warnings.contains(w)));
    Ok(MetricValue::Mifid(Mifid { value: super::mifid(fid, d), fid, memorization_distance: d, threshold: super::MIFID_EPS }))
}

fn pr(x: &Inputs, _: &mut Vec<String>) -> Result<MetricValue, MetricError> {
    let (real, fake) = x.features();
    let (precision, recall) = super::precision_recall(real, fake, x.dim, PR_K)?;
    Ok(MetricValue::Pr(PrecisionRecall { precision, recall, k: PR_K }))
}

fn inception_score(x: &Inputs, _: &mut Vec<String>) -> Result<MetricValue, MetricError> {
    let (probs, classes) = x.fake_probs.expect("extractors give class scores");
    let (mean, std) = super::inception_score(probs, classes, IS_SPLITS)?;
    Ok(MetricValue::Is(InceptionScore { mean, std, splits: IS_SPLITS, classes }))
}

fn coverage(x: &Inputs, _: &mut Vec<String>) -> Result<MetricValue, MetricError> {
    let mut real = vec![0usize; x.classes];
    for &l in x.real_classes {
        match real.get_mut(l as usize) {
            Some(v) => *v += 1,
            None => return Err(MetricError::Shape { what: "real classes", values: l as usize, dim: x.classes }),
        }
    }
    // Classes the real sample happens to miss get a small share, so KL stays finite.
    let p: Vec<f64> = real.iter().map(|&v| v as f64 + 0.5).collect();
    let mut c = super::class_coverage(x.fake_classes, &p)?;
    c.real_histogram = real;
    Ok(MetricValue::Coverage(c))
}

macro_rules! codec {
    ($variant:ident) => {
        (
            |v| serde_json::from_value(v).map(MetricValue::$variant),
            |m| match m {
                MetricValue::$variant(r) => serde_json::to_value(r).expect("results serialize"),
                _ => unreachable!("the registry pairs each metric with its own value"),
            },
        )
    };
}

const FID_CODEC: Codec = codec!(Fid);
const KID_CODEC: Codec = codec!(Kid);
const MIFID_CODEC: Codec = codec!(Mifid);
const PR_CODEC: Codec = codec!(Pr);
const IS_CODEC: Codec = codec!(Is);
const COVERAGE_CODEC: Codec = codec!(Coverage);
type Codec = (fn(serde_json::Value) -> Result<MetricValue, serde_json::Error>, fn(&MetricValue) -> serde_json::Value);

/// Every metric, in the order reports list them.
pub const REGISTRY: &[MetricSpec] = &[
    MetricSpec {
        metric: Metric::Fid,
        name: "fid",
        aliases: &[],
        title: "fid",
        min_count: 2,
        needs_features: true,
        compute: fid,
        parse: FID_CODEC.0,
        write: FID_CODEC.1,
    },
    MetricSpec {
        metric: Metric::Kid,
        name: "kid",
        aliases: &[],
        title: "kid",
        min_count: 2,
        needs_features: true,
        compute: kid,
        parse: KID_CODEC.0,
        write: KID_CODEC.1,
    },
    MetricSpec {
        metric: Metric::Mifid,
        name: "mifid",
        aliases: &[],
        title: "fid",
        min_count: 2,
        needs_features: true,
        compute: mifid,
        parse: MIFID_CODEC.0,
        write: MIFID_CODEC.1,
    },
    MetricSpec {
        metric: Metric::Pr,
        name: "pr",
        aliases: &["precision_recall"],
        title: "precision/recall",
        min_count: PR_K + 1,
        needs_features: true,
        compute: pr,
        parse: PR_CODEC.0,
        write: PR_CODEC.1,
    },
    MetricSpec {
        metric: Metric::Is,
        name: "is",
        aliases: &[],
        title: "the Inception Score",
        min_count: IS_SPLITS,
        needs_features: true,
        compute: inception_score,
        parse: IS_CODEC.0,
        write: IS_CODEC.1,
    },
    MetricSpec {
        metric: Metric::Coverage,
        name: "coverage",
        aliases: &[],
        title: "coverage",
        min_count: 1,
        needs_features: false,
        compute: coverage,
        parse: COVERAGE_CODEC.0,
        write: COVERAGE_CODEC.1,
    },
];

/// A name that is no registered metric.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown metric '{0}': expected {names}", names = names_or())]
pub struct UnknownMetric(pub String);

fn names_or() -> String {
    let names: Vec<&str> = REGISTRY.iter().map(|s| s.name).collect();
    format!("{} or {}", names[..names.len() - 1].join(", "), names[names.len() - 1])
}

impl Metric {
    pub fn spec(self) -> &'static MetricSpec {
        REGISTRY.iter().find(|s| s.metric == self).expect("every metric is registered")
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn parse(name: &str) -> Result<Metric, UnknownMetric> {
        let lower = name.trim().to_ascii_lowercase();
        REGISTRY
            .iter()
            .find(|s| s.name == lower || s.aliases.contains(&lower.as_str()))
            .map(|s| s.metric)
            .ok_or_else(|| UnknownMetric(name.trim().to_string()))
    }

    /// "fid,kid,coverage" -> the metrics, in registry order, each once.
    pub fn parse_list(s: &str) -> Result<Vec<Metric>, UnknownMetric> {
        let mut out = s.split(',').filter(|n| !n.trim().is_empty()).map(Metric::parse).collect::<Result<Vec<_>, _>>()?;
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl MetricValue {
    /// The result's numbers by name, for charts and TensorBoard ("fid", "kid_mean", ...).
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        match self {
            MetricValue::Fid(v) => vec![("fid", v.value)],
            MetricValue::Kid(v) => vec![("kid_mean", v.mean), ("kid_std", v.std)],
            MetricValue::Mifid(v) => vec![("mifid", v.value), ("memorization_distance", v.memorization_distance)],
            MetricValue::Pr(v) => vec![("precision", v.precision), ("recall", v.recall)],
            MetricValue::Is(v) => vec![("is_mean", v.mean), ("is_std", v.std)],
            MetricValue::Coverage(v) => vec![("classes_covered", v.covered as f64), ("coverage_kl", v.kl)],
        }
    }
}

impl fmt::Display for MetricValue {
    /// The one-line summary that reports and tables show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricValue::Fid(v) => write!(f, "{:.2}", v.value),
            MetricValue::Kid(v) => write!(f, "{:.4} ± {:.4}", v.mean, v.std),
            MetricValue::Mifid(v) => write!(f, "{:.2}", v.value),
            MetricValue::Pr(v) => write!(f, "P {:.3} R {:.3}", v.precision, v.recall),
            MetricValue::Is(v) => write!(f, "{:.2}", v.mean),
            MetricValue::Coverage(v) => write!(f, "{}/{} classes, KL {:.3}", v.covered, v.classes, v.kl),
        }
    }
}

/// A list of metrics as config holds it: written as "coverage,fid" (the form old config files
/// have), checked when the config is read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetricList(pub Vec<Metric>);

impl Serialize for MetricList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.iter().map(|m| m.name()).collect::<Vec<_>>().join(","))
    }
}

impl<'de> Deserialize<'de> for MetricList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Metric::parse_list(&s).map(MetricList).map_err(serde::de::Error::custom)
    }
}

/// The results of one evaluation, by metric.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricResults(pub BTreeMap<Metric, MetricValue>);

impl MetricResults {
    pub fn insert(&mut self, metric: Metric, value: MetricValue) {
        self.0.insert(metric, value);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn fid(&self) -> Option<&Fid> {
        match self.0.get(&Metric::Fid) {
            Some(MetricValue::Fid(v)) => Some(v),
            _ => None,
        }
    }
    pub fn kid(&self) -> Option<&Kid> {
        match self.0.get(&Metric::Kid) {
            Some(MetricValue::Kid(v)) => Some(v),
            _ => None,
        }
    }
    pub fn mifid(&self) -> Option<&Mifid> {
        match self.0.get(&Metric::Mifid) {
            Some(MetricValue::Mifid(v)) => Some(v),
            _ => None,
        }
    }
    pub fn pr(&self) -> Option<&PrecisionRecall> {
        match self.0.get(&Metric::Pr) {
            Some(MetricValue::Pr(v)) => Some(v),
            _ => None,
        }
    }
    pub fn inception_score(&self) -> Option<&InceptionScore> {
        match self.0.get(&Metric::Is) {
            Some(MetricValue::Is(v)) => Some(v),
            _ => None,
        }
    }
    pub fn coverage(&self) -> Option<&Coverage> {
        match self.0.get(&Metric::Coverage) {
            Some(MetricValue::Coverage(v)) => Some(v),
            _ => None,
        }
    }
}

impl Serialize for MetricResults {
    /// By name, in alphabetical order, as the string-keyed maps of earlier versions.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, serde_json::Value> = self.0.iter().map(|(m, v)| (m.name(), (m.spec().write)(v))).collect();
        map.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MetricResults {
    /// Each entry read as its metric's type; a name this version does not know (written by a
    /// newer one) is passed over.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let mut out = MetricResults::default();
        for (name, value) in map {
            if let Ok(m) = Metric::parse(&name) {
                let v = (m.spec().parse)(value).map_err(|e| serde::de::Error::custom(format!("metric '{name}': {e}")))?;
                out.insert(m, v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lists_and_protocols() {
        assert_eq!(Metric::parse_list("kid, fid,fid").unwrap(), vec![Metric::Fid, Metric::Kid]);
        assert_eq!(Metric::parse_list("precision_recall").unwrap(), vec![Metric::Pr]);
        let e = Metric::parse_list("fid,x").unwrap_err().to_string();
        assert_eq!(e, "unknown metric 'x': expected fid, kid, mifid, pr, is or coverage");
        assert_eq!(protocol("fid", 10_000), "fid10k");
        assert_eq!(protocol("fid", 2500), "fid2500");
        for spec in REGISTRY {
            assert_eq!(spec.metric.name(), spec.name, "registry entries name their own metric");
        }
    }

    /// A report written by an earlier version (string-keyed JSON, a non-finite KL as null)
    /// reads into the typed results and writes back the same JSON.
    #[test]
    fn old_json_round_trips() {
        // Keys in alphabetical order at every level, as serde_json's maps wrote them.
        let old = r#"{"coverage":{"classes":10,"covered":9,"histogram":[1,2,3,4,5,6,7,8,9,0],"kl":null},"fid":{"protocol":"fid1k","value":12.5},"future_metric":{"x":1},"is":{"classes":10,"mean":6.3,"splits":10,"std":0.1},"kid":{"mean":0.5,"protocol":"kid40","std":0.01,"subset_size":40,"subsets":100},"mifid":{"fid":12.5,"memorization_distance":0.3,"threshold":0.1,"value":12.5},"pr":{"k":3,"precision":0.5,"recall":0.75}}"#;
        let r: MetricResults = serde_json::from_str(old).unwrap();
        assert_eq!(r.fid().unwrap().value, 12.5);
        assert_eq!(r.coverage().unwrap().kl, f64::INFINITY);
        assert_eq!(r.mifid().unwrap().memorization_distance, 0.3);
        assert_eq!(r.kid().unwrap().subset_size, 40);
        assert_eq!(r.pr().unwrap().recall, 0.75);
        assert_eq!(r.inception_score().unwrap().mean, 6.3);
        let back = serde_json::to_string(&r).unwrap();
        assert_eq!(back, old.replace(r#""future_metric":{"x":1},"#, ""));
    }

    #[test]
    fn metric_lists_read_as_config_strings() {
        let l: MetricList = serde_json::from_str("\"coverage,fid\"").unwrap();
        assert_eq!(l.0, vec![Metric::Fid, Metric::Coverage]);
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"fid,coverage\"");
        let e = serde_json::from_str::<MetricList>("\"fid,fdi\"").unwrap_err().to_string();
        assert!(e.contains("unknown metric 'fdi'"), "{e}");
    }

    /// Coverage's reference distribution: real classes counted, each class given half an image.
    #[test]
    fn coverage_smooths_the_real_histogram() {
        let real = [0u32, 0, 1];
        let fake = [0u32, 1, 1, 1];
        let x = Inputs::new(4, 3, None, 0, None, 3, &real, &fake, 0);
        let MetricValue::Coverage(c) = coverage(&x, &mut vec![]).unwrap() else { panic!() };
        // p = (2.5, 1.5, 0.5) / 4.5, q = (0.25, 0.75, 0).
        let p: [f64; 2] = [2.5 / 4.5, 1.5 / 4.5];
        let want = 0.25 * (0.25 / p[0]).ln() + 0.75 * (0.75 / p[1]).ln();
        assert!((c.kl - want).abs() < 1e-12, "{} vs {want}", c.kl);
        assert_eq!((c.covered, c.histogram.clone()), (2, vec![1, 3, 0]));
        assert_eq!(c.real_histogram, vec![2, 1, 0], "the real counts, unsmoothed");
        let bad = [5u32];
        let x = Inputs::new(4, 1, None, 0, None, 3, &bad, &fake, 0);
        assert!(coverage(&x, &mut vec![]).is_err());
    }
}
