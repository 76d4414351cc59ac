//! The GPU family `dynofa run` uses when it runs on a GPU and is given none: made on this
//! machine, once per adapter, and cached.
//!
//! A short GPU profile and a search: each of the embedded candidates (sub-networks along
//! OFA's accuracy–MFLOPs front, with the accuracy OFA's predictor gives them; see
//! `assets/README.md`) is timed end to end on the GPU, and the family is the accuracy–latency
//! Pareto front among them, [`LEVELS`] levels evenly spaced in latency. The file is
//! cached under the user's cache directory, keyed by adapter, driver and dynofa version;
//! delete it to measure again. (`dynofa profile --device gpu` and `dynofa search --device
//! gpu` make a family from per-layer tables and the whole search space instead.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::*;
use dynofa_device::{Adapter, Processor};
use dynofa_profiler::machine::utc_now;
use dynofa_search::cost::{Cost, MeasuredLatency};
use dynofa_search::family::evenly_spaced;
use dynofa_search::nsga2::{Evaluated, Objectives, pareto_front};
use dynofa_slice::Placement;
use dynofa_slice::family_file::{FamilyFile, LevelInfo};
use dynofa_supernet::{Supernet, Width};

/// Candidate sub-networks of the w1.2 supernet (a family file), embedded.
pub const CANDIDATES: &str = include_str!("../../../assets/families/candidates_w12.ron");
/// Name shown for them.
pub const CANDIDATES_NAME: &str = "assets/families/candidates_w12.ron (embedded)";
/// Levels of the family made.
pub const LEVELS: usize = 6;
/// Timed forwards per candidate (after one that compiles its kernels).
const ITERS: usize = 3;

/// Where the family for `adapter` is cached.
fn cached_path(dir: &Path, adapter: &Adapter) -> PathBuf {
    let key = format!("{}|{}|{}|{}|{}", adapter.name, adapter.driver, adapter.backend, env!("CARGO_PKG_VERSION"), CANDIDATES);
    // FNV-1a: a short, stable key for the file name.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let name: String = adapter.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let name = name.split('-').filter(|p| !p.is_empty()).take(4).collect::<Vec<_>>().join("-");
    dir.join("families").join(format!("gpu_w12_{name}_{hash:016x}.ron"))
}

/// The GPU family for `adapter` (opened as `device`): the cached one, or one made now
/// (and cached). Returns it with the path it is (or would be) cached at.
pub fn load_or_make(supernet: &Supernet, adapter: &Adapter, device: &Device, quiet: bool) -> Result<(FamilyFile, PathBuf)> {
    anyhow::ensure!(
        supernet.config.width == Width::W12,
        "no GPU family given, and the default one is made for the w1.2 supernet (these weights are w{}): give a GPU family with --family (`dynofa search --device gpu`)",
        supernet.config.width
    );
    let dir = dynofa_device::cache_dir().context("no cache directory (set DYNOFA_CACHE_DIR or HOME)")?;
    let path = cached_path(&dir, adapter);
    if path.is_file() {
        match FamilyFile::read(&path) {
            Ok(file) if file.device == Processor::Gpu => {
                eprintln!(
                    "no GPU family given: using the one made for {} on {} (cached: {}; delete it to measure again)",
                    adapter.id,
                    file.metadata.get("made").map_or("?", String::as_str),
                    path.display()
                );
                return Ok((file, path));
            }
            _ => eprintln!("{}: not a usable GPU family; making it again", path.display()),
        }
    }
    eprintln!("no GPU family given: making one for {} ({}) — each candidate timed on it once (cached for next time)", adapter.id, adapter.name);
    let start = Instant::now();
    let file = make(supernet, adapter, device, quiet)?;
    eprintln!("made the GPU family ({} levels) in {:.1} s", file.levels.len(), start.elapsed().as_secs_f64());
    let cached = std::fs::create_dir_all(path.parent().expect("a file in a directory")).map_err(anyhow::Error::from).and_then(|()| Ok(file.write(&path)?));
    match cached {
        Ok(()) => eprintln!("cached at {}", path.display()),
        Err(e) => eprintln!("warning: could not cache the GPU family at {}: {e:#}", path.display()),
    }
    Ok((file, path))
}

/// Times every candidate on the GPU and keeps the accuracy–latency front's levels.
fn make(supernet: &Supernet, adapter: &Adapter, device: &Device, quiet: bool) -> Result<FamilyFile> {
    let candidates = FamilyFile::parse(CANDIDATES, Path::new(CANDIDATES_NAME))?;
    let timing = MeasuredLatency::new(supernet.clone(), Placement::Gpu(device.clone()), ITERS);
    let bar = crate::progress::bar(candidates.levels.len() as u64, "GPU profile [{bar:30}] {pos}/{len} candidates, ETA {eta}", quiet);
    let mut measured = Vec::with_capacity(candidates.levels.len());
    for (i, level) in candidates.levels.iter().enumerate() {
        let ms = timing.cost(&level.config).with_context(|| format!("timing candidate {i} on {}", adapter.id))?;
        measured.push(Evaluated { genome: i, objectives: Objectives { acc: level.acc_pred.unwrap_or(0.0), cost: ms } });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let chosen = evenly_spaced(&pareto_front(&measured), LEVELS);
    let levels = chosen
        .iter()
        .map(|e| LevelInfo { latency_ms: BTreeMap::from([("gpu".to_string(), e.objectives.cost)]), calibrated: false, ..candidates.levels[e.genome].clone() })
        .collect();
    let metadata = BTreeMap::from([
        ("adapter".to_string(), adapter.describe()),
        ("made".to_string(), utc_now()),
        (
            "search".to_string(),
            format!(
                "{} candidates ({CANDIDATES_NAME}) timed end to end ({ITERS} forwards each, median); the accuracy–latency front, {LEVELS} levels evenly spaced",
                candidates.levels.len()
            ),
        ),
        ("predictor".to_string(), candidates.metadata.get("predictor").cloned().unwrap_or_default()),
    ]);
    Ok(FamilyFile { device: Processor::Gpu, metadata, levels, ..candidates })
}
