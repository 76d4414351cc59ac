//! # dynofa-kernels
//!
//! The CPU kernels the fast path runs, on plain `f32` slices in channel-major (`[C, H, W]`)
//! layout. The kernels know nothing about models (the family store in `dynofa-slice`
//! composes them); every kernel is tested against a naive implementation.
//!
//! - [`matrix`]: matrices as strided views of a slice, so that a sub-network's weights
//!   are read in place from the supernet's (a prefix of rows and columns), and GEMM
//!   through the `gemm` crate, which takes arbitrary strides.
//! - [`depthwise`]: k×k depthwise convolution with "same" padding, stride 1 or 2.
//! - [`conv`]: a small dense k×k convolution (the stem) via im2col + GEMM.
//! - [`epilogue`]: per-channel scale/shift (folded BatchNorm), activation, residual add.
//!
//! Depends on `gemm` and `rayon` only.

pub mod conv;
pub mod depthwise;
pub mod epilogue;
pub mod matrix;

pub use epilogue::Activation;
pub use matrix::MatRef;
