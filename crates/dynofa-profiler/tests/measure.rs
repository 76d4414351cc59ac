//! Profiling on this machine: the tables hold exactly the keys the predictor asks for,
//! complete tables are skipped, validation and additivity networks are measured, and the
//! correction is chosen by cross-validation.

use burn::prelude::*;
use dynofa_profiler::keys::all_layer_keys;
use dynofa_profiler::measure::{Measured, covering_subnets, write_table};
use dynofa_profiler::rounds::RoundOptions;
use dynofa_profiler::validate::{Correction, CorrectionModel, random_subnets};
use dynofa_profiler::{Entry, Error, LatencyTables, ProfileOptions, measure, validate};
use dynofa_slice::Placement;
use dynofa_supernet::{SupernetConfig, Width};

fn options(validation: usize, additivity: bool) -> ProfileOptions {
    ProfileOptions {
        resolutions: vec![160],
        threads: vec![1],
        placement: Placement::Cpu { threads: 1 },
        whole: random_subnets(&SupernetConfig::ofa_mbv3(Width::W12), &[160], validation, 1),
        additivity,
        warm_forwards: 0,
        rounds: RoundOptions { min_rounds: 3, max_rounds: 3, ..RoundOptions::default() },
    }
}

#[test]
fn a_profile_has_exactly_the_keys_the_predictor_needs_and_skips_complete_tables() {
    let device = Device::flex();
    let supernet = SupernetConfig::ofa_mbv3(Width::W12).init(&device);
    let config = &supernet.config;
    let mut calls = 0;
    let profile = measure(&supernet, &options(4, true), &|_, _| false, &mut |_, _, _| calls += 1).expect("profile");
    assert_eq!((profile.noise.rounds, calls), (3, 3));
    let [measured] = &profile.threads[..] else { panic!("one thread count") };
    let table = &measured.tables[&160];
    let mut want: Vec<String> = all_layer_keys(config, 160).iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(table.keys().cloned().collect::<Vec<_>>(), want);
    // Each entry pools its key's samples of the three rounds (blocks sharing a key pool more).
    assert!(table.values().all(|e| e.count >= 3 && e.mean > 0.0 && e.std >= 0.0));
    assert_eq!(measured.whole.len(), 4);
    assert_eq!(measured.additivity.len(), covering_subnets(config, 160).len());
    assert!(measured.whole.iter().chain(&measured.additivity).all(|m| m.ms > 0.0));
    assert!(measured.canary.is_some_and(|c| c.readings > 0 && c.quiet_ms > 0.0));

    // Written, the table predicts every random sub-network at 160, and validation judges it.
    let dir = tempfile::tempdir().expect("tempdir");
    write_table(&dir.path().join("160_lookup_table.json"), table).expect("write");
    let tables = LatencyTables::open(dir.path()).expect("open");
    for subnet in random_subnets(config, &[160], 10, 3) {
        assert!(tables.predict(config, &subnet).expect("predict") > 0.0);
    }
    let v = validate(config, &tables, &measured.whole).expect("validate");
    assert_eq!(v.points.len(), 4);
    assert!(v.raw.mape.is_finite() && v.raw.worst >= v.raw.mape && (0.0..=100.0).contains(&v.within_10_pct));

    // A complete table is skipped: only the validation networks are timed.
    let profile = measure(&supernet, &options(4, true), &|_, r| r == 160, &mut |_, _, _| {}).expect("skip");
    assert!(profile.threads[0].tables.is_empty() && profile.threads[0].additivity.is_empty());
    assert_eq!(profile.threads[0].whole.len(), 4);

    // Settings that cannot measure are refused, naming the setting.
    let mut bad = options(0, false);
    bad.threads = vec![0];
    assert!(matches!(measure(&supernet, &bad, &|_, _| false, &mut |_, _, _| {}), Err(Error::InvalidValue { field, .. }) if field == "threads"));
    let mut bad = options(0, false);
    bad.rounds.min_rounds = 1;
    assert!(matches!(measure(&supernet, &bad, &|_, _| false, &mut |_, _, _| {}), Err(Error::InvalidValue { field, .. }) if field == "minimum rounds"));
}

#[test]
fn the_correction_is_chosen_by_cross_validation_and_applied_only_where_it_helps() {
    let xy = |pairs: &[(f64, f64)]| pairs.to_vec();
    // measured = 1.5 × predicted + 2 exactly: least squares recovers it.
    let line: Vec<(f64, f64)> = [1.0, 2.0, 5.0, 9.0].iter().map(|&x| (x, 1.5 * x + 2.0)).collect();
    let c = Correction::fit(CorrectionModel::Affine, &line);
    assert!((c.scale - 1.5).abs() < 1e-12 && (c.offset_ms - 2.0).abs() < 1e-12, "{c:?}");
    assert_eq!(Correction::fit(CorrectionModel::Affine, &line[..1]), Correction::IDENTITY);
    let c = Correction::fit(CorrectionModel::Scale, &xy(&[(1.0, 2.0), (3.0, 6.0)]));
    assert!((c.scale - 2.0).abs() < 1e-12 && c.offset_ms == 0.0);
    // Leave one out: each point predicted by the line through the others.
    let held_out = Correction::held_out(CorrectionModel::Affine, &line);
    assert!(held_out.iter().zip(&line).all(|(p, (_, y))| (p - y).abs() < 1e-9), "{held_out:?}");

    // Through validate: networks measured 20% slower than the tables say → the scale is
    // chosen and held out it predicts them all; tables that are right → no correction.
    let config = &SupernetConfig::ofa_mbv3(Width::W12);
    let dir = tempfile::tempdir().expect("tempdir");
    let entries =
        all_layer_keys(config, 160).iter().enumerate().map(|(i, k)| (k.to_string(), Entry { count: 1, mean: 0.1 + i as f64 * 0.01, std: 0.0 })).collect();
    write_table(&dir.path().join("160_lookup_table.json"), &entries).expect("write");
    let tables = LatencyTables::open(dir.path()).expect("open");
    let subnets = random_subnets(config, &[160], 12, 5);
    let measured = |factor: f64| -> Vec<Measured> {
        subnets.iter().map(|s| Measured { subnet: s.clone(), ms: factor * tables.predict(config, s).unwrap(), ci: 0.0 }).collect()
    };
    let v = validate(config, &tables, &measured(1.2)).expect("validate");
    assert_eq!(v.model, CorrectionModel::Scale);
    assert!((v.correction.scale - 1.2).abs() < 1e-9 && v.within_5_pct == 100.0 && v.raw.within_10_pct == 0.0, "{v:?}");
    let v = validate(config, &tables, &measured(1.0)).expect("validate");
    assert_eq!((v.model, v.correction), (CorrectionModel::Identity, Correction::IDENTITY));
    assert!(v.points.iter().all(|p| p.held_out_ms == p.predicted_ms) && v.within_5_pct == 100.0);
}
