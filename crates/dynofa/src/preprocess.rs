//! OFA's ImageNet preprocessing of image files and the class names.
//!
//! As OFA's evaluation transforms: resize the shorter side to `ceil(r / 0.875)` (bilinear,
//! anti-aliased), crop the centre `r × r`, scale to [0, 1], normalise with ImageNet's mean
//! and std (the sizes and constants are the runtime's, `dynofa_runtime::frame`).

use std::path::Path;

use anyhow::{Context, Result};
use dynofa_runtime::frame::{resized_size, MEAN, STD};
use image::imageops::FilterType;


/// The 1000 ImageNet class names, index order.
pub fn class_names() -> Vec<&'static str> {
    include_str!("../../../assets/imagenet_classes.txt").lines().collect()
}

/// Reads an image file and returns its `[3, r, r]` tensor values (CHW, row-major).
pub fn load_image(path: &Path, r: usize) -> Result<Vec<f32>> {
    let img = image::open(path)
        .with_context(|| format!("cannot read image {}", path.display()))?
        .to_rgb8();
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
