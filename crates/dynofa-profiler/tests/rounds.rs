//! The estimator on a synthetic machine (no real timing): slow phases of seconds, bursts
//! and jitter injected into a simulated clock; the true costs are known.

use dynofa_profiler::Result;
use dynofa_profiler::rounds::{Bench, RoundOptions, Stop, median, run_rounds};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the synthetic machine misbehaves.
#[derive(Clone, Copy)]
struct Noise {
    /// Uniform jitter of every timing, ± this share.
    jitter: f64,
    /// Share of the time spent in slow phases (0: none).
    slow_share: f64,
    /// Slow phases slow everything by 1.3–2.0×, and the items (not the canary) by this
    /// much more: a phase that hits the network harder than the canary.
    item_extra: f64,
    /// Chance that one timing is hit by a burst (2–4× slower).
    bursts: f64,
}

const QUIET: Noise = Noise { jitter: 0.002, slow_share: 0.0, item_extra: 0.0, bursts: 0.0 };
const NOISY: Noise = Noise { jitter: 0.01, slow_share: 0.4, item_extra: 0.15, bursts: 0.05 };

/// A machine with a simulated clock: items of known cost (per component), one canary per
/// group of items.
struct Synthetic {
    costs: Vec<Vec<f64>>,
    groups: Vec<usize>,
    canary_ms: Vec<f64>,
    /// Per item: extra jitter (an item that will not settle).
    item_jitter: Vec<f64>,
    noise: Noise,
    clock_ms: f64,
    /// Phases: (end, slowdown), generated as the clock advances.
    phases: Vec<(f64, f64)>,
    rng: ChaCha8Rng,
    timed: Vec<usize>,
}

impl Synthetic {
    fn new(costs: Vec<Vec<f64>>, groups: Vec<usize>, canary_ms: Vec<f64>, noise: Noise, seed: u64) -> Self {
        let n = costs.len();
        Synthetic {
            costs,
            groups,
            canary_ms,
            item_jitter: vec![0.0; n],
            noise,
            clock_ms: 0.0,
            phases: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            timed: vec![0; n],
        }
    }

    /// The slowdown at the current time (1 in quiet phases).
    fn slowdown(&mut self) -> f64 {
        while self.phases.last().is_none_or(|&(end, _)| end <= self.clock_ms) {
            // Quiet and slow phases alternate; a slow one lasts 0.5–3 s, a quiet one long
            // enough that slow ones take `slow_share` of the time on average.
            let start = self.phases.last().map_or(0.0, |p| p.0);
            let slow = self.noise.slow_share > 0.0 && self.phases.last().is_some_and(|p| p.1 == 1.0);
            let (factor, ms) = if slow {
                (self.rng.random_range(1.3..2.0), self.rng.random_range(500.0..3000.0))
            } else {
                (1.0, self.rng.random_range(500.0..3000.0) * (1.0 - self.noise.slow_share) / self.noise.slow_share.max(1e-9))
            };
            self.phases.push((start + ms, factor));
        }
        self.phases.last().unwrap().1
    }

    /// One timing of something costing `ms` under the current conditions.
    fn take(&mut self, ms: f64, slowdown: f64, burst: f64, jitter: f64) -> f64 {
        let taken = ms * slowdown * burst * (1.0 + self.rng.random_range(-jitter..=jitter));
        self.clock_ms += taken;
        taken
    }

    fn burst(&mut self) -> f64 {
        if self.rng.random_bool(self.noise.bursts) { self.rng.random_range(2.0..4.0) } else { 1.0 }
    }
}

impl Bench for Synthetic {
    fn items(&self) -> usize {
        self.costs.len()
    }
    fn canary_of(&self, item: usize) -> usize {
        self.groups[item]
    }
    fn time_item(&mut self, item: usize) -> Result<Vec<f64>> {
        self.timed[item] += 1;
        let s = self.slowdown();
        let s = if s > 1.0 { s * (1.0 + self.noise.item_extra) } else { s };
        let burst = self.burst();
        let jitter = self.noise.jitter + self.item_jitter[item];
        Ok(self.costs[item].clone().into_iter().map(|ms| self.take(ms, s, burst, jitter)).collect())
    }
    fn time_canary(&mut self, canary: usize) -> Result<f64> {
        let (s, burst, jitter) = (self.slowdown(), self.burst(), self.noise.jitter);
        Ok(self.take(self.canary_ms[canary], s, burst, jitter))
    }
    fn elapsed_s(&self) -> f64 {
        self.clock_ms / 1e3
    }
}

/// 40 items of 3 components (1–40 ms each), two canaries (two thread counts, say).
fn machine(noise: Noise, seed: u64) -> Synthetic {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let costs: Vec<Vec<f64>> = (0..40).map(|_| (0..3).map(|_| rng.random_range(1.0..40.0)).collect()).collect();
    let groups = (0..40).map(|i| i % 2).collect();
    Synthetic::new(costs, groups, vec![2.0, 1.2], noise, seed)
}

fn worst_error(bench: &Synthetic, estimate: impl Fn(usize) -> f64) -> f64 {
    (0..bench.costs.len()).map(|i| (estimate(i) / bench.costs[i].iter().sum::<f64>() - 1.0).abs()).fold(0.0, f64::max)
}

#[test]
fn phases_and_bursts_cost_the_estimates_less_than_two_percent() {
    for seed in 0..3 {
        let mut bench = machine(NOISY, seed);
        let options = RoundOptions { max_rounds: 30, ..RoundOptions::default() };
        let outcome = run_rounds(&mut bench, &options, &mut |_, _, _| {}, &mut || {}).unwrap();
        let worst = worst_error(&bench, |i| outcome.estimates[i].total_ms);
        assert!(worst <= 0.02, "seed {seed}: worst total off by {:.2}%", worst * 100.0);
        // Each component too (the tables are made of them).
        for (i, e) in outcome.estimates.iter().enumerate() {
            for (got, want) in e.components_ms.iter().zip(&bench.costs[i]) {
                assert!((got / want - 1.0).abs() <= 0.02, "seed {seed}, item {i}: component {got} vs {want}");
            }
        }
        // The noise is real: the canaries saw it.
        assert!(outcome.canaries.iter().all(|c| c.slow_share > 0.2 && c.spread > 1.3), "{:?}", outcome.canaries);
    }
}

#[test]
fn without_the_canary_the_same_noise_costs_far_more() {
    // The same machine timed item after item with a plain median: what the canary and
    // the quiet rounds buy (this also shows the noise above can fail the estimator).
    let mut bench = machine(NOISY, 0);
    let naive: Vec<f64> = (0..bench.costs.len()).map(|i| median(&(0..14).map(|_| bench.time_item(i).unwrap().iter().sum()).collect::<Vec<f64>>())).collect();
    let worst = worst_error(&bench, |i| naive[i]);
    assert!(worst > 0.2, "naive worst {:.1}%", worst * 100.0);

    // Scaling by the canary without keeping to the quiet rounds leaves the phases that
    // hit the item harder than the canary: also worse than two percent.
    let mut bench = machine(NOISY, 0);
    let options = RoundOptions { quiet_tolerance: 10.0, ..RoundOptions::default() };
    let outcome = run_rounds(&mut bench, &options, &mut |_, _, _| {}, &mut || {}).unwrap();
    let worst = worst_error(&bench, |i| outcome.estimates[i].total_ms);
    assert!(worst > 0.02, "every round kept: worst {:.2}%", worst * 100.0);
}

#[test]
fn a_quiet_machine_stops_after_the_minimum_rounds() {
    let mut bench = machine(QUIET, 1);
    let outcome = run_rounds(&mut bench, &RoundOptions::default(), &mut |_, _, _| {}, &mut || {}).unwrap();
    assert_eq!((outcome.stop, outcome.rounds), (Stop::Settled, RoundOptions::default().min_rounds));
    assert!(outcome.uncertain.is_empty());
    assert!(worst_error(&bench, |i| outcome.estimates[i].total_ms) <= 0.005);
    // One warm-up timing and the minimum rounds, for every item.
    assert!(bench.timed.iter().all(|&t| t == 1 + RoundOptions::default().min_rounds), "{:?}", bench.timed);
    assert!(outcome.canaries.iter().all(|c| c.slow_share == 0.0));
}

#[test]
fn jittery_items_get_more_rounds_until_they_settle() {
    let mut bench = machine(QUIET, 2);
    bench.item_jitter[7] = 0.15;
    let mut reported = Vec::new();
    let options = RoundOptions { max_rounds: 200, ..RoundOptions::default() };
    let outcome = run_rounds(&mut bench, &options, &mut |round, left, _| reported.push((round, left)), &mut || {}).unwrap();
    assert_eq!(outcome.stop, Stop::Settled);
    assert!(outcome.rounds > RoundOptions::default().min_rounds, "{}", outcome.rounds);
    // Only item 7 kept being timed after the minimum.
    assert!(bench.timed[7] > bench.timed[6] && bench.timed.iter().enumerate().all(|(i, &t)| i == 7 || t == 1 + RoundOptions::default().min_rounds));
    assert!(outcome.estimates[7].ci <= 0.02 && (outcome.estimates[7].total_ms / bench.costs[7].iter().sum::<f64>() - 1.0).abs() <= 0.02);
    assert_eq!(reported.last(), Some(&(outcome.rounds, 0)));
}

#[test]
fn the_budget_stops_the_rounds_and_names_what_stayed_uncertain() {
    let mut bench = machine(QUIET, 3);
    bench.item_jitter[3] = 0.6;
    bench.item_jitter[11] = 0.6;
    // Each round of the unsettled items takes well under a second of simulated time.
    let options = RoundOptions { budget_s: 30.0, max_rounds: 1000, ..RoundOptions::default() };
    let outcome = run_rounds(&mut bench, &options, &mut |_, _, _| {}, &mut || {}).unwrap();
    assert_eq!(outcome.stop, Stop::Budget);
    assert_eq!(outcome.uncertain, vec![3, 11]);
    assert!(bench.elapsed_s() >= 30.0 && bench.elapsed_s() < 30.5, "{}", bench.elapsed_s());
    // And the round limit.
    let mut bench = machine(QUIET, 3);
    bench.item_jitter[3] = 0.6;
    let options = RoundOptions { max_rounds: 9, ..RoundOptions::default() };
    let outcome = run_rounds(&mut bench, &options, &mut |_, _, _| {}, &mut || {}).unwrap();
    assert_eq!((outcome.stop, outcome.rounds, outcome.uncertain.clone()), (Stop::MaxRounds, 9, vec![3]));
}

#[test]
fn settings_that_cannot_measure_are_refused() {
    let mut bench = machine(QUIET, 0);
    for (options, field) in [
        (RoundOptions { min_rounds: 2, ..RoundOptions::default() }, "minimum rounds"),
        (RoundOptions { max_rounds: 5, ..RoundOptions::default() }, "maximum rounds"),
        (RoundOptions { budget_s: 0.0, ..RoundOptions::default() }, "budget"),
    ] {
        let err = run_rounds(&mut bench, &options, &mut |_, _, _| {}, &mut || {}).unwrap_err();
        assert!(matches!(&err, dynofa_profiler::Error::InvalidValue { field: f, .. } if f == field), "{err}");
    }
    bench.canary_ms[0] = 0.0;
    let err = run_rounds(&mut bench, &RoundOptions::default(), &mut |_, _, _| {}, &mut || {}).unwrap_err();
    assert!(matches!(&err, dynofa_profiler::Error::InvalidValue { field, .. } if field == "canary reading"), "{err}");
}
