//! The GPU workflow as a user runs it (on Mesa's lavapipe in CI): `dynofa devices`, golden
//! cases through `infer --device gpu`, `bench`, `profile --device gpu` and `search
//! --device gpu`, and clear errors for processors that are not there (`run` on both
//! processors is `gpu_run.rs`). Tests that need a GPU say they skip where there is none,
//! unless `DYNOFA_GPU_TESTS=require` (CI).

use std::path::Path;

use burn::prelude::*;
use dynofa_device::Processor;
use dynofa_golden::check_parity;
use dynofa_slice::family_file::FamilyFile;
use dynofa_supernet::tensor_io::{Array, read_npy};
use dynofa_supernet::{Precision, load_checkpoint_in};

mod common;

use common::{dynofa, dynofa_with, last_json, s, stderr};

const SMALLEST: &str = "assets/subnets/smallest_r160.json";

fn smallest() -> String {
    format!("{}/../../{SMALLEST}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn devices_lists_the_cpu_and_every_adapter() {
    let out = dynofa(&["devices"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["id"], "cpu");
    for entry in &list {
        for field in ["id", "name", "kind", "backend", "driver"] {
            assert!(entry[field].is_string(), "{field} of {entry}");
        }
    }
    for (i, adapter) in list[1..].iter().enumerate() {
        assert_eq!(adapter["id"], format!("gpu:{i}"));
        assert_eq!(adapter["backend"], "vulkan");
        assert!(["discrete", "integrated", "virtual", "software", "other"].contains(&adapter["kind"].as_str().unwrap()), "{adapter}");
    }
    if dynofa_golden::gpu("devices_lists_the_cpu_and_every_adapter").is_some() {
        assert!(list.len() >= 2, "the GPU the tests run on is listed: {list:?}");
    }
}

#[test]
fn processors_that_are_not_there_are_clear_errors() {
    let smallest = smallest();
    // What a GPU error lists: every processor found, or that the build has no GPU support.
    let found = if dynofa_device::GPU_SUPPORT { "found: cpu" } else { "without GPU support" };
    let no_driver = [("VK_ICD_FILENAMES", "/nonexistent.json"), ("VK_DRIVER_FILES", "/nonexistent.json")];
    // (arguments, environment, what stderr must contain)
    type Case<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)], Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec!["bench", "--subnet", &smallest, "--device", "gpu:7"], &[], vec!["gpu:7", found]),
        (vec!["run", "--target-ms", "30", "--duration", "1", "--load", "0s-1s:gpu:7"], &[], vec!["--load", "gpu:7", found]),
        (vec!["bench", "--subnet", &smallest, "--device", "tpu"], &[], vec!["cpu, gpu or gpu:N"]),
        (vec!["bench", "--subnet", &smallest, "--device", "gpu", "--threads", "2"], &[], vec!["--threads"]),
        (vec!["profile", "--out", "unused", "--device", "gpu", "--threads", "1,2"], &[], vec!["--threads"]),
        // No Vulkan driver at all: the error says so, and lists what there is.
        (vec!["bench", "--subnet", &smallest, "--device", "gpu"], &no_driver, vec![if dynofa_device::GPU_SUPPORT { "no GPU adapter" } else { found }, found]),
        (vec!["infer", "--subnet", &smallest, "--device", "gpu:0", "--image", "unused.png"], &no_driver, vec!["gpu:0", found]),
    ];
    for (args, env, expected) in cases {
        let out = dynofa_with(&args, env);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} must fail");
        for e in expected {
            assert!(err.contains(e), "{args:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }

    // A GPU family, and only the CPU to run it on.
    let dir = tempfile::tempdir().unwrap();
    let family = dir.path().join("gpu.ron");
    let cpu = FamilyFile::read(Path::new(&format!("{}/../../assets/families/cpu_w12.ron", env!("CARGO_MANIFEST_DIR")))).unwrap();
    FamilyFile { device: Processor::Gpu, ..cpu.clone() }.write(&family).unwrap();
    let out = dynofa(&["run", "--target-ms", "10", "--duration", "1", "--family", s(&family), "--devices", "cpu"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("gpu family") && err.contains("--devices cpu"), "{err}");
    let out = dynofa(&["run", "--target-ms", "10", "--duration", "1", "--devices", "cpu,cpu"]);
    assert!(!out.status.success() && stderr(&out).contains("one CPU and one GPU"), "{}", stderr(&out));
    let out = dynofa(&["run", "--target-ms", "10", "--duration", "1", "--policy", "static:gpu:1"]);
    assert!(!out.status.success() && stderr(&out).contains("policy"), "{}", stderr(&out));
}

#[test]
fn infer_bench_profile_and_search_on_the_gpu() {
    if dynofa_golden::gpu("infer_bench_profile_and_search_on_the_gpu").is_none() {
        return;
    }
    let host = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    // Golden cases from the command line: one per checkpoint (both widths).
    let (cases, tol) = dynofa_golden::cases();
    for id in ["w12_paper6_l0", "w10_rand0"] {
        let case = cases.iter().find(|c| c.id == id).unwrap();
        let out = dir.path().join(format!("{id}.npy"));
        let run = dynofa(&[
            "infer",
            "--device",
            "gpu",
            "--weights",
            s(&case.checkpoint_path()),
            "--subnet",
            &case.cfg.to_json(),
            "--input",
            s(&dynofa_golden::path(&case.input)),
            "--output",
            s(&out),
        ]);
        assert!(run.status.success(), "{id}: {}", stderr(&run));
        let exact_net = load_checkpoint_in(&case.checkpoint_path(), &host, Precision::F64).unwrap();
        let exact = Array::from_tensor(&exact_net.forward(case.input().to_tensor_in(&host, Precision::F64).unwrap(), &case.cfg).unwrap());
        check_parity(&read_npy(&out).unwrap(), &case.expected_logits(), &exact, tol).unwrap_or_else(|e| panic!("{id}: {e}"));
    }

    let bench = dynofa(&["bench", "--device", "gpu", "--subnet", &smallest(), "--iters", "2", "--batch", "2"]);
    assert!(bench.status.success(), "{}", stderr(&bench));
    let json = last_json(&bench);
    assert_eq!((json["device"].as_str(), json["threads"].as_u64(), json["batch"].as_u64()), (Some("gpu"), Some(1), Some(2)));
    assert_eq!(json["adapter"]["id"], "gpu:0");
    assert!(
        json["median_ms"].as_f64().unwrap() > 0.0 && json["weights_mb"].as_f64().unwrap() > 1.0 && json["first_forward_s"].as_f64().unwrap() > 0.0,
        "{json}"
    );

    // GPU tables, their metadata naming the adapter, and a GPU family searched with them.
    let lut = dir.path().join("lut");
    let profile = dynofa(&["profile", "--device", "gpu", "--quick", "--out", s(&lut)]);
    assert!(profile.status.success(), "{}", stderr(&profile));
    let tables = lut.join("gpu");
    for file in ["160_lookup_table.json", "metadata.json", "validation.json", "validation.svg"] {
        assert!(tables.join(file).is_file(), "{file} missing");
    }
    let metadata = dynofa_profiler::machine::Metadata::read(&tables).unwrap();
    assert_eq!(metadata.adapter.as_ref().map(|a| a.id.as_str()), Some("gpu:0"));
    assert_eq!(last_json(&profile)["validation"]["networks"], 4);
    let family = dir.path().join("gpu_family.ron");
    let search = dynofa(&[
        "search",
        "--device",
        "gpu",
        "--predictor",
        s(&dynofa_golden::dir().join("acc_predictor.pth")),
        "--lut",
        &format!("gpu={}", s(&tables)),
        "--levels",
        "3",
        "--population",
        "20",
        "--generations",
        "5",
        "--polish",
        "1",
        "--out",
        s(&family),
    ]);
    assert!(search.status.success(), "{}", stderr(&search));
    let file = FamilyFile::read(&family).unwrap();
    assert_eq!(file.device, Processor::Gpu);
    assert!(file.levels.iter().all(|l| l.latency_ms["gpu"] > 0.0));
}
