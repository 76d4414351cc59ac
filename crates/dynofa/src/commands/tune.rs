//! `dynofa tune`: a family of levels for the machine it runs on, so that `dynofa run`
//! (without `--family`) switches between levels whose latency is ordered here — the
//! embedded default family was searched on another machine.
//!
//! By default the candidates are the embedded sub-networks along OFA's accuracy–MFLOPs
//! front (`assets/families/candidates_w12.ron`, with OFA's predicted accuracy) and the
//! levels of the embedded default family. Each is measured whole on every thread count in
//! the profiler's interleaved shuffled rounds beside a canary (as `dynofa profile
//! --family` measures a family). The family is then the accuracy–latency Pareto front on
//! the most threads, kept ordered on fewer threads too, `--levels` levels evenly spaced in
//! latency along it. With `--predictor`, latency tables are profiled here instead and
//! OFA's whole space is searched (NSGA-II, as `dynofa search`), and the levels found are
//! measured whole the same way, keeping those whose latency is ordered.
//!
//! The family is cached for this machine (see [`tuned_family_path`]), where `dynofa run`
//! finds it, or written to `--out DIR`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::*;
use dynofa_device::Processor;
use dynofa_profiler::machine::{Machine, utc_now};
use dynofa_profiler::rounds::RoundOptions;
use dynofa_profiler::{LatencyTables, ProfileOptions, Table};
use dynofa_search::AccuracyPredictor;
use dynofa_search::cost::LutLatency;
use dynofa_search::family::evenly_spaced;
use dynofa_search::nsga2::{Evaluated, Nsga2Options, Objectives, pareto_front};
use dynofa_search::space::SearchSpace;
use dynofa_slice::Placement;
use dynofa_slice::family_file::{FamilyFile, LevelInfo};
use dynofa_supernet::{Supernet, SupernetConfig, Width};
use serde_json::json;

use crate::commands::profile::{measure_whole, measure_with_progress};
use crate::commands::run::{DEFAULT_FAMILY, DEFAULT_FAMILY_NAME};
use crate::commands::search::find_family;
use crate::gpu_default::{CANDIDATES, CANDIDATES_NAME};
use dynofa_search::family::Pick;

/// The file name of a tuned family (in the cache directory of the machine, or `--out`).
pub const FAMILY_FILE: &str = "cpu_w12.ron";
/// Candidates `--quick` measures (evenly picked among all of them).
const QUICK_CANDIDATES: usize = 8;
/// Resolutions `--predictor` profiles tables for and searches (`--quick`: the first and last).
const SEARCH_RESOLUTIONS: [usize; 5] = [160, 176, 192, 208, 224];

/// Arguments of `dynofa tune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the family to DIR/cpu_w12.ron instead of this machine's cache (which is then
    /// left alone; `dynofa run --family DIR/cpu_w12.ron` runs it).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A short run (for tests): 3 rounds, 8 of the candidates.
    #[arg(long)]
    quick: bool,
    /// Thread counts to measure (default 1,…, all cores this process may use); the levels
    /// are ordered on the most threads.
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
    /// OFA's accuracy predictor (`acc_predictor.pth`): profile latency tables here and
    /// search OFA's whole space (NSGA-II) instead of choosing among the embedded candidates.
    #[arg(long, value_name = "FILE")]
    predictor: Option<PathBuf>,
    /// Levels in the family, evenly spaced in latency (fewer when the front is shorter or
    /// a level is not ordered).
    #[arg(long, default_value_t = 6)]
    levels: usize,
    /// Seconds the measurement of the sub-networks whole may take; it then stops with what
    /// it has (the table profile of `--predictor` gets as much again).
    #[arg(long, default_value_t = 50.0)]
    budget: f64,
    /// Seed of the rounds' order (and of the search).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Where `dynofa tune` caches the family of this machine (`None` without a cache
/// directory): `<cache>/tuned/<machine key>/cpu_w12.ron`, the key naming the CPU model,
/// the cores this process may use, the instruction set the kernels run and dynofa's
/// version (e.g. `amd-epyc_2c_avx2_v0.1.0`).
pub fn tuned_family_path() -> Option<PathBuf> {
    Some(dynofa_device::cache_dir()?.join("tuned").join(machine_key()).join(FAMILY_FILE))
}

/// The family `dynofa tune` cached for this machine and its path; `None` when there is
/// none, an error naming the file when it cannot be used.
pub fn tuned_family() -> Option<Result<(FamilyFile, PathBuf)>> {
    let path = tuned_family_path()?;
    if !path.exists() {
        return None;
    }
    Some(read_tuned(&path).map(|file| (file, path)))
}

/// Reads a cached tuned family, checking that it is a w1.2 CPU family with levels.
fn read_tuned(path: &Path) -> Result<FamilyFile> {
    let again = || format!("the family `dynofa tune` made for this machine ({}) cannot be used: run `dynofa tune` again (it replaces it)", path.display());
    let file = FamilyFile::read(path).map_err(anyhow::Error::from).with_context(again)?;
    let problem = if file.device != Processor::Cpu {
        Some(format!("it is a {} family", file.device))
    } else if file.width != Width::W12 {
        Some(format!("it is for the w{} supernet", file.width))
    } else if file.levels.is_empty() {
        Some("it has no levels".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(anyhow::anyhow!("{problem}").context(again())),
        None => Ok(file),
    }
}

/// This machine's key in the cache: CPU model, cores, instruction set, dynofa version.
fn machine_key() -> String {
    let model = Machine::this().cpu_model.unwrap_or_else(|| "unknown-cpu".into());
    let model: String = model.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let mut model = model.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    model.truncate(48);
    let model = model.trim_end_matches('-');
    let model = if model.is_empty() { "unknown-cpu" } else { model };
    format!("{model}_{}c_{}_v{}", dynofa_runtime::monitor::system::allowed_cores(), dynofa_kernels::Isa::best().name(), env!("CARGO_PKG_VERSION"))
}

/// Measures, picks the levels, writes the family; prints a table (stderr) and a JSON line.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    anyhow::ensure!(args.levels >= 1, "--levels must be at least 1");
    let mut threads = args.threads.clone().unwrap_or_else(|| (1..=dynofa_runtime::monitor::system::allowed_cores()).collect());
    threads.sort_unstable();
    threads.dedup();
    anyhow::ensure!(!threads.is_empty() && threads[0] > 0, "--threads must be positive");
    let path = match &args.out {
        Some(dir) => dir.join(FAMILY_FILE),
        None => tuned_family_path().context("no cache directory (set DYNOFA_CACHE_DIR or HOME), or give --out DIR")?,
    };
    let rounds = if args.quick {
        RoundOptions { min_rounds: 3, max_rounds: 3, budget_s: args.budget, seed: args.seed, ..RoundOptions::default() }
    } else {
        RoundOptions { min_rounds: 6, max_rounds: 60, budget_s: args.budget, target_ci: 0.03, seed: args.seed, ..RoundOptions::default() }
    };
    rounds.check().context("--budget")?;
    let supernet = SupernetConfig::ofa_mbv3(Width::W12).init(&Device::flex());
    let placement = Placement::Cpu { threads: *threads.last().expect("not empty") };

    // The candidates, and how the levels are picked among them once measured.
    let (candidates, pick, mut metadata) = match &args.predictor {
        None => {
            let candidates = embedded_candidates(args.quick)?;
            let what = format!(
                "{} candidates: {CANDIDATES_NAME} (along OFA's accuracy–MFLOPs front) and the levels of {DEFAULT_FAMILY_NAME}{}",
                candidates.len(),
                if args.quick { format!(", {QUICK_CANDIDATES} evenly picked (--quick)") } else { String::new() }
            );
            let predictor = FamilyFile::parse(CANDIDATES, Path::new(CANDIDATES_NAME))?.metadata.get("predictor").cloned().unwrap_or_default();
            (candidates, Selection::Front(args.levels), BTreeMap::from([("candidates".to_string(), what), ("predictor".to_string(), predictor)]))
        }
        Some(predictor) => {
            let (found, metadata) = search(&supernet, predictor, &threads, &placement, &args)?;
            (found, Selection::Ordered, metadata)
        }
    };

    eprintln!("tune: measuring {} sub-networks whole on {threads:?} thread(s), in interleaved shuffled rounds beside a canary", candidates.len());
    let subnets: Vec<_> = candidates.iter().map(|c| c.config.clone()).collect();
    let profile = measure_whole(&supernet, subnets, &threads, placement, 0, rounds, "tune")?;
    let noise = &profile.noise;
    if !noise.trustworthy {
        eprintln!(
            "warning: this machine was noisy while it was measured (canary spread {:.2}×, {:.0}% of its readings in slow phases{}, {} of {} estimates unsettled after {} round(s)); each timing was scaled by the canary beside it, and only its quiet rounds count{}",
            noise.canary_spread,
            100.0 * noise.slow_share,
            noise.steal_pct.map_or(String::new(), |s| format!(", {s:.1}% CPU steal")),
            noise.uncertain.len(),
            candidates.len() * threads.len(),
            noise.rounds,
            if args.quick { " (--quick: 3 rounds)" } else { ". Run `dynofa tune` again when the machine is quieter, or with a larger --budget" }
        );
    }
    let points: Vec<Point> = (0..candidates.len())
        .map(|i| Point { acc: candidates[i].acc_pred.unwrap_or(0.0), ms: profile.threads.iter().map(|t| t.whole[i].ms).collect() })
        .collect();
    let chosen = match pick {
        Selection::Front(levels) => pick_levels(&points, levels),
        Selection::Ordered => {
            let mut order: Vec<usize> = (0..points.len()).collect();
            order.sort_by(|&a, &b| points[a].acc.total_cmp(&points[b].acc).then(points[a].max_ms().total_cmp(&points[b].max_ms())));
            ordered_chain(&points, &order)
        }
    };
    anyhow::ensure!(!chosen.is_empty(), "no candidate could be measured");
    debug_assert!(strictly_ordered(&points, &chosen));

    let levels: Vec<LevelInfo> = chosen
        .iter()
        .map(|&i| LevelInfo {
            latency_ms: threads.iter().zip(&points[i].ms).map(|(t, &ms)| (format!("cpu_t{t}"), ms)).collect(),
            calibrated: false,
            ..candidates[i].clone()
        })
        .collect();
    let machine = Machine::this();
    let isa = dynofa_kernels::Isa::best().name();
    let cores = dynofa_runtime::monitor::system::allowed_cores();
    let max = threads.last().expect("not empty");
    metadata.insert("made".into(), utc_now());
    metadata.insert("made_by".into(), format!("dynofa tune{} (dynofa {})", if args.quick { " --quick" } else { "" }, env!("CARGO_PKG_VERSION")));
    metadata.insert(
        "machine".into(),
        format!("{} ({}, {cores} core(s) this process may use, instruction set {isa})", machine.cpu_model.as_deref().unwrap_or("unknown CPU"), machine.arch),
    );
    metadata.insert(
        "measured".into(),
        format!(
            "each candidate whole on threads {threads:?} in interleaved shuffled rounds beside a canary (the smallest sub-network at r128), scaled by it; latency_ms cpu_t<T> = the median of the quiet rounds (ms); {:.0} s",
            profile.seconds
        ),
    );
    metadata.insert(
        "rounds".into(),
        format!(
            "min {} max {} budget {:.0} s target ±{:.0}% seed {}; ran {} round(s), stopped: {:?}",
            rounds.min_rounds,
            rounds.max_rounds,
            rounds.budget_s,
            100.0 * rounds.target_ci,
            rounds.seed,
            noise.rounds,
            noise.stop
        ),
    );
    metadata.insert(
        "noise".into(),
        format!(
            "canary spread {:.2}×, {:.0}% of its readings in slow phases{}, {} estimate(s) unsettled; {}",
            noise.canary_spread,
            100.0 * noise.slow_share,
            noise.steal_pct.map_or(String::new(), |s| format!(", {s:.1}% CPU steal")),
            noise.uncertain.len(),
            if noise.trustworthy { "quiet" } else { "noisy" }
        ),
    );
    metadata.insert(
        "levels".into(),
        match pick {
            Selection::Front(n) => format!("the accuracy (acc_pred) – latency Pareto front on {max} thread(s), kept ordered on fewer threads (latency not falling), {n} levels asked for, evenly spaced in latency; {} chosen", chosen.len()),
            Selection::Ordered => format!("the levels found, those strictly ordered in measured latency on {max} thread(s) (and not falling on fewer); {} kept", chosen.len()),
        },
    );
    let family = FamilyFile { device: Processor::Cpu, metadata, levels, ..FamilyFile::parse(DEFAULT_FAMILY, Path::new(DEFAULT_FAMILY_NAME))? };
    crate::interrupt::deferred("finishing the write of the family", || {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(family.write(&path)?)
    })?;

    // The table (stderr) and the summary (stdout).
    let header: Vec<String> = threads.iter().map(|t| format!("{t} thread{}", if *t == 1 { "" } else { "s" })).collect();
    eprintln!("| level | acc_pred | MFLOPs | r | {} |", header.join(" | "));
    eprintln!("|---:|---:|---:|---:|{}", "---:|".repeat(threads.len()));
    for (l, level) in family.levels.iter().enumerate() {
        let ms: Vec<String> = threads.iter().map(|t| format!("{:.2} ms", level.latency_ms[&format!("cpu_t{t}")])).collect();
        eprintln!("| {l} | {:.2}% | {:.0} | {} | {} |", 100.0 * level.acc_pred.unwrap_or(0.0), level.mflops, level.config.resolution(), ms.join(" | "));
    }
    if chosen.len() < args.levels {
        eprintln!("{} levels, not the {} asked for: the measured front, kept ordered on every thread count, has no more", chosen.len(), args.levels);
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "family: {} ({}; {} levels, {} candidates measured in {} rounds, {seconds:.0} s){}",
        path.display(),
        if args.out.is_some() { "run it with `dynofa run --family`" } else { "this machine's: `dynofa run` uses it" },
        chosen.len(),
        candidates.len(),
        noise.rounds,
        if noise.trustworthy { "" } else { "; the machine was noisy" }
    );
    let levels_json: Vec<_> = family
        .levels
        .iter()
        .map(|l| json!({"acc": l.acc_pred, "mflops": l.mflops, "r": l.config.resolution(), "ms": threads.iter().map(|t| (t.to_string(), l.latency_ms[&format!("cpu_t{t}")])).collect::<BTreeMap<_, _>>()}))
        .collect();
    println!(
        "{}",
        json!({
            "family": path, "cached": args.out.is_none(), "levels": levels_json, "threads": threads,
            "candidates": candidates.len(), "rounds": noise.rounds, "trustworthy": noise.trustworthy, "seconds": seconds,
        })
    );
    Ok(())
}

/// How the levels are picked among the measured candidates.
#[derive(Debug, Clone, Copy)]
enum Selection {
    /// [`pick_levels`]: this many along the measured front.
    Front(usize),
    /// The candidates are the levels already (found by a search): [`ordered_chain`].
    Ordered,
}

/// The embedded candidates and the embedded family's levels, by MFLOPs, without repeats
/// or levels lacking a predicted accuracy (`quick`: [`QUICK_CANDIDATES`] evenly picked).
fn embedded_candidates(quick: bool) -> Result<Vec<LevelInfo>> {
    let mut all: Vec<LevelInfo> = Vec::new();
    for (text, name) in [(CANDIDATES, CANDIDATES_NAME), (DEFAULT_FAMILY, DEFAULT_FAMILY_NAME)] {
        let file = FamilyFile::parse(text, Path::new(name))?;
        anyhow::ensure!(file.width == Width::W12, "{name}: not a w1.2 family");
        for level in file.levels {
            if level.acc_pred.is_some() && !all.iter().any(|l| l.config == level.config) {
                all.push(level);
            }
        }
    }
    all.sort_by(|a, b| a.mflops.total_cmp(&b.mflops));
    if quick && all.len() > QUICK_CANDIDATES {
        let n = all.len();
        all = (0..QUICK_CANDIDATES).map(|i| all[(i * (n - 1) + (QUICK_CANDIDATES - 1) / 2) / (QUICK_CANDIDATES - 1)].clone()).collect();
    }
    Ok(all)
}

/// `--predictor`: latency tables profiled here for every thread count, then NSGA-II over
/// OFA's space minimising the latency on the most threads (`dynofa search`'s code).
/// Returns the levels found and the family's metadata so far.
fn search(supernet: &Supernet, predictor: &Path, threads: &[usize], placement: &Placement, args: &Args) -> Result<(Vec<LevelInfo>, BTreeMap<String, String>)> {
    let predictor_model = AccuracyPredictor::load(predictor).with_context(|| format!("loading the accuracy predictor {}", predictor.display()))?;
    let resolutions: Vec<usize> = if args.quick { vec![SEARCH_RESOLUTIONS[0], SEARCH_RESOLUTIONS[4]] } else { SEARCH_RESOLUTIONS.to_vec() };
    let rounds = if args.quick {
        RoundOptions { min_rounds: 3, max_rounds: 3, budget_s: args.budget, seed: args.seed, ..RoundOptions::default() }
    } else {
        RoundOptions { min_rounds: 3, max_rounds: 8, budget_s: args.budget, target_ci: 0.05, seed: args.seed, ..RoundOptions::default() }
    };
    eprintln!("tune: profiling latency tables for resolutions {resolutions:?} on {threads:?} thread(s)");
    let options = ProfileOptions {
        resolutions: resolutions.clone(),
        threads: threads.to_vec(),
        placement: placement.clone(),
        whole: Vec::new(),
        additivity: false,
        warm_forwards: 0,
        rounds,
    };
    let profile = measure_with_progress(supernet, &options, &|_, _| false, "tables").context("profiling the latency tables")?;
    let tables: Vec<LutLatency> = profile
        .threads
        .into_iter()
        .map(|measured| {
            let dir = PathBuf::from(format!("(tables measured by dynofa tune on {} thread(s))", measured.threads));
            let tables = measured.tables.into_iter().map(|(r, entries)| (r, Table { path: dir.join(format!("{r}_lookup_table.json")), entries })).collect();
            LutLatency { name: format!("cpu_t{}", measured.threads), config: supernet.config.clone(), tables: LatencyTables { dir, tables } }
        })
        .collect();
    let objective = tables.last().context("no table measured")?;
    let space = SearchSpace::new(supernet.config.clone(), resolutions.clone())?;
    let options = if args.quick {
        Nsga2Options { population: 30, generations: 20, seed: args.seed, polish_rounds: 5 }
    } else {
        Nsga2Options { seed: args.seed, ..Nsga2Options::default() }
    };
    eprintln!("tune: searching (NSGA-II, OFA's accuracy predictor, minimising {})", objective.name);
    let found = find_family(&space, &predictor_model, objective, &tables, options, Pick::Evenly(args.levels), Processor::Cpu)?;
    let mut metadata = found.family.metadata;
    metadata.insert("predictor".into(), predictor.display().to_string());
    metadata.insert(
        "tables".into(),
        format!(
            "profiled here for resolutions {resolutions:?} on threads {threads:?} ({} round(s), {:.0} s); the levels' latency_ms is measured whole",
            profile.noise.rounds, profile.seconds
        ),
    );
    metadata.insert("search_seconds".into(), format!("{:.1}", found.seconds));
    Ok((found.family.levels, metadata))
}

/// A candidate's predicted accuracy and measured latency per thread count (ms, by
/// increasing thread count: the last on the most threads).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Predicted accuracy.
    pub acc: f64,
    /// Latency per thread count, ms.
    pub ms: Vec<f64>,
}

impl Point {
    /// Latency on the most threads.
    fn max_ms(&self) -> f64 {
        *self.ms.last().expect("a latency per thread count")
    }

    /// Whether `self` may follow `before` in a family: more accurate and slower on the
    /// most threads, not faster on fewer.
    fn follows(&self, before: &Point) -> bool {
        let n = self.ms.len();
        self.acc > before.acc && self.max_ms() > before.max_ms() && self.ms[..n - 1].iter().zip(&before.ms).all(|(a, b)| a >= b)
    }
}

/// The levels of a family among `points` (indices, fastest first): the Pareto front in
/// (latency on the most threads, accuracy) — no other point at least as accurate and
/// faster —, kept ordered on fewer threads ([`ordered_chain`]), then `levels` of it evenly
/// spaced in latency from its fastest to its most accurate member.
pub fn pick_levels(points: &[Point], levels: usize) -> Vec<usize> {
    let all: Vec<Evaluated<usize>> =
        points.iter().enumerate().map(|(i, p)| Evaluated { genome: i, objectives: Objectives { acc: p.acc, cost: p.max_ms() } }).collect();
    let front: Vec<usize> = pareto_front(&all).into_iter().map(|e| e.genome).collect();
    let chain: Vec<Evaluated<usize>> = ordered_chain(points, &front).into_iter().map(|i| all[i].clone()).collect();
    evenly_spaced(&chain, levels).into_iter().map(|e| e.genome).collect()
}

/// The longest subsequence of `order` (indices into `points`, by increasing accuracy) in
/// which each point [`follows`](Point::follows) the one before; among equally long ones,
/// the one ending at the most accurate point, then the one keeping earlier points (a point
/// that breaks the order is dropped, not the ones before it).
pub fn ordered_chain(points: &[Point], order: &[usize]) -> Vec<usize> {
    let n = order.len();
    let (mut length, mut previous) = (vec![1usize; n], vec![None; n]);
    for j in 0..n {
        for i in 0..j {
            if points[order[j]].follows(&points[order[i]]) && length[i] + 1 > length[j] {
                (length[j], previous[j]) = (length[i] + 1, Some(i));
            }
        }
    }
    let Some(best) = length.iter().copied().max() else { return Vec::new() };
    let mut at = (0..n).rev().find(|&j| length[j] == best);
    let mut chain = Vec::with_capacity(best);
    while let Some(j) = at {
        chain.push(order[j]);
        at = previous[j];
    }
    chain.reverse();
    chain
}

/// Whether `chosen` (indices into `points`) is in family order: each level follows the one
/// before it.
fn strictly_ordered(points: &[Point], chosen: &[usize]) -> bool {
    chosen.windows(2).all(|w| points[w[1]].follows(&points[w[0]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(rows: &[(f64, f64, f64)]) -> Vec<Point> {
        rows.iter().map(|&(acc, t1, t2)| Point { acc, ms: vec![t1, t2] }).collect()
    }

    /// Ten candidates (accuracy, ms on 1 thread, ms on 2): 2 and 7 are off the front;
    /// 3 and 8 are on it but faster on one thread than the member before them.
    fn synthetic() -> Vec<Point> {
        points(&[
            (0.70, 10.0, 6.0),
            (0.72, 12.0, 7.0),
            (0.71, 13.0, 8.0),
            (0.73, 11.0, 9.0),
            (0.75, 14.0, 10.0),
            (0.76, 16.0, 12.0),
            (0.78, 18.0, 14.0),
            (0.77, 20.0, 15.0),
            (0.79, 17.0, 16.0),
            (0.80, 22.0, 18.0),
        ])
    }

    #[test]
    fn the_front_kept_ordered_on_every_thread_count_and_evenly_spaced() {
        let p = synthetic();
        assert_eq!(pick_levels(&p, 6), vec![0, 1, 4, 5, 6, 9]);
        // 2-thread latencies 6, 7, 10, 12, 14, 18: targets 6, 12, 18.
        assert_eq!(pick_levels(&p, 3), vec![0, 5, 9]);
        assert_eq!(pick_levels(&p, 1), vec![9]);
        for k in 1..=8 {
            let chosen = pick_levels(&p, k);
            assert!(strictly_ordered(&p, &chosen), "{k}: {chosen:?}");
            assert!(chosen.len() <= k);
        }
    }

    #[test]
    fn one_level_slow_on_one_thread_is_dropped_not_those_after_it() {
        // 1 is far slower on one thread than everything up to 5: a greedy pass keeping it
        // would drop 2…4; the longest ordered run drops 1 alone.
        let p = points(&[(0.70, 10.0, 6.0), (0.72, 30.0, 7.0), (0.73, 12.0, 8.0), (0.74, 14.0, 9.0), (0.75, 16.0, 10.0), (0.76, 31.0, 11.0)]);
        assert_eq!(pick_levels(&p, 6), vec![0, 2, 3, 4, 5]);
        // The most accurate breaks the order with all before it but the first: kept only
        // when no longer run exists without it.
        let p = points(&[(0.70, 10.0, 6.0), (0.72, 12.0, 7.0), (0.73, 13.0, 8.0), (0.74, 11.0, 9.0)]);
        assert_eq!(ordered_chain(&p, &[0, 1, 2, 3]), vec![0, 1, 2]);
    }

    #[test]
    fn equal_or_dominated_points_never_make_two_levels() {
        // Same latency, different accuracy; a slower, less accurate one.
        let p = points(&[(0.70, 10.0, 6.0), (0.75, 10.0, 6.0), (0.74, 12.0, 8.0), (0.80, 14.0, 9.0)]);
        assert_eq!(pick_levels(&p, 6), vec![1, 3]);
        assert!(pick_levels(&[], 6).is_empty());
    }

    #[test]
    fn quick_picks_eight_candidates_spread_over_all_of_them() {
        let all = embedded_candidates(false).unwrap();
        assert!(all.len() >= 16, "{}", all.len());
        assert!(all.windows(2).all(|w| w[0].mflops <= w[1].mflops));
        let quick = embedded_candidates(true).unwrap();
        assert_eq!(quick.len(), QUICK_CANDIDATES);
        assert_eq!(quick.first().unwrap().config, all.first().unwrap().config);
        assert_eq!(quick.last().unwrap().config, all.last().unwrap().config);
    }

    #[test]
    fn the_machine_key_names_cpu_cores_isa_and_version() {
        let key = machine_key();
        assert!(
            key.ends_with(&format!(
                "_{}c_{}_v{}",
                dynofa_runtime::monitor::system::allowed_cores(),
                dynofa_kernels::Isa::best().name(),
                env!("CARGO_PKG_VERSION")
            )),
            "{key}"
        );
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{key}");
    }
}
