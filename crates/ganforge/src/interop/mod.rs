//! Weights in and out of PyTorch: its checkpoint format ([`pth`]) and the layout of its
//! reference DCGAN example ([`dcgan`]).

pub mod dcgan;
pub mod pth;
