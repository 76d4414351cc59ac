//! Depthwise k×k convolution ("same" padding `k / 2`, stride 1 or 2) on pixel-major
//! images `[H, W, C]`, with the per-channel epilogue fused.
//!
//! Channels are the vector dimension: each output pixel accumulates `k²` products of a
//! kernel tap `[C]` and an input pixel `[C]`, one vector of channels at a time. One body
//! for every instruction set (`simd` (private)): register blocks of `R` output rows × `P`
//! pixels × one vector of accumulators, sized from the registers (2 × 8 at stride 1 with
//! 32 registers: 16 accumulators, 14 window columns); per input row, a window of input
//! columns is loaded once and every tap that reads it is applied from registers. Blocks
//! whose window crosses the image's left or right edge check each column.
//!
//! It reads pixel-major images or channel blocks ([`Layout`]); from channel blocks, the
//! input rows of a block of channels are contiguous runs, which the hardware prefetchers
//! follow, where pixel-major rows interleave every channel.
//!
//! About 450 lines, one concept: the entry points, the register-blocked body and its
//! block shapes, and the plain fallback for other kernel sizes stay together because they
//! share the input views and the row-band arithmetic.

use crate::epilogue::Epilogue;
use crate::isa::Isa;
use crate::layout::Layout;
use crate::matrix::MatRef;
use crate::shape::{ConvShape, out_size};
use crate::simd::{Simd, affine_activate};
use crate::threads;

/// `out[b] = epilogue(kernels ⊛ input[b])` for each image `b` of `input = [B, h, w, C]`,
/// `out = [B, ho, wo, C]`. `kernels` is `[k², C]`: row `ky·k + kx` holds that tap for
/// every channel (a strided view is fine). Runs on the current rayon pool, one band of
/// output rows per thread.
pub fn depthwise(input: &[f32], batch: usize, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, out: &mut [f32]) {
    depthwise_on(Isa::best(), input, batch, shape, kernels, epilogue, out)
}

/// [`depthwise`] with the instruction set chosen by the caller.
pub fn depthwise_on(isa: Isa, input: &[f32], batch: usize, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, out: &mut [f32]) {
    depthwise_from(isa, input, Layout::PixelMajor, batch, shape, kernels, epilogue, out)
}

/// [`depthwise_on`] from an input in `layout` (the output is pixel-major). Channel blocks
/// (`[C/L, B·h·w, L]` for `L` lanes) need what [`Layout::for_depthwise`] checks.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_from(isa: Isa, input: &[f32], layout: Layout, batch: usize, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, out: &mut [f32]) {
    check(isa, input, layout, batch, shape, kernels, epilogue);
    let ConvShape { channels: c, k, .. } = shape;
    let (ho, wo) = shape.out_hw();
    assert!(out.len() >= batch * ho * wo * c, "output of {} values for {batch}×{ho}×{wo}×{c}", out.len());
    if batch * ho * wo * c == 0 {
        return;
    }
    // One task per thread, each a contiguous band of rows (so that a thread keeps reading
    // the rows the previous kernel's same-numbered task wrote), `BAND` rows at a time.
    let band = ho.div_ceil(threads::for_work(batch * ho * wo * c * k * k));
    threads::for_each_chunk_mut(&mut out[..batch * ho * wo * c], ho * wo * c, |b, out_image| {
        threads::for_each_chunk_mut(out_image, band * wo * c, |task, out_rows| {
            rows_of_image(isa, input, layout, batch, b, shape, kernels, epilogue, task * band, out_rows)
        });
    });
}

/// Output rows `oy..` of image `b` (as many as `out_rows` holds, `[rows, wo, C]`) of
/// [`depthwise_from`]'s convolution, on the calling thread.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_rows(
    isa: Isa,
    input: &[f32],
    layout: Layout,
    batch: usize,
    b: usize,
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_rows: &mut [f32],
) {
    check(isa, input, layout, batch, shape, kernels, epilogue);
    let (ho, wo) = shape.out_hw();
    let row = wo * shape.channels;
    assert!(b < batch, "image {b} of a batch of {batch}");
    assert!(
        out_rows.len().is_multiple_of(row.max(1)) && oy + out_rows.len() / row.max(1) <= ho,
        "output rows {oy}.. of {} values ({ho} rows of {row})",
        out_rows.len()
    );
    if !out_rows.is_empty() {
        rows_of_image(isa, input, layout, batch, b, shape, kernels, epilogue, oy, out_rows);
    }
}

/// The checks every entry makes: kernel size and stride, kernels, epilogue and input as
/// large as `shape` says, and what channel blocks need.
fn check(isa: Isa, input: &[f32], layout: Layout, batch: usize, shape: ConvShape, kernels: MatRef, epilogue: Epilogue) {
    let ConvShape { h, w, channels: c, k, stride } = shape;
    assert!(k % 2 == 1, "kernel size {k} is not odd");
    assert!(stride == 1 || stride == 2, "stride {stride}");
    assert_eq!((kernels.rows, kernels.cols), (k * k, c), "kernels {}×{} for k = {k}, {c} channels", kernels.rows, kernels.cols);
    assert_eq!(epilogue.len(), c, "epilogue of {} channels for {c}", epilogue.len());
    assert!(input.len() >= batch * h * w * c, "input of {} values for {batch}×{h}×{w}×{c}", input.len());
    if layout == Layout::ChannelBlocks {
        assert!(
            Layout::for_depthwise(isa, c) == Layout::ChannelBlocks && matches!(k, 3 | 5 | 7),
            "channel blocks need a vector instruction set, k in 3, 5, 7 and C a multiple of its lanes (k = {k}, C = {c}, {isa:?})"
        );
    }
}

/// [`depthwise_rows`] without its checks (made by the caller).
#[allow(clippy::too_many_arguments)]
fn rows_of_image(
    isa: Isa,
    input: &[f32],
    layout: Layout,
    batch: usize,
    b: usize,
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_rows: &mut [f32],
) {
    let image_values = shape.h * shape.w * shape.channels;
    let image = match layout {
        Layout::PixelMajor => Input::PixelMajor(&input[b * image_values..(b + 1) * image_values]),
        Layout::ChannelBlocks => {
            let plane = shape.h * shape.w * isa.lanes();
            Input::ChannelBlocks { values: &input[..batch * image_values], first: b * plane, plane_stride: batch * plane }
        }
    };
    output_rows(isa, image, shape, kernels, epilogue, oy, out_rows)
}

/// Where one image's input values are.
#[derive(Clone, Copy)]
enum Input<'a> {
    /// `[h, w, C]`.
    PixelMajor(&'a [f32]),
    /// Channel blocks of a batch: block `j` of this image is the plane `[h, w, L]` at
    /// `first + j·plane_stride` of `values` ([`Layout::ChannelBlocks`]; `C` a multiple of
    /// the lanes `L`).
    ChannelBlocks { values: &'a [f32], first: usize, plane_stride: usize },
}

crate::multiversion! {
    fn output_rows(image: Input, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_rows: &mut [f32]) => output_rows_body
}

/// Output rows `oy..` (as many as `out_rows` holds, `[rows, wo, C]`) of one image: the
/// register-blocked body for k ∈ {3, 5, 7} and at least one vector of channels, else one
/// value at a time ([`row_any_k`]).
#[inline(always)]
fn output_rows_body<S: Simd>(image: Input, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_rows: &mut [f32]) {
    let ConvShape { h, w, channels: c, .. } = shape;
    let (ho, wo) = shape.out_hw();
    let row_len = wo * c;
    // What the unchecked reads below rely on (also checked by every caller).
    match image {
        Input::PixelMajor(values) => assert!(values.len() >= h * w * c),
        Input::ChannelBlocks { values, first, plane_stride } => {
            assert!(c.is_multiple_of(S::LANES) && first + (c / S::LANES - 1) * plane_stride + h * w * S::LANES <= values.len())
        }
    }
    assert!((kernels.rows, kernels.cols, epilogue.len()) == (shape.k * shape.k, c, c) && out_rows.len().is_multiple_of(row_len.max(1)));
    assert!(oy + out_rows.len() / row_len.max(1) <= ho);
    macro_rules! blocked {
        ($(($k:literal, $s:literal)),*) => {
            match (shape.k, shape.stride) {
                // SAFETY: sizes as asserted above; `C ≥ LANES`.
                $(($k, $s) if c >= S::LANES => unsafe { rows::<S, $k, $s>(image, shape, kernels, epilogue, oy, out_rows) },)*
                _ => {
                    let Input::PixelMajor(image) = image else { unreachable!("channel blocks are only chosen for k in 3, 5, 7") };
                    for (i, out_row) in out_rows.chunks_mut(row_len).enumerate() {
                        row_any_k(image, shape, kernels, epilogue, oy + i, out_row);
                    }
                }
            }
        };
    }
    blocked!((3, 1), (3, 2), (5, 1), (5, 2), (7, 1), (7, 2))
}

/// The register block `(P, R)` for kernel size `k` and `stride` with `registers` vector
/// registers: `P` pixels × `R` output rows of accumulators, the most accumulators (ties:
/// more pixels) whose input window of `(P − 1)·stride + k` columns fits in registers
/// beside them and a tap (else the window spills to the stack). With 32 registers: 8 × 2
/// at stride 1 (16 accumulators, 14 columns at k = 7; 8 accumulators were too few to hide
/// the multiply–add latency on AVX-512: k7 s1 on 56×56×48, 45 → 52 GMAC/s with 16), 4 × 2
/// at stride 2. With 16 (AVX2) at k = 7: 4 × 1 at stride 1, 2 × 2 at stride 2 (measured
/// on 28×28×288: 25 GMAC/s with 4 × 2 reading the window from L1 at each multiply–add,
/// 30 with 4 × 1; at 7×7×1152 18 and 29).
const fn block_shape(registers: usize, k: usize, stride: usize) -> (usize, usize) {
    // Candidates by accumulators, then pixels.
    let candidates = [(8, 2), (8, 1), (4, 2), (4, 1), (2, 2), (2, 1)];
    let mut i = 0;
    while i < candidates.len() {
        let (p, r) = candidates[i];
        let window = (p - 1) * stride + k;
        if window <= WINDOW && r * p + window < registers {
            return (p, r);
        }
        i += 1;
    }
    (1, 1)
}

/// [`block_shape`] of an instruction set, kernel size and stride, as one constant (`10·P
/// + R`: a `match` on it compiles only the variant taken).
struct BlockShape<S, const K: usize, const STRIDE: usize>(std::marker::PhantomData<S>);

impl<S: Simd, const K: usize, const STRIDE: usize> BlockShape<S, K, STRIDE> {
    const CODE: usize = {
        let (p, r) = block_shape(S::REGISTERS, K, STRIDE);
        10 * p + r
    };
}

/// Input columns a window may hold: `(P − 1)·S + K`.
const WINDOW: usize = 16;

/// [`output_rows_body`] for kernel size `K` and stride `STRIDE`, in the register blocks
/// of [`block_shape`] (two output rows per block where it says so, the last one alone
/// when their count is odd).
///
/// # Safety
/// `S` runs on this CPU; `C ≥ LANES`; the image (every plane, or pixel), the kernels (`K²
/// × C`), the epilogue and the output rows are as large as `shape` says, `oy + rows ≤ ho`.
#[inline(always)]
unsafe fn rows<S: Simd, const K: usize, const STRIDE: usize>(
    image: Input,
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_rows: &mut [f32],
) {
    // SAFETY: forwarded.
    unsafe {
        match BlockShape::<S, K, STRIDE>::CODE {
            82 => rows_with::<S, K, STRIDE, 8, 2>(image, shape, kernels, epilogue, oy, out_rows),
            81 => rows_with::<S, K, STRIDE, 8, 1>(image, shape, kernels, epilogue, oy, out_rows),
            42 => rows_with::<S, K, STRIDE, 4, 2>(image, shape, kernels, epilogue, oy, out_rows),
            41 => rows_with::<S, K, STRIDE, 4, 1>(image, shape, kernels, epilogue, oy, out_rows),
            22 => rows_with::<S, K, STRIDE, 2, 2>(image, shape, kernels, epilogue, oy, out_rows),
            21 => rows_with::<S, K, STRIDE, 2, 1>(image, shape, kernels, epilogue, oy, out_rows),
            _ => rows_with::<S, K, STRIDE, 1, 1>(image, shape, kernels, epilogue, oy, out_rows),
        }
    }
}

/// [`rows`] with `P` pixels × up to `RMAX` rows per block.
///
/// # Safety
/// As [`rows`].
#[inline(always)]
unsafe fn rows_with<S: Simd, const K: usize, const STRIDE: usize, const P: usize, const RMAX: usize>(
    image: Input,
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_rows: &mut [f32],
) {
    let c = shape.channels;
    debug_assert!(c >= S::LANES && (P - 1) * STRIDE + K <= WINDOW);
    let wo = out_size(shape.w, K, STRIDE);
    let rows = out_rows.len() / (wo * c);
    let conv = Conv { image, shape, kernels, epilogue, out: out_rows.as_mut_ptr(), wo, oy };
    let channel_blocks = c.div_ceil(S::LANES);
    // SAFETY: channel blocks below `channel_blocks`, pixels below `wo`, output rows below
    // `rows` (the caller's contract).
    unsafe {
        let pair = |b: usize, ox: usize, y: usize| {
            if RMAX == 1 {
                conv.block::<S, K, STRIDE, P, 1>(b, ox, y);
                if y + 1 < rows {
                    conv.block::<S, K, STRIDE, P, 1>(b, ox, y + 1)
                }
            } else if y + 2 <= rows {
                conv.block::<S, K, STRIDE, P, 2>(b, ox, y)
            } else {
                conv.block::<S, K, STRIDE, P, 1>(b, ox, y)
            }
        };
        if STRIDE == 2 {
            // Stride 2 reads the largest inputs (up to 112×112×144 = 7.2 MB, from L3):
            // pixels outer, so that reads go through memory in order (measured on AVX-512
            // 27 → 31 GMAC/s there).
            for y in (0..rows).step_by(2) {
                for ox in (0..wo).step_by(P) {
                    for b in 0..channel_blocks {
                        pair(b, ox, y);
                    }
                }
            }
        } else {
            // Two rows at a time, channel blocks outer: the rows read stay in L2 while
            // their channel blocks go by, and the output is written in order. (Channel
            // blocks outer over every row measured on AVX-512 16% slower on a pixel-major
            // 56×56×192 input, whose lines it read one in 12 at a time, and 2.5% slower on
            // the largest network from channel blocks.)
            for y in (0..rows).step_by(2) {
                for b in 0..channel_blocks {
                    for ox in (0..wo).step_by(P) {
                        pair(b, ox, y);
                    }
                }
            }
        }
    }
}

/// One depthwise convolution's operands, for output rows from `oy` (row 0 of `out`).
struct Conv<'a> {
    image: Input<'a>,
    shape: ConvShape,
    kernels: MatRef<'a>,
    epilogue: Epilogue<'a>,
    out: *mut f32,
    wo: usize,
    oy: usize,
}

impl Conv<'_> {
    /// Output rows `oy + y .. oy + y + R` × pixels `ox..ox + P` (those below `wo`) ×
    /// channel block `b` (channels from `LANES·b`, the last one shifted back to end at
    /// `C`): accumulates, applies the epilogue and stores.
    ///
    /// # Safety
    /// `S` runs on this CPU; the block lies inside the image, the kernels and the output.
    #[inline(always)]
    unsafe fn block<S: Simd, const K: usize, const STRIDE: usize, const P: usize, const R: usize>(&self, b: usize, ox: usize, y: usize) {
        let ConvShape { h, w, channels: c, .. } = self.shape;
        let pad = K / 2;
        let c0 = (S::LANES * b).min(c - S::LANES);
        // Input rows of the block that lie inside the image: `i` in `rows_inside`, counted
        // from the first row its top output row reads.
        let first_row = ((self.oy + y) * STRIDE) as isize - pad as isize;
        let (image, pixel_stride, channel_offset) = match self.image {
            Input::PixelMajor(values) => (values.as_ptr(), c, c0),
            // SAFETY: plane `c0 / LANES` of the input (the caller's contract).
            Input::ChannelBlocks { values, first, plane_stride } => (unsafe { values.as_ptr().add(first + c0 / S::LANES * plane_stride) }, S::LANES, 0),
        };
        let band = Band {
            image,
            row_stride: w * pixel_stride,
            pixel_stride,
            first_row,
            rows_inside: (-first_row).max(0) as usize..((h as isize - first_row) as usize).min((R - 1) * STRIDE + K),
            w,
        };
        let first_column = (ox * STRIDE) as isize - pad as isize;
        let interior = first_column >= 0 && first_column as usize + (P - 1) * STRIDE + K <= w;
        // SAFETY: channels `c0..c0 + LANES ≤ C` of the kernels, the epilogue and pixels
        // `ox..ox + P` (those below `wo`) of the `R` output rows (the caller's contract).
        unsafe {
            let taps = self.kernels.data.as_ptr().add(c0);
            let acc = if interior {
                band.block::<S, K, STRIDE, P, R, false>(taps, self.kernels.row_stride, first_column, channel_offset)
            } else {
                band.block::<S, K, STRIDE, P, R, true>(taps, self.kernels.row_stride, first_column, channel_offset)
            };
            let (scale, shift) = (S::load(self.epilogue.scale.as_ptr().add(c0)), S::load(self.epilogue.shift.as_ptr().add(c0)));
            for (r, acc) in acc.iter().enumerate() {
                for (p, &acc) in acc.iter().enumerate().take(P.min(self.wo - ox)) {
                    let v = affine_activate::<S>(acc, scale, shift, self.epilogue.act);
                    S::store(self.out.add(((y + r) * self.wo + ox + p) * c + c0), v);
                }
            }
        }
    }
}

/// Where a band of output rows reads its input.
struct Band {
    image: *const f32,
    row_stride: usize,
    pixel_stride: usize,
    /// Input row read by the band's first output row with tap row 0 (may be negative).
    first_row: isize,
    /// Offsets from `first_row` of the input rows inside the image.
    rows_inside: std::ops::Range<usize>,
    w: usize,
}

impl Band {
    /// Accumulators of `R` rows × `P` pixels from input column `first_column`, the
    /// `LANES` channels from `channel_offset` within a pixel. `EDGE`: some window columns
    /// lie outside the image (read as zeros).
    ///
    /// # Safety
    /// `S` runs on this CPU; rows in `rows_inside` and columns inside the image hold
    /// `LANES` channels from `channel_offset`; the taps hold `K²` rows.
    #[inline(always)]
    unsafe fn block<S: Simd, const K: usize, const STRIDE: usize, const P: usize, const R: usize, const EDGE: bool>(
        &self,
        taps: *const f32,
        tap_stride: usize,
        first_column: isize,
        channel_offset: usize,
    ) -> [[S::V; P]; R] {
        // SAFETY: rows in `rows_inside` and columns inside the image (checked at an edge)
        // of `LANES` channels from `channel_offset`; tap rows below `K` (the caller's
        // contract).
        unsafe {
            let columns = (P - 1) * STRIDE + K;
            let mut acc = [[S::zero(); P]; R];
            for i in 0..(R - 1) * STRIDE + K {
                if !self.rows_inside.contains(&i) {
                    continue;
                }
                let iy = (self.first_row + i as isize) as usize;
                let row = self.image.add(iy * self.row_stride + channel_offset);
                // The window's columns, loaded once (zeros outside the image): they fit in
                // registers beside the accumulators (see `block_shape`).
                let mut window = [S::zero(); WINDOW];
                for (j, slot) in window.iter_mut().enumerate().take(columns) {
                    let ix = first_column + j as isize;
                    if !EDGE || (ix >= 0 && (ix as usize) < self.w) {
                        *slot = S::load(row.add(ix as usize * self.pixel_stride));
                    }
                }
                // Output row r reads this input row with tap row i − r·S.
                for (r, acc) in acc.iter_mut().enumerate() {
                    if i < r * STRIDE || i - r * STRIDE >= K {
                        continue;
                    }
                    let mut tap = taps.add((i - r * STRIDE) * K * tap_stride);
                    for kx in 0..K {
                        let t = S::load(tap);
                        tap = tap.add(tap_stride);
                        for (p, acc) in acc.iter_mut().enumerate() {
                            *acc = S::mul_add(t, window[p * STRIDE + kx], *acc);
                        }
                    }
                }
            }
            acc
        }
    }
}

/// Any odd kernel size (or fewer channels than a vector), one pixel and one channel at a
/// time (k ∉ {3, 5, 7} does not occur in OFA networks; this keeps the kernel general).
fn row_any_k(image: &[f32], shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_row: &mut [f32]) {
    let ConvShape { h, w, channels: c, k, stride } = shape;
    let pad = k / 2;
    for ox in 0..out_size(w, k, stride) {
        for ch in 0..c {
            let mut acc = 0.0;
            for ky in 0..k {
                let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < h) else { continue };
                for kx in 0..k {
                    let Some(ix) = (ox * stride + kx).checked_sub(pad).filter(|&ix| ix < w) else { continue };
                    acc += kernels.row(ky * k + kx)[ch] * image[(iy * w + ix) * c + ch];
                }
            }
            out_row[ox * c + ch] = epilogue.act.apply(acc * epilogue.scale[ch] + epilogue.shift[ch]);
        }
    }
}
