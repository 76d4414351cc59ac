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
//!
//! # Naming
//!
//! A kernel `k` comes in variants named by a suffix, each the same computation:
//!
//! | name | what it adds |
//! |---|---|
//! | `k` | the instruction set of [`Isa::best`] (what callers use) |
//! | `k_on(isa, …)` | the instruction set chosen by the caller (tests and benches run every one) |
//! | `k_to(isa, …, layout)` | writes its output in the [`Layout`] given (channel blocks for a depthwise convolution to read) |
//! | `k_from(isa, …, layout, …)` | reads its input in the [`Layout`] given |
//! | `k_rows(…)` | a band of output rows of one image, on the calling thread (the building block of the fused [`separable`]) |
//! | `k_banded(…)` | a batch split over threads by images, else by bands of rows, as the convolution kernels split (each thread reads what it wrote) |
//!
//! Kernel bodies are `*_body` functions generic over `simd::Simd`; `multiversion!`
//! makes the `_on` variant that dispatches to one compiled copy per instruction set.
//!
//! # Instruction sets × kernels
//!
//! | kernel | AVX-512 | AVX2 + FMA | NEON | portable |
//! |---|---|---|---|---|
//! | [`pointwise`] (own tiled product, vector–matrix at batch 1) | body, 16 lanes | body, 8 lanes | body, 4 lanes | body, 1 lane, no FMA |
//! | [`pointwise`] (large row-major weights) | `gemm` crate (`x86-v4`) | `gemm` crate | `gemm` crate | `gemm` crate |
//! | [`depthwise`] (pixel-major or channel blocks in) | body | body | body | body |
//! | [`separable`] (depthwise + 1×1, fused by rows) | body | body | body | body |
//! | [`conv`] (the stem) | body | body | body | body |
//! | [`pool`] (mean, gates) and [`epilogue`] | body | body | body | body |
//!
//! "Body" is the one generic body compiled for that set; channel blocks
//! ([`Layout::ChannelBlocks`]) are used on every vector set when the channel count is a
//! multiple of the lanes ([`Layout::for_depthwise`]). `DYNOFA_ISA=avx512|avx2|neon|portable`
//! forces the choice of [`Isa::best`] (an instruction set the CPU lacks is ignored).

pub mod buffer;
pub mod conv;
pub mod depthwise;
pub mod epilogue;
pub mod isa;
pub mod layout;
pub mod matrix;
pub mod panels;
pub mod pointwise;
pub mod pool;
mod product;
pub mod separable;
pub mod shape;
mod simd;
pub mod threads;

pub use buffer::AlignedBuf;
pub use epilogue::{Activation, Epilogue};
pub use isa::Isa;
pub use layout::Layout;
pub use matrix::MatRef;
