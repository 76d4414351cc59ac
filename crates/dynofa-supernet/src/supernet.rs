//! The OFA-MobileNetV3 supernet and its dynamic forward.
//!
//! Follows `OFAMobileNetV3` of the `ofa` package (Cai et al., "Once-for-All", ICLR 2020):
//! stem → block 0 → five stages of elastic inverted-residual blocks → head. One forward
//! runs any sub-network by slicing the stored (largest) weights: the first `d` blocks of a
//! stage, the first `mid` channels of a block, the transformed centre of its kernel.

use burn::prelude::*;

use crate::arch::{BLOCKS_PER_STAGE, SLOTS, STAGE_HSWISH, STAGE_SE, STAGE_STRIDES, STAGES, SubnetConfig, SupernetConfig, make_divisible};
use crate::elastic_kernel::KernelTransforms;
use crate::error::Result;
use crate::layers::{Act, BatchNorm, Conv, ConvBn, Linear, SqueezeExcite, global_mean};

/// The fixed (non-elastic) facts of one elastic block slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    /// Slot index, `stage × 4 + j` (the block is `blocks.{slot + 1}` in OFA's names).
    pub slot: usize,
    /// Stage, 0..5.
    pub stage: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Activation of the expand and depthwise layers.
    pub act: Act,
    /// Whether the block has squeeze-and-excitation.
    pub se: bool,
    /// Whether the block adds its input (identity shortcut).
    pub residual: bool,
}

impl BlockSpec {
    /// Every slot of a supernet, in order.
    pub fn all(config: &SupernetConfig) -> Vec<BlockSpec> {
        let widths = config.widths();
        (0..SLOTS)
            .map(|slot| {
                let (stage, j) = (slot / BLOCKS_PER_STAGE, slot % BLOCKS_PER_STAGE);
                let out_channels = widths.stages[stage];
                let in_channels = match (stage, j) {
                    (0, 0) => widths.stem,
                    (_, 0) => widths.stages[stage - 1],
                    _ => out_channels,
                };
                BlockSpec {
                    slot,
                    stage,
                    in_channels,
                    out_channels,
                    stride: if j == 0 { STAGE_STRIDES[stage] } else { 1 },
                    act: if STAGE_HSWISH[stage] { Act::HSwish } else { Act::Relu },
                    se: STAGE_SE[stage],
                    residual: j != 0,
                }
            })
            .collect()
    }

    /// Middle (expanded) channels at expand ratio `e`:
    /// `make_divisible(round(in × e), 8)`.
    pub fn mid_channels(&self, e: usize) -> usize {
        make_divisible((self.in_channels * e) as f64, 8)
    }
}

/// Block 0: depthwise 3×3 → BN → ReLU → 1×1 → BN, with an identity shortcut. Never elastic.
#[derive(Module, Debug)]
pub struct FirstBlock {
    /// Depthwise 3×3.
    pub depth_conv: ConvBn,
    /// 1×1 projection.
    pub point_linear: ConvBn,
}

impl FirstBlock {
    /// Runs the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = x.dims()[1];
        let w = self.depth_conv.conv.weight.val(); // [C, 1, 3, 3]
        let y = crate::layers::conv(x.clone(), w, None, 1, c); // [B, C, H, W]
        let y = Act::Relu.forward(self.depth_conv.bn.forward(y));
        let y = self.point_linear.forward(y, c, 1, Act::None); // [B, C, H, W]
        y + x
    }
}

/// The depthwise part of an elastic block: filter, kernel transforms, BN and SE.
#[derive(Module, Debug)]
pub struct ElasticDepthConv {
    /// Stored 7×7 depthwise filter, `[mid_max, 1, 7, 7]`.
    pub conv: Conv,
    /// Transforms to the 5×5 and 3×3 kernels.
    pub kernel: KernelTransforms,
    /// BN over `mid_max` channels.
    pub bn: BatchNorm,
    /// Squeeze-and-excitation (stages with SE only).
    pub se: Option<SqueezeExcite>,
}

impl ElasticDepthConv {
    /// The active depthwise filter `[mid, 1, k, k]`.
    pub fn active_filter(&self, mid: usize, k: usize) -> Tensor<4> {
        let [_, _, big, _] = self.conv.weight.dims();
        let stored = self.conv.weight.val().slice([0..mid, 0..1, 0..big, 0..big]); // [mid, 1, 7, 7]
        self.kernel.active_filter(stored, k)
    }
}

/// An elastic inverted-residual block (OFA's `DynamicMBConvLayer` in a `ResidualBlock`).
#[derive(Module, Debug)]
pub struct ElasticBlock {
    /// 1×1 expansion, `[mid_max, in, 1, 1]`.
    pub inverted_bottleneck: ConvBn,
    /// Depthwise k×k with BN and SE.
    pub depth_conv: ElasticDepthConv,
    /// 1×1 projection, `[out, mid_max, 1, 1]`.
    pub point_linear: ConvBn,
}

impl ElasticBlock {
    /// Runs the block with kernel size `k` and expand ratio `e`.
    pub fn forward(&self, x: Tensor<4>, spec: &BlockSpec, k: usize, e: usize) -> Tensor<4> {
        let mid = spec.mid_channels(e);
        let y = self.inverted_bottleneck.forward(x.clone(), mid, 1, spec.act); // [B, mid, H, W]
        let filter = self.depth_conv.active_filter(mid, k); // [mid, 1, k, k]
        let y = crate::layers::conv(y, filter, None, spec.stride, mid); // [B, mid, H/s, W/s]
        let y = spec.act.forward(self.depth_conv.bn.forward(y));
        let y = match &self.depth_conv.se {
            Some(se) => se.forward(y),
            None => y,
        };
        let y = self.point_linear.forward(y, spec.out_channels, 1, Act::None); // [B, out, H/s, W/s]
        if spec.residual { y + x } else { y }
    }
}

/// The OFA-MobileNetV3 supernet with its stored (largest) weights.
#[derive(Module, Debug)]
pub struct Supernet {
    /// Stem: 3×3 stride 2 → BN → h-swish.
    pub first_conv: ConvBn,
    /// Block 0.
    pub first_block: FirstBlock,
    /// The 20 elastic block slots.
    pub blocks: Vec<ElasticBlock>,
    /// 1×1 → BN → h-swish before pooling.
    pub final_expand_layer: ConvBn,
    /// 1×1 after pooling (no BN), then h-swish.
    pub feature_mix_layer: Conv,
    /// The classifier.
    pub classifier: Linear,
    /// Architecture this supernet was built for.
    #[module(skip)]
    pub config: SupernetConfig,
}

/// A point inside the forward where an intermediate output can be looked at, named as
/// OFA names the module that produced it (`first_conv`, `blocks.N`, …).
pub type Tap<'a> = &'a mut dyn FnMut(&str, &Tensor<4>);

impl Supernet {
    /// Logits `[B, classes]` of sub-network `subnet` on a `[B, 3, R, R]` batch.
    pub fn forward(&self, x: Tensor<4>, subnet: &SubnetConfig) -> Result<Tensor<2>> {
        self.forward_traced(x, subnet, &mut |_, _| {})
    }

    /// [`Supernet::forward`], handing each layer's output to `tap` on the way.
    pub fn forward_traced(&self, x: Tensor<4>, subnet: &SubnetConfig, tap: Tap<'_>) -> Result<Tensor<2>> {
        self.config.validate(subnet)?;
        let [_, channels, _, _] = x.dims();
        if channels != 3 {
            return Err(arch_error("input", format!("{channels} channels"), "3 (RGB)"));
        }
        let widths = self.config.widths();
        let x = self.first_conv.forward(x, widths.stem, 2, Act::HSwish); // [B, 24, R/2, R/2]
        tap("first_conv", &x);
        let mut x = self.first_block.forward(x); // [B, 24, R/2, R/2]
        tap("blocks.0", &x);
        let specs = BlockSpec::all(&self.config);
        for slot in subnet.active_slots() {
            let spec = &specs[slot];
            x = self.blocks[slot].forward(x, spec, subnet.ks[slot], subnet.e[slot]); // [B, out, h, w]
            tap(&format!("blocks.{}", slot + 1), &x);
        }
        let x = self.final_expand_layer.forward(x, widths.final_expand, 1, Act::HSwish); // [B, 1152, h, w]
        tap("final_expand_layer", &x);
        let x = global_mean(x); // [B, 1152, 1, 1]
        let x = self.feature_mix_layer.forward(x, widths.feature_mix, 1); // [B, 1536, 1, 1]
        let x = Act::HSwish.forward(x);
        tap("feature_mix_layer", &x);
        let x = x.flatten::<2>(1, 3); // [B, 1536]
        Ok(self.classifier.forward(x)) // [B, classes]
    }

    /// Number of stages (always 5 for MobileNetV3).
    pub fn stages(&self) -> usize {
        STAGES
    }
}

fn arch_error(field: &str, value: String, expected: &str) -> crate::error::Error {
    crate::error::Error::InvalidValue { field: field.into(), value, expected: expected.into() }
}
