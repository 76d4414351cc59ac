//! Architecture types: the supernet's fixed shape and a sub-network's elastic choices.
//!
//! A [`SupernetConfig`] says what the supernet can become (width preset, kernel / expand /
//! depth choice lists, classes); a [`SubnetConfig`] is one choice, in OFA's own JSON format
//! `{"ks": [20], "e": [20], "d": [5], "r": [R]}`. [`SupernetConfig::validate`] checks a
//! sub-network against the supernet and names the offending field.

use std::path::Path;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Number of elastic stages (after the stem and the first block).
pub const STAGES: usize = 5;
/// Blocks per elastic stage (the most a stage can run).
pub const BLOCKS_PER_STAGE: usize = 4;
/// Elastic block slots: `ks` and `e` hold one entry per slot, indexed `stage × 4 + j`.
pub const SLOTS: usize = STAGES * BLOCKS_PER_STAGE;
/// Smallest input the five stride-2 layers and the stem can run on.
pub const MIN_RESOLUTION: usize = 32;
/// Largest input resolution accepted (a guard against typos such as 2240).
pub const MAX_RESOLUTION: usize = 1024;

/// Stride of each stage's first block.
pub const STAGE_STRIDES: [usize; STAGES] = [2, 2, 2, 1, 2];
/// Whether each stage uses h-swish (else ReLU).
pub const STAGE_HSWISH: [bool; STAGES] = [false, false, true, true, true];
/// Whether each stage has squeeze-and-excitation.
pub const STAGE_SE: [bool; STAGES] = [false, true, false, true, true];
/// OFA's base widths: stem, block 0, the five stages, final expand, feature mix.
const BASE_WIDTHS: [usize; 9] = [16, 16, 24, 40, 80, 112, 160, 960, 1280];

/// OFA's `make_divisible(v, 8)`: round to the nearest multiple of 8, never below 8 and
/// never more than 10% below `v`.
pub fn make_divisible(value: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut rounded = ((value + d / 2.0) as usize / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * value {
        rounded += divisor;
    }
    rounded
}

/// Width multiplier of a published OFA-MobileNetV3 supernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Width {
    /// `ofa_mbv3_d234_e346_k357_w1.0`
    #[serde(rename = "1.0")]
    W10,
    /// `ofa_mbv3_d234_e346_k357_w1.2`
    #[serde(rename = "1.2")]
    W12,
}

impl Width {
    /// The multiplier as a number.
    pub fn multiplier(self) -> f64 {
        match self {
            Width::W10 => 1.0,
            Width::W12 => 1.2,
        }
    }

    /// Parses `1.0` / `1.2` (also `w1.0`, `w12`, …).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().trim_start_matches('w') {
            "1.0" | "1" | "10" => Ok(Width::W10),
            "1.2" | "12" => Ok(Width::W12),
            other => Err(Error::InvalidValue { field: "width".into(), value: other.into(), expected: "1.0 or 1.2".into() }),
        }
    }

    /// The width that a stem of `channels` output channels implies.
    pub fn from_stem_channels(channels: usize) -> Option<Self> {
        [Width::W10, Width::W12].into_iter().find(|w| Widths::of(*w).stem == channels)
    }
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1}", self.multiplier())
    }
}

/// Channel widths of every layer, derived from the width multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// Stem and first block.
    pub stem: usize,
    /// Output channels of each elastic stage.
    pub stages: [usize; STAGES],
    /// Final 1×1 expansion before pooling.
    pub final_expand: usize,
    /// Feature mix layer after pooling.
    pub feature_mix: usize,
}

impl Widths {
    /// `make_divisible(base × w, 8)` for each of OFA's base widths.
    pub fn of(width: Width) -> Self {
        let w = BASE_WIDTHS.map(|base| make_divisible(base as f64 * width.multiplier(), 8));
        Widths { stem: w[0], stages: [w[2], w[3], w[4], w[5], w[6]], final_expand: w[7], feature_mix: w[8] }
    }
}

/// The supernet: width preset and the elastic choice lists.
#[derive(Config, Debug, PartialEq)]
pub struct SupernetConfig {
    /// Width multiplier preset.
    pub width: Width,
    /// Kernel sizes a block may use (largest is stored).
    #[config(default = "vec![3, 5, 7]")]
    pub kernel_sizes: Vec<usize>,
    /// Expand ratios a block may use (largest is stored).
    #[config(default = "vec![3, 4, 6]")]
    pub expand_ratios: Vec<usize>,
    /// Depths a stage may use.
    #[config(default = "vec![2, 3, 4]")]
    pub depths: Vec<usize>,
    /// Classifier outputs.
    #[config(default = 1000)]
    pub num_classes: usize,
}

impl SupernetConfig {
    /// The published `ofa_mbv3_d234_e346_k357_w<width>` supernet.
    pub fn ofa_mbv3(width: Width) -> Self {
        Self::new(width)
    }

    /// Channel widths of this supernet.
    pub fn widths(&self) -> Widths {
        Widths::of(self.width)
    }

    /// Largest kernel size (the stored depthwise filter size).
    pub fn max_kernel(&self) -> usize {
        self.kernel_sizes.iter().copied().max().unwrap_or(7)
    }

    /// Largest expand ratio (the stored width of every elastic block's middle).
    pub fn max_expand(&self) -> usize {
        self.expand_ratios.iter().copied().max().unwrap_or(6)
    }

    /// The largest sub-network at resolution `r`.
    pub fn largest(&self, r: usize) -> SubnetConfig {
        SubnetConfig {
            ks: vec![self.max_kernel(); SLOTS],
            e: vec![self.max_expand(); SLOTS],
            d: vec![self.depths.iter().copied().max().unwrap_or(4); STAGES],
            r: vec![r],
        }
    }

    /// The smallest sub-network at resolution `r`.
    pub fn smallest(&self, r: usize) -> SubnetConfig {
        SubnetConfig {
            ks: vec![self.kernel_sizes.iter().copied().min().unwrap_or(3); SLOTS],
            e: vec![self.expand_ratios.iter().copied().min().unwrap_or(3); SLOTS],
            d: vec![self.depths.iter().copied().min().unwrap_or(2); STAGES],
            r: vec![r],
        }
    }

    /// Checks that `subnet` is a sub-network of this supernet; the error names the field,
    /// the index and the offending value.
    pub fn validate(&self, subnet: &SubnetConfig) -> Result<()> {
        check_len("ks", subnet.ks.len(), SLOTS)?;
        check_len("e", subnet.e.len(), SLOTS)?;
        check_len("d", subnet.d.len(), STAGES)?;
        check_len("r", subnet.r.len(), 1)?;
        check_choices("ks", &subnet.ks, &self.kernel_sizes)?;
        check_choices("e", &subnet.e, &self.expand_ratios)?;
        check_choices("d", &subnet.d, &self.depths)?;
        let r = subnet.r[0];
        if !(MIN_RESOLUTION..=MAX_RESOLUTION).contains(&r) || !r.is_multiple_of(4) {
            return Err(Error::InvalidValue {
                field: "r[0]".into(),
                value: r.to_string(),
                expected: format!("a multiple of 4 from {MIN_RESOLUTION} to {MAX_RESOLUTION} (OFA uses 128..=224)"),
            });
        }
        Ok(())
    }
}

fn check_len(field: &str, len: usize, expected: usize) -> Result<()> {
    if len == expected {
        Ok(())
    } else {
        Err(Error::InvalidValue { field: field.into(), value: format!("a list of {len} entries"), expected: format!("{expected} entries") })
    }
}

fn check_choices(field: &str, values: &[usize], choices: &[usize]) -> Result<()> {
    match values.iter().enumerate().find(|(_, v)| !choices.contains(v)) {
        None => Ok(()),
        Some((i, v)) => Err(Error::InvalidValue { field: format!("{field}[{i}]"), value: v.to_string(), expected: format!("one of {choices:?}") }),
    }
}

/// One sub-network, in OFA's format: kernel size and expand ratio per slot, depth per
/// stage, and the input resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubnetConfig {
    /// Depthwise kernel size of each of the 20 slots.
    pub ks: Vec<usize>,
    /// Expand ratio of each of the 20 slots.
    pub e: Vec<usize>,
    /// Active blocks of each of the 5 stages.
    pub d: Vec<usize>,
    /// Input resolution, a one-element list as OFA writes it.
    pub r: Vec<usize>,
}

impl SubnetConfig {
    /// Input resolution (the first entry of `r`).
    pub fn resolution(&self) -> usize {
        self.r.first().copied().unwrap_or(0)
    }

    /// The active slots (absolute indices into `ks` / `e`), stage by stage.
    pub fn active_slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.d.iter().enumerate().flat_map(|(stage, &depth)| (0..depth).map(move |j| stage * BLOCKS_PER_STAGE + j))
    }

    /// Parses a sub-network from inline JSON or RON text.
    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text).or_else(|json_err| {
            ron::from_str(text)
                .map_err(|ron_err| Error::Parse { what: "sub-network config".into(), detail: format!("not JSON ({json_err}) nor RON ({ron_err})") })
        })
    }

    /// Reads a sub-network from a `.json` or `.ron` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::files::read_text(path)?;
        Self::parse(&text).map_err(|e| e.in_file(path))
    }

    /// A path to a JSON/RON file, or the config itself as inline JSON/RON.
    pub fn from_spec(spec: &str) -> Result<Self> {
        let trimmed = spec.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('(') { Self::parse(spec) } else { Self::from_file(Path::new(spec)) }
    }

    /// OFA's JSON text of this config.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a sub-network config always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_match_ofa() {
        let w12 = Widths::of(Width::W12);
        assert_eq!(w12.stem, 24);
        assert_eq!(w12.stages, [32, 48, 96, 136, 192]);
        assert_eq!((w12.final_expand, w12.feature_mix), (1152, 1536));
        let w10 = Widths::of(Width::W10);
        assert_eq!(w10.stem, 16);
        assert_eq!(w10.stages, [24, 40, 80, 112, 160]);
        assert_eq!((w10.final_expand, w10.feature_mix), (960, 1280));
    }

    #[test]
    fn make_divisible_rule() {
        assert_eq!(make_divisible(3.0, 8), 8);
        assert_eq!(make_divisible(19.2, 8), 24);
        assert_eq!(make_divisible(136.0 * 6.0 / 4.0, 8), 208);
        assert_eq!(make_divisible(20.0, 8), 24);
        // 0.9 rule: 11.9 rounds down to 8, more than 10% below, so it becomes 16.
        assert_eq!(make_divisible(11.9, 8), 16);
    }

    #[test]
    fn validation_names_the_field() {
        let sup = SupernetConfig::ofa_mbv3(Width::W12);
        let mut sub = sup.largest(224);
        assert!(sup.validate(&sub).is_ok());
        sub.ks[7] = 4;
        let err = sup.validate(&sub).unwrap_err().to_string();
        assert!(err.contains("ks[7]") && err.contains('4'), "{err}");
        let mut sub = sup.largest(224);
        sub.e.pop();
        let err = sup.validate(&sub).unwrap_err().to_string();
        assert!(err.contains("`e`") && err.contains("19"), "{err}");
        let mut sub = sup.largest(224);
        sub.d[4] = 5;
        assert!(sup.validate(&sub).unwrap_err().to_string().contains("d[4]"));
        let mut sub = sup.largest(225);
        assert!(sup.validate(&sub).unwrap_err().to_string().contains("r[0]"));
        sub.r = vec![0];
        assert!(matches!(sup.validate(&sub), Err(Error::InvalidValue { ref field, ref value, .. }) if field == "r[0]" && value == "0"));
        sub.r = vec![];
        assert!(sup.validate(&sub).unwrap_err().to_string().contains("`r`"));
    }

    #[test]
    fn parses_json_and_ron() {
        let sup = SupernetConfig::ofa_mbv3(Width::W10);
        let sub = sup.smallest(160);
        assert_eq!(SubnetConfig::parse(&sub.to_json()).unwrap(), sub);
        let ron_text = ron::to_string(&sub).unwrap();
        assert_eq!(SubnetConfig::from_spec(&ron_text).unwrap(), sub);
        let err = SubnetConfig::parse("{\"ks\": [3]}").unwrap_err().to_string();
        assert!(err.contains("sub-network config"), "{err}");
    }
}
