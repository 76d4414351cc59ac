//! # dynofa
//!
//! The command-line tool: `dynofa run | infer | describe | devices | convert | extract | calibrate | bench | profile | search | train-predictor`. Thin: each
//! command parses its arguments and calls the library crates (`dynofa-supernet`, …);
//! errors are reported with `anyhow` context naming the file or value at fault.

mod commands;
mod device;
mod gpu_default;
mod preprocess;
mod weights;

use clap::{Parser, Subcommand};

/// Dynamic-OFA in Rust: once-for-all sub-networks, switched at run time.
#[derive(Parser)]
#[command(name = "dynofa", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a sub-network on an .npy batch or on images.
    Infer(commands::infer::Args),
    /// Print a sub-network's facts (parameters, MFLOPs, …) as JSON.
    Describe(commands::describe::Args),
    /// List the processors this machine offers (the CPU, GPU adapters) as JSON.
    Devices(commands::devices::Args),
    /// Convert supernet weights (e.g. the official .pth) to Burn's record format (.bpk).
    Convert(commands::convert::Args),
    /// Cut a sub-network out as a standalone network (OFA's folder format or ONNX).
    Extract(commands::extract::Args),
    /// Re-estimate a sub-network's BatchNorm statistics on calibration data.
    Calibrate(commands::calibrate::Args),
    /// Time the fast path on one sub-network (JSON: median_ms, …).
    Bench(commands::bench::Args),
    /// Build latency look-up tables on this machine (per resolution and thread count) and validate them.
    Profile(commands::profile::Args),
    /// Search the accuracy–latency Pareto front and write a family of levels along it.
    Search(commands::search::Args),
    /// Train an accuracy predictor on measured accuracies (CSV) and report its held-out error.
    TrainPredictor(commands::train_predictor::Args),
    /// The main job: run a family under a latency target, switching levels as the load changes.
    Run(commands::run::Args),
    /// The competing process of a `run --load` window (runs until killed).
    #[command(hide = true)]
    LoadWorker(commands::run::LoadWorkerArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DYNOFA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Infer(args) => commands::infer::run(args),
        Command::Describe(args) => commands::describe::run(args),
        Command::Devices(args) => commands::devices::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Extract(args) => commands::extract::run(args),
        Command::Calibrate(args) => commands::calibrate::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Profile(args) => commands::profile::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::LoadWorker(args) => commands::run::load_worker(args),
        Command::TrainPredictor(args) => commands::train_predictor::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
