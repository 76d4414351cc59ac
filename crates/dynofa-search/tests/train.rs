//! Training a predictor on data whose true function is known; saving it in the official
//! layout; reading CSV with errors that name the line.

use dynofa_profiler::validate::random_subnets;
use dynofa_search::AccuracyPredictor;
use dynofa_search::train::{TrainOptions, read_csv, train};
use dynofa_supernet::{SubnetConfig, SupernetConfig, Width};

/// A known accuracy: a baseline plus a bonus per active block for larger kernels and
/// expand ratios, and per resolution step.
fn truth(s: &SubnetConfig) -> f64 {
    let blocks: f64 = s
        .active_slots()
        .map(|i| 0.002 * [3, 5, 7].iter().position(|&k| k == s.ks[i]).unwrap() as f64 + 0.0015 * [3, 4, 6].iter().position(|&e| e == s.e[i]).unwrap() as f64)
        .sum();
    0.65 + blocks + 0.004 * ((s.resolution() - 112) / 16) as f64
}

#[test]
fn a_trained_predictor_learns_a_known_function_and_round_trips_through_its_file() {
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let subnets = random_subnets(&config, &[160, 176, 192, 208, 224], 1500, 11);
    let samples: Vec<(SubnetConfig, f64)> = subnets
        .into_iter()
        .map(|s| {
            let a = truth(&s);
            (s, a)
        })
        .collect();
    let options = TrainOptions { epochs: 25, batch: 64, ..TrainOptions::default() };
    let (predictor, report) = train(&samples, options, &mut |_, _| {}).unwrap();
    eprintln!("{report:?}");
    assert_eq!(report.held_out, 300);
    assert!(report.held_out_rmse < report.held_out_rmse_of_mean / 5.0, "{report:?}");
    assert!(report.held_out_mae < 0.004, "{report:?}");
    // Saved in the official layout, it loads like the official file and predicts the same.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trained.pth");
    predictor.save(&path).unwrap();
    let loaded = AccuracyPredictor::load(&path).unwrap();
    for (s, _) in samples.iter().take(20) {
        assert!((loaded.predict(s) - predictor.predict(s)).abs() < 1e-6);
    }
}

#[test]
fn csv_rows_parse_and_bad_rows_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    let ks = vec!["3"; 20].join(" ");
    let e = vec!["4"; 20].join(" ");
    std::fs::write(&good, format!("ks,e,d,r,acc\n{ks},{e},2 2 2 2 2,160,76.5\n{ks},{e},4 4 4 4 4,224,0.8\n")).unwrap();
    let rows = read_csv(&good).unwrap();
    assert_eq!(rows.len(), 2);
    assert!((rows[0].1 - 0.765).abs() < 1e-12 && rows[1].0.d == vec![4; 5]);
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("ks,e,d,r,acc\n{ks},{e},2 2 2 2 2,160,0.7\n{ks},{e},2 x 2 2 2,160,0.7\n")).unwrap();
    let err = read_csv(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.csv:3") && err.contains("'x'"), "{err}");
    let few = train(&rows, TrainOptions::default(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(&few, dynofa_search::Error::InvalidValue { field, value, .. } if field == "training samples" && value == "2"),
        "two samples are too few: {few}"
    );
}
