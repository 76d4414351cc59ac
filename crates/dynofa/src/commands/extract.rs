//! `dynofa extract`: cut a sub-network out of the supernet as a standalone network.

use std::path::PathBuf;

use anyhow::Result;
use burn::prelude::*;
use dynofa_slice::{extract, ofa_dir, onnx};

use crate::weights::SubnetArgs;

/// Output formats of `dynofa extract`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// OFA's specialised-network folder (`net.config`, `run.config`, `init`).
    Ofa,
    /// One ONNX file (opset 13, dynamic batch).
    Onnx,
}

/// Arguments of `dynofa extract`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    net: SubnetArgs,
    /// Output: a folder (ofa; must not exist or be empty) or a file (onnx).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "ofa")]
    format: Format,
}

/// Extracts and writes the sub-network.
pub fn run(args: Args) -> Result<()> {
    let subnet = args.net.config()?;
    let device = Device::flex();
    let supernet = args.net.weights.load(&device)?;
    let net = extract(&supernet, &subnet)?;
    crate::interrupt::deferred("finishing the write of the network", || {
        match args.format {
            Format::Ofa => ofa_dir::save(&net, &args.out)?,
            Format::Onnx => onnx::save_onnx(&net, &args.out)?,
        }
        Ok(())
    })?;
    eprintln!("wrote {} ({} parameters) to {}", subnet.to_json(), net.num_params(), args.out.display());
    Ok(())
}
