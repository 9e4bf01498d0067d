//! End-to-end tests of the training loop on tiny models: run folders, exact resume,
//! determinism, every network and trick, sampling and checkpoint checks.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ganforge::burn::tensor::Device;
use ganforge::config::GanConfig;
use ganforge::params::{load_module, read_safetensors};
use ganforge::run::{MetricsLog, MetricsRecord};
use ganforge::sample::Sampler;
use ganforge::train::{train, Quiet};

mod common;
use common::{opts, test_cache, tiny};

fn metrics(run: &Path) -> Vec<MetricsRecord> {
    MetricsLog::read(&run.join("metrics.jsonl")).unwrap().steps
}

fn final_weights(run: &Path, file: &str) -> Vec<(String, Vec<f32>)> {
    let ckpts = ganforge::run::RunDir::open(run).unwrap().latest_checkpoint().unwrap();
    read_safetensors(&ckpts.join(file)).unwrap().into_iter().map(|(k, v)| (k, v.values)).collect()
}

/// The tensors of `files` in the latest checkpoints of two runs are identical, name by name.
fn assert_same_files(a: &Path, b: &Path, files: &[&str]) {
    for file in files {
        let (x, y) = (final_weights(a, file), final_weights(b, file));
        let differing: Vec<&String> = x.iter().zip(&y).filter(|(p, q)| p != q).map(|(p, _)| &p.0).collect();
        assert!(differing.is_empty() && x.len() == y.len(), "{file}: {differing:?}");
    }
}

/// The run of `cfg` stopped after its first step (as by Ctrl-C) and resumed ends with the same
/// `files` as the uninterrupted run `whole`.
fn assert_resumes_exactly(cfg: impl Fn() -> GanConfig, out: &Path, whole: &Path, files: &[&str]) {
    let mut stopped = opts(out, None);
    stopped.stop = Arc::new(AtomicBool::new(true));
    let part = train(cfg(), stopped, &mut Quiet).unwrap().path;
    train(cfg(), opts(out, Some(part.clone())), &mut Quiet).unwrap();
    assert_same_files(whole, &part, files);
}

#[test]
fn run_folder_holds_config_metrics_samples_and_checkpoints() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    assert!(run.ends_with("00000-mnist"));
    let cfg = GanConfig::load(&run.join("config.toml")).unwrap();
    assert_eq!(cfg.model.image_size, 16);
    let m = metrics(&run);
    assert_eq!(m.iter().map(|r| r.step).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    for r in &m {
        assert!(r.loss_d.is_finite() && r.loss_g.is_finite() && r.loss_d > 0.0);
        assert!((0.0..=1.0).contains(&r.d_real) && (0.0..=1.0).contains(&r.d_fake));
        assert_eq!((r.lr_d, r.lr_g), (4e-4, 4e-4), "the mnist preset's rates");
        assert!(r.images_per_s > 0.0 && r.elapsed_s > 0.0);
    }
    let grid = image::open(run.join("samples/step_000004.png")).unwrap();
    // 4 images of 16x16 in a 2x2 grid with 2-pixel borders.
    assert_eq!((grid.width(), grid.height()), (2 * 18 + 2, 2 * 18 + 2));
    assert!(run.join("samples/step_000002.png").is_file());
    assert!(run.join("real.png").is_file());
    let ckpts: Vec<String> =
        std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let mut ckpts = ckpts;
    ckpts.sort();
    assert_eq!(ckpts, vec!["step_000002", "step_000004"]);
    let g = read_safetensors(&run.join("checkpoints/step_000004/g.safetensors")).unwrap();
    assert_eq!(g["project.weight"].shape, vec![100, 16, 4, 4]); // [nz, 2 ngf, 4, 4]
    assert_eq!(g["blocks.0.up.weight"].shape, vec![16, 8, 4, 4]); // [2 ngf, ngf, 4, 4]
    assert!(g.contains_key("project_bn.running_mean"));
    // A second run gets the next number.
    let run2 = train(tiny(&["train.steps=1"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    assert!(run2.ends_with("00001-mnist"));
}

#[test]
fn same_seed_same_run_and_other_seed_differs() {
    let out = tempfile::tempdir().unwrap();
    let a = train(tiny(&["train.steps=2"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let b = train(tiny(&["train.steps=2"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let c = train(tiny(&["train.steps=2", "seed=1"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    assert!(final_weights(&a, "g.safetensors") == final_weights(&b, "g.safetensors"));
    assert!(final_weights(&a, "g.safetensors") != final_weights(&c, "g.safetensors"));
}

/// N+M steps in one go == N steps, stop, resume, M steps: weights, optimizer state and losses.
/// The tricks are on so that the restored RNG stream is exercised too.
#[test]
fn resume_is_exact() {
    let tricks = ["tricks.soft_labels=true", "tricks.label_flip_p=0.3", "tricks.instance_noise=0.1"];
    let out = tempfile::tempdir().unwrap();
    let whole = train(tiny(&[&tricks[..], &["train.steps=6"]].concat()), opts(out.path(), None), &mut Quiet).unwrap().path;

    let part = train(tiny(&[&tricks[..], &["train.steps=3", "train.checkpoint_every=3"]].concat()), opts(out.path(), None), &mut Quiet)
        .unwrap()
        .path;
    let resumed_cfg = tiny(&[&tricks[..], &["train.steps=6", "train.checkpoint_every=3"]].concat());
    let resumed = train(resumed_cfg, opts(out.path(), Some(part.clone())), &mut Quiet).unwrap().path;
    assert_eq!(resumed, part, "resume continues in place");

    let losses = |run: &Path| metrics(run).iter().map(|r| (r.step, r.loss_d, r.loss_g)).collect::<Vec<_>>();
    assert_eq!(losses(&whole), losses(&resumed));
    assert_same_files(&whole, &resumed, &["g.safetensors", "d.safetensors", "optim_g.safetensors", "optim_d.safetensors"]);
}

#[test]
fn stop_flag_checkpoints_then_resume_finishes() {
    let out = tempfile::tempdir().unwrap();
    let mut o = opts(out.path(), None);
    o.stop = Arc::new(AtomicBool::new(true)); // as if Ctrl-C came during the first step
    let run = train(tiny(&["train.checkpoint_every=100", "train.sample_every=100"]), o, &mut Quiet).unwrap().path;
    assert!(run.join("checkpoints/step_000001/state.json").is_file());
    assert_eq!(metrics(&run).last().unwrap().step, 1);
    let run = train(tiny(&["train.checkpoint_every=100", "train.sample_every=100"]), opts(out.path(), Some(run)), &mut Quiet).unwrap().path;
    assert_eq!(metrics(&run).last().unwrap().step, 4);
}

#[test]
#[ignore = "needs ../shared/data (the workplace's CIFAR-10 JPEGs / Quick, Draw! sheep): run with --include-ignored"]
fn every_network_and_trick_trains_without_nan() {
    let variants: &[&[&str]] = &[
        &["model.arch=fc"],
        &["dcgan.upsample=resize_conv", "dcgan.g_kernel=3"],
        &["dcgan.g_kernel=6"],
        &["tricks.swap_labels=true", "tricks.soft_labels=true"],
        &["tricks.instance_noise=0.2", "tricks.instance_noise_steps=2"],
        &["model.image_size=32", "model.channels=3", "train.batch_size=4"],
    ];
    let out = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    make_tiny_idx(idx.path());
    let idx_spec = format!("data.spec=idx:{}", idx.path().display());
    let with_idx: &[&str] = &["train.epochs=1", "train.steps=0", &idx_spec];
    // The 23 real Quick, Draw! sheep in ../shared, rasterized.
    let sheep = format!("data.spec=quickdraw:{}/../../../shared/data/quickdraw-sheep/sheep_raw_23.ndjson", env!("CARGO_MANIFEST_DIR"));
    let with_sheep: &[&str] = &[&sheep];
    for v in variants.iter().chain([&with_idx, &with_sheep]) {
        let run = train(tiny(v), opts(out.path(), None), &mut Quiet).unwrap_or_else(|e| panic!("{v:?}: {e}")).path;
        let m = metrics(&run);
        assert!(m.iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()), "{v:?}");
    }
}

/// 20 tiny 28x28 IDX images (with labels): one epoch at batch 8 is 2 steps.
fn make_tiny_idx(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut img = vec![0, 0, 8, 3, 0, 0, 0, 20, 0, 0, 0, 28, 0, 0, 0, 28];
    img.extend((0..20 * 28 * 28).map(|i| (i % 251) as u8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), img).unwrap();
    let mut lab = vec![0, 0, 8, 1, 0, 0, 0, 20];
    lab.extend((0..20).map(|i| (i % 10) as u8));
    std::fs::write(dir.join("train-labels-idx1-ubyte"), lab).unwrap();
}

#[test]
fn epochs_count_batches_of_the_dataset() {
    let out = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    make_tiny_idx(dir.path());
    let spec = format!("data.spec=idx:{}", dir.path().display());
    let run = train(tiny(&["train.epochs=3", &spec]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let name = dir.path().file_name().unwrap().to_str().unwrap().replace('.', "_");
    assert!(run.ends_with(format!("00000-idx-{name}")), "{run:?}");
    let m = metrics(&run);
    assert_eq!(m.last().map(|r| (r.step, r.epoch)), Some((6, 3)));
}

#[test]
fn sampling_reproduces_the_run_grid() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let s = Sampler::load(&run, None, &Device::flex()).unwrap();
    // The run's seed and grid size give the fixed latents of its sample grids.
    let imgs = s.generate(&s.latents(4, s.cfg.seed), None);
    assert_eq!((imgs.n, imgs.channels, imgs.height, imgs.width), (4, 1, 16, 16));
    assert!(imgs.values.iter().all(|v| (-1.0..=1.0).contains(v)));
    let saved = image::open(run.join("samples/step_000004.png")).unwrap().to_rgb8();
    assert_eq!(imgs.grid(2), saved);
    // Chunking does not change images: 300 latents (two chunks) start with the same 4.
    let many = s.generate(&s.latents(300, s.cfg.seed), None);
    assert_eq!(many.n, 300);
    assert_eq!(&many.values[..imgs.values.len()], &imgs.values[..]);
    // An older checkpoint is a different generator.
    let older = Sampler::load(&run, Some(&run.join("checkpoints/step_000002")), &Device::flex()).unwrap();
    assert_ne!(older.generate(&s.latents(4, 0), None).values, s.generate(&s.latents(4, 0), None).values);
}

#[test]
fn checkpoint_that_does_not_match_the_config_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&["train.steps=2"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let wider = tiny(&["dcgan.ngf=16"]);
    let (g, _) = ganforge::nets::build(&wider.families(), 0, &Device::flex());
    let e = load_module(g, &run.join("checkpoints/step_000002/g.safetensors")).err().unwrap().to_string();
    assert!(e.contains("does not match") && e.contains("'blocks.0.bn.beta' has shape [8] in the file, [16] in the model"), "{e}");
    // Resuming with an edited config.toml hits the same check.
    std::fs::write(run.join("config.toml"), wider.to_toml()).unwrap();
    let e = train(wider, opts(out.path(), Some(run.clone())), &mut Quiet).err().unwrap().to_string();
    assert!(e.contains("does not match"), "{e}");
}

#[test]
fn resume_and_sample_refuse_a_folder_that_is_not_a_run() {
    let out = tempfile::tempdir().unwrap();
    let e = train(tiny(&[]), opts(out.path(), Some(out.path().to_path_buf())), &mut Quiet).err().unwrap().to_string();
    assert!(e.contains("not a ganforge run folder"), "{e}");
    let e = Sampler::load(out.path(), None, &Device::flex()).err().unwrap().to_string();
    assert!(e.contains("not a ganforge run folder"), "{e}");
}

#[test]
fn bad_data_is_a_clear_error() {
    let out = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let spec = format!("data.spec=folder:{}", empty.path().display());
    let e = train(tiny(&[&spec]), opts(out.path(), None), &mut Quiet).err().unwrap().to_string();
    assert!(e.contains("no image files (bmp, jpg"), "{e}");
    let bad = empty.path().join("train-images-idx3-ubyte");
    std::fs::write(&bad, [0u8, 0, 8, 3, 0x80, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]).unwrap();
    let spec = format!("data.spec=idx:{}", bad.display());
    let e = train(tiny(&[&spec]), opts(out.path(), None), &mut Quiet).err().unwrap().to_string();
    assert!(e.contains("truncated") || e.contains("impossibly large"), "{e}");
    // Nothing was left behind for the failed runs.
    assert!(std::fs::read_dir(out.path()).map_or(true, |mut d| d.next().is_none()));
}

#[test]
fn divergence_stops_cleanly_without_saving_the_bad_state() {
    let out = tempfile::tempdir().unwrap();
    // A learning rate of 1e30 throws D's weights to +-1e30 in its first update: G's loss is NaN.
    let e = train(tiny(&["train.lr_d=1e30", "train.lr_g=1e30"]), opts(out.path(), None), &mut Quiet).err().unwrap();
    let msg = e.to_string();
    assert!(msg.contains("diverged at step 1") && msg.contains("no checkpoint had been written yet"), "{msg}");
    let run = out.path().join("00000-mnist");
    assert!(std::fs::read_dir(run.join("checkpoints")).unwrap().next().is_none(), "the NaN state must not be saved");
    // The doctor's finding is in metrics.jsonl.
    let log = MetricsLog::read(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(log.findings.len(), 1);
    assert_eq!((log.findings[0].kind.as_str(), log.findings[0].step), ("divergence", 1));
    assert!(log.findings[0].evidence.contains("NaN"), "{:?}", log.findings[0]);
}

/// A Stanford Dogs tree in the published layout: two breeds, two photos each, two boxes per
/// photo, so 8 training crops.
fn make_tiny_dogs(root: &Path) {
    let box_xml = |x: u32| {
        format!("<object><name>dog</name><bndbox><xmin>{x}</xmin><ymin>5</ymin><xmax>{}</xmax><ymax>45</ymax></bndbox></object>", x + 40)
    };
    for (b, breed) in ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"].iter().enumerate() {
        std::fs::create_dir_all(root.join("Images").join(breed)).unwrap();
        std::fs::create_dir_all(root.join("Annotation").join(breed)).unwrap();
        for k in 0..2 {
            let id = format!("{}_{k}", &breed[..9]);
            let photo = image::RgbImage::from_fn(100, 50, |x, y| image::Rgb([(x * 2) as u8, (y * 4) as u8, (b * 200) as u8]));
            photo.save(root.join("Images").join(breed).join(format!("{id}.jpg"))).unwrap();
            let xml = format!("<annotation><size><width>100</width><height>50</height></size>{}{}</annotation>", box_xml(5), box_xml(55));
            std::fs::write(root.join("Annotation").join(breed).join(&id), xml).unwrap();
        }
    }
}

/// CIFAR-10's binary layout: one data_batch_1.bin of `n` records (record k has label k % 10).
fn make_tiny_cifar(dir: &Path, n: usize) {
    let records: Vec<u8> =
        (0..n).flat_map(|k| std::iter::once((k % 10) as u8).chain((0..3072).map(move |i| ((i + 37 * k) % 256) as u8))).collect();
    std::fs::write(dir.join("data_batch_1.bin"), records).unwrap();
}

/// Each dataset preset trains a few steps on a small copy of its data in the publisher's
/// format, keeps the preset's settings, and records the class names in the run's config.
#[test]
#[ignore = "needs ../shared/data (the workplace's CIFAR-10 JPEGs / Quick, Draw! sheep): run with --include-ignored"]
fn each_dataset_preset_trains_a_few_steps() {
    let out = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dogs = tempfile::tempdir().unwrap();
    make_tiny_dogs(dogs.path());
    let cifar = tempfile::tempdir().unwrap();
    // 48 records, labels k % 10: five dogs (label 5) for cifar10-dogs.
    make_tiny_cifar(cifar.path(), 48);
    let cases = [
        ("sheep", format!("quickdraw:{}/../../../shared/data/quickdraw-sheep/sheep_raw_23.ndjson", env!("CARGO_MANIFEST_DIR")), 64, 1),
        ("svhn", format!("svhn:{}", fixtures.join("svhn_5.mat").display()), 32, 3),
        ("cifar10", format!("cifar10:{}", cifar.path().display()), 32, 3),
        ("cifar10-dogs", format!("cifar10:{}", cifar.path().display()), 32, 3),
        ("dogs", format!("stanford-dogs:{}", dogs.path().display()), 64, 3),
    ];
    for (preset, spec, size, channels) in cases {
        let sets: Vec<String> = [
            format!("data.spec={spec}"),
            "dcgan.ngf=8".into(),
            "dcgan.ndf=8".into(),
            "train.batch_size=4".into(),
            "train.steps=2".into(),
            "train.grid_images=4".into(),
            test_cache(),
        ]
        .into();
        let cfg = GanConfig::resolve(Some(preset), None, &sets).unwrap();
        assert_eq!((cfg.model.image_size, cfg.model.channels), (size, channels), "{preset}");
        let run = train(cfg, opts(out.path(), None), &mut Quiet).unwrap_or_else(|e| panic!("{preset}: {e}")).path;
        assert!(metrics(&run).iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()), "{preset}");
        let saved = GanConfig::load(&run.join("config.toml")).unwrap();
        assert_eq!(saved.preset, preset);
        let grid = image::open(run.join("samples/step_000002.png")).unwrap();
        assert_eq!(grid.width(), 2 * size as u32 + 3 * 2, "{preset}: a 2x2 grid of {size}px images with 2px borders");
        match preset {
            "sheep" => assert!(saved.data.classes.is_empty()),
            "svhn" => {
                assert_eq!(saved.data.classes, (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
                assert_eq!((saved.train.lr_d, saved.train.lr_g), (1e-3, 1e-4));
            }
            "cifar10" => assert_eq!(saved.data.classes[..3], ["airplane", "automobile", "bird"]),
            "cifar10-dogs" => {
                assert_eq!(
                    (saved.data.classes.clone(), saved.data.classes_keep.0.clone()),
                    (vec!["dog".to_string()], vec!["dog".to_string()])
                );
                // Flips of its own, cifar10's recipe under it (rates, no G average).
                assert!(saved.data.hflip && saved.train.g_ema == 0.0 && (saved.train.lr_d, saved.train.lr_g) == (4e-4, 4e-4));
                let plan = ganforge::train::plan::plan(saved.clone(), &Device::flex()).unwrap();
                assert_eq!((plan.images, plan.classes), (5, 1), "only the five dogs are loaded: {}", plan.data);
            }
            _ => {
                assert_eq!(saved.data.classes, ["Chihuahua", "Japanese_spaniel"]);
                assert_eq!((saved.train.lr_d, saved.train.lr_g, saved.data.hflip), (1e-4, 3e-4, true));
            }
        }
    }
}

/// `data.classes_keep` names classes the data must have; a typo gets the list of real ones.
#[test]
fn kept_classes_must_exist() {
    let out = tempfile::tempdir().unwrap();
    let e = train(tiny(&["data.classes_keep=seven", "train.steps=1"]), opts(out.path(), None), &mut Quiet).err().unwrap().to_string();
    assert!(e.ends_with("data.classes_keep: no class 'seven' in this dataset; its classes are: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"), "{e}");
}

/// The run's config keeps the class index; resuming on data whose classes changed is refused.
#[test]
fn class_index_is_recorded_and_guarded_on_resume() {
    let out = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let img = image::GrayImage::from_fn(20, 20, |x, y| image::Luma([(x * 10 + y) as u8]));
    for class in ["cat", "ant"] {
        std::fs::create_dir(data.path().join(class)).unwrap();
        for k in 0..4 {
            img.save(data.path().join(class).join(format!("{k}.png"))).unwrap();
        }
    }
    let spec = format!("data.spec=folder:{}", data.path().display());
    let run = train(tiny(&[&spec, "train.steps=2"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let saved = GanConfig::load(&run.join("config.toml")).unwrap();
    assert_eq!(saved.data.classes, ["ant", "cat"], "sorted sub-folder names, label = index");

    std::fs::create_dir(data.path().join("bee")).unwrap();
    img.save(data.path().join("bee/0.png")).unwrap();
    let more = saved.with_overrides(&["train.steps=4".into()]).unwrap();
    let e = train(more, opts(out.path(), Some(run.clone())), &mut Quiet).unwrap_err().to_string();
    assert!(e.contains("[ant, bee, cat] differ from the run's data.classes [ant, cat]"), "{e}");
}

/// Training through the image cache gives exactly what decoding every step gives (flips
/// included), and a second run reuses the cache instead of decoding again.
#[test]
fn the_image_cache_changes_nothing_but_speed() {
    let out = tempfile::tempdir().unwrap();
    let dogs = tempfile::tempdir().unwrap();
    make_tiny_dogs(dogs.path());
    let cache = tempfile::tempdir().unwrap();
    let spec = format!("data.spec=stanford-dogs:{}", dogs.path().display());
    let dir = format!("data.cache_dir={}", cache.path().display());
    let base = ["model.channels=3", "data.hflip=true", "train.steps=4", "train.batch_size=4", &spec, &dir];
    let cached = train(tiny(&base), opts(out.path(), None), &mut Quiet).unwrap().path;
    let caches: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(caches.len(), 1);
    assert!(caches[0].to_string_lossy().ends_with("-16x16x3.u8"), "{caches:?}");
    let built = std::fs::metadata(&caches[0]).unwrap().modified().unwrap();

    let plain = train(tiny(&[&base[..], &["data.cache=false"]].concat()), opts(out.path(), None), &mut Quiet).unwrap().path;
    let losses = |run: &Path| metrics(run).iter().map(|r| (r.loss_d, r.loss_g, r.d_real, r.d_fake)).collect::<Vec<_>>();
    assert_eq!(losses(&cached), losses(&plain));
    assert_eq!(final_weights(&cached, "g.safetensors"), final_weights(&plain, "g.safetensors"));

    train(tiny(&base), opts(out.path(), None), &mut Quiet).unwrap();
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    assert_eq!(std::fs::metadata(&caches[0]).unwrap().modified().unwrap(), built, "reused, not rewritten");
}

/// Every loss trains a few steps without NaN; WGAN's critic stays inside the clipping box.
#[test]
fn every_loss_trains_and_wgan_clips() {
    let out = tempfile::tempdir().unwrap();
    for loss in ["ns", "hinge", "lsgan", "ragan", "ralsgan", "wgan"] {
        let l = format!("train.loss=\"{loss}\"");
        let mut extra = vec![l.as_str()];
        if loss == "wgan" {
            extra.extend(["train.clip=0.01", "train.n_critic=2", "train.optimizer=rmsprop", "train.lr_d=5e-5", "train.lr_g=5e-5"]);
        }
        let run = train(tiny(&extra), opts(out.path(), None), &mut Quiet).unwrap_or_else(|e| panic!("{loss}: {e}")).path;
        let m = metrics(&run);
        assert!(m.iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()), "{loss}: {m:?}");
        if loss == "wgan" {
            // Clipped weights; batch-norm running statistics are buffers, not weights.
            let d = final_weights(&run, "d.safetensors");
            let weights: Vec<&(String, Vec<f32>)> = d.iter().filter(|(k, _)| !k.contains("running")).collect();
            assert!(!weights.is_empty());
            assert!(weights.iter().all(|(_, v)| v.iter().all(|x| x.abs() <= 0.01 + 1e-7)), "clipped to 0.01");
            assert!(d.iter().any(|(k, v)| k.contains("running_var") && v.iter().any(|&x| x > 0.05)), "statistics are not clipped");
            let state = std::fs::read_to_string(run.join("checkpoints/step_000004/state.json")).unwrap();
            assert!(state.contains("\"adam_d_steps\": 8"), "two critic updates per step: {state}");
            // RMSProp keeps only second moments.
            assert!(final_weights(&run, "optim_d.safetensors").iter().all(|(k, _)| k.starts_with("v.")));
        }
    }
}

/// n_critic, unrolling, a linear schedule and G's moving average resume exactly, and the schedule and
/// the average do what they say.
#[test]
fn critic_steps_schedule_and_ema_resume_exactly() {
    let out = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    make_tiny_idx(idx.path());
    let spec = format!("data.spec=idx:{}", idx.path().display());
    let common = [
        "train.n_critic=2",
        "train.unroll=2",
        "train.lr_schedule=linear",
        "train.g_ema=0.9",
        "train.g_ema_start=2",
        "train.lr_d=1e-3",
        &spec,
    ];
    let cfg = || tiny(&[&common[..], &["train.steps=6"]].concat());
    let whole = train(cfg(), opts(out.path(), None), &mut Quiet).unwrap().path;
    // The same run stopped after its first step (as by Ctrl-C), then resumed: the schedule is
    // relative to the configured end, so the stopped run must have the same end.
    let mut stopped = opts(out.path(), None);
    stopped.stop = Arc::new(AtomicBool::new(true));
    let part = train(cfg(), stopped, &mut Quiet).unwrap().path;
    assert_eq!(metrics(&part).last().unwrap().step, 1);
    train(cfg(), opts(out.path(), Some(part.clone())), &mut Quiet).unwrap();
    assert_same_files(&whole, &part, &["g.safetensors", "d.safetensors", "g_ema.safetensors", "optim_d.safetensors"]);
    let m = metrics(&whole);
    // 20 images at batch 8 are 2 batches an epoch; each step takes 2: one epoch per step.
    assert_eq!(m.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    // Linear decay: step k (1-based) ran at lr * (1 - (k - 1) / 6).
    for r in &m {
        let want = 1e-3 * (1.0 - (r.step - 1) as f64 / 6.0);
        assert!((r.lr_d - want).abs() < 1e-12, "step {}: {} vs {want}", r.step, r.lr_d);
    }
    // The average differs from G once averaging starts, and `sample` uses it.
    assert_ne!(final_weights(&whole, "g_ema.safetensors"), final_weights(&whole, "g.safetensors"));
    let s = Sampler::load(&whole, None, &Device::flex()).unwrap();
    assert!(s.checkpoint.ends_with("g_ema.safetensors"), "{:?}", s.checkpoint);
    let raw = Sampler::load(&whole, Some(&s.checkpoint.with_file_name("g.safetensors")), &Device::flex()).unwrap();
    assert_ne!(raw.generate(&s.latents(2, 0), None).values, s.generate(&s.latents(2, 0), None).values);

    // Before g_ema_start the average is G itself.
    let early = train(tiny(&["train.g_ema=0.9", "train.g_ema_start=100"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    assert_eq!(final_weights(&early, "g_ema.safetensors"), final_weights(&early, "g.safetensors"));
}

#[test]
fn losses_the_setup_cannot_use_are_refused_before_training() {
    let e = GanConfig::resolve(None, None, &["train.loss=wgan".into()]).unwrap_err().to_string();
    assert!(e.contains("needs a Lipschitz constraint") && e.contains("train.clip"), "{e}");
    let e = GanConfig::resolve(None, None, &["train.loss=hinge".into(), "tricks.soft_labels=true".into()]).unwrap_err().to_string();
    assert!(e.contains("only train.loss = \"ns\" or \"lsgan\""), "{e}");
    let e = GanConfig::resolve(None, None, &["train.loss=wasserstein".into()]).unwrap_err().to_string();
    assert!(e.contains("wasserstein"), "{e}");
    let e = GanConfig::resolve(None, None, &["train.g_ema=1.0".into()]).unwrap_err().to_string();
    assert!(e.contains("train.g_ema"), "{e}");
    let w = GanConfig::resolve(Some("wgan"), None, &[]).unwrap();
    assert_eq!((w.train.n_critic, w.train.clip, w.train.lr_d), (5, 0.01, 5e-5));
}

/// Spectral norm in D and G: the power-iteration vectors are saved, move during training, and
/// a resumed run continues them exactly.
#[test]
fn spectral_norm_saves_its_vectors_and_resumes_exactly() {
    let out = tempfile::tempdir().unwrap();
    let sets =
        ["dcgan.spectral_norm_d=true", "dcgan.spectral_norm_g=true", "dcgan.batch_norm_d=false", "train.loss=hinge", "train.steps=4"];
    let whole = train(tiny(&sets), opts(out.path(), None), &mut Quiet).unwrap().path;
    assert!(metrics(&whole).iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()));
    let d = final_weights(&whole, "d.safetensors");
    let us: Vec<&(String, Vec<f32>)> = d.iter().filter(|(k, _)| k.ends_with("sn.u")).collect();
    assert_eq!(us.len(), 3, "from_image, one block and the head at 16x16: {:?}", d.iter().map(|(k, _)| k).collect::<Vec<_>>());
    for (k, u) in &us {
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{k}: |u| = {norm}");
    }
    assert!(!d.iter().any(|(k, _)| k.contains("bn")), "no batch norm in D");
    assert!(final_weights(&whole, "g.safetensors").iter().any(|(k, _)| k.ends_with("sn.u")));

    let mut stopped = opts(out.path(), None);
    stopped.stop = Arc::new(AtomicBool::new(true));
    let part = train(tiny(&sets), stopped, &mut Quiet).unwrap().path;
    let first_u = final_weights(&part, "d.safetensors");
    train(tiny(&sets), opts(out.path(), Some(part.clone())), &mut Quiet).unwrap();
    assert_ne!(final_weights(&part, "d.safetensors"), first_u, "u and weights moved after step 1");
    assert_same_files(&whole, &part, &["g.safetensors", "d.safetensors"]);
}

/// A conditional GAN on MNIST's labels, with either way for D to see the label: it trains,
/// its samples depend on the class asked for, and bad classes or unlabelled data are refused.
#[test]
#[ignore = "needs ../shared/data (the workplace's CIFAR-10 JPEGs / Quick, Draw! sheep): run with --include-ignored"]
fn conditional_gan_trains_and_samples_by_class() {
    let out = tempfile::tempdir().unwrap();
    for d_cond in ["concat", "projection"] {
        let dc = format!("model.d_cond={d_cond}");
        let run = train(tiny(&["model.classes=10", "model.label_dim=8", &dc]), opts(out.path(), None), &mut Quiet).unwrap().path;
        assert!(metrics(&run).iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()), "{d_cond}");
        let names = if d_cond == "concat" { ["label_embed.weight", "label_fc.weight"] } else { ["label_proj.weight", "label_proj.weight"] };
        let d = final_weights(&run, "d.safetensors");
        assert!(names.iter().all(|n| d.iter().any(|(k, _)| k == n)), "{d_cond}: {:?}", d.iter().map(|(k, _)| k).collect::<Vec<_>>());

        let s = Sampler::load(&run, None, &Device::flex()).unwrap();
        let z = s.latents(3, 1);
        let sevens = s.generate(&z, Some(&[7, 7, 7]));
        let twos = s.generate(&z, Some(&[2, 2, 2]));
        assert_eq!((sevens.n, sevens.channels, sevens.height), (3, 1, 16));
        assert_ne!(sevens.values, twos.values, "{d_cond}: the class reaches G");
        // Labels stay with their latents across the 256-image chunks.
        let z300 = s.latents(300, 1);
        let labels: Vec<u32> = (0..300).map(|i| (i % 10) as u32).collect();
        let many = s.generate(&z300, Some(&labels));
        let last = s.generate(&z300[299 * 100..], Some(&[9]));
        assert_eq!(many.values[299 * 256..], last.values[..]);
        let e = s.check_labels(&[3, 10]).unwrap_err().to_string();
        assert!(e.contains("class 10 is out of range") && e.contains("0 to 9"), "{e}");
    }
    // A plain run takes no class.
    let plain = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let e = Sampler::load(&plain, None, &Device::flex()).unwrap().check_labels(&[1]).unwrap_err().to_string();
    assert!(e.contains("not conditional"), "{e}");
    // Conditioning needs labelled data with that many classes, checked before training.
    let sheep = format!("data.spec=quickdraw:{}/../../../shared/data/quickdraw-sheep/sheep_raw_23.ndjson", env!("CARGO_MANIFEST_DIR"));
    let e = train(tiny(&["model.classes=10", &sheep]), opts(out.path(), None), &mut Quiet).unwrap_err().to_string();
    assert!(e.contains("the data has no labels"), "{e}");
    let e = train(tiny(&["model.classes=5"]), opts(out.path(), None), &mut Quiet).unwrap_err().to_string();
    assert!(e.contains("model.classes = 5, but the data has 10 classes"), "{e}");
    let e = GanConfig::resolve(None, None, &["model.classes=10".into(), "model.arch=fc".into()]).unwrap_err().to_string();
    assert!(e.contains("conditional GAN"), "{e}");
}

/// DiffAugment trains, changes what D sees (and so the run), and names a bad policy.
#[test]
fn diffaugment_trains_and_changes_the_run() {
    let out = tempfile::tempdir().unwrap();
    let plain = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let aug = train(tiny(&["train.diffaugment=color,translation,cutout"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let losses = |run: &Path| metrics(run).iter().map(|r| (r.loss_d, r.loss_g)).collect::<Vec<_>>();
    assert!(losses(&aug).iter().all(|(d, g)| d.is_finite() && g.is_finite()));
    assert_ne!(losses(&aug), losses(&plain));
    let e = GanConfig::resolve(None, None, &["train.diffaugment=flip".into()]).unwrap_err().to_string();
    assert!(e.contains("unknown DiffAugment policy 'flip'"), "{e}");
}

/// WGAN-GP and R1 train a few steps (exact penalties, see penalty.rs), and are refused where
/// they cannot hold.
#[test]
fn gradient_penalties_train_and_need_a_d_without_batch_norm() {
    let out = tempfile::tempdir().unwrap();
    let wgan_gp = GanConfig::resolve(Some("wgan-gp"), None, &[]).unwrap();
    assert_eq!((wgan_gp.train.gp_weight, wgan_gp.train.n_critic, wgan_gp.train.beta2), (10.0, 5, 0.9));
    for extra in [
        &["train.loss=wgan", "train.gp=wgan_gp", "train.n_critic=2", "dcgan.batch_norm_d=false"][..],
        &["train.gp=r1", "dcgan.batch_norm_d=false", "model.classes=10", "model.d_cond=projection"][..],
        &["train.gp=r1", "dcgan.batch_norm_d=false", "dcgan.spectral_norm_d=true"][..],
    ] {
        let run = train(tiny(extra), opts(out.path(), None), &mut Quiet).unwrap_or_else(|e| panic!("{extra:?}: {e}")).path;
        let m = metrics(&run);
        assert!(m.iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()), "{extra:?}: {m:?}");
    }
    let e = GanConfig::resolve(None, None, &["train.gp=r1".into()]).unwrap_err().to_string();
    assert!(e.contains("dcgan.batch_norm_d = false"), "{e}");
    let e = GanConfig::resolve(None, None, &["train.gp=wgan_gp".into(), "dcgan.batch_norm_d=false".into(), "train.gp_weight=0".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.gp_weight"), "{e}");
}

/// The StyleGAN2-style model trains with its preset's choices (lazy R1 through minibatch
/// stddev, style mixing, EMA, w_avg), samples with truncation in w space, and resumes exactly:
/// its noise and mixing come from the latents, which the run's streams fix.
#[test]
fn stylegan2_trains_samples_and_resumes() {
    let out = tempfile::tempdir().unwrap();
    let sets: Vec<String> = [
        "stylegan2.channel_base=64",
        "stylegan2.channel_max=8",
        "stylegan2.w_dim=16",
        "stylegan2.mapping_layers=2",
        "model.nz=16",
        "model.image_size=16",
        "train.batch_size=4",
        "train.steps=4",
        "train.gp_every=2",
        "train.grid_images=4",
        "train.g_ema_start=1",
        &test_cache(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = || GanConfig::resolve(Some("stylegan2"), None, &sets).unwrap();
    let whole = train(cfg(), opts(out.path(), None), &mut Quiet).unwrap().path;
    assert!(metrics(&whole).iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()));
    let g = final_weights(&whole, "g_ema.safetensors");
    let w_avg = &g.iter().find(|(k, _)| k == "mapping.w_avg").expect("w_avg is saved").1;
    assert!(w_avg.iter().any(|&v| v != 0.0), "w_avg moved in training");
    let s = Sampler::load(&whole, None, &Device::flex()).unwrap();
    let imgs = s.generate(&s.latents(2, 0), None);
    assert_eq!((imgs.n, imgs.channels, imgs.height), (2, 1, 16));

    assert_resumes_exactly(cfg, out.path(), &whole, &["g.safetensors", "d.safetensors", "g_ema.safetensors"]);
}

/// The BigGAN-style model trains a few steps with its preset's choices (hinge, 2 D steps, EMA,
/// conditioning), samples by class and under truncation, and resumes exactly.
#[test]
fn biggan_trains_samples_and_resumes() {
    let out = tempfile::tempdir().unwrap();
    let sets: Vec<String> = [
        "biggan.ch=8",
        "biggan.shared_dim=8",
        "model.image_size=16",
        "biggan.attn_res=8",
        "train.batch_size=4",
        "train.steps=3",
        "train.grid_images=4",
        "train.g_ema_start=1",
        &test_cache(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = || GanConfig::resolve(Some("biggan"), None, &sets).unwrap();
    let whole = train(cfg(), opts(out.path(), None), &mut Quiet).unwrap().path;
    assert!(metrics(&whole).iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()));
    let d = final_weights(&whole, "d.safetensors");
    assert!(d.iter().any(|(k, _)| k.contains("attention.theta")) && d.iter().any(|(k, _)| k.ends_with("sn.u")));
    let s = Sampler::load(&whole, None, &Device::flex()).unwrap();
    assert!(s.checkpoint.ends_with("g_ema.safetensors"));
    let z = s.latents_truncated(2, 0, 0.5);
    assert!(z.iter().all(|v| v.abs() <= 0.5));
    let imgs = s.generate(&z, Some(&[3, 3]));
    assert_eq!((imgs.n, imgs.channels, imgs.height), (2, 1, 16));
    assert_ne!(imgs.values, s.generate(&z, Some(&[8, 8])).values);

    assert_resumes_exactly(cfg, out.path(), &whole, &["g.safetensors", "d.safetensors", "g_ema.safetensors"]);
}

/// `eval.every`: metrics of G during training, as lines of metrics.jsonl beside the losses.
#[test]
fn evaluation_during_training_goes_into_the_metrics_log() {
    let out = tempfile::tempdir().unwrap();
    let cfg = tiny(&["eval.every=2", "eval.n=20", "eval.metrics=coverage,fid"]);
    let run = train(cfg, opts(out.path(), None), &mut Quiet).unwrap();
    let log = MetricsLog::read(&run.metrics_path()).unwrap();
    assert_eq!(log.evals.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 4]);
    for (_, e) in &log.evals {
        let hist = &e.metrics.coverage().unwrap().histogram;
        assert_eq!((hist.len(), hist.iter().sum::<usize>()), (10, 20));
        assert!(e.metrics.fid().unwrap().value > 0.0);
        assert_eq!(e.n_fake, 20);
    }
    assert_eq!(log.steps.len(), 4, "the loss records are still all there");
}

/// A run killed mid-write leaves half a line in metrics.jsonl; resuming ends that line, and the
/// log still reads (the half line is skipped).
#[test]
fn a_partial_metrics_line_survives_a_resume() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&["train.steps=2"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let mut f = std::fs::OpenOptions::new().append(true).open(run.join("metrics.jsonl")).unwrap();
    std::io::Write::write_all(&mut f, br#"{"step":3,"epoch":0,"loss_d":0.5"#).unwrap();
    drop(f);
    train(tiny(&["train.steps=4"]), opts(out.path(), Some(run.clone())), &mut Quiet).unwrap();
    let log = MetricsLog::read(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(log.steps.iter().map(|r| r.step).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
}

/// Fine-tuning's source run: 4 tiny steps keeping G's moving average, checkpoints at 2 and 4.
fn fine_tuning_source(out: &Path) -> std::path::PathBuf {
    train(tiny(&["train.g_ema=0.9", "seed=7"]), opts(out, None), &mut Quiet).unwrap().path
}

/// `cfg`'s freshly built networks, loaded from `source` as a fine-tuned run's step 0.
fn init_from(source: &Path, cfg: &GanConfig) -> Result<ganforge::train::init::Init, String> {
    let src = ganforge::train::init::InitSource::resolve(source).map_err(|e| e.to_string())?;
    let (g, d) = ganforge::nets::build(&cfg.families(), cfg.seed, &Device::flex());
    ganforge::train::init::load(&src, cfg, g, d).map_err(|e| e.to_string())
}

/// `--init-from RUN`: at step 0 the new run's G, D and G's average are the tensors of the
/// source's last checkpoint, every one of them (batch-norm statistics too).
#[test]
fn init_from_a_run_starts_from_its_last_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let source = fine_tuning_source(out.path());
    let ckpt = source.join("checkpoints/step_000004");
    let init = init_from(&source, &tiny(&["train.g_ema=0.99"])).unwrap();
    use ganforge::params::named_tensors;
    assert_eq!(named_tensors(&init.g), read_safetensors(&ckpt.join("g.safetensors")).unwrap());
    assert_eq!(named_tensors(&init.d), read_safetensors(&ckpt.join("d.safetensors")).unwrap());
    let ema = init.g_ema.expect("both runs keep an average");
    assert_eq!(named_tensors(&ema), read_safetensors(&ckpt.join("g_ema.safetensors")).unwrap());
    assert!(init.message.contains("G, D and G's moving average"), "{}", init.message);
    // A new run without an average takes none; a checkpoint folder names itself.
    let init = init_from(&source.join("checkpoints/step_000002"), &tiny(&[])).unwrap();
    assert!(init.g_ema.is_none() && init.message.contains("step_000002: G and D;"), "{}", init.message);
}

/// A generator file holds G alone: G is the file's, D the new run's random one, and the
/// message says so.
#[test]
fn init_from_a_generator_file_takes_g_and_leaves_d_fresh() {
    let out = tempfile::tempdir().unwrap();
    let source = fine_tuning_source(out.path());
    let file = source.join("checkpoints/step_000004/g_ema.safetensors");
    let cfg = tiny(&["seed=3"]);
    let init = init_from(&file, &cfg).unwrap();
    use ganforge::params::named_tensors;
    assert_eq!(named_tensors(&init.g), read_safetensors(&file).unwrap());
    let (_, fresh_d) = ganforge::nets::build(&cfg.families(), cfg.seed, &Device::flex());
    assert_eq!(named_tensors(&init.d), named_tensors(&fresh_d));
    assert!(init.message.contains("G only") && init.message.contains("D starts from random weights"), "{}", init.message);
}

/// Other shapes or another architecture: one line naming the tensor and both shapes, or both
/// architectures.
#[test]
fn init_from_refuses_networks_of_another_shape_or_architecture() {
    let out = tempfile::tempdir().unwrap();
    let source = fine_tuning_source(out.path());
    let e = init_from(&source, &tiny(&["dcgan.ngf=16"])).err().unwrap();
    assert!(e.contains("'blocks.0.bn.beta' has shape [8] in the file, [16] in the model") && e.contains("Fine-tuning keeps"), "{e}");
    let e = init_from(&source.join("checkpoints/step_000004/g.safetensors"), &tiny(&["model.image_size=32"])).err().unwrap();
    assert!(e.contains("has shape") && e.contains("in the file") && !e.contains('\n'), "{e}");
    let e = init_from(&source, &tiny(&["model.arch=fc"])).err().unwrap();
    assert!(e.contains(r#"its networks are model.arch = "dcgan", the new run's config builds "fc""#), "{e}");
    let e = init_from(&out.path().join("nowhere"), &tiny(&[])).err().unwrap();
    assert!(e.contains("no such file or folder"), "{e}");
}

/// End to end: a new numbered folder whose config records the checkpoint it started from,
/// trained on from the source's weights; resumed, it continues from its own checkpoints (the
/// source may be gone) exactly as one session would have.
#[test]
fn a_fine_tuned_run_is_a_new_run_that_resumes_from_its_own_checkpoints() {
    let out = tempfile::tempdir().unwrap();
    let source = fine_tuning_source(out.path());
    let copy = out.path().join("source-copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["config.toml", "checkpoints"] {
        assert!(std::process::Command::new("cp").arg("-a").arg(source.join(f)).arg(&copy).status().unwrap().success());
    }
    let cfg = |from: &Path, steps: u64| tiny(&[&format!("train.init_from={}", from.display()), &format!("train.steps={steps}")]);
    let whole = train(cfg(&source, 4), opts(out.path(), None), &mut Quiet).unwrap().path;
    assert!(whole.ends_with("00001-mnist"), "{whole:?}");
    let recorded = GanConfig::load(&whole.join("config.toml")).unwrap().train.init_from.get().unwrap();
    assert_eq!(recorded, std::fs::canonicalize(source.join("checkpoints/step_000004")).unwrap());
    assert_eq!(metrics(&whole).iter().map(|r| r.step).collect::<Vec<_>>(), vec![1, 2, 3, 4], "a new run counts from step 0");
    // Trained on: moved from the source's weights, by a few Adam steps of 2e-4 each, where
    // random weights would be ~0.02 away.
    let (src, now) = (final_weights(&source, "g.safetensors"), final_weights(&whole, "g.safetensors"));
    let moved =
        src.iter().zip(&now).filter(|(s, _)| s.0.contains("weight")).flat_map(|(s, n)| s.1.iter().zip(&n.1).map(|(a, b)| (a - b).abs()));
    let most = moved.fold(0f32, f32::max);
    assert!(most > 0.0 && most < 5e-3, "largest change of a weight: {most}");

    let part = train(cfg(&copy, 2), opts(out.path(), None), &mut Quiet).unwrap().path;
    std::fs::remove_dir_all(&copy).unwrap();
    train(cfg(&copy, 4), opts(out.path(), Some(part.clone())), &mut Quiet).unwrap();
    assert_same_files(&whole, &part, &["g.safetensors", "d.safetensors"]);
}
