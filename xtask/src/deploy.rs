//! The board workflow: deploy a bundle, profile the board, search its families, run there.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::board::{Board, BoardArgs, board_name};
use crate::bundle::{self, CHECKSUMS};

/// Arguments of `cargo xtask deploy`.
#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// Target triple to build for (default: static musl, which runs on any aarch64 Linux;
    /// with `--features wgpu`, glibc — aarch64-unknown-linux-gnu, which needs the board's
    /// glibc to be at least the cross toolchain's, Debian 12's 2.36).
    #[arg(long)]
    pub target: Option<String>,
    /// Extra cargo features: `wgpu` for GPU support (`gpu-autotune` to autotune kernels).
    #[arg(long)]
    pub features: Option<String>,
    /// Cargo profile of the build (default: `board`, release without debug info).
    #[arg(long)]
    pub profile: Option<String>,
    /// Family files to ship (default: the embedded default family).
    #[arg(long)]
    pub family: Vec<PathBuf>,
    /// Supernet weights to ship (e.g. the official checkpoint or a .bpk).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Ship this already assembled bundle instead of building one.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
}

/// Builds (unless `--bundle`), copies, verifies on the board, installs atomically.
pub fn deploy(root: &Path, args: &DeployArgs) -> Result<()> {
    let target = crate::board_target(args.target.as_deref(), args.features.as_deref())?;
    let board = Board::new(&args.board)?;
    board.check()?;
    let start = Instant::now();
    let bundle_dir = match &args.bundle {
        Some(dir) => {
            anyhow::ensure!(dir.join(CHECKSUMS).is_file(), "--bundle {}: not a bundle (no {CHECKSUMS})", dir.display());
            dir.clone()
        }
        None => {
            let binary = crate::build_for(root, &target, args.features.as_deref(), args.profile.as_deref())?;
            let families = if args.family.is_empty() { vec![root.join("assets/families/cpu_w12.ron")] } else { args.family.clone() };
            let dir = root.join("target/bundle").join(&target);
            let bytes = bundle::assemble(&dir, &binary, &families, args.weights.as_deref(), &target, root)?;
            eprintln!("bundle {}: {:.1} MB", dir.display(), bytes as f64 / 1e6);
            dir
        }
    };
    let copy_start = Instant::now();
    let dir = board.dir().trim_end_matches('/').to_string();
    let incoming = format!("{dir}.incoming-{}", std::process::id());
    board
        .run(&format!("mkdir -p '{incoming}' && test -w '{incoming}' && rmdir '{incoming}'"))
        .with_context(|| format!("the board's disk is not writable at {dir}"))?;
    let cleanup = |e: anyhow::Error| {
        let _ = board.run(&format!("rm -rf '{incoming}'"));
        e
    };
    board.upload_dir(&bundle_dir, &incoming).map_err(cleanup)?;
    let verify = board.run(&format!("cd '{incoming}' && sha256sum -c --quiet {CHECKSUMS}"));
    if let Err(e) = verify {
        return Err(cleanup(e.context("checksum mismatch on the board: the copy differs from the bundle (nothing was installed)")));
    }
    board
        .run(&format!(
            "chmod +x '{incoming}/dynofa' && rm -rf '{dir}.old' && {{ if [ -e '{dir}' ]; then mv '{dir}' '{dir}.old'; fi; }} && mv '{incoming}' '{dir}' && rm -rf '{dir}.old'"
        ))
        .map_err(cleanup)?;
    eprintln!("deployed to {}:{dir} in {:.1} s (copy and verify {:.1} s)", args.board.board, start.elapsed().as_secs_f64(), copy_start.elapsed().as_secs_f64());
    eprintln!("run it: {} \"{} run --target-ms 30 --duration 30 --load 10s-20s:2\"", board.ssh_command(), board.dynofa());
    Ok(())
}

/// Arguments of `cargo xtask profile --board …`.
#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// Where the tables go (default assets/boards/HOST/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A small profile (`dynofa profile --quick`).
    #[arg(long)]
    pub quick: bool,
    /// More arguments for `dynofa profile` on the board (e.g. `--threads 1,4,6`).
    #[arg(last = true)]
    pub extra: Vec<String>,
}

/// Runs `dynofa profile` on the board and fetches its tables (metadata included).
pub fn profile(root: &Path, args: &ProfileArgs) -> Result<()> {
    let board = Board::new(&args.board)?;
    let mut command = format!("{} profile --out profile", board.dynofa());
    if args.quick {
        command.push_str(" --quick");
    }
    command.push_str(&shell_words(&args.extra));
    let out = args.out.clone().unwrap_or_else(|| root.join("assets/boards").join(board.name()));
    run_and_fetch(&board, &command, "profile", &out)?;
    eprintln!("tables of {} in {}", args.board.board, out.display());
    Ok(())
}

/// Arguments of `cargo xtask search --board …`.
#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// The board (USER@HOST or USER@HOST:PORT or its name): its tables are assets/boards/NAME/.
    #[arg(long)]
    pub board: String,
    /// Tables directory (default assets/boards/NAME/).
    #[arg(long)]
    pub tables: Option<PathBuf>,
    /// OFA's accuracy predictor.
    #[arg(long, default_value = "../shared/golden/acc_predictor.pth")]
    pub predictor: PathBuf,
    /// Levels per family.
    #[arg(long, default_value_t = 6)]
    pub levels: usize,
}

/// Searches a family with the board's tables (objective: its largest thread count).
pub fn search(root: &Path, args: &SearchArgs) -> Result<()> {
    let name = board_name(&args.board);
    let tables = args.tables.clone().unwrap_or_else(|| root.join("assets/boards").join(&name));
    let mut counts: Vec<usize> = std::fs::read_dir(&tables)
        .with_context(|| format!("{}: no tables (run `cargo xtask profile --board …` first)", tables.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("threads_")?.parse().ok())
        .collect();
    counts.sort();
    let most = *counts.last().with_context(|| format!("{}: no threads_<T>/ table directory", tables.display()))?;
    let family = tables.join("family.ron");
    let mut command = std::process::Command::new(crate::release_dynofa(root)?);
    command.args(["search", "--levels", &args.levels.to_string(), "--predictor"]).arg(&args.predictor);
    command.args(["--objective", &format!("board_t{most}")]);
    for t in &counts {
        command.args(["--lut", &format!("board_t{t}={}", tables.join(format!("threads_{t}")).display())]);
    }
    command.arg("--out").arg(&family);
    crate::run(root, &mut command)?;
    eprintln!("family for {name}: {} (deploy it with --family)", family.display());
    Ok(())
}

/// Arguments of `cargo xtask run --board …`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// Family file on the board, relative to the install directory (default: the embedded one).
    #[arg(long)]
    pub family: Option<String>,
    /// Where the trace, plot and summary go (default target/boards/HOST/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Arguments for `dynofa run` (e.g. `-- --target-ms 30 --duration 30 --load 10s-20s:2`).
    #[arg(last = true)]
    pub extra: Vec<String>,
}

/// Runs `dynofa run` on the board and fetches its trace, plot and summary.
pub fn run(root: &Path, args: &RunArgs) -> Result<()> {
    let board = Board::new(&args.board)?;
    let mut command = format!("{} run --quiet --trace runs/trace.csv --plot runs/trace.svg", board.dynofa());
    if let Some(family) = &args.family {
        command.push_str(" --family");
        command.push_str(&shell_words(std::slice::from_ref(family)));
    }
    command.push_str(&shell_words(&args.extra));
    let out = args.out.clone().unwrap_or_else(|| root.join("target/boards").join(board.name()));
    run_and_fetch(&board, &command, "runs", &out)?;
    eprintln!("trace, plot and summary from {} in {}", args.board.board, out.display());
    Ok(())
}

/// Runs `command` on the board, then fetches `results` (a directory of the install
/// directory) into `out`.
fn run_and_fetch(board: &Board, command: &str, results: &str, out: &Path) -> Result<()> {
    board.run_shown(command)?;
    board.download_dir(&format!("{}/{results}", board.dir()), out)
}

/// `args` quoted for the board's shell, each after a space.
fn shell_words(args: &[String]) -> String {
    args.iter().map(|a| format!(" '{}'", a.replace('\'', "'\\''"))).collect()
}
