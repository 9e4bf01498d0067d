//! Times full DCGAN training steps (D update + G update), for side-by-side comparison with
//! bench/pytorch_dcgan_step.py (same model, same step). Run through bench/compare.py, or:
//!   cargo bench -p ganforge --bench train_step -- dcgan64 --steps 20 [--device cpu]
//! Prints one JSON line: median and mean step seconds and peak resident memory (MiB).

use std::time::Instant;

#[global_allocator]
static GLOBAL: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;

use ganforge::burn::tensor::{Tensor, TensorData};
use ganforge::config::{GanConfig, TricksConfig};
use ganforge::device::parse_device;
use ganforge::nets;
use ganforge::optim::Optimizer;
use ganforge::rng::{GanRng, Stream};
use ganforge::train::step::{train_step, Gan, RealBatch, StepNoise, StepRules};

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    ganforge::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let config =
        args.iter().skip(1).find(|a| !a.starts_with("--") && !a.parse::<f64>().is_ok()).cloned().unwrap_or_else(|| "small32".into());
    let (s, c, width) = match config.as_str() {
        "dcgan64" => (64, 3, 64),
        "small32" => (32, 1, 32),
        other => panic!("unknown bench config {other}: use dcgan64 or small32"),
    };
    let steps: usize = arg(&args, "--steps", 20);
    let warmup: usize = arg(&args, "--warmup", 3);
    let batch: usize = arg(&args, "--batch", 64);
    let device = parse_device(&arg(&args, "--device", "cpu".to_string())).expect("device");
    let sets = vec![
        format!("model.image_size={s}"),
        format!("model.channels={c}"),
        format!("dcgan.ngf={width}"),
        format!("dcgan.ndf={width}"),
        format!("train.batch_size={batch}"),
    ];
    let cfg = GanConfig::resolve(Some("mnist64"), None, &sets).expect("config");
    let ad = device.clone().autodiff();
    let (g, d) = nets::build(&cfg.families(), 0, &ad);
    let mut gan = Gan { g, d, opt_g: Optimizer::adam(2e-4, 0.5, 0.999, 1e-8), opt_d: Optimizer::adam(2e-4, 0.5, 0.999, 1e-8) };
    let mut rng = GanRng::new(0, Stream::Train);
    let pixels = c * s * s;
    let real_host = rng.uniform_vec(batch * pixels, -1.0, 1.0);
    let tricks = TricksConfig::new();
    let mut times = Vec::new();
    for i in 0..warmup + steps {
        let real = Tensor::<4>::from_data(TensorData::new(real_host.clone(), [batch, c, s, s]), &ad);
        let noise = StepNoise::draw(&mut rng, batch, cfg.model.nz, pixels, &tricks, 0.0, 0);
        let t0 = Instant::now();
        let (next, stats) =
            train_step(gan, vec![RealBatch { images: real, labels: None }], std::slice::from_ref(&noise), StepRules::default(), &ad);
        gan = next;
        let dt = t0.elapsed().as_secs_f64();
        assert!(stats.is_finite());
        if i >= warmup {
            times.push(dt);
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = if times.len() % 2 == 1 { times[times.len() / 2] } else { (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0 };
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{{\"impl\": \"ganforge\", \"config\": \"{config}\", \"batch\": {batch}, \"device\": \"{:?}\", \"median_s\": {median}, \"mean_s\": {mean}, \"peak_rss_mib\": {}}}",
        device,
        peak_rss_mib()
    );
}
