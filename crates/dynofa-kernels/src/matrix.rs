//! Row-major strided matrices over `f32` slices, and GEMM on them.

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

    /// Row `r`.
    pub fn row(&self, r: usize) -> &'a [f32] {
        &self.data[r * self.row_stride..r * self.row_stride + self.cols]
    }
}

/// `dst[m × n] = lhs[m × k] · rhs[k × n]`, `dst` dense row-major. Uses up to `threads`
/// threads (rayon).
pub fn matmul(dst: &mut [f32], lhs: MatRef, rhs: MatRef, threads: usize) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions {k} and {}", rhs.rows);
    assert!(dst.len() >= m * n, "destination of {} values for {m}×{n}", dst.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst[..m * n].fill(0.0);
        return;
    }
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the views were bounds-checked on construction and `dst` holds m × n values;
    // strides are those of row-major matrices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            1,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            1,
            rhs.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `y[m] = a[m × k] · x[k] + bias[m]` (matrix–vector product).
pub fn matvec(y: &mut [f32], a: MatRef, x: &[f32], bias: Option<&[f32]>) {
    assert_eq!(x.len(), a.cols);
    for (r, out) in y[..a.rows].iter_mut().enumerate() {
        *out = dot(a.row(r), x) + bias.map_or(0.0, |b| b[r]);
    }
}

/// Lanes of independent partial sums in [`dot`], so that the compiler vectorises it
/// (one running sum is a serial dependency chain).
const DOT_LANES: usize = 16;

/// `Σ a[i] · b[i]`, accumulated in [`DOT_LANES`] partial sums.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; DOT_LANES];
    let (a_body, a_tail) = a.split_at(a.len() - a.len() % DOT_LANES);
    let (b_body, b_tail) = b[..a.len()].split_at(a_body.len());
    for (ca, cb) in a_body.chunks_exact(DOT_LANES).zip(b_body.chunks_exact(DOT_LANES)) {
        for i in 0..DOT_LANES {
            lanes[i] += ca[i] * cb[i];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}
