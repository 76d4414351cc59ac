//! Depthwise k×k convolution, "same" padding `k / 2`, stride 1 or 2, on `[C, H, W]`,
//! with the per-channel epilogue fused.

use rayon::prelude::*;

use crate::epilogue::Activation;
use crate::matrix::MatRef;

/// Output size of a padded convolution: `(size + 2·(k/2) − k) / stride + 1`.
pub fn out_size(size: usize, k: usize, stride: usize) -> usize {
    (size + 2 * (k / 2) - k) / stride + 1
}

/// Per-channel epilogue of a convolution: `act(x × scale + shift)`.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Per-channel scale (folded BN).
    pub scale: &'a [f32],
    /// Per-channel shift (folded BN).
    pub shift: &'a [f32],
    /// Activation after the affine.
    pub act: Activation,
}

/// `out[c] = epilogue(Σ weights[c] ⊛ input[c])` for each channel `c` of `input = [C, h, w]`.
/// `weights` is `[C, k·k]` (row-major kernels; a strided view is fine).
pub fn depthwise(input: &[f32], h: usize, w: usize, weights: MatRef, k: usize, stride: usize, epilogue: Epilogue, out: &mut [f32]) {
    let channels = weights.rows;
    assert_eq!(weights.cols, k * k, "kernels of {} values for k = {k}", weights.cols);
    assert!(stride == 1 || stride == 2, "stride {stride}");
    let (ho, wo) = (out_size(h, k, stride), out_size(w, k, stride));
    assert!(input.len() >= channels * h * w && out.len() >= channels * ho * wo);
    out[..channels * ho * wo].par_chunks_mut(ho * wo).enumerate().for_each(|(c, out)| {
        channel(&input[c * h * w..(c + 1) * h * w], h, w, weights.row(c), k, stride, out);
        let (s, b) = (epilogue.scale[c], epilogue.shift[c]);
        out.iter_mut().for_each(|x| *x = epilogue.act.apply(*x * s + b));
    });
}

/// One channel: `out[ho × wo] = kernel ⊛ input[h × w]`.
fn channel(input: &[f32], h: usize, w: usize, kernel: &[f32], k: usize, stride: usize, out: &mut [f32]) {
    let pad = k / 2;
    let wo = out_size(w, k, stride);
    out.fill(0.0);
    for (oy, out_row) in out.chunks_mut(wo).enumerate() {
        for ky in 0..k {
            let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < h) else { continue };
            let in_row = &input[iy * w..(iy + 1) * w];
            for kx in 0..k {
                let wv = kernel[ky * k + kx];
                // Output columns whose input column ox·s + kx − pad lies inside the row.
                let lo = pad.saturating_sub(kx).div_ceil(stride);
                let hi = (w + pad).saturating_sub(kx).div_ceil(stride).min(wo);
                if lo >= hi {
                    continue;
                }
                let start = lo * stride + kx - pad;
                if stride == 1 {
                    let src = &in_row[start..start + (hi - lo)];
                    out_row[lo..hi].iter_mut().zip(src).for_each(|(o, &x)| *o += wv * x);
                } else {
                    for (i, o) in out_row[lo..hi].iter_mut().enumerate() {
                        *o += wv * in_row[start + i * stride];
                    }
                }
            }
        }
    }
}
