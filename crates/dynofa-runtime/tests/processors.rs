//! The runtime across processors: one family on the CPU and the same levels on the GPU
//! (lavapipe in CI); frames switched between them mid-run give the same logits for the
//! same level on either, and a switch of processor costs what a switch of level costs.

use burn::prelude::*;
use dynofa_device::Processor;
use dynofa_runtime::level_table::LevelTable;
use dynofa_runtime::policy::{Observation, Policy};
use dynofa_runtime::{Configuration, Decision, Frame, ProcessorFamily, Reason, Requirements, Runtime};
use dynofa_slice::{FamilyStore, GpuFamily};
use dynofa_supernet::{SubnetConfig, load_checkpoint};

/// Walks the four (processor, level) pairs in Gray-code order: every switch changes either
/// the processor or the level.
struct Alternate;

impl Policy for Alternate {
    fn name(&self) -> String {
        "alternate".into()
    }

    fn start(&mut self, _: &[LevelTable], _: &Requirements, _: usize) -> Decision {
        Decision::new(Configuration { device: 0, level: 0, threads: 1 }, Reason::Start)
    }

    fn decide(&mut self, o: &Observation) -> Decision {
        let n = o.frame as usize % 4;
        let gray = n ^ (n >> 1);
        Decision::new(Configuration { device: gray & 1, level: gray >> 1, threads: 1 }, Reason::Hold)
    }
}

/// What the policies know of `levels` on `device`: made-up accuracies and latencies (a
/// complete model, so that the runtime does not calibrate).
fn model(device: &str, processor: Processor, levels: usize) -> LevelTable {
    LevelTable {
        device: device.into(),
        processor,
        accuracy: (0..levels).map(|l| 0.7 + 0.01 * l as f64).collect(),
        latency_ms: (0..levels).map(|l| vec![Some(10.0 + l as f64)]).collect(),
    }
}

#[test]
fn switching_processor_mid_run_keeps_the_logits_of_each_level() {
    let Some(gpu) = dynofa_golden::gpu("switching_processor_mid_run_keeps_the_logits_of_each_level") else { return };
    let (cases, tol) = dynofa_golden::cases();
    let w12 = cases.iter().find(|c| c.net == "w12").unwrap();
    let supernet = load_checkpoint(&w12.checkpoint_path(), &Device::flex()).unwrap();
    let levels: Vec<SubnetConfig> = ["smallest_r160", "middle_r192"]
        .iter()
        .map(|name| SubnetConfig::from_spec(&format!("{}/../../assets/subnets/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .collect();
    let cpu = ProcessorFamily { family: Box::new(FamilyStore::new(&supernet, &levels, 1).unwrap()), model: model("cpu", Processor::Cpu, 2) };
    let gpu = ProcessorFamily { family: Box::new(GpuFamily::new(&supernet, &levels, &[], &gpu).unwrap()), model: model("gpu:0", Processor::Gpu, 2) };
    let mut runtime = Runtime::on_processors(vec![cpu, gpu]).unwrap().with_policy(Box::new(Alternate));
    let seconds = runtime.warm_up().unwrap();
    eprintln!("warm-up: cpu {:.2} s, gpu {:.2} s", seconds[0], seconds[1]);

    let pixels: Vec<u8> = (0..320 * 240 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let frame = Frame::rgb(320, 240, &pixels).unwrap();
    // Logits per (processor, level), and the switch times by kind.
    let mut seen: Vec<((usize, usize), Vec<f32>)> = Vec::new();
    let (mut processor_switches, mut level_switches) = (Vec::new(), Vec::new());
    for _ in 0..12 {
        let result = runtime.infer(&frame).unwrap();
        assert_eq!(result.device, ["cpu", "gpu:0"][result.config.device]);
        let logits = runtime.logits().to_vec();
        seen.push(((result.config.device, result.config.level), logits));
        let to = result.decision.config;
        match (to.device != result.config.device, to.level != result.config.level) {
            (true, false) => processor_switches.push(result.switch_us),
            (false, true) => level_switches.push(result.switch_us),
            _ => {}
        }
    }
    for level in 0..2 {
        let on = |device: usize| &seen.iter().find(|(k, _)| *k == (device, level)).unwrap_or_else(|| panic!("level {level} ran on processor {device}")).1;
        let (cpu, gpu) = (on(0), on(1));
        let worst = cpu.iter().zip(gpu).map(|(a, b)| ((a - b).abs() as f64 - tol.rtol * (*a as f64).abs()).max(0.0)).fold(0.0, f64::max);
        assert!(worst <= tol.atol, "level {level}: the CPU's and the GPU's logits differ by {worst} beyond the relative tolerance");
        // Every frame of a level on one processor gives the same logits.
        for device in 0..2 {
            assert!(seen.iter().filter(|(k, _)| *k == (device, level)).all(|(_, l)| l == on(device)), "level {level} on processor {device} repeats");
        }
    }
    assert!(processor_switches.len() >= 5 && level_switches.len() >= 5);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    eprintln!("switches: processor {processor_switches:.2?} µs, level {level_switches:.2?} µs");
    assert!(max(&processor_switches) < 1000.0, "a switch of processor takes under a millisecond once warmed up: {processor_switches:?} µs");
    assert!(max(&level_switches) < 1000.0, "{level_switches:?} µs");
    let stats = runtime.stats();
    assert_eq!(stats.frames_per_level.iter().map(|l| l.iter().sum::<u64>()).collect::<Vec<_>>(), [6, 6]);
}
