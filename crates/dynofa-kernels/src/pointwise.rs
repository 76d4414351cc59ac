//! 1×1 convolution (and fully connected layer) on pixel-major activations, as a GEMM with
//! the epilogue fused: `out[M, N] = epilogue(input[M, K] · weights[K, N]) (+ residual)`.
//!
//! `M` is pixels (× images), `K` input channels, `N` output channels. The weights are
//! `[in, out]` (PyTorch's transposed), either row-major through a strided view or as
//! column panels ([`crate::panels`]), a sub-network's prefix of rows and columns in both.
//! The output is cut into tiles — blocks of rows, and of columns when there are too few
//! rows to keep every thread busy. A tile goes through the own kernel of `product`
//! (epilogue in registers, one body for every instruction set), or — large row-major
//! weights — is multiplied by the `gemm` crate (one thread) and finished by the epilogue
//! while it is still in cache. Products of at most `GEMV_ROWS` (2) rows are
//! vector–matrix products.

use crate::epilogue::{Epilogue, apply_row_on};
use crate::isa::Isa;
use crate::layout::Layout;
use crate::matrix::MatRef;
use crate::panels::PanelRef;
use crate::product::{Operands, Output, TileProduct, multiply_tile};
use crate::simd::{Simd, panel_width};

/// Rows per tile: the tile's output and input stay in L2 while the epilogue runs.
const ROW_TILE: usize = 512;
/// From this many rows on, threads split rows (below, they split columns). Low enough that
/// every convolution layer (7×7 = 49 pixels at the smallest) splits rows like the
/// depthwise kernels do, so that each thread reads back what it wrote: measured on 2
/// threads, 256 (columns at 14×14 and 7×7) was 5–10% slower on whole networks.
const ROW_SPLIT_MIN: usize = 32;

/// Up to this many rows, each row is a vector–matrix product (no packing, one pass over
/// the weights): squeeze-and-excitation and the classifier at batch 1.
const GEMV_ROWS: usize = 2;

/// Weight rows a vector–matrix product reads at once (streams from memory in flight).
const GEMV_STREAMS: usize = 8;

/// Vectors of the output a vector–matrix product accumulates at once.
const GEMV_VECTORS: usize = 4;

/// Row-major weights (`K × N` values) up to which the product runs through the own
/// kernel (panels always do): its strided reads of the weights then hit L1/L2 after the
/// first row block. Larger row-major weights come from L3 at every block and go through
/// `gemm`, whose packing reads them in order: measured on AVX-512 on the largest
/// sub-network, the own kernel on row-major weights made the 14×14 and 7×7 expansions
/// (up to 192 × 1152 weights) 10–40% slower, and the first block's 24 × 24 product 30%
/// faster. (The family store gives its 1×1 weights as panels; row-major weights come
/// from fully connected layers at batch > 2 and direct callers.)
const OWN_KERNEL_MAX_WEIGHTS: usize = 16 * 1024;

/// A raw output pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint tiles of the output (see `pointwise`).
unsafe impl Send for SharedOut {}
// SAFETY: as for `Send`: no two tasks write the same tile, and none reads another's.
unsafe impl Sync for SharedOut {}

/// `out[M, N] = epilogue(input[M, K] · weights[K, N]) + residual[M, N]`, with `out` and
/// `residual` dense row-major. Runs on the current rayon pool.
pub fn pointwise<'w>(input: MatRef, weights: impl Into<Weights<'w>>, epilogue: Epilogue, residual: Option<&[f32]>, out: &mut [f32]) {
    pointwise_on(Isa::best(), input, weights, epilogue, residual, out)
}

/// The weights `[K, N]` of a product, in either layout.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    /// Row-major (a strided view).
    RowMajor(MatRef<'a>),
    /// Column panels ([`crate::panels`]): what the product kernel reads best. Panels of
    /// another width than the instruction set's kernel (see [`PanelRef::width`]) are
    /// copied to row-major first (correct, not fast: the family store makes them for
    /// the instruction set it runs).
    Panels(PanelRef<'a>),
}

impl<'a> From<MatRef<'a>> for Weights<'a> {
    fn from(weights: MatRef<'a>) -> Self {
        Weights::RowMajor(weights)
    }
}

impl<'a> From<PanelRef<'a>> for Weights<'a> {
    fn from(weights: PanelRef<'a>) -> Self {
        Weights::Panels(weights)
    }
}

impl Weights<'_> {
    /// `(K, N)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Weights::RowMajor(w) => (w.rows, w.cols),
            Weights::Panels(w) => (w.rows, w.cols),
        }
    }
}

/// [`pointwise`] with the instruction set of its own loops (vector–matrix products,
/// epilogues) chosen by the caller; the GEMM crate picks its own.
pub fn pointwise_on<'w>(isa: Isa, input: MatRef, weights: impl Into<Weights<'w>>, epilogue: Epilogue, residual: Option<&[f32]>, out: &mut [f32]) {
    pointwise_to(isa, input, weights, epilogue, residual, out, Layout::PixelMajor)
}

/// [`pointwise_on`] writing `out` in `layout`: [`Layout::ChannelBlocks`] (`[N/L, M, L]`
/// for `L` lanes, for a depthwise convolution to read; no residual) needs what
/// [`Layout::for_depthwise`] checks, and always runs the own kernel.
pub fn pointwise_to<'w>(
    isa: Isa,
    input: MatRef,
    weights: impl Into<Weights<'w>>,
    epilogue: Epilogue,
    residual: Option<&[f32]>,
    out: &mut [f32],
    layout: Layout,
) {
    let weights = weights.into();
    let (m, k, n) = (input.rows, input.cols, weights.shape().1);
    assert_eq!(weights.shape().0, k, "weights of {} inputs for {k} input channels", weights.shape().0);
    assert_eq!(epilogue.len(), n, "epilogue of {} channels for {n} outputs", epilogue.len());
    assert!(out.len() >= m * n, "output of {} values for {m}×{n}", out.len());
    if let Some(r) = residual {
        assert!(r.len() >= m * n, "residual of {} values for {m}×{n}", r.len());
    }
    if m == 0 || n == 0 {
        return;
    }
    let blocked = layout == Layout::ChannelBlocks;
    if blocked {
        assert!(
            Layout::for_depthwise(isa, n) == Layout::ChannelBlocks && residual.is_none(),
            "channel blocks need a vector instruction set, N a multiple of its lanes and no residual (N = {n}, {isa:?})"
        );
    }
    let panel = panel_width(isa);
    let weights = match weights {
        Weights::Panels(panels) if panels.width != panel || (m <= GEMV_ROWS && !blocked) => {
            let dense = panels.to_row_major();
            return pointwise_on(isa, input, MatRef::dense(&dense, k, n), epilogue, residual, out);
        }
        weights => weights,
    };
    if let (true, Weights::RowMajor(weights)) = (m <= GEMV_ROWS && !blocked, weights) {
        gemv_rows(isa, input, weights, epilogue, residual, out);
        return;
    }
    // Below this much work a task costs more than it saves.
    let threads = crate::threads::for_work(m * n * k);
    // One task per thread, each a contiguous part of the output (so that a thread keeps
    // the rows the previous kernel's same-numbered task wrote): blocks of rows when there
    // are enough (every convolution), else blocks of columns (fully connected layers of a
    // batch: each task then reads and packs only its slice of the weights). A task goes through
    // its part `ROW_TILE` rows at a time.
    let (part_rows, column_block) = if m >= ROW_SPLIT_MIN || threads == 1 { (m.div_ceil(threads), n) } else { (m, column_block(n, threads, panel)) };
    let (row_parts, column_blocks) = (m.div_ceil(part_rows), n.div_ceil(column_block));
    let dst = SharedOut(out.as_mut_ptr());
    crate::threads::for_each_task(row_parts * column_blocks, |part| {
        let (p0, c0) = ((part / column_blocks) * part_rows, (part % column_blocks) * column_block);
        let cols = column_block.min(n - c0);
        let epilogue = epilogue.columns(c0..c0 + cols);
        #[allow(clippy::redundant_locals)] // capture the whole `Send` wrapper, not its raw pointer
        let dst = dst;
        for r0 in (p0..(p0 + part_rows).min(m)).step_by(ROW_TILE) {
            let rows = ROW_TILE.min((p0 + part_rows).min(m) - r0);
            // SAFETY: the tile `[r0, r0 + rows) × [c0, c0 + cols)` lies inside `out` (m × n
            // values, checked above) and no other task touches it; `input` and `weights` were
            // bounds-checked as views. Rows of a tile are only materialised as slices of
            // their own `cols` values, so no two tasks hold overlapping slices.
            unsafe {
                let tile_out = dst.0.add(r0 * n + c0);
                if blocked || matches!(weights, Weights::Panels(_)) || k * n <= OWN_KERNEL_MAX_WEIGHTS {
                    // Column block `j` (from `c0`, a multiple of the panel width) starts at
                    // `rhs + (j / panel)·block_stride`; rows follow `rhs_stride` apart.
                    let (rhs, rhs_stride, block_stride) = match weights {
                        Weights::RowMajor(w) => (w.data.as_ptr().add(c0), w.row_stride, panel),
                        Weights::Panels(w) => (w.data.as_ptr().add((c0 / panel) * w.panel_stride), panel, w.panel_stride),
                    };
                    let lhs = input.data.as_ptr().add(r0 * input.row_stride);
                    let residual = residual.map(|res| res.as_ptr().add(r0 * n + c0));
                    // Where the tile's first output vector goes, and how far apart rows and
                    // vectors of `lanes` columns are.
                    let lanes = isa.lanes();
                    let output = match layout {
                        Layout::PixelMajor => Output { out: tile_out, row_stride: n, vector_stride: lanes },
                        Layout::ChannelBlocks => Output { out: dst.0.add(c0 / lanes * m * lanes + r0 * lanes), row_stride: lanes, vector_stride: m * lanes },
                    };
                    let product =
                        TileProduct::new(output, lhs, input.row_stride, Operands { rhs, rhs_stride, block_stride }, rows, k, cols, epilogue, residual);
                    multiply_tile(isa, &product);
                    continue;
                }
                let Weights::RowMajor(weights) = weights else { unreachable!("panels go to the own kernel or were copied") };
                multiply(
                    tile_out,
                    n,
                    input.data.as_ptr().add(r0 * input.row_stride),
                    input.row_stride,
                    weights.data.as_ptr().add(c0),
                    weights.row_stride,
                    rows,
                    k,
                    cols,
                );
                for r in 0..rows {
                    let row = std::slice::from_raw_parts_mut(tile_out.add(r * n), cols);
                    let residual = residual.map(|res| &res[(r0 + r) * n + c0..(r0 + r) * n + c0 + cols]);
                    apply_row_on(isa, row, epilogue, residual);
                }
            }
        }
    });
}

/// `dst[rows × cols] (row stride dst_stride) = lhs[rows × k] (row stride lhs_stride) ·
/// rhs[k × cols] (row stride rhs_stride)`. One thread.
///
/// # Safety
/// Every pointer must be valid for the extents its strides and sizes describe.
#[allow(clippy::too_many_arguments)]
unsafe fn multiply(
    dst: *mut f32,
    dst_stride: usize,
    lhs: *const f32,
    lhs_stride: usize,
    rhs: *const f32,
    rhs_stride: usize,
    rows: usize,
    k: usize,
    cols: usize,
) {
    if k == 0 {
        for r in 0..rows {
            // SAFETY: inside the destination tile (caller's contract).
            unsafe { std::slice::from_raw_parts_mut(dst.add(r * dst_stride), cols) }.fill(0.0);
        }
        return;
    }
    // SAFETY: forwarded from the caller; gemm reads lhs(i, j) at lhs + i·lhs_stride + j and
    // rhs(j, c) at rhs + j·rhs_stride + c (arguments: column stride, then row stride).
    unsafe {
        gemm::gemm(
            rows,
            cols,
            k,
            dst,
            1,
            dst_stride as isize,
            false,
            lhs,
            1,
            lhs_stride as isize,
            rhs,
            1,
            rhs_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Each of the `m ≤ GEMV_ROWS` rows as a vector–matrix product, the columns split over
/// the threads when the weights are large (reading them is the whole cost: one stream of
/// memory per thread, each over its own block of columns).
fn gemv_rows(isa: Isa, input: MatRef, weights: MatRef, epilogue: Epilogue, residual: Option<&[f32]>, out: &mut [f32]) {
    let (m, k, n) = (input.rows, input.cols, weights.cols);
    let threads = crate::threads::for_work(k * n);
    let column_block = column_block(n, threads, isa.lanes());
    let dst = SharedOut(out.as_mut_ptr());
    crate::threads::for_each_task(n.div_ceil(column_block), |block| {
        let c0 = block * column_block;
        let cols = column_block.min(n - c0);
        let (weights, epilogue) = (weights.columns(c0..c0 + cols), epilogue.columns(c0..c0 + cols));
        #[allow(clippy::redundant_locals)] // capture the whole `Send` wrapper, not its raw pointer
        let dst = dst;
        for r in 0..m {
            // SAFETY: row `r`, columns `[c0, c0 + cols)` of `out` (m × n values, checked by
            // the caller): no other task touches them.
            let y = unsafe { std::slice::from_raw_parts_mut(dst.0.add(r * n + c0), cols) };
            let x = &input.data[r * input.row_stride..r * input.row_stride + k];
            gemv_on(isa, x, weights, y);
            apply_row_on(isa, y, epilogue, residual.map(|res| &res[r * n + c0..r * n + c0 + cols]));
        }
    });
}

/// Columns per task when `threads` tasks split `n` columns: multiples of `grain` (whole
/// panels, or vectors).
fn column_block(n: usize, threads: usize, grain: usize) -> usize {
    n.div_ceil(threads).next_multiple_of(grain).min(n)
}

crate::multiversion! {
    /// `y[N] = x[K] · weights[K, N]`: rows of the weights scaled and summed, vectorised
    /// along `N`, reading the weights once, [`GEMV_STREAMS`] rows per pass over `y`.
    fn gemv_on(x: &[f32], weights: MatRef, y: &mut [f32]) => gemv_body
}

#[inline(always)]
fn gemv_body<S: Simd>(x: &[f32], weights: MatRef, y: &mut [f32]) {
    let n = weights.cols;
    let y = &mut y[..n];
    y.fill(0.0);
    let k = weights.rows.min(x.len());
    // Rows in groups of up to `GEMV_STREAMS`: that many streams from memory at once, and
    // `y` loaded and stored once per group, `GEMV_VECTORS` vectors of it at a time (as
    // many independent chains of multiply–adds).
    let step = GEMV_VECTORS * S::LANES;
    for j0 in (0..k).step_by(GEMV_STREAMS) {
        let group = GEMV_STREAMS.min(k - j0);
        let rows: [*const f32; GEMV_STREAMS] = std::array::from_fn(|i| weights.row(j0 + i.min(group - 1)).as_ptr());
        let xs: [S::V; GEMV_STREAMS] = std::array::from_fn(|i| S::splat(if i < group { x[j0 + i] } else { 0.0 }));
        let mut c0 = 0;
        while c0 + step <= n {
            // SAFETY: `step` values from column `c0` of `y` and of each row (`n` values).
            unsafe {
                let mut acc: [S::V; GEMV_VECTORS] = std::array::from_fn(|v| S::load(y.as_ptr().add(c0 + v * S::LANES)));
                for i in 0..group {
                    for (v, acc) in acc.iter_mut().enumerate() {
                        *acc = S::mul_add(xs[i], S::load(rows[i].add(c0 + v * S::LANES)), *acc);
                    }
                }
                for (v, &acc) in acc.iter().enumerate() {
                    S::store(y.as_mut_ptr().add(c0 + v * S::LANES), acc);
                }
            }
            c0 += step;
        }
        for c0 in (c0..n).step_by(S::LANES) {
            let lanes = S::LANES.min(n - c0);
            // SAFETY: `lanes` values from column `c0` of `y` and of each row.
            unsafe {
                let mut acc = S::load_n(y.as_ptr().add(c0), lanes);
                for i in 0..group {
                    acc = S::mul_add(xs[i], S::load_n(rows[i].add(c0), lanes), acc);
                }
                S::store_n(y.as_mut_ptr().add(c0), acc, lanes);
            }
        }
    }
}
