//! `dynofa search`: the accuracy–cost Pareto front of a supernet on a device (NSGA-II with
//! OFA's accuracy predictor and a latency table, MFLOPs or parameters), a family of levels
//! along it written as a RON family file, and a plot of the front.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dynofa_device::Processor;
use dynofa_profiler::LatencyTables;
use dynofa_runtime::level_table::thread_count_of;
use dynofa_search::AccuracyPredictor;
use dynofa_search::cost::{Cost, LutLatency, Mflops, Params};
use dynofa_search::evolution::{EvolutionOptions, evolve};
use dynofa_search::family::{Pick, family_file};
use dynofa_search::nsga2::{Evaluated, Nsga2Options, Nsga2Result, nsga2};
use dynofa_search::space::{AccuracyVsCost, SearchSpace};
use dynofa_slice::family_file::FamilyFile;
use dynofa_supernet::{SubnetConfig, SupernetConfig, Width};
use serde_json::json;

use crate::commands::describe::parse_named_dir;
use crate::weights::parse_width;

/// Arguments of `dynofa search`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// OFA's accuracy predictor (`acc_predictor.pth`).
    #[arg(long)]
    predictor: PathBuf,
    /// Latency tables as NAME=DIR (repeatable); every level gets a latency per table.
    #[arg(long = "lut", value_name = "NAME=DIR", value_parser = parse_named_dir)]
    luts: Vec<(String, PathBuf)>,
    /// The cost to minimise: a table's NAME, `mflops` or `params` (default: the first table).
    #[arg(long)]
    objective: Option<String>,
    /// Levels in the family, evenly spaced in cost along the front.
    #[arg(long, default_value_t = 6)]
    levels: usize,
    /// Instead of evenly spaced levels: one level per cost target (e.g. latency budgets in ms).
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<f64>>,
    /// The family file to write (RON).
    #[arg(long)]
    out: PathBuf,
    /// The processor the family is for (its tables' processor): cpu or gpu; written in the
    /// family file, where `dynofa run` reads it.
    #[arg(long, default_value = "cpu", value_parser = parse_processor)]
    device: dynofa_device::Processor,
    /// Supernet width (the predictor is w1.2's).
    #[arg(long, default_value = "1.2", value_parser = parse_width)]
    width: Width,
    /// Resolutions to search (default: those of the objective's tables, else 160…224 step 4).
    #[arg(long, value_delimiter = ',')]
    resolutions: Option<Vec<usize>>,
    /// NSGA-II population.
    #[arg(long, default_value_t = 100)]
    population: usize,
    /// NSGA-II generations.
    #[arg(long, default_value_t = 100)]
    generations: usize,
    /// Rounds of local search on the final front.
    #[arg(long, default_value_t = 50)]
    polish: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Plot of the front (`.svg` or `.png`; default: the family file with `.svg`).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Reference sub-networks to overlay and compare with (JSON with `levels[].cfg`, e.g. the paper's family).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Instead of the front: OFA's constrained evolution (its defaults: population 100,
    /// 500 generations, parents 25%, mutation ratio 0.5, probabilities 0.1 / 0.5) for the
    /// most accurate sub-network with cost ≤ this; prints it (no family file).
    #[arg(long)]
    constraint: Option<f64>,
}

/// `--device`: a family is for a kind of processor, not an adapter.
fn parse_processor(text: &str) -> Result<dynofa_device::Processor, String> {
    match text {
        "cpu" => Ok(dynofa_device::Processor::Cpu),
        "gpu" => Ok(dynofa_device::Processor::Gpu),
        _ => Err(format!("{text:?}: cpu or gpu (a family is for a kind of processor; `dynofa run --devices` picks the adapter)")),
    }
}

/// Runs the search, writes the family and the plot, prints a JSON summary.
pub fn run(args: Args) -> Result<()> {
    anyhow::ensure!(args.levels > 0, "--levels must be positive");
    anyhow::ensure!(args.population >= 2, "--population must be at least 2");
    if let Some(plot) = &args.plot {
        dynofa_runtime::plot::check_path(plot).context("--plot")?;
    }
    let config = SupernetConfig::ofa_mbv3(args.width);
    let predictor = AccuracyPredictor::load(&args.predictor).context("loading the accuracy predictor")?;
    let mut tables: Vec<LutLatency> = Vec::new();
    for (name, dir) in &args.luts {
        let t = LatencyTables::open(dir).with_context(|| format!("look-up table '{name}'"))?;
        tables.push(LutLatency { name: name.clone(), config: config.clone(), tables: t });
    }
    if args.device == Processor::Cpu && !tables.is_empty() && !tables.iter().any(|t| thread_count_of(&t.name).is_some()) {
        eprintln!(
            "note: `dynofa run` reads a CPU family's latencies from tables named for their thread count (e.g. --lut cpu_t1=DIR --lut cpu_t2=DIR); \
             none of {} is, so it will ignore this family's latencies and calibrate its own",
            tables.iter().map(|t| format!("'{}'", t.name)).collect::<Vec<_>>().join(", ")
        );
    }
    let objective_name = args.objective.clone().or_else(|| tables.first().map(|t| t.name.clone())).unwrap_or_else(|| "mflops".into());
    let (mflops, params) = (Mflops(config.clone()), Params(config.clone()));
    let cost: &dyn Cost = match objective_name.as_str() {
        "mflops" => &mflops,
        "params" => &params,
        name => match tables.iter().find(|t| t.name == name) {
            Some(t) => t,
            None => bail!("--objective '{name}': not a --lut name, 'mflops' or 'params'"),
        },
    };
    let resolutions = match (&args.resolutions, tables.iter().find(|t| t.name == objective_name)) {
        (Some(r), _) => r.clone(),
        (None, Some(t)) => t.tables.tables.keys().copied().collect(),
        (None, None) => (160..=224).step_by(4).collect(),
    };
    let space = SearchSpace::new(config.clone(), resolutions.clone())?;
    if let Some(limit) = args.constraint {
        return constrained(&space, &predictor, cost, limit, args.seed);
    }
    let options = Nsga2Options { population: args.population, generations: args.generations, seed: args.seed, polish_rounds: args.polish };
    let pick = match &args.targets {
        Some(targets) => Pick::Targets(targets),
        None => Pick::Evenly(args.levels),
    };
    let Found { result, chosen, mut family, seconds } = find_family(&space, &predictor, cost, &tables, options, pick, args.device)?;
    family.metadata.insert("predictor".into(), args.predictor.display().to_string());
    family.metadata.insert("tables".into(), args.luts.iter().map(|(n, d)| format!("{n}={}", d.display())).collect::<Vec<_>>().join(" "));
    let (reference, plot_path) = crate::interrupt::deferred("finishing the write of the family and its plot", || {
        if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        family.write(&args.out)?;

        let reference = args.reference.as_deref().map(|p| read_reference(p, &predictor, cost)).transpose()?;
        let plot_path = args.plot.clone().unwrap_or_else(|| args.out.with_extension("svg"));
        plot(&result.evaluated, &result.front, &chosen, reference.as_deref(), &cost.name(), &plot_path)?;
        Ok((reference, plot_path))
    })?;
    let margins = reference.as_ref().map(|points| {
        points
            .iter()
            .map(|(acc, c)| {
                let best = result.front.iter().filter(|e| e.objectives.cost <= *c).map(|e| e.objectives.acc).fold(f64::NEG_INFINITY, f64::max);
                let cheapest = result.front.iter().filter(|e| e.objectives.acc >= *acc).map(|e| e.objectives.cost).fold(f64::INFINITY, f64::min);
                json!({"acc": acc, "cost": c, "dominated": best >= *acc, "acc_margin": best - acc, "cost_saving_percent": 100.0 * (1.0 - cheapest / c)})
            })
            .collect::<Vec<_>>()
    });
    let out = json!({
        "family": args.out, "plot": plot_path, "objective": cost.name(), "seconds": seconds,
        "evaluations": result.evaluated.len(), "front": result.front.len(),
        "levels": chosen.iter().map(|e| json!({"acc": e.objectives.acc, "cost": e.objectives.cost})).collect::<Vec<_>>(),
        "reference": margins,
    });
    println!("{out}");
    Ok(())
}

/// What [`find_family`] found.
pub struct Found {
    /// Every sub-network evaluated, and the front.
    pub result: Nsga2Result<SubnetConfig>,
    /// The levels picked on the front, cheapest first.
    pub chosen: Vec<Evaluated<SubnetConfig>>,
    /// The family file of `chosen` (metadata: `objective` and `search`).
    pub family: FamilyFile,
    /// Seconds the search took.
    pub seconds: f64,
}

/// NSGA-II over `space` (maximising `predictor`'s accuracy, minimising `cost`; a progress
/// bar on stderr), then the levels `pick` puts on the front as a family file for
/// `device`: per level its counts, predicted accuracy and latency per table of `tables`.
pub fn find_family(
    space: &SearchSpace,
    predictor: &AccuracyPredictor,
    cost: &dyn Cost,
    tables: &[LutLatency],
    options: Nsga2Options,
    pick: Pick,
    device: Processor,
) -> Result<Found> {
    let problem = AccuracyVsCost { space, predictor, cost };
    let bar = crate::progress::bar(options.generations as u64, "NSGA-II [{bar:30}] generation {pos}/{len}, ETA {eta}", false);
    let start = Instant::now();
    let result = nsga2(&problem, options, &mut |g, _| bar.set_position(g as u64)).context("searching")?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let chosen = pick.on(&result.front);
    let family = family_file(space, &chosen, cost, tables, &options, device)?;
    Ok(Found { result, chosen, family, seconds })
}

/// OFA's constrained evolution with its defaults; prints the best sub-network as JSON.
fn constrained(space: &SearchSpace, predictor: &AccuracyPredictor, cost: &dyn Cost, limit: f64, seed: u64) -> Result<()> {
    let options = EvolutionOptions { seed, ..EvolutionOptions::default() };
    let bar = crate::progress::bar(options.generations as u64, "evolution [{bar:30}] generation {pos}/{len}, ETA {eta}", false);
    let start = Instant::now();
    let best = evolve(space, predictor, cost, limit, options, &mut |g, _| bar.set_position(g as u64))?;
    bar.finish_and_clear();
    let out =
        json!({"subnet": best.subnet, "acc": best.acc, "cost": best.cost, "objective": cost.name(), "limit": limit, "seconds": start.elapsed().as_secs_f64()});
    println!("{out}");
    Ok(())
}

/// Reference points `(predicted accuracy, cost)` of the sub-networks in a JSON file.
fn read_reference(path: &Path, predictor: &AccuracyPredictor, cost: &dyn Cost) -> Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let levels = json["levels"].as_array().with_context(|| format!("{}: no 'levels' list", path.display()))?;
    levels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let cfg: SubnetConfig = serde_json::from_value(l["cfg"].clone()).with_context(|| format!("{}: levels[{i}].cfg", path.display()))?;
            Ok((predictor.predict(&cfg), cost.cost(&cfg)?))
        })
        .collect()
}

/// Every evaluated point (grey), the front (blue), the chosen levels (red), references (green).
fn plot(
    all: &[Evaluated<SubnetConfig>],
    front: &[Evaluated<SubnetConfig>],
    chosen: &[Evaluated<SubnetConfig>],
    reference: Option<&[(f64, f64)]>,
    cost: &str,
    path: &Path,
) -> Result<()> {
    use plotters::prelude::*;
    let points = all.iter().map(|e| (e.objectives.cost, e.objectives.acc)).chain(reference.unwrap_or(&[]).iter().map(|&(a, c)| (c, a)));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let (dx, dy) = ((x1 - x0).max(1e-9) * 0.05, (y1 - y0).max(1e-9) * 0.05);
    let mut svg = String::new();
    let drawn = (|| -> Result<()> {
        let root = SVGBackend::with_string(&mut svg, (800, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Predicted accuracy vs {cost}"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0 - dx..x1 + dx, (y0 - dy) * 100.0..(y1 + dy) * 100.0)?;
        chart.configure_mesh().x_desc(cost).y_desc("predicted top-1 (%)").draw()?;
        chart
            .draw_series(all.iter().map(|e| Circle::new((e.objectives.cost, e.objectives.acc * 100.0), 1, BLACK.mix(0.15).filled())))?
            .label(format!("evaluated ({})", all.len()))
            .legend(|(x, y)| Circle::new((x, y), 3, BLACK.mix(0.3).filled()));
        chart
            .draw_series(LineSeries::new(front.iter().map(|e| (e.objectives.cost, e.objectives.acc * 100.0)), BLUE.stroke_width(2)))?
            .label(format!("Pareto front ({})", front.len()))
            .legend(|(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(chosen.iter().map(|e| Circle::new((e.objectives.cost, e.objectives.acc * 100.0), 6, RED.filled())))?
            .label("family levels")
            .legend(|(x, y)| Circle::new((x, y), 5, RED.filled()));
        if let Some(reference) = reference {
            chart
                .draw_series(reference.iter().map(|&(a, c)| TriangleMarker::new((c, a * 100.0), 7, GREEN.filled())))?
                .label("reference")
                .legend(|(x, y)| TriangleMarker::new((x, y), 6, GREEN.filled()));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).position(SeriesLabelPosition::LowerRight).draw()?;
        root.present()?;
        Ok(())
    })();
    drawn.with_context(|| format!("drawing {}", path.display()))?;
    Ok(dynofa_runtime::plot::write(path, &svg)?)
}
