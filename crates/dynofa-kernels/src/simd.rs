//! A vector of `f32` lanes and the few operations the kernels need, implemented once per
//! instruction set: AVX-512 (`__m512`), AVX2 + FMA (`__m256`), NEON (`float32x4_t`) and a
//! portable `[f32; 4]`. Each kernel body is written once, generic over [`Simd`], with its
//! register blocks sized from [`Simd::LANES`] and [`Simd::REGISTERS`];
//! [`multiversion!`](crate::multiversion) compiles it per instruction set.
//!
//! Every operation is `#[inline(always)]`: inlined into a variant compiled with
//! `#[target_feature]`, each becomes the one instruction it names.
//!
//! Longer than the engine's other files (about 460 lines) on purpose: the trait and its
//! four implementations side by side, so that an operation added to one instruction set is
//! seen next to the three others it must match.

use crate::epilogue::Activation;
use crate::isa::Isa;

/// One instruction set's vector of `f32` (see the module).
///
/// # Safety
/// Implementations call intrinsics of their instruction set: a body generic over `Simd`
/// must only run with `Self` an instruction set the CPU has, which
/// [`multiversion!`](crate::multiversion) checks before it calls one.
pub(crate) unsafe trait Simd: Copy + 'static {
    /// `f32` per vector.
    const LANES: usize;
    /// Vector registers (to size register blocks).
    const REGISTERS: usize;
    /// Vectors per column block of the 1×1 product kernel (its panel: `PANEL_VECTORS ×
    /// LANES` columns).
    const PANEL_VECTORS: usize;
    /// A vector.
    type V: Copy;

    /// All lanes zero.
    fn zero() -> Self::V;
    /// All lanes `x`.
    fn splat(x: f32) -> Self::V;
    /// `LANES` values from `p` (any alignment).
    ///
    /// # Safety
    /// `p` is valid for `LANES` reads.
    unsafe fn load(p: *const f32) -> Self::V;
    /// `v` to `p` (any alignment).
    ///
    /// # Safety
    /// `p` is valid for `LANES` writes.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The first `n < LANES` values from `p`, zeros in the other lanes (nothing past them
    /// is read).
    ///
    /// # Safety
    /// `p` is valid for `n` reads.
    unsafe fn load_first(p: *const f32, n: usize) -> Self::V;
    /// The first `n < LANES` lanes of `v` to `p` (nothing past them is written).
    ///
    /// # Safety
    /// `p` is valid for `n` writes.
    unsafe fn store_first(p: *mut f32, v: Self::V, n: usize);
    /// `a × b + c` (one rounding where the instruction set fuses them).
    fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a × b`.
    fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise maximum.
    fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise minimum.
    fn min(a: Self::V, b: Self::V) -> Self::V;
    /// Asks for the cache line at `p` in L2 (a hint: may do nothing).
    #[inline(always)]
    fn prefetch_l2(_p: *const u8) {}

    /// `n ≤ LANES` values from `p`: a full vector, or the first `n` (zeros after).
    ///
    /// # Safety
    /// `p` is valid for `n` reads.
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> Self::V {
        // SAFETY: forwarded.
        unsafe { if n == Self::LANES { Self::load(p) } else { Self::load_first(p, n) } }
    }

    /// The first `n ≤ LANES` lanes of `v` to `p`.
    ///
    /// # Safety
    /// `p` is valid for `n` writes.
    #[inline(always)]
    unsafe fn store_n(p: *mut f32, v: Self::V, n: usize) {
        // SAFETY: forwarded.
        unsafe { if n == Self::LANES { Self::store(p, v) } else { Self::store_first(p, v, n) } }
    }
}

/// `act(acc × scale + shift)`, lane-wise.
#[inline(always)]
pub(crate) fn affine_activate<S: Simd>(acc: S::V, scale: S::V, shift: S::V, act: Activation) -> S::V {
    activate::<S>(S::mul_add(acc, scale, shift), act)
}

/// `act(y)`, lane-wise.
#[inline(always)]
pub(crate) fn activate<S: Simd>(y: S::V, act: Activation) -> S::V {
    match act {
        Activation::None => y,
        Activation::Relu => S::max(y, S::zero()),
        Activation::HSwish => S::mul(y, h_sigmoid::<S>(y)),
        Activation::HSigmoid => h_sigmoid::<S>(y),
    }
}

/// `relu6(y + 3) / 6`, lane-wise.
#[inline(always)]
fn h_sigmoid<S: Simd>(y: S::V) -> S::V {
    let relu6 = S::min(S::max(S::add(y, S::splat(3.0)), S::zero()), S::splat(6.0));
    S::mul(relu6, S::splat(1.0 / 6.0))
}

/// Columns per panel of the 1×1 product kernel on `isa`, as
/// [`multiversion!`](crate::multiversion) runs it (an instruction set this CPU lacks runs
/// the portable variant) — see [`crate::panels`].
pub fn panel_width(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.supported() => x86::Avx512::PANEL_VECTORS * x86::Avx512::LANES,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.supported() => x86::Avx2::PANEL_VECTORS * x86::Avx2::LANES,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => arm::Neon::PANEL_VECTORS * arm::Neon::LANES,
        _ => Portable::PANEL_VECTORS * Portable::LANES,
    }
}

/// `f32` per vector of the variant that runs for `isa` (as [`panel_width`]).
pub fn lanes(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.supported() => x86::Avx512::LANES,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.supported() => x86::Avx2::LANES,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => arm::Neon::LANES,
        _ => Portable::LANES,
    }
}

/// Four lanes as a plain array, no fused multiply–add: runs anywhere (the compiler
/// vectorises it for the target's baseline).
#[derive(Clone, Copy)]
pub(crate) struct Portable;

// SAFETY: plain Rust, no intrinsics.
unsafe impl Simd for Portable {
    const LANES: usize = 4;
    const REGISTERS: usize = 16;
    const PANEL_VECTORS: usize = 2;
    type V = [f32; 4];

    #[inline(always)]
    fn zero() -> Self::V {
        [0.0; 4]
    }
    #[inline(always)]
    fn splat(x: f32) -> Self::V {
        [x; 4]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: the caller's contract.
        unsafe { p.cast::<[f32; 4]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: the caller's contract.
        unsafe { p.cast::<[f32; 4]>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self::V {
        // SAFETY: the caller's contract.
        std::array::from_fn(|i| if i < n { unsafe { *p.add(i) } } else { 0.0 })
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: Self::V, n: usize) {
        for (i, &x) in v.iter().enumerate().take(n) {
            // SAFETY: the caller's contract.
            unsafe { *p.add(i) = x };
        }
    }
    #[inline(always)]
    fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    fn mul(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i])
    }
    #[inline(always)]
    fn max(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i].max(b[i]))
    }
    #[inline(always)]
    fn min(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i].min(b[i]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! AVX-512 and AVX2 + FMA.

    use std::arch::x86_64::*;

    use super::Simd;

    /// AVX-512F: 32 registers of 16 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    // SAFETY: only instantiated by `multiversion!` after checking AVX-512F.
    unsafe impl Simd for Avx512 {
        const LANES: usize = 16;
        const REGISTERS: usize = 32;
        // 48 columns: 8 rows × 3 vectors of accumulators (8 × 2 measured 5–15% slower, 6 × 4
        // no faster).
        const PANEL_VECTORS: usize = 3;
        type V = __m512;

        #[inline(always)]
        fn zero() -> __m512 {
            // SAFETY: AVX-512F (the trait's contract).
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        fn splat(x: f32) -> __m512 {
            // SAFETY: as above.
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: as above, and the caller's contract.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: as above, and the caller's contract.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, n: usize) -> __m512 {
            // SAFETY: as above; masked-off lanes are not read (and do not fault).
            unsafe { _mm512_maskz_loadu_ps(mask16(n), p) }
        }
        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: __m512, n: usize) {
            // SAFETY: as above; masked-off lanes are not written.
            unsafe { _mm512_mask_storeu_ps(p, mask16(n), v) }
        }
        #[inline(always)]
        fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: AVX-512F.
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F.
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F.
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        fn max(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F.
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F.
            unsafe { _mm512_min_ps(a, b) }
        }
        #[inline(always)]
        fn prefetch_l2(p: *const u8) {
            // SAFETY: a hint; never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
        }
    }

    /// A mask of the first `n < 16` lanes.
    #[inline(always)]
    fn mask16(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// AVX2 + FMA: 16 registers of 8 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    // SAFETY: only instantiated by `multiversion!` after checking AVX2 and FMA.
    unsafe impl Simd for Avx2 {
        const LANES: usize = 8;
        const REGISTERS: usize = 16;
        // 16 columns: 6 rows × 2 vectors of accumulators, 2 of weights, 1 broadcast.
        const PANEL_VECTORS: usize = 2;
        type V = __m256;

        #[inline(always)]
        fn zero() -> __m256 {
            // SAFETY: AVX (the trait's contract).
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn splat(x: f32) -> __m256 {
            // SAFETY: as above.
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: as above, and the caller's contract.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: as above, and the caller's contract.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, n: usize) -> __m256 {
            // SAFETY: as above; masked-off lanes are not read (and do not fault).
            unsafe { _mm256_maskload_ps(p, mask8(n)) }
        }
        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: __m256, n: usize) {
            // SAFETY: as above; masked-off lanes are not written.
            unsafe { _mm256_maskstore_ps(p, mask8(n), v) }
        }
        #[inline(always)]
        fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: FMA.
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX.
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX.
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn max(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX.
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX.
            unsafe { _mm256_min_ps(a, b) }
        }
        #[inline(always)]
        fn prefetch_l2(p: *const u8) {
            // SAFETY: a hint; never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
        }
    }

    /// Lanes `0..n` set (sign bit), for `_mm256_maskload_ps` / `_mm256_maskstore_ps`.
    #[inline(always)]
    fn mask8(n: usize) -> __m256i {
        const IDX: [i32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
        // SAFETY: AVX2 (the trait's contract); reads the 8 values of `IDX`.
        unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_loadu_si256(IDX.as_ptr().cast())) }
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) mod arm {
    //! Advanced SIMD (NEON), baseline on aarch64.

    use std::arch::aarch64::*;

    use super::Simd;

    /// NEON: 32 registers of 4 lanes, fused multiply–add.
    #[derive(Clone, Copy)]
    pub(crate) struct Neon;

    // SAFETY: NEON is part of the aarch64 baseline.
    unsafe impl Simd for Neon {
        const LANES: usize = 4;
        const REGISTERS: usize = 32;
        // 16 columns: 6 rows × 4 vectors of accumulators, 4 of weights, 1 broadcast.
        const PANEL_VECTORS: usize = 4;
        type V = float32x4_t;

        #[inline(always)]
        fn zero() -> float32x4_t {
            // SAFETY: NEON (baseline).
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        fn splat(x: f32) -> float32x4_t {
            // SAFETY: NEON.
            unsafe { vdupq_n_f32(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            // SAFETY: NEON, and the caller's contract.
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            // SAFETY: NEON, and the caller's contract.
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, n: usize) -> float32x4_t {
            let mut lanes = [0.0f32; 4];
            // SAFETY: the caller's contract (`n < 4` values).
            unsafe { std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), n.min(4)) };
            // SAFETY: NEON; four values of `lanes`.
            unsafe { vld1q_f32(lanes.as_ptr()) }
        }
        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: float32x4_t, n: usize) {
            let mut lanes = [0.0f32; 4];
            // SAFETY: NEON; four values of `lanes`; then the caller's contract.
            unsafe {
                vst1q_f32(lanes.as_mut_ptr(), v);
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n.min(4));
            }
        }
        #[inline(always)]
        fn mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            // SAFETY: NEON.
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // SAFETY: NEON.
            unsafe { vaddq_f32(a, b) }
        }
        #[inline(always)]
        fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // SAFETY: NEON.
            unsafe { vmulq_f32(a, b) }
        }
        #[inline(always)]
        fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // SAFETY: NEON. (`vmaxq` returns NaN for a NaN lane, like `f32::max` does not;
            // the kernels' inputs are finite.)
            unsafe { vmaxq_f32(a, b) }
        }
        #[inline(always)]
        fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // SAFETY: NEON.
            unsafe { vminq_f32(a, b) }
        }
    }
}
