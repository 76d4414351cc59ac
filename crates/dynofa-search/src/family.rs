//! Choosing a family's levels on a Pareto front.

use crate::nsga2::Evaluated;

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
