//! Times each convolution of a DCGAN step on its own, for side-by-side comparison with
//! bench/pytorch_conv_ops.py: which of the step's operations make ganforge slower than PyTorch.
//! Run through `python3 bench/compare.py --ops`, or:
//!   cargo bench -p ganforge --bench conv_ops -- dcgan64 --batch 64 --steps 10
//!
//! For every layer of G (transposed convolutions) and D (convolutions) it times three things,
//! the same way PyTorch's side does:
//! - `fwd`: the forward pass alone, outside autodiff (as sampling runs it);
//! - `fwd_dx`: forward + backward with only the input tracked (the input gradient, which burn
//!   computes as the transposed operation);
//! - `fwd_dw`: forward + backward with only the weight tracked (the weight gradient, which burn
//!   computes as another convolution with the output gradient as its kernel).
//!
//! The backward passes start from `sum(y * g)` with a fixed random `g`, on both sides. Each
//! figure is the fastest of `--steps` runs (see `time`).
//!
//! The three figures are ganforge's path (`ops::conv2d` / `ops::conv_transpose2d`: its own
//! kernels, or burn's ops under `GANFORGE_CPU_KERNELS=0`); `burn_fwd_s`, `burn_fwd_dx_s` and
//! `burn_fwd_dw_s` time burn-flex's own op on the same inputs. For D's layers it also times the
//! forward's product alone on random operands, `[b*ho*wo, ci*16] x [ci*16, co]`, on the `gemm`
//! crate (`product_crate_s`) and on ganforge's kernel for this CPU (`product_own_s`).
//! Prints one JSON line per layer, then one with all of them.

use std::time::Instant;

mod common;
use common::{arg, config_name, dcgan_shape};

#[global_allocator]
static GLOBAL: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;

use ganforge::burn::tensor::module::{conv2d, conv_transpose2d};
use ganforge::burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use ganforge::burn::tensor::{Device, Tensor, TensorData};
use ganforge::kernels::conv::Product;
use ganforge::kernels::gemm::{crate_gemm, isa, sgemm, MatRef};
use ganforge::ops;
use ganforge::rng::{GanRng, Stream};

/// One layer of the benchmarked DCGAN: kernel 4, no bias (as `nets::dcgan` builds them).
struct Layer {
    name: String,
    transposed: bool,
    c_in: usize,
    c_out: usize,
    /// Input height and width.
    size: usize,
    stride: usize,
    pad: usize,
}

impl Layer {
    fn weight_shape(&self) -> [usize; 4] {
        // burn and PyTorch store a transposed convolution's weight as [in, out, k, k].
        if self.transposed {
            [self.c_in, self.c_out, 4, 4]
        } else {
            [self.c_out, self.c_in, 4, 4]
        }
    }

    /// The layer on ganforge's op (`own`) or burn-flex's.
    fn run(&self, x: Tensor<4>, w: Tensor<4>, own: bool) -> Tensor<4> {
        let (s, p) = ([self.stride; 2], [self.pad; 2]);
        match (self.transposed, own) {
            (true, true) => ops::conv_transpose2d(x, w, None, ConvTransposeOptions::new(s, p, [0, 0], [1, 1], 1)),
            (true, false) => conv_transpose2d(x, w, None, ConvTransposeOptions::new(s, p, [0, 0], [1, 1], 1)),
            (false, true) => ops::conv2d(x, w, None, ConvOptions::new(s, p, [1, 1], 1)),
            (false, false) => conv2d(x, w, None, ConvOptions::new(s, p, [1, 1], 1)),
        }
    }
}

/// The layers of the DCGAN at `image` pixels and width `width` (G's from z to the image, then
/// D's from the image to its logit), as bench/pytorch_conv_ops.py lists them.
fn layers(image: usize, channels: usize, width: usize, nz: usize) -> Vec<Layer> {
    let n = (image as f64).log2() as usize - 2; // stride-2 layers from 4x4 to the image
    let mut out = Vec::new();
    // G: nz -> width * 2^(n-1) at 4x4, then halving channels while doubling size.
    let mut c = width << (n - 1);
    out.push(Layer { name: "g1".into(), transposed: true, c_in: nz, c_out: c, size: 1, stride: 1, pad: 0 });
    let mut size = 4;
    for i in 0..n {
        let c_out = if i + 1 == n { channels } else { c / 2 };
        out.push(Layer { name: format!("g{}", i + 2), transposed: true, c_in: c, c_out, size, stride: 2, pad: 1 });
        c = c_out;
        size *= 2;
    }
    // D: the image down to 4x4, doubling channels, then 4x4 -> 1 logit.
    let (mut c_in, mut c) = (channels, width);
    let mut size = image;
    for i in 0..n {
        out.push(Layer { name: format!("d{}", i + 1), transposed: false, c_in, c_out: c, size, stride: 2, pad: 1 });
        c_in = c;
        c *= 2;
        size /= 2;
    }
    out.push(Layer { name: format!("d{}", n + 1), transposed: false, c_in, c_out: 1, size: 4, stride: 1, pad: 0 });
    out
}

/// Fastest seconds of `f` over `steps` runs after `warmup`: one operation takes well under a
/// second, so a disturbance (another process, the VM's host) can cover a whole layer's runs and
/// move even their median (PyTorch's g2 forward read 19, 22 and 42 ms in three runs); the
/// fastest run is the operation's own cost.
fn time(warmup: usize, steps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    (0..steps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    ganforge::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let config = config_name(&args, "dcgan64");
    let (image, channels, width) = dcgan_shape(&config);
    let steps: usize = arg(&args, "--steps", 10);
    let warmup: usize = arg(&args, "--warmup", 2);
    let batch: usize = arg(&args, "--batch", 64);
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let mut rng = GanRng::new(0, Stream::Train);
    let host = |rng: &mut GanRng, shape: [usize; 4]| TensorData::new(rng.normal_vec(shape.iter().product(), 0.0, 1.0), shape);
    let mut rows = Vec::new();
    for layer in layers(image, channels, width, 100) {
        let x_shape = [batch, layer.c_in, layer.size, layer.size];
        let (x, w) = (host(&mut rng, x_shape), host(&mut rng, layer.weight_shape()));
        // Inputs made once: a timed run clones handles, never data (PyTorch's side detaches).
        let (xd, wd) = (Tensor::<4>::from_data(x.clone(), &device), Tensor::<4>::from_data(w.clone(), &device));
        let y_dims = layer.run(xd.clone(), wd.clone(), true).dims();
        let g = host(&mut rng, y_dims);
        let (xa, wa, ga) =
            (Tensor::<4>::from_data(x.clone(), &ad), Tensor::<4>::from_data(w.clone(), &ad), Tensor::<4>::from_data(g.clone(), &ad));
        let fwd = |own: bool| {
            time(warmup, steps, || {
                std::hint::black_box(layer.run(xd.clone(), wd.clone(), own));
            })
        };
        // Tracks one of the two inputs and times forward + backward to its gradient.
        let fwd_bwd = |track_x: bool, own: bool| {
            time(warmup, steps, || {
                let (mut xt, mut wt) = (xa.clone(), wa.clone());
                if track_x {
                    xt = xt.require_grad()
                } else {
                    wt = wt.require_grad()
                }
                let y = layer.run(xt.clone(), wt.clone(), own);
                let grads = (y * ga.clone()).sum().backward();
                let grad = if track_x { xt.grad(&grads) } else { wt.grad(&grads) };
                std::hint::black_box(grad.expect("the tracked input has a gradient"));
            })
        };
        let (fwd_s, fwd_dx, fwd_dw) = (fwd(true), fwd_bwd(true, true), fwd_bwd(false, true));
        let burn = format!(
            ", \"burn_fwd_s\": {}, \"burn_fwd_dx_s\": {}, \"burn_fwd_dw_s\": {}",
            fwd(false),
            fwd_bwd(true, false),
            fwd_bwd(false, false)
        );
        let own = if layer.transposed {
            String::new()
        } else {
            // The product of the unfolded batch by the weight: [b*ho*wo, k] x [k, co].
            let (m, k, n) = (batch * y_dims[2] * y_dims[3], layer.c_in * 16, layer.c_out);
            let (a, b) = (rng.normal_vec(m * k, 0.0, 1.0), rng.normal_vec(k * n, 0.0, 1.0));
            let mut c = vec![0.0f32; m * n];
            let mut product =
                |f: Product| time(warmup, steps, || f(m, n, k, MatRef::row_major(&a, k), MatRef::row_major(&b, n), &mut c, false));
            format!(
                ", \"product_mkn\": [{m}, {k}, {n}], \"product_crate_s\": {}, \"product_own_s\": {}",
                product(crate_gemm),
                product(sgemm)
            )
        };
        let row = format!(
            "{{\"layer\": \"{}\", \"op\": \"{}\", \"x\": {:?}, \"w\": {:?}, \"y\": {:?}, \"fwd_s\": {fwd_s}, \"fwd_dx_s\": {fwd_dx}, \"fwd_dw_s\": {fwd_dw}{burn}{own}}}",
            layer.name,
            if layer.transposed { "conv_transpose2d" } else { "conv2d" },
            x_shape,
            layer.weight_shape(),
            y_dims,
        );
        println!("{row}");
        rows.push(row);
    }
    println!(
        "{{\"impl\": \"ganforge\", \"config\": \"{config}\", \"batch\": {batch}, \"isa\": \"{}\", \"own_kernels\": {}, \"layers\": [{}]}}",
        isa().name(),
        ops::own_kernels_enabled(),
        rows.join(", ")
    );
}
