//! The shared-weight family store: N sub-networks (levels) of one supernet, one copy of
//! the weights, switching in O(1).
//!
//! # Design (the trade-off)
//!
//! Every OFA slice is a *prefix*: the first `mid` channels of a layer. Stored row-major,
//! a prefix of rows is contiguous and a prefix of columns is a strided view with unit
//! inner stride — which a GEMM reads in place given its row stride. So the store keeps one
//! row-major copy of each weight, pruned to the widest prefix any level uses (memory is
//! the union of the levels, about the largest member), and a level is a list of views
//! into it plus what is genuinely its own: transformed depthwise kernels for k < 7
//! (`mid × k²` values per block) and, after re-calibration, its BatchNorm statistics.
//! Switching sets an index; nothing is copied, so the first forward after a switch costs
//! what every forward costs.
//!
//! Burn tensors were not used for this: on flex a strided slice of a weight is copied on
//! every call, which costs time per frame, while contiguous per-level copies would cost
//! memory (six levels ≈ 4× the weights). The store runs levels with `dynofa-kernels`
//! (strided GEMM, direct depthwise convolution, fused BN/activation epilogues); the Burn
//! supernet stays the reference its outputs are tested against.
//!
//! # Modules
//!
//! - `weights`: folded BatchNorm, matrices and panels, the shared weights of each slot
//!   and what each level owns.
//! - `build`: [`FamilyStore::new`] — the weights pruned to the widest level, each level's
//!   own kernels, buffers sized up front.
//! - this module: the store and its switching API (levels, threads, per-level BatchNorm).
//! - `forward`: [`FamilyStore::forward`] — one image or a batch, on reused buffers.
//! - `timing`: [`FamilyStore::op_profile`] and [`FamilyStore::layer_times`].
//!
//! The thread pools and the pollers that keep their threads awake during a forward are
//! the kernels' ([`dynofa_kernels::threads`]).

mod build;
mod forward;
mod timing;
mod weights;

use std::sync::Arc;

use dynofa_kernels::panels::PanelMatrix;
use dynofa_supernet::{Error, Result, SubnetConfig, SupernetConfig};

use crate::static_net::StaticNet;
use forward::{BatchHead, Workspace};
use weights::{Level, Matrix, SharedBlock};

pub use timing::OpTimes;
pub use weights::Affine;

/// One supernet's weights shared by a family of sub-networks; runs any level.
pub struct FamilyStore {
    config: SupernetConfig,
    stem: Matrix, // [27, stem]
    stem_bn: Affine,
    block0_depthwise: Matrix, // [9, stem]
    block0_depthwise_bn: Affine,
    block0_project: PanelMatrix, // [stem, stem]
    block0_project_bn: Affine,
    blocks: Vec<Option<SharedBlock>>, // by slot
    final_expand: PanelMatrix,
    final_expand_bn: Affine,
    feature_mix: Matrix,
    classifier: Matrix,
    classifier_bias: Vec<f32>,
    /// `[1; C]` and `[0; C]` for the widest layer: the scale of bias-only epilogues, the
    /// shift of the bias-free one.
    ones: Vec<f32>,
    zeros: Vec<f32>,
    levels: Vec<Level>,
    active: usize,
    /// Values per image of the largest activation, and the most channels, over the levels.
    per_image: (usize, usize),
    /// Values per image of the largest activation from the levels' splits on.
    per_image_batched: usize,
    /// One workspace per worker (images of a batch run in parallel, one per worker).
    workspaces: Vec<Workspace>,
    /// The workspace of a batch's layers from the split on (the whole batch at once).
    batched: Workspace,
    /// The head's buffers for a whole batch.
    head: BatchHead,
    /// One pool per thread count `2..=max_threads`, built up front so that changing the
    /// thread count is as cheap as switching levels; `pools[threads - 2]` runs the forwards
    /// (one thread needs none: the caller runs them).
    pools: Vec<Arc<rayon::ThreadPool>>,
    threads: usize,
}

/// The levels of a family of `config`'s sub-networks: at least one, each valid (an error
/// names `levels[i]`, the level and what is wrong).
pub fn check_levels(config: &SupernetConfig, levels: &[SubnetConfig]) -> Result<()> {
    if levels.is_empty() {
        return Err(Error::InvalidValue { field: "levels".into(), value: "none".into(), expected: "at least one".into() });
    }
    for (i, level) in levels.iter().enumerate() {
        config.validate(level).map_err(|e| Error::InvalidValue { field: format!("levels[{i}]"), value: level.to_json(), expected: e.to_string() })?;
    }
    Ok(())
}

impl FamilyStore {
    /// Number of levels.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Whether the store has no level (never true for a built store).
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// The configuration of level `i`.
    pub fn level_config(&self, i: usize) -> &SubnetConfig {
        &self.levels[i].config
    }

    /// The active level.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Makes level `i` the active one. O(1): nothing is copied or allocated.
    pub fn switch_to(&mut self, i: usize) -> Result<()> {
        if i >= self.levels.len() {
            return Err(Error::InvalidValue { field: "level".into(), value: i.to_string(), expected: format!("0..{}", self.levels.len()) });
        }
        self.active = i;
        Ok(())
    }

    /// Threads the forwards use now.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The most threads the store can use (what it was built with).
    pub fn max_threads(&self) -> usize {
        self.pools.len() + 1
    }

    /// Runs the next forwards on `threads` threads (1 to [`FamilyStore::max_threads`]).
    /// O(1): the pools exist already.
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        if threads == 0 || threads > self.max_threads() {
            return Err(Error::InvalidValue { field: "threads".into(), value: threads.to_string(), expected: format!("1..={}", self.max_threads()) });
        }
        self.threads = threads;
        Ok(())
    }

    /// Runs `work` on the active thread count: one runs it on this thread (no hand-over to
    /// a pool thread and back), more run it on their pool with every thread kept awake.
    fn on_threads<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        match self.threads {
            1 => dynofa_kernels::threads::serial(work),
            threads => self.pools[threads - 2].install(|| dynofa_kernels::threads::with_threads_awake(work)),
        }
    }

    /// Uses the BatchNorm statistics of `calibrated` (the level's static network after
    /// [`crate::calibrate::recalibrate`]) for level `i`.
    pub fn set_level_bn(&mut self, i: usize, calibrated: &StaticNet) -> Result<()> {
        let expected = crate::arch::NetArch::of_subnet(&self.config, &self.levels[i].config)?;
        if calibrated.arch != expected {
            return Err(Error::InvalidValue {
                field: format!("calibrated network for level {i}"),
                value: "another architecture".into(),
                expected: self.levels[i].config.to_json(),
            });
        }
        self.set_level_affines(i, calibrated.batch_norms().into_iter().map(Affine::of).collect())
    }

    /// Sets level `i`'s own folded BatchNorm, one per BN layer in
    /// [`crate::static_net::bn_layers`] order.
    pub fn set_level_affines(&mut self, i: usize, affines: Vec<Affine>) -> Result<()> {
        let arch = crate::arch::NetArch::of_subnet(&self.config, &self.levels[i].config)?;
        let layers = crate::static_net::bn_layers(&arch);
        let fits = affines.len() == layers.len() && affines.iter().zip(&layers).all(|(a, (_, c))| a.scale.len() == *c && a.shift.len() == *c);
        if !fits {
            return Err(Error::InvalidValue {
                field: format!("BatchNorm layers of level {i}"),
                value: format!("{} layers", affines.len()),
                expected: format!("{} layers of the level's widths", layers.len()),
            });
        }
        self.levels[i].bn = Some(affines);
        Ok(())
    }

    /// Level `i`'s own folded BatchNorm, if it has been re-calibrated.
    pub fn level_bn(&self, i: usize) -> Option<&[Affine]> {
        self.levels[i].bn.as_deref()
    }

    /// The supernet's configuration.
    pub fn config(&self) -> &SupernetConfig {
        &self.config
    }

    /// Bytes held: shared weights plus every level's own tensors.
    pub fn memory_bytes(&self) -> usize {
        let shared: usize = [&self.stem, &self.block0_depthwise, &self.feature_mix, &self.classifier].iter().map(|m| m.bytes()).sum::<usize>()
            + self.block0_project.bytes()
            + self.final_expand.bytes()
            + [&self.stem_bn, &self.block0_depthwise_bn, &self.block0_project_bn, &self.final_expand_bn].iter().map(|a| a.bytes()).sum::<usize>()
            + 4 * self.classifier_bias.len()
            + self.blocks.iter().flatten().map(SharedBlock::bytes).sum::<usize>();
        let own: usize = self
            .levels
            .iter()
            .map(|l| {
                l.blocks.iter().filter_map(|b| b.own_kernels.as_ref()).map(Matrix::bytes).sum::<usize>()
                    + l.bn.iter().flatten().map(Affine::bytes).sum::<usize>()
            })
            .sum();
        shared + own
    }
}
