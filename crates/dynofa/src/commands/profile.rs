//! `dynofa profile`: build latency look-up tables on this machine — for the CPU's fast
//! path, one directory per thread count, or for a GPU — in interleaved rounds beside a
//! canary workload (so a noisy machine's slow phases do not bias them), validate them on
//! random sub-networks timed the same way, report how noisy the machine was, and plot
//! predicted against measured latency. `--compare` tells whether two profiles agree.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::prelude::*;
use dynofa_device::DeviceId;
use dynofa_profiler::compare::agreement;
use dynofa_profiler::machine::{BURN_VERSION, Machine, Metadata, utc_now};
use dynofa_profiler::measure::{complete, write_table};
use dynofa_profiler::rounds::RoundOptions;
use dynofa_profiler::validate::{ErrorStats, random_subnets};
use dynofa_profiler::{LatencyTables, Profile, ProfileOptions, Validation, measure, validate};
use dynofa_slice::Placement;
use dynofa_supernet::SubnetConfig;
use serde_json::json;

use crate::weights::WeightsArgs;

/// Arguments of `dynofa profile`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    weights: WeightsArgs,
    /// Output directory: one `threads_<T>/` table directory per thread count (CPU), or
    /// `gpu/` (`gpu_<N>/` for `--device gpu:N`).
    #[arg(long, required_unless_present_any = ["compare", "family"])]
    out: Option<PathBuf>,
    /// Processor: cpu, gpu (the best adapter) or gpu:N (see `dynofa devices`).
    #[arg(long, default_value = "cpu", value_parser = crate::device::parse_device)]
    device: DeviceId,
    /// Resolutions to build tables for (default 160,164,…,224).
    #[arg(long, value_delimiter = ',')]
    resolutions: Option<Vec<usize>>,
    /// Thread counts, one table set each (default 1,…,all cores; CPU only).
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
    /// Rounds every item gets at least (each round times every item once, beside the canary).
    #[arg(long, default_value_t = RoundOptions::default().min_rounds)]
    min_rounds: usize,
    /// Rounds at most: items whose estimate is not within ±--target-ci by then stay uncertain.
    #[arg(long, default_value_t = RoundOptions::default().max_rounds)]
    max_rounds: usize,
    /// Seconds the measurement may take; it then stops with what it has and names the
    /// estimates that stayed uncertain.
    #[arg(long, default_value_t = RoundOptions::default().budget_s)]
    budget: f64,
    /// An estimate is settled when its 95% confidence interval is within ± this many percent.
    #[arg(long, default_value_t = 100.0 * RoundOptions::default().target_ci)]
    target_ci: f64,
    /// Untimed forwards of an item just before its timed one (0: the item runs after the
    /// canary as it comes; measured here, a warm-up forward bought no agreement between
    /// profiles for twice the time).
    #[arg(long, default_value_t = 0)]
    warm: usize,
    /// Random sub-networks measured whole to validate the tables (0: skip; else ≥ 4).
    #[arg(long, default_value_t = 20)]
    validate: usize,
    /// Seed of the validation (and comparison) sub-networks and of the rounds' order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A small run (resolution 160, one thread, 3 rounds, 4 validation networks).
    #[arg(long)]
    quick: bool,
    /// Compare table sets instead of profiling: two or more table directories, or profile
    /// outputs (their `threads_<T>`/`gpu*` directories are compared by name).
    #[arg(long, num_args = 2.., value_name = "DIR", conflicts_with_all = ["out", "quick"])]
    compare: Option<Vec<PathBuf>>,
    /// Random sub-networks a comparison predicts.
    #[arg(long, default_value_t = 200, requires = "compare")]
    networks: usize,
    /// Measure a family's levels instead of building tables: each level whole, in the same
    /// interleaved canary-relative rounds, on every thread count; says whether their
    /// latency is strictly ordered (a family's levels must get slower as they get more
    /// accurate).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["out", "quick", "compare"])]
    family: Option<PathBuf>,
}

/// Builds, validates and plots; prints one JSON line per table directory.
pub fn run(args: Args) -> Result<()> {
    let supernet = args.weights.load(&Device::flex())?;
    if let Some(dirs) = &args.compare {
        return compare(&supernet.config, dirs, args.networks, args.seed);
    }
    let gpu = args.device != DeviceId::Cpu;
    anyhow::ensure!(!(gpu && args.threads.is_some()), "--threads: thread counts are for the CPU (--device {} has none)", args.device);
    let cores = dynofa_device::host::cores();
    let mut rounds = RoundOptions {
        min_rounds: args.min_rounds,
        max_rounds: args.max_rounds,
        budget_s: args.budget,
        target_ci: args.target_ci / 100.0,
        seed: args.seed,
        ..RoundOptions::default()
    };
    let (resolutions, threads, validate_n, warm, additivity) = if args.quick {
        rounds.min_rounds = 3;
        rounds.max_rounds = 3;
        (vec![args.resolutions.as_ref().and_then(|r| r.first().copied()).unwrap_or(160)], vec![1], 4, 0, false)
    } else {
        let threads = if gpu { vec![1] } else { args.threads.clone().unwrap_or_else(|| (1..=cores).collect()) };
        (args.resolutions.clone().unwrap_or_else(|| (160..=224).step_by(4).collect()), threads, args.validate, args.warm, true)
    };
    let (mut resolutions, mut threads) = (resolutions, threads);
    resolutions.sort_unstable();
    resolutions.dedup();
    threads.sort_unstable();
    threads.dedup();
    rounds.check()?;
    if let Some(family) = &args.family {
        return measure_family(&supernet, family, &threads, &args, rounds);
    }
    let out = args.out.clone().expect("clap requires --out without --compare or --family");
    anyhow::ensure!(
        validate_n == 0 || validate_n >= 4,
        "--validate {validate_n}: 0 (skip) or at least 4 (each is judged by a correction fitted on the others)"
    );
    anyhow::ensure!(threads.iter().all(|&t| t > 0), "--threads must be positive");
    for &r in &resolutions {
        anyhow::ensure!(r % 4 == 0 && (32..=1024).contains(&r), "--resolutions: {r} is not a multiple of 4 in 32..=1024");
    }
    let (placement, adapter) = crate::device::open(args.device, threads.iter().copied().max().unwrap_or(1))?;
    let dir_of = |t: usize| match args.device {
        DeviceId::Cpu => out.join(format!("threads_{t}")),
        id => out.join(id.to_string().replace(':', "_")),
    };
    let what_of = |t: usize| if gpu { args.device.to_string() } else { format!("{t} thread(s)") };

    let options = ProfileOptions {
        resolutions: resolutions.clone(),
        threads: threads.clone(),
        placement: placement.clone(),
        whole: random_subnets(&supernet.config, &resolutions, validate_n, args.seed),
        additivity,
        warm_forwards: warm,
        rounds,
    };
    let skip = |t: usize, r: usize| complete(&supernet.config, &dir_of(t), r);
    let profile = measure_with_progress(&supernet, &options, &skip, "profile").context("profiling")?;
    let noise = &profile.noise;
    eprintln!(
        "measured in {:.0} s: {} round(s), stopped: {:?}; canary spread {:.2}×, {:.0}% of its readings in slow phases{}",
        profile.seconds,
        noise.rounds,
        noise.stop,
        noise.canary_spread,
        100.0 * noise.slow_share,
        noise.steal_pct.map_or(String::new(), |s| format!(", {s:.1}% CPU steal"))
    );
    if let Some(warning) = noise.warning() {
        eprintln!("warning: {warning}");
    }

    let backend = match &placement {
        Placement::Cpu { .. } => format!("dynofa fast path ({})", dynofa_kernels::Isa::best().name()),
        Placement::Gpu(_) => "Burn wgpu (Vulkan), BatchNorm folded, one network per level".to_string(),
    };
    for measured in &profile.threads {
        let (t, dir, what) = (measured.threads, dir_of(measured.threads), what_of(measured.threads));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::interrupt::deferred("finishing the write of the tables", || {
            for (r, entries) in &measured.tables {
                write_table(&dir.join(format!("{r}_lookup_table.json")), entries)?;
            }
            Ok(())
        })?;
        let tables = LatencyTables::open(&dir)?;
        // Every table was complete already: the noise report, canary and additivity of the
        // run that measured them stay.
        let earlier = if measured.tables.is_empty() { Metadata::read(&dir).ok() } else { None };
        let validation = if measured.whole.is_empty() { None } else { Some(validate(&supernet.config, &tables, &measured.whole)?) };
        let additivity = if measured.additivity.is_empty() {
            None
        } else {
            let pairs: Vec<(f64, f64)> = measured.additivity.iter().map(|m| Ok((tables.predict(&supernet.config, &m.subnet)?, m.ms))).collect::<Result<_>>()?;
            Some(ErrorStats::of(pairs))
        };
        let metadata = Metadata {
            machine: Machine::this(),
            backend: backend.clone(),
            adapter: adapter.clone(),
            threads: t,
            rounds,
            warm_forwards: warm,
            dynofa_version: env!("CARGO_PKG_VERSION").into(),
            burn_version: BURN_VERSION.into(),
            date: utc_now(),
            build_seconds: profile.seconds,
            noise: earlier.as_ref().map_or(Some(noise.clone()), |m| m.noise.clone()),
            canary: earlier.as_ref().map_or(measured.canary, |m| m.canary),
            additivity: earlier.as_ref().map_or(additivity, |m| m.additivity),
            correction: validation.as_ref().map(|v| v.correction),
            correction_model: validation.as_ref().map(|v| v.model),
            errors: validation.as_ref().map(|v| vec![v.raw, v.held_out]),
        };
        crate::interrupt::deferred("finishing the write of the validation and metadata", || {
            if let Some(v) = &validation {
                write_json(&dir.join("validation.json"), v)?;
                plot(v, &dir.join("validation.svg"), &what)?;
            }
            Ok(metadata.write(&dir)?)
        })?;
        let out = json!({
            "device": args.device.to_string(),
            "adapter": adapter,
            "threads": t,
            "dir": dir,
            "resolutions": tables.tables.keys().collect::<Vec<_>>(),
            "build_seconds": profile.seconds,
            "rounds": noise.rounds,
            "stop": noise.stop,
            "trustworthy": noise.trustworthy,
            "uncertain": noise.uncertain.len(),
            "additivity_mape_percent": additivity.map(|a| a.mape),
            "validation": validation.as_ref().map(|v| json!({
                "networks": v.points.len(),
                "within_5_pct": v.within_5_pct,
                "within_10_pct": v.within_10_pct,
                "mape_percent": v.raw.mape, "worst_percent": v.raw.worst,
                "correction": v.correction,
                "correction_model": v.model,
                "held_out_mape_percent": v.held_out.mape,
                "held_out_worst_percent": v.held_out.worst,
                "plot": dir.join("validation.svg"),
            })),
        });
        println!("{out}");
    }
    Ok(())
}

/// `dynofa profile --family`: every level of `family` measured whole on each thread count;
/// one JSON line per thread count, and a table on stderr.
fn measure_family(supernet: &dynofa_supernet::Supernet, family: &Path, threads: &[usize], args: &Args, rounds: RoundOptions) -> Result<()> {
    let file = dynofa_slice::family_file::FamilyFile::read(family)?;
    let levels: Vec<_> = file.levels.iter().map(|l| l.config.clone()).collect();
    anyhow::ensure!(!levels.is_empty(), "{}: the family has no levels", family.display());
    let (placement, _) = crate::device::open(args.device, threads.iter().copied().max().unwrap_or(1))?;
    let profile = measure_whole(supernet, levels, threads, placement, args.warm, rounds, "levels")?;
    if let Some(warning) = profile.noise.warning() {
        eprintln!("warning: {warning}");
    }
    for measured in &profile.threads {
        let ms: Vec<f64> = measured.whole.iter().map(|m| m.ms).collect();
        let ordered = ms.windows(2).all(|w| w[0] < w[1]);
        let listed: Vec<String> = ms.iter().map(|m| format!("{m:.2}")).collect();
        eprintln!("{} thread(s): levels {} ms: {}", measured.threads, listed.join(", "), if ordered { "strictly ordered" } else { "NOT strictly ordered" });
        if !ordered {
            let out_of_order: Vec<String> = ms
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w[0] >= w[1])
                .map(|(i, w)| format!("level {} ({:.2} ms) is not faster than level {} ({:.2} ms)", i, w[0], i + 1, w[1]))
                .collect();
            eprintln!("  not strictly ordered: {}", out_of_order.join("; "));
        }
        println!(
            "{}",
            json!({
                "family": family, "threads": measured.threads, "levels_ms": ms,
                "ci_pct": measured.whole.iter().map(|m| 100.0 * m.ci).collect::<Vec<_>>(),
                "strictly_ordered": ordered, "rounds": profile.noise.rounds, "trustworthy": profile.noise.trustworthy,
            })
        );
    }
    Ok(())
}

/// The profiler's measurement of `options` (interleaved shuffled rounds beside a canary;
/// see [`dynofa_profiler::measure`](mod@dynofa_profiler::measure)) with a progress bar on stderr named `label` (drawn
/// only when stderr is a terminal).
pub fn measure_with_progress(
    supernet: &dynofa_supernet::Supernet,
    options: &ProfileOptions,
    skip: &dyn Fn(usize, usize) -> bool,
    label: &str,
) -> Result<Profile> {
    let bar =
        crate::progress::bar(options.rounds.max_rounds as u64, &format!("{label} [{{bar:30}}] round {{pos}}/{{len}} at most, {{elapsed}} {{msg}}"), false);
    let profile = measure(supernet, options, skip, &mut |round, max, what| {
        bar.set_length(max as u64);
        bar.set_position(round as u64);
        bar.set_message(what.to_string());
    });
    bar.finish_and_clear();
    Ok(profile?)
}

/// `subnets` measured whole on each of `threads` at `placement`, in the profiler's
/// interleaved canary-relative rounds (what `dynofa profile --family` and `dynofa tune`
/// measure): `Profile::threads[i].whole` follows `subnets`' order.
pub fn measure_whole(
    supernet: &dynofa_supernet::Supernet,
    subnets: Vec<SubnetConfig>,
    threads: &[usize],
    placement: Placement,
    warm: usize,
    rounds: RoundOptions,
    label: &str,
) -> Result<Profile> {
    let options =
        ProfileOptions { resolutions: Vec::new(), threads: threads.to_vec(), placement, whole: subnets, additivity: false, warm_forwards: warm, rounds };
    measure_with_progress(supernet, &options, &|_, _| true, label)
}

/// `dynofa profile --compare`: the agreement of table sets, one JSON line per set of
/// directories compared (and a sentence on stderr).
fn compare(config: &dynofa_supernet::SupernetConfig, dirs: &[PathBuf], networks: usize, seed: u64) -> Result<()> {
    for (name, set) in comparable_sets(dirs)? {
        let tables: Vec<LatencyTables> = set.iter().map(|d| LatencyTables::open(d)).collect::<std::result::Result<_, _>>()?;
        let a = agreement(config, &tables, networks, seed)?;
        eprintln!(
            "{name}{}{} table sets, {} sub-networks (r {:?}): {:.1}% with every prediction within ±5% of their median; spread (largest / smallest) median {:.3}×, worst {:.3}×",
            if name.is_empty() { String::new() } else { ": ".into() },
            set.len(),
            a.networks,
            a.resolutions,
            a.within_5_pct,
            a.median_spread,
            a.worst_spread
        );
        println!("{}", json!({ "tables": name, "dirs": set, "agreement": a }));
    }
    Ok(())
}

/// The sets of table directories to compare: `dirs` themselves when each holds tables,
/// else their table subdirectories (`threads_<T>`, `gpu…`) that every one of them has.
fn comparable_sets(dirs: &[PathBuf]) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let has_tables = |d: &Path| LatencyTables::open(d).is_ok();
    if dirs.iter().all(|d| has_tables(d)) {
        return Ok(vec![(String::new(), dirs.to_vec())]);
    }
    let names = |d: &Path| -> Vec<String> {
        let Ok(listing) = std::fs::read_dir(d) else { return Vec::new() };
        let mut names: Vec<String> = listing.flatten().filter(|e| has_tables(&e.path())).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    let common: Vec<String> = names(&dirs[0]).into_iter().filter(|n| dirs.iter().all(|d| has_tables(&d.join(n)))).collect();
    if common.is_empty() {
        let listed: Vec<String> = dirs
            .iter()
            .map(|d| format!("{} ({})", d.display(), if has_tables(d) { "tables".to_string() } else { format!("table directories {:?}", names(d)) }))
            .collect();
        anyhow::bail!(
            "--compare: these hold no look-up tables in common (neither tables themselves nor table directories of the same name): {}",
            listed.join(", ")
        );
    }
    Ok(common.into_iter().map(|n| (n.clone(), dirs.iter().map(|d| d.join(&n)).collect())).collect())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    dynofa_profiler::measure::write_atomically(path, json.as_bytes())?;
    Ok(())
}

/// Predicted (summed table, and held out with the correction where it is applied)
/// against measured latency, with the diagonal and the ±10% band.
fn plot(v: &Validation, path: &Path, what: &str) -> Result<()> {
    use plotters::prelude::*;
    let max = v.points.iter().flat_map(|p| [p.predicted_ms, p.measured_ms, p.held_out_ms]).fold(0.0, f64::max) * 1.1;
    let mut svg = String::new();
    let drawn = (|| -> Result<()> {
        let root = SVGBackend::with_string(&mut svg, (720, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("LUT prediction vs measured ({what}, {} networks)", v.points.len()), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max, 0.0..max)?;
        chart.configure_mesh().x_desc("measured whole, canary-relative (ms)").y_desc("predicted (ms)").draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (max, max)], BLACK.mix(0.4)))?.label("y = x");
        for band in [0.9, 1.1] {
            chart.draw_series(LineSeries::new([(0.0, 0.0), (max, max * band)], BLACK.mix(0.2)))?;
        }
        chart
            .draw_series(v.points.iter().map(|p| Circle::new((p.measured_ms, p.predicted_ms), 4, BLUE.filled())))?
            .label(format!("sum of layers: MAPE {:.1}%, {:.0}% within ±10%", v.raw.mape, v.raw.within_10_pct))
            .legend(|(x, y)| Circle::new((x, y), 4, BLUE.filled()));
        if v.model != dynofa_profiler::validate::CorrectionModel::Identity {
            chart
                .draw_series(v.points.iter().map(|p| TriangleMarker::new((p.measured_ms, p.held_out_ms), 5, RED.filled())))?
                .label(format!("corrected ({:?}), held out: MAPE {:.1}%, {:.0}% within ±10%", v.model, v.held_out.mape, v.held_out.within_10_pct))
                .legend(|(x, y)| TriangleMarker::new((x, y), 5, RED.filled()));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).position(SeriesLabelPosition::UpperLeft).draw()?;
        root.present()?;
        Ok(())
    })();
    drawn.with_context(|| format!("drawing {}", path.display()))?;
    Ok(dynofa_runtime::plot::write(path, &svg)?)
}
