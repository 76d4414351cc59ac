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
//! - `simd` (private): the vector type and operations each kernel body is written over,
//!   once per instruction set.
//! - [`layout`]: activations pixel-major `[M, C]` or in channel blocks `[C/L, M, L]` (one
//!   vector of `L` lanes per block: what the depthwise body reads best).
//! - [`matrix`]: matrices as strided views of a slice, so that a sub-network's weights
//!   are read in place from the supernet's (a prefix of rows and columns).
//! - [`panels`]: 1×1 weights stored column panel by column panel (the product kernel's
//!   layout, panels as wide as its register block on each instruction set).
//! - [`pointwise`]: 1×1 convolutions and fully connected layers as tiled products with
//!   the epilogue fused (the own product kernel, `product` (private); large row-major
//!   weights through the `gemm` crate), vector–matrix products at batch 1.
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
//! Every kernel body is written once over `simd::Simd` and compiled per instruction set
//! (AVX-512, AVX2 + FMA, NEON, portable), its register blocks sized from the vector width
//! and register count: a gain measured on one instruction set reaches the others by
//! construction, and one test covers every variant.
//!
//! Threads come from the caller's rayon pool (or none: [`threads::serial`]). Depends on
//! `gemm` and `rayon` only.

pub mod buffer;
pub mod conv;
pub mod depthwise;
pub mod epilogue;
pub mod isa;
pub mod layout;
pub mod matrix;
pub mod panels;
pub mod pointwise;
mod product;
pub mod pool;
pub mod separable;
pub mod shape;
mod simd;
pub mod threads;

pub use buffer::AlignedBuf;
pub use epilogue::{Activation, Epilogue};
pub use isa::Isa;
pub use layout::Layout;
pub use matrix::MatRef;
