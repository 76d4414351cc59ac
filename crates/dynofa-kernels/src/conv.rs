//! Direct dense k×k convolution with "same" padding, for the stem: few input channels
//! (3) and many output pixels, read from the channel-major frame.
//!
//! Output channels are the vector dimension: each output pixel accumulates `C_in·k²`
//! products of one input value (broadcast) and one weight row `[C_out]`. Pixels go
//! `PIXELS` at a time, so that each weight vector loaded feeds that many accumulators.


use crate::epilogue::{h_sigmoid, Activation, Epilogue};
use crate::isa::{mul_add, Isa};
use crate::matrix::MatRef;
use crate::shape::ConvShape;

/// Output pixels per register block.
const PIXELS: usize = 8;

/// `out[B, ho, wo, C_out] = epilogue(weights ⊛ input)` for channel-major images
/// `input = [B, C_in, h, w]` (the layout frames arrive in) and `weights = [C_in·k·k,
/// C_out]` (PyTorch's `[C_out, C_in, k, k]` flattened and transposed). Runs on the current
/// rayon pool, one band of output rows per thread.
pub fn conv2d(input: &[f32], batch: usize, shape: ConvShape, weights: MatRef, epilogue: Epilogue, out: &mut [f32]) {
    conv2d_on(Isa::best(), input, batch, shape, weights, epilogue, out)
}

/// [`conv2d`] with the instruction set chosen by the caller.
pub fn conv2d_on(isa: Isa, input: &[f32], batch: usize, shape: ConvShape, weights: MatRef, epilogue: Epilogue, out: &mut [f32]) {
    let ConvShape { channels: c_in, h, w, k, stride } = shape;
    assert!(k % 2 == 1 && stride >= 1, "kernel size {k} (must be odd), stride {stride}");
    assert_eq!(weights.rows, c_in * k * k, "weights of {} values per output for {c_in}×{k}×{k}", weights.rows);
    let c_out = weights.cols;
    assert_eq!(epilogue.len(), c_out, "epilogue of {} channels for {c_out}", epilogue.len());
    assert!(input.len() >= batch * c_in * h * w, "input of {} values for {batch}×{c_in}×{h}×{w}", input.len());
    let (ho, wo) = shape.out_hw();
    let rows = batch * ho;
    assert!(out.len() >= rows * wo * c_out, "output of {} values for {batch}×{ho}×{wo}×{c_out}", out.len());
    if rows * wo * c_out == 0 {
        return;
    }
    let band = rows.div_ceil(crate::threads::for_work(rows * wo * c_out * c_in * k * k));
    crate::threads::for_each_chunk_mut(&mut out[..rows * wo * c_out], band * wo * c_out, |task, out_rows| {
        for (i, out_row) in out_rows.chunks_mut(wo * c_out).enumerate() {
            let (b, oy) = ((task * band + i) / ho, (task * band + i) % ho);
            let image = &input[b * c_in * h * w..(b + 1) * c_in * h * w];
            output_row(isa, image, shape, weights, epilogue, oy, out_row);
        }
    });
}

crate::multiversion! {
    fn output_row(image: &[f32], shape: ConvShape, weights: MatRef, epilogue: Epilogue, oy: usize, out_row: &mut [f32]) => output_row_body
}

/// Output row `oy` (`[wo, C_out]`) of one image `[C_in, h, w]`: blocks of `LANES` output
/// channels (the last one shifted back to end at `C_out`, recomputing a few channels)
/// by [`PIXELS`] pixels; fewer than `LANES` channels go one at a time.
#[inline(always)]
fn output_row_body<const FUSED: bool, const LANES: usize, const REGISTERS: usize>(
    image: &[f32],
    shape: ConvShape,
    weights: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_row: &mut [f32],
) {
    let (c, wo) = (weights.cols, shape.out_hw().1);
    #[cfg(target_arch = "x86_64")]
    if LANES == 16 && FUSED && c > LANES {
        // SAFETY: 16 fused lanes: the AVX-512 variant; sizes as the caller checked.
        return unsafe { crate::conv_avx512::row(image, shape, weights, epilogue, oy, out_row) };
    }
    for ox in (0..wo).step_by(PIXELS) {
        // Opaque to the optimiser: addresses are computed per block (no spilled induction variables).
        let ox = std::hint::black_box(ox);
        let ConvShape { w, k, stride, .. } = shape;
        // Every tap of every pixel of the block inside the image: no column checks.
        let interior = ox + PIXELS <= wo && ox * stride >= k / 2 && (ox + PIXELS - 1) * stride + k - k / 2 <= w;
        if c < LANES {
            for c0 in 0..c {
                block::<1, FUSED, false>(image, shape, weights, epilogue, oy, ox, c0, out_row);
            }
            continue;
        }
        let mut c0 = 0;
        loop {
            if interior {
                block::<LANES, FUSED, true>(image, shape, weights, epilogue, oy, ox, c0, out_row);
            } else {
                block::<LANES, FUSED, false>(image, shape, weights, epilogue, oy, ox, c0, out_row);
            }
            if c0 + LANES == c {
                break;
            }
            c0 = (c0 + LANES).min(c - LANES);
        }
    }
}

/// The input value at padded column `ix` of `in_row` (column `ix − pad`): zero outside
/// the row, or when the output pixel that reads it is not `valid` (past the row's end).
/// `INTERIOR`: the caller checked that the column is inside and the pixel valid.
#[inline(always)]
pub(crate) fn input_at<const INTERIOR: bool>(in_row: &[f32], ix: usize, pad: usize, valid: bool) -> f32 {
    if INTERIOR {
        // SAFETY: interior blocks read columns inside the row (checked by the caller).
        unsafe { *in_row.get_unchecked(ix - pad) }
    } else {
        match ix.checked_sub(pad).filter(|&ix| ix < in_row.len()) {
            Some(ix) if valid => in_row[ix],
            _ => 0.0,
        }
    }
}

/// Output pixels `ox..ox + PIXELS` (those below `wo`) of row `oy`, channels `c0..c0 + L`.
/// `INTERIOR`: every column the block reads is inside the image (none is checked).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<const L: usize, const FUSED: bool, const INTERIOR: bool>(image: &[f32], shape: ConvShape, weights: MatRef, epilogue: Epilogue, oy: usize, ox: usize, c0: usize, out_row: &mut [f32]) {
    let ConvShape { channels: c_in, h, w, k, stride } = shape;
    let (c, wo) = (weights.cols, shape.out_hw().1);
    let pad = k / 2;
    let pixels = PIXELS.min(wo - ox);
    let load = |values: &[f32]| -> [f32; L] { values[..L].try_into().expect("L values") };
    let mut acc = [[0.0f32; L]; PIXELS];
    for ci in 0..c_in {
        let plane = &image[ci * h * w..(ci + 1) * h * w];
        for ky in 0..k {
            let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < h) else { continue };
            let in_row = &plane[iy * w..(iy + 1) * w];
            for kx in 0..k {
                let tap = load(&weights.row((ci * k + ky) * k + kx)[c0..]);
                for (p, acc) in acc.iter_mut().enumerate() {
                    let x = input_at::<INTERIOR>(in_row, (ox + p) * stride + kx, pad, p < pixels);
                    for l in 0..L {
                        acc[l] = mul_add::<FUSED>(x, tap[l], acc[l]);
                    }
                }
            }
        }
    }
    let (scale, shift) = (load(&epilogue.scale[c0..]), load(&epilogue.shift[c0..]));
    for (p, acc) in acc.iter().enumerate().take(pixels) {
        let at = (ox + p) * c + c0;
        let out: &mut [f32; L] = (&mut out_row[at..at + L]).try_into().expect("L values");
        // Written out here and in the depthwise kernel's block rather than shared: as one
        // `#[inline(always)]` helper these lines measured 15–25% slower in both kernels.
        let mut y = [0.0f32; L];
        for l in 0..L {
            y[l] = mul_add::<FUSED>(acc[l], scale[l], shift[l]);
        }
        // One loop per activation, so that each one vectorises without a branch inside.
        match epilogue.act {
            Activation::None => *out = y,
            Activation::Relu => (0..L).for_each(|l| out[l] = y[l].max(0.0)),
            Activation::HSwish => (0..L).for_each(|l| out[l] = y[l] * h_sigmoid(y[l])),
            Activation::HSigmoid => (0..L).for_each(|l| out[l] = h_sigmoid(y[l])),
        }
    }
}
