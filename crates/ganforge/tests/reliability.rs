//! Bad states a run can be left in, and what ganforge does with them (the reliability issue's
//! holes): runs killed after or before a checkpoint, resumed past their end, temporaries left
//! by a full disk, NaN and runaway values in losses, weights and latents.

use std::path::Path;

use ganforge::burn::tensor::Device;
use ganforge::params::{read_safetensors, safetensors_bytes};
use ganforge::run::{MetricsLog, MetricsRecord, RunDir};
use ganforge::sample::Sampler;
use ganforge::train::{train, Quiet};

mod common;
use common::{opts, tiny};

/// The log without its timing fields, which differ between any two sessions.
fn untimed(run: &Path) -> Vec<MetricsRecord> {
    let log = MetricsLog::read(&run.join("metrics.jsonl")).unwrap();
    log.steps.into_iter().map(|r| MetricsRecord { images_per_s: 0.0, elapsed_s: 0.0, ..r }).collect()
}

fn weights(checkpoint: &Path, file: &str) -> Vec<(String, Vec<f32>)> {
    read_safetensors(&checkpoint.join(file)).unwrap().into_iter().map(|(k, v)| (k, v.values)).collect()
}

/// Killed after the checkpoint at step 2 but after logging steps 3 and 4: the resumed log is cut
/// back to step 2 (the cut lines kept aside) and equals an uninterrupted run's log.
#[test]
fn a_resumed_log_equals_an_uninterrupted_one() {
    let out = tempfile::tempdir().unwrap();
    let whole = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let killed = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    // As if killed -9 between logging step 4 and writing its checkpoint.
    std::fs::remove_dir_all(killed.join("checkpoints/step_000004")).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(killed.join("metrics.jsonl")).unwrap();
    std::io::Write::write_all(&mut f, br#"{"step":5,"epoch":0,"loss"#).unwrap();
    drop(f);
    train(tiny(&[]), opts(out.path(), Some(killed.clone())), &mut Quiet).unwrap();
    let steps: Vec<u64> = untimed(&killed).iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![1, 2, 3, 4], "no step twice, none out of order");
    assert_eq!(untimed(&killed), untimed(&whole));
    let cut = std::fs::read_to_string(killed.join("metrics.cut.jsonl")).unwrap();
    assert_eq!(cut.lines().count(), 3, "steps 3 and 4 and the partial line are kept aside:\n{cut}");
    assert!(cut.lines().nth(2).unwrap().starts_with(r#"{"step":5"#), "{cut}");
}

#[test]
fn resuming_past_the_end_says_so() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let e = train(tiny(&["train.steps=3"]), opts(out.path(), Some(run.clone())), &mut Quiet).err().unwrap().to_string();
    assert!(e.contains("is at step 4, and the run asks for 3 steps: nothing to train") && e.contains("--steps N"), "{e}");
    // Killed after its last checkpoint, before loss.png: resuming finishes it without training.
    std::fs::remove_file(run.join("loss.png")).unwrap();
    let before = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    train(tiny(&[]), opts(out.path(), Some(run.clone())), &mut Quiet).unwrap();
    assert!(run.join("loss.png").is_file());
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(), before, "no step trained again");
    // A state.json far past the end, as a hostile or damaged folder might hold.
    let ckpt = RunDir::open(&run).unwrap().latest_checkpoint().unwrap();
    let state = std::fs::read_to_string(ckpt.join("state.json")).unwrap().replace("\"step\": 4", "\"step\": 999999999");
    std::fs::write(ckpt.join("state.json"), state).unwrap();
    let e = train(tiny(&["train.steps=25"]), opts(out.path(), Some(run)), &mut Quiet).err().unwrap().to_string();
    assert!(e.contains("is at step 999999999, and the run asks for 25 steps"), "{e}");
}

/// Killed before its first checkpoint: --resume trains it from step 0 in the same folder, and
/// the result is the run an uninterrupted session makes.
#[test]
fn a_run_killed_before_its_first_checkpoint_resumes_from_its_config() {
    let out = tempfile::tempdir().unwrap();
    let whole = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let killed = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    for c in RunDir::open(&killed).unwrap().checkpoints().unwrap() {
        std::fs::remove_dir_all(c).unwrap();
    }
    let resumed = train(tiny(&[]), opts(out.path(), Some(killed.clone())), &mut Quiet).unwrap().path;
    assert_eq!(resumed, killed, "in place");
    let last = |run: &Path| RunDir::open(run).unwrap().latest_checkpoint().unwrap();
    for file in ["g.safetensors", "d.safetensors", "optim_g.safetensors"] {
        assert_eq!(weights(&last(&whole), file), weights(&last(&killed), file), "{file}");
    }
    assert_eq!(untimed(&killed), untimed(&whole));
}

/// A full disk leaves temporaries; the next --resume removes them before anything else.
#[test]
fn stale_temporaries_are_removed_on_resume() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&["train.steps=2"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let half = run.join("checkpoints/.tmp-step_000004-4242");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("g.safetensors"), vec![0u8; 1000]).unwrap();
    std::fs::write(run.join(".config.toml.tmp-4242"), "half").unwrap();
    train(tiny(&[]), opts(out.path(), Some(run.clone())), &mut Quiet).unwrap();
    assert!(!half.exists() && !run.join(".config.toml.tmp-4242").exists());
    let names: Vec<String> =
        std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.starts_with("step_")), "{names:?}");
}

/// Learning rates of 1e6 throw the losses past 1e6 while they are still finite: that is
/// divergence, said in the error and in metrics.jsonl, and nothing of it is saved.
#[test]
fn runaway_finite_losses_are_divergence() {
    let out = tempfile::tempdir().unwrap();
    let e = train(tiny(&["train.lr_d=1e6", "train.lr_g=1e6", "train.steps=50"]), opts(out.path(), None), &mut Quiet).err().unwrap();
    let msg = e.to_string();
    assert!(msg.contains("training diverged at step") && msg.contains("larger than 1e6"), "{msg}");
    let run = out.path().join("00000-mnist");
    let log = MetricsLog::read(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(log.findings.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(), ["divergence"]);
    let saved = RunDir::open(&run).unwrap().checkpoints().unwrap();
    for c in &saved {
        for (name, v) in weights(c, "d.safetensors") {
            assert!(v.iter().all(|x| x.is_finite() && x.abs() <= 1e8), "{} {name}", c.display());
        }
    }
}

/// A checkpoint whose G holds a NaN: sampling refuses it by name, and it is not the "last good"
/// checkpoint a diverged run points back to.
#[test]
fn non_finite_weights_are_refused_by_name() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&[]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let dir = RunDir::open(&run).unwrap();
    let newest = dir.latest_checkpoint().unwrap();
    let mut g = read_safetensors(&newest.join("g.safetensors")).unwrap();
    let (name, t) = g.iter_mut().next().unwrap();
    let name = name.clone();
    t.values[0] = f32::NAN;
    std::fs::write(newest.join("g.safetensors"), safetensors_bytes(&g)).unwrap();
    let e = Sampler::load(&run, Some(&newest.join("g.safetensors")), &Device::flex()).err().unwrap().to_string();
    assert!(e.contains(&format!("tensor '{name}' holds a NaN or infinity")), "{e}");
    assert_eq!(dir.last_good_checkpoint(1e8), Some(dir.checkpoints().unwrap()[0].clone()));
    assert!(dir.checkpoints().unwrap()[0].ends_with("step_000002"));
    let e = train(tiny(&["train.steps=6"]), opts(out.path(), Some(run)), &mut Quiet).err().unwrap().to_string();
    assert!(e.contains(&name) && e.contains("NaN"), "resuming from it is refused too: {e}");
}

#[test]
fn non_finite_latents_are_refused() {
    let out = tempfile::tempdir().unwrap();
    let run = train(tiny(&["train.steps=2"]), opts(out.path(), None), &mut Quiet).unwrap().path;
    let s = Sampler::load(&run, None, &Device::flex()).unwrap();
    let nz = s.cfg.model.nz;
    let mut z = vec![0.5; 3 * nz];
    assert_eq!(s.check_latents(&[3, nz], &z).unwrap(), 3);
    z[nz + 7] = f32::INFINITY;
    let e = s.check_latents(&[3, nz], &z).unwrap_err().to_string();
    assert!(e.contains("latent row 1 holds inf"), "{e}");
    z[nz + 7] = f32::NAN;
    assert!(s.check_latents(&[3, nz, 1, 1], &z).is_err());
}

/// A PyTorch state dict with a NaN weight is refused when read, naming the tensor.
#[test]
fn a_pth_with_nan_weights_is_refused() {
    use ganforge::pth::{self, PthTensor};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("netG.pth");
    let t = |v: Vec<f32>| PthTensor::Float(ganforge::params::HostTensor { shape: vec![v.len()], values: v });
    pth::write(&p, &[("main.0.weight".to_string(), t(vec![0.1, 0.2])), ("main.1.weight".to_string(), t(vec![1.0, f32::NAN]))]).unwrap();
    let e = pth::read(&p).unwrap_err().to_string();
    assert!(e.contains("tensor 'main.1.weight' holds a NaN or infinity"), "{e}");
}

/// An image whose header reads but whose body is cut short passes the check at open; with the
/// cache off it fails at every visit during training. Each failure is said (a warning line and
/// the count in metrics.jsonl), not silently papered over.
#[test]
fn decode_failures_during_training_are_reported() {
    struct Messages(Vec<String>);
    impl ganforge::train::Observer for Messages {
        fn message(&mut self, msg: &str) {
            self.0.push(msg.to_string());
        }
    }
    let data = tempfile::tempdir().unwrap();
    let mut png = Vec::new();
    for i in 0..20u8 {
        let img = image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x as u8 * 16) ^ (y as u8 * 8) ^ (i * 12)]));
        png.clear();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        std::fs::write(data.path().join(format!("{i:02}.png")), &png).unwrap();
    }
    // The header and part of the image data of the last one: its size reads, its pixels do not.
    std::fs::write(data.path().join("cut.png"), &png[..png.len() / 2]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let spec = format!("data.spec=folder:{}", data.path().display());
    let mut obs = Messages(Vec::new());
    let run = train(tiny(&[&spec, "data.cache=false", "train.steps=6"]), opts(out.path(), None), &mut obs).unwrap().path;
    let warning = obs.0.iter().find(|m| m.contains("failed to decode")).unwrap_or_else(|| panic!("no warning in {:?}", obs.0));
    assert!(warning.contains("cut.png"), "{warning}");
    let log = MetricsLog::read(&run.join("metrics.jsonl")).unwrap();
    let last = log.steps.last().unwrap().decode_failures;
    assert!(last >= 1, "the count is in metrics.jsonl: {last}");
}

/// A width of a million would ask for 128 TB at the first allocation and abort the process:
/// the config is refused before anything is built, saying what fits.
#[test]
fn a_run_that_cannot_fit_is_refused_before_allocating() {
    let out = tempfile::tempdir().unwrap();
    for set in ["dcgan.ndf=1000000", "dcgan.ngf=1000000"] {
        let e = train(tiny(&[set]), opts(out.path(), None), &mut Quiet).err().unwrap().to_string();
        assert!(e.contains("TiB of memory") && e.contains("lower dcgan.ngf and dcgan.ndf"), "{set}: {e}");
    }
    assert!(std::fs::read_dir(out.path()).map_or(true, |mut d| d.next().is_none()), "no run folder for a run that cannot start");
}
