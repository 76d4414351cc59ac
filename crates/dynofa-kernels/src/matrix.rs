//! Row-major strided matrices over `f32` slices.

/// A read-only `rows × cols` matrix whose row `r` starts at `data[r × row_stride]`
/// (elements of a row are contiguous). A prefix of rows and columns of a larger
/// matrix is a `MatRef` of the same data with a smaller `rows` / `cols`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// Backing values.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Distance between the starts of two rows (≥ `cols`).
    pub row_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense `rows × cols` matrix.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    /// A strided view; panics if it does not fit in `data`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(cols <= row_stride || rows <= 1, "row stride {row_stride} below {cols} columns");
        assert!(
            rows == 0 || cols == 0 || (rows - 1) * row_stride + cols <= data.len(),
            "{rows}×{cols} view with stride {row_stride} exceeds {} values",
            data.len()
        );
        MatRef { data, rows, cols, row_stride }
    }

    /// The top-left `rows × cols` block.
    pub fn top_left(self, rows: usize, cols: usize) -> Self {
        assert!(rows <= self.rows && cols <= self.cols, "{rows}×{cols} block of a {}×{} matrix", self.rows, self.cols);
        MatRef { rows, cols, ..self }
    }

    /// Columns `range` of every row (a view of the same data).
    pub fn columns(self, range: std::ops::Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= self.cols, "columns {range:?} of a {}-column matrix", self.cols);
        let data = if self.rows == 0 { &self.data[..0] } else { &self.data[range.start..] };
        MatRef { data, cols: range.end - range.start, ..self }
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &'a [f32] {
        &self.data[r * self.row_stride..r * self.row_stride + self.cols]
    }
}
