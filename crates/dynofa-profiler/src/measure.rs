//! Building look-up tables on this machine, for the path the runtime runs: a loaded
//! family's forward (the CPU store on some threads, or a GPU), timed layer by layer in
//! place (not layers run in isolation: the fast path's fused depthwise and projection, its
//! squeeze-and-excitation gating and its batch-1 products are timed as they run; on a GPU
//! each layer ends with the device synchronised), one table per resolution, per processor
//! and thread count.
//!
//! Every layer key of a resolution appears in one of nine sub-networks — full depth, one
//! kernel size and one expand ratio everywhere — so those nine are timed and each key's
//! samples are pooled over every occurrence. Everything (each covering sub-network per
//! resolution and thread count, the validation networks, the whole covering networks that
//! measure the tables' additivity) is timed in interleaved rounds beside a canary
//! ([`crate::rounds`]), so a slow phase of the machine cannot bias one table. On a GPU,
//! where each level is a network of its own, items are timed in groups of at most
//! [`GPU_GROUP_LEVELS`] networks.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use dynofa_slice::{LoadedFamily, Placement};
use dynofa_supernet::arch::{BLOCKS_PER_STAGE, SLOTS, STAGES};
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{SubnetConfig, Supernet, SupernetConfig};

use crate::error::{Error, Result};
use crate::keys::{all_layer_keys, layer_keys};
use crate::noise::{Counters, FrequencyLog, NoiseReport, Uncertain};
use crate::rounds::{Bench, CanaryStats, RoundOptions, Stop, run_rounds};
use crate::table::{Entry, Table};

/// Networks loaded at once on a GPU (the canary and nine covering sub-networks).
pub const GPU_GROUP_LEVELS: usize = 10;

/// The canary's resolution: the smallest sub-network there runs about a tenth of a
/// typical table item.
pub const CANARY_RESOLUTION: usize = 128;

/// What to measure, and how.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// Resolutions to build tables for.
    pub resolutions: Vec<usize>,
    /// Thread counts, one table set each (`[1]` on a GPU).
    pub threads: Vec<usize>,
    /// The processor: the CPU (with at least the most threads of [`Self::threads`]) or a GPU.
    pub placement: Placement,
    /// Sub-networks measured whole (e.g. random ones that validate the tables, or a
    /// family's levels), on every thread count.
    pub whole: Vec<SubnetConfig>,
    /// Whether to measure the covering sub-networks of the middle resolution whole too,
    /// for the tables' additivity.
    pub additivity: bool,
    /// Untimed forwards of an item just before its timed one (so it runs with the warm
    /// caches it has at run time, frame after frame).
    pub warm_forwards: usize,
    /// Rounds, budget and stop rule.
    pub rounds: RoundOptions,
}

/// A network measured whole: its canary-relative estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The sub-network.
    pub subnet: SubnetConfig,
    /// Estimated latency, ms.
    pub ms: f64,
    /// Half-width of its 95% confidence interval, as a share of it.
    pub ci: f64,
}

/// What was measured for one thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadsProfile {
    /// The thread count (1 on a GPU).
    pub threads: usize,
    /// Resolution → layer key → entry, for the tables that were not complete already.
    pub tables: BTreeMap<usize, BTreeMap<String, Entry>>,
    /// The networks measured whole, in the order of [`ProfileOptions::whole`].
    pub whole: Vec<Measured>,
    /// The covering sub-networks of the middle resolution, whole.
    pub additivity: Vec<Measured>,
    /// This thread count's canary (the first group's, on a GPU).
    pub canary: Option<CanaryStats>,
}

/// What a profile measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// By thread count, in the order of [`ProfileOptions::threads`].
    pub threads: Vec<ThreadsProfile>,
    /// How noisy the machine was.
    pub noise: NoiseReport,
    /// Seconds the measurement took.
    pub seconds: f64,
}

/// Reports progress: `(round, maximum rounds, what is running)`.
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

/// The canary: the smallest sub-network at [`CANARY_RESOLUTION`].
pub fn canary_subnet(config: &SupernetConfig) -> SubnetConfig {
    let min = |v: &[usize]| v.iter().copied().min().unwrap_or(1);
    SubnetConfig {
        ks: vec![min(&config.kernel_sizes); SLOTS],
        e: vec![min(&config.expand_ratios); SLOTS],
        d: vec![min(&config.depths); STAGES],
        r: vec![CANARY_RESOLUTION],
    }
}

/// A deterministic test image `[1, 3, r, r]` (timings do not depend on the values).
pub fn test_image(r: usize) -> Array {
    Array::benchmark_input(1, r)
}

/// Whether `dir` already holds a complete table for `r` (so a resumed profile skips it).
pub fn complete(config: &SupernetConfig, dir: &Path, r: usize) -> bool {
    let path = dir.join(format!("{r}_lookup_table.json"));
    let Ok(table) = Table::read(&path) else { return false };
    all_layer_keys(config, r).iter().all(|k| table.entries.contains_key(&k.to_string()))
}

/// Writes `table` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_table(path: &Path, entries: &BTreeMap<String, Entry>) -> Result<()> {
    let json = serde_json::to_string_pretty(entries).map_err(|e| Error::InvalidValue {
        field: "table".into(),
        value: e.to_string(),
        expected: "a JSON-serialisable table".into(),
    })?;
    write_atomically(path, json.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file and a rename (the supernet crate's
/// atomic writer, which also keeps the file's permissions usual).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(dynofa_supernet::files::write_atomically(path, |f| std::io::Write::write_all(f, bytes))?)
}

/// What an item is for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Purpose {
    /// A covering sub-network timed layer by layer for the table of `r`.
    Table { r: usize },
    /// [`ProfileOptions::whole`]`[i]`.
    Whole(usize),
    /// A covering sub-network of the middle resolution, whole.
    Additivity,
}

/// One thing to time: a sub-network on some threads, layer by layer or whole.
#[derive(Debug, Clone)]
struct Item {
    subnet: SubnetConfig,
    threads: usize,
    purpose: Purpose,
}

impl Item {
    /// How reports name it.
    fn name(&self) -> String {
        let what = match self.purpose {
            Purpose::Table { .. } => format!("layers of ks{} e{}", self.subnet.ks[0], self.subnet.e[0]),
            Purpose::Whole(i) => format!("whole network {i}"),
            Purpose::Additivity => format!("whole covering ks{} e{}", self.subnet.ks[0], self.subnet.e[0]),
        };
        format!("threads {}, r{}, {what}", self.threads, self.subnet.resolution())
    }
}

/// The items of a profile: per thread count, the covering sub-networks of every
/// resolution `skip` does not exclude (and the whole ones of the middle resolution), then
/// the networks measured whole.
fn plan(config: &SupernetConfig, options: &ProfileOptions, skip: &dyn Fn(usize, usize) -> bool) -> Vec<Item> {
    let middle = options.resolutions.get(options.resolutions.len() / 2).copied();
    let mut items = Vec::new();
    for &threads in &options.threads {
        for &r in &options.resolutions {
            if skip(threads, r) {
                continue;
            }
            let covering = covering_subnets(config, r);
            items.extend(covering.iter().map(|subnet| Item { subnet: subnet.clone(), threads, purpose: Purpose::Table { r } }));
            if options.additivity && Some(r) == middle {
                items.extend(covering.into_iter().map(|subnet| Item { subnet, threads, purpose: Purpose::Additivity }));
            }
        }
        items.extend(options.whole.iter().enumerate().map(|(i, subnet)| Item { subnet: subnet.clone(), threads, purpose: Purpose::Whole(i) }));
    }
    items
}

/// Splits `items` into groups holding at most `max_levels` distinct sub-networks each
/// (the canary included), in order.
fn groups(items: Vec<Item>, max_levels: Option<usize>) -> Vec<Vec<Item>> {
    let Some(max) = max_levels else { return vec![items] };
    let mut groups: Vec<Vec<Item>> = Vec::new();
    let mut distinct: Vec<SubnetConfig> = Vec::new();
    for item in items {
        if !distinct.contains(&item.subnet) {
            if distinct.len() + 1 >= max || groups.is_empty() {
                groups.push(Vec::new());
                distinct.clear();
            }
            distinct.push(item.subnet.clone());
        }
        groups.last_mut().expect("a group was opened").push(item);
    }
    groups
}

/// A loaded family timing a group's items: level 0 is the canary, one canary per thread
/// count.
struct FamilyBench<'a> {
    family: Box<dyn LoadedFamily>,
    items: &'a [Item],
    /// Each item's level.
    levels: Vec<usize>,
    /// The thread counts of the items, in order: canary `c` runs on `threads[c]`.
    threads: Vec<usize>,
    images: BTreeMap<usize, Array>,
    warm_forwards: usize,
    start: Instant,
}

impl<'a> FamilyBench<'a> {
    fn load(supernet: &Supernet, placement: &Placement, items: &'a [Item], warm_forwards: usize, start: Instant) -> Result<Self> {
        let mut subnets = vec![canary_subnet(&supernet.config)];
        let levels = items
            .iter()
            .map(|item| match subnets.iter().position(|s| *s == item.subnet) {
                Some(level) => level,
                None => {
                    subnets.push(item.subnet.clone());
                    subnets.len() - 1
                }
            })
            .collect();
        let mut threads: Vec<usize> = items.iter().map(|i| i.threads).collect();
        threads.sort_unstable();
        threads.dedup();
        let images = subnets.iter().map(|s| (s.resolution(), test_image(s.resolution()))).collect();
        Ok(FamilyBench { family: placement.load(supernet, &subnets, &[])?, items, levels, threads, images, warm_forwards, start })
    }

    /// Makes `level` active on `threads` and runs `warm` untimed forwards; returns the
    /// family and the level's image (borrowed apart: nothing is copied before a timing).
    fn prepare(&mut self, level: usize, threads: usize, warm: usize) -> Result<(&mut dyn LoadedFamily, &Array)> {
        self.family.switch_to(level)?;
        self.family.set_threads(threads)?;
        let image = &self.images[&self.family.level_config(level).resolution()];
        for _ in 0..warm {
            self.family.forward(image)?;
        }
        Ok((self.family.as_mut(), image))
    }
}

impl Bench for FamilyBench<'_> {
    fn items(&self) -> usize {
        self.items.len()
    }

    fn canary_of(&self, item: usize) -> usize {
        self.threads.iter().position(|&t| t == self.items[item].threads).expect("listed")
    }

    fn time_item(&mut self, item: usize) -> Result<Vec<f64>> {
        let (level, threads, purpose) = (self.levels[item], self.items[item].threads, self.items[item].purpose);
        let (family, image) = self.prepare(level, threads, self.warm_forwards)?;
        match purpose {
            Purpose::Table { .. } => Ok(family.layer_times(image, 0, 1)?.swap_remove(0)),
            Purpose::Whole(_) | Purpose::Additivity => Ok(vec![family.median_forward_ms(image, 0, 1)?]),
        }
    }

    fn time_canary(&mut self, canary: usize) -> Result<f64> {
        let threads = self.threads[canary];
        let (family, image) = self.prepare(0, threads, 0)?;
        Ok(family.median_forward_ms(image, 0, 1)?)
    }

    fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// Measures the tables (those `skip(threads, r)` does not exclude), the networks measured
/// whole and the additivity networks of `options` for `supernet` on this machine.
pub fn measure(supernet: &Supernet, options: &ProfileOptions, skip: &dyn Fn(usize, usize) -> bool, progress: Progress) -> Result<Profile> {
    options.rounds.check()?;
    if options.threads.is_empty() || options.threads.contains(&0) {
        return Err(Error::InvalidValue {
            field: "threads".into(),
            value: format!("{:?}", options.threads),
            expected: "at least one thread count, each positive".into(),
        });
    }
    let config = &supernet.config;
    let start = Instant::now();
    let counters = Counters::read();
    let mut frequencies = FrequencyLog::default();
    frequencies.sample();
    let max_levels = matches!(options.placement, Placement::Gpu(_)).then_some(GPU_GROUP_LEVELS);
    let groups = groups(plan(config, options, skip), max_levels);
    let mut profiles: Vec<ThreadsProfile> = options
        .threads
        .iter()
        .map(|&threads| ThreadsProfile { threads, tables: BTreeMap::new(), whole: Vec::new(), additivity: Vec::new(), canary: None })
        .collect();
    let mut samples: BTreeMap<(usize, usize, String), Vec<f64>> = BTreeMap::new();
    let (mut rounds, mut stop, mut canaries, mut uncertain) = (0, Stop::Settled, Vec::new(), Vec::new());
    for (g, group) in groups.iter().enumerate() {
        // Each group gets an even share of what the earlier groups left of the budget.
        let now = start.elapsed().as_secs_f64();
        let budget_s = (options.rounds.budget_s - now).max(0.0) / (groups.len() - g) as f64 + now;
        let group_options = RoundOptions { budget_s: budget_s.max(f64::MIN_POSITIVE), seed: options.rounds.seed.wrapping_add(g as u64), ..options.rounds };
        let mut bench = FamilyBench::load(supernet, &options.placement, group, options.warm_forwards, start)?;
        let what = if groups.len() > 1 { format!("group {}/{}: ", g + 1, groups.len()) } else { String::new() };
        let max_rounds = options.rounds.max_rounds;
        let outcome = run_rounds(
            &mut bench,
            &group_options,
            &mut |round, left, n| progress(round, max_rounds, &format!("{what}{left} of {n} items unsettled")),
            &mut || frequencies.sample(),
        )?;
        rounds = rounds.max(outcome.rounds);
        stop = match (stop, outcome.stop) {
            (Stop::Budget, _) | (_, Stop::Budget) => Stop::Budget,
            (Stop::MaxRounds, _) | (_, Stop::MaxRounds) => Stop::MaxRounds,
            _ => Stop::Settled,
        };
        uncertain.extend(
            outcome.uncertain.iter().map(|&i| Uncertain { item: group[i].name(), ci_pct: Some(100.0 * outcome.estimates[i].ci).filter(|ci| ci.is_finite()) }),
        );
        for (c, &threads) in bench.threads.iter().enumerate() {
            let profile = profiles.iter_mut().find(|p| p.threads == threads).expect("planned");
            profile.canary.get_or_insert(outcome.canaries[c]);
        }
        canaries.extend(outcome.canaries.iter().copied());
        for (i, item) in group.iter().enumerate() {
            let profile = profiles.iter_mut().find(|p| p.threads == item.threads).expect("planned");
            let estimate = &outcome.estimates[i];
            let measured = Measured { subnet: item.subnet.clone(), ms: estimate.total_ms, ci: estimate.ci };
            match item.purpose {
                Purpose::Table { r } => {
                    let keys = layer_keys(config, &item.subnet);
                    for run in &outcome.used_samples[i] {
                        if run.len() != keys.len() {
                            return Err(Error::InvalidValue {
                                field: format!("layer times of {}", item.name()),
                                value: format!("{} layers timed", run.len()),
                                expected: format!("one per key, {}", keys.len()),
                            });
                        }
                        for (key, ms) in keys.iter().zip(run) {
                            samples.entry((item.threads, r, key.to_string())).or_default().push(*ms);
                        }
                    }
                }
                Purpose::Whole(_) => profile.whole.push(measured),
                Purpose::Additivity => profile.additivity.push(measured),
            }
        }
    }
    for ((threads, r, key), values) in samples {
        let profile = profiles.iter_mut().find(|p| p.threads == threads).expect("planned");
        profile.tables.entry(r).or_default().insert(key, entry(&values));
    }
    frequencies.sample();
    let noise = NoiseReport::new(rounds, stop, &canaries, counters.steal_pct(&Counters::read()), &frequencies, uncertain);
    Ok(Profile { threads: profiles, noise, seconds: start.elapsed().as_secs_f64() })
}

/// A table entry from canary-relative samples: their count, their median (the estimate;
/// `mean` is the field's name in the published formats) and their standard deviation.
fn entry(samples: &[f64]) -> Entry {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Entry { count: samples.len() as u64, mean: crate::rounds::median(samples), std: var.sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynofa_supernet::Width;

    #[test]
    fn the_plan_covers_every_thread_count_and_gpu_groups_hold_at_most_ten_networks() {
        let config = SupernetConfig::ofa_mbv3(Width::W12);
        let whole = crate::validate::random_subnets(&config, &[160, 192], 5, 0);
        let options = ProfileOptions {
            resolutions: vec![160, 176, 192],
            threads: vec![1, 2],
            placement: Placement::Cpu { threads: 2 },
            whole: whole.clone(),
            additivity: true,
            warm_forwards: 0,
            rounds: RoundOptions::default(),
        };
        // Per thread count: 3 × 9 covering, 9 whole covering of the middle resolution, 5 whole.
        let items = plan(&config, &options, &|t, r| t == 2 && r == 160);
        let count = |t: usize, p: fn(&Purpose) -> bool| items.iter().filter(|i| i.threads == t && p(&i.purpose)).count();
        assert_eq!(count(1, |p| matches!(p, Purpose::Table { .. })), 27);
        assert_eq!(count(2, |p| matches!(p, Purpose::Table { .. })), 18, "the complete table is skipped");
        assert_eq!(count(1, |p| *p == Purpose::Additivity), 9);
        assert!(items.iter().filter(|i| i.purpose == Purpose::Additivity).all(|i| i.subnet.resolution() == 176));
        assert_eq!(count(2, |p| matches!(p, Purpose::Whole(_))), 5);

        assert_eq!(groups(items.clone(), None).len(), 1);
        let gpu = groups(items.clone(), Some(GPU_GROUP_LEVELS));
        assert_eq!(gpu.iter().map(Vec::len).sum::<usize>(), items.len());
        for group in &gpu {
            let mut distinct: Vec<&SubnetConfig> = group.iter().map(|i| &i.subnet).collect();
            distinct.dedup();
            distinct.sort_by_key(|s| s.to_json());
            distinct.dedup();
            assert!(distinct.len() < GPU_GROUP_LEVELS, "{} networks and the canary", distinct.len());
        }
    }

    #[test]
    fn a_table_read_back_holds_the_very_figures_written() {
        // Means and deviations as a profile makes them (ms, every bit significant); serde_json's
        // default parser is an ulp off for about one such value in seven.
        let mut seed = 88_172_645_463_325_252u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            1.3 * (1.0 + (seed % 1_000_000) as f64 / 1e5)
        };
        let entries: BTreeMap<String, Entry> = (0..200).map(|i| (format!("layer {i}"), Entry { count: 50, mean: next(), std: next() / 10.0 })).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("160_lookup_table.json");
        write_table(&path, &entries).unwrap();
        let read = Table::read(&path).unwrap().entries;
        for (key, entry) in &entries {
            let back = read[key];
            assert_eq!((back.mean.to_bits(), back.std.to_bits()), (entry.mean.to_bits(), entry.std.to_bits()), "{key}: {back:?} against {entry:?}");
        }
    }
}
