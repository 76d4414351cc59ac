//! Files in and out: the limits on what a file a user was handed may be, stated once,
//! and the one way every command writes a file (a temporary file in the same folder,
//! renamed into place: nothing half-written, nothing left behind on failure).
//!
//! Text files (configs, family files, latency tables, sub-network specs) are read only up
//! to [`MAX_TEXT_BYTES`]; sizes claimed inside binary files are checked against the file's
//! real size before anything is allocated (see [`claimed_bytes`]).

use std::io::{Read, Write};
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

/// Writes a file through `write` into a temporary file in the same folder, then renames
/// it to `path`; on any error nothing is left behind.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>) -> Result<()> {
    let mut tmp = temporary_beside(path)?;
    {
        let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut buffered).and_then(|_| buffered.flush()).map_err(|e| Error::io(path, e))?;
    }
    publish_permissions(tmp.path(), false).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Gives a finished temporary file (or folder) the usual permissions, `rw-r--r--`
/// (`rwxr-xr-x` for a folder), before it is renamed into place: temporary files are
/// created private to the user.
pub fn publish_permissions(path: &Path, folder: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if folder { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, folder);
    Ok(())
}

/// Writes `path` through `write`, which writes a whole file at the path it is given (a
/// temporary file in the same folder: for writers that open the path themselves, such as
/// plotters' SVG backend or Burn's record store), then renames it into place. On any
/// error, `write`'s or the rename's, nothing is left behind.
pub fn write_through<E: From<Error>>(path: &Path, write: impl FnOnce(&Path) -> std::result::Result<(), E>) -> std::result::Result<(), E> {
    let tmp = temporary_beside(path)?;
    write(tmp.path())?;
    publish_permissions(tmp.path(), false).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// An empty temporary file in `path`'s folder (removed when dropped).
fn temporary_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    tempfile::Builder::new().prefix(".dynofa").suffix(".tmp").tempfile_in(dir).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_written_through_a_path_is_published_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done.txt");
        write_through(&done, |tmp| std::fs::write(tmp, "all of it").map_err(|e| Error::io(tmp, e))).unwrap();
        assert_eq!(std::fs::read_to_string(&done).unwrap(), "all of it");
        // The writer fails half-way: its error comes back, nothing is left.
        let failed = write_through(&dir.path().join("failed.txt"), |tmp| {
            std::fs::write(tmp, "half").map_err(|e| Error::io(tmp, e))?;
            Err(Error::InvalidValue { field: "plot".into(), value: "half".into(), expected: "whole".into() })
        });
        assert!(matches!(failed, Err(Error::InvalidValue { ref field, .. }) if field == "plot"), "{failed:?}");
        // The rename fails (a folder is in the way): nothing is left either.
        let taken = dir.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("inside"), "").unwrap();
        assert!(write_through(&taken, |tmp| std::fs::write(tmp, "x").map_err(|e| Error::io(tmp, e))).is_err());
        assert!(write_atomically(&taken, |f| f.write_all(b"x")).is_err());
        assert_eq!(dynofa_golden::entries(dir.path()), ["done.txt", "taken"]);
    }
}
