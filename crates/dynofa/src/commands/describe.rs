//! `dynofa describe`: a sub-network's facts as JSON.

use anyhow::{Context, Result};
use burn::prelude::*;
use dynofa_supernet::SupernetConfig;
use serde_json::json;

use crate::weights::SubnetArgs;

/// Arguments of `dynofa describe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    net: SubnetArgs,
}

/// Prints `{width, resolution, params, mflops, subnet}`.
pub fn run(args: Args) -> Result<()> {
    let subnet = args.net.config()?;
    let width = match &args.net.weights.weights {
        // The width is read off the weights: load them (this also validates the file).
        Some(path) => crate::weights::load_file(path, &Device::flex())?.config.width,
        None => args.net.weights.width,
    };
    let supernet = SupernetConfig::ofa_mbv3(width);
    let counts = supernet.counts(&subnet).context("the sub-network does not fit the supernet")?;
    let out = json!({
        "width": width.to_string(),
        "resolution": subnet.resolution(),
        "params": counts.params,
        "mflops": counts.mflops,
        "subnet": subnet,
    });
    println!("{out}");
    Ok(())
}
