//! A family file (RON) and its levels checked against the supernet; the first byte picks
//! between the family text and its per-level weights file (`.levels.pth`).
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use dynofa_slice::family::check_levels;
use dynofa_slice::family_file::{load_family_file, FamilyFile};
use dynofa_slice::Placement;
use dynofa_supernet::{Supernet, SupernetConfig, Width};

fn supernet() -> &'static Supernet {
    static NET: OnceLock<Supernet> = OnceLock::new();
    NET.get_or_init(|| SupernetConfig::ofa_mbv3(Width::W12).init(&burn::prelude::Device::flex()))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    if which % 2 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else { return };
        if let Ok(file) = FamilyFile::parse(text, Path::new("fuzz.ron")) {
            let _ = check_levels(&SupernetConfig::ofa_mbv3(file.width), &file.configs());
        }
    } else {
        // One calibrated level; its BatchNorm weights are the fuzzed bytes.
        let dir = tempfile::tempdir().unwrap();
        let family = dir.path().join("fuzz.ron");
        let net = supernet();
        let mut file = FamilyFile::describe(net, &[net.config.smallest(128)]).unwrap();
        file.levels[0].calibrated = true;
        std::fs::write(dir.path().join("fuzz.levels.pth"), rest).unwrap();
        let _ = load_family_file(file, &family, net, &Placement::Cpu { threads: 1 });
    }
});
