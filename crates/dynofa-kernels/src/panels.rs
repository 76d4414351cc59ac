//! Weights of a 1×1 convolution stored column panel by column panel, the layout the
//! product kernel reads: with panels `W` columns wide (the kernel's column block on an
//! instruction set, [`width`]: 48 on AVX-512, 16 on AVX2 and NEON), panel `p` holds
//! columns `[W·p, W·p + W)` of every row, contiguously (`[rows, W]`, the last panel
//! padded with zeros).
//!
//! A row-major matrix gives the kernel `W` columns of a row, then a jump of a whole row:
//! a stride the hardware prefetchers do not follow, so large weight matrices came from L3
//! at every block. A panel is one contiguous run. The layout is prefix-friendly like the
//! row-major one: a sub-network's top-left `k × n` block is the first `⌈n / 48⌉` panels,
//! the first `k` rows of each — one copy serves every level.

use crate::isa::Isa;

/// Columns per panel for the product kernel on `isa`.
pub fn width(isa: Isa) -> usize {
    crate::simd::panel_width(isa)
}

/// A `rows × cols` matrix stored as column panels (see the module).
#[derive(Debug, Clone, Default)]
pub struct PanelMatrix {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    width: usize,
}

impl PanelMatrix {
    /// Panels `width` columns wide (for instruction set `isa`: [`width`]`(isa)`) of the
    /// row-major `rows × cols` matrix `values`.
    pub fn from_row_major(values: &[f32], rows: usize, cols: usize, width: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "{} values for a {rows}×{cols} matrix", values.len());
        assert!(width > 0, "panels of no column");
        let panels = cols.div_ceil(width);
        let mut data = vec![0.0; panels * rows * width];
        for (p, panel) in data.chunks_mut((rows * width).max(1)).enumerate() {
            let (c0, filled) = (p * width, width.min(cols - p * width));
            for (r, row) in panel.chunks_mut(width).enumerate() {
                row[..filled].copy_from_slice(&values[r * cols + c0..r * cols + c0 + filled]);
            }
        }
        PanelMatrix { data, rows, cols, width }
    }

    /// The top-left `rows × cols` block.
    pub fn view(&self, rows: usize, cols: usize) -> PanelRef<'_> {
        assert!(rows <= self.rows && cols <= self.cols, "{rows}×{cols} block of a {}×{} matrix", self.rows, self.cols);
        PanelRef { data: &self.data, rows, cols, width: self.width, panel_stride: self.rows * self.width }
    }

    /// Bytes of values held.
    pub fn bytes(&self) -> usize {
        4 * self.data.len()
    }
}

/// A read-only top-left block of a [`PanelMatrix`]: row `r` of column `c` is at
/// `data[(c / width)·panel_stride + r·width + c % width]`.
#[derive(Debug, Clone, Copy)]
pub struct PanelRef<'a> {
    /// Backing values (all panels of the whole matrix).
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Columns per panel.
    pub width: usize,
    /// Distance between the starts of two panels (the whole matrix's rows × `width`).
    pub panel_stride: usize,
}

impl PanelRef<'_> {
    /// The block as a dense row-major `rows × cols` matrix.
    pub fn to_row_major(&self) -> Vec<f32> {
        let w = self.width;
        (0..self.rows).flat_map(|r| (0..self.cols).map(move |c| self.data[(c / w) * self.panel_stride + r * w + c % w])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_hold_every_value_of_any_top_left_block() {
        let (rows, cols) = (7, 101); // three panels of 48, the last one 5 columns wide
        let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        assert_eq!(PanelMatrix::from_row_major(&values, rows, cols, 48).bytes(), 4 * rows * 3 * 48);
        for width in [48, 16, 8] {
            let panels = PanelMatrix::from_row_major(&values, rows, cols, width);
            for (k, n) in [(7, 101), (3, 48), (7, 49), (1, 1), (5, 97)] {
                let want: Vec<f32> = (0..k).flat_map(|r| values[r * cols..r * cols + n].to_vec()).collect();
                assert_eq!(panels.view(k, n).to_row_major(), want, "{k}×{n} in panels of {width}");
            }
        }
    }
}
