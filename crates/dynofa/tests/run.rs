//! `dynofa run`, the main job, as a user runs it: a short run under a real competing
//! process, whose trace must be complete and consistent; and clear errors for bad input.

mod common;

use common::{dynofa, s, stderr};

#[test]
fn a_short_run_under_load_writes_a_complete_consistent_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, plot) = (dir.path().join("out/trace.csv"), dir.path().join("out/trace.svg"));
    let run = dynofa(&[
        "run", "--target-ms", "40", "--duration", "3", "--load", "1s-2s:1", "--policy", "predictive",
        "--calibrate-iters", "1", "--trace", s(&trace), "--plot", s(&plot),
    ]);
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("UNTRAINED") && err.contains("NOT trained"), "the default weights are called untrained: {err}");
    assert!(err.contains(s(&trace)) && err.contains(s(&plot)), "says where the trace and plot are: {err}");

    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let cpu = &report["processors"][0];
    assert_eq!(cpu["device"], "cpu");
    let levels = cpu["accuracy"].as_array().unwrap().len();
    assert!(levels >= 2);
    let rows = dynofa_runtime::trace::read_csv(&trace).unwrap();
    assert!(rows.len() >= 3, "{} frames", rows.len());
    assert_eq!(rows.len() as u64, report["summary"]["frames"].as_u64().unwrap());
    assert_eq!(cpu["frames_per_level"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>(), rows.len() as u64);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.frame, i as u64 + 1, "frames are numbered in order");
        assert!(row.level < levels && row.threads >= 1 && row.latency_ms > 0.0 && row.latency_pred_ms > 0.0);
        assert_eq!(row.target_ms, 40.0);
        assert_eq!((row.device.as_str(), row.next_device.as_str()), ("cpu", "cpu"));
        let acc = cpu["accuracy"][row.level].as_f64().unwrap();
        assert!((row.acc_pred - acc).abs() < 1e-5, "acc_pred is the level's");
        assert!(["start", "hold", "down", "up", "floor", "infeasible"].contains(&row.decision.as_str()), "{}", row.decision);
        if let Some(next) = rows.get(i + 1) {
            assert!(next.t_s > row.t_s, "time moves forward");
            assert_eq!((next.level, next.threads), (row.next_level, row.next_threads), "the decision is what ran next");
        }
        assert_eq!(row.switches(), row.switch_us > 0.0, "frame {}: switch time only with a switch", row.frame);
        assert!(row.switch_us < 1000.0, "a switch takes under a millisecond: {} µs", row.switch_us);
    }
    assert!(rows.last().unwrap().t_s >= 2.9, "ran for the duration");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("target 40 ms") && svg.contains("<svg"));
    assert!(trace.with_extension("summary.json").exists());
}

#[test]
fn run_refuses_bad_input_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.csv");
    let common = ["--duration", "1", "--trace", s(&t)];
    let cases: &[(&[&str], &str)] = &[
        (&["--target-ms", "0"], "latency target"),
        (&["--target-ms", "-5"], "latency target"),
        (&["--target-ms", "10", "--load", "5s-3s:2"], "END must come after START"),
        (&["--target-ms", "10", "--load", "busy"], "load spec"),
        (&["--target-ms", "10", "--min-accuracy", "1.5"], "accuracy floor"),
        (&["--target-ms", "10", "--policy", "static:99"], "policy"),
        (&["--target-ms", "10", "--policy", "fastest"], "policy"),
        (&["--target-ms", "10", "--plot", "trace.png"], ".svg"),
        (&["--target-ms", "10", "--input", "/nonexistent/frames"], "/nonexistent/frames"),
        // The embedded family is for the w1.2 supernet.
        (&["--target-ms", "10", "--width", "1.0"], "width"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&common);
        let out = dynofa(&all);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A family file that is not one.
    let family = dir.path().join("family.ron");
    std::fs::write(&family, "(format: 1, levels: oops)").unwrap();
    let out = dynofa(&["run", "--target-ms", "10", "--family", s(&family), "--duration", "1"]);
    assert!(!out.status.success() && stderr(&out).contains("family.ron"), "{}", stderr(&out));
    assert!(!t.exists(), "nothing written on error");
}
