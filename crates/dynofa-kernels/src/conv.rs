//! Dense k×k convolution with "same" padding through im2col and GEMM (used for the stem,
//! whose 3 input channels make a direct GEMM formulation cheap).

use crate::depthwise::out_size;
use crate::matrix::{matmul, MatRef};

/// `out[C_out, ho, wo] = weights[C_out, C_in·k·k] · im2col(input[C_in, h, w])`.
/// `cols` is scratch space of at least `C_in·k·k·ho·wo` values.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(input: &[f32], c_in: usize, h: usize, w: usize, weights: MatRef, k: usize, stride: usize, cols: &mut [f32], out: &mut [f32], threads: usize) {
    assert_eq!(weights.cols, c_in * k * k);
    let (ho, wo) = (out_size(h, k, stride), out_size(w, k, stride));
    let n = ho * wo;
    let pad = k / 2;
    let cols = &mut cols[..c_in * k * k * n];
    for c in 0..c_in {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((c * k + ky) * k + kx) * n..][..n];
                for oy in 0..ho {
                    let iy = (oy * stride + ky).checked_sub(pad).filter(|&v| v < h);
                    for ox in 0..wo {
                        let ix = (ox * stride + kx).checked_sub(pad).filter(|&v| v < w);
                        row[oy * wo + ox] = match (iy, ix) {
                            (Some(iy), Some(ix)) => input[(c * h + iy) * w + ix],
                            _ => 0.0,
                        };
                    }
                }
            }
        }
    }
    matmul(out, weights, MatRef::dense(cols, c_in * k * k, n), threads);
}
