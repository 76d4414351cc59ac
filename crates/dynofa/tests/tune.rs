//! `dynofa tune`: a family for this machine whose levels are ordered here, written to
//! `--out` or cached where `dynofa run` (without `--family`) finds it.

use std::collections::BTreeSet;
use std::path::Path;

use dynofa_slice::family_file::FamilyFile;

mod common;

use common::{dynofa_with, last_json, s, stderr};

/// Checks a tuned family: at least 3 levels, accuracy and latency on the most threads
/// rising, a `cpu_t<T>` latency per thread count; returns it.
fn check_family(path: &Path, threads: &[usize]) -> FamilyFile {
    let family = FamilyFile::read(path).unwrap();
    assert!(family.levels.len() >= 3, "{} levels", family.levels.len());
    let max = format!("cpu_t{}", threads.last().unwrap());
    for pair in family.levels.windows(2) {
        assert!(pair[1].acc_pred.unwrap() > pair[0].acc_pred.unwrap(), "accuracy rises");
        assert!(pair[1].latency_ms[&max] > pair[0].latency_ms[&max], "latency on the most threads rises");
    }
    for level in &family.levels {
        // As sets: the map orders its keys as text (`cpu_t10` before `cpu_t2`).
        let names: BTreeSet<String> = threads.iter().map(|t| format!("cpu_t{t}")).collect();
        assert_eq!(level.latency_ms.keys().cloned().collect::<BTreeSet<_>>(), names);
    }
    for key in ["made", "machine", "measured", "rounds", "noise"] {
        assert!(family.metadata.contains_key(key), "metadata {key}: {:?}", family.metadata);
    }
    family
}

#[test]
fn tune_out_writes_an_ordered_family_that_run_loads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let env = [("DYNOFA_CACHE_DIR", s(&cache))];
    let out = dynofa_with(&["tune", "--quick", "--out", s(dir.path())], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = last_json(&out);
    let path = dir.path().join("cpu_w12.ron");
    assert_eq!(summary["family"].as_str(), Some(s(&path)));
    let threads: Vec<usize> = summary["threads"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as usize).collect();
    assert_eq!(threads, (1..=threads.len()).collect::<Vec<_>>(), "1…all cores by default");
    let family = check_family(&path, &threads);
    assert_eq!(summary["levels"].as_array().unwrap().len(), family.levels.len());
    assert!(stderr(&out).contains("| level |"), "a table of the levels: {}", stderr(&out));
    assert!(!cache.exists(), "--out leaves the cache alone");

    let (trace, plot) = (dir.path().join("trace.csv"), dir.path().join("trace.svg"));
    let run = dynofa_with(
        &["run", "--family", s(&path), "--target-ms", "1000", "--duration", "1", "--quiet", "--calibrate-iters", "1", "--trace", s(&trace), "--plot", s(&plot)],
        &env,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let report = last_json(&run);
    assert_eq!(report["processors"][0]["family"].as_str(), Some(s(&path)));
    assert_eq!(report["processors"][0]["accuracy"].as_array().unwrap().len(), family.levels.len());
    assert!(trace.is_file() && plot.is_file());
}

#[test]
fn run_uses_the_family_tuned_for_this_machine_and_names_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let env = [("DYNOFA_CACHE_DIR", s(&cache))];
    // No tuned family yet: the embedded one (said before anything slow; the missing
    // input stops the run right after).
    let missing = dir.path().join("no-frames");
    let run = dynofa_with(&["run", "--target-ms", "1000", "--input", s(&missing)], &env);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("family: the embedded default"), "{}", stderr(&run));

    let out = dynofa_with(&["tune", "--quick", "--threads", "1"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = last_json(&out);
    assert_eq!(summary["cached"], true);
    let path = std::path::PathBuf::from(summary["family"].as_str().unwrap());
    assert!(path.starts_with(cache.join("tuned")), "{}", path.display());
    assert!(path.ends_with("cpu_w12.ron"));
    check_family(&path, &[1]);

    let (trace, plot) = (dir.path().join("trace.csv"), dir.path().join("trace.svg"));
    let run =
        dynofa_with(&["run", "--target-ms", "1000", "--duration", "1", "--quiet", "--calibrate-iters", "1", "--trace", s(&trace), "--plot", s(&plot)], &env);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains(&format!("family: tuned for this machine ({}", path.display())), "{}", stderr(&run));
    assert_eq!(last_json(&run)["processors"][0]["family"].as_str(), Some(s(&path)));

    // A broken cached family is an error naming it, not a silent fallback.
    std::fs::write(&path, "(format: 1, levels: [").unwrap();
    let run = dynofa_with(&["run", "--target-ms", "1000", "--duration", "1"], &env);
    assert!(!run.status.success());
    let err = stderr(&run);
    assert!(err.contains(s(&path)) && err.contains("dynofa tune"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
