//! What a table was measured on: `metadata.json` beside the tables.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::measure::write_atomically;
use crate::noise::NoiseReport;
use crate::rounds::{CanaryStats, RoundOptions};
use crate::validate::{Correction, CorrectionModel, ErrorStats};

/// The Burn version this build links (from `Cargo.lock`, read by the crate's build script).
pub const BURN_VERSION: &str = env!("DYNOFA_BURN_VERSION");

/// The CPU as Linux describes it (fields it does not show are `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// Cores this process may use.
    pub cores: usize,
    /// `scaling_governor` of cpu0.
    pub governor: Option<String>,
    /// `scaling_cur_freq` of cpu0, MHz.
    pub current_mhz: Option<f64>,
    /// `cpuinfo_max_freq` of cpu0, MHz.
    pub max_mhz: Option<f64>,
    /// Target architecture.
    pub arch: String,
}

impl Machine {
    /// Describes this machine.
    pub fn this() -> Self {
        use dynofa_device::host;
        Machine {
            cpu_model: host::cpu_model(),
            cores: host::cores(),
            governor: host::governor(),
            current_mhz: host::cpu0_mhz(),
            max_mhz: host::max_mhz(),
            arch: std::env::consts::ARCH.into(),
        }
    }
}

/// `metadata.json` of a table directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Where it was measured.
    pub machine: Machine,
    /// The execution path timed.
    pub backend: String,
    /// The GPU adapter the tables were measured on (`None`: the CPU).
    #[serde(default)]
    pub adapter: Option<dynofa_device::Adapter>,
    /// Threads the path used.
    pub threads: usize,
    /// How the timings were taken: rounds, budget, stop rule.
    #[serde(default)]
    pub rounds: RoundOptions,
    /// Untimed forwards before each timed one.
    #[serde(default)]
    pub warm_forwards: usize,
    /// dynofa's version.
    pub dynofa_version: String,
    /// Burn's version.
    pub burn_version: String,
    /// When (UTC, RFC 3339).
    pub date: String,
    /// Seconds the whole profile's measurement took (every thread count, this run).
    pub build_seconds: f64,
    /// How noisy the machine was during the measurement (all thread counts together).
    pub noise: Option<NoiseReport>,
    /// This thread count's canary.
    pub canary: Option<CanaryStats>,
    /// The tables' prediction against the covering sub-networks of the middle resolution
    /// measured whole: how far the sum of layers is from the whole network.
    pub additivity: Option<ErrorStats>,
    /// The correction to apply to summed predictions (the identity where none lowered the
    /// held-out error).
    pub correction: Option<Correction>,
    /// The correction's shape that cross-validation chose.
    pub correction_model: Option<CorrectionModel>,
    /// Prediction errors found by validation: the raw sum, and the predictions the tables
    /// give (corrected where that helps), held out (older files hold three entries).
    pub errors: Option<Vec<ErrorStats>>,
}

impl Metadata {
    /// Reads `dir/metadata.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("metadata.json");
        let text = dynofa_supernet::files::read_text(&path)?;
        serde_json::from_str(&text).map_err(|e| Error::Malformed { path, line: e.line(), message: e.to_string() })
    }

    /// Writes `dir/metadata.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::InvalidValue {
            field: "metadata".into(),
            value: e.to_string(),
            expected: "JSON-serialisable metadata".into(),
        })?;
        write_atomically(&dir.join("metadata.json"), json.as_bytes())
    }
}

/// Now in UTC as RFC 3339 (`2026-11-26T12:00:00Z`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recorded_burn_version_is_the_one_the_lock_file_builds() {
        // The workspace pins Burn 0.22.x (Cargo.toml); the build script reads Cargo.lock.
        let version = super::BURN_VERSION;
        assert!(version.starts_with("0.22.") && version.split('.').all(|p| p.parse::<u32>().is_ok()), "{version}");
    }
}
