//! Latency look-up tables: one file per resolution, `<R>_lookup_table.json` (Dynamic-OFA)
//! or `<R>_lookup_table.yaml` (OFA), mapping a layer key to `{count, mean, std}` in ms.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dynofa_supernet::{SubnetConfig, SupernetConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::layer_keys;

/// One layer's timing: repetitions, mean and standard deviation (ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Timed repetitions.
    pub count: u64,
    /// Mean latency, ms.
    pub mean: f64,
    /// Standard deviation, ms.
    pub std: f64,
}

/// The table of one resolution, read from `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file it was read from (or will be written to).
    pub path: PathBuf,
    /// Layer key → timing.
    pub entries: BTreeMap<String, Entry>,
}

impl Table {
    /// Reads a JSON or YAML table (by extension).
    pub fn read(path: &Path) -> Result<Self> {
        let text = dynofa_supernet::files::read_text(path)?;
        let entries = if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            serde_yaml_ng::from_str(&text).map_err(|e| Error::Malformed {
                path: path.into(),
                line: e.location().map_or(0, |l| l.line()),
                message: e.to_string(),
            })?
        } else {
            serde_json::from_str(&text).map_err(|e| Error::Malformed { path: path.into(), line: e.line(), message: e.to_string() })?
        };
        Ok(Table { path: path.into(), entries })
    }

    /// The mean latency of `key`, ms.
    pub fn mean(&self, key: &str) -> Result<f64> {
        self.entries.get(key).map(|e| e.mean).ok_or_else(|| Error::MissingKey { path: self.path.clone(), key: key.into() })
    }
}

/// The tables of one device (a directory), by resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyTables {
    /// The directory.
    pub dir: PathBuf,
    /// Resolution → table.
    pub tables: BTreeMap<usize, Table>,
}

impl LatencyTables {
    /// Reads every `<R>_lookup_table.{json,yaml}` in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let listing = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.into(), cause: source })?;
        let mut tables = BTreeMap::new();
        for entry in listing {
            let path = entry.map_err(|source| Error::Io { path: dir.into(), cause: source })?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some((r, ext)) = name.split_once("_lookup_table.") else { continue };
            if !matches!(ext, "json" | "yaml" | "yml") {
                continue;
            }
            let Ok(r) = r.parse::<usize>() else { continue };
            tables.insert(r, Table::read(&path)?);
        }
        if tables.is_empty() {
            return Err(Error::Empty { dir: dir.into() });
        }
        Ok(LatencyTables { dir: dir.into(), tables })
    }

    /// The table for resolution `r`.
    pub fn table(&self, r: usize) -> Result<&Table> {
        self.tables.get(&r).ok_or_else(|| Error::NoTable { dir: self.dir.clone(), resolution: r, available: self.tables.keys().copied().collect() })
    }

    /// Predicted latency of `subnet` (ms): the sum of its layers' means, in forward order.
    pub fn predict(&self, config: &SupernetConfig, subnet: &SubnetConfig) -> Result<f64> {
        config.validate(subnet)?;
        let table = self.table(subnet.resolution())?;
        layer_keys(config, subnet).iter().try_fold(0.0, |sum, key| Ok(sum + table.mean(&key.to_string())?))
    }
}
