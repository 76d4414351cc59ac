//! ONNX export of a static network (opset 13, dynamic batch dimension).
//!
//! The messages are the subset of `onnx.proto` that a convolutional network needs,
//! declared with `prost` (field numbers as in `onnx.proto`). Each layer becomes standard
//! operators: `Conv` (groups for depthwise), `BatchNormalization` (inference), `Relu`,
//! h-swish as `HardSigmoid(α=1/6, β=½)` × x, SE as `GlobalAveragePool` → `Conv` → `Relu` →
//! `Conv` → `HardSigmoid` → `Mul`, and the head as `GlobalAveragePool` → `Conv` → `Flatten`
//! → `Gemm`.

use std::io::Write;
use std::path::Path;

use dynofa_supernet::Result;
use dynofa_supernet::files::write_atomically;
use dynofa_supernet::layers::{Act, BatchNorm, ConvBias};
use dynofa_supernet::tensor_io::Array;
use prost::Message;

use crate::static_net::StaticNet;

/// ONNX opset written.
pub const OPSET: i64 = 13;
/// ONNX IR version matching [`OPSET`].
const IR_VERSION: i64 = 7;

mod proto {
    //! `onnx.proto` messages (the subset used here).

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(string, tag = "6")]
        pub doc_string: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        /// 1 FLOAT, 2 INT, 7 INTS.
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        /// 1 FLOAT.
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorTypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorTypeProto {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(oneof = "DimensionValue", tags = "1, 2")]
        pub value: Option<DimensionValue>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum DimensionValue {
        #[prost(int64, tag = "1")]
        DimValue(i64),
        #[prost(string, tag = "2")]
        DimParam(String),
    }
}

use proto::*;

const FLOAT: i32 = 1;

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i, r#type: 2, ..Default::default() }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: ints.to_vec(), r#type: 7, ..Default::default() }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f, r#type: 1, ..Default::default() }
}

fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => DimensionValue::DimValue(*n as i64),
                None => DimensionValue::DimParam("batch".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { tensor_type: Some(TensorTypeProto { elem_type: FLOAT, shape: Some(TensorShapeProto { dim }) }) }),
    }
}

/// Builds the graph node by node, naming values `v0, v1, …`.
struct GraphBuilder {
    graph: GraphProto,
    next: usize,
}

impl GraphBuilder {
    fn value(&mut self) -> String {
        self.next += 1;
        format!("v{}", self.next)
    }

    fn init(&mut self, name: &str, array: &Array) -> String {
        self.graph.initializer.push(TensorProto {
            dims: array.shape.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.into(),
            raw_data: array.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.to_string()
    }

    fn node(&mut self, op: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>) -> String {
        let out = self.value();
        self.node_to(op, inputs, attribute, out)
    }

    /// A node whose output is named `out`.
    fn node_to(&mut self, op: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>, out: String) -> String {
        self.graph.node.push(NodeProto { input: inputs, output: vec![out.clone()], name: format!("{op}_{}", self.next), op_type: op.into(), attribute });
        out
    }

    fn conv(&mut self, x: String, name: &str, weight: &Array, bias: Option<&Array>, stride: usize, groups: usize) -> String {
        let k = weight.shape[2] as i64;
        let p = k / 2;
        let mut inputs = vec![x, self.init(&format!("{name}.weight"), weight)];
        if let Some(b) = bias {
            inputs.push(self.init(&format!("{name}.bias"), b));
        }
        let attrs = vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("pads", &[p, p, p, p]),
            attr_ints("strides", &[stride as i64, stride as i64]),
            attr_int("group", groups as i64),
        ];
        self.node("Conv", inputs, attrs)
    }

    fn bn(&mut self, x: String, name: &str, bn: &BatchNorm) -> String {
        let inputs = vec![
            x,
            self.init(&format!("{name}.weight"), &Array::from_tensor(&bn.weight.val())),
            self.init(&format!("{name}.bias"), &Array::from_tensor(&bn.bias.val())),
            self.init(&format!("{name}.running_mean"), &Array::from_tensor(&bn.running_mean.val())),
            self.init(&format!("{name}.running_var"), &Array::from_tensor(&bn.running_var.val())),
        ];
        self.node("BatchNormalization", inputs, vec![attr_float("epsilon", dynofa_supernet::layers::BN_EPS as f32)])
    }

    fn h_sigmoid(&mut self, x: String) -> String {
        self.node("HardSigmoid", vec![x], vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)])
    }

    fn act(&mut self, x: String, act: Act) -> String {
        match act {
            Act::None => x,
            Act::Relu => self.node("Relu", vec![x], vec![]),
            Act::HSwish => {
                let gate = self.h_sigmoid(x.clone());
                self.node("Mul", vec![x, gate], vec![])
            }
        }
    }

    fn conv_bias(&mut self, x: String, name: &str, layer: &ConvBias) -> String {
        let (w, b) = (Array::from_tensor(&layer.weight.val()), Array::from_tensor(&layer.bias.val()));
        self.conv(x, name, &w, Some(&b), 1, 1)
    }
}

/// The ONNX model of `net`, serialised.
pub fn to_onnx_bytes(net: &StaticNet) -> Vec<u8> {
    let arch = &net.arch;
    let r = arch.resolution;
    let mut g = GraphBuilder { graph: GraphProto { name: "dynofa_mobilenetv3".into(), ..Default::default() }, next: 0 };
    g.graph.input.push(value_info("input", &[None, Some(3), Some(r), Some(r)]));
    let weight = |p: &burn::module::Param<burn::Tensor<4>>| Array::from_tensor(&p.val());

    let x = g.conv("input".into(), "first_conv.conv", &weight(&net.first_conv.conv.weight), None, 2, 1);
    let x = g.bn(x, "first_conv.bn", &net.first_conv.bn);
    let mut x = g.act(x, Act::HSwish);
    for (i, block) in net.blocks.iter().enumerate() {
        let p = format!("blocks.{i}.conv");
        let a = &block.arch;
        let input = x.clone();
        let mut y = x;
        if let Some(ib) = &block.inverted_bottleneck {
            y = g.conv(y, &format!("{p}.inverted_bottleneck.conv"), &weight(&ib.conv.weight), None, 1, 1);
            y = g.bn(y, &format!("{p}.inverted_bottleneck.bn"), &ib.bn);
            y = g.act(y, a.act);
        }
        let dw = &block.depth_conv;
        y = g.conv(y, &format!("{p}.depth_conv.conv"), &weight(&dw.conv.weight), None, a.stride, a.depthwise_channels());
        y = g.bn(y, &format!("{p}.depth_conv.bn"), &dw.bn);
        y = g.act(y, a.act);
        if let Some(se) = &block.se {
            let pooled = g.node("GlobalAveragePool", vec![y.clone()], vec![]);
            let s = g.conv_bias(pooled, &format!("{p}.depth_conv.se.fc.reduce"), &se.fc.reduce);
            let s = g.node("Relu", vec![s], vec![]);
            let s = g.conv_bias(s, &format!("{p}.depth_conv.se.fc.expand"), &se.fc.expand);
            let s = g.h_sigmoid(s);
            y = g.node("Mul", vec![y, s], vec![]);
        }
        let pl = &block.point_linear;
        y = g.conv(y, &format!("{p}.point_linear.conv"), &weight(&pl.conv.weight), None, 1, 1);
        y = g.bn(y, &format!("{p}.point_linear.bn"), &pl.bn);
        x = if a.residual { g.node("Add", vec![y, input], vec![]) } else { y };
    }
    let fe = &net.final_expand_layer;
    let x = g.conv(x, "final_expand_layer.conv", &weight(&fe.conv.weight), None, 1, 1);
    let x = g.bn(x, "final_expand_layer.bn", &fe.bn);
    let x = g.act(x, Act::HSwish);
    let x = g.node("GlobalAveragePool", vec![x], vec![]);
    let x = g.conv(x, "feature_mix_layer.conv", &weight(&net.feature_mix_layer.weight), None, 1, 1);
    let x = g.act(x, Act::HSwish);
    let x = g.node("Flatten", vec![x], vec![attr_int("axis", 1)]);
    let w = g.init("classifier.linear.weight", &Array::from_tensor(&net.classifier.weight.val()));
    let b = g.init("classifier.linear.bias", &Array::from_tensor(&net.classifier.bias.val()));
    let logits = g.node_to("Gemm", vec![x, w, b], vec![attr_int("transB", 1)], "logits".into());
    g.graph.output.push(value_info(&logits, &[None, Some(arch.num_classes)]));
    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "dynofa".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("OFA MobileNetV3 sub-network, {r}x{r} input"),
        graph: Some(g.graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
    };
    model.encode_to_vec()
}

/// Writes `net` as an ONNX file (atomically).
pub fn save_onnx(net: &StaticNet, path: &Path) -> Result<()> {
    let bytes = to_onnx_bytes(net);
    write_atomically(path, |file| file.write_all(&bytes))
}
