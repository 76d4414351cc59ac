//! Seeded mutation test of the accuracy-predictor reader on the official predictor file
//! (a legacy-format PyTorch checkpoint), under a bounded allocator: no panic, no hang, no
//! allocation beyond the limit, every refusal naming the file.

use dynofa_golden::mutation::{BoundedAllocator, check_reader};
use dynofa_search::predictor::AccuracyPredictor;

/// No single allocation above 1 GiB.
#[global_allocator]
static ALLOCATOR: BoundedAllocator = BoundedAllocator::new(1 << 30);

#[test]
fn predictor_files_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dynofa_golden::dir().join("acc_predictor.pth");
    let report = check_reader(&seed, "mutant_predictor.pth", dir.path(), 2000, 31, |p| AccuracyPredictor::load(p).map(drop).map_err(|e| format!("{e:#}")));
    assert!(report.refused > 200, "{report:?}");
}
