//! The stem convolution's AVX-512 body, in explicit intrinsics: register blocks of
//! [`PIXELS`] output pixels × two vectors of output channels (16 accumulators), so that
//! each broadcast input value feeds two multiply–adds and each weight vector eight — the
//! generic body's one vector per block made as many loads as multiply–adds.

use std::arch::x86_64::*;

use crate::avx512::affine_activate;
use crate::conv::input_at;
use crate::epilogue::Epilogue;
use crate::matrix::MatRef;
use crate::shape::ConvShape;

/// Output pixels per register block.
const PIXELS: usize = 8;

/// Output row `oy` (`[wo, C_out]`, `C_out ≥ 16`) of one image `[C_in, h, w]`.
///
/// Channels go two vectors at a time, at offsets `c0` and `min(c0 + 16, C_out − 16)` (the
/// second shifted back to end at `C_out`, recomputing a few channels rather than running a
/// tail: 24 channels are vectors at 0 and 8).
///
/// # Safety
/// The CPU has AVX-512F; `image` holds `C_in·h·w` values, `weights` is `C_in·k² × C_out`,
/// the epilogue covers `C_out` channels, `out_row` holds `wo·C_out` values, `oy < ho`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn row(image: &[f32], shape: ConvShape, weights: MatRef, epilogue: Epilogue, oy: usize, out_row: &mut [f32]) {
    let c = weights.cols;
    let (_, wo) = shape.out_hw();
    let out = out_row.as_mut_ptr();
    let mut c0 = 0;
    loop {
        let c1 = (c0 + 16).min(c - 16);
        for ox in (0..wo).step_by(PIXELS) {
            let ConvShape { w, k, stride, .. } = shape;
            // Every tap of every pixel of the block inside the image: no column checks.
            let interior = ox + PIXELS <= wo && ox * stride >= k / 2 && (ox + PIXELS - 1) * stride + k - k / 2 <= w;
            // SAFETY: the caller's contract; blocks stay below `wo` pixels and `C_out` channels.
            let acc = unsafe {
                if interior {
                    block::<true>(image, shape, weights, oy, ox, [c0, c1])
                } else {
                    block::<false>(image, shape, weights, oy, ox, [c0, c1])
                }
            };
            for (v, cv) in [c0, c1].into_iter().enumerate() {
                // SAFETY: channels `cv..cv + 16 ≤ C_out` of the epilogue and of pixels below `wo`.
                unsafe {
                    let (scale, shift) = (_mm512_loadu_ps(epilogue.scale.as_ptr().add(cv)), _mm512_loadu_ps(epilogue.shift.as_ptr().add(cv)));
                    for (p, acc) in acc.iter().enumerate().take(wo - ox) {
                        _mm512_storeu_ps(out.add((ox + p) * c + cv), affine_activate(acc[v], scale, shift, epilogue.act));
                    }
                }
            }
        }
        if c1 + 16 >= c {
            break;
        }
        c0 = (c1 + 16).min(c - 16);
    }
}

/// Accumulators of output pixels `ox..ox + PIXELS` of row `oy` for the channel vectors at
/// `channels`. `INTERIOR`: every column the block reads is inside the image.
///
/// # Safety
/// As [`row`], with both channel vectors inside `C_out`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block<const INTERIOR: bool>(image: &[f32], shape: ConvShape, weights: MatRef, oy: usize, ox: usize, channels: [usize; 2]) -> [[__m512; 2]; PIXELS] {
    let ConvShape { channels: c_in, h, w, k, stride } = shape;
    let pad = k / 2;
    let wo = shape.out_hw().1;
    let mut acc = [[_mm512_setzero_ps(); 2]; PIXELS];
    for ci in 0..c_in {
        for ky in 0..k {
            let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < h) else { continue };
            let in_row = &image[(ci * h + iy) * w..(ci * h + iy + 1) * w];
            for kx in 0..k {
                let tap = weights.row((ci * k + ky) * k + kx);
                // SAFETY: both vectors end at or before `C_out` (the caller's contract).
                let taps = unsafe { [_mm512_loadu_ps(tap.as_ptr().add(channels[0])), _mm512_loadu_ps(tap.as_ptr().add(channels[1]))] };
                for (p, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(input_at::<INTERIOR>(in_row, (ox + p) * stride + kx, pad, ox + p < wo));
                    acc[0] = _mm512_fmadd_ps(x, taps[0], acc[0]);
                    acc[1] = _mm512_fmadd_ps(x, taps[1], acc[1]);
                }
            }
        }
    }
    acc
}
