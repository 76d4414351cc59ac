//! `dynofa infer`: run one sub-network on an `.npy` batch or on images.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use dynofa_device::DeviceId;
use dynofa_slice::{LoadedFamily, Placement, StaticNet, ofa_dir};
use dynofa_supernet::SubnetConfig;
use dynofa_supernet::tensor_io::{Array, read_npy, write_npy};

use crate::preprocess::{class_names, load_image, softmax, top_k};
use crate::weights::WeightsArgs;

/// Arguments of `dynofa infer`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    weights: WeightsArgs,
    /// Sub-network of the supernet: a JSON/RON file or inline JSON in OFA's format
    /// {"ks","e","d","r"}.
    #[arg(long, value_name = "SPEC", required_unless_present = "model", conflicts_with = "model")]
    subnet: Option<String>,
    /// A standalone network instead: a folder in OFA's specialised-network format
    /// (`net.config`, `run.config`, `init`), e.g. written by `dynofa extract`.
    #[arg(long, value_name = "DIR", conflicts_with = "weights")]
    model: Option<PathBuf>,
    /// Input batch: NCHW float32 .npy of shape [B, 3, r, r] (already normalised).
    #[arg(long, value_name = "X.npy", conflicts_with = "image", requires = "output")]
    input: Option<PathBuf>,
    /// Where to write the logits [B, 1000] (.npy, written atomically).
    #[arg(long, value_name = "Y.npy", requires = "input")]
    output: Option<PathBuf>,
    /// Image files: OFA's preprocessing, then the top-5 ImageNet classes are printed.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    image: Vec<PathBuf>,
    /// Processor: cpu, gpu (the best adapter) or gpu:N (see `dynofa devices`): a
    /// sub-network runs on the fast path as `dynofa run` runs it (the CPU family store,
    /// one thread; the GPU family, BatchNorm folded), a standalone network as Burn's
    /// forward on the device.
    #[arg(long, default_value = "cpu", value_parser = crate::device::parse_device)]
    device: DeviceId,
}

/// What runs: a sub-network of the supernet (a family of one level), or a standalone network.
enum Network {
    /// A sub-network of the supernet on the fast path: the family store on the CPU, the
    /// folded network on a GPU.
    Family(Box<dyn LoadedFamily>),
    Standalone(Box<StaticNet>),
}

impl Network {
    fn resolution(&self) -> usize {
        match self {
            Network::Family(family) => family.level_config(0).resolution(),
            Network::Standalone(net) => net.arch.resolution,
        }
    }

    /// Logits `[B, classes]` of a batch `[B, 3, r, r]`.
    fn forward(&mut self, batch: &Array, device: &Device) -> Result<Array> {
        Ok(match self {
            Network::Family(family) => family.forward(batch)?,
            Network::Standalone(net) => Array::from_tensor(&net.forward(batch.to_tensor::<4>(device)?)),
        })
    }
}

/// Runs the network.
pub fn run(args: Args) -> Result<()> {
    let host = Device::flex();
    let (placement, _) = crate::device::open(args.device, 1)?;
    let device = match &placement {
        Placement::Gpu(device) => device.clone(),
        Placement::Cpu { .. } => host.clone(),
    };
    let mut network = match (&args.subnet, &args.model) {
        (Some(spec), None) => {
            let subnet = SubnetConfig::from_spec(spec).context("invalid --subnet")?;
            let supernet = args.weights.load(&host)?;
            Network::Family(placement.load(&supernet, &[subnet], &[])?)
        }
        (None, Some(dir)) => Network::Standalone(Box::new(ofa_dir::load(dir, &host)?.to_device(&device))),
        _ => bail!("give either --subnet SPEC (with --weights) or --model DIR"),
    };
    let r = network.resolution();
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
        bail!("input has shape {:?}; the sub-network (r = {r}) needs [B, 3, {r}, {r}]", batch.shape);
    }
    let logits = network.forward(&batch, &device)?; // [B, classes]
    if let Some(out) = &args.output {
        crate::interrupt::deferred("finishing the write of the logits", || Ok(write_npy(out, &logits)?))?;
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
