//! Weights in and out of PyTorch: the layout of its reference DCGAN example ([`dcgan`]), read
//! and written, and generators of NVlabs' stylegan2-ada-pytorch ([`stylegan2`]), read, through
//! the checkpoint format of [`crate::pth`].

pub mod dcgan;
pub mod stylegan2;
