//! The runtime: a family store, its model, the requirements and a policy; one `infer`
//! per frame, switching level and thread count between frames.

use std::path::Path;
use std::time::{Duration, Instant};

use dynofa_slice::family_file::{load_family_file, FamilyFile};
use dynofa_slice::FamilyStore;
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::Supernet;

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::model::FamilyModel;
use crate::monitor::{LatencyWindow, SystemMonitor, SystemSample};
use crate::policy::{Decision, Dofa, Observation, Policy, Reason};
use crate::requirements::Requirements;

/// What one frame ran and produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// Frame number (1-based).
    pub frame: u64,
    /// Seconds since the runtime was built, at the end of the frame.
    pub t_s: f64,
    /// Most likely class.
    pub class: usize,
    /// Its softmax probability.
    pub score: f32,
    /// Level that ran the frame (0 = the smallest).
    pub level: usize,
    /// Threads that ran it.
    pub threads: usize,
    /// The level's predicted accuracy.
    pub acc_pred: f64,
    /// Measured latency of the forward, in ms (preprocessing excluded).
    pub latency_ms: f64,
    /// The model's idle latency for this level and thread count, in ms.
    pub latency_pred_ms: Option<f64>,
    /// The latency target when it ran.
    pub target_ms: f64,
    /// What the policy decided for the next frame.
    pub decision: Decision,
    /// Time spent switching to that decision (0 without a switch), in µs.
    pub switch_us: f64,
    /// The OS reading the policy saw.
    pub system: SystemSample,
}

impl Inference {
    /// Whether the frame ran over the latency target.
    pub fn over_target(&self) -> bool {
        self.latency_ms > self.target_ms
    }
}

/// Something that happened, for [`Observer`]s.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The runtime switched configuration after `frame`.
    Switch { frame: u64, from: (usize, usize), to: (usize, usize), reason: Reason, overhead_us: f64 },
    /// `frame` ran over the target.
    Violation { frame: u64, level: usize, latency_ms: f64, target_ms: f64 },
    /// The application changed the requirements.
    Requirements(Requirements),
}

/// Receives the runtime's events (on the inference thread: keep it short).
pub trait Observer: Send {
    /// Called once per event.
    fn on_event(&mut self, event: &Event);
}

impl<F: FnMut(&Event) + Send> Observer for F {
    fn on_event(&mut self, event: &Event) {
        self(event)
    }
}

/// Running statistics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    /// Frames run.
    pub frames: u64,
    /// Frames over the target.
    pub violations: u64,
    /// Configuration switches.
    pub switches: u64,
    /// Mean latency over every frame, ms.
    pub mean_latency_ms: f64,
    /// Mean and 95th percentile over the last 100 frames, ms.
    pub recent_mean_ms: f64,
    pub recent_p95_ms: f64,
    /// Exponentially smoothed latency, ms.
    pub smoothed_ms: f64,
    /// Mean predicted accuracy over every frame.
    pub mean_accuracy: f64,
    /// Frames run per level.
    pub frames_per_level: Vec<u64>,
    /// Mean time a switch took, µs.
    pub mean_switch_us: f64,
}

/// Runs a family under requirements and a policy.
pub struct Runtime {
    store: FamilyStore,
    model: FamilyModel,
    requirements: Requirements,
    policy: Box<dyn Policy>,
    monitor: SystemMonitor,
    recent: LatencyWindow,
    observers: Vec<Box<dyn Observer>>,
    stats: Stats,
    started: Instant,
    /// Whether the policy has chosen the first configuration.
    started_policy: bool,
    input: Vec<f32>,
    logits: Vec<f32>,
}

impl Runtime {
    /// A runtime over `store`, whose levels `model` describes. Defaults: a 1 s target
    /// (set the real one with [`Runtime::with_requirements`]) and the `dofa` policy.
    pub fn new(store: FamilyStore, model: FamilyModel) -> Result<Self> {
        if model.levels() != store.len() {
            return Err(Error::invalid("family model", format!("{} levels", model.levels()), format!("{} levels, as the family store", store.len())));
        }
        model.check_order()?;
        let levels = store.len();
        Ok(Runtime {
            store,
            model,
            requirements: Requirements::latency(1000.0)?,
            policy: Box::new(Dofa::default()),
            monitor: SystemMonitor::start(Duration::from_millis(100)),
            recent: LatencyWindow::new(100, 0.1),
            observers: Vec::new(),
            stats: Stats { frames_per_level: vec![0; levels], ..Stats::default() },
            started: Instant::now(),
            started_policy: false,
            input: Vec::new(),
            logits: Vec::new(),
        })
    }

    /// Loads a family file (and its per-level BatchNorm file) onto `supernet`, running on
    /// up to `max_threads` threads.
    pub fn from_family_file(supernet: &Supernet, family: &Path, max_threads: usize) -> Result<Self> {
        Runtime::from_family(supernet, FamilyFile::read(family)?, family, max_threads)
    }

    /// [`Runtime::from_family_file`] for a family file already read (`family` names it in
    /// errors; a BatchNorm file is looked for beside it).
    pub fn from_family(supernet: &Supernet, file: FamilyFile, family: &Path, max_threads: usize) -> Result<Self> {
        let (store, file) = load_family_file(file, family, supernet, max_threads)?;
        let model = FamilyModel::from_family(&file, max_threads);
        Runtime::new(store, model).map_err(|e| match e {
            Error::Invalid { field, value, expected } => Error::invalid(format!("{}: {field}", family.display()), value, expected),
            e => e,
        })
    }

    /// Uses `requirements` (validated).
    pub fn with_requirements(mut self, requirements: Requirements) -> Result<Self> {
        self.requirements = requirements.validated()?;
        Ok(self)
    }

    /// Uses `policy` from the next frame on (it starts afresh).
    pub fn with_policy(mut self, policy: Box<dyn Policy>) -> Self {
        self.policy = policy;
        self.started_policy = false;
        self
    }

    /// Changes the requirements while running; the policy sees them after the next frame.
    pub fn set_requirements(&mut self, requirements: Requirements) -> Result<()> {
        self.requirements = requirements.validated()?;
        self.emit(&Event::Requirements(self.requirements));
        Ok(())
    }

    /// Adds an observer of switches, violations and requirement changes.
    pub fn add_observer(&mut self, observer: Box<dyn Observer>) {
        self.observers.push(observer);
    }

    /// The requirements now.
    pub fn requirements(&self) -> &Requirements {
        &self.requirements
    }

    /// The family's model (after [`Runtime::calibrate`], with measured idle latencies).
    pub fn model(&self) -> &FamilyModel {
        &self.model
    }

    /// Statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The policy's name.
    pub fn policy_name(&self) -> String {
        self.policy.name()
    }

    /// The latest OS reading.
    pub fn system(&self) -> SystemSample {
        self.monitor.latest()
    }

    /// Logits of the last frame.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The most threads the runtime may use.
    pub fn max_threads(&self) -> usize {
        self.store.max_threads()
    }

    /// Measures every level's idle latency on every thread count (median of `iters`
    /// forwards after one warm-up) into the model, calling `progress(done, total)`.
    /// Run it while the machine is idle: the policies scale from these values.
    pub fn calibrate_with(&mut self, iters: usize, mut progress: impl FnMut(usize, usize)) -> Result<()> {
        let (levels, max_threads) = (self.store.len(), self.store.max_threads());
        let (active, threads) = (self.store.active(), self.store.threads());
        let total = levels * max_threads;
        for level in 0..levels {
            let r = self.store.level_config(level).resolution();
            let input = Array { shape: vec![1, 3, r, r], data: vec![0.0; 3 * r * r] };
            self.store.switch_to(level)?;
            for t in 1..=max_threads {
                self.store.set_threads(t)?;
                let ms = self.store.median_forward_ms(&input, 1, iters)?;
                self.model.set_latency(level, t, ms)?;
                progress(level * max_threads + t, total);
            }
        }
        self.store.switch_to(active)?;
        self.store.set_threads(threads)?;
        Ok(())
    }

    /// [`Runtime::calibrate_with`] without progress.
    pub fn calibrate(&mut self, iters: usize) -> Result<()> {
        self.calibrate_with(iters, |_, _| {})
    }

    /// Runs one frame on the current configuration, then lets the policy choose the next.
    /// A model without a latency for every level and thread count is calibrated first.
    pub fn infer(&mut self, frame: &Frame) -> Result<Inference> {
        let max_threads = self.store.max_threads();
        if !self.started_policy {
            if !self.model.is_complete(max_threads) {
                self.calibrate(3)?;
            }
            let first = self.policy.start(&self.model, &self.requirements, max_threads);
            self.apply(first)?;
            self.started_policy = true;
        }
        let (level, threads) = (self.store.active(), self.store.threads());
        let r = self.store.level_config(level).resolution();
        frame.to_input(r, &mut self.input);
        let input = Array { shape: vec![1, 3, r, r], data: std::mem::take(&mut self.input) };
        let start = Instant::now();
        let output = self.store.forward(&input);
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        self.input = input.data;
        self.logits = output?.data;
        let (class, score) = best_class(&self.logits);

        let system = self.monitor.latest();
        self.stats.frames += 1;
        let observation = Observation {
            frame: self.stats.frames,
            t_s: self.started.elapsed().as_secs_f64(),
            level,
            threads,
            latency_ms,
            system,
            requirements: &self.requirements,
            model: &self.model,
            max_threads,
        };
        let decision = self.policy.decide(&observation);
        let t_s = observation.t_s;
        let switch_us = if (decision.level, decision.threads) != (level, threads) { self.apply(decision)? } else { 0.0 };

        let result = Inference {
            frame: self.stats.frames,
            t_s,
            class,
            score,
            level,
            threads,
            acc_pred: self.model.accuracy[level],
            latency_ms,
            latency_pred_ms: self.model.predict(level, threads),
            target_ms: self.requirements.target_ms,
            decision,
            switch_us,
            system,
        };
        self.record(&result);
        Ok(result)
    }

    /// Switches the store to `decision`; returns the time it took in µs.
    fn apply(&mut self, decision: Decision) -> Result<f64> {
        let start = Instant::now();
        self.store.switch_to(decision.level)?;
        self.store.set_threads(decision.threads.clamp(1, self.store.max_threads()))?;
        Ok(start.elapsed().as_secs_f64() * 1e6)
    }

    fn record(&mut self, result: &Inference) {
        let stats = &mut self.stats;
        let n = stats.frames as f64;
        stats.mean_latency_ms += (result.latency_ms - stats.mean_latency_ms) / n;
        stats.mean_accuracy += (result.acc_pred - stats.mean_accuracy) / n;
        stats.frames_per_level[result.level] += 1;
        self.recent.push(result.latency_ms);
        stats.recent_mean_ms = self.recent.mean().unwrap_or(0.0);
        stats.recent_p95_ms = self.recent.p95().unwrap_or(0.0);
        stats.smoothed_ms = self.recent.smoothed().unwrap_or(0.0);
        if result.over_target() {
            stats.violations += 1;
            let event = Event::Violation { frame: result.frame, level: result.level, latency_ms: result.latency_ms, target_ms: result.target_ms };
            self.emit(&event);
        }
        let to = (result.decision.level, result.decision.threads);
        if to != (result.level, result.threads) {
            let stats = &mut self.stats;
            stats.switches += 1;
            stats.mean_switch_us += (result.switch_us - stats.mean_switch_us) / stats.switches as f64;
            let event = Event::Switch { frame: result.frame, from: (result.level, result.threads), to, reason: result.decision.reason, overhead_us: result.switch_us };
            self.emit(&event);
        }
    }

    fn emit(&mut self, event: &Event) {
        for observer in &mut self.observers {
            observer.on_event(event);
        }
    }
}

/// Index and softmax probability of the largest logit.
fn best_class(logits: &[f32]) -> (usize, f32) {
    let (class, &max) = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((0, &0.0));
    let sum: f32 = logits.iter().map(|v| (v - max).exp()).sum();
    (class, 1.0 / sum.max(f32::MIN_POSITIVE))
}
