//! The official accuracy predictor: every golden `acc_predictor` value, the encoding, and
//! errors for files that are not the predictor.

use dynofa_search::AccuracyPredictor;
use dynofa_supernet::SubnetConfig;
use dynofa_supernet::pth::{NamedTensor, write_state_dict};

fn official() -> std::path::PathBuf {
    dynofa_golden::dir().join("acc_predictor.pth")
}

#[test]
fn every_golden_accuracy_is_reproduced() {
    let predictor = AccuracyPredictor::load(&official()).expect("official predictor");
    let (cases, _) = dynofa_golden::cases();
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.acc_predictor.is_some()) {
        let want = case.acc_predictor.unwrap();
        let got = predictor.predict(&case.cfg);
        assert!((got - want).abs() <= 1e-5, "{}: {got} vs {want}", case.id);
        checked += 1;
    }
    assert!(checked >= 2, "golden cases with acc_predictor: {checked}");
}

#[test]
fn the_encoding_is_ofas_one_hot() {
    let subnet = SubnetConfig { ks: vec![7; 20], e: vec![4; 20], d: vec![2, 3, 4, 2, 3], r: vec![224] };
    let x = AccuracyPredictor::encode(&subnet);
    // 14 active slots → 14 kernel ones, 14 expand ones, 1 resolution one.
    assert_eq!(x.iter().filter(|&&v| v == 1.0).count(), 14 + 14 + 1);
    assert_eq!(x[2], 1.0); // slot 0, k = 7
    assert_eq!(x[60 + 1], 1.0); // slot 0, e = 4
    assert_eq!(x[2 * 3 + 2], 0.0); // slot 2 is beyond stage 0's depth 2
    assert_eq!(x[120 + 7], 1.0); // (224 − 112) / 16
}

#[test]
fn a_file_of_the_wrong_shape_or_keys_is_refused_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tensor = |name: &str, shape: Vec<usize>| NamedTensor { name: name.into(), data: vec![0.0; shape.iter().product()], shape };
    // 0.weight with 127 inputs instead of 128.
    let wrong = dir.path().join("wrong_shape.pth");
    let tensors = vec![
        tensor("0.weight", vec![400, 127]),
        tensor("0.bias", vec![400]),
        tensor("2.weight", vec![400, 400]),
        tensor("2.bias", vec![400]),
        tensor("4.weight", vec![400, 400]),
        tensor("4.bias", vec![400]),
        tensor("6.weight", vec![1, 400]),
        tensor("6.bias", vec![1]),
    ];
    write_state_dict(&wrong, &tensors, false).expect("write");
    let err = AccuracyPredictor::load(&wrong).expect_err("wrong shape").to_string();
    assert!(err.contains("0.weight") && err.contains("127") && err.contains("wrong_shape.pth"), "{err}");
    // A supernet checkpoint is not a predictor: its first key is named.
    let supernet = dynofa_golden::dir().join("ofa_mbv3_w10_seed1.pth");
    let err = AccuracyPredictor::load(&supernet).expect_err("not a predictor").to_string();
    assert!(err.contains("ofa_mbv3_w10_seed1.pth"), "{err}");
}
