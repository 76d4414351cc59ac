//! How an activation's values are ordered in memory.

use crate::isa::Isa;

/// The order of an activation of `M` pixels (of one image or a batch) × `C` channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[M, C]`: each pixel's channels contiguous. Every kernel reads and writes it.
    PixelMajor,
    /// `[C / L, M, L]` for `L` lanes of the instruction set ([`Isa::lanes`]): blocks of
    /// one vector of channels, each a contiguous plane of every pixel (ONNX Runtime's
    /// NCHWc), so that the depthwise body reads a block's input rows as contiguous runs.
    /// Only the 1×1 product kernel writes it, for `C` a multiple of `L`.
    ChannelBlocks,
}

impl Layout {
    /// The layout in which a 1×1 expansion hands `channels` channels to a depthwise
    /// convolution on `isa`: channel blocks on a vector instruction set this CPU runs, for
    /// `channels` a multiple of its lanes.
    pub fn for_depthwise(isa: Isa, channels: usize) -> Layout {
        if isa != Isa::Portable && isa.supported() && channels.is_multiple_of(isa.lanes()) { Layout::ChannelBlocks } else { Layout::PixelMajor }
    }
}
