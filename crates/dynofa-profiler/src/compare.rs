//! Whether profiles of the same machine agree: two or more table sets predict the same
//! random sub-networks, and the report gives the share whose predictions all lie within
//! ±5% of their median, and the median and worst spread (largest over smallest prediction).

use dynofa_supernet::{SubnetConfig, SupernetConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rounds::median;
use crate::table::LatencyTables;
use crate::validate::random_subnets;

/// How far table sets agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Sub-networks compared.
    pub networks: usize,
    /// Resolutions they were drawn from (those every set has).
    pub resolutions: Vec<usize>,
    /// Share of sub-networks whose predictions all lie within ±5% of their median, %.
    pub within_5_pct: f64,
    /// Share whose spread (largest over smallest prediction) is at most 1.10, %.
    pub spread_within_1_10_pct: f64,
    /// Median spread.
    pub median_spread: f64,
    /// Worst spread.
    pub worst_spread: f64,
    /// The sub-network with the worst spread, and each set's prediction of it (ms).
    pub worst: (SubnetConfig, Vec<f64>),
}

/// Compares `sets` (at least two) on `n` random sub-networks (seeded) at the resolutions
/// they all have.
pub fn agreement(config: &SupernetConfig, sets: &[LatencyTables], n: usize, seed: u64) -> Result<Agreement> {
    if sets.len() < 2 || n == 0 {
        return Err(Error::InvalidValue {
            field: "comparison".into(),
            value: format!("{} table sets and {n} networks", sets.len()),
            expected: "at least two sets and one network".into(),
        });
    }
    let resolutions: Vec<usize> = sets[0].tables.keys().copied().filter(|r| sets.iter().all(|s| s.tables.contains_key(r))).collect();
    if resolutions.is_empty() {
        let dirs: Vec<String> = sets.iter().map(|s| format!("{} ({:?})", s.dir.display(), s.tables.keys().collect::<Vec<_>>())).collect();
        return Err(Error::InvalidValue {
            field: "comparison".into(),
            value: format!("no resolution is in every table set: {}", dirs.join(", ")),
            expected: "a resolution every set has".into(),
        });
    }
    let mut spreads = Vec::with_capacity(n);
    let mut within = 0;
    let mut worst: Option<(f64, SubnetConfig, Vec<f64>)> = None;
    for subnet in random_subnets(config, &resolutions, n, seed) {
        let predictions: Vec<f64> = sets.iter().map(|s| s.predict(config, &subnet)).collect::<Result<_>>()?;
        let m = median(&predictions);
        within += usize::from(predictions.iter().all(|p| (p / m - 1.0).abs() <= 0.05));
        let spread = predictions.iter().copied().fold(0.0, f64::max) / predictions.iter().copied().fold(f64::INFINITY, f64::min);
        if worst.as_ref().is_none_or(|w| spread > w.0) {
            worst = Some((spread, subnet, predictions));
        }
        spreads.push(spread);
    }
    let (worst_spread, subnet, predictions) = worst.expect("at least one network");
    Ok(Agreement {
        networks: n,
        resolutions,
        within_5_pct: 100.0 * within as f64 / n as f64,
        spread_within_1_10_pct: 100.0 * spreads.iter().filter(|&&s| s <= 1.10).count() as f64 / n as f64,
        median_spread: median(&spreads),
        worst_spread,
        worst: (subnet, predictions),
    })
}
