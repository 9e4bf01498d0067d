//! Where G's layers run on ganforge's own CPU kernels (`crate::kernels`) instead of burn's.
//!
//! Only outside autodiff (sampling, serving, evaluation, the sample grids of training) and only
//! where the AVX-512 product runs: there burn-flex's transposed convolution takes 1.4-2.7x
//! PyTorch's time on DCGAN-64's G (BENCHMARKS.md, "Each convolution of the step") and
//! `kernels::conv::ConvTranspose2d` less. Training keeps burn's ops, whose backward passes the
//! kernels do not have. Results agree with burn's within float rounding (1e-4 in the tests),
//! and an image's output does not depend on the batch it is made in.

use burn::nn::conv::ConvTranspose2d;
use burn::tensor::{DType, Tensor, TensorData};

use crate::kernels::conv::ConvTranspose2d as Geometry;
use crate::kernels::gemm::{has_avx512, sgemm};

/// `conv` applied to `x` with `weight` on the own kernel, or None where it does not apply (an
/// autodiff or non-CPU tensor, no AVX-512, a bias, groups, dilation, output padding, unequal
/// strides or paddings, not f32, or a layer where burn's is as fast): the caller runs burn's.
pub fn conv_transpose2d(conv: &ConvTranspose2d, weight: &Tensor<4>, x: &Tensor<4>) -> Option<Tensor<4>> {
    let device = x.device();
    // An autodiff device compares equal to its inner one: ask the tensors themselves.
    let autodiff = x.is_autodiff() || weight.is_autodiff();
    let plain = !autodiff && crate::device::is_cpu(&device) && conv.bias.is_none() && conv.groups == 1;
    let regular = conv.dilation == [1, 1] && conv.padding_out == [0, 0] && conv.stride[0] == conv.stride[1] && conv.padding[0] == conv.padding[1];
    if !(plain && regular && x.dtype() == DType::F32 && weight.dtype() == DType::F32 && enabled()) {
        return None;
    }
    // Where it pays, measured layer by layer on DCGAN-64's G at batch 256 (benches/conv_ops.rs):
    // wide outputs (co x kh x kw of 2048 or more: g1-g3, 1.5-3.4x faster than burn's), and only
    // where the weight, copied out of burn's tensor on every call, is at most 8x the input (G's
    // wide early layers at small batches). Narrow outputs are col2im's work more than the
    // product's: g4 (64 channels) ran even, g5 (3) twice as slow.
    let [_, co, kh, kw] = weight.dims();
    let (xn, wn) = (x.shape().num_elements(), weight.shape().num_elements());
    if co * kh * kw < 2048 || xn * 8 < wn {
        return None;
    }
    let geometry = Geometry { x: x.dims(), w: weight.dims(), stride: conv.stride[0], pad: conv.padding[0] };
    let out = geometry.out_shape()?;
    let xs = x.clone().into_data().try_into_vec::<f32>().ok()?;
    let ws = weight.clone().into_data().try_into_vec::<f32>().ok()?;
    let y = geometry.forward(&xs, &ws, sgemm); // [b, co, ho, wo]
    Some(Tensor::from_data(TensorData::new(y, out), &device))
}

/// Whether the own kernels run: on CPUs with AVX-512, unless `GANFORGE_CPU_KERNELS=0` asks for
/// burn's everywhere (to compare the two, or to rule the kernels out when hunting a bug).
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| has_avx512() && std::env::var("GANFORGE_CPU_KERNELS").map_or(true, |v| v != "0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::ConvTranspose2dConfig;
    use burn::tensor::Device;

    /// 128 output channels x 16 taps: the narrowest output the own kernel takes.
    fn layer(device: &Device) -> ConvTranspose2d {
        ConvTranspose2dConfig::new([8, 128], [4, 4]).with_stride([2, 2]).with_padding([1, 1]).with_bias(false).init(device)
    }

    fn input(device: &Device) -> Tensor<4> {
        // As many values as the weight (8 x 128 x 16): within the weight-copy rule.
        let v: Vec<f32> = (0..2 * 8 * 32 * 32).map(|i| ((i * 29 % 61) as f32 - 30.0) / 30.0).collect();
        Tensor::from_data(TensorData::new(v, [2, 8, 32, 32]), device)
    }

    #[test]
    fn runs_outside_autodiff_and_agrees_with_burn() {
        let device = Device::flex();
        let conv = layer(&device);
        let Some(own) = conv_transpose2d(&conv, &conv.weight.val(), &input(&device)) else {
            assert!(!enabled(), "the own kernel must run on a plain CPU tensor where it is enabled");
            return;
        };
        let burn = conv.forward(input(&device));
        assert_eq!(own.dims(), [2, 128, 64, 64]);
        let diff = (own - burn).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "largest difference {diff}");
    }

    /// In training the tensors are autodiff ones: burn's op must run, or no gradient flows.
    #[test]
    fn never_runs_under_autodiff() {
        let device = Device::flex().autodiff();
        let conv = layer(&device);
        assert!(conv_transpose2d(&conv, &conv.weight.val(), &input(&device)).is_none());
    }

    #[test]
    fn leaves_narrow_outputs_and_heavy_weights_to_burn() {
        let device = Device::flex();
        let narrow = ConvTranspose2dConfig::new([8, 64], [4, 4]).with_stride([2, 2]).with_padding([1, 1]).with_bias(false).init(&device);
        assert!(conv_transpose2d(&narrow, &narrow.weight.val(), &input(&device)).is_none());
        let conv = layer(&device);
        let x = input(&device).slice([0..1, 0..8, 0..8, 0..8]); // 512 values against 16,384
        assert!(conv_transpose2d(&conv, &conv.weight.val(), &x).is_none());
    }

    #[test]
    fn refuses_a_bias() {
        let device = Device::flex();
        let conv = ConvTranspose2dConfig::new([8, 4], [4, 4]).with_stride([2, 2]).with_padding([1, 1]).init(&device);
        assert!(conv.bias.is_some());
        assert!(conv_transpose2d(&conv, &conv.weight.val(), &input(&device)).is_none());
    }
}
