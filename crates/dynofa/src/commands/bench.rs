//! `dynofa bench`: time the fast path (the family store's forward) on one sub-network.

use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use dynofa_slice::FamilyStore;
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
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed iterations (after 5 warm-up ones).
    #[arg(long, default_value_t = 30)]
    iters: usize,
    /// Also time each kind of operation (one image) and print `per_op_ms`.
    #[arg(long)]
    per_op: bool,
    /// Also time each layer (one image: stem, first block, each block, head layers, keyed
    /// as in the latency tables) and print `per_layer_ms`, in forward order.
    #[arg(long)]
    per_layer: bool,
}

/// Prints `{median_ms, mean_ms, p95_ms, min_ms, mflops, gflops, …}` per batch (and
/// `per_op_ms` with `--per-op`, `per_layer_ms` with `--per-layer`).
pub fn run(args: Args) -> Result<()> {
    let subnet = args.net.config()?;
    anyhow::ensure!(args.batch > 0 && args.iters > 0, "--batch and --iters must be positive");
    let device = Device::flex();
    let supernet = args.net.weights.load(&device)?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut store = FamilyStore::new(&supernet, std::slice::from_ref(&subnet), threads)?;
    let r = subnet.resolution();
    let n = args.batch * 3 * r * r;
    let input = Array { shape: vec![args.batch, 3, r, r], data: (0..n).map(|i| ((i % 251) as f32 - 125.0) / 60.0).collect() };
    for _ in 0..5 {
        store.forward(&input)?;
    }
    let mut times: Vec<f64> = (0..args.iters)
        .map(|_| {
            let start = Instant::now();
            store.forward(&input).map(|_| start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    let median_ms = median(&mut times);
    let mflops = supernet.config.counts(&subnet)?.mflops * args.batch as f64;
    let image = Array { shape: vec![1, 3, r, r], data: input.data[..3 * r * r].to_vec() };
    let per_op = if args.per_op {
        let ops = store.op_profile(&image, args.iters)?;
        Some(ops.into_iter().map(|(op, ms)| (op.to_string(), json!(ms))).collect::<serde_json::Map<_, _>>())
    } else {
        None
    };
    let per_layer = if args.per_layer {
        // The median of each layer over the runs, as `{layer, ms}` in forward order.
        let runs = store.layer_times(&image, args.iters)?;
        let keys = dynofa_profiler::layer_keys(&supernet.config, &subnet);
        anyhow::ensure!(runs.iter().all(|run| run.len() == keys.len()), "{} layer times for {} layers", runs[0].len(), keys.len());
        let layers = keys.iter().enumerate().map(|(i, key)| {
            let mut ms: Vec<f64> = runs.iter().map(|run| run[i]).collect();
            json!({ "layer": key.to_string(), "ms": median(&mut ms) })
        });
        Some(layers.collect::<Vec<_>>())
    } else {
        None
    };
    let mut out = json!({
        "subnet": subnet, "batch": args.batch, "threads": threads, "iters": args.iters,
        "median_ms": median_ms,
        "mean_ms": times.iter().sum::<f64>() / times.len() as f64,
        "p95_ms": times[(times.len() * 95 / 100).min(times.len() - 1)],
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

/// The median of `values` (sorts them, so that the caller can read other ranks after).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
