//! The layers of a sub-network as latency-table keys, by Dynamic-OFA's rule
//! (`latency_table.py`, `predict_network_latency_given_spec`): the stem `Conv`, the first
//! block and one `expanded_conv` per active block, `Conv_1`, `AvgPool2D`, `Conv_2`,
//! `Logits`; the feature size starts at `(r + 1) / 2` and a stride-2 block maps `h` to
//! `(h − 1) / 2 + 1`.

use std::fmt;

use dynofa_supernet::layers::Act;
use dynofa_supernet::supernet::BlockSpec;
use dynofa_supernet::{SubnetConfig, SupernetConfig};

/// One layer of a sub-network, as a look-up table names it. The fields are the numbers
/// of Dynamic-OFA's key strings, named as its `latency_table.py` names them (each
/// variant's doc says which is which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum LayerKey {
    /// The stem: conv 3×3 stride 2 from `r × r × 3` to `size × size × channels`.
    Conv { r: usize, size: usize, channels: usize },
    /// An inverted-residual block (the first block included): `size × size × input` →
    /// `out_size × out_size × output`.
    ExpandedConv { size: usize, input: usize, out_size: usize, output: usize, mid: usize, kernel: usize, stride: usize, id_skip: bool, se: bool, h_swish: bool },
    /// The final 1×1 expansion, `size × size × input` → `size × size × output`.
    FinalExpand { size: usize, input: usize, output: usize },
    /// Global average pooling of `size × size × channels`.
    AvgPool { size: usize, channels: usize },
    /// The feature mix layer, `1 × 1 × input` → `1 × 1 × output`.
    FeatureMix { input: usize, output: usize },
    /// The classifier, `1 × 1 × input` → `classes`.
    Logits { input: usize, classes: usize },
}

impl fmt::Display for LayerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayerKey::Conv { r, size, channels } => write!(f, "Conv-input:{r}x{r}x3-output:{size}x{size}x{channels}"),
            LayerKey::ExpandedConv { size, input, out_size, output, mid, kernel, stride, id_skip, se, h_swish } => write!(
                f,
                "expanded_conv-input:{size}x{size}x{input}-output:{out_size}x{out_size}x{output}-expand:{mid}-kernel:{kernel}-stride:{stride}-idskip:{}-se:{}-hs:{}",
                id_skip as u8, se as u8, h_swish as u8
            ),
            LayerKey::FinalExpand { size, input, output } => write!(f, "Conv_1-input:{size}x{size}x{input}-output:{size}x{size}x{output}"),
            LayerKey::AvgPool { size, channels } => write!(f, "AvgPool2D-input:{size}x{size}x{channels}-output:1x1x{channels}"),
            LayerKey::FeatureMix { input, output } => write!(f, "Conv_2-input:1x1x{input}-output:1x1x{output}"),
            LayerKey::Logits { input, classes } => write!(f, "Logits-input:1x1x{input}-output:{classes}"),
        }
    }
}

/// Feature size after a block of stride `stride` (Python's `int((h − 1) / s + 1)`).
fn after_stride(size: usize, stride: usize) -> usize {
    (size - 1) / stride + 1
}

/// The block key of `spec` at feature size `size` with kernel `k` and expand ratio `e`.
fn block_key(spec: &BlockSpec, size: usize, k: usize, e: usize) -> LayerKey {
    LayerKey::ExpandedConv {
        size,
        input: spec.in_channels,
        out_size: after_stride(size, spec.stride),
        output: spec.out_channels,
        mid: spec.mid_channels(e),
        kernel: k,
        stride: spec.stride,
        id_skip: spec.residual,
        se: spec.se,
        h_swish: spec.act == Act::HSwish,
    }
}

/// The stem and first block at resolution `r`, and the feature size after them.
fn front(config: &SupernetConfig, r: usize) -> ([LayerKey; 2], usize) {
    let stem = config.widths().stem;
    let size = r.div_ceil(2);
    let first =
        LayerKey::ExpandedConv { size, input: stem, out_size: size, output: stem, mid: stem, kernel: 3, stride: 1, id_skip: true, se: false, h_swish: false };
    ([LayerKey::Conv { r, size, channels: stem }, first], size)
}

/// The final expansion, pooling, feature mix and classifier at feature size `size`.
fn head(config: &SupernetConfig, size: usize) -> [LayerKey; 4] {
    let widths = config.widths();
    [
        LayerKey::FinalExpand { size, input: widths.stages[4], output: widths.final_expand },
        LayerKey::AvgPool { size, channels: widths.final_expand },
        LayerKey::FeatureMix { input: widths.final_expand, output: widths.feature_mix },
        LayerKey::Logits { input: widths.feature_mix, classes: config.num_classes },
    ]
}

/// The layers of `subnet`, in forward order (the order their latencies are summed in).
pub fn layer_keys(config: &SupernetConfig, subnet: &SubnetConfig) -> Vec<LayerKey> {
    let specs = BlockSpec::all(config);
    let (front, mut size) = front(config, subnet.resolution());
    let mut keys = front.to_vec();
    for slot in subnet.active_slots() {
        let key = block_key(&specs[slot], size, subnet.ks[slot], subnet.e[slot]);
        size = after_stride(size, specs[slot].stride);
        keys.push(key);
    }
    keys.extend(head(config, size));
    keys
}

/// Every key a sub-network of `config` at resolution `r` can produce (what a complete
/// table for `r` holds), sorted and without duplicates.
pub fn all_layer_keys(config: &SupernetConfig, r: usize) -> Vec<LayerKey> {
    let specs = BlockSpec::all(config);
    let (front, mut size) = front(config, r);
    let mut keys = front.to_vec();
    for spec in &specs {
        for &k in &config.kernel_sizes {
            for &e in &config.expand_ratios {
                keys.push(block_key(spec, size, k, e));
            }
        }
        size = after_stride(size, spec.stride);
    }
    keys.extend(head(config, size));
    keys.sort();
    keys.dedup();
    keys
}
