//! `cargo xtask`: the project's automation as one plain Rust binary (no shell scripts).
//!
//! - `cargo xtask demo`: README's main job (on the embedded default weights).
//! - `cargo xtask test`: README's test command (installs ONNX Runtime for Python when missing).
//! - `cargo xtask bench`: the criterion benchmarks.
//! - `cargo xtask build`: a release build of the `dynofa` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "dynofa project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Release build of the `dynofa` binary.
    Build {
        /// Extra cargo features (e.g. `wgpu`).
        #[arg(long)]
        features: Option<String>,
    },
    /// Run the main job on the embedded default supernet.
    Demo,
    /// Run the test suite (what CI runs).
    Test,
    /// Run the criterion benchmarks.
    Bench {
        /// Only benchmarks whose name matches.
        filter: Option<String>,
    },
}

fn main() -> Result<()> {
    let root = workspace_root();
    match Cli::parse().command {
        Task::Build { features } => {
            let mut args = vec!["build", "--release", "-p", "dynofa"];
            if let Some(f) = features.as_deref() {
                args.extend(["--features", f]);
            }
            cargo(&root, &args)
        }
        Task::Demo => {
            cargo(&root, &["build", "--release", "-p", "dynofa"])?;
            let dynofa = root.join("target/release/dynofa");
            run(&root, Command::new(&dynofa).args([
                "infer", "--subnet", "assets/subnets/middle_r192.json", "--image", "assets/sample.png",
            ]))?;
            run(&root, Command::new(&dynofa).args(["describe", "--subnet", "assets/subnets/middle_r192.json"]))
        }
        Task::Test => {
            ensure_python_packages(&root)?;
            cargo(&root, &["test", "--workspace", "--all-targets"])
        }
        Task::Bench { filter } => {
            let mut args = vec!["bench", "-p", "dynofa-benches"];
            if let Some(f) = filter.as_deref() {
                args.extend(["--", f]);
            }
            cargo(&root, &args)
        }
    }
}

/// ONNX Runtime (and numpy) for the ONNX export test, installed with pip when missing.
fn ensure_python_packages(root: &Path) -> Result<()> {
    let present = Command::new("python3").args(["-c", "import onnxruntime, numpy"]).status();
    if present.map(|s| s.success()).unwrap_or(false) {
        return Ok(());
    }
    eprintln!("installing onnxruntime and numpy with pip (for the ONNX export test)");
    run(root, Command::new("python3").args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "onnxruntime", "numpy"]))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(root, Command::new(cargo).args(args))
}

fn run(root: &Path, command: &mut Command) -> Result<()> {
    let status = command.current_dir(root).status().with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}
