//! The agreement of table sets, on tables written here (no timing).

use std::path::Path;

use dynofa_profiler::compare::agreement;
use dynofa_profiler::measure::write_table;
use dynofa_profiler::{Entry, Error, LatencyTables, all_layer_keys};
use dynofa_supernet::{SupernetConfig, Width};

/// A table set at `resolutions` whose key `i` costs `scale(i) × (0.1 + 0.01 i)` ms.
fn tables(dir: &Path, resolutions: &[usize], scale: impl Fn(usize) -> f64) -> LatencyTables {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    for &r in resolutions {
        let entries = all_layer_keys(&config, r)
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), Entry { count: 1, mean: scale(i) * (0.1 + 0.01 * i as f64), std: 0.0 }))
            .collect();
        write_table(&dir.join(format!("{r}_lookup_table.json")), &entries).unwrap();
    }
    LatencyTables::open(dir).unwrap()
}

#[test]
fn table_sets_agree_as_far_as_their_predictions_do() {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let base = tables(dirs[0].path(), &[160, 192], |_| 1.0);
    let close = tables(dirs[1].path(), &[160, 192], |_| 1.03);
    // Every other key 30% slower: some sub-networks move by more than 5%, none by 30%.
    let uneven = tables(dirs[2].path(), &[192, 224], |i| if i % 2 == 0 { 1.3 } else { 1.0 });

    let a = agreement(&config, &[base.clone(), close.clone()], 100, 0).unwrap();
    assert_eq!((a.networks, a.resolutions.clone(), a.within_5_pct, a.spread_within_1_10_pct), (100, vec![160, 192], 100.0, 100.0));
    assert!((a.median_spread - 1.03).abs() < 1e-9 && (a.worst_spread - 1.03).abs() < 1e-9, "{a:?}");

    // Three sets: each prediction against their median; only the resolution all have.
    let a = agreement(&config, &[base.clone(), close, uneven.clone()], 50, 1).unwrap();
    assert_eq!(a.resolutions, vec![192]);
    assert!(a.within_5_pct < 100.0 && a.worst_spread > 1.05 && a.worst_spread < 1.3, "{a:?}");
    assert_eq!(a.worst.1.len(), 3);

    // Refused, naming what is wrong: one set, no resolution in common.
    assert!(matches!(agreement(&config, std::slice::from_ref(&base), 10, 0), Err(Error::InvalidValue { field, .. }) if field == "comparison"));
    let other = tables(dirs[3].path(), &[224], |_| 1.0);
    let err = agreement(&config, &[base, other], 10, 0).unwrap_err().to_string();
    assert!(err.contains("no resolution is in every table set") && err.contains("[160, 192]"), "{err}");
}
