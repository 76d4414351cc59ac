//! The supernet in Burn's own record format (burnpack, `.bpk`), for fast start-up.
//!
//! Saving writes a temporary file beside the target and renames it into place, so a
//! crash never leaves half a file. Loading reads the width off the stem's shape, builds
//! an empty supernet of that width and fills it from the file.

use std::path::Path;

use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot, ModuleStore};

use crate::arch::{SupernetConfig, Width};
use crate::error::{Error, Result};
use crate::state_dict::{TensorSource, build_supernet};
use crate::supernet::Supernet;

/// Burn's path of the stem weight inside a record.
const STEM_PATH: &str = "first_conv.conv.weight";

/// Writes `net` to `path` as a burnpack record (atomically).
pub fn save_record(net: &Supernet, path: &Path) -> Result<()> {
    crate::files::write_through(path, |tmp| {
        let mut store = BurnpackStore::from_file(tmp).auto_extension(false).overwrite(true).metadata("dynofa.width", net.config.width.to_string());
        net.save_into(&mut store).map_err(|e| Error::Checkpoint { detail: format!("cannot write record: {e}") }.in_file(path))
    })
}

/// Reads a supernet written by [`save_record`].
pub fn load_record(path: &Path, device: &Device) -> Result<Supernet> {
    if !path.is_file() {
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no such record file");
        return Err(Error::io(path, e));
    }
    let bad = |detail: String| Error::Checkpoint { detail }.in_file(path);
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let stem =
        store.get_tensor(STEM_PATH).map_err(|e| bad(format!("unreadable burnpack record: {e}")))?.ok_or_else(|| bad(format!("record has no `{STEM_PATH}`")))?;
    let channels = stem.shape.first().copied().unwrap_or(0);
    let width = Width::from_stem_channels(channels).ok_or_else(|| bad(format!("`{STEM_PATH}` has {channels} output channels; expected 16 or 24")))?;
    let mut net = build_supernet(&SupernetConfig::ofa_mbv3(width), &mut Zeros, device)?;
    let result = net.load_from(&mut store).map_err(|e| bad(format!("cannot load record: {e}")))?;
    if let Some((missing, _)) = result.missing.first() {
        return Err(bad(format!("record lacks tensor `{missing}`")));
    }
    if let Some(error) = result.errors.first() {
        return Err(bad(format!("record tensor does not fit: {error:?}")));
    }
    Ok(net)
}

/// Placeholder values, overwritten by the record.
struct Zeros;

impl TensorSource for Zeros {
    fn tensor(&mut self, _key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(vec![0.0; shape.iter().product()])
    }
}
