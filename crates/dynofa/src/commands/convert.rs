//! `dynofa convert`: supernet weights to Burn's record format, for fast start-up.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::*;
use dynofa_supernet::save_record;
use serde_json::json;

use crate::weights::load_file;

/// Arguments of `dynofa convert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source weights: an OFA checkpoint (.pth) or a Burn record.
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// Destination Burn record (.bpk); written atomically.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Converts, then loads both files again and prints their load times as JSON.
pub fn run(args: Args) -> Result<()> {
    let device = Device::flex();
    let start = Instant::now();
    let net = load_file(&args.weights, &device)?;
    let source_ms = start.elapsed().as_secs_f64() * 1e3;
    crate::interrupt::deferred("finishing the write of the record", || {
        save_record(&net, &args.out).with_context(|| format!("cannot write {}", args.out.display()))
    })?;
    let start = Instant::now();
    let reloaded = load_file(&args.out, &device)?;
    let record_ms = start.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(reloaded.config == net.config, "the record does not read back as written");
    let out = json!({
        "width": net.config.width.to_string(),
        "source": args.weights, "source_load_ms": source_ms,
        "record": args.out, "record_load_ms": record_ms,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
