//! Seeded mutation tests of the supernet crate's readers (zip checkpoints, `.npy`, `.npz`,
//! Burn records), under a bounded allocator: no panic, no hang, no allocation beyond the
//! limit, and every refusal names the file. And files that claim huge sizes, refused at once.

use std::collections::HashSet;
use std::path::Path;

use burn::prelude::Device;
use dynofa_golden::mutation::{BoundedAllocator, check_reader};
use dynofa_supernet::checkpoint::Checkpoint;
use dynofa_supernet::pth::{Entry, Values, write_entries};
use dynofa_supernet::state_dict::TensorSource;
use dynofa_supernet::tensor_io::{read_npy, read_npz};
use dynofa_supernet::{SupernetConfig, Width, load_record, save_record};

/// No single allocation above 1 GiB: the memory limit every case runs under.
#[global_allocator]
static ALLOCATOR: BoundedAllocator = BoundedAllocator::new(1 << 30);

const CASES: usize = 2000;

/// A small zip checkpoint as `torch.save` writes it: two f32 tensors and an int64 counter.
fn small_checkpoint(path: &Path) -> Vec<(String, Vec<usize>)> {
    let weight: Vec<f32> = (0..96).map(|i| i as f32 * 0.25).collect();
    let bias: Vec<f32> = (0..8).map(|i| -(i as f32)).collect();
    let entries = [
        Entry { name: "features.weight", shape: &[8, 3, 2, 2], values: Values::F32(&weight) },
        Entry { name: "features.bias", shape: &[8], values: Values::F32(&bias) },
        Entry { name: "bn.num_batches_tracked", shape: &[], values: Values::I64(&[7]) },
    ];
    write_entries(path, &entries, true).unwrap();
    vec![("features.weight".into(), vec![8, 3, 2, 2]), ("features.bias".into(), vec![8])]
}

fn read_checkpoint(path: &Path, tensors: &[(String, Vec<usize>)]) -> Result<(), String> {
    let known: HashSet<String> = tensors.iter().map(|(k, _)| k.clone()).collect();
    let mut file = Checkpoint::open(path, &known).map_err(|e| format!("{e:#}"))?;
    for (key, shape) in tensors {
        file.tensor(key, shape).map_err(|e| format!("{:#}", e.in_file(path)))?;
    }
    Ok(())
}

#[test]
fn zip_checkpoints_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.pth");
    let tensors = small_checkpoint(&seed);
    let report = check_reader(&seed, "mutant.pth", dir.path(), CASES, 1, |p| read_checkpoint(p, &tensors));
    assert!(report.refused > CASES / 4, "the mutations reach the reader: {report:?}");
}

#[test]
fn npy_inputs_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dynofa_golden::dir().join("inputs/x_seed1234_r128.npy");
    let report = check_reader(&seed, "mutant.npy", dir.path(), CASES, 2, |p| read_npy(p).map(drop).map_err(|e| format!("{e:#}")));
    assert!(report.refused > CASES / 10, "{report:?}");
}

#[test]
fn npz_archives_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dynofa_golden::dir().join("bn_recalib/w12_paper6_l0_stats.npz");
    let report = check_reader(&seed, "mutant.npz", dir.path(), CASES, 3, |p| read_npz(p).map(drop).map_err(|e| format!("{e:#}")));
    assert!(report.refused > CASES / 10, "{report:?}");
}

#[test]
fn burn_records_survive_mutation() {
    // A whole supernet per case: fewer cases (each loads ~30 MB).
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.bpk");
    let device = Device::flex();
    save_record(&SupernetConfig::ofa_mbv3(Width::W10).init(&device), &seed).unwrap();
    let report = check_reader(&seed, "mutant.bpk", dir.path(), 150, 4, |p| load_record(p, &device).map(drop).map_err(|e| format!("{e:#}")));
    assert!(report.refused > 10, "{report:?}");
}

#[test]
fn files_claiming_huge_sizes_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // An .npy of 1 KB whose header claims 100 000 × 100 000 × 3 float32 (120 GB).
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 3), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<117}\n");
    npy.extend((padded.len() as u16).to_le_bytes());
    npy.extend(padded.as_bytes());
    npy.extend([0u8; 1024 - 128]);
    let path = dir.path().join("huge.npy");
    std::fs::write(&path, &npy).unwrap();
    let start = std::time::Instant::now();
    let err = format!("{:#}", read_npy(&path).unwrap_err());
    assert!(err.contains("huge.npy") && err.contains("[100000, 100000, 3]") && err.contains("120000000000 bytes"), "{err}");
    assert!(start.elapsed().as_secs() < 5);
    assert!(ALLOCATOR.largest_request() < 1 << 30);
}
