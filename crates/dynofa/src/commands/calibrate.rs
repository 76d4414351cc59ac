//! `dynofa calibrate`: re-estimate a sub-network's BatchNorm statistics on real data
//! (OFA's `set_running_statistics`), and write the calibrated network.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use dynofa_slice::calibrate::recalibrate;
use dynofa_slice::{extract, ofa_dir};
use dynofa_supernet::tensor_io::{Array, read_npy};
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

/// Where the calibration batches come from; each batch is read when it is needed, so
/// memory holds one batch, not the whole calibration set.
enum Source {
    /// `.npy` files, one batch each.
    Npy(Vec<PathBuf>),
    /// Image files, `batch_size` per batch.
    Images(Vec<PathBuf>, usize),
}

impl Source {
    fn new(args: &Args) -> Result<Self> {
        if let [dir] = args.data.as_slice()
            && dir.is_dir()
        {
            let mut files = image_files(dir)?;
            if let Some(max) = args.max_images {
                files.truncate(max);
            }
            if files.is_empty() {
                bail!("{}: no images (.jpg, .jpeg, .png) found for calibration", dir.display());
            }
            return Ok(Source::Images(files, args.batch_size.max(1)));
        }
        Ok(Source::Npy(args.data.clone()))
    }

    fn batches(&self) -> usize {
        match self {
            Source::Npy(files) => files.len(),
            Source::Images(files, size) => files.len().div_ceil(*size),
        }
    }

    /// Batch `i`, `[B, 3, r, r]`; images are decoded in parallel.
    fn batch(&self, i: usize, r: usize) -> Result<Array> {
        match self {
            Source::Npy(files) => {
                let batch = read_npy(&files[i])?;
                if batch.shape.len() != 4 || batch.shape[1..] != [3, r, r] {
                    bail!("{}: shape {:?}; calibration batches must be [B, 3, {r}, {r}]", files[i].display(), batch.shape);
                }
                Ok(batch)
            }
            Source::Images(files, size) => {
                let chunk = &files[i * size..((i + 1) * size).min(files.len())];
                let images: Vec<Vec<f32>> = chunk.par_iter().map(|f| load_image(f, r)).collect::<Result<_>>()?;
                Ok(Array { shape: vec![chunk.len(), 3, r, r], data: images.concat() })
            }
        }
    }
}

/// Extracts, re-calibrates and writes the sub-network.
pub fn run(args: Args) -> Result<()> {
    let subnet = args.net.config()?;
    let device = Device::flex();
    let supernet = args.net.weights.load(&device)?;
    let mut net = extract(&supernet, &subnet)?;
    let source = Source::new(&args)?;
    let r = subnet.resolution();
    let bar = crate::progress::bar(source.batches() as u64, "calibrating {bar:30} {pos}/{len} batches, ETA {eta}", false);
    // A batch that cannot be read stops the run before anything is written.
    let (mut failure, mut images) = (None, 0);
    let tensors = (0..source.batches()).map_while(|i| match source.batch(i, r).and_then(|b| Ok(b.to_tensor::<4>(&device)?)) {
        Ok(t) => {
            images += t.dims()[0];
            Some(t)
        }
        Err(e) => {
            failure = Some(e);
            None
        }
    });
    recalibrate(&mut net, tensors, |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    crate::interrupt::deferred("finishing the write of the calibrated network", || Ok(ofa_dir::save(&net, &args.out)?))?;
    eprintln!("re-calibrated BN on {images} images; wrote {}", args.out.display());
    Ok(())
}
