//! OFA's constrained evolutionary search (`EvolutionFinder.run_evolution_search`): the
//! most accurate sub-network whose cost stays within a limit. Same algorithm and defaults;
//! where OFA samples forever when the limit cannot be met, this stops with an error.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use dynofa_supernet::SubnetConfig;

use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::predictor::AccuracyPredictor;
use crate::space::SearchSpace;

/// OFA's settings (its defaults in [`Default`]).
#[derive(Debug, Clone, Copy)]
pub struct EvolutionOptions {
    /// Population size (100).
    pub population: usize,
    /// Generations (500, OFA's `max_time_budget`).
    pub generations: usize,
    /// Share of the population kept as parents (0.25).
    pub parent_ratio: f64,
    /// Share of children made by mutation, the rest by crossover (0.5).
    pub mutation_ratio: f64,
    /// Seed.
    pub seed: u64,
    /// Draws allowed to find one sub-network within the limit before giving up.
    pub max_tries: usize,
}

impl Default for EvolutionOptions {
    fn default() -> Self {
        EvolutionOptions { population: 100, generations: 500, parent_ratio: 0.25, mutation_ratio: 0.5, seed: 0, max_tries: 10_000 }
    }
}

/// The best sub-network found, its predicted accuracy and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Best {
    /// The sub-network.
    pub subnet: SubnetConfig,
    /// Predicted accuracy (fraction).
    pub acc: f64,
    /// Its cost.
    pub cost: f64,
}

/// Draws from `draw` until a sub-network costs at most `limit`.
fn within(cost: &dyn Cost, limit: f64, max_tries: usize, mut draw: impl FnMut() -> SubnetConfig) -> Result<(SubnetConfig, f64)> {
    let mut cheapest = f64::INFINITY;
    for _ in 0..max_tries.max(1) {
        let subnet = draw();
        let c = cost.cost(&subnet)?;
        if c <= limit {
            return Ok((subnet, c));
        }
        cheapest = cheapest.min(c);
    }
    Err(Error::Infeasible { name: cost.name(), limit, tried: max_tries.max(1), cheapest })
}

/// The most accurate sub-network with `cost ≤ limit`; `progress(generation, total)`.
pub fn evolve(
    space: &SearchSpace,
    predictor: &AccuracyPredictor,
    cost: &dyn Cost,
    limit: f64,
    options: EvolutionOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Best> {
    let n = options.population.max(2);
    let parents = ((options.parent_ratio * n as f64).round() as usize).clamp(1, n);
    let mutations = ((options.mutation_ratio * n as f64).round() as usize).min(n);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let score = |children: Vec<(SubnetConfig, f64)>| -> Vec<Best> {
        children.into_par_iter().map(|(subnet, cost)| Best { acc: predictor.predict(&subnet), subnet, cost }).collect()
    };
    let mut children = Vec::with_capacity(n);
    for _ in 0..n {
        children.push(within(cost, limit, options.max_tries, || space.random(&mut rng))?);
    }
    let mut population = score(children);
    let mut best: Option<Best> = None;
    for generation in 0..options.generations {
        population.sort_by(|a, b| b.acc.total_cmp(&a.acc));
        population.truncate(parents);
        if best.as_ref().is_none_or(|b| population[0].acc > b.acc) {
            best = Some(population[0].clone());
        }
        let mut children = Vec::with_capacity(n);
        for _ in 0..mutations {
            let parent = &population[rng.random_range(0..parents)].subnet;
            children.push(within(cost, limit, options.max_tries, || space.mutate(parent, &mut rng))?);
        }
        for _ in mutations..n {
            let (a, b) = (rng.random_range(0..parents), rng.random_range(0..parents));
            let (a, b) = (&population[a].subnet, &population[b].subnet);
            children.push(within(cost, limit, options.max_tries, || space.crossover(a, b, &mut rng))?);
        }
        population.extend(score(children));
        progress(generation + 1, options.generations);
    }
    population.sort_by(|a, b| b.acc.total_cmp(&a.acc));
    Ok(match best {
        Some(b) if b.acc >= population[0].acc => b,
        _ => population[0].clone(),
    })
}
