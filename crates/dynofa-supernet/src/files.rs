//! Reading files a user was handed: the limits on what a file may be, stated once.
//!
//! Text files (configs, family files, latency tables, sub-network specs) are read only up
//! to [`MAX_TEXT_BYTES`]; sizes claimed inside binary files are checked against the file's
//! real size before anything is allocated (see [`claimed_bytes`]).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest text file read (configs, family files, latency tables): the largest the project
/// writes is ~1 MB.
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// Reads the UTF-8 text file at `path`, refusing one larger than [`MAX_TEXT_BYTES`] before
/// reading it.
pub fn read_text(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let too_large = |len: u64| Error::InFile {
        path: path.into(),
        inner: Box::new(Error::InvalidValue {
            field: "file size".into(),
            value: format!("{len} bytes"),
            expected: format!("a text file of at most {MAX_TEXT_BYTES} bytes"),
        }),
    };
    if len > MAX_TEXT_BYTES {
        return Err(too_large(len));
    }
    let mut text = String::with_capacity(len as usize);
    file.take(MAX_TEXT_BYTES + 1).read_to_string(&mut text).map_err(|e| Error::io(path, e))?;
    if text.len() as u64 > MAX_TEXT_BYTES {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

/// The bytes `dims` elements of `element_bytes` each take, if they fit in `available` bytes;
/// otherwise an error stating the claim (`what` names the array).
pub fn claimed_bytes(what: &str, dims: &[u64], element_bytes: u64, available: u64) -> Result<u64> {
    let claimed = dims.iter().try_fold(element_bytes, |acc, &d| acc.checked_mul(d));
    match claimed {
        Some(bytes) if bytes <= available => Ok(bytes),
        _ => Err(Error::TensorFile {
            detail: format!(
                "{what} claims shape {dims:?} of {element_bytes}-byte elements ({}), but the file holds only {available} bytes",
                claimed.map_or("more than 2^64 bytes".into(), |b| format!("{b} bytes"))
            ),
        }),
    }
}
