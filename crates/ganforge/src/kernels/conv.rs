//! A 2-D convolution (NCHW, no groups, no dilation) as one im2col over the whole batch and one
//! matrix product (Chellapilla et al., "High Performance Convolutional Neural Networks for
//! Document Processing", 2006).
//!
//! burn-flex unfolds and multiplies per image and per tile of 512 output pixels, so D's deep
//! layers (4x4 or 8x8 outputs) become products 16 or 64 rows tall; unfolding the whole batch
//! first makes one product `[b*ho*wo, ci*kh*kw] x [ci*kh*kw, co]`, tall enough for any kernel.

use rayon::prelude::*;

use super::gemm::MatRef;

/// Which matrix product a convolution runs on (the bench compares them).
pub type Product = fn(usize, usize, usize, MatRef, MatRef, &mut [f32], bool);

/// Geometry of one convolution.
#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    /// Input [batch, channels, height, width].
    pub x: [usize; 4],
    /// Weight [out channels, in channels, kernel height, kernel width], as burn and PyTorch.
    pub w: [usize; 4],
    pub stride: usize,
    pub pad: usize,
}

impl Conv2d {
    /// Output [batch, out channels, height, width].
    pub fn out_shape(&self) -> [usize; 4] {
        let [b, _, h, w] = self.x;
        let [co, _, kh, kw] = self.w;
        [b, co, (h + 2 * self.pad - kh) / self.stride + 1, (w + 2 * self.pad - kw) / self.stride + 1]
    }

    /// Runs the convolution on `product`; `x` and `w` are NCHW / OIHW slices of the shapes above.
    pub fn forward(&self, x: &[f32], w: &[f32], product: Product) -> Vec<f32> {
        let [b, ci, h, wi] = self.x;
        let [co, wci, kh, kw] = self.w;
        assert_eq!(ci, wci, "input channels of x and the weight differ");
        assert_eq!((x.len(), w.len()), (b * ci * h * wi, co * ci * kh * kw), "slices do not match the shapes");
        let [_, _, ho, wo] = self.out_shape();
        let (p, k) = (ho * wo, ci * kh * kw);
        // Row (n, oy, ox) of the unfolded input holds the patch under output pixel (oy, ox) of
        // image n, ordered (channel, ky, kx) like a row of the weight.
        let mut col = vec![0.0f32; b * p * k]; // [b*ho*wo, ci*kh*kw]
        col.par_chunks_mut(p * k).enumerate().for_each(|(n, col)| {
            let img = &x[n * ci * h * wi..(n + 1) * ci * h * wi];
            for oy in 0..ho {
                for ox in 0..wo {
                    let row = &mut col[(oy * wo + ox) * k..(oy * wo + ox + 1) * k];
                    for c in 0..ci {
                        for ky in 0..kh {
                            let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                            let dst = &mut row[(c * kh + ky) * kw..(c * kh + ky + 1) * kw];
                            if iy < 0 || iy >= h as isize {
                                continue; // stays zero: padding
                            }
                            let src = &img[(c * h + iy as usize) * wi..(c * h + iy as usize + 1) * wi];
                            for (kx, d) in dst.iter_mut().enumerate() {
                                let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                                if ix >= 0 && ix < wi as isize {
                                    *d = src[ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        });
        let mut out_t = vec![0.0f32; b * p * co]; // [b*ho*wo, co]
        product(b * p, co, k, MatRef::row_major(&col, k), MatRef::transposed(w, k), &mut out_t, false);
        // Back to NCHW: image n's [ho*wo, co] block, transposed.
        let mut out = vec![0.0f32; b * co * p]; // [b, co, ho, wo]
        out.par_chunks_mut(co * p).enumerate().for_each(|(n, out)| {
            let block = &out_t[n * p * co..(n + 1) * p * co];
            for (q, row) in block.chunks(co).enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    out[c * p + q] = v;
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::{crate_gemm, sgemm};
    use super::*;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Tensor, TensorData};

    /// burn's own conv2d on the CPU backend is the reference.
    fn burn_conv(c: &Conv2d, x: &[f32], w: &[f32]) -> Vec<f32> {
        let dev = Device::flex();
        let xt = Tensor::<4>::from_data(TensorData::new(x.to_vec(), c.x), &dev);
        let wt = Tensor::<4>::from_data(TensorData::new(w.to_vec(), c.w), &dev);
        let y = conv2d(xt, wt, None, ConvOptions::new([c.stride; 2], [c.pad; 2], [1, 1], 1));
        assert_eq!(y.dims(), c.out_shape());
        y.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 data")
    }

    /// DCGAN's D layers (kernel 4: stride 2 pad 1, and the last 4x4 -> 1) plus odd sizes.
    #[test]
    fn matches_burns_conv2d() {
        let cases = [
            Conv2d { x: [2, 3, 16, 16], w: [8, 3, 4, 4], stride: 2, pad: 1 },
            Conv2d { x: [3, 16, 8, 8], w: [33, 16, 4, 4], stride: 2, pad: 1 },
            Conv2d { x: [2, 32, 4, 4], w: [1, 32, 4, 4], stride: 1, pad: 0 },
            Conv2d { x: [1, 5, 7, 9], w: [6, 5, 3, 3], stride: 1, pad: 1 },
        ];
        for c in cases {
            let x: Vec<f32> = (0..c.x.iter().product::<usize>()).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let w: Vec<f32> = (0..c.w.iter().product::<usize>()).map(|i| ((i * 53 % 89) as f32 - 44.0) / 100.0).collect();
            let want = burn_conv(&c, &x, &w);
            for product in [sgemm as Product, crate_gemm as Product] {
                let got = c.forward(&x, &w, product);
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{c:?}: largest difference {worst}");
            }
        }
    }
}
