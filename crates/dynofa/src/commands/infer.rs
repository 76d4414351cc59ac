//! `dynofa infer`: run one sub-network on an `.npy` batch or on images.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use dynofa_supernet::tensor_io::{read_npy, write_npy, Array};
use dynofa_supernet::SubnetConfig;

use crate::preprocess::{class_names, load_image, softmax, top_k};
use crate::weights::WeightsArgs;

/// Arguments of `dynofa infer`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    weights: WeightsArgs,
    /// Sub-network: a JSON/RON file or inline JSON in OFA's format {"ks","e","d","r"}.
    #[arg(long, value_name = "SPEC")]
    subnet: String,
    /// Input batch: NCHW float32 .npy of shape [B, 3, r, r] (already normalised).
    #[arg(long, value_name = "X.npy", conflicts_with = "image", requires = "output")]
    input: Option<PathBuf>,
    /// Where to write the logits [B, 1000] (.npy, written atomically).
    #[arg(long, value_name = "Y.npy", requires = "input")]
    output: Option<PathBuf>,
    /// Image files: OFA's preprocessing, then the top-5 ImageNet classes are printed.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    image: Vec<PathBuf>,
}

/// Runs the sub-network.
pub fn run(args: Args) -> Result<()> {
    let subnet = SubnetConfig::from_spec(&args.subnet).context("invalid --subnet")?;
    let device = Device::flex();
    let r = subnet.resolution();
    let batch = match (&args.input, args.image.is_empty()) {
        (Some(path), true) => read_npy(path)?,
        (None, false) => {
            let mut data = Vec::with_capacity(args.image.len() * 3 * r * r);
            for path in &args.image {
                data.extend(load_image(path, r)?);
            }
            Array { shape: vec![args.image.len(), 3, r, r], data }
        }
        _ => bail!("give either --input X.npy --output Y.npy, or --image FILE…"),
    };
    if batch.shape.len() != 4 || batch.shape[1] != 3 || batch.shape[2] != r || batch.shape[3] != r {
        bail!(
            "input has shape {:?}; the sub-network (r = {r}) needs [B, 3, {r}, {r}]",
            batch.shape
        );
    }
    let net = args.weights.load(&device)?;
    let x = batch.to_tensor::<4>(&device)?; // [B, 3, r, r]
    let logits = Array::from_tensor(&net.forward(x, &subnet)?); // [B, classes]
    if let Some(out) = &args.output {
        write_npy(out, &logits)?;
        eprintln!("wrote logits {:?} to {}", logits.shape, out.display());
        return Ok(());
    }
    let names = class_names();
    let classes = logits.shape[1];
    for (i, path) in args.image.iter().enumerate() {
        let probs = softmax(&logits.data[i * classes..(i + 1) * classes]);
        println!("{}:", path.display());
        for idx in top_k(&probs, 5) {
            let name = names.get(idx).copied().unwrap_or("?");
            println!("  {:>6.2}%  {idx:>4}  {name}", probs[idx] * 100.0);
        }
    }
    Ok(())
}
