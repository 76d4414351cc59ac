//! Building a table on this machine: its keys are exactly those the predictor asks for,
//! its entries are timings, a build resumes, and validation reports errors.

use burn::prelude::*;
use dynofa_profiler::keys::all_layer_keys;
use dynofa_profiler::measure::covering_subnets;
use dynofa_profiler::validate::{random_subnets, Correction, Point};
use dynofa_profiler::{build_tables, validate, BuildOptions, Error};
use dynofa_slice::Placement;
use dynofa_supernet::{SupernetConfig, Width};

#[test]
fn a_quick_table_has_exactly_the_keys_the_predictor_needs_and_resumes() {
    let device = Device::flex();
    let supernet = SupernetConfig::ofa_mbv3(Width::W12).init(&device);
    let dir = tempfile::tempdir().expect("tempdir");
    let options = BuildOptions { resolutions: vec![160], placement: Placement::Cpu { threads: 1 }, iters: 1 };
    let mut calls = 0;
    let tables = build_tables(&supernet, dir.path(), &options, &mut |_, _, _| calls += 1).expect("build");
    assert!(calls >= covering_subnets(&supernet.config, 160).len());
    let table = tables.table(160).expect("r160");
    let want: Vec<String> = all_layer_keys(&supernet.config, 160).iter().map(|k| k.to_string()).collect();
    let mut got: Vec<String> = table.entries.keys().cloned().collect();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted);
    assert!(table.entries.values().all(|e| e.count >= 1 && e.mean > 0.0 && e.std >= 0.0));
    // Every random sub-network at 160 can be predicted from it.
    for subnet in random_subnets(&supernet.config, &[160], 10, 3) {
        assert!(tables.predict(&supernet.config, &subnet).expect("predict") > 0.0);
    }
    // A second build finds the table complete and times nothing.
    let before = std::fs::read_to_string(dir.path().join("160_lookup_table.json")).expect("read");
    let mut calls = 0;
    build_tables(&supernet, dir.path(), &options, &mut |_, _, _| calls += 1).expect("resume");
    assert_eq!(calls, 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("160_lookup_table.json")).expect("read"), before);

    // Validation: every point measured, errors reported, too few networks refused.
    let v = validate(&supernet, &tables, 4, 1, &Placement::Cpu { threads: 1 }, 1).expect("validate");
    assert_eq!(v.points.len(), 4);
    assert!(v.points.iter().all(|p| p.measured_ms > 0.0 && p.predicted_ms > 0.0));
    assert!(v.raw.mape.is_finite() && v.raw.worst >= v.raw.mape);
    assert!(matches!(validate(&supernet, &tables, 3, 1, &Placement::Cpu { threads: 1 }, 1), Err(Error::Invalid { .. })));
}

#[test]
fn the_correction_is_the_least_squares_line() {
    let point = |predicted_ms, measured_ms| Point { subnet: random_subnets(&SupernetConfig::ofa_mbv3(Width::W12), &[160], 1, 0)[0].clone(), predicted_ms, measured_ms, fitted: true };
    // measured = 1.5 × predicted + 2 exactly.
    let points: Vec<Point> = [1.0, 2.0, 5.0, 9.0].iter().map(|&x| point(x, 1.5 * x + 2.0)).collect();
    let c = Correction::fit(&points);
    assert!((c.scale - 1.5).abs() < 1e-12 && (c.offset_ms - 2.0).abs() < 1e-12, "{c:?}");
    assert_eq!(Correction::fit(&points[..1]), Correction::IDENTITY);
}
