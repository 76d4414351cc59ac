//! The supernet's building blocks, each run at an active width: 2-D convolutions whose
//! weights are sliced to the first channels, eval-mode BatchNorm, squeeze-and-excitation,
//! and the activations of MobileNetV3.
//!
//! Field names follow OFA's state-dict paths (`conv`, `bn`, `weight`, `running_mean`, …)
//! so that importing a checkpoint is a walk over the same names.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// BatchNorm epsilon used by OFA.
pub const BN_EPS: f64 = 1e-5;

/// Activation function of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// No activation.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `x · relu6(x + 3) / 6`.
    HSwish,
}

impl Act {
    /// Applies the activation.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::None => x,
            Act::Relu => activation::relu(x),
            Act::HSwish => x.clone() * h_sigmoid(x),
        }
    }
}

/// `relu6(x + 3) / 6`.
pub fn h_sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    (x + 3.0).clamp(0.0, 6.0) / 6.0
}

/// A parameter tensor built from a tensor.
pub fn param<const D: usize>(tensor: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(tensor)
}

/// BatchNorm with its running statistics, applied in eval mode to the first channels.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// γ, `[C]`.
    pub weight: Param<Tensor<1>>,
    /// β, `[C]`.
    pub bias: Param<Tensor<1>>,
    /// Running mean, `[C]`.
    pub running_mean: Param<Tensor<1>>,
    /// Running (unbiased) variance, `[C]`.
    pub running_var: Param<Tensor<1>>,
}

impl BatchNorm {
    /// Identity statistics for `channels` channels.
    pub fn identity(channels: usize, device: &Device) -> Self {
        BatchNorm {
            weight: param(Tensor::ones([channels], device)),
            bias: param(Tensor::zeros([channels], device)),
            running_mean: param(Tensor::zeros([channels], device)),
            running_var: param(Tensor::ones([channels], device)),
        }
    }

    /// Stored channel count.
    pub fn channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The first `channels` channels, as a BatchNorm of its own.
    pub fn narrow(&self, channels: usize) -> BatchNorm {
        let first = |p: &Param<Tensor<1>>| param(p.val().slice(0..channels));
        BatchNorm { weight: first(&self.weight), bias: first(&self.bias), running_mean: first(&self.running_mean), running_var: first(&self.running_var) }
    }

    /// Per-channel `(scale, shift)` of the first `channels` entries, so that the layer is
    /// `x × scale + shift`.
    pub fn scale_shift(&self, channels: usize) -> (Tensor<1>, Tensor<1>) {
        let gamma = self.weight.val().slice(0..channels); // [C]
        let beta = self.bias.val().slice(0..channels); // [C]
        let mean = self.running_mean.val().slice(0..channels); // [C]
        let var = self.running_var.val().slice(0..channels); // [C]
        let scale = gamma / (var + BN_EPS).sqrt(); // [C]
        let shift = beta - mean * scale.clone(); // [C]
        (scale, shift)
    }

    /// `(x − mean) / sqrt(var + eps) × γ + β` over the channels of `x`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = x.dims()[1];
        let (scale, shift) = self.scale_shift(channels);
        let scale = scale.reshape([1, channels, 1, 1]); // [1, C, 1, 1]
        let shift = shift.reshape([1, channels, 1, 1]); // [1, C, 1, 1]
        x * scale + shift // [B, C, H, W]
    }
}

/// A convolution's weight, `[C_out, C_in / groups, k, k]`, run on its first channels.
#[derive(Module, Debug)]
pub struct Conv {
    /// The stored (largest) weight.
    pub weight: Param<Tensor<4>>,
}

impl Conv {
    /// Stored output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The first `out` output and `inp` input channels, as a convolution of its own.
    pub fn narrow(&self, out: usize, inp: usize) -> Conv {
        let [_, _, k, _] = self.weight.dims();
        Conv { weight: param(self.weight.val().slice([0..out, 0..inp, 0..k, 0..k])) }
    }

    /// Full 2-D convolution with the weight's first `out` output and `in` input channels.
    pub fn forward(&self, x: Tensor<4>, out: usize, stride: usize) -> Tensor<4> {
        let [_, c_in, _, _] = x.dims();
        let [_, _, k, _] = self.weight.dims();
        let w = self.weight.val().slice([0..out, 0..c_in, 0..k, 0..k]); // [out, C_in, k, k]
        conv(x, w, None, stride, 1)
    }
}

/// 2-D convolution with "same" padding `k / 2` and the given groups.
pub fn conv(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, groups: usize) -> Tensor<4> {
    let pad = weight.dims()[2] / 2;
    let options = ConvOptions::new([stride, stride], [pad, pad], [1, 1], groups);
    conv2d(x, weight, bias, options) // [B, C_out, H / stride, W / stride]
}

/// Convolution, BatchNorm and activation, OFA's `ConvLayer` / `DynamicConvLayer`.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

impl ConvBn {
    /// conv → BN → act with `out` active output channels.
    pub fn forward(&self, x: Tensor<4>, out: usize, stride: usize, act: Act) -> Tensor<4> {
        let x = self.conv.forward(x, out, stride); // [B, out, H', W']
        act.forward(self.bn.forward(x)) // [B, out, H', W']
    }
}

/// A 1×1 convolution with bias, as used inside squeeze-and-excitation.
#[derive(Module, Debug)]
pub struct ConvBias {
    /// `[C_out, C_in, 1, 1]`.
    pub weight: Param<Tensor<4>>,
    /// `[C_out]`.
    pub bias: Param<Tensor<1>>,
}

impl ConvBias {
    /// The first `out` × `inp` block, as a layer of its own.
    pub fn narrow(&self, out: usize, inp: usize) -> ConvBias {
        ConvBias { weight: param(self.weight.val().slice([0..out, 0..inp, 0..1, 0..1])), bias: param(self.bias.val().slice(0..out)) }
    }

    /// The first `out` × `in` block of the weight with its bias.
    pub fn forward(&self, x: Tensor<4>, out: usize) -> Tensor<4> {
        let c_in = x.dims()[1];
        let w = self.weight.val().slice([0..out, 0..c_in, 0..1, 0..1]); // [out, in, 1, 1]
        let b = self.bias.val().slice(0..out); // [out]
        conv(x, w, Some(b), 1, 1) // [B, out, 1, 1]
    }
}

/// The two 1×1 layers of squeeze-and-excitation (OFA's `se.fc.{reduce,expand}`).
#[derive(Module, Debug)]
pub struct SeFc {
    /// Channels → channels / 4.
    pub reduce: ConvBias,
    /// Back to channels.
    pub expand: ConvBias,
}

/// Squeeze-and-excitation at the active width.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    /// Its two layers.
    pub fc: SeFc,
}

impl SqueezeExcite {
    /// Reduced width of an SE layer over `channels` channels: `make_divisible(c / 4, 8)`.
    pub fn reduced(channels: usize) -> usize {
        crate::arch::make_divisible((channels / 4) as f64, 8)
    }

    /// mean over H, W → reduce → ReLU → expand → h-sigmoid → scale `x`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = x.dims()[1];
        let pooled = global_mean(x.clone()); // [B, C, 1, 1]
        let s = self.fc.reduce.forward(pooled, Self::reduced(channels)); // [B, C/4, 1, 1]
        let s = activation::relu(s);
        let s = h_sigmoid(self.fc.expand.forward(s, channels)); // [B, C, 1, 1]
        x * s // [B, C, H, W]
    }
}

/// Mean over the spatial dimensions, keeping them: `[B, C, H, W] → [B, C, 1, 1]`.
pub fn global_mean(x: Tensor<4>) -> Tensor<4> {
    x.mean_dim(3).mean_dim(2)
}

/// Fully connected layer, OFA's `classifier.linear`.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[out, in]`, PyTorch's layout.
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Param<Tensor<1>>,
}

impl Linear {
    /// `x Wᵀ + b`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let out = self.weight.dims()[0];
        let y = x.matmul(self.weight.val().transpose()); // [B, out]
        y + self.bias.val().reshape([1, out]) // [B, out]
    }
}
