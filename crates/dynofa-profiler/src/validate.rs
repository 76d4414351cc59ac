//! How good a table's predictions are: random sub-networks measured end to end where the
//! tables were built (the CPU's fast path or a GPU) against the sum of their layers' entries, and a linear correction
//! (`scale × sum + offset`) fitted on half of them and judged on the other half.

use dynofa_slice::Placement;
use dynofa_supernet::arch::{SLOTS, STAGES};
use dynofa_supernet::{SubnetConfig, Supernet, SupernetConfig};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::measure::test_image;
use crate::table::LatencyTables;

/// One validation sub-network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The sub-network.
    pub subnet: SubnetConfig,
    /// The table's prediction (sum of layers), ms.
    pub predicted_ms: f64,
    /// Measured end to end (median), ms.
    pub measured_ms: f64,
    /// Whether the correction was fitted on it (else it is held out).
    pub fitted: bool,
}

/// `latency ≈ scale × Σ layers + offset_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// Multiplier of the summed prediction.
    pub scale: f64,
    /// Added, ms.
    pub offset_ms: f64,
}

impl Correction {
    /// No correction.
    pub const IDENTITY: Correction = Correction { scale: 1.0, offset_ms: 0.0 };

    /// The corrected prediction.
    pub fn apply(&self, summed_ms: f64) -> f64 {
        self.scale * summed_ms + self.offset_ms
    }

    /// Least squares of measured on predicted over `points` (identity below two points or
    /// when all predictions are equal).
    pub fn fit<'a>(points: impl IntoIterator<Item = &'a Point>) -> Self {
        let xy: Vec<(f64, f64)> = points.into_iter().map(|p| (p.predicted_ms, p.measured_ms)).collect();
        let n = xy.len() as f64;
        if xy.len() < 2 {
            return Self::IDENTITY;
        }
        let (mx, my) = (xy.iter().map(|p| p.0).sum::<f64>() / n, xy.iter().map(|p| p.1).sum::<f64>() / n);
        let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
        if sxx <= f64::EPSILON * mx * mx {
            return Self::IDENTITY;
        }
        let scale = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
        Correction { scale, offset_ms: my - scale * mx }
    }
}

/// Errors of a set of predictions: mean absolute percentage error and the worst one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorStats {
    /// Mean absolute percentage error, %.
    pub mape: f64,
    /// Largest absolute percentage error, %.
    pub worst: f64,
}

impl ErrorStats {
    fn of(pairs: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let errors: Vec<f64> = pairs.into_iter().map(|(predicted, measured)| 100.0 * (predicted - measured).abs() / measured).collect();
        let n = errors.len().max(1) as f64;
        ErrorStats { mape: errors.iter().sum::<f64>() / n, worst: errors.iter().copied().fold(0.0, f64::max) }
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Every sub-network measured.
    pub points: Vec<Point>,
    /// The summed prediction's error over all points.
    pub raw: ErrorStats,
    /// The summed prediction's error over the held-out points.
    pub raw_held_out: ErrorStats,
    /// The correction fitted on the other points.
    pub correction: Correction,
    /// The corrected prediction's error over the held-out points.
    pub corrected_held_out: ErrorStats,
}

/// `n` random sub-networks of `config` at resolutions drawn from `resolutions` (seeded).
pub fn random_subnets(config: &SupernetConfig, resolutions: &[usize], n: usize, seed: u64) -> Vec<SubnetConfig> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut pick = |choices: &[usize]| choices[rng.random_range(0..choices.len())];
    (0..n)
        .map(|_| SubnetConfig {
            ks: (0..SLOTS).map(|_| pick(&config.kernel_sizes)).collect(),
            e: (0..SLOTS).map(|_| pick(&config.expand_ratios)).collect(),
            d: (0..STAGES).map(|_| pick(&config.depths)).collect(),
            r: vec![pick(resolutions)],
        })
        .collect()
}

/// Measures `n` random sub-networks (resolutions of `tables`; every other one fits the
/// correction, the rest judge it) at `placement`, `iters` timed forwards each.
pub fn validate(supernet: &Supernet, tables: &LatencyTables, n: usize, seed: u64, placement: &Placement, iters: usize) -> Result<Validation> {
    if n < 4 {
        return Err(Error::Invalid { field: "validation sub-networks".into(), message: format!("{n}: at least 4 (half fit the correction, half judge it)") });
    }
    let config = &supernet.config;
    let resolutions: Vec<usize> = tables.tables.keys().copied().collect();
    let subnets = random_subnets(config, &resolutions, n, seed);
    // On the CPU one store runs them all as its levels (one copy of the weights); on a GPU
    // each is a network of its own, loaded one at a time.
    let groups: Vec<&[SubnetConfig]> = match placement {
        Placement::Cpu { .. } => vec![&subnets[..]],
        Placement::Gpu(_) => subnets.chunks(1).collect(),
    };
    let mut points = Vec::with_capacity(n);
    for group in groups {
        let mut family = placement.load(supernet, group, &[])?;
        for (level, subnet) in group.iter().enumerate() {
            family.switch_to(level)?;
            let image = test_image(subnet.resolution());
            let measured_ms = family.median_forward_ms(&image, 2, iters)?;
            let fitted = points.len() % 2 == 0;
            points.push(Point { subnet: subnet.clone(), predicted_ms: tables.predict(config, subnet)?, measured_ms, fitted });
        }
    }
    let correction = Correction::fit(points.iter().filter(|p| p.fitted));
    let held_out = || points.iter().filter(|p| !p.fitted);
    Ok(Validation {
        raw: ErrorStats::of(points.iter().map(|p| (p.predicted_ms, p.measured_ms))),
        raw_held_out: ErrorStats::of(held_out().map(|p| (p.predicted_ms, p.measured_ms))),
        corrected_held_out: ErrorStats::of(held_out().map(|p| (correction.apply(p.predicted_ms), p.measured_ms))),
        correction,
        points,
    })
}
