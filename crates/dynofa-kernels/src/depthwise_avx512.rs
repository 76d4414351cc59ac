//! The depthwise k×k convolution's AVX-512 body, in explicit intrinsics.
//!
//! The same register blocking as the generic body in [`crate::depthwise`] (`R` output rows
//! × `P` pixels × 16 channels of accumulators; per input row, a window of input columns
//! loaded once and every tap that reads it applied from registers), written with
//! `__m512` values and walking pointers instead of `[f32; 16]` arrays and indices: the
//! compiler then keeps addresses in registers and unrolls the taps, where the generic
//! body's code spilled addresses to the stack (measured: see the kernel bench).
//!
//! It reads pixel-major images or channel blocks ([`crate::layout::Layout`]); from channel
//! blocks, the input rows of a block of 16 channels are contiguous runs, which the
//! hardware prefetchers follow, where pixel-major rows interleave every channel.

use std::arch::x86_64::*;

use crate::avx512::affine_activate;
use crate::epilogue::Epilogue;
use crate::matrix::MatRef;
use crate::shape::{ConvShape, out_size};

/// Input columns a window may hold.
const WINDOW: usize = 16;

/// Where an image's input values are.
#[derive(Clone, Copy)]
pub(crate) enum Input {
    /// `[h, w, C]` from this pointer.
    PixelMajor(*const f32),
    /// Channel block `j` is the plane `[h, w, 16]` at `image + j·plane_stride`
    /// ([`crate::layout::Layout::ChannelBlocks`]; `C` is a multiple of 16).
    ChannelBlocks { image: *const f32, plane_stride: usize },
}

/// Output rows `oy..` (as many as `out_rows` holds, `[rows, wo, C]`, `C ≥ 16`) of one
/// image `[h, w, C]` in either layout, for kernel size `K` and stride `S`.
///
/// # Safety
/// The CPU has AVX-512F; `image` holds `h·w·C` values (its planes, or pixels, inside one
/// allocation), `kernels` is `K² × C`, the epilogue covers `C` channels, `out_rows` is
/// whole rows and `oy + rows ≤ ho`, `C ≥ 16`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn rows<const K: usize, const S: usize>(
    image: Input,
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
            rows_with::<K, S, 8>(image, shape, kernels, epilogue, oy, out_rows)
        } else {
            rows_with::<K, S, 4>(image, shape, kernels, epilogue, oy, out_rows)
        }
    }
}

/// [`rows`] with `P` pixels per block, two output rows per block (the last one alone when
/// their count is odd).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn rows_with<const K: usize, const S: usize, const P: usize>(
    image: Input,
    shape: ConvShape,
    kernels: MatRef,
    epilogue: Epilogue,
    oy: usize,
    out_rows: &mut [f32],
) {
    let c = shape.channels;
    debug_assert!(c >= 16 && (P - 1) * S + K <= WINDOW);
    let wo = out_size(shape.w, K, S);
    let rows = out_rows.len() / (wo * c);
    let conv = Conv { image, shape, kernels, epilogue, out: out_rows.as_mut_ptr(), wo, oy };
    let channel_blocks = c.div_ceil(16);
    // SAFETY: channel blocks below `channel_blocks`, pixels below `wo`, output rows below
    // `rows` (the caller's contract).
    unsafe {
        let pair = |b: usize, ox: usize, y: usize| {
            if y + 2 <= rows {
                conv.block::<K, S, P, 2>(b, ox, y)
            } else {
                conv.block::<K, S, P, 1>(b, ox, y)
            }
        };
        if S == 2 {
            // Stride 2 reads the largest inputs (up to 112×112×144 = 7.2 MB, from L3):
            // pixels outer, so that reads go through memory in order (measured 27 → 31
            // GMAC/s there).
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
            // blocks outer over every row measured 16% slower on a pixel-major 56×56×192
            // input, whose lines it read one in 12 at a time, and 2.5% slower on the
            // largest network from channel blocks.)
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
    image: Input,
    shape: ConvShape,
    kernels: MatRef<'a>,
    epilogue: Epilogue<'a>,
    out: *mut f32,
    wo: usize,
    oy: usize,
}

impl Conv<'_> {
    /// Output rows `oy + y .. oy + y + R` × pixels `ox..ox + P` (those below `wo`) ×
    /// channel block `b` (channels from `16·b`, the last one shifted back to end at `C`):
    /// accumulates, applies the epilogue and stores.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the block lies inside the image, the kernels and the output.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const K: usize, const S: usize, const P: usize, const R: usize>(&self, b: usize, ox: usize, y: usize) {
        let ConvShape { h, w, channels: c, .. } = self.shape;
        let pad = K / 2;
        let c0 = (16 * b).min(c - 16);
        // Input rows of the block that lie inside the image: `i` in `rows_inside`, counted
        // from the first row its top output row reads.
        let first_row = ((self.oy + y) * S) as isize - pad as isize;
        let (image, pixel_stride, channel_offset) = match self.image {
            Input::PixelMajor(image) => (image, c, c0),
            // SAFETY: plane `c0 / 16` of the input (the caller's contract).
            Input::ChannelBlocks { image, plane_stride } => (unsafe { image.add(c0 / 16 * plane_stride) }, 16, 0),
        };
        let band = Band {
            image,
            row_stride: w * pixel_stride,
            pixel_stride,
            first_row,
            rows_inside: (-first_row).max(0) as usize..((h as isize - first_row) as usize).min((R - 1) * S + K),
            w,
        };
        let first_column = (ox * S) as isize - pad as isize;
        let interior = first_column >= 0 && first_column as usize + (P - 1) * S + K <= w;
        // SAFETY: channels `c0..c0 + 16 ≤ C` of the kernels, the epilogue and pixels
        // `ox..ox + P` (those below `wo`) of the `R` output rows (the caller's contract).
        unsafe {
            let taps = self.kernels.data.as_ptr().add(c0);
            let acc = if interior {
                band.block::<K, S, P, R, false>(taps, self.kernels.row_stride, first_column, channel_offset)
            } else {
                band.block::<K, S, P, R, true>(taps, self.kernels.row_stride, first_column, channel_offset)
            };
            let (scale, shift) = (
                _mm512_loadu_ps(self.epilogue.scale.as_ptr().add(c0)),
                _mm512_loadu_ps(self.epilogue.shift.as_ptr().add(c0)),
            );
            for (r, acc) in acc.iter().enumerate() {
                for (p, &acc) in acc.iter().enumerate().take(P.min(self.wo - ox)) {
                    let v = affine_activate(acc, scale, shift, self.epilogue.act);
                    _mm512_storeu_ps(self.out.add(((y + r) * self.wo + ox + p) * c + c0), v);
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
    /// Accumulators of `R` rows × `P` pixels from input column `first_column`, the 16
    /// channels from `channel_offset` within a pixel. `EDGE`: some window columns lie
    /// outside the image (read as zeros).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const K: usize, const S: usize, const P: usize, const R: usize, const EDGE: bool>(
        &self,
        taps: *const f32,
        tap_stride: usize,
        first_column: isize,
        channel_offset: usize,
    ) -> [[__m512; P]; R] {
        // SAFETY: rows in `rows_inside` and columns inside the image (checked at an edge)
        // of 16 channels from `channel_offset`; tap rows below `K` (the caller's contract).
        unsafe {
            let columns = (P - 1) * S + K;
            let mut acc = [[_mm512_setzero_ps(); P]; R];
            for i in 0..(R - 1) * S + K {
                if !self.rows_inside.contains(&i) {
                    continue;
                }
                let iy = (self.first_row + i as isize) as usize;
                let row = self.image.add(iy * self.row_stride + channel_offset);
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
