//! The searches: NSGA-II on a problem with a known front, determinism, the paper's
//! family dominated on the Jetson tables, and the error paths.

use dynofa_profiler::LatencyTables;
use dynofa_search::cost::{Cost, LutLatency, Mflops};
use dynofa_search::evolution::{EvolutionOptions, evolve};
use dynofa_search::family::evenly_spaced;
use dynofa_search::nsga2::{Nsga2Options, Objectives, Problem, nsga2};
use dynofa_search::space::{AccuracyVsCost, SearchSpace};
use dynofa_search::{AccuracyPredictor, Error};
use dynofa_supernet::{SubnetConfig, SupernetConfig, Width};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Schaffer's problem on x ∈ {−10.00, …, 10.00}: maximise −x², minimise (x − 2)². The
/// Pareto front is exactly x ∈ [0, 2].
struct Schaffer;

impl Problem for Schaffer {
    type Genome = i32; // x × 100
    type Error = ();
    fn random(&self, rng: &mut ChaCha8Rng) -> i32 {
        rng.random_range(-1000..=1000)
    }
    fn mutate(&self, x: &i32, rng: &mut ChaCha8Rng) -> i32 {
        (x + rng.random_range(-50..=50)).clamp(-1000, 1000)
    }
    fn crossover(&self, a: &i32, b: &i32, rng: &mut ChaCha8Rng) -> i32 {
        if rng.random_bool(0.5) { (a + b) / 2 } else { *a }
    }
    fn evaluate(&self, x: &i32) -> Result<Objectives, ()> {
        let x = *x as f64 / 100.0;
        Ok(Objectives { acc: -x * x, cost: (x - 2.0) * (x - 2.0) })
    }
}

#[test]
fn nsga2_finds_a_known_front_and_is_deterministic() {
    let options = Nsga2Options { population: 60, generations: 60, seed: 7, polish_rounds: 0 };
    let run = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| nsga2(&Schaffer, options, &mut |_, _| {}).unwrap());
    let result = run(2);
    let xs: Vec<i32> = result.front.iter().map(|e| e.genome).collect();
    assert!(xs.iter().all(|&x| (0..=200).contains(&x)), "off the true front: {xs:?}");
    assert!(xs.len() >= 40, "front of {} points", xs.len());
    assert!(xs.iter().min().unwrap() <= &5 && xs.iter().max().unwrap() >= &195, "spread {xs:?}");
    assert_eq!(result.evaluated.len(), 60 * 61);
    // Same seed, other thread count: the same run.
    let again = run(1);
    assert_eq!(again.front, result.front);
}

fn paper_levels() -> Vec<SubnetConfig> {
    let text = std::fs::read_to_string(dynofa_golden::dir().join("paper/dynamic_ofa_gpu_family.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["levels"].as_array().unwrap().iter().map(|l| serde_json::from_value(l["cfg"].clone()).unwrap()).collect()
}

#[test]
fn the_searched_front_dominates_the_papers_family_on_both_jetson_tables() {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let predictor = AccuracyPredictor::load(&dynofa_golden::dir().join("acc_predictor.pth")).unwrap();
    for device in ["jetson_gpu", "jetson_cpu"] {
        let tables = LatencyTables::open(&dynofa_golden::dir().join("lut").join(device)).unwrap();
        let resolutions = tables.tables.keys().copied().collect();
        let cost = LutLatency { name: device.into(), config: config.clone(), tables };
        let space = SearchSpace::new(config.clone(), resolutions).unwrap();
        let problem = AccuracyVsCost { space: &space, predictor: &predictor, cost: &cost };
        let result = nsga2(&problem, Nsga2Options { population: 100, generations: 100, seed: 0, polish_rounds: 50 }, &mut |_, _| {}).unwrap();
        for (i, level) in paper_levels().iter().enumerate() {
            let (acc, ms) = (predictor.predict(level), cost.cost(level).unwrap());
            let best = result.front.iter().filter(|e| e.objectives.cost <= ms).map(|e| e.objectives.acc).fold(f64::NEG_INFINITY, f64::max);
            let cheapest = result.front.iter().filter(|e| e.objectives.acc >= acc).map(|e| e.objectives.cost).fold(f64::INFINITY, f64::min);
            eprintln!(
                "{device} paper level {i}: acc {acc:.4} at {ms:.2} ms; front: +{:.4} acc at ≤ its latency, {:.2} ms (−{:.1}%) for ≥ its acc",
                best - acc,
                cheapest,
                100.0 * (1.0 - cheapest / ms)
            );
            assert!(best >= acc, "{device}: paper level {i} ({acc:.4} at {ms:.2} ms) not dominated (best {best:.4} within its latency)");
        }
        // Levels along the front: increasing cost and accuracy.
        let levels = evenly_spaced(&result.front, 6);
        assert_eq!(levels.len(), 6);
        assert!(levels.windows(2).all(|w| w[0].objectives.cost < w[1].objectives.cost && w[0].objectives.acc < w[1].objectives.acc));
    }
}

#[test]
fn constrained_evolution_meets_its_limit_and_refuses_an_impossible_one() {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let predictor = AccuracyPredictor::load(&dynofa_golden::dir().join("acc_predictor.pth")).unwrap();
    let space = SearchSpace::new(config.clone(), vec![160, 176, 192, 208, 224]).unwrap();
    let cost = Mflops(config.clone());
    let options = EvolutionOptions { generations: 20, ..EvolutionOptions::default() };
    let best = evolve(&space, &predictor, &cost, 300.0, options, &mut |_, _| {}).unwrap();
    assert!(best.cost <= 300.0 && best.acc > 0.5, "{best:?}");
    // 10 MFLOPs: no sub-network is that small — an error naming the limit, not a hang.
    let options = EvolutionOptions { max_tries: 200, ..options };
    match evolve(&space, &predictor, &cost, 10.0, options, &mut |_, _| {}) {
        Err(Error::Infeasible { limit, cheapest, .. }) => assert!(limit == 10.0 && cheapest > 10.0),
        other => panic!("expected infeasible, got {other:?}"),
    }
}

#[test]
fn a_table_missing_a_key_the_search_needs_names_it() {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let predictor = AccuracyPredictor::load(&dynofa_golden::dir().join("acc_predictor.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dynofa_golden::dir().join("lut/jetson_gpu/160_lookup_table.json")).unwrap();
    let mut entries: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let dropped = entries.keys().find(|k| k.starts_with("Logits")).unwrap().clone();
    entries.remove(&dropped);
    std::fs::write(dir.path().join("160_lookup_table.json"), serde_json::to_string(&entries).unwrap()).unwrap();
    let cost = LutLatency { name: "broken".into(), config: config.clone(), tables: LatencyTables::open(dir.path()).unwrap() };
    let space = SearchSpace::new(config, vec![160]).unwrap();
    let problem = AccuracyVsCost { space: &space, predictor: &predictor, cost: &cost };
    let err = nsga2(&problem, Nsga2Options { population: 4, generations: 1, seed: 0, polish_rounds: 0 }, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains(&dropped), "{err}");
}

#[test]
fn measured_latency_is_a_cost_like_the_others_and_is_measured_once() {
    use burn::prelude::*;
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let supernet = config.init(&Device::flex());
    let measured = dynofa_search::cost::MeasuredLatency::new(supernet, dynofa_slice::Placement::Cpu { threads: 1 }, 2);
    let small = SubnetConfig { ks: vec![3; 20], e: vec![3; 20], d: vec![2; 5], r: vec![160] };
    let large = SubnetConfig { ks: vec![7; 20], e: vec![6; 20], d: vec![4; 5], r: vec![224] };
    let (a, b) = (measured.cost(&small).unwrap(), measured.cost(&large).unwrap());
    assert!(a > 0.0 && b > a, "{a} ms vs {b} ms");
    assert_eq!(measured.cost(&small).unwrap(), a, "cached");
    assert!(measured.name().starts_with("measured_ms"));
}
