//! A GPU backend against the CPU one: one DCGAN training step from the same weights, noise and
//! batch on `vulkan` and on the CPU, compared under `device::tolerance`.
//!
//! Compiled in every CI run (`.ci/run` checks the workspace's tests with the vulkan feature), so
//! the GPU path cannot rot; run where a GPU is:
//!   cargo test -p ganforge --features vulkan --test gpu -- --ignored
//! (Debian's lavapipe, a CPU Vulkan driver, crashes compiling burn's transposed-convolution
//! kernels, so it cannot stand in for a GPU.)
#![cfg(feature = "vulkan")]

use ganforge::burn::tensor::{Device, Tensor, TensorData};
use ganforge::config::{GanConfig, TricksConfig};
use ganforge::device::{matches_cpu, parse_device, tolerance};
use ganforge::nets;
use ganforge::optim::Optimizer;
use ganforge::params::{map_named, named_tensors};
use ganforge::rng::{GanRng, Stream};
use ganforge::train::step::{train_step, Gan, RealBatch, StepNoise, StepRules, StepStats};

/// One step of a 32x32 DCGAN on `device` from the seed-0 weights (copied from the CPU's, so
/// both start equal whatever the backend's own initializer does).
fn one_step(device: &Device, cfg: &GanConfig) -> (Gan, StepStats) {
    let ad = device.clone().autodiff();
    let (g0, d0) = nets::build(&cfg.families(), 0, &Device::flex().autodiff());
    let (gw, dw) = (named_tensors(&g0), named_tensors(&d0));
    let (g, d) = nets::build(&cfg.families(), 0, &ad);
    let (g, d) = (map_named(g, |n, _| gw.get(n).cloned()), map_named(d, |n, _| dw.get(n).cloned()));
    let adam = || Optimizer::adam(2e-4, 0.5, 0.999, 1e-8);
    let gan = Gan { g, d, opt_g: adam(), opt_d: adam() };
    let (b, s) = (8, cfg.model.image_size);
    let mut rng = GanRng::new(0, Stream::Train);
    let real = Tensor::<4>::from_data(TensorData::new(rng.uniform_vec(b * s * s, -1.0, 1.0), [b, 1, s, s]), &ad);
    let noise = StepNoise::draw(&mut rng, b, cfg.model.nz, s * s, &TricksConfig::new(), 0.0, 0);
    train_step(gan, vec![RealBatch { images: real, labels: None }], std::slice::from_ref(&noise), StepRules::default(), &ad)
}

#[test]
#[ignore = "needs a GPU with a Vulkan driver"]
fn vulkan_training_step_matches_the_cpu() {
    let cfg = GanConfig::resolve(None, None, &["model.image_size=32".into(), "dcgan.ngf=16".into(), "dcgan.ndf=16".into()]).unwrap();
    let gpu = parse_device("vulkan").unwrap();
    assert!(tolerance(&gpu).is_some());
    let (cpu_gan, cpu_stats) = one_step(&Device::flex(), &cfg);
    let (gpu_gan, gpu_stats) = one_step(&gpu, &cfg);
    let stats = |s: StepStats| [s.loss_d, s.loss_g, s.d_real, s.d_fake];
    assert!(matches_cpu(&gpu, &stats(gpu_stats), &stats(cpu_stats)), "{gpu_stats:?} vs the CPU's {cpu_stats:?}");
    // Adam's first step moves each weight by about lr in the gradient's sign, and a gradient
    // near zero may change sign between backends: weights agree to 2 lr.
    for (net, got, want) in [("G", named_tensors(&gpu_gan.g), named_tensors(&cpu_gan.g)), ("D", named_tensors(&gpu_gan.d), named_tensors(&cpu_gan.d))] {
        for (name, w) in &want {
            let worst = got[name].values.iter().zip(&w.values).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 2.0 * 2e-4 + 1e-5, "{net}'s {name}: {worst} from the CPU's");
        }
    }
}
