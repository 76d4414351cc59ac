//! Depthwise k×k convolution ("same" padding `k / 2`, stride 1 or 2) on pixel-major
//! images `[H, W, C]`, with the per-channel epilogue fused.
//!
//! Channels are the vector dimension: each output pixel accumulates `k²` products of a
//! kernel tap `[C]` and an input pixel `[C]`, `LANES` channels at a time. Pixels go in
//! register blocks (up to 2 rows × 4 pixels here), so that each input column and kernel
//! value loaded feeds several accumulators; blocks whose window crosses the image's left
//! or right edge check each column. On AVX-512 the blocks are the intrinsics of
//! `depthwise_avx512` (16 accumulators at stride 1), which measured
//! 10–25% faster than this generic body compiled for AVX-512.

use crate::epilogue::{h_sigmoid, Activation, Epilogue};
use crate::isa::{mul_add, Isa};
use crate::layout::Layout;
use crate::matrix::MatRef;
use crate::shape::{out_size, ConvShape};
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
/// (`[C/16, B·h·w, 16]`) need what [`Layout::for_depthwise`] checks, and run the AVX-512
/// body.
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
        threads::for_each_chunk_mut(out_image, band * wo * c, |task, out_rows| rows_of_image(isa, input, layout, batch, b, shape, kernels, epilogue, task * band, out_rows));
    });
}

/// Output rows `oy..` of image `b` (as many as `out_rows` holds, `[rows, wo, C]`) of
/// [`depthwise_from`]'s convolution, on the calling thread.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_rows(isa: Isa, input: &[f32], layout: Layout, batch: usize, b: usize, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_rows: &mut [f32]) {
    check(isa, input, layout, batch, shape, kernels, epilogue);
    let (ho, wo) = shape.out_hw();
    let row = wo * shape.channels;
    assert!(b < batch, "image {b} of a batch of {batch}");
    assert!(out_rows.len().is_multiple_of(row.max(1)) && oy + out_rows.len() / row.max(1) <= ho, "output rows {oy}.. of {} values ({ho} rows of {row})", out_rows.len());
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
        assert!(Layout::for_depthwise(isa, c) == Layout::ChannelBlocks && matches!(k, 3 | 5 | 7), "channel blocks need AVX-512, k in 3, 5, 7 and C a multiple of 16 (k = {k}, C = {c}, {isa:?})");
    }
}

/// [`depthwise_rows`] without its checks (made by the caller).
#[allow(clippy::too_many_arguments)]
fn rows_of_image(isa: Isa, input: &[f32], layout: Layout, batch: usize, b: usize, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_rows: &mut [f32]) {
    let image = shape.h * shape.w * shape.channels;
    match layout {
        Layout::PixelMajor => output_rows(isa, &input[b * image..(b + 1) * image], shape, kernels, epilogue, oy, out_rows),
        Layout::ChannelBlocks => from_channel_blocks(input, batch, b, shape, kernels, epilogue, oy, out_rows),
    }
}

/// Output rows `oy..` of image `b` of a batch of `batch` in channel blocks `input = [C/16,
/// B·h·w, 16]`: the AVX-512 body (checked by the caller).
#[allow(clippy::too_many_arguments)]
fn from_channel_blocks(input: &[f32], batch: usize, b: usize, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_rows: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        let plane = shape.h * shape.w * crate::layout::BLOCK;
        // SAFETY: image `b`'s plane of channel block 0 lies inside the input (asserted by
        // `depthwise_from`: B·h·w·C values), and the caller checked AVX-512, k and C.
        let ran = unsafe {
            let image = crate::depthwise_avx512::Input::ChannelBlocks { image: input.as_ptr().add(b * plane), plane_stride: batch * plane };
            avx512_rows(image, shape, kernels, epilogue, oy, out_rows)
        };
        assert!(ran, "kernel size checked");
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (input, batch, b, shape, kernels, epilogue, oy, out_rows);
        unreachable!("channel blocks are only chosen on AVX-512");
    }
}

/// Output rows `oy..` through the AVX-512 body when `k` is 3, 5 or 7 (else `false`, nothing done).
///
/// # Safety
/// The CPU has AVX-512F, `C ≥ 16`; the input (every plane, or pixel), the kernels (`k² ×
/// C`), the epilogue and the output rows are as large as `shape` says.
#[cfg(target_arch = "x86_64")]
unsafe fn avx512_rows(image: crate::depthwise_avx512::Input, shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_rows: &mut [f32]) -> bool {
    macro_rules! avx512 {
        ($(($k:literal, $s:literal)),*) => {
            match (shape.k, shape.stride) {
                // SAFETY: forwarded.
                $(($k, $s) => unsafe { crate::depthwise_avx512::rows::<$k, $s>(image, shape, kernels, epilogue, oy, out_rows) },)*
                _ => return false,
            }
        };
    }
    avx512!((3, 1), (3, 2), (5, 1), (5, 2), (7, 1), (7, 2));
    true
}

/// Output rows per register block (where registers allow).
const BAND: usize = 2;

crate::multiversion! {
    fn output_rows(image: &[f32], shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_rows: &mut [f32]) => output_rows_body
}

/// Output rows `oy..` (as many as `out_rows` holds): on AVX-512 the intrinsic body; else
/// [`BAND`] rows at a time, two rows per register block with 32 vector registers (each
/// input window then feeds both rows), one with fewer.
#[inline(always)]
fn output_rows_body<const FUSED: bool, const LANES: usize, const REGISTERS: usize>(
    image: &[f32],
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_rows: &mut [f32],
) {
    let row_len = shape.out_hw().1 * shape.channels;
    assert!(image.len() >= shape.h * shape.w * shape.channels && oy + out_rows.len() / row_len <= shape.out_hw().0);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: 16 fused lanes: the CPU has AVX-512F; the image, the output rows and the
    // kernels (`k² × C`, as `depthwise_from` asserted) are as large as `shape` says.
    if LANES == 16 && FUSED && shape.channels >= LANES && unsafe { avx512_rows(crate::depthwise_avx512::Input::PixelMajor(image.as_ptr()), shape, kernels, epilogue, oy, out_rows) } {
        return;
    }
    for (i, out_rows) in out_rows.chunks_mut(BAND * row_len).enumerate() {
        let oy = oy + i * BAND;
        if REGISTERS >= 32 && out_rows.len() == 2 * row_len && matches!(shape.k, 3 | 5 | 7) {
            output_row_body::<FUSED, LANES, REGISTERS, 2>(image, shape, kernels, epilogue, oy, out_rows);
        } else {
            for (i, out_row) in out_rows.chunks_mut(row_len).enumerate() {
                output_row_body::<FUSED, LANES, REGISTERS, 1>(image, shape, kernels, epilogue, oy + i, out_row);
            }
        }
    }
}

/// Input columns a register window may hold: `(P − 1)·S + K` for the blocks below.
const WINDOW: usize = 16;

/// Output rows `oy..oy + R` (`[R, wo, C]`) of one image `[h, w, C]`: kernel size, stride
/// and pixels per block become constants for k ∈ {3, 5, 7} (so that the loops unroll and the window
/// lives in registers); other sizes take [`row_any_k`] (only ever with `R = 1`).
#[inline(always)]
fn output_row_body<const FUSED: bool, const LANES: usize, const REGISTERS: usize, const R: usize>(
    image: &[f32],
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_row: &mut [f32],
) {
    let (ho, wo) = shape.out_hw();
    assert!(image.len() >= shape.h * shape.w * shape.channels && out_row.len() >= R * wo * shape.channels && oy + R <= ho);
    let wide = REGISTERS >= 32;
    macro_rules! rows {
        ($(($k:literal, $s:literal, $wide:literal, $p:literal)),*) => {
            match (shape.k, shape.stride, wide) {
                // SAFETY: the image, the output row and the kernels (a view checked on
                // construction, `k² × C` as `depthwise_on` asserted) are as large as `shape` says.
                $(($k, $s, $wide) => unsafe { row::<$k, $s, $p, R, LANES, FUSED>(image, shape, kernels, epilogue, oy, out_row) },)*
                _ => row_any_k::<FUSED>(image, shape, kernels, epilogue, oy, out_row),
            }
        };
    }
    // Pixels per block P: (P − 1)·S + K window columns + P accumulators + 1 tap fit the registers.
    rows!(
        (3, 1, true, 4), (3, 1, false, 4), (3, 2, true, 4), (3, 2, false, 2),
        (5, 1, true, 4), (5, 1, false, 4), (5, 2, true, 4), (5, 2, false, 2),
        (7, 1, true, 4), (7, 1, false, 4), (7, 2, true, 4), (7, 2, false, 2)
    )
}

/// Output rows `oy..oy + R` for kernel size `K`, stride `S`, `P` pixels per block, `L`
/// channels per vector: blocks of `L` channels (the last one shifted back to end at `C`, recomputing
/// a few channels rather than running a scalar tail), and within a block, the row's pixels
/// `P` at a time.
///
/// # Safety
/// `image` holds `h·w·C` values, `out_row` `R·wo·C`, `kernels` is `K² × C`, `oy + R ≤ ho`.
#[inline(always)]
unsafe fn row<const K: usize, const S: usize, const P: usize, const R: usize, const L: usize, const FUSED: bool>(
    image: &[f32],
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_row: &mut [f32],
) {
    let c = shape.channels;
    let wo = out_size(shape.w, K, S);
    // SAFETY: forwarded; blocks cover channels below `c` and pixels below `wo`.
    unsafe {
        if c < L {
            for c0 in 0..c {
                for ox in (0..wo).step_by(P) {
                    block::<K, S, P, R, 1, FUSED, true>(image, shape, kernels, epilogue, oy, ox, c0, out_row);
                }
            }
            return;
        }
        let mut c0 = 0;
        loop {
            for ox in (0..wo).step_by(P) {
                // Opaque to the optimiser: addresses are then computed per block from a few
                // values instead of as dozens of induction variables (which spill).
                let ox = std::hint::black_box(ox);
                // Interior: every window column inside the image.
                if ox * S >= K / 2 && ox * S - K / 2 + (P - 1) * S + K <= shape.w {
                    block::<K, S, P, R, L, FUSED, false>(image, shape, kernels, epilogue, oy, ox, c0, out_row);
                } else {
                    block::<K, S, P, R, L, FUSED, true>(image, shape, kernels, epilogue, oy, ox, c0, out_row);
                }
            }
            if c0 + L == c {
                break;
            }
            c0 = (c0 + L).min(c - L);
        }
    }
}

/// Output pixels `ox..ox + P` (those below `wo`) of rows `oy..oy + R` × channels
/// `c0..c0 + L`. For each input row the block touches, the `(P − 1)·S + K` input columns
/// its pixels need are loaded once into a register window (zeros outside the image) and
/// every tap of every output row that reads that input row is applied from it. `EDGE`:
/// the window may cross the image's left or right edge (else no column is checked).
///
/// # Safety
/// As [`row`], and `c0 + L ≤ C`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const K: usize, const S: usize, const P: usize, const R: usize, const L: usize, const FUSED: bool, const EDGE: bool>(
    image: &[f32],
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    ox: usize,
    c0: usize,
    out_rows: &mut [f32],
) {
    let ConvShape { h, w, channels: c, .. } = shape;
    let pad = K / 2;
    let columns = (P - 1) * S + K;
    debug_assert!(columns <= WINDOW);
    let load = |p: *const f32| -> [f32; L] {
        // SAFETY: callers only load `L` values inside the image or the kernels.
        unsafe { p.cast::<[f32; L]>().read_unaligned() }
    };
    let first_column = (ox * S) as isize - pad as isize; // input column of window slot 0
    let first_row = (oy * S) as isize - pad as isize; // input row of tap row 0 of output row 0
    let mut acc = [[[0.0f32; L]; P]; R];
    // Input rows `first_row + i` for i in 0..(R − 1)·S + K; output row r uses tap row i − r·S.
    for i in 0..(R - 1) * S + K {
        let iy = first_row + i as isize;
        if iy < 0 || iy >= h as isize {
            continue;
        }
        // SAFETY: `iy < h`.
        let in_row = unsafe { image.as_ptr().add(iy as usize * w * c + c0) };
        let mut window = [[0.0f32; L]; WINDOW];
        for (j, slot) in window.iter_mut().enumerate().take(columns) {
            let ix = first_column + j as isize;
            if !EDGE || (ix >= 0 && (ix as usize) < w) {
                // SAFETY: column `ix` is inside the row (checked, or the block is interior).
                *slot = load(unsafe { in_row.add(ix as usize * c) });
            }
        }
        // Output row 0 reads tap row i, row 1 (when R = 2) tap row i − S.
        if i < K {
            // SAFETY: tap row `i < K`.
            unsafe { apply_tap_row::<K, S, P, L, FUSED>(&mut acc[0], &window, kernels, i, c0) };
        }
        if R == 2 && i >= S && i - S < K {
            // SAFETY: tap row `i − S < K`.
            unsafe { apply_tap_row::<K, S, P, L, FUSED>(&mut acc[R - 1], &window, kernels, i - S, c0) };
        }
    }
    let (scale, shift) = (load(epilogue.scale[c0..c0 + L].as_ptr()), load(epilogue.shift[c0..c0 + L].as_ptr()));
    let wo = out_size(w, K, S);
    let pixels = P.min(wo - ox);
    for (r, acc) in acc.iter().enumerate() {
        for (p, acc) in acc.iter().enumerate().take(pixels) {
            let at = (r * wo + ox + p) * c + c0;
            let out: &mut [f32; L] = (&mut out_rows[at..at + L]).try_into().expect("L values");
            // Written out here and in the stem convolution's block rather than shared: as one
            // `#[inline(always)]` helper these lines measured 15–25% slower in both kernels.
            let mut y = [0.0f32; L];
            for l in 0..L {
                y[l] = mul_add::<FUSED>(acc[l], scale[l], shift[l]);
            }
            match epilogue.act {
                Activation::None => *out = y,
                Activation::Relu => (0..L).for_each(|l| out[l] = y[l].max(0.0)),
                Activation::HSwish => (0..L).for_each(|l| out[l] = y[l] * h_sigmoid(y[l])),
                Activation::HSigmoid => (0..L).for_each(|l| out[l] = h_sigmoid(y[l])),
            }
        }
    }
}

/// `acc[p] += Σ_kx tap(ky, kx) × window[p·S + kx]` for channels `c0..c0 + L`.
///
/// # Safety
/// `ky < K`, the kernels are `K² × C` and `c0 + L ≤ C`.
#[inline(always)]
unsafe fn apply_tap_row<const K: usize, const S: usize, const P: usize, const L: usize, const FUSED: bool>(
    acc: &mut [[f32; L]; P],
    window: &[[f32; L]; WINDOW],
    kernels: MatRef,
    ky: usize,
    c0: usize,
) {
    // SAFETY: kernel row `ky` has K taps of C channels (caller's contract).
    let taps = unsafe { kernels.data.as_ptr().add(ky * K * kernels.row_stride + c0) };
    for kx in 0..K {
        // SAFETY: as above; `L` values from channel `c0`.
        let tap = unsafe { taps.add(kx * kernels.row_stride).cast::<[f32; L]>().read_unaligned() };
        for (p, acc) in acc.iter_mut().enumerate() {
            let x = &window[p * S + kx];
            for l in 0..L {
                acc[l] = mul_add::<FUSED>(tap[l], x[l], acc[l]);
            }
        }
    }
}

/// Any odd kernel size, one pixel and one channel at a time (k ∉ {3, 5, 7} does not occur
/// in OFA networks; this keeps the kernel general).
fn row_any_k<const FUSED: bool>(image: &[f32], shape: ConvShape, kernels: MatRef, epilogue: Epilogue, oy: usize, out_row: &mut [f32]) {
    let ConvShape { h, w, channels: c, k, stride } = shape;
    let pad = k / 2;
    for ox in 0..out_size(w, k, stride) {
        for ch in 0..c {
            let mut acc = 0.0;
            for ky in 0..k {
                let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < h) else { continue };
                for kx in 0..k {
                    let Some(ix) = (ox * stride + kx).checked_sub(pad).filter(|&ix| ix < w) else { continue };
                    acc = mul_add::<FUSED>(kernels.row(ky * k + kx)[ch], image[(iy * w + ix) * c + ch], acc);
                }
            }
            out_row[ox * c + ch] = epilogue.act.apply(mul_add::<FUSED>(acc, epilogue.scale[ch], epilogue.shift[ch]));
        }
    }
}
