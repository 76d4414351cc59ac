//! Direct dense k×k convolution with "same" padding, for the stem: few input channels
//! (3) and many output pixels, read from the channel-major frame.
//!
//! Output channels are the vector dimension: each output pixel accumulates `C_in·k²`
//! products of one input value (broadcast) and one weight row `[C_out]`. One body for
//! every instruction set (`simd` (private)): register blocks of `P` output pixels × two
//! vectors of output channels (8 × 2 with 32 registers, 6 × 2 with 16), so that each
//! broadcast input value feeds two multiply–adds and each weight vector `P` (one vector
//! per block made as many loads as multiply–adds).

use crate::epilogue::Epilogue;
use crate::isa::Isa;
use crate::matrix::MatRef;
use crate::shape::ConvShape;
use crate::simd::{Simd, affine_activate};

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

/// Output row `oy` (`[wo, C_out]`) of one image `[C_in, h, w]`: register blocks of
/// pixels × two vectors of channels, at offsets `c0` and `min(c0 + L, C_out − L)` (the
/// second shifted back to end at `C_out`, recomputing a few channels rather than running
/// a tail: 24 channels are vectors at 0 and 8 on AVX-512); fewer channels than a vector go
/// one value at a time.
#[inline(always)]
fn output_row_body<S: Simd>(image: &[f32], shape: ConvShape, weights: MatRef, epilogue: Epilogue, oy: usize, out_row: &mut [f32]) {
    let ConvShape { channels: c_in, h, w, .. } = shape;
    let (c, wo) = (weights.cols, shape.out_hw().1);
    // What the unchecked reads below rely on (also checked by `conv2d_on`).
    assert!(image.len() >= c_in * h * w && out_row.len() >= wo * c && epilogue.len() == c && oy < shape.out_hw().0);
    if c < S::LANES {
        return row_any_width(image, shape, weights, epilogue, oy, out_row);
    }
    if S::REGISTERS >= 32 {
        row_in_blocks::<S, 8>(image, shape, weights, epilogue, oy, out_row)
    } else {
        row_in_blocks::<S, 6>(image, shape, weights, epilogue, oy, out_row)
    }
}

/// [`output_row_body`] with `P` pixels per register block (`C_out ≥ LANES`).
#[inline(always)]
fn row_in_blocks<S: Simd, const P: usize>(image: &[f32], shape: ConvShape, weights: MatRef, epilogue: Epilogue, oy: usize, out_row: &mut [f32]) {
    let (c, wo) = (weights.cols, shape.out_hw().1);
    let out = out_row.as_mut_ptr();
    let mut c0 = 0;
    loop {
        let c1 = (c0 + S::LANES).min(c - S::LANES);
        for ox in (0..wo).step_by(P) {
            // Opaque to the optimiser: addresses are computed per block (no spilled induction variables).
            let ox = std::hint::black_box(ox);
            let ConvShape { w, k, stride, .. } = shape;
            // Every tap of every pixel of the block inside the image: no column checks.
            let interior = ox + P <= wo && ox * stride >= k / 2 && (ox + P - 1) * stride + k - k / 2 <= w;
            let acc = if interior {
                block::<S, P, true>(image, shape, weights, oy, ox, [c0, c1])
            } else {
                block::<S, P, false>(image, shape, weights, oy, ox, [c0, c1])
            };
            for (v, cv) in [c0, c1].into_iter().enumerate() {
                // SAFETY: channels `cv..cv + LANES ≤ C_out` of the epilogue and of pixels
                // below `wo` (sizes asserted by the caller).
                unsafe {
                    let (scale, shift) = (S::load(epilogue.scale.as_ptr().add(cv)), S::load(epilogue.shift.as_ptr().add(cv)));
                    for (p, acc) in acc.iter().enumerate().take(wo - ox) {
                        S::store(out.add((ox + p) * c + cv), affine_activate::<S>(acc[v], scale, shift, epilogue.act));
                    }
                }
            }
        }
        if c1 + S::LANES >= c {
            break;
        }
        c0 = (c1 + S::LANES).min(c - S::LANES);
    }
}

/// The input value at padded column `ix` of `in_row` (column `ix − pad`): zero outside
/// the row, or when the output pixel that reads it is not `valid` (past the row's end).
/// `INTERIOR`: the caller checked that the column is inside and the pixel valid.
#[inline(always)]
fn input_at<const INTERIOR: bool>(in_row: &[f32], ix: usize, pad: usize, valid: bool) -> f32 {
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

/// Accumulators of output pixels `ox..ox + P` of row `oy` for the channel vectors at
/// `channels` (both inside `C_out`). `INTERIOR`: every column the block reads is inside
/// the image.
#[inline(always)]
fn block<S: Simd, const P: usize, const INTERIOR: bool>(
    image: &[f32],
    shape: ConvShape,
    weights: MatRef,
    oy: usize,
    ox: usize,
    channels: [usize; 2],
) -> [[S::V; 2]; P] {
    let ConvShape { channels: c_in, h, w, k, stride } = shape;
    let pad = k / 2;
    let wo = shape.out_hw().1;
    let mut acc = [[S::zero(); 2]; P];
    for ci in 0..c_in {
        for ky in 0..k {
            let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < h) else { continue };
            let in_row = &image[(ci * h + iy) * w..(ci * h + iy + 1) * w];
            for kx in 0..k {
                let tap = weights.row((ci * k + ky) * k + kx);
                // SAFETY: both vectors end at or before `C_out` (the caller's contract).
                let taps = unsafe { [S::load(tap.as_ptr().add(channels[0])), S::load(tap.as_ptr().add(channels[1]))] };
                for (p, acc) in acc.iter_mut().enumerate() {
                    let x = S::splat(input_at::<INTERIOR>(in_row, (ox + p) * stride + kx, pad, ox + p < wo));
                    acc[0] = S::mul_add(x, taps[0], acc[0]);
                    acc[1] = S::mul_add(x, taps[1], acc[1]);
                }
            }
        }
    }
    acc
}

/// Output row `oy` one value at a time (fewer output channels than a vector).
fn row_any_width(image: &[f32], shape: ConvShape, weights: MatRef, epilogue: Epilogue, oy: usize, out_row: &mut [f32]) {
    let ConvShape { channels: c_in, h, w, k, stride } = shape;
    let (c, wo, pad) = (weights.cols, shape.out_hw().1, k / 2);
    for ox in 0..wo {
        for co in 0..c {
            let mut acc = 0.0;
            for ci in 0..c_in {
                for ky in 0..k {
                    let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < h) else { continue };
                    for kx in 0..k {
                        let Some(ix) = (ox * stride + kx).checked_sub(pad).filter(|&ix| ix < w) else { continue };
                        acc += image[(ci * h + iy) * w + ix] * weights.row((ci * k + ky) * k + kx)[co];
                    }
                }
            }
            out_row[ox * c + co] = epilogue.act.apply(acc * epilogue.scale[co] + epilogue.shift[co]);
        }
    }
}
