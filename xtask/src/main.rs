//! `cargo xtask`: the project's automation as one plain Rust binary (no shell scripts).
//!
//! - `cargo xtask demo`: README's main job (on the embedded default weights).
//! - `cargo xtask test`: README's test command (installs ONNX Runtime for Python when missing).
//! - `cargo xtask bench`: the criterion benchmarks.
//! - `cargo xtask ort-compare`: the fast path against ONNX Runtime, as a table.
//! - `cargo xtask build [--target T]`: a release build of `dynofa` (and the runtime's
//!   example), cross-compiled for aarch64 boards with the settings in `.cargo/config.toml`.
//! - `cargo xtask setup`: the Debian packages and rustup targets the board workflow needs.
//! - `cargo xtask deploy | profile | search | run --board USER@HOST or USER@HOST:PORT`: the board
//!   workflow over SSH (see README).
//! - `cargo xtask experiment [--quick]`: the run-time policies judged against a hindsight
//!   oracle over a sweep of targets and kinds of load.
//! - `cargo xtask profile-check`: three profiles in a row, quiet and under an intermittent
//!   load: do their tables agree, and how well do they predict?
//! - `cargo xtask default-family`: remake `assets/families/cpu_w12.ron` on this machine.

mod board;
mod bundle;
mod deploy;
mod profile_check;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "dynofa project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Release build of the `dynofa` binary and the runtime's example, for this machine or
    /// cross-compiled (aarch64-unknown-linux-gnu, aarch64-unknown-linux-musl).
    Build {
        /// Target triple (default: this machine).
        #[arg(long)]
        target: Option<String>,
        /// Extra cargo features (e.g. `wgpu`: GPU support; a board build then links glibc).
        #[arg(long)]
        features: Option<String>,
        /// Cargo profile (default: `board` for a cross build, `release` for this machine).
        #[arg(long)]
        profile: Option<String>,
    },
    /// Install what cross-building, the board test and the GPU tests need: Debian packages
    /// (aarch64 gcc and libc, qemu-user, OpenSSH, rsync; the Vulkan loader and Mesa's
    /// lavapipe, a Vulkan driver that runs on the CPU) and the rustup targets.
    Setup,
    /// Build for the board, copy a bundle (binary, families, weights if asked, manifest
    /// with checksums), verify it there and install it atomically.
    Deploy(deploy::DeployArgs),
    /// Run `dynofa profile` on the board and fetch its tables into assets/boards/HOST/.
    Profile(deploy::ProfileArgs),
    /// Search a family with a board's tables (written beside them).
    Search(deploy::SearchArgs),
    /// Run `dynofa run` on the board and fetch its trace, plot and summary.
    Run(deploy::RunArgs),
    /// Run the main job on the embedded default supernet: `dynofa run` for 20 s with a
    /// competing load from 6 s to 14 s (trace and plot in target/demo/).
    Demo,
    /// The run-time policies judged against a hindsight oracle (`dynofa experiment`):
    /// targets 1.0, 1.3 and 2.0 × the top level's idle latency × loads none, compute,
    /// memory, dnn, intermittent × policies static (best in hindsight), dofa, predictive
    /// and its single-knob ablations; JSON, markdown table and SVG plot in --out.
    Experiment {
        /// Short runs: the whole sweep in under 5 minutes.
        #[arg(long)]
        quick: bool,
        /// Output directory.
        #[arg(long, default_value = "target/experiment")]
        out: PathBuf,
        /// More `dynofa experiment` arguments (e.g. `-- --loads none,dnn`).
        #[arg(last = true)]
        extra: Vec<String>,
    },
    /// Three profiles in a row, on a quiet machine and under an intermittent competing
    /// load (busy threads switched on and off at random every 0.2–2 s): how far their
    /// tables agree (`dynofa profile --compare`) and how well each predicts its held-out
    /// validation networks (tables in target/profile-check/).
    ProfileCheck(profile_check::Args),
    /// Remake the embedded default family on this machine: `dynofa profile` (1 and 2
    /// threads), then `dynofa search` with OFA's accuracy predictor (from ../shared/golden
    /// unless --predictor) minimising the all-core latency, embedded only if its levels are
    /// strictly ordered in measured latency on 1 and 2 threads (`dynofa profile --family`);
    /// and the candidates of the GPU family `dynofa run` makes (16 along the accuracy–MFLOPs front).
    DefaultFamily {
        /// OFA's accuracy predictor.
        #[arg(long, default_value = "../shared/golden/acc_predictor.pth")]
        predictor: PathBuf,
    },
    /// Run the test suite (what CI runs), GPU support built in: the GPU tests run where a
    /// Vulkan adapter is found (lavapipe after `cargo xtask setup`), and say they skip
    /// elsewhere.
    Test,
    /// Compare the fast path with ONNX Runtime on the smallest, a middle and the largest
    /// sub-network (batch 1 and 8, 1 and 2 threads). Needs `python3 -m pip install onnxruntime numpy`.
    OrtCompare {
        /// Supernet weights (default: the embedded seeded supernet; timing does not depend on values).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Timed iterations per measurement.
        #[arg(long, default_value_t = 30)]
        iters: usize,
        /// Measurements of each case, alternating dynofa and ONNX Runtime (the table gives
        /// the median of each, the median ratio of a round and the range of the ratios).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Run the criterion benchmarks (built with GPU support: `gpu_family` runs on the first GPU
    /// adapter, lavapipe included, and skips where there is none).
    Bench {
        /// Only benchmarks whose name matches.
        filter: Option<String>,
    },
}

fn main() -> Result<()> {
    let root = workspace_root();
    match Cli::parse().command {
        Task::Build { target, features, profile } => {
            let target = match target {
                Some(t) => board_target(Some(&t), features.as_deref())?,
                None => host_target(),
            };
            let binary = build_for(&root, &target, features.as_deref(), profile.as_deref())?;
            eprintln!("{}", binary.display());
            Ok(())
        }
        Task::Setup => setup(&root),
        Task::Deploy(args) => deploy::deploy(&root, &args),
        Task::Profile(args) => deploy::profile(&root, &args),
        Task::Search(args) => deploy::search(&root, &args),
        Task::Run(args) => deploy::run(&root, &args),
        Task::Demo => {
            let dynofa = release_dynofa(&root)?;
            eprintln!("dynofa run: 20 s, target auto (1.3 × the most accurate level's idle latency here), two busy threads competing from 6 s to 14 s");
            run(
                &root,
                Command::new(&dynofa).args([
                    "run",
                    "--target-ms",
                    "auto",
                    "--duration",
                    "20",
                    "--load",
                    "6s-14s:2",
                    "--policy",
                    "predictive",
                    "--trace",
                    "target/demo/trace.csv",
                    "--plot",
                    "target/demo/trace.svg",
                ]),
            )?;
            eprintln!(
                "\nnext:\n  {} tune        # a family searched for this machine (about a minute; `dynofa run` then uses it)\n  cargo xtask experiment --quick   # the policies against a hindsight oracle (5 minutes)",
                dynofa.display()
            );
            Ok(())
        }
        Task::Experiment { quick, out, extra } => {
            let dynofa = release_dynofa(&root)?;
            let mut command = Command::new(&dynofa);
            command.arg("experiment").arg("--out").arg(&out).args(quick.then_some("--quick")).args(&extra);
            run(&root, &mut command)
        }
        Task::ProfileCheck(args) => profile_check::check(&root, &release_dynofa(&root)?, &args),
        Task::DefaultFamily { predictor } => default_family(&root, &predictor),
        Task::Test => {
            let python_path = ensure_python_packages(&root)?;
            let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            run(&root, Command::new(cargo_bin).args(["test", "--workspace", "--all-targets", "--features", "dynofa/wgpu"]).env("PYTHONPATH", python_path))
        }
        Task::OrtCompare { weights, iters, rounds } => ort_compare(&root, weights.as_deref(), iters, rounds),
        Task::Bench { filter } => {
            let mut args = vec!["bench", "-p", "dynofa-benches", "--features", "wgpu"];
            if let Some(f) = filter.as_deref() {
                args.extend(["--", f]);
            }
            cargo(&root, &args)
        }
    }
}

/// Runs a command and parses the JSON object it prints last.
fn json_of(root: &Path, command: &mut Command) -> Result<serde_json::Value> {
    let out = command.current_dir(root).output().with_context(|| format!("cannot start {command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{command:?} printed {last:?}"))
}

fn ort_compare(root: &Path, weights: Option<&Path>, iters: usize, rounds: usize) -> Result<()> {
    anyhow::ensure!(iters > 0 && rounds > 0, "--iters and --rounds must be positive");
    let python_path = ensure_python_packages(root)?;
    let dynofa = release_dynofa(root)?;
    let dir = root.join("target/ort-compare");
    std::fs::create_dir_all(&dir)?;
    let weight_args: Vec<String> = weights.map(|w| vec!["--weights".into(), w.display().to_string()]).unwrap_or_default();
    println!("Median of {rounds} rounds (each: dynofa, then ONNX Runtime, {iters} timed iterations); ratio = dynofa / ORT, its range over the rounds.");
    println!(
        "CPU: {}. isa: the instruction set of dynofa's kernels (DYNOFA_ISA forces one); ONNX Runtime picks its own (the widest the CPU has).",
        cpu_model()
    );
    println!("| network | batch | threads | isa | dynofa ms | ORT ms | ratio | ratio range | dynofa GFLOP/s | ORT GFLOP/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for name in ["smallest_r160", "middle_r192", "largest_r224"] {
        let subnet = format!("assets/subnets/{name}.json");
        let onnx = dir.join(format!("{name}.onnx"));
        let _ = std::fs::remove_file(&onnx);
        run(root, Command::new(&dynofa).args(&weight_args).args(["extract", "--subnet", &subnet, "--format", "onnx", "--out"]).arg(&onnx))?;
        for batch in [1, 8] {
            for threads in [1, 2] {
                let (b, t, n) = (batch.to_string(), threads.to_string(), iters.to_string());
                let (mut ours, mut ort, mut ratios, mut mflops, mut isa) = (Vec::new(), Vec::new(), Vec::new(), f64::NAN, String::new());
                for _ in 0..rounds {
                    let ours_json = json_of(
                        root,
                        Command::new(&dynofa).arg("bench").args(&weight_args).args(["--subnet", &subnet, "--batch", &b, "--threads", &t, "--iters", &n]),
                    )?;
                    let ort_json = json_of(
                        root,
                        Command::new("python3").arg(root.join("xtask/ort_bench.py")).arg(&onnx).args([&b, &t, &n]).env("PYTHONPATH", &python_path),
                    )?;
                    let (ours_ms, ort_ms) = (ours_json["median_ms"].as_f64().unwrap_or(f64::NAN), ort_json["median_ms"].as_f64().unwrap_or(f64::NAN));
                    mflops = ours_json["mflops"].as_f64().unwrap_or(f64::NAN);
                    isa = ours_json["isa"].as_str().unwrap_or("?").to_string();
                    ours.push(ours_ms);
                    ort.push(ort_ms);
                    ratios.push(ours_ms / ort_ms);
                }
                let (ours_ms, ort_ms, ratio) = (median(&mut ours), median(&mut ort), median(&mut ratios));
                println!(
                    "| {name} | {batch} | {threads} | {isa} | {ours_ms:.2} | {ort_ms:.2} | {ratio:.2} | {:.2}–{:.2} | {:.1} | {:.1} |",
                    ratios[0],
                    ratios[ratios.len() - 1],
                    mflops / ours_ms,
                    mflops / ort_ms
                );
            }
        }
    }
    Ok(())
}

/// This machine's CPU model and its widest vector extensions (`/proc/cpuinfo`).
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim().to_string()));
    let flags = field("flags").or_else(|| field("Features")).unwrap_or_default();
    let has: Vec<&str> = ["avx512f", "avx2", "fma", "asimd"].into_iter().filter(|f| flags.split_whitespace().any(|x| x == *f)).collect();
    format!(
        "{} ({}), {} cores",
        field("model name").unwrap_or_else(|| "unknown model".into()),
        has.join(", "),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// The median of `values` (sorts them).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The target `deploy` builds for by default: static, so any aarch64 Linux runs it.
pub const DEFAULT_BOARD_TARGET: &str = "aarch64-unknown-linux-musl";
/// The target of a board build with GPU support: a static musl binary cannot load the
/// Vulkan loader (`libvulkan.so.1`), so GPU builds link glibc.
pub const GPU_BOARD_TARGET: &str = "aarch64-unknown-linux-gnu";

/// Whether `features` asks for GPU support.
fn wants_gpu(features: Option<&str>) -> bool {
    features.is_some_and(|f| f.split([',', ' ']).any(|f| matches!(f.trim(), "wgpu" | "gpu-autotune" | "dynofa/wgpu" | "dynofa/gpu-autotune")))
}

/// The board target: `target` if given (refused when it is musl and GPU support is asked
/// for), else static musl, or glibc for a GPU build.
pub fn board_target(target: Option<&str>, features: Option<&str>) -> Result<String> {
    match target {
        Some(t) if t.ends_with("-musl") && wants_gpu(features) => bail!(
            "--target {t} --features {}: a static musl binary cannot load the Vulkan loader; GPU builds link glibc (--target {GPU_BOARD_TARGET}, the default with --features wgpu)",
            features.unwrap_or_default()
        ),
        Some(t) => Ok(t.to_string()),
        None if wants_gpu(features) => Ok(GPU_BOARD_TARGET.to_string()),
        None => Ok(DEFAULT_BOARD_TARGET.to_string()),
    }
}

/// This machine's target triple.
fn host_target() -> String {
    let out = Command::new("rustc").arg("-vV").output().ok();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("host: ")).unwrap_or("x86_64-unknown-linux-gnu").to_string()
}

/// Release build of `dynofa` and the runtime example for `target`; returns the binary.
/// Cross builds use the `board` profile (release without debug info: what gets copied);
/// a build for this machine is the plain release build the other tasks use. `profile`
/// overrides either (e.g. `board-check`, the board test's cheaper build).
fn build_for(root: &Path, target: &str, features: Option<&str>, profile: Option<&str>) -> Result<PathBuf> {
    let start = std::time::Instant::now();
    let host = target == host_target();
    let profile = profile.unwrap_or(if host { "release" } else { "board" });
    let mut args = vec!["build", "--profile", profile, "-p", "dynofa", "-p", "dynofa-runtime", "--bin", "dynofa", "--example", "embed"];
    if !host {
        args.extend(["--target", target]);
    }
    if let Some(f) = features {
        args.extend(["--features", f]);
    }
    cargo(root, &args).with_context(|| format!("building for {target} (run `cargo xtask setup` for the cross tools)"))?;
    eprintln!("built for {target} ({profile} profile) in {:.0} s", start.elapsed().as_secs_f64());
    let dir = if host { target_dir(root) } else { target_dir(root).join(target) };
    // Cargo writes the `dev` profile's output to `debug/`, every other profile's to its name.
    Ok(dir.join(if profile == "dev" { "debug" } else { profile }).join("dynofa"))
}

/// Release build of `dynofa` for this machine; returns the binary.
fn release_dynofa(root: &Path) -> Result<PathBuf> {
    cargo(root, &["build", "--release", "-p", "dynofa"])?;
    Ok(target_dir(root).join("release/dynofa"))
}

/// Cargo's build directory (`CARGO_TARGET_DIR` or `target/`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Debian packages and rustup targets of the board workflow (apt-get as root or with sudo),
/// and the rustup components of the lint checks.
fn setup(root: &Path) -> Result<()> {
    const PACKAGES: [&str; 8] =
        ["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "qemu-user", "openssh-server", "openssh-client", "rsync", "libvulkan1", "mesa-vulkan-drivers"];
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            // `dpkg -s` also succeeds for removed packages whose configuration is left.
            let status = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !status.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).ends_with(" installed"))
        })
        .collect();
    if !missing.is_empty() {
        let root_user = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let apt = |args: &[&str]| {
            let mut c = if root_user {
                Command::new("apt-get")
            } else {
                let mut c = Command::new("sudo");
                c.arg("apt-get");
                c
            };
            c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        eprintln!("installing {}", missing.join(" "));
        run(root, apt(&["update", "-q"]).stdout(std::process::Stdio::null()))?;
        run(root, apt(&["install", "-y", "-q", "--no-install-recommends"]).args(&missing).stdout(std::process::Stdio::null()))?;
    }
    run(root, Command::new("rustup").args(["target", "add", "aarch64-unknown-linux-gnu", "aarch64-unknown-linux-musl"]))?;
    // What the lint checks of CI run (`cargo fmt --check`, `cargo clippy`).
    run(root, Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))
}

/// Profiles this machine and searches the family that `dynofa run` embeds.
fn default_family(root: &Path, predictor: &Path) -> Result<()> {
    anyhow::ensure!(predictor.exists(), "{}: OFA's accuracy predictor not found (give --predictor)", predictor.display());
    let dynofa = release_dynofa(root)?;
    let dir = root.join("target/default-family");
    let tables = dir.join("profile");
    run(root, Command::new(&dynofa).args(["profile", "--threads", "1,2", "--out"]).arg(&tables))?;
    let family = dir.join("cpu_w12.ron");
    run(
        root,
        Command::new(&dynofa)
            .args(["search", "--levels", "6", "--predictor"])
            .arg(predictor)
            .args([
                // Relative to the workspace (the commands run there): the family's metadata names them.
                "--lut",
                "cpu_t2=target/default-family/profile/threads_2",
                "--lut",
                "cpu_t1=target/default-family/profile/threads_1",
                "--out",
            ])
            .arg(&family),
    )?;
    // The levels must get slower as they get more accurate, on this machine, on 1 and 2
    // threads: measured whole, the way the tables were.
    let check = Command::new(&dynofa).args(["profile", "--threads", "1,2", "--family"]).arg(&family).current_dir(root).output().context("starting dynofa")?;
    anyhow::ensure!(check.status.success(), "dynofa profile --family failed: {}", String::from_utf8_lossy(&check.stderr));
    eprint!("{}", String::from_utf8_lossy(&check.stderr));
    for line in String::from_utf8_lossy(&check.stdout).lines() {
        let json: serde_json::Value = serde_json::from_str(line)?;
        anyhow::ensure!(
            json["strictly_ordered"] == true,
            "the searched family's levels are not strictly ordered in measured latency on {} thread(s): {} ms (not embedded; profile again on a quieter machine)",
            json["threads"],
            json["levels_ms"]
        );
    }
    let header = "// The embedded default family of `dynofa run` (w1.2 supernet, CPU). Made by `cargo xtask default-family`:\n\
                  // `dynofa profile` (threads 1 and 2), then `dynofa search` with OFA's accuracy predictor, minimising\n\
                  // the 2-thread latency; cpu_t1/cpu_t2 are the tables' predictions; levels checked strictly ordered in\n\
                  // measured latency on 1 and 2 threads (`dynofa profile --family`). See assets/README.md.\n";
    embed(&family, &root.join("assets/families/cpu_w12.ron"), header)?;

    let candidates = dir.join("candidates_w12.ron");
    run(root, Command::new(&dynofa).args(["search", "--objective", "mflops", "--levels", "16", "--predictor"]).arg(predictor).arg("--out").arg(&candidates))?;
    let header = "// Candidate levels for the GPU family `dynofa run` makes on a machine (w1.2 supernet): 16 sub-networks evenly\n\
                  // spaced along the accuracy–MFLOPs Pareto front, with OFA's predicted accuracy. Made by `cargo xtask default-family`\n\
                  // (`dynofa search --objective mflops --levels 16` with OFA's accuracy predictor). See assets/README.md.\n";
    embed(&candidates, &root.join("assets/families/candidates_w12.ron"), header)
}

/// Copies the family file `made` to the asset `out` (embedded in `dynofa`) under `header`.
fn embed(made: &Path, out: &Path, header: &str) -> Result<()> {
    let text = std::fs::read_to_string(made).with_context(|| format!("reading {}", made.display()))?;
    // Through a temporary file: an interrupted write must not leave a truncated asset (the
    // next build embeds it).
    let tmp = out.with_extension("ron.tmp");
    std::fs::write(&tmp, format!("{header}{text}")).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    eprintln!("wrote {} (rebuild dynofa to embed it)", out.display());
    Ok(())
}

/// `PYTHONPATH` with the project's own Python packages (`target/pydeps`) in front.
fn python_path(root: &Path) -> std::ffi::OsString {
    let mut paths = vec![root.join("target/pydeps")];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).expect("paths without separators")
}

/// ONNX Runtime (and numpy) for the ONNX export test: used where Python has them, else
/// installed with pip into `target/pydeps` (no system packages are touched, so this works
/// with a distribution's externally managed Python too). Returns the `PYTHONPATH` to use.
fn ensure_python_packages(root: &Path) -> Result<std::ffi::OsString> {
    let python_path = python_path(root);
    let present = Command::new("python3").args(["-c", "import onnxruntime, numpy"]).env("PYTHONPATH", &python_path).status();
    if present.map(|s| s.success()).unwrap_or(false) {
        return Ok(python_path);
    }
    eprintln!("installing onnxruntime and numpy with pip into target/pydeps (for the ONNX export test)");
    let target = root.join("target/pydeps");
    run(
        root,
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&target)
            .args(["onnxruntime", "numpy"]),
    )?;
    Ok(python_path)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_builds_for_boards_link_glibc() {
        assert_eq!(board_target(None, None).unwrap(), DEFAULT_BOARD_TARGET);
        assert_eq!(board_target(None, Some("wgpu")).unwrap(), GPU_BOARD_TARGET);
        assert_eq!(board_target(None, Some("dynofa/gpu-autotune")).unwrap(), GPU_BOARD_TARGET);
        assert_eq!(board_target(Some(GPU_BOARD_TARGET), Some("wgpu")).unwrap(), GPU_BOARD_TARGET);
        let err = board_target(Some("aarch64-unknown-linux-musl"), Some("wgpu")).unwrap_err().to_string();
        assert!(err.contains("musl") && err.contains("Vulkan") && err.contains(GPU_BOARD_TARGET), "{err}");
        assert_eq!(board_target(Some("aarch64-unknown-linux-musl"), None).unwrap(), "aarch64-unknown-linux-musl");
    }
}
