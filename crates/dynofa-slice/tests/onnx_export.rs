//! ONNX export checked by ONNX Runtime (pip `onnxruntime`, which `.ci/run` installs): every
//! golden case's sub-network is exported, run by ONNX Runtime at batch 2 and batch 1 (the
//! batch dimension is dynamic), and its logits compared with the reference.

use std::path::Path;
use std::process::Command;

use burn::prelude::*;
use dynofa_golden::check_parity;
use dynofa_slice::extract;
use dynofa_slice::onnx::save_onnx;
use dynofa_supernet::tensor_io::{Array, read_npy};
use dynofa_supernet::{Precision, load_checkpoint_in};

#[test]
fn onnx_runtime_reproduces_every_case() {
    let device = Device::flex();
    let (cases, tol) = dynofa_golden::cases();
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = Vec::new();
    let mut exact = Vec::new();
    let mut loaded = std::collections::BTreeMap::new();
    for case in &cases {
        let (net, net64) = loaded.entry(case.checkpoint.clone()).or_insert_with(|| {
            let load = |p| load_checkpoint_in(&case.checkpoint_path(), &device, p).unwrap();
            (load(Precision::F32), load(Precision::F64))
        });
        let model = dir.path().join(format!("{}.onnx", case.id));
        save_onnx(&extract(net, &case.cfg).unwrap(), &model).unwrap();
        let x64 = case.input().to_tensor_in::<4>(&device, Precision::F64).unwrap();
        exact.push(Array::from_tensor(&extract(net64, &case.cfg).unwrap().forward(x64)));
        manifest.push(serde_json::json!({
            "model": model,
            "input": dynofa_golden::path(&case.input),
            "output": dir.path().join(format!("{}.ort.npy", case.id)),
        }));
    }
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort_run.py");
    let python = std::env::var("DYNOFA_PYTHON").unwrap_or_else(|_| "python3".into());
    let run = Command::new(&python).arg(&script).arg(&manifest_path).output().expect("python3 runs");
    assert!(
        run.status.success(),
        "ONNX Runtime failed (install it with `python3 -m pip install onnxruntime numpy`):\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&run.stdout));
    let mut failures = Vec::new();
    for (case, exact) in cases.iter().zip(&exact) {
        let ort = read_npy(&dir.path().join(format!("{}.ort.npy", case.id))).unwrap();
        if let Err(e) = check_parity(&ort, &case.expected_logits(), exact, tol) {
            failures.push(format!("{}: {e}", case.id));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
