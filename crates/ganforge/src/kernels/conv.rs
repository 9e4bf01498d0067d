//! A 2-D convolution (NCHW, no groups, no dilation) as one im2col over the whole batch and one
//! matrix product (Chellapilla et al., "High Performance Convolutional Neural Networks for
//! Document Processing", 2006), and a transposed one as one product and a col2im.
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

/// Geometry of one transposed convolution (G's layers). burn-flex's forward of DCGAN-64's g2
/// took 51.6 ms against PyTorch's 19.0 (BENCHMARKS.md, "Each convolution of the step"); this one
/// is faster on G's wide layers in large batches, and not wired into sampling (BENCHMARKS.md,
/// "Sampling throughput", says why). No groups, no dilation, no output padding.
#[derive(Clone, Copy, Debug)]
pub struct ConvTranspose2d {
    /// Input [batch, channels, height, width].
    pub x: [usize; 4],
    /// Weight [in channels, out channels, kernel height, kernel width], as burn and PyTorch.
    pub w: [usize; 4],
    pub stride: usize,
    pub pad: usize,
}

thread_local! {
    /// The transposed input and the product's output, kept between calls: a sampler calls G
    /// again and again, and fresh buffers of tens of megabytes cost a page fault per page
    /// (18% of a batch of 256 in `perf`) plus a memset.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The first `len` floats of `buf`, growing it if needed (their values are stale: callers
/// overwrite every one).
fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Floats of the product's output per chunk of images (32 MiB): bounds the memory a large
/// sampling batch takes (256 images of DCGAN-64's g4 would otherwise need 268 MB at once).
const COL_CHUNK_FLOATS: usize = 8 << 20;

impl ConvTranspose2d {
    /// Output [batch, out channels, height, width]; None when the padding eats the whole output.
    pub fn out_shape(&self) -> Option<[usize; 4]> {
        let [b, _, h, w] = self.x;
        let [_, co, kh, kw] = self.w;
        let size = |i: usize, k: usize| (i.checked_sub(1)? * self.stride + k).checked_sub(2 * self.pad).filter(|&o| o > 0);
        Some([b, co, size(h, kh)?, size(w, kw)?])
    }

    /// Runs the transposed convolution on `product`: each input pixel's channels times the
    /// weight ([b*h*w, ci] x [ci, co*kh*kw], one product for a chunk of images), then each row
    /// of the result added into the output under its kernel window (col2im), image by image in
    /// a fixed order, so that an image's output does not depend on the batch it is in.
    ///
    /// Panics if the slices do not match the shapes or `out_shape` is None (callers' bugs).
    pub fn forward(&self, x: &[f32], w: &[f32], product: Product) -> Vec<f32> {
        let [b, ci, h, wi] = self.x;
        let [wci, co, kh, kw] = self.w;
        assert_eq!(ci, wci, "input channels of x and the weight differ");
        assert_eq!((x.len(), w.len()), (b * ci * h * wi, ci * co * kh * kw), "slices do not match the shapes");
        let [_, _, ho, wo] = self.out_shape().expect("padding leaves no output");
        let (p, n) = (h * wi, co * kh * kw);
        let mut out = vec![0.0f32; b * co * ho * wo]; // [b, co, ho, wo]
        let per_chunk = (COL_CHUNK_FLOATS / (p * n)).clamp(1, b);
        // Kernel taps that land inside the output for input row/column i: (first tap, end, where
        // the first lands). Hoisted so that col2im adds contiguous runs without bounds tests.
        let taps = |i: usize, k: usize, len: usize| {
            let first = self.pad.saturating_sub(i * self.stride);
            let end = k.min((len + self.pad).saturating_sub(i * self.stride));
            (first, end.max(first), (i * self.stride + first).saturating_sub(self.pad))
        };
        SCRATCH.with_borrow_mut(|(xt, col)| {
            for (chunk, out) in out.chunks_mut(per_chunk * co * ho * wo).enumerate() {
                let images = out.len() / (co * ho * wo);
                let x = &x[chunk * per_chunk * ci * p..(chunk * per_chunk + images) * ci * p];
                // Pixels as rows: [images*h*w, ci].
                let xt = grown(xt, images * p * ci);
                xt.par_chunks_mut(p * ci).zip(x.par_chunks(ci * p)).for_each(|(xt, img)| {
                    for (c, plane) in img.chunks(p).enumerate() {
                        for (q, &v) in plane.iter().enumerate() {
                            xt[q * ci + c] = v;
                        }
                    }
                });
                let col = grown(col, images * p * n); // [images*h*w, co*kh*kw]
                product(images * p, n, ci, MatRef::row_major(xt, ci), MatRef::row_major(w, n), col, false);
                out.par_chunks_mut(co * ho * wo).zip(col.par_chunks(p * n)).for_each(|(img, col)| {
                    for iy in 0..h {
                        let (ky0, ky1, oy0) = taps(iy, kh, ho);
                        for ix in 0..wi {
                            let (kx0, kx1, ox0) = taps(ix, kw, wo);
                            if kx0 == kx1 {
                                continue; // every tap of this column falls in the padding
                            }
                            let row = &col[(iy * wi + ix) * n..(iy * wi + ix + 1) * n];
                            for c in 0..co {
                                for (oy, ky) in (oy0..).zip(ky0..ky1) {
                                    let dst = &mut img[(c * ho + oy) * wo + ox0..][..kx1 - kx0];
                                    let src = &row[(c * kh + ky) * kw + kx0..(c * kh + ky) * kw + kx1];
                                    for (d, &v) in dst.iter_mut().zip(src) {
                                        *d += v;
                                    }
                                }
                            }
                        }
                    }
                });
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::{crate_gemm, sgemm};
    use super::*;
    use burn::tensor::module::{conv2d, conv_transpose2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::{Device, Tensor, TensorData};

    /// An input and a weight of these shapes: varied signs and magnitudes, the same everywhere.
    fn inputs(x: [usize; 4], w: [usize; 4]) -> (Vec<f32>, Vec<f32>) {
        let fill = |shape: [usize; 4], mul: usize, modulo: usize, scale: f32| -> Vec<f32> {
            (0..shape.iter().product::<usize>()).map(|i| ((i * mul % modulo) as f32 - (modulo / 2) as f32) / scale).collect()
        };
        (fill(x, 37, 101, 50.0), fill(w, 53, 89, 100.0))
    }

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
            let (x, w) = inputs(c.x, c.w);
            let want = burn_conv(&c, &x, &w);
            for product in [sgemm as Product, crate_gemm as Product] {
                let got = c.forward(&x, &w, product);
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{c:?}: largest difference {worst}");
            }
        }
    }

    /// DCGAN's G layers (kernel 4: the 1x1 -> 4x4 projection, stride 2 pad 1) plus an odd one;
    /// and one image alone gives the same output, bit for bit, as within its batch.
    #[test]
    fn transposed_matches_burns_and_is_the_same_alone() {
        let cases = [
            ConvTranspose2d { x: [3, 10, 1, 1], w: [10, 16, 4, 4], stride: 1, pad: 0 },
            ConvTranspose2d { x: [2, 16, 4, 4], w: [16, 8, 4, 4], stride: 2, pad: 1 },
            ConvTranspose2d { x: [2, 8, 8, 8], w: [8, 3, 4, 4], stride: 2, pad: 1 },
            ConvTranspose2d { x: [1, 5, 5, 7], w: [5, 6, 3, 3], stride: 2, pad: 1 },
        ];
        let dev = Device::flex();
        for c in cases {
            let (x, w) = inputs(c.x, c.w);
            let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), c.x), &dev);
            let wt = Tensor::<4>::from_data(TensorData::new(w.clone(), c.w), &dev);
            let y = conv_transpose2d(xt, wt, None, ConvTransposeOptions::new([c.stride; 2], [c.pad; 2], [0, 0], [1, 1], 1));
            assert_eq!(y.dims(), c.out_shape().unwrap());
            let want = y.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 data");
            for product in [sgemm as Product, crate_gemm as Product] {
                let got = c.forward(&x, &w, product);
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{c:?}: largest difference {worst}");
            }
            if !super::super::gemm::has_avx512() {
                continue; // the gemm crate's fallback makes no promise across batch sizes
            }
            let all = c.forward(&x, &w, sgemm);
            let [b, ci, h, wi] = c.x;
            let last = ConvTranspose2d { x: [1, ci, h, wi], ..c };
            let alone = last.forward(&x[(b - 1) * ci * h * wi..], &w, sgemm);
            assert_eq!(alone[..], all[all.len() - alone.len()..], "{c:?}: the last image alone differs");
        }
    }

    #[test]
    fn transposed_out_shape_refuses_no_output() {
        assert!(ConvTranspose2d { x: [1, 1, 1, 1], w: [1, 1, 2, 2], stride: 1, pad: 1 }.out_shape().is_none());
        assert_eq!(ConvTranspose2d { x: [1, 1, 4, 4], w: [1, 2, 4, 4], stride: 2, pad: 1 }.out_shape(), Some([1, 2, 8, 8]));
    }
}
