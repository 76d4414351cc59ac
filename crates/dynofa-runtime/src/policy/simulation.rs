//! Policies against a simulated clock and a synthetic latency model (deterministic).

use super::*;
use crate::requirements::Priority;

/// Two cores; five levels whose idle latency on one thread is below, and 0.6 of it on two.
fn model() -> FamilyModel {
    let one = [4.0, 6.0, 9.0, 13.0, 20.0];
    FamilyModel {
        accuracy: vec![0.74, 0.76, 0.78, 0.79, 0.80],
        latency_ms: one.iter().map(|&ms| vec![Some(ms), Some(ms * 0.6)]).collect(),
    }
}

const CORES: usize = 2;

/// A machine where `load(t)` busy threads compete with ours under fair sharing, with a
/// ±`noise` deterministic jitter.
struct Machine {
    model: FamilyModel,
    load: Box<dyn Fn(f64) -> f64>,
    noise: f64,
    seed: u64,
}

/// One simulated frame.
#[derive(Debug, Clone, Copy)]
struct Frame {
    t_s: f64,
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

    /// Runs `frames` frames under `policy` and `requirements`.
    fn run(&mut self, policy: &mut dyn Policy, requirements: &Requirements, frames: usize) -> Vec<Frame> {
        let mut decision = policy.start(&self.model, requirements, CORES);
        let mut t_s = 0.0;
        let mut out = Vec::with_capacity(frames);
        for frame in 1..=frames {
            let (level, threads) = (decision.level, decision.threads);
            let load = (self.load)(t_s);
            let slowdown = ((threads as f64 + load) / CORES as f64).max(1.0);
            let latency_ms = self.model.predict(level, threads).unwrap() * slowdown * self.jitter();
            // What the OS would report: the share the load got while we competed.
            let others_cpu = if load + threads as f64 > CORES as f64 { load * CORES as f64 / (load + threads as f64) } else { load };
            let system = SystemSample { others_cpu, own_cpu: threads as f64, allowed_cores: CORES, ..SystemSample::default() };
            t_s += latency_ms / 1e3;
            let observation = Observation { frame: frame as u64, t_s, level, threads, latency_ms, system, requirements, model: &self.model, max_threads: CORES };
            decision = policy.decide(&observation);
            out.push(Frame { t_s, level, threads, latency_ms, decision });
        }
        out
    }
}

fn step_load(from_s: f64, to_s: f64, threads: f64) -> Box<dyn Fn(f64) -> f64> {
    Box::new(move |t| if (from_s..to_s).contains(&t) { threads } else { 0.0 })
}

fn switches(frames: &[Frame]) -> usize {
    frames.windows(2).filter(|w| (w[0].level, w[0].threads) != (w[1].level, w[1].threads)).count()
}

#[test]
fn predictive_answers_a_load_step_within_five_frames_and_climbs_back() {
    let mut machine = Machine { model: model(), load: step_load(2.0, 5.0, 2.0), noise: 0.03, seed: 7 };
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
        let mut machine = Machine { model: model(), load: Box::new(|_| 1.0), noise: 0.06, seed };
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
    let mut machine = Machine { model: model(), load: step_load(1.0, 100.0, 2.0), noise: 0.0, seed: 1 };
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 800);
    let settled = &frames[frames.iter().position(|f| f.t_s >= 1.5).unwrap()..];
    assert!(settled.iter().all(|f| f.level >= 3), "the floor (level 3+) holds");
    assert!(settled.iter().all(|f| f.latency_ms <= 20.5));

    // When accuracy wins and the floor cannot meet the target, the floor still holds.
    let requirements = Requirements { target_ms: 5.0, min_accuracy: Some(0.79), priority: Priority::Accuracy };
    let mut machine = Machine { model: model(), load: Box::new(|_| 0.0), noise: 0.0, seed: 1 };
    let frames = machine.run(&mut Predictive::new(PredictiveOptions::default()), &requirements, 200);
    assert!(frames[10..].iter().all(|f| f.level == 3), "the fastest level that keeps the floor");
}

#[test]
fn no_level_meets_the_target_runs_the_fastest_and_reports_it() {
    let requirements = Requirements::latency(1.0).unwrap();
    let mut machine = Machine { model: model(), load: step_load(0.0, 100.0, 2.0), noise: 0.02, seed: 3 };
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
    let mut machine = Machine { model: model(), load: step_load(1.0, 4.0, 2.0), noise: 0.0, seed: 1 };
    let frames = machine.run(&mut Dofa::default(), &requirements, 1000);
    let downs: Vec<&Frame> = frames.iter().filter(|f| f.decision.reason == Reason::Down).collect();
    assert!(!downs.is_empty());
    // Each step is one level, and at least warm-up + window frames apart.
    assert!(downs.iter().all(|f| f.decision.level + 1 == f.level));
    let at: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.decision.reason == Reason::Down).map(|(i, _)| i).collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] >= 40), "{at:?}");
    assert!(frames.iter().all(|f| f.threads == CORES && f.decision.reason != Reason::Up));
    // Without a floor it stays down after the load.
    assert!(frames.last().unwrap().level < 4);

    // With a floor it climbs back (one level per settle period) once the load is gone.
    let requirements = Requirements { target_ms: 15.0, min_accuracy: Some(0.80), priority: Priority::Latency };
    let mut machine = Machine { model: model(), load: step_load(1.0, 4.0, 2.0), noise: 0.0, seed: 1 };
    let frames = machine.run(&mut Dofa::default(), &requirements, 3000);
    assert_eq!(frames.last().unwrap().level, 4);
}

#[test]
fn policies_by_name() {
    assert_eq!(by_name("dofa", 5).unwrap().name(), "dofa");
    assert_eq!(by_name("predictive", 5).unwrap().name(), "predictive");
    assert_eq!(by_name("static:largest", 5).unwrap().name(), "static:4");
    assert_eq!(by_name("static:1", 5).unwrap().name(), "static:1");
    for bad in ["static:9", "static:x", "fast", ""] {
        let err = by_name(bad, 5).err().unwrap().to_string();
        assert!(err.contains("policy"), "{bad}: {err}");
    }
}

