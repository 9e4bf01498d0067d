//! Times full DCGAN training steps (D update + G update), for side-by-side comparison with
//! bench/pytorch_dcgan_step.py (same model, same step). Run through bench/compare.py, or:
//!   cargo bench -p ganforge --bench train_step -- dcgan64 --steps 20 [--device cpu]
//! Prints one JSON line: median and mean step seconds and peak resident memory (MiB).
//! With `--sample` it times sampling instead (G in inference mode, images to the host), as
//! `pytorch_dcgan_step.py --sample` does, and reports images per second.
//!
//! Data-parallel (feature `mpi`): `mpirun -np 2 -x RAYON_NUM_THREADS=1 target/release/deps/train_step-* dcgan64`
//! splits --batch over the ranks, averages the gradients as training does, and also times a
//! bare all-reduce of both networks' gradients (one per network, as a step makes them).

use std::time::Instant;

mod common;
use common::{arg, config_name, dcgan_shape};

#[global_allocator]
static GLOBAL: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;

use ganforge::burn::tensor::{Tensor, TensorData};
use std::sync::Arc;

use ganforge::config::{GanConfig, TricksConfig};
use ganforge::device::parse_device;
use ganforge::dist::Group;
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


fn main() {
    ganforge::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let config = config_name(&args, "small32");
    let (s, c, width) = dcgan_shape(&config);
    let steps: usize = arg(&args, "--steps", 20);
    let warmup: usize = arg(&args, "--warmup", 3);
    let batch: usize = arg(&args, "--batch", 64);
    let device = parse_device(&arg(&args, "--device", "cpu".to_string())).expect("device");
    let sampling = args.iter().any(|a| a == "--sample");
    let sets = vec![
        format!("model.image_size={s}"),
        format!("model.channels={c}"),
        format!("dcgan.ngf={width}"),
        format!("dcgan.ndf={width}"),
        // Sampling's batch is not a training batch (batch norm would refuse 1).
        format!("train.batch_size={}", if sampling { 64 } else { batch }),
    ];
    let cfg = GanConfig::resolve(Some("mnist64"), None, &sets).expect("config");
    if sampling {
        return sample(&cfg, &config, &device, batch, warmup, steps);
    }
    let ad = device.clone().autodiff();
    let (g, d) = nets::build(&cfg.families(), 0, &ad);
    let group = ranks();
    let count = |shapes: Vec<(String, Vec<usize>)>| shapes.iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>();
    let (params_g, params_d) = (count(ganforge::params::trainable_shapes(&g)), count(ganforge::params::trainable_shapes(&d)));
    let adam = || Optimizer::adam(2e-4, 0.5, 0.999, 1e-8).averaged_over(group.clone());
    let mut gan = Gan { g, d, opt_g: adam(), opt_d: adam() };
    // Each rank steps on its share of the batch.
    let batch = batch / group.size();
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
    let (median, mean) = median_mean(times);
    if group.size() > 1 {
        // What a step adds: an all-reduce of D's gradients and one of G's.
        let reduce: Vec<f64> = (0..warmup + steps)
            .map(|_| {
                let t0 = Instant::now();
                for n in [params_d, params_g] {
                    group.sum(&mut vec![1.0f32; n]);
                }
                t0.elapsed().as_secs_f64()
            })
            .skip(warmup)
            .collect();
        let (reduce_s, _) = median_mean(reduce);
        if group.is_root() {
            println!(
                "{{\"impl\": \"ganforge\", \"config\": \"{config}\", \"ranks\": {}, \"batch_per_rank\": {batch}, \"params_g\": {params_g}, \"params_d\": {params_d}, \"gradient_bytes_per_step\": {}, \"allreduce_s\": {reduce_s}, \"median_s\": {median}, \"mean_s\": {mean}}}",
                group.size(),
                4 * (params_g + params_d)
            );
        }
        return;
    }
    println!(
        "{{\"impl\": \"ganforge\", \"config\": \"{config}\", \"batch\": {batch}, \"device\": \"{:?}\", \"median_s\": {median}, \"mean_s\": {mean}, \"peak_rss_mib\": {}}}",
        device,
        peak_rss_mib()
    );
}

/// Images per second of G's forward pass at `batch`, as `ganforge sample` runs it (inference
/// mode, images brought to the host).
fn sample(cfg: &GanConfig, config: &str, device: &ganforge::burn::tensor::Device, batch: usize, warmup: usize, steps: usize) {
    let (g, _) = nets::build(&cfg.families(), 0, device);
    let mut rng = GanRng::new(0, Stream::FixedNoise);
    let times: Vec<f64> = (0..warmup + steps)
        .map(|_| {
            let z = rng.normal_vec(batch * cfg.model.nz, 0.0, 1.0);
            let t0 = Instant::now();
            let images = ganforge::sample::generate(&g, &z, None, cfg.model.nz, device);
            assert_eq!(images.n, batch);
            t0.elapsed().as_secs_f64()
        })
        .skip(warmup)
        .collect();
    let (median, _) = median_mean(times);
    println!(
        "{{\"impl\": \"ganforge\", \"config\": \"{config}\", \"mode\": \"sample\", \"batch\": {batch}, \"device\": \"{device:?}\", \"median_s\": {median}, \"images_per_s\": {}}}",
        batch as f64 / median
    );
}

fn median_mean(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = if times.len() % 2 == 1 { times[times.len() / 2] } else { (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0 };
    (median, times.iter().sum::<f64>() / times.len() as f64)
}

/// The MPI job's ranks when started by mpirun (feature `mpi`), else this process alone.
fn ranks() -> Arc<dyn Group> {
    #[cfg(feature = "mpi")]
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() || std::env::var_os("PMI_SIZE").is_some() {
        return Arc::new(ganforge::dist::mpi::MpiGroup::init().expect("MPI"));
    }
    ganforge::dist::solo()
}
