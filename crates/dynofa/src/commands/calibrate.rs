//! `dynofa calibrate`: re-estimate a sub-network's BatchNorm statistics on real data
//! (OFA's `set_running_statistics`), and write the calibrated network.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use dynofa_slice::calibrate::recalibrate;
use dynofa_slice::{extract, ofa_dir};
use dynofa_supernet::tensor_io::{read_npy, Array};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::preprocess::load_image;
use crate::weights::SubnetArgs;

/// Arguments of `dynofa calibrate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    net: SubnetArgs,
    /// Calibration data: `.npy` batches [B, 3, r, r], or one folder of images in
    /// ImageFolder layout (class sub-folders), decoded with OFA's preprocessing.
    #[arg(long, value_name = "PATH", num_args = 1.., required = true)]
    data: Vec<PathBuf>,
    /// Images per batch (image folders).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Use at most this many images (image folders; OFA uses 2000).
    #[arg(long)]
    max_images: Option<usize>,
    /// Output folder in OFA's format (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn is_image(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
}

/// Image files of an ImageFolder tree (class sub-folders, or images directly), sorted.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("cannot read {}", dir.display()))?.path();
        if path.is_dir() {
            files.extend(image_files(&path)?);
        } else if is_image(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The calibration batches.
fn batches(args: &Args, r: usize) -> Result<Vec<Array>> {
    if let [dir] = args.data.as_slice() {
        if dir.is_dir() {
            let mut files = image_files(dir)?;
            if let Some(max) = args.max_images {
                files.truncate(max);
            }
            if files.is_empty() {
                bail!("{}: no images (.jpg, .jpeg, .png) found for calibration", dir.display());
            }
            let bar = ProgressBar::new(files.len() as u64).with_style(
                ProgressStyle::with_template("decoding {bar:30} {pos}/{len} images, ETA {eta}").expect("valid template"),
            );
            let images: Vec<Vec<f32>> = files
                .par_iter()
                .map(|f| {
                    let image = load_image(f, r);
                    bar.inc(1);
                    image
                })
                .collect::<Result<_>>()?;
            bar.finish_and_clear();
            return Ok(images
                .chunks(args.batch_size.max(1))
                .map(|chunk| Array { shape: vec![chunk.len(), 3, r, r], data: chunk.concat() })
                .collect());
        }
    }
    args.data
        .iter()
        .map(|path| {
            let batch = read_npy(path)?;
            if batch.shape.len() != 4 || batch.shape[1..] != [3, r, r] {
                bail!("{}: shape {:?}; calibration batches must be [B, 3, {r}, {r}]", path.display(), batch.shape);
            }
            Ok(batch)
        })
        .collect()
}

/// Extracts, re-calibrates and writes the sub-network.
pub fn run(args: Args) -> Result<()> {
    let subnet = args.net.config()?;
    let device = Device::flex();
    let supernet = args.net.weights.load(&device)?;
    let mut net = extract(&supernet, &subnet)?;
    let batches = batches(&args, subnet.resolution())?;
    let images: usize = batches.iter().map(|b| b.shape[0]).sum();
    let bar = ProgressBar::new(batches.len() as u64).with_style(
        ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} batches, ETA {eta}").expect("valid template"),
    );
    let tensors = batches.iter().map(|b| b.to_tensor::<4>(&device)).collect::<Result<Vec<_>, _>>()?;
    recalibrate(&mut net, tensors, |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    ofa_dir::save(&net, &args.out)?;
    eprintln!("re-calibrated BN on {images} images; wrote {}", args.out.display());
    Ok(())
}
