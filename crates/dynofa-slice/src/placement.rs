//! Where a family runs: [`Placement`] (the CPU on up to N threads, or a GPU), and
//! [`LoadedFamily`], what a family offers once it is loaded on its processor — the CPU's
//! shared-weight [`FamilyStore`] and the GPU's [`GpuFamily`] alike. The profiler times
//! and the runtime switches through it, whatever the processor.

use dynofa_device::Processor;
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{Result, SubnetConfig, Supernet};

use crate::family::{Affine, FamilyStore};
use crate::gpu_family::GpuFamily;

/// The processor a family is loaded on.
#[derive(Debug, Clone)]
pub enum Placement {
    /// dynofa's CPU kernels.
    Cpu {
        /// The most threads a forward uses.
        threads: usize,
    },
    /// A GPU, as a Burn device.
    Gpu(burn::prelude::Device),
}

impl Placement {
    /// The kind of processor.
    pub fn processor(&self) -> Processor {
        match self {
            Placement::Cpu { .. } => Processor::Cpu,
            Placement::Gpu(_) => Processor::Gpu,
        }
    }

    /// Loads `levels` of `supernet` here; `level_bn[i]`, where given, is level `i`'s own
    /// folded BatchNorm (one per layer of [`crate::static_net::bn_layers`]).
    pub fn load(&self, supernet: &Supernet, levels: &[SubnetConfig], level_bn: &[Option<Vec<Affine>>]) -> Result<Box<dyn LoadedFamily>> {
        match self {
            Placement::Cpu { threads } => {
                let mut store = FamilyStore::new(supernet, levels, *threads)?;
                for (i, bn) in level_bn.iter().enumerate() {
                    if let Some(affines) = bn {
                        store.set_level_affines(i, affines.clone())?;
                    }
                }
                Ok(Box::new(store))
            }
            Placement::Gpu(device) => Ok(Box::new(GpuFamily::new(supernet, levels, level_bn, device)?)),
        }
    }
}

/// A family of sub-networks loaded on one processor, ready to run: one level active,
/// switched in O(1).
pub trait LoadedFamily: Send {
    /// The processor it runs on.
    fn processor(&self) -> Processor;

    /// Number of levels.
    fn len(&self) -> usize;

    /// Whether it has no level (never true for a loaded family).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configuration of level `i`.
    fn level_config(&self, i: usize) -> &SubnetConfig;

    /// The active level.
    fn active(&self) -> usize;

    /// Makes level `i` the active one.
    fn switch_to(&mut self, i: usize) -> Result<()>;

    /// Threads the forwards use now (1 on a GPU).
    fn threads(&self) -> usize;

    /// The most threads it can use (1 on a GPU).
    fn max_threads(&self) -> usize;

    /// Runs the next forwards on `threads` threads.
    fn set_threads(&mut self, threads: usize) -> Result<()>;

    /// Logits `[B, classes]` of the active level on a batch `[B, 3, r, r]` (NCHW values).
    fn forward(&mut self, input: &Array) -> Result<Array>;

    /// Milliseconds of each layer of the active level (stem, first block, each active
    /// block, final expansion, pooling, feature mix, classifier: the layers of a latency
    /// look-up table), per run: `[iters][layers]`, after `warmup` untimed runs, for one image.
    fn layer_times(&mut self, image: &Array, warmup: usize, iters: usize) -> Result<Vec<Vec<f64>>>;

    /// Median milliseconds of `iters` (at least one) whole forwards of `input` on the active
    /// level, after `warmup` untimed ones: the latency the runtime sees for one batch.
    fn median_forward_ms(&mut self, input: &Array, warmup: usize, iters: usize) -> Result<f64> {
        for _ in 0..warmup {
            self.forward(input)?;
        }
        let mut ms = Vec::with_capacity(iters.max(1));
        for _ in 0..iters.max(1) {
            let start = std::time::Instant::now();
            self.forward(input)?;
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        Ok(ms[ms.len() / 2])
    }

    /// Runs every level once on one image, so that the first frame after a switch costs
    /// what every frame costs (on a GPU: compiles, and where the backend autotunes, tunes
    /// each level's kernels). Returns the seconds each level took.
    fn warm_up(&mut self) -> Result<Vec<f64>> {
        let active = self.active();
        let mut seconds = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            self.switch_to(i)?;
            let r = self.level_config(i).resolution();
            let start = std::time::Instant::now();
            self.forward(&Array { shape: vec![1, 3, r, r], data: vec![0.0; 3 * r * r] })?;
            seconds.push(start.elapsed().as_secs_f64());
        }
        self.switch_to(active)?;
        Ok(seconds)
    }

    /// Bytes of weights it holds (on its processor).
    fn memory_bytes(&self) -> usize;
}

impl LoadedFamily for FamilyStore {
    fn processor(&self) -> Processor {
        Processor::Cpu
    }

    fn len(&self) -> usize {
        FamilyStore::len(self)
    }

    fn level_config(&self, i: usize) -> &SubnetConfig {
        FamilyStore::level_config(self, i)
    }

    fn active(&self) -> usize {
        FamilyStore::active(self)
    }

    fn switch_to(&mut self, i: usize) -> Result<()> {
        FamilyStore::switch_to(self, i)
    }

    fn threads(&self) -> usize {
        FamilyStore::threads(self)
    }

    fn max_threads(&self) -> usize {
        FamilyStore::max_threads(self)
    }

    fn set_threads(&mut self, threads: usize) -> Result<()> {
        FamilyStore::set_threads(self, threads)
    }

    fn forward(&mut self, input: &Array) -> Result<Array> {
        FamilyStore::forward(self, input)
    }

    fn layer_times(&mut self, image: &Array, warmup: usize, iters: usize) -> Result<Vec<Vec<f64>>> {
        FamilyStore::layer_times(self, image, warmup, iters)
    }

    fn memory_bytes(&self) -> usize {
        FamilyStore::memory_bytes(self)
    }
}
