//! A family on a GPU: every level a network of its own, materialised once on the device
//! and kept there (elastic kernels transformed, BatchNorm folded into the weights), so that
//! a frame uploads its input, runs the level's kernels and reads the logits back. Switching
//! level sets an index.
//!
//! # Layout (the trade-off)
//!
//! The CPU store keeps one copy of the supernet and runs each level on views of it, since
//! a GEMM reads a prefix of columns in place. On a GPU a prefix view of a weight is not a
//! tensor a kernel can take: Burn copies the slice on every use — the supernet's dynamic
//! forward on the device does exactly that, every frame. Here each level owns contiguous,
//! folded weights instead: the family costs the sum of its levels' weights (181 MB for the
//! six levels of `dynofa run`'s default GPU family, against 41 MB for the CPU store), and
//! a frame runs no copies. `cargo xtask bench gpu_layout` measures the layouts on the same
//! adapter (README: 1.5–2.1× faster than the shared weights on lavapipe).
//!
//! # The forward
//!
//! Activations stay pixel-major, `[B, H, W, C]` (as the CPU path): a 1×1 convolution is
//! then one matrix product `[B·H·W, in] × [in, out]`, whose shift, activation and residual
//! the backend fuses into the product's epilogue; a depthwise k×k convolution runs on the
//! same memory seen as `[B, C, H, W]` (Burn's GPU convolutions keep channels last) without
//! a bias, so that the backend's depthwise kernel may take it, the BN shift and the
//! activation being one fused element-wise pass after it.
//!
//! Runs on any Burn device: dynofa places it on GPUs (Burn's wgpu backend); the tests also
//! run it on the CPU (flex), where it is checked against the Burn reference.

use std::time::Instant;

use burn::module::Param;
use burn::prelude::*;
use dynofa_device::Processor;
use dynofa_supernet::layers::{Act, h_sigmoid, param};
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{Error, Result, SubnetConfig, Supernet, SupernetConfig};

use crate::arch::BlockArch;
use crate::extract::extract;
use crate::family::{Affine, check_levels};
use crate::placement::LoadedFamily;
use crate::static_net::StaticNet;

/// `values` as a tensor `[n]`.
fn vector(values: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(burn::tensor::TensorData::new(values.to_vec(), [values.len()]), device)
}

/// A k×k convolution with its BatchNorm folded in: `conv(x, W·scale) + shift`.
#[derive(Module, Debug)]
struct FoldedConv {
    /// `[C_out, C_in / groups, k, k]`, scaled per output channel.
    weight: Param<Tensor<4>>,
    /// `[C_out]`.
    shift: Param<Tensor<1>>,
}

impl FoldedConv {
    fn fold(weight: Tensor<4>, bn: &Affine) -> Self {
        let out = weight.dims()[0];
        let device = weight.device();
        let scale = vector(&bn.scale, &device).reshape([out, 1, 1, 1]);
        FoldedConv { weight: param(weight * scale), shift: param(vector(&bn.shift, &device)) }
    }

    /// `act(conv(x) + shift)` on pixel-major activations: `[B, H, W, C_in] → [B, H', W', C_out]`.
    fn forward(&self, x: Tensor<4>, stride: usize, groups: usize, act: Act) -> Tensor<4> {
        let channels = self.shift.dims()[0];
        let x = x.permute([0, 3, 1, 2]); // [B, C_in, H, W]: the same memory
        let y = dynofa_supernet::layers::conv(x, self.weight.val(), None, stride, groups); // [B, C_out, H', W']
        let y = y.permute([0, 2, 3, 1]); // [B, H', W', C_out]
        act.forward(y + self.shift.val().reshape([1, 1, 1, channels]))
    }
}

/// A 1×1 convolution with its BatchNorm folded in, as a product on pixels:
/// `[B·H·W, in] × [in, out] + shift`.
#[derive(Module, Debug)]
struct Pointwise {
    /// `[in, out]`, scaled per output column.
    weight: Param<Tensor<2>>,
    /// `[out]`.
    shift: Param<Tensor<1>>,
}

impl Pointwise {
    /// From a `[out, in, 1, 1]` convolution weight and its BatchNorm.
    fn fold(weight: Tensor<4>, bn: &Affine) -> Self {
        let [out, inp, _, _] = weight.dims();
        let device = weight.device();
        let scale = vector(&bn.scale, &device).reshape([1, out]);
        let weight = weight.reshape([out, inp]).transpose() * scale; // [in, out]
        Pointwise { weight: param(weight), shift: param(vector(&bn.shift, &device)) }
    }

    /// `act(x W + shift) (+ residual)`: `[B, H, W, in] → [B, H, W, out]`.
    fn forward(&self, x: Tensor<4>, act: Act, residual: Option<Tensor<4>>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let out = self.shift.dims()[0];
        let pixels = x.reshape([b * h * w, c]); // [B·H·W, in]
        let y = act.forward(pixels.matmul(self.weight.val()) + self.shift.val().reshape([1, out])); // [B·H·W, out]
        let y = match residual {
            Some(r) => y + r.reshape([b * h * w, out]),
            None => y,
        };
        y.reshape([b, h, w, out])
    }
}

/// Squeeze-and-excitation on pixel-major activations.
#[derive(Module, Debug)]
struct FoldedSe {
    /// `[C, C/4]`.
    reduce: Param<Tensor<2>>,
    reduce_bias: Param<Tensor<1>>,
    /// `[C/4, C]`.
    expand: Param<Tensor<2>>,
    expand_bias: Param<Tensor<1>>,
}

impl FoldedSe {
    /// mean over H, W → reduce → ReLU → expand → h-sigmoid → scale: `[B, H, W, C]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, _, c] = x.dims();
        let reduced = self.reduce_bias.dims()[0];
        let pooled = x.clone().mean_dim(1).mean_dim(2).reshape([b, c]); // [B, C]
        let s = Act::Relu.forward(pooled.matmul(self.reduce.val()) + self.reduce_bias.val().reshape([1, reduced])); // [B, C/4]
        let gate = h_sigmoid(s.matmul(self.expand.val()) + self.expand_bias.val().reshape([1, c])); // [B, C]
        x * gate.reshape([b, 1, 1, c])
    }
}

/// One block: expansion (not in block 0), depthwise, squeeze-and-excitation, projection.
#[derive(Module, Debug)]
struct FoldedBlock {
    expand: Option<Pointwise>,
    depthwise: FoldedConv,
    se: Option<FoldedSe>,
    project: Pointwise,
    #[module(skip)]
    arch: BlockArch,
}

impl FoldedBlock {
    /// `[B, H, W, in] → [B, H/s, W/s, out]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let a = &self.arch;
        let y = match &self.expand {
            Some(expand) => expand.forward(x.clone(), a.act, None), // [B, H, W, mid]
            None => x.clone(),
        };
        let y = self.depthwise.forward(y, a.stride, a.depthwise_channels(), a.act); // [B, H/s, W/s, mid]
        let y = match &self.se {
            Some(se) => se.forward(y),
            None => y,
        };
        self.project.forward(y, Act::None, a.residual.then_some(x)) // [B, H/s, W/s, out]
    }
}

/// What [`FoldedNet::forward`] hands its `after_layer` callback: a layer's output, not yet
/// waited for.
enum LayerOutput<'a> {
    /// Pixel-major `[B, h, w, C]`.
    Map(&'a Tensor<4>),
    /// `[B, C]`.
    Vector(&'a Tensor<2>),
}

impl LayerOutput<'_> {
    /// Read back channel-major, as the supernet's taps are: `[B, C, h, w]`, or `[B, C, 1, 1]`
    /// for a vector.
    fn to_array(&self) -> Array {
        match self {
            LayerOutput::Map(x) => Array::from_tensor(&(*x).clone().permute([0, 3, 1, 2])),
            LayerOutput::Vector(x) => {
                let [b, c] = x.dims();
                Array::from_tensor(&(*x).clone().reshape([b, c, 1, 1]))
            }
        }
    }
}

/// A level's network on the device, BatchNorm folded.
#[derive(Module, Debug)]
struct FoldedNet {
    stem: FoldedConv,
    blocks: Vec<FoldedBlock>,
    final_expand: Pointwise,
    /// `[final_expand, feature_mix]`.
    feature_mix: Param<Tensor<2>>,
    /// `[feature_mix, classes]`.
    classifier: Param<Tensor<2>>,
    classifier_bias: Param<Tensor<1>>,
}

impl FoldedNet {
    /// Folds `net` with the BatchNorm statistics `bn` (one per BN layer, in
    /// [`crate::static_net::bn_layers`] order).
    fn fold(net: &StaticNet, bn: &[Affine]) -> Self {
        let mut bn = bn.iter();
        let mut next = || bn.next().expect("one affine per BatchNorm layer");
        let linear = |w: Tensor<4>| {
            let [out, inp, _, _] = w.dims();
            param(w.reshape([out, inp]).transpose())
        };
        let stem = FoldedConv::fold(net.first_conv.conv.weight.val(), next());
        let blocks = net
            .blocks
            .iter()
            .map(|b| FoldedBlock {
                expand: b.inverted_bottleneck.as_ref().map(|ib| Pointwise::fold(ib.conv.weight.val(), next())),
                depthwise: FoldedConv::fold(b.depth_conv.conv.weight.val(), next()),
                se: b.se.as_ref().map(|se| FoldedSe {
                    reduce: linear(se.fc.reduce.weight.val()),
                    reduce_bias: param(se.fc.reduce.bias.val()),
                    expand: linear(se.fc.expand.weight.val()),
                    expand_bias: param(se.fc.expand.bias.val()),
                }),
                project: Pointwise::fold(b.point_linear.conv.weight.val(), next()),
                arch: b.arch,
            })
            .collect();
        let final_expand = Pointwise::fold(net.final_expand_layer.conv.weight.val(), next());
        FoldedNet {
            stem,
            blocks,
            final_expand,
            feature_mix: linear(net.feature_mix_layer.weight.val()),
            classifier: param(net.classifier.weight.val().transpose()),
            classifier_bias: param(net.classifier.bias.val()),
        }
    }

    /// Logits `[B, classes]` of a `[B, 3, R, R]` batch; `after_layer` is called after each
    /// layer of a latency table (stem, each block, final expansion, pooling, feature mix,
    /// classifier) with its output.
    fn forward(&self, x: Tensor<4>, mut after_layer: impl FnMut(LayerOutput)) -> Tensor<2> {
        let x = x.permute([0, 2, 3, 1]); // [B, R, R, 3]
        let mut x = self.stem.forward(x, 2, 1, Act::HSwish); // [B, R/2, R/2, stem]
        after_layer(LayerOutput::Map(&x));
        for block in &self.blocks {
            x = block.forward(x); // [B, h, w, out]
            after_layer(LayerOutput::Map(&x));
        }
        let x = self.final_expand.forward(x, Act::HSwish, None); // [B, h, w, 1152]
        after_layer(LayerOutput::Map(&x));
        let [b, _, _, c] = x.dims();
        let x = x.mean_dim(1).mean_dim(2).reshape([b, c]); // [B, 1152]
        after_layer(LayerOutput::Vector(&x));
        let x = Act::HSwish.forward(x.matmul(self.feature_mix.val())); // [B, 1536]
        after_layer(LayerOutput::Vector(&x));
        let classes = self.classifier_bias.dims()[0];
        let logits = x.matmul(self.classifier.val()) + self.classifier_bias.val().reshape([1, classes]); // [B, classes]
        after_layer(LayerOutput::Vector(&logits));
        logits
    }

    /// The names the supernet's `forward_traced` gives the layers [`FoldedNet::forward`]
    /// reports, in order (`None` for pooling and the classifier, which it does not tap).
    fn tap_names(subnet: &SubnetConfig) -> Vec<Option<String>> {
        let blocks = std::iter::once("blocks.0".to_string()).chain(subnet.active_slots().map(|slot| format!("blocks.{}", slot + 1)));
        std::iter::once(Some("first_conv".to_string()))
            .chain(blocks.map(Some))
            .chain([Some("final_expand_layer".to_string()), None, Some("feature_mix_layer".to_string()), None])
            .collect()
    }
}

/// What the device reported when it failed to run the kernels.
fn device_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidValue { field: "GPU".into(), value: e.to_string(), expected: "a device that runs the kernels".into() }
}

/// A family's levels resident on one device, each its own folded network.
pub struct GpuFamily {
    device: Device,
    config: SupernetConfig,
    levels: Vec<(SubnetConfig, FoldedNet)>,
    active: usize,
    /// Bytes of the levels' weights on the device.
    weight_bytes: usize,
}

impl GpuFamily {
    /// The levels of `supernet` (with their own BatchNorm where `level_bn[i]` has it, one
    /// affine per BN layer in [`crate::static_net::bn_layers`] order) on `device`.
    pub fn new(supernet: &Supernet, levels: &[SubnetConfig], level_bn: &[Option<Vec<Affine>>], device: &Device) -> Result<Self> {
        check_levels(&supernet.config, levels)?;
        let mut nets = Vec::with_capacity(levels.len());
        let mut weight_bytes = 0;
        for (i, config) in levels.iter().enumerate() {
            let net = extract(supernet, config).map_err(|e| Error::InvalidValue {
                field: format!("levels[{i}]"),
                value: config.to_json(),
                expected: e.to_string(),
            })?;
            let shared: Vec<Affine> = net.batch_norms().into_iter().map(Affine::of).collect();
            let bn = level_bn.get(i).and_then(Option::as_ref).unwrap_or(&shared);
            if bn.len() != shared.len() {
                return Err(Error::InvalidValue {
                    field: format!("BatchNorm layers of level {i}"),
                    value: bn.len().to_string(),
                    expected: shared.len().to_string(),
                });
            }
            let folded = FoldedNet::fold(&net, bn).to_device(device);
            weight_bytes += 4 * folded.num_params();
            nets.push((config.clone(), folded));
        }
        Ok(GpuFamily { device: device.clone(), config: supernet.config.clone(), levels: nets, active: 0, weight_bytes })
    }

    /// The device the levels live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The supernet's configuration.
    pub fn config(&self) -> &SupernetConfig {
        &self.config
    }

    fn check_input(&self, input: &Array) -> Result<()> {
        let r = self.levels[self.active].0.resolution();
        if input.shape.len() != 4 || input.shape[1..] != [3, r, r] {
            return Err(Error::InvalidValue {
                field: "input".into(),
                value: format!("shape {:?}", input.shape),
                expected: format!("[B, 3, {r}, {r}] for level {}", self.active),
            });
        }
        Ok(())
    }

    /// The active level's logits for `input`, handing `tap` the layers that the supernet's
    /// `forward_traced` taps, under the same names and channel-major (`[B, C, h, w]`): to
    /// find where the folded network departs from the reference.
    pub fn forward_traced(&mut self, input: &Array, tap: &mut dyn FnMut(&str, Array)) -> Result<Array> {
        self.check_input(input)?;
        let (subnet, net) = &self.levels[self.active];
        let mut names = FoldedNet::tap_names(subnet).into_iter();
        let logits = net.forward(self.upload(input), |output| {
            if let Some(name) = names.next().flatten() {
                tap(&name, output.to_array());
            }
        });
        Ok(Array::from_tensor(&logits))
    }

    fn upload(&self, input: &Array) -> Tensor<4> {
        let data = burn::tensor::TensorData::new(input.data.clone(), input.shape.clone());
        Tensor::from_data(data, &self.device)
    }

    /// Waits until the device has finished what was queued.
    fn sync(&self) -> Result<()> {
        self.device.sync().map_err(device_error)
    }
}

impl LoadedFamily for GpuFamily {
    fn processor(&self) -> Processor {
        Processor::Gpu
    }

    fn len(&self) -> usize {
        self.levels.len()
    }

    fn level_config(&self, i: usize) -> &SubnetConfig {
        &self.levels[i].0
    }

    fn active(&self) -> usize {
        self.active
    }

    fn switch_to(&mut self, i: usize) -> Result<()> {
        if i >= self.levels.len() {
            return Err(Error::InvalidValue { field: "level".into(), value: i.to_string(), expected: format!("0..{}", self.levels.len()) });
        }
        self.active = i;
        Ok(())
    }

    fn threads(&self) -> usize {
        1
    }

    fn max_threads(&self) -> usize {
        1
    }

    fn set_threads(&mut self, threads: usize) -> Result<()> {
        match threads {
            1 => Ok(()),
            _ => Err(Error::InvalidValue { field: "threads".into(), value: threads.to_string(), expected: "1 (a GPU family has no thread count)".into() }),
        }
    }

    fn forward(&mut self, input: &Array) -> Result<Array> {
        self.check_input(input)?;
        let logits = self.levels[self.active].1.forward(self.upload(input), |_| {}); // [B, classes]
        let shape = logits.dims().to_vec();
        let data = logits.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::InvalidValue {
            field: "logits".into(),
            value: format!("{e:?}"),
            expected: "f32 values".into(),
        })?;
        Ok(Array { shape, data })
    }

    fn layer_times(&mut self, image: &Array, warmup: usize, iters: usize) -> Result<Vec<Vec<f64>>> {
        self.check_input(image)?;
        let net = &self.levels[self.active].1;
        let mut runs = Vec::new();
        for i in 0..iters.max(1) + warmup {
            let x = self.upload(image);
            self.sync()?;
            let mut layers = Vec::new();
            let mut last = Instant::now();
            let mut failed = None;
            let logits = net.forward(x, |_| {
                if let Err(e) = self.device.sync() {
                    failed.get_or_insert(e);
                }
                let now = Instant::now();
                layers.push((now - last).as_secs_f64() * 1e3);
                last = now;
            });
            drop(logits);
            if let Some(e) = failed {
                return Err(device_error(e));
            }
            if i >= warmup {
                runs.push(layers);
            }
        }
        Ok(runs)
    }

    fn memory_bytes(&self) -> usize {
        self.weight_bytes
    }
}
