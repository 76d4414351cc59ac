//! Per-channel epilogues on `[C, N]` data: folded BatchNorm (`x × scale + shift`), an
//! activation, and an optional residual.

use rayon::prelude::*;

/// Activation functions of MobileNetV3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `x · relu6(x + 3) / 6`.
    HSwish,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::HSwish => x * h_sigmoid(x),
        }
    }
}

/// `relu6(x + 3) / 6`.
#[inline(always)]
pub fn h_sigmoid(x: f32) -> f32 {
    (x + 3.0).clamp(0.0, 6.0) / 6.0
}

/// In place on `data = [C, N]`: `x = act(x × scale[c] + shift[c]) (+ residual)`.
pub fn affine_act(data: &mut [f32], n: usize, scale: &[f32], shift: &[f32], act: Activation, residual: Option<&[f32]>) {
    let channels = scale.len();
    let data = &mut data[..channels * n];
    match residual {
        None => data.par_chunks_mut(n.max(1)).enumerate().for_each(|(c, row)| {
            let (s, b) = (scale[c], shift[c]);
            row.iter_mut().for_each(|x| *x = act.apply(*x * s + b));
        }),
        Some(res) => data.par_chunks_mut(n.max(1)).zip(res.par_chunks(n.max(1))).enumerate().for_each(|(c, (row, r))| {
            let (s, b) = (scale[c], shift[c]);
            row.iter_mut().zip(r).for_each(|(x, r)| *x = act.apply(*x * s + b) + r);
        }),
    }
}

/// Mean of each row of `[C, N]` into `out[C]`.
pub fn row_means(data: &[f32], n: usize, out: &mut [f32]) {
    for (c, o) in out.iter_mut().enumerate() {
        *o = data[c * n..(c + 1) * n].iter().sum::<f32>() / n as f32;
    }
}
