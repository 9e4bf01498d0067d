//! The 2-D mode-collapse test bed (toy2d.rs): plain GAN vs unrolled GAN vs WGAN on 8 Gaussians
//! on a ring and 25 on a grid, several seeds each, with PacGAN's coverage metric. Prints a
//! markdown table and JSON lines, and writes a scatter plot per run to `--pictures DIR`.
//!
//!     cargo bench -p ganforge --bench mode_collapse -- --steps 3000 --seeds 3 --pictures docs/toy2d

use ganforge::burn::tensor::Device;
use ganforge::loss::LossKind;
use ganforge::optim::OptimizerKind;
use ganforge::toy2d::{run, scatter, Mixture, ToyConfig};

#[global_allocator]
static GLOBAL: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() {
    ganforge::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = arg(&args, "--steps").and_then(|v| v.parse().ok()).unwrap_or(3000);
    let seeds: u64 = arg(&args, "--seeds").and_then(|v| v.parse().ok()).unwrap_or(3);
    let pictures = arg(&args, "--pictures").map(std::path::PathBuf::from);
    // Learning rate of the Adam-trained methods (WGAN keeps its paper's 5e-5).
    let lr: f64 = arg(&args, "--lr").and_then(|v| v.parse().ok()).unwrap_or(1e-4);
    let only: Option<String> = arg(&args, "--only");
    if let Some(p) = &pictures {
        std::fs::create_dir_all(p).expect("pictures folder");
    }
    let methods: [(&str, ToyConfig); 3] = [
        ("GAN (ns)", ToyConfig::new().with_lr(lr)),
        ("unrolled, k = 5", ToyConfig::new().with_unroll(5).with_lr(lr)),
        (
            "WGAN (clip 0.01, n_critic 5, RMSProp 5e-5)",
            ToyConfig::new()
                .with_loss(LossKind::Wgan)
                .with_clip(0.01)
                .with_n_critic(5)
                .with_optimizer(OptimizerKind::Rmsprop)
                .with_lr(5e-5),
        ),
    ];
    println!("| mixture | method | seed | modes covered | high quality | seconds |");
    println!("|---|---|---:|---:|---:|---:|");
    for mixture in [Mixture::Ring8, Mixture::Grid25] {
        for (name, base) in methods.iter().filter(|(n, _)| only.as_ref().is_none_or(|o| n.to_lowercase().starts_with(o.as_str()))) {
            for seed in 0..seeds {
                let cfg = base.clone().with_mixture(mixture).with_steps(steps).with_seed(seed);
                let r = run(&cfg, &Device::flex());
                println!(
                    "| {mixture:?} | {name} | {seed} | {}/{} | {:.1}% | {:.0} |",
                    r.modes_covered,
                    r.modes,
                    100.0 * r.high_quality,
                    r.seconds
                );
                eprintln!(
                    "{{\"mixture\": \"{mixture:?}\", \"method\": \"{name}\", \"seed\": {seed}, \"steps\": {steps}, \"modes_covered\": {}, \"modes\": {}, \"high_quality\": {:.4}}}",
                    r.modes_covered, r.modes, r.high_quality
                );
                if let Some(dir) = &pictures {
                    let tag = name.split(' ').next().unwrap_or("run").trim_end_matches(',').to_lowercase();
                    let p = dir.join(format!("{mixture:?}-{tag}-seed{seed}.png").to_lowercase());
                    scatter(mixture, &r.samples, 256).save(p).expect("write picture");
                }
            }
        }
    }
}
