//! # dynofa
//!
//! The command-line tool: `dynofa run | experiment | infer | describe | devices | convert | extract | calibrate | bench | profile | search | tune | train-predictor`. Thin: each
//! command parses its arguments and calls the library crates (`dynofa-supernet`, …);
//! errors are reported with `anyhow` context naming the file or value at fault.
//!
//! An interrupt (Ctrl-C, SIGINT, SIGTERM, SIGHUP) never leaves a partial output behind
//! and ends the process with status 130 (see [`interrupt`]).

mod commands;
mod device;
mod gpu_default;
mod preprocess;
mod progress;
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
    /// Build latency look-up tables on this machine (per resolution and thread count; interleaved rounds beside a canary), validate them, compare profiles (--compare) or measure a family's levels (--family).
    Profile(commands::profile::Args),
    /// Search the accuracy–latency Pareto front and write a family of levels along it.
    Search(commands::search::Args),
    /// Make a family for this machine: candidates measured whole here, the accuracy–latency front's levels (cached for `dynofa run`, or --out).
    Tune(commands::tune::Args),
    /// Train an accuracy predictor on measured accuracies (CSV) and report its held-out error.
    TrainPredictor(commands::train_predictor::Args),
    /// The main job: run a family under a latency target, switching levels as the load changes.
    Run(commands::run::Args),
    /// The run-time policies judged against a hindsight oracle: a sweep of latency targets ×
    /// kinds of competing load × policies (JSON, markdown table, SVG plot).
    Experiment(commands::experiment::Args),
    /// The competing process of a `run --load` window (runs until killed).
    #[command(hide = true)]
    LoadWorker(commands::run::LoadWorkerArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DYNOFA_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The load worker keeps the default disposition: a signal ends it at once.
    if !matches!(cli.command, Command::LoadWorker(_)) {
        interrupt::install();
    }
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
        Command::Tune(args) => commands::tune::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Experiment(args) => commands::experiment::run(args),
        Command::LoadWorker(args) => commands::run::load_worker(args),
        Command::TrainPredictor(args) => commands::train_predictor::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) if err.is::<interrupt::Interrupted>() => {
            eprintln!("{err} (exit status {})", interrupt::EXIT_STATUS);
            std::process::ExitCode::from(interrupt::EXIT_STATUS)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Interrupts: SIGINT (Ctrl-C), SIGTERM and SIGHUP, for every command.
///
/// [`install`](interrupt::install) sets one handler (the `ctrlc` crate's: it runs on a thread of its own, not
/// in signal context). What an interrupt does depends on where the command is:
///
/// - **Outside any [`Section`](interrupt::Section)** (loading weights, searching, calibrating, …) it ends the
///   process at once with status [`EXIT_STATUS`](interrupt::EXIT_STATUS). Nothing is being written then: every
///   output is written to a temporary file (or folder) and renamed into place, and
///   commands do that only inside a section, so no partial output nor temporary file can
///   be left behind.
/// - **Inside a section** (a command writing its outputs, `dynofa run`'s frame loop) it
///   is only recorded: the code in the section sees it with [`requested`](interrupt::requested) and finishes
///   its step (a write completes: its output is then whole), and the command ends with
///   the [`Interrupted`](interrupt::Interrupted) error, which `main` turns into status [`EXIT_STATUS`](interrupt::EXIT_STATUS).
/// - **A second interrupt** ends the process at once, wherever it is (the usual
///   convention for an impatient user; a temporary file being written may stay then).
pub mod interrupt {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Mutex, MutexGuard, PoisonError};

    /// The exit status of an interrupted command (128 + SIGINT, as shells report it).
    pub const EXIT_STATUS: u8 = 130;

    /// Set by the first interrupt.
    static REQUESTED: AtomicBool = AtomicBool::new(false);
    /// Interrupts received.
    static SIGNALS: AtomicUsize = AtomicUsize::new(0);
    /// What each open section does on an interrupt, innermost last. The handler holds the
    /// lock while it decides, so that no section opens between its check and the exit.
    static SECTIONS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

    /// The error of a command that stopped because it was interrupted.
    #[derive(Debug)]
    pub struct Interrupted;

    impl std::fmt::Display for Interrupted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("interrupted")
        }
    }

    impl std::error::Error for Interrupted {}

    fn sections() -> MutexGuard<'static, Vec<&'static str>> {
        SECTIONS.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs the handler (once, before the command runs). Without it (the platform
    /// refused) signals keep their default action, which is said in a warning.
    pub fn install() {
        if let Err(e) = ctrlc::set_handler(on_signal) {
            tracing::warn!("cannot handle interrupts ({e}): an interrupt may leave temporary files");
        }
    }

    fn on_signal() {
        let count = SIGNALS.fetch_add(1, Ordering::SeqCst) + 1;
        let open = sections();
        REQUESTED.store(true, Ordering::SeqCst);
        if count >= 2 {
            eprintln!("interrupted again: exiting at once");
            std::process::exit(EXIT_STATUS.into());
        }
        match open.last() {
            None => {
                eprintln!("interrupted: exiting; nothing was written");
                std::process::exit(EXIT_STATUS.into());
            }
            Some(note) => eprintln!("interrupted: {note} (interrupt again to exit at once)"),
        }
    }

    /// Whether an interrupt came (only ever seen inside a section: outside, the process ends).
    pub fn requested() -> bool {
        REQUESTED.load(Ordering::SeqCst)
    }

    /// `Err(Interrupted)` once an interrupt came.
    pub fn check() -> anyhow::Result<()> {
        if requested() {
            return Err(Interrupted.into());
        }
        Ok(())
    }

    /// A stretch of code an interrupt does not cut short (see the module): while one is
    /// open, an interrupt is recorded and `note` (what happens now, e.g. "finishing the
    /// write") is printed. Closed when dropped.
    pub struct Section(());

    impl Section {
        /// Opens a section; `Err(Interrupted)` if an interrupt came already.
        pub fn enter(note: &'static str) -> anyhow::Result<Section> {
            let mut open = sections();
            check()?;
            open.push(note);
            Ok(Section(()))
        }
    }

    impl Drop for Section {
        fn drop(&mut self) {
            sections().pop();
        }
    }

    /// Runs `work` (a command writing its outputs) in a [`Section`]; `Err(Interrupted)`
    /// if an interrupt came before it (then `work` does not run) or while it ran (then its
    /// outputs are complete, and the command should stop).
    pub fn deferred<T>(note: &'static str, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let section = Section::enter(note)?;
        let value = work();
        drop(section);
        let value = value?;
        check()?;
        Ok(value)
    }
}
