//! `dynofa profile`: build latency look-up tables on this machine — for the CPU's fast
//! path, one directory per thread count, or for a GPU — validate them on random
//! sub-networks, and plot predicted against measured latency.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::*;
use dynofa_profiler::machine::{utc_now, Machine, Metadata, BURN_VERSION};
use dynofa_device::DeviceId;
use dynofa_profiler::{build_tables, validate, BuildOptions, Validation};
use dynofa_slice::Placement;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::weights::WeightsArgs;

/// Arguments of `dynofa profile`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    weights: WeightsArgs,
    /// Output directory: one `threads_<T>/` table directory per thread count (CPU), or
    /// `gpu/` (`gpu_<N>/` for `--device gpu:N`).
    #[arg(long)]
    out: PathBuf,
    /// Processor: cpu, gpu (the best adapter) or gpu:N (see `dynofa devices`).
    #[arg(long, default_value = "cpu", value_parser = crate::device::parse_device)]
    device: DeviceId,
    /// Resolutions to build tables for (default 160,164,…,224).
    #[arg(long, value_delimiter = ',')]
    resolutions: Option<Vec<usize>>,
    /// Thread counts, one table set each (default 1,…,all cores; CPU only).
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
    /// Timed forwards per covering sub-network and per validation sub-network.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Random sub-networks measured end to end to validate the tables (0: skip; else ≥ 4).
    #[arg(long, default_value_t = 20)]
    validate: usize,
    /// Seed of the validation sub-networks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A small run (resolution 160, one thread, 2 iterations, 4 validation networks).
    #[arg(long)]
    quick: bool,
}

/// Builds, validates and plots; prints one JSON line per table directory.
pub fn run(args: Args) -> Result<()> {
    let gpu = args.device != DeviceId::Cpu;
    anyhow::ensure!(!(gpu && args.threads.is_some()), "--threads: thread counts are for the CPU (--device {} has none)", args.device);
    let supernet = args.weights.load(&Device::flex())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (resolutions, threads, iters, validate_n) = if args.quick {
        (vec![args.resolutions.as_ref().and_then(|r| r.first().copied()).unwrap_or(160)], vec![1], 2, 4)
    } else {
        let threads = if gpu { vec![1] } else { args.threads.clone().unwrap_or_else(|| (1..=cores).collect()) };
        (args.resolutions.clone().unwrap_or_else(|| (160..=224).step_by(4).collect()), threads, args.iters, args.validate)
    };
    anyhow::ensure!(iters > 0, "--iters must be positive");
    anyhow::ensure!(validate_n == 0 || validate_n >= 4, "--validate {validate_n}: 0 (skip) or at least 4 (half fit the correction, half judge it)");
    anyhow::ensure!(threads.iter().all(|&t| t > 0), "--threads must be positive");
    for &r in &resolutions {
        anyhow::ensure!(r % 4 == 0 && (32..=1024).contains(&r), "--resolutions: {r} is not a multiple of 4 in 32..=1024");
    }
    for &t in &threads {
        let (placement, adapter) = crate::device::open(args.device, t)?;
        let (dir, what) = match args.device {
            DeviceId::Cpu => (args.out.join(format!("threads_{t}")), format!("{t} thread(s)")),
            id => (args.out.join(id.to_string().replace(':', "_")), id.to_string()),
        };
        let start = Instant::now();
        let bar = ProgressBar::new(1).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} sub-networks, ETA {eta} {msg}").expect("template").progress_chars("=> "),
        );
        bar.set_prefix(format!("tables, {what}"));
        let options = BuildOptions { resolutions: resolutions.clone(), placement: placement.clone(), iters };
        let tables = build_tables(&supernet, &dir, &options, &mut |done, total, what| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(what.to_string());
        })
        .with_context(|| format!("building tables in {}", dir.display()))?;
        bar.finish_and_clear();
        let build_seconds = start.elapsed().as_secs_f64();
        let validation = if validate_n > 0 {
            eprintln!("validating on {validate_n} random sub-networks ({what})…");
            let v = validate(&supernet, &tables, validate_n, args.seed, &placement, iters)?;
            crate::interrupt::deferred("finishing the write of the validation", || {
                write_json(&dir.join("validation.json"), &v)?;
                plot(&v, &dir.join("validation.svg"), &what)
            })?;
            Some(v)
        } else {
            None
        };
        let backend = match &placement {
            Placement::Cpu { .. } => format!("dynofa fast path ({})", dynofa_kernels_isa()),
            Placement::Gpu(_) => "Burn wgpu (Vulkan), BatchNorm folded, one network per level".to_string(),
        };
        let metadata = Metadata {
            machine: Machine::this(),
            backend,
            adapter: adapter.clone(),
            threads: t,
            iters,
            dynofa_version: env!("CARGO_PKG_VERSION").into(),
            burn_version: BURN_VERSION.into(),
            date: utc_now(),
            build_seconds,
            correction: validation.as_ref().map(|v| v.correction),
            errors: validation.as_ref().map(|v| [v.raw, v.raw_held_out, v.corrected_held_out]),
        };
        crate::interrupt::deferred("finishing the write of the metadata", || Ok(metadata.write(&dir)?))?;
        let out = json!({
            "device": args.device.to_string(),
            "adapter": adapter,
            "threads": t,
            "dir": dir,
            "resolutions": tables.tables.keys().collect::<Vec<_>>(),
            "build_seconds": build_seconds,
            "validation": validation.as_ref().map(|v| json!({
                "networks": v.points.len(),
                "mape_percent": v.raw.mape, "worst_percent": v.raw.worst,
                "correction": v.correction,
                "held_out_mape_percent": v.raw_held_out.mape,
                "held_out_corrected_mape_percent": v.corrected_held_out.mape,
                "held_out_corrected_worst_percent": v.corrected_held_out.worst,
                "plot": dir.join("validation.svg"),
            })),
        });
        println!("{out}");
    }
    Ok(())
}

/// The instruction set the kernels run with.
fn dynofa_kernels_isa() -> &'static str {
    dynofa_kernels::Isa::best().name()
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    dynofa_profiler::measure::write_atomically(path, json.as_bytes())?;
    Ok(())
}

/// Predicted (summed table, and corrected) against measured latency, with the diagonal.
fn plot(v: &Validation, path: &Path, what: &str) -> Result<()> {
    use plotters::prelude::*;
    let max = v.points.iter().flat_map(|p| [p.predicted_ms, p.measured_ms, v.correction.apply(p.predicted_ms)]).fold(0.0, f64::max) * 1.1;
    let tmp = path.with_extension("svg.tmp");
    {
        let root = SVGBackend::new(&tmp, (720, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("LUT prediction vs measured ({what}, {} networks)", v.points.len()), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max, 0.0..max)?;
        chart.configure_mesh().x_desc("measured end to end (ms)").y_desc("predicted (ms)").draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (max, max)], BLACK.mix(0.4)))?.label("y = x");
        chart
            .draw_series(v.points.iter().map(|p| Circle::new((p.measured_ms, p.predicted_ms), 4, BLUE.filled())))?
            .label(format!("sum of layers (MAPE {:.1}%)", v.raw.mape))
            .legend(|(x, y)| Circle::new((x, y), 4, BLUE.filled()));
        chart
            .draw_series(v.points.iter().filter(|p| !p.fitted).map(|p| TriangleMarker::new((p.measured_ms, v.correction.apply(p.predicted_ms)), 5, RED.filled())))?
            .label(format!("corrected, held out (MAPE {:.1}%)", v.corrected_held_out.mape))
            .legend(|(x, y)| TriangleMarker::new((x, y), 5, RED.filled()));
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).position(SeriesLabelPosition::UpperLeft).draw()?;
        root.present()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
