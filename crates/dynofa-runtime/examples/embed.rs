//! Embedding the runtime in an application: load a family, set a latency target, run
//! frames, watch switches, and tighten the target half-way.
//!
//! `cargo run --release -p dynofa-runtime --example embed [-- FAMILY.ron]`
//! (default: the project's CPU family; the supernet is the seeded, untrained default).

use std::path::PathBuf;

use burn::prelude::*;
use dynofa_runtime::{Event, Frame, Requirements, Runtime, policy};
use dynofa_supernet::{SupernetConfig, Width};

fn main() -> dynofa_runtime::Result<()> {
    let family =
        std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/families/cpu_w12.ron")));
    // A real application loads trained weights with `dynofa_supernet::load_weights`.
    let supernet = SupernetConfig::ofa_mbv3(Width::W12).init(&Device::flex());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = Runtime::from_family_file(&supernet, &family, threads)?;
    let policy = policy::by_name("predictive", runtime.level_tables())?;
    let mut runtime = runtime.with_requirements(Requirements::latency(20.0)?)?.with_policy(policy);
    runtime.calibrate(3)?;
    runtime.add_observer(Box::new(|event: &Event| {
        if let Event::Switch { frame, from, to, reason, overhead_us } = event {
            println!("frame {frame}: level {} ×{} → level {} ×{} ({reason}, {overhead_us:.1} µs)", from.level, from.threads, to.level, to.threads);
        }
    }));

    let (width, height) = (320, 240);
    let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i * 7 % 251) as u8).collect();
    let frame = Frame::rgb(width, height, &pixels)?;
    for i in 0..400 {
        if i == 200 {
            let tighter = Requirements::latency(runtime.requirements().target_ms / 2.0)?;
            println!("target now {} ms", tighter.target_ms);
            runtime.set_requirements(tighter)?;
        }
        let result = runtime.infer(&frame)?;
        if i % 100 == 99 {
            println!("frame {}: class {} by level {} on {} thread(s) in {:.2} ms", result.frame, result.class, result.level, result.threads, result.latency_ms);
        }
    }
    let stats = runtime.stats();
    println!(
        "{} frames, {} over target, {} switches ({:.1} µs each), mean latency {:.2} ms, frames per level {:?}",
        stats.frames, stats.violations, stats.switches, stats.mean_switch_us, stats.mean_latency_ms, stats.frames_per_level
    );
    Ok(())
}
