//! How an activation's values are ordered in memory.

use crate::isa::Isa;

/// Channels per block of [`Layout::ChannelBlocks`] (one AVX-512 vector of `f32`).
pub const BLOCK: usize = 16;

/// The order of an activation of `M` pixels (of one image or a batch) × `C` channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[M, C]`: each pixel's channels contiguous. Every kernel reads and writes it.
    PixelMajor,
    /// `[C / 16, M, 16]`: blocks of 16 channels, each a contiguous plane of every pixel
    /// (ONNX Runtime's NCHWc), so that the AVX-512 depthwise body reads a block's input
    /// rows as contiguous runs. Only the AVX-512 1×1 kernel writes it, for `C` a multiple
    /// of 16.
    ChannelBlocks,
}

impl Layout {
    /// The layout in which a 1×1 expansion hands `channels` channels to a depthwise
    /// convolution on `isa`: channel blocks where both run their AVX-512 bodies.
    pub fn for_depthwise(isa: Isa, channels: usize) -> Layout {
        if isa == Isa::Avx512 && isa.supported() && cfg!(target_arch = "x86_64") && channels.is_multiple_of(BLOCK) {
            Layout::ChannelBlocks
        } else {
            Layout::PixelMajor
        }
    }
}
