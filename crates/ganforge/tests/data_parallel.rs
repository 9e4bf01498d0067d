//! Data-parallel training, evaluation and sampling: N ranks do what one process does.
//!
//! The ranks here are threads of this process (`dist::ThreadGroup`), the same code paths an
//! MPI job takes with `dist::mpi::MpiGroup`; the CLI's `mpirun` test (tests/mpi.rs of
//! ganforge-cli, feature `mpi`) runs the real thing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{opts, tiny};
use ganforge::config::GanConfig;
use ganforge::dist::{Group, ThreadGroup};
use ganforge::params::{read_safetensors, HostTensor};
use ganforge::run::RunDir;
use ganforge::train::{train, Quiet, TrainError};

/// Trains `cfg` on `ranks` thread ranks into `out` (resuming `resume`); every rank's result.
fn train_on(ranks: usize, cfg: &GanConfig, out: &Path, resume: Option<PathBuf>) -> Vec<Result<RunDir, TrainError>> {
    let handles: Vec<_> = ThreadGroup::new(ranks)
        .into_iter()
        .map(|g| {
            let (cfg, out, resume) = (cfg.clone(), out.to_path_buf(), resume.clone());
            std::thread::spawn(move || {
                let group: Arc<dyn Group> = Arc::new(g);
                train(cfg, ganforge::train::TrainOptions { group, ..opts(&out, resume) }, &mut Quiet)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("a rank panicked")).collect()
}

fn checkpoint(run: &Path, step: u64) -> PathBuf {
    run.join("checkpoints").join(format!("step_{step:06}"))
}

/// Every tensor of a checkpoint's networks, optimizers and moving average, by file and name.
fn tensors(dir: &Path) -> BTreeMap<String, HostTensor> {
    let mut out = BTreeMap::new();
    for f in ["g", "d", "g_ema", "optim_g", "optim_d"] {
        let p = dir.join(format!("{f}.safetensors"));
        if p.is_file() {
            out.extend(read_safetensors(&p).unwrap().into_iter().map(|(k, v)| (format!("{f}/{k}"), v)));
        }
    }
    out
}

/// The largest difference between two checkpoints' tensors (which must have the same names).
fn max_diff(a: &BTreeMap<String, HostTensor>, b: &BTreeMap<String, HostTensor>) -> f32 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter().flat_map(|(k, t)| t.values.iter().zip(&b[k].values).map(|(x, y)| (x - y).abs())).fold(0.0, f32::max)
}

/// The largest difference between the trainable weights of G in two checkpoints.
fn g_moved(a: &Path, b: &Path) -> f32 {
    let (a, b) = (read_safetensors(&a.join("g.safetensors")).unwrap(), read_safetensors(&b.join("g.safetensors")).unwrap());
    max_diff(&a, &b)
}

fn losses(run: &Path) -> Vec<[f32; 4]> {
    RunDir::open(run).unwrap().log().unwrap().steps.iter().map(|r| [r.loss_d, r.loss_g, r.d_real, r.d_fake]).collect()
}

/// Without batch norm, two ranks with global batch 8 reach the weights one process reaches
/// with batch 8, through soft and flipped labels, DiffAugment, two D updates per step and
/// G's moving average; only the order of float sums differs (a rank's mean of 4, then the
/// mean of 2). Rank 1 writes nothing; rank 0 writes the run.
#[test]
fn two_ranks_train_as_one_process_without_batch_norm() {
    let cfg = tiny(&[
        "model.arch=\"fc\"",
        "tricks.soft_labels=true",
        "tricks.label_flip_p=0.2",
        "train.diffaugment=\"color,translation,cutout\"",
        "train.n_critic=2",
        "train.g_ema=0.9",
        "train.steps=6",
        "train.checkpoint_every=3",
        "data.hflip=true",
        // Large rates, so that 3 steps move every weight far beyond float noise.
        "train.lr_g=0.01",
        "train.lr_d=0.01",
    ]);
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let single = train(cfg.clone(), opts(one.path(), None), &mut Quiet).unwrap();
    let runs = train_on(2, &cfg, two.path(), None);
    let paths: Vec<PathBuf> = runs.into_iter().map(|r| r.unwrap().path).collect();
    assert_eq!(paths[0], paths[1], "both ranks name rank 0's run folder");
    assert_eq!(std::fs::read_dir(two.path()).unwrap().count(), 1, "one run folder, rank 0's");

    let (a, b) = (tensors(&checkpoint(&single.path, 6)), tensors(&checkpoint(&paths[0], 6)));
    let diff = max_diff(&a, &b);
    let moved = g_moved(&checkpoint(&single.path, 3), &checkpoint(&single.path, 6));
    // Float-summation differences only: measured 1.4e-6 (optimizer moments included), while
    // G's weights moved by up to 0.04 over the last 3 steps.
    assert!(diff < 1e-5, "two ranks differ from one process by {diff} (training moved G by {moved})");
    assert!(moved > 1e-2, "G hardly trained ({moved}): the comparison would prove nothing");
    for (x, y) in losses(&single.path).iter().zip(losses(&paths[0])) {
        assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-4), "logged {y:?} vs one process's {x:?}");
    }

    // Resumed with another number of ranks: one process takes over the two ranks' run.
    let cfg8 = RunDir::open(&paths[0]).unwrap().config().unwrap().with_overrides(&["train.steps=8".into()]).unwrap();
    let resumed = train(cfg8.clone(), opts(two.path(), Some(paths[0].clone())), &mut Quiet).unwrap();
    let single8 = train(cfg8, opts(one.path(), Some(single.path.clone())), &mut Quiet).unwrap();
    let diff8 = max_diff(&tensors(&checkpoint(&single8.path, 8)), &tensors(&checkpoint(&resumed.path, 8)));
    assert!(diff8 < 1e-5, "after resuming on one rank: {diff8}");
}

/// With batch norm each rank normalizes with its own batch's statistics (as PyTorch's DDP
/// does by default), so two ranks are not one process; the run trains, stays finite, and
/// stays close: after 4 steps its G is nearer one process's G than either is to where it began.
#[test]
fn two_ranks_with_batch_norm_train_and_stay_close() {
    let cfg = tiny(&[]);
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let single = train(cfg.clone(), opts(one.path(), None), &mut Quiet).unwrap();
    let run = train_on(2, &cfg, two.path(), None).remove(0).unwrap();
    assert!(losses(&run.path).iter().flatten().all(|v| v.is_finite()));
    let apart = g_moved(&checkpoint(&single.path, 4), &checkpoint(&run.path, 4));
    let moved = g_moved(&checkpoint(&single.path, 2), &checkpoint(&single.path, 4));
    assert!(apart > 0.0, "batch norm over 4 images is not over 8: the runs cannot be equal");
    // Measured: 0.012 apart, against 0.15 moved.
    assert!(apart < moved / 4.0, "two ranks ended {apart} from one process, which moved {moved} in its last 2 steps");
}

/// A global batch that does not split over the ranks is refused by every rank, before any
/// folder is made; a rank that started from other weights is caught at once.
#[test]
fn bad_splits_and_differing_ranks_are_errors() {
    let out = tempfile::tempdir().unwrap();
    for r in train_on(3, &tiny(&[]), out.path(), None) {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("train.batch_size = 8 does not split over 3 ranks"), "{e}");
    }
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // The relativistic losses need the whole batch's mean output.
    for r in train_on(2, &tiny(&["train.loss=\"ragan\""]), out.path(), None) {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("train.loss = \"ragan\"") && e.contains("with several ranks"), "{e}");
    }
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // Rank 1 builds its networks from another seed: its weights are not rank 0's. Or it reads
    // another dataset (as a machine with an incomplete copy would).
    let differing = |rank1: &'static str, needle: &'static str| {
        let handles: Vec<_> = ThreadGroup::new(2)
            .into_iter()
            .map(|g| {
                let cfg = tiny(&[if g.rank() == 1 { rank1 } else { "seed=0" }]);
                let out = out.path().to_path_buf();
                std::thread::spawn(move || {
                    let group: Arc<dyn Group> = Arc::new(g);
                    train(cfg, ganforge::train::TrainOptions { group, ..opts(&out, None) }, &mut Quiet)
                })
            })
            .collect();
        for h in handles {
            let e = h.join().unwrap().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    };
    differing("seed=1", "at step 0 the weights of 1 rank(s) differ from rank 0's");
    differing("data.spec=\"mnist-test\"", "1 rank(s) see other data than rank 0 (60000 images, classes [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])");
}

/// `evaluate_in` over two ranks (each extracting whole 250-image chunks of the real and the
/// generated images, here 250 and 51, rank 0 computing) gives exactly the single process's
/// numbers, with and without the real-feature cache (whose hit only rank 0 reads).
#[test]
fn evaluation_split_over_ranks_gives_the_same_numbers() {
    use ganforge::burn::tensor::Device;
    use ganforge::eval::{evaluate, evaluate_in, EvalOptions, Extractors, FeatureKind, Metric};
    use ganforge::sample::Sampler;
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&["train.steps=2"]), opts(out.path(), None), &mut Quiet).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let options = |cached: bool| EvalOptions {
        metrics: vec![Metric::Fid, Metric::Kid, Metric::Pr, Metric::Coverage],
        n: 301,
        n_real: None,
        real: None,
        features: FeatureKind::Lenet,
        inception: None,
        classifier: None,
        seed: 3,
        cache_dir: cached.then(|| cache.path().to_path_buf()),
    };
    let device = Device::flex();
    let sampler = Sampler::load(&run.path, None, &device).unwrap();
    let single = evaluate(&sampler, &options(false), &Extractors::load(&options(false), &device).unwrap(), &mut |_| {}).unwrap();
    // Without the cache, then writing it, then reading it.
    for cached in [false, true, true] {
        let handles: Vec<_> = ThreadGroup::new(2)
            .into_iter()
            .map(|g| {
                let (path, o) = (run.path.clone(), options(cached));
                std::thread::spawn(move || {
                    let device = Device::flex();
                    let sampler = Sampler::load(&path, None, &device).unwrap();
                    evaluate_in(&g, &sampler, &o, &Extractors::load(&o, &device).unwrap(), &mut |_| {}).unwrap()
                })
            })
            .collect();
        let mut reports: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(reports[1].is_none(), "rank 1 reports nothing");
        let split = reports.remove(0).expect("rank 0 reports");
        assert_eq!(split.metrics, single.metrics, "cache {cached}");
        assert_eq!((split.n_fake, split.n_real), (301, 301));
    }
}
