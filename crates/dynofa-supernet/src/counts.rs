//! Parameter count and MFLOPs of a sub-network, by OFA's counting rule.
//!
//! Parameters are those of the extracted sub-network (conv and linear weights, BN γ and
//! β, SE biases; no running statistics, no kernel transforms). MFLOPs are OFA's
//! `count_net_flops` at batch 1: multiply-adds of convolutions
//! (`C_in / groups × k² × C_out × H_out × W_out`) and linear layers (`in × out`), in
//! millions; BN, activations, pooling and additions are not counted.

use serde::Serialize;

use crate::arch::{SubnetConfig, SupernetConfig};
use crate::error::Result;
use crate::layers::SqueezeExcite;
use crate::supernet::BlockSpec;

/// The size and cost of one sub-network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Counts {
    /// Parameters of the extracted sub-network.
    pub params: u64,
    /// Millions of multiply-adds for one image.
    pub mflops: f64,
}

/// Accumulates layers.
#[derive(Default)]
struct Tally {
    params: u64,
    flops: u64,
}

impl Tally {
    /// A convolution without bias, followed (or not) by BN, at output size `hw`.
    fn conv(&mut self, c_in: usize, c_out: usize, k: usize, groups: usize, hw: usize, bn: bool) {
        let weights = (c_in / groups * k * k * c_out) as u64;
        self.params += weights + if bn { 2 * c_out as u64 } else { 0 };
        self.flops += weights * (hw * hw) as u64;
    }

    /// A fully connected layer (or 1×1 conv on a 1×1 map) with bias.
    fn linear(&mut self, c_in: usize, c_out: usize) {
        self.params += (c_in * c_out + c_out) as u64;
        self.flops += (c_in * c_out) as u64;
    }
}

impl SupernetConfig {
    /// Parameters and MFLOPs of `subnet` (validated first).
    pub fn counts(&self, subnet: &SubnetConfig) -> Result<Counts> {
        self.validate(subnet)?;
        let widths = self.widths();
        let mut t = Tally::default();
        let mut hw = subnet.resolution().div_ceil(2);
        t.conv(3, widths.stem, 3, 1, hw, true); // stem
        t.conv(widths.stem, widths.stem, 3, widths.stem, hw, true); // block 0, depthwise
        t.conv(widths.stem, widths.stem, 1, 1, hw, true); // block 0, projection
        let specs = BlockSpec::all(self);
        for slot in subnet.active_slots() {
            let spec = &specs[slot];
            let (k, mid) = (subnet.ks[slot], spec.mid_channels(subnet.e[slot]));
            t.conv(spec.in_channels, mid, 1, 1, hw, true); // expand
            hw = hw.div_ceil(spec.stride);
            t.conv(mid, mid, k, mid, hw, true); // depthwise
            if spec.se {
                let reduced = SqueezeExcite::reduced(mid);
                t.linear(mid, reduced);
                t.linear(reduced, mid);
            }
            t.conv(mid, spec.out_channels, 1, 1, hw, true); // projection
        }
        let last = widths.stages[widths.stages.len() - 1];
        t.conv(last, widths.final_expand, 1, 1, hw, true);
        t.conv(widths.final_expand, widths.feature_mix, 1, 1, 1, false);
        t.linear(widths.feature_mix, self.num_classes);
        Ok(Counts { params: t.params, mflops: t.flops as f64 / 1e6 })
    }
}
