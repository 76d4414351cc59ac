//! `dynofa run`: the main job. Runs a family on each processor asked for (the CPU, a GPU)
//! under a latency target with a run-time policy for a given time, optionally under a
//! scheduled competing load, with a live status line; writes the per-frame trace (CSV),
//! its plot (SVG or PNG) and a summary (JSON).
//!
//! Interrupted (Ctrl-C, SIGTERM; see [`crate::interrupt`]) before the first frame — while
//! the supernet loads, the levels warm up or the idle calibration runs — it exits at once
//! with status 130 and writes nothing (no competing load runs yet). Interrupted during the
//! frames, it stops after the frame that runs, stops and reaps the competing load
//! processes, writes the trace (every frame run), the plot and the summary as at the end
//! of a run, the summary marked `"interrupted": true`, says where they are, and exits
//! with status 130.
//!
//! With `--input DIR`, an image that cannot be read is skipped, with one warning per
//! file, each time the cycle comes to it, and counted in the summary's `skipped_frames`;
//! a folder without any readable image is an error before the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use dynofa_device::{Adapter, DeviceId, Processor};
use dynofa_runtime::contention::{LoadKind, LoadRunner, LoadSpec};
use dynofa_runtime::level_table::LevelTable;
use dynofa_runtime::trace::{self, Summary, TraceRow};
use dynofa_runtime::{Frame, Priority, ProcessorFamily, Requirements, Runtime, policy};
use dynofa_slice::Placement;
use dynofa_slice::family_file::FamilyFile;
use serde_json::json;

use crate::interrupt;
use crate::weights::WeightsArgs;

/// The default family (w1.2), made on a 2-core x86-64 machine by `dynofa profile` and
/// `dynofa search` (see `assets/README.md`).
pub const DEFAULT_FAMILY: &str = include_str!("../../../../assets/families/cpu_w12.ron");
/// Name shown for it.
pub const DEFAULT_FAMILY_NAME: &str = "assets/families/cpu_w12.ron (embedded)";

/// Arguments of `dynofa run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    weights: WeightsArgs,
    /// Family file (RON, from `dynofa search`), run on the processor it was made for (its
    /// `device`); repeat it for a family per processor. Default: the embedded w1.2 CPU
    /// family, and on a GPU one made for it (cached).
    #[arg(long = "family", value_name = "FILE")]
    families: Vec<PathBuf>,
    /// Processors to run on, comma-separated: cpu, gpu (the best adapter), gpu:N (see
    /// `dynofa devices`). Default: those of the families given, else cpu.
    #[arg(long, value_delimiter = ',', value_parser = crate::device::parse_device)]
    devices: Vec<DeviceId>,
    /// Latency target per frame, in ms, or `auto`: 1.3 × the most accurate level's idle
    /// latency as the calibration measures it on this machine (its best processor and
    /// thread count), so that the top level fits when the machine is idle and a competing
    /// load forces switches.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_target)]
    target_ms: Target,
    /// Accuracy floor (a fraction, e.g. 0.78).
    #[arg(long)]
    min_accuracy: Option<f64>,
    /// Which requirement wins when no level meets both: latency or accuracy.
    #[arg(long, default_value = "latency", value_parser = parse_priority)]
    priority: Priority,
    /// Run-time policy: predictive, dofa (the reference, on the first processor),
    /// static:LEVEL / static:DEVICE:LEVEL (LEVEL an index, smallest or largest; `@T` fixes
    /// the thread count too), or predictive's single-knob ablations predictive:levels
    /// (threads fixed at the most) and predictive:threads:LEVEL (level fixed).
    #[arg(long, default_value = "predictive")]
    policy: String,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Competing load: START-END:KIND[,…], e.g. 5s-14s:2 (two busy threads) or 5s-14s:dnn:1.
    #[arg(long)]
    load: Option<String>,
    /// Frames: a directory of images (PNG/JPEG, cycled) or `synthetic`.
    #[arg(long, default_value = "synthetic")]
    input: String,
    /// Most threads the DNN may use on the CPU (default: the cores this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// Rounds of the idle calibration (each level, processor and thread count timed once
    /// per round, after 40 ms of untimed forwards; up to twice as many rounds when the
    /// samples are noisy; 0: trust the families' latency tables).
    #[arg(long, default_value_t = 5)]
    calibrate_iters: usize,
    /// Per-frame trace (CSV).
    #[arg(long, default_value = "dynofa-run/trace.csv")]
    trace: PathBuf,
    /// Plot of the trace (`.svg`, or `.png` to paste into a report).
    #[arg(long, default_value = "dynofa-run/trace.svg")]
    plot: PathBuf,
    /// No live status line.
    #[arg(long)]
    quiet: bool,
}

/// `--target-ms`: milliseconds, or chosen from the idle calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// This many ms.
    Ms(f64),
    /// [`AUTO_TARGET_FRACTION`] × the most accurate level's idle latency.
    Auto,
}

/// `--target-ms auto`: the target as a multiple of the most accurate level's idle latency.
pub const AUTO_TARGET_FRACTION: f64 = 1.3;

fn parse_target(text: &str) -> Result<Target, String> {
    match text {
        "auto" => Ok(Target::Auto),
        _ => text.parse().map(Target::Ms).map_err(|_| format!("{text:?}: a number of milliseconds or `auto`")),
    }
}

fn parse_priority(text: &str) -> Result<Priority, String> {
    match text {
        "latency" => Ok(Priority::Latency),
        "accuracy" => Ok(Priority::Accuracy),
        _ => Err(format!("{text:?}: latency or accuracy")),
    }
}

/// A family file and where it was read from (or is cached), for messages and its
/// BatchNorm file.
#[derive(Clone)]
struct NamedFamily {
    file: FamilyFile,
    path: PathBuf,
}

/// A processor asked for, opened, with its family (none yet for a GPU whose default
/// family is made once the supernet is loaded).
struct OpenedProcessor {
    device: DeviceId,
    placement: Placement,
    adapter: Option<Adapter>,
    family: Option<NamedFamily>,
}

impl OpenedProcessor {
    /// `cpu`, or the adapter's id (`gpu:0`) for a GPU.
    fn name(&self) -> String {
        self.adapter.as_ref().map_or(self.device.to_string(), |a| a.id.clone())
    }
}

/// Each processor asked for with its family: the families given, each on the processor it
/// names; the defaults for processors without one (the GPU's is made later, once the
/// adapter is open). Checks that every family has its processor and no processor has two.
fn families_to_run(args: &Args) -> Result<Vec<(DeviceId, Option<NamedFamily>)>> {
    let mut given: Vec<NamedFamily> = Vec::new();
    for path in &args.families {
        let file = FamilyFile::read(path)?;
        if given.iter().any(|f| f.file.device == file.device) {
            bail!("--family {}: a second {} family (one family per processor)", path.display(), file.device);
        }
        given.push(NamedFamily { file, path: path.clone() });
    }
    let devices = if args.devices.is_empty() {
        let mut from_families: Vec<DeviceId> = given.iter().map(|f| processor_id(f.file.device)).collect();
        if from_families.is_empty() {
            from_families.push(DeviceId::Cpu);
        }
        from_families
    } else {
        args.devices.clone()
    };
    for (i, d) in devices.iter().enumerate() {
        if devices[..i].iter().any(|e| e.processor() == d.processor()) {
            bail!("--devices: {} and {} — one CPU and one GPU at most", devices.iter().find(|e| e.processor() == d.processor()).expect("found"), d);
        }
    }
    for NamedFamily { file, path } in &given {
        if !devices.iter().any(|d| d.processor() == file.device) {
            let list = devices.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            bail!(
                "--family {} is a {} family (its `device`), and --devices {list} runs no {}: add {} to --devices",
                path.display(),
                file.device,
                file.device,
                file.device
            );
        }
    }
    devices
        .into_iter()
        .map(|device| {
            let family = given.iter().find(|f| f.file.device == device.processor()).cloned();
            let family = match family {
                None if device == DeviceId::Cpu => Some(default_cpu_family()?),
                family => family,
            };
            Ok((device, family))
        })
        .collect()
}

/// `cpu` or `gpu`.
fn processor_id(processor: Processor) -> DeviceId {
    match processor {
        Processor::Cpu => DeviceId::Cpu,
        Processor::Gpu => DeviceId::Gpu(None),
    }
}

/// The CPU family without `--family`: the one `dynofa tune` made for this machine when
/// there is one (an error naming it when it cannot be used), else the embedded one. Says
/// which on stderr.
fn default_cpu_family() -> Result<NamedFamily> {
    if let Some(tuned) = crate::commands::tune::tuned_family() {
        let (file, path) = tuned?;
        eprintln!("family: tuned for this machine ({}, made {})", path.display(), file.metadata.get("made").map_or("?", String::as_str));
        return Ok(NamedFamily { file, path });
    }
    eprintln!("family: the embedded default (made on another machine; `dynofa tune` makes one for this machine in about a minute)");
    let file = FamilyFile::parse(DEFAULT_FAMILY, Path::new(DEFAULT_FAMILY_NAME)).expect("the embedded family parses");
    Ok(NamedFamily { file, path: PathBuf::from(DEFAULT_FAMILY_NAME) })
}

/// Runs the job; prints the summary as JSON on stdout.
pub fn run(args: Args) -> Result<()> {
    // Everything the user typed is checked before the (slow) supernet load.
    // `auto` is chosen after the calibration; the floor is checked now.
    let given_ms = match args.target_ms {
        Target::Ms(ms) => ms,
        Target::Auto => 1000.0,
    };
    let mut requirements = Requirements { target_ms: given_ms, min_accuracy: args.min_accuracy, priority: args.priority }.validated()?;
    anyhow::ensure!(args.duration.is_finite() && args.duration > 0.0, "--duration {}: a positive number of seconds", args.duration);
    let load: LoadSpec = match &args.load {
        Some(spec) => spec.parse()?,
        None => LoadSpec::default(),
    };
    // A GPU load needs its adapter (its process, started later, could only fail silently).
    for window in &load.windows {
        if let LoadKind::Gpu { adapter } = window.kind {
            dynofa_device::find_gpu(DeviceId::Gpu(adapter)).context("--load: the competing GPU process")?;
        }
    }
    dynofa_runtime::plot::check_path(&args.plot).context("--plot")?;
    let wanted = families_to_run(&args)?;
    let frames = Frames::open(&args.input)?;
    let cores = dynofa_runtime::monitor::system::allowed_cores();
    let max_threads = args.threads.unwrap_or(cores);
    anyhow::ensure!(max_threads >= 1, "--threads must be at least 1");
    // The processors, opened (a GPU that is not there is an error that lists what is).
    let mut opened: Vec<OpenedProcessor> = Vec::new();
    for (device, family) in wanted {
        let (placement, adapter) = crate::device::open(device, max_threads)?;
        opened.push(OpenedProcessor { device, placement, adapter, family });
    }
    // The policy checked before the (slow) loads, against the families as planned (a GPU's
    // default family has `gpu_default::LEVELS` levels).
    let planned: Vec<LevelTable> = opened
        .iter()
        .map(|p| match &p.family {
            Some(family) => LevelTable::from_family(&family.file, &p.name(), max_threads),
            None => {
                let levels = crate::gpu_default::LEVELS;
                LevelTable { device: p.name(), processor: Processor::Gpu, accuracy: vec![0.0; levels], latency_ms: vec![vec![None]; levels] }
            }
        })
        .collect();
    policy::by_name(&args.policy, &planned)?;

    let untrained = args.weights.weights.is_none();
    let supernet = args.weights.load(&Device::flex())?;
    for p in &mut opened {
        if let (None, Placement::Gpu(gpu)) = (&p.family, &p.placement) {
            let (file, path) = crate::gpu_default::load_or_make(&supernet, p.adapter.as_ref().expect("a GPU has an adapter"), gpu, args.quiet)?;
            p.family = Some(NamedFamily { file, path });
        }
    }
    let mut processors = Vec::new();
    for p in &opened {
        let family = p.family.as_ref().expect("every processor has its family now");
        processors.push(ProcessorFamily::load(&supernet, family.file.clone(), &family.path, &p.placement, &p.name())?);
    }
    drop(supernet);
    let models: Vec<LevelTable> = processors.iter().map(|p| p.model.clone()).collect();
    let policy = policy::by_name(&args.policy, &models)?;
    let mut runtime = Runtime::on_processors(processors)?.with_requirements(requirements)?.with_policy(policy);
    let start = Instant::now();
    let warm = runtime.warm_up()?;
    for (seconds, model) in warm.iter().zip(runtime.level_tables()) {
        if model.processor == Processor::Gpu {
            eprintln!("{}: {} levels warmed up (kernels compiled) in {seconds:.1} s", model.device, model.levels());
        }
    }
    tracing::info!(seconds = start.elapsed().as_secs_f64(), "warm-up");
    if args.calibrate_iters > 0 {
        let bar = crate::progress::bar(1, "idle calibration {bar:30} {pos}/{len} level × processor × threads", args.quiet);
        let start = Instant::now();
        let calibration = runtime.calibrate_with(args.calibrate_iters, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        let what = runtime.level_tables().iter().map(|m| format!("{} levels on {}", m.levels(), m.device)).collect::<Vec<_>>().join(", ");
        eprintln!("idle calibration: {what} (CPU on 1…{max_threads} threads), {} rounds in {:.1} s", calibration.rounds, start.elapsed().as_secs_f64());
        if calibration.extended {
            eprintln!(
                "idle calibration: the machine was noisy (a configuration's samples spread over {:.0}% around their median): measured for {} rounds instead of {}; {}",
                dynofa_runtime::runtime::NOISY_SPREAD * 100.0,
                calibration.rounds,
                args.calibrate_iters,
                if calibration.trusted {
                    format!("now within {:.0}%", calibration.worst_spread * 100.0)
                } else {
                    format!("still {:.0}% at the end: the idle latencies may be off (run again on a quieter machine)", calibration.worst_spread * 100.0)
                }
            );
        }
    }
    if args.target_ms == Target::Auto {
        let (ms, device, threads, level) = runtime
            .level_tables()
            .iter()
            .filter_map(|m| {
                let top = m.levels().checked_sub(1)?;
                (1..=m.max_threads()).filter_map(|t| Some((m.predict(top, t)?, m.device.clone(), t, top))).min_by(|a, b| a.0.total_cmp(&b.0))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .context("--target-ms auto: no idle latency for the most accurate level")?;
        requirements.target_ms = AUTO_TARGET_FRACTION * ms;
        runtime.set_requirements(requirements)?;
        let source = if args.calibrate_iters > 0 { "as calibrated" } else { "from the family's tables (--calibrate-iters 0)" };
        eprintln!(
            "target: {:.1} ms (auto) = {AUTO_TARGET_FRACTION} × the most accurate level ({level}) idle, {ms:.2} ms on {device} with {threads} thread(s) {source}: it fits while the machine is idle, and a competing load forces switches",
            requirements.target_ms
        );
    }

    let exe = std::env::current_exe().context("cannot find the dynofa executable to start the load")?;
    // From here on an interrupt ends the frame loop; what ran is written as at the end.
    let _frames_section = interrupt::Section::enter("stopping the run after this frame; writing the trace, plot and summary of the frames so far")?;
    let runner = (!load.windows.is_empty()).then(|| LoadRunner::start(load.clone(), move |kind| load_command(&exe, kind)));
    let status = crate::progress::bar((args.duration * 10.0) as u64, "{bar:20} {elapsed_precise} {msg}", args.quiet);
    let start = Instant::now();
    let mut rows: Vec<TraceRow> = Vec::new();
    let mut last_status = Instant::now();
    let mut index = 0usize;
    let mut skipped_frames = 0usize;
    while start.elapsed().as_secs_f64() < args.duration && !interrupt::requested() {
        let frame = frames.get(index);
        index += 1;
        let Some(frame) = frame else {
            skipped_frames += 1;
            continue;
        };
        let mut row = TraceRow::from(&runtime.infer(&frame)?);
        row.t_s = start.elapsed().as_secs_f64();
        if last_status.elapsed() >= Duration::from_millis(100) {
            last_status = Instant::now();
            status.set_position((row.t_s * 10.0) as u64);
            status.set_message(format!(
                "{} level {} ×{}t  {:6.2} ms (target {})  others {:.1} cores{}",
                row.device,
                row.level,
                row.threads,
                row.latency_ms,
                row.target_ms,
                row.others_cpu,
                if load.active_at(row.t_s) { "  [load]" } else { "" }
            ));
        }
        rows.push(row);
    }
    status.finish_and_clear();
    let interrupted = interrupt::requested();
    // Kills the load processes still running and waits for them; a load that could not
    // start is reported once the frames that ran are written.
    let load_outcome = runner.map_or(Ok(()), LoadRunner::finish);

    for path in [&args.trace, &args.plot] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    trace::write_csv(&args.trace, &rows)?;
    let devices = runtime.level_tables().iter().map(|m| m.device.as_str()).collect::<Vec<_>>().join(" + ");
    let title = format!(
        "dynofa run on {devices}: {} policy, target {} ms{}",
        runtime.policy_name(),
        (requirements.target_ms * 100.0).round() / 100.0,
        args.load.as_deref().map(|l| format!(", load {l}")).unwrap_or_default()
    );
    dynofa_runtime::plot::trace(&args.plot, &rows, &load, &title)?;
    let summary = Summary { skipped_frames, interrupted, ..Summary::of(&rows, &load, 5) };
    let stats = runtime.stats();
    let processors: Vec<serde_json::Value> = runtime
        .level_tables()
        .iter()
        .zip(&opened)
        .zip(&stats.frames_per_level)
        .zip(runtime.memory_bytes())
        .map(|(((model, p), frames), bytes)| {
            json!({
                "device": model.device,
                "adapter": p.adapter,
                "family": p.family.as_ref().map(|f| &f.path),
                "weights_mb": bytes as f64 / 1e6,
                "accuracy": model.accuracy,
                "idle_latency_ms": model.latency_ms,
                "frames_per_level": frames,
            })
        })
        .collect();
    let report = json!({
        "policy": runtime.policy_name(),
        "processors": processors,
        "weights": if untrained { "embedded default (seeded, UNTRAINED: predictions are meaningless; accuracies are the predictor's)".to_string() } else { args.weights.weights.as_ref().unwrap().display().to_string() },
        "target_ms": requirements.target_ms,
        "target_auto": args.target_ms == Target::Auto,
        "min_accuracy": requirements.min_accuracy,
        "load": args.load,
        "input": args.input,
        "unreadable_inputs": frames.unreadable,
        "max_threads": max_threads,
        "summary": summary,
        "trace": args.trace,
        "plot": args.plot,
    });
    let summary_path = args.trace.with_extension("summary.json");
    dynofa_supernet::files::write_atomically(&summary_path, |f| serde_json::to_writer_pretty(&mut *f, &report).map_err(std::io::Error::other))?;
    println!("{report}");
    if interrupted {
        eprintln!("interrupted after {:.1} s of the {} s asked for", rows.last().map_or(0.0, |r| r.t_s), args.duration);
    }
    if skipped_frames > 0 {
        eprintln!("{skipped_frames} frames skipped: {} unreadable image(s) in --input {}", frames.unreadable.len(), args.input);
    }
    eprintln!(
        "{} frames, {:.1}% over {:.2} ms ({:.1}% after 5 reaction frames), mean predicted accuracy {:.2}%, {} switches ({:.1} µs each)",
        summary.frames,
        summary.over_pct,
        requirements.target_ms,
        summary.over_after_reaction_pct,
        summary.mean_acc * 100.0,
        summary.switches,
        summary.mean_switch_us
    );
    eprintln!("trace: {}\nplot:  {}\nsummary: {}", args.trace.display(), args.plot.display(), summary_path.display());
    if untrained {
        eprintln!(
            "note: these weights are NOT trained ImageNet weights: the classes are meaningless; the accuracies shown are the predictor's estimates for trained weights."
        );
    }
    load_outcome?;
    // Exits with status 130 if interrupted, the frames or the writes cut short or not.
    interrupt::check()
}

/// The process that makes `kind`'s load: this executable's hidden `load-worker` command
/// (`load-worker busy 2`, `load-worker gpu gpu:0`, …), its output discarded.
pub(crate) fn load_command(exe: &Path, kind: &LoadKind) -> Command {
    let (name, detail) = match kind {
        LoadKind::Busy { threads } => ("busy", threads.to_string()),
        LoadKind::Memory { threads } => ("mem", threads.to_string()),
        LoadKind::Dnn { threads } => ("dnn", threads.to_string()),
        LoadKind::Gpu { adapter } => ("gpu", DeviceId::Gpu(*adapter).to_string()),
    };
    let mut command = Command::new(exe);
    command.args(["load-worker", name, &detail]);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    command
}

/// The CPU family `dynofa run` uses without `--family`, and where it comes from.
pub(crate) fn family_for_run() -> Result<(FamilyFile, PathBuf)> {
    let family = default_cpu_family()?;
    Ok((family.file, family.path))
}

/// The frames fed to the runtime, cycled.
pub(crate) struct Frames {
    /// `(width, height, rgb)` per frame, in cycle order; `None` for an image file that
    /// could not be read (skipped each time the cycle comes to it).
    images: Vec<Option<(usize, usize, Vec<u8>)>>,
    /// The image files that could not be read.
    unreadable: Vec<PathBuf>,
}

impl Frames {
    /// `synthetic` (eight seeded 320×240 noise frames) or a directory of images (PNG,
    /// JPEG), each decoded once here. An image that cannot be read is skipped with a
    /// warning; a directory with no readable image is an error naming it.
    pub(crate) fn open(input: &str) -> Result<Self> {
        if input == "synthetic" {
            let mut state = 0x9e3779b97f4a7c15u64;
            let images = (0..8)
                .map(|_| {
                    let pixels = (0..320 * 240 * 3)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            (state >> 56) as u8
                        })
                        .collect();
                    Some((320, 240, pixels))
                })
                .collect();
            return Ok(Frames { images, unreadable: Vec::new() });
        }
        let dir = Path::new(input);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("--input {input}: not `synthetic` nor a readable directory"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")))
            .collect();
        paths.sort();
        anyhow::ensure!(!paths.is_empty(), "--input {input}: no .png/.jpg/.jpeg image in the directory");
        let (mut images, mut unreadable) = (Vec::with_capacity(paths.len()), Vec::new());
        let mut first_error = None;
        for path in paths {
            match crate::preprocess::read_image(&path) {
                Ok(img) => {
                    let img = img.to_rgb8();
                    images.push(Some((img.width() as usize, img.height() as usize, img.into_raw())));
                }
                Err(e) => {
                    // The error names the file.
                    eprintln!("warning: --input: skipping an image (its frames are counted as skipped): {e:#}");
                    first_error.get_or_insert(e);
                    images.push(None);
                    unreadable.push(path);
                }
            }
        }
        if let Some(e) = first_error.filter(|_| images.iter().all(Option::is_none)) {
            bail!("--input {input}: none of its {} images can be read (the first: {e:#})", images.len());
        }
        Ok(Frames { images, unreadable })
    }

    /// Frame `i` of the cycle, `None` if its image could not be read.
    pub(crate) fn get(&self, i: usize) -> Option<Frame<'_>> {
        let (w, h, rgb) = self.images[i % self.images.len()].as_ref()?;
        Some(Frame::rgb(*w, *h, rgb).expect("decoded frames have width × height × 3 bytes"))
    }
}

/// Arguments of the hidden `dynofa load-worker` (the process a load window starts).
#[derive(clap::Args, Debug)]
pub struct LoadWorkerArgs {
    /// `busy` (spinning threads), `mem` (threads streaming memory), `dnn` (inference of the
    /// largest default level in a loop) or `gpu` (the same on a GPU).
    kind: String,
    /// Threads (`busy`, `mem`, `dnn`), or the GPU (`gpu`: gpu, gpu:N).
    detail: String,
}

/// Runs until killed; prints `ready` on stdout once it loads the machine (a DNN load
/// after its network is built), for callers that pause and resume it.
pub fn load_worker(args: LoadWorkerArgs) -> Result<()> {
    let threads = || args.detail.parse::<usize>().with_context(|| format!("load-worker {}: a thread count, not {:?}", args.kind, args.detail));
    let ready = || {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready").and_then(|()| out.flush());
    };
    let placement = match args.kind.as_str() {
        "busy" => {
            let threads = threads()?;
            ready();
            dynofa_runtime::contention::spin_forever(threads)
        }
        "mem" => {
            let threads = threads()?;
            ready();
            dynofa_runtime::contention::stream_forever(threads)
        }
        "dnn" => Placement::Cpu { threads: threads()?.max(1) },
        "gpu" => {
            let id = crate::device::parse_device(&args.detail).map_err(anyhow::Error::msg)?;
            Placement::Gpu(dynofa_device::open_gpu(id)?.device)
        }
        other => bail!("load-worker kind {other:?}: busy, mem, dnn or gpu"),
    };
    dynofa_runtime::contention::exit_with_parent();
    let supernet = dynofa_supernet::SupernetConfig::ofa_mbv3(dynofa_supernet::Width::W12).init(&Device::flex());
    // The embedded family's largest level: the same load whatever family the run uses.
    let embedded = FamilyFile::parse(DEFAULT_FAMILY, Path::new(DEFAULT_FAMILY_NAME))?;
    let largest = embedded.levels.last().context("empty default family")?.config.clone();
    let r = largest.resolution();
    let mut family = placement.load(&supernet, &[largest], &[])?;
    let input = dynofa_supernet::tensor_io::Array { shape: vec![1, 3, r, r], data: vec![0.1; 3 * r * r] };
    family.forward(&input)?;
    ready();
    loop {
        family.forward(&input)?;
    }
}
