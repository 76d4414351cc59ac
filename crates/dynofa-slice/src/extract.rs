//! Cutting a sub-network out of the supernet: OFA's
//! `get_active_subnet(preserve_weight=True)`, as a [`StaticNet`] with its own weights.
//!
//! Channels are the first ones of each layer, the depthwise kernel is the supernet's
//! transformed centre (see `dynofa_supernet::elastic_kernel`), SE and BN are sliced to match.

use dynofa_supernet::layers::{Conv, ConvBn, SeFc, SqueezeExcite, param};
use dynofa_supernet::supernet::ElasticBlock;
use dynofa_supernet::{Result, SubnetConfig, Supernet};

use crate::arch::{BlockArch, NetArch};
use crate::static_net::{StaticBlock, StaticNet};

/// The static network of `subnet`, with weights materialised from `supernet`.
pub fn extract(supernet: &Supernet, subnet: &SubnetConfig) -> Result<StaticNet> {
    let arch = NetArch::of_subnet(&supernet.config, subnet)?;
    let first = StaticBlock {
        inverted_bottleneck: None,
        depth_conv: supernet.first_block.depth_conv.clone(),
        se: None,
        point_linear: supernet.first_block.point_linear.clone(),
        arch: arch.blocks[0],
    };
    let elastic = subnet.active_slots().zip(&arch.blocks[1..]).map(|(slot, block)| extract_block(&supernet.blocks[slot], block));
    Ok(StaticNet {
        first_conv: supernet.first_conv.clone(),
        blocks: std::iter::once(first).chain(elastic).collect(),
        final_expand_layer: supernet.final_expand_layer.clone(),
        feature_mix_layer: supernet.feature_mix_layer.clone(),
        classifier: supernet.classifier.clone(),
        arch,
    })
}

fn extract_block(elastic: &ElasticBlock, arch: &BlockArch) -> StaticBlock {
    let mid = arch.depthwise_channels();
    let ib = &elastic.inverted_bottleneck;
    let dc = &elastic.depth_conv;
    let pl = &elastic.point_linear;
    let filter = dc.active_filter(mid, arch.kernel); // [mid, 1, k, k]
    let se = dc.se.as_ref().map(|se| {
        let reduced = SqueezeExcite::reduced(mid);
        SqueezeExcite { fc: SeFc { reduce: se.fc.reduce.narrow(reduced, mid), expand: se.fc.expand.narrow(mid, reduced) } }
    });
    StaticBlock {
        inverted_bottleneck: Some(ConvBn { conv: ib.conv.narrow(mid, arch.in_channels), bn: ib.bn.narrow(mid) }),
        depth_conv: ConvBn { conv: Conv { weight: param(filter) }, bn: dc.bn.narrow(mid) },
        se,
        point_linear: ConvBn { conv: pl.conv.narrow(arch.out_channels, mid), bn: pl.bn.narrow(arch.out_channels) },
        arch: *arch,
    }
}
