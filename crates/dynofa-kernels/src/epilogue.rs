//! What follows a convolution, per output channel: folded BatchNorm or bias
//! (`x × scale + shift`), an activation, and an optional residual add.

use crate::isa::{mul_add, Isa};

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
fn apply_row_body<const FUSED: bool, const LANES: usize, const REGISTERS: usize>(row: &mut [f32], epilogue: Epilogue, residual: Option<&[f32]>) {
    let n = epilogue.len();
    let (row, scale, shift) = (&mut row[..n], epilogue.scale, epilogue.shift);
    // One loop per activation, so that each one vectorises without a branch inside.
    macro_rules! each {
        ($act:expr) => {
            match residual {
                None => {
                    for ((x, &s), &b) in row.iter_mut().zip(scale).zip(shift) {
                        *x = $act(mul_add::<FUSED>(*x, s, b));
                    }
                }
                Some(res) => {
                    for (((x, &s), &b), &r) in row.iter_mut().zip(scale).zip(shift).zip(&res[..n]) {
                        *x = $act(mul_add::<FUSED>(*x, s, b)) + r;
                    }
                }
            }
        };
    }
    match epilogue.act {
        Activation::None => each!(|x: f32| x),
        Activation::Relu => each!(|x: f32| x.max(0.0)),
        Activation::HSwish => each!(|x: f32| x * h_sigmoid(x)),
        Activation::HSigmoid => each!(h_sigmoid),
    }
}
