//! Seeded mutation tests of the slicing crate's readers — family files (RON) and their
//! per-level BatchNorm weights (`.levels.pth`), OFA specialised-network folders
//! (`net.config`, `init`) — under a bounded allocator: no panic, no hang, no allocation
//! beyond the limit, every refusal naming the file.

use burn::prelude::Device;
use dynofa_golden::mutation::{BoundedAllocator, check_reader};
use dynofa_slice::family::check_levels;
use dynofa_slice::family_file::{FamilyFile, level_weights_path, load_family, save_family};
use dynofa_slice::{FamilyStore, Placement, extract, ofa_dir};
use dynofa_supernet::{SupernetConfig, Width};

/// No single allocation above 1 GiB.
#[global_allocator]
static ALLOCATOR: BoundedAllocator = BoundedAllocator::new(1 << 30);

#[test]
fn family_files_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/families/cpu_w12.ron");
    let report = check_reader(&seed, "mutant.ron", dir.path(), 2000, 11, |path| {
        let file = FamilyFile::read(path).map_err(|e| format!("{e:#}"))?;
        check_levels(&SupernetConfig::ofa_mbv3(file.width), &file.configs()).map_err(|e| format!("{:#}", e.in_file(path)))
    });
    assert!(report.refused > 200, "{report:?}");
}

#[test]
fn level_weights_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let net = SupernetConfig::ofa_mbv3(Width::W12).init(&device);
    let levels = vec![net.config.smallest(128)];
    let mut store = FamilyStore::new(&net, &levels, 1).unwrap();
    store.set_level_bn(0, &extract(&net, &levels[0]).unwrap()).unwrap();
    let family = dir.path().join("family.ron");
    save_family(&store, FamilyFile::describe(&net, &levels).unwrap(), &family).unwrap();
    let seed = dir.path().join("seed.levels.pth");
    std::fs::rename(level_weights_path(&family), &seed).unwrap();
    // The mutant is written where the family looks for its weights: `family.levels.pth`.
    let report = check_reader(&seed, "family.levels.pth", dir.path(), 1000, 12, |_| {
        load_family(&family, &net, &Placement::Cpu { threads: 1 }).map(drop).map_err(|e| format!("{e:#}"))
    });
    assert!(report.refused > 100, "{report:?}");
}

#[test]
fn ofa_folders_survive_mutation() {
    let golden = dynofa_golden::dir().join("subnet");
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("net");
    std::fs::create_dir(&folder).unwrap();
    for name in ["run.config", "net.config"] {
        std::fs::copy(golden.join(name), folder.join(name)).unwrap();
    }
    // net.config: the architecture (cheap to read: many cases).
    let report =
        check_reader(&golden.join("net.config"), "net.config", &folder, 2000, 13, |_| ofa_dir::load_arch(&folder).map(drop).map_err(|e| format!("{e:#}")));
    assert!(report.refused > 200, "{report:?}");
    // init: the weights (~25 MB, read whole each time: fewer cases; the checkpoint reader
    // itself is mutated in dynofa-supernet's tests).
    std::fs::copy(golden.join("net.config"), folder.join("net.config")).unwrap();
    let device = Device::flex();
    let report = check_reader(&golden.join("init"), "init", &folder, 60, 14, |_| ofa_dir::load(&folder, &device).map(drop).map_err(|e| format!("{e:#}")));
    assert!(report.refused > 5, "{report:?}");
}

#[test]
fn a_family_claiming_huge_sizes_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let net = SupernetConfig::ofa_mbv3(Width::W12).init(&Device::flex());
    let mut file = FamilyFile::describe(&net, &[net.config.smallest(128)]).unwrap();
    file.levels[0].calibrated = true;
    let path = dir.path().join("huge.ron");
    file.write(&path).unwrap();
    // Its BatchNorm weights: a 1 KB file whose pickle claims a 100 GB storage.
    let key = "levels.0.first_conv.bn.scale";
    let mut pickle = b"\x80\x02}X".to_vec();
    pickle.extend((key.len() as u32).to_le_bytes());
    pickle.extend(key.as_bytes());
    pickle.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    pickle.extend(b"X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu\x8a\x08");
    pickle.extend(25_000_000_000u64.to_le_bytes());
    pickle.extend(b"tQK\x00(K\x05t(K\x01t\x89ccollections\nOrderedDict\n)RtRs.");
    dynofa_supernet::pth::write_zip_checkpoint(&level_weights_path(&path), &pickle, &[vec![0u8; 16]]).unwrap();
    let start = std::time::Instant::now();
    let err = format!("{:#}", load_family(&path, &net, &Placement::Cpu { threads: 1 }).err().expect("refused"));
    assert!(err.contains("huge.levels.pth") && err.contains("25000000000 elements"), "{err}");
    assert!(start.elapsed().as_secs() < 5);
    // A level claiming a resolution of 10¹¹ pixels a side.
    file.levels[0].config.r = vec![100_000_000_000];
    file.write(&path).unwrap();
    let err = format!("{:#}", load_family(&path, &net, &Placement::Cpu { threads: 1 }).err().expect("refused"));
    assert!(err.contains("huge.ron") && err.contains("100000000000"), "{err}");
    assert!(ALLOCATOR.largest_request() < 1 << 30);
}
