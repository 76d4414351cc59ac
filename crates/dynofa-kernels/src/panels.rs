//! Weights of a 1×1 convolution stored column panel by column panel, the layout the AVX-512
//! product kernel reads: panel `p` holds columns `[48p, 48p + 48)` of every row,
//! contiguously (`[rows, 48]`, the last panel padded with zeros).
//!
//! A row-major matrix gives the kernel 48 columns of a row, then a jump of a whole row:
//! a stride the hardware prefetchers do not follow, so large weight matrices came from L3
//! at every block. A panel is one contiguous run. The layout is prefix-friendly like the
//! row-major one: a sub-network's top-left `k × n` block is the first `⌈n / 48⌉` panels,
//! the first `k` rows of each — one copy serves every level.

/// Columns per panel (three AVX-512 vectors).
pub const PANEL: usize = 48;

/// A `rows × cols` matrix stored as column panels (see the module).
#[derive(Debug, Clone, Default)]
pub struct PanelMatrix {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl PanelMatrix {
    /// Panels of the row-major `rows × cols` matrix `values`.
    pub fn from_row_major(values: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "{} values for a {rows}×{cols} matrix", values.len());
        let panels = cols.div_ceil(PANEL);
        let mut data = vec![0.0; panels * rows * PANEL];
        for (p, panel) in data.chunks_mut((rows * PANEL).max(1)).enumerate() {
            let (c0, width) = (p * PANEL, PANEL.min(cols - p * PANEL));
            for (r, row) in panel.chunks_mut(PANEL).enumerate() {
                row[..width].copy_from_slice(&values[r * cols + c0..r * cols + c0 + width]);
            }
        }
        PanelMatrix { data, rows, cols }
    }

    /// The top-left `rows × cols` block.
    pub fn view(&self, rows: usize, cols: usize) -> PanelRef<'_> {
        assert!(rows <= self.rows && cols <= self.cols, "{rows}×{cols} block of a {}×{} matrix", self.rows, self.cols);
        PanelRef { data: &self.data, rows, cols, panel_stride: self.rows * PANEL }
    }

    /// Bytes of values held.
    pub fn bytes(&self) -> usize {
        4 * self.data.len()
    }
}

/// A read-only top-left block of a [`PanelMatrix`]: row `r` of column `c` is at
/// `data[(c / PANEL)·panel_stride + r·PANEL + c % PANEL]`.
#[derive(Debug, Clone, Copy)]
pub struct PanelRef<'a> {
    /// Backing values (all panels of the whole matrix).
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Distance between the starts of two panels (the whole matrix's rows × [`PANEL`]).
    pub panel_stride: usize,
}

impl PanelRef<'_> {
    /// The block as a dense row-major `rows × cols` matrix.
    pub fn to_row_major(&self) -> Vec<f32> {
        (0..self.rows).flat_map(|r| (0..self.cols).map(move |c| self.data[(c / PANEL) * self.panel_stride + r * PANEL + c % PANEL])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_hold_every_value_of_any_top_left_block() {
        let (rows, cols) = (7, 101); // three panels, the last one 5 columns wide
        let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let panels = PanelMatrix::from_row_major(&values, rows, cols);
        assert_eq!(panels.bytes(), 4 * rows * 3 * PANEL);
        for (k, n) in [(7, 101), (3, 48), (7, 49), (1, 1), (5, 97)] {
            let want: Vec<f32> = (0..k).flat_map(|r| values[r * cols..r * cols + n].to_vec()).collect();
            assert_eq!(panels.view(k, n).to_row_major(), want, "{k}×{n}");
        }
    }
}
