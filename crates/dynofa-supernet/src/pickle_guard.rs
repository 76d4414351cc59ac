//! The guard in front of `pytorch-reader`: a checkpoint is judged before it is read.
//!
//! `pytorch-reader` never executes a pickle, but it keeps calls it does not know as opaque
//! values, so a file that asks for `os.system` would load with that call silently dropped,
//! and it trusts the sizes a file claims. We refuse such files instead: every pickle of the
//! checkpoint runs on [`crate::pickle_machine`], a model of Python's pickle machine that
//! allows only what a state dict needs (tensor rebuilds, storages, dtypes, `OrderedDict`;
//! see [`ALLOWED_GLOBALS`]), and every storage a persistent id names must fit the bytes
//! that really back it: its zip entry, or its record in the legacy stream.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::pickle_machine::{self, Value};
pub use crate::pickle_machine::{ALLOWED_GLOBALS, Allowed};

/// Largest pickle (`data.pkl`) read out of a zip checkpoint: OFA's largest is ~60 KB.
pub const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// Judges the checkpoint at `path`: its pickles against the allow-list, its storages'
/// claimed sizes against the bytes that back them.
pub fn check_checkpoint(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        check_zip(&bytes)
    } else if bytes.get(257..262) == Some(b"ustar") {
        Err(Error::Checkpoint { detail: "TAR checkpoints (PyTorch before 0.1.10) are not supported".into() })
    } else {
        check_legacy(&bytes)
    }
}

/// Runs one pickle with every storage backed by `bytes_per_storage` bytes; returns the
/// bytes the pickle spans. (The machine on its own, for tests and fuzzing.)
pub fn check_pickle(data: &[u8], bytes_per_storage: u64) -> Result<usize> {
    pickle_machine::run(data, &|_| Ok(bytes_per_storage)).map(|outcome| outcome.end)
}

/// The zip format (`torch.save` since 1.6): `<name>/data.pkl`, storages in `<name>/data/<key>`.
fn check_zip(bytes: &[u8]) -> Result<()> {
    let file_len = bytes.len() as u64;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| Error::Checkpoint { detail: format!("unreadable zip container: {e}") })?;
    let name = archive
        .file_names()
        .filter_map(|name| name.ok())
        .find(|name| name.ends_with("data.pkl"))
        .map(|name| name.into_owned())
        .ok_or_else(|| Error::Checkpoint { detail: "zip container without data.pkl".into() })?;
    let prefix = name.strip_suffix("data.pkl").unwrap_or_default().to_string();
    let mut pickle = Vec::new();
    archive
        .by_name(&name)
        .and_then(|f| f.take(MAX_PICKLE_BYTES + 1).read_to_end(&mut pickle).map_err(Into::into))
        .map_err(|e| Error::Checkpoint { detail: format!("cannot read {name}: {e}") })?;
    if pickle.len() as u64 > MAX_PICKLE_BYTES {
        return Err(Error::Checkpoint { detail: format!("{name} is larger than {MAX_PICKLE_BYTES} bytes") });
    }
    let storage_bytes = |key: &str| -> Result<u64> {
        let entry = format!("{prefix}data/{key}");
        let file = archive_entry_size(bytes, &entry)?;
        match file {
            Some((size, stored)) if stored && size <= file_len => Ok(size),
            Some((size, _)) => {
                Err(Error::Checkpoint { detail: format!("storage entry {entry} claims {size} bytes compressed or beyond the file's {file_len}") })
            }
            None => Err(Error::Checkpoint { detail: format!("storage `{key}` has no entry {entry}") }),
        }
    };
    pickle_machine::run(&pickle, &storage_bytes).map(|_| ())
}

/// The size and whether it is stored uncompressed, of the zip entry `name`.
fn archive_entry_size(bytes: &[u8], name: &str) -> Result<Option<(u64, bool)>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| Error::Checkpoint { detail: format!("unreadable zip container: {e}") })?;
    let Some(index) = archive.index_for_name(name) else { return Ok(None) };
    let entry = archive.by_index_raw(index).map_err(|e| Error::Checkpoint { detail: format!("cannot read {name}: {e}") })?;
    Ok(Some((entry.size(), entry.compression() == zip::CompressionMethod::Stored)))
}

/// Pickles at the start of a legacy (pre-1.6) checkpoint: magic number, protocol
/// version, system info, the object, its storage keys.
const LEGACY_PICKLES: usize = 5;

/// The legacy stream: five pickles, then for each storage key in order its element count
/// (little-endian u64) and its bytes.
fn check_legacy(bytes: &[u8]) -> Result<()> {
    let file_len = bytes.len() as u64;
    let mut rest = bytes;
    let mut storages = Default::default();
    let mut keys = Vec::new();
    for index in 0..LEGACY_PICKLES {
        let outcome = pickle_machine::run(rest, &|_| Ok(file_len))?;
        rest = &rest[outcome.end..];
        if index == 3 {
            storages = outcome.storages;
        } else if index == 4 {
            keys = storage_keys(&outcome.root)?;
        }
        if rest.is_empty() {
            // A plain pickle (not a legacy stream) ends here.
            return if index == 0 { Ok(()) } else { Err(Error::Checkpoint { detail: "truncated legacy checkpoint".into() }) };
        }
    }
    for key in keys {
        let claim = storages.get(&key).ok_or_else(|| Error::Checkpoint { detail: format!("storage key `{key}` listed but never described") })?;
        let header: [u8; 8] = rest
            .get(..8)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| Error::Checkpoint { detail: format!("storage `{key}`: the file ends before its record") })?;
        let numel = u64::from_le_bytes(header);
        if numel != claim.numel {
            return Err(Error::Checkpoint { detail: format!("storage `{key}` records {numel} elements, its persistent id claims {}", claim.numel) });
        }
        let size = numel.checked_mul(claim.element_bytes).filter(|&n| n <= (rest.len() - 8) as u64).ok_or_else(|| Error::Checkpoint {
            detail: format!("storage `{key}` claims {numel} elements of {} bytes; {} bytes are left in the file", claim.element_bytes, rest.len() - 8),
        })?;
        rest = &rest[8 + size as usize..];
    }
    Ok(())
}

/// The legacy stream's list of storage keys (strings).
fn storage_keys(root: &Value) -> Result<Vec<String>> {
    let not_keys = || Error::Checkpoint { detail: "the legacy stream's storage keys are not a list of strings".into() };
    let Value::List(items) = root else { return Err(not_keys()) };
    items
        .borrow()
        .iter()
        .map(|item| match &**item {
            Value::Str(key) => Ok(key.clone()),
            _ => Err(not_keys()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_state_dict_pickle() {
        // {'a': OrderedDict()} in protocol 2 with a GLOBAL.
        let pickle = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01ccollections\nOrderedDict\nq\x02)Rq\x03s.";
        assert_eq!(check_pickle(pickle, 0).unwrap(), pickle.len());
    }

    #[test]
    fn truncated_pickle_is_an_error() {
        assert!(check_pickle(b"\x80\x02X\x10\x00\x00\x00ab", 0).unwrap_err().to_string().contains("truncated"));
        assert!(check_pickle(b"", 0).unwrap_err().to_string().contains("truncated"));
    }
}
