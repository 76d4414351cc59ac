//! The architecture of a static (specialised) MobileNetV3: the concrete layer sizes a
//! sub-network of the supernet resolves to, or that an OFA `net.config` describes.

use dynofa_supernet::layers::Act;
use dynofa_supernet::supernet::BlockSpec;
use dynofa_supernet::{SubnetConfig, SupernetConfig};

use dynofa_supernet::Result;

/// One inverted-residual block with fixed sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockArch {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Expanded width, or `None` when the block has no 1×1 expansion (block 0).
    pub mid: Option<usize>,
    /// Activation of the expansion and depthwise layers.
    pub act: Act,
    /// Squeeze-and-excitation after the depthwise layer.
    pub se: bool,
    /// Identity shortcut.
    pub residual: bool,
}

impl BlockArch {
    /// Channels of the depthwise layer.
    pub fn depthwise_channels(&self) -> usize {
        self.mid.unwrap_or(self.in_channels)
    }
}

/// A whole static network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetArch {
    /// Stem output channels (3×3 stride-2 conv, BN, h-swish).
    pub stem: usize,
    /// Blocks in order, block 0 first.
    pub blocks: Vec<BlockArch>,
    /// Final 1×1 expansion width.
    pub final_expand: usize,
    /// Feature mix width.
    pub feature_mix: usize,
    /// Classes.
    pub num_classes: usize,
    /// Input resolution the network was made for.
    pub resolution: usize,
}

impl NetArch {
    /// The static architecture of `subnet` (validated against `supernet`).
    pub fn of_subnet(supernet: &SupernetConfig, subnet: &SubnetConfig) -> Result<Self> {
        supernet.validate(subnet)?;
        let widths = supernet.widths();
        let first =
            BlockArch { in_channels: widths.stem, out_channels: widths.stem, kernel: 3, stride: 1, mid: None, act: Act::Relu, se: false, residual: true };
        let specs = BlockSpec::all(supernet);
        let elastic = subnet.active_slots().map(|slot| {
            let spec = &specs[slot];
            BlockArch {
                in_channels: spec.in_channels,
                out_channels: spec.out_channels,
                kernel: subnet.ks[slot],
                stride: spec.stride,
                mid: Some(spec.mid_channels(subnet.e[slot])),
                act: spec.act,
                se: spec.se,
                residual: spec.residual,
            }
        });
        Ok(NetArch {
            stem: widths.stem,
            blocks: std::iter::once(first).chain(elastic).collect(),
            final_expand: widths.final_expand,
            feature_mix: widths.feature_mix,
            num_classes: supernet.num_classes,
            resolution: subnet.resolution(),
        })
    }

    /// Output channels of the last block.
    pub fn last_channels(&self) -> usize {
        self.blocks.last().map_or(self.stem, |b| b.out_channels)
    }
}
