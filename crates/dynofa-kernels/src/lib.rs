//! # dynofa-kernels
//!
//! The CPU kernels the fast path runs, on plain `f32` slices in pixel-major layout
//! (`[B, H, W, C]`: channels contiguous, so that channels are the vector dimension). The
//! kernels know nothing about models (the family store in `dynofa-slice` composes them);
//! every kernel is tested against a naive implementation, for every instruction set the
//! CPU offers and for the portable fallback.
//!
//! - [`buffer`]: 64-byte-aligned activation buffers.
//! - [`isa`]: run-time choice of AVX-512 / AVX2+FMA / NEON / portable code.
//! - [`layout`]: activations pixel-major `[M, C]` or in channel blocks `[C/16, M, 16]`
//!   (what the AVX-512 depthwise body reads best).
//! - [`matrix`]: matrices as strided views of a slice, so that a sub-network's weights
//!   are read in place from the supernet's (a prefix of rows and columns).
//! - [`panels`]: 1×1 weights stored column panel by column panel (AVX-512 kernel layout).
//! - [`pointwise`]: 1×1 convolutions and fully connected layers as tiled products with
//!   the epilogue fused (the AVX-512 kernel, else the `gemm` crate), vector–matrix
//!   products at batch 1.
//! - [`depthwise`]: k×k depthwise convolution with "same" padding, stride 1 or 2, epilogue
//!   fused.
//! - [`separable`]: a depthwise convolution and the 1×1 convolution after it, a few rows
//!   at a time (the depthwise output stays in cache).
//! - [`conv`]: a direct dense k×k convolution of few input channels (the stem).
//! - [`epilogue`]: per-channel scale/shift (folded BatchNorm or bias), activation,
//!   residual add.
//! - [`shape`]: the shape of a k×k convolution (dense or depthwise) and its output size.
//! - [`pool`]: global average pooling and per-channel gating (squeeze-and-excitation).
//! - [`threads`]: how kernels split work: tasks on the current rayon pool, or the calling
//!   thread alone.
//!
//! The hottest bodies also exist in AVX-512 intrinsics (private modules `*_avx512`:
//! depthwise, 1×1 product, stem), chosen at run time like the rest; their tests are the
//! same as the generic bodies'.
//!
//! Threads come from the caller's rayon pool (or none: [`threads::serial`]). Depends on
//! `gemm` and `rayon` only.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod buffer;
pub mod conv;
#[cfg(target_arch = "x86_64")]
mod conv_avx512;
pub mod depthwise;
#[cfg(target_arch = "x86_64")]
mod depthwise_avx512;
pub mod epilogue;
pub mod isa;
pub mod layout;
pub mod matrix;
pub mod panels;
pub mod pointwise;
#[cfg(target_arch = "x86_64")]
mod pointwise_avx512;
pub mod pool;
pub mod separable;
pub mod shape;
pub mod threads;

pub use buffer::AlignedBuf;
pub use epilogue::{Activation, Epilogue};
pub use isa::Isa;
pub use layout::Layout;
pub use matrix::MatRef;
