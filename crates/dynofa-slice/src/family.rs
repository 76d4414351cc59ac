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

use std::sync::Arc;

use rayon::prelude::*;

use burn::prelude::*;
use dynofa_kernels::conv::conv2d;
use dynofa_kernels::depthwise::{depthwise, depthwise_from};
use dynofa_kernels::panels::{self, PanelMatrix};
use dynofa_kernels::pointwise::{pointwise, pointwise_to};
use dynofa_kernels::pool::{mean_pixels, mean_pixels_banded, scale_channels_banded};
use dynofa_kernels::separable::{separable, Depthwise, Pointwise};
use dynofa_kernels::shape::{out_size, ConvShape};
use dynofa_kernels::{Activation, AlignedBuf, Epilogue, Isa, Layout, MatRef};
use dynofa_supernet::layers::{Act, BatchNorm, SqueezeExcite, BN_EPS};
use dynofa_supernet::supernet::BlockSpec;
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{Error, Result, SubnetConfig, Supernet, SupernetConfig};

use crate::static_net::StaticNet;

/// Folded BatchNorm: `x × scale + shift` per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Affine {
    /// Per-channel scale `γ / sqrt(var + eps)`.
    pub scale: Vec<f32>,
    /// Per-channel shift `β − mean × scale`.
    pub shift: Vec<f32>,
}

impl Affine {
    /// Folds BN parameters and statistics.
    pub fn fold(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32]) -> Self {
        let scale: Vec<f32> = gamma.iter().zip(var).map(|(g, v)| g / (v + BN_EPS as f32).sqrt()).collect();
        let shift = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        Affine { scale, shift }
    }

    /// Folds a BatchNorm layer (all its channels).
    pub fn of(bn: &BatchNorm) -> Self {
        let v = |p: &burn::module::Param<Tensor<1>>| Array::from_tensor(&p.val()).data;
        Self::fold(&v(&bn.weight), &v(&bn.bias), &v(&bn.running_mean), &v(&bn.running_var))
    }

    /// The epilogue `act(x × scale + shift)` of the first `channels` channels.
    fn epilogue(&self, channels: usize, act: Activation) -> Epilogue<'_> {
        Epilogue { scale: &self.scale[..channels], shift: &self.shift[..channels], act }
    }

    fn bytes(&self) -> usize {
        4 * (self.scale.len() + self.shift.len())
    }
}

/// A row-major matrix owned by the store.
#[derive(Debug, Clone)]
struct Matrix {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl Matrix {
    /// A 1×1 convolution's weights `[in, out]` as column panels of the width the product
    /// kernel reads on this CPU, one copy for every level (made once: read as one
    /// contiguous run per panel, where row-major weights made the kernel fetch large
    /// matrices from L3 in a pattern the prefetchers miss).
    fn into_panels(self) -> PanelMatrix {
        PanelMatrix::from_row_major(&self.data, self.rows, self.cols, panels::width(Isa::best()))
    }

    /// The transpose of the top-left `source_rows × source_cols` block of a tensor
    /// flattened to `[dim0, rest]`: a `[source_cols, source_rows]` matrix. PyTorch's
    /// `[out, in]` weights become `[in, out]` (what the GEMM reads without repacking),
    /// depthwise kernels `[C, k²]` become `[k², C]` (taps by channel).
    fn transposed_prefix<const D: usize>(tensor: Tensor<D>, source_rows: usize, source_cols: usize) -> Self {
        let a = Array::from_tensor(&tensor);
        let width = a.data.len() / a.shape[0];
        let values = &a.data;
        let data = (0..source_cols).flat_map(|r| (0..source_rows).map(move |c| values[c * width + r])).collect();
        Matrix { data, rows: source_cols, cols: source_rows }
    }

    fn view(&self, rows: usize, cols: usize) -> MatRef<'_> {
        MatRef::strided(&self.data, self.rows, self.cols, self.cols).top_left(rows, cols)
    }

    fn bytes(&self) -> usize {
        4 * self.data.len()
    }
}

/// The shared weights of one elastic block slot, pruned to the widest level.
struct SharedBlock {
    spec: BlockSpec,
    expand: PanelMatrix, // [in, mid_max]
    expand_bn: Affine,   // [mid_max]
    depthwise: Matrix,   // [7·7, mid_max]: taps by channel
    depthwise_bn: Affine,
    se: Option<SharedSe>,
    project: PanelMatrix, // [mid_max, out]
    project_bn: Affine,  // [out]
}

struct SharedSe {
    reduce: Matrix, // [mid_max, se_max]
    reduce_bias: Vec<f32>,
    expand: Matrix, // [se_max, mid_max]
    expand_bias: Vec<f32>,
}

/// What one level owns besides views of the shared weights.
struct LevelBlock {
    slot: usize,
    kernel: usize,
    mid: usize,
    /// Transformed depthwise kernels `[k², mid]` when `k` is below the stored size.
    own_kernels: Option<Matrix>,
}

/// Per-level BatchNorm (after re-calibration), one per BN layer in forward order (that of
/// [`crate::static_net::bn_layers`]).
type LevelBn = Vec<Affine>;

struct Level {
    config: SubnetConfig,
    blocks: Vec<LevelBlock>,
    bn: Option<LevelBn>,
    split: Split,
}

/// A batch's trunk runs one image at a time while activations are large (each image's
/// stay in cache), then from the first block whose input is downsampled by this factor
/// (14×14 and 7×7 at r = 224, where the weights are larger than one image's activations)
/// layer by layer for the whole batch, so that each weight is read once per batch.
const BATCH_FROM_DOWNSAMPLING: usize = 16;

/// Where a level's trunk switches to the whole batch: block index `block`, whose input is
/// `[h, w, channels]` per image (see [`BATCH_FROM_DOWNSAMPLING`]).
#[derive(Debug, Clone, Copy)]
struct Split {
    block: usize,
    h: usize,
    w: usize,
    channels: usize,
}

impl Split {
    fn of(specs: &[BlockSpec], config: &SubnetConfig, blocks: &[LevelBlock], stem: usize) -> Split {
        let r = config.resolution();
        let (mut h, mut w, mut channels) = (out_size(r, 3, 2), out_size(r, 3, 2), stem);
        for (i, lb) in blocks.iter().enumerate() {
            if h * BATCH_FROM_DOWNSAMPLING <= r {
                return Split { block: i, h, w, channels };
            }
            let spec = &specs[lb.slot];
            (h, w, channels) = (out_size(h, lb.kernel, spec.stride), out_size(w, lb.kernel, spec.stride), spec.out_channels);
        }
        Split { block: blocks.len(), h, w, channels }
    }

    /// Values of one image's activation here.
    fn values(&self) -> usize {
        self.h * self.w * self.channels
    }
}

/// Reusable buffers, grown to the largest level's needs for the largest batch seen.
#[derive(Default)]
struct Workspace {
    /// Activations `[B, H, W, C]`, 64-byte aligned.
    bufs: [AlignedBuf; 4],
    /// Squeeze-and-excitation's channel vectors `[C]`: pooled features, squeezed features, gates.
    pooled: Vec<f32>,
    squeezed: Vec<f32>,
    gates: Vec<f32>,
    /// Per-thread means of squeeze-and-excitation pooling `[threads, C]`.
    band_means: Vec<f32>,
    /// Per-thread chunks of depthwise output on their way to the projection ([`separable`]).
    separable: AlignedBuf,
}

/// The head's inputs and hidden layer for a whole batch: pooled features `[B,
/// final_expand]` and the feature mix `[B, feature_mix]` (grown to the largest batch seen).
#[derive(Default)]
struct BatchHead {
    features: Vec<f32>,
    hidden: Vec<f32>,
}

impl BatchHead {
    fn reserve(&mut self, batch: usize, final_expand: usize, feature_mix: usize) {
        for (b, values) in [(&mut self.features, batch * final_expand), (&mut self.hidden, batch * feature_mix)] {
            if b.len() < values {
                b.resize(values, 0.0);
            }
        }
    }
}

impl Workspace {
    fn reserve(&mut self, activations: usize, channels: usize) {
        for b in self.bufs.iter_mut() {
            b.reserve(activations);
        }
        for b in [&mut self.pooled, &mut self.squeezed, &mut self.gates] {
            if b.len() < channels {
                b.resize(channels, 0.0);
            }
        }
    }
}

/// Where a forward is in its level's own BatchNorm list (in forward order), if it has one.
type BnCursor<'a> = Option<std::slice::Iter<'a, Affine>>;

/// The next per-level BN if the level has its own, else the shared one.
fn pick<'a>(own: &mut BnCursor<'a>, shared: &'a Affine) -> &'a Affine {
    own.as_mut().and_then(Iterator::next).unwrap_or(shared)
}

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

fn act(a: Act) -> Activation {
    match a {
        Act::None => Activation::None,
        Act::Relu => Activation::Relu,
        Act::HSwish => Activation::HSwish,
    }
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
    /// A store of `levels` (each a sub-network of `supernet`), running on `threads` threads
    /// (the most it will use: see [`FamilyStore::set_threads`]).
    pub fn new(supernet: &Supernet, levels: &[SubnetConfig], threads: usize) -> Result<Self> {
        check_levels(&supernet.config, levels)?;
        let specs = BlockSpec::all(&supernet.config);
        // The widest use of each slot across the levels.
        let mut widest: Vec<Option<usize>> = vec![None; specs.len()];
        for level in levels {
            for slot in level.active_slots() {
                let mid = specs[slot].mid_channels(level.e[slot]);
                widest[slot] = Some(widest[slot].map_or(mid, |w: usize| w.max(mid)));
            }
        }
        let stored_k = supernet.config.max_kernel();
        let blocks = specs
            .iter()
            .zip(&widest)
            .map(|(spec, widest)| widest.map(|mid| shared_block(supernet, spec, mid, stored_k)))
            .collect();
        let widths = supernet.config.widths();
        let stem = widths.stem;
        let net = supernet;
        let mut store = FamilyStore {
            config: supernet.config.clone(),
            stem: Matrix::transposed_prefix(net.first_conv.conv.weight.val(), stem, 27),
            stem_bn: Affine::of(&net.first_conv.bn),
            block0_depthwise: Matrix::transposed_prefix(net.first_block.depth_conv.conv.weight.val(), stem, 9),
            block0_depthwise_bn: Affine::of(&net.first_block.depth_conv.bn),
            block0_project: Matrix::transposed_prefix(net.first_block.point_linear.conv.weight.val(), stem, stem).into_panels(),
            block0_project_bn: Affine::of(&net.first_block.point_linear.bn),
            blocks,
            final_expand: Matrix::transposed_prefix(net.final_expand_layer.conv.weight.val(), widths.final_expand, widths.stages[4]).into_panels(),
            final_expand_bn: Affine::of(&net.final_expand_layer.bn),
            feature_mix: Matrix::transposed_prefix(net.feature_mix_layer.weight.val(), widths.feature_mix, widths.final_expand),
            classifier: Matrix::transposed_prefix(net.classifier.weight.val(), net.config.num_classes, widths.feature_mix),
            classifier_bias: Array::from_tensor(&net.classifier.bias.val()).data,
            ones: Vec::new(),
            zeros: Vec::new(),
            levels: Vec::new(),
            active: 0,
            per_image: (0, 0),
            per_image_batched: 0,
            workspaces: Vec::new(),
            batched: Workspace::default(),
            head: BatchHead::default(),
            pools: (2..=threads).map(thread_pool).collect::<Result<_>>()?,
            threads: threads.max(1),
        };
        store.levels = levels.iter().map(|config| level(supernet, &specs, config, stored_k)).collect();
        // Size the buffers for the most demanding level now (batch 1), so that a forward
        // only allocates when a batch is larger than any before.
        for i in 0..store.levels.len() {
            let (values, channels, batched) = store.buffer_sizes(i);
            let (v, c) = store.per_image;
            store.per_image = (v.max(values), c.max(channels));
            store.per_image_batched = store.per_image_batched.max(batched);
        }
        let widest = store.per_image.1.max(store.config.num_classes);
        (store.ones, store.zeros) = (vec![1.0; widest], vec![0.0; widest]);
        store.reserve_workers(1);
        store.head.reserve(1, widths.final_expand, widths.feature_mix);
        Ok(store)
    }

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
            return Err(Error::InvalidValue {
                field: "level".into(),
                value: i.to_string(),
                expected: format!("0..{}", self.levels.len()),
            });
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
            return Err(Error::InvalidValue {
                field: "threads".into(),
                value: threads.to_string(),
                expected: format!("1..={}", self.max_threads()),
            });
        }
        self.threads = threads;
        Ok(())
    }

    /// Runs `work` on the active thread count: one runs it on this thread (no hand-over to
    /// a pool thread and back), more run it on their pool with every thread kept awake.
    fn on_threads<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        match self.threads {
            1 => dynofa_kernels::threads::serial(work),
            threads => self.pools[threads - 2].install(|| with_threads_awake(work)),
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
        let fits = affines.len() == layers.len()
            && affines.iter().zip(&layers).all(|(a, (_, c))| a.scale.len() == *c && a.shift.len() == *c);
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

    /// Logits `[B, classes]` of the active level on a batch `[B, 3, r, r]` (NCHW values).
    pub fn forward(&mut self, input: &Array) -> Result<Array> {
        let r = self.levels[self.active].config.resolution();
        if input.shape.len() != 4 || input.shape[1..] != [3, r, r] {
            return Err(Error::InvalidValue {
                field: "input".into(),
                value: format!("shape {:?}", input.shape),
                expected: format!("[B, 3, {r}, {r}] for level {}", self.active),
            });
        }
        let batch = input.shape[0];
        let classes = self.config.num_classes;
        let widths = self.config.widths();
        let (fe, fm) = (widths.final_expand, widths.feature_mix);
        let mut logits = vec![0.0; batch * classes];
        // Up to the level's split, images run in parallel, one per worker (each with its
        // own buffers, which stay in cache better than a whole batch layer by layer);
        // within an image, every kernel splits its work over the threads left idle. From
        // the split on, the batch runs layer by layer on all threads, and so does the
        // head, so that the weights of those layers are read once per batch.
        let workers = self.threads.min(batch).max(1);
        self.reserve_workers(workers);
        let split = self.levels[self.active].split;
        if batch > 1 {
            self.batched.reserve(batch * self.per_image_batched, batch * self.per_image.1);
        }
        let per_worker = batch.div_ceil(workers);
        let mut workspaces = std::mem::take(&mut self.workspaces);
        let mut batched = std::mem::take(&mut self.batched);
        let mut head = std::mem::take(&mut self.head);
        head.reserve(batch, fe, fm);
        let this = &*self;
        this.on_threads(|| {
            let features = &mut head.features[..batch * fe];
            if batch == 1 {
                this.trunk(&mut workspaces[0], &input.data, r, features, &mut Stopwatch::new(&mut None));
            } else {
                // Each image up to the split, into its slot of the batch.   → [B, h, w, C]
                // (Returns the BatchNorm cursor there, the same for every image.)
                let to_split = |ws: &mut Workspace, images: &[f32], slots: &mut [f32]| {
                    let mut bn = None;
                    for (image, slot) in images.chunks(3 * r * r).zip(slots.chunks_mut(split.values())) {
                        bn = Some(this.layers_to_split(ws, image, r, &mut Stopwatch::new(&mut None)));
                        slot.copy_from_slice(&ws.bufs[0][..split.values()]);
                    }
                    bn
                };
                let slots = &mut batched.bufs[0][..batch * split.values()];
                let bn = if workers == 1 {
                    to_split(&mut workspaces[0], &input.data, slots)
                } else {
                    workspaces
                        .par_iter_mut()
                        .zip(input.data.par_chunks(per_worker * 3 * r * r))
                        .zip(slots.par_chunks_mut(per_worker * split.values()))
                        .map(|((ws, images), slots)| to_split(ws, images, slots))
                        .reduce_with(Option::or)
                        .flatten()
                };
                let mut bn = bn.expect("a batch of more than one image");
                this.layers_from_split(&mut batched, batch, &mut bn, features, &mut Stopwatch::new(&mut None));
            }
            this.head(batch, &head.features[..batch * fe], &mut head.hidden[..batch * fm], &mut logits, &mut Stopwatch::new(&mut None));
        });
        self.workspaces = workspaces;
        self.batched = batched;
        self.head = head;
        Ok(Array { shape: vec![batch, classes], data: logits })
    }

    /// Milliseconds per operation kind (stem, first block, expand, depthwise by kernel size,
    /// squeeze-and-excitation, project, depthwise and project fused where a block has no
    /// squeeze-and-excitation, head layers) for one image of the active level, the
    /// median over `iters` forwards after two warm-up ones. Every kernel uses all threads.
    pub fn op_profile(&mut self, image: &Array, iters: usize) -> Result<Vec<(&'static str, f64)>> {
        let runs = self.timed_runs(image, 2, iters)?;
        let ops: Vec<&'static str> = runs[0].ops.keys().copied().collect();
        Ok(ops
            .into_iter()
            .map(|op| {
                let mut ms: Vec<f64> = runs.iter().map(|t| t.ops[op].as_secs_f64() * 1e3).collect();
                ms.sort_by(f64::total_cmp);
                (op, ms[ms.len() / 2])
            })
            .collect())
    }

    /// Milliseconds of each layer of the active level (stem, first block, each active
    /// block, final expansion, pooling, feature mix, classifier: the layers a latency
    /// look-up table lists), per run: `[iters][layers]`, after `warmup` untimed runs. One
    /// image, every kernel on all threads — the runtime's path, timed in place.
    pub fn layer_times(&mut self, image: &Array, warmup: usize, iters: usize) -> Result<Vec<Vec<f64>>> {
        let runs = self.timed_runs(image, warmup, iters)?;
        Ok(runs.iter().map(|t| t.layers.iter().map(|d| d.as_secs_f64() * 1e3).collect()).collect())
    }

    /// `iters` (at least one) timed forwards of one image after `warmup` untimed ones.
    fn timed_runs(&mut self, image: &Array, warmup: usize, iters: usize) -> Result<Vec<Timings>> {
        let r = self.levels[self.active].config.resolution();
        if image.shape != [1, 3, r, r] {
            return Err(Error::InvalidValue { field: "input".into(), value: format!("shape {:?}", image.shape), expected: format!("[1, 3, {r}, {r}]") });
        }
        self.reserve_workers(1);
        let mut ws = std::mem::take(&mut self.workspaces[0]);
        let mut head = std::mem::take(&mut self.head); // reserved for one image on construction
        let mut logits = vec![0.0; self.config.num_classes];
        let mut runs = Vec::new();
        let this = &*self;
        for i in 0..iters.max(1) + warmup {
            let mut timings = (i >= warmup).then(Timings::default);
            this.on_threads(|| this.forward_image_timed(&mut ws, &mut head, &image.data, r, &mut logits, &mut timings));
            runs.extend(timings);
        }
        (self.workspaces[0], self.head) = (ws, head);
        Ok(runs)
    }

    /// Buffers for `workers` images at a time (allocates only when growing).
    fn reserve_workers(&mut self, workers: usize) {
        if self.workspaces.len() < workers {
            self.workspaces.resize_with(workers, Workspace::default);
        }
        for ws in &mut self.workspaces {
            ws.reserve(self.per_image.0, self.per_image.1);
        }
    }

    /// Largest activation (values) and channel count that level `i` needs for one image,
    /// and its largest activation (values per image) from its split on.
    fn buffer_sizes(&self, i: usize) -> (usize, usize, usize) {
        let level = &self.levels[i];
        let widths = self.config.widths();
        let r = level.config.resolution();
        let (mut h, mut w) = (out_size(r, 3, 2), out_size(r, 3, 2));
        let mut values = widths.stem * h * w; // the stem's output
        let mut batched = level.split.values();
        let mut channels = widths.feature_mix.max(widths.final_expand);
        for (b, lb) in level.blocks.iter().enumerate() {
            let spec = &self.blocks[lb.slot].as_ref().expect("stored").spec;
            let mut block_values = lb.mid * h * w;
            h = out_size(h, lb.kernel, spec.stride);
            w = out_size(w, lb.kernel, spec.stride);
            block_values = block_values.max(spec.out_channels * h * w);
            values = values.max(block_values);
            if b >= level.split.block {
                batched = batched.max(block_values);
            }
            channels = channels.max(lb.mid);
        }
        let final_expand = widths.final_expand * h * w;
        (values.max(final_expand), channels, batched.max(final_expand))
    }

    /// Logits `[classes]` of the active level for one image `[3, r, r]` (trunk and head),
    /// on the current rayon pool, with buffers `ws` and `head`, recording operation and
    /// layer times when `timings` is given.
    fn forward_image_timed(&self, ws: &mut Workspace, head: &mut BatchHead, image: &[f32], r: usize, logits: &mut [f32], timings: &mut Option<Timings>) {
        let widths = self.config.widths();
        let (features, hidden) = (&mut head.features[..widths.final_expand], &mut head.hidden[..widths.feature_mix]);
        let mut clock = Stopwatch::new(timings);
        self.trunk(ws, image, r, features, &mut clock);
        self.head(1, features, hidden, logits, &mut clock);
    }

    /// Pooled features `[final_expand]` of the active level for one image `[3, r, r]`:
    /// every layer up to the head's pooling. Activations are pixel-major, `[H, W, C]`,
    /// except expanded ones on their way to a depthwise convolution where
    /// [`Layout::for_depthwise`] picks channel blocks.
    fn trunk(&self, ws: &mut Workspace, image: &[f32], r: usize, features: &mut [f32], clock: &mut Stopwatch) {
        let mut bn = self.layers_to_split(ws, image, r, clock);
        self.layers_from_split(ws, 1, &mut bn, features, clock);
    }

    /// The active level's layers before its split for one image `[3, r, r]`: stem, first
    /// block, blocks before `split.block`. Leaves the activation `[h, w, C]` (the split's)
    /// in `ws.bufs[0]`, and returns where the BatchNorm cursor is.
    fn layers_to_split<'a>(&'a self, ws: &mut Workspace, image: &[f32], r: usize, clock: &mut Stopwatch) -> BnCursor<'a> {
        let level = &self.levels[self.active];
        let mut bn = level.bn.as_ref().map(|v| v.iter());
        let stem = self.config.widths().stem;
        let (h, w) = (out_size(r, 3, 2), out_size(r, 3, 2));
        let [cur, t1, t2, _] = &mut ws.bufs;

        // Stem: conv 3×3 s2 → BN → h-swish.                         [3, r, r] → [h, w, stem]
        let a = pick(&mut bn, &self.stem_bn);
        let shape = ConvShape { h: r, w: r, channels: 3, k: 3, stride: 2 };
        conv2d(image, 1, shape, self.stem.view(27, stem), a.epilogue(stem, Activation::HSwish), cur);
        clock.lap("stem");
        clock.end_layer();
        // Block 0: depthwise 3×3 → BN → ReLU → 1×1 → BN, + input.    [h, w, stem]
        let a = pick(&mut bn, &self.block0_depthwise_bn);
        let shape = ConvShape { h, w, channels: stem, k: 3, stride: 1 };
        depthwise(cur, 1, shape, self.block0_depthwise.view(9, stem), a.epilogue(stem, Activation::Relu), t1);
        let a = pick(&mut bn, &self.block0_project_bn);
        pointwise(MatRef::dense(t1, h * w, stem), self.block0_project.view(stem, stem), a.epilogue(stem, Activation::None), Some(cur), t2);
        std::mem::swap(cur, t2);
        clock.lap("first_block");
        clock.end_layer();

        let (ho, wo) = self.blocks(ws, 1, &level.blocks[..level.split.block], (h, w), &mut bn, clock);
        debug_assert_eq!((ho, wo), (level.split.h, level.split.w));
        bn
    }

    /// The active level's layers from its split to the head's pooling, for a `batch` of
    /// activations `[B, h, w, C]` (the split's) in `ws.bufs[0]`, layer by layer: pooled
    /// features `[B, final_expand]`.
    fn layers_from_split<'a>(&'a self, ws: &mut Workspace, batch: usize, bn: &mut BnCursor<'a>, features: &mut [f32], clock: &mut Stopwatch) {
        let level = &self.levels[self.active];
        let Split { block, h, w, .. } = level.split;
        let (h, w) = self.blocks(ws, batch, &level.blocks[block..], (h, w), bn, clock);

        // Final expansion 1×1 → BN → h-swish → mean.                 [B, h, w, last] → [B, fe]
        let widths = self.config.widths();
        let (fe, n) = (widths.final_expand, h * w);
        let last = widths.stages[4];
        let [cur, t1, ..] = &mut ws.bufs;
        let a = pick(bn, &self.final_expand_bn);
        pointwise(MatRef::dense(cur, batch * n, last), self.final_expand.view(last, fe), a.epilogue(fe, Activation::HSwish), None, t1);
        clock.lap("final_expand");
        clock.end_layer();
        for (image, features) in t1[..batch * n * fe].chunks(n * fe).zip(features.chunks_mut(fe)) {
            mean_pixels(image, features);
        }
        clock.lap("pool");
        clock.end_layer();
    }

    /// Runs `blocks` layer by layer on a `batch` of activations `[B, h, w, C]` in
    /// `ws.bufs[0]`, leaving the output there; returns its `(h, w)`.
    fn blocks<'a>(&'a self, ws: &mut Workspace, batch: usize, blocks: &[LevelBlock], (mut h, mut w): (usize, usize), bn: &mut BnCursor<'a>, clock: &mut Stopwatch) -> (usize, usize) {
        let [cur, t1, t2, t3] = &mut ws.bufs;
        for lb in blocks {
            let sb = self.blocks[lb.slot].as_ref().expect("every level's slots are stored");
            let spec = &sb.spec;
            let (mid, k) = (lb.mid, lb.kernel);
            let activation = act(spec.act);
            // Expand 1×1 → BN → act, in channel blocks where the AVX-512 bodies run (the
            // depthwise convolution then reads a block's rows as contiguous runs).
            //                                                          [B, h, w, in] → [B, h, w, mid]
            let isa = Isa::best();
            let layout = Layout::for_depthwise(isa, mid);
            let a = pick(bn, &sb.expand_bn);
            pointwise_to(isa, MatRef::dense(cur, batch * h * w, spec.in_channels), sb.expand.view(spec.in_channels, mid), a.epilogue(mid, activation), None, t1, layout);
            clock.lap("expand");
            // Depthwise k×k → BN → act.                              → [B, h', w', mid]
            let kernels = match &lb.own_kernels {
                Some(m) => m.view(k * k, mid),
                None => sb.depthwise.view(k * k, mid),
            };
            let a = pick(bn, &sb.depthwise_bn);
            let shape = ConvShape { h, w, channels: mid, k, stride: spec.stride };
            let depthwise = Depthwise { shape, kernels, epilogue: a.epilogue(mid, activation) };
            (h, w) = shape.out_hw();
            let n = h * w;
            // Project 1×1 → BN (+ input).                            → [B, h', w', out]
            let out = spec.out_channels;
            let residual = spec.residual.then_some(&cur[..batch * n * out]);
            let a = pick(bn, &sb.project_bn);
            let project = Pointwise { weights: sb.project.view(mid, out).into(), epilogue: a.epilogue(out, Activation::None) };
            match &sb.se {
                // Without squeeze-and-excitation, the projection follows the depthwise
                // convolution chunk by chunk (the depthwise output stays in cache).
                None => {
                    separable(isa, t1, layout, batch, depthwise, project, residual, &mut ws.separable, t3);
                    clock.lap(depthwise_labels(k).1);
                }
                // Else squeeze-and-excitation between them: pool → 1×1 → ReLU → 1×1 →
                // h-sigmoid → gate.
                Some(se) => {
                    depthwise_from(isa, t1, layout, batch, shape, kernels, depthwise.epilogue, t2);
                    clock.lap(depthwise_labels(k).0);
                    let reduced = SqueezeExcite::reduced(mid);
                    let (pooled, squeezed, gates) = (&mut ws.pooled[..batch * mid], &mut ws.squeezed[..batch * reduced], &mut ws.gates[..batch * mid]);
                    mean_pixels_banded(&t2[..batch * n * mid], batch, h, pooled, &mut ws.band_means);
                    clock.lap("se_pool");
                    let reduce = Epilogue { scale: &self.ones[..reduced], shift: &se.reduce_bias[..reduced], act: Activation::Relu };
                    pointwise(MatRef::dense(pooled, batch, mid), se.reduce.view(mid, reduced), reduce, None, squeezed);
                    let expand = Epilogue { scale: &self.ones[..mid], shift: &se.expand_bias[..mid], act: Activation::HSigmoid };
                    pointwise(MatRef::dense(squeezed, batch, reduced), se.expand.view(reduced, mid), expand, None, gates);
                    clock.lap("se_fc");
                    scale_channels_banded(&mut t2[..batch * n * mid], batch, h, gates);
                    clock.lap("squeeze_excite");
                    pointwise(MatRef::dense(t2, batch * n, mid), project.weights, project.epilogue, residual, t3);
                    clock.lap("project");
                }
            }
            clock.end_layer();
            std::mem::swap(cur, t3);
        }

        (h, w)
    }

    /// Logits `[B, classes]` from pooled features `[B, final_expand]`: feature mix 1×1 →
    /// h-swish → classifier, each one product for the whole batch. `hidden`: `[B, feature_mix]`.
    fn head(&self, batch: usize, features: &[f32], hidden: &mut [f32], logits: &mut [f32], clock: &mut Stopwatch) {
        let widths = self.config.widths();
        let (fe, fm, classes) = (widths.final_expand, widths.feature_mix, self.config.num_classes);
        let mix = Epilogue { scale: &self.ones[..fm], shift: &self.zeros[..fm], act: Activation::HSwish };
        pointwise(MatRef::dense(features, batch, fe), self.feature_mix.view(fe, fm), mix, None, hidden);
        clock.lap("feature_mix");
        clock.end_layer();
        let classify = Epilogue { scale: &self.ones[..classes], shift: &self.classifier_bias, act: Activation::None };
        pointwise(MatRef::dense(hidden, batch, fm), self.classifier.view(fm, classes), classify, None, logits);
        clock.lap("classifier");
        clock.end_layer();
    }
}

/// A rayon pool of `threads` threads.
fn thread_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| Error::InvalidValue {
        field: "threads".into(),
        value: threads.to_string(),
        expected: format!("a thread count the OS grants ({e})"),
    })?;
    Ok(Arc::new(pool))
}

/// Runs `work` on the current rayon pool while every other thread of the pool polls for
/// tasks instead of going to sleep. A forward is a hundred short parallel kernels; between
/// two of them an idle rayon worker parks, and waking it (a futex round trip, tens of
/// microseconds in a VM) cost more than the kernels gained from a second thread. ONNX
/// Runtime's intra-op threads spin the same way. The pollers stop when `work` returns.
fn with_threads_awake<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if helpers == 0 {
        return work();
    }
    /// Stops the pollers when dropped: after `work` returns, and also when it panics
    /// (else the scope would wait for them forever instead of passing the panic on).
    struct Done<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Release);
        }
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut result = None;
    rayon::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| {
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        let _done = Done(&done);
        result = Some(work());
    });
    result.expect("work ran")
}

/// Time per operation kind, summed over a forward (see [`FamilyStore::op_profile`]).
pub type OpTimes = std::collections::BTreeMap<&'static str, std::time::Duration>;

/// What a timed forward records: time per operation kind, and per layer in forward order
/// (stem, first block, each active block, final expansion, pooling, feature mix,
/// classifier — the layers of a latency look-up table).
#[derive(Default)]
struct Timings {
    ops: OpTimes,
    layers: Vec<std::time::Duration>,
}

/// Adds the time since the previous lap to an operation kind, and the time since the
/// previous layer's end to the layer list, when timing is on.
struct Stopwatch<'a> {
    timings: &'a mut Option<Timings>,
    last: std::time::Instant,
    layer_start: std::time::Instant,
}

impl<'a> Stopwatch<'a> {
    fn new(timings: &'a mut Option<Timings>) -> Self {
        let now = std::time::Instant::now();
        Stopwatch { timings, last: now, layer_start: now }
    }

    fn lap(&mut self, op: &'static str) {
        if let Some(timings) = self.timings.as_mut() {
            let now = std::time::Instant::now();
            *timings.ops.entry(op).or_default() += now - self.last;
            self.last = now;
        }
    }

    fn end_layer(&mut self) {
        if let Some(timings) = self.timings.as_mut() {
            timings.layers.push(self.last - self.layer_start);
            self.layer_start = self.last;
        }
    }
}

/// The operation labels of a depthwise k×k convolution: alone, and fused with the
/// projection after it.
fn depthwise_labels(k: usize) -> (&'static str, &'static str) {
    match k {
        3 => ("depthwise_k3", "depthwise_k3+project"),
        5 => ("depthwise_k5", "depthwise_k5+project"),
        7 => ("depthwise_k7", "depthwise_k7+project"),
        _ => ("depthwise", "depthwise+project"),
    }
}

impl SharedBlock {
    fn bytes(&self) -> usize {
        self.expand.bytes()
            + self.expand_bn.bytes()
            + self.depthwise.bytes()
            + self.depthwise_bn.bytes()
            + self.project.bytes()
            + self.project_bn.bytes()
            + self.se.as_ref().map_or(0, |se| se.reduce.bytes() + se.expand.bytes() + 4 * (se.reduce_bias.len() + se.expand_bias.len()))
    }
}

fn shared_block(net: &Supernet, spec: &BlockSpec, mid: usize, stored_k: usize) -> SharedBlock {
    let b = &net.blocks[spec.slot];
    let trim = |a: Affine, n: usize| Affine { scale: a.scale[..n].to_vec(), shift: a.shift[..n].to_vec() };
    let se = b.depth_conv.se.as_ref().map(|se| {
        let reduced = SqueezeExcite::reduced(mid);
        SharedSe {
            reduce: Matrix::transposed_prefix(se.fc.reduce.weight.val(), reduced, mid),
            reduce_bias: Array::from_tensor(&se.fc.reduce.bias.val()).data[..reduced].to_vec(),
            expand: Matrix::transposed_prefix(se.fc.expand.weight.val(), mid, reduced),
            expand_bias: Array::from_tensor(&se.fc.expand.bias.val()).data[..mid].to_vec(),
        }
    });
    SharedBlock {
        spec: *spec,
        expand: Matrix::transposed_prefix(b.inverted_bottleneck.conv.weight.val(), mid, spec.in_channels).into_panels(),
        expand_bn: trim(Affine::of(&b.inverted_bottleneck.bn), mid),
        depthwise: Matrix::transposed_prefix(b.depth_conv.conv.weight.val(), mid, stored_k * stored_k),
        depthwise_bn: trim(Affine::of(&b.depth_conv.bn), mid),
        se,
        project: Matrix::transposed_prefix(b.point_linear.conv.weight.val(), spec.out_channels, mid).into_panels(),
        project_bn: Affine::of(&b.point_linear.bn),
    }
}

fn level(net: &Supernet, specs: &[BlockSpec], config: &SubnetConfig, stored_k: usize) -> Level {
    let blocks = config
        .active_slots()
        .map(|slot| {
            let (k, mid) = (config.ks[slot], specs[slot].mid_channels(config.e[slot]));
            let own_kernels = (k < stored_k).then(|| {
                let filter = net.blocks[slot].depth_conv.active_filter(mid, k); // [mid, 1, k, k]
                Matrix::transposed_prefix(filter, mid, k * k)
            });
            LevelBlock { slot, kernel: k, mid, own_kernels }
        })
        .collect::<Vec<_>>();
    let split = Split::of(specs, config, &blocks, net.config.widths().stem);
    Level { config: config.clone(), blocks, bn: None, split }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_work_reaches_the_caller_instead_of_hanging() {
        let pool = thread_pool(2).unwrap();
        let caught = pool.install(|| std::panic::catch_unwind(|| with_threads_awake(|| panic!("kernel failed"))));
        assert!(caught.is_err());
        // The pool still works afterwards.
        assert_eq!(pool.install(|| with_threads_awake(|| 7)), 7);
    }
}
