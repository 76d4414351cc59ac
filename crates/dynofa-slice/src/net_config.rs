//! OFA's `net.config`: the JSON architecture of a specialised MobileNetV3
//! (`MobileNetV3.config` / `build_from_config`), read and written.
//!
//! Reading accepts what OFA's MobileNetV3 family writes (`ConvLayer` stem, `ResidualBlock`s
//! of `MBConvLayer` with an `IdentityLayer` or no shortcut, `LinearLayer` classifier,
//! `relu` / `h_swish`); anything else is an error naming the field.

use dynofa_supernet::layers::Act;
use dynofa_supernet::{Error, Result};
use serde_json::{Value, json};

use crate::arch::{BlockArch, NetArch};

fn unsupported(field: &str, value: &Value, expected: &str) -> Error {
    Error::InvalidValue { field: format!("net.config {field}"), value: value.to_string(), expected: expected.into() }
}

fn get<'a>(v: &'a Value, field: &str, path: &str) -> Result<&'a Value> {
    v.get(field).ok_or_else(|| unsupported(&format!("{path}.{field}"), &Value::Null, "a value"))
}

/// Most channels (or classes) a layer may claim: far above any MobileNetV3, far below what
/// would exhaust memory.
pub const MAX_CHANNELS: usize = 1 << 16;
/// Largest expansion ratio accepted.
const MAX_EXPAND: f64 = 16.0;

/// A whole number from 1 to [`MAX_CHANNELS`].
fn usize_field(v: &Value, field: &str, path: &str) -> Result<usize> {
    let value = get(v, field, path)?;
    value
        .as_u64()
        .filter(|n| (1..=MAX_CHANNELS as u64).contains(n))
        .map(|n| n as usize)
        .ok_or_else(|| unsupported(&format!("{path}.{field}"), value, &format!("a whole number from 1 to {MAX_CHANNELS}")))
}

/// A whole number from `allowed`.
fn choice_field(v: &Value, field: &str, path: &str, allowed: &[usize]) -> Result<usize> {
    let value = get(v, field, path)?;
    value
        .as_u64()
        .map(|n| n as usize)
        .filter(|n| allowed.contains(n))
        .ok_or_else(|| unsupported(&format!("{path}.{field}"), value, &format!("one of {allowed:?}")))
}

fn expect_str(v: &Value, field: &str, path: &str, allowed: &[&str]) -> Result<String> {
    let value = get(v, field, path)?;
    match value.as_str() {
        Some(s) if allowed.contains(&s) => Ok(s.to_string()),
        _ => Err(unsupported(&format!("{path}.{field}"), value, &format!("one of {allowed:?}"))),
    }
}

fn act(v: &Value, path: &str) -> Result<Act> {
    match expect_str(v, "act_func", path, &["relu", "h_swish"])?.as_str() {
        "relu" => Ok(Act::Relu),
        _ => Ok(Act::HSwish),
    }
}

fn act_name(act: Act) -> Value {
    match act {
        Act::Relu => json!("relu"),
        Act::HSwish => json!("h_swish"),
        Act::None => Value::Null,
    }
}

/// Parses a `net.config`; `resolution` comes from `run.config`.
pub fn parse(config: &Value, resolution: usize) -> Result<NetArch> {
    expect_str(config, "name", "", &["MobileNetV3"])?;
    let stem = get(config, "first_conv", "")?;
    expect_str(stem, "name", ".first_conv", &["ConvLayer"])?;
    for (field, want) in [("kernel_size", 3), ("stride", 2), ("in_channels", 3)] {
        if usize_field(stem, field, ".first_conv")? != want {
            return Err(unsupported(&format!(".first_conv.{field}"), &stem[field], &want.to_string()));
        }
    }
    let blocks_json = get(config, "blocks", "")?.as_array().ok_or_else(|| unsupported(".blocks", &config["blocks"], "a list"))?;
    let mut blocks = Vec::with_capacity(blocks_json.len());
    for (i, block) in blocks_json.iter().enumerate() {
        let path = format!(".blocks[{i}]");
        expect_str(block, "name", &path, &["ResidualBlock"])?;
        // Older OFA code names the layer `mobile_inverted_conv`.
        let conv = block.get("conv").or_else(|| block.get("mobile_inverted_conv"));
        let conv = conv.ok_or_else(|| unsupported(&format!("{path}.conv"), &Value::Null, "an MBConvLayer"))?;
        let cpath = format!("{path}.conv");
        expect_str(conv, "name", &cpath, &["MBConvLayer", "MBInvertedConvLayer"])?;
        let in_channels = usize_field(conv, "in_channels", &cpath)?;
        let expand = conv.get("expand_ratio").and_then(Value::as_f64).unwrap_or(1.0);
        if !(expand > 0.0 && expand <= MAX_EXPAND) {
            return Err(unsupported(&format!("{cpath}.expand_ratio"), &conv["expand_ratio"], &format!("a ratio in (0, {MAX_EXPAND}]")));
        }
        let mid = match conv.get("mid_channels").filter(|m| !m.is_null()) {
            Some(_) => Some(usize_field(conv, "mid_channels", &cpath)?),
            None if expand > 1.0 => Some(dynofa_supernet::arch::make_divisible((in_channels as f64 * expand).round(), 8)),
            None => None,
        };
        let residual = match block.get("shortcut") {
            None | Some(Value::Null) => false,
            Some(s) => {
                expect_str(s, "name", &format!("{path}.shortcut"), &["IdentityLayer"])?;
                true
            }
        };
        let groups = conv.get("groups").cloned().unwrap_or(Value::Null);
        if !groups.is_null() {
            return Err(unsupported(&format!("{cpath}.groups"), &groups, "null (grouped 1×1 convolutions are not supported)"));
        }
        blocks.push(BlockArch {
            in_channels,
            out_channels: usize_field(conv, "out_channels", &cpath)?,
            kernel: choice_field(conv, "kernel_size", &cpath, &[3, 5, 7])?,
            stride: choice_field(conv, "stride", &cpath, &[1, 2])?,
            mid,
            act: act(conv, &cpath)?,
            se: conv.get("use_se").and_then(Value::as_bool).unwrap_or(false),
            residual,
        });
    }
    let fe = get(config, "final_expand_layer", "")?;
    expect_str(fe, "name", ".final_expand_layer", &["ConvLayer"])?;
    let fm = get(config, "feature_mix_layer", "")?;
    expect_str(fm, "name", ".feature_mix_layer", &["ConvLayer"])?;
    let cls = get(config, "classifier", "")?;
    expect_str(cls, "name", ".classifier", &["LinearLayer"])?;
    let arch = NetArch {
        stem: usize_field(stem, "out_channels", ".first_conv")?,
        blocks,
        final_expand: usize_field(fe, "out_channels", ".final_expand_layer")?,
        feature_mix: usize_field(fm, "out_channels", ".feature_mix_layer")?,
        num_classes: usize_field(cls, "out_features", ".classifier")?,
        resolution,
    };
    check_chain(&arch)?;
    Ok(arch)
}

/// Each layer's input must be the previous layer's output.
fn check_chain(arch: &NetArch) -> Result<()> {
    let mut channels = arch.stem;
    for (i, b) in arch.blocks.iter().enumerate() {
        if b.in_channels != channels {
            let v = json!(b.in_channels);
            return Err(unsupported(&format!(".blocks[{i}].conv.in_channels"), &v, &channels.to_string()));
        }
        if b.residual && (b.stride != 1 || b.in_channels != b.out_channels) {
            return Err(unsupported(&format!(".blocks[{i}].shortcut"), &json!("IdentityLayer"), "none (stride or width changes)"));
        }
        channels = b.out_channels;
    }
    Ok(())
}

fn conv_layer(cin: usize, cout: usize, k: usize, stride: usize, bn: bool, act: Act) -> Value {
    json!({
        "name": "ConvLayer", "kernel_size": k, "stride": stride, "dilation": 1, "groups": 1,
        "bias": false, "has_shuffle": false, "use_se": false, "in_channels": cin,
        "out_channels": cout, "use_bn": bn, "act_func": act_name(act), "dropout_rate": 0,
        "ops_order": "weight_bn_act",
    })
}

/// The `net.config` JSON of `arch`, as OFA's `MobileNetV3.config` writes it.
pub fn to_json(arch: &NetArch) -> Value {
    let blocks: Vec<Value> = arch
        .blocks
        .iter()
        .map(|b| {
            let expand_ratio = match b.mid {
                Some(mid) => json!((mid as f64 / b.in_channels as f64).round() as usize),
                None => json!(1),
            };
            let shortcut = if b.residual {
                json!({
                    "name": "IdentityLayer", "in_channels": b.in_channels, "out_channels": b.out_channels,
                    "use_bn": false, "act_func": null, "dropout_rate": 0, "ops_order": "weight_bn_act",
                })
            } else {
                Value::Null
            };
            json!({
                "name": "ResidualBlock",
                "conv": {
                    "name": "MBConvLayer", "in_channels": b.in_channels, "out_channels": b.out_channels,
                    "kernel_size": b.kernel, "stride": b.stride, "expand_ratio": expand_ratio,
                    "mid_channels": b.mid, "act_func": act_name(b.act), "use_se": b.se, "groups": null,
                },
                "shortcut": shortcut,
            })
        })
        .collect();
    json!({
        "name": "MobileNetV3",
        "bn": {"momentum": 0.1, "eps": 1e-5, "ws_eps": null},
        "first_conv": conv_layer(3, arch.stem, 3, 2, true, Act::HSwish),
        "blocks": blocks,
        "final_expand_layer": conv_layer(arch.last_channels(), arch.final_expand, 1, 1, true, Act::HSwish),
        "feature_mix_layer": conv_layer(arch.final_expand, arch.feature_mix, 1, 1, false, Act::HSwish),
        "classifier": {
            "name": "LinearLayer", "in_features": arch.feature_mix, "out_features": arch.num_classes,
            "bias": true, "use_bn": false, "act_func": null, "dropout_rate": 0, "ops_order": "weight_bn_act",
        },
    })
}
