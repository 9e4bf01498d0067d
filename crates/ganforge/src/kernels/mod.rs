//! ganforge's own CPU kernels, below everything else (they import nothing from the crate).
//!
//! - [`gemm`]: an AVX-512 single-precision matrix product, the core of a convolution.
//! - [`conv`]: DCGAN's convolutions as one whole-batch im2col and one product, and transposed
//!   ones as one product and a col2im.
//!
//! BENCHMARKS.md ("Each convolution of the step") has what they measure against burn-flex's and
//! PyTorch's, and why they are not yet wired into training or sampling.

pub mod conv;
pub mod gemm;
