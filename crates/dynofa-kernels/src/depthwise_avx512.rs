//! The depthwise k×k convolution's AVX-512 body, in explicit intrinsics.
//!
//! The same register blocking as the generic body in [`crate::depthwise`] (`R` output rows
//! × `P` pixels × 16 channels of accumulators; per input row, a window of input columns
//! loaded once and every tap that reads it applied from registers), written with
//! `__m512` values and walking pointers instead of `[f32; 16]` arrays and indices: the
//! compiler then keeps addresses in registers and unrolls the taps, where the generic
//! body's code spilled addresses to the stack (measured: see the kernel bench).

use std::arch::x86_64::*;

use crate::avx512::affine_activate;
use crate::epilogue::Epilogue;
use crate::matrix::MatRef;
use crate::shape::{ConvShape, out_size};

/// Input columns a window may hold.
const WINDOW: usize = 16;

/// Output rows `oy..oy + R` (`[R, wo, C]`, `C ≥ 16`) of one image `[h, w, C]`, for kernel
/// size `K`, stride `S` and `P` pixels per block.
///
/// # Safety
/// The CPU has AVX-512F; `image` holds `h·w·C` values, `out_rows` `R·wo·C`, `kernels` is
/// `K² × C`, the epilogue covers `C` channels, `oy + R ≤ ho`, `C ≥ 16`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn rows<const K: usize, const S: usize, const R: usize>(
    image: &[f32],
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_rows: &mut [f32],
) {
    // Stride 1: 8 pixels (16 accumulators, 14 window columns); stride 2: 4 (13 columns).
    // 8 accumulators were too few to hide the multiply–add latency (k7 s1 on 56×56×48:
    // 45 → 52 GMAC/s with 16); 6 pixels at stride 2 measured no faster than 4.
    // SAFETY: forwarded.
    unsafe {
        if S == 1 {
            rows_blocked::<K, S, 8, R>(image, shape, kernels, epilogue, oy, out_rows)
        } else {
            rows_blocked::<K, S, 4, R>(image, shape, kernels, epilogue, oy, out_rows)
        }
    }
}

/// [`rows`] with `P` pixels per block.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn rows_blocked<const K: usize, const S: usize, const P: usize, const R: usize>(
    image: &[f32],
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_rows: &mut [f32],
) {
    let ConvShape { h, w, channels: c, .. } = shape;
    debug_assert!(c >= 16 && (P - 1) * S + K <= WINDOW);
    let wo = out_size(w, K, S);
    let pad = K / 2;
    // Input rows of the band that lie inside the image: `i` in `rows_inside`, counted from
    // the first row the band's top output row reads.
    let first_row = (oy * S) as isize - pad as isize;
    let rows_inside = (-first_row).max(0) as usize..((h as isize - first_row) as usize).min((R - 1) * S + K);
    let band = Band {
        image: image.as_ptr(),
        row_stride: w * c,
        pixel_stride: c,
        first_row,
        rows_inside,
        w,
    };
    let channel_blocks = c.div_ceil(16);
    let out = out_rows.as_mut_ptr();
    // Channel block `b` starts at channel `16·b`, the last one shifted back to end at `C`.
    let block_at = |b: usize, ox: usize| {
        let c0 = (16 * b).min(c - 16);
        let first_column = (ox * S) as isize - pad as isize;
        let interior = first_column >= 0 && first_column as usize + (P - 1) * S + K <= w;
        // SAFETY: channels `c0..c0 + 16 ≤ C` of the kernels, the epilogue and pixels
        // `ox..ox + P` (those below `wo`) of the `R` output rows (the caller's contract).
        unsafe {
            let taps = kernels.data.as_ptr().add(c0);
            let acc = if interior {
                band.block::<K, S, P, R, false>(taps, kernels.row_stride, first_column, c0)
            } else {
                band.block::<K, S, P, R, true>(taps, kernels.row_stride, first_column, c0)
            };
            let (scale, shift) = (
                _mm512_loadu_ps(epilogue.scale.as_ptr().add(c0)),
                _mm512_loadu_ps(epilogue.shift.as_ptr().add(c0)),
            );
            for (r, acc) in acc.iter().enumerate() {
                for (p, &acc) in acc.iter().enumerate().take(P.min(wo - ox)) {
                    let y = affine_activate(acc, scale, shift, epilogue.act);
                    _mm512_storeu_ps(out.add((r * wo + ox + p) * c + c0), y);
                }
            }
        }
    };
    // Stride 2 reads the largest inputs (up to 112×112×144 = 7.2 MB, from L3): pixels
    // outer, so that reads go through memory in order (measured 27 → 31 GMAC/s there); at
    // stride 1, channel blocks outer keep a block's window columns in L1 across pixels.
    if S == 2 {
        for ox in (0..wo).step_by(P) {
            for b in 0..channel_blocks {
                block_at(b, ox);
            }
        }
    } else {
        for b in 0..channel_blocks {
            for ox in (0..wo).step_by(P) {
                block_at(b, ox);
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
    /// Accumulators of `R` rows × `P` pixels from input column `first_column`, channels
    /// `c0..c0 + 16`. `EDGE`: some window columns lie outside the image (read as zeros).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const K: usize, const S: usize, const P: usize, const R: usize, const EDGE: bool>(
        &self,
        taps: *const f32,
        tap_stride: usize,
        first_column: isize,
        c0: usize,
    ) -> [[__m512; P]; R] {
        // SAFETY: rows in `rows_inside` and columns inside the image (checked at an edge)
        // of channels `c0..c0 + 16`; tap rows below `K` (the caller's contract).
        unsafe {
            let columns = (P - 1) * S + K;
            let mut acc = [[_mm512_setzero_ps(); P]; R];
            for i in 0..(R - 1) * S + K {
                if !self.rows_inside.contains(&i) {
                    continue;
                }
                let iy = (self.first_row + i as isize) as usize;
                let row = self.image.add(iy * self.row_stride + c0);
                let mut window = [_mm512_setzero_ps(); WINDOW];
                for (j, slot) in window.iter_mut().enumerate().take(columns) {
                    let ix = first_column + j as isize;
                    if !EDGE || (ix >= 0 && (ix as usize) < self.w) {
                        *slot = _mm512_loadu_ps(row.add(ix as usize * self.pixel_stride));
                    }
                }
                // Output row r reads this input row with tap row i − r·S.
                for (r, acc) in acc.iter_mut().enumerate() {
                    if i < r * S || i - r * S >= K {
                        continue;
                    }
                    let mut tap = taps.add((i - r * S) * K * tap_stride);
                    for kx in 0..K {
                        let t = _mm512_loadu_ps(tap);
                        tap = tap.add(tap_stride);
                        for (p, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm512_fmadd_ps(t, window[p * S + kx], *acc);
                        }
                    }
                }
            }
            acc
        }
    }
}
