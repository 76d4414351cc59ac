//! Where the supernet's weights come from: a file, or the embedded default.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::*;
use dynofa_supernet::{SubnetConfig, Supernet, SupernetConfig, Width, load_weights};

/// Text printed whenever the embedded default weights are used.
pub const UNTRAINED_NOTICE: &str = "note: no --weights given: using the embedded default supernet \
    (seeded, UNTRAINED weights); its predictions are meaningless. Pass --weights with the official \
    ofa_mbv3_d234_e346_k357_w1.2 checkpoint for real ones.";

/// The `--weights` / `--width` pair shared by the commands.
#[derive(clap::Args, Debug, Clone)]
pub struct WeightsArgs {
    /// Supernet weights: an OFA checkpoint (.pth, legacy or zip format) or a Burn record (.bpk).
    /// Without it, the embedded default (seeded, untrained) supernet is used.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Width multiplier of the embedded default supernet (1.0 or 1.2); a weights file
    /// carries its own.
    #[arg(long, default_value = "1.2", value_parser = parse_width)]
    pub width: Width,
}

/// `--weights` / `--width` and `--subnet`: one sub-network of a supernet.
#[derive(clap::Args, Debug, Clone)]
pub struct SubnetArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Sub-network: a JSON/RON file or inline JSON in OFA's format {"ks","e","d","r"}.
    #[arg(long, value_name = "SPEC")]
    pub subnet: String,
}

impl SubnetArgs {
    /// The parsed `--subnet`.
    pub fn config(&self) -> Result<SubnetConfig> {
        SubnetConfig::from_spec(&self.subnet).context("invalid --subnet")
    }
}

/// Parses `--width`.
pub fn parse_width(text: &str) -> Result<Width, String> {
    Width::parse(text).map_err(|e| e.to_string())
}

impl WeightsArgs {
    /// Loads the supernet; says on stderr how long it took, and when it is untrained.
    pub fn load(&self, device: &Device) -> Result<Supernet> {
        let start = Instant::now();
        let net = match &self.weights {
            Some(path) => load_file(path, device)?,
            None => {
                eprintln!("{UNTRAINED_NOTICE}");
                SupernetConfig::ofa_mbv3(self.width).init(device)
            }
        };
        tracing::info!(elapsed_ms = start.elapsed().as_secs_f64() * 1e3, "supernet loaded");
        Ok(net)
    }
}

/// Loads weights from a file (the error names the file).
pub fn load_file(path: &Path, device: &Device) -> Result<Supernet> {
    Ok(load_weights(path, device)?)
}
