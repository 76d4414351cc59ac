//! # dynofa-golden
//!
//! Test support for every dynofa crate: finds the reference data (`../shared/golden`
//! beside the project root, or `$DYNOFA_GOLDEN`), reads its parity cases and compares
//! outputs with the stated tolerance; gives the GPU the GPU tests run on ([`gpu`]). The
//! data are third-party and read-only; nothing here copies or edits them. Used as a
//! dev-dependency only.

pub mod mutation;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dynofa_supernet::SubnetConfig;
use dynofa_supernet::tensor_io::{Array, read_npy};
use serde::Deserialize;

/// The names in folder `dir`, sorted: what a test compares to say that a command wrote
/// its outputs and left nothing else (no temporary file) behind.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("a readable folder").map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The folder of reference data. Panics with instructions when it is missing: golden
/// tests are never skipped.
pub fn dir() -> PathBuf {
    if let Ok(dir) = std::env::var("DYNOFA_GOLDEN") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("../shared/golden");
    assert!(dir.join("cases.json").is_file(), "reference data not found at {} (set DYNOFA_GOLDEN to its folder)", dir.display());
    dir
}

/// The GPU the GPU tests run on (`gpu`: the best adapter; Mesa's lavapipe where there is
/// no GPU). Where the build has no GPU support or the machine no adapter, `None` — the
/// test says it skips — unless `DYNOFA_GPU_TESTS=require` (CI sets it), where that fails.
pub fn gpu(test: &str) -> Option<burn::prelude::Device> {
    match dynofa_device::open_gpu(dynofa_device::DeviceId::Gpu(None)) {
        Ok(gpu) => {
            eprintln!("{test}: on {}", gpu.adapter.describe());
            Some(gpu.device)
        }
        Err(e) if std::env::var("DYNOFA_GPU_TESTS").is_ok_and(|v| v == "require") => {
            panic!("{test}: DYNOFA_GPU_TESTS=require, and there is no GPU to run on: {e}")
        }
        Err(e) => {
            eprintln!("{test}: SKIPPED, no GPU ({e}); `cargo xtask setup` installs lavapipe, and `cargo xtask test` builds GPU support");
            None
        }
    }
}

/// A path inside the reference data.
pub fn path(relative: &str) -> PathBuf {
    dir().join(relative)
}

/// Absolute and relative tolerance for logits and intermediates.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Tolerance {
    /// Absolute part.
    pub atol: f64,
    /// Relative part (of the expected value).
    pub rtol: f64,
}

/// One parity case of `cases.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// Case name, e.g. `w12_paper6_l0`.
    pub id: String,
    /// `w12` or `w10`.
    pub net: String,
    /// Checkpoint file name.
    pub checkpoint: String,
    /// The sub-network.
    pub cfg: SubnetConfig,
    /// Input batch path (relative).
    pub input: String,
    /// Expected logits path (relative).
    pub logits: String,
    /// Parameter count of the extracted sub-network.
    pub params: u64,
    /// OFA's MFLOPs.
    pub mflops: f64,
    /// Official accuracy predictor's output (w1.2 cases).
    pub acc_predictor: Option<f64>,
    /// Latency predicted from each Jetson table (w1.2 cases).
    pub lut_ms: Option<BTreeMap<String, f64>>,
}

impl Case {
    /// Path of the case's checkpoint.
    pub fn checkpoint_path(&self) -> PathBuf {
        path(&self.checkpoint)
    }

    /// The case's input batch `[2, 3, R, R]`.
    pub fn input(&self) -> Array {
        read_npy(&path(&self.input)).expect("golden input")
    }

    /// The expected logits `[2, 1000]`.
    pub fn expected_logits(&self) -> Array {
        read_npy(&path(&self.logits)).expect("golden logits")
    }
}

#[derive(Deserialize)]
struct CasesFile {
    tolerance: Tolerance,
    cases: Vec<Case>,
}

/// All parity cases and the tolerance they are checked with.
pub fn cases() -> (Vec<Case>, Tolerance) {
    let text = std::fs::read_to_string(path("cases.json")).expect("cases.json");
    let file: CasesFile = serde_json::from_str(&text).expect("cases.json parses");
    assert!(!file.cases.is_empty(), "cases.json lists no case");
    (file.cases, file.tolerance)
}

/// Checks `actual` against `expected` element-wise: `|a − e| ≤ atol + rtol·|e|`.
/// Returns a message naming the worst element when they differ.
pub fn compare(actual: &Array, expected: &Array, tol: Tolerance) -> Result<f64, String> {
    if actual.shape != expected.shape {
        return Err(format!("shape {:?}, expected {:?}", actual.shape, expected.shape));
    }
    let diffs = actual.data.iter().zip(&expected.data).map(|(&a, &e)| {
        let diff = (a as f64 - e as f64).abs();
        let excess = diff - (tol.atol + tol.rtol * (e as f64).abs());
        (diff, if excess.is_nan() { f64::INFINITY } else { excess })
    });
    let (mut max_abs, mut worst) = (0.0_f64, (f64::NEG_INFINITY, 0usize));
    for (i, (diff, excess)) in diffs.enumerate() {
        max_abs = max_abs.max(diff);
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    if worst.0 > 0.0 {
        let i = worst.1;
        return Err(format!("element {i}: got {}, expected {} (max abs diff {max_abs:.3e})", actual.data[i], expected.data[i]));
    }
    Ok(max_abs)
}

/// Largest disagreement, relative to the largest magnitude of the exact result, accepted
/// where float32 rounding alone puts the reference outside the stated tolerance.
pub const FP32_SCALE_BOUND: f64 = 1e-4;

/// How an output agreed with the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parity {
    /// Within the stated tolerance of the reference (the normal case).
    WithinTolerance {
        /// Largest absolute difference.
        max_abs: f64,
    },
    /// The reference itself is not within the stated tolerance of exact (f64)
    /// arithmetic — the case amplifies float32 rounding beyond it, so no float32
    /// implementation can be held to it. Then both our output and the reference must agree
    /// with the exact result to [`FP32_SCALE_BOUND`] of its scale.
    IllConditioned {
        /// Largest |reference − exact|.
        reference_error: f64,
        /// Largest |ours − reference|.
        ours_vs_reference: f64,
        /// Largest |exact|.
        scale: f64,
    },
}

fn max_abs_diff(a: &Array, b: &Array) -> f64 {
    a.data.iter().zip(&b.data).map(|(&x, &y)| (x as f64 - y as f64).abs()).fold(0.0, f64::max)
}

/// Checks `ours` against `reference`, using `exact` (the same network evaluated in f64)
/// to tell float32 rounding from a real departure. See [`Parity`].
pub fn check_parity(ours: &Array, reference: &Array, exact: &Array, tol: Tolerance) -> Result<Parity, String> {
    if compare(reference, exact, tol).is_ok() {
        return compare(ours, reference, tol).map(|max_abs| Parity::WithinTolerance { max_abs });
    }
    check_ill_conditioned(ours, reference, exact)
}

/// Checks `ours` as [`Parity::IllConditioned`] asks, whether or not this output's reference
/// happens to be within the tolerance: for the intermediates of a case whose logits are
/// ill-conditioned, where float32 rounding grows layer by layer and an evaluation order
/// other than the reference's (a GPU's) crosses the tolerance a layer earlier.
pub fn check_ill_conditioned(ours: &Array, reference: &Array, exact: &Array) -> Result<Parity, String> {
    let scale = exact.data.iter().map(|v| (*v as f64).abs()).fold(0.0, f64::max);
    let bound = FP32_SCALE_BOUND * scale;
    let reference_error = max_abs_diff(reference, exact);
    let ours_vs_reference = max_abs_diff(ours, reference);
    let ours_vs_exact = max_abs_diff(ours, exact);
    if ours.shape != reference.shape || ours_vs_reference > bound || ours_vs_exact > bound {
        return Err(format!(
            "ill-conditioned case (reference is {reference_error:.2e} from exact): ours is \
             {ours_vs_reference:.2e} from the reference and {ours_vs_exact:.2e} from exact; \
             bound {bound:.2e}"
        ));
    }
    Ok(Parity::IllConditioned { reference_error, ours_vs_reference, scale })
}
