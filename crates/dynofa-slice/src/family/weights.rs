//! The store's weights: folded BatchNorm, row-major matrices and column panels, the
//! shared weights of each block slot (pruned to the widest level) and what each level
//! owns besides views of them.

use burn::prelude::*;
use dynofa_kernels::panels::{self, PanelMatrix};
use dynofa_kernels::{Activation, Epilogue, Isa, MatRef};
use dynofa_supernet::SubnetConfig;
use dynofa_supernet::layers::{Act, BN_EPS, BatchNorm};
use dynofa_supernet::supernet::BlockSpec;
use dynofa_supernet::tensor_io::Array;

use super::forward::Split;

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
    pub(super) fn epilogue(&self, channels: usize, act: Activation) -> Epilogue<'_> {
        Epilogue { scale: &self.scale[..channels], shift: &self.shift[..channels], act }
    }

    pub(super) fn bytes(&self) -> usize {
        4 * (self.scale.len() + self.shift.len())
    }
}

/// A row-major matrix owned by the store.
#[derive(Debug, Clone)]
pub(super) struct Matrix {
    pub(super) data: Vec<f32>,
    pub(super) rows: usize,
    pub(super) cols: usize,
}

impl Matrix {
    /// A 1×1 convolution's weights `[in, out]` as column panels of the width the product
    /// kernel reads on this CPU, one copy for every level (made once: read as one
    /// contiguous run per panel, where row-major weights made the kernel fetch large
    /// matrices from L3 in a pattern the prefetchers miss).
    pub(super) fn into_panels(self) -> PanelMatrix {
        PanelMatrix::from_row_major(&self.data, self.rows, self.cols, panels::width(Isa::best()))
    }

    /// The transpose of the top-left `source_rows × source_cols` block of a tensor
    /// flattened to `[dim0, rest]`: a `[source_cols, source_rows]` matrix. PyTorch's
    /// `[out, in]` weights become `[in, out]` (what the GEMM reads without repacking),
    /// depthwise kernels `[C, k²]` become `[k², C]` (taps by channel).
    pub(super) fn transposed_prefix<const D: usize>(tensor: Tensor<D>, source_rows: usize, source_cols: usize) -> Self {
        let a = Array::from_tensor(&tensor);
        let width = a.data.len() / a.shape[0];
        let values = &a.data;
        let data = (0..source_cols).flat_map(|r| (0..source_rows).map(move |c| values[c * width + r])).collect();
        Matrix { data, rows: source_cols, cols: source_rows }
    }

    pub(super) fn view(&self, rows: usize, cols: usize) -> MatRef<'_> {
        MatRef::strided(&self.data, self.rows, self.cols, self.cols).top_left(rows, cols)
    }

    pub(super) fn bytes(&self) -> usize {
        4 * self.data.len()
    }
}

/// The shared weights of one elastic block slot, pruned to the widest level.
pub(super) struct SharedBlock {
    pub(super) spec: BlockSpec,
    pub(super) expand: PanelMatrix, // [in, mid_max]
    pub(super) expand_bn: Affine,   // [mid_max]
    pub(super) depthwise: Matrix,   // [7·7, mid_max]: taps by channel
    pub(super) depthwise_bn: Affine,
    pub(super) se: Option<SharedSe>,
    pub(super) project: PanelMatrix, // [mid_max, out]
    pub(super) project_bn: Affine,   // [out]
}

pub(super) struct SharedSe {
    pub(super) reduce: Matrix, // [mid_max, se_max]
    pub(super) reduce_bias: Vec<f32>,
    pub(super) expand: Matrix, // [se_max, mid_max]
    pub(super) expand_bias: Vec<f32>,
}

/// What one level owns besides views of the shared weights.
pub(super) struct LevelBlock {
    pub(super) slot: usize,
    pub(super) kernel: usize,
    pub(super) mid: usize,
    /// Transformed depthwise kernels `[k², mid]` when `k` is below the stored size.
    pub(super) own_kernels: Option<Matrix>,
}

/// Per-level BatchNorm (after re-calibration), one per BN layer in forward order (that of
/// [`crate::static_net::bn_layers`]).
pub(super) type LevelBn = Vec<Affine>;

pub(super) struct Level {
    pub(super) config: SubnetConfig,
    pub(super) blocks: Vec<LevelBlock>,
    pub(super) bn: Option<LevelBn>,
    pub(super) split: Split,
}

pub(super) fn act(a: Act) -> Activation {
    match a {
        Act::None => Activation::None,
        Act::Relu => Activation::Relu,
        Act::HSwish => Activation::HSwish,
    }
}

impl SharedBlock {
    pub(super) fn bytes(&self) -> usize {
        self.expand.bytes()
            + self.expand_bn.bytes()
            + self.depthwise.bytes()
            + self.depthwise_bn.bytes()
            + self.project.bytes()
            + self.project_bn.bytes()
            + self.se.as_ref().map_or(0, |se| se.reduce.bytes() + se.expand.bytes() + 4 * (se.reduce_bias.len() + se.expand_bias.len()))
    }
}
