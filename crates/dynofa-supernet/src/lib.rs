//! # dynofa-supernet
//!
//! The Once-for-All MobileNetV3 supernet in Burn — the reference definition that every
//! other dynofa crate builds on.
//!
//! - [`arch`]: the supernet's configuration and a sub-network's elastic choices (OFA's
//!   `{"ks", "e", "d", "r"}` format), with validation.
//! - [`supernet`], [`layers`], [`elastic_kernel`]: the model and its dynamic forward (elastic
//!   depth, expand ratio, kernel size and resolution), following OFA's semantics exactly.
//! - [`counts`]: parameters and MFLOPs by OFA's counting rule.
//! - [`checkpoint`] (with [`pickle_guard`]) and [`record`]: loading the official PyTorch
//!   checkpoints, and Burn's own record format for fast start-up.
//! - [`pth`]: writing PyTorch checkpoints (zip format).
//! - [`seeded`]: deterministic untrained weights, the embedded default.
//! - [`tensor_io`]: `.npy` / `.npz` arrays.
//!
//! Depends on Burn (the flex CPU backend; the GPU comes through `dynofa-device`'s `wgpu`
//! feature) and Burn's
//! `pytorch-reader`. Every higher dynofa crate (slicing, profiler, search, runtime, CLI)
//! depends on this one; it depends on none of them.

pub mod arch;
pub mod checkpoint;
pub mod counts;
pub mod elastic_kernel;
pub mod error;
pub mod files;
pub mod layers;
pub mod pickle_guard;
pub mod pickle_machine;
pub mod pth;
pub mod record;
pub mod seeded;
pub mod state_dict;
pub mod supernet;
pub mod tensor_io;

pub use arch::{SubnetConfig, SupernetConfig, Width};
pub use checkpoint::{load_checkpoint, load_checkpoint_in};
pub use counts::Counts;
pub use error::{Error, Result};
pub use record::{load_record, save_record};
pub use state_dict::Precision;
pub use supernet::Supernet;

use std::path::Path;

use burn::prelude::*;

/// Loads supernet weights from `path`: a PyTorch checkpoint (`.pth`, `.pt`, `.tar`, or
/// any file that is not a burnpack record) or a Burn record (`.bpk`).
pub fn load_weights(path: &Path, device: &Device) -> Result<Supernet> {
    if path.extension().is_some_and(|e| e == "bpk") { load_record(path, device) } else { load_checkpoint(path, device) }
}
