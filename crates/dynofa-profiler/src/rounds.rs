//! Timing that survives a noisy machine: items timed in interleaved rounds, each beside a
//! small fixed canary workload, estimates built from canary-relative samples of the quiet
//! rounds, and a stop when every estimate is tight enough.
//!
//! A machine's noise comes in phases of seconds (a neighbour on the host, a throttled
//! clock, another process) and in bursts. Timing one item many times in a row lets a phase
//! decide that item's value; here every round times every item once, in a shuffled order,
//! so a phase falls on a few rounds of every item instead of on all rounds of a few items.
//! Between consecutive items runs the canary (one per thread count or processor): each
//! sample is scaled by `quiet level / canary beside it` (the mean of the canaries just
//! before and after), so a slow phase that slows both cancels; and only the rounds whose
//! canaries ran quiet (within [`RoundOptions::quiet_tolerance`] of the 5th percentile of
//! their readings) make the estimate, so a phase that slows the item more than the canary
//! stays out too. The quiet level is the median of the quiet readings. An item's estimate
//! is the median of its samples, its confidence interval the median's (from the samples'
//! median absolute deviation). After
//! [`RoundOptions::min_rounds`], rounds time only the items whose interval is still wider
//! than ±[`RoundOptions::target_ci`]; the measurement stops when none is, when
//! [`RoundOptions::max_rounds`] is reached, or when the time budget runs out, and names
//! the items that stayed uncertain.
//!
//! What is timed is behind [`Bench`], so the estimator is tested on a synthetic machine
//! with injected phases and bursts (no real timing).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Something whose items can be timed one at a time, beside canaries.
pub trait Bench {
    /// Number of items.
    fn items(&self) -> usize;
    /// The canary item `item` is judged against (items on the same processor and thread
    /// count share one).
    fn canary_of(&self, item: usize) -> usize;
    /// Times `item` once: milliseconds of its components (e.g. layers) in order; their
    /// sum is the item's total.
    fn time_item(&mut self, item: usize) -> Result<Vec<f64>>;
    /// Times canary `canary` once, milliseconds.
    fn time_canary(&mut self, canary: usize) -> Result<f64>;
    /// Seconds since the measurement started (the budget's clock).
    fn elapsed_s(&self) -> f64;
}

/// How long to measure and how to judge samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoundOptions {
    /// Rounds every item gets (after one untimed warm-up round).
    pub min_rounds: usize,
    /// Rounds at most.
    pub max_rounds: usize,
    /// Seconds the measurement may take; it stops with what it has when they run out.
    pub budget_s: f64,
    /// An estimate is settled when its 95% confidence interval is within ± this share of it.
    pub target_ci: f64,
    /// A canary reading is quiet when at most this share above the 5th percentile of its readings.
    pub quiet_tolerance: f64,
    /// Seed of the shuffles.
    pub seed: u64,
}

impl Default for RoundOptions {
    fn default() -> Self {
        RoundOptions { min_rounds: 6, max_rounds: 40, budget_s: 900.0, target_ci: 0.02, quiet_tolerance: 0.20, seed: 0 }
    }
}

impl RoundOptions {
    /// Refuses settings that cannot measure anything.
    pub fn check(&self) -> Result<()> {
        let invalid = |field: &str, value: String, expected: &str| Err(Error::InvalidValue { field: field.into(), value, expected: expected.into() });
        if self.min_rounds < 3 {
            return invalid("minimum rounds", self.min_rounds.to_string(), "at least 3 (an estimate needs a spread)");
        }
        if self.max_rounds < self.min_rounds {
            return invalid("maximum rounds", self.max_rounds.to_string(), &format!("at least the minimum, {}", self.min_rounds));
        }
        if !self.budget_s.is_finite() || self.budget_s <= 0.0 {
            return invalid("budget", format!("{} s", self.budget_s), "a positive, finite time");
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.target_ci) || self.target_ci >= 1.0 || !positive(self.quiet_tolerance) {
            return invalid(
                "target interval / quiet tolerance",
                format!("{} / {}", self.target_ci, self.quiet_tolerance),
                "positive numbers (the interval below 1)",
            );
        }
        Ok(())
    }
}

/// One timing of an item: its components and the canary beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Milliseconds of each component.
    pub components: Vec<f64>,
    /// The canary beside it (mean of the readings just before and just after), ms.
    pub canary_ms: f64,
}

impl Sample {
    /// The item's total, ms.
    pub fn total(&self) -> f64 {
        self.components.iter().sum()
    }
}

/// Why the rounds stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Every estimate settled.
    Settled,
    /// The rounds ran out.
    MaxRounds,
    /// The time budget ran out.
    Budget,
}

/// A canary's readings summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CanaryStats {
    /// Its quiet level: the median of its quiet readings, ms.
    pub quiet_ms: f64,
    /// A reading is quiet up to this (the tolerance above the 5th percentile of its readings), ms.
    #[serde(default)]
    pub quiet_limit_ms: f64,
    /// Median reading, ms.
    pub median_ms: f64,
    /// 90th over 10th percentile of its readings.
    pub spread: f64,
    /// Share of readings above the quiet limit (slow phases).
    pub slow_share: f64,
    /// Readings.
    pub readings: usize,
}

/// An item's estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Median canary-relative total over the rounds used, ms.
    pub total_ms: f64,
    /// Median canary-relative value of each component over the rounds used, ms.
    pub components_ms: Vec<f64>,
    /// Half-width of the total's 95% confidence interval, as a share of it (infinite
    /// while fewer than three rounds were quiet).
    pub ci: f64,
    /// Rounds that made the estimate (the quiet ones; every round when fewer than three were).
    pub used: usize,
    /// Rounds timed.
    pub timed: usize,
}

/// Every item's estimate, the canaries and how the measurement ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// By item.
    pub estimates: Vec<Estimate>,
    /// Canary-relative samples of each item that made its estimate, ms (components).
    pub used_samples: Vec<Vec<Vec<f64>>>,
    /// By canary.
    pub canaries: Vec<CanaryStats>,
    /// Rounds run (after the warm-up).
    pub rounds: usize,
    /// Why they stopped.
    pub stop: Stop,
    /// Items whose interval stayed wider than the target.
    pub uncertain: Vec<usize>,
}

/// Reports progress: `(round, items still uncertain, items)`.
pub type RoundProgress<'a> = &'a mut dyn FnMut(usize, usize, usize);

/// Times `bench`'s items in interleaved rounds (see the module doc) and estimates them.
/// `between_rounds` runs after each round (e.g. to sample the clock frequency).
pub fn run_rounds(bench: &mut dyn Bench, options: &RoundOptions, progress: RoundProgress, between_rounds: &mut dyn FnMut()) -> Result<Outcome> {
    options.check()?;
    let n = bench.items();
    let canaries = (0..n).map(|i| bench.canary_of(i)).max().map_or(0, |c| c + 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
    let mut readings: Vec<Vec<f64>> = vec![Vec::new(); canaries];

    // Warm-up: every item and canary once, untimed (caches, page faults, GPU compilation).
    for item in 0..n {
        bench.time_canary(bench.canary_of(item))?;
        bench.time_item(item)?;
    }
    let mut todo: Vec<usize> = (0..n).collect();
    let mut rounds = 0;
    let stop = loop {
        todo.shuffle(&mut rng);
        // Items grouped by canary (groups in a shuffled order), so that the canary read
        // after one item is the one read before the next.
        let mut order = todo.clone();
        let mut groups: Vec<usize> = order.iter().map(|&i| bench.canary_of(i)).collect();
        groups.sort_unstable();
        groups.dedup();
        groups.shuffle(&mut rng);
        order.sort_by_key(|&i| groups.iter().position(|&g| g == bench.canary_of(i)));
        let mut before: Option<(usize, f64)> = None;
        for &item in &order {
            let canary = bench.canary_of(item);
            let first = match before {
                Some((c, ms)) if c == canary => ms,
                _ => read_canary(bench, canary, &mut readings)?,
            };
            let components = bench.time_item(item)?;
            let after = read_canary(bench, canary, &mut readings)?;
            before = Some((canary, after));
            samples[item].push(Sample { components, canary_ms: 0.5 * (first + after) });
        }
        rounds += 1;
        between_rounds();
        let stats = canary_stats(&readings, options.quiet_tolerance);
        let estimates: Vec<Option<Estimate>> = todo.iter().map(|&i| estimate(&samples[i], &stats[bench.canary_of(i)])).collect();
        if rounds >= options.min_rounds {
            todo = todo.iter().zip(&estimates).filter(|(_, e)| e.as_ref().is_none_or(|e| e.ci > options.target_ci)).map(|(&i, _)| i).collect();
        }
        progress(rounds, todo.len(), n);
        if todo.is_empty() {
            break Stop::Settled;
        }
        if rounds >= options.max_rounds {
            break Stop::MaxRounds;
        }
        if bench.elapsed_s() >= options.budget_s {
            break Stop::Budget;
        }
    };

    let stats = canary_stats(&readings, options.quiet_tolerance);
    let mut estimates = Vec::with_capacity(n);
    let mut used_samples = Vec::with_capacity(n);
    for (item, item_samples) in samples.iter().enumerate() {
        let canary = &stats[bench.canary_of(item)];
        let (used, _) = used(item_samples, canary);
        used_samples.push(used.iter().map(|s| s.components.iter().map(|ms| ms * canary.quiet_ms / s.canary_ms).collect()).collect());
        estimates.push(estimate(item_samples, canary).expect("every item timed at least once"));
    }
    // The items not settled when the rounds stopped (a settled item's interval, judged
    // again against the final quiet limit, may have moved a little).
    todo.sort_unstable();
    let uncertain = todo;
    Ok(Outcome { estimates, used_samples, canaries: stats, rounds, stop, uncertain })
}

/// Times canary `canary` once and keeps the reading.
fn read_canary(bench: &mut dyn Bench, canary: usize, readings: &mut [Vec<f64>]) -> Result<f64> {
    let ms = bench.time_canary(canary)?;
    if !(ms > 0.0 && ms.is_finite()) {
        return Err(Error::InvalidValue { field: "canary reading".into(), value: format!("{ms} ms"), expected: "a positive timing".into() });
    }
    readings[canary].push(ms);
    Ok(ms)
}

/// Summaries of every canary's readings.
fn canary_stats(readings: &[Vec<f64>], tolerance: f64) -> Vec<CanaryStats> {
    readings
        .iter()
        .map(|r| {
            let mut sorted = r.clone();
            sorted.sort_by(f64::total_cmp);
            // The fast cluster: readings within the tolerance of the 5th percentile; its
            // median is steadier from profile to profile than a low percentile, which
            // moves with the share of slow phases.
            let quiet_limit_ms = quantile(&sorted, 0.05) * (1.0 + tolerance);
            let fast = sorted.partition_point(|&ms| ms <= quiet_limit_ms);
            CanaryStats {
                quiet_ms: quantile(&sorted[..fast.max(1)], 0.5),
                quiet_limit_ms,
                median_ms: quantile(&sorted, 0.5),
                spread: quantile(&sorted, 0.90) / quantile(&sorted, 0.10),
                slow_share: (sorted.len() - fast) as f64 / sorted.len().max(1) as f64,
                readings: sorted.len(),
            }
        })
        .collect()
}

/// Quiet samples an estimate needs to be settled.
const MIN_QUIET: usize = 3;

/// The samples that make an estimate: those whose canary was quiet, or every sample when
/// fewer than [`MIN_QUIET`] were (such an estimate is never settled).
/// Returns them and whether they are the quiet ones.
fn used<'a>(samples: &'a [Sample], canary: &CanaryStats) -> (Vec<&'a Sample>, bool) {
    let quiet: Vec<&Sample> = samples.iter().filter(|s| s.canary_ms <= canary.quiet_limit_ms).collect();
    if quiet.len() >= MIN_QUIET { (quiet, true) } else { (samples.iter().collect(), false) }
}

/// An item's estimate from its samples (`None` before its first sample).
fn estimate(samples: &[Sample], canary: &CanaryStats) -> Option<Estimate> {
    if samples.is_empty() {
        return None;
    }
    let (used, quiet) = used(samples, canary);
    let scale = |s: &Sample| canary.quiet_ms / s.canary_ms;
    let totals: Vec<f64> = used.iter().map(|s| s.total() * scale(s)).collect();
    let total_ms = median(&totals);
    let components_ms = (0..used[0].components.len()).map(|j| median(&used.iter().map(|s| s.components[j] * scale(s)).collect::<Vec<_>>())).collect();
    // Without enough quiet rounds the interval is unknown: the item is not settled.
    let ci = if quiet { median_ci(&totals) / total_ms } else { f64::INFINITY };
    Some(Estimate { total_ms, components_ms, ci, used: used.len(), timed: samples.len() })
}

/// Median of `values` (unsorted; the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

/// The `q` quantile of sorted `values`, interpolated between neighbours (NaN when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let at = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let (lo, frac) = (at.floor() as usize, at.fract());
            sorted[lo] + frac * (sorted[(lo + 1).min(n - 1)] - sorted[lo])
        }
    }
}

/// Half-width of the 95% confidence interval of the median of `values`: 1.96 × its
/// standard error, 1.2533 σ/√n, with σ from the median absolute deviation (1.4826 MAD).
/// Infinite below three values.
pub fn median_ci(values: &[f64]) -> f64 {
    if values.len() < 3 {
        return f64::INFINITY;
    }
    let m = median(values);
    let mad = median(&values.iter().map(|v| (v - m).abs()).collect::<Vec<_>>());
    1.96 * 1.2533 * 1.4826 * mad / (values.len() as f64).sqrt()
}
