//! The shape of a k×k convolution with "same" padding (`k / 2`), dense or depthwise.

/// Output size of a padded convolution: `(size + 2·(k/2) − k) / stride + 1`.
#[inline]
pub fn out_size(size: usize, k: usize, stride: usize) -> usize {
    (size + 2 * (k / 2) - k) / stride + 1
}

/// Input and kernel of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub channels: usize,
    /// Kernel size (odd).
    pub k: usize,
    /// Stride.
    pub stride: usize,
}

impl ConvShape {
    /// Output height and width.
    #[inline]
    pub fn out_hw(&self) -> (usize, usize) {
        (out_size(self.h, self.k, self.stride), out_size(self.w, self.k, self.stride))
    }
}
