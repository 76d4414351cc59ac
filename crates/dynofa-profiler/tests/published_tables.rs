//! The published tables (Dynamic-OFA's Jetson Xavier NX JSON, OFA's Note10 YAML): reading
//! them, predicting every golden case's `lut_ms`, the keys a table must hold, and errors.

use std::path::Path;

use dynofa_profiler::{Error, LatencyTables, all_layer_keys, layer_keys};
use dynofa_supernet::{SubnetConfig, SupernetConfig, Width};

fn lut_dir(device: &str) -> std::path::PathBuf {
    dynofa_golden::dir().join("lut").join(device)
}

#[test]
fn every_golden_lut_ms_is_reproduced() {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let (cases, _) = dynofa_golden::cases();
    let mut checked = 0;
    for device in ["jetson_cpu", "jetson_gpu"] {
        let tables = LatencyTables::open(&lut_dir(device)).expect("published tables");
        assert_eq!(tables.tables.keys().copied().collect::<Vec<_>>(), (160..=224).step_by(4).collect::<Vec<_>>());
        for case in cases.iter().filter(|c| c.net == "w12") {
            let want = case.lut_ms.as_ref().expect("w1.2 cases carry lut_ms")[device];
            let got = tables.predict(&config, &case.cfg).expect("prediction");
            assert!((got - want).abs() <= 1e-9 * want.abs(), "{} on {device}: {got} vs {want}", case.id);
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

#[test]
fn the_keys_of_a_table_are_exactly_those_a_supernet_can_produce() {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    for device in ["jetson_cpu", "jetson_gpu", "note10"] {
        let tables = LatencyTables::open(&lut_dir(device)).expect("published tables");
        for (&r, table) in &tables.tables {
            let ours: Vec<String> = all_layer_keys(&config, r).iter().map(|k| k.to_string()).collect();
            let theirs: Vec<String> = table.entries.keys().cloned().collect();
            let mut ours_sorted = ours.clone();
            ours_sorted.sort();
            assert_eq!(ours_sorted, theirs, "{device} r{r}");
        }
    }
}

#[test]
fn the_yaml_tables_predict_like_the_json_rule() {
    // OFA's Note10 tables hold the same keys in YAML: the prediction is the same sum.
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let tables = LatencyTables::open(&lut_dir("note10")).expect("note10 tables");
    let subnet = SubnetConfig { ks: vec![5; 20], e: vec![4; 20], d: vec![3; 5], r: vec![192] };
    let table = tables.table(192).expect("r192");
    let by_hand: f64 = layer_keys(&config, &subnet).iter().map(|k| table.entries[&k.to_string()].mean).sum();
    let predicted = tables.predict(&config, &subnet).expect("prediction");
    assert!(predicted > 0.0 && (predicted - by_hand).abs() < 1e-12);
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn errors_name_the_file_line_key_and_resolution() {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let subnet = SubnetConfig { ks: vec![3; 20], e: vec![3; 20], d: vec![2; 5], r: vec![160] };
    let dir = tempfile::tempdir().expect("tempdir");

    // Empty directory.
    assert!(matches!(LatencyTables::open(dir.path()), Err(Error::Empty { .. })));

    // A table missing a key: the key is named.
    let real = std::fs::read_to_string(lut_dir("jetson_cpu").join("160_lookup_table.json")).expect("read");
    let mut entries: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&real).expect("json");
    let dropped = layer_keys(&config, &subnet)[3].to_string();
    entries.remove(&dropped);
    write(dir.path(), "160_lookup_table.json", &serde_json::to_string_pretty(&entries).expect("json"));
    let tables = LatencyTables::open(dir.path()).expect("open");
    match tables.predict(&config, &subnet) {
        Err(Error::MissingKey { key, path }) => assert!(key == dropped && path.ends_with("160_lookup_table.json"), "{key} {path:?}"),
        other => panic!("expected a missing key, got {other:?}"),
    }
    // A resolution without a table.
    let other_r = SubnetConfig { r: vec![224], ..subnet.clone() };
    let err = tables.predict(&config, &other_r).expect_err("no r224 table");
    assert!(err.to_string().contains("resolution 224") && err.to_string().contains("[160]"), "{err}");

    // Malformed JSON: file and line.
    write(dir.path(), "164_lookup_table.json", "{\n  \"Conv-input:164x164x3-output:82x82x24\": {\"count\": 1,\n \"mean\": oops}\n}");
    match LatencyTables::open(dir.path()) {
        Err(Error::Malformed { path, line, .. }) => assert!(path.ends_with("164_lookup_table.json") && line == 3, "{path:?}:{line}"),
        other => panic!("expected malformed, got {other:?}"),
    }
    std::fs::remove_file(dir.path().join("164_lookup_table.json")).expect("rm");

    // Malformed YAML: file and line.
    write(dir.path(), "168_lookup_table.yaml", "Conv-input:168x168x3-output:84x84x24:\n  count: 5\n  mean: [not a number\n");
    match LatencyTables::open(dir.path()) {
        Err(Error::Malformed { path, line, .. }) => assert!(path.ends_with("168_lookup_table.yaml") && line >= 3, "{path:?}:{line}"),
        other => panic!("expected malformed, got {other:?}"),
    }
}
