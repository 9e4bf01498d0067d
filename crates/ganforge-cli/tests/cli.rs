//! The `ganforge` binary as a user meets it: exit codes, the last output line, and one-line
//! errors (never a panic) for bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../ganforge/tests/common/http_server.rs"]
#[allow(dead_code)] // shared with the library's download tests, which use all of it
mod http_server;

mod common;

use common::{fails_with, ganforge, ganforge_in, Out};

const TINY: &[&str] = &[
    "--set",
    "model.image_size=16",
    "--set",
    "dcgan.ngf=8",
    "--set",
    "dcgan.ndf=8",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.grid_images=4",
    "--set",
    "train.checkpoint_every=2",
    "--set",
    "train.sample_every=2",
];

fn train_tiny(out: &Path, steps: &str) -> PathBuf {
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--steps", steps];
    args.extend_from_slice(TINY);
    let o = ganforge(&args);
    assert!(o.ok, "{}", o.stderr);
    let last = o.stdout.lines().last().unwrap();
    let run = PathBuf::from(last);
    assert!(run.join("config.toml").is_file(), "last line should be the run folder: {last}");
    run
}

#[test]
fn train_prints_the_run_folder_last_and_sample_writes_images() {
    let dir = tempfile::tempdir().unwrap();
    let run = train_tiny(dir.path(), "2");
    let run_s = run.to_str().unwrap();

    let grid = dir.path().join("grid.png");
    assert!(ganforge(&["sample", "--run", run_s, "--n", "9", "--grid", "--out", grid.to_str().unwrap()]).ok);
    let g = image::open(&grid).unwrap();
    assert_eq!((g.width(), g.height()), (3 * 18 + 2, 3 * 18 + 2));

    let folder = dir.path().join("imgs");
    assert!(ganforge(&["sample", "--run", run_s, "--n", "3", "--out", folder.to_str().unwrap(), "--seed", "5"]).ok);
    let first = image::open(folder.join("00000.png")).unwrap();
    assert_eq!((first.width(), first.height()), (16, 16));
    assert!(folder.join("00002.png").is_file() && !folder.join("00003.png").exists());

    // Exactly these latents in, raw float32 out.
    let z: Vec<f32> = (0..2 * 100).map(|i| ((i % 7) as f32 - 3.0) / 3.0).collect();
    let zp = dir.path().join("z.npy");
    ganforge::npy::write(&zp, &[2, 100], &z).unwrap();
    let raw = dir.path().join("raw.npy");
    let o = ganforge(&[
        "sample",
        "--run",
        run_s,
        "--latents",
        zp.to_str().unwrap(),
        "--raw",
        raw.to_str().unwrap(),
        "--out",
        dir.path().join("zimgs").to_str().unwrap(),
    ]);
    assert!(o.ok, "{}", o.stderr);
    let r = ganforge::npy::read(&raw).unwrap();
    assert_eq!(r.shape, vec![2, 1, 16, 16]);
    assert!(r.values.iter().all(|v| (-1.0..=1.0).contains(v)));
    // The same latents give the same numbers again.
    assert!(
        ganforge(&[
            "sample",
            "--run",
            run_s,
            "--latents",
            zp.to_str().unwrap(),
            "--raw",
            dir.path().join("raw2.npy").to_str().unwrap(),
            "--out",
            dir.path().join("z2").to_str().unwrap()
        ])
        .ok
    );
    assert_eq!(ganforge::npy::read(&dir.path().join("raw2.npy")).unwrap(), r);

    // Wrong latent width.
    ganforge::npy::write(&zp, &[2, 7], &[0.0; 14]).unwrap();
    fails_with(
        &["sample", "--run", run_s, "--latents", zp.to_str().unwrap(), "--out", dir.path().join("x").to_str().unwrap()],
        "expected [N, 100]",
    );

    // Resume with a new end continues in place.
    let o = ganforge(&["train", "--resume", run_s, "--steps", "3"]);
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.lines().last().unwrap(), run_s);
    assert!(run.join("checkpoints/step_000003/state.json").is_file());
}

#[test]
fn bad_config_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    fails_with(&["train", "--out", out, "--preset", "dogz"], "unknown preset 'dogz'; valid presets: mnist, mnist64");
    fails_with(&["train", "--out", out, "--set", "train.lr=1"], "valid keys in [train]: batch_size");
    fails_with(&["train", "--out", out, "--set", "model.image_size=48"], "power of two");
    fails_with(&["train", "--out", out, "--set", "dcgan.g_kernel=5"], "checkerboard");
    fails_with(&["train", "--out", out, "--set", "model.image_size=big"], "model.image_size expects an integer");
    fails_with(&["train", "--out", out, "--config", "/no/such.toml"], "/no/such.toml");
    fails_with(&["train", "--out", out, "--device", "cuda:1"], "--features cuda");
    fails_with(&["train", "--out", out, "--device", "abacus"], "unknown device");
    fails_with(&["train", "--out", out, "--set", "data.prefetch=1000000000000"], "between 1 and 64");
    fails_with(&["train", "--out", out, "--epochs", "9223372036854775807"], "at most 1e6");
    fails_with(&["train", "--out", out, "--set", "model.nz=100000000000"], "between 1 and 4096");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "no run folder for a failed start");
}

#[test]
fn bad_data_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let out = out.to_str().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let folder = format!("folder:{}", data.display());
    fails_with(&["train", "--out", out, "--data", &folder], "no image files (bmp, jpg");
    fails_with(&["train", "--out", out, "--data", "folder:/no/such/dir"], "/no/such/dir");
    std::fs::write(data.join("a.png"), b"definitely not a png").unwrap();
    fails_with(&["train", "--out", out, "--data", &folder], "none of the 1 image files");

    let idx = data.join("train-images-idx3-ubyte");
    std::fs::write(&idx, b"GIF89a not idx at all").unwrap();
    let spec = format!("idx:{}", idx.display());
    fails_with(&["train", "--out", out, "--data", &spec], "wrong magic number");
    // A header that claims 2^31 images must fail at once, without allocating for them.
    let mut huge = vec![0u8, 0, 8, 3, 0x80, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28];
    huge.extend([0u8; 1000]);
    std::fs::write(&idx, &huge).unwrap();
    fails_with(&["train", "--out", out, "--data", &spec], "impossibly large");
    std::fs::write(&idx, [0u8, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]).unwrap();
    fails_with(&["train", "--out", out, "--data", &spec], "truncated");
    fails_with(&["train", "--out", out, "--data", "svhn:/x.mat"], "/x.mat");
    fails_with(&["train", "--out", out, "--data", "sheep"], "unknown data spec");
}

#[test]
fn bad_run_folders_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    fails_with(&["train", "--resume", d], "is not a ganforge run folder");
    fails_with(&["sample", "--run", d, "--out", "x.png", "--grid"], "is not a ganforge run folder");
    let run = train_tiny(dir.path(), "2");
    let r = run.to_str().unwrap();
    fails_with(&["train", "--resume", r, "--set", "train.lr_d=1"], "only --steps, --epochs");
    fails_with(&["train", "--resume", r, "--out", "elsewhere"], "continues a run in place");
    fails_with(&["sample", "--run", r, "--checkpoint", "/etc/hostname", "--out", "x.png"], "neither a checkpoint folder");
    fails_with(&["sample", "--run", r, "--n", "0", "--out", "x.png"], "--n 0 is out of range");
    // A checkpoint built for another config.
    std::fs::write(run.join("config.toml"), std::fs::read_to_string(run.join("config.toml")).unwrap().replace("ngf = 8", "ngf = 12"))
        .unwrap();
    fails_with(&["sample", "--run", r, "--out", "x.png"], "does not match the model built from the config");
}

#[test]
fn help_shows_examples_and_presets_are_listed() {
    let o = ganforge(&["train", "--help"]);
    assert!(o.ok && o.stdout.contains("Examples:") && o.stdout.contains("--resume"));
    let o = ganforge(&["sample", "--help"]);
    assert!(o.ok && o.stdout.contains("--latents"));
    let o = ganforge(&["presets"]);
    assert!(o.ok && o.stdout.contains("mnist64") && o.stdout.contains("mnist-fc"));
}

#[test]
fn data_inspect_reports_counts_classes_and_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let preview = dir.path().join("p.png");
    let o = ganforge(&["data", "inspect", "mnist", "--size", "28", "--sample", "60000", "--preview", preview.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    assert!(o.stdout.contains("images      60000"), "{}", o.stdout);
    assert!(o.stdout.contains("pixel mean  0.1307"), "{}", o.stdout); // MNIST's well-known mean
    assert!(o.stdout.contains("classes     10") && o.stdout.contains("5923"), "{}", o.stdout);
    let g = image::open(&preview).unwrap();
    assert_eq!((g.width(), g.height()), (8 * 30 + 2, 8 * 30 + 2));
    fails_with(&["data", "inspect", "folder:/no/such/dir"], "/no/such/dir");
    fails_with(&["data", "inspect", "mnist", "--channels", "2"], "--channels 1 or 3");
    // Each cause is said once.
    let o = ganforge(&["data", "inspect", "folder:/no/such/dir"]);
    assert_eq!(o.stderr.matches("does not exist").count(), 1, "{}", o.stderr);
}

#[test]
fn data_fetch_lists_checks_and_points_to_itself() {
    let o = ganforge(&["data", "fetch", "--list"]);
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.lines().count(), 5 + 345);
    assert!(o.stdout.lines().any(|l| l.starts_with("quickdraw/sheep") && l.contains("98.9 MB")), "{}", o.stdout);

    // A mirror that serves something else than the published file is refused by size.
    let server = http_server::Server::start();
    server.serve(
        "/m/sheep.npy",
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ganforge/tests/fixtures/quickdraw_bitmap_3.npy")).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mirror = format!("{}/m", server.url);
    let d = dir.path().to_str().unwrap();
    fails_with(
        &["data", "fetch", "quickdraw/sheep", "--dir", d, "--mirror", &mirror],
        "sends 2480 bytes for sheep.npy, but the published file has 98878944",
    );
    fails_with(&["data", "fetch", "quickdraw/shep", "--dir", d], "unknown Quick, Draw! category 'shep'");
    fails_with(&["data", "fetch", "imagenet"], "fetchable: mnist, svhn");

    // A bare name that was never fetched says how to fetch it.
    let o = ganforge_in(&["data", "inspect", "svhn"], &[("GANFORGE_DATA", dir.path())]);
    assert!(!o.ok);
    assert!(o.stderr.contains("not downloaded yet") && o.stderr.contains("run `ganforge data fetch svhn`"), "{}", o.stderr);
    assert!(o.stderr.contains(&dir.path().join("svhn").display().to_string()), "{}", o.stderr);
}

#[test]
fn conditional_sampling_by_class() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--steps", "2", "--set", "model.classes=10", "--set", "model.label_dim=8"];
    args.extend_from_slice(TINY);
    let o = ganforge(&args);
    assert!(o.ok, "{}", o.stderr);
    let run = o.stdout.lines().last().unwrap().to_string();
    let grid = dir.path().join("classes.png");
    let o = ganforge(&["sample", "--run", &run, "--per-class", "3", "--out", grid.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    let img = image::open(&grid).unwrap();
    // 3 columns and 10 rows of 16px images with 2px borders.
    assert_eq!((img.width(), img.height()), (3 * 18 + 2, 10 * 18 + 2));
    fails_with(
        &["sample", "--run", &run, "--class", "12", "--out", grid.to_str().unwrap()],
        "class 12 is out of range: this G knows 10 classes",
    );
    let plain = train_tiny(&out, "2");
    fails_with(&["sample", "--run", plain.to_str().unwrap(), "--class", "1", "--out", grid.to_str().unwrap()], "not conditional");
}

#[test]
fn kaggle_submission_zip() {
    let dir = tempfile::tempdir().unwrap();
    let run = train_tiny(&dir.path().join("runs"), "2");
    let zip_path = dir.path().join("images.zip");
    let o = ganforge(&["sample", "--run", run.to_str().unwrap(), "--kaggle", zip_path.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.lines().last().unwrap(), zip_path.to_str().unwrap());
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    assert_eq!(archive.len(), 10_000);
    let mut last = archive.by_name("09999.png").unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut last, &mut bytes).unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height(), img.color()), (64, 64, image::ColorType::Rgb8), "16x16 grey became 64x64 RGB");
    fails_with(&["sample", "--run", run.to_str().unwrap(), "--kaggle", "x.zip", "--out", "y"], "cannot be used with");
}

/// A conditional G's submission cycles through its classes: image i is G(z_i, class i % classes),
/// z_i the i-th latent of --seed's stream, as ganforge's Sampler makes it in the same chunk of 500.
#[test]
fn kaggle_submission_cycles_the_classes_of_a_conditional_g() {
    use ganforge::burn::tensor::Device;
    let dir = tempfile::tempdir().unwrap();
    // BigGAN-style: its class embedding changes the images from the start (a conditional DCGAN's
    // label barely moves its 8-bit images after 2 steps).
    let mut args = vec!["train", "--out", dir.path().to_str().unwrap(), "--steps", "2", "--preset", "biggan"];
    for set in
        ["biggan.ch=8", "biggan.shared_dim=8", "model.image_size=16", "biggan.attn_res=8", "train.batch_size=4", "train.checkpoint_every=2"]
    {
        args.extend_from_slice(&["--set", set]);
    }
    let o = ganforge(&args);
    assert!(o.ok, "{}", o.stderr);
    let run = PathBuf::from(o.stdout.lines().last().unwrap());
    let classes = ganforge::config::GanConfig::resolve(Some("biggan"), None, &[]).unwrap().model.classes as u32;
    let zip_path = dir.path().join("images.zip");
    let o = ganforge(&["sample", "--run", run.to_str().unwrap(), "--kaggle", zip_path.to_str().unwrap(), "--seed", "7"]);
    assert!(o.ok, "{}", o.stderr);
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let sampler = ganforge::sample::Sampler::load(&run, None, &Device::flex()).unwrap();
    let z = sampler.latents(500, 7);
    let cycled: Vec<u32> = (0..500).map(|i| i % classes).collect();
    let want = sampler.generate(&z, Some(&cycled));
    let all_zero = sampler.generate(&z, Some(&[0; 500]));
    let mut differs = 0;
    for i in [0usize, 1, 2, 9, 10, 11, 37, 499] {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name(&format!("{i:05}.png")).unwrap(), &mut bytes).unwrap();
        assert_eq!(bytes, ganforge::kaggle::submission_png(&want, i), "image {i} is not G(z_{i}, class {})", i as u32 % classes);
        differs += usize::from(bytes != ganforge::kaggle::submission_png(&all_zero, i));
    }
    assert!(differs >= 6, "the class changes the images (only {differs} of the 7 not of class 0 differ)");
}

/// `eval --classifier FILE` classifies with a classifier from `ganforge classifier train`
/// (here trained on the 5 SVHN digits of the fixtures) instead of the shipped LeNet.
#[test]
fn eval_uses_a_classifier_trained_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let svhn = format!("svhn:{}", fixture("svhn_5.mat"));
    let weights = dir.path().join("svhn.safetensors");
    let w = weights.to_str().unwrap();
    let o = ganforge(&["classifier", "train", "--data", &svhn, "--test", &svhn, "--epochs", "1", "--batch-size", "5", "--out", w]);
    assert!(o.ok, "{}", o.stderr);
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("svhn.json")).unwrap()).unwrap();
    assert_eq!((record["classes"].as_u64(), record["epochs"].as_u64(), record["data"].as_str()), (Some(10), Some(1), Some(svhn.as_str())));
    let run = train_tiny(&dir.path().join("runs"), "2");
    let cache = dir.path().join("cache");
    let eval = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["eval", "--run", run.to_str().unwrap(), "--metrics", "coverage", "--n", "20", "--n-real", "5", "--real", &svhn];
        args.extend_from_slice(extra);
        let o = ganforge_in(&args, &[("XDG_CACHE_HOME", &cache)]);
        assert!(o.ok, "{}", o.stderr);
        serde_json::from_str(&o.stdout).unwrap()
    };
    let mine = eval(&["--classifier", w]);
    assert!(mine["features"].as_str().unwrap().starts_with(&format!("lenet {w} ")), "{}", mine["features"]);
    let hist: Vec<u64> = serde_json::from_value(mine["metrics"]["coverage"]["histogram"].clone()).unwrap();
    assert_eq!((hist.len(), hist.iter().sum::<u64>()), (10, 20));
    let shipped = eval(&[]);
    assert!(shipped["features"].as_str().unwrap().starts_with("lenet shipped mnist"), "{}", shipped["features"]);
    // The photo network: trained by the same command, told apart by its tensors when loaded.
    let photo = dir.path().join("photo.safetensors");
    let p = photo.to_str().unwrap();
    let args = ["classifier", "train", "--arch", "cifar", "--data", &svhn, "--epochs", "1", "--batch-size", "5", "--augment", "--decay"];
    let o = ganforge(&[&args[..], &["--out", p]].concat());
    assert!(o.ok, "{}", o.stderr);
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("photo.json")).unwrap()).unwrap();
    assert_eq!((record["arch"].as_str(), record["augment"].as_bool(), record["test_accuracy"].as_f64()), (Some("cifar"), Some(true), None));
    let theirs = eval(&["--classifier", p, "--features", "cifar"]);
    assert!(theirs["features"].as_str().unwrap().starts_with(&format!("cifar {p} ")), "{}", theirs["features"]);
    assert!(theirs["resize"].as_str().unwrap().starts_with("RGB (grey repeated)"), "{}", theirs["resize"]);
    let shipped = eval(&["--features", "cifar"]);
    assert!(shipped["features"].as_str().unwrap().starts_with("cifar shipped cifar10"), "{}", shipped["features"]);
    let r = run.to_str().unwrap();
    fails_with(
        &["eval", "--run", r, "--metrics", "fid", "--features", "cifar", "--classifier", w, "--real", &svhn],
        "--features cifar needs a cifar classifier; the one given is a lenet network",
    );
    fails_with(&["classifier", "train", "--arch", "vgg", "--out", p], "--arch vgg: expected lenet or cifar");
    fails_with(
        &["eval", "--run", run.to_str().unwrap(), "--metrics", "coverage", "--classifier", "/nonexistent.safetensors"],
        "/nonexistent",
    );
}

/// Stacked MNIST (preset stacked-mnist): three digits as the colour channels, 1,000 modes.
#[test]
fn stacked_mnist_trains_and_is_measured_in_1000_classes() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["train", "--out", dir.path().to_str().unwrap(), "--steps", "2", "--preset", "stacked-mnist"];
    args.extend_from_slice(TINY);
    let o = ganforge(&args);
    assert!(o.ok, "{}", o.stderr);
    let run = PathBuf::from(o.stdout.lines().last().unwrap());
    assert!(run.ends_with("00000-stacked-mnist"), "{}", run.display());
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("spec = \"stacked-mnist\"") && config.contains("channels = 3"), "{config}");
    // The real grid: RGB, and its channels are different digits (not one grey digit thrice).
    let real = image::open(run.join("real.png")).unwrap();
    assert_eq!(real.color(), image::ColorType::Rgb8);
    let px = real.to_rgb8();
    let unequal = px.pixels().filter(|p| p.0[0] != p.0[1] || p.0[1] != p.0[2]).count();
    assert!(unequal > px.pixels().count() / 10, "{unequal} pixels differ between channels");
    let cache = dir.path().join("cache");
    let o = ganforge_in(
        &["eval", "--run", run.to_str().unwrap(), "--metrics", "coverage", "--n", "30", "--n-real", "30"],
        &[("XDG_CACHE_HOME", &cache)],
    );
    assert!(o.ok, "{}", o.stderr);
    let report: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let cov = &report["metrics"]["coverage"];
    assert_eq!(cov["classes"], 1000);
    let hist: Vec<u64> = serde_json::from_value(cov["histogram"].clone()).unwrap();
    assert_eq!((hist.len(), hist.iter().sum::<u64>()), (1000, 30));
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ganforge/tests/fixtures").join(name).to_str().unwrap().to_string()
}

#[test]
fn eval_writes_json_into_the_run_and_checks_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let run = train_tiny(&dir.path().join("runs"), "2");
    let r = run.to_str().unwrap();
    let cache = dir.path().join("cache");
    let args = ["eval", "--run", r, "--metrics", "fid,kid,pr,is,coverage", "--features", "lenet", "--n", "40", "--n-real", "60"];
    let o = ganforge_in(&args, &[("XDG_CACHE_HOME", &cache)]);
    assert!(o.ok, "{}", o.stderr);
    let written = run.join("eval/step_000002.json");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&o.stdout).unwrap(), report, "what is printed is what is written");
    let m = &report["metrics"];
    // The values follow from the G: after 2 steps it makes near-identical images (1% of the real
    // images' diversity, see doctor_examines_samples_real_images_and_evaluations), so LeNet gives
    // all 40 the same class probabilities: one class holds them all, the Inception Score is
    // exp(KL(p(y|x) || p(y))) = exp(0) = 1, and the tight clump lies outside every real image's
    // 3-NN ball (precision 0) while its own 3-NN radius is far too small to reach a real image
    // (recall 0). FID and KID are checked against NumPy in the library's metrics tests.
    assert_eq!(m["fid"]["protocol"], "fid40");
    assert_eq!(m["kid"]["subset_size"], 40);
    assert_eq!((m["pr"]["precision"].as_f64(), m["pr"]["recall"].as_f64()), (Some(0.0), Some(0.0)));
    assert!((m["is"]["mean"].as_f64().unwrap() - 1.0).abs() < 1e-4 && m["is"]["std"].as_f64().unwrap() < 1e-4, "{}", m["is"]);
    let hist: Vec<u64> = serde_json::from_value(m["coverage"]["histogram"].clone()).unwrap();
    assert_eq!((hist.len(), hist.iter().sum::<u64>(), hist.iter().max()), (10, 40, Some(&40)));
    assert_eq!(m["coverage"]["covered"], 1);
    assert_eq!(report["n_real"], 60);
    assert!(report["resize"].as_str().unwrap().contains("28x28"));
    assert!(report["warnings"][0].as_str().unwrap().contains("fewer images"), "40 images for 64-d features");
    // The real features were cached; a second evaluation uses them and gets a new file.
    assert_eq!(std::fs::read_dir(cache.join("ganforge/features")).unwrap().count(), 1);
    let again = ganforge_in(&args, &[("XDG_CACHE_HOME", &cache)]);
    assert!(again.stderr.contains("from the cache"), "{}", again.stderr);
    let second: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval/step_000002-2.json")).unwrap()).unwrap();
    assert_eq!(second["metrics"], report["metrics"]);

    // --no-cache neither reads nor writes the cache, and computes the same numbers.
    let no_cache = dir.path().join("cache-unused");
    let mut args_nc = args.to_vec();
    args_nc.push("--no-cache");
    let nc = ganforge_in(&args_nc, &[("XDG_CACHE_HOME", &no_cache)]);
    assert!(nc.ok && !nc.stderr.contains("from the cache"), "{}", nc.stderr);
    assert!(!no_cache.join("ganforge/features").exists(), "--no-cache wrote the cache");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&nc.stdout).unwrap()["metrics"], report["metrics"]);

    // A coverage-only evaluation caches no features; a later FID must not take that cache.
    let fresh_cache = dir.path().join("cache2");
    let cov =
        ganforge_in(&["eval", "--run", r, "--metrics", "coverage", "--n", "40", "--n-real", "60"], &[("XDG_CACHE_HOME", &fresh_cache)]);
    assert!(cov.ok, "{}", cov.stderr);
    let fid = ganforge_in(
        &["eval", "--run", r, "--metrics", "fid", "--features", "lenet", "--n", "40", "--n-real", "60"],
        &[("XDG_CACHE_HOME", &fresh_cache)],
    );
    let fid: serde_json::Value = serde_json::from_str(&fid.stdout).unwrap();
    assert_eq!(fid["metrics"]["fid"]["value"], report["metrics"]["fid"]["value"]);

    fails_with(&["eval", "--run", r, "--metrics", "fid", "--n", "20"], "--inception FILE");
    fails_with(
        &["eval", "--run", r, "--metrics", "fid", "--inception", "/nonexistent.pth"],
        "Inception weights not found at /nonexistent.pth",
    );
    fails_with(&["eval", "--run", r, "--metrics", "fid", "--inception", &fixture("dcgan_netG.pth")], "no tensor 'fc.weight'");
    fails_with(&["eval", "--run", r, "--metrics", "pr", "--features", "lenet", "--n", "3"], "precision/recall needs at least 4");
    fails_with(&["eval", "--run", r, "--metrics", "fid,bogus"], "unknown metric 'bogus'");
}

fn json_of(o: &Out) -> serde_json::Value {
    assert!(o.ok, "{}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

/// `fid` on every kind of side: a run's generator equals the PNGs `sample` wrote of it, saved
/// statistics equal the images they came from, and a model file equals its run. (Parity with
/// pytorch-fid itself on Inception features is the library's test, tests/features.rs.)
#[test]
fn fid_compares_runs_folders_datasets_and_saved_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let run = train_tiny(&dir.path().join("runs"), "2");
    let r = run.to_str().unwrap();
    let gen = dir.path().join("gen");
    let g = gen.to_str().unwrap();
    assert!(ganforge(&["sample", "--run", r, "--n", "30", "--seed", "0", "--out", g]).ok);
    let lenet = ["--features", "lenet", "--n", "30"];
    let fid = |a: &str, b: &str, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["fid", a, b, "--json"];
        args.extend_from_slice(&lenet);
        args.extend_from_slice(extra);
        json_of(&ganforge(&args))
    };
    let of_run = fid(r, "mnist-test", &["--metrics", "fid,kid,pr,is,coverage"]);
    for key in ["fid", "kid", "pr", "is", "coverage"] {
        assert!(of_run.get(key).is_some(), "{key} missing in {of_run}");
    }
    // Coverage: LeNet's call on each image of both sets (a folder has no labels).
    let cov = &of_run["coverage"];
    let total = |h: &serde_json::Value| h.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!((cov["classes"].as_u64(), total(&cov["histogram"]), total(&cov["real_histogram"])), (Some(10), 30, 30), "{cov}");
    let value = |j: &serde_json::Value| j["fid"]["value"].as_f64().unwrap();
    assert!(value(&of_run) > 1.0, "2 steps of training are far from MNIST: {of_run}");
    assert_eq!(of_run["fid"]["protocol"], "fid30");
    // The same 30 images read back from their PNG files: the same numbers.
    let of_pngs = fid(g, "mnist-test", &["--metrics", "fid,kid,pr,is,coverage"]);
    assert_eq!(of_pngs, of_run, "a generator and the PNGs sample wrote of it");
    // Folders are searched recursively.
    let nested = dir.path().join("nested/one/two");
    std::fs::create_dir_all(&nested).unwrap();
    for f in std::fs::read_dir(&gen).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, nested.join(f.file_name().unwrap())).unwrap();
    }
    assert_eq!(value(&fid(dir.path().join("nested").to_str().unwrap(), "mnist-test", &[])), value(&of_run), "images one folder down");
    let model = run.join("checkpoints/step_000002/g.safetensors");
    assert_eq!(value(&fid(model.to_str().unwrap(), "mnist-test", &[])), value(&of_run), "a model file and its run");

    // Saved statistics stand for their images.
    let stats = dir.path().join("mnist_test.npz");
    let s = stats.to_str().unwrap();
    let save = ganforge(&["fid", "--save-stats", "mnist-test", s, "--features", "lenet", "--n", "30"]);
    assert!(save.ok && save.stderr.contains("statistics of 30 images (64-d features)"), "{}", save.stderr);
    let from_stats = value(&fid(g, s, &[]));
    assert!((from_stats - value(&of_run)).abs() <= 1e-9 * value(&of_run), "{from_stats} vs {}", value(&of_run));
    // Two statistics files need no network: no --inception for the default features.
    let same = json_of(&ganforge(&["fid", s, s, "--json"]));
    // Zero up to the rounding of 64 square roots of a singular covariance (30 images, 64-d).
    assert!(value(&same).abs() < 1e-4 && same["fid"]["protocol"] == "fid", "{same}");
    let text = ganforge(&["fid", g, s, "--features", "lenet"]);
    assert!(text.ok && text.stdout.starts_with("FID:  "), "{}", text.stdout);
    // 16x16 generated digits against MNIST's 28x28 files: the resize moves FID, so say so.
    let sizes = ganforge(&["fid", g, "mnist-test", "--features", "lenet", "--n", "30"]);
    assert!(sizes.ok && sizes.stderr.contains(&format!("differ in size ({g}: 16x16; mnist-test: 28x28)")), "{}", sizes.stderr);
    let one_size = ganforge(&["fid", g, g, "--features", "lenet"]);
    assert!(one_size.ok && !one_size.stderr.contains("differ in size"), "{}", one_size.stderr);

    fails_with(&["fid", "--save-stats", g, "out.png", "--features", "lenet"], "must end in .npz");
    fails_with(&["fid", g, s, "--metrics", "kid", "--features", "lenet"], "kid needs the features of both sets");
    fails_with(&["fid", g, s, "--metrics", "fid,coverage", "--features", "lenet"], "coverage needs the features of both sets");
    fails_with(&["fid", g, "mnist-test"], "--inception FILE");
    fails_with(&["fid", g, "mnist-test", "--features", "bogus"], "not inception, lenet, cifar, nor an existing classifier file");
    // The CIFAR-10 classifier's features: a domain FID of its own, 256-d.
    let cifar = json_of(&ganforge(&["fid", g, "mnist-test", "--json", "--features", "cifar", "--n", "30"]));
    let lenet_fid = json_of(&ganforge(&["fid", g, "mnist-test", "--json", "--features", "lenet", "--n", "30"]));
    let (c, l) = (cifar["fid"]["value"].as_f64().unwrap(), lenet_fid["fid"]["value"].as_f64().unwrap());
    assert!(c.is_finite() && c > 0.0 && c != l, "cifar {c}, lenet {l}");
    fails_with(&["fid", "/nonexistent/folder", "mnist", "--features", "lenet"], "'/nonexistent/folder' is no file or folder");
    fails_with(&["fid", &fixture("latents_3x4.npy"), g, "--features", "lenet"], "a file, but not one `fid` reads");
    std::fs::write(gen.join("broken.png"), b"not a png").unwrap();
    fails_with(&["fid", g, "mnist-test", "--features", "lenet"], "cannot be decoded (broken.png");
    std::fs::write(&stats, b"not a zip").unwrap();
    fails_with(&["fid", "mnist", s, "--features", "lenet"], "not an .npz (zip) archive");
}

#[test]
fn doctor_reads_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = train_tiny(&dir.path().join("runs"), "2");
    let o = ganforge(&["doctor", run.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    assert!(o.stdout.contains("samples are judged from step 500"), "{}", o.stdout);
    // A live finding in metrics.jsonl is reported with its evidence and remedy.
    let line = r#"{"step":2,"doctor":{"kind":"divergence","step":2,"evidence":"loss_d = NaN; training stopped.","remedy":"lower the learning rates"}}"#;
    let mut log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    log.push_str(line);
    log.push('\n');
    std::fs::write(run.join("metrics.jsonl"), log).unwrap();
    let o = ganforge(&["doctor", run.to_str().unwrap(), "--json"]);
    let exam: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(exam["logged"][0]["kind"], "divergence");
    assert_eq!(exam["findings"], serde_json::json!([]));
    fails_with(&["doctor", dir.path().to_str().unwrap()], "is not a ganforge run folder");
}

/// Writes 16 grey 16x16 PNGs: all the same mid-grey (no diversity) or independent noise.
fn planted_folder(dir: &Path, noise: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 12345u32;
    for i in 0..16 {
        let img = image::GrayImage::from_fn(16, 16, |_, _| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Luma([if noise { (state >> 24) as u8 } else { 128 }])
        });
        img.save(dir.join(format!("{i:02}.png"))).unwrap();
    }
    dir.to_path_buf()
}

fn append(path: &Path, lines: &[String]) {
    let mut text = std::fs::read_to_string(path).unwrap();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn eval_line(step: u64, metrics: &str) -> String {
    format!(
        r#"{{"step":{step},"eval":{{"checkpoint":"c","real":"folder","n_fake":16,"n_real":16,"features":"lenet","resize":"r","metrics":{metrics},"warnings":[]}}}}"#
    )
}

/// Trains 2 steps at 32x32 on a planted folder, then carries metrics.jsonl to step 600 with a
/// copied loss line, so that `ganforge doctor` judges the samples (from step 500 on).
fn run_at_step_600(out: &Path, data: &Path, extra: &[&str]) -> PathBuf {
    let spec = format!("folder:{}", data.display());
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--steps", "2", "--data", &spec];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--set", "model.image_size=32"]);
    args.extend_from_slice(extra);
    let o = ganforge(&args);
    assert!(o.ok, "{}", o.stderr);
    let run = PathBuf::from(o.stdout.lines().last().unwrap());
    let log = run.join("metrics.jsonl");
    let last = std::fs::read_to_string(&log).unwrap().lines().filter(|l| l.contains("\"loss_g\"")).last().unwrap().to_string();
    let mut record: serde_json::Value = serde_json::from_str(&last).unwrap();
    record["step"] = serde_json::json!(600);
    append(&log, &[record.to_string()]);
    run
}

fn examine(run: &Path) -> serde_json::Value {
    let o = ganforge(&["doctor", run.to_str().unwrap(), "--json"]);
    assert!(o.ok, "{}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap()
}

fn finding_kinds(exam: &serde_json::Value) -> Vec<String> {
    exam["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_string()).collect()
}

/// `ganforge doctor` past step 500, where it judges the latest G's samples against real images
/// and the evaluations in metrics.jsonl. The evidence is planted: the G's up-sampling (an
/// untrained transposed-convolution G makes a strong period-2 checkerboard at 32x32, 322x the
/// typical power when this was written, while resize-convolution makes none), the real images
/// (config.toml's data.spec: a folder without any diversity, or one of noise) and eval lines.
#[test]
fn doctor_examines_samples_real_images_and_evaluations() {
    let dir = tempfile::tempdir().unwrap();
    let flat = planted_folder(&dir.path().join("flat"), false);
    let noise = planted_folder(&dir.path().join("noise"), true);
    let deconv = run_at_step_600(&dir.path().join("deconv"), &flat, &[]);
    let exam = examine(&deconv);
    assert_eq!(finding_kinds(&exam), ["checkerboard"], "{exam}");
    assert!(exam["findings"][0]["evidence"].as_str().unwrap().contains("period-2"), "{exam}");

    let run = run_at_step_600(&dir.path().join("resize"), &flat, &["--set", "dcgan.upsample=resize_conv"]);
    let log = run.join("metrics.jsonl");
    let kinds = finding_kinds;
    let notes = |exam: &serde_json::Value| exam["notes"].to_string();
    // Real images with no diversity at all: any G's samples are as diverse, so no collapse.
    let exam = examine(&run);
    assert_eq!(kinds(&exam), Vec::<String>::new(), "{exam}");
    assert!(!notes(&exam).contains("samples are judged from step 500"), "{exam}");
    assert!(notes(&exam).contains("no evaluations in metrics.jsonl"), "{exam}");

    // Real images of independent noise: G after 2 steps is far less diverse (1%).
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    std::fs::write(run.join("config.toml"), config.replace(&flat.display().to_string(), &noise.display().to_string())).unwrap();
    let exam = examine(&run);
    assert_eq!(kinds(&exam), ["mode_collapse"], "{exam}");
    assert!(exam["findings"][0]["evidence"].as_str().unwrap().contains("as diverse as real ones"), "{exam}");
    std::fs::write(run.join("config.toml"), config).unwrap();

    // Evaluations: coverage falling from 10 classes to 3, and a MiFID memorization distance
    // under the threshold; each finding appears only with its evidence.
    let coverage = |c: u32| format!(r#"{{"coverage":{{"classes":10,"covered":{c},"histogram":[1,1,1,1,1,1,1,1,1,1],"kl":0.1}}}}"#);
    let mifid = |d: f64| format!(r#"{{"mifid":{{"fid":12.5,"memorization_distance":{d},"threshold":0.1,"value":12.5}}}}"#);
    append(&log, &[eval_line(300, &coverage(10)), eval_line(600, &coverage(9)), eval_line(600, &mifid(0.3))]);
    let exam = examine(&run);
    assert_eq!(kinds(&exam), Vec::<String>::new(), "9 of 10 classes and distance 0.3 are healthy: {exam}");
    assert!(!notes(&exam).contains("no evaluations"), "{exam}");
    append(&log, &[eval_line(600, &coverage(3)), eval_line(600, &mifid(0.01))]);
    let exam = examine(&run);
    assert_eq!(kinds(&exam), ["mode_collapse", "memorization"], "{exam}");
    assert!(exam["findings"][0]["evidence"].as_str().unwrap().contains("fell to 3 classes from 10"), "{exam}");
    assert!(exam["findings"][1]["evidence"].as_str().unwrap().contains("0.0100"), "{exam}");
}

#[test]
fn pytorch_generators_sample_and_runs_export() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.npy");
    let o = ganforge(&[
        "sample",
        "--from-pytorch",
        &fixture("dcgan_netG.pth"),
        "--latents",
        &fixture("dcgan_latents.npy"),
        "--raw",
        raw.to_str().unwrap(),
        "--out",
        dir.path().join("imgs").to_str().unwrap(),
    ]);
    assert!(o.ok, "{}", o.stderr);
    let (got, want) = (ganforge::npy::read(&raw).unwrap(), ganforge::npy::read(Path::new(&fixture("dcgan_netG_out.npy"))).unwrap());
    assert_eq!(got.shape, want.shape);
    assert!(got.values.iter().zip(&want.values).all(|(a, b)| (a - b).abs() <= 1e-4));
    assert_eq!(std::fs::read_dir(dir.path().join("imgs")).unwrap().count(), 3);
    fails_with(&["sample", "--from-pytorch", &fixture("dcgan_not_dcgan.pth"), "--out", "x"], "not a generator state dict");
    fails_with(&["sample", "--from-pytorch", &fixture("dcgan_netG.pth"), "--nc", "1", "--out", "x"], "--nc 1 disagrees with the file");

    let run = train_tiny(&dir.path().join("runs"), "2");
    let pth = dir.path().join("netG.pth");
    let o = ganforge(&["export", "--run", run.to_str().unwrap(), "--out", pth.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    let back = ganforge::pth::read(&pth).unwrap();
    assert_eq!(back.floats["main.0.weight"].shape, vec![100, 16, 4, 4], "16x16: two doubling stages after 4x4, 2 * ngf wide");
    assert!(back.integers.contains("main.1.num_batches_tracked"));

    // Whether torch.load reads these files is checked only by hand
    // (tests/fixtures/dcgan_pytorch_check.py): PyTorch is not installed where the tests run.

    // D too, under the names and shapes of PyTorch's DCGAN example's netD (ndf 8, nc 1, 16x16:
    // conv 1 -> 8, conv 8 -> 16 with batch norm, conv 16 -> 1 down to 1x1).
    let pth_d = dir.path().join("netD.pth");
    let o = ganforge(&["export", "--run", run.to_str().unwrap(), "--net", "d", "--out", pth_d.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.lines().last().unwrap(), pth_d.to_str().unwrap());
    let d = ganforge::pth::read(&pth_d).unwrap();
    assert_eq!(d.floats["main.0.weight"].shape, vec![8, 1, 4, 4]);
    assert_eq!(d.floats["main.2.weight"].shape, vec![16, 8, 4, 4]);
    assert_eq!(d.floats["main.3.weight"].shape, vec![16]);
    assert_eq!(d.floats["main.5.weight"].shape, vec![1, 16, 4, 4]);
    assert!(d.integers.contains("main.3.num_batches_tracked"));
    assert!(d.floats.values().all(|t| t.values.iter().all(|v| v.is_finite())));
    assert_ne!(d.floats["main.0.weight"].values, back.floats["main.0.weight"].values[..128].to_vec(), "D's weights, not G's");
}

#[test]
fn classifier_train_checks_its_data() {
    fails_with(&["classifier", "train", "--data", "folder:/nonexistent", "--out", "x.safetensors"], "/nonexistent");
    fails_with(
        &["classifier", "train", "--data", "mnist", "--epochs", "0", "--out", "x.safetensors"],
        "--epochs and --batch-size must be at least 1",
    );
}

/// A plain HTTP GET over a TcpStream: status line and body.
fn http_get(addr: &str, path: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    (head.lines().next().unwrap().to_string(), all[split + 4..].to_vec())
}

#[test]
fn serve_report_and_the_training_dashboard() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    // Training with --dashboard on a free port says where the dashboard is.
    let mut args = vec!["train", "--out", dir.path().to_str().unwrap(), "--steps", "2", "--dashboard", "127.0.0.1:0"];
    args.extend_from_slice(TINY);
    let o = ganforge(&args);
    assert!(o.ok, "{}", o.stderr);
    assert!(o.stderr.contains("dashboard: http://127.0.0.1:"), "{}", o.stderr);
    let run = PathBuf::from(o.stdout.lines().last().unwrap());
    assert!(run.join("loss.png").is_file());

    let o = ganforge(&["report", run.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,") && html.contains("<svg"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_ganforge"))
        .args(["serve", "--run", run.to_str().unwrap(), "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().trim_start_matches("http://").trim_end_matches('/').to_string();
    let (status, body) = http_get(&addr, "/api/generate?seed=3");
    let (status_again, body_again) = http_get(&addr, "/api/generate?seed=3");
    let (bad, _) = http_get(&addr, "/api/generate?n=1000");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(status.contains("200"), "{status}");
    assert_eq!((status_again, body_again), (status, body.clone()));
    assert_eq!(image::load_from_memory(&body).unwrap().width(), 16);
    assert!(bad.contains("400"), "{bad}");
    fails_with(&["serve", "--run", dir.path().to_str().unwrap()], "is not a ganforge run folder");
}

/// `--time`: training stops when the budget is spent, with a checkpoint, and resumes.
#[test]
fn a_time_budget_stops_with_a_checkpoint_and_resumes() {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["train", "--out", out.path().to_str().unwrap(), "--steps", "1000000", "--time", "2s"];
    args.extend_from_slice(TINY);
    let started = std::time::Instant::now();
    let o = ganforge(&args);
    assert!(o.ok, "{}", o.stderr);
    assert!(started.elapsed().as_secs() < 60, "stopped by the budget, not by a million steps");
    assert!(o.stderr.contains("stopped at step") && o.stderr.contains("--resume"), "{}", o.stderr);
    let run = o.stdout.lines().last().unwrap().trim().to_string();
    let steps = |run: &str| ganforge::run::RunDir::open(Path::new(run)).unwrap().log().unwrap().steps.last().unwrap().step;
    let first = steps(&run);
    assert!(first > 0 && first < 1_000_000, "{first}");
    let ckpt = ganforge::run::RunDir::open(Path::new(&run)).unwrap().latest_checkpoint().unwrap();
    assert!(ckpt.ends_with(format!("step_{first:06}")), "the checkpoint is at the last step: {}", ckpt.display());
    let o = ganforge(&["train", "--resume", &run, "--steps", "1000000", "--time", "1s"]);
    assert!(o.ok, "{}", o.stderr);
    assert!(steps(&run) > first, "the resumed session trained on");
    fails_with(&["train", "--time", "0s"], "no time at all");
    fails_with(&["train", "--time", "5x"], "is not a duration");
}

/// `train --init-from`: a new run from a run's last checkpoint (G and D) or from an exported
/// model file (G only, said on stderr); other shapes are one line naming the tensor and both
/// shapes; --resume continues a run in place, so the two do not go together.
#[test]
fn train_init_from_fine_tunes_into_a_new_run() {
    let out = tempfile::tempdir().unwrap();
    let source = train_tiny(out.path(), "2");
    let fine_tune = |from: &Path, extra: &[&str]| {
        let mut args = vec!["train", "--out", out.path().to_str().unwrap(), "--steps", "2", "--init-from", from.to_str().unwrap()];
        args.extend_from_slice(TINY);
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let run_with = |args: Vec<String>| ganforge(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let o = run_with(fine_tune(&source, &[]));
    assert!(o.ok, "{}", o.stderr);
    let ckpt = std::fs::canonicalize(source.join("checkpoints/step_000002")).unwrap();
    assert!(o.stderr.contains(&format!("fine-tuning from {}: G and D;", ckpt.display())), "{}", o.stderr);
    let run = PathBuf::from(o.stdout.lines().last().unwrap());
    assert!(run.ends_with("00001-mnist") && run.join("checkpoints/step_000002").is_dir(), "{run:?}");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains(&format!("init_from = \"{}\"", ckpt.display())), "{config}");

    let hf = out.path().join("hf");
    let o = ganforge(&["export", "--run", source.to_str().unwrap(), "--format", "hf", "--out", hf.to_str().unwrap()]);
    assert!(o.ok, "{}", o.stderr);
    let o = run_with(fine_tune(&hf.join("model.safetensors"), &[]));
    assert!(o.ok, "{}", o.stderr);
    assert!(o.stderr.contains("G only (a generator file holds no D), so D starts from random weights"), "{}", o.stderr);

    let wider = fine_tune(&source, &["--set", "dcgan.ngf=16"]);
    fails_with(&wider.iter().map(String::as_str).collect::<Vec<_>>(), "'blocks.0.bn.beta' has shape [8] in the file, [16] in the model");
    let s = source.to_str().unwrap();
    fails_with(&["train", "--init-from", s, "--resume", s], "'--init-from <RUN_OR_FILE>' cannot be used with '--resume <RUN_DIR>'");
}
