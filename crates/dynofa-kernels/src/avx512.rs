//! Lane-wise helpers shared by the kernels written in AVX-512 intrinsics.

use std::arch::x86_64::*;

use crate::epilogue::Activation;

/// `act(acc × scale + shift)` of 16 lanes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn affine_activate(acc: __m512, scale: __m512, shift: __m512, act: Activation) -> __m512 {
    let y = _mm512_fmadd_ps(acc, scale, shift);
    match act {
        Activation::None => y,
        Activation::Relu => _mm512_max_ps(y, _mm512_setzero_ps()),
        Activation::HSwish => _mm512_mul_ps(y, h_sigmoid(y)),
        Activation::HSigmoid => h_sigmoid(y),
    }
}

/// `relu6(y + 3) / 6` of 16 lanes.
#[target_feature(enable = "avx512f")]
#[inline]
fn h_sigmoid(y: __m512) -> __m512 {
    let relu6 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(y, _mm512_set1_ps(3.0)), _mm512_setzero_ps()), _mm512_set1_ps(6.0));
    _mm512_mul_ps(relu6, _mm512_set1_ps(1.0 / 6.0))
}
