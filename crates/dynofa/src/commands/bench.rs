//! `dynofa bench`: time one sub-network where the runtime would run it: the CPU's fast path
//! (the family store's forward) or a GPU (the GPU family's).

use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use dynofa_device::DeviceId;
use dynofa_slice::{FamilyStore, LoadedFamily};
use dynofa_supernet::tensor_io::Array;
use serde_json::json;

use crate::weights::SubnetArgs;

/// Arguments of `dynofa bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    net: SubnetArgs,
    /// Images per batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Processor: cpu, gpu (the best adapter) or gpu:N (see `dynofa devices`).
    #[arg(long, default_value = "cpu", value_parser = crate::device::parse_device)]
    device: DeviceId,
    /// Threads (default: all cores; CPU only).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed iterations (after 5 warm-up ones).
    #[arg(long, default_value_t = 30)]
    iters: usize,
    /// Also time each kind of operation (one image) and print `per_op_ms` (CPU only).
    #[arg(long)]
    per_op: bool,
    /// Also time each layer (one image: stem, first block, each block, head layers, keyed
    /// as in the latency tables) and print `per_layer_ms`, in forward order.
    #[arg(long)]
    per_layer: bool,
}

/// Prints `{median_ms, mean_ms, p95_ms, min_ms, mflops, gflops, isa, …}` per batch (and
/// `per_op_ms` with `--per-op`, `per_layer_ms` with `--per-layer`).
pub fn run(args: Args) -> Result<()> {
    let subnet = args.net.config()?;
    anyhow::ensure!(args.batch > 0 && args.iters > 0, "--batch and --iters must be positive");
    let gpu = args.device != DeviceId::Cpu;
    anyhow::ensure!(!(gpu && args.threads.is_some()), "--threads: thread counts are for the CPU (--device {} has none)", args.device);
    anyhow::ensure!(!(gpu && args.per_op), "--per-op times the CPU's kernels; on a GPU use --per-layer");
    let supernet = args.net.weights.load(&Device::flex())?;
    let threads = if gpu { 1 } else { args.threads.unwrap_or_else(dynofa_device::host::cores) };
    let (placement, adapter) = crate::device::open(args.device, threads)?;
    let mut store: Box<dyn LoadedFamily> = placement.load(&supernet, std::slice::from_ref(&subnet), &[])?;
    let r = subnet.resolution();
    let input = Array::benchmark_input(args.batch, r);
    // The first forward compiles the GPU's kernels (and tunes them where the backend autotunes).
    let start = Instant::now();
    store.forward(&input)?;
    let first_s = start.elapsed().as_secs_f64();
    for _ in 0..4 {
        store.forward(&input)?;
    }
    let times: Vec<f64> = (0..args.iters)
        .map(|_| {
            let start = Instant::now();
            store.forward(&input).map(|_| start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    let times = dynofa_runtime::stats::sorted(times);
    let median_ms = dynofa_runtime::stats::median(&times);
    let mflops = supernet.config.counts(&subnet)?.mflops * args.batch as f64;
    let image = Array { shape: vec![1, 3, r, r], data: input.data[..3 * r * r].to_vec() };
    let per_op = if args.per_op {
        let ops = FamilyStore::new(&supernet, std::slice::from_ref(&subnet), threads)?.op_profile(&image, args.iters)?;
        Some(ops.into_iter().map(|(op, ms)| (op.to_string(), json!(ms))).collect::<serde_json::Map<_, _>>())
    } else {
        None
    };
    let per_layer = if args.per_layer {
        // The median of each layer over the runs, as `{layer, ms}` in forward order.
        let runs = store.layer_times(&image, 2, args.iters)?;
        let keys = dynofa_profiler::layer_keys(&supernet.config, &subnet);
        anyhow::ensure!(runs.iter().all(|run| run.len() == keys.len()), "{} layer times for {} layers", runs[0].len(), keys.len());
        let layers = keys.iter().enumerate().map(|(i, key)| {
            let ms: Vec<f64> = runs.iter().map(|run| run[i]).collect();
            json!({ "layer": key.to_string(), "ms": dynofa_runtime::stats::median(&ms) })
        });
        Some(layers.collect::<Vec<_>>())
    } else {
        None
    };
    let mut out = json!({
        "subnet": subnet, "device": args.device.to_string(), "adapter": adapter, "batch": args.batch, "threads": threads, "iters": args.iters,
        // The CPU kernels' instruction set (`DYNOFA_ISA` forces one); none on a GPU.
        "isa": (!gpu).then(|| dynofa_kernels::Isa::best().name()),
        "weights_mb": store.memory_bytes() as f64 / 1e6,
        "first_forward_s": first_s,
        "median_ms": median_ms,
        "mean_ms": times.iter().sum::<f64>() / times.len() as f64,
        "p95_ms": dynofa_runtime::stats::nearest_rank(&times, 0.95),
        "min_ms": times[0],
        "mflops": mflops,
        "gflops": mflops / median_ms,
    });
    if let Some(per_op) = per_op {
        out["per_op_ms"] = serde_json::Value::Object(per_op);
    }
    if let Some(per_layer) = per_layer {
        out["per_layer_ms"] = serde_json::Value::Array(per_layer);
    }
    println!("{out}");
    Ok(())
}
