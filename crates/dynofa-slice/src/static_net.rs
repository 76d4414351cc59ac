//! A static MobileNetV3 — a sub-network cut out of the supernet, or one of OFA's
//! specialised networks — with materialised weights, as a Burn module.
//!
//! Field names and order follow OFA's `MobileNetV3` state dict (`blocks.N.conv.
//! {inverted_bottleneck,depth_conv,point_linear}.{conv.weight,bn.*}`,
//! `depth_conv.se.fc.{reduce,expand}`), so the weights can be read and written by name.

use burn::prelude::*;
use dynofa_supernet::Result;
use dynofa_supernet::layers::{Act, BatchNorm, Conv, ConvBn, Linear, SqueezeExcite, conv, global_mean, param};
use dynofa_supernet::pth::NamedTensor;
use dynofa_supernet::state_dict::{Precision, TensorSource, Walk, list_names, named_tensors};

use crate::arch::{BlockArch, NetArch};

/// How BatchNorm layers normalise during a forward: with their running statistics
/// (inference), or with the batch's own (re-calibration).
pub trait Normalizer {
    /// Applies BN layer `name` (its state-dict prefix, e.g. `blocks.3.conv.depth_conv.bn`).
    fn bn(&mut self, name: &str, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4>;
}

/// Inference: running statistics.
pub struct Eval;

impl Normalizer for Eval {
    fn bn(&mut self, _name: &str, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
        bn.forward(x)
    }
}

/// One block with fixed sizes.
#[derive(Module, Debug)]
pub struct StaticBlock {
    /// 1×1 expansion (absent in block 0).
    pub inverted_bottleneck: Option<ConvBn>,
    /// Depthwise k×k, `[mid, 1, k, k]`.
    pub depth_conv: ConvBn,
    /// Squeeze-and-excitation.
    pub se: Option<SqueezeExcite>,
    /// 1×1 projection.
    pub point_linear: ConvBn,
    /// Sizes, strides, activation.
    #[module(skip)]
    pub arch: BlockArch,
}

impl StaticBlock {
    fn forward(&self, x: Tensor<4>, prefix: &str, norm: &mut dyn Normalizer) -> Tensor<4> {
        let a = &self.arch;
        let mid = a.depthwise_channels();
        let y = match &self.inverted_bottleneck {
            Some(ib) => {
                let y = conv(x.clone(), ib.conv.weight.val(), None, 1, 1); // [B, mid, H, W]
                a.act.forward(norm.bn(&format!("{prefix}.inverted_bottleneck.bn"), &ib.bn, y))
            }
            None => x.clone(),
        };
        let y = conv(y, self.depth_conv.conv.weight.val(), None, a.stride, mid); // [B, mid, H/s, W/s]
        let y = a.act.forward(norm.bn(&format!("{prefix}.depth_conv.bn"), &self.depth_conv.bn, y));
        let y = match &self.se {
            Some(se) => se.forward(y),
            None => y,
        };
        let y = conv(y, self.point_linear.conv.weight.val(), None, 1, 1); // [B, out, H/s, W/s]
        let y = norm.bn(&format!("{prefix}.point_linear.bn"), &self.point_linear.bn, y);
        if a.residual { y + x } else { y }
    }
}

/// A static MobileNetV3.
#[derive(Module, Debug)]
pub struct StaticNet {
    /// Stem.
    pub first_conv: ConvBn,
    /// Blocks, block 0 first.
    pub blocks: Vec<StaticBlock>,
    /// 1×1 → BN → h-swish before pooling.
    pub final_expand_layer: ConvBn,
    /// 1×1 after pooling, then h-swish.
    pub feature_mix_layer: Conv,
    /// Classifier.
    pub classifier: Linear,
    /// The architecture.
    #[module(skip)]
    pub arch: NetArch,
}

impl StaticNet {
    /// Logits `[B, classes]` of a `[B, 3, R, R]` batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with(x, &mut Eval)
    }

    /// The forward with BatchNorm applied by `norm`.
    pub fn forward_with(&self, x: Tensor<4>, norm: &mut dyn Normalizer) -> Tensor<2> {
        let x = conv(x, self.first_conv.conv.weight.val(), None, 2, 1); // [B, stem, R/2, R/2]
        let mut x = Act::HSwish.forward(norm.bn("first_conv.bn", &self.first_conv.bn, x));
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, &format!("blocks.{i}.conv"), norm); // [B, out, h, w]
        }
        let x = conv(x, self.final_expand_layer.conv.weight.val(), None, 1, 1); // [B, 1152, h, w]
        let x = Act::HSwish.forward(norm.bn("final_expand_layer.bn", &self.final_expand_layer.bn, x));
        let x = global_mean(x); // [B, 1152, 1, 1]
        let x = conv(x, self.feature_mix_layer.weight.val(), None, 1, 1); // [B, 1536, 1, 1]
        let x = Act::HSwish.forward(x).flatten::<2>(1, 3); // [B, 1536]
        self.classifier.forward(x) // [B, classes]
    }

    /// Every tensor under OFA's state-dict name, in order (without `num_batches_tracked`).
    pub fn state_dict(&self) -> Vec<NamedTensor> {
        named_tensors(self, tensor_names(&self.arch))
    }

    /// The BatchNorm layers, in [`bn_layers`] order.
    pub fn batch_norms(&self) -> Vec<&BatchNorm> {
        let blocks = self.blocks.iter().flat_map(|b| b.inverted_bottleneck.iter().map(|ib| &ib.bn).chain([&b.depth_conv.bn, &b.point_linear.bn]));
        std::iter::once(&self.first_conv.bn).chain(blocks).chain([&self.final_expand_layer.bn]).collect()
    }

    /// [`StaticNet::batch_norms`], mutable.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let blocks =
            self.blocks.iter_mut().flat_map(|b| b.inverted_bottleneck.iter_mut().map(|ib| &mut ib.bn).chain([&mut b.depth_conv.bn, &mut b.point_linear.bn]));
        std::iter::once(&mut self.first_conv.bn).chain(blocks).chain([&mut self.final_expand_layer.bn]).collect()
    }

    /// Parameter count (weights, BN γ and β, biases; not running statistics).
    pub fn num_params(&self) -> usize {
        self.state_dict().iter().filter(|t| !t.name.ends_with("running_mean") && !t.name.ends_with("running_var")).map(|t| t.data.len()).sum()
    }
}

/// Builds a static network of architecture `arch`, asking `source` for each tensor by its
/// OFA state-dict name.
pub fn build_static(arch: &NetArch, source: &mut dyn TensorSource, device: &Device, precision: Precision) -> Result<StaticNet> {
    let mut walk = Walk::new(source, device, precision);
    let first_conv = walk.conv_bn("first_conv.conv.weight", "first_conv.bn", [arch.stem, 3, 3, 3])?;
    let blocks = arch.blocks.iter().enumerate().map(|(i, b)| build_block(&mut walk, &format!("blocks.{i}.conv"), b)).collect::<Result<Vec<_>>>()?;
    let fe = arch.final_expand;
    let final_expand_layer = walk.conv_bn("final_expand_layer.conv.weight", "final_expand_layer.bn", [fe, arch.last_channels(), 1, 1])?;
    let feature_mix_layer = Conv { weight: param(walk.tensor("feature_mix_layer.conv.weight", [arch.feature_mix, fe, 1, 1])?) };
    let classifier = Linear {
        weight: param(walk.tensor("classifier.linear.weight", [arch.num_classes, arch.feature_mix])?),
        bias: param(walk.tensor("classifier.linear.bias", [arch.num_classes])?),
    };
    Ok(StaticNet { first_conv, blocks, final_expand_layer, feature_mix_layer, classifier, arch: arch.clone() })
}

fn build_block(walk: &mut Walk, p: &str, b: &BlockArch) -> Result<StaticBlock> {
    let mid = b.depthwise_channels();
    let inverted_bottleneck = match b.mid {
        Some(mid) => Some(walk.conv_bn(&format!("{p}.inverted_bottleneck.conv.weight"), &format!("{p}.inverted_bottleneck.bn"), [mid, b.in_channels, 1, 1])?),
        None => None,
    };
    let depth_conv = walk.conv_bn(&format!("{p}.depth_conv.conv.weight"), &format!("{p}.depth_conv.bn"), [mid, 1, b.kernel, b.kernel])?;
    let se = if b.se { Some(walk.squeeze_excite(&format!("{p}.depth_conv.se"), mid)?) } else { None };
    let point_linear = walk.conv_bn(&format!("{p}.point_linear.conv.weight"), &format!("{p}.point_linear.bn"), [b.out_channels, mid, 1, 1])?;
    Ok(StaticBlock { inverted_bottleneck, depth_conv, se, point_linear, arch: *b })
}

/// Every tensor name of a static network with its shape, in build order.
pub fn tensor_names(arch: &NetArch) -> Vec<(String, Vec<usize>)> {
    list_names(|source| build_static(arch, source, &Device::flex(), Precision::F32))
}

/// The BatchNorm layers of a static network — state-dict prefix and channels — in the
/// order the forward applies them.
pub fn bn_layers(arch: &NetArch) -> Vec<(String, usize)> {
    tensor_names(arch).into_iter().filter_map(|(name, shape)| name.strip_suffix(".running_mean").map(|p| (p.to_string(), shape[0]))).collect()
}
