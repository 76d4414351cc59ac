//! `dynofa experiment` on a small sweep (two small levels, one thread, one target, an idle
//! and a memory-bound load, the best static configuration and `predictive`): every output
//! is written and consistent with the traces; `dynofa run --target-ms auto` says the target
//! it chose and why.

mod common;

use common::{dynofa, s, stderr};
use dynofa_runtime::oracle::ConditionTable;
use dynofa_slice::family_file::FamilyFile;

/// The embedded family's two smallest levels, as a family file in `dir`.
fn small_family(dir: &std::path::Path) -> std::path::PathBuf {
    let embedded = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/families/cpu_w12.ron");
    let mut family = FamilyFile::read(&embedded).unwrap();
    family.levels.truncate(2);
    let path = dir.join("small.ron");
    family.write(&path).unwrap();
    path
}

#[test]
fn a_small_sweep_writes_its_runs_table_plot_and_traces() {
    let dir = tempfile::tempdir().unwrap();
    let family = small_family(dir.path());
    let out = dir.path().join("exp");
    let run = dynofa(&[
        "experiment",
        "--quick",
        "--family",
        s(&family),
        "--threads",
        "1",
        "--targets",
        "2",
        "--loads",
        "none,memory",
        "--policies",
        "static,predictive",
        "--out",
        s(&out),
    ]);
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("experiment.json")).unwrap()).unwrap();
    // The oracle's tables, measured for each cell just before its runs: every configuration
    // (2 levels × 1 thread) idle and, for a load, under it; the targets' base measured the
    // same way at the start.
    let cells = report["oracle"].as_array().unwrap();
    assert_eq!(cells.iter().map(|c| c["load"].as_str().unwrap()).collect::<Vec<_>>(), ["none", "memory"]);
    let conditions = |c: &serde_json::Value| c["tables"].as_array().unwrap().iter().map(|t| t["condition"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(conditions(&cells[0]), ["none"]);
    assert_eq!(conditions(&cells[1]), ["none", "memory"]);
    let tables = cells.iter().flat_map(|c| c["tables"].as_array().unwrap()).chain([&report["base"]]);
    for table in tables {
        assert_eq!(table["configs"].as_array().unwrap().len(), 2, "{table}");
        for config in table["configs"].as_array().unwrap() {
            // Every frame kept, ascending; the median and p95 are theirs.
            let samples: Vec<f64> = config["samples_ms"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert!(samples.len() >= 4 && samples.windows(2).all(|w| w[0] <= w[1]), "{config}");
            assert_eq!(config["median_ms"].as_f64().unwrap(), dynofa_runtime::stats::nearest_rank(&samples, 0.5), "{config}");
            assert_eq!(config["p95_ms"].as_f64().unwrap(), dynofa_runtime::stats::nearest_rank(&samples, 0.95), "{config}");
            assert!(config["median_ms"].as_f64().unwrap() > 0.0);
        }
    }
    let cell_of = |load: &str| -> Vec<ConditionTable> {
        let cell = cells.iter().find(|c| c["load"] == load).unwrap();
        serde_json::from_value(cell["tables"].clone()).unwrap()
    };
    // The base: the top level's idle median there (one thread).
    let base: ConditionTable = serde_json::from_value(report["base"].clone()).unwrap();
    assert_eq!(report["top_idle_ms"].as_f64().unwrap(), base.get(1, 1).unwrap().median_ms);
    let top_idle = report["top_idle_ms"].as_f64().unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "1 target × 2 loads × 2 policies");
    for r in runs {
        for key in ["target_x", "load", "policy", "frames", "over_pct", "over_during_load_pct", "acc_gap_pp", "reaction_frames", "recovery_s", "switches"] {
            assert!(r.get(key).is_some(), "{key} missing: {r}");
        }
        assert!((r["target_ms"].as_f64().unwrap() - 2.0 * top_idle).abs() < 1e-9);
        // The oracle's own share of frames over the target: a percentage.
        let oracle_over = r["oracle_over_pct"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&oracle_over), "{r}");
        // The metrics are those of the trace (whose latencies are rounded to 0.1 µs: one
        // frame may land on the other side of the target).
        let rows = dynofa_runtime::trace::read_csv(std::path::Path::new(r["trace"].as_str().unwrap())).unwrap();
        assert_eq!(rows.len() as u64, r["frames"].as_u64().unwrap());
        let over = rows.iter().filter(|row| row.latency_ms > row.target_ms).count() as f64 * 100.0 / rows.len() as f64;
        assert!((over - r["over_pct"].as_f64().unwrap()).abs() <= 100.0 / rows.len() as f64 + 1e-9, "{r}");
        let tables = cell_of(r["load"].as_str().unwrap());
        if r["policy"] == "static" {
            let run_as = r["policy_run"].as_str().unwrap();
            // The best fixed configuration in hindsight of the cell's own tables.
            let best = dynofa_runtime::oracle::best_static(&tables.iter().collect::<Vec<_>>(), r["target_ms"].as_f64().unwrap()).unwrap();
            assert_eq!(run_as, format!("static:{}@{}", best.level, best.threads));
            assert_eq!(r["switches"], 0);
            assert!(rows.iter().all(|row| format!("static:{}@{}", row.level, row.threads) == run_as));
        }
        if r["load"] == "none" {
            assert_eq!(r["over_during_load_pct"], 0.0);
            // Every frame idle: the slowdown is the median of latency ÷ the idle table's
            // median for the frame's configuration.
            let idle_median = |level: usize| tables[0].get(level, 1).unwrap().median_ms;
            let ratios: Vec<f64> = rows.iter().map(|row| row.latency_ms / idle_median(row.level)).collect();
            let expected = dynofa_runtime::stats::median(&ratios);
            let slowdown = r["idle_slowdown"].as_f64().unwrap();
            assert!((slowdown - expected).abs() < 1e-3 * expected, "{slowdown} against {expected} from the trace: {r}");
        }
    }
    let table = std::fs::read_to_string(out.join("experiment.md")).unwrap();
    assert!(table.contains("| target | load | policy |") && table.contains("the oracle's own over %") && table.contains("predictive"), "{table}");
    assert!(table.contains("| idle slowdown |") && table.contains("Idle slowdown: ") && table.contains("Where the yardstick holds"), "{table}");
    let svg = std::fs::read_to_string(out.join("experiment.svg")).unwrap();
    // The PNG beside it: the SVG rasterised at twice its size.
    let png = image::open(out.join("experiment.png")).unwrap();
    let (width, height) = (svg.split("width=\"").nth(1).unwrap(), svg.split("height=\"").nth(1).unwrap());
    let number = |s: &str| s.split('"').next().unwrap().parse::<u32>().unwrap();
    assert_eq!((png.width(), png.height()), (2 * number(width), 2 * number(height)));
    assert!(svg.contains("<svg") && svg.contains("predictive") && svg.contains("memory"));
    // Nothing but the outputs (no temporary file left behind).
    assert_eq!(dynofa_golden::entries(&out), ["experiment.json", "experiment.md", "experiment.png", "experiment.svg", "traces"]);

    let bad = dynofa(&["experiment", "--loads", "none,quake", "--out", s(&out)]);
    assert!(!bad.status.success() && stderr(&bad).contains("quake"), "{}", stderr(&bad));
}

#[test]
fn run_with_an_auto_target_says_what_it_chose_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let family = small_family(dir.path());
    let trace = dir.path().join("trace.csv");
    let run = dynofa(&[
        "run",
        "--family",
        s(&family),
        "--threads",
        "1",
        "--target-ms",
        "auto",
        "--duration",
        "1",
        "--calibrate-iters",
        "2",
        "--quiet",
        "--trace",
        s(&trace),
        "--plot",
        s(&dir.path().join("trace.svg")),
    ]);
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let target = report["target_ms"].as_f64().unwrap();
    assert_eq!(report["target_auto"], true);
    // 1.3 × the top level's calibrated idle latency (one thread here).
    let top_idle = report["processors"][0]["idle_latency_ms"][1][0].as_f64().unwrap();
    assert!((target - 1.3 * top_idle).abs() < 1e-6 * target, "{target} vs {top_idle}");
    assert!(err.contains("(auto)") && err.contains("1.3 ×") && err.contains("idle"), "{err}");
    assert!(dynofa_runtime::trace::read_csv(&trace).unwrap().iter().all(|r| r.target_ms == target));
    let bad = dynofa(&["run", "--target-ms", "fast", "--duration", "1"]);
    assert!(!bad.status.success() && stderr(&bad).contains("auto"), "{}", stderr(&bad));
}
