//! The `dynofa` binary as a user runs it: golden logits from the command line (both
//! checkpoint files), `describe`, `convert`, and clear errors with a non-zero exit.

use std::path::Path;

use burn::prelude::*;
use dynofa_golden::check_parity;
use dynofa_slice::FamilyStore;
use dynofa_supernet::tensor_io::{Array, read_npy};
use dynofa_supernet::{Precision, load_checkpoint, load_checkpoint_in};

mod common;

use common::{SMALLEST_R128, dynofa, last_json, s, stderr};

#[test]
fn infer_reproduces_every_golden_case_from_the_command_line() {
    let (cases, tol) = dynofa_golden::cases();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let mut files = std::collections::BTreeSet::new();
    for case in &cases {
        let out = dir.path().join(format!("{}.npy", case.id));
        let cfg = case.cfg.to_json();
        let run =
            dynofa(&["infer", "--weights", s(&case.checkpoint_path()), "--subnet", &cfg, "--input", s(&dynofa_golden::path(&case.input)), "--output", s(&out)]);
        assert!(run.status.success(), "{}: {}", case.id, stderr(&run));
        let got = read_npy(&out).unwrap();
        // The command computes exactly what the library's fast path does on one thread…
        let net = load_checkpoint(&case.checkpoint_path(), &device).unwrap();
        let lib = FamilyStore::new(&net, std::slice::from_ref(&case.cfg), 1).unwrap().forward(&case.input()).unwrap();
        assert_eq!(got, lib, "{}: CLI and library agree", case.id);
        // …and what the reference does (see `dynofa_golden::Parity`).
        let exact_net = load_checkpoint_in(&case.checkpoint_path(), &device, Precision::F64).unwrap();
        let x64 = case.input().to_tensor_in(&device, Precision::F64).unwrap();
        let exact = Array::from_tensor(&exact_net.forward(x64, &case.cfg).unwrap());
        check_parity(&got, &case.expected_logits(), &exact, tol).unwrap_or_else(|e| panic!("{}: {e}", case.id));
        files.insert(case.checkpoint.clone());
    }
    assert_eq!(files.len(), 2, "both checkpoint files");
}

#[test]
fn describe_prints_exact_counts() {
    let (cases, _) = dynofa_golden::cases();
    for case in cases.iter().take(3).chain(cases.iter().filter(|c| c.net == "w10").take(1)) {
        let width = if case.net == "w12" { "1.2" } else { "1.0" };
        let run = dynofa(&["describe", "--subnet", &case.cfg.to_json(), "--width", width]);
        assert!(run.status.success(), "{}", stderr(&run));
        let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(json["params"].as_u64(), Some(case.params), "{}", case.id);
        assert!((json["mflops"].as_f64().unwrap() - case.mflops).abs() <= 1e-6 * case.mflops);
        assert_eq!(json["width"], width);
    }
    // The width comes from the weights when they are given.
    let w10 = cases.iter().find(|c| c.net == "w10").unwrap();
    let run = dynofa(&["describe", "--subnet", &w10.cfg.to_json(), "--weights", s(&w10.checkpoint_path())]);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["params"].as_u64(), Some(w10.params));
}

#[test]
fn convert_then_infer_from_the_record() {
    let (cases, _) = dynofa_golden::cases();
    let case = cases.iter().find(|c| c.net == "w10").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("w10.bpk");
    let run = dynofa(&["convert", "--weights", s(&case.checkpoint_path()), "--out", s(&record)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(json["record_load_ms"].as_f64().unwrap() > 0.0);
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    for (weights, out) in [(case.checkpoint_path(), &a), (record.clone(), &b)] {
        let run =
            dynofa(&["infer", "--weights", s(&weights), "--subnet", &case.cfg.to_json(), "--input", s(&dynofa_golden::path(&case.input)), "--output", s(out)]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    assert_eq!(read_npy(&a).unwrap(), read_npy(&b).unwrap());
}

#[test]
fn images_get_top5_classes_and_the_default_weights_say_untrained() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample.png");
    let run = dynofa(&["infer", "--subnet", SMALLEST_R128, "--image", s(&sample)]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("UNTRAINED"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(stdout.lines().filter(|l| l.contains('%')).count(), 5, "{stdout}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let (cases, _) = dynofa_golden::cases();
    let case = &cases[0];
    let dir = tempfile::tempdir().unwrap();
    let input = dynofa_golden::path(&case.input);
    let checkpoint = case.checkpoint_path();
    let out = dir.path().join("y.npy");
    let fails_with = |args: &[&str], needle: &str| {
        let run = dynofa(args);
        assert!(!run.status.success(), "{args:?} succeeded");
        let err = stderr(&run);
        assert!(err.contains(needle), "{args:?}: expected `{needle}` in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    let mut bad = case.cfg.clone();
    bad.ks[2] = 9;
    fails_with(&["describe", "--subnet", &bad.to_json()], "ks[2]");
    fails_with(&["describe", "--subnet", "missing_file.json"], "missing_file.json");
    fails_with(&["describe", "--subnet", "{not json"], "sub-network config");
    fails_with(&["infer", "--weights", "nope.pth", "--subnet", &case.cfg.to_json(), "--input", s(&input), "--output", s(&out)], "nope.pth");
    let mut other_r = case.cfg.clone();
    other_r.r = vec![224];
    fails_with(&["infer", "--weights", s(&checkpoint), "--subnet", &other_r.to_json(), "--input", s(&input), "--output", s(&out)], "needs [B, 3, 224, 224]");
    let unwritable = dir.path().join("no/such/dir/y.npy");
    fails_with(&["infer", "--weights", s(&checkpoint), "--subnet", &case.cfg.to_json(), "--input", s(&input), "--output", s(&unwritable)], "no/such/dir");
    assert!(!out.exists(), "nothing is written on failure");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no partial files");
    fails_with(&["infer", "--subnet", &case.cfg.to_json(), "--image", "absent.jpg"], "absent.jpg");
}

#[test]
fn extract_then_infer_the_standalone_network() {
    let (cases, tol) = dynofa_golden::cases();
    let case = cases.iter().find(|c| c.net == "w12").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("net");
    let cfg = case.cfg.to_json();
    let ckpt = case.checkpoint_path();
    let run = dynofa(&["extract", "--weights", s(&ckpt), "--subnet", &cfg, "--out", s(&model)]);
    assert!(run.status.success(), "{}", stderr(&run));
    for f in ["net.config", "run.config", "init"] {
        assert!(model.join(f).is_file(), "{f}");
    }
    let input = dynofa_golden::path(&case.input);
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    let run = dynofa(&["infer", "--model", s(&model), "--input", s(&input), "--output", s(&a)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let run = dynofa(&["infer", "--weights", s(&ckpt), "--subnet", &cfg, "--input", s(&input), "--output", s(&b)]);
    assert!(run.status.success(), "{}", stderr(&run));
    dynofa_golden::compare(&read_npy(&a).unwrap(), &read_npy(&b).unwrap(), tol).unwrap();
    dynofa_golden::compare(&read_npy(&a).unwrap(), &case.expected_logits(), tol).unwrap();

    let onnx = dir.path().join("net.onnx");
    let run = dynofa(&["extract", "--weights", s(&ckpt), "--subnet", &cfg, "--out", s(&onnx), "--format", "onnx"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1_000_000);
    // A folder that is not empty is refused.
    let run = dynofa(&["extract", "--weights", s(&ckpt), "--subnet", &cfg, "--out", s(&model)]);
    assert!(!run.status.success() && stderr(&run).contains("not empty"), "{}", stderr(&run));
}

#[test]
fn calibrate_from_npy_batches_and_from_an_image_folder() {
    let text = std::fs::read_to_string(dynofa_golden::path("cases.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (_, tol) = dynofa_golden::cases();
    let spec = &all["bn_recalib"][0];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("calibrated");
    let cfg = spec["cfg"].to_string();
    let ckpt = dynofa_golden::path(spec["checkpoint"].as_str().unwrap());
    let batches: Vec<std::path::PathBuf> = spec["calibration_batches"].as_array().unwrap().iter().map(|p| dynofa_golden::path(p.as_str().unwrap())).collect();
    let mut args = vec!["calibrate", "--weights", s(&ckpt), "--subnet", &cfg, "--out", s(&out), "--data"];
    args.extend(batches.iter().map(|p| s(p)));
    let run = dynofa(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    // Eval logits of the calibrated network on the first two calibration images.
    let first_two = dir.path().join("x.npy");
    dynofa_supernet::tensor_io::write_npy(&first_two, &read_npy(&batches[0]).unwrap().first(2)).unwrap();
    let logits = dir.path().join("y.npy");
    let run = dynofa(&["infer", "--model", s(&out), "--input", s(&first_two), "--output", s(&logits)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let want = read_npy(&dynofa_golden::path(spec["logits"].as_str().unwrap())).unwrap();
    dynofa_golden::compare(&read_npy(&logits).unwrap(), &want, tol).unwrap();

    // An ImageFolder tree of pictures (decoded in parallel, OFA's preprocessing).
    let images = dir.path().join("images");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample.png");
    for class in ["a", "b"] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..3 {
            std::fs::copy(&sample, images.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let out2 = dir.path().join("from_images");
    let run = dynofa(&["calibrate", "--subnet", &cfg, "--data", s(&images), "--batch-size", "4", "--out", s(&out2)]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("6 images"), "{}", stderr(&run));

    // A batch of the wrong size stops the run, naming the file; nothing is written.
    let wrong = dynofa_golden::path("inputs/x_seed1234_r176.npy");
    let out4 = dir.path().join("never_either");
    let run = dynofa(&["calibrate", "--subnet", &cfg, "--out", s(&out4), "--data", s(&batches[0]), s(&wrong)]);
    assert!(!run.status.success() && stderr(&run).contains("x_seed1234_r176.npy"), "{}", stderr(&run));
    assert!(!out4.exists());

    // An empty folder is a clear error, and nothing is written.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out3 = dir.path().join("never");
    let run = dynofa(&["calibrate", "--subnet", &cfg, "--data", s(&empty), "--out", s(&out3)]);
    assert!(!run.status.success() && stderr(&run).contains("no images"), "{}", stderr(&run));
    assert!(!out3.exists());
}

#[test]
fn bench_prints_timings_as_json() {
    let bench = |more: &[&str]| dynofa(&[&["bench", "--subnet", SMALLEST_R128, "--iters", "3", "--threads", "1"], more].concat());
    let run = bench(&["--batch", "2"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let median = json["median_ms"].as_f64().unwrap();
    assert!(median > 0.0 && json["min_ms"].as_f64().unwrap() <= median && median <= json["p95_ms"].as_f64().unwrap());
    assert_eq!((json["batch"].as_u64(), json["threads"].as_u64()), (Some(2), Some(1)));
    assert!(json.get("per_layer_ms").is_none() && json.get("per_op_ms").is_none());
    // Per layer: the latency tables' layers of this sub-network, in forward order (stem,
    // first block, 2 blocks × 5 stages, final expansion, pooling, feature mix, classifier).
    let run = bench(&["--per-layer", "--per-op"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let layers = json["per_layer_ms"].as_array().unwrap();
    assert_eq!(layers.len(), 2 + 2 * 5 + 4, "{layers:?}");
    assert!(layers[0]["layer"].as_str().unwrap().contains("128x128x3"), "{layers:?}");
    assert!(layers.iter().all(|l| l["ms"].as_f64().is_some_and(|ms| ms >= 0.0)), "{layers:?}");
    assert!(json["per_op_ms"]["stem"].as_f64().is_some_and(|ms| ms > 0.0), "{json}");
    let bad = dynofa(&["bench", "--subnet", "assets/none.json"]);
    assert!(!bad.status.success() && stderr(&bad).contains("none.json"));
}

#[test]
fn profile_quick_writes_tables_metadata_validation_and_plot_that_describe_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lut");
    let run = dynofa(&["profile", "--quick", "--out", s(&out)]);
    assert!(run.status.success(), "{}", stderr(&run));
    let tables = out.join("threads_1");
    for file in ["160_lookup_table.json", "metadata.json", "validation.json", "validation.svg"] {
        assert!(tables.join(file).is_file(), "{file} missing");
    }
    let line = String::from_utf8_lossy(&run.stdout);
    let summary: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(summary["threads"], 1);
    assert!(summary["validation"]["mape_percent"].as_f64().unwrap().is_finite());

    let spec = r#"{"ks":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"e":[4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4],"d":[2,3,4,2,3],"r":[160]}"#;
    let lut = format!("here={}", s(&tables));
    let run = dynofa(&["describe", "--subnet", spec, "--lut", &lut]);
    assert!(run.status.success(), "{}", stderr(&run));
    let facts: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(facts["latency_ms"]["here"].as_f64().unwrap() > 0.0);
    assert!(facts["latency_corrected_ms"]["here"].as_f64().is_some());

    // A resolution the tables lack, a malformed --lut, too few validation networks.
    let run = dynofa(&["describe", "--subnet", &spec.replace("160", "224"), "--lut", &lut]);
    assert!(!run.status.success() && stderr(&run).contains("resolution 224"), "{}", stderr(&run));
    let run = dynofa(&["describe", "--subnet", spec, "--lut", "nodir"]);
    assert!(!run.status.success() && stderr(&run).contains("NAME=DIR"), "{}", stderr(&run));
    let run = dynofa(&["profile", "--out", s(&out), "--resolutions", "160", "--threads", "1", "--validate", "2"]);
    assert!(!run.status.success() && stderr(&run).contains("at least 4"), "{}", stderr(&run));
    let run = dynofa(&["profile", "--out", s(&out), "--min-rounds", "2"]);
    assert!(!run.status.success() && stderr(&run).contains("minimum rounds"), "{}", stderr(&run));

    // The noise report and the validation's yardstick are in the metadata and the summary.
    let metadata = dynofa_profiler::machine::Metadata::read(&tables).unwrap();
    let noise = metadata.noise.expect("noise report");
    assert_eq!(noise.rounds, 3);
    let canary = metadata.canary.expect("the canary's readings");
    assert!(canary.readings > 0 && canary.quiet_ms > 0.0 && canary.quiet_ms <= canary.quiet_limit_ms, "{canary:?}");
    assert!(summary["validation"]["within_10_pct"].as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)), "{summary}");
    let validation: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tables.join("validation.json")).unwrap()).unwrap();
    assert!(validation["within_5_pct"].as_f64().is_some() && validation["within_10_pct"].as_f64().is_some());
    // A second run finds the table complete: it keeps it, and the noise report of the run
    // that measured it.
    let table = std::fs::read_to_string(tables.join("160_lookup_table.json")).unwrap();
    let run = dynofa(&["profile", "--quick", "--out", s(&out)]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(std::fs::read_to_string(tables.join("160_lookup_table.json")).unwrap(), table);
    assert_eq!(dynofa_profiler::machine::Metadata::read(&tables).unwrap().noise, Some(noise));

    // --compare: a profile agrees with itself (by table directory, or by profile output),
    // and directories without tables in common are named.
    let other = dir.path().join("copy");
    std::fs::create_dir_all(other.join("threads_1")).unwrap();
    std::fs::copy(tables.join("160_lookup_table.json"), other.join("threads_1/160_lookup_table.json")).unwrap();
    let run = dynofa(&["profile", "--compare", s(&out), s(&other), "--networks", "50"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let json = last_json(&run);
    assert_eq!((json["tables"].as_str(), json["agreement"]["networks"].as_u64()), (Some("threads_1"), Some(50)));
    assert_eq!((json["agreement"]["within_5_pct"].as_f64(), json["agreement"]["worst_spread"].as_f64()), (Some(100.0), Some(1.0)));
    let run = dynofa(&["profile", "--compare", s(&tables), s(&dir.path().join("copy/threads_1"))]);
    assert!(run.status.success() && last_json(&run)["agreement"]["networks"] == 200, "{}", stderr(&run));
    let run = dynofa(&["profile", "--compare", s(&out), s(dir.path())]);
    assert!(!run.status.success() && stderr(&run).contains("no look-up tables in common") && stderr(&run).contains(s(dir.path())), "{}", stderr(&run));
}

#[test]
fn describe_adds_the_official_predictors_accuracy_and_jetson_latency() {
    let (cases, _) = dynofa_golden::cases();
    let case = cases.iter().find(|c| c.acc_predictor.is_some()).expect("a w1.2 case");
    let predictor = dynofa_golden::dir().join("acc_predictor.pth");
    let lut = format!("nx_gpu={}", s(&dynofa_golden::dir().join("lut/jetson_gpu")));
    let run = dynofa(&["describe", "--subnet", &case.cfg.to_json(), "--predictor", s(&predictor), "--lut", &lut]);
    assert!(run.status.success(), "{}", stderr(&run));
    let facts: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!((facts["acc"].as_f64().unwrap() - case.acc_predictor.unwrap()).abs() <= 1e-5);
    let want = case.lut_ms.as_ref().unwrap()["jetson_gpu"];
    assert!((facts["latency_ms"]["nx_gpu"].as_f64().unwrap() - want).abs() <= 1e-9 * want);
    let run = dynofa(&["describe", "--subnet", &case.cfg.to_json(), "--predictor", s(&dynofa_golden::dir().join("cases.json"))]);
    assert!(!run.status.success() && stderr(&run).contains("cases.json"), "{}", stderr(&run));
}

#[test]
fn search_writes_a_family_the_store_can_load_and_a_plot_and_reports_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let golden = dynofa_golden::dir();
    let (predictor, lut) = (golden.join("acc_predictor.pth"), format!("nx_gpu={}", s(&golden.join("lut/jetson_gpu"))));
    let family = dir.path().join("nested/nx_gpu.ron");
    let reference = golden.join("paper/dynamic_ofa_gpu_family.json");
    let run = dynofa(&[
        "search",
        "--predictor",
        s(&predictor),
        "--lut",
        &lut,
        "--levels",
        "4",
        "--out",
        s(&family),
        "--population",
        "20",
        "--generations",
        "5",
        "--polish",
        "1",
        "--reference",
        s(&reference),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let file = dynofa_slice::family_file::FamilyFile::read(&family).unwrap();
    assert!(!file.levels.is_empty() && file.levels.len() <= 4);
    assert!(file.levels.windows(2).all(|w| w[0].latency_ms["nx_gpu"] < w[1].latency_ms["nx_gpu"] && w[0].acc_pred < w[1].acc_pred));
    assert!(family.with_extension("svg").is_file());
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["reference"].as_array().unwrap().len(), 6);
    let note = "named for their thread count";
    assert!(stderr(&run).contains(note) && stderr(&run).contains("'nx_gpu'"), "a CPU family without per-thread tables: {}", stderr(&run));

    // Levels at latency targets: each within its budget (a table named as `dynofa run` reads it).
    let cpu_lut = format!("cpu_t1={}", s(&golden.join("lut/jetson_gpu")));
    let run = dynofa(&[
        "search",
        "--predictor",
        s(&predictor),
        "--lut",
        &cpu_lut,
        "--targets",
        "20,25,30",
        "--out",
        s(&family),
        "--population",
        "20",
        "--generations",
        "5",
        "--polish",
        "1",
    ]);
    assert!(run.status.success() && !stderr(&run).contains(note), "{}", stderr(&run));
    let file = dynofa_slice::family_file::FamilyFile::read(&family).unwrap();
    assert_eq!(file.levels.len(), 3);
    for (level, budget) in file.levels.iter().zip([20.0, 25.0, 30.0]) {
        assert!(level.latency_ms["cpu_t1"] <= budget, "{} > {budget}", level.latency_ms["cpu_t1"]);
    }

    let run = dynofa(&["search", "--predictor", s(&predictor), "--lut", &lut, "--objective", "joules", "--out", s(&family)]);
    assert!(!run.status.success() && stderr(&run).contains("joules"), "{}", stderr(&run));
    let run = dynofa(&["search", "--predictor", s(&predictor), "--lut", &lut, "--out", s(&family), "--constraint", "1"]);
    assert!(!run.status.success() && stderr(&run).contains("no sub-network meets"), "{}", stderr(&run));
}
