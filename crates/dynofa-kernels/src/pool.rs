//! Global average pooling and per-channel gating on pixel-major images `[P, C]` (the
//! squeeze and the excitation of squeeze-and-excitation, and the head's pooling).

use crate::isa::Isa;

/// `out[c] = mean over pixels p of image[p, c]` for `image = [P, C]`, `C = out.len()`.
pub fn mean_pixels(image: &[f32], out: &mut [f32]) {
    mean_pixels_on(Isa::best(), image, out)
}

crate::multiversion! {
    /// [`mean_pixels`] compiled for `isa`.
    pub fn mean_pixels_on(image: &[f32], out: &mut [f32]) => mean_pixels_body
}

#[inline(always)]
fn mean_pixels_body<const FUSED: bool, const LANES: usize, const REGISTERS: usize>(image: &[f32], out: &mut [f32]) {
    let c = out.len();
    out.fill(0.0);
    let pixels = image.len().checked_div(c).unwrap_or(0);
    for pixel in image.chunks_exact(c.max(1)).take(pixels) {
        for (o, &x) in out.iter_mut().zip(pixel) {
            *o += x;
        }
    }
    let inv = 1.0 / pixels.max(1) as f32;
    out.iter_mut().for_each(|o| *o *= inv);
}

/// `image[p, c] *= gates[c]` for `image = [P, C]`, `C = gates.len()`.
pub fn scale_channels(image: &mut [f32], gates: &[f32]) {
    scale_channels_on(Isa::best(), image, gates)
}

crate::multiversion! {
    /// [`scale_channels`] compiled for `isa`.
    pub fn scale_channels_on(image: &mut [f32], gates: &[f32]) => scale_channels_body
}

#[inline(always)]
fn scale_channels_body<const FUSED: bool, const LANES: usize, const REGISTERS: usize>(image: &mut [f32], gates: &[f32]) {
    for pixel in image.chunks_exact_mut(gates.len().max(1)) {
        for (x, &g) in pixel.iter_mut().zip(gates) {
            *x *= g;
        }
    }
}
