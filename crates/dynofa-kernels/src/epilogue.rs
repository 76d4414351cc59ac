//! What follows a convolution, per output channel: folded BatchNorm or bias
//! (`x × scale + shift`), an activation, and an optional residual add.

use crate::isa::Isa;
use crate::simd::{Simd, affine_activate};

/// Activation functions of MobileNetV3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `x · relu6(x + 3) / 6`.
    HSwish,
    /// `relu6(x + 3) / 6` (the gate of squeeze-and-excitation).
    HSigmoid,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::HSwish => x * h_sigmoid(x),
            Activation::HSigmoid => h_sigmoid(x),
        }
    }
}

/// `relu6(x + 3) / 6`.
#[inline(always)]
pub fn h_sigmoid(x: f32) -> f32 {
    (x + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0)
}

/// Per-channel epilogue of a convolution: `act(x × scale[c] + shift[c])`.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Per-channel scale (folded BN; ones for a plain bias).
    pub scale: &'a [f32],
    /// Per-channel shift (folded BN, or the bias).
    pub shift: &'a [f32],
    /// Activation after the affine.
    pub act: Activation,
}

impl<'a> Epilogue<'a> {
    /// Channels `range` of this epilogue.
    pub fn columns(self, range: std::ops::Range<usize>) -> Epilogue<'a> {
        Epilogue { scale: &self.scale[range.clone()], shift: &self.shift[range], act: self.act }
    }

    /// Channels covered.
    pub fn len(&self) -> usize {
        self.scale.len()
    }

    /// Whether it covers no channel.
    pub fn is_empty(&self) -> bool {
        self.scale.is_empty()
    }
}

/// In place on one row of channels: `x[c] = act(x[c] × scale[c] + shift[c]) + residual[c]`.
pub fn apply_row(row: &mut [f32], epilogue: Epilogue, residual: Option<&[f32]>) {
    apply_row_on(Isa::best(), row, epilogue, residual)
}

crate::multiversion! {
    /// [`apply_row`] compiled for `isa`.
    pub fn apply_row_on(row: &mut [f32], epilogue: Epilogue, residual: Option<&[f32]>) => apply_row_body
}

#[inline(always)]
fn apply_row_body<S: Simd>(row: &mut [f32], epilogue: Epilogue, residual: Option<&[f32]>) {
    let n = epilogue.len();
    let (row, scale, shift) = (&mut row[..n], &epilogue.scale[..n], &epilogue.shift[..n]);
    let residual = residual.map(|r| &r[..n]);
    for c0 in (0..n).step_by(S::LANES) {
        let lanes = S::LANES.min(n - c0);
        // SAFETY: `lanes` values from `c0` of each slice (all `n` long).
        unsafe {
            let x = S::load_n(row.as_ptr().add(c0), lanes);
            let mut y = affine_activate::<S>(x, S::load_n(scale.as_ptr().add(c0), lanes), S::load_n(shift.as_ptr().add(c0), lanes), epilogue.act);
            if let Some(r) = residual {
                y = S::add(y, S::load_n(r.as_ptr().add(c0), lanes));
            }
            S::store_n(row.as_mut_ptr().add(c0), y, lanes);
        }
    }
}
