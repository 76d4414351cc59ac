//! A latency look-up table (OFA's JSON or YAML), read and used for a prediction.
#![no_main]
use dynofa_profiler::table::LatencyTables;
use dynofa_supernet::{SupernetConfig, Width};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let dir = tempfile::tempdir().unwrap();
    let name = if which % 2 == 0 { "160_lookup_table.json" } else { "160_lookup_table.yaml" };
    std::fs::write(dir.path().join(name), rest).unwrap();
    if let Ok(tables) = LatencyTables::open(dir.path()) {
        let config = SupernetConfig::ofa_mbv3(Width::W12);
        let _ = tables.predict(&config, &config.largest(160));
    }
});
