//! A PyTorch checkpoint (zip or legacy) through the guard and `pytorch-reader`, every
//! tensor read; and the same bytes as the accuracy predictor's file.
#![no_main]
use std::collections::HashSet;

use dynofa_supernet::checkpoint::Checkpoint;
use dynofa_supernet::state_dict::TensorSource;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.pth");
    std::fs::write(&path, data).unwrap();
    let known: HashSet<String> = ["features.weight", "features.bias"].map(String::from).into();
    if let Ok(mut file) = Checkpoint::open(&path, &known) {
        let _ = file.tensor("features.weight", &[8, 3, 2, 2]);
        let _ = file.tensor("features.bias", &[8]);
    }
    let _ = dynofa_search::predictor::AccuracyPredictor::load(&path);
});
