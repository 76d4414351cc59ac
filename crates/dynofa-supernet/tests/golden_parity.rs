//! Parity with the reference PyTorch OFA on every golden case: logits of the dynamic
//! forward (both checkpoints, both container formats), exact parameter and MFLOP counts,
//! and per-layer intermediates. Data: `../shared/golden` (its README names the generator).
//!
//! Each output is also evaluated in f64 to tell float32 rounding from a real departure;
//! see [`dynofa_golden::Parity`].

use std::collections::BTreeMap;

use burn::prelude::*;
use dynofa_golden::{Case, Parity, check_parity};
use dynofa_supernet::tensor_io::{Array, read_npz};
use dynofa_supernet::{Precision, Supernet, SupernetConfig, Width, load_checkpoint_in};

fn width_of(case: &Case) -> Width {
    match case.net.as_str() {
        "w12" => Width::W12,
        "w10" => Width::W10,
        other => panic!("unknown net {other}"),
    }
}

/// The case's checkpoint loaded in both precisions, cached.
struct Nets {
    device: Device,
    loaded: BTreeMap<(String, bool), Supernet>,
}

impl Nets {
    fn new() -> Self {
        Nets { device: Device::flex(), loaded: BTreeMap::new() }
    }

    fn get(&mut self, case: &Case, precision: Precision) -> &Supernet {
        let key = (case.checkpoint.clone(), precision == Precision::F64);
        let device = self.device.clone();
        self.loaded.entry(key).or_insert_with(|| load_checkpoint_in(&case.checkpoint_path(), &device, precision).unwrap())
    }

    /// Runs the case's sub-network, handing every tapped layer to `tap`.
    fn run(&mut self, case: &Case, input: &Array, precision: Precision, tap: &mut dyn FnMut(&str, Array)) -> Array {
        let device = self.device.clone();
        let x = input.to_tensor_in::<4>(&device, precision).unwrap();
        let net = self.get(case, precision);
        let logits = net.forward_traced(x, &case.cfg, &mut |name, t| tap(name, Array::from_tensor(t))).unwrap();
        Array::from_tensor(&logits)
    }
}

fn report(what: &str, result: Result<Parity, String>, failures: &mut Vec<String>) {
    match result {
        Ok(Parity::WithinTolerance { max_abs }) => eprintln!("{what:<40} ok, max abs diff {max_abs:.2e}"),
        Ok(p @ Parity::IllConditioned { .. }) => eprintln!("{what:<40} ILL-CONDITIONED {p:?}"),
        Err(e) => failures.push(format!("{what}: {e}")),
    }
}

#[test]
fn every_case_matches_reference_logits() {
    let (cases, tol) = dynofa_golden::cases();
    let mut nets = Nets::new();
    let mut failures = Vec::new();
    for case in &cases {
        assert_eq!(nets.get(case, Precision::F32).config.width, width_of(case), "{}: width", case.id);
        let input = case.input();
        let ours = nets.run(case, &input, Precision::F32, &mut |_, _| {});
        let exact = nets.run(case, &input, Precision::F64, &mut |_, _| {});
        report(&case.id, check_parity(&ours, &case.expected_logits(), &exact, tol), &mut failures);
    }
    assert_eq!(nets.loaded.len(), 4, "both checkpoints (legacy and zip format) are exercised");
    assert!(failures.is_empty(), "logits differ:\n{}", failures.join("\n"));
}

#[test]
fn every_case_has_exact_params_and_mflops() {
    let (cases, _) = dynofa_golden::cases();
    for case in &cases {
        let counts = SupernetConfig::ofa_mbv3(width_of(case)).counts(&case.cfg).unwrap();
        assert_eq!(counts.params, case.params, "{}: params", case.id);
        let rel = (counts.mflops - case.mflops).abs() / case.mflops;
        assert!(rel <= 1e-6, "{}: mflops {} vs {}", case.id, counts.mflops, case.mflops);
    }
}

#[test]
fn intermediates_match_layer_by_layer() {
    let (cases, tol) = dynofa_golden::cases();
    let mut nets = Nets::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let file = dynofa_golden::path(&format!("intermediates/{}.npz", case.id));
        if !file.is_file() {
            continue;
        }
        let expected = read_npz(&file).unwrap();
        let first = case.input().first(1); // the reference traced the first sample
        let mut ours = BTreeMap::new();
        nets.run(case, &first, Precision::F32, &mut |name, a| {
            ours.insert(name.to_string(), a);
        });
        let mut exact = BTreeMap::new();
        nets.run(case, &first, Precision::F64, &mut |name, a| {
            exact.insert(name.to_string(), a);
        });
        assert_eq!(ours.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{}: the same layers are tapped", case.id);
        for (name, reference) in &expected {
            let what = format!("{} {name}", case.id);
            report(&what, check_parity(&ours[name], reference, &exact[name], tol), &mut failures);
        }
        checked += 1;
    }
    assert_eq!(checked, 3, "three cases have intermediates");
    assert!(failures.is_empty(), "intermediates differ:\n{}", failures.join("\n"));
}
