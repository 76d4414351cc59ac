//! Building a store: the shared weights pruned to the widest level, each level's own
//! kernels and split, buffers sized for the most demanding level.

use std::sync::Arc;

use dynofa_supernet::layers::SqueezeExcite;
use dynofa_supernet::supernet::BlockSpec;
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{Error, Result, SubnetConfig, Supernet};

use super::forward::{BatchHead, Split, Workspace};
use super::weights::{Affine, Level, LevelBlock, Matrix, SharedBlock, SharedSe};
use super::{FamilyStore, check_levels};

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
        let blocks = specs.iter().zip(&widest).map(|(spec, widest)| widest.map(|mid| shared_block(supernet, spec, mid, stored_k))).collect();
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
}

/// A rayon pool of `threads` threads (an error names the count the OS refused).
fn thread_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    let pool = dynofa_kernels::threads::pool(threads).map_err(|e| Error::InvalidValue {
        field: "threads".into(),
        value: threads.to_string(),
        expected: format!("a thread count the OS grants ({e})"),
    })?;
    Ok(Arc::new(pool))
}

/// The shared weights of `spec`'s slot, pruned to `mid` channels.
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

/// Level `config`: its blocks (with their own kernels where `k` is below the stored size)
/// and its split.
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
