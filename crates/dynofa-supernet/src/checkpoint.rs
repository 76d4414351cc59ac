//! Importing OFA's PyTorch checkpoints (`ofa_mbv3_d234_e346_k357_w1.{0,2}`).
//!
//! Reads both containers `torch.save` writes (the legacy pre-1.6 pickle stream the official
//! files use, and the zip format) through Burn's `pytorch-reader`, after the pickle passed
//! the allow-list of [`crate::pickle_guard`]. Accepts `{'state_dict': …}` or a bare state
//! dict, and OFA's key spellings (`mobile_inverted_conv` for `conv`, nested or un-nested
//! `.bn.bn.` / `.conv.conv.weight` / `.linear.linear.`), mapped as OFA's own loader does.
//! The width (1.0 or 1.2) is read off the stem's shape.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use burn::prelude::*;
use pytorch_reader::{DType, PytorchError, PytorchReader};

use crate::arch::{SupernetConfig, Width};
use crate::error::{Error, Result};
use crate::state_dict::{Precision, TensorSource, build_supernet_in, tensor_names};
use crate::supernet::Supernet;

/// The stem weight's name, whose shape tells the width.
const STEM_KEY: &str = "first_conv.conv.weight";

/// Loads a supernet from an OFA checkpoint file; the width is detected.
pub fn load_checkpoint(path: &Path, device: &Device) -> Result<Supernet> {
    load_checkpoint_in(path, device, Precision::F32)
}

/// [`load_checkpoint`] in the given precision.
pub fn load_checkpoint_in(path: &Path, device: &Device, precision: Precision) -> Result<Supernet> {
    let mut checkpoint = Checkpoint::open(path, &supernet_names())?;
    let config = SupernetConfig::ofa_mbv3(checkpoint.width().map_err(|e| e.in_file(path))?);
    build_supernet_in(&config, &mut checkpoint, device, precision).map_err(|e| e.in_file(path))
}

/// The tensors of a checkpoint, under OFA's canonical names.
pub struct Checkpoint {
    tensors: HashMap<String, pytorch_reader::Tensor>,
    found: usize,
}

impl Checkpoint {
    /// Opens `path`, checks its pickle against the allow-list and maps its keys onto
    /// `known`, the state-dict names of the network it should hold.
    pub fn open(path: &Path, known: &HashSet<String>) -> Result<Self> {
        if !path.is_file() {
            let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint file");
            return Err(Error::io(path, e));
        }
        crate::pickle_guard::check_checkpoint(path).map_err(|e| e.in_file(path))?;
        let reader = match PytorchReader::with_top_level_key(path, "state_dict") {
            Err(PytorchError::KeyNotFound(_)) => PytorchReader::new(path),
            other => other,
        }
        .map_err(|e| Error::Checkpoint { detail: e.to_string() }.in_file(path))?;
        let raw = reader.into_tensors();
        let found = raw.len();
        let tensors = canonical_names(raw, known).map_err(|e| e.in_file(path))?;
        Ok(Checkpoint { tensors, found })
    }

    /// The width the stem's output channels imply.
    pub fn width(&self) -> Result<Width> {
        let stem = self.tensors.get(STEM_KEY).ok_or_else(|| Error::MissingKey { key: STEM_KEY.into(), found: self.found })?;
        let channels = stem.shape().first().copied().unwrap_or(0);
        Width::from_stem_channels(channels).ok_or_else(|| Error::Shape { key: STEM_KEY.into(), expected: vec![16, 3, 3, 3], found: stem.shape().to_vec() })
    }
}

impl TensorSource for Checkpoint {
    fn tensor(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let tensor = self.tensors.get(key).ok_or_else(|| Error::MissingKey { key: key.into(), found: self.found })?;
        if tensor.shape() != shape {
            return Err(Error::Shape { key: key.into(), expected: shape.to_vec(), found: tensor.shape().to_vec() });
        }
        let bytes = tensor.read().map_err(|e| Error::Checkpoint { detail: format!("tensor `{key}`: {e}") })?;
        to_f32(key, tensor.dtype(), &bytes)
    }
}

fn to_f32(key: &str, dtype: DType, bytes: &[u8]) -> Result<Vec<f32>> {
    match dtype {
        DType::F32 => Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        DType::F64 => Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()),
        other => Err(Error::Checkpoint { detail: format!("tensor `{key}` has dtype {other:?}; expected float32 or float64") }),
    }
}

/// Maps each key of a checkpoint onto the supernet's canonical name (OFA's
/// `OFAMobileNetV3.load_state_dict` rule); keys with no such name are an error, and
/// `num_batches_tracked` entries are dropped.
fn canonical_names<T>(raw: HashMap<String, T>, known: &HashSet<String>) -> Result<HashMap<String, T>> {
    let mut out = HashMap::with_capacity(raw.len());
    for (key, value) in raw {
        if key.ends_with("num_batches_tracked") {
            continue;
        }
        let key = key.strip_prefix("module.").unwrap_or(&key).replace(".mobile_inverted_conv.", ".conv.");
        let canonical = spellings(&key).into_iter().find(|candidate| known.contains(candidate)).ok_or(Error::UnexpectedKey { key })?;
        out.insert(canonical, value);
    }
    Ok(out)
}

/// The supernet's state-dict names (both widths have the same).
fn supernet_names() -> HashSet<String> {
    tensor_names(&SupernetConfig::ofa_mbv3(Width::W12)).into_iter().map(|(k, _)| k).collect()
}

/// The names a key may stand for, in the order OFA's loader tries them.
fn spellings(key: &str) -> Vec<String> {
    let rewrites = [
        (".bn.bn.", ".bn."),
        (".conv.conv.weight", ".conv.weight"),
        (".linear.linear.", ".linear."),
        (".linear.", ".linear.linear."),
        ("bn.", "bn.bn."),
        ("conv.weight", "conv.conv.weight"),
    ];
    std::iter::once(key.to_string()).chain(rewrites.iter().filter(|(from, _)| key.contains(from)).map(|(from, to)| key.replacen(from, to, 1))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_ofa_spellings() {
        let raw: HashMap<String, ()> = [
            "blocks.3.mobile_inverted_conv.depth_conv.conv.conv.weight",
            "blocks.3.conv.depth_conv.bn.weight",
            "blocks.0.mobile_inverted_conv.point_linear.bn.running_var",
            "classifier.linear.linear.weight",
            "first_conv.bn.num_batches_tracked",
        ]
        .into_iter()
        .map(|k| (k.to_string(), ()))
        .collect();
        let mut mapped: Vec<_> = canonical_names(raw, &supernet_names()).unwrap().into_keys().collect();
        mapped.sort();
        assert_eq!(
            mapped,
            [
                "blocks.0.conv.point_linear.bn.running_var",
                "blocks.3.conv.depth_conv.bn.bn.weight",
                "blocks.3.conv.depth_conv.conv.conv.weight",
                "classifier.linear.weight",
            ]
        );
        let raw: HashMap<String, ()> = [("blocks.3.conv.bogus.weight".to_string(), ())].into();
        let err = canonical_names(raw, &supernet_names()).unwrap_err().to_string();
        assert!(err.contains("blocks.3.conv.bogus.weight"), "{err}");
    }
}
