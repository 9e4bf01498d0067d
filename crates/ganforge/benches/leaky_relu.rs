//! Forward + backward time of LeakyReLU(0.2) written four ways on the CPU backend, to choose
//! the composition D uses (element-wise work is where flex trails PyTorch the most).
//!   cargo bench -p ganforge --bench leaky_relu

use std::time::Instant;

#[global_allocator]
static GLOBAL: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;

use ganforge::burn::tensor::activation::{leaky_relu, relu};
use ganforge::burn::tensor::{Device, Distribution, Tensor};

fn time(name: &str, f: impl Fn(Tensor<4>) -> Tensor<4>, x: &Tensor<4>) {
    let mut times = Vec::new();
    for i in 0..23 {
        let xi = x.clone().detach().require_grad();
        let t0 = Instant::now();
        let y = f(xi.clone());
        let g = y.sum().backward();
        let gx = xi.grad(&g).unwrap();
        let _ = gx.into_data();
        if i >= 3 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{name:32} median {:.2} ms", times[times.len() / 2] * 1e3);
}

fn main() {
    ganforge::alloc::keep_freed_memory();
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random([64, 64, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    // Same values from every variant.
    let probe = Tensor::<1>::from_floats([-2.0, -0.5, 0.0, 1.5], &device).reshape([1, 1, 1, 4]);
    let reference = leaky_relu(probe.clone(), 0.2).into_data();
    let variants: Vec<(&str, Box<dyn Fn(Tensor<4>) -> Tensor<4>>)> = vec![
        ("activation::leaky_relu", Box::new(|x| leaky_relu(x, 0.2))),
        ("max(x, 0.2x)", Box::new(|x: Tensor<4>| x.clone().max_pair(x.mul_scalar(0.2)))),
        ("0.8 relu(x) + 0.2x", Box::new(|x: Tensor<4>| relu(x.clone()).mul_scalar(0.8) + x.mul_scalar(0.2))),
        ("0.6x + 0.4|x|", Box::new(|x: Tensor<4>| x.clone().mul_scalar(0.6) + x.abs().mul_scalar(0.4))),
    ];
    for (name, f) in &variants {
        let got = f(probe.clone()).into_data();
        got.assert_approx_eq::<f32>(&reference, ganforge::burn::tensor::Tolerance::absolute(1e-6));
        time(name, f, &x);
    }
}
