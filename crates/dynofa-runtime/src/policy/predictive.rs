//! `predictive`: estimate how much slower than idle each processor runs the DNN now, and
//! jump straight to the most accurate (processor, level, threads) predicted to meet the
//! target.
//!
//! - The slowdown is `observed / predicted idle latency`, tracked per processor and thread
//!   count: it
//!   rises as soon as two frames in a row confirm it (one slow frame is noise) and decays
//!   smoothly, so load onsets are answered within a few frames and recoveries are not
//!   over-trusted.
//! - Thread counts not run lately are estimated from the competing demand: with `d`
//!   cores wanted elsewhere, `t` threads on `n` allowed cores run about
//!   `max(1, (t + d) / n)` slower. The OS only shows the share `c` the others got while
//!   we competed: when the cores are saturated, fair sharing gives `c = d·n / (d + t)`,
//!   so `d = c·t / (n − c)`; on a GPU, `t` is the CPU time we were seen to use (none, but
//!   for a software driver). (Our own slowdown says little about `d`: threads that
//!   synchronise every layer lose far more than their share when preempted.) An estimate
//!   measured at another load level, or long ago, is discarded. A GPU not run lately is
//!   assumed idle (nothing here sees another process's GPU work): when a GPU load drove
//!   the runtime off it, the first step back is a probe, and a failed probe doubles the
//!   dwell like any failed step up.
//! - The margin under the target is learned from the observed spread of the latency: each
//!   frame's observed/idle ratio over the median of the last [`RECENT_FRAMES`] ratios on
//!   its processor and thread count, over the last [`PredictiveOptions::error_frames`]
//!   frames (frames where the median of the last 5 has moved from it by over 20% are a
//!   load changing, not jitter, and left out). A configuration is chosen when its expected
//!   latency × the spread's 97th percentile meets the target (at least `margin`), so that
//!   on a machine whose frames jitter the choice leaves room for the jitter — 97% of frames
//!   under the target in a steady state, the rest of a 5% goal left to load onsets —
//!   instead of reading each burst as a load; no per-machine constant.
//! - Down at once when the current configuration is over target; up only with a larger
//!   margin and after a dwell time (hysteresis), the dwell doubling after a failed step up
//!   (a probe that had to be undone) so that a steady load near a boundary does not
//!   oscillate; it returns to its base after 100 quiet frames or when the load changes.

use std::cmp::Ordering;

use dynofa_device::Processor;

use super::{Configuration, Decision, Observation, Policy, Reason, thread_counts};
use crate::level_table::LevelTable;
use crate::monitor::SystemSample;
use crate::requirements::{Priority, Requirements};
use crate::stats;

/// Which knobs [`Predictive`] may turn (the single-knob ablations turn one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Knobs {
    /// Processor, level and threads.
    #[default]
    All,
    /// Processor and level; the CPU on every thread allowed.
    LevelsOnly,
    /// Threads only, at a fixed level of the first processor.
    ThreadsOnly {
        /// The level.
        level: usize,
    },
}

/// Tuning of [`Predictive`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictiveOptions {
    /// The knobs it may turn.
    pub knobs: Knobs,
    /// A configuration is chosen when predicted ≤ target / (1 + margin).
    pub margin: f64,
    /// A step up needs predicted ≤ target / (1 + up_margin) (larger: hysteresis).
    pub up_margin: f64,
    /// Frames after a switch before a step up.
    pub dwell_frames: u64,
    /// The dwell never grows past this after failed steps up.
    pub max_dwell_frames: u64,
    /// How fast the slowdown estimate follows a falling ratio (0–1 per frame).
    pub decay: f64,
    /// A thread count's estimate is discarded when other processes' CPU use moved by
    /// more than this many cores since it was measured,
    pub load_change_cores: f64,
    /// or when it was last measured more than this many frames ago (or the dwell, if longer).
    pub memory_frames: u64,
    /// Frames of prediction error the learned margin looks at.
    pub error_frames: usize,
    /// The quantile of the observed spread the learned margin covers: 0.97 leaves 3% of
    /// frames to the jitter in a steady state, so that the frames a load's onset costs
    /// before the policy has seen it (5–15 per onset on a 2-core VM) fit in a goal of 5%.
    pub spread_quantile: f64,
}

impl Default for PredictiveOptions {
    fn default() -> Self {
        PredictiveOptions {
            knobs: Knobs::All,
            margin: 0.05,
            up_margin: 0.15,
            dwell_frames: 10,
            max_dwell_frames: 320,
            decay: 0.3,
            load_change_cores: 0.5,
            memory_frames: 30,
            error_frames: 300,
            spread_quantile: 0.97,
        }
    }
}

/// The slowdown measured on one thread count.
#[derive(Debug, Clone, Copy)]
struct Slowdown {
    value: f64,
    last_ratio: f64,
    /// Other processes' CPU use (cores) when last updated.
    others_cpu: f64,
    /// Frame of the last update.
    frame: u64,
}

/// The predictive policy.
#[derive(Debug, Clone)]
pub struct Predictive {
    options: PredictiveOptions,
    /// Per processor, per thread count: `[device][threads - 1]`.
    slowdown: Vec<Vec<Option<Slowdown>>>,
    frames_since_switch: u64,
    dwell: u64,
    /// Frame of the last step up, to notice a step up undone soon after.
    last_up: Option<u64>,
    /// Cores wanted by other processes, as estimated after the last frame.
    demand: f64,
    /// Other processes' CPU use when the dwell last grew: a failed step up says nothing
    /// once the load has changed, so the dwell starts afresh then.
    others_at_backoff: f64,
    /// Other processes' CPU use at the previous frame.
    last_others: f64,
    /// The last frames' spread: ratio over the median of recent ratios.
    errors: std::collections::VecDeque<f64>,
    /// The last [`RECENT_FRAMES`] observed/idle ratios since the runtime last switched to
    /// the configuration that runs (its processor and threads).
    recent: std::collections::VecDeque<f64>,
}

/// Ratios whose median is the reference of the spread.
pub const RECENT_FRAMES: usize = 15;

impl Predictive {
    /// A predictive policy with `options`.
    pub fn new(options: PredictiveOptions) -> Self {
        Predictive {
            options,
            slowdown: Vec::new(),
            frames_since_switch: 0,
            dwell: options.dwell_frames,
            last_up: None,
            demand: 0.0,
            others_at_backoff: 0.0,
            last_others: 0.0,
            errors: std::collections::VecDeque::new(),
            recent: std::collections::VecDeque::new(),
        }
    }

    /// The margin learned from the spread: its `spread_quantile` over 1 (at
    /// least `options.margin`, at most 1: twice the expected latency); `options.margin`
    /// until 20 frames are seen.
    fn learned_margin(&self) -> f64 {
        if self.errors.len() < 20 {
            return self.options.margin;
        }
        let quantile = stats::nearest_rank(&stats::sorted(self.errors.iter().copied()), self.options.spread_quantile);
        (quantile - 1.0).clamp(self.options.margin, 1.0)
    }

    /// Frames a measured slowdown stays trusted: longer after failed steps up, so that a
    /// configuration that just proved bad is not retried from an optimistic estimate.
    fn memory(&self) -> u64 {
        self.options.memory_frames.max(self.dwell)
    }

    /// Folds one frame's observed/predicted ratio into the estimate of its processor and
    /// thread count. `assumed` is what the estimate was before this frame, for an estimate
    /// started afresh: like any rise, the first ratio only counts once the next frame
    /// confirms it (the first frame after a switch is often slow) — unless `load_rose`: the
    /// OS saw other processes take more CPU just now, which explains a slow frame at once.
    fn observe(&mut self, config: Configuration, ratio: f64, assumed: f64, load_rose: bool, others_cpu: f64, frame: u64) {
        if self.slowdown.len() <= config.device {
            self.slowdown.resize(config.device + 1, Vec::new());
        }
        let per_threads = &mut self.slowdown[config.device];
        if per_threads.len() < config.threads {
            per_threads.resize(config.threads, None);
        }
        let (memory, load_change, decay) = (self.memory(), self.options.load_change_cores, self.options.decay);
        let entry = &mut self.slowdown[config.device][config.threads - 1];
        // An old estimate, or one from another load, is started afresh.
        let current = entry.filter(|s| frame - s.frame <= memory.max(1) && (s.others_cpu - others_cpu).abs() <= load_change);
        *entry = Some(match current {
            None => Slowdown { value: if ratio > assumed && !load_rose { assumed } else { ratio }, last_ratio: ratio, others_cpu, frame },
            Some(s) => {
                let confirmed = if load_rose { ratio } else { ratio.min(s.last_ratio) };
                let value = if confirmed > s.value { confirmed } else { s.value + decay * (ratio - s.value) };
                Slowdown { value, last_ratio: ratio, others_cpu, frame }
            }
        });
    }

    /// The expected slowdown of `config` now: measured, on the configuration that ran
    /// (same processor and thread count); for another, its recent measurement if the load
    /// has not changed since, the worse of measurement and estimate if the load has grown
    /// (the OS reading lags), and the estimate otherwise — from the competing demand on
    /// the CPU, none on a GPU.
    fn slowdown_of(&self, config: Configuration, current: Option<Configuration>, o: &Observation) -> f64 {
        let estimate = match o.models[config.device].processor {
            Processor::Cpu => ((config.threads as f64 + self.demand) / cores(o)).max(1.0),
            Processor::Gpu => 1.0,
        };
        let same = |c: Configuration| (c.device, c.threads) == (config.device, config.threads);
        match self.slowdown.get(config.device).and_then(|t| t.get(config.threads - 1)).copied().flatten() {
            Some(s) if current.is_some_and(same) => s.value,
            Some(s) if o.frame - s.frame <= self.memory() => {
                let change = o.system.others_cpu - s.others_cpu;
                if change.abs() <= self.options.load_change_cores {
                    s.value
                } else if change > 0.0 {
                    s.value.max(estimate)
                } else {
                    estimate
                }
            }
            _ => estimate,
        }
    }

    /// Whether the knobs allow `config` (of a processor whose threads go up to `threads_max`).
    fn allows(&self, config: Configuration, threads_max: usize) -> bool {
        match self.options.knobs {
            Knobs::All => true,
            Knobs::LevelsOnly => config.threads == threads_max,
            Knobs::ThreadsOnly { level } => config.device == 0 && config.level == level,
        }
    }

    /// Every configuration the models predict and the knobs allow, with its expected
    /// latency now.
    fn candidates(&self, o: &Observation) -> Vec<(Configuration, f64)> {
        let mut all = Vec::new();
        for (device, model) in o.models.iter().enumerate() {
            let threads_max = thread_counts(model, o.max_threads.min(model.max_threads()));
            for level in 0..model.levels() {
                for threads in 1..=threads_max {
                    let config = Configuration { device, level, threads };
                    if !self.allows(config, threads_max) {
                        continue;
                    }
                    if let Some(idle) = model.predict(level, threads) {
                        all.push((config, idle * self.slowdown_of(config, Some(o.config), o)));
                    }
                }
            }
        }
        all
    }

    /// The best configuration predicted to meet `target / (1 + margin)`: the most
    /// accurate acceptable level, then the fastest; or `None`.
    fn best(&self, o: &Observation, margin: f64) -> Option<(Configuration, f64)> {
        let requirements = o.requirements;
        let budget = requirements.target_ms / (1.0 + margin);
        let feasible: Vec<_> = self.candidates(o).into_iter().filter(|c| c.1 <= budget).collect();
        let floor_ok = |c: &&(Configuration, f64)| requirements.accepts_accuracy(o.accuracy(c.0));
        let accuracy_wins = requirements.priority == Priority::Accuracy;
        let pool: Vec<_> = if accuracy_wins || feasible.iter().any(|c| floor_ok(&c)) { feasible.iter().filter(floor_ok).copied().collect() } else { feasible };
        pool.into_iter().max_by(|a, b| more_accurate(o, a.0, b.0).then(b.1.total_cmp(&a.1)))
    }

    /// The fastest configuration expected now (among accurate-enough levels when accuracy
    /// wins); the current one when the models predict none.
    fn fastest(&self, o: &Observation) -> Configuration {
        let requirements = o.requirements;
        let accurate_only = requirements.priority == Priority::Accuracy && requirements.min_accuracy.is_some();
        self.candidates(o)
            .into_iter()
            .filter(|&(config, _)| !accurate_only || requirements.accepts_accuracy(o.accuracy(config)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(o.config, |(config, _)| config)
    }

    fn switch(&mut self, o: &Observation, config: Configuration, reason: Reason) -> Decision {
        if (config.device, config.threads) != (o.config.device, o.config.threads) {
            self.recent.clear();
        }
        if config == o.config {
            // Nothing better to go to: say so when it is because nothing fits.
            let reason = if reason == Reason::Infeasible { reason } else { Reason::Hold };
            return Decision::new(config, reason);
        }
        match reason {
            Reason::Up => self.last_up = Some(o.frame),
            Reason::Down | Reason::Infeasible => {
                // A step up undone within two dwells: the next one waits twice as long.
                if self.last_up.is_some_and(|f| o.frame - f <= 2 * self.dwell) {
                    self.dwell = (self.dwell * 2).min(self.options.max_dwell_frames);
                    self.others_at_backoff = o.system.others_cpu;
                }
                self.last_up = None;
            }
            _ => {}
        }
        self.frames_since_switch = 0;
        Decision::new(config, reason)
    }
}

/// How `a` compares with `b` in accuracy: predicted accuracy first, then (on one processor,
/// or between families without accuracies) the level.
fn more_accurate(o: &Observation, a: Configuration, b: Configuration) -> Ordering {
    o.accuracy(a).total_cmp(&o.accuracy(b)).then(a.level.cmp(&b.level))
}

/// Cores wanted by other processes, from the share they got (see the module docs).
fn competing_demand(o: &Observation) -> f64 {
    let (n, share) = (cores(o), o.system.others_cpu);
    // The cores we held: on the CPU at least our threads; on a GPU only what we were seen
    // to use (a software driver's threads count there, a GPU's wait does not).
    let ours = match o.model().processor {
        Processor::Cpu => o.system.own_cpu.max(o.config.threads as f64),
        Processor::Gpu => o.system.own_cpu,
    };
    // Holding no cores, we took nothing from the others: they got what they wanted (all
    // the cores, at most).
    let saturated = share + ours >= n - 0.25;
    if !saturated || ours < 0.05 {
        return share;
    }
    let free = n - share;
    if free < 0.05 { 4.0 * n } else { (share * ours / free).clamp(share, 4.0 * n) }
}

/// Cores the runtime may use, as a float.
fn cores(o: &Observation) -> f64 {
    o.system.allowed_cores.max(1) as f64
}

impl Policy for Predictive {
    fn name(&self) -> String {
        match self.options.knobs {
            Knobs::All => "predictive".into(),
            Knobs::LevelsOnly => "predictive:levels".into(),
            Knobs::ThreadsOnly { level } => format!("predictive:threads:{level}"),
        }
    }

    fn start(&mut self, models: &[LevelTable], requirements: &Requirements, max_threads: usize) -> Decision {
        // Idle, as if a frame of the first processor's fastest level had run exactly as predicted.
        let idle = SystemSample { allowed_cores: max_threads, ..SystemSample::default() };
        let config = Configuration { device: 0, level: 0, threads: thread_counts(&models[0], max_threads) };
        let observation = Observation {
            frame: 0,
            t_s: 0.0,
            config,
            latency_ms: models[0].predict(0, config.threads).unwrap_or(0.0),
            system: idle,
            requirements,
            models,
            max_threads,
        };
        let config = match self.best(&observation, self.options.margin) {
            Some((config, _)) => config,
            None => self.fastest(&observation),
        };
        Decision::new(config, Reason::Start)
    }

    fn decide(&mut self, o: &Observation) -> Decision {
        self.frames_since_switch += 1;
        let hold = Decision::new(o.config, Reason::Hold);
        let Some(idle) = o.model().predict(o.config.level, o.config.threads) else {
            return hold;
        };
        let assumed = self.slowdown_of(o.config, None, o);
        let load_rose = o.system.others_cpu > self.last_others + self.options.load_change_cores;
        // The spread of this frame around the recent median of its configuration —
        // unless the OS saw other processes take more CPU just now, or the recent median
        // is moving: a load changing, not jitter.
        let ratio = o.latency_ms / idle;
        if self.recent.len() == RECENT_FRAMES {
            self.recent.pop_front();
        }
        self.recent.push_back(ratio);
        if self.recent.len() >= 5 && !load_rose {
            let reference = stats::nearest_rank(&stats::sorted(self.recent.iter().copied()), 0.5);
            let latest = stats::nearest_rank(&stats::sorted(self.recent.iter().rev().take(5).copied()), 0.5);
            if reference > 0.0 && (latest / reference - 1.0).abs() <= 0.2 {
                if self.errors.len() == self.options.error_frames.max(1) {
                    self.errors.pop_front();
                }
                self.errors.push_back(ratio / reference);
            }
        }
        let margin = self.learned_margin();
        let up_margin = margin + (self.options.up_margin - self.options.margin).max(0.0);
        self.last_others = o.system.others_cpu;
        self.observe(o.config, o.latency_ms / idle, assumed, load_rose, o.system.others_cpu, o.frame);
        let load_changed = (o.system.others_cpu - self.others_at_backoff).abs() > self.options.load_change_cores;
        if self.frames_since_switch > 100 || load_changed {
            self.dwell = self.options.dwell_frames;
        }
        self.demand = competing_demand(o);
        let expected_now = idle * self.slowdown_of(o.config, Some(o.config), o);
        let target = o.requirements.target_ms;
        let floor_ok = o.requirements.accepts_accuracy(o.accuracy(o.config));
        if expected_now > target || (!floor_ok && o.requirements.priority == Priority::Accuracy) {
            return match self.best(o, margin) {
                Some((config, _)) => {
                    let reason = if more_accurate(o, config, o.config).is_gt() { Reason::Up } else { Reason::Down };
                    self.switch(o, config, reason)
                }
                None => {
                    let config = self.fastest(o);
                    self.switch(o, config, Reason::Infeasible)
                }
            };
        }
        if self.frames_since_switch >= self.dwell
            && let Some((config, _)) = self.best(o, up_margin)
            && more_accurate(o, config, o.config).is_gt()
        {
            let reason = if floor_ok { Reason::Up } else { Reason::Floor };
            return self.switch(o, config, reason);
        }
        hold
    }
}
