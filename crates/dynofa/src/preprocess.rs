//! OFA's ImageNet preprocessing of image files and the class names.
//!
//! As OFA's evaluation transforms: resize the shorter side to `ceil(r / 0.875)` (bilinear,
//! anti-aliased), crop the centre `r × r`, scale to [0, 1], normalise with ImageNet's mean
//! and std (the sizes and constants are the runtime's, `dynofa_runtime::frame`).
//!
//! Every image file the tool reads is decoded by [`read_image`], within [`MAX_IMAGE_SIDE`]
//! and [`MAX_IMAGE_BYTES`]: a small file that claims huge dimensions is refused from its
//! header, before anything is allocated for its pixels.

use std::path::Path;

use anyhow::{Context, Result, bail};
use dynofa_runtime::frame::{MEAN, STD, resized_size};
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// The largest width and the largest height, in pixels, of an image the tool decodes
/// (16384: far above any camera frame or dataset image).
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// The most memory the pixels of one decoded image may take, in bytes (512 MiB: a
/// 16384 × 8192 RGBA image, or about 13000² in RGB).
pub const MAX_IMAGE_BYTES: u64 = 512 * 1024 * 1024;

/// Decodes an image file (PNG or JPEG, told by its content), refusing, from its header,
/// one larger than [`MAX_IMAGE_SIDE`] on a side or whose pixels need more than
/// [`MAX_IMAGE_BYTES`]; the error names the file (and the dimensions it claims).
pub fn read_image(path: &Path) -> Result<DynamicImage> {
    let cannot = || format!("cannot read image {}", path.display());
    let mut reader = ImageReader::open(path).with_context(cannot)?.with_guessed_format().with_context(cannot)?;
    // Only the header is read here: no dimension limit yet, so that the error can say
    // what the file claims; the decoders' own allocations stay bounded.
    let mut header_limits = Limits::no_limits();
    header_limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().with_context(cannot)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        bail!("image {} claims {width}×{height} pixels: more than the {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} this tool decodes", path.display());
    }
    let bytes = decoder.total_bytes();
    if bytes > MAX_IMAGE_BYTES {
        bail!(
            "image {} ({width}×{height} pixels) needs {} MiB to decode: more than the {} MiB this tool allows",
            path.display(),
            bytes.div_ceil(1 << 20),
            MAX_IMAGE_BYTES >> 20
        );
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    decoder.set_limits(limits).with_context(cannot)?;
    DynamicImage::from_decoder(decoder).with_context(cannot)
}

/// The 1000 ImageNet class names, index order.
pub fn class_names() -> Vec<&'static str> {
    include_str!("../../../assets/imagenet_classes.txt").lines().collect()
}

/// Reads an image file and returns its `[3, r, r]` tensor values (CHW, row-major).
pub fn load_image(path: &Path, r: usize) -> Result<Vec<f32>> {
    let img = read_image(path)?.to_rgb8();
    let (w, h) = img.dimensions();
    let (nw, nh) = resized_size(w as usize, h as usize, r);
    let (nw, nh) = (nw as u32, nh as u32);
    let resized = image::imageops::resize(&img, nw.max(1), nh.max(1), FilterType::Triangle);
    let r32 = r as u32;
    anyhow::ensure!(nw >= r32 && nh >= r32, "image {} is too small to crop {r}×{r}", path.display());
    let (left, top) = ((nw - r32) / 2, (nh - r32) / 2);
    let mut chw = vec![0.0f32; 3 * r * r];
    for y in 0..r {
        for x in 0..r {
            let pixel = resized.get_pixel(left + x as u32, top + y as u32);
            for c in 0..3 {
                chw[c * r * r + y * r + x] = (pixel[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            }
        }
    }
    Ok(chw)
}

/// Indices of the `k` largest values, largest first.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(k);
    order
}

/// Softmax of a row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|v| v / sum).collect()
}

#[cfg(test)]
mod tests {
    use dynofa_golden::mutation::{BoundedAllocator, check_reader};

    /// No single allocation above 1 GiB in this test binary.
    #[global_allocator]
    static ALLOCATOR: BoundedAllocator = BoundedAllocator::new(1 << 30);

    #[test]
    fn images_survive_mutation() {
        let dir = tempfile::tempdir().unwrap();
        let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample.png");
        let report = check_reader(&sample, "mutant.png", dir.path(), 2000, 41, |p| super::read_image(p).map(drop).map_err(|e| format!("{e:#}")));
        assert!(report.refused > 200, "{report:?}");
    }
}
