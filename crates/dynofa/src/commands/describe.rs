//! `dynofa describe`: a sub-network's facts as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::*;
use dynofa_profiler::LatencyTables;
use dynofa_profiler::machine::Metadata;
use dynofa_search::AccuracyPredictor;
use dynofa_supernet::SupernetConfig;
use serde_json::json;

use crate::weights::SubnetArgs;

/// Arguments of `dynofa describe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    net: SubnetArgs,
    /// Latency look-up tables to predict with, as NAME=DIR (repeatable); adds
    /// `latency_ms` (sum of the layers' entries) and, for tables with a fitted correction,
    /// `latency_corrected_ms`.
    #[arg(long = "lut", value_name = "NAME=DIR", value_parser = parse_named_dir)]
    luts: Vec<(String, PathBuf)>,
    /// OFA's accuracy predictor file (`acc_predictor.pth`); adds `acc` (a fraction).
    #[arg(long)]
    predictor: Option<PathBuf>,
}

/// `NAME=DIR` → `(NAME, DIR)`.
pub fn parse_named_dir(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => Ok((name.into(), dir.into())),
        _ => Err(format!("'{text}': expected NAME=DIR")),
    }
}

/// Prints `{width, resolution, params, mflops, subnet}` (and `latency_ms` with `--lut`,
/// `acc` with `--predictor`).
pub fn run(args: Args) -> Result<()> {
    let subnet = args.net.config()?;
    let width = match &args.net.weights.weights {
        // The width is read off the weights: load them (this also validates the file).
        Some(path) => crate::weights::load_file(path, &Device::flex())?.config.width,
        None => args.net.weights.width,
    };
    let supernet = SupernetConfig::ofa_mbv3(width);
    let counts = supernet.counts(&subnet).context("the sub-network does not fit the supernet")?;
    let mut out = json!({
        "width": width.to_string(),
        "resolution": subnet.resolution(),
        "params": counts.params,
        "mflops": counts.mflops,
        "subnet": subnet,
    });
    if let Some(path) = &args.predictor {
        let predictor = AccuracyPredictor::load(path).context("loading the accuracy predictor")?;
        out["acc"] = json!(predictor.predict(&subnet));
    }
    if !args.luts.is_empty() {
        let (mut latency, mut corrected) = (serde_json::Map::new(), serde_json::Map::new());
        for (name, dir) in &args.luts {
            let tables = LatencyTables::open(dir).with_context(|| format!("look-up table '{name}'"))?;
            let ms = tables.predict(&supernet, &subnet).with_context(|| format!("look-up table '{name}'"))?;
            latency.insert(name.clone(), json!(ms));
            if let Some(correction) = Metadata::read(dir).ok().and_then(|m| m.correction) {
                corrected.insert(name.clone(), json!(correction.apply(ms)));
            }
        }
        out["latency_ms"] = latency.into();
        if !corrected.is_empty() {
            out["latency_corrected_ms"] = corrected.into();
        }
    }
    println!("{out}");
    Ok(())
}
