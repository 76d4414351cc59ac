//! `dynofa train-predictor`: train an accuracy predictor (OFA's MLP and encoding) on
//! measured accuracies, report its held-out error, write it in the official file layout.

use std::path::PathBuf;

use anyhow::{Context, Result};
use dynofa_search::train::{TrainOptions, read_csv, train};
use serde_json::json;

/// Arguments of `dynofa train-predictor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Samples: CSV with columns `ks,e,d,r,acc` (lists space-separated; accuracy a fraction or a percentage).
    #[arg(long)]
    csv: PathBuf,
    /// The predictor file to write (`--predictor` of describe/search reads it).
    #[arg(long)]
    out: PathBuf,
    /// Passes over the training split.
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    /// Share held out for the error report.
    #[arg(long, default_value_t = 0.2)]
    held_out: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Trains, writes the file, prints the error report as JSON.
pub fn run(args: Args) -> Result<()> {
    anyhow::ensure!((0.0..1.0).contains(&args.held_out), "--held-out {}: a share in [0, 1)", args.held_out);
    let samples = read_csv(&args.csv)?;
    let options = TrainOptions { epochs: args.epochs, held_out: args.held_out, seed: args.seed, ..TrainOptions::default() };
    let bar = crate::progress::bar(args.epochs as u64, "training [{bar:30}] epoch {pos}/{len}, ETA {eta}", false);
    let (predictor, report) = train(&samples, options, &mut |e, _| bar.set_position(e as u64))?;
    bar.finish_and_clear();
    predictor.save(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}", json!({"predictor": args.out, "report": report}));
    Ok(())
}
