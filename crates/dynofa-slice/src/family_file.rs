//! Saving and loading a family: a RON file with the level configurations and metadata,
//! and, when levels have their own (re-calibrated) BatchNorm, a weights file beside it
//! (`<name>.levels.pth`, torch zip format) with those per-level tensors.
//!
//! The transformed depthwise kernels are not stored: they are recomputed from the
//! supernet when the family is loaded, so a family file stays small.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use dynofa_device::Processor;
use dynofa_supernet::checkpoint::Checkpoint;
use dynofa_supernet::files::write_atomically;
use dynofa_supernet::pth::{NamedTensor, write_state_dict};
use dynofa_supernet::state_dict::TensorSource;
use dynofa_supernet::{Error, Result, SubnetConfig, Supernet, Width};
use serde::{Deserialize, Serialize};

use crate::arch::NetArch;
use crate::family::{Affine, FamilyStore, check_levels};
use crate::placement::{LoadedFamily, Placement};
use crate::static_net::bn_layers;

/// Version of the family file format.
pub const FORMAT_VERSION: u32 = 1;

/// One level as written in a family file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelInfo {
    /// The sub-network.
    pub config: SubnetConfig,
    /// Parameters of the extracted sub-network.
    pub params: u64,
    /// OFA MFLOPs.
    pub mflops: f64,
    /// Predicted accuracy (a fraction), when a predictor scored it.
    #[serde(default)]
    pub acc_pred: Option<f64>,
    /// Predicted latency per look-up table name, in ms.
    #[serde(default)]
    pub latency_ms: BTreeMap<String, f64>,
    /// Whether the level has its own BatchNorm statistics in the weights file.
    #[serde(default)]
    pub calibrated: bool,
}

/// The contents of a family RON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyFile {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// Width of the supernet the family was made from.
    pub width: Width,
    /// The processor the family was made for (its levels are Pareto-optimal there).
    #[serde(default)]
    pub device: Processor,
    /// Where the supernet weights came from (informative).
    #[serde(default)]
    pub supernet: Option<String>,
    /// Free-form provenance (predictor, tables, search settings, …).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Levels, smallest first by convention.
    pub levels: Vec<LevelInfo>,
}

impl FamilyFile {
    /// A family file for `levels` of `supernet` (counts filled in, nothing calibrated).
    pub fn describe(supernet: &Supernet, levels: &[SubnetConfig]) -> Result<Self> {
        let levels = levels
            .iter()
            .map(|config| {
                let counts = supernet.config.counts(config)?;
                Ok(LevelInfo {
                    config: config.clone(),
                    params: counts.params,
                    mflops: counts.mflops,
                    acc_pred: None,
                    latency_ms: BTreeMap::new(),
                    calibrated: false,
                })
            })
            .collect::<Result<_>>()?;
        Ok(FamilyFile { format: FORMAT_VERSION, width: supernet.config.width, device: Processor::Cpu, supernet: None, metadata: BTreeMap::new(), levels })
    }

    /// Reads a family RON file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = dynofa_supernet::files::read_text(path)?;
        Self::parse(&text, path)
    }

    /// Parses the text of a family RON file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let file: FamilyFile = ron::from_str(text).map_err(|e| Error::Parse { what: "family file".into(), detail: e.to_string() }.in_file(path))?;
        if file.format != FORMAT_VERSION {
            let e = Error::InvalidValue { field: "format".into(), value: file.format.to_string(), expected: FORMAT_VERSION.to_string() };
            return Err(e.in_file(path));
        }
        Ok(file)
    }

    /// Writes it as RON (atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default())
            .map_err(|e| Error::Parse { what: "family file".into(), detail: e.to_string() })?;
        write_atomically(path, |f| std::io::Write::write_all(f, text.as_bytes()))
    }

    /// The level configurations.
    pub fn configs(&self) -> Vec<SubnetConfig> {
        self.levels.iter().map(|l| l.config.clone()).collect()
    }
}

/// The weights file that goes with a family file.
pub fn level_weights_path(family: &Path) -> PathBuf {
    family.with_extension("levels.pth")
}

fn tensor_name(level: usize, bn: &str, part: &str) -> String {
    format!("levels.{level}.{bn}.{part}")
}

/// Writes `file` (with `calibrated` set from the store) and the per-level weights file.
pub fn save_family(store: &FamilyStore, mut file: FamilyFile, path: &Path) -> Result<()> {
    let mut tensors = Vec::new();
    for (i, level) in file.levels.iter_mut().enumerate() {
        level.calibrated = false;
        if let Some(affines) = store.level_bn(i) {
            level.calibrated = true;
            let arch = NetArch::of_subnet(store.config(), &level.config)?;
            for ((name, _), affine) in bn_layers(&arch).iter().zip(affines) {
                for (part, values) in [("scale", &affine.scale), ("shift", &affine.shift)] {
                    tensors.push(NamedTensor { name: tensor_name(i, name, part), shape: vec![values.len()], data: values.clone() });
                }
            }
        }
    }
    if !tensors.is_empty() {
        write_state_dict(&level_weights_path(path), &tensors, false)?;
    }
    file.write(path)
}

/// Loads a family saved by [`save_family`] onto `supernet`, at `placement`.
pub fn load_family(path: &Path, supernet: &Supernet, placement: &Placement) -> Result<(Box<dyn LoadedFamily>, FamilyFile)> {
    load_family_file(FamilyFile::read(path)?, path, supernet, placement)
}

/// [`load_family`] of a family file already read from `path` (its BatchNorm file, when
/// levels are calibrated, is looked for beside `path`).
pub fn load_family_file(file: FamilyFile, path: &Path, supernet: &Supernet, placement: &Placement) -> Result<(Box<dyn LoadedFamily>, FamilyFile)> {
    if file.width != supernet.config.width {
        let e = Error::InvalidValue {
            field: "width".into(),
            value: file.width.to_string(),
            expected: format!("{} (the width of the supernet weights given)", supernet.config.width),
        };
        return Err(e.in_file(path));
    }
    // Every level checked before the (slow) per-level BatchNorm file is read.
    let configs = file.configs();
    check_levels(&supernet.config, &configs).map_err(|e| e.in_file(path))?;
    let level_bn = level_batch_norms(&file, path, supernet)?;
    let family = placement.load(supernet, &configs, &level_bn).map_err(|e| e.in_file(path))?;
    Ok((family, file))
}

/// Each level's own folded BatchNorm, from the weights file beside `path`, where the level
/// is calibrated.
fn level_batch_norms(file: &FamilyFile, path: &Path, supernet: &Supernet) -> Result<Vec<Option<Vec<Affine>>>> {
    let calibrated: Vec<usize> = (0..file.levels.len()).filter(|&i| file.levels[i].calibrated).collect();
    let mut level_bn = vec![None; file.levels.len()];
    if calibrated.is_empty() {
        return Ok(level_bn);
    }
    let weights = level_weights_path(path);
    let mut expected = Vec::new();
    for &i in &calibrated {
        let arch = NetArch::of_subnet(&supernet.config, &file.levels[i].config)?;
        for (name, _) in bn_layers(&arch) {
            expected.push((i, name));
        }
    }
    let known: HashSet<String> = expected.iter().flat_map(|(i, n)| ["scale", "shift"].map(|p| tensor_name(*i, n, p))).collect();
    let mut source = Checkpoint::open(&weights, &known)?;
    for &i in &calibrated {
        let arch = NetArch::of_subnet(&supernet.config, &file.levels[i].config)?;
        let mut affines = Vec::new();
        for (name, channels) in bn_layers(&arch) {
            let mut part = |p: &str| source.tensor(&tensor_name(i, &name, p), &[channels]).map_err(|e| e.in_file(&weights));
            affines.push(Affine { scale: part("scale")?, shift: part("shift")? });
        }
        level_bn[i] = Some(affines);
    }
    Ok(level_bn)
}
