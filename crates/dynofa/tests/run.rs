//! `dynofa run`, the main job, as a user runs it: a short run under a real competing
//! process, whose trace must be complete and consistent; and clear errors for bad input.

mod common;

use common::{dynofa, s, stderr};

#[test]
fn a_short_run_under_load_writes_a_complete_consistent_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, plot) = (dir.path().join("out/trace.csv"), dir.path().join("out/trace.svg"));
    let run = dynofa(&[
        "run",
        "--target-ms",
        "40",
        "--duration",
        "3",
        "--load",
        "1s-2s:1",
        "--policy",
        "predictive",
        "--calibrate-iters",
        "1",
        "--trace",
        s(&trace),
        "--plot",
        s(&plot),
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
    // The plot goes to the temporary folder too: a case that wrongly succeeds writes nothing
    // into the repository.
    let plot = dir.path().join("t.svg");
    let common = ["--duration", "1", "--trace", s(&t), "--plot", s(&plot)];
    let cases: &[(&[&str], &str)] = &[
        (&["--target-ms", "0"], "latency target"),
        (&["--target-ms", "-5"], "latency target"),
        (&["--target-ms", "10", "--load", "5s-3s:2"], "END must come after START"),
        (&["--target-ms", "10", "--load", "busy"], "load spec"),
        (&["--target-ms", "10", "--min-accuracy", "1.5"], "accuracy floor"),
        (&["--target-ms", "10", "--policy", "static:99"], "policy"),
        (&["--target-ms", "10", "--policy", "fastest"], "policy"),
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
    // A plot format that dynofa does not write.
    let pdf = dynofa(&["run", "--target-ms", "10", "--duration", "1", "--trace", s(&t), "--plot", s(&dir.path().join("t.pdf"))]);
    assert!(!pdf.status.success() && stderr(&pdf).contains(".svg or .png"), "{}", stderr(&pdf));
    // A family file that is not one.
    let family = dir.path().join("family.ron");
    std::fs::write(&family, "(format: 1, levels: oops)").unwrap();
    let out = dynofa(&["run", "--target-ms", "10", "--family", s(&family), "--duration", "1"]);
    assert!(!out.status.success() && stderr(&out).contains("family.ron"), "{}", stderr(&out));
    assert!(!t.exists(), "nothing written on error");
}

/// A folder `frames` in `dir` holding a readable 320×240 PNG and a "JPEG" of garbage bytes.
fn frames_with_a_corrupt_image(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let frames = dir.join("frames");
    std::fs::create_dir(&frames).unwrap();
    image::RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, 128])).save(frames.join("good.png")).unwrap();
    let bad = frames.join("bad.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not a JPEG: garbage bytes where the frame should be").unwrap();
    (frames, bad)
}

#[test]
fn an_unreadable_input_image_is_skipped_warned_about_once_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (frames, bad) = frames_with_a_corrupt_image(dir.path());
    let trace = dir.path().join("trace.csv");
    let run = dynofa(&[
        "run",
        "--target-ms",
        "40",
        "--duration",
        "2",
        "--calibrate-iters",
        "1",
        "--input",
        s(&frames),
        "--trace",
        s(&trace),
        "--plot",
        s(&dir.path().join("trace.svg")),
    ]);
    let err = stderr(&run);
    assert!(run.status.success(), "a corrupt frame does not stop the run: {err}");
    assert_eq!(err.lines().filter(|l| l.contains("bad.jpg")).count(), 1, "one warning for the file, not one per frame: {err}");
    assert!(err.contains("warning") && err.contains(s(&bad)), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let summary = &report["summary"];
    let (frames_run, skipped) = (summary["frames"].as_u64().unwrap(), summary["skipped_frames"].as_u64().unwrap());
    // The cycle is bad.jpg, good.png, bad.jpg, …: every other frame is skipped.
    assert!(frames_run >= 1 && (skipped == frames_run || skipped == frames_run + 1), "{summary}");
    assert_eq!(report["unreadable_inputs"], serde_json::json!([s(&bad)]));
    assert_eq!(summary["interrupted"], false);
    assert_eq!(dynofa_runtime::trace::read_csv(&trace).unwrap().len() as u64, frames_run, "skipped frames are not in the trace");
}

#[test]
fn an_input_folder_without_a_readable_image_is_an_error_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (frames, _) = frames_with_a_corrupt_image(dir.path());
    std::fs::remove_file(frames.join("good.png")).unwrap();
    let trace = dir.path().join("trace.csv");
    let run = dynofa(&["run", "--target-ms", "40", "--duration", "2", "--input", s(&frames), "--trace", s(&trace)]);
    let err = stderr(&run);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains(&format!("--input {}: none of its 1 images can be read", s(&frames))), "names the folder: {err}");
    assert!(!err.contains("panicked") && !err.contains("idle calibration"), "{err}");
    assert!(!trace.exists());
}
