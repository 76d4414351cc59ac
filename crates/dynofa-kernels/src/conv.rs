//! Dense k×k convolution with "same" padding through im2col and a GEMM (used for the
//! stem, whose 3 input channels make the patch matrix small).

use rayon::prelude::*;

use crate::depthwise::out_size;
use crate::epilogue::Epilogue;
use crate::matrix::MatRef;
use crate::pointwise::pointwise;

/// `out[B, ho, wo, C_out] = epilogue(im2col(input) · weights)` for channel-major images
/// `input = [B, C_in, h, w]` (the layout frames arrive in) and `weights = [C_in·k·k,
/// C_out]` (PyTorch's `[C_out, C_in, k, k]` flattened and transposed). `patches` is scratch space of at
/// least `B·ho·wo·C_in·k·k` values.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(input: &[f32], batch: usize, c_in: usize, h: usize, w: usize, weights: MatRef, k: usize, stride: usize, epilogue: Epilogue, patches: &mut [f32], out: &mut [f32]) {
    let patch = c_in * k * k;
    assert_eq!(weights.rows, patch, "weights of {} values per output for {c_in}×{k}×{k}", weights.rows);
    assert!(input.len() >= batch * c_in * h * w, "input of {} values for {batch}×{c_in}×{h}×{w}", input.len());
    let (ho, wo) = (out_size(h, k, stride), out_size(w, k, stride));
    let pixels = batch * ho * wo;
    let patches = &mut patches[..pixels * patch];
    let pad = k / 2;
    // patches[(b, oy, ox), (c, ky, kx)] = input[b, c, oy·s + ky − pad, ox·s + kx − pad] or 0.
    patches.par_chunks_mut(wo * patch).enumerate().for_each(|(row, patch_row)| {
        let (b, oy) = (row / ho, row % ho);
        for (ox, values) in patch_row.chunks_mut(patch).enumerate() {
            let mut values = values.iter_mut();
            for c in 0..c_in {
                let channel = &input[(b * c_in + c) * h * w..(b * c_in + c + 1) * h * w];
                for ky in 0..k {
                    let iy = (oy * stride + ky).checked_sub(pad).filter(|&v| v < h);
                    for kx in 0..k {
                        let ix = (ox * stride + kx).checked_sub(pad).filter(|&v| v < w);
                        *values.next().expect("c_in·k·k values") = match (iy, ix) {
                            (Some(iy), Some(ix)) => channel[iy * w + ix],
                            _ => 0.0,
                        };
                    }
                }
            }
        }
    });
    pointwise(MatRef::dense(patches, pixels, patch), weights, epilogue, None, out);
}
