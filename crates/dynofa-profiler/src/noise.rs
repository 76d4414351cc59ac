//! How noisy the machine was while it was profiled: the canaries' spread and slow phases
//! (what the timings themselves saw), the CPU time the hypervisor took (steal, from
//! `/proc/stat`) and the clock frequencies `/sys` showed, sampled between rounds.

use serde::{Deserialize, Serialize};

use crate::rounds::{CanaryStats, Stop};

/// Above this share of slow canary readings, or this canary spread, the machine was too
/// noisy to trust the tables without a second look.
pub const NOISY_SLOW_SHARE: f64 = 0.25;
/// See [`NOISY_SLOW_SHARE`].
pub const NOISY_SPREAD: f64 = 1.5;

/// The kernel's CPU counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counters {
    /// Jiffies stolen by the hypervisor, all CPUs (`None` where `/proc/stat` lacks them).
    pub steal: Option<u64>,
    /// Jiffies in total, all CPUs.
    pub total: Option<u64>,
}

impl Counters {
    /// Reads `/proc/stat`'s `cpu` line.
    pub fn read() -> Self {
        let line = std::fs::read_to_string("/proc/stat").ok().and_then(|s| s.lines().next().map(str::to_string));
        let fields: Vec<u64> = line.iter().flat_map(|l| l.split_whitespace().skip(1).filter_map(|f| f.parse().ok())).collect();
        // user nice system idle iowait irq softirq steal guest guest_nice (guest time is
        // already counted in user and nice).
        match fields.len() {
            8.. => Counters { steal: Some(fields[7]), total: Some(fields[..8].iter().sum()) },
            _ => Counters { steal: None, total: None },
        }
    }

    /// Percentage of CPU time stolen between `self` and `later`.
    pub fn steal_pct(&self, later: &Counters) -> Option<f64> {
        let steal = later.steal?.checked_sub(self.steal?)?;
        let total = later.total?.checked_sub(self.total?)?;
        (total > 0).then(|| 100.0 * steal as f64 / total as f64)
    }
}

use dynofa_device::host::cpu_mhz;

/// Clock frequencies sampled during a measurement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrequencyLog {
    samples: Vec<Vec<f64>>,
}

impl FrequencyLog {
    /// Samples every CPU's frequency now.
    pub fn sample(&mut self) {
        let mhz = cpu_mhz();
        if !mhz.is_empty() {
            self.samples.push(mhz);
        }
    }

    /// Lowest and highest frequency seen, MHz.
    pub fn range(&self) -> Option<(f64, f64)> {
        let all = self.samples.iter().flatten().copied();
        let (lo, hi) = all.fold((f64::INFINITY, 0.0_f64), |(lo, hi), m| (lo.min(m), hi.max(m)));
        (hi > 0.0).then_some((lo, hi))
    }

    /// Samples at which some CPU's frequency differed from the previous sample by more than 1%.
    pub fn changes(&self) -> Option<usize> {
        (!self.samples.is_empty()).then(|| self.samples.windows(2).filter(|w| w[0].iter().zip(&w[1]).any(|(a, b)| (a - b).abs() > 0.01 * a)).count())
    }
}

/// An item whose estimate stayed wider than the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uncertain {
    /// What it is (e.g. `threads 2, r176, ks7 e6`).
    pub item: String,
    /// Half-width of its 95% confidence interval, % (`None`: fewer than three quiet rounds).
    pub ci_pct: Option<f64>,
}

/// How noisy the machine was while it was profiled, and what the measurement did about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseReport {
    /// Rounds run (the most any group of items needed).
    pub rounds: usize,
    /// Why the rounds stopped (the worst over groups: budget, then round limit, then settled).
    pub stop: Stop,
    /// The widest canary spread (90th over 10th percentile of its readings).
    pub canary_spread: f64,
    /// Share of canary readings above their quiet limit (the quiet tolerance above the 5th
    /// percentile of their readings): the share of the time in slow phases.
    pub slow_share: f64,
    /// CPU time stolen by the hypervisor during the measurement, % (`None`: not shown).
    pub steal_pct: Option<f64>,
    /// Lowest and highest CPU clock seen, MHz (`None`: `/sys` shows none).
    pub mhz_range: Option<(f64, f64)>,
    /// Rounds after which some CPU's clock had moved by more than 1%.
    pub frequency_changes: Option<usize>,
    /// Items whose estimate stayed wider than the target.
    pub uncertain: Vec<Uncertain>,
    /// Whether the tables can be trusted as they are (quiet enough, every estimate settled).
    pub trustworthy: bool,
}

impl NoiseReport {
    /// The report of a measurement.
    pub fn new(rounds: usize, stop: Stop, canaries: &[CanaryStats], steal_pct: Option<f64>, frequencies: &FrequencyLog, uncertain: Vec<Uncertain>) -> Self {
        let readings: usize = canaries.iter().map(|c| c.readings).sum();
        let slow_share = canaries.iter().map(|c| c.slow_share * c.readings as f64).sum::<f64>() / readings.max(1) as f64;
        let canary_spread = canaries.iter().map(|c| c.spread).fold(1.0, f64::max);
        let trustworthy = uncertain.is_empty() && slow_share <= NOISY_SLOW_SHARE && canary_spread <= NOISY_SPREAD;
        NoiseReport {
            rounds,
            stop,
            canary_spread,
            slow_share,
            steal_pct,
            mhz_range: frequencies.range(),
            frequency_changes: frequencies.changes(),
            uncertain,
            trustworthy,
        }
    }

    /// What to tell the user when the tables should not be trusted as they are.
    pub fn warning(&self) -> Option<String> {
        if self.trustworthy {
            return None;
        }
        let mut seen =
            vec![format!("{:.0}% of the canary's readings in slow phases", 100.0 * self.slow_share), format!("canary spread {:.2}×", self.canary_spread)];
        if let Some(steal) = self.steal_pct {
            seen.push(format!("{steal:.1}% CPU steal"));
        }
        if let (Some((lo, hi)), Some(changes)) = (self.mhz_range, self.frequency_changes) {
            seen.push(format!("clock {lo:.0}–{hi:.0} MHz, {changes} change(s)"));
        }
        let mut text = format!(
            "this machine was noisy while it was profiled ({}). Each timing was scaled by the canary run beside it and only the rounds where the canary ran at its quiet level made the estimates",
            seen.join(", ")
        );
        if self.uncertain.is_empty() {
            text.push_str("; every estimate settled within the target.");
        } else {
            let interval = |u: &Uncertain| u.ci_pct.map_or("fewer than 3 quiet rounds".into(), |ci| format!("±{ci:.1}%"));
            let named: Vec<String> = self.uncertain.iter().take(5).map(|u| format!("{} ({})", u.item, interval(u))).collect();
            let more = self.uncertain.len().saturating_sub(named.len());
            text.push_str(&format!(
                "; {} estimate(s) stayed wider than the target when the rounds stopped ({:?}): {}{}. Profile again on a quieter machine, or with a larger --budget / --max-rounds, and compare the two with `dynofa profile --compare`.",
                self.uncertain.len(),
                self.stop,
                named.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ));
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(slow_share: f64, spread: f64) -> CanaryStats {
        CanaryStats { quiet_ms: 2.0, quiet_limit_ms: 2.4, median_ms: 2.5, spread, slow_share, readings: 100 }
    }

    #[test]
    fn steal_and_frequencies_are_read_from_counter_differences() {
        let (before, after) = (Counters { steal: Some(10), total: Some(1000) }, Counters { steal: Some(30), total: Some(2000) });
        assert_eq!(before.steal_pct(&after), Some(2.0));
        assert_eq!(Counters { steal: None, total: None }.steal_pct(&after), None);
        assert_eq!(after.steal_pct(&before), None, "counters that went backwards say nothing");
        let log = FrequencyLog { samples: vec![vec![2000.0, 2000.0], vec![2000.0, 1500.0], vec![2000.0, 1502.0], vec![2400.0, 1502.0]] };
        assert_eq!((log.range(), log.changes()), (Some((1500.0, 2400.0)), Some(2)));
        assert_eq!((FrequencyLog::default().range(), FrequencyLog::default().changes()), (None, None));
    }

    #[test]
    fn a_noisy_machine_is_reported_with_what_was_done_and_what_stayed_uncertain() {
        let quiet = NoiseReport::new(6, Stop::Settled, &[canary(0.05, 1.1), canary(0.1, 1.2)], Some(0.1), &FrequencyLog::default(), Vec::new());
        assert!(quiet.trustworthy && quiet.warning().is_none());
        assert!((quiet.slow_share - 0.075).abs() < 1e-12 && quiet.canary_spread == 1.2);

        let slow = NoiseReport::new(40, Stop::MaxRounds, &[canary(0.6, 1.8)], Some(3.5), &FrequencyLog::default(), Vec::new());
        let warning = slow.warning().expect("too noisy");
        assert!(
            warning.contains("60% of the canary's readings in slow phases") && warning.contains("3.5% CPU steal") && warning.contains("scaled by the canary"),
            "{warning}"
        );
        assert!(warning.contains("every estimate settled"), "{warning}");

        let uncertain =
            vec![Uncertain { item: "threads 2, r176, layers of ks7 e6".into(), ci_pct: Some(3.1) }, Uncertain { item: "whole network 3".into(), ci_pct: None }];
        let report = NoiseReport::new(40, Stop::Budget, &[canary(0.1, 1.2)], None, &FrequencyLog::default(), uncertain);
        assert!(!report.trustworthy);
        let warning = report.warning().expect("uncertain estimates");
        assert!(
            warning.contains("threads 2, r176, layers of ks7 e6 (±3.1%)")
                && warning.contains("whole network 3 (fewer than 3 quiet rounds)")
                && warning.contains("Budget"),
            "{warning}"
        );
    }
}
