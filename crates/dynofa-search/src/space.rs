//! OFA's search space (kernel size and expand ratio per slot, depth per stage,
//! resolution) with OFA's mutation and crossover, scored by the accuracy predictor and
//! a [`Cost`].

use dynofa_supernet::arch::{SLOTS, STAGES};
use dynofa_supernet::{SubnetConfig, SupernetConfig};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::nsga2::{Objectives, Problem};
use crate::predictor::AccuracyPredictor;

/// Mutation probabilities (OFA's `EvolutionFinder` defaults: 0.1 per gene, 0.5 for the
/// resolution).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mutation {
    /// Probability of redrawing each kernel size, expand ratio and depth.
    pub probability: f64,
    /// Probability of redrawing the resolution.
    pub resolution_probability: f64,
}

impl Default for Mutation {
    fn default() -> Self {
        Mutation { probability: 0.1, resolution_probability: 0.5 }
    }
}

/// The choices a sub-network can make.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    /// The supernet's kernel sizes, expand ratios and depths.
    pub config: SupernetConfig,
    /// Resolutions to consider.
    pub resolutions: Vec<usize>,
    /// Mutation probabilities.
    pub mutation: Mutation,
}

fn pick(choices: &[usize], rng: &mut ChaCha8Rng) -> usize {
    choices[rng.random_range(0..choices.len())]
}

impl SearchSpace {
    /// A space over `config`'s choices at `resolutions`.
    pub fn new(config: SupernetConfig, resolutions: Vec<usize>) -> Result<Self> {
        if resolutions.is_empty() {
            return Err(Error::InvalidValue { field: "resolutions".into(), value: "none".into(), expected: "at least one".into() });
        }
        Ok(SearchSpace { config, resolutions, mutation: Mutation::default() })
    }

    /// A uniformly random sub-network.
    pub fn random(&self, rng: &mut ChaCha8Rng) -> SubnetConfig {
        let c = &self.config;
        SubnetConfig {
            ks: (0..SLOTS).map(|_| pick(&c.kernel_sizes, rng)).collect(),
            e: (0..SLOTS).map(|_| pick(&c.expand_ratios, rng)).collect(),
            d: (0..STAGES).map(|_| pick(&c.depths, rng)).collect(),
            r: vec![pick(&self.resolutions, rng)],
        }
    }

    /// OFA's mutation: each gene redrawn with its probability.
    pub fn mutate(&self, parent: &SubnetConfig, rng: &mut ChaCha8Rng) -> SubnetConfig {
        let (p, c) = (self.mutation.probability, &self.config);
        let mut child = parent.clone();
        for i in 0..SLOTS {
            if rng.random_bool(p) {
                child.ks[i] = pick(&c.kernel_sizes, rng);
            }
            if rng.random_bool(p) {
                child.e[i] = pick(&c.expand_ratios, rng);
            }
        }
        for d in child.d.iter_mut() {
            if rng.random_bool(p) {
                *d = pick(&c.depths, rng);
            }
        }
        if rng.random_bool(self.mutation.resolution_probability) {
            child.r = vec![pick(&self.resolutions, rng)];
        }
        child
    }

    /// Every sub-network that differs from `subnet` in exactly one choice.
    pub fn neighbours(&self, subnet: &SubnetConfig) -> Vec<SubnetConfig> {
        let c = &self.config;
        let mut out = Vec::new();
        let mut vary = |get: &dyn Fn(&mut SubnetConfig) -> &mut usize, choices: &[usize]| {
            for &v in choices {
                let mut n = subnet.clone();
                if *get(&mut n) != v {
                    *get(&mut n) = v;
                    out.push(n);
                }
            }
        };
        for i in 0..SLOTS {
            vary(&|n| &mut n.ks[i], &c.kernel_sizes);
            vary(&|n| &mut n.e[i], &c.expand_ratios);
        }
        for s in 0..STAGES {
            vary(&|n| &mut n.d[s], &c.depths);
        }
        vary(&|n| &mut n.r[0], &self.resolutions);
        out
    }

    /// OFA's crossover: each gene from either parent with equal probability.
    pub fn crossover(&self, a: &SubnetConfig, b: &SubnetConfig, rng: &mut ChaCha8Rng) -> SubnetConfig {
        let mut either = |x: &[usize], y: &[usize]| -> Vec<usize> { x.iter().zip(y).map(|(&x, &y)| if rng.random_bool(0.5) { x } else { y }).collect() };
        SubnetConfig { ks: either(&a.ks, &b.ks), e: either(&a.e, &b.e), d: either(&a.d, &b.d), r: either(&a.r, &b.r) }
    }
}

/// Predicted accuracy against a cost, over a search space: what NSGA-II optimises.
pub struct AccuracyVsCost<'a> {
    /// The space.
    pub space: &'a SearchSpace,
    /// The accuracy predictor.
    pub predictor: &'a AccuracyPredictor,
    /// The cost.
    pub cost: &'a dyn Cost,
}

impl Problem for AccuracyVsCost<'_> {
    type Genome = SubnetConfig;
    type Error = Error;
    fn random(&self, rng: &mut ChaCha8Rng) -> SubnetConfig {
        self.space.random(rng)
    }
    fn mutate(&self, genome: &SubnetConfig, rng: &mut ChaCha8Rng) -> SubnetConfig {
        self.space.mutate(genome, rng)
    }
    fn crossover(&self, a: &SubnetConfig, b: &SubnetConfig, rng: &mut ChaCha8Rng) -> SubnetConfig {
        self.space.crossover(a, b, rng)
    }
    fn neighbours(&self, genome: &SubnetConfig) -> Vec<SubnetConfig> {
        self.space.neighbours(genome)
    }
    fn evaluate(&self, genome: &SubnetConfig) -> Result<Objectives> {
        Ok(Objectives { acc: self.predictor.predict(genome), cost: self.cost.cost(genome)? })
    }
}
