//! Camera frames and OFA's evaluation preprocessing, done in one pass per frame.

use crate::error::{Error, Result};

/// ImageNet channel means (RGB).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// OFA's centre-crop ratio: the shorter side is resized to `ceil(r / 0.875)`.
pub const CROP_RATIO: f64 = 0.875;

/// An RGB frame, 8 bits per channel, rows top to bottom (`[height, width, 3]`).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    width: usize,
    height: usize,
    rgb: &'a [u8],
}

impl<'a> Frame<'a> {
    /// A `width × height` frame of interleaved RGB bytes.
    pub fn rgb(width: usize, height: usize, rgb: &'a [u8]) -> Result<Self> {
        if width == 0 || height == 0 || rgb.len() != width * height * 3 {
            return Err(Error::invalid("frame", format!("{width}×{height} with {} bytes", rgb.len()), "width × height × 3 bytes of RGB, both sides positive"));
        }
        Ok(Frame { width, height, rgb })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Writes the network input `[3, r, r]` (CHW) into `out`: OFA's evaluation transform
    /// (shorter side resized to `ceil(r / 0.875)`, centre `r × r` crop, ImageNet
    /// normalisation) with bilinear sampling straight from the frame (no anti-aliasing:
    /// frames close to the network's resolution keep it exact enough and cost ~0.3 ms).
    pub fn to_input(&self, r: usize, out: &mut Vec<f32>) {
        out.clear();
        out.resize(3 * r * r, 0.0);
        let (w, h) = (self.width as f64, self.height as f64);
        let (rw, rh) = resized_size(self.width, self.height, r);
        let (rw, rh) = (rw as f64, rh as f64);
        let (left, top) = (((rw - r as f64) / 2.0).floor(), ((rh - r as f64) / 2.0).floor());
        let (sx, sy) = (w / rw, h / rh);
        // Source coordinates and weights per output column, computed once.
        let columns: Vec<(usize, usize, f32)> = (0..r).map(|x| sample_at((left + x as f64 + 0.5) * sx - 0.5, self.width)).collect();
        let plane = r * r;
        for y in 0..r {
            let (y0, y1, fy) = sample_at((top + y as f64 + 0.5) * sy - 0.5, self.height);
            let (row0, row1) = (&self.rgb[y0 * self.width * 3..], &self.rgb[y1 * self.width * 3..]);
            for (x, &(x0, x1, fx)) in columns.iter().enumerate() {
                for c in 0..3 {
                    let p = |row: &[u8], xi: usize| row[xi * 3 + c] as f32;
                    let top = p(row0, x0) + fx * (p(row0, x1) - p(row0, x0));
                    let bottom = p(row1, x0) + fx * (p(row1, x1) - p(row1, x0));
                    let value = (top + fy * (bottom - top)) / 255.0;
                    out[c * plane + y * r + x] = (value - MEAN[c]) / STD[c];
                }
            }
        }
    }
}

/// The size a `width × height` picture is resized to before the centre `r × r` crop:
/// the shorter side becomes `ceil(r / 0.875)`, the other keeps the aspect ratio.
pub fn resized_size(width: usize, height: usize, r: usize) -> (usize, usize) {
    let (w, h) = (width as f64, height as f64);
    let short = (r as f64 / CROP_RATIO).ceil();
    let (rw, rh) = if w <= h { (short, (h * short / w).round()) } else { ((w * short / h).round(), short) };
    (rw as usize, rh as usize)
}

/// The two source indices around coordinate `at` (clamped to `0..len`) and the weight of the second.
fn sample_at(at: f64, len: usize) -> (usize, usize, f32) {
    let at = at.clamp(0.0, (len - 1) as f64);
    let i0 = at.floor() as usize;
    (i0, (i0 + 1).min(len - 1), (at - i0 as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uniform_frame_gives_normalised_constants() {
        let pixels = [200u8, 100, 50].repeat(64 * 48);
        let frame = Frame::rgb(64, 48, &pixels).unwrap();
        let mut input = Vec::new();
        frame.to_input(32, &mut input);
        assert_eq!(input.len(), 3 * 32 * 32);
        for (c, value) in [200.0f32, 100.0, 50.0].into_iter().enumerate() {
            let expected = (value / 255.0 - MEAN[c]) / STD[c];
            assert!(input[c * 1024..(c + 1) * 1024].iter().all(|v| (v - expected).abs() < 1e-5));
        }
    }

    #[test]
    fn the_crop_is_centred() {
        // A frame twice as wide as high, left half black, right half white: the centre
        // crop straddles the boundary, half each.
        let (w, h) = (64, 32);
        let pixels: Vec<u8> = (0..w * h).flat_map(|i| if i % w < w / 2 { [0u8; 3] } else { [255u8; 3] }).collect();
        let mut input = Vec::new();
        Frame::rgb(w, h, &pixels).unwrap().to_input(28, &mut input);
        let row = &input[..28];
        assert!(row[..13].iter().all(|&v| v < 0.0) && row[15..].iter().all(|&v| v > 0.0), "{row:?}");
    }

    #[test]
    fn bad_frames_are_refused() {
        for (w, h, bytes, value) in [(4, 4, 47, "4×4 with 47 bytes"), (0, 4, 0, "0×4 with 0 bytes")] {
            let err = Frame::rgb(w, h, &vec![0; bytes]).unwrap_err();
            assert!(matches!(&err, crate::Error::InvalidValue { field, value: v, .. } if field == "frame" && v == value), "{err}");
        }
    }
}
