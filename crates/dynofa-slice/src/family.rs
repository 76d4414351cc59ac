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

use burn::prelude::*;
use dynofa_kernels::conv::conv2d;
use dynofa_kernels::depthwise::{depthwise, out_size, Epilogue};
use dynofa_kernels::epilogue::{affine_act, h_sigmoid, row_means, Activation};
use dynofa_kernels::matrix::{matmul, matvec, MatRef};
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

    fn of(bn: &BatchNorm) -> Self {
        let v = |p: &burn::module::Param<Tensor<1>>| Array::from_tensor(&p.val()).data;
        Self::fold(&v(&bn.weight), &v(&bn.bias), &v(&bn.running_mean), &v(&bn.running_var))
    }

    fn prefix(&self, channels: usize) -> Epilogue<'_> {
        Epilogue { scale: &self.scale[..channels], shift: &self.shift[..channels], act: Activation::None }
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
    /// The top-left `rows × cols` block of a tensor flattened to `[dim0, rest]`.
    fn prefix<const D: usize>(tensor: Tensor<D>, rows: usize, cols: usize) -> Self {
        let a = Array::from_tensor(&tensor);
        let width = a.data.len() / a.shape[0];
        let data = (0..rows).flat_map(|r| a.data[r * width..r * width + cols].to_vec()).collect();
        Matrix { data, rows, cols }
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
    expand: Matrix,      // [mid_max, in]
    expand_bn: Affine,   // [mid_max]
    depthwise: Matrix,   // [mid_max, 7·7]
    depthwise_bn: Affine,
    se: Option<SharedSe>,
    project: Matrix,     // [out, mid_max]
    project_bn: Affine,  // [out]
}

struct SharedSe {
    reduce: Matrix, // [se_max, mid_max]
    reduce_bias: Vec<f32>,
    expand: Matrix, // [mid_max, se_max]
    expand_bias: Vec<f32>,
}

/// What one level owns besides views of the shared weights.
struct LevelBlock {
    slot: usize,
    kernel: usize,
    mid: usize,
    /// Transformed depthwise kernels `[mid, k²]` when `k` is below the stored size.
    own_kernels: Option<Matrix>,
}

/// Per-level BatchNorm (after re-calibration), one per BN layer in forward order (that of
/// [`crate::static_net::bn_layers`]).
type LevelBn = Vec<Affine>;

struct Level {
    config: SubnetConfig,
    blocks: Vec<LevelBlock>,
    bn: Option<LevelBn>,
}

/// Reusable buffers for one image, grown once to the largest level's needs.
#[derive(Default)]
struct Workspace {
    bufs: [Vec<f32>; 4],
    pooled: Vec<f32>,
    squeezed: Vec<f32>,
    gates: Vec<f32>,
    head: Vec<f32>,
}

impl Workspace {
    fn reserve(&mut self, activations: usize, channels: usize) {
        for b in self.bufs.iter_mut() {
            if b.len() < activations {
                b.resize(activations, 0.0);
            }
        }
        for b in [&mut self.pooled, &mut self.squeezed, &mut self.gates, &mut self.head] {
            if b.len() < channels {
                b.resize(channels, 0.0);
            }
        }
    }
}

/// The next per-level BN if the level has its own, else the shared one.
fn pick<'a>(own: &mut Option<std::slice::Iter<'a, Affine>>, shared: &'a Affine) -> &'a Affine {
    own.as_mut().and_then(Iterator::next).unwrap_or(shared)
}

/// One supernet's weights shared by a family of sub-networks; runs any level.
pub struct FamilyStore {
    config: SupernetConfig,
    stem: Matrix, // [stem, 27]
    stem_bn: Affine,
    block0_depthwise: Matrix, // [stem, 9]
    block0_depthwise_bn: Affine,
    block0_project: Matrix, // [stem, stem]
    block0_project_bn: Affine,
    blocks: Vec<Option<SharedBlock>>, // by slot
    final_expand: Matrix,
    final_expand_bn: Affine,
    feature_mix: Matrix,
    classifier: Matrix,
    classifier_bias: Vec<f32>,
    levels: Vec<Level>,
    active: usize,
    workspace: Workspace,
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
}

fn act(a: Act) -> Activation {
    match a {
        Act::None => Activation::None,
        Act::Relu => Activation::Relu,
        Act::HSwish => Activation::HSwish,
    }
}

impl FamilyStore {
    /// A store of `levels` (each a sub-network of `supernet`), running on `threads` threads.
    pub fn new(supernet: &Supernet, levels: &[SubnetConfig], threads: usize) -> Result<Self> {
        if levels.is_empty() {
            return Err(Error::InvalidValue { field: "levels".into(), value: "none".into(), expected: "at least one".into() });
        }
        for (i, level) in levels.iter().enumerate() {
            supernet.config.validate(level).map_err(|e| Error::InvalidValue {
                field: format!("levels[{i}]"),
                value: level.to_json(),
                expected: e.to_string(),
            })?;
        }
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
            stem: Matrix::prefix(net.first_conv.conv.weight.val(), stem, 27),
            stem_bn: Affine::of(&net.first_conv.bn),
            block0_depthwise: Matrix::prefix(net.first_block.depth_conv.conv.weight.val(), stem, 9),
            block0_depthwise_bn: Affine::of(&net.first_block.depth_conv.bn),
            block0_project: Matrix::prefix(net.first_block.point_linear.conv.weight.val(), stem, stem),
            block0_project_bn: Affine::of(&net.first_block.point_linear.bn),
            blocks,
            final_expand: Matrix::prefix(net.final_expand_layer.conv.weight.val(), widths.final_expand, widths.stages[4]),
            final_expand_bn: Affine::of(&net.final_expand_layer.bn),
            feature_mix: Matrix::prefix(net.feature_mix_layer.weight.val(), widths.feature_mix, widths.final_expand),
            classifier: Matrix::prefix(net.classifier.weight.val(), net.config.num_classes, widths.feature_mix),
            classifier_bias: Array::from_tensor(&net.classifier.bias.val()).data,
            levels: Vec::new(),
            active: 0,
            workspace: Workspace::default(),
            pool: Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().map_err(|e| {
                Error::InvalidValue {
                    field: "threads".into(),
                    value: threads.to_string(),
                    expected: format!("a thread count the OS grants ({e})"),
                }
            })?),
            threads: threads.max(1),
        };
        store.levels = levels.iter().map(|config| level(supernet, &specs, config, stored_k)).collect();
        // Size the buffers for the most demanding level now, so no forward allocates.
        let (activations, channels) = (0..store.levels.len())
            .map(|i| store.buffer_sizes(i))
            .fold((0, 0), |(a, c), (a2, c2)| (a.max(a2), c.max(c2)));
        store.workspace.reserve(activations, channels);
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
        let shared: usize = [&self.stem, &self.block0_depthwise, &self.block0_project, &self.final_expand, &self.feature_mix, &self.classifier]
            .iter()
            .map(|m| m.bytes())
            .sum::<usize>()
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
        let mut logits = vec![0.0; batch * classes];
        let pool = Arc::clone(&self.pool);
        pool.install(|| {
            for (image, out) in input.data.chunks(3 * r * r).zip(logits.chunks_mut(classes)) {
                self.forward_image(image, r, out);
            }
        });
        Ok(Array { shape: vec![batch, classes], data: logits })
    }

    /// Largest activation (values) and channel count that level `i` needs, for one image.
    fn buffer_sizes(&self, i: usize) -> (usize, usize) {
        let level = &self.levels[i];
        let widths = self.config.widths();
        let r = level.config.resolution();
        let (mut h, mut w) = (out_size(r, 3, 2), out_size(r, 3, 2));
        let mut values = (27 * h * w).max(widths.stem * h * w);
        let mut channels = widths.feature_mix.max(widths.final_expand);
        for lb in &level.blocks {
            let spec = &self.blocks[lb.slot].as_ref().expect("stored").spec;
            values = values.max(lb.mid * h * w);
            h = out_size(h, lb.kernel, spec.stride);
            w = out_size(w, lb.kernel, spec.stride);
            values = values.max(spec.out_channels * h * w);
            channels = channels.max(lb.mid);
        }
        (values.max(widths.final_expand * h * w), channels)
    }

    fn forward_image(&mut self, image: &[f32], r: usize, logits: &mut [f32]) {
        let level = &self.levels[self.active];
        let threads = self.threads;
        let ws = &mut self.workspace;
        let mut own_bn = level.bn.as_ref().map(|v| v.iter());
        let widths = self.config.widths();
        let stem = widths.stem;
        let (mut h, mut w) = (out_size(r, 3, 2), out_size(r, 3, 2));
        let [cur, t1, t2, t3] = &mut ws.bufs;

        // Stem: conv 3×3 s2 → BN → h-swish.
        conv2d(image, 3, r, r, self.stem.view(stem, 27), 3, 2, t3, cur, threads);
        let a = pick(&mut own_bn, &self.stem_bn);
        affine_act(cur, h * w, &a.scale, &a.shift, Activation::HSwish, None);
        // Block 0: depthwise 3×3 → BN → ReLU → 1×1 → BN, + input.
        let a = pick(&mut own_bn, &self.block0_depthwise_bn);
        depthwise(cur, h, w, self.block0_depthwise.view(stem, 9), 3, 1, Epilogue { act: Activation::Relu, ..a.prefix(stem) }, t1);
        matmul(t2, self.block0_project.view(stem, stem), MatRef::dense(t1, stem, h * w), threads);
        let a = pick(&mut own_bn, &self.block0_project_bn);
        affine_act(t2, h * w, &a.scale, &a.shift, Activation::None, Some(&cur[..stem * h * w]));
        std::mem::swap(cur, t2);

        for lb in &level.blocks {
            let sb = self.blocks[lb.slot].as_ref().expect("every level's slots are stored");
            let spec = &sb.spec;
            let (mid, k, n) = (lb.mid, lb.kernel, h * w);
            let activation = act(spec.act);
            // Expand 1×1 → BN → act.
            matmul(t1, sb.expand.view(mid, spec.in_channels), MatRef::dense(cur, spec.in_channels, n), threads);
            let a = pick(&mut own_bn, &sb.expand_bn);
            affine_act(t1, n, &a.scale[..mid], &a.shift[..mid], activation, None);
            // Depthwise k×k → BN → act.
            let kernels = match &lb.own_kernels {
                Some(m) => m.view(mid, k * k),
                None => sb.depthwise.view(mid, k * k),
            };
            let a = pick(&mut own_bn, &sb.depthwise_bn);
            depthwise(t1, h, w, kernels, k, spec.stride, Epilogue { act: activation, ..a.prefix(mid) }, t2);
            h = out_size(h, k, spec.stride);
            w = out_size(w, k, spec.stride);
            let n = h * w;
            // Squeeze-and-excitation.
            if let Some(se) = &sb.se {
                let reduced = SqueezeExcite::reduced(mid);
                let (pooled, squeezed, gates) = (&mut ws.pooled[..mid], &mut ws.squeezed[..reduced], &mut ws.gates[..mid]);
                row_means(&t2[..mid * n], n, pooled);
                matvec(squeezed, se.reduce.view(reduced, mid), pooled, Some(&se.reduce_bias[..reduced]));
                squeezed.iter_mut().for_each(|v| *v = v.max(0.0));
                matvec(gates, se.expand.view(mid, reduced), squeezed, Some(&se.expand_bias[..mid]));
                for (c, row) in t2[..mid * n].chunks_mut(n).enumerate() {
                    let gate = h_sigmoid(gates[c]);
                    row.iter_mut().for_each(|v| *v *= gate);
                }
            }
            // Project 1×1 → BN (+ input).
            let out = spec.out_channels;
            matmul(t3, sb.project.view(out, mid), MatRef::dense(t2, mid, n), threads);
            let a = pick(&mut own_bn, &sb.project_bn);
            let residual = spec.residual.then_some(&cur[..out * n]);
            affine_act(t3, n, &a.scale, &a.shift, Activation::None, residual);
            std::mem::swap(cur, t3);
        }

        // Head: 1×1 → BN → h-swish → mean → 1×1 → h-swish → classifier.
        let (fe, fm, n) = (widths.final_expand, widths.feature_mix, h * w);
        let last = widths.stages[4];
        matmul(t1, self.final_expand.view(fe, last), MatRef::dense(cur, last, n), threads);
        let a = pick(&mut own_bn, &self.final_expand_bn);
        affine_act(t1, n, &a.scale, &a.shift, Activation::HSwish, None);
        let (pooled, head) = (&mut ws.pooled[..fe], &mut ws.head[..fm]);
        row_means(&t1[..fe * n], n, pooled);
        matvec(head, self.feature_mix.view(fm, fe), pooled, None);
        head.iter_mut().for_each(|v| *v = Activation::HSwish.apply(*v));
        matvec(logits, self.classifier.view(self.config.num_classes, fm), head, Some(&self.classifier_bias));
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
            reduce: Matrix::prefix(se.fc.reduce.weight.val(), reduced, mid),
            reduce_bias: Array::from_tensor(&se.fc.reduce.bias.val()).data[..reduced].to_vec(),
            expand: Matrix::prefix(se.fc.expand.weight.val(), mid, reduced),
            expand_bias: Array::from_tensor(&se.fc.expand.bias.val()).data[..mid].to_vec(),
        }
    });
    SharedBlock {
        spec: *spec,
        expand: Matrix::prefix(b.inverted_bottleneck.conv.weight.val(), mid, spec.in_channels),
        expand_bn: trim(Affine::of(&b.inverted_bottleneck.bn), mid),
        depthwise: Matrix::prefix(b.depth_conv.conv.weight.val(), mid, stored_k * stored_k),
        depthwise_bn: trim(Affine::of(&b.depth_conv.bn), mid),
        se,
        project: Matrix::prefix(b.point_linear.conv.weight.val(), spec.out_channels, mid),
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
                Matrix::prefix(filter, mid, k * k)
            });
            LevelBlock { slot, kernel: k, mid, own_kernels }
        })
        .collect();
    Level { config: config.clone(), blocks, bn: None }
}
