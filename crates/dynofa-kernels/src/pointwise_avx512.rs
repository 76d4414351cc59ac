//! The 1×1 convolution's AVX-512 body: `out = act(input · weights × scale + shift) +
//! residual` for one tile, in register blocks of up to 8 output rows × [`COLUMNS`] columns
//! (12 × 32, 24 × 16 for narrower blocks) that accumulate over all of `K` and get their
//! epilogue in registers before their only store (the `gemm` path writes a tile, then
//! reads it back for the epilogue).
//!
//! Neither operand is packed per call: a block broadcasts its input rows' values from where they
//! are (one stream along `K` per row) and loads each weight row's 48 columns as three vectors
//! (a weight row of a sub-network is a prefix of the supernet's, contiguous; in the
//! family store the weights are column panels, [`crate::panels`], made once); the last
//! vector of a row is masked when fewer columns remain. Column blocks go outer, so that a
//! block's `K × 48` weights stay in L1/L2 while the tile's rows go by; with panels, the
//! first row blocks also request the next panel into L2 (one cache line per step along
//! `K`), so that it does not come from L3 while its own first rows wait. Full vectors are
//! stored unmasked: masked stores of whole vectors made the next layer, which reads them,
//! measurably slower (0.3–0.5 ms per forward of the largest sub-network).

use std::arch::x86_64::*;

use crate::avx512::affine_activate;
use crate::epilogue::Epilogue;

/// Output rows per register block of `V` vectors: 8 × 3, 12 × 2 and 24 × 1 accumulators,
/// so that enough independent multiply–adds are in flight and each vector of weights
/// serves as many rows as the 32 registers allow (8 × 2 measured 5–15% slower than 8 × 3,
/// 6 × 4 no faster).
const fn rows_per_block(vectors: usize) -> usize {
    match vectors {
        3 => 8,
        2 => 12,
        _ => 24,
    }
}

/// Output columns per register block (three vectors of 16).
const COLUMNS: usize = crate::panels::PANEL;

/// `out[rows × cols] = act(lhs[rows × k] · weights[k × cols] × scale + shift) + residual`,
/// row strides as given (`residual` shares `out`'s); `epilogue` covers the tile's `cols`.
///
/// # Safety
/// The CPU has AVX-512F; each pointer is valid for the extents its stride and sizes
/// describe; `out` does not overlap the inputs.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn multiply_fused(
    output: Output,
    lhs: *const f32,
    lhs_stride: usize,
    weights: Operands,
    rows: usize,
    k: usize,
    cols: usize,
    epilogue: Epilogue,
    residual: Option<*const f32>,
) {
    let Operands { rhs, rhs_stride, block_stride } = weights;
    let tile = Tile { output, lhs, lhs_stride, rhs, rhs_stride, block_stride, k, epilogue, residual };
    for n0 in (0..cols).step_by(COLUMNS) {
        let width = (cols - n0).min(COLUMNS);
        let vectors = width.div_ceil(16);
        // The next column block's cache lines, if it is one contiguous panel (weight rows
        // `COLUMNS` apart): requested into L2 while this block's first row blocks run, `k`
        // lines each.
        let next_panel = (rhs_stride == COLUMNS && n0 + COLUMNS < cols).then(|| {
            // SAFETY: the next block is part of the tile's weights.
            unsafe { rhs.add((n0 / COLUMNS + 1) * block_stride) }
        });
        let lines = k * COLUMNS * size_of::<f32>() / 64;
        let mut m0 = 0;
        for (j, r) in balanced_blocks(rows, rows_per_block(vectors)).enumerate() {
            let prefetch = match next_panel {
                Some(panel) if j * k < lines => Prefetch { from: panel.cast::<u8>().wrapping_add(j * k * 64), lines: k.min(lines - j * k) },
                _ => Prefetch::NONE,
            };
            // SAFETY: rows `m0..m0 + r` and columns `n0..n0 + width` of the tile.
            unsafe {
                match vectors {
                    3 => tile.rows::<3>(r, m0, n0, width, prefetch),
                    2 => tile.rows::<2>(r, m0, n0, width, prefetch),
                    _ => tile.rows::<1>(r, m0, n0, width, prefetch),
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

/// Where a tile's output goes: row `r`'s vector `v` (columns `16·v..`) starts at
/// `out + r·row_stride + v·vector_stride` (pixel-major: `N` and 16; channel blocks: 16 and
/// `16·M`). A residual (pixel-major outputs only) has the output's row stride.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    pub out: *mut f32,
    pub row_stride: usize,
    pub vector_stride: usize,
}

/// Where a tile's weights are: column block `j` (`j` a multiple of [`COLUMNS`] from the
/// tile's first column) starts at `rhs + (j / COLUMNS)·block_stride`, its rows
/// `rhs_stride` apart — `(row stride, COLUMNS)` for row-major weights, `(COLUMNS, panel
/// stride)` for panels.
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    pub rhs: *const f32,
    pub rhs_stride: usize,
    pub block_stride: usize,
}

/// The operands of one tile (see [`multiply_fused`]).
struct Tile<'a> {
    output: Output,
    lhs: *const f32,
    lhs_stride: usize,
    rhs: *const f32,
    rhs_stride: usize,
    block_stride: usize,
    k: usize,
    epilogue: Epilogue<'a>,
    residual: Option<*const f32>,
}

impl Tile<'_> {
    /// [`Tile::block`] for `r ≤ rows_per_block(V)` rows (a constant per call).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn rows<const V: usize>(&self, r: usize, m0: usize, n0: usize, width: usize, prefetch: Prefetch) {
        debug_assert!(r <= rows_per_block(V));
        // SAFETY: forwarded.
        unsafe {
            match r {
                24 if V == 1 => self.block::<24, 1>(m0, n0, width, prefetch),
                23 if V == 1 => self.block::<23, 1>(m0, n0, width, prefetch),
                22 if V == 1 => self.block::<22, 1>(m0, n0, width, prefetch),
                21 if V == 1 => self.block::<21, 1>(m0, n0, width, prefetch),
                20 if V == 1 => self.block::<20, 1>(m0, n0, width, prefetch),
                19 if V == 1 => self.block::<19, 1>(m0, n0, width, prefetch),
                18 if V == 1 => self.block::<18, 1>(m0, n0, width, prefetch),
                17 if V == 1 => self.block::<17, 1>(m0, n0, width, prefetch),
                16 if V == 1 => self.block::<16, 1>(m0, n0, width, prefetch),
                15 if V == 1 => self.block::<15, 1>(m0, n0, width, prefetch),
                14 if V == 1 => self.block::<14, 1>(m0, n0, width, prefetch),
                13 if V == 1 => self.block::<13, 1>(m0, n0, width, prefetch),
                12 if V <= 2 => self.block::<12, V>(m0, n0, width, prefetch),
                11 if V <= 2 => self.block::<11, V>(m0, n0, width, prefetch),
                10 if V <= 2 => self.block::<10, V>(m0, n0, width, prefetch),
                9 if V <= 2 => self.block::<9, V>(m0, n0, width, prefetch),
                8 => self.block::<8, V>(m0, n0, width, prefetch),
                7 => self.block::<7, V>(m0, n0, width, prefetch),
                6 => self.block::<6, V>(m0, n0, width, prefetch),
                5 => self.block::<5, V>(m0, n0, width, prefetch),
                4 => self.block::<4, V>(m0, n0, width, prefetch),
                3 => self.block::<3, V>(m0, n0, width, prefetch),
                2 => self.block::<2, V>(m0, n0, width, prefetch),
                _ => self.block::<1, V>(m0, n0, width, prefetch),
            }
        }
    }

    /// Output rows `m0..m0 + R`, columns `n0..n0 + width` (`V` vectors of 16: `width` in
    /// `16·(V − 1) + 1 ..= 16·V`; lanes past it are masked off in every load and store).
    ///
    /// # Safety
    /// As [`multiply_fused`], with the block inside the tile.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const R: usize, const V: usize>(&self, m0: usize, n0: usize, width: usize, prefetch: Prefetch) {
        let last = lanes(width - 16 * (V - 1));
        // SAFETY: masked-off lanes are never read or written (AVX-512 masked accesses do
        // not fault on them); the rest is the caller's contract.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            let lhs = self.lhs.add(m0 * self.lhs_stride);
            let mut rhs = self.rhs.add((n0 / COLUMNS) * self.block_stride);
            for kk in 0..self.k {
                if kk < prefetch.lines {
                    _mm_prefetch::<_MM_HINT_T1>(prefetch.from.add(64 * kk).cast());
                }
                let mut b = [_mm512_setzero_ps(); V];
                for (v, b) in b.iter_mut().enumerate() {
                    *b = if v + 1 < V { _mm512_loadu_ps(rhs.add(16 * v)) } else { _mm512_maskz_loadu_ps(last, rhs.add(16 * v)) };
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*lhs.add(r * self.lhs_stride + kk));
                    for (acc, &b) in acc.iter_mut().zip(&b) {
                        *acc = _mm512_fmadd_ps(a, b, *acc);
                    }
                }
                rhs = rhs.add(self.rhs_stride);
            }
            self.finish(acc, m0, n0, last);
        }
    }

    /// Applies the epilogue to a block's accumulators and stores them (the last vector of
    /// each row through `last`).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn finish<const R: usize, const V: usize>(&self, acc: [[__m512; V]; R], m0: usize, n0: usize, last: __mmask16) {
        // SAFETY: the block's own columns and rows (the caller's contract).
        unsafe {
            let mut scale = [_mm512_setzero_ps(); V];
            let mut shift = [_mm512_setzero_ps(); V];
            for (v, (scale, shift)) in scale.iter_mut().zip(&mut shift).enumerate() {
                let mask = if v + 1 < V { lanes(16) } else { last };
                *scale = _mm512_maskz_loadu_ps(mask, self.epilogue.scale.as_ptr().add(n0 + 16 * v));
                *shift = _mm512_maskz_loadu_ps(mask, self.epilogue.shift.as_ptr().add(n0 + 16 * v));
            }
            for (r, row) in acc.iter().enumerate() {
                let Output { out, row_stride, vector_stride } = self.output;
                let at = (m0 + r) * row_stride + n0; // the residual's (pixel-major)
                let out = out.add((m0 + r) * row_stride + n0 / 16 * vector_stride);
                for (v, ((&acc, &scale), &shift)) in row.iter().zip(&scale).zip(&shift).enumerate() {
                    let mut y = affine_activate(acc, scale, shift, self.epilogue.act);
                    if let Some(residual) = self.residual {
                        let mask = if v + 1 < V { lanes(16) } else { last };
                        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, residual.add(at + 16 * v)));
                    }
                    if v + 1 < V {
                        _mm512_storeu_ps(out.add(v * vector_stride), y);
                    } else {
                        _mm512_mask_storeu_ps(out.add(v * vector_stride), last, y);
                    }
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

/// A mask of the first `n ≤ 16` lanes.
fn lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
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
