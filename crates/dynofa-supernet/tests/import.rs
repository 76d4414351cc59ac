//! The importer and the record format: round trips through every accepted spelling and
//! container, and a clear error (never a panic) for every kind of bad file.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use dynofa_supernet::pth::{NamedTensor, Pickle, write_state_dict, write_zip_checkpoint};
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{Error, SubnetConfig, Supernet, SupernetConfig, Width, load_checkpoint, load_record, load_weights, save_record};

fn logits(net: &Supernet, subnet: &SubnetConfig) -> Array {
    let device = Device::flex();
    let r = subnet.resolution();
    let values: Vec<f32> = (0..3 * r * r).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let x = Tensor::<1>::from_floats(values.as_slice(), &device).reshape([1, 3, r, r]);
    Array::from_tensor(&net.forward(x, subnet).unwrap())
}

fn seeded_w10() -> Supernet {
    SupernetConfig::ofa_mbv3(Width::W10).init_seeded(7, &Device::flex())
}

fn probe_subnet() -> SubnetConfig {
    let mut s = SupernetConfig::ofa_mbv3(Width::W10).smallest(64);
    s.ks[0] = 7;
    s.ks[5] = 5;
    s.e[9] = 6;
    s.d[1] = 4;
    s
}

fn tmp(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn error_of(path: &Path) -> String {
    match load_checkpoint(path, &Device::flex()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn round_trips_through_every_spelling() {
    let net = seeded_w10();
    let want = logits(&net, &probe_subnet());
    let dir = tempfile::tempdir().unwrap();
    let state = net.state_dict();
    assert_eq!(state.len(), 475 - 64, "475 entries less one num_batches_tracked per BN");

    // Current names, wrapped in {'state_dict': …}, then a bare state dict.
    for wrapped in [true, false] {
        let path = tmp(&dir, &format!("current_{wrapped}.pth"));
        write_state_dict(&path, &state, wrapped).unwrap();
        let loaded = load_checkpoint(&path, &Device::flex()).unwrap();
        assert_eq!(loaded.config.width, Width::W10);
        assert_eq!(logits(&loaded, &probe_subnet()), want, "wrapped = {wrapped}");
    }

    // The official file's spelling, and the un-nested spelling of other OFA versions.
    let respell = |f: &dyn Fn(&str) -> String| -> Vec<NamedTensor> { state.iter().map(|t| NamedTensor { name: f(&t.name), ..t.clone() }).collect() };
    let official = respell(&|n| {
        n.replace(".conv.inverted", ".mobile_inverted_conv.inverted")
            .replace(".conv.depth_conv", ".mobile_inverted_conv.depth_conv")
            .replace(".conv.point_linear", ".mobile_inverted_conv.point_linear")
    });
    let unnested = respell(&|n| n.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight"));
    for (name, tensors) in [("official", official), ("unnested", unnested)] {
        let path = tmp(&dir, &format!("{name}.pth"));
        write_state_dict(&path, &tensors, true).unwrap();
        let loaded = load_checkpoint(&path, &Device::flex()).unwrap();
        assert_eq!(logits(&loaded, &probe_subnet()), want, "{name} spelling");
    }
}

#[test]
fn burn_record_round_trip() {
    let net = seeded_w10();
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "supernet.bpk");
    save_record(&net, &path).unwrap();
    let loaded = load_record(&path, &Device::flex()).unwrap();
    assert_eq!(loaded.config, net.config);
    assert_eq!(logits(&loaded, &probe_subnet()), logits(&net, &probe_subnet()));
    let via_dispatch = load_weights(&path, &Device::flex()).unwrap();
    assert_eq!(logits(&via_dispatch, &probe_subnet()), logits(&net, &probe_subnet()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "written with the usual permissions");
    }
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from("supernet.bpk")]);
    // A record that is not one.
    std::fs::write(&path, b"not a burnpack").unwrap();
    assert!(load_record(&path, &Device::flex()).unwrap_err().to_string().contains("supernet.bpk"));
}

#[test]
fn golden_checkpoint_survives_the_record_format() {
    let device = Device::flex();
    let (cases, _) = dynofa_golden::cases();
    let case = cases.iter().find(|c| c.net == "w12").unwrap();
    let from_pth = load_checkpoint(&case.checkpoint_path(), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "w12.bpk");
    save_record(&from_pth, &path).unwrap();
    let from_record = load_record(&path, &device).unwrap();
    let x = case.input().to_tensor::<4>(&device).unwrap();
    let a = Array::from_tensor(&from_pth.forward(x.clone(), &case.cfg).unwrap());
    let b = Array::from_tensor(&from_record.forward(x, &case.cfg).unwrap());
    assert_eq!(a, b);
}

#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (cases, _) = dynofa_golden::cases();
    let mut seen = std::collections::BTreeSet::new();
    for case in cases.iter().filter(|c| seen.insert(c.checkpoint.clone())) {
        let bytes = std::fs::read(case.checkpoint_path()).unwrap();
        for keep in [100, bytes.len() / 2, bytes.len() - 10] {
            let path = tmp(&dir, &format!("cut_{keep}_{}", case.checkpoint));
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let err = error_of(&path);
            assert!(err.contains(&format!("cut_{keep}")), "names the file: {err}");
        }
    }
}

#[test]
fn files_that_are_not_checkpoints_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = tmp(&dir, "notes.pth");
    std::fs::write(&text, "hello, this is not a checkpoint\n").unwrap();
    assert!(error_of(&text).contains("notes.pth"));
    let empty = tmp(&dir, "empty.pth");
    std::fs::write(&empty, b"").unwrap();
    assert!(error_of(&empty).contains("empty.pth"));
    let missing = tmp(&dir, "absent.pth");
    assert!(error_of(&missing).contains("absent.pth"));
    // A directory.
    let folder = load_checkpoint(dir.path(), &Device::flex()).unwrap_err().to_string();
    assert!(folder.contains(&dir.path().display().to_string()), "{folder}");
}

#[test]
fn missing_key_and_wrong_shape_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = seeded_w10().state_dict();
    let removed = state.remove(100);
    let path = tmp(&dir, "missing.pth");
    write_state_dict(&path, &state, true).unwrap();
    let err = error_of(&path);
    assert!(err.contains(&removed.name) && err.contains("missing"), "{err}");

    let mut state = seeded_w10().state_dict();
    // A 5×5 depthwise filter where the supernet stores 7×7.
    let name = "blocks.5.conv.depth_conv.conv.conv.weight".to_string();
    let victim = state.iter_mut().find(|t| t.name == name).unwrap();
    victim.shape[2..].copy_from_slice(&[5, 5]);
    victim.data.truncate(victim.shape.iter().product());
    write_state_dict(&tmp(&dir, "shape.pth"), &state, true).unwrap();
    let err = error_of(&tmp(&dir, "shape.pth"));
    assert!(err.contains(&name) && err.contains("shape"), "{err}");

    let mut state = seeded_w10().state_dict();
    state.push(NamedTensor { name: "blocks.3.conv.extra.weight".into(), shape: vec![1], data: vec![0.0] });
    write_state_dict(&tmp(&dir, "extra.pth"), &state, true).unwrap();
    assert!(error_of(&tmp(&dir, "extra.pth")).contains("blocks.3.conv.extra.weight"));
}

#[test]
fn a_pickle_asking_for_other_globals_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // {'state_dict': OrderedDict(), 'x': os.system('echo pwned')}
    let mut p = Pickle::new();
    p.op(b'}').string("state_dict").ordered_dict().op(b's');
    p.string("x").global("os", "system").op(b'(').string("echo pwned").op(b't').op(b'R').op(b's');
    let path = tmp(&dir, "evil.pth");
    write_zip_checkpoint(&path, &p.finish(), &[]).unwrap();
    let err = error_of(&path);
    assert!(err.contains("os.system") && err.contains("evil.pth"), "{err}");
}

#[test]
fn invalid_subnet_configs_are_errors() {
    let net = seeded_w10();
    let device = Device::flex();
    let x = Tensor::<4>::zeros([1, 3, 64, 64], &device);
    let mut bad = probe_subnet();
    bad.e[3] = 5;
    let err = net.forward(x.clone(), &bad).unwrap_err();
    assert!(matches!(err, Error::InvalidValue { ref field, .. } if field == "e[3]"), "{err}");
    let x4 = Tensor::<4>::zeros([1, 4, 64, 64], &device);
    assert!(net.forward(x4, &probe_subnet()).unwrap_err().to_string().contains("4 channels"));
}
