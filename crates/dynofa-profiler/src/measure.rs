//! Building look-up tables on this machine, for the path the runtime runs: a loaded
//! family's forward (the CPU store on some threads, or a GPU), timed layer by layer in
//! place (not layers run in isolation; on a GPU each layer ends with the device
//! synchronised), one table per resolution, per processor and thread count.
//!
//! Every layer key of a resolution appears in one of nine sub-networks — full depth, one
//! kernel size and one expand ratio everywhere — so those nine are run (after warm-up)
//! and each key's samples are pooled over every occurrence. A table is written as soon
//! as its resolution is done (temp file, then rename), so an interrupted build resumes.

use std::collections::BTreeMap;
use std::path::Path;

use dynofa_slice::Placement;
use dynofa_supernet::arch::{BLOCKS_PER_STAGE, SLOTS, STAGES};
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{SubnetConfig, Supernet, SupernetConfig};

use crate::error::{Error, Result};
use crate::keys::{all_layer_keys, layer_keys};
use crate::table::{Entry, LatencyTables, Table};

/// What to time.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Resolutions to build tables for.
    pub resolutions: Vec<usize>,
    /// Where the sub-networks run: the CPU on some threads, or a GPU.
    pub placement: Placement,
    /// Timed forwards per covering sub-network (after two warm-up ones).
    pub iters: usize,
}

/// Reports progress: `(done, total, what is running)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// Sub-networks that together hold every layer key at resolution `r`: full depth, one
/// (kernel size, expand ratio) pair everywhere.
pub fn covering_subnets(config: &SupernetConfig, r: usize) -> Vec<SubnetConfig> {
    let depth = config.depths.iter().copied().max().unwrap_or(BLOCKS_PER_STAGE);
    config
        .kernel_sizes
        .iter()
        .flat_map(|&k| config.expand_ratios.iter().map(move |&e| (k, e)))
        .map(|(k, e)| SubnetConfig { ks: vec![k; SLOTS], e: vec![e; SLOTS], d: vec![depth; STAGES], r: vec![r] })
        .collect()
}

/// A deterministic test image `[1, 3, r, r]` (timings do not depend on the values).
pub fn test_image(r: usize) -> Array {
    Array { shape: vec![1, 3, r, r], data: (0..3 * r * r).map(|i| ((i % 251) as f32 - 125.0) / 60.0).collect() }
}

/// `(count, mean, population std)` of samples.
fn entry(samples: &[f64]) -> Entry {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Entry { count: samples.len() as u64, mean, std: var.sqrt() }
}

/// Whether `dir` already holds a complete table for `r` (so a resumed build skips it).
fn complete(config: &SupernetConfig, dir: &Path, r: usize) -> bool {
    let path = dir.join(format!("{r}_lookup_table.json"));
    let Ok(table) = Table::read(&path) else { return false };
    all_layer_keys(config, r).iter().all(|k| table.entries.contains_key(&k.to_string()))
}

/// Writes `table` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_table(path: &Path, entries: &BTreeMap<String, Entry>) -> Result<()> {
    let json = serde_json::to_string_pretty(entries).map_err(|e| Error::Invalid { field: "table".into(), message: e.to_string() })?;
    write_atomically(path, json.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file and a rename (the supernet crate's
/// atomic writer, which also keeps the file's permissions usual).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(dynofa_supernet::tensor_io::write_atomically(path, |f| std::io::Write::write_all(f, bytes))?)
}

/// Builds (or completes) the tables of `options.resolutions` in `dir` for `supernet` on
/// this machine, and returns every table in `dir`.
pub fn build_tables(supernet: &Supernet, dir: &Path, options: &BuildOptions, progress: Progress) -> Result<LatencyTables> {
    let config = &supernet.config;
    if matches!(options.placement, Placement::Cpu { threads: 0 }) || options.iters == 0 {
        return Err(Error::Invalid { field: "threads/iters".into(), message: "must be positive".into() });
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), cause: source })?;
    let todo: Vec<usize> = options.resolutions.iter().copied().filter(|&r| !complete(config, dir, r)).collect();
    let total: usize = todo.iter().map(|&r| covering_subnets(config, r).len()).sum();
    let mut done = 0;
    for &r in &todo {
        // One resolution's sub-networks loaded at a time (on a GPU each is a network of its own).
        let levels = covering_subnets(config, r);
        let mut family = options.placement.load(supernet, &levels, &[])?;
        let image = test_image(r);
        let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (level, subnet) in levels.iter().enumerate() {
            progress(done, total, &format!("r{r} ks{} e{}", subnet.ks[0], subnet.e[0]));
            family.switch_to(level)?;
            let keys = layer_keys(config, subnet);
            for run in family.layer_times(&image, options.iters)? {
                debug_assert_eq!(run.len(), keys.len());
                for (key, ms) in keys.iter().zip(run) {
                    samples.entry(key.to_string()).or_default().push(ms);
                }
            }
            done += 1;
        }
        let entries = samples.iter().map(|(k, v)| (k.clone(), entry(v))).collect();
        write_table(&dir.join(format!("{r}_lookup_table.json")), &entries)?;
    }
    if total > 0 {
        progress(total, total, "done");
    }
    LatencyTables::open(dir)
}
