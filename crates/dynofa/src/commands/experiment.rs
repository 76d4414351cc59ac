//! `dynofa experiment`: the run-time policies judged against a hindsight oracle, as a sweep
//! of latency targets × kinds of competing load × policies, in one process (the supernet
//! loaded and the levels calibrated once).
//!
//! - Targets: multiples of the most accurate level's idle latency on this machine (its
//!   best thread count, measured as the oracle measures, at the start of the sweep).
//! - Loads: `none`, `compute` (busy threads on every core), `memory` (threads streaming a
//!   buffer several times the last-level cache on every core), `dnn` (another inference
//!   process, one thread), `intermittent` (the compute load on and off every quarter of
//!   the load phase: 2 s in a full run). Each load is a `dynofa load-worker` process,
//!   started once, paused (SIGSTOP) and resumed (SIGCONT) on schedule, so that its start-up
//!   does not blur the phase.
//! - Each run: an idle phase, the load phase, an idle phase.
//! - The oracle: for each cell (target × load), every configuration (level × threads) timed
//!   idle and under the cell's load, frame after frame for a slice of time, in shuffled
//!   rounds, just before the cell's runs; in each phase it runs the most accurate
//!   configuration whose median meets the target (`dynofa_runtime::oracle`). Measured per
//!   cell, not once per sweep: a shared VM's speed can drift by 2× for minutes, more than
//!   the targets' spacing, and a yardstick measured 15 minutes earlier judges the host.
//! - The host's drift that is left: each run's idle frames against its cell's idle table
//!   for the same configurations (`idle_slowdown`); the verdicts say where it passes 1.25×.
//! - Policies: `static` (the best fixed configuration in hindsight: the most accurate that
//!   meets the target under both of the run's conditions), `dofa`, `predictive`,
//!   `predictive:levels` (threads fixed at the maximum), `predictive:threads` (the level
//!   fixed at the oracle's idle choice).
//!
//! Writes `experiment.json` (one object per run), `experiment.md` (the table and the
//! verdicts) and `experiment.svg` / `.png` (one panel per policy: over-target share and accuracy
//! gap per cell) under `--out`, and each run's trace as CSV under `traces/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use dynofa_runtime::contention::{LoadKind, LoadSpec};
use dynofa_runtime::oracle::{self, ConditionTable, Measured, RunMetrics};
use dynofa_runtime::trace::{self, TraceRow};
use dynofa_runtime::{Configuration, ProcessorFamily, Requirements, Runtime, policy, stats};
use dynofa_slice::Placement;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;
use serde_json::json;

use super::run::{Frames, load_command};
use crate::weights::WeightsArgs;

/// Arguments of `dynofa experiment`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    weights: WeightsArgs,
    /// Family file (RON); default: the family `dynofa run` would use.
    #[arg(long)]
    family: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "dynofa-experiment")]
    out: PathBuf,
    /// Short runs (0.6 s idle, 1.5 s load, 0.6 s idle) and a shorter oracle measurement:
    /// the whole default sweep in under 5 minutes.
    #[arg(long)]
    quick: bool,
    /// Latency targets, as multiples of the most accurate level's idle latency.
    #[arg(long, value_delimiter = ',', default_value = "1.0,1.3,2.0")]
    targets: Vec<f64>,
    /// Loads: none, compute, memory, dnn, intermittent.
    #[arg(long, value_delimiter = ',', default_value = "none,compute,memory,dnn,intermittent")]
    loads: Vec<String>,
    /// Policies: static, dofa, predictive, predictive:levels, predictive:threads.
    #[arg(long, value_delimiter = ',', default_values = POLICIES)]
    policies: Vec<String>,
    /// Most threads the DNN may use (default: the cores this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the oracle's measurement order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The phases of a run, in seconds.
#[derive(Debug, Clone, Copy, Serialize)]
struct Phases {
    idle_before_s: f64,
    load_s: f64,
    idle_after_s: f64,
}

impl Phases {
    fn total_s(&self) -> f64 {
        self.idle_before_s + self.load_s + self.idle_after_s
    }

    /// The load schedule of `load` in these phases.
    fn schedule(&self, load: Load) -> LoadSpec {
        let (start, end) = (self.idle_before_s, self.idle_before_s + self.load_s);
        let spec = match load {
            Load::None => return LoadSpec::default(),
            Load::Intermittent => format!("{start}-{end}:1/{}", self.load_s / 4.0),
            _ => format!("{start}-{end}:1"),
        };
        spec.parse().expect("a well-formed schedule")
    }
}

/// A kind of competing load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    None,
    Compute,
    Memory,
    Dnn,
    Intermittent,
}

impl Load {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "none" => Load::None,
            "compute" => Load::Compute,
            "memory" => Load::Memory,
            "dnn" => Load::Dnn,
            "intermittent" => Load::Intermittent,
            _ => bail!("--loads: {name:?} is not none, compute, memory, dnn or intermittent"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Load::None => "none",
            Load::Compute => "compute",
            Load::Memory => "memory",
            Load::Dnn => "dnn",
            Load::Intermittent => "intermittent",
        }
    }

    /// The condition its load phase runs under: the worker it resumes (`None`: idle).
    fn condition(self) -> Load {
        match self {
            Load::Intermittent => Load::Compute,
            other => other,
        }
    }

    /// The load its worker makes on a machine with `cores` cores (`None`: no worker).
    fn worker_kind(self, cores: usize) -> Option<LoadKind> {
        match self {
            Load::None | Load::Intermittent => None,
            Load::Compute => Some(LoadKind::Busy { threads: cores }),
            Load::Memory => Some(LoadKind::Memory { threads: cores }),
            Load::Dnn => Some(LoadKind::Dnn { threads: 1 }),
        }
    }
}

/// A load process, started paused.
struct Worker {
    child: Child,
}

impl Worker {
    /// Starts `dynofa load-worker ARGS`, waits until it says it is ready (a DNN load
    /// builds its network first), then pauses it.
    fn start(exe: &Path, kind: &LoadKind) -> Result<Self> {
        let mut child = load_command(exe, kind).stdout(Stdio::piped()).spawn().with_context(|| format!("starting the load worker {kind:?}"))?;
        let stdout = child.stdout.take();
        // Killed and reaped when dropped, whatever happens next.
        let mut worker = Worker { child };
        let mut line = String::new();
        BufReader::new(stdout.context("the load worker's stdout")?).read_line(&mut line).context("reading the load worker's stdout")?;
        anyhow::ensure!(line.trim() == "ready", "the load worker {kind:?} did not start (said {:?})", line.trim());
        worker.check_alive(kind)?;
        worker.signal(Signal::Pause)?;
        Ok(worker)
    }

    /// An error naming the load when its process has ended (a paused or running one is
    /// alive).
    fn check_alive(&mut self, kind: &LoadKind) -> Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("the load worker {kind:?} ended ({status})"),
            None => Ok(()),
        }
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        #[cfg(unix)]
        {
            let sig = match signal {
                Signal::Pause => libc::SIGSTOP,
                Signal::Resume => libc::SIGCONT,
            };
            // SAFETY: `kill` only sends a signal; the pid is our own child's, not yet reaped.
            let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
            anyhow::ensure!(rc == 0, "cannot {signal:?} the load worker: {}", std::io::Error::last_os_error());
            Ok(())
        }
        #[cfg(not(unix))]
        {
            let _ = signal;
            bail!("pausing a load worker needs a Unix system")
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Pause,
    Resume,
}

/// One run of the sweep, as `experiment.json` holds it.
#[derive(Debug, Clone, Serialize)]
struct RunRecord {
    target_x: f64,
    target_ms: f64,
    load: String,
    policy: String,
    /// The policy as run (`static:4@2`, `predictive:threads:3`, …).
    policy_run: String,
    #[serde(flatten)]
    metrics: RunMetrics,
    /// Whether the run meets the goal: ≤ 5% over target and within 1 pp of the oracle
    /// (`None` where the oracle itself cannot meet the target).
    meets_goal: Option<bool>,
    trace: PathBuf,
}

/// Over-target share (%) and accuracy gap (pp) a run may have and meet the goal.
const GOAL_OVER_PCT: f64 = 5.0;
const GOAL_GAP_PP: f64 = 1.0;

/// The policies a sweep compares: the best fixed configuration in hindsight, the reference,
/// the manager and its two single-knob ablations (`predictive:threads` runs at the idle
/// oracle's level).
const POLICIES: [&str; 5] = ["static", "dofa", "predictive", "predictive:levels", "predictive:threads"];

/// Runs the sweep.
pub fn run(args: Args) -> Result<()> {
    let loads: Vec<Load> = args.loads.iter().map(|l| Load::parse(l)).collect::<Result<_>>()?;
    for p in &args.policies {
        anyhow::ensure!(POLICIES.contains(&p.as_str()), "--policies: {p:?} is not one of {}", POLICIES.join(", "));
    }
    for (i, &x) in args.targets.iter().enumerate() {
        anyhow::ensure!(x.is_finite() && x > 0.0, "--targets: {x} is not a positive multiple");
        anyhow::ensure!(!args.targets[..i].contains(&x), "--targets: {x} is given twice");
    }
    for (i, l) in args.loads.iter().enumerate() {
        anyhow::ensure!(!args.loads[..i].contains(l), "--loads: {l} is given twice");
    }
    for (i, p) in args.policies.iter().enumerate() {
        anyhow::ensure!(!args.policies[..i].contains(p), "--policies: {p} is given twice");
    }
    let phases =
        if args.quick { Phases { idle_before_s: 0.6, load_s: 1.5, idle_after_s: 0.6 } } else { Phases { idle_before_s: 2.0, load_s: 8.0, idle_after_s: 2.0 } };
    let cores = dynofa_runtime::monitor::system::allowed_cores();
    let max_threads = args.threads.unwrap_or(cores).max(1);
    std::fs::create_dir_all(args.out.join("traces")).with_context(|| format!("creating {}", args.out.display()))?;
    let started = Instant::now();

    let (file, family_path) = match &args.family {
        Some(path) => (dynofa_slice::family_file::FamilyFile::read(path)?, path.clone()),
        None => super::run::family_for_run()?,
    };
    eprintln!("family: {}", family_path.display());
    let supernet = args.weights.load(&Device::flex())?;
    let cpu = ProcessorFamily::load(&supernet, file, &family_path, &Placement::Cpu { threads: max_threads }, "cpu")?;
    drop(supernet);
    let mut runtime = Runtime::on_processors(vec![cpu])?;
    runtime.warm_up()?;
    let calibration = runtime.calibrate(if args.quick { 5 } else { 9 })?;
    let model = runtime.level_table().clone();
    let top = model.levels() - 1;
    let (calibrated_threads, calibrated_ms) =
        (1..=max_threads).filter_map(|t| Some((t, model.predict(top, t)?))).min_by(|a, b| a.1.total_cmp(&b.1)).context("no idle latency for the top level")?;
    eprintln!(
        "idle calibration: {} rounds{}; most accurate level ({top}) {calibrated_ms:.2} ms on {calibrated_threads} thread(s)",
        calibration.rounds,
        if calibration.extended { format!(" (extended: samples spread up to {:.0}%)", calibration.worst_spread * 100.0) } else { String::new() }
    );

    // The load workers, started paused.
    let exe = std::env::current_exe().context("cannot find the dynofa executable to start the loads")?;
    let mut workers: Vec<(Load, Worker)> = Vec::new();
    for load in &loads {
        let condition = load.condition();
        if let Some(kind) = condition.worker_kind(cores)
            && !workers.iter().any(|(l, _)| *l == condition)
        {
            workers.push((condition, Worker::start(&exe, &kind)?));
        }
    }
    let worker = |load: Load| workers.iter().find(|(l, _)| *l == load.condition()).map(|(_, w)| w);

    // The targets' base: the top level's idle median measured the way the oracle measures
    // (sustained, in shuffled rounds), the yardstick the runs are judged by; the
    // calibration's figure may come from another moment of a host whose speed drifts.
    let configs: Vec<Configuration> =
        (0..model.levels()).flat_map(|level| (1..=max_threads).map(move |threads| Configuration { device: 0, level, threads })).collect();
    let oracle_plan = if args.quick { OraclePlan { rounds: 1, slice_s: 0.06 } } else { OraclePlan { rounds: 2, slice_s: 0.25 } };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let base = oracle_plan.measure(&mut runtime, &configs, Load::None, None, &mut rng)?;
    let top_idle = base
        .configs
        .iter()
        .filter(|c| c.level == top)
        .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
        .context("the oracle measured no configuration of the top level")?;
    let top_idle_ms = top_idle.median_ms;
    eprintln!("targets: multiples of the most accurate level's idle median, {top_idle_ms:.2} ms on {} thread(s)", top_idle.threads);
    if oracle::drifted(calibrated_ms / top_idle_ms) {
        eprintln!(
            "note: the calibration measured {calibrated_ms:.2} ms for it just before: this machine's speed drifts (a shared host?); the table gives each run's idle slowdown"
        );
    }

    // The sweep.
    let frames = Frames::open("synthetic")?;
    let cells = args.targets.len() * loads.len() * args.policies.len();
    let bar = crate::progress::bar(cells as u64, "{bar:30} {pos}/{len} runs  {msg}", false);
    let mut records: Vec<RunRecord> = Vec::new();
    let mut cell_tables: Vec<CellOracle> = Vec::new();
    for &target_x in &args.targets {
        let target_ms = target_x * top_idle_ms;
        for &load in &loads {
            // The oracle of this cell: every configuration idle and under the load, measured
            // just before its runs, so that a host whose speed drifts over the sweep is
            // judged at the speed it has now.
            bar.set_message(format!("target {target_x}× ({target_ms:.1} ms), load {}: the oracle", load.name()));
            let idle = oracle_plan.measure(&mut runtime, &configs, Load::None, None, &mut rng)?;
            let loaded = match load.condition() {
                Load::None => idle.clone(),
                condition => oracle_plan.measure(&mut runtime, &configs, condition, worker(condition), &mut rng)?,
            };
            let (idle, loaded) = (&idle, &loaded);
            let schedule = phases.schedule(load);
            for name in &args.policies {
                let policy_run = match name.as_str() {
                    "static" => {
                        let best = oracle::best_static(&[idle, loaded], target_ms).context("no configuration measured")?;
                        format!("static:{}@{}", best.level, best.threads)
                    }
                    "predictive:threads" => format!("predictive:threads:{}", idle.oracle(target_ms).map_or(top, |c| c.config.level)),
                    other => other.to_string(),
                };
                bar.set_message(format!("target {target_x}× ({target_ms:.1} ms), load {}, {policy_run}", load.name()));
                runtime.restart(policy::by_name(&policy_run, runtime.level_tables())?, Requirements::latency(target_ms)?)?;
                let rows = run_once(&mut runtime, &frames, &schedule, phases.total_s(), worker(load))?;
                let trace_path = args.out.join("traces").join(format!("{target_x}x_{}_{}.csv", load.name(), name.replace(':', "-")));
                trace::write_csv(&trace_path, &rows)?;
                let run_frames: Vec<oracle::Frame> = rows
                    .iter()
                    .map(|r| oracle::Frame { t_s: r.t_s, level: r.level, threads: r.threads, accuracy: r.acc_pred, latency_ms: r.latency_ms })
                    .collect();
                let metrics = oracle::evaluate(&run_frames, &schedule, idle, loaded, target_ms);
                let meets_goal = metrics.oracle_feasible.then_some(metrics.over_pct <= GOAL_OVER_PCT && metrics.acc_gap_pp <= GOAL_GAP_PP);
                records.push(RunRecord {
                    target_x,
                    target_ms,
                    load: load.name().into(),
                    policy: name.clone(),
                    policy_run,
                    metrics,
                    meets_goal,
                    trace: trace_path,
                });
                bar.inc(1);
            }
            let tables = if load.condition() == Load::None { vec![idle.clone()] } else { vec![idle.clone(), loaded.clone()] };
            cell_tables.push(CellOracle { target_x, load: load.name().into(), tables });
        }
    }
    bar.finish_and_clear();
    drop(workers);

    let machine = dynofa_profiler::machine::Machine::this();
    let isa = dynofa_kernels::isa::Isa::best().name();
    let report = json!({
        "machine": { "cpu": machine.cpu_model, "cores": cores, "isa": isa },
        "family": family_path,
        "threads": max_threads,
        "phases": phases,
        "calibration": { "rounds": calibration.rounds, "extended": calibration.extended, "worst_spread": calibration.worst_spread },
        "top_level": top,
        "top_idle_ms": top_idle_ms,
        "calibrated_top_idle_ms": calibrated_ms,
        "base": base,
        "oracle": cell_tables,
        "runs": records,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let json_path = args.out.join("experiment.json");
    dynofa_supernet::files::write_atomically(&json_path, |f| serde_json::to_writer_pretty(&mut *f, &report).map_err(std::io::Error::other))?;
    let table = markdown(
        &records,
        &args.policies,
        &format!("{} ({} cores, {isa})", machine.cpu_model.as_deref().unwrap_or("unknown CPU"), cores),
        top_idle_ms,
        calibrated_ms,
    );
    let md_path = args.out.join("experiment.md");
    dynofa_supernet::files::write_atomically(&md_path, |f| std::io::Write::write_all(f, table.as_bytes()))?;
    let svg_path = args.out.join("experiment.svg");
    plot_sweep(&svg_path, &records, &args.targets, &loads, &args.policies)?;
    print!("{table}");
    eprintln!(
        "{} runs in {:.0} s\nresults: {}\ntable:   {}\nplot:    {}",
        records.len(),
        started.elapsed().as_secs_f64(),
        json_path.display(),
        md_path.display(),
        svg_path.display()
    );
    Ok(())
}

/// The oracle's tables of one cell of the sweep (its target and load).
#[derive(Debug, Clone, Serialize)]
struct CellOracle {
    target_x: f64,
    load: String,
    /// Idle, then (for a load) under its condition.
    tables: Vec<ConditionTable>,
}

/// How the oracle measures a condition: in each of `rounds` rounds (a shuffled order each),
/// every configuration runs frame after frame for `slice_s` seconds (at least 4 frames; the
/// first, cache-cold, is not counted). Sustained, because that is how a policy runs them:
/// on a 2-vCPU VM one thread ran level 4 in 20 ms between forwards of other
/// configurations, and in 30–35 ms frame after frame.
#[derive(Debug, Clone, Copy)]
struct OraclePlan {
    rounds: usize,
    slice_s: f64,
}

impl OraclePlan {
    /// Every configuration of `configs` measured under `condition`, its `worker` (if any)
    /// resumed for the measurement and paused after it.
    fn measure(
        &self,
        runtime: &mut Runtime,
        configs: &[Configuration],
        condition: Load,
        worker: Option<&Worker>,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<ConditionTable> {
        if let Some(w) = worker {
            w.signal(Signal::Resume)?;
            // The load takes hold (its threads scheduled, its buffers in cache).
            std::thread::sleep(Duration::from_millis(300));
        }
        let measured = self.samples(runtime, configs, rng);
        if let Some(w) = worker {
            w.signal(Signal::Pause)?;
        }
        let model = runtime.level_table();
        Ok(ConditionTable {
            condition: condition.name().into(),
            configs: configs
                .iter()
                .zip(measured?)
                .map(|(c, samples_ms)| Measured {
                    level: c.level,
                    threads: c.threads,
                    accuracy: model.accuracy[c.level],
                    median_ms: stats::nearest_rank(&samples_ms, 0.5),
                    p95_ms: stats::nearest_rank(&samples_ms, 0.95),
                    samples_ms,
                })
                .collect(),
        })
    }

    /// The latencies (ms, ascending) of each of `configs` on the machine as it is now.
    fn samples(&self, runtime: &mut Runtime, configs: &[Configuration], rng: &mut rand_chacha::ChaCha8Rng) -> Result<Vec<Vec<f64>>> {
        let mut samples = vec![Vec::new(); configs.len()];
        let mut order: Vec<usize> = (0..configs.len()).collect();
        for _ in 0..self.rounds {
            order.shuffle(rng);
            for &i in &order {
                runtime.time_forward(configs[i])?;
                let start = Instant::now();
                let mut frames = 0;
                while frames < 4 || start.elapsed().as_secs_f64() < self.slice_s {
                    samples[i].push(runtime.time_forward(configs[i])?);
                    frames += 1;
                }
            }
        }
        Ok(samples.into_iter().map(stats::sorted).collect())
    }
}

/// Runs frames for `seconds`, resuming `worker` while `schedule` is on; returns the trace.
fn run_once(runtime: &mut Runtime, frames: &Frames, schedule: &LoadSpec, seconds: f64, worker: Option<&Worker>) -> Result<Vec<TraceRow>> {
    let start = Instant::now();
    let mut rows = Vec::new();
    let mut on = false;
    let mut index = 0;
    loop {
        let t = start.elapsed().as_secs_f64();
        if t >= seconds {
            break;
        }
        let want = schedule.active_at(t);
        if let (Some(w), true) = (worker, want != on) {
            w.signal(if want { Signal::Resume } else { Signal::Pause })?;
            on = want;
        }
        let Some(frame) = frames.get(index) else { bail!("the synthetic frames are always readable") };
        index += 1;
        let mut row = TraceRow::from(&runtime.infer(&frame)?);
        row.t_s = start.elapsed().as_secs_f64();
        rows.push(row);
    }
    if let (Some(w), true) = (worker, on) {
        w.signal(Signal::Pause)?;
    }
    Ok(rows)
}

/// The sweep as a markdown table, then per policy its mean over the cells where the
/// oracle meets the target, and the verdicts.
fn markdown(records: &[RunRecord], policies: &[String], machine: &str, top_idle_ms: f64, calibrated_ms: f64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Machine: {machine}; the most accurate level's idle latency (the targets' base): {top_idle_ms:.2} ms measured as the oracle measures at the start ({calibrated_ms:.2} ms in the calibration); each cell's oracle measured just before its runs.\n"
    );
    let _ = writeln!(
        out,
        "| target | load | policy | frames | over % | over during load % | acc gap (pp) | the oracle's own over % | gap to the p95 oracle (pp) | reaction (frames / ms) | recovery (s) | switches | idle slowdown | goal |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let opt = |v: Option<f64>, digits: usize| v.map_or("never".to_string(), |x| format!("{x:.digits$}"));
    for r in records {
        let m = &r.metrics;
        let goal = match r.meets_goal {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "oracle infeasible",
        };
        let _ = writeln!(
            out,
            "| {}× ({:.1} ms) | {} | {} | {} | {:.1} | {:.1} | {:.2} | {} | {:.2} | {} / {} | {} | {} | {} | {goal} |",
            r.target_x,
            r.target_ms,
            r.load,
            r.policy_run,
            m.frames,
            m.over_pct,
            m.over_during_load_pct,
            m.acc_gap_pp,
            m.oracle_over_pct.map_or("n/a".into(), |x| format!("{x:.1}")),
            m.acc_gap_tail_pp,
            opt(m.reaction_frames.map(|f| f as f64), 0),
            opt(m.reaction_ms, 0),
            opt(m.recovery_s, 2),
            m.switches,
            m.idle_slowdown.map_or("n/a".into(), |x| format!("{x:.2}×")),
        );
    }
    let slowdowns = stats::sorted(records.iter().filter_map(|r| r.metrics.idle_slowdown));
    if !slowdowns.is_empty() {
        let drifted = slowdowns.iter().filter(|&&x| oracle::drifted(x)).count();
        let _ = writeln!(
            out,
            "\nIdle slowdown: how much slower each run's idle frames ran than its cell's oracle measured the same configurations \
             (median {:.2}×, {:.2}–{:.2}×); {drifted} of {} runs beyond {}× either way, where the machine itself ran at another speed than when \
             the oracle was measured and the gaps judge the host as much as the policy.",
            stats::nearest_rank(&slowdowns, 0.5),
            slowdowns[0],
            slowdowns[slowdowns.len() - 1],
            slowdowns.len(),
            oracle::DRIFT_FACTOR,
        );
    }
    let _ = writeln!(out, "\nPer policy, over the cells where the oracle meets the target:\n");
    let _ = writeln!(
        out,
        "| policy | cells | meets the goal | mean over % | worst over % | mean acc gap (pp) | worst acc gap (pp) | mean gap to the p95 oracle (pp) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let summary = |policy: &str| {
        let runs: Vec<&RunRecord> = records.iter().filter(|r| r.policy == policy && r.meets_goal.is_some()).collect();
        let n = runs.len().max(1) as f64;
        let mean = |f: &dyn Fn(&RunRecord) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / n;
        let worst = |f: &dyn Fn(&RunRecord) -> f64| runs.iter().map(|r| f(r)).fold(f64::NEG_INFINITY, f64::max);
        (
            runs.len(),
            runs.iter().filter(|r| r.meets_goal == Some(true)).count(),
            mean(&|r| r.metrics.over_pct),
            worst(&|r| r.metrics.over_pct),
            mean(&|r| r.metrics.acc_gap_pp),
            worst(&|r| r.metrics.acc_gap_pp),
        )
    };
    let tail_gap = |policy: &str| {
        let runs: Vec<&RunRecord> = records.iter().filter(|r| r.policy == policy && r.meets_goal.is_some()).collect();
        runs.iter().map(|r| r.metrics.acc_gap_tail_pp).sum::<f64>() / runs.len().max(1) as f64
    };
    for p in policies {
        let (cells, met, over, over_worst, gap, gap_worst) = summary(p);
        if cells == 0 {
            let _ = writeln!(out, "| {p} | 0 | – | n/a | n/a | n/a | n/a | n/a |");
        } else {
            let _ = writeln!(out, "| {p} | {cells} | {met} | {over:.2} | {over_worst:.1} | {gap:.2} | {gap_worst:.2} | {:.2} |", tail_gap(p));
        }
    }
    if policies.iter().any(|p| p == "predictive") && summary("predictive").0 > 0 {
        let (_, _, over, _, gap, _) = summary("predictive");
        let others: Vec<&String> = policies.iter().filter(|p| *p != "predictive" && summary(p).0 > 0).collect();
        let beaten: Vec<&String> = others
            .iter()
            .copied()
            .filter(|p| {
                let (_, _, o, _, g, _) = summary(p);
                over <= o && gap <= g
            })
            .collect();
        let others = others.len();
        let _ = writeln!(
            out,
            "\n`predictive` is at least as good on both (mean over-target share and mean accuracy gap) as {} of the {others} others{}.",
            beaten.len(),
            if beaten.len() < others {
                format!(
                    " (beaten on one: {})",
                    policies.iter().filter(|p| *p != "predictive" && summary(p).0 > 0 && !beaten.contains(p)).cloned().collect::<Vec<_>>().join(", ")
                )
            } else {
                String::new()
            }
        );
    }
    // The cells where the yardstick holds: the oracle's own configurations keep ≤ 5% of
    // frames over the target, and the host ran at the speed the oracle measured.
    let sound = |r: &&RunRecord| {
        r.meets_goal.is_some() && r.metrics.oracle_over_pct.is_some_and(|o| o <= GOAL_OVER_PCT) && r.metrics.idle_slowdown.is_some_and(|x| !oracle::drifted(x))
    };
    let sound_runs: Vec<&RunRecord> = records.iter().filter(|r| r.policy == "predictive").filter(sound).collect();
    if policies.iter().any(|p| p == "predictive") {
        let _ = writeln!(
            out,
            "\nWhere the yardstick holds (the oracle's own configurations ≤ {GOAL_OVER_PCT}% over, no drift): `predictive` meets the goal in {} of {} cells{}.",
            sound_runs.iter().filter(|r| r.meets_goal == Some(true)).count(),
            sound_runs.len(),
            if sound_runs.is_empty() {
                String::new()
            } else {
                format!(" ({})", sound_runs.iter().map(|r| format!("{}× {}", r.target_x, r.load)).collect::<Vec<_>>().join(", "))
            }
        );
    }
    let misses: Vec<&RunRecord> = records.iter().filter(|r| r.policy == "predictive" && r.meets_goal == Some(false)).collect();
    if !misses.is_empty() {
        let _ = writeln!(out, "\nWhere `predictive` misses the goal, why:\n");
        for r in misses {
            let _ = writeln!(out, "- {}× {}: {}", r.target_x, r.load, miss_reason(&r.metrics));
        }
    }
    out
}

/// Why a run misses the goal (≤ 5% of frames over the target and within 1 pp of the
/// oracle), in the measurements' words.
fn miss_reason(m: &RunMetrics) -> String {
    let mut why = Vec::new();
    if m.over_pct > GOAL_OVER_PCT {
        let reaction = m.reaction_frames.map_or("never settled under the load".into(), |f| format!("settled {f} frames after the onset"));
        why.push(format!("{:.1}% of frames over the target ({:.1}% while loaded; {reaction})", m.over_pct, m.over_during_load_pct));
    }
    if m.acc_gap_pp > GOAL_GAP_PP {
        why.push(format!("{:.2} pp below the oracle", m.acc_gap_pp));
        match m.oracle_over_pct {
            Some(o) if o > GOAL_OVER_PCT => why.push(format!(
                "the oracle's own configurations would run {o:.1}% of frames over the target (their medians meet it, their tails do not): the oracle itself misses the 5% bound; {:.2} pp from the p95 oracle",
                m.acc_gap_tail_pp
            )),
            _ => why.push(format!("{:.2} pp from the p95 oracle", m.acc_gap_tail_pp)),
        }
    }
    if let Some(slowdown) = m.idle_slowdown.filter(|&x| oracle::drifted(x)) {
        why.push(format!(
            "the idle frames ran at {slowdown:.2}× the latency the oracle measured (the host drifted: the oracle's choices {} during this run)",
            if slowdown > 1.0 { "would not have met the target" } else { "were too cautious" }
        ));
    }
    why.join("; ")
}

/// One panel per policy: a cell per target × load, coloured by the goal (green: met, red:
/// missed, grey: the oracle cannot meet the target), with its over-target share and its
/// accuracy gap.
fn plot_sweep(path: &Path, records: &[RunRecord], targets: &[f64], loads: &[Load], policies: &[String]) -> Result<()> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    let mut svg = String::new();
    (|| -> Result<()> {
        let (cell_w, cell_h, label_w, head_h) = (120i32, 46i32, 90i32, 40i32);
        let panel_w = label_w + cell_w * loads.len() as i32;
        let panel_h = head_h + cell_h * targets.len() as i32 + 20;
        let root = SVGBackend::with_string(&mut svg, ((panel_w + 20) as u32, (panel_h * policies.len() as i32 + 50) as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let text = |size: i32| ("sans-serif", size).into_font();
        root.draw(&Text::new("dynofa experiment: % of frames over target / accuracy gap to the oracle (pp)", (10, 10), text(16))).map_err(|e| fail(&e))?;
        for (p, policy) in policies.iter().enumerate() {
            let y0 = 40 + p as i32 * panel_h;
            root.draw(&Text::new(policy.clone(), (10, y0), text(15))).map_err(|e| fail(&e))?;
            for (j, load) in loads.iter().enumerate() {
                root.draw(&Text::new(load.name(), (10 + label_w + j as i32 * cell_w + 6, y0 + 20), text(12))).map_err(|e| fail(&e))?;
            }
            for (i, &x) in targets.iter().enumerate() {
                let y = y0 + head_h + i as i32 * cell_h;
                root.draw(&Text::new(format!("target {x}×"), (10, y + 16), text(12))).map_err(|e| fail(&e))?;
                for (j, load) in loads.iter().enumerate() {
                    let Some(r) = records.iter().find(|r| r.policy == *policy && r.target_x == x && r.load == load.name()) else { continue };
                    let fill = match r.meets_goal {
                        Some(true) => RGBColor(166, 219, 160),
                        Some(false) => RGBColor(244, 165, 130),
                        None => RGBColor(210, 210, 210),
                    };
                    let x0 = 10 + label_w + j as i32 * cell_w;
                    root.draw(&Rectangle::new([(x0, y), (x0 + cell_w - 4, y + cell_h - 4)], fill.filled())).map_err(|e| fail(&e))?;
                    root.draw(&Text::new(format!("{:.1}% / {:+.2}", r.metrics.over_pct, r.metrics.acc_gap_pp), (x0 + 6, y + 14), text(13)))
                        .map_err(|e| fail(&e))?;
                }
            }
        }
        root.present().map_err(|e| fail(&e))?;
        Ok(())
    })()?;
    dynofa_runtime::plot::write(path, &svg)?;
    // The same as PNG beside it, to paste into a report.
    Ok(dynofa_runtime::plot::write(&path.with_extension("png"), &svg)?)
}
