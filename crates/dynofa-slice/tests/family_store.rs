//! The shared-weight family store: every golden case through it, each level equal to its
//! static extraction, switching back and forth, per-level BN, and the memory it holds.

use std::collections::BTreeMap;

use burn::prelude::*;
use dynofa_golden::check_parity;
use dynofa_slice::calibrate::recalibrate;
use dynofa_slice::{FamilyStore, Placement, extract};
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{Precision, SubnetConfig, Supernet, load_checkpoint_in};

fn paper_family() -> Vec<SubnetConfig> {
    let text = std::fs::read_to_string(dynofa_golden::path("paper/dynamic_ofa_gpu_family.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["levels"].as_array().unwrap().iter().map(|l| serde_json::from_value(l["cfg"].clone()).unwrap()).collect()
}

fn w12(precision: Precision) -> Supernet {
    let (cases, _) = dynofa_golden::cases();
    let case = cases.iter().find(|c| c.net == "w12").unwrap();
    load_checkpoint_in(&case.checkpoint_path(), &Device::flex(), precision).unwrap()
}

/// The golden cases through the store on every other instruction set this CPU runs
/// (x86-64: AVX2 and portable beside AVX-512): the test below again in a child process per
/// instruction set, forced with `DYNOFA_ISA` (the choice is made once per process). On
/// aarch64 the test below runs NEON (under qemu-user in CI, where a child process of
/// another architecture could not start).
#[cfg(target_arch = "x86_64")]
#[test]
fn every_golden_case_runs_through_the_store_on_every_instruction_set() {
    if std::env::var_os("DYNOFA_ISA").is_some() {
        return; // a child of this test (or a run forced from outside): the test below covers it
    }
    for isa in dynofa_kernels::Isa::available().into_iter().filter(|&isa| isa != dynofa_kernels::Isa::best()) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["every_golden_case_runs_through_the_store", "--exact", "--test-threads", "1"])
            .env("DYNOFA_ISA", isa.name())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "golden cases through the store on {}:\n{text}\n{}",
            isa.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_golden_case_runs_through_the_store() {
    // A forced instruction set must be the one that runs (an unsupported one is ignored by
    // `Isa::best`, which would make the run above test another).
    if let Ok(forced) = std::env::var("DYNOFA_ISA") {
        assert_eq!(dynofa_kernels::Isa::best().name(), forced, "DYNOFA_ISA={forced} is not what runs on this CPU");
    }
    let device = Device::flex();
    let (cases, tol) = dynofa_golden::cases();
    let mut by_checkpoint: BTreeMap<String, Vec<&dynofa_golden::Case>> = BTreeMap::new();
    for case in &cases {
        by_checkpoint.entry(case.checkpoint.clone()).or_default().push(case);
    }
    let mut failures = Vec::new();
    for (checkpoint, cases) in by_checkpoint {
        let path = dynofa_golden::path(&checkpoint);
        let net = load_checkpoint_in(&path, &device, Precision::F32).unwrap();
        let net64 = load_checkpoint_in(&path, &device, Precision::F64).unwrap();
        let levels: Vec<SubnetConfig> = cases.iter().map(|c| c.cfg.clone()).collect();
        let mut store = FamilyStore::new(&net, &levels, 2).unwrap();
        for (i, case) in cases.iter().enumerate() {
            store.switch_to(i).unwrap();
            let ours = store.forward(&case.input()).unwrap();
            let x64 = case.input().to_tensor_in::<4>(&device, Precision::F64).unwrap();
            let exact = Array::from_tensor(&net64.forward(x64, &case.cfg).unwrap());
            if let Err(e) = check_parity(&ours, &case.expected_logits(), &exact, tol) {
                failures.push(format!("{}: {e}", case.id));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn each_level_equals_its_static_extraction_and_switching_is_stateless() {
    let device = Device::flex();
    let (cases, tol) = dynofa_golden::cases();
    let net = w12(Precision::F32);
    let family = paper_family();
    let mut store = FamilyStore::new(&net, &family, 2).unwrap();
    let mut first_pass = Vec::new();
    for (i, level) in family.iter().enumerate() {
        let input = cases.iter().find(|c| c.cfg.resolution() == level.resolution()).unwrap().input();
        store.switch_to(i).unwrap();
        let ours = store.forward(&input).unwrap();
        let reference = Array::from_tensor(&extract(&net, level).unwrap().forward(input.to_tensor(&device).unwrap()));
        dynofa_golden::compare(&ours, &reference, tol).unwrap_or_else(|e| panic!("level {i}: {e}"));
        first_pass.push((input, ours));
    }
    // Back and forth: the same outputs, bit for bit.
    for i in [5, 0, 3, 3, 1, 5, 2, 4] {
        store.switch_to(i).unwrap();
        assert_eq!(store.forward(&first_pass[i].0).unwrap(), first_pass[i].1, "level {i} after switching");
    }
    let err = store.switch_to(6).unwrap_err();
    assert!(matches!(&err, dynofa_supernet::Error::InvalidValue { field, value, expected } if field == "level" && value == "6" && expected == "0..6"), "{err}");
    // The wrong resolution for the active level is an error, not a panic.
    store.switch_to(0).unwrap();
    assert!(store.forward(&first_pass[5].0).unwrap_err().to_string().contains("[B, 3, 176, 176]"));
}

#[test]
fn per_level_bn_after_recalibration() {
    let device = Device::flex();
    let (_, tol) = dynofa_golden::cases();
    let net = w12(Precision::F32);
    let family = paper_family();
    let mut store = FamilyStore::new(&net, &family, 1).unwrap();
    let level = 1;
    let r = family[level].resolution();
    let calib = Array { shape: vec![4, 3, r, r], data: (0..4 * 3 * r * r).map(|i| ((i * 7 % 23) as f32 - 11.0) / 7.0).collect() };
    let mut calibrated = extract(&net, &family[level]).unwrap();
    recalibrate(&mut calibrated, [calib.to_tensor::<4>(&device).unwrap()], |_| {});
    let before = {
        store.switch_to(level).unwrap();
        store.forward(&calib.first(1)).unwrap()
    };
    store.set_level_bn(level, &calibrated).unwrap();
    let after = store.forward(&calib.first(1)).unwrap();
    assert_ne!(before, after, "the level now uses its own statistics");
    let want = Array::from_tensor(&calibrated.forward(calib.first(1).to_tensor(&device).unwrap()));
    dynofa_golden::compare(&after, &want, tol).unwrap();
    // Other levels keep the shared statistics.
    let refused = store.set_level_bn(0, &calibrated).unwrap_err();
    assert!(
        matches!(&refused, dynofa_supernet::Error::InvalidValue { field, value, .. } if field == "calibrated network for level 0" && value == "another architecture"),
        "a network of another level is refused: {refused}"
    );
}

#[test]
fn memory_is_about_the_largest_member() {
    let net = w12(Precision::F32);
    let family = paper_family();
    let store = FamilyStore::new(&net, &family, 1).unwrap();
    let member_bytes: Vec<usize> = family.iter().map(|l| extract(&net, l).unwrap().state_dict().iter().map(|t| 4 * t.data.len()).sum()).collect();
    let largest = *member_bytes.iter().max().unwrap();
    let total: usize = member_bytes.iter().sum();
    let ratio = store.memory_bytes() as f64 / largest as f64;
    eprintln!(
        "family of {}: store {:.2} MB, largest member {:.2} MB (ratio {ratio:.3}), independent copies {:.2} MB",
        family.len(),
        store.memory_bytes() as f64 / 1e6,
        largest as f64 / 1e6,
        total as f64 / 1e6
    );
    assert!(ratio <= 1.15, "store holds {ratio:.3}× its largest member");
}

#[test]
fn family_files_round_trip_and_refuse_other_weights() {
    use dynofa_slice::family_file::{FamilyFile, load_family, save_family};
    let device = Device::flex();
    let net = w12(Precision::F32);
    let family = paper_family();
    let mut store = FamilyStore::new(&net, &family, 1).unwrap();
    let r = family[2].resolution();
    let calib = Array { shape: vec![2, 3, r, r], data: (0..2 * 3 * r * r).map(|i| ((i * 13 % 29) as f32 - 14.0) / 9.0).collect() };
    let mut calibrated = extract(&net, &family[2]).unwrap();
    recalibrate(&mut calibrated, [calib.to_tensor::<4>(&device).unwrap()], |_| {});
    store.set_level_bn(2, &calibrated).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("family.ron");
    let mut file = FamilyFile::describe(&net, &family).unwrap();
    file.supernet = Some("ofa_mbv3_w12_seed0.pth".into());
    save_family(&store, file, &path).unwrap();
    let (mut loaded, read) = load_family(&path, &net, &Placement::Cpu { threads: 1 }).unwrap();
    assert_eq!(read.levels.len(), 6);
    assert!(read.levels[2].calibrated && !read.levels[0].calibrated);
    assert_eq!(read.levels[5].params, extract(&net, &family[5]).unwrap().num_params() as u64);
    for (i, subnet) in family.iter().enumerate() {
        let r = subnet.resolution();
        let x = Array { shape: vec![1, 3, r, r], data: (0..3 * r * r).map(|v| ((v % 17) as f32 - 8.0) / 5.0).collect() };
        store.switch_to(i).unwrap();
        loaded.switch_to(i).unwrap();
        assert_eq!(store.forward(&x).unwrap(), loaded.forward(&x).unwrap(), "level {i}");
    }

    // A w1.0 supernet cannot run a w1.2 family.
    let (cases, _) = dynofa_golden::cases();
    let w10 = cases.iter().find(|c| c.net == "w10").unwrap();
    let w10 = dynofa_supernet::load_checkpoint(&w10.checkpoint_path(), &device).unwrap();
    let err = load_family(&path, &w10, &Placement::Cpu { threads: 1 }).err().unwrap().to_string();
    assert!(err.contains("width") && err.contains("family.ron"), "{err}");
    // A file that is not a family.
    std::fs::write(&path, "not ron at all (").unwrap();
    assert!(load_family(&path, &net, &Placement::Cpu { threads: 1 }).err().unwrap().to_string().contains("family.ron"));
    // A level that does not fit the supernet.
    let mut bad = FamilyFile::describe(&net, &family).unwrap();
    bad.levels[1].config.ks[0] = 9;
    bad.write(&path).unwrap();
    let err = load_family(&path, &net, &Placement::Cpu { threads: 1 }).err().unwrap().to_string();
    assert!(err.contains("levels[1]") && err.contains("ks[0]"), "{err}");
}

#[test]
fn thread_count_switches_like_levels_and_keeps_the_results() {
    let net = w12(Precision::F32);
    let family = paper_family();
    let mut store = FamilyStore::new(&net, &family, 2).unwrap();
    assert_eq!((store.threads(), store.max_threads()), (2, 2));
    store.switch_to(1).unwrap();
    let r = family[1].resolution();
    let input = Array { shape: vec![1, 3, r, r], data: (0..3 * r * r).map(|i| ((i * 7 % 23) as f32 - 11.0) / 7.0).collect() };
    let two = store.forward(&input).unwrap();
    store.set_threads(1).unwrap();
    assert_eq!(store.threads(), 1);
    let one = store.forward(&input).unwrap();
    // The same sums in the same order per output: thread count changes nothing.
    let worst = one.data.iter().zip(&two.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-4, "1 vs 2 threads differ by {worst}");
    for bad in [0, 3] {
        let err = store.set_threads(bad).unwrap_err().to_string();
        assert!(err.contains("threads") && err.contains("1..=2"), "{err}");
    }
}

#[test]
fn a_batch_gives_each_image_its_own_logits() {
    let device = Device::flex();
    let net = w12(Precision::F32);
    let family = paper_family();
    let mut store = FamilyStore::new(&net, &family, 2).unwrap();
    let level = 2;
    let r = family[level].resolution();
    let image = |seed: usize| -> Vec<f32> { (0..3 * r * r).map(|i| ((i * 7 + seed * 13) % 23) as f32 / 7.0 - 1.5).collect() };
    // The level has its own BatchNorm, so that the layers a batch runs together (the late
    // stages) must go on in the BN list where each image's own layers left it.
    let calib = Array { shape: vec![2, 3, r, r], data: (0..2).flat_map(|s| image(s + 10)).collect() };
    let mut calibrated = extract(&net, &family[level]).unwrap();
    recalibrate(&mut calibrated, [calib.to_tensor::<4>(&device).unwrap()], |_| {});
    store.set_level_bn(level, &calibrated).unwrap();
    store.switch_to(level).unwrap();
    // Five images: on 2 threads, workers take 3 and 2 up to the late stages, which then
    // run for all five at once, as does the head (a GEMM, where one image is a
    // vector–matrix product). On 1 thread, one worker takes all five.
    let batch = Array { shape: vec![5, 3, r, r], data: (0..5).flat_map(image).collect() };
    for threads in [2, 1] {
        store.set_threads(threads).unwrap();
        let together = store.forward(&batch).unwrap();
        assert_eq!(together.shape, [5, 1000]);
        for b in 0..5 {
            let alone = store.forward(&Array { shape: vec![1, 3, r, r], data: image(b) }).unwrap();
            let worst = alone.data.iter().zip(&together.data[b * 1000..(b + 1) * 1000]).map(|(a, t)| (a - t).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-4, "image {b} on {threads} threads: batched and alone differ by {worst}");
        }
    }
}
