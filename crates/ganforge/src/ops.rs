//! ganforge's own convolutions inside burn: `conv2d` and `conv_transpose2d` on the CPU backend
//! run `kernels::conv`'s three passes (forward, input gradient, weight gradient) as a burn
//! backend extension (`#[backend_extension(Flex, Autodiff)]`), with the backward written here
//! beside the forward, so that the networks call them like any burn op and the kernels read
//! burn's buffers in place.
//!
//! Why: the convolution passes are most of a DCGAN step, and burn 0.22's generic backward
//! computes a weight gradient as a convolution of x with dy as a dilated kernel and an input
//! gradient through `conv_transpose2d`, unfolding again each time; here the weight gradient is
//! one product over the batch (BENCHMARKS.md, "Each convolution of the step").
//!
//! Where the kernels do not apply (another backend, groups, dilation, asymmetric or "same"
//! padding, a dtype other than f32, an empty dimension) and when `GANFORGE_CPU_KERNELS=0`, these
//! functions call burn's own ops, which stay the reference the tests compare with.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::OnceLock;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::kernels::conv::Conv2d as Geometry;
use crate::kernels::gemm::sgemm;
pub use crate::kernels::norm::Act;
use crate::kernels::norm::{self, Planes};

/// Whether ganforge's own kernels may run: unless `GANFORGE_CPU_KERNELS=0` (burn's ops
/// everywhere, for comparison), read once per process.
pub fn own_kernels_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("GANFORGE_CPU_KERNELS").map_or(true, |v| v.trim() != "0"))
}

thread_local! {
    /// How many convolution passes this thread ran on ganforge's kernels (tests and benches
    /// check that a path is taken; per thread, so that tests running beside each other do not
    /// count each other's).
    static OWN_PASSES: Cell<usize> = const { Cell::new(0) };
}

/// See [`OWN_PASSES`].
pub fn own_kernel_passes() -> usize {
    OWN_PASSES.get()
}

fn counted<T>(pass: T) -> T {
    OWN_PASSES.set(OWN_PASSES.get() + 1);
    pass
}

/// The convolutions as backend operations (no bias: the callers add it with burn's ops).
#[backend_extension(Flex, Autodiff)]
pub trait OwnConv: Backend {
    /// `x` [b, ci, h, w] by `w` [co, ci, kh, kw] -> [b, co, ho, wo].
    fn own_conv2d(x: FloatTensor<Self>, w: FloatTensor<Self>, stride: [usize; 2], pad: [usize; 2]) -> FloatTensor<Self>;
    /// `x` [b, ci, h, w] by `w` [ci, co, kh, kw] -> [b, co, ho, wo] (no output padding).
    fn own_conv_transpose2d(x: FloatTensor<Self>, w: FloatTensor<Self>, stride: [usize; 2], pad: [usize; 2]) -> FloatTensor<Self>;
    /// Per-channel mean and biased variance of `x` [b, c, h, w], as [2, c]; not differentiated
    /// (the gradient through them is part of `own_batch_norm_act`'s).
    fn own_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `act(gamma * (x - mean) / sqrt(var + eps) + beta)` with `stats` = [mean; var] of x itself,
    /// differentiated as training-mode batch norm (through the statistics) for x, gamma, beta.
    fn own_batch_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        eps: f64,
        act: Act,
    ) -> FloatTensor<Self>;
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3]]
}

/// A tensor's values in place when it is contiguous (the usual case), else a contiguous copy.
fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => Cow::Borrowed(v),
        None => Cow::Owned(t.clone().into_data().try_into_vec::<f32>().expect("f32 values: callers check the dtype")),
    }
}

fn flex<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn planes(x: &FlexTensor) -> Planes {
    let [b, c, h, w] = dims4(x);
    Planes { batch: b, channels: c, pixels: h * w }
}

/// (mean, variance) out of the [2, c] statistics.
fn split_stats(stats: &FlexTensor) -> (Vec<f32>, Vec<f32>) {
    let v = f32s(stats);
    let c = v.len() / 2;
    (v[..c].to_vec(), v[c..].to_vec())
}

fn conv_geometry(x: &FlexTensor, w: &FlexTensor, stride: [usize; 2], pad: [usize; 2]) -> Geometry {
    Geometry { x: dims4(x), w: dims4(w), stride, pad }
}

fn transposed_geometry(x: &FlexTensor, w: &FlexTensor, stride: [usize; 2], pad: [usize; 2]) -> Geometry {
    Geometry::of_transposed(dims4(x), dims4(w), stride, pad).expect("the callers check that the transposed convolution has an output")
}

impl OwnConv for Flex {
    fn own_conv2d(x: FlexTensor, w: FlexTensor, stride: [usize; 2], pad: [usize; 2]) -> FlexTensor {
        let g = conv_geometry(&x, &w, stride, pad);
        let y = g.forward(&f32s(&x), &f32s(&w), sgemm); // [b, co, ho, wo]
        counted(flex(y, g.out_shape().expect("the callers check the output")))
    }

    fn own_conv_transpose2d(x: FlexTensor, w: FlexTensor, stride: [usize; 2], pad: [usize; 2]) -> FlexTensor {
        let g = transposed_geometry(&x, &w, stride, pad);
        counted(flex(g.backward_input(&f32s(&x), &f32s(&w), sgemm), g.x)) // [b, co, ho, wo]
    }

    fn own_batch_norm_stats(x: FlexTensor) -> FlexTensor {
        let s = planes(&x);
        let (mean, var) = norm::stats(&f32s(&x), s);
        flex([mean, var].concat(), [2, s.channels]) // [2, c]
    }

    fn own_batch_norm_act(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, stats: FlexTensor, eps: f64, act: Act) -> FlexTensor {
        let s = planes(&x);
        let (mean, var) = split_stats(&stats);
        counted(flex(norm::forward(&f32s(&x), s, &mean, &var, &f32s(&gamma), &f32s(&beta), eps, act), dims4(&x)))
        // [b, c, h, w]
    }
}

/// dL/dx, dL/dgamma and dL/dbeta of training-mode batch norm and its activation.
#[derive(Debug)]
struct BatchNormActBackward;

impl Backward<Flex, 3> for BatchNormActBackward {
    /// x, gamma, the output y and the statistics, eps, the activation.
    type State = (NodeId, NodeId, FlexTensor, FlexTensor, f64, Act);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, gamma_state, y, stats, eps, act) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let gamma: FlexTensor = checkpointer.retrieve_node_output(gamma_state);
        let (s, (mean, var)) = (planes(&x), split_stats(&stats));
        let (dx, dgamma, dbeta) = norm::backward(&f32s(&x), &f32s(&y), &f32s(&dy), s, &mean, &var, &f32s(&gamma), eps, act);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, counted(flex(dx, dims4(&x)))); // [b, c, h, w]
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex(dgamma, [s.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex(dbeta, [s.channels]));
        }
    }
}

/// dL/dx and dL/dw of `y = conv(x, w)`, or of `y = conv_transpose(x, w)` (`transposed`), for
/// the parents that need them. `g` is the convolution itself, or for a transposed one the
/// convolution from y's shape back to x's: then dx is that convolution of dy, and dw its weight
/// gradient with dy as its input and x as its output's gradient.
#[derive(Debug)]
struct ConvBackward {
    transposed: bool,
}

impl Backward<Flex, 2> for ConvBackward {
    type State = (NodeId, NodeId, Geometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, w_state, g) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let w: FlexTensor = checkpointer.retrieve_node_output(w_state);
        let (dy, x_shape) = (f32s(&dy), dims4(&x));
        if let Some(node) = node_x {
            let dx = if self.transposed { g.forward(&dy, &f32s(&w), sgemm) } else { g.backward_input(&dy, &f32s(&w), sgemm) };
            grads.register::<Flex>(node.id, counted(flex(dx, x_shape))); // [b, ci, h, w]
        }
        if let Some(node) = node_w {
            let dw = if self.transposed { g.backward_weight(&dy, &f32s(&x), sgemm) } else { g.backward_weight(&f32s(&x), &dy, sgemm) };
            grads.register::<Flex>(node.id, counted(flex(dw, g.w))); // w's shape
        }
    }
}

/// A convolution on the autodiff backend: `forward` on the primitives, and `backward` recorded
/// when x or w is tracked.
fn tracked_conv<C: CheckpointStrategy>(
    backward: ConvBackward,
    x: FloatTensor<Autodiff<Flex, C>>,
    w: FloatTensor<Autodiff<Flex, C>>,
    g: Geometry,
    forward: impl FnOnce(FlexTensor, FlexTensor) -> FlexTensor,
) -> FloatTensor<Autodiff<Flex, C>> {
    match backward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&w), g);
            prep.finish(state, forward(x.into_primitive(), w.into_primitive()))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive(), w.into_primitive())),
    }
}

impl<C: CheckpointStrategy> OwnConv for Autodiff<Flex, C> {
    fn own_conv2d(x: FloatTensor<Self>, w: FloatTensor<Self>, stride: [usize; 2], pad: [usize; 2]) -> FloatTensor<Self> {
        let g = conv_geometry(x.primitive(), w.primitive(), stride, pad);
        tracked_conv::<C>(ConvBackward { transposed: false }, x, w, g, |x, w| Flex::own_conv2d(x, w, stride, pad))
    }

    fn own_conv_transpose2d(x: FloatTensor<Self>, w: FloatTensor<Self>, stride: [usize; 2], pad: [usize; 2]) -> FloatTensor<Self> {
        let g = transposed_geometry(x.primitive(), w.primitive(), stride, pad);
        tracked_conv::<C>(ConvBackward { transposed: true }, x, w, g, |x, w| Flex::own_conv_transpose2d(x, w, stride, pad))
    }

    fn own_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // A constant of the graph (2 x c values): the gradient through the statistics is in
        // own_batch_norm_act's backward.
        let device = Default::default(); // the CPU (FlexDevice has one value)
        Self::float_from_data(Flex::own_batch_norm_stats(x.into_primitive()).into_data(), &device)
    }

    fn own_batch_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        eps: f64,
        act: Act,
    ) -> FloatTensor<Self> {
        let stats = stats.into_primitive();
        match BatchNormActBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let (xs, gs) = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let y =
                    Flex::own_batch_norm_act(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), stats.clone(), eps, act);
                prep.finish((xs, gs, y.clone(), stats, eps, act), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::own_batch_norm_act(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), stats, eps, act))
            }
        }
    }
}

/// Whether the own kernels take this tensor: enabled, on the CPU backend, f32, no empty
/// dimension (also the optimizer's rule for its one-pass update).
pub fn own_takes<const D: usize>(t: &Tensor<D>) -> bool {
    own_kernels_enabled() && t.device().inner() == Device::flex() && t.dtype() == DType::F32 && t.dims().iter().all(|&d| d > 0)
}

/// Whether the own kernels take a convolution of x by w.
fn own_path(x: &Tensor<4>, w: &Tensor<4>) -> bool {
    own_takes(x) && own_takes(w)
}

/// `act(y)` with burn's activations (where the fused kernel does not run).
fn activate(y: Tensor<4>, act: Act) -> Tensor<4> {
    match act {
        Act::Identity => y,
        Act::Relu => relu(y),
        Act::Leaky(slope) => burn::tensor::activation::leaky_relu(y, slope as f64),
    }
}

fn add_bias(y: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    match bias {
        Some(b) => {
            let co = b.dims()[0];
            y + b.reshape([1, co, 1, 1])
        }
        None => y,
    }
}

/// burn's `module::conv2d`, on ganforge's kernels where they apply.
pub fn conv2d(x: Tensor<4>, w: Tensor<4>, bias: Option<Tensor<1>>, options: ConvOptions<2>) -> Tensor<4> {
    let own = own_path(&x, &w) && options.groups == 1 && options.dilation == [1, 1] && !options.is_asymmetric() && {
        let (stride, pad) = (options.stride, options.padding_begin());
        Geometry { x: x.dims(), w: w.dims(), stride, pad }.out_shape().is_some()
    };
    if !own {
        return burn::tensor::module::conv2d(x, w, bias, options);
    }
    let y = Dispatch::own_conv2d(x.into_dispatch(), w.into_dispatch(), options.stride, options.padding_begin());
    add_bias(Tensor::from_dispatch(y), bias)
}

/// burn's `module::conv_transpose2d`, on ganforge's kernels where they apply.
pub fn conv_transpose2d(x: Tensor<4>, w: Tensor<4>, bias: Option<Tensor<1>>, options: ConvTransposeOptions<2>) -> Tensor<4> {
    let own = own_path(&x, &w)
        && options.groups == 1
        && options.dilation == [1, 1]
        && options.padding_out == [0, 0]
        && Geometry::of_transposed(x.dims(), w.dims(), options.stride, options.padding).is_some();
    if !own {
        return burn::tensor::module::conv_transpose2d(x, w, bias, options);
    }
    let y = Dispatch::own_conv_transpose2d(x.into_dispatch(), w.into_dispatch(), options.stride, options.padding);
    add_bias(Tensor::from_dispatch(y), bias)
}

/// `conv.forward(x)`, on ganforge's kernels where they apply.
pub fn conv2d_layer(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        // "Same" depends on the input's size: burn's module computes it.
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options)
}

/// `conv.forward(x)`, on ganforge's kernels where they apply.
pub fn conv_transpose2d_layer(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let options = ConvTransposeOptions::new(conv.stride, conv.padding, conv.padding_out, conv.dilation, conv.groups);
    conv_transpose2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options)
}

/// `act(bn.forward(x))`: in training on the CPU, one fused operation (statistics, normalization
/// and activation, and their backward; the running statistics updated as burn's `BatchNorm`
/// does); elsewhere burn's layer and activation.
pub fn batch_norm_act(bn: &BatchNorm, x: Tensor<4>, act: Act) -> Tensor<4> {
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    if !(training && own_takes(&x)) {
        return activate(bn.forward(x), act);
    }
    let c = x.dims()[1];
    let stats: Tensor<2> = Tensor::from_dispatch(Dispatch::own_batch_norm_stats(x.clone().into_dispatch())); // [2, c]
    let y = Dispatch::own_batch_norm_act(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        stats.clone().into_dispatch(),
        bn.epsilon,
        act,
    );
    let y: Tensor<4> = Tensor::from_dispatch(y);
    let device = y.device();
    let running = |state: &burn::module::RunningState<Tensor<1>>, row: usize| {
        let batch = stats.clone().slice([row..row + 1, 0..c]).reshape([c]).detach(); // [c]
        let updated = state.value_sync().to_device(&device).mul_scalar(1.0 - bn.momentum).add(batch.mul_scalar(bn.momentum));
        state.update(updated.detach());
    };
    running(&bn.running_mean, 0);
    running(&bn.running_var, 1);
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One layer: input and weight shapes, stride, padding, transposed or not, with a bias.
    struct Layer(&'static str, [usize; 4], [usize; 4], usize, usize, bool, bool);

    /// Every convolution shape of the dcgan64 and small32 benchmarks' DCGAN (batch 2), and the
    /// kinds the BigGAN-style and StyleGAN2 networks use (3x3 with bias, 1x1 skips and toRGB,
    /// stride-2 valid after a blur, an odd size).
    const LAYERS: &[Layer] = &[
        Layer("dcgan64 d1", [2, 3, 64, 64], [64, 3, 4, 4], 2, 1, false, false),
        Layer("dcgan64 d2", [2, 64, 32, 32], [128, 64, 4, 4], 2, 1, false, false),
        Layer("dcgan64 d3", [2, 128, 16, 16], [256, 128, 4, 4], 2, 1, false, false),
        Layer("dcgan64 d4", [2, 256, 8, 8], [512, 256, 4, 4], 2, 1, false, false),
        Layer("dcgan64 d5", [2, 512, 4, 4], [1, 512, 4, 4], 1, 0, false, false),
        Layer("dcgan64 g1", [2, 100, 1, 1], [100, 512, 4, 4], 1, 0, true, false),
        Layer("dcgan64 g2", [2, 512, 4, 4], [512, 256, 4, 4], 2, 1, true, false),
        Layer("dcgan64 g3", [2, 256, 8, 8], [256, 128, 4, 4], 2, 1, true, false),
        Layer("dcgan64 g4", [2, 128, 16, 16], [128, 64, 4, 4], 2, 1, true, false),
        Layer("dcgan64 g5", [2, 64, 32, 32], [64, 3, 4, 4], 2, 1, true, false),
        Layer("small32 d1", [2, 1, 32, 32], [32, 1, 4, 4], 2, 1, false, false),
        Layer("small32 d4", [2, 128, 4, 4], [1, 128, 4, 4], 1, 0, false, false),
        Layer("small32 g1", [2, 100, 1, 1], [100, 128, 4, 4], 1, 0, true, false),
        Layer("small32 g4", [2, 32, 16, 16], [32, 1, 4, 4], 2, 1, true, false),
        Layer("biggan 3x3", [2, 64, 16, 16], [32, 64, 3, 3], 1, 1, false, true),
        Layer("biggan skip 1x1", [2, 64, 16, 16], [32, 64, 1, 1], 1, 0, false, true),
        Layer("stylegan2 toRGB", [2, 32, 8, 8], [3, 32, 1, 1], 1, 0, false, false),
        Layer("stylegan2 down", [2, 16, 9, 9], [32, 16, 3, 3], 2, 0, false, false),
        Layer("stylegan2 up 3x3", [2, 16, 10, 10], [16, 16, 3, 3], 1, 0, false, false),
        Layer("odd transposed", [3, 5, 5, 7], [5, 6, 3, 3], 2, 1, true, true),
    ];

    fn filled(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 37 + seed * 101) % 97) as f32 - 48.0) / 48.0).collect()
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32")
    }

    /// max |got - want| / max |want|.
    fn relative_gap(got: &[f32], want: &[f32]) -> f32 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
        got.iter().zip(want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) / scale
    }

    /// (y, dx, dw, db) of the layer, on ganforge's op or burn's, with dL/dy fixed.
    fn run(l: &Layer, own: bool) -> Vec<Vec<f32>> {
        let dev = Device::flex().autodiff();
        let &Layer(_, xs, ws, s, p, transposed, with_bias) = l;
        let x = Tensor::<4>::from_data(TensorData::new(filled(xs.iter().product(), 1), xs), &dev).require_grad();
        let w = Tensor::<4>::from_data(TensorData::new(filled(ws.iter().product(), 2), ws), &dev).require_grad();
        let co = if transposed { ws[1] } else { ws[0] };
        let b = with_bias.then(|| Tensor::<1>::from_data(TensorData::new(filled(co, 3), [co]), &dev).require_grad());
        let (x2, w2, b2) = (x.clone(), w.clone(), b.clone());
        let y = match (transposed, own) {
            (false, true) => conv2d(x2, w2, b2, ConvOptions::new([s, s], [p, p], [1, 1], 1)),
            (false, false) => burn::tensor::module::conv2d(x2, w2, b2, ConvOptions::new([s, s], [p, p], [1, 1], 1)),
            (true, true) => conv_transpose2d(x2, w2, b2, ConvTransposeOptions::new([s, s], [p, p], [0, 0], [1, 1], 1)),
            (true, false) => {
                burn::tensor::module::conv_transpose2d(x2, w2, b2, ConvTransposeOptions::new([s, s], [p, p], [0, 0], [1, 1], 1))
            }
        };
        let dy = Tensor::<4>::from_data(TensorData::new(filled(y.dims().iter().product(), 4), y.dims()), &dev);
        let grads = (y.clone() * dy).sum().backward();
        let mut out = vec![values(y), values(x.grad(&grads).expect("dx")), values(w.grad(&grads).expect("dw"))];
        if let Some(b) = b {
            out.push(values(b.grad(&grads).expect("db")));
        }
        out
    }

    /// Each layer's forward and both gradients (and the bias's) agree with burn's own ops to
    /// 1e-5 of the largest value, and every pass ran on ganforge's kernels.
    #[test]
    fn agrees_with_burns_ops_forward_and_both_gradients() {
        assert!(own_kernels_enabled(), "GANFORGE_CPU_KERNELS=0 would compare burn's ops with themselves");
        eprintln!("ops: products on {:?}", crate::kernels::gemm::isa());
        for l in LAYERS {
            let before = own_kernel_passes();
            let (own, burns) = (run(l, true), run(l, false));
            assert_eq!(own_kernel_passes() - before, 3, "{}: forward, dx and dw on ganforge's kernels", l.0);
            for (what, (got, want)) in ["y", "dx", "dw", "db"].iter().zip(own.iter().zip(&burns)) {
                let gap = relative_gap(got, want);
                assert!(gap <= 1e-5, "{} {what}: relative gap {gap:e}", l.0);
            }
        }
    }

    /// The fused batch norm and activation against burn's BatchNorm layer and activation in
    /// training mode: output, the three gradients and the running statistics, to 1e-5 of the
    /// largest value.
    #[test]
    fn batch_norm_act_agrees_with_burns_layer() {
        use burn::nn::BatchNormConfig;
        let dev = Device::flex().autodiff();
        for (act, shape) in [(Act::Relu, [4, 8, 8, 8]), (Act::Leaky(0.2), [3, 16, 4, 4]), (Act::Identity, [2, 5, 3, 7])] {
            let run = |own: bool| -> Vec<Vec<f32>> {
                let bn = BatchNormConfig::new(shape[1]).init(&dev);
                let c = shape[1];
                let bn = BatchNorm {
                    gamma: burn::module::Param::from_tensor(Tensor::from_data(
                        TensorData::new(filled(c, 5).iter().map(|v| v + 1.0).collect(), [c]),
                        &dev,
                    )),
                    beta: burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(filled(c, 6), [c]), &dev)),
                    ..bn
                };
                let x = Tensor::<4>::from_data(TensorData::new(filled(shape.iter().product(), 1), shape), &dev).require_grad();
                let before = own_kernel_passes();
                let y = if own { batch_norm_act(&bn, x.clone(), act) } else { activate(bn.forward(x.clone()), act) };
                let dy = Tensor::<4>::from_data(TensorData::new(filled(shape.iter().product(), 4), shape), &dev);
                let grads = (y.clone() * dy).sum().backward();
                assert_eq!(own_kernel_passes() - before, 2 * own as usize, "{act:?}: forward and backward on ganforge's kernels");
                let param = |p: &burn::module::Param<Tensor<1>>| values(p.val().grad(&grads).expect("a parameter gradient"));
                vec![
                    values(y),
                    values(x.grad(&grads).expect("dx")),
                    param(&bn.gamma),
                    param(&bn.beta),
                    values(bn.running_mean.value()),
                    values(bn.running_var.value()),
                ]
            };
            let (own, burns) = (run(true), run(false));
            for (what, (got, want)) in ["y", "dx", "dgamma", "dbeta", "running mean", "running var"].iter().zip(own.iter().zip(&burns)) {
                let gap = relative_gap(got, want);
                assert!(gap <= 1e-5, "{act:?} {what}: relative gap {gap:e}");
            }
        }
    }

    /// Shapes the kernels do not take go to burn's op: groups, dilation, output padding.
    #[test]
    fn other_shapes_use_burns_op() {
        let dev = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(filled(2 * 4 * 6 * 6, 1), [2, 4, 6, 6]), &dev);
        let before = own_kernel_passes();
        let grouped = conv2d(x.clone(), Tensor::<4>::ones([4, 2, 3, 3], &dev), None, ConvOptions::new([1, 1], [1, 1], [1, 1], 2));
        let dilated = conv2d(x.clone(), Tensor::<4>::ones([3, 4, 3, 3], &dev), None, ConvOptions::new([1, 1], [0, 0], [2, 2], 1));
        let padded_out =
            conv_transpose2d(x, Tensor::<4>::ones([4, 3, 3, 3], &dev), None, ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1));
        assert_eq!(own_kernel_passes(), before, "none of these may run on ganforge's kernels");
        assert_eq!((grouped.dims(), dilated.dims(), padded_out.dims()), ([2, 4, 6, 6], [2, 3, 2, 2], [2, 3, 12, 12]));
    }
}
