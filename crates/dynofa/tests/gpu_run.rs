//! `dynofa run` on the CPU and the GPU (lavapipe in CI), as a user runs it: a GPU family
//! made for the adapter and cached, then frames moved between the processors by another
//! process running inference on the GPU. Alone in its test binary, so that no other test
//! competes for the machine while it times the GPU. Skips where there is no GPU, unless
//! `DYNOFA_GPU_TESTS=require` (CI).

use dynofa_device::Processor;
use dynofa_runtime::trace::read_csv;
use dynofa_slice::family_file::FamilyFile;

mod common;

use common::{dynofa_with, last_json, s, stderr};

#[test]
fn run_on_the_cpu_and_the_gpu() {
    if dynofa_golden::gpu("run_on_the_cpu_and_the_gpu").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let env = [("DYNOFA_CACHE_DIR", s(&cache))];
    let (trace, plot) = (dir.path().join("run/trace.csv"), dir.path().join("run/trace.svg"));
    let common = ["--trace", s(&trace), "--plot", s(&plot), "--calibrate-iters", "0", "--threads", "1"];

    // No GPU family given: one is made for the adapter and cached; the next run uses it.
    let mut args = vec!["run", "--devices", "gpu", "--policy", "static:gpu:largest", "--target-ms", "10000", "--duration", "1"];
    args.extend(common);
    let first = dynofa_with(&args, &env);
    let err = stderr(&first);
    assert!(first.status.success(), "{err}");
    assert!(err.contains("making one for gpu:0") && err.contains("cached at"), "{err}");
    // Six levels, or fewer when the timed candidates' front is shorter (noisy timings).
    let cached = std::fs::read_dir(cache.join("families")).unwrap().next().unwrap().unwrap().path();
    let gpu_family = FamilyFile::read(&cached).unwrap();
    let top = gpu_family.levels.len().checked_sub(1).expect("the GPU family has levels");
    assert_eq!(gpu_family.device, Processor::Gpu);
    assert!(gpu_family.levels.len() <= 6, "{} levels", gpu_family.levels.len());
    let rows = read_csv(&trace).unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.device == "gpu:0" && r.level == top), "pinned to the GPU's top level");
    // The second run pins the fastest level: its frames time the GPU idle just before the
    // run under load (the family's figure may come from a slower moment of a drifting host).
    let args: Vec<&str> = args.iter().map(|a| if *a == "static:gpu:largest" { "static:gpu:smallest" } else { a }).collect();
    let second = dynofa_with(&args, &env);
    assert!(second.status.success() && stderr(&second).contains("using the one made for gpu:0"), "{}", stderr(&second));
    let idle: Vec<f64> = read_csv(&trace).unwrap().iter().map(|r| r.latency_ms).collect();
    assert!(!idle.is_empty(), "the fastest GPU level ran idle");
    let idle_ms = dynofa_runtime::stats::median(&idle);

    // The GPU keeps its fastest level, made more accurate than every level of the CPU: idle,
    // it runs (the target leaves it 30% to spare); another process running inference on the
    // GPU slows it past the target, and the CPU's top level takes over. (The fastest level,
    // so that a software GPU on a slow host still runs enough frames in the load window for
    // the policy to confirm the slowdown: lavapipe ran the top level at about 1 s a frame.)
    let mut gpu_family = gpu_family;
    gpu_family.levels.truncate(1);
    gpu_family.levels[0].acc_pred = Some(0.99);
    let family = dir.path().join("gpu.ron");
    gpu_family.write(&family).unwrap();
    let target = (1.3 * idle_ms).to_string();
    let mut args = vec!["run", "--devices", "cpu,gpu", "--family", s(&family), "--target-ms", &target, "--duration", "12", "--load", "2s-60s:gpu"];
    args.extend(common);
    let run = dynofa_with(&args, &env);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows = read_csv(&trace).unwrap();
    let on = |device: &str| rows.iter().filter(|r| r.device == device).count();
    assert!(on("gpu:0") >= 1 && on("cpu") >= 1, "frames on both processors: {} on the GPU, {} on the CPU", on("gpu:0"), on("cpu"));
    assert_eq!(rows[0].device, "gpu:0", "idle, the GPU's level is the most accurate that fits");
    for pair in rows.windows(2) {
        assert_eq!(
            (&pair[1].device, pair[1].level, pair[1].threads),
            (&pair[0].next_device, pair[0].next_level, pair[0].next_threads),
            "the decision is what ran next"
        );
    }
    let report = last_json(&run);
    let processors = report["processors"].as_array().unwrap();
    assert_eq!(processors.iter().map(|p| p["device"].as_str().unwrap()).collect::<Vec<_>>(), ["cpu", "gpu:0"]);
    assert_eq!(processors[1]["adapter"]["id"], "gpu:0");
    assert!(std::fs::read_to_string(&plot).unwrap().contains("gpu:0 level 0"), "the plot names the processor of each level");
}
