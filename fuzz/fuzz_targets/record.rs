//! A Burn record (`.bpk`) of the supernet.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.bpk");
    std::fs::write(&path, data).unwrap();
    let _ = dynofa_supernet::load_record(&path, &burn::prelude::Device::flex());
});
