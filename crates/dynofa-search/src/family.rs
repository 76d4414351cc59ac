//! Choosing a family's levels on a Pareto front, and the family file that records them.

use std::collections::BTreeMap;

use dynofa_device::Processor;
use dynofa_slice::family_file::{FORMAT_VERSION, FamilyFile, LevelInfo};
use dynofa_supernet::SubnetConfig;

use crate::cost::{Cost, LutLatency};
use crate::error::Result;
use crate::nsga2::{Evaluated, Nsga2Options};
use crate::space::SearchSpace;

/// Where a family's levels go on a front.
#[derive(Debug, Clone, Copy)]
pub enum Pick<'a> {
    /// This many, evenly spaced in cost ([`evenly_spaced`]).
    Evenly(usize),
    /// One per cost target, e.g. latency budgets in ms ([`at_targets`]).
    Targets(&'a [f64]),
}

impl Pick<'_> {
    /// The members of `front` (sorted by increasing cost) this pick takes, cheapest first.
    pub fn on<G: Clone + PartialEq>(self, front: &[Evaluated<G>]) -> Vec<Evaluated<G>> {
        match self {
            Pick::Evenly(levels) => evenly_spaced(front, levels),
            Pick::Targets(targets) => at_targets(front, targets),
        }
    }
}

/// The family file of `chosen` (cheapest first), found in `space` by NSGA-II with
/// `options` for `device`: per level its parameter and MFLOP counts, predicted accuracy
/// and latency per table of `tables` (named as the table is); metadata `objective` (the
/// cost minimised) and `search` (how).
pub fn family_file(
    space: &SearchSpace,
    chosen: &[Evaluated<SubnetConfig>],
    cost: &dyn Cost,
    tables: &[LutLatency],
    options: &Nsga2Options,
    device: Processor,
) -> Result<FamilyFile> {
    let config = &space.config;
    let mut levels = Vec::with_capacity(chosen.len());
    for e in chosen {
        let counts = config.counts(&e.genome)?;
        let latency_ms = tables.iter().map(|t| Ok((t.name.clone(), t.cost(&e.genome)?))).collect::<Result<BTreeMap<_, _>>>()?;
        levels.push(LevelInfo {
            config: e.genome.clone(),
            params: counts.params,
            mflops: counts.mflops,
            acc_pred: Some(e.objectives.acc),
            latency_ms,
            calibrated: false,
        });
    }
    let search = format!(
        "NSGA-II population {} generations {} polish {} seed {}; resolutions {:?}",
        options.population, options.generations, options.polish_rounds, options.seed, space.resolutions
    );
    let metadata = BTreeMap::from([("objective".to_string(), cost.name()), ("search".to_string(), search)]);
    let width = config.width;
    Ok(FamilyFile { format: FORMAT_VERSION, width, device, supernet: Some(format!("ofa_mbv3_d234_e346_k357_w{width}")), metadata, levels })
}

/// `k` members of `front` (sorted by increasing cost) at costs evenly spaced between its
/// cheapest and its dearest member: for each target, the most accurate member costing at
/// most the target. Smallest first, no repeats (fewer than `k` when the front is short).
pub fn evenly_spaced<G: Clone + PartialEq>(front: &[Evaluated<G>], k: usize) -> Vec<Evaluated<G>> {
    let (Some(first), Some(last)) = (front.first(), front.last()) else { return Vec::new() };
    let (lo, hi) = (first.objectives.cost, last.objectives.cost);
    let targets: Vec<f64> = (0..k).map(|i| if k == 1 { hi } else { lo + (hi - lo) * i as f64 / (k - 1) as f64 }).collect();
    at_targets(front, &targets)
}

/// For each cost target (ascending), the most accurate member of `front` (sorted by
/// increasing cost) costing at most the target — the cheapest member when none does.
/// No repeats.
pub fn at_targets<G: Clone + PartialEq>(front: &[Evaluated<G>], targets: &[f64]) -> Vec<Evaluated<G>> {
    let Some(first) = front.first() else { return Vec::new() };
    let mut targets = targets.to_vec();
    targets.sort_by(f64::total_cmp);
    let mut chosen: Vec<Evaluated<G>> = Vec::new();
    for target in targets {
        // On a front sorted by cost, accuracy rises with cost: the last one within the target.
        let pick = front.iter().rev().find(|e| e.objectives.cost <= target + 1e-12).unwrap_or(first);
        if chosen.last() != Some(pick) {
            chosen.push(pick.clone());
        }
    }
    chosen
}
