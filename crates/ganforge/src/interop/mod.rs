//! Weights in and out of PyTorch: the layout of its reference DCGAN example ([`dcgan`]), read
//! and written through the checkpoint format of [`crate::pth`].

pub mod dcgan;
