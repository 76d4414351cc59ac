//! A deterministic, seeded initialisation of the supernet: **untrained** weights that the
//! project can make itself, the same on every machine, for demos and tests when the
//! official checkpoint is not at hand. Its predictions mean nothing.
//!
//! Every tensor draws from its own ChaCha8 stream seeded by `(seed, name)`, so a tensor's
//! values do not depend on the order in which tensors are built.

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::arch::SupernetConfig;
use crate::error::Result;
use crate::state_dict::{TensorSource, build_supernet};
use crate::supernet::Supernet;

/// Seed of the embedded default supernet.
pub const DEFAULT_SEED: u64 = 0;

/// Seeded values chosen by the role of each tensor (conv weight, BN statistic, transform).
pub struct SeededInit {
    seed: u64,
}

impl SeededInit {
    /// Initialisation from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededInit { seed }
    }

    fn rng(&self, key: &str) -> ChaCha8Rng {
        // FNV-1a of the name, mixed with the seed.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        ChaCha8Rng::seed_from_u64(hash ^ self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

impl TensorSource for SeededInit {
    fn tensor(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let mut rng = self.rng(key);
        let n: usize = shape.iter().product();
        let mut uniform = |lo: f32, hi: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(lo..hi)).collect() };
        let values = if key.ends_with("_matrix") {
            // Identity plus a little noise: a centre crop that the transform perturbs.
            let side = shape[0];
            let mut m = uniform(-0.05, 0.05);
            (0..side).for_each(|i| m[i * side + i] += 1.0);
            m
        } else if key.ends_with("running_var") {
            uniform(0.5, 1.5)
        } else if key.ends_with("running_mean") || key.ends_with(".bias") {
            uniform(-0.1, 0.1)
        } else if key.contains(".bn.") {
            uniform(0.8, 1.2) // BN γ
        } else {
            // Variance-preserving weights: uniform with variance 1 / fan_in.
            let fan_in: usize = shape[1..].iter().product();
            let bound = (3.0 / fan_in.max(1) as f32).sqrt();
            uniform(-bound, bound)
        };
        Ok(values)
    }
}

impl SupernetConfig {
    /// The supernet with the embedded default (seeded, untrained) weights.
    pub fn init(&self, device: &Device) -> Supernet {
        self.init_seeded(DEFAULT_SEED, device)
    }

    /// The supernet with seeded, untrained weights.
    pub fn init_seeded(&self, seed: u64, device: &Device) -> Supernet {
        build_supernet(self, &mut SeededInit::new(seed), device).expect("a seeded initialisation provides every tensor")
    }
}
