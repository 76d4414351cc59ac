//! What the policies know about a family on its processor: each level's predicted
//! accuracy and its latency on an idle machine per thread count (one "thread count" on a
//! GPU).

use dynofa_device::Processor;
use dynofa_slice::family_file::FamilyFile;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The levels of a family on one processor as the policies see them, smallest (fastest)
/// first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelTable {
    /// The processor it runs on, as `--device` names it (`cpu`, `gpu:0`).
    pub device: String,
    /// Its kind.
    pub processor: Processor,
    /// Predicted accuracy per level (a fraction; 0 when the family has none).
    pub accuracy: Vec<f64>,
    /// Idle latency in ms, `[level][threads - 1]`; `None` where nothing predicts it.
    pub latency_ms: Vec<Vec<Option<f64>>>,
}

impl LevelTable {
    /// Number of levels.
    pub fn levels(&self) -> usize {
        self.accuracy.len()
    }

    /// The most threads any prediction covers.
    pub fn max_threads(&self) -> usize {
        self.latency_ms.first().map_or(0, Vec::len)
    }

    /// Predicted idle latency of `level` on `threads` threads.
    pub fn predict(&self, level: usize, threads: usize) -> Option<f64> {
        self.latency_ms.get(level)?.get(threads.checked_sub(1)?).copied().flatten()
    }

    /// The model a family file gives on `device` for up to `max_threads` threads:
    /// accuracies from `acc_pred`; latencies of a CPU family from the entries of
    /// `latency_ms` whose name ends in `t<threads>` (as `dynofa profile` names its
    /// per-thread-count tables, e.g. `cpu_t2`), of a GPU family from the entry whose name
    /// says `gpu` (e.g. `gpu`, `jetson_gpu`), or its only entry.
    pub fn from_family(file: &FamilyFile, device: &str, max_threads: usize) -> Self {
        let accuracy = file.levels.iter().map(|l| l.acc_pred.unwrap_or(0.0)).collect();
        let latency_ms = file
            .levels
            .iter()
            .map(|level| match file.device {
                Processor::Cpu => {
                    (1..=max_threads).map(|t| level.latency_ms.iter().find(|(name, _)| thread_count_of(name) == Some(t)).map(|(_, &ms)| ms)).collect()
                }
                Processor::Gpu => {
                    let named = level.latency_ms.iter().find(|(name, _)| name.contains("gpu")).map(|(_, &ms)| ms);
                    let only = (level.latency_ms.len() == 1).then(|| level.latency_ms.values().next().copied()).flatten();
                    vec![named.or(only)]
                }
            })
            .collect();
        LevelTable { device: device.to_string(), processor: file.device, accuracy, latency_ms }
    }

    /// Sets the measured idle latency of `level` on `threads` threads.
    pub fn set_latency(&mut self, level: usize, threads: usize, ms: f64) -> Result<()> {
        if !(ms.is_finite() && ms > 0.0) {
            return Err(Error::invalid("latency", ms, "a positive number of milliseconds"));
        }
        let row = self.latency_ms.get_mut(level).ok_or_else(|| Error::invalid("level", level, "a level of the family"))?;
        if threads == 0 {
            return Err(Error::invalid("threads", threads, "at least 1"));
        }
        if row.len() < threads {
            row.resize(threads, None);
        }
        row[threads - 1] = Some(ms);
        Ok(())
    }

    /// Whether every level has a prediction for every thread count up to `max_threads`.
    pub fn is_complete(&self, max_threads: usize) -> bool {
        (0..self.levels()).all(|l| (1..=max_threads).all(|t| self.predict(l, t).is_some()))
    }

    /// Checks that accuracies do not fall as levels grow (the family's order), so that
    /// "a higher level" means "a more accurate one".
    pub fn check_order(&self) -> Result<()> {
        for (i, pair) in self.accuracy.windows(2).enumerate() {
            if pair[1] < pair[0] {
                return Err(Error::invalid(
                    format!("levels[{}].acc_pred", i + 1),
                    pair[1],
                    format!("at least levels[{i}]'s {} (levels go from least to most accurate)", pair[0]),
                ));
            }
        }
        Ok(())
    }
}

/// The thread count a CPU latency entry's name gives, as [`LevelTable::from_family`] reads
/// it: `2` for names like `cpu_t2`, `t2` or `xavier-t2`; `None` otherwise.
pub fn thread_count_of(name: &str) -> Option<usize> {
    let digits = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let number = &name[digits.len()..];
    if number.is_empty() || !digits.ends_with('t') {
        return None;
    }
    let before = &digits[..digits.len() - 1];
    (before.is_empty() || before.ends_with(['_', '-', '.'])).then(|| number.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_from_table_names() {
        assert_eq!(thread_count_of("cpu_t2"), Some(2));
        assert_eq!(thread_count_of("t1"), Some(1));
        assert_eq!(thread_count_of("xavier-t12"), Some(12));
        assert_eq!(thread_count_of("jetson_gpu"), None);
        assert_eq!(thread_count_of("cput2"), None);
        assert_eq!(thread_count_of("cpu_t"), None);
    }
}
