//! ganforge's own CPU kernels, below everything else (they import nothing from the crate); the
//! `ops` module puts them inside burn.
//!
//! - [`gemm`]: a single-precision matrix product with AVX-512, AVX2 and portable micro-kernels,
//!   chosen at run time, whose sums do not depend on the shape's other dimensions;
//! - [`conv`]: a convolution's forward, input gradient and weight gradient as one unfolding and
//!   one product each (a transposed convolution is the same three passes, roles swapped);
//! - [`norm`]: batch normalization fused with its activation, forward and backward;
//! - [`optim`]: Adam and RMSProp updates in one pass over a parameter.
//!
//! BENCHMARKS.md ("Each convolution of the step") has what they measure against burn-flex's and
//! PyTorch's.

pub mod conv;
pub mod gemm;
pub mod norm;
pub mod optim;
