//! The runtime: a family on each processor (the CPU, a GPU) with its model, the
//! requirements and a policy; one `infer` per frame, switching processor, level and
//! thread count between frames.

use std::path::Path;
use std::time::{Duration, Instant};

use dynofa_slice::family_file::{FamilyFile, load_family_file};
use dynofa_slice::{FamilyStore, LoadedFamily, Placement};
use dynofa_supernet::Supernet;
use dynofa_supernet::tensor_io::Array;

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::level_table::LevelTable;
use crate::monitor::{LatencyWindow, SystemMonitor, SystemSample};
use crate::policy::{Configuration, Decision, Dofa, Observation, Policy, Reason};
use crate::requirements::Requirements;
use crate::stats;

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
    /// The processor that ran the frame, as `--device` names it (`cpu`, `gpu:0`).
    pub device: String,
    /// Processor (index of its family), level and threads that ran it.
    pub config: Configuration,
    /// Level that ran the frame (0 = the smallest of its processor's family).
    pub level: usize,
    /// Threads that ran it (1 on a GPU).
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
    /// The processor of the next frame, as `--device` names it.
    pub next_device: String,
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
    /// The runtime switched configuration (processor, level or threads).
    Switch {
        /// The frame after which it switched.
        frame: u64,
        /// What ran that frame.
        from: Configuration,
        /// What runs the next one.
        to: Configuration,
        /// Why.
        reason: Reason,
        /// Time the switch took, µs.
        overhead_us: f64,
    },
    /// A frame ran over the target.
    Violation {
        /// The frame.
        frame: u64,
        /// What ran it.
        config: Configuration,
        /// Its latency, ms.
        latency_ms: f64,
        /// The target, ms.
        target_ms: f64,
    },
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
    /// Mean over the last 100 frames, ms.
    pub recent_mean_ms: f64,
    /// 95th percentile over the last 100 frames (nearest rank), ms.
    pub recent_p95_ms: f64,
    /// Exponentially smoothed latency, ms.
    pub smoothed_ms: f64,
    /// Mean predicted accuracy over every frame.
    pub mean_accuracy: f64,
    /// Frames run per level, per processor: `[device][level]`.
    pub frames_per_level: Vec<Vec<u64>>,
    /// Mean time a switch took, µs.
    pub mean_switch_us: f64,
}

/// A family loaded on its processor, with what the policies know of it.
pub struct ProcessorFamily {
    /// The levels, ready to run.
    pub family: Box<dyn LoadedFamily>,
    /// Their predicted accuracy and idle latency.
    pub model: LevelTable,
}

impl ProcessorFamily {
    /// Loads `file` (read from `path`; a BatchNorm file is looked for beside it) onto
    /// `supernet` at `placement`, named `device` (`cpu`, `gpu:0`) in traces and policies.
    pub fn load(supernet: &Supernet, file: FamilyFile, path: &Path, placement: &Placement, device: &str) -> Result<Self> {
        let (family, file) = load_family_file(file, path, supernet, placement)?;
        let model = LevelTable::from_family(&file, device, family.max_threads());
        model.check_order().map_err(|e| match e {
            Error::InvalidValue { field, value, expected } => Error::invalid(format!("{}: {field}", path.display()), value, expected),
            e => e,
        })?;
        Ok(ProcessorFamily { family, model })
    }
}

/// Runs families (one per processor) under requirements and a policy.
pub struct Runtime {
    families: Vec<Box<dyn LoadedFamily>>,
    models: Vec<LevelTable>,
    /// What runs the next frame.
    current: Configuration,
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
    /// A runtime over one CPU family `store`, whose levels `model` describes. Defaults: a
    /// 1 s target (set the real one with [`Runtime::with_requirements`]) and the `dofa`
    /// policy.
    pub fn new(store: FamilyStore, model: LevelTable) -> Result<Self> {
        Runtime::on_processors(vec![ProcessorFamily { family: Box::new(store), model }])
    }

    /// A runtime over families on several processors (their order is the order policies
    /// see them in; `dofa` runs the first). Defaults as [`Runtime::new`].
    pub fn on_processors(families: Vec<ProcessorFamily>) -> Result<Self> {
        if families.is_empty() {
            return Err(Error::invalid("families", "none", "at least one family"));
        }
        for f in &families {
            if f.model.levels() != f.family.len() {
                return Err(Error::invalid(
                    format!("{} family model", f.model.device),
                    format!("{} levels", f.model.levels()),
                    format!("{} levels, as the family loaded", f.family.len()),
                ));
            }
            if f.model.processor != f.family.processor() {
                return Err(Error::invalid(
                    format!("{} family", f.model.device),
                    format!("a {} family", f.model.processor),
                    format!("a {} family (the processor it is loaded on)", f.family.processor()),
                ));
            }
            f.model.check_order()?;
        }
        for (i, f) in families.iter().enumerate() {
            if families[..i].iter().any(|g| g.model.device == f.model.device) {
                return Err(Error::invalid("families", &f.model.device, "one family per processor"));
            }
        }
        let frames_per_level = families.iter().map(|f| vec![0; f.family.len()]).collect();
        let (families, models) = families.into_iter().map(|f| (f.family, f.model)).unzip();
        Ok(Runtime {
            families,
            models,
            current: Configuration { device: 0, level: 0, threads: 1 },
            requirements: Requirements::latency(1000.0)?,
            policy: Box::new(Dofa::default()),
            monitor: SystemMonitor::start(Duration::from_millis(100)),
            recent: LatencyWindow::new(100, 0.1),
            observers: Vec::new(),
            stats: Stats { frames_per_level, ..Stats::default() },
            started: Instant::now(),
            started_policy: false,
            input: Vec::new(),
            logits: Vec::new(),
        })
    }

    /// Loads a CPU family file (and its per-level BatchNorm file) onto `supernet`, running
    /// on up to `max_threads` threads.
    pub fn from_family_file(supernet: &Supernet, family: &Path, max_threads: usize) -> Result<Self> {
        Runtime::from_family(supernet, FamilyFile::read(family)?, family, max_threads)
    }

    /// [`Runtime::from_family_file`] for a family file already read (`family` names it in
    /// errors; a BatchNorm file is looked for beside it).
    pub fn from_family(supernet: &Supernet, file: FamilyFile, family: &Path, max_threads: usize) -> Result<Self> {
        let cpu = ProcessorFamily::load(supernet, file, family, &Placement::Cpu { threads: max_threads }, "cpu")?;
        Runtime::on_processors(vec![cpu])
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

    /// The first family's level table (after [`Runtime::calibrate`], with measured idle
    /// latencies); [`Runtime::level_tables`] has every processor's.
    pub fn level_table(&self) -> &LevelTable {
        &self.models[0]
    }

    /// Each processor's family model, in the runtime's order.
    pub fn level_tables(&self) -> &[LevelTable] {
        &self.models
    }

    /// Bytes of weights each processor's family holds there, in the runtime's order.
    pub fn memory_bytes(&self) -> Vec<usize> {
        self.families.iter().map(|f| f.memory_bytes()).collect()
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

    /// The most threads the runtime may use on the CPU (1 without a CPU family).
    pub fn max_threads(&self) -> usize {
        self.families.iter().map(|f| f.max_threads()).max().unwrap_or(1)
    }

    /// Runs every level of every family once (on a GPU this compiles the kernels), so
    /// that no frame pays for a first run; returns the seconds each family took.
    pub fn warm_up(&mut self) -> Result<Vec<f64>> {
        self.families.iter_mut().map(|f| Ok(f.warm_up()?.iter().sum())).collect()
    }

    /// Measures every level's idle latency on every processor and thread count into the
    /// models, calling `progress(done, total)` (forwards). Run it while the machine is
    /// idle: the policies scale from these values.
    ///
    /// Every configuration runs once per round, in the same order, after one untimed
    /// round, so that a slow phase of the machine touches them all alike; each timed
    /// forward follows [`SUSTAIN`] of untimed ones of the same configuration, so that it
    /// runs as it does frame after frame (caches warm; on a 2-vCPU VM one thread ran a
    /// level in 20 ms right after two-thread work and in 30–35 ms frame after frame);
    /// each latency is the median of its rounds. After `iters` rounds, while some configuration's samples
    /// spread too widely to trust (interquartile range over [`NOISY_SPREAD`] of the
    /// median), rounds go on, up to twice `iters`: the returned [`Calibration`] says so.
    pub fn calibrate_with(&mut self, iters: usize, mut progress: impl FnMut(usize, usize)) -> Result<Calibration> {
        let configs: Vec<Configuration> = self
            .families
            .iter()
            .enumerate()
            .flat_map(|(device, f)| (0..f.len()).flat_map(move |level| (1..=f.max_threads()).map(move |threads| Configuration { device, level, threads })))
            .collect();
        let saved: Vec<(usize, usize)> = self.families.iter().map(|f| (f.active(), f.threads())).collect();
        let current = self.current;
        let (min_rounds, max_rounds) = (iters.max(1), 2 * iters.max(1));
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
        let mut total = configs.len() * (1 + min_rounds);
        let mut done = 0;
        let mut rounds = 0;
        // Round 0 is the untimed warm-up.
        for round in 0..=max_rounds {
            if round > min_rounds && spreads(&samples).into_iter().all(|s| s <= NOISY_SPREAD) {
                break;
            }
            if round > min_rounds {
                total += configs.len();
            }
            for (i, &config) in configs.iter().enumerate() {
                let warm = Instant::now();
                while self.time_forward(config)? >= 0.0 && warm.elapsed() < SUSTAIN {}
                let ms = self.time_forward(config)?;
                if round > 0 {
                    samples[i].push(ms);
                }
                done += 1;
                progress(done, total);
            }
            rounds = round;
        }
        for (&config, samples) in configs.iter().zip(&samples) {
            self.models[config.device].set_latency(config.level, config.threads, stats::median(samples))?;
        }
        for (family, (level, threads)) in self.families.iter_mut().zip(saved) {
            family.switch_to(level)?;
            family.set_threads(threads)?;
        }
        self.current = current;
        let worst = spreads(&samples).into_iter().fold(0.0, f64::max);
        Ok(Calibration { rounds, extended: rounds > min_rounds, worst_spread: worst, trusted: worst <= NOISY_SPREAD })
    }

    /// [`Runtime::calibrate_with`] without progress.
    pub fn calibrate(&mut self, iters: usize) -> Result<Calibration> {
        self.calibrate_with(iters, |_, _| {})
    }

    /// One forward of `config` on a blank input at its level's resolution, in ms (the
    /// configuration stays set; the next frame's policy decision sets its own).
    pub fn time_forward(&mut self, config: Configuration) -> Result<f64> {
        self.apply(Decision::new(config, Reason::Hold))?;
        let family = &mut self.families[config.device];
        let r = family.level_config(config.level).resolution();
        self.input.clear();
        self.input.resize(3 * r * r, 0.0);
        let input = Array { shape: vec![1, 3, r, r], data: std::mem::take(&mut self.input) };
        let start = Instant::now();
        let output = family.forward(&input);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        self.input = input.data;
        output?;
        Ok(ms)
    }

    /// Starts afresh with `policy` and `requirements`, as a new runtime over the same
    /// loaded families would (statistics, clock and frame numbers reset; the models keep
    /// their calibrated latencies).
    pub fn restart(&mut self, policy: Box<dyn Policy>, requirements: Requirements) -> Result<()> {
        self.requirements = requirements.validated()?;
        self.policy = policy;
        self.started_policy = false;
        self.recent = LatencyWindow::new(100, 0.1);
        self.stats = Stats { frames_per_level: self.families.iter().map(|f| vec![0; f.len()]).collect(), ..Stats::default() };
        self.started = Instant::now();
        Ok(())
    }

    /// Runs one frame on the current configuration, then lets the policy choose the next.
    /// Models without a latency for every level and thread count are calibrated first.
    pub fn infer(&mut self, frame: &Frame) -> Result<Inference> {
        let max_threads = self.max_threads();
        if !self.started_policy {
            if !self.families.iter().zip(&self.models).all(|(f, m)| m.is_complete(f.max_threads())) {
                self.calibrate(3)?;
            }
            let first = self.policy.start(&self.models, &self.requirements, max_threads);
            self.apply(first)?;
            self.started_policy = true;
        }
        let config = self.current;
        let family = &mut self.families[config.device];
        let r = family.level_config(config.level).resolution();
        frame.to_input(r, &mut self.input);
        let input = Array { shape: vec![1, 3, r, r], data: std::mem::take(&mut self.input) };
        let start = Instant::now();
        let output = family.forward(&input);
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        self.input = input.data;
        self.logits = output?.data;
        let (class, score) = best_class(&self.logits);

        let system = self.monitor.latest();
        self.stats.frames += 1;
        let observation = Observation {
            frame: self.stats.frames,
            t_s: self.started.elapsed().as_secs_f64(),
            config,
            latency_ms,
            system,
            requirements: &self.requirements,
            models: &self.models,
            max_threads,
        };
        let decision = self.policy.decide(&observation);
        let t_s = observation.t_s;
        let switch_us = if decision.config != config { self.apply(decision)? } else { 0.0 };

        let model = &self.models[config.device];
        let result = Inference {
            frame: self.stats.frames,
            t_s,
            class,
            score,
            device: model.device.clone(),
            config,
            level: config.level,
            threads: config.threads,
            acc_pred: model.accuracy[config.level],
            latency_ms,
            latency_pred_ms: model.predict(config.level, config.threads),
            target_ms: self.requirements.target_ms,
            decision,
            next_device: self.models[self.current.device].device.clone(),
            switch_us,
            system,
        };
        self.record(&result);
        Ok(result)
    }

    /// Switches to `decision` (the processor's family to its level and thread count);
    /// returns the time it took in µs.
    fn apply(&mut self, decision: Decision) -> Result<f64> {
        let start = Instant::now();
        let Configuration { device, level, threads } = decision.config;
        let family = self.families.get_mut(device).ok_or_else(|| Error::invalid("processor", device, "a family of the runtime"))?;
        family.switch_to(level)?;
        let threads = threads.clamp(1, family.max_threads());
        family.set_threads(threads)?;
        self.current = Configuration { device, level, threads };
        Ok(start.elapsed().as_secs_f64() * 1e6)
    }

    fn record(&mut self, result: &Inference) {
        let stats = &mut self.stats;
        let n = stats.frames as f64;
        stats.mean_latency_ms += (result.latency_ms - stats.mean_latency_ms) / n;
        stats.mean_accuracy += (result.acc_pred - stats.mean_accuracy) / n;
        stats.frames_per_level[result.config.device][result.config.level] += 1;
        self.recent.push(result.latency_ms);
        stats.recent_mean_ms = self.recent.mean().unwrap_or(0.0);
        stats.recent_p95_ms = self.recent.p95().unwrap_or(0.0);
        stats.smoothed_ms = self.recent.smoothed().unwrap_or(0.0);
        if result.over_target() {
            stats.violations += 1;
            let event = Event::Violation { frame: result.frame, config: result.config, latency_ms: result.latency_ms, target_ms: result.target_ms };
            self.emit(&event);
        }
        if result.decision.config != result.config {
            let stats = &mut self.stats;
            stats.switches += 1;
            stats.mean_switch_us += (result.switch_us - stats.mean_switch_us) / stats.switches as f64;
            let event = Event::Switch {
                frame: result.frame,
                from: result.config,
                to: result.decision.config,
                reason: result.decision.reason,
                overhead_us: result.switch_us,
            };
            self.emit(&event);
        }
    }

    fn emit(&mut self, event: &Event) {
        for observer in &mut self.observers {
            observer.on_event(event);
        }
    }
}

/// How long a configuration runs untimed before each timed forward of the calibration.
pub const SUSTAIN: Duration = Duration::from_millis(40);

/// Samples spreading more than this (interquartile range over the median) make
/// [`Runtime::calibrate_with`] go on measuring.
pub const NOISY_SPREAD: f64 = 0.15;

/// How the idle calibration went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Timed rounds (each configuration once per round).
    pub rounds: usize,
    /// Whether it ran past the rounds asked for because the samples were too noisy.
    pub extended: bool,
    /// The widest interquartile range over median of a configuration's samples.
    pub worst_spread: f64,
    /// Whether every configuration's samples were within [`NOISY_SPREAD`] in the end.
    pub trusted: bool,
}

/// Each sample set's interquartile range over its median (nearest-rank quartiles).
fn spreads(samples: &[Vec<f64>]) -> Vec<f64> {
    samples
        .iter()
        .map(|s| {
            if s.len() < 2 {
                return 0.0;
            }
            let sorted = stats::sorted(s.iter().copied());
            (stats::nearest_rank(&sorted, 0.75) - stats::nearest_rank(&sorted, 0.25)) / stats::median(&sorted).max(f64::MIN_POSITIVE)
        })
        .collect()
}

/// Index and softmax probability of the largest logit.
fn best_class(logits: &[f32]) -> (usize, f32) {
    let (class, &max) = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((0, &0.0));
    let sum: f32 = logits.iter().map(|v| (v - max).exp()).sum();
    (class, 1.0 / sum.max(f32::MIN_POSITIVE))
}
