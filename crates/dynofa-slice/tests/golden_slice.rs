//! Static sub-networks against the reference: extraction parity on every golden case,
//! name-by-name equality with OFA's extracted sub-network, OFA's folder format both ways,
//! and BN re-calibration. Data: `../shared/golden` (see its README).

use std::collections::{BTreeMap, HashSet};

use burn::prelude::*;
use dynofa_golden::{Parity, check_parity, compare};
use dynofa_slice::calibrate::recalibrate;
use dynofa_slice::static_net::tensor_names;
use dynofa_slice::{extract, ofa_dir};
use dynofa_supernet::checkpoint::Checkpoint;
use dynofa_supernet::state_dict::TensorSource;
use dynofa_supernet::tensor_io::{Array, read_npy, read_npz};
use dynofa_supernet::{Precision, SubnetConfig, Supernet, load_checkpoint_in};

fn load(path: &std::path::Path, precision: Precision) -> Supernet {
    load_checkpoint_in(path, &Device::flex(), precision).unwrap()
}

#[test]
fn extraction_matches_the_reference_on_every_case() {
    let device = Device::flex();
    let (cases, tol) = dynofa_golden::cases();
    let mut nets: BTreeMap<(String, bool), Supernet> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let mut run = |precision: Precision| {
            let net = nets.entry((case.checkpoint.clone(), precision == Precision::F64)).or_insert_with(|| load(&case.checkpoint_path(), precision));
            let sub = extract(net, &case.cfg).unwrap();
            assert_eq!(sub.num_params() as u64, case.params, "{}: params of the extracted network", case.id);
            let x = case.input().to_tensor_in::<4>(&device, precision).unwrap();
            Array::from_tensor(&sub.forward(x))
        };
        let (ours, exact) = (run(Precision::F32), run(Precision::F64));
        match check_parity(&ours, &case.expected_logits(), &exact, tol) {
            Ok(Parity::WithinTolerance { max_abs }) => eprintln!("{:<20} ok {max_abs:.2e}", case.id),
            Ok(p) => eprintln!("{:<20} {p:?}", case.id),
            Err(e) => failures.push(format!("{}: {e}", case.id)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn golden_subnet_cfg() -> SubnetConfig {
    let text = std::fs::read_to_string(dynofa_golden::path("subnet/cfg.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(v["cfg"].clone()).unwrap()
}

#[test]
fn extracted_tensors_equal_the_reference_subnetwork_name_by_name() {
    let (cases, tol) = dynofa_golden::cases();
    let w12 = cases.iter().find(|c| c.checkpoint == "ofa_mbv3_w12_seed0.pth").unwrap();
    let ours = extract(&load(&w12.checkpoint_path(), Precision::F32), &golden_subnet_cfg()).unwrap();
    let names = tensor_names(&ours.arch);
    let known: HashSet<String> = names.iter().map(|(n, _)| n.clone()).collect();
    let mut reference = Checkpoint::open(&dynofa_golden::path("subnet/init"), &known).unwrap();
    let state = ours.state_dict();
    assert_eq!(state.len(), names.len());
    for t in &state {
        // Same name and shape (the reader checks the shape), same values.
        let want = reference.tensor(&t.name, &t.shape).unwrap_or_else(|e| panic!("{}: {e}", t.name));
        let want = Array { shape: t.shape.clone(), data: want };
        let got = Array { shape: t.shape.clone(), data: t.data.clone() };
        compare(&got, &want, tol).unwrap_or_else(|e| panic!("{}: {e}", t.name));
    }
}

#[test]
fn ofa_folder_round_trip() {
    let device = Device::flex();
    let golden_dir = dynofa_golden::path("subnet");
    let (cases, tol) = dynofa_golden::cases();
    let cfg = golden_subnet_cfg();
    let input = cases.iter().find(|c| c.cfg.resolution() == cfg.resolution()).unwrap().input();
    let x = input.to_tensor::<4>(&device).unwrap();

    let loaded = ofa_dir::load(&golden_dir, &device).unwrap();
    assert_eq!(loaded.arch.resolution, 192);
    let from_folder = Array::from_tensor(&loaded.forward(x.clone()));
    // The folder holds the same network as our extraction of its cfg.
    let w12 = load(&cases[0].checkpoint_path(), Precision::F32);
    let extracted = Array::from_tensor(&extract(&w12, &cfg).unwrap().forward(x.clone()));
    compare(&from_folder, &extracted, tol).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    ofa_dir::save(&loaded, &out).unwrap();
    let again = ofa_dir::load(&out, &device).unwrap();
    assert_eq!(again.arch, loaded.arch);
    assert_eq!(Array::from_tensor(&again.forward(x)), from_folder);
    // Refuses to overwrite a non-empty folder; leaves nothing behind on failure.
    assert!(ofa_dir::save(&loaded, &out).unwrap_err().to_string().contains("not empty"));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from("net")]);
}

#[test]
fn bn_recalibration_matches_the_reference() {
    let device = Device::flex();
    let text = std::fs::read_to_string(dynofa_golden::path("cases.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (_, tol) = dynofa_golden::cases();
    for spec in all["bn_recalib"].as_array().unwrap() {
        let cfg: SubnetConfig = serde_json::from_value(spec["cfg"].clone()).unwrap();
        let supernet = load(&dynofa_golden::path(spec["checkpoint"].as_str().unwrap()), Precision::F32);
        let mut net = extract(&supernet, &cfg).unwrap();
        let batches: Vec<Array> =
            spec["calibration_batches"].as_array().unwrap().iter().map(|p| read_npy(&dynofa_golden::path(p.as_str().unwrap())).unwrap()).collect();
        let mut done = 0;
        recalibrate(&mut net, batches.iter().map(|b| b.to_tensor(&device).unwrap()), |n| done = n);
        assert_eq!(done, batches.len());
        let stats = read_npz(&dynofa_golden::path(spec["stats"].as_str().unwrap())).unwrap();
        let ours: BTreeMap<String, Array> = net.state_dict().into_iter().map(|t| (t.name, Array { shape: t.shape, data: t.data })).collect();
        assert!(!stats.is_empty());
        for (name, want) in &stats {
            let got = ours.get(name).unwrap_or_else(|| panic!("no tensor {name}"));
            compare(got, want, tol).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let first_two = batches[0].first(2).to_tensor::<4>(&device).unwrap();
        let logits = Array::from_tensor(&net.forward(first_two));
        let want = read_npy(&dynofa_golden::path(spec["logits"].as_str().unwrap())).unwrap();
        compare(&logits, &want, tol).unwrap();
    }
}
