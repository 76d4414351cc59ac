//! The supernet's tensors under OFA's state-dict names, and building a [`Supernet`] from
//! any source of named tensors (a checkpoint, a seeded initialisation).
//!
//! The names are those of OFA's current code (`blocks.5.conv.depth_conv.conv.conv.weight`);
//! the importer maps the other spellings onto them. Building is one walk over the
//! architecture: each layer asks the source for its tensors by name and shape.

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};

use crate::arch::SupernetConfig;
use crate::elastic_kernel::KernelTransforms;
use crate::error::Result;
use crate::layers::{BatchNorm, Conv, ConvBias, ConvBn, Linear, SeFc, SqueezeExcite, param};
use crate::pth::NamedTensor;
use crate::supernet::{BlockSpec, ElasticBlock, ElasticDepthConv, FirstBlock, Supernet};
use crate::tensor_io::Array;

/// BatchNorm entries of OFA's state dict (`num_batches_tracked` is read and ignored).
pub const BN_FIELDS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// Floating-point precision the supernet computes in.
///
/// `F32` is what every deployed path runs; `F64` evaluates the same network in double
/// precision, as an exact-arithmetic yardstick for judging float32 rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// 64-bit floats.
    F64,
}

impl Precision {
    /// A tensor of this precision holding `values` (row-major) with `shape`.
    pub fn tensor<const D: usize>(self, values: Vec<f32>, shape: impl Into<Vec<usize>>, device: &Device) -> Tensor<D> {
        let shape = shape.into();
        match self {
            Precision::F32 => Tensor::from_data(TensorData::new(values, shape), device),
            Precision::F64 => {
                let values: Vec<f64> = values.into_iter().map(f64::from).collect();
                Tensor::from_data(TensorData::new(values, shape), (device, DType::F64))
            }
        }
    }
}

/// A source of named f32 tensors.
pub trait TensorSource {
    /// Values (row-major) of tensor `key`, which must have exactly `shape`.
    fn tensor(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>>;
}

/// Builds a supernet of architecture `config`, asking `source` for every tensor.
pub fn build_supernet(config: &SupernetConfig, source: &mut dyn TensorSource, device: &Device) -> Result<Supernet> {
    build_supernet_in(config, source, device, Precision::F32)
}

/// [`build_supernet`] in the given precision.
pub fn build_supernet_in(config: &SupernetConfig, source: &mut dyn TensorSource, device: &Device, precision: Precision) -> Result<Supernet> {
    let widths = config.widths();
    let stem = widths.stem;
    let mut walk = Walk::new(source, device, precision);
    let first_conv = walk.conv_bn("first_conv.conv.weight", "first_conv.bn", [stem, 3, 3, 3])?;
    let first_block = FirstBlock {
        depth_conv: walk.conv_bn("blocks.0.conv.depth_conv.conv.weight", "blocks.0.conv.depth_conv.bn", [stem, 1, 3, 3])?,
        point_linear: walk.conv_bn("blocks.0.conv.point_linear.conv.weight", "blocks.0.conv.point_linear.bn", [stem, stem, 1, 1])?,
    };
    let blocks = BlockSpec::all(config).iter().map(|spec| walk.elastic_block(spec, config)).collect::<Result<Vec<_>>>()?;
    let last = widths.stages[widths.stages.len() - 1];
    let final_expand_layer = walk.conv_bn("final_expand_layer.conv.weight", "final_expand_layer.bn", [widths.final_expand, last, 1, 1])?;
    let feature_mix_layer = Conv { weight: param(walk.tensor("feature_mix_layer.conv.weight", [widths.feature_mix, widths.final_expand, 1, 1])?) };
    let classifier = Linear {
        weight: param(walk.tensor("classifier.linear.weight", [config.num_classes, widths.feature_mix])?),
        bias: param(walk.tensor("classifier.linear.bias", [config.num_classes])?),
    };
    Ok(Supernet { first_conv, first_block, blocks, final_expand_layer, feature_mix_layer, classifier, config: config.clone() })
}

/// Every tensor name of the supernet with its shape, in build order.
pub fn tensor_names(config: &SupernetConfig) -> Vec<(String, Vec<usize>)> {
    list_names(|source| build_supernet(config, source, &Device::flex()))
}

impl Supernet {
    /// Every tensor under OFA's canonical name, in build order (a state dict without
    /// `num_batches_tracked`), as f32.
    pub fn state_dict(&self) -> Vec<NamedTensor> {
        named_tensors(self, tensor_names(&self.config))
    }
}

/// Pairs a module's float parameters, in field order, with `names` (name and shape, in
/// the order its build walk asked for them). A module whose fields are declared in walk
/// order gets its state dict this way; a mismatch is a programming error and panics.
pub fn named_tensors<M: Module>(module: &M, names: Vec<(String, Vec<usize>)>) -> Vec<NamedTensor> {
    struct Collect(Vec<Array>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(Array::from_tensor(&param.val()));
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    assert_eq!(names.len(), collect.0.len(), "module fields follow the build walk");
    names
        .into_iter()
        .zip(collect.0)
        .map(|((name, shape), array)| {
            assert_eq!(shape, array.shape, "`{name}` is visited in build order");
            NamedTensor { name, shape, data: array.data }
        })
        .collect()
}

/// The names and shapes a build walk asks for, in order (`build` is run on placeholders).
pub fn list_names<T>(build: impl FnOnce(&mut dyn TensorSource) -> Result<T>) -> Vec<(String, Vec<usize>)> {
    struct Lister(Vec<(String, Vec<usize>)>);
    impl TensorSource for Lister {
        fn tensor(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
            self.0.push((key.to_string(), shape.to_vec()));
            Ok(vec![0.0; shape.iter().product()])
        }
    }
    let mut lister = Lister(Vec::new());
    build(&mut lister).map(|_| ()).expect("listing tensor names cannot fail");
    lister.0
}

/// One walk over an architecture, pulling each layer's tensors from a source by name.
pub struct Walk<'a> {
    source: &'a mut dyn TensorSource,
    device: &'a Device,
    precision: Precision,
}

impl<'a> Walk<'a> {
    /// A walk building tensors on `device` in `precision`.
    pub fn new(source: &'a mut dyn TensorSource, device: &'a Device, precision: Precision) -> Self {
        Walk { source, device, precision }
    }

    /// Tensor `key` of `shape`.
    pub fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let values = self.source.tensor(key, &shape)?;
        Ok(self.precision.tensor(values, shape, self.device))
    }

    /// BatchNorm `{prefix}.{weight,bias,running_mean,running_var}`.
    pub fn bn(&mut self, prefix: &str, channels: usize) -> Result<BatchNorm> {
        let [weight, bias, running_mean, running_var] = BN_FIELDS.map(|field| self.tensor(&format!("{prefix}.{field}"), [channels]));
        Ok(BatchNorm { weight: param(weight?), bias: param(bias?), running_mean: param(running_mean?), running_var: param(running_var?) })
    }

    /// A conv weight and its BatchNorm.
    pub fn conv_bn(&mut self, weight_key: &str, bn_prefix: &str, shape: [usize; 4]) -> Result<ConvBn> {
        let conv = Conv { weight: param(self.tensor(weight_key, shape)?) };
        Ok(ConvBn { conv, bn: self.bn(bn_prefix, shape[0])? })
    }

    /// A 1×1 conv with bias, `{prefix}.{weight,bias}`.
    pub fn conv_bias(&mut self, prefix: &str, out: usize, inp: usize) -> Result<ConvBias> {
        Ok(ConvBias { weight: param(self.tensor(&format!("{prefix}.weight"), [out, inp, 1, 1])?), bias: param(self.tensor(&format!("{prefix}.bias"), [out])?) })
    }

    /// Squeeze-and-excitation over `channels` channels, `{prefix}.fc.{reduce,expand}`.
    pub fn squeeze_excite(&mut self, prefix: &str, channels: usize) -> Result<SqueezeExcite> {
        let reduced = SqueezeExcite::reduced(channels);
        Ok(SqueezeExcite {
            fc: SeFc {
                reduce: self.conv_bias(&format!("{prefix}.fc.reduce"), reduced, channels)?,
                expand: self.conv_bias(&format!("{prefix}.fc.expand"), channels, reduced)?,
            },
        })
    }

    fn elastic_block(&mut self, spec: &BlockSpec, config: &SupernetConfig) -> Result<ElasticBlock> {
        let p = format!("blocks.{}.conv", spec.slot + 1);
        let mid = spec.mid_channels(config.max_expand());
        let k = config.max_kernel();
        let inverted_bottleneck =
            self.conv_bn(&format!("{p}.inverted_bottleneck.conv.conv.weight"), &format!("{p}.inverted_bottleneck.bn.bn"), [mid, spec.in_channels, 1, 1])?;
        let conv = Conv { weight: param(self.tensor(&format!("{p}.depth_conv.conv.conv.weight"), [mid, 1, k, k])?) };
        let kernel = KernelTransforms {
            m7to5: param(self.tensor(&format!("{p}.depth_conv.conv.7to5_matrix"), [25, 25])?),
            m5to3: param(self.tensor(&format!("{p}.depth_conv.conv.5to3_matrix"), [9, 9])?),
        };
        let bn = self.bn(&format!("{p}.depth_conv.bn.bn"), mid)?;
        let se = if spec.se { Some(self.squeeze_excite(&format!("{p}.depth_conv.se"), mid)?) } else { None };
        let point_linear = self.conv_bn(&format!("{p}.point_linear.conv.conv.weight"), &format!("{p}.point_linear.bn.bn"), [spec.out_channels, mid, 1, 1])?;
        Ok(ElasticBlock { inverted_bottleneck, depth_conv: ElasticDepthConv { conv, kernel, bn, se }, point_linear })
    }
}
