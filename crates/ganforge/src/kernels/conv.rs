//! A 2-D convolution (NCHW, no groups, no dilation) and its two gradients, each as an unfolding
//! of a chunk of the batch and one matrix product (Chellapilla et al., "High Performance
//! Convolutional Neural Networks for Document Processing", 2006):
//!
//! - forward: `y = im2col(x) * w^T`, `[b*ho*wo, ci*kh*kw] x [ci*kh*kw, co]`;
//! - input gradient: `dx = col2im(dy^T * w)`, `[b*ho*wo, co] x [co, ci*kh*kw]`, added back
//!   under each kernel window;
//! - weight gradient: `dw = dy^T^T * im2col(x)`, one product over the whole batch,
//!   `[co, b*ho*wo] x [b*ho*wo, ci*kh*kw]` (burn's generic backward instead convolves x with
//!   dy as a dilated kernel).
//!
//! A transposed convolution is the input gradient of the convolution that maps its output back
//! to its input ([`Conv2d::of_transposed`]), so G's layers run on the same three passes with
//! their roles swapped: forward = `backward_input`, input gradient = `forward`, weight gradient
//! = `backward_weight` with x and dy exchanged.
//!
//! Unfolding the whole batch first makes products tall enough for any kernel (burn-flex unfolds
//! per image and tile, so D's deep layers become products 16 rows tall); chunks of images bound
//! the unfolded matrix's memory. Layers with many output pixels and a weight that is not thin
//! run each image as its own product instead, turned so that its result is already NCHW
//! (`per_image`): the transposes the batched form needs cost more there than the taller product
//! saves. Every element is summed in an order that depends only on the
//! layer's shape (see `gemm`), so an image's output does not depend on its batch.

use rayon::prelude::*;

use super::gemm::MatRef;

/// Which matrix product a convolution runs on (the benches compare them).
pub type Product = fn(usize, usize, usize, MatRef, MatRef, &mut [f32], bool);

/// Floats of an unfolded chunk (32 MiB): bounds the memory a large batch takes (DCGAN-64's d2
/// at batch 64 unfolds to 67 MB; 256 images of its g4 to 268 MB).
const COL_CHUNK_FLOATS: usize = 8 << 20;

/// Geometry of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Input [batch, channels, height, width].
    pub x: [usize; 4],
    /// Weight [out channels, in channels, kernel height, kernel width], as burn and PyTorch.
    pub w: [usize; 4],
    /// [vertical, horizontal].
    pub stride: [usize; 2],
    /// Zeros on each side, [vertical, horizontal].
    pub pad: [usize; 2],
}

thread_local! {
    /// The unfolded chunk and the product's operand, kept between calls: a step or a sampler
    /// calls the same layers again and again, and fresh buffers of tens of megabytes cost a page
    /// fault per page plus a memset. Taken out while in use (a nested call makes its own).
    static SCRATCH: std::cell::Cell<(Vec<f32>, Vec<f32>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// The first `len` floats of `buf`, growing it if needed (their values are stale: callers
/// overwrite every one).
fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Whether each image is its own product, oriented so that NCHW needs no transpose
/// (`[co, k] x [k, pixels]`): where an image has many output pixels and the weight is not thin
/// (a product with a side under 64 keeps the kernel idle between calls); elsewhere the batch is
/// one product, taller, and the small outputs are transposed. A property of the layer, never of
/// the batch size, so an image still does not depend on its batch.
fn per_image(pixels: usize, co: usize, k: usize) -> bool {
    pixels >= 256 && co >= 64 && k >= 64
}

/// `dst[j * rows + i] = src[i * cols + j]`, in tiles that stay in cache.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const T: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose: slices shorter than {rows} x {cols}");
    for i0 in (0..rows).step_by(T) {
        for j0 in (0..cols).step_by(T) {
            for i in i0..rows.min(i0 + T) {
                for j in j0..cols.min(j0 + T) {
                    // SAFETY: i < rows and j < cols, and both slices hold rows * cols floats
                    // (asserted above).
                    unsafe { *dst.get_unchecked_mut(j * rows + i) = *src.get_unchecked(i * cols + j) };
                }
            }
        }
    }
}

/// `dst = src` for one kernel row (DCGAN's are 4 wide: copied as one vector, not through a
/// call to memcpy for 16 bytes).
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    match (<&mut [f32; 4]>::try_from(&mut *dst), <&[f32; 4]>::try_from(src)) {
        (Ok(d), Ok(s)) => *d = *s,
        _ => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s),
    }
}

/// `dst += src` for one kernel row.
#[inline(always)]
fn add_run(dst: &mut [f32], src: &[f32]) {
    match (<&mut [f32; 4]>::try_from(&mut *dst), <&[f32; 4]>::try_from(src)) {
        (Ok(d), Ok(s)) => {
            for i in 0..4 {
                d[i] += s[i];
            }
        }
        _ => dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s),
    }
}

impl Conv2d {
    /// Output [batch, out channels, height, width]; None when the kernel is wider than the
    /// padded input, a stride is 0 or the channels of x and the weight differ.
    pub fn out_shape(&self) -> Option<[usize; 4]> {
        let [b, ci, h, w] = self.x;
        let [co, wci, kh, kw] = self.w;
        let size = |i: usize, k: usize, s: usize, p: usize| (i + 2 * p).checked_sub(k).filter(|_| s > 0 && k > 0).map(|d| d / s + 1);
        (ci == wci).then_some(())?;
        Some([b, co, size(h, kh, self.stride[0], self.pad[0])?, size(w, kw, self.stride[1], self.pad[1])?])
    }

    /// The convolution whose input gradient is the transposed convolution of an input `x`
    /// [b, ci, h, w] by a weight `w` [ci, co, kh, kw] (burn's and PyTorch's layout): it maps
    /// [b, co, ho, wo] to [b, ci, h, w] with the same weight read as [ci out, co in, kh, kw].
    /// None where no output pixel remains or the channels differ.
    pub fn of_transposed(x: [usize; 4], w: [usize; 4], stride: [usize; 2], pad: [usize; 2]) -> Option<Conv2d> {
        let [b, ci, h, wi] = x;
        let [wci, co, kh, kw] = w;
        let size = |i: usize, k: usize, s: usize, p: usize| (i.checked_sub(1)? * s + k).checked_sub(2 * p).filter(|&o| o > 0);
        let conv =
            Conv2d { x: [b, co, size(h, kh, stride[0], pad[0])?, size(wi, kw, stride[1], pad[1])?], w: [ci, co, kh, kw], stride, pad };
        (wci == ci && conv.out_shape() == Some([b, ci, h, wi])).then_some(conv)
    }

    /// (pixels of one output image, length of one unfolded row, images per chunk).
    fn sizes(&self) -> (usize, usize, usize) {
        let [_, _, ho, wo] = self.out_shape().expect("a convolution with an output");
        let [_, ci, kh, kw] = self.w;
        let (p, k) = (ho * wo, ci * kh * kw);
        (p, k, (COL_CHUNK_FLOATS / (p * k).max(1)).clamp(1, self.x[0].max(1)))
    }

    /// Runs `body` on the scratch buffers (taken out of the thread's slot and put back).
    fn with_scratch<R>(body: impl FnOnce(&mut Vec<f32>, &mut Vec<f32>) -> R) -> R {
        let (mut col, mut rows) = SCRATCH.take();
        let out = body(&mut col, &mut rows);
        SCRATCH.set((col, rows));
        out
    }

    fn check(&self, x_len: usize, w_len: usize, y_len: usize) {
        let y = self.out_shape().expect("a convolution with an output");
        let lens = [self.x.iter().product::<usize>(), self.w.iter().product(), y.iter().product()];
        assert_eq!([x_len, w_len, y_len], lens, "slices do not match {self:?}");
    }

    /// `y = conv(x, w)`: x [b, ci, h, w] and w [co, ci, kh, kw] as NCHW / OIHW slices.
    ///
    /// Panics if the slices do not match the shapes or there is no output (callers' bugs).
    pub fn forward(&self, x: &[f32], w: &[f32], product: Product) -> Vec<f32> {
        let [_, ci, h, wi] = self.x;
        let co = self.w[0];
        let (p, k, per) = self.sizes();
        let mut out = vec![0.0f32; self.x[0] * co * p]; // [b, co, ho, wo]
        self.check(x.len(), w.len(), out.len());
        Self::with_scratch(|col, rows| {
            for (chunk, out) in out.chunks_mut(per * co * p).enumerate() {
                let n = out.len() / (co * p);
                let x = &x[chunk * per * ci * h * wi..][..n * ci * h * wi];
                let col = grown(col, n * p * k);
                self.im2col(x, col); // [n*ho*wo, ci*kh*kw]
                if per_image(p, co, k) {
                    // Each image's [co, ho*wo] lands in NCHW directly: w times its unfolded patches.
                    for (img, col) in out.chunks_mut(co * p).zip(col.chunks(p * k)) {
                        product(co, p, k, MatRef::row_major(w, k), MatRef::transposed(col, k), img, false);
                    }
                    continue;
                }
                let rows = grown(rows, n * p * co);
                product(n * p, co, k, MatRef::row_major(col, k), MatRef::transposed(w, k), rows, false); // [n*ho*wo, co]
                out.par_chunks_mut(co * p).zip(rows.par_chunks(p * co)).for_each(|(img, r)| transpose(r, p, co, img));
            }
        });
        out
    }

    /// `dx` of `y = conv(x, w)` from `dy` [b, co, ho, wo]: [b, ci, h, w]. Also the forward of
    /// a transposed convolution (see [`Conv2d::of_transposed`]).
    pub fn backward_input(&self, dy: &[f32], w: &[f32], product: Product) -> Vec<f32> {
        let [_, ci, h, wi] = self.x;
        let co = self.w[0];
        let (p, k, per) = self.sizes();
        let mut dx = vec![0.0f32; self.x.iter().product()]; // [b, ci, h, w]
        self.check(dx.len(), w.len(), dy.len());
        Self::with_scratch(|col, rows| {
            for (chunk, dx) in dx.chunks_mut(per * ci * h * wi).enumerate() {
                let n = dx.len() / (ci * h * wi);
                let dy = &dy[chunk * per * co * p..][..n * co * p];
                let col = grown(col, n * p * k);
                if per_image(p, co, k) {
                    // Each image's dy [co, ho*wo] read as its transpose: no copy.
                    for (col, dy) in col.chunks_mut(p * k).zip(dy.chunks(co * p)) {
                        product(p, k, co, MatRef::transposed(dy, p), MatRef::row_major(w, k), col, false);
                    }
                } else {
                    let rows = grown(rows, n * p * co);
                    rows.par_chunks_mut(p * co).zip(dy.par_chunks(co * p)).for_each(|(r, img)| transpose(img, co, p, r)); // [n*ho*wo, co]
                    product(n * p, k, co, MatRef::row_major(rows, co), MatRef::row_major(w, k), col, false); // [n*ho*wo, ci*kh*kw]
                }
                self.col2im(col, dx);
            }
        });
        dx
    }

    /// `dw` of `y = conv(x, w)` from x and `dy` [b, co, ho, wo]: [co, ci, kh, kw], one product
    /// over the batch (chunk by chunk, each added to the last).
    pub fn backward_weight(&self, x: &[f32], dy: &[f32], product: Product) -> Vec<f32> {
        let [_, ci, h, wi] = self.x;
        let co = self.w[0];
        let (p, k, per) = self.sizes();
        let mut dw = vec![0.0f32; co * k]; // [co, ci*kh*kw]
        self.check(x.len(), dw.len(), dy.len());
        Self::with_scratch(|col, rows| {
            for (chunk, x) in x.chunks(per * ci * h * wi).enumerate() {
                let n = x.len() / (ci * h * wi);
                let dy = &dy[chunk * per * co * p..][..n * co * p];
                let col = grown(col, n * p * k);
                self.im2col(x, col); // [n*ho*wo, ci*kh*kw]
                if per_image(p, co, k) {
                    // dw += dy_i [co, ho*wo] x col_i [ho*wo, ci*kh*kw], image by image in order.
                    for (img, (dy, col)) in dy.chunks(co * p).zip(col.chunks(p * k)).enumerate() {
                        product(co, k, p, MatRef::row_major(dy, p), MatRef::row_major(col, k), &mut dw, chunk > 0 || img > 0);
                    }
                    continue;
                }
                let rows = grown(rows, n * p * co);
                rows.par_chunks_mut(p * co).zip(dy.par_chunks(co * p)).for_each(|(r, img)| transpose(img, co, p, r)); // [n*ho*wo, co]
                product(co, k, n * p, MatRef::transposed(rows, co), MatRef::row_major(col, k), &mut dw, chunk > 0);
            }
        });
        dw
    }

    /// Row (n, oy, ox) of `col` gets the patch under output pixel (oy, ox) of image n, ordered
    /// (channel, ky, kx) like a row of the weight; zeros where the window covers padding.
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let [_, ci, h, wi] = self.x;
        let [_, _, kh, kw] = self.w;
        let [_, _, ho, wo] = self.out_shape().expect("a convolution with an output");
        let ([sh, sw], [ph, pw]) = (self.stride, self.pad);
        let k = ci * kh * kw;
        col.par_chunks_mut(ho * wo * k).zip(x.par_chunks(ci * h * wi)).for_each(|(col, img)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let row = &mut col[(oy * wo + ox) * k..][..k];
                    for c in 0..ci {
                        for ky in 0..kh {
                            let dst = &mut row[(c * kh + ky) * kw..][..kw];
                            let iy = (oy * sh + ky).wrapping_sub(ph);
                            if iy >= h {
                                dst.fill(0.0); // padding (above wraps around to a huge index)
                                continue;
                            }
                            let src = &img[(c * h + iy) * wi..][..wi];
                            let ix0 = (ox * sw).wrapping_sub(pw);
                            if ix0 < wi && ix0 + kw <= wi {
                                copy_run(dst, &src[ix0..ix0 + kw]);
                            } else {
                                for (kx, d) in dst.iter_mut().enumerate() {
                                    let ix = (ox * sw + kx).wrapping_sub(pw);
                                    *d = if ix < wi { src[ix] } else { 0.0 };
                                }
                            }
                        }
                    }
                }
            }
        });
    }

    /// The adjoint of `im2col`: each row of `col` added into `x` under its window, image by image
    /// in a fixed order.
    fn col2im(&self, col: &[f32], x: &mut [f32]) {
        let [_, ci, h, wi] = self.x;
        let [_, _, kh, kw] = self.w;
        let [_, _, ho, wo] = self.out_shape().expect("a convolution with an output");
        let ([sh, sw], [ph, pw]) = (self.stride, self.pad);
        let k = ci * kh * kw;
        x.par_chunks_mut(ci * h * wi).zip(col.par_chunks(ho * wo * k)).for_each(|(img, col)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let row = &col[(oy * wo + ox) * k..][..k];
                    for c in 0..ci {
                        for ky in 0..kh {
                            let iy = (oy * sh + ky).wrapping_sub(ph);
                            if iy >= h {
                                continue;
                            }
                            let dst = &mut img[(c * h + iy) * wi..][..wi];
                            let src = &row[(c * kh + ky) * kw..][..kw];
                            let ix0 = (ox * sw).wrapping_sub(pw);
                            if ix0 < wi && ix0 + kw <= wi {
                                add_run(&mut dst[ix0..ix0 + kw], src);
                            } else {
                                for (kx, &v) in src.iter().enumerate() {
                                    let ix = (ox * sw + kx).wrapping_sub(pw);
                                    if ix < wi {
                                        dst[ix] += v;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
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

    fn tensor(v: &[f32], shape: [usize; 4]) -> Tensor<4> {
        Tensor::<4>::from_data(TensorData::new(v.to_vec(), shape), &Device::flex())
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 data")
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{what}: largest difference {worst}");
    }

    /// DCGAN's D layers (kernel 4: stride 2 pad 1, and the last 4x4 -> 1) plus odd sizes and
    /// unequal strides and paddings; burn's own conv2d on the CPU backend is the reference.
    #[test]
    fn matches_burns_conv2d() {
        let cases = [
            Conv2d { x: [2, 3, 16, 16], w: [8, 3, 4, 4], stride: [2, 2], pad: [1, 1] },
            Conv2d { x: [3, 16, 8, 8], w: [33, 16, 4, 4], stride: [2, 2], pad: [1, 1] },
            Conv2d { x: [2, 32, 4, 4], w: [1, 32, 4, 4], stride: [1, 1], pad: [0, 0] },
            Conv2d { x: [1, 5, 7, 9], w: [6, 5, 3, 3], stride: [1, 2], pad: [1, 0] },
            // 256 output pixels, 64 channels out, 72 taps: each image its own product.
            Conv2d { x: [2, 8, 16, 16], w: [64, 8, 3, 3], stride: [1, 1], pad: [1, 1] },
        ];
        for c in cases {
            let (x, w) = inputs(c.x, c.w);
            let opts = ConvOptions::new(c.stride, c.pad, [1, 1], 1);
            let want = values(conv2d(tensor(&x, c.x), tensor(&w, c.w), None, opts));
            for product in [sgemm as Product, crate_gemm as Product] {
                assert_close(&c.forward(&x, &w, product), &want, &format!("{c:?}"));
            }
        }
    }

    /// DCGAN's G layers (kernel 4: the 1x1 -> 4x4 projection, stride 2 pad 1) plus an odd one;
    /// and one image alone gives the same output, bit for bit, as within its batch.
    #[test]
    fn transposed_matches_burns_and_is_the_same_alone() {
        let cases = [
            ([3, 10, 1, 1], [10, 16, 4, 4], 1, 0),
            ([2, 16, 4, 4], [16, 8, 4, 4], 2, 1),
            ([2, 8, 8, 8], [8, 3, 4, 4], 2, 1),
            ([2, 5, 5, 7], [5, 6, 3, 3], 2, 1),
            ([2, 64, 16, 16], [64, 8, 4, 4], 2, 1),
        ];
        for (xs, ws, s, p) in cases {
            let c = Conv2d::of_transposed(xs, ws, [s, s], [p, p]).expect("an output");
            let (x, w) = inputs(xs, ws);
            let opts = ConvTransposeOptions::new([s, s], [p, p], [0, 0], [1, 1], 1);
            let y = conv_transpose2d(tensor(&x, xs), tensor(&w, ws), None, opts);
            assert_eq!(y.dims(), c.x);
            let want = values(y);
            for product in [sgemm as Product, crate_gemm as Product] {
                assert_close(&c.backward_input(&x, &w, product), &want, &format!("{xs:?} * {ws:?}"));
            }
            let all = c.backward_input(&x, &w, sgemm);
            let [b, ci, h, wi] = xs;
            let last = Conv2d { x: [1, c.x[1], c.x[2], c.x[3]], ..c };
            let alone = last.backward_input(&x[(b - 1) * ci * h * wi..], &w, sgemm);
            assert_eq!(alone[..], all[all.len() - alone.len()..], "{xs:?}: the last image alone differs");
        }
    }

    #[test]
    fn shapes_refuse_no_output() {
        assert!(Conv2d::of_transposed([1, 1, 1, 1], [1, 1, 2, 2], [1, 1], [1, 1]).is_none());
        assert!(Conv2d::of_transposed([1, 2, 1, 1], [3, 1, 2, 2], [1, 1], [0, 0]).is_none(), "channels differ");
        assert_eq!(Conv2d::of_transposed([1, 1, 4, 4], [1, 2, 4, 4], [2, 2], [1, 1]).map(|c| c.x), Some([1, 2, 8, 8]));
        assert!(Conv2d { x: [1, 1, 2, 2], w: [1, 1, 5, 5], stride: [1, 1], pad: [1, 1] }.out_shape().is_none());
    }
}
