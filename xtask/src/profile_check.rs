//! `cargo xtask profile-check`: are the latency tables the same from every profile? Runs
//! `dynofa profile` several times in a row, on a quiet machine and under an intermittent
//! competing load this check starts itself (busy threads on every core, switched on and
//! off at random every 0.2–2 s), and prints how far the profiles agree (`dynofa profile
//! --compare`) and how well each predicts its held-out validation networks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Arguments of `cargo xtask profile-check`.
#[derive(clap::Args)]
pub struct Args {
    /// Profiles per condition.
    #[arg(long, default_value_t = 3)]
    profiles: usize,
    /// Resolutions profiled.
    #[arg(long, default_value = "160,192,224")]
    resolutions: String,
    /// Thread counts profiled.
    #[arg(long, default_value = "1")]
    threads: String,
    /// Random sub-networks the comparison predicts.
    #[arg(long, default_value_t = 200)]
    networks: usize,
    /// Conditions: quiet, load (the intermittent competing load), or both.
    #[arg(long, default_value = "quiet,load", value_delimiter = ',')]
    conditions: Vec<String>,
    /// Where the profiles go.
    #[arg(long, default_value = "target/profile-check")]
    out: PathBuf,
    /// More arguments for `dynofa profile` (e.g. `--budget 60`).
    #[arg(last = true)]
    extra: Vec<String>,
}

/// Busy threads on every core, switched on and off at random every 0.2–2 s until dropped.
struct IntermittentLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    switches: Arc<std::sync::atomic::AtomicUsize>,
}

impl IntermittentLoad {
    fn start(seed: u64) -> Self {
        let (stop, on) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let switches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut threads: Vec<JoinHandle<()>> = (0..cores)
            .map(|_| {
                let (stop, on) = (stop.clone(), on.clone());
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        if on.load(Ordering::Relaxed) {
                            for _ in 0..10_000 {
                                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                            }
                        } else {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                })
            })
            .collect();
        let (stop_c, switches_c) = (stop.clone(), switches.clone());
        threads.push(std::thread::spawn(move || {
            // xorshift64*: a seeded schedule without a dependency.
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = move || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
            };
            while !stop_c.load(Ordering::Relaxed) {
                let until = Instant::now() + Duration::from_secs_f64(0.2 + 1.8 * next());
                while Instant::now() < until && !stop_c.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                on.fetch_xor(true, Ordering::Relaxed);
                switches_c.fetch_add(1, Ordering::Relaxed);
            }
        }));
        IntermittentLoad { stop, threads, switches }
    }
}

impl Drop for IntermittentLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One profile's figures, from its summary lines.
struct Row {
    condition: String,
    profile: usize,
    threads: u64,
    seconds: f64,
    rounds: u64,
    stop: String,
    slow_share: f64,
    within_5: f64,
    within_10: f64,
    mape: f64,
}

/// Runs the check with the release `dynofa`.
pub fn check(root: &Path, dynofa: &Path, args: &Args) -> Result<()> {
    anyhow::ensure!(args.profiles >= 2, "--profiles {}: at least two to compare", args.profiles);
    let out = root.join(&args.out);
    let mut rows = Vec::new();
    let mut agreements = Vec::new();
    for condition in &args.conditions {
        anyhow::ensure!(matches!(condition.as_str(), "quiet" | "load"), "--conditions: {condition} is neither quiet nor load");
        let load = (condition == "load").then(|| IntermittentLoad::start(0x10AD));
        let mut dirs = Vec::new();
        for p in 1..=args.profiles {
            let dir = out.join(condition).join(p.to_string());
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
            eprintln!("profile-check: {condition}, profile {p}/{} → {}", args.profiles, dir.display());
            // Thread counts are for the CPU (`-- --device gpu` profiles a GPU).
            let gpu = args.extra.iter().any(|a| a.starts_with("gpu") || a.starts_with("--device=gpu"));
            let threads: &[&str] = if gpu { &[] } else { &["--threads", &args.threads] };
            let run = Command::new(dynofa)
                .args(["profile", "--resolutions", &args.resolutions])
                .args(threads)
                .arg("--out")
                .arg(&dir)
                .args(&args.extra)
                .current_dir(root)
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("starting {}", dynofa.display()))?;
            anyhow::ensure!(run.status.success(), "dynofa profile failed with {}", run.status);
            for line in String::from_utf8_lossy(&run.stdout).lines() {
                let json: serde_json::Value = serde_json::from_str(line).with_context(|| format!("dynofa profile printed {line}"))?;
                let metadata: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(Path::new(json["dir"].as_str().unwrap_or_default()).join("metadata.json"))?)?;
                rows.push(Row {
                    condition: condition.clone(),
                    profile: p,
                    threads: json["threads"].as_u64().unwrap_or(0),
                    seconds: json["build_seconds"].as_f64().unwrap_or(f64::NAN),
                    rounds: json["rounds"].as_u64().unwrap_or(0),
                    stop: json["stop"].as_str().unwrap_or("?").into(),
                    slow_share: metadata["noise"]["slow_share"].as_f64().unwrap_or(f64::NAN),
                    within_5: json["validation"]["within_5_pct"].as_f64().unwrap_or(f64::NAN),
                    within_10: json["validation"]["within_10_pct"].as_f64().unwrap_or(f64::NAN),
                    mape: json["validation"]["held_out_mape_percent"].as_f64().unwrap_or(f64::NAN),
                });
            }
            dirs.push(dir);
        }
        let switches = load.as_ref().map(|l| l.switches.load(Ordering::Relaxed));
        drop(load);
        if let Some(switches) = switches {
            eprintln!("profile-check: the load switched {switches} times");
        }
        let compare = Command::new(dynofa)
            .args(["profile", "--networks", &args.networks.to_string(), "--compare"])
            .args(&dirs)
            .current_dir(root)
            .output()
            .with_context(|| format!("starting {}", dynofa.display()))?;
        anyhow::ensure!(compare.status.success(), "dynofa profile --compare failed: {}", String::from_utf8_lossy(&compare.stderr));
        for line in String::from_utf8_lossy(&compare.stdout).lines() {
            let json: serde_json::Value = serde_json::from_str(line)?;
            agreements.push((condition.clone(), json["tables"].as_str().unwrap_or("").to_string(), json["agreement"].clone()));
        }
    }

    println!("| condition | profile | threads | seconds | rounds | stop | slow phases | held out within ±5% | within ±10% | held-out MAPE |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.0}% | {:.0}% | {:.0}% | {:.1}% |",
            r.condition,
            r.profile,
            r.threads,
            r.seconds,
            r.rounds,
            r.stop,
            100.0 * r.slow_share,
            r.within_5,
            r.within_10,
            r.mape
        );
    }
    println!();
    println!("| condition | tables | networks | all within ±5% of their median | spread ≤ 1.10 | median spread | worst spread |");
    println!("|---|---|---|---|---|---|---|");
    for (condition, tables, a) in &agreements {
        println!(
            "| {condition} | {tables} | {} | {:.1}% | {:.1}% | {:.3}× | {:.3}× |",
            a["networks"],
            a["within_5_pct"].as_f64().unwrap_or(f64::NAN),
            a["spread_within_1_10_pct"].as_f64().unwrap_or(f64::NAN),
            a["median_spread"].as_f64().unwrap_or(f64::NAN),
            a["worst_spread"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
