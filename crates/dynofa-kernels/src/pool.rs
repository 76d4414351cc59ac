//! Global average pooling and per-channel gating on pixel-major images `[P, C]` (the
//! squeeze and the excitation of squeeze-and-excitation, and the head's pooling).

use crate::isa::Isa;
use crate::simd::Simd;
use crate::threads;

/// `out[c] = mean over pixels p of image[p, c]` for `image = [P, C]`, `C = out.len()`.
pub fn mean_pixels(image: &[f32], out: &mut [f32]) {
    mean_pixels_on(Isa::best(), image, out)
}

crate::multiversion! {
    /// [`mean_pixels`] compiled for `isa`.
    pub fn mean_pixels_on(image: &[f32], out: &mut [f32]) => mean_pixels_body
}

#[inline(always)]
fn mean_pixels_body<S: Simd>(image: &[f32], out: &mut [f32]) {
    let c = out.len();
    let pixels = image.len().checked_div(c).unwrap_or(0);
    let inv = S::splat(1.0 / pixels.max(1) as f32);
    // `MEAN_VECTORS` vectors of channels at a time, summed in registers over every pixel
    // (independent chains of additions; each pixel's run of them is contiguous).
    let step = MEAN_VECTORS * S::LANES;
    let mut c0 = 0;
    while c0 + step <= c {
        let mut acc = [S::zero(); MEAN_VECTORS];
        for p in 0..pixels {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: pixel `p < pixels` has `c` values, `c0 + step ≤ c`.
                *acc = S::add(*acc, unsafe { S::load(image.as_ptr().add(p * c + c0 + v * S::LANES)) });
            }
        }
        for (v, &acc) in acc.iter().enumerate() {
            // SAFETY: `LANES` values of `out` from `c0 + v·LANES < c0 + step ≤ c`.
            unsafe { S::store(out.as_mut_ptr().add(c0 + v * S::LANES), S::mul(acc, inv)) };
        }
        c0 += step;
    }
    for c0 in (c0..c).step_by(S::LANES) {
        let lanes = S::LANES.min(c - c0);
        let mut acc = S::zero();
        for p in 0..pixels {
            // SAFETY: `lanes` values of pixel `p` from `c0`.
            acc = S::add(acc, unsafe { S::load_n(image.as_ptr().add(p * c + c0), lanes) });
        }
        // SAFETY: `lanes` values of `out` from `c0`.
        unsafe { S::store_n(out.as_mut_ptr().add(c0), S::mul(acc, inv), lanes) };
    }
}

/// Vectors of channels [`mean_pixels`] sums at once.
const MEAN_VECTORS: usize = 4;

/// [`mean_pixels`] of each image of `images = [B, rows, W, C]` into `out = [B, C]`, on
/// [`threads::current`] threads: whole images per thread when there are at least as many
/// images as threads, else each image split into one band of rows per thread (the bands
/// the convolution kernels use), each band averaged into its own row of `partial`
/// (`[threads, C]`, grown when needed), then the bands combined: each thread reads the
/// rows it wrote itself in the kernel before, from its own cache (measured: one thread
/// pooling both bands was slower on 2 threads than on 1).
pub fn mean_pixels_banded(images: &[f32], batch: usize, rows: usize, out: &mut [f32], partial: &mut Vec<f32>) {
    let (image_values, c) = (images.len() / batch.max(1), out.len() / batch.max(1));
    if splits_whole_images(images.len(), batch) {
        return threads::for_each_chunk_mut(&mut out[..batch * c], c, |b, out| mean_pixels(&images[b * image_values..(b + 1) * image_values], out));
    }
    for (image, out) in images.chunks(image_values.max(1)).zip(out.chunks_mut(c.max(1))) {
        mean_image_banded(image, rows, out, partial);
    }
}

/// Whether a pass over `batch` images of `values` in all gives each thread whole images:
/// when it splits at all (see [`threads::for_work`]) and there are as many images as threads.
fn splits_whole_images(values: usize, batch: usize) -> bool {
    let threads = threads::for_work(values);
    batch > 1 && threads > 1 && batch >= threads
}

/// Rows per band when a pass over one image of `values` in `rows` rows splits into one
/// band per thread (all rows: no split).
fn band_rows(values: usize, rows: usize) -> usize {
    rows.div_ceil(threads::for_work(values)).max(1)
}

/// [`mean_pixels`] of one image `[rows, W, C]`, one band of rows per thread.
fn mean_image_banded(image: &[f32], rows: usize, out: &mut [f32], partial: &mut Vec<f32>) {
    let c = out.len();
    let pixels = image.len().checked_div(c).unwrap_or(0);
    let band = band_rows(image.len(), rows);
    let bands = rows.div_ceil(band);
    if bands <= 1 || !pixels.is_multiple_of(rows) {
        return mean_pixels(image, out);
    }
    let band_values = band * (pixels / rows) * c;
    if partial.len() < bands * c {
        partial.resize(bands * c, 0.0);
    }
    threads::for_each_chunk_mut(&mut partial[..bands * c], c, |i, means| {
        mean_pixels(&image[i * band_values..((i + 1) * band_values).min(pixels * c)], means);
    });
    // Each band's mean weighs by its share of the pixels.
    out.fill(0.0);
    for (i, means) in partial[..bands * c].chunks(c).enumerate() {
        let share = ((band_values.min(pixels * c - i * band_values)) / c) as f32 / pixels as f32;
        for (o, &m) in out.iter_mut().zip(means) {
            *o += m * share;
        }
    }
}

/// `image[p, c] *= gates[c]` for `image = [P, C]`, `C = gates.len()`.
pub fn scale_channels(image: &mut [f32], gates: &[f32]) {
    scale_channels_on(Isa::best(), image, gates)
}

/// [`scale_channels`] of each image of `images = [B, rows, W, C]` by its gates `[B, C]`,
/// split over threads as [`mean_pixels_banded`] splits (whole images, else bands of
/// rows): each thread gates what is in its own cache.
pub fn scale_channels_banded(images: &mut [f32], batch: usize, rows: usize, gates: &[f32]) {
    let (image_values, c) = (images.len() / batch.max(1), gates.len() / batch.max(1));
    if splits_whole_images(images.len(), batch) {
        return threads::for_each_chunk_mut(&mut images[..batch * image_values], image_values, |b, image| scale_channels(image, &gates[b * c..(b + 1) * c]));
    }
    for (image, gates) in images.chunks_mut(image_values.max(1)).zip(gates.chunks(c.max(1))) {
        let band = band_rows(image.len(), rows);
        let row_values = image.len() / rows.max(1);
        if band >= rows || !row_values.is_multiple_of(c.max(1)) {
            scale_channels(image, gates);
        } else {
            threads::for_each_chunk_mut(image, band * row_values, |_, rows| scale_channels(rows, gates));
        }
    }
}

crate::multiversion! {
    /// [`scale_channels`] compiled for `isa`.
    pub fn scale_channels_on(image: &mut [f32], gates: &[f32]) => scale_channels_body
}

#[inline(always)]
fn scale_channels_body<S: Simd>(image: &mut [f32], gates: &[f32]) {
    let c = gates.len();
    for pixel in image.chunks_exact_mut(c.max(1)) {
        for c0 in (0..c).step_by(S::LANES) {
            let lanes = S::LANES.min(c - c0);
            // SAFETY: `lanes` values from `c0` of the pixel and of the gates (`c` each).
            unsafe {
                S::store_n(pixel.as_mut_ptr().add(c0), S::mul(S::load_n(pixel.as_ptr().add(c0), lanes), S::load_n(gates.as_ptr().add(c0), lanes)), lanes)
            };
        }
    }
}
