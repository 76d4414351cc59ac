//! Which vector instructions the kernels use, chosen at run time.
//!
//! Each kernel body is written once, generic over the vector type of
//! `simd` (private). The [`multiversion!`](crate::multiversion) macro compiles that body
//! once per instruction set (`#[target_feature]`) and picks the variant from an [`Isa`]
//! value, so one binary runs AVX-512 or AVX2+FMA where the CPU has them (NEON on aarch64)
//! and still runs everywhere else.

use std::sync::OnceLock;

/// An instruction set a kernel variant is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 with AVX-512F (and AVX2, FMA): 16 lanes of `f32`.
    Avx512,
    /// x86-64 with AVX2 and FMA: 8 lanes.
    Avx2,
    /// aarch64 Advanced SIMD (always present there): 4 lanes, fused multiply–add.
    Neon,
    /// Whatever the compilation target guarantees, no fused multiply–add. Runs anywhere.
    Portable,
}

impl Isa {
    /// The widest instruction set this CPU supports (detected once).
    /// `DYNOFA_ISA=portable|avx2|avx512|neon` overrides it (an unsupported choice is ignored).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            let detected = Isa::available()[0];
            let requested = std::env::var("DYNOFA_ISA").ok().and_then(|name| Isa::available().into_iter().find(|isa| isa.name() == name));
            requested.unwrap_or(detected)
        })
    }

    /// Every instruction set this CPU can run, widest first (always ends with `Portable`).
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Portable].into_iter().filter(|isa| isa.supported()).collect()
    }

    /// Whether this CPU can run `self` (detected once; then one load).
    pub fn supported(self) -> bool {
        static SUPPORTED: OnceLock<[bool; 4]> = OnceLock::new();
        SUPPORTED.get_or_init(|| [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Portable].map(Isa::detect))[self as usize]
    }

    fn detect(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Isa::Avx2.detect() && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// `f32` per vector register of the kernels that run for `self` (the portable
    /// fallback's where this CPU lacks `self`).
    pub fn lanes(self) -> usize {
        crate::simd::lanes(self)
    }

    /// Lower-case name (`avx512`, `avx2`, `neon`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Neon => "neon",
            Isa::Portable => "portable",
        }
    }
}

/// Defines `fn $name(isa: Isa, args…)` that runs `$body::<S>(args…)` with `S` the
/// `Simd` implementation of `isa`, compiled for it: AVX-512 and AVX2
/// variants under `#[target_feature]` on x86-64, NEON on aarch64 (baseline there), the
/// portable one anywhere — and for an `isa` this CPU does not support.
#[macro_export]
#[doc(hidden)]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(isa: $crate::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            match isa {
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx512 if isa.supported() => {
                    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    fn variant($($arg: $ty),*) $(-> $ret)? {
                        $body::<$crate::simd::x86::Avx512>($($arg),*)
                    }
                    // SAFETY: the guard checked that the CPU has these features.
                    unsafe { variant($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx2 if isa.supported() => {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    fn variant($($arg: $ty),*) $(-> $ret)? {
                        $body::<$crate::simd::x86::Avx2>($($arg),*)
                    }
                    // SAFETY: the guard checked that the CPU has these features.
                    unsafe { variant($($arg),*) }
                }
                #[cfg(target_arch = "aarch64")]
                $crate::isa::Isa::Neon => $body::<$crate::simd::arm::Neon>($($arg),*),
                _ => $body::<$crate::simd::Portable>($($arg),*),
            }
        }
    };
}
