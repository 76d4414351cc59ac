//! Policies against a simulated clock and a synthetic latency model (deterministic), on
//! the CPU alone and on a CPU and a GPU.

use super::*;
use crate::requirements::Priority;

/// Two cores; five levels whose idle latency on one thread is below, and 0.6 of it on two.
fn model() -> LevelTable {
    let one = [4.0, 6.0, 9.0, 13.0, 20.0];
    LevelTable {
        device: "cpu".into(),
        processor: Processor::Cpu,
        accuracy: vec![0.74, 0.76, 0.78, 0.79, 0.80],
        latency_ms: one.iter().map(|&ms| vec![Some(ms), Some(ms * 0.6)]).collect(),
    }
}

/// A GPU family: five levels with these accuracies and idle latencies.
fn gpu_model(accuracy: [f64; 5], ms: [f64; 5]) -> LevelTable {
    LevelTable { device: "gpu:0".into(), processor: Processor::Gpu, accuracy: accuracy.to_vec(), latency_ms: ms.iter().map(|&ms| vec![Some(ms)]).collect() }
}

const CORES: usize = 2;

/// A machine where `load(t)` busy threads compete with ours on the CPU under fair sharing,
/// another process takes `gpu_load(t)` of the GPU's time (the GPU's frames run
/// `1 / (1 − share)` slower), with a ±`noise` deterministic jitter.
struct Machine {
    models: Vec<LevelTable>,
    load: Box<dyn Fn(f64) -> f64>,
    gpu_load: Box<dyn Fn(f64) -> f64>,
    noise: f64,
    seed: u64,
}

/// One simulated frame.
#[derive(Debug, Clone, Copy)]
struct Frame {
    t_s: f64,
    device: usize,
    level: usize,
    threads: usize,
    latency_ms: f64,
    decision: Decision,
}

impl Machine {
    fn jitter(&mut self) -> f64 {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        1.0 + self.noise * (2.0 * unit - 1.0)
    }

    /// A CPU-only machine.
    fn cpu(load: Box<dyn Fn(f64) -> f64>, noise: f64, seed: u64) -> Self {
        Machine { models: vec![model()], load, gpu_load: Box::new(|_| 0.0), noise, seed }
    }

    /// Runs `frames` frames under `policy` and `requirements`.
    fn run(&mut self, policy: &mut dyn Policy, requirements: &Requirements, frames: usize) -> Vec<Frame> {
        let mut decision = policy.start(&self.models, requirements, CORES);
        let mut t_s = 0.0;
        let mut out = Vec::with_capacity(frames);
        for frame in 1..=frames {
            let config = decision.config;
            let Configuration { device, level, threads } = config;
            let load = (self.load)(t_s);
            let slowdown = match self.models[device].processor {
                Processor::Cpu => ((threads as f64 + load) / CORES as f64).max(1.0),
                Processor::Gpu => 1.0 / (1.0 - (self.gpu_load)(t_s)),
            };
            let latency_ms = self.models[device].predict(level, threads).unwrap() * slowdown * self.jitter();
            // What the OS would report: the share the load got while we competed (a GPU
            // frame leaves the cores to the load).
            let ours = if self.models[device].processor == Processor::Cpu { threads as f64 } else { 0.0 };
            let others_cpu = if load + ours > CORES as f64 { load * CORES as f64 / (load + ours) } else { load };
            let system = SystemSample { others_cpu, own_cpu: ours, allowed_cores: CORES, ..SystemSample::default() };
            t_s += latency_ms / 1e3;
            let observation = Observation { frame: frame as u64, t_s, config, latency_ms, system, requirements, models: &self.models, max_threads: CORES };
            decision = policy.decide(&observation);
            out.push(Frame { t_s, device, level, threads, latency_ms, decision });
        }
        out
    }
}

fn step_load(from_s: f64, to_s: f64, threads: f64) -> Box<dyn Fn(f64) -> f64> {
    Box::new(move |t| if (from_s..to_s).contains(&t) { threads } else { 0.0 })
}

fn switches(frames: &[Frame]) -> usize {
    frames.windows(2).filter(|w| (w[0].device, w[0].level, w[0].threads) != (w[1].device, w[1].level, w[1].threads)).count()
}

#[test]
fn predictive_answers_a_load_step_within_five_frames_and_climbs_back() {
    let mut machine = Machine::cpu(step_load(2.0, 5.0, 2.0), 0.03, 7);
    let requirements = Requirements::latency(15.0).unwrap();
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 1500);
    let top = frames[..50].iter().map(|f| f.level).max().unwrap();
    assert_eq!(top, 4, "idle: the largest level fits (12 ms on two threads)");
    let onset = frames.iter().position(|f| f.t_s >= 2.0).unwrap();
    let back = frames[onset..].iter().position(|f| f.latency_ms <= 15.0).unwrap();
    assert!(back < 5, "back under target {back} frames after the onset");
    let end = frames.iter().position(|f| f.t_s >= 5.0).unwrap();
    let during = &frames[onset + 5..end];
    let over = during.iter().filter(|f| f.latency_ms > 15.0).count();
    assert!(over * 20 <= during.len(), "{over} of {} frames over target under load", during.len());
    assert!(during.iter().all(|f| f.level >= 2), "level 2 on two threads fits the load (10.8 ms)");
    let climbed = frames[end..].iter().find(|f| f.level == 4).expect("back to the top level");
    assert!(climbed.t_s - 5.0 < 1.0, "top level again {:.3} s after the load", climbed.t_s - 5.0);
}

#[test]
fn predictive_does_not_oscillate_at_a_steady_load_near_a_boundary() {
    // One busy thread: two threads run 1.5× slower, one thread not at all. Level 3 on one
    // thread (13 ms) sits 13% under a 15 ms target, level 4 is far over it: only noise
    // could make the policy move, and the hysteresis must absorb it.
    for seed in 1..6 {
        let mut machine = Machine::cpu(Box::new(|_| 1.0), 0.06, seed);
        let requirements = Requirements::latency(15.0).unwrap();
        let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 3000);
        let settled = &frames[100..];
        assert!(switches(settled) <= 2, "seed {seed}: {} switches at a steady load", switches(settled));
        let over = settled.iter().filter(|f| f.latency_ms > 15.0).count();
        assert!(over * 20 <= settled.len(), "seed {seed}: {over} frames over target");
    }
}

#[test]
fn accuracy_floor_holds_when_it_can() {
    // Under a two-thread load, level 2 would do for latency; a 0.79 floor needs level 3,
    // which still fits on one thread (13 × 1.5 = 19.5 ms) only with a 20 ms target.
    let requirements = Requirements { target_ms: 20.5, min_accuracy: Some(0.79), priority: Priority::Latency }.validated().unwrap();
    let mut machine = Machine::cpu(step_load(1.0, 100.0, 2.0), 0.0, 1);
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 800);
    let settled = &frames[frames.iter().position(|f| f.t_s >= 1.5).unwrap()..];
    assert!(settled.iter().all(|f| f.level >= 3), "the floor (level 3+) holds");
    assert!(settled.iter().all(|f| f.latency_ms <= 20.5));

    // When accuracy wins and the floor cannot meet the target, the floor still holds.
    let requirements = Requirements { target_ms: 5.0, min_accuracy: Some(0.79), priority: Priority::Accuracy };
    let mut machine = Machine::cpu(Box::new(|_| 0.0), 0.0, 1);
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 200);
    assert!(frames[10..].iter().all(|f| f.level == 3), "the fastest level that keeps the floor");
}

#[test]
fn no_level_meets_the_target_runs_the_fastest_and_reports_it() {
    let requirements = Requirements::latency(1.0).unwrap();
    let mut machine = Machine::cpu(step_load(0.0, 100.0, 2.0), 0.02, 3);
    for policy in [&mut Predictive::new(PredictiveOptions::default()) as &mut dyn Policy, &mut Dofa::default()] {
        let frames = machine.run(policy, &requirements, 400);
        let last = frames.last().unwrap();
        assert_eq!(last.level, 0, "{}: the smallest level", policy.name());
        assert!(frames.iter().all(|f| f.latency_ms > 1.0));
    }
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 50);
    assert!(frames.iter().any(|f| f.decision.reason == Reason::Infeasible));
}

#[test]
fn dofa_steps_down_one_level_per_window_and_climbs_only_for_the_floor() {
    let requirements = Requirements::latency(15.0).unwrap();
    let mut machine = Machine::cpu(step_load(1.0, 4.0, 2.0), 0.0, 1);
    let frames = machine.run(&mut Dofa::default(), &requirements, 1000);
    let downs: Vec<&Frame> = frames.iter().filter(|f| f.decision.reason == Reason::Down).collect();
    assert!(!downs.is_empty());
    // Each step is one level, and at least warm-up + window frames apart.
    assert!(downs.iter().all(|f| f.decision.config.level + 1 == f.level));
    let at: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.decision.reason == Reason::Down).map(|(i, _)| i).collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] >= 40), "{at:?}");
    assert!(frames.iter().all(|f| f.threads == CORES && f.decision.reason != Reason::Up));
    // Without a floor it stays down after the load.
    assert!(frames.last().unwrap().level < 4);

    // With a floor it climbs back (one level per settle period) once the load is gone.
    let requirements = Requirements { target_ms: 15.0, min_accuracy: Some(0.80), priority: Priority::Latency };
    let mut machine = Machine::cpu(step_load(1.0, 4.0, 2.0), 0.0, 1);
    let frames = machine.run(&mut Dofa::default(), &requirements, 3000);
    assert_eq!(frames.last().unwrap().level, 4);
}

#[test]
fn policies_by_name() {
    let models = [model()];
    assert_eq!(by_name("dofa", &models).unwrap().name(), "dofa");
    assert_eq!(by_name("predictive", &models).unwrap().name(), "predictive");
    assert_eq!(by_name("static:largest", &models).unwrap().name(), "static:4");
    assert_eq!(by_name("static:1", &models).unwrap().name(), "static:1");
    assert_eq!(by_name("static:1@1", &models).unwrap().name(), "static:1@1");
    assert_eq!(by_name("predictive:levels", &models).unwrap().name(), "predictive:levels");
    assert_eq!(by_name("predictive:threads:largest", &models).unwrap().name(), "predictive:threads:4");
    for bad in ["static:1@0", "static:1@x", "predictive:threads:9", "predictive:threads:x", "predictive:both"] {
        let err = by_name(bad, &models).err().unwrap().to_string();
        assert!(err.contains(bad), "{bad}: {err}");
    }
    assert_eq!(by_name("static:cpu:1", &models).unwrap().name(), "static:1");
    for bad in ["static:9", "static:x", "fast", "", "static:gpu:1"] {
        let err = by_name(bad, &models).err().unwrap().to_string();
        assert!(err.contains("policy"), "{bad}: {err}");
    }
    // With a GPU family: `static:DEVICE:LEVEL` pins it; `static:LEVEL` stays the CPU.
    let models = [model(), gpu_model([0.75, 0.77, 0.79, 0.80, 0.81], [3.0, 4.0, 6.0, 8.0, 11.0])];
    assert_eq!(by_name("static:gpu:2", &models).unwrap().name(), "static:gpu:0:2");
    assert_eq!(by_name("static:gpu:0:largest", &models).unwrap().name(), "static:gpu:0:4");
    assert_eq!(by_name("static:3", &models).unwrap().name(), "static:3");
    let err = by_name("static:gpu:1:2", &models).err().unwrap().to_string();
    assert!(err.contains("cpu, gpu:0"), "{err}");
    let mut pinned = by_name("static:gpu:2", &models).unwrap();
    let start = pinned.start(&models, &Requirements::latency(15.0).unwrap(), CORES);
    assert_eq!(start.config, Configuration { device: 1, level: 2, threads: 1 });
    // Started on families without that processor: a configuration the runtime refuses, no panic.
    let start = pinned.start(&models[..1], &Requirements::latency(15.0).unwrap(), CORES);
    assert_eq!(start.config.device, 1);
    // The GPU alone: `static:LEVEL` is its level.
    let gpu_only = &models[1..];
    assert_eq!(by_name("static:3", gpu_only).unwrap().name(), "static:gpu:0:3");
}

/// A CPU and a GPU: the GPU's levels are faster and a little more accurate at the top.
fn cpu_and_gpu(gpu_load: Box<dyn Fn(f64) -> f64>, cpu_load: Box<dyn Fn(f64) -> f64>) -> Machine {
    let gpu = gpu_model([0.75, 0.77, 0.79, 0.80, 0.81], [3.0, 4.0, 6.0, 8.0, 11.0]);
    Machine { models: vec![model(), gpu], load: cpu_load, gpu_load, noise: 0.03, seed: 11 }
}

#[test]
fn predictive_leaves_a_loaded_gpu_for_the_cpu_and_returns_when_it_is_free() {
    // Idle, the GPU's top level (11 ms, 0.81) is the best under 15 ms. From 2 s to 6 s
    // another process takes half the GPU: its levels run twice as slow, so that the best
    // is the CPU's top level on two threads (12 ms, 0.80), ahead of the GPU's level 2 (12 ms, 0.79).
    let mut machine = cpu_and_gpu(step_load(2.0, 6.0, 0.5), Box::new(|_| 0.0));
    let requirements = Requirements::latency(15.0).unwrap();
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 2000);
    assert!(frames[5..50].iter().all(|f| (f.device, f.level) == (1, 4)), "idle: the GPU's top level");
    let onset = frames.iter().position(|f| f.t_s >= 2.0).unwrap();
    let back = frames[onset..].iter().position(|f| f.latency_ms <= 15.0).unwrap();
    assert!(back < 5, "back under target {back} frames after the GPU load started");
    let end = frames.iter().position(|f| f.t_s >= 6.0).unwrap();
    let during = &frames[onset + 5..end];
    let on_cpu = during.iter().filter(|f| (f.device, f.level, f.threads) == (0, 4, 2)).count();
    assert!(on_cpu * 10 >= during.len() * 9, "{on_cpu} of {} frames on the CPU's top level during the GPU load", during.len());
    // Probing the GPU costs a frame over the target now and then, not more.
    let over = during.iter().filter(|f| f.latency_ms > 15.0).count();
    assert!(over * 20 <= during.len(), "{over} of {} frames over target under the GPU load", during.len());
    let returned = frames[end..].iter().find(|f| (f.device, f.level) == (1, 4)).expect("back on the GPU's top level");
    assert!(returned.t_s - 6.0 < 2.0, "on the GPU again {:.3} s after its load", returned.t_s - 6.0);
    assert!(frames[end..].last().is_some_and(|f| f.device == 1));
}

#[test]
fn predictive_moves_to_the_gpu_when_the_cpu_is_loaded() {
    // A slow GPU (its level 2 takes 13 ms): idle, the CPU's top level on two threads wins
    // (12 ms, 0.80). With two busy threads on the CPU from 1 s, the CPU's best fit is level
    // 2 (10.8 ms, 0.78): the GPU's level 2 (13 ms, 0.79) is more accurate.
    let gpu = gpu_model([0.75, 0.77, 0.79, 0.80, 0.81], [6.0, 9.0, 13.0, 18.0, 26.0]);
    let mut machine = Machine { models: vec![model(), gpu], load: step_load(1.0, 100.0, 2.0), gpu_load: Box::new(|_| 0.0), noise: 0.03, seed: 5 };
    let requirements = Requirements::latency(15.0).unwrap();
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 600);
    assert!(frames[5..40].iter().all(|f| (f.device, f.level, f.threads) == (0, 4, 2)), "idle: the CPU's top level on two threads");
    let onset = frames.iter().position(|f| f.t_s >= 1.0).unwrap();
    let settled = &frames[onset + 5..];
    let on_gpu = settled.iter().filter(|f| (f.device, f.level) == (1, 2)).count();
    assert!(on_gpu * 10 >= settled.len() * 9, "{on_gpu} of {} frames on the GPU's level 2 under the CPU load", settled.len());
    assert!(settled.iter().filter(|f| f.latency_ms > 15.0).count() * 20 <= settled.len());
}

#[test]
fn predictive_on_the_gpu_judges_the_cpu_by_the_others_demand() {
    // Two busy threads hold the CPU throughout; the runtime, on the GPU, uses none of it, so
    // the others' share (two cores) is their whole demand: the CPU runs about 2× slower on
    // two threads, not more. From 2 s another process takes 3/4 of the GPU (its levels run
    // 4× slower: level 0 at 12 ms, 0.75): the CPU's level 2 on two threads (10.8 ms, 0.78)
    // is now the best fit.
    let mut machine = cpu_and_gpu(step_load(2.0, 100.0, 0.75), step_load(0.0, 100.0, 2.0));
    let requirements = Requirements::latency(15.0).unwrap();
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 800);
    assert!(frames[5..50].iter().all(|f| (f.device, f.level) == (1, 4)), "the GPU's top level while it is free");
    let onset = frames.iter().position(|f| f.t_s >= 2.0).unwrap();
    let settled = &frames[onset + 10..];
    let on_cpu = settled.iter().filter(|f| (f.device, f.level, f.threads) == (0, 2, 2)).count();
    assert!(on_cpu * 10 >= settled.len() * 9, "{on_cpu} of {} frames on the CPU's level 2 on two threads", settled.len());
}

#[test]
fn dofa_manages_the_first_processor_only() {
    let mut machine = cpu_and_gpu(step_load(0.0, 100.0, 0.5), Box::new(|_| 0.0));
    machine.models.swap(0, 1);
    let requirements = Requirements::latency(15.0).unwrap();
    let frames = machine.run(&mut Dofa::default(), &requirements, 500);
    assert!(frames.iter().all(|f| f.device == 0), "dofa stays on the GPU given first");
    assert!(frames.last().unwrap().level < 4, "and steps down there under its load");
}
