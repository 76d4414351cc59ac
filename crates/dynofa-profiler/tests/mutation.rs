//! Seeded mutation tests of the latency-table reader (OFA's JSON and YAML tables), under a
//! bounded allocator: no panic, no hang, no allocation beyond the limit, every refusal
//! naming the file.

use dynofa_golden::mutation::{BoundedAllocator, check_reader};
use dynofa_profiler::table::LatencyTables;
use dynofa_supernet::{SupernetConfig, Width};

/// No single allocation above 1 GiB.
#[global_allocator]
static ALLOCATOR: BoundedAllocator = BoundedAllocator::new(1 << 30);

/// Reads the tables in `dir` and predicts the largest and smallest sub-networks at `r`.
fn read_and_predict(dir: &std::path::Path, r: usize) -> Result<(), String> {
    let tables = LatencyTables::open(dir).map_err(|e| e.to_string())?;
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    for subnet in [config.largest(r), config.smallest(r)] {
        tables.predict(&config, &subnet).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn json_and_yaml_tables_survive_mutation() {
    for (device, file, seed) in [("jetson_cpu", "160_lookup_table.json", 21), ("note10", "160_lookup_table.yaml", 22)] {
        let dir = tempfile::tempdir().unwrap();
        let original = dynofa_golden::dir().join("lut").join(device).join(file);
        let report = check_reader(&original, file, dir.path(), 2000, seed, |_| read_and_predict(dir.path(), 160));
        assert!(report.refused > 200, "{device}: {report:?}");
    }
}
