//! A depthwise convolution followed by a 1×1 convolution — a depthwise-separable
//! convolution, MobileNet's block without squeeze-and-excitation — a few output rows at a
//! time: each thread convolves a chunk of its band of rows into its own scratch and
//! projects that chunk at once, while it is still in cache. The depthwise output, the
//! block's widest activation (2.4 MB at 56×56×192, more than L2), is then never written
//! out to L3 and read back.

use rayon::prelude::*;

use crate::buffer::AlignedBuf;
use crate::depthwise::depthwise_rows;
use crate::epilogue::Epilogue;
use crate::isa::Isa;
use crate::layout::Layout;
use crate::matrix::MatRef;
use crate::pointwise::{Weights, pointwise_to};
use crate::shape::ConvShape;
use crate::threads;

/// Values of depthwise output a chunk aims at (128 KB: well inside L2, next to the
/// projection's weights).
const CHUNK_VALUES: usize = 32 * 1024;

/// The depthwise step: `[B, h, w, C]` → `[B, ho, wo, C]`.
#[derive(Debug, Clone, Copy)]
pub struct Depthwise<'a> {
    /// Input size, channels, kernel size and stride.
    pub shape: ConvShape,
    /// Kernels `[k², C]` (see [`crate::depthwise::depthwise`]).
    pub kernels: MatRef<'a>,
    /// Per-channel epilogue (`C` channels).
    pub epilogue: Epilogue<'a>,
}

/// The 1×1 step: `[B·ho·wo, C]` → `[B·ho·wo, N]`.
#[derive(Debug, Clone, Copy)]
pub struct Pointwise<'a> {
    /// Weights `[C, N]`.
    pub weights: Weights<'a>,
    /// Per-channel epilogue (`N` channels).
    pub epilogue: Epilogue<'a>,
}

/// `out = pointwise(depthwise(input)) + residual` for a batch of `batch` images: `input`
/// `[B, h, w, C]` in `layout` (see [`crate::depthwise::depthwise_from`]), `out` and
/// `residual` pixel-major `[B, ho, wo, N]`. `scratch` holds each thread's chunk (grown
/// when needed). Runs on the current rayon pool, one band of output rows per thread, the
/// bands running across image boundaries.
#[allow(clippy::too_many_arguments)]
pub fn separable(
    isa: Isa,
    input: &[f32],
    layout: Layout,
    batch: usize,
    depthwise: Depthwise,
    pointwise: Pointwise,
    residual: Option<&[f32]>,
    scratch: &mut AlignedBuf,
    out: &mut [f32],
) {
    let ConvShape { channels: c, k, .. } = depthwise.shape;
    let (ho, wo) = depthwise.shape.out_hw();
    let (weight_rows, n) = pointwise.weights.shape();
    assert_eq!(weight_rows, c, "1×1 weights of {weight_rows} inputs after a depthwise convolution of {c} channels");
    let (rows, row_out) = (batch * ho, wo * n);
    assert!(out.len() >= rows * row_out, "output of {} values for {batch}×{ho}×{wo}×{n}", out.len());
    if let Some(r) = residual {
        assert!(r.len() >= rows * row_out, "residual of {} values for {batch}×{ho}×{wo}×{n}", r.len());
    }
    if rows * wo * c * n == 0 {
        return;
    }
    let threads = threads::for_work(rows * wo * c * (k * k + n));
    let band = rows.div_ceil(threads);
    let chunk = chunk_rows(wo * c).min(band);
    scratch.reserve(threads * chunk * wo * c);
    // Band `t`: output rows `t·band..` of the whole batch (row `g` is row `g % ho` of
    // image `g / ho`), `chunk` rows at a time, a chunk never crossing into the next image.
    let run_band = |t: usize, out: &mut [f32], scratch: &mut [f32]| {
        let (first, end) = (t * band, ((t + 1) * band).min(rows));
        let mut g = first;
        while g < end {
            let (b, oy) = (g / ho, g % ho);
            let n_rows = chunk.min(end - g).min(ho - oy);
            let pixels = n_rows * wo;
            let conv = &mut scratch[..pixels * c];
            depthwise_rows(isa, input, layout, batch, b, depthwise.shape, depthwise.kernels, depthwise.epilogue, oy, conv);
            let done = (g - first) * row_out;
            let residual = residual.map(|r| &r[g * row_out..(g + n_rows) * row_out]);
            let out = &mut out[done..done + n_rows * row_out];
            threads::serial(|| pointwise_to(isa, MatRef::dense(conv, pixels, c), pointwise.weights, pointwise.epilogue, residual, out, Layout::PixelMajor));
            g += n_rows;
        }
    };
    let (out, scratch) = (&mut out[..rows * row_out], &mut scratch[..threads * chunk * wo * c]);
    if threads == 1 {
        run_band(0, out, scratch);
    } else {
        out.par_chunks_mut(band * row_out).zip(scratch.par_chunks_mut(chunk * wo * c)).enumerate().for_each(|(t, (out, scratch))| run_band(t, out, scratch));
    }
}

/// Output rows per chunk for rows of `row_values` depthwise outputs: about
/// [`CHUNK_VALUES`], and an even number (the depthwise bodies run two rows at a time).
fn chunk_rows(row_values: usize) -> usize {
    (CHUNK_VALUES / row_values.max(1)).max(2) & !1
}
