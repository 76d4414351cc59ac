//! `.npy` and `.npz` files (network inputs, calibration batches, reference outputs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("fuzz.npy");
    std::fs::write(&npy, data).unwrap();
    let _ = dynofa_supernet::tensor_io::read_npy(&npy);
    let npz = dir.path().join("fuzz.npz");
    std::fs::write(&npz, data).unwrap();
    let _ = dynofa_supernet::tensor_io::read_npz(&npz);
});
