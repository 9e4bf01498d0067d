//! Feature extractors and PyTorch interop against PyTorch itself: the outputs of pytorch-fid's
//! Inception-v3 and of PyTorch's DCGAN example were computed by the scripts in
//! tests/fixtures (inception_reference.py, dcgan_pytorch_reference.py) and committed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ganforge::burn::module::Module;
use ganforge::burn::tensor::{Device, Tensor, TensorData};
use ganforge::features::inception::{self, Inception};
use ganforge::interop::dcgan::{self, Net, TorchDcgan};
use ganforge::params::{named_tensors, HostTensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The deterministic fill of inception_reference.py: splitmix64 of (FNV-1a(name), index).
fn unit(name: &str, n: usize) -> Vec<f64> {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    (0..n as u64)
        .map(|j| {
            let x = seed.wrapping_add((j + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let z = z ^ (z >> 31);
            (z >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn formula(name: &str, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    let u = unit(name, n);
    let f = |g: &dyn Fn(f64) -> f64| u.iter().map(|&u| g(u) as f32).collect::<Vec<f32>>();
    let values = if name.ends_with(".conv.weight") {
        let fan_in = (shape[1] * shape[2] * shape[3]) as f64;
        f(&|u| (6.0 / fan_in).sqrt() * (2.0 * u - 1.0))
    } else if name.ends_with(".bn.weight") {
        f(&|u| 0.8 + 0.4 * u)
    } else if name.ends_with(".bn.bias") {
        f(&|u| 0.2 * (2.0 * u - 1.0))
    } else if name.ends_with(".bn.running_mean") {
        f(&|u| 0.1 * (2.0 * u - 1.0))
    } else if name.ends_with(".bn.running_var") {
        f(&|u| 0.5 + u)
    } else if name == "fc.weight" {
        f(&|u| (3.0f64 / 2048.0).sqrt() * (2.0 * u - 1.0))
    } else if name == "fc.bias" {
        f(&|u| 0.1 * (2.0 * u - 1.0))
    } else {
        panic!("no formula for {name}")
    };
    HostTensor { shape: shape.to_vec(), values }
}

#[derive(serde::Deserialize)]
struct Check {
    first: Vec<f64>,
    sum: f64,
}

#[derive(serde::Deserialize)]
struct InceptionReference {
    param_names: Vec<(String, Vec<usize>, String)>,
    param_checks: BTreeMap<String, Check>,
    images_check: Check,
    pool: Vec<Vec<f32>>,
    logits: Vec<Vec<f32>>,
    resized: BTreeMap<String, serde_json::Value>,
}

fn assert_close(got: &[f32], want: &[f32], rel: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= rel * scale, "{what}: largest difference {worst} vs largest value {scale} (allowed {rel} relative)");
}

fn inception_reference() -> InceptionReference {
    serde_json::from_str(&std::fs::read_to_string(fixture("inception_reference.json")).unwrap()).unwrap()
}

fn parameter_shapes(r: &InceptionReference) -> BTreeMap<&str, &Vec<usize>> {
    r.param_names.iter().filter(|(.., k)| k != "num_batches_tracked").map(|(n, s, _)| (n.as_str(), s)).collect()
}

/// pytorch-fid's Inception-v3 with every parameter from the formula, and the names it asked for.
fn synthetic_inception(r: &InceptionReference, device: &Device) -> (Inception, BTreeSet<String>) {
    let shapes = parameter_shapes(r);
    let asked = RefCell::new(BTreeSet::new());
    let net = Inception::from_weights(
        &|name| {
            asked.borrow_mut().insert(name.to_string());
            shapes.get(name).map(|s| formula(name, s))
        },
        device,
    )
    .unwrap();
    (net, asked.into_inner())
}

/// Every parameter of both implementations filled from the same formula; the 2048-d pool
/// features (and the 1008 logits) must agree with pytorch-fid's to 1e-4 relative.
#[test]
fn inception_matches_pytorch_fid() {
    let r = inception_reference();
    // The formula itself agrees with the script's.
    for (name, check) in &r.param_checks {
        let shape = &r.param_names.iter().find(|(n, ..)| n == name).unwrap().1;
        let t = formula(name, shape);
        let sum: f64 = t.values.iter().map(|&v| v as f64).sum();
        assert!((sum - check.sum).abs() < 1e-6 * check.sum.abs().max(1.0), "{name}: sum {sum} vs {}", check.sum);
        assert_eq!(&t.values[..4], &check.first.iter().map(|&v| v as f32).collect::<Vec<_>>()[..], "{name}");
    }
    let images: Vec<f32> = unit("images", 2 * 3 * 64 * 64).into_iter().map(|u| u as f32).collect();
    assert!((images.iter().map(|&v| v as f64).sum::<f64>() - r.images_check.sum).abs() < 1e-6 * r.images_check.sum);

    let device = Device::flex();
    let (net, asked) = synthetic_inception(&r, &device);
    let shapes = parameter_shapes(&r);
    assert_eq!(asked, shapes.keys().map(|s| s.to_string()).collect(), "the port reads exactly pytorch-fid's parameters");

    let x = inception::prepare_unit(&images, 2, 64, 64);
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let want_sum = r.resized["sum"].as_f64().unwrap();
    assert!((sum - want_sum).abs() < 1e-3, "resized input sum {sum} vs {want_sum}");
    let want_row: Vec<f32> = serde_json::from_value(r.resized["at_1_2_150_140to148"].clone()).unwrap();
    let at = ((3 + 2) * 299 + 150) * 299 + 140;
    assert_close(&x[at..at + 8], &want_row, 1e-5, "resized pixels");

    let (pool, logits) = net.forward(Tensor::from_data(TensorData::new(x, [2, 3, 299, 299]), &device));
    let pool = pool.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let logits = logits.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    assert_close(&pool, &r.pool.concat(), 1e-4, "pool features");
    assert_close(&logits, &r.logits.concat(), 1e-4, "logits");
}

#[derive(serde::Deserialize)]
struct SetSummary {
    n: usize,
    mu_sum: f64,
    mu_first: Vec<f64>,
    sigma_trace: f64,
    sigma_00_first: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct FidReference {
    fid_ab: f64,
    fid_stats_b: f64,
    fid_small: f64,
    a: SetSummary,
    b: SetSummary,
}

fn fid_reference() -> FidReference {
    serde_json::from_str(&std::fs::read_to_string(fixture("fid_reference.json")).unwrap()).unwrap()
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!((got - want).abs() <= rel * want.abs().max(1e-12), "{what}: {got} vs pytorch-fid's {want} (allowed {rel} relative)");
}

/// `ganforge fid` against pytorch-fid's own `calculate_fid_given_paths` on the same two
/// folders (PNG, BMP, TIFF, WebP; RGB and grey; two sizes) with the same weights
/// (fid_reference.py): each folder's statistics, and FID to 1e-3 relative from them, the way
/// `compare` computes it for folders and for saved `.npz` statistics. (Each Inception pass
/// costs seconds here, so each folder goes through it once; `fid` on folders, runs and saved
/// statistics is compared with itself in the CLI's tests.)
#[test]
fn fid_of_two_folders_matches_pytorch_fid() {
    use ganforge::compare::{compare, read_stats, statistics, write_stats, CompareOptions, Side};
    use ganforge::eval::{Extractors, Metric};
    let r = fid_reference();
    let device = Device::flex();
    let ex = Extractors::from_inception(synthetic_inception(&inception_reference(), &device).0, "synthetic");
    let opts = CompareOptions { metrics: vec![Metric::Fid], n: None, seed: 0, batch_size: 50 };
    let side = |p: &Path| Side::open(p.to_str().unwrap(), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut saved = Vec::new();
    for (name, want) in [("a", &r.a), ("b", &r.b)] {
        let s = statistics(&side(&fixture(&format!("fid_images/{name}"))), &opts, &ex, &mut |_| {}).unwrap();
        assert_eq!(s.n, want.n);
        close(s.mu.sum(), want.mu_sum, 1e-4, "sum of mu");
        for (k, &m) in want.mu_first.iter().enumerate() {
            close(s.mu[k], m, 1e-4, "mu");
        }
        close(s.sigma.trace(), want.sigma_trace, 1e-3, "trace of sigma");
        for (k, &v) in want.sigma_00_first.iter().enumerate() {
            assert!((s.sigma[(0, k)] - v).abs() <= 1e-3 * want.sigma_00_first[0].abs(), "sigma[0][{k}]: {} vs {v}", s.sigma[(0, k)]);
        }
        let npz = dir.path().join(format!("{name}.npz"));
        write_stats(&npz, &s).unwrap();
        let back = read_stats(&npz).unwrap();
        assert_eq!((&back.mu, &back.sigma), (&s.mu, &s.sigma), "the .npz round trip is exact");
        saved.push(npz);
    }
    let fid = compare(&side(&saved[0]), &side(&saved[1]), &opts, &ex, &mut |_| {}).unwrap().metrics.fid().unwrap().value;
    close(fid, r.fid_ab, 1e-3, "FID of the two folders");
    close(fid, r.fid_stats_b, 1e-3, "FID of a's saved statistics against b");
}

/// Statistics files as pytorch-fid writes them (`np.savez_compressed`, mu float32, sigma
/// float64), read back, and their FID as pytorch-fid computes it (fid_reference.py).
#[test]
fn pytorch_fid_statistics_files_are_read() {
    use ganforge::compare::read_stats;
    let r = fid_reference();
    let one = read_stats(&fixture("stats_small_1.npz")).unwrap();
    let two = read_stats(&fixture("stats_small_2.npz")).unwrap();
    assert_eq!((one.mu.len(), one.sigma.shape()), (4, (4, 4)));
    // pytorch-fid subtracts the float32 means in float32 (mu1 - mu2) before squaring: 1e-7.
    close(ganforge::metrics::frechet_distance(&one, &two), r.fid_small, 1e-6, "FID of the two statistics files");
}

#[test]
fn inception_weight_file_errors() {
    let device = Device::flex();
    let missing = Inception::load(Path::new("/nonexistent/pt_inception.pth"), &device).err().unwrap().to_string();
    assert!(missing.contains("--inception FILE") && missing.contains("pt_inception-2015-12-05"), "{missing}");
    // A PyTorch file of the wrong network.
    let wrong = Inception::load(&fixture("dcgan_netG.pth"), &device).err().unwrap().to_string();
    assert!(wrong.contains("no tensor 'fc.weight'"), "{wrong}");
    // A truncated file.
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pth");
    let bytes = std::fs::read(fixture("dcgan_netG.pth")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = Inception::load(&cut, &device).err().unwrap().to_string();
    assert!(e.contains("not a PyTorch checkpoint"), "{e}");
}

fn npy(name: &str) -> ganforge::npy::NpyF32 {
    ganforge::npy::read(&fixture(name)).unwrap()
}

/// G and D saved by PyTorch's DCGAN example give PyTorch's outputs for the same latents.
#[test]
fn pytorch_dcgan_example_imports() {
    let device = Device::flex();
    let (cfg, g) = dcgan::import_generator(&fixture("dcgan_netG.pth"), &TorchDcgan::default(), &device).unwrap();
    assert_eq!((cfg.model.nz, cfg.dcgan.ngf, cfg.model.channels, cfg.model.image_size), (8, 4, 3, 64));
    let z = npy("dcgan_latents.npy");
    let images = ganforge::sample::generate(&g, &z.values, None, 8, &device);
    let want = npy("dcgan_netG_out.npy");
    assert_eq!([images.n, images.channels, images.height, images.width].to_vec(), want.shape);
    let worst = images.values.iter().zip(&want.values).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-4, "G: largest difference {worst}");

    let (_, d) = dcgan::import_discriminator(&fixture("dcgan_netD.pth"), &TorchDcgan::default(), &device).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(want.values.clone(), [3, 3, 64, 64]), &device);
    let p: Vec<f32> =
        d.valid().forward(x, None).into_data().try_to_vec::<f32>().unwrap().iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect();
    assert_close(&p, &npy("dcgan_netD_out.npy").values, 1e-5, "D");
}

#[test]
fn pytorch_import_errors() {
    let device = Device::flex();
    let e = dcgan::import_generator(&fixture("dcgan_not_dcgan.pth"), &TorchDcgan::default(), &device).err().unwrap().to_string();
    assert!(e.contains("not a generator state dict of PyTorch's DCGAN example"), "{e}");
    let e = dcgan::import_generator(&fixture("dcgan_netG.pth"), &TorchDcgan { nz: Some(100), ..Default::default() }, &device)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "--nz 100 disagrees with the file, whose weights have nz = 8");
    // D's file given as G: the shapes do not fit.
    let e = dcgan::import_generator(&fixture("dcgan_netD.pth"), &TorchDcgan::default(), &device).err().unwrap().to_string();
    assert!(e.contains("not a generator state dict"), "{e}");
}

/// Export, then read back with the independent reader and import again: the same tensors.
#[test]
fn export_round_trips() {
    let device = Device::flex();
    let (cfg, g) = dcgan::import_generator(&fixture("dcgan_netG.pth"), &TorchDcgan::default(), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("netG.pth");
    dcgan::export(&g, Net::G, &cfg, &out).unwrap();
    let ours = ganforge::pth::read(&out).unwrap();
    let theirs = ganforge::pth::read(&fixture("dcgan_netG.pth")).unwrap();
    assert_eq!(ours.floats, theirs.floats);
    assert_eq!(ours.integers, theirs.integers);
    let (_, again) = dcgan::import_generator(&out, &TorchDcgan::default(), &device).unwrap();
    assert_eq!(named_tensors(&again), named_tensors(&g));
    // A conditional model has no counterpart in the example.
    let cond = ganforge::config::GanConfig::resolve(Some("mnist64"), None, &["model.classes=10".into()]).unwrap();
    let e = dcgan::export(&g, Net::G, &cond, &out).err().unwrap().to_string();
    assert!(e.contains("conditional"), "{e}");
}
