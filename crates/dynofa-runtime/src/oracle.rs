//! Judging a run against hindsight: every configuration (level × threads) measured under
//! each condition the run met (idle, under the load), the oracle that runs in each phase
//! the most accurate configuration whose measured median meets the target, the best
//! fixed configuration in hindsight, and a run's metrics against them. Beside it, the
//! tail oracle: the same with the 95th percentile instead of the median — the yardstick of
//! a policy that must keep 95% of frames under the target where latencies spread (under
//! CPU contention a configuration whose median meets the target can run a third of its
//! frames over it).
//!
//! Pure: the measurements come from the caller (`dynofa experiment` measures them on the
//! machine; the tests give a synthetic latency model).

use serde::{Deserialize, Serialize};

use crate::contention::LoadSpec;
use crate::stats;

/// One configuration measured under a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Level of the family.
    pub level: usize,
    /// Threads.
    pub threads: usize,
    /// The level's predicted accuracy (a fraction).
    pub accuracy: f64,
    /// Median latency of its frames under the condition, ms.
    pub median_ms: f64,
    /// 95th percentile of its frames under the condition, ms.
    #[serde(default)]
    pub p95_ms: f64,
    /// Every frame's latency under the condition, ms, ascending (empty: not kept).
    #[serde(default)]
    pub samples_ms: Vec<f64>,
}

impl Measured {
    /// Share of its frames over `target_ms` (0–1); `None` when no samples were kept.
    pub fn over_share(&self, target_ms: f64) -> Option<f64> {
        if self.samples_ms.is_empty() {
            return None;
        }
        let under = self.samples_ms.partition_point(|&ms| ms <= target_ms);
        Some((self.samples_ms.len() - under) as f64 / self.samples_ms.len() as f64)
    }
}

/// Every configuration measured under one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionTable {
    /// The condition: `none` (idle) or the load's name.
    pub condition: String,
    /// The configurations, in any order.
    pub configs: Vec<Measured>,
}

/// The oracle's configuration under a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// What it runs.
    pub config: Measured,
    /// Whether it meets the target (otherwise nothing does, and it is the fastest).
    pub feasible: bool,
}

/// Orders `a` before `b` when it is more accurate, then when it is faster.
fn better(a: &Measured, b: &Measured) -> std::cmp::Ordering {
    a.accuracy.total_cmp(&b.accuracy).then(a.level.cmp(&b.level)).then(b.median_ms.total_cmp(&a.median_ms))
}

impl ConditionTable {
    /// The oracle's choice: the most accurate configuration whose median meets
    /// `target_ms` (the fastest of equally accurate ones); when none does, the fastest,
    /// marked infeasible. `None` for an empty table.
    pub fn oracle(&self, target_ms: f64) -> Option<Choice> {
        self.choose(target_ms, |m| m.median_ms)
    }

    /// The tail oracle's choice: as [`ConditionTable::oracle`] with the 95th percentile
    /// in place of the median.
    pub fn tail_oracle(&self, target_ms: f64) -> Option<Choice> {
        self.choose(target_ms, |m| m.p95_ms)
    }

    /// The most accurate configuration whose `latency` meets `target_ms`, else the one
    /// of the smallest `latency`, marked infeasible.
    fn choose(&self, target_ms: f64, latency: impl Fn(&Measured) -> f64) -> Option<Choice> {
        let feasible = self.configs.iter().filter(|m| latency(m) <= target_ms).max_by(|a, b| better(a, b));
        match feasible {
            Some(config) => Some(Choice { config: config.clone(), feasible: true }),
            None => self.configs.iter().min_by(|a, b| latency(a).total_cmp(&latency(b))).map(|config| Choice { config: config.clone(), feasible: false }),
        }
    }

    /// The measurement of `level` on `threads` threads.
    pub fn get(&self, level: usize, threads: usize) -> Option<&Measured> {
        self.configs.iter().find(|m| m.level == level && m.threads == threads)
    }
}

/// The best fixed configuration in hindsight over the conditions `tables` of a run: the
/// most accurate one whose median meets `target_ms` under every condition; when none
/// does, the one whose worst median is the smallest. `None` when the tables share no
/// configuration.
pub fn best_static(tables: &[&ConditionTable], target_ms: f64) -> Option<Measured> {
    let first = tables.first()?;
    // Each configuration with its worst median over the conditions.
    let worst: Vec<Measured> = first
        .configs
        .iter()
        .filter_map(|m| {
            let medians: Option<Vec<f64>> = tables.iter().map(|t| t.get(m.level, m.threads).map(|x| x.median_ms)).collect();
            Some(Measured { median_ms: medians?.into_iter().fold(0.0, f64::max), ..m.clone() })
        })
        .collect();
    let fits = worst.iter().filter(|m| m.median_ms <= target_ms).max_by(|a, b| better(a, b));
    fits.or_else(|| worst.iter().min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))).cloned()
}

/// One frame of a run, as its trace records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Seconds since the run started, at the end of the frame.
    pub t_s: f64,
    /// Level that ran it.
    pub level: usize,
    /// Threads that ran it.
    pub threads: usize,
    /// The level's predicted accuracy.
    pub accuracy: f64,
    /// Measured latency, ms.
    pub latency_ms: f64,
}

/// A run's metrics against the oracle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Frames run.
    pub frames: usize,
    /// Share of frames over the target (%).
    pub over_pct: f64,
    /// Share of the frames run while the load was on that were over the target (%).
    pub over_during_load_pct: f64,
    /// Mean predicted accuracy of the frames (%).
    pub mean_acc_pct: f64,
    /// Mean accuracy the oracle would have run at the same moments (%).
    pub oracle_acc_pct: f64,
    /// `oracle_acc_pct − mean_acc_pct`, percentage points (positive: below the oracle).
    pub acc_gap_pp: f64,
    /// Share of frames (%) over the target that the oracle's own configurations would
    /// run at the same moments, from their measured samples: above 5%, holding 95% of
    /// frames under the target and matching the oracle's accuracy exclude each other
    /// (`None`: the tables kept no samples).
    #[serde(default)]
    pub oracle_over_pct: Option<f64>,
    /// Mean accuracy the tail oracle would have run at the same moments (%).
    pub tail_oracle_acc_pct: f64,
    /// `tail_oracle_acc_pct − mean_acc_pct`, percentage points.
    pub acc_gap_tail_pp: f64,
    /// Whether the oracle meets the target in every phase of the run.
    pub oracle_feasible: bool,
    /// The worst load onset: frames from it until [`SETTLED_FRAMES`] frames in a row meet
    /// the target (`None`: never while the load lasted).
    pub reaction_frames: Option<usize>,
    /// The same in ms from the onset.
    pub reaction_ms: Option<f64>,
    /// The worst load end: seconds until a frame runs at the oracle's accuracy for the
    /// idle machine again (`None`: not before the next onset or the end of the run).
    pub recovery_s: Option<f64>,
    /// Configuration changes between consecutive frames.
    pub switches: usize,
    /// How much slower the run's idle frames ran than the idle table measured their
    /// configurations: the median, over the frames run with the load off, of latency ÷ the
    /// table's median for that configuration (1.0: as measured; `None`: no such frame). Far
    /// from 1 (see [`drifted`]), the machine itself ran at another speed during the run
    /// than when the oracle was measured (a shared host's drift): above, the oracle's
    /// choices would not have met the target then; below, they were too cautious. Either
    /// way the gaps judge the host as much as the policy.
    #[serde(default)]
    pub idle_slowdown: Option<f64>,
}

/// How far [`RunMetrics::idle_slowdown`] may be from 1, as a factor either way, before a
/// run's verdict says that the machine drifted from the oracle's measurement.
pub const DRIFT_FACTOR: f64 = 1.25;

/// Whether an idle slowdown says the machine drifted: slower or faster than
/// [`DRIFT_FACTOR`] times the oracle's measurement.
pub fn drifted(idle_slowdown: f64) -> bool {
    !(1.0 / DRIFT_FACTOR..=DRIFT_FACTOR).contains(&idle_slowdown)
}

/// Frames in a row under the target that end a reaction.
pub const SETTLED_FRAMES: usize = 3;

/// The metrics of `frames`, run under `target_ms` with the load of `load` on in its
/// windows, against the oracle that knows the configurations' medians when `idle` and
/// when `loaded`.
pub fn evaluate(frames: &[Frame], load: &LoadSpec, idle: &ConditionTable, loaded: &ConditionTable, target_ms: f64) -> RunMetrics {
    let (idle_choice, loaded_choice) = (idle.oracle(target_ms), loaded.oracle(target_ms));
    let over = |f: &Frame| f.latency_ms > target_ms;
    let share = |part: usize, of: usize| if of == 0 { 0.0 } else { 100.0 * part as f64 / of as f64 };
    let during: Vec<&Frame> = frames.iter().filter(|f| load.active_at(f.t_s)).collect();
    let oracle_at = |f: &Frame| if load.active_at(f.t_s) { loaded_choice.as_ref() } else { idle_choice.as_ref() };
    let n = frames.len().max(1) as f64;
    let mean_acc = frames.iter().map(|f| f.accuracy).sum::<f64>() / n;
    let oracle_acc = frames.iter().map(|f| oracle_at(f).map_or(0.0, |c| c.config.accuracy)).sum::<f64>() / n;
    let oracle_over: Option<f64> = frames.iter().map(|f| oracle_at(f).and_then(|c| c.config.over_share(target_ms))).sum::<Option<f64>>().map(|s| 100.0 * s / n);
    let (idle_tail, loaded_tail) = (idle.tail_oracle(target_ms), loaded.tail_oracle(target_ms));
    let tail_at = |f: &Frame| if load.active_at(f.t_s) { loaded_tail.as_ref() } else { idle_tail.as_ref() };
    let tail_acc = frames.iter().map(|f| tail_at(f).map_or(0.0, |c| c.config.accuracy)).sum::<f64>() / n;
    let phases_met = [frames.iter().any(|f| !load.active_at(f.t_s)), !during.is_empty()];
    let oracle_feasible =
        idle_choice.as_ref().is_some_and(|c| c.feasible || !phases_met[0]) && loaded_choice.as_ref().is_some_and(|c| c.feasible || !phases_met[1]);

    let idle_ratios: Vec<f64> =
        frames.iter().filter(|f| !load.active_at(f.t_s)).filter_map(|f| idle.get(f.level, f.threads).map(|m| f.latency_ms / m.median_ms)).collect();
    let idle_slowdown = (!idle_ratios.is_empty()).then(|| stats::median(&idle_ratios));

    let first_at = |t: f64| frames.iter().position(|f| f.t_s >= t).unwrap_or(frames.len());
    let (mut reaction_frames, mut reaction_ms, mut recovery_s) = (Some(0usize), Some(0.0f64), Some(0.0f64));
    for (i, window) in load.windows.iter().enumerate() {
        let (onset, end) = (first_at(window.start_s), first_at(window.end_s));
        if onset >= end {
            continue;
        }
        let loaded = &frames[onset..end];
        // SETTLED_FRAMES in a row under the target (a window shorter than that: all of it).
        let run = SETTLED_FRAMES.min(loaded.len());
        let settled = (0..=loaded.len() - run).find(|&k| loaded[k..k + run].iter().all(|f| !over(f)));
        match settled {
            Some(k) => {
                reaction_frames = reaction_frames.map(|w| w.max(k));
                let ms = (loaded[k].t_s - window.start_s).max(0.0) * 1e3;
                reaction_ms = reaction_ms.map(|w| w.max(ms));
            }
            None => (reaction_frames, reaction_ms) = (None, None),
        }
        // After the window, until the next one starts (or the run ends).
        let next = load.windows.get(i + 1).map_or(frames.len(), |w| first_at(w.start_s));
        if end < next {
            let goal = idle_choice.as_ref().map_or(0.0, |c| c.config.accuracy);
            match frames[end..next].iter().find(|f| f.accuracy >= goal - 1e-12) {
                Some(f) => recovery_s = recovery_s.map(|w| w.max((f.t_s - window.end_s).max(0.0))),
                None => recovery_s = None,
            }
        }
    }
    RunMetrics {
        frames: frames.len(),
        over_pct: share(frames.iter().filter(|f| over(f)).count(), frames.len()),
        over_during_load_pct: share(during.iter().filter(|f| over(f)).count(), during.len()),
        mean_acc_pct: 100.0 * mean_acc,
        oracle_acc_pct: 100.0 * oracle_acc,
        acc_gap_pp: 100.0 * (oracle_acc - mean_acc),
        oracle_over_pct: if frames.is_empty() { None } else { oracle_over },
        tail_oracle_acc_pct: 100.0 * tail_acc,
        acc_gap_tail_pp: 100.0 * (tail_acc - mean_acc),
        oracle_feasible,
        reaction_frames,
        reaction_ms,
        recovery_s,
        switches: frames.windows(2).filter(|w| (w[0].level, w[0].threads) != (w[1].level, w[1].threads)).count(),
        idle_slowdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic machine: levels 0..4 (accuracy 70, 72, 74, 76 %) take 10, 14, 20, 28
    /// ms on 2 threads and 1.6× that on 1 thread when idle; a load doubles the 2-thread
    /// times and slows 1 thread by 1.25× only (the load takes a core). Of every 20
    /// frames, 18 take the median and 2 take the 95th percentile: 1.1× the median when
    /// idle, 1.5× under the load.
    fn model() -> (ConditionTable, ConditionTable) {
        let base = [10.0, 14.0, 20.0, 28.0];
        let table = |condition: &str, slow2: f64, slow1: f64, tail: f64| ConditionTable {
            condition: condition.into(),
            configs: (0..4)
                .flat_map(|level| {
                    [(1, base[level] * 1.6 * slow1), (2, base[level] * slow2)].map(|(threads, ms)| {
                        let samples_ms = [vec![ms; 18], vec![ms * tail; 2]].concat();
                        Measured { level, threads, accuracy: 0.70 + 0.02 * level as f64, median_ms: ms, p95_ms: ms * tail, samples_ms }
                    })
                })
                .collect(),
        };
        (table("none", 1.0, 1.0, 1.1), table("compute", 2.0, 1.25, 1.5))
    }

    #[test]
    fn the_oracle_runs_the_most_accurate_configuration_that_meets_the_target() {
        let (idle, loaded) = model();
        // Target 30 ms. Idle: level 3 on 2 threads (28 ms). Loaded: 20, 28, 40, 56 ms on
        // either thread count: level 1.
        let idle_choice = idle.oracle(30.0).unwrap();
        assert_eq!((idle_choice.config.level, idle_choice.config.threads, idle_choice.feasible), (3, 2, true));
        let loaded_choice = loaded.oracle(30.0).unwrap();
        assert_eq!((loaded_choice.config.level, loaded_choice.feasible), (1, true));
        // The tail oracle: idle p95 30.8 ms for level 3 on 2 threads: level 2 (22 ms);
        // loaded p95 30, 42, 60, 84 ms: level 0 (30 ms).
        assert_eq!(idle.tail_oracle(30.0).unwrap().config.level, 2);
        let tail = loaded.tail_oracle(30.0).unwrap();
        assert_eq!((tail.config.level, tail.feasible), (0, true));
        // Target 15 ms under the load: nothing fits; the fastest runs, marked infeasible.
        let none = loaded.oracle(15.0).unwrap();
        assert_eq!((none.config.level, none.feasible), (0, false));
        assert_eq!(none.config.median_ms, 20.0);
        // The best static configuration must fit under both: level 1 (28 ms loaded).
        let fixed = best_static(&[&idle, &loaded], 30.0).unwrap();
        assert_eq!(fixed.level, 1);
        assert_eq!(fixed.median_ms, 28.0);
        // The share of a configuration's frames over a target, from its samples.
        let level3 = idle.get(3, 2).unwrap();
        assert_eq!((level3.over_share(30.0), level3.over_share(28.0), level3.over_share(27.9)), (Some(0.1), Some(0.1), Some(1.0)));
        assert_eq!(level3.over_share(31.0), Some(0.0));
        assert_eq!(Measured { samples_ms: vec![], ..level3.clone() }.over_share(30.0), None);
        // Nothing fits both: the one with the smallest worst median.
        assert_eq!(best_static(&[&idle, &loaded], 15.0).unwrap().median_ms, 20.0);
    }

    #[test]
    fn a_run_is_scored_against_the_oracle_phase_by_phase() {
        let (idle, loaded) = model();
        let load: LoadSpec = "1s-2s:2".parse().unwrap();
        let frame = |t_s: f64, level: usize, latency_ms: f64| Frame { t_s, level, threads: 2, accuracy: 0.70 + 0.02 * level as f64, latency_ms };
        let mut frames = Vec::new();
        // Idle: level 3, as the oracle (10 frames).
        frames.extend((0..10).map(|i| frame(0.1 * i as f64, 3, 28.0)));
        // Load from 1 s: two frames of level 3 over target, then level 1 under it (10 frames).
        frames.extend([frame(1.0, 3, 56.0), frame(1.05, 3, 56.0)]);
        frames.extend((0..8).map(|i| frame(1.1 + 0.1 * i as f64, 1, 28.0)));
        // After 2 s: level 1 for two frames, then level 3 from 2.3 s (5 frames in all).
        frames.extend([frame(2.1, 1, 14.0), frame(2.2, 1, 14.0), frame(2.3, 3, 28.0), frame(2.4, 3, 28.0), frame(2.5, 3, 28.0)]);
        let m = evaluate(&frames, &load, &idle, &loaded, 30.0);
        assert_eq!(m.frames, 25);
        assert!((m.over_pct - 8.0).abs() < 1e-9, "{m:?}");
        assert!((m.over_during_load_pct - 20.0).abs() < 1e-9, "{m:?}");
        assert_eq!(m.reaction_frames, Some(2));
        assert!((m.reaction_ms.unwrap() - 100.0).abs() < 1e-6, "{m:?}");
        assert!((m.recovery_s.unwrap() - 0.3).abs() < 1e-9, "{m:?}");
        // The oracle: level 3 (76%) for the 15 idle frames, level 1 (72%) for the 10 loaded.
        assert!((m.oracle_acc_pct - (15.0 * 76.0 + 10.0 * 72.0) / 25.0).abs() < 1e-9, "{m:?}");
        // The run lost 4 pp on two idle frames and gained 4 pp on two loaded ones.
        assert!(m.acc_gap_pp.abs() < 1e-9, "{m:?}");
        // The tail oracle: level 2 (74%) idle, level 0 (70%) loaded.
        assert!((m.tail_oracle_acc_pct - (15.0 * 74.0 + 10.0 * 70.0) / 25.0).abs() < 1e-9, "{m:?}");
        assert!((m.acc_gap_tail_pp - (m.tail_oracle_acc_pct - m.mean_acc_pct)).abs() < 1e-9, "{m:?}");
        // The oracle's own configurations: 28 ms medians, tails of 30.8 ms idle and 42 ms
        // loaded, both over 30 ms: 2 frames in 20 over the target.
        assert!((m.oracle_over_pct.unwrap() - 10.0).abs() < 1e-9, "{m:?}");
        assert!(m.oracle_feasible);
        assert_eq!(m.switches, 2);
        // Every idle frame at its configuration's measured median: no slowdown.
        assert_eq!(m.idle_slowdown, Some(1.0));
        // Never back under the target while loaded, nor back up after: no reaction, no recovery.
        let stuck: Vec<Frame> = frames
            .iter()
            .map(|f| if f.t_s >= 1.0 { frame(f.t_s, 3, 56.0) } else { *f })
            .map(|f| if f.t_s >= 2.0 { Frame { accuracy: 0.5, ..f } } else { f })
            .collect();
        let m = evaluate(&stuck, &load, &idle, &loaded, 30.0);
        assert_eq!((m.reaction_frames, m.reaction_ms, m.recovery_s), (None, None, None));
        // A host that ran the idle phases 1.5× slower than the oracle measured: the idle
        // frames give the slowdown (the loaded ones, unchanged, do not count).
        let slower: Vec<Frame> = frames.iter().map(|f| if load.active_at(f.t_s) { *f } else { Frame { latency_ms: f.latency_ms * 1.5, ..*f } }).collect();
        let m = evaluate(&slower, &load, &idle, &loaded, 30.0);
        assert!((m.idle_slowdown.unwrap() - 1.5).abs() < 1e-9, "{m:?}");
        // Drift either way: 1.5× slower, or as fast as 0.7×; 1.2× and 0.85× are not.
        assert_eq!([1.5, 0.7, 1.2, 0.85, 1.0].map(drifted), [true, true, false, false, false]);
        let loaded_only: Vec<Frame> = frames.iter().filter(|f| load.active_at(f.t_s)).copied().collect();
        assert!(evaluate(&loaded_only, &load, &idle, &loaded, 30.0).idle_slowdown.is_none());
        // Under a 15 ms target the loaded phase is infeasible.
        assert!(!evaluate(&frames, &load, &idle, &loaded, 15.0).oracle_feasible);
    }
}
