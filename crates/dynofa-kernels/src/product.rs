//! The 1×1 convolution's product kernel, one body for every instruction set: `out =
//! act(input · weights × scale + shift) + residual` for one tile, in register blocks of
//! up to `rows_per_block` output rows × one panel of columns ([`Simd::PANEL_VECTORS`]
//! vectors: 8 × 48 on AVX-512, 6 × 16 on AVX2 and NEON) that accumulate over all of `K`
//! and get their epilogue in registers before their only store (the `gemm` path writes a
//! tile, then reads it back for the epilogue).
//!
//! Neither operand is packed per call: a block broadcasts its input rows' values from where they
//! are (one stream along `K` per row) and loads each weight row's panel as vectors
//! (a weight row of a sub-network is a prefix of the supernet's, contiguous; in the
//! family store the weights are column panels, [`crate::panels`], made once); the last
//! vector of a row is partial when fewer columns remain. Column blocks go outer, so that a
//! block's `K × panel` weights stay in L1/L2 while the tile's rows go by; with panels, the
//! first row blocks also request the next panel into L2 (one cache line per step along
//! `K`), so that it does not come from L3 while its own first rows wait. Full vectors are
//! stored whole: masked stores of whole vectors made the next layer, which reads them,
//! measurably slower on AVX-512 (0.3–0.5 ms per forward of the largest sub-network).

use crate::epilogue::Epilogue;
use crate::simd::{Simd, affine_activate};

/// Output rows per register block of `vectors` vectors of accumulators: three quarters
/// of the registers hold accumulators (the rest: a row of weights and a broadcast), so
/// that enough independent multiply–adds are in flight and each weight vector serves as
/// many rows as the registers allow — 8 × 3, 12 × 2, 24 × 1 with 32 registers; 6 × 2,
/// 12 × 1 with 16; 6 × 4 with NEON's 32 of 4 lanes.
const fn rows_per_block(registers: usize, vectors: usize) -> usize {
    3 * registers / 4 / vectors
}

/// One tile's product: `out[rows × cols] = act(lhs[rows × k] · weights[k × cols] × scale
/// + shift) + residual`, row strides as given (`residual` shares `out`'s pixel-major
/// one); `epilogue` covers the tile's `cols`. Weight column block `j` (a multiple of the
/// panel width from the tile's first column) is where [`Operands`] says.
pub(crate) struct TileProduct<'a> {
    output: Output,
    lhs: *const f32,
    lhs_stride: usize,
    weights: Operands,
    rows: usize,
    k: usize,
    cols: usize,
    epilogue: Epilogue<'a>,
    residual: Option<*const f32>,
}

impl<'a> TileProduct<'a> {
    /// The product of a tile (see the type).
    ///
    /// # Safety
    /// Each pointer is valid for the extents its stride and sizes describe (the weights
    /// laid out for the panel width of the instruction set that will run it); `out` does
    /// not overlap the inputs, and no one else touches the tile's output while it runs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn new(
        output: Output,
        lhs: *const f32,
        lhs_stride: usize,
        weights: Operands,
        rows: usize,
        k: usize,
        cols: usize,
        epilogue: Epilogue<'a>,
        residual: Option<*const f32>,
    ) -> Self {
        TileProduct { output, lhs, lhs_stride, weights, rows, k, cols, epilogue, residual }
    }
}

crate::multiversion! {
    /// Runs a [`TileProduct`] on the calling thread.
    pub(crate) fn multiply_tile(product: &TileProduct) => multiply_tile_body
}

#[inline(always)]
fn multiply_tile_body<S: Simd>(product: &TileProduct) {
    let &TileProduct { weights: Operands { rhs, rhs_stride, block_stride }, rows, k, cols, .. } = product;
    let columns = S::PANEL_VECTORS * S::LANES;
    for n0 in (0..cols).step_by(columns) {
        let width = (cols - n0).min(columns);
        let vectors = width.div_ceil(S::LANES);
        // The next column block's cache lines, if it is one contiguous panel (weight rows
        // one panel apart): requested into L2 while this block's first row blocks run,
        // `k` lines each.
        let next_panel = (rhs_stride == columns && n0 + columns < cols).then(|| rhs.wrapping_add((n0 / columns + 1) * block_stride));
        let lines = k * columns * size_of::<f32>() / 64;
        let mut m0 = 0;
        for (j, r) in balanced_blocks(rows, rows_per_block(S::REGISTERS, vectors)).enumerate() {
            let prefetch = match next_panel {
                Some(panel) if j * k < lines => Prefetch { from: panel.cast::<u8>().wrapping_add(j * k * 64), lines: k.min(lines - j * k) },
                _ => Prefetch::NONE,
            };
            // SAFETY: rows `m0..m0 + r` and columns `n0..n0 + width` of the tile (the
            // contract of `TileProduct::new`), `S` checked by `multiversion!`.
            unsafe {
                match vectors {
                    4 => product.rows::<S, 4>(r, m0, n0, width, prefetch),
                    3 => product.rows::<S, 3>(r, m0, n0, width, prefetch),
                    2 => product.rows::<S, 2>(r, m0, n0, width, prefetch),
                    _ => product.rows::<S, 1>(r, m0, n0, width, prefetch),
                }
            }
            m0 += r;
        }
    }
}

/// Cache lines to request into L2 during a register block, one per step along `K` (the
/// next panel of weights: the hardware prefetchers do not fetch it early enough, so
/// that each panel came from L3 while its first rows waited).
#[derive(Clone, Copy)]
struct Prefetch {
    from: *const u8,
    lines: usize,
}

impl Prefetch {
    const NONE: Prefetch = Prefetch { from: std::ptr::null(), lines: 0 };
}

/// Where a tile's output goes: row `r`'s vector `v` (columns `LANES·v..` of the tile)
/// starts at `out + r·row_stride + v·vector_stride` (pixel-major: `N` and `LANES`;
/// channel blocks: `LANES` and `LANES·M`). A residual (pixel-major outputs only) has the
/// output's row stride.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    pub out: *mut f32,
    pub row_stride: usize,
    pub vector_stride: usize,
}

/// Where a tile's weights are: column block `j` (`j` a multiple of the panel width from
/// the tile's first column) starts at `rhs + (j / width)·block_stride`, its rows
/// `rhs_stride` apart — `(row stride, width)` for row-major weights, `(width, panel
/// stride)` for panels.
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    pub rhs: *const f32,
    pub rhs_stride: usize,
    pub block_stride: usize,
}

impl TileProduct<'_> {
    /// [`TileProduct::block`] for `r ≤ rows_per_block(V)` rows (a constant per call).
    ///
    /// # Safety
    /// As [`TileProduct::block`], for each of the `r` rows' blocks.
    #[inline(always)]
    unsafe fn rows<S: Simd, const V: usize>(&self, r: usize, m0: usize, n0: usize, width: usize, prefetch: Prefetch) {
        debug_assert!(r <= rows_per_block(S::REGISTERS, V) && r <= 24 / V);
        // Each `R` up to the most this `V` ever gets (instantiated for those only).
        macro_rules! dispatch {
            ($($r:literal)*) => {
                match r {
                    // SAFETY: forwarded.
                    $($r => unsafe { self.block::<S, $r, V>(m0, n0, width, prefetch) },)*
                    // SAFETY: forwarded (`r ≥ 1`).
                    _ => unsafe { self.block::<S, 1, V>(m0, n0, width, prefetch) },
                }
            };
        }
        match V {
            1 => dispatch!(24 23 22 21 20 19 18 17 16 15 14 13 12 11 10 9 8 7 6 5 4 3 2),
            2 => dispatch!(12 11 10 9 8 7 6 5 4 3 2),
            3 => dispatch!(8 7 6 5 4 3 2),
            _ => dispatch!(6 5 4 3 2),
        }
    }

    /// Output rows `m0..m0 + R`, columns `n0..n0 + width` (`V` vectors: `width` in
    /// `LANES·(V − 1) + 1 ..= LANES·V`; lanes past it are neither read nor written).
    ///
    /// # Safety
    /// As [`TileProduct::new`], with the block inside the tile.
    #[inline(always)]
    unsafe fn block<S: Simd, const R: usize, const V: usize>(&self, m0: usize, n0: usize, width: usize, prefetch: Prefetch) {
        let last = width - S::LANES * (V - 1);
        let columns = S::PANEL_VECTORS * S::LANES;
        // SAFETY: lanes past `width` are never read or written; the rest is the caller's
        // contract.
        unsafe {
            let mut acc = [[S::zero(); V]; R];
            let lhs = self.lhs.add(m0 * self.lhs_stride);
            let Operands { rhs, rhs_stride, block_stride } = self.weights;
            let mut rhs = rhs.add((n0 / columns) * block_stride);
            for kk in 0..self.k {
                if kk < prefetch.lines {
                    S::prefetch_l2(prefetch.from.add(64 * kk));
                }
                let mut b = [S::zero(); V];
                for (v, b) in b.iter_mut().enumerate() {
                    *b = if v + 1 < V { S::load(rhs.add(S::LANES * v)) } else { S::load_n(rhs.add(S::LANES * v), last) };
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = S::splat(*lhs.add(r * self.lhs_stride + kk));
                    for (acc, &b) in acc.iter_mut().zip(&b) {
                        *acc = S::mul_add(a, b, *acc);
                    }
                }
                rhs = rhs.add(rhs_stride);
            }
            self.finish::<S, R, V>(acc, m0, n0, last);
        }
    }

    /// Applies the epilogue to a block's accumulators and stores them (the last vector of
    /// each row: its first `last` lanes).
    ///
    /// # Safety
    /// As [`TileProduct::block`]: rows `m0..m0 + R` and the `V` vectors' columns from `n0`
    /// (the last one's first `last` lanes) lie inside the tile's output.
    #[inline(always)]
    unsafe fn finish<S: Simd, const R: usize, const V: usize>(&self, acc: [[S::V; V]; R], m0: usize, n0: usize, last: usize) {
        // SAFETY: the block's own columns and rows (the caller's contract).
        unsafe {
            let mut scale = [S::zero(); V];
            let mut shift = [S::zero(); V];
            for (v, (scale, shift)) in scale.iter_mut().zip(&mut shift).enumerate() {
                let n = if v + 1 < V { S::LANES } else { last };
                *scale = S::load_n(self.epilogue.scale.as_ptr().add(n0 + S::LANES * v), n);
                *shift = S::load_n(self.epilogue.shift.as_ptr().add(n0 + S::LANES * v), n);
            }
            for (r, row) in acc.iter().enumerate() {
                let Output { out, row_stride, vector_stride } = self.output;
                let at = (m0 + r) * row_stride + n0; // the residual's (pixel-major)
                let out = out.add((m0 + r) * row_stride + n0 / S::LANES * vector_stride);
                for (v, ((&acc, &scale), &shift)) in row.iter().zip(&scale).zip(&shift).enumerate() {
                    let n = if v + 1 < V { S::LANES } else { last };
                    let mut y = affine_activate::<S>(acc, scale, shift, self.epilogue.act);
                    if let Some(residual) = self.residual {
                        y = S::add(y, S::load_n(residual.add(at + S::LANES * v), n));
                    }
                    S::store_n(out.add(v * vector_stride), y, n);
                }
            }
        }
    }
}

/// The sizes of the fewest register blocks of at most `most` rows that cover `rows`, as
/// equal as possible (49 rows in blocks of up to 8: 7 × 7, not 6 × 8 + 1, whose last
/// block of one row has 3 chains of multiply–adds for 4 cycles of latency each).
fn balanced_blocks(rows: usize, most: usize) -> impl Iterator<Item = usize> {
    let blocks = rows.div_ceil(most);
    let (base, longer) = rows.checked_div(blocks).map_or((0, 0), |base| (base, rows % blocks));
    (0..blocks).map(move |b| base + usize::from(b < longer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_blocks_cover_the_rows_in_near_equal_sizes() {
        assert_eq!(balanced_blocks(49, 8).collect::<Vec<_>>(), [7; 7]);
        assert_eq!(balanced_blocks(9, 8).collect::<Vec<_>>(), [5, 4]);
        assert_eq!(balanced_blocks(0, 8).count(), 0);
        for limit in [8, 12, 24] {
            for rows in 1..200 {
                let blocks: Vec<usize> = balanced_blocks(rows, limit).collect();
                assert_eq!(blocks.iter().sum::<usize>(), rows, "{rows} rows: {blocks:?}");
                assert_eq!(blocks.len(), rows.div_ceil(limit), "{rows} rows: {blocks:?}");
                let (least, most) = (blocks.iter().min().unwrap(), blocks.iter().max().unwrap());
                assert!(*most <= limit && most - least <= 1, "{rows} rows: {blocks:?}");
            }
        }
    }
}
