//! Which vector instructions the kernels use, chosen at run time.
//!
//! Each kernel body is written once, as plain Rust over fixed-width `[f32; LANES]` chunks
//! that the compiler vectorises, generic over whether multiply–add is fused. The
//! [`multiversion!`](crate::multiversion) macro compiles that body once per instruction
//! set (`#[target_feature]`) and picks the variant from an [`Isa`] value, so one binary
//! runs AVX-512 or AVX2+FMA where the CPU has them and still runs everywhere else. Where
//! the compiled generic body stayed well below what the registers allow (depthwise, 1×1
//! products, stem), the AVX-512 variant calls a body written in intrinsics instead.

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

/// `a × b + c`, fused into one instruction when `FUSED` (only used in variants compiled
/// with FMA, where it is one instruction; elsewhere it would be a library call).
#[inline(always)]
pub(crate) fn mul_add<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Defines `fn $name(isa: Isa, args…)` that runs `$body::<FUSED, LANES, REGISTERS>(args…)`
/// compiled for
/// `isa`: AVX-512 and AVX2 variants under `#[target_feature]` on x86-64, the NEON
/// variant on aarch64 (baseline there), the portable one anywhere — and for an `isa`
/// this CPU does not support. `FUSED`: multiply–add is one instruction; `LANES`: `f32`
/// per vector register; `REGISTERS`: vector registers (to size register blocks).
#[macro_export]
#[doc(hidden)]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(isa: $crate::isa::Isa, $($arg: $ty),*) {
            match isa {
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx512 if isa.supported() => {
                    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    fn variant($($arg: $ty),*) {
                        $body::<true, 16, 32>($($arg),*)
                    }
                    // SAFETY: the guard checked that the CPU has these features.
                    unsafe { variant($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx2 if isa.supported() => {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    fn variant($($arg: $ty),*) {
                        $body::<true, 8, 16>($($arg),*)
                    }
                    // SAFETY: the guard checked that the CPU has these features.
                    unsafe { variant($($arg),*) }
                }
                #[cfg(target_arch = "aarch64")]
                $crate::isa::Isa::Neon => $body::<true, 4, 32>($($arg),*),
                _ => $body::<false, 4, 16>($($arg),*),
            }
        }
    };
}
